use necrostack::Event;
use serde::Serialize;

#[derive(Event, Serialize)]
struct Ping;

fn main() {}
