//! Edges of the spine that the mutation check found untested: a retry addressed to an
//! organ this spine does not have, and a depth limit given as `Option<u32>`.

use necrostack::{organ, AnyEnvelope, Backend, DeadLetterReason, Error, Event, Spine};
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
