use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[organ(listens_to = Ping, name = "")]
fn answer(_ping: &Ping) -> Pong {
    Pong
}

fn main() {
    let _ = Spine::builder().organ(answer).build();
}
