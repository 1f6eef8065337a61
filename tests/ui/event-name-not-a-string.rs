use necrostack::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize)]
#[event(name = PING)]
struct Ping;

fn main() {}
