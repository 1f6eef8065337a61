//! `FlowOutcome::events` is for an event type.

use necrostack::{organ, testing, Event};
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
    let outcome = testing::Flow::new().organ(answer).emit(Ping).run().await?;
    let _names = outcome.events::<String>();
    Ok(())
}
