//! `emit_envelope` takes an envelope.

use necrostack::{Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let spine = Spine::builder().build()?;
    spine.emit_envelope(Ping).await?;
    Ok(())
}
