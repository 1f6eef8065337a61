//! Property tests of the spine's routing, ordering, return processing, failure
//! containment and step bound (issue 2, properties 4–8).

#[path = "common/probes.rs"]
mod probes;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use necrostack::{organ, Emit, Error, Event, FailurePolicy, Spine, SpineBuilder};
use probes::{quiet_expected_panics, runtime, Behavior, Log, Probe, A, B, C, D};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

const TYPES: [&str; 4] = ["A", "B", "C", "D"];

fn register(
    builder: SpineBuilder,
    id: usize,
    listens: usize,
    behavior: Behavior,
    log: &Log,
) -> SpineBuilder {
    match listens {
        0 => builder.organ(Probe::<A>::new(id, log, behavior)),
        1 => builder.organ(Probe::<B>::new(id, log, behavior)),
        2 => builder.organ(Probe::<C>::new(id, log, behavior)),
        _ => builder.organ(Probe::<D>::new(id, log, behavior)),
    }
}

async fn emit_typed(spine: &Spine, kind: usize, seq: u32) {
    match kind {
        0 => spine.emit(A(seq)).await.unwrap(),
        1 => spine.emit(B(seq)).await.unwrap(),
        2 => spine.emit(C(seq)).await.unwrap(),
        _ => spine.emit(D(seq)).await.unwrap(),
    };
}

fn behavior() -> impl Strategy<Value = Behavior> {
    prop_oneof![
        Just(Behavior::Ok),
        Just(Behavior::AsyncOk),
        Just(Behavior::Fail),
        Just(Behavior::AsyncFail),
        Just(Behavior::Panic),
        Just(Behavior::AsyncPanic),
    ]
}

/// Runs `organs` (listened type, behaviour) on `events` (type index per event) and returns
/// the call log and the report.
fn run_probes(
    organs: &[(usize, Behavior)],
    events: &[usize],
    concurrency: usize,
) -> (Vec<(usize, &'static str, u32)>, necrostack::RunReport) {
    let log: Log = Arc::default();
    let mut builder = Spine::builder().concurrency(concurrency);
    for (id, (listens, behavior)) in organs.iter().enumerate() {
        builder = register(builder, id, *listens, *behavior, &log);
    }
    let spine = builder.build().unwrap();
    let report = runtime().block_on(async {
        for (seq, kind) in events.iter().enumerate() {
            emit_typed(&spine, *kind, seq as u32).await;
        }
        spine.run_until_idle().await.unwrap()
    });
    let calls = log.lock().unwrap().clone();
    (calls, report)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Property 4 (routing) and 6 (registration order): every event reaches exactly the
    /// organs listening to its type, in registration order, and events are handled in
    /// FIFO order.
    #[test]
    fn each_event_reaches_exactly_its_listeners_in_registration_order(
        organs in prop::collection::vec(0usize..4, 0..8),
        events in prop::collection::vec(0usize..4, 0..40),
    ) {
        let organs: Vec<_> = organs.into_iter().map(|l| (l, Behavior::Ok)).collect();
        let (calls, report) = run_probes(&organs, &events, 1);

        let mut expected = Vec::new();
        for (seq, kind) in events.iter().enumerate() {
            for (id, (listens, _)) in organs.iter().enumerate() {
                if listens == kind {
                    expected.push((id, TYPES[*kind], seq as u32));
                }
            }
        }
        prop_assert_eq!(calls, expected);
        prop_assert_eq!(report.steps, events.len());
        let unrouted = events.iter().filter(|k| !organs.iter().any(|(l, _)| l == *k)).count();
        prop_assert_eq!(report.unrouted, unrouted);
    }

    /// Property 6 under concurrency: events may interleave, but the organs of one event
    /// still run in registration order and every event reaches every listener.
    #[test]
    fn organs_of_one_event_run_in_registration_order_under_concurrency(
        organs in prop::collection::vec((0usize..4, prop_oneof![Just(Behavior::Ok), Just(Behavior::AsyncOk)]), 1..8),
        events in prop::collection::vec(0usize..4, 1..30),
        concurrency in 2usize..6,
    ) {
        let (calls, _) = run_probes(&organs, &events, concurrency);
        for (seq, kind) in events.iter().enumerate() {
            let seen: Vec<usize> = calls
                .iter()
                .filter(|(_, ty, s)| *s == seq as u32 && *ty == TYPES[*kind])
                .map(|(id, _, _)| *id)
                .collect();
            let listeners: Vec<usize> = organs
                .iter()
                .enumerate()
                .filter(|(_, (l, _))| l == kind)
                .map(|(id, _)| id)
                .collect();
            prop_assert_eq!(seen, listeners);
        }
    }

    /// Property 7: failing and panicking organs (sync or async) never stop the others or
    /// the run; each failure is counted once.
    #[test]
    fn failing_or_panicking_organs_never_stop_the_others(
        organs in prop::collection::vec((0usize..4, behavior()), 1..8),
        events in prop::collection::vec(0usize..4, 1..30),
    ) {
        quiet_expected_panics();
        let (calls, report) = run_probes(&organs, &events, 1);
        let mut expected_calls = 0usize;
        let mut expected_failures = 0usize;
        for kind in &events {
            for (listens, behavior) in &organs {
                if listens == kind {
                    expected_calls += 1;
                    expected_failures += usize::from(behavior.fails());
                }
            }
        }
        prop_assert_eq!(calls.len(), expected_calls);
        prop_assert_eq!(report.failed, expected_failures);
        prop_assert_eq!(report.succeeded, expected_calls - expected_failures);
        prop_assert_eq!(report.steps, events.len());
    }
}

// ---- Property 5: return processing ----------------------------------------------------

/// What the shaping organ returns for one input, by shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
enum Out {
    B(u32),
    C(u32),
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Shape {
    outputs: Vec<Out>,
}

#[organ(listens_to = Shape)]
fn shaper(shape: &Shape) -> Emit {
    let mut emit = Emit::new();
    for out in &shape.outputs {
        match out {
            Out::B(n) => emit.push(B(*n)),
            Out::C(n) => emit.push(C(*n)),
        }
    }
    emit
}

#[organ(listens_to = Shape)]
fn only_bs(shape: &Shape) -> Vec<B> {
    shape
        .outputs
        .iter()
        .filter_map(|o| match o {
            Out::B(n) => Some(B(*n)),
            Out::C(_) => None,
        })
        .collect()
}

#[organ(listens_to = Shape)]
fn first_c(shape: Shape) -> Option<C> {
    shape.outputs.iter().find_map(|o| match o {
        Out::C(n) => Some(C(*n)),
        Out::B(_) => None,
    })
}

#[organ(listens_to = Shape)]
async fn pair(shape: necrostack::Envelope<Shape>) -> Result<(D, Option<A>), std::io::Error> {
    Ok((D(shape.outputs.len() as u32), None))
}

fn out() -> impl Strategy<Value = Out> {
    prop_oneof![(0u32..1000).prop_map(Out::B), (0u32..1000).prop_map(Out::C)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Property 5: generated return shapes (nothing, one, many, mixed) enqueue exactly
    /// those events, in order, with lineage set.
    #[test]
    fn returned_events_are_enqueued_in_order_with_lineage(
        inputs in prop::collection::vec(prop::collection::vec(out(), 0..6), 1..5),
    ) {
        let flow = necrostack::testing::Flow::new()
            .organ(shaper)
            .organ(only_bs)
            .organ(first_c)
            .organ(pair);
        let flow = inputs
            .iter()
            .fold(flow, |flow, outputs| flow.emit(Shape { outputs: outputs.clone() }));
        let outcome = runtime().block_on(flow.run()).unwrap();

        // Expected: for each input in FIFO order, each organ in registration order.
        let mut expected: Vec<(&'static str, u32)> = Vec::new();
        for outputs in &inputs {
            for o in outputs {
                expected.push(match o { Out::B(n) => ("B", *n), Out::C(n) => ("C", *n) });
            }
            for o in outputs {
                if let Out::B(n) = o { expected.push(("B", *n)); }
            }
            if let Some(n) = outputs.iter().find_map(|o| match o { Out::C(n) => Some(*n), Out::B(_) => None }) {
                expected.push(("C", n));
            }
            expected.push(("D", outputs.len() as u32));
        }
        let emitted: Vec<(&str, u32)> = outcome
            .emitted()
            .iter()
            .map(|e| {
                let n = e.downcast_ref::<B>().map(|b| b.0)
                    .or_else(|| e.downcast_ref::<C>().map(|c| c.0))
                    .or_else(|| e.downcast_ref::<D>().map(|d| d.0))
                    .unwrap();
                (match e.event_type() { "B" => "B", "C" => "C", _ => "D" }, n)
            })
            .collect();
        prop_assert_eq!(&emitted, &expected);

        // Lineage: every emitted event was caused by a root Shape event, shares its
        // correlation id, and sits one hop below it.
        let mut roots = HashMap::new();
        for e in outcome.emitted() {
            prop_assert_eq!(e.depth(), 1);
            let cause = e.causation_id().unwrap();
            prop_assert_eq!(e.correlation_id(), cause);
            *roots.entry(cause).or_insert(0usize) += 1;
            prop_assert!(e.id() != cause);
        }
        prop_assert_eq!(roots.len(), inputs.len());
        prop_assert_eq!(outcome.report.emitted, expected.len());
    }
}

// ---- Property 8: max_steps ------------------------------------------------------------

#[organ(listens_to = A)]
fn a_to_b(a: &A) -> B {
    B(a.0 + 1)
}

#[organ(listens_to = B)]
fn b_to_a(b: &B) -> A {
    A(b.0 + 1)
}

#[organ(listens_to = C)]
fn c_to_c(c: &C) -> C {
    C(c.0 + 1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Property 8: cyclic flows stop with MaxStepsExceeded after exactly max_steps steps;
    /// the event that would have been the next step is given back, not lost.
    #[test]
    fn cyclic_flows_stop_after_exactly_max_steps(max_steps in 1usize..300, two_cycle in any::<bool>()) {
        let calls = Arc::new(Mutex::new(0u64));
        let counted = Arc::clone(&calls);
        let log: Log = Arc::default();
        let spine = if two_cycle {
            Spine::builder().organ(a_to_b).organ(b_to_a).organ(Probe::<A>::new(0, &log, Behavior::Ok)).organ(Probe::<B>::new(1, &log, Behavior::Ok))
        } else {
            Spine::builder().organ(c_to_c).organ(Probe::<C>::new(0, &log, Behavior::Ok))
        }
        .max_steps(max_steps)
        .on_failure(move |_| *counted.lock().unwrap() += 1)
        .build()
        .unwrap();
        let result = runtime().block_on(async {
            if two_cycle { spine.emit(A(0)).await.unwrap(); } else { spine.emit(C(0)).await.unwrap(); }
            spine.run_until_idle().await
        });
        match result {
            Err(Error::MaxStepsExceeded { max_steps: reported }) => prop_assert_eq!(reported, max_steps),
            other => prop_assert!(false, "expected MaxStepsExceeded, got {:?}", other),
        }
        prop_assert_eq!(log.lock().unwrap().len(), max_steps);
        prop_assert_eq!(*calls.lock().unwrap(), 0);
        prop_assert_eq!(spine.backend().len(), 1, "the next event must be back in the queue");
    }

    /// A run of exactly max_steps steps succeeds.
    #[test]
    fn a_run_of_exactly_max_steps_succeeds(events in 0usize..200) {
        let spine = Spine::builder().organ(Probe::<D>::new(0, &Log::default(), Behavior::Ok)).max_steps(events).build().unwrap();
        let report = runtime().block_on(async {
            spine.emit_all((0..events as u32).map(D)).await.unwrap();
            spine.run_until_idle().await
        }).unwrap();
        prop_assert_eq!(report.steps, events);
    }
}

#[test]
fn max_steps_applies_per_run_and_a_spine_runs_again() {
    let spine = Spine::builder()
        .organ(Probe::<D>::new(0, &Log::default(), Behavior::Ok))
        .max_steps(5)
        .build()
        .unwrap();
    runtime().block_on(async {
        spine.emit_all((0..8).map(D)).await.unwrap();
        assert!(matches!(
            spine.run_until_idle().await,
            Err(Error::MaxStepsExceeded { max_steps: 5 })
        ));
        let second = spine.run_until_idle().await.expect("second run");
        assert_eq!(
            second.steps, 3,
            "each report covers one run; nothing was lost"
        );
    });
}

#[test]
fn the_default_failure_policy_is_log_and_continue() {
    assert_eq!(FailurePolicy::default(), FailurePolicy::LogAndContinue);
}
