//! A scheduled retry on the wire: the envelope carries `attempt` and `organ`, read back
//! strictly; a first handling writes exactly the seven documented fields.

use necrostack::{AnyEnvelope, Envelope, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "wire.Charge")]
struct Charge {
    cents: u64,
}

fn retry_json(attempt: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "id": "0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
        "timestamp": "2026-12-01T10:00:00Z",
        "event_type": "wire.Charge",
        "payload": {"cents": 250},
        "correlation_id": "0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
        "causation_id": null,
        "depth": 0,
        "attempt": attempt,
        "organ": "bill"
    })
}

#[test]
fn a_first_handling_writes_the_seven_fields_only() {
    let json = Envelope::new(Charge { cents: 1 }).to_json().unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "causation_id",
            "correlation_id",
            "depth",
            "event_type",
            "id",
            "payload",
            "timestamp"
        ]
    );
    let envelope = Envelope::<Charge>::from_json(&json).unwrap();
    assert_eq!((envelope.attempt(), envelope.retry_organ()), (1, None));
}

#[test]
fn a_retry_round_trips_with_its_attempt_and_organ() {
    let wire = retry_json(3.into());
    let any = AnyEnvelope::from_json_value(wire.clone()).unwrap();
    assert_eq!((any.attempt(), any.retry_organ()), (3, Some("bill")));
    let typed = any.clone().decode::<Charge>().unwrap();
    assert_eq!((typed.attempt(), typed.retry_organ()), (3, Some("bill")));
    let again: serde_json::Value = serde_json::from_slice(&typed.to_json().unwrap()).unwrap();
    assert_eq!(again, wire, "written back exactly");
    let debug = format!("{typed:?}");
    assert!(
        debug.contains("depth: 0, attempt: 3, retry_organ: Some(\"bill\"), payload"),
        "{debug}"
    );
}

#[test]
fn an_attempt_of_zero_or_of_the_wrong_type_is_refused() {
    for bad in [
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!("2"),
    ] {
        let error = AnyEnvelope::from_json_value(retry_json(bad.clone())).unwrap_err();
        assert!(
            error.to_string().contains("malformed envelope"),
            "{bad}: {error}"
        );
    }
}
