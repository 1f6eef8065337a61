use necrostack::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(nmae = "PING")]
struct Ping;

fn main() {}
