//! Routing: which events reach which organs, for route tables small and large, and for
//! event types that have an ordering key but no organ.

#[path = "common/probes.rs"]
mod probes;

use necrostack::{organ, AnyEnvelope, Backend, Event, Spine};
use probes::{Behavior, Log, Probe, Seq};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Lonely {
    key: u32,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Heard(u32);

#[organ(listens_to = Heard)]
fn hear(_: &Heard) {}

/// A `Lonely` from the wire whose payload does not decode as `Lonely`.
fn undecodable_lonely() -> AnyEnvelope {
    AnyEnvelope::from_json_value(json!({
        "id": "0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
        "timestamp": "2024-05-06T07:08:09Z",
        "event_type": "Lonely",
        "payload": {"key": "not a number"},
        "correlation_id": "0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
        "causation_id": null,
        "depth": 0,
    }))
    .unwrap()
}

#[tokio::test]
async fn an_event_type_with_an_order_key_but_no_organ_is_unrouted() {
    for concurrency in [1, 4] {
        let spine = Spine::builder()
            .organ(hear)
            .order_key(|lonely: &Lonely| lonely.key)
            .concurrency(concurrency)
            .build()
            .unwrap();
        spine
            .emit_all([Lonely { key: 1 }, Lonely { key: 1 }, Lonely { key: 2 }])
            .await
            .unwrap();
        // Were it decoded, this one would be dead-lettered as undecodable.
        spine
            .backend()
            .enqueue(vec![undecodable_lonely()])
            .await
            .unwrap();
        spine.emit(Heard(1)).await.unwrap();
        let report = spine.run_until_idle().await.unwrap();
        assert_eq!(report.steps, 5, "{report:?}");
        assert_eq!(report.unrouted, 4, "{report:?}");
        assert_eq!(report.succeeded, 1, "{report:?}");
        assert_eq!((report.failed, report.dead_lettered), (0, 0), "{report:?}");
        assert!(spine.backend().dead_letters().is_empty());
        assert!(spine.backend().is_empty());
    }
}

macro_rules! many_events {
    ($($name:ident),*) => {$(
        #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
        struct $name(u32);
        impl Seq for $name {
            fn seq(&self) -> u32 {
                self.0
            }
        }
    )*};
}

// More event types than a route table scans name by name (8): the hashed lookup.
many_events!(E0, E1, E2, E3, E4, E5, E6, E7, E8, E9, E10, Unheard);

#[tokio::test]
async fn a_large_route_table_routes_every_type_to_its_own_organs() {
    let log = Log::default();
    let spine = Spine::builder()
        .organ(Probe::<E0>::new(0, &log, Behavior::Ok))
        .organ(Probe::<E1>::new(1, &log, Behavior::Ok))
        .organ(Probe::<E2>::new(2, &log, Behavior::Ok))
        .organ(Probe::<E3>::new(3, &log, Behavior::Ok))
        .organ(Probe::<E4>::new(4, &log, Behavior::Ok))
        .organ(Probe::<E5>::new(5, &log, Behavior::Ok))
        .organ(Probe::<E6>::new(6, &log, Behavior::Ok))
        .organ(Probe::<E7>::new(7, &log, Behavior::Ok))
        .organ(Probe::<E8>::new(8, &log, Behavior::Ok))
        .organ(Probe::<E9>::new(9, &log, Behavior::Ok))
        .organ(Probe::<E10>::new(10, &log, Behavior::Ok))
        .organ(Probe::<E10>::new(11, &log, Behavior::Ok)) // a second organ for E10, after the first
        .order_key(|e: &E9| e.0 % 2)
        .concurrency(3)
        .build()
        .unwrap();
    let mut names: Vec<_> = spine.routed_event_types().collect();
    names.sort_unstable();
    assert_eq!(names.len(), 11, "{names:?}");

    // In reverse order of registration, so that no position in the table is favoured.
    spine.emit(Unheard(99)).await.unwrap();
    spine.emit(E10(10)).await.unwrap();
    spine.emit(E9(9)).await.unwrap();
    spine.emit(E8(8)).await.unwrap();
    spine.emit(E7(7)).await.unwrap();
    spine.emit(E6(6)).await.unwrap();
    spine.emit(E5(5)).await.unwrap();
    spine.emit(E4(4)).await.unwrap();
    spine.emit(E3(3)).await.unwrap();
    spine.emit(E2(2)).await.unwrap();
    spine.emit(E1(1)).await.unwrap();
    spine.emit(E0(0)).await.unwrap();
    let report = spine.run_until_idle().await.unwrap();
    assert_eq!((report.steps, report.unrouted), (12, 1), "{report:?}");
    assert_eq!(report.succeeded, 12, "{report:?}");

    let mut calls = log.lock().unwrap().clone();
    calls.sort_unstable();
    let expected: Vec<(usize, &str, u32)> = vec![
        (0, "E0", 0),
        (1, "E1", 1),
        (2, "E2", 2),
        (3, "E3", 3),
        (4, "E4", 4),
        (5, "E5", 5),
        (6, "E6", 6),
        (7, "E7", 7),
        (8, "E8", 8),
        (9, "E9", 9),
        (10, "E10", 10),
        (11, "E10", 10),
    ];
    assert_eq!(calls, expected);
    let order: Vec<_> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|call| call.1 == "E10")
        .map(|call| call.0)
        .collect();
    assert_eq!(
        order,
        [10, 11],
        "organs of one event run in registration order"
    );
}
