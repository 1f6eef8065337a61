use necrostack::{organ, Emit, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[organ(listens_to = Ping, emits = ["Pong"])]
fn answer(_ping: &Ping) -> Emit {
    Emit::new().with(Pong)
}

fn main() {
    let _ = Spine::builder().organ(answer).build();
}
