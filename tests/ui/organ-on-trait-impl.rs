use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[derive(Default)]
struct Scribe;

trait Handler {
    fn handle(&self, ping: &Ping);
}

#[organ(listens_to = Ping)]
impl Handler for Scribe {
    fn handle(&self, _ping: &Ping) {}
}

fn main() {
    let _ = Spine::builder().organ(Scribe::default()).build();
}
