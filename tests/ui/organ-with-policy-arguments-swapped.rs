//! `organ_with_policy` takes the organ first, then its policy.

use necrostack::{organ, Event, FailurePolicy, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[organ(listens_to = Ping)]
fn answer(_: &Ping) {}

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let _spine = Spine::builder()
        .organ_with_policy(FailurePolicy::DeadLetter, answer)
        .build()?;
    Ok(())
}
