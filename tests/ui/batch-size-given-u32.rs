//! `batch_size` takes a `usize`.

use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[organ(listens_to = Ping)]
fn answer(_: &Ping) {}

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let events: u32 = 256;
    let _spine = Spine::builder().organ(answer).batch_size(events).build()?;
    Ok(())
}
