//! `.organ(..)` takes the organ by value.

use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[organ(listens_to = Ping)]
fn answer(_: &Ping) -> Pong {
    Pong
}

struct Scribe;

#[organ(listens_to = Ping)]
impl Scribe {
    fn handle(&self, _: &Ping) {}
}

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let scribe = Scribe;
    let _spine = Spine::builder().organ(&scribe).build()?;
    Ok(())
}
