use necrostack::{Envelope, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping {
    count: u32,
}

fn main() {
    let envelope = Envelope::new(Ping { count: 1 });
    let _ = envelope.meta;
}
