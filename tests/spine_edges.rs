//! Edges of the spine that the mutation check found untested: a retry addressed to an
//! organ this spine does not have, a depth limit given as `Option<u32>`, how far the run
//! loop reads ahead of its handlings, and what runs when the step bound is reached.

use necrostack::{organ, AnyEnvelope, Backend, DeadLetterReason, Envelope, Error, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "edges.Ping")]
struct Ping {
    n: u32,
}

#[organ(listens_to = Ping)]
fn real(_: &Ping) {}

#[organ(listens_to = Ping)]
fn echo(ping: &Ping) -> Ping {
    ping.clone() // a loop
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_retry_for_an_organ_this_spine_lacks_is_acknowledged_as_unrouted() {
    runtime().block_on(async {
        let spine = Spine::builder().organ(real).build().unwrap();
        let retry = AnyEnvelope::from_json_value(serde_json::json!({
            "id": "0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
            "timestamp": "2026-12-01T10:00:00Z",
            "event_type": "edges.Ping",
            "payload": {"n": 1},
            "correlation_id": "0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
            "causation_id": null,
            "depth": 0,
            "attempt": 2,
            "organ": "ghost"
        }))
        .unwrap();
        spine.backend().enqueue(vec![retry]).await.unwrap();
        let report = spine.run_until_idle().await.unwrap();
        assert_eq!((report.steps, report.unrouted), (1, 1));
        assert_eq!(
            (report.succeeded, report.failed, report.dead_lettered),
            (0, 0, 0)
        );
        assert!(spine.backend().dead_letters().is_empty());
    });
}

#[test]
fn a_depth_limit_given_as_an_option_is_the_same_limit_and_none_switches_it_off() {
    runtime().block_on(async {
        let limited = Spine::builder()
            .organ(echo)
            .depth_limit(Some(3))
            .build()
            .unwrap();
        limited.emit(Ping { n: 0 }).await.unwrap();
        let report = limited.run_until_idle().await.unwrap();
        assert_eq!((report.steps, report.dead_lettered), (5, 1));
        let reason = &limited.backend().dead_letters()[0].reason;
        assert_eq!(
            reason,
            &DeadLetterReason::ProbableLoop { depth: 4, limit: 3 }
        );

        let unlimited = Spine::builder()
            .organ(echo)
            .depth_limit(None)
            .max_steps(50)
            .build()
            .unwrap();
        unlimited.emit(Ping { n: 0 }).await.unwrap();
        let error = unlimited.run_until_idle().await.unwrap_err();
        assert!(
            matches!(error, Error::MaxStepsExceeded { max_steps: 50 }),
            "{error}"
        );
        assert!(unlimited.backend().dead_letters().is_empty());
    });
}

#[organ(listens_to = Ping)]
fn refuse(_: &Ping) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("no"))
}

#[test]
fn log_and_continue_writes_no_dead_letter() {
    runtime().block_on(async {
        let spine = Spine::builder().organ(refuse).build().unwrap();
        spine.emit(Ping { n: 1 }).await.unwrap();
        let report = spine.run_until_idle().await.unwrap();
        assert_eq!(
            (report.failed, report.dead_lettered, report.retried),
            (1, 0, 0)
        );
        assert!(spine.backend().dead_letters().is_empty());
    });
}

/// An organ that blocks until the test opens its gate, counting the handlings begun.
struct Gated {
    gate: std::sync::Arc<tokio::sync::Semaphore>,
    begun: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[organ(listens_to = Ping)]
impl Gated {
    async fn handle(&self, _: &Ping) -> Result<(), std::io::Error> {
        self.begun.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let permit = self.gate.acquire().await.map_err(std::io::Error::other)?;
        permit.forget();
        Ok(())
    }
}

/// Runs 100 `Ping`s (all under one ordering key when `one_key`) through a spine with
/// concurrency 4 and batches of 2 whose organ blocks; once `in_flight` handlings have
/// begun and the loop had time to read ahead, returns how many events the backend still
/// holds, then opens the gate and checks that all 100 succeed.
async fn unpulled_while_blocked(one_key: bool, in_flight: usize) -> usize {
    use std::sync::atomic::Ordering;
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let begun = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut builder = Spine::builder()
        .organ(Gated {
            gate: std::sync::Arc::clone(&gate),
            begun: std::sync::Arc::clone(&begun),
        })
        .concurrency(4)
        .batch_size(2);
    if one_key {
        builder = builder.order_key(|_: &Ping| 0_u8);
    }
    let spine = builder.build().unwrap();
    // Straight into the backend, not through the spine, so the events carry no partition
    // key: the backend hands them out freely and the spine's ordering key alone holds
    // them back.
    let events = (0..100).map(|n| Envelope::new(Ping { n }).into()).collect();
    spine.backend().enqueue(events).await.unwrap();
    let running = tokio::spawn({
        let spine = spine.clone();
        async move { spine.run_until_idle().await }
    });
    while begun.load(Ordering::SeqCst) < in_flight {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let unpulled = spine.backend().len();
    assert_eq!(begun.load(Ordering::SeqCst), in_flight, "no more may begin");
    gate.add_permits(1000);
    let report = running.await.unwrap().unwrap();
    assert_eq!(report.succeeded, 100);
    unpulled
}

#[test]
fn the_loop_reads_ahead_one_batch_beyond_a_full_set_of_handlings_and_no_more() {
    runtime().block_on(async {
        // 4 in flight (the concurrency), 2 read ahead (one batch), the rest not pulled:
        // a backend's events stay where other workers can take them.
        assert_eq!(unpulled_while_blocked(false, 4).await, 100 - 4 - 2);
    });
}

#[test]
fn events_waiting_on_a_busy_key_fill_the_buffer_up_to_the_concurrency() {
    runtime().block_on(async {
        // One key: one in flight; the others wait in the buffer, which is filled a batch
        // at a time until it holds at least the concurrency (4): 1 + 2 + 2 = 5 buffered.
        assert_eq!(unpulled_while_blocked(true, 1).await, 100 - 1 - 5);
    });
}

/// Counts its handlings; each takes a little while, so that several are in flight.
struct Counted {
    handled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[organ(listens_to = Ping)]
impl Counted {
    async fn handle(&self, _: &Ping) -> Result<(), std::io::Error> {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.handled
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn events_pulled_before_the_step_bound_is_reached_still_run() {
    runtime().block_on(async {
        let handled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let spine = Spine::builder()
            .organ(Counted {
                handled: std::sync::Arc::clone(&handled),
            })
            .concurrency(4)
            .batch_size(4)
            .max_steps(5)
            .build()
            .unwrap();
        spine.emit_all((0..10).map(|n| Ping { n })).await.unwrap();
        // Four start; while they run, the loop pulls two more: the fifth is counted as a
        // step and waits in the buffer for a free slot, the sixth is past the bound and
        // goes back to the backend. The run fails, but the fifth still runs.
        let error = spine.run_until_idle().await.unwrap_err();
        assert!(
            matches!(error, Error::MaxStepsExceeded { max_steps: 5 }),
            "{error}"
        );
        assert_eq!(handled.load(std::sync::atomic::Ordering::SeqCst), 5);
        assert_eq!(spine.backend().len(), 5);
    });
}
