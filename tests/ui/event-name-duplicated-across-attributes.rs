use necrostack::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(name = "PING")]
#[event(name = "PONG")]
struct Ping;

fn main() {}
