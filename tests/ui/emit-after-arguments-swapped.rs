//! `emit_after` takes the delay first: the event in its place is reported, and so is the
//! delay in the event's place.

use necrostack::{Event, Spine};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let spine = Spine::builder().build()?;
    spine.emit_after(Ping, Duration::from_secs(1)).await?;
    Ok(())
}
