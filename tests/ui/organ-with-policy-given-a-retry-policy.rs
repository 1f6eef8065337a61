//! `organ_with_policy` takes a `FailurePolicy`: the compiler says to wrap a `RetryPolicy`.

use necrostack::{organ, Event, RetryPolicy, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[organ(listens_to = Ping)]
fn answer(_: &Ping) {}

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let _spine = Spine::builder()
        .organ_with_policy(answer, RetryPolicy::new(3))
        .build()?;
    Ok(())
}
