//! `order_key` needs to know the event type: annotate the closure's parameter.

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

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Order {
    id: u64,
    name: String,
}

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let _spine = Spine::builder().organ(answer).order_key(|order| order.id).build()?;
    Ok(())
}
