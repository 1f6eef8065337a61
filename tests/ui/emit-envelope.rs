//! An envelope goes through `emit_envelope`.

use necrostack::Envelope;
use necrostack::{Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let spine = Spine::builder().build()?;
    spine.emit(Envelope::new(Ping)).await?;
    Ok(())
}
