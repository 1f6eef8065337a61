use necrostack::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
struct Ping<T> {
    body: T,
}

fn main() {}
