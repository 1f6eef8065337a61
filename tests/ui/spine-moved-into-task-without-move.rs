//! A task that runs the spine takes it (or a clone: cloning is cheap) with `async move`.

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
    let spine = Spine::builder().organ(answer).build()?;
    let _task = tokio::spawn(async { spine.run().await });
    Ok(())
}
