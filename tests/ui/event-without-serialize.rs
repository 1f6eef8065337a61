use necrostack::Event;
use serde::Deserialize;

#[derive(Event, Deserialize, Debug)]
struct Ping;

fn main() {}
