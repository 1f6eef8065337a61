use necrostack::{organ, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[organ(listens_to = Ping)]
enum Answer {
    Yes,
    No,
}

fn main() {
    let _ = [Answer::Yes, Answer::No];
}
