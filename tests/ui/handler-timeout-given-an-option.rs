//! `handler_timeout` takes a `Duration`; leave it out for no limit.

use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};
use std::time::Duration;

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
    let _spine = Spine::builder()
        .organ(answer)
        .handler_timeout(Some(Duration::from_secs(5)))
        .build()?;
    Ok(())
}
