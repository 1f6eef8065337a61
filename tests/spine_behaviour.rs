//! Behaviour of the spine beyond the property tests: failure policies, timeouts, panics,
//! loops, concurrency and ordering keys, stopping and draining, configuration errors,
//! foreign JSON input and structured logs.

#[path = "common/probes.rs"]
mod probes;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use necrostack::backend::DeadLetterReason;
use necrostack::spine::BuildError;
use necrostack::{
    organ, AnyEnvelope, Backend, Envelope, Error, Event, FailureKind, FailurePolicy, RetryPolicy,
    Spine,
};
use probes::{quiet_expected_panics, runtime, A, B, C};
use serde::{Deserialize, Serialize};

#[derive(Debug)]
struct Flaky;

impl std::fmt::Display for Flaky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("flaky failure")
    }
}

impl std::error::Error for Flaky {}

/// Fails the first `failures` calls, then emits B.
struct FailsThenSucceeds {
    failures: usize,
    calls: AtomicUsize,
}

#[organ(listens_to = A)]
impl FailsThenSucceeds {
    fn handle(&self, a: &A) -> Result<B, Flaky> {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
            Err(Flaky)
        } else {
            Ok(B(a.0))
        }
    }
}

#[organ(listens_to = A)]
fn echo_c(a: &A) -> C {
    C(a.0)
}

fn fast_retry(attempts: u32) -> FailurePolicy {
    FailurePolicy::Retry(
        RetryPolicy::new(attempts).backoff(Duration::from_millis(1), Duration::from_millis(2)),
    )
}

#[test]
fn retry_runs_the_organ_again_until_it_succeeds() {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&failures);
    let spine = Spine::builder()
        .organ(FailsThenSucceeds {
            failures: 2,
            calls: AtomicUsize::new(0),
        })
        .failure_policy(fast_retry(3))
        .on_failure(move |f| seen.lock().unwrap().push(f.clone()))
        .build()
        .unwrap();
    let report = runtime().block_on(async {
        spine.emit(A(1)).await.unwrap();
        spine.run_until_idle().await.unwrap()
    });
    assert_eq!(
        (
            report.retried,
            report.failed,
            report.succeeded,
            report.emitted
        ),
        (2, 0, 1, 1)
    );
    assert!(failures.lock().unwrap().is_empty());
    assert!(spine.backend().dead_letters().is_empty());
}

#[test]
fn exhausted_retries_dead_letter_the_event_and_other_organs_still_run() {
    let spine = Spine::builder()
        .organ(FailsThenSucceeds {
            failures: 10,
            calls: AtomicUsize::new(0),
        })
        .organ(echo_c)
        .failure_policy(fast_retry(3))
        .build()
        .unwrap();
    let (report, id) = runtime().block_on(async {
        let id = spine.emit(A(5)).await.unwrap();
        (spine.run_until_idle().await.unwrap(), id)
    });
    assert_eq!(
        (report.retried, report.failed, report.dead_lettered),
        (2, 1, 1)
    );
    assert_eq!(report.emitted, 1, "echo_c still ran and emitted");
    let dead = spine.backend().dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.id(), id);
    assert_eq!(dead[0].envelope.downcast_ref::<A>(), Some(&A(5)));
    assert_eq!(
        dead[0].reason,
        DeadLetterReason::HandlerFailed {
            organ: "FailsThenSucceeds".into(),
            error: "flaky failure".into(),
            attempts: 3
        }
    );
}

#[test]
fn the_dead_letter_policy_moves_the_event_at_once() {
    let spine = Spine::builder()
        .organ(FailsThenSucceeds {
            failures: 1,
            calls: AtomicUsize::new(0),
        })
        .failure_policy(FailurePolicy::DeadLetter)
        .build()
        .unwrap();
    let report = runtime().block_on(async {
        spine.emit(A(1)).await.unwrap();
        spine.emit(A(2)).await.unwrap();
        spine.run_until_idle().await.unwrap()
    });
    assert_eq!(
        (report.failed, report.dead_lettered, report.succeeded),
        (1, 1, 1)
    );
    let dead = spine.backend().take_dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].envelope.downcast_ref::<A>(), Some(&A(1)));
    assert!(dead[0]
        .reason
        .to_string()
        .contains("FailsThenSucceeds failed after 1 attempt"));
}

#[organ(listens_to = A)]
async fn sleepy(a: A) -> B {
    tokio::time::sleep(Duration::from_secs(30)).await;
    B(a.0)
}

#[test]
fn a_handler_past_its_timeout_fails_without_stopping_the_spine() {
    let kinds = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&kinds);
    let spine = Spine::builder()
        .organ(sleepy)
        .organ(echo_c)
        .handler_timeout(Duration::from_millis(20))
        .on_failure(move |f| seen.lock().unwrap().push((f.kind, f.organ)))
        .build()
        .unwrap();
    let report = runtime().block_on(async {
        spine.emit(A(1)).await.unwrap();
        spine.run_until_idle().await.unwrap()
    });
    assert_eq!((report.failed, report.succeeded, report.emitted), (1, 1, 1));
    assert_eq!(*kinds.lock().unwrap(), [(FailureKind::Timeout, "sleepy")]);
}

#[organ(listens_to = B)]
fn explode(_: &B) {
    panic!("explode on purpose")
}

#[test]
fn a_panic_is_caught_and_reported_as_a_failure() {
    quiet_expected_panics();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&errors);
    let spine = Spine::builder()
        .organ(explode)
        .on_failure(move |f| seen.lock().unwrap().push((f.kind, f.error.clone())))
        .build()
        .unwrap();
    let report = runtime().block_on(async {
        spine.emit(B(1)).await.unwrap();
        spine.emit(B(2)).await.unwrap();
        spine.run_until_idle().await.unwrap()
    });
    assert_eq!((report.steps, report.failed), (2, 2));
    let errors = errors.lock().unwrap();
    assert_eq!(
        errors[0],
        (
            FailureKind::Panic,
            "panicked: explode on purpose".to_owned()
        )
    );
}

#[organ(listens_to = C)]
fn forever(c: &C) -> C {
    C(c.0 + 1)
}

#[test]
fn the_depth_limit_dead_letters_a_probable_loop_and_the_run_goes_on() {
    let spine = Spine::builder()
        .organ(forever)
        .depth_limit(5)
        .build()
        .unwrap();
    let report = runtime().block_on(async {
        spine.emit(C(0)).await.unwrap();
        spine.run_until_idle().await.unwrap()
    });
    // Depths 0..=5 are handled; the event at depth 6 is dead-lettered.
    assert_eq!(
        (report.steps, report.succeeded, report.dead_lettered),
        (7, 6, 1)
    );
    let dead = spine.backend().dead_letters();
    assert_eq!(
        dead[0].reason,
        DeadLetterReason::ProbableLoop { depth: 6, limit: 5 }
    );
    assert_eq!(dead[0].envelope.downcast_ref::<C>(), Some(&C(6)));
}

/// Records how many handlings overlap.
#[derive(Default)]
struct Overlap {
    now: AtomicUsize,
    max: AtomicUsize,
    order: Mutex<Vec<(u32, u32)>>,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Keyed {
    key: u32,
    seq: u32,
}

struct Tracker(Arc<Overlap>);

#[organ(listens_to = Keyed)]
impl Tracker {
    async fn handle(&self, event: &Keyed) {
        let now = self.0.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.max.fetch_max(now, Ordering::SeqCst);
        // Later events sleep less, so without ordering they would overtake earlier ones.
        tokio::time::sleep(Duration::from_millis(u64::from(20 - event.seq % 20))).await;
        self.0.order.lock().unwrap().push((event.key, event.seq));
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn concurrency_lets_several_events_be_in_flight() {
    let overlap = Arc::new(Overlap::default());
    let spine = Spine::builder()
        .organ(Tracker(Arc::clone(&overlap)))
        .concurrency(4)
        .build()
        .unwrap();
    let report = runtime().block_on(async {
        spine
            .emit_all((0..12).map(|seq| Keyed { key: seq, seq }))
            .await
            .unwrap();
        spine.run_until_idle().await.unwrap()
    });
    assert_eq!(report.succeeded, 12);
    assert_eq!(overlap.max.load(Ordering::SeqCst), 4);
}

#[test]
fn an_order_key_keeps_events_with_the_same_key_in_order() {
    let overlap = Arc::new(Overlap::default());
    let spine = Spine::builder()
        .organ(Tracker(Arc::clone(&overlap)))
        .concurrency(4)
        .order_key::<Keyed, _>(|event| event.key)
        .build()
        .unwrap();
    runtime().block_on(async {
        spine
            .emit_all((0..16).map(|seq| Keyed { key: seq % 2, seq }))
            .await
            .unwrap();
        spine.run_until_idle().await.unwrap()
    });
    let order = overlap.order.lock().unwrap();
    assert_eq!(order.len(), 16);
    for key in 0..2 {
        let seqs: Vec<u32> = order
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, s)| *s)
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs, sorted, "key {key} handled out of order");
    }
    assert_eq!(
        overlap.max.load(Ordering::SeqCst),
        2,
        "one in flight per key, two keys"
    );
}

struct CountC(Arc<AtomicUsize>);

#[organ(listens_to = C)]
impl CountC {
    fn handle(&self, _: &C) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn run_serves_until_stopped_then_drains_and_is_not_bounded_by_the_default_max_steps() {
    let counted = Arc::new(AtomicUsize::new(0));
    let spine = Spine::builder()
        .organ(echo_c)
        .organ(CountC(Arc::clone(&counted)))
        .concurrency(2)
        .build()
        .unwrap();
    let report = runtime().block_on(async {
        spine.emit_all((0..10_050).map(A)).await.unwrap();
        let server = spine.clone();
        let task = tokio::spawn(async move { server.run().await });
        while counted.load(Ordering::SeqCst) < 10_050 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        spine.stop_handle().stop();
        task.await.unwrap()
    });
    let report = report.unwrap();
    assert_eq!(report.steps, 20_100);
    assert_eq!((report.succeeded, report.emitted), (20_100, 10_050));
}

#[test]
fn stopping_gives_unstarted_events_back_and_finishes_those_in_flight() {
    let overlap = Arc::new(Overlap::default());
    let spine = Spine::builder()
        .organ(Tracker(Arc::clone(&overlap)))
        .concurrency(2)
        .build()
        .unwrap();
    let report = runtime().block_on(async {
        spine
            .emit_all((0..40).map(|seq| Keyed { key: seq, seq }))
            .await
            .unwrap();
        let server = spine.clone();
        let task = tokio::spawn(async move { server.run().await });
        while overlap.order.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        spine.stop_handle().stop();
        task.await.unwrap().unwrap()
    });
    let handled = overlap.order.lock().unwrap().len();
    assert!(
        handled > 0 && handled < 40,
        "stopped midway, handled {handled}"
    );
    assert_eq!(report.succeeded, handled);
    assert_eq!(
        overlap.now.load(Ordering::SeqCst),
        0,
        "nothing left in flight"
    );
    assert_eq!(
        spine.backend().len(),
        40 - handled,
        "unstarted events are back in the queue"
    );
    // They are handled by the next run, in order.
    let rest = runtime().block_on(spine.run_until_idle()).unwrap();
    assert_eq!(rest.succeeded, 40 - handled);
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "SAME")]
struct First;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "SAME")]
struct Second;

#[organ(listens_to = First)]
fn on_first(_: &First) {}

#[organ(listens_to = Second)]
fn on_second(_: &Second) {}

#[test]
fn two_types_with_one_name_are_a_build_error() {
    let result = Spine::builder().organ(on_first).organ(on_second).build();
    match result {
        Err(Error::Build(BuildError::DuplicateEventName {
            name,
            first,
            second,
        })) => {
            assert_eq!(name, "SAME");
            assert!(first.ends_with("First") && second.ends_with("Second"));
        }
        other => panic!("expected a duplicate name error, got {:?}", other.err()),
    }
}

#[test]
fn zero_concurrency_is_a_build_error() {
    assert!(matches!(
        Spine::builder().concurrency(0).build(),
        Err(Error::Build(BuildError::Zero {
            setting: "concurrency"
        }))
    ));
}

#[test]
fn a_spine_without_organs_acknowledges_and_counts_events() {
    let spine = Spine::builder().build().unwrap();
    let report = runtime().block_on(async {
        spine.emit(A(1)).await.unwrap();
        spine.run_until_idle().await.unwrap()
    });
    assert_eq!((report.steps, report.unrouted), (1, 1));
}

#[organ(listens_to = A)]
fn lineage(a: &Envelope<A>) -> B {
    B(a.depth())
}

#[test]
fn json_from_other_producers_is_decoded_once_and_bad_payloads_are_dead_lettered() {
    let spine = Spine::builder()
        .organ(lineage)
        .organ(echo_c)
        .build()
        .unwrap();
    let good = Envelope::new(A(9)).to_json().unwrap();
    let mut bad: serde_json::Value = serde_json::from_slice(&good).unwrap();
    bad["payload"] = serde_json::json!("not a number");
    let bad_bytes = serde_json::to_vec(&bad).unwrap();
    let report = runtime().block_on(async {
        let good = AnyEnvelope::from_json(&good).unwrap();
        let bad = AnyEnvelope::from_json(&bad_bytes).unwrap();
        spine.backend().enqueue(vec![bad, good]).await.unwrap();
        spine.run_until_idle().await.unwrap()
    });
    assert_eq!(
        (report.dead_lettered, report.succeeded, report.emitted),
        (1, 2, 2)
    );
    let dead = spine.backend().dead_letters();
    assert!(
        matches!(&dead[0].reason, DeadLetterReason::Undecodable { error } if error.contains("does not decode"))
    );
}

#[test]
fn failures_are_logged_with_structured_fields() {
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(buffer.clone())
        .finish();
    let spine = Spine::builder()
        .organ(FailsThenSucceeds {
            failures: 1,
            calls: AtomicUsize::new(0),
        })
        .build()
        .unwrap();
    let id = tracing::subscriber::with_default(subscriber, || {
        runtime().block_on(async {
            let id = spine.emit(A(3)).await.unwrap();
            spine.run_until_idle().await.unwrap();
            id
        })
    });
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let line: serde_json::Value =
        serde_json::from_str(logs.lines().next().expect("a log line")).unwrap();
    let fields = &line["fields"];
    assert_eq!(fields["event_id"], id.to_string());
    assert_eq!(fields["correlation_id"], id.to_string());
    assert_eq!(fields["event_type"], "A");
    assert_eq!(fields["organ"], "FailsThenSucceeds");
    assert_eq!(fields["error"], "flaky failure");
}

#[test]
fn testing_helpers_call_one_organ_and_run_a_flow() {
    runtime().block_on(async {
        let emit = necrostack::testing::call(&echo_c, A(4)).await.unwrap();
        assert_eq!(emit.events::<C>().collect::<Vec<_>>(), [&C(4)]);

        let outcome = necrostack::testing::Flow::new()
            .organ(FailsThenSucceeds {
                failures: 1,
                calls: AtomicUsize::new(0),
            })
            .organ(echo_c)
            .emit(A(1))
            .emit(A(2))
            .run()
            .await
            .unwrap();
        assert_eq!(outcome.events::<B>(), [&B(2)]);
        assert_eq!(outcome.events::<C>(), [&C(1), &C(2)]);
        assert_eq!(outcome.failures().len(), 1);
        assert_eq!(outcome.failures()[0].organ, "FailsThenSucceeds");
    });
}

#[test]
fn public_types_debug_without_leaking_internals() {
    let spine = Spine::builder()
        .organ(echo_c)
        .concurrency(3)
        .build()
        .unwrap();
    let text = format!("{spine:?}");
    assert!(text.contains("routed_event_types: [\"A\"]"), "{text}");
    assert!(text.contains("concurrency: 3"), "{text}");
    let backend = format!("{:?}", spine.backend());
    assert!(
        backend.contains("pending: 0") && backend.contains("closed: false"),
        "{backend}"
    );
    assert_eq!(
        format!("{:?}", spine.stop_handle()),
        "StopHandle { requested: false }"
    );
}

/// An error of the user's own whose source marks it permanent.
#[derive(Debug)]
struct Declined(necrostack::Permanent);

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}

impl std::error::Error for Declined {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Fails permanently, through its own error type, on A(1).
struct Charger;

#[organ(listens_to = A)]
impl Charger {
    fn handle(&self, a: &A) -> Result<B, Declined> {
        if a.0 == 1 {
            return Err(Declined(necrostack::Permanent::new("insufficient funds")));
        }
        Ok(B(a.0))
    }
}

#[organ(listens_to = C)]
fn strict(c: &C) -> Result<(), necrostack::Permanent> {
    Err(necrostack::Permanent::new(format!(
        "no such account {}",
        c.0
    )))
}

#[test]
fn permanent_errors_are_not_retried_but_dead_lettered_at_once() {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&failures);
    let spine = Spine::builder()
        .organ(Charger)
        .organ(strict)
        .failure_policy(fast_retry(5))
        .on_failure(move |f| {
            seen.lock()
                .unwrap()
                .push((f.organ, f.kind, f.attempts, f.error.clone()))
        })
        .build()
        .unwrap();
    let report = runtime().block_on(async {
        spine.emit(A(1)).await.unwrap();
        spine.emit(C(7)).await.unwrap();
        spine.run_until_idle().await.unwrap()
    });
    assert_eq!(
        (report.retried, report.failed, report.dead_lettered),
        (0, 2, 2)
    );
    assert_eq!(
        *failures.lock().unwrap(),
        [
            (
                "Charger",
                FailureKind::Permanent,
                1,
                "card declined: insufficient funds".to_owned()
            ),
            (
                "strict",
                FailureKind::Permanent,
                1,
                "no such account 7".to_owned()
            ),
        ]
    );
    let dead = spine.backend().dead_letters();
    assert_eq!(
        dead[1].reason,
        DeadLetterReason::HandlerFailed {
            organ: "strict".into(),
            error: "no such account 7".into(),
            attempts: 1
        }
    );
}
