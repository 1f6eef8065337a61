//! A rejected generic event still gets a stand-in `Event` impl, so its uses add no
//! errors: the one error is on the generic parameter.

use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping<T> {
    body: T,
}

#[organ(listens_to = Ping<u32>)]
fn answer(_: &Ping<u32>) {}

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let spine = Spine::builder().organ(answer).build()?;
    spine.emit(Ping { body: 1_u32 }).await?;
    Ok(())
}
