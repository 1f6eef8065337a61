use necrostack::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(name = "PING RECEIVED")]
struct Ping;

fn main() {}
