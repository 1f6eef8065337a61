//! The flow as a graph: what `#[organ]` says each organ emits (found from the return type,
//! or from `emits = [..]` for `Emit`), `Spine::topology()`, its Mermaid text, and
//! `strict_topology()`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use necrostack::error::{BuildError, Error, TopologyProblem};
use necrostack::topology::Emits;
use necrostack::{organ, Delayed, Emit, Envelope, Event, Handling, Organ, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Start;
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "billing.charged")]
struct Charged;
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Refused;
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Later;
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Done;

#[organ(listens_to = Start)]
fn nothing(_: &Start) {}

#[organ(listens_to = Start)]
fn unit_in_result(_: &Start) -> Result<(), std::io::Error> {
    Ok(())
}

#[organ(listens_to = Start)]
fn one(_: &Start) -> Charged {
    Charged
}

#[organ(listens_to = Start)]
fn maybe(_: Envelope<Start>) -> Option<Charged> {
    None
}

#[organ(listens_to = Start)]
async fn many(_: &Envelope<Start>) -> Vec<Refused> {
    Vec::new()
}

#[organ(listens_to = Start)]
fn delayed(_: Start) -> Delayed<Later> {
    Delayed::new(Duration::from_secs(1), Later)
}

#[organ(listens_to = Start)]
fn maybe_delayed(_: &Start) -> Option<Delayed<Later>> {
    None
}

#[organ(listens_to = Start)]
fn many_delayed(_: &Start) -> Vec<Delayed<Later>> {
    Vec::new()
}

#[organ(listens_to = Start)]
async fn tuple_in_result(
    _: &Start,
) -> Result<(Charged, Option<Refused>, Vec<Charged>, Delayed<Later>), std::io::Error> {
    Ok((
        Charged,
        None,
        Vec::new(),
        Delayed::new(Duration::ZERO, Later),
    ))
}

/// `io::Result` is not written `Result<T, E>`: the type system still sees through it.
#[organ(listens_to = Start)]
fn aliased_result(_: &Start) -> std::io::Result<Done> {
    Ok(Done)
}

#[organ(listens_to = Start)]
fn open(_: &Start) -> Emit {
    Emit::new()
}

#[organ(listens_to = Start, emits = [Charged, Refused])]
fn declared(_: &Start) -> Result<Emit, std::io::Error> {
    Ok(Emit::new().with(Refused))
}

#[organ(listens_to = Start, emits = [Refused])]
fn partly_declared(_: &Start) -> (Done, Emit) {
    (Done, Emit::new().with(Refused))
}

#[organ(listens_to = Start, emits = [])]
fn declared_empty(_: &Start) -> Emit {
    Emit::new()
}

struct Counter(AtomicUsize);

#[organ(listens_to = Start, name = "counter")]
impl Counter {
    async fn handle(&self, _: &Start) -> Option<Done> {
        self.0.fetch_add(1, Ordering::Relaxed);
        None
    }
}

struct Router;

#[organ(listens_to = Charged, emits = [Done])]
impl Router {
    fn handle(&self, _: &Charged) -> Emit {
        Emit::new().with(Done)
    }
}

/// A hand-written organ that does not say what it emits.
struct ByHand;

impl Organ for ByHand {
    type Event = Later;
    const NAME: &'static str = "by-hand";

    fn call<'a>(&'a self, _: &'a Envelope<Later>) -> Handling<'a> {
        Handling::Ready(Ok(Emit::new()))
    }
}

/// A wrapper that says what the wrapped organ says.
struct Wrapped<O>(O);

impl<O: Organ> Organ for Wrapped<O> {
    type Event = O::Event;
    const NAME: &'static str = O::NAME;

    fn call<'a>(&'a self, event: &'a Envelope<O::Event>) -> Handling<'a> {
        self.0.call(event)
    }

    fn emits() -> Emits {
        O::emits()
    }
}

#[test]
fn every_return_form_says_what_it_emits() {
    let known = |names: &[&'static str]| Emits::known(names.iter().copied());
    assert_eq!(nothing::emits(), known(&[]));
    assert_eq!(unit_in_result::emits(), known(&[]));
    assert_eq!(one::emits(), known(&["billing.charged"]));
    assert_eq!(maybe::emits(), known(&["billing.charged"]));
    assert_eq!(many::emits(), known(&["Refused"]));
    assert_eq!(delayed::emits(), known(&["Later"]));
    assert_eq!(maybe_delayed::emits(), known(&["Later"]));
    assert_eq!(many_delayed::emits(), known(&["Later"]));
    assert_eq!(
        tuple_in_result::emits(),
        known(&["billing.charged", "Refused", "Later"])
    );
    assert_eq!(aliased_result::emits(), known(&["Done"]));
    assert_eq!(Counter::emits(), known(&["Done"]));
}

#[test]
fn emit_is_unknown_unless_its_types_are_declared() {
    assert_eq!(open::emits(), Emits::Unknown);
    assert_eq!(
        declared::emits(),
        Emits::known(["billing.charged", "Refused"])
    );
    assert_eq!(partly_declared::emits(), Emits::known(["Done", "Refused"]));
    assert_eq!(declared_empty::emits(), Emits::known([]));
    assert_eq!(Router::emits(), Emits::known(["Done"]));
}

#[test]
fn hand_written_organs_are_unknown_unless_they_say() {
    assert_eq!(ByHand::emits(), Emits::Unknown);
    assert_eq!(<Wrapped<one>>::emits(), Emits::known(["billing.charged"]));
    assert_eq!(<Wrapped<ByHand>>::emits(), Emits::Unknown);
}

fn flow() -> Spine {
    Spine::builder()
        .organ(one)
        .organ(Router)
        .organ(Counter(AtomicUsize::new(0)))
        .organ(open)
        .build()
        .expect("builds")
}

#[test]
fn topology_lists_organs_event_types_and_loose_ends() {
    let spine = flow();
    let topology = spine.topology();
    let organs: Vec<(&str, &str, &Emits)> = topology
        .organs()
        .iter()
        .map(|o| (o.name(), o.listens_to(), o.emits()))
        .collect();
    assert_eq!(
        organs,
        [
            ("one", "Start", &Emits::known(["billing.charged"])),
            ("Router", "billing.charged", &Emits::known(["Done"])),
            ("counter", "Start", &Emits::known(["Done"])),
            ("open", "Start", &Emits::Unknown),
        ]
    );
    assert_eq!(topology.event_types(), ["Start", "billing.charged", "Done"]);
    assert_eq!(topology.unheard(), ["Done"]);
    assert_eq!(
        topology.unheard_edges(),
        [("Router", "Done"), ("counter", "Done")]
    );
    let listeners: Vec<&str> = topology.listeners("Start").map(|o| o.name()).collect();
    assert_eq!(listeners, ["one", "counter", "open"]);
    let emitters: Vec<&str> = topology.emitters("Done").map(|o| o.name()).collect();
    assert_eq!(emitters, ["Router", "counter"]);
    let unknown: Vec<&str> = topology.unknown_outputs().map(|o| o.name()).collect();
    assert_eq!(unknown, ["open"]);
}

#[test]
fn mermaid_text_is_exact_and_stable() {
    let expected = "\
flowchart LR
    e0([\"Start\"])
    e1([\"billing.charged\"])
    e2([\"Done\"])
    o0[\"one\"]
    o1[\"Router\"]
    o2[\"counter\"]
    o3[\"open\"]
    e0 --> o0
    o0 --> e1
    e1 --> o1
    o1 --> e2
    e0 --> o2
    o2 --> e2
    e0 --> o3
    o3 -.-> unknown
    unknown{{\"unknown events\"}}
    class e2 unheard
    classDef unheard stroke-dasharray: 4 4
";
    assert_eq!(flow().topology().to_mermaid(), expected);
    assert_eq!(
        flow().topology().to_mermaid(),
        expected,
        "the same every time"
    );
}

#[test]
fn an_empty_spine_is_an_empty_flowchart() {
    let spine = Spine::builder().build().expect("builds");
    assert_eq!(spine.topology().to_mermaid(), "flowchart LR\n");
    assert!(spine.topology().organs().is_empty());
}

#[test]
fn strict_topology_lists_every_unheard_edge_and_unknown_output() {
    let error = Spine::builder()
        .organ(one)
        .organ(Router)
        .organ(Counter(AtomicUsize::new(0)))
        .organ(open)
        .organ(ByHand)
        .strict_topology()
        .build()
        .expect_err("Done has no listener, open and by-hand are unknown");
    let Error::Build(BuildError::Topology { problems }) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(
        problems,
        &[
            TopologyProblem::Unheard {
                organ: "Router",
                event_type: "Done"
            },
            TopologyProblem::Unheard {
                organ: "counter",
                event_type: "Done"
            },
            TopologyProblem::UnknownEmits { organ: "open" },
            TopologyProblem::UnknownEmits { organ: "by-hand" },
        ]
    );
    let message = error.to_string();
    assert!(
        message.starts_with(
            "strict topology: organ `Router` emits Done, which no organ listens to; organ `counter` emits Done"
        ),
        "{message}"
    );
    assert!(
        message.contains("organ `open` returns `Emit`, whose event types are unknown: list them with `#[organ(..., emits = [EventA, EventB])]`"),
        "{message}"
    );
}

#[test]
fn strict_topology_accepts_a_closed_flow() {
    #[organ(listens_to = Done)]
    fn finish(_: &Done) {}

    let spine = Spine::builder()
        .organ(one)
        .organ(Router)
        .organ(finish)
        .strict_topology()
        .build()
        .expect("every emitted type has a listener");
    assert!(spine.topology().unheard().is_empty());
}

#[test]
fn without_strict_topology_loose_ends_build() {
    let spine = Spine::builder().organ(one).organ(open).build();
    assert!(spine.is_ok());
}
