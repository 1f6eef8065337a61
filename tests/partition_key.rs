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

// ---------------------------------------------------------------- the spine stamps keys

mod stamping {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use necrostack::backend::Backend;
    use necrostack::partition::key_hash;
    use necrostack::{
        organ, AnyEnvelope, Emit, Envelope, Event, FailurePolicy, InMemoryBackend, RetryPolicy,
        Spine,
    };
    use serde::{Deserialize, Serialize};

    #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[event(name = "keys.Order")]
    struct Order {
        account: String,
        n: u32,
    }

    #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[event(name = "keys.Fill")]
    struct Fill {
        account: String,
        n: u32,
    }

    #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[event(name = "keys.Note")]
    struct Note {
        n: u32,
    }

    fn order(account: &str, n: u32) -> Order {
        Order {
            account: account.into(),
            n,
        }
    }

    /// Everything waiting in `backend`, taken out one by one (an event waits while
    /// another with its key is out).
    async fn drain(backend: &InMemoryBackend) -> Vec<AnyEnvelope> {
        let mut out = Vec::new();
        loop {
            let batch = backend.pull(1, Duration::ZERO).await.unwrap();
            let Some(delivery) = batch.into_iter().next() else {
                return out;
            };
            out.push(delivery.envelope);
            let done = necrostack::backend::Completion::default();
            backend.complete(delivery.receipt, done).await.unwrap();
        }
    }

    fn keyed_spine(backend: InMemoryBackend) -> Spine {
        Spine::builder()
            .order_key(|order: &Order| order.account.clone())
            .order_key(|fill: &Fill| fill.account.clone())
            .backend(backend)
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn root_events_get_the_key_of_their_order_key() {
        let backend = InMemoryBackend::new();
        let spine = keyed_spine(backend.clone());
        spine.emit(order("acc-1", 0)).await.unwrap();
        spine
            .emit_all([order("acc-2", 1), order("acc-1", 2)])
            .await
            .unwrap();
        spine.emit(Note { n: 3 }).await.unwrap();
        let got: Vec<Option<u64>> = drain(&backend)
            .await
            .iter()
            .map(AnyEnvelope::partition_key)
            .collect();
        assert_eq!(
            got,
            [
                Some(key_hash("acc-1")),
                Some(key_hash("acc-2")),
                Some(key_hash("acc-1")),
                None, // no order_key for notes
            ]
        );
    }

    #[tokio::test]
    async fn an_explicit_key_wins_over_the_order_key() {
        let backend = InMemoryBackend::new();
        let spine = keyed_spine(backend.clone());
        let explicit = Envelope::new(order("acc-1", 0)).with_partition_key("desk-9");
        spine.emit_envelope(explicit).await.unwrap();
        spine
            .emit_envelope(Envelope::new(order("acc-1", 1)))
            .await
            .unwrap();
        spine
            .emit_envelope(Envelope::new(Note { n: 2 }).with_partition_key(&5u8))
            .await
            .unwrap();
        let got: Vec<Option<u64>> = drain(&backend)
            .await
            .iter()
            .map(AnyEnvelope::partition_key)
            .collect();
        assert_eq!(
            got,
            [
                Some(key_hash("desk-9")),
                Some(key_hash("acc-1")),
                Some(key_hash(&5u8))
            ]
        );
    }

    #[tokio::test]
    async fn scheduled_root_events_get_their_key() {
        let backend = InMemoryBackend::new();
        let spine = keyed_spine(backend.clone());
        spine
            .emit_after(Duration::from_millis(1), order("acc-3", 0))
            .await
            .unwrap();
        spine
            .emit_at(chrono::Utc::now(), order("acc-4", 1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut got: Vec<Option<u64>> = drain(&backend)
            .await
            .iter()
            .map(AnyEnvelope::partition_key)
            .collect();
        got.sort_unstable();
        let mut expected = vec![Some(key_hash("acc-3")), Some(key_hash("acc-4"))];
        expected.sort_unstable();
        assert_eq!(got, expected);
    }

    /// What the organs below saw: the event's number and its partition key.
    type Seen = Arc<Mutex<Vec<(&'static str, u32, Option<u64>)>>>;

    struct Recorder {
        seen: Seen,
    }

    #[organ(listens_to = Order)]
    impl Recorder {
        /// Emits a fill now, the same fill twice through one cloned `Emit`, and a note
        /// later; fails once for order 7 (the retry keeps the key).
        fn handle(&self, order: &Envelope<Order>) -> Result<(Emit, Emit), std::io::Error> {
            self.seen
                .lock()
                .unwrap()
                .push(("order", order.n, order.partition_key()));
            if order.n == 7 && order.attempt() == 1 {
                return Err(std::io::Error::other("first try of order 7 fails"));
            }
            let fill = Fill {
                account: order.account.clone(),
                n: order.n,
            };
            let emit = Emit::new()
                .with(fill)
                .after(Duration::from_millis(5), Note { n: order.n });
            Ok((emit.clone(), emit))
        }
    }

    struct FillRecorder {
        seen: Seen,
    }

    #[organ(listens_to = Fill)]
    impl FillRecorder {
        fn handle(&self, fill: &Envelope<Fill>) {
            self.seen
                .lock()
                .unwrap()
                .push(("fill", fill.n, fill.partition_key()));
        }
    }

    struct NoteRecorder {
        seen: Seen,
    }

    #[organ(listens_to = Note)]
    impl NoteRecorder {
        fn handle(&self, note: &Envelope<Note>) {
            self.seen
                .lock()
                .unwrap()
                .push(("note", note.n, note.partition_key()));
        }
    }

    #[tokio::test]
    async fn emitted_delayed_and_retried_events_carry_their_keys() {
        let seen = Seen::default();
        let retry = RetryPolicy::new(2)
            .backoff(Duration::from_millis(5), Duration::from_millis(5))
            .jitter(false);
        let spine = Spine::builder()
            .organ(Recorder {
                seen: Arc::clone(&seen),
            })
            .organ(FillRecorder {
                seen: Arc::clone(&seen),
            })
            .organ(NoteRecorder {
                seen: Arc::clone(&seen),
            })
            .order_key(|order: &Order| order.account.clone())
            .order_key(|fill: &Fill| (fill.account.clone(), "fills"))
            .order_key(|note: &Note| note.n)
            .failure_policy(FailurePolicy::Retry(retry))
            .build()
            .unwrap();
        spine.emit(order("acc-1", 7)).await.unwrap();
        let report = spine.run_until_idle().await.unwrap();
        assert_eq!(report.retried, 1);
        let seen = seen.lock().unwrap().clone();
        let order_key = Some(key_hash("acc-1"));
        let fill_key = Some(key_hash(&("acc-1".to_owned(), "fills")));
        let note_key = Some(key_hash(&7u32));
        assert_eq!(
            seen.iter().filter(|s| s.0 == "order").collect::<Vec<_>>(),
            [&("order", 7, order_key), &("order", 7, order_key)],
            "the first try and its retry"
        );
        assert_eq!(
            seen.iter().filter(|s| s.0 == "fill").collect::<Vec<_>>(),
            [&("fill", 7, fill_key), &("fill", 7, fill_key)],
            "one fill per returned (shared) Emit, each keyed"
        );
        assert_eq!(
            seen.iter().filter(|s| s.0 == "note").collect::<Vec<_>>(),
            [&("note", 7, note_key), &("note", 7, note_key)],
            "delayed events keyed too"
        );
    }

    #[organ(listens_to = Note)]
    fn refuse(_: &Note) -> Result<(), std::io::Error> {
        Err(std::io::Error::other("no"))
    }

    #[tokio::test]
    async fn a_dead_letter_keeps_the_key() {
        let spine = Spine::builder()
            .organ(refuse)
            .order_key(|note: &Note| note.n % 2)
            .failure_policy(FailurePolicy::DeadLetter)
            .build()
            .unwrap();
        spine.emit(Note { n: 3 }).await.unwrap();
        spine
            .emit_envelope(Envelope::new(Note { n: 4 }).with_partition_key("mine"))
            .await
            .unwrap();
        spine.run_until_idle().await.unwrap();
        let keys: Vec<Option<u64>> = spine
            .backend()
            .dead_letters()
            .iter()
            .map(|letter| letter.envelope.partition_key())
            .collect();
        assert_eq!(keys, [Some(key_hash(&1u32)), Some(key_hash("mine"))]);
    }

    struct Slow {
        log: Arc<Mutex<Vec<u32>>>,
    }

    #[organ(listens_to = Note)]
    impl Slow {
        async fn handle(&self, note: &Note) {
            // Later notes are quicker: without the key they would finish first.
            tokio::time::sleep(Duration::from_millis(u64::from(20 - note.n))).await;
            self.log.lock().unwrap().push(note.n);
        }
    }

    #[tokio::test]
    async fn a_delivered_key_orders_events_of_a_type_without_order_key() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let spine = Spine::builder()
            .organ(Slow {
                log: Arc::clone(&log),
            })
            .concurrency(8)
            .build()
            .unwrap();
        // Keyed through JSON, as from another process: the key orders them here.
        let keyed: Vec<AnyEnvelope> = (0..10)
            .map(|n| {
                let json = Envelope::new(Note { n })
                    .with_partition_key("one")
                    .to_json()
                    .unwrap();
                AnyEnvelope::from_json(&json).unwrap()
            })
            .collect();
        spine.backend().enqueue(keyed).await.unwrap();
        spine.run_until_idle().await.unwrap();
        assert_eq!(*log.lock().unwrap(), (0..10).collect::<Vec<_>>());

        // Unkeyed, the same events overtake each other (the test above can fail).
        log.lock().unwrap().clear();
        spine.emit_all((0..10).map(|n| Note { n })).await.unwrap();
        spine.run_until_idle().await.unwrap();
        assert_ne!(*log.lock().unwrap(), (0..10).collect::<Vec<_>>());
    }
}

// ------------------------------------------- the in-memory backend: one delivery per key

mod memory_keys {
    use std::time::{Duration, Instant};

    use necrostack::backend::memory::MemoryReceipt;
    use necrostack::backend::{Backend, Completion, Delivery};
    use necrostack::{AnyEnvelope, Envelope, Event, InMemoryBackend};
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    #[event(name = "keys.Tick")]
    struct Tick(u32);

    fn tick(id: u32, key: Option<u8>) -> AnyEnvelope {
        let envelope = Envelope::new(Tick(id));
        match key {
            Some(key) => envelope.with_partition_key(&key).into(),
            None => envelope.into(),
        }
    }

    fn id(delivery: &Delivery<MemoryReceipt>) -> u32 {
        delivery.envelope.downcast_ref::<Tick>().unwrap().0
    }

    fn ids(batch: &[Delivery<MemoryReceipt>]) -> Vec<u32> {
        batch.iter().map(id).collect()
    }

    async fn complete(backend: &InMemoryBackend, delivery: Delivery<MemoryReceipt>) {
        backend
            .complete(delivery.receipt, Completion::default())
            .await
            .unwrap();
    }

    /// Keys 1 and 2, and unkeyed events, in one queue.
    async fn mixed() -> InMemoryBackend {
        let backend = InMemoryBackend::new();
        let events = vec![
            tick(0, Some(1)),
            tick(1, Some(1)),
            tick(2, None),
            tick(3, Some(2)),
            tick(4, Some(1)),
            tick(5, None),
        ];
        backend.enqueue(events).await.unwrap();
        backend
    }

    #[tokio::test]
    async fn a_held_key_holds_back_its_events_for_every_clone() {
        let first = mixed().await;
        let second = first.clone();
        let mut held = first.pull(10, Duration::ZERO).await.unwrap().into_vec();
        assert_eq!(
            ids(&held),
            [0, 2, 3, 5],
            "one per key; unkeyed never held back"
        );
        assert_eq!(first.len(), 2, "the two waiting for key 1 still count");
        assert!(second.pull(10, Duration::ZERO).await.unwrap().is_empty());

        // Key 1 is done: its next event goes out, to whichever consumer asks.
        complete(&first, held.remove(0)).await;
        let next = second.pull(10, Duration::ZERO).await.unwrap().into_vec();
        assert_eq!(ids(&next), [1]);
        assert!(first.pull(10, Duration::ZERO).await.unwrap().is_empty());
        for delivery in next {
            complete(&second, delivery).await;
        }
        assert_eq!(ids(&first.pull(10, Duration::ZERO).await.unwrap()), [4]);
        assert!(first.is_empty());
    }

    #[tokio::test]
    async fn a_delivery_given_back_goes_out_again_before_the_rest_of_its_key() {
        let backend = mixed().await;
        let pulled = backend.pull(2, Duration::ZERO).await.unwrap().into_vec();
        assert_eq!(ids(&pulled), [0, 2]);
        backend.release(pulled).await.unwrap();
        let again = backend.pull(10, Duration::ZERO).await.unwrap().into_vec();
        assert_eq!(ids(&again), [0, 2, 3, 5]);
        assert_eq!(
            again.iter().map(|d| d.attempt).collect::<Vec<_>>(),
            [2, 2, 1, 1]
        );
    }

    #[tokio::test]
    async fn dropping_a_receipt_frees_its_key() {
        let backend = mixed().await;
        let pulled = backend.pull(1, Duration::ZERO).await.unwrap();
        assert_eq!(ids(&pulled), [0]);
        drop(pulled);
        let next = backend.pull(2, Duration::ZERO).await.unwrap();
        assert_eq!(ids(&next), [1, 2], "key 1 is free again");
    }

    #[tokio::test]
    async fn a_waiting_pull_wakes_when_another_consumer_frees_the_key() {
        let backend = InMemoryBackend::new();
        backend
            .enqueue(vec![tick(0, Some(9)), tick(1, Some(9))])
            .await
            .unwrap();
        let held = backend.pull(10, Duration::ZERO).await.unwrap().into_vec();
        assert_eq!(ids(&held), [0]);
        let other = backend.clone();
        let waiting = tokio::spawn(async move {
            let started = Instant::now();
            let got = other.pull(10, Duration::from_secs(10)).await.unwrap();
            (ids(&got), started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "key 9 is held: nothing to take yet");
        for delivery in held {
            complete(&backend, delivery).await;
        }
        let (got, waited) = waiting.await.unwrap();
        assert_eq!(got, [1]);
        assert!(
            waited < Duration::from_secs(5),
            "woken at once ({waited:?})"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// New events, keyed (by one of three keys) or not.
        Enqueue(Vec<Option<u8>>),
        Pull(usize),
        /// The n-th delivery out (modulo their number) is completed, given back or lost.
        Complete(usize),
        Release(usize),
        Drop(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = prop::option::weighted(0.8, 0u8..3);
        prop_oneof![
            3 => prop::collection::vec(key, 1..5).prop_map(Op::Enqueue),
            3 => (1usize..5).prop_map(Op::Pull),
            3 => any::<usize>().prop_map(Op::Complete),
            1 => any::<usize>().prop_map(Op::Release),
            1 => any::<usize>().prop_map(Op::Drop),
        ]
    }

    /// An event as the model sees it: id, key, deliveries so far.
    #[derive(Debug, Clone, Copy)]
    struct Model {
        id: u32,
        key: Option<u8>,
        delivered: u32,
    }

    /// What a pull must return: in queue order, each unkeyed event and the oldest waiting
    /// event of each key that no delivery out holds, up to `max`.
    fn expected_pull(waiting: &mut Vec<Model>, out: &[Model], max: usize) -> Vec<Model> {
        let mut taken: Vec<Model> = Vec::new();
        // Keys held by a delivery out, or taken by this pull.
        let mut seen_keys: Vec<u8> = out.iter().filter_map(|m| m.key).collect();
        let mut index = 0;
        while index < waiting.len() && taken.len() < max {
            let event = waiting[index];
            match event.key {
                Some(key) if seen_keys.contains(&key) => index += 1,
                key => {
                    if let Some(key) = key {
                        seen_keys.push(key);
                    }
                    taken.push(waiting.remove(index));
                }
            }
        }
        taken
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Interleavings of enqueues, pulls, completions, releases and lost deliveries agree
        /// with a model that hands out, in queue order, unkeyed events and the oldest event
        /// of every key that is not held, and puts what is given back first; nothing is
        /// lost or duplicated, attempts count.
        #[test]
        fn keyed_pulls_agree_with_the_model(ops in prop::collection::vec(op(), 1..40)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let backend = InMemoryBackend::new();
                let mut next_id = 0u32;
                let mut waiting: Vec<Model> = Vec::new();
                let mut out: Vec<(Model, Delivery<MemoryReceipt>)> = Vec::new();
                for op in ops {
                    match op {
                        Op::Enqueue(keys) => {
                            let mut events = Vec::new();
                            for key in keys {
                                events.push(tick(next_id, key));
                                waiting.push(Model { id: next_id, key, delivered: 0 });
                                next_id += 1;
                            }
                            backend.enqueue(events).await.unwrap();
                        }
                        Op::Pull(max) => {
                            let held: Vec<Model> = out.iter().map(|(m, _)| *m).collect();
                            let expected = expected_pull(&mut waiting, &held, max);
                            let got = backend.pull(max, Duration::ZERO).await.unwrap();
                            prop_assert_eq!(
                                ids(&got),
                                expected.iter().map(|m| m.id).collect::<Vec<_>>()
                            );
                            for (delivery, model) in got.into_iter().zip(expected) {
                                prop_assert_eq!(delivery.attempt, model.delivered + 1);
                                let model = Model { delivered: model.delivered + 1, ..model };
                                out.push((model, delivery));
                            }
                        }
                        Op::Complete(n) | Op::Release(n) | Op::Drop(n) if out.is_empty() => {
                            let _ = n;
                        }
                        Op::Complete(n) => {
                            let (_, delivery) = out.remove(n % out.len());
                            complete(&backend, delivery).await;
                        }
                        Op::Release(n) => {
                            let (model, delivery) = out.remove(n % out.len());
                            backend.release(vec![delivery]).await.unwrap();
                            // Given back: first in the queue.
                            waiting.insert(0, model);
                        }
                        Op::Drop(n) => {
                            drop(out.remove(n % out.len()));
                        }
                    }
                    prop_assert_eq!(backend.len(), waiting.len());
                }
                Ok(())
            })?;
        }
    }
}
