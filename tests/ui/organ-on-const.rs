use necrostack::{organ, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[organ(listens_to = Ping)]
const ANSWER: u32 = 42;

fn main() {
    let _ = ANSWER;
}
