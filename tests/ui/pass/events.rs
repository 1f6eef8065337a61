//! `#[derive(Event)]` on every accepted shape, with and without a name, and organs with
//! the options `name = "..."` and a spine that registers them.

use necrostack::{organ, Event, Organ, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Unit;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "TUPLE_HAPPENED")]
struct Tuple(u32, String);

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "order.placed/v2")]
pub struct Named {
    id: u64,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Choice {
    Yes,
    No { reason: String },
}

/// Doc comments and other attributes next to `#[event]` are fine.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
#[event(name = "WITH_SERDE_ATTRS")]
pub struct WithSerdeAttrs {
    long_name: u8,
}

/// An organ whose log name is set explicitly.
#[organ(listens_to = Unit, name = "unit-watcher")]
fn watch(_: &Unit) -> Choice {
    Choice::Yes
}

/// A public organ with an attribute of its own.
#[organ(listens_to = Choice)]
#[allow(clippy::needless_pass_by_value)]
pub fn decide(choice: Choice) -> Option<Named> {
    matches!(choice, Choice::Yes).then_some(Named { id: 1 })
}

#[derive(Default)]
struct Counter {
    seen: std::sync::atomic::AtomicUsize,
}

#[organ(listens_to = Named, name = "counter")]
impl Counter {
    /// Other items in the impl block are left alone.
    const START: usize = 0;

    fn handle(&self, _: &Named) -> (Tuple, WithSerdeAttrs) {
        let n = self.seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + Self::START;
        (Tuple(n as u32, "x".into()), WithSerdeAttrs { long_name: 1 })
    }

    fn seen(&self) -> usize {
        self.seen.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(Unit::NAME, "Unit");
    assert_eq!(Tuple::NAME, "TUPLE_HAPPENED");
    assert_eq!(Named::NAME, "order.placed/v2");
    assert_eq!(Choice::NAME, "Choice");
    assert_eq!(WithSerdeAttrs::NAME, "WITH_SERDE_ATTRS");
    assert_eq!(<watch as Organ>::NAME, "unit-watcher");
    assert_eq!(<decide as Organ>::NAME, "decide");
    assert_eq!(<Counter as Organ>::NAME, "counter");

    let spine = Spine::builder()
        .organ(watch)
        .organ(decide)
        .organ(Counter::default())
        .build()
        .unwrap();
    spine.emit(Unit).await.unwrap();
    let report = spine.run_until_idle().await.unwrap();
    // Unit → Choice → Named → (Tuple, WithSerdeAttrs)
    assert_eq!(report.steps, 5);
    assert_eq!(Counter::default().seen(), 0);
}
