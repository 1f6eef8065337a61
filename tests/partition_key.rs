//! The partition key on the wire: `"key"`, a JSON number that is a `u64`, written only
//! when set (an unkeyed envelope is byte for byte what it was before keys existed) and
//! read back strictly and exactly.

use necrostack::partition::key_hash;
use necrostack::{AnyEnvelope, Envelope, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "wire.Trade")]
struct Trade {
    symbol: String,
    qty: u32,
}

fn trade() -> Trade {
    Trade {
        symbol: "AAPL".into(),
        qty: 10,
    }
}

/// A keyed retry as another producer might write it, with `key` as given.
fn keyed_json(key: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "id": "0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
        "timestamp": "2026-12-01T10:00:00Z",
        "event_type": "wire.Trade",
        "payload": {"symbol": "AAPL", "qty": 10},
        "correlation_id": "0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
        "causation_id": null,
        "depth": 0,
        "attempt": 2,
        "organ": "match",
        "key": key
    })
}

fn field_names(json: &[u8]) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_slice(json).unwrap();
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn a_keyed_envelope_round_trips_with_its_key() {
    let envelope = Envelope::new(trade()).with_partition_key("AAPL");
    assert_eq!(envelope.partition_key(), Some(key_hash("AAPL")));
    let json = envelope.to_json().unwrap();
    assert_eq!(serde_json::to_vec(&envelope).unwrap(), json, "one format");
    let text = String::from_utf8(json.clone()).unwrap();
    assert!(
        text.ends_with(&format!(",\"key\":{}}}", key_hash("AAPL"))),
        "written last, as a number: {text}"
    );

    let typed = Envelope::<Trade>::from_json(&json).unwrap();
    assert_eq!(typed, envelope);
    assert_eq!(typed.partition_key(), Some(key_hash("AAPL")));
    let any = AnyEnvelope::from_json(&json).unwrap();
    assert_eq!(any.partition_key(), Some(key_hash("AAPL")));
    assert_eq!(any.to_json().unwrap(), json, "written back byte for byte");
    let decoded = any.decode::<Trade>().unwrap();
    assert_eq!(decoded.partition_key(), Some(key_hash("AAPL")));
    let via_serde: Envelope<Trade> = serde_json::from_slice(&json).unwrap();
    assert_eq!(via_serde, envelope);
}

#[test]
fn an_unkeyed_envelope_has_no_key_field_and_reads_as_unkeyed() {
    let envelope = Envelope::new(trade());
    assert_eq!(envelope.partition_key(), None);
    let json = envelope.to_json().unwrap();
    let mut fields = field_names(&json);
    fields.sort_unstable();
    assert_eq!(
        fields,
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
    assert_eq!(
        Envelope::<Trade>::from_json(&json).unwrap().partition_key(),
        None
    );
    assert_eq!(AnyEnvelope::from_json(&json).unwrap().partition_key(), None);
    assert!(!format!("{envelope:?}").contains("partition_key"));
}

#[test]
fn the_key_is_the_same_on_the_typed_and_the_erased_envelope() {
    let any = AnyEnvelope::from(Envelope::new(trade())).with_partition_key(&7u64);
    assert_eq!(any.partition_key(), Some(key_hash(&7u64)));
    let typed = any.clone().decode::<Trade>().unwrap();
    assert_eq!(typed.partition_key(), Some(key_hash(&7u64)));
    assert!(format!("{any:?}").contains(&format!("partition_key: {}", key_hash(&7u64))));
    assert!(format!("{typed:?}").contains(&format!("partition_key: {}", key_hash(&7u64))));
    // A later key replaces an earlier one.
    let rekeyed = typed.with_partition_key("other");
    assert_eq!(rekeyed.partition_key(), Some(key_hash("other")));
}

#[test]
fn a_keyed_retry_from_another_producer_is_read_and_written_back_exactly() {
    let wire = keyed_json(serde_json::json!(12_345));
    let any = AnyEnvelope::from_json_value(wire.clone()).unwrap();
    assert_eq!(
        (any.attempt(), any.retry_organ(), any.partition_key()),
        (2, Some("match"), Some(12_345))
    );
    let typed = any.decode::<Trade>().unwrap();
    let again: serde_json::Value = serde_json::from_slice(&typed.to_json().unwrap()).unwrap();
    assert_eq!(again, wire);
}

#[test]
fn u64_max_is_read_exactly_and_larger_numbers_are_refused() {
    let text = keyed_json(serde_json::json!(u64::MAX)).to_string();
    assert!(text.contains("\"key\":18446744073709551615"));
    let any = AnyEnvelope::from_json_str(&text).unwrap();
    assert_eq!(any.partition_key(), Some(u64::MAX));
    let written = String::from_utf8(any.to_json().unwrap()).unwrap();
    assert!(
        written.contains("\"key\":18446744073709551615"),
        "{written}"
    );
    let typed = Envelope::<Trade>::from_json_str(&text).unwrap();
    assert_eq!(typed.partition_key(), Some(u64::MAX));

    let too_big = text.replace("18446744073709551615", "18446744073709551616");
    let error = AnyEnvelope::from_json_str(&too_big).unwrap_err();
    assert!(error.to_string().contains("key"), "{error}");
}

#[test]
fn a_key_of_the_wrong_type_is_refused() {
    for bad in [
        serde_json::json!(null),
        serde_json::json!(-1),
        serde_json::json!(1.5),
        serde_json::json!(1e3),
        serde_json::json!("42"),
        serde_json::json!(true),
        serde_json::json!([42]),
        serde_json::json!({"key": 42}),
    ] {
        let wire = keyed_json(bad.clone());
        let error = AnyEnvelope::from_json_value(wire.clone()).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("malformed envelope") && message.contains("key"),
            "{bad}: {message}"
        );
        assert!(
            Envelope::<Trade>::from_json_value(wire.clone()).is_err(),
            "{bad}"
        );
        assert!(
            serde_json::from_value::<Envelope<Trade>>(wire).is_err(),
            "{bad}"
        );
        // The same from bytes, the path backends use.
        let bytes = serde_json::to_vec(&keyed_json(bad.clone())).unwrap();
        assert!(AnyEnvelope::from_json(&bytes).is_err(), "{bad}");
    }
}

#[test]
fn unknown_fields_are_still_refused() {
    let mut wire = keyed_json(serde_json::json!(1));
    wire["partition"] = serde_json::json!(3);
    let error = AnyEnvelope::from_json_value(wire).unwrap_err();
    assert!(error.to_string().contains("partition"), "{error}");
}
