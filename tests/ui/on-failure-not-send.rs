//! The failure hook runs on the spine's tasks: what it captures must be `Send` and `Sync` (the compiler reports each).

use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[organ(listens_to = Ping)]
fn answer(_: &Ping) -> Pong {
    Pong
}

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let count = std::rc::Rc::new(std::cell::Cell::new(0));
    let _spine = Spine::builder()
        .organ(answer)
        .on_failure(move |_| count.set(count.get() + 1))
        .build()?;
    Ok(())
}
