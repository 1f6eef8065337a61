//! An event that borrows (a lifetime parameter): one error, saying to own the data. The
//! type's uses add no errors of their own.

use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping<'a> {
    body: &'a str,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[organ(listens_to = Pong)]
fn answer(_: &Pong) -> Ping<'static> {
    Ping { body: "ping" }
}

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let spine = Spine::builder().organ(answer).build()?;
    spine.emit(Ping { body: "ping" }).await?;
    Ok(())
}
