//! `emit_after` takes the event by value, like `emit`.

use necrostack::{Event, Spine};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let spine = Spine::builder().build()?;
    let ping = Ping;
    spine.emit_after(Duration::from_secs(1), &ping).await?;
    Ok(())
}
