//! `emit` returns a future: `?` needs `.await` first.

use necrostack::{Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let spine = Spine::builder().build()?;
    spine.emit(Ping)?;
    Ok(())
}
