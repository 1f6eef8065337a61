use necrostack::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Ping {
    seen: std::cell::Cell<u32>,
}

fn main() {}
