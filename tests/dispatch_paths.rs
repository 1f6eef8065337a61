//! The two ways the spine runs the organs of an event: all at once when every organ is
//! sync, or continued in a future from the first organ that must be awaited. Both must
//! keep registration order, lineage and the envelope's identity; and an event emitted
//! twice (a cloned `Emit`) must get two envelopes of its own.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use necrostack::{organ, Emit, Envelope, Event, FailurePolicy, Spine, Uuid};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Start(u32);

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Step(String);

/// What an organ saw: its name, the event id, its correlation and causation.
type Seen = Arc<Mutex<Vec<(String, Uuid, Uuid, Option<Uuid>)>>>;

struct SyncStep {
    name: &'static str,
    seen: Seen,
}

#[organ(listens_to = Start)]
impl SyncStep {
    fn handle(&self, start: &Envelope<Start>) -> Step {
        self.seen.lock().unwrap().push((
            self.name.to_owned(),
            start.id(),
            start.correlation_id(),
            start.causation_id(),
        ));
        Step(format!("{}:{}", self.name, start.0))
    }
}

struct AsyncStep {
    name: &'static str,
    seen: Seen,
}

#[organ(listens_to = Start)]
impl AsyncStep {
    async fn handle(&self, start: &Envelope<Start>) -> Step {
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.seen.lock().unwrap().push((
            self.name.to_owned(),
            start.id(),
            start.correlation_id(),
            start.causation_id(),
        ));
        Step(format!("{}:{}", self.name, start.0))
    }
}

/// What the step log saw: the text, the event id, its causation.
type Steps = Arc<Mutex<Vec<(String, Uuid, Option<Uuid>)>>>;

/// Records every `Step` with its envelope's identity.
struct StepLog {
    seen: Steps,
}

#[organ(listens_to = Step)]
impl StepLog {
    fn handle(&self, step: &Envelope<Step>) {
        self.seen
            .lock()
            .unwrap()
            .push((step.0.clone(), step.id(), step.causation_id()));
    }
}

#[tokio::test]
async fn sync_then_async_then_sync_organs_run_in_order_with_lineage() {
    let seen: Seen = Arc::default();
    let steps = Arc::default();
    let spine = Spine::builder()
        .organ(SyncStep {
            name: "first",
            seen: seen.clone(),
        })
        .organ(AsyncStep {
            name: "second",
            seen: seen.clone(),
        })
        .organ(SyncStep {
            name: "third",
            seen: seen.clone(),
        })
        .organ(StepLog {
            seen: Arc::clone(&steps),
        })
        .build()
        .unwrap();
    let root = spine.emit(Start(7)).await.unwrap();
    let report = spine.run_until_idle().await.unwrap();
    assert_eq!((report.steps, report.succeeded, report.failed), (4, 6, 0));

    let seen = seen.lock().unwrap().clone();
    let names: Vec<&str> = seen.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, ["first", "second", "third"]);
    for (_, id, correlation, causation) in &seen {
        assert_eq!((*id, *correlation, *causation), (root, root, None));
    }
    let steps = steps.lock().unwrap().clone();
    let texts: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(texts, ["first:7", "second:7", "third:7"]);
    for (_, id, causation) in &steps {
        assert_eq!(*causation, Some(root));
        assert_ne!(*id, root);
    }
    let mut ids: Vec<Uuid> = steps.iter().map(|s| s.1).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "every emitted event has its own id");
}

/// Returns the same `Emit` (one `Step`) for every `Start`, cloned.
struct Repeater {
    emit: Emit,
}

#[organ(listens_to = Start)]
impl Repeater {
    fn handle(&self, _: &Start) -> Emit {
        self.emit.clone()
    }
}

#[tokio::test]
async fn a_cloned_emit_enqueued_twice_gives_two_envelopes_with_their_own_identity() {
    let steps = Arc::default();
    let spine = Spine::builder()
        .organ(Repeater {
            emit: Emit::new().with(Step("again".into())),
        })
        .organ(StepLog {
            seen: Arc::clone(&steps),
        })
        .build()
        .unwrap();
    let first = spine.emit(Start(1)).await.unwrap();
    let second = spine.emit(Start(2)).await.unwrap();
    let report = spine.run_until_idle().await.unwrap();
    assert_eq!((report.steps, report.failed), (4, 0));

    let steps = steps.lock().unwrap().clone();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].0, "again");
    assert_eq!(steps[1].0, "again");
    assert_eq!(
        steps[0].2,
        Some(first),
        "the organ sees the first envelope's lineage"
    );
    assert_eq!(
        steps[1].2,
        Some(second),
        "the organ sees the second envelope's lineage"
    );
    assert_ne!(steps[0].1, steps[1].1);
}

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

impl std::error::Error for Refused {}

#[organ(listens_to = Start)]
fn refuse(_: &Start) -> Result<(), Refused> {
    Err(Refused)
}

#[tokio::test]
async fn a_dead_letter_from_the_sync_path_keeps_the_event_and_its_identity() {
    let spine = Spine::builder()
        .organ(refuse)
        .failure_policy(FailurePolicy::DeadLetter)
        .build()
        .unwrap();
    let id = spine.emit(Start(3)).await.unwrap();
    let report = spine.run_until_idle().await.unwrap();
    assert_eq!((report.failed, report.dead_lettered), (1, 1));

    let dead = spine.backend().take_dead_letters();
    assert_eq!(dead.len(), 1);
    let envelope = dead[0].envelope.clone();
    assert_eq!(envelope.id(), id);
    assert_eq!(envelope.downcast_ref::<Start>(), Some(&Start(3)));
    let json = envelope.to_json().unwrap();
    let back = Envelope::<Start>::from_json(&json).unwrap();
    assert_eq!((back.id(), back.payload()), (id, &Start(3)));
    let typed = envelope.decode::<Start>().unwrap();
    assert_eq!((typed.id(), typed.into_payload()), (id, Start(3)));
}
