//! `max_steps` takes a `usize`, like every count a user compares it with.

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
    let limit: u64 = 100;
    let _spine = Spine::builder().organ(answer).max_steps(limit).build()?;
    Ok(())
}
