//! `testing::call_envelope` borrows the envelope.

use necrostack::{organ, testing, Envelope, Event};
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
    let _ = testing::call_envelope(&answer, Envelope::new(Ping)).await;
    Ok(())
}
