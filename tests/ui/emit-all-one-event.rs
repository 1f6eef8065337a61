//! `emit_all` takes a collection; one event goes through `emit`.

use necrostack::{Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let spine = Spine::builder().build()?;
    spine.emit_all(Ping).await?;
    Ok(())
}
