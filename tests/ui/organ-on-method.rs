//! `#[organ]` on the `handle` method instead of its `impl` block: one error, on the
//! attribute. Registering the type then also fails (it is not an organ): the macro only
//! sees the method, so it cannot implement `Organ` for the type.

use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Default)]
struct Scribe;

impl Scribe {
    #[organ(listens_to = Ping)]
    fn handle(&self, _ping: &Ping) {}
}

fn main() {
    let _ = Spine::builder().organ(Scribe::default()).build();
}
