use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Default)]
struct Scribe;

#[organ(listens_to = Ping)]
impl Scribe {
    fn process(&self, _ping: &Ping) {}
}

fn main() {
    let _ = Spine::builder().organ(Scribe::default()).build();
}
