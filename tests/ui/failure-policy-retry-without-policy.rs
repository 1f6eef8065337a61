//! `FailurePolicy::Retry` alone is a constructor, not a policy.

use necrostack::{organ, Event, FailurePolicy, Spine};
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
    let _spine = Spine::builder().organ(answer).failure_policy(FailurePolicy::Retry).build()?;
    Ok(())
}
