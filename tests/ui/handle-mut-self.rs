use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[derive(Default)]
struct Scribe {
    seen: usize,
}

#[organ(listens_to = Ping)]
impl Scribe {
    fn handle(&mut self, _ping: &Ping) {
        self.seen += 1;
    }
}

fn main() {
    let _ = Spine::builder().organ(Scribe::default()).build();
}
