//! `emit_all` takes the events by value: `&Vec` yields references.

use necrostack::{Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let spine = Spine::builder().build()?;
    let pings = vec![Ping, Ping];
    spine.emit_all(&pings).await?;
    Ok(())
}
