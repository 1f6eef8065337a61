use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[derive(Event, Serialize, Deserialize, Debug)]
struct Knock;

#[organ(listens_to = Knock)]
fn answer(_knock: Knock) -> Pong {
    Pong
}

fn main() {
    let _ = Spine::builder().organ(answer).build();
}
