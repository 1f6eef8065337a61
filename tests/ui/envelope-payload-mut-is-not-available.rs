use necrostack::{Envelope, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping {
    count: u32,
}

fn main() {
    let mut envelope = Envelope::new(Ping { count: 1 });
    let payload: &mut Ping = &mut envelope;
    payload.count = 2;
}
