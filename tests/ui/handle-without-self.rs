use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[derive(Default)]
struct Scribe;

#[organ(listens_to = Ping)]
impl Scribe {
    fn handle(_ping: &Ping) -> Pong {
        Pong
    }
}

fn main() {
    let _ = Spine::builder().organ(Scribe::default()).build();
}
