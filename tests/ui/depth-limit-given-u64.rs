//! `depth_limit` takes a `u32` number of hops or `None`: another integer type gets a message saying so, not a list of `From` impls.

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

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let hops: u64 = 100;
    let _spine = Spine::builder().organ(answer).depth_limit(hops).build()?;
    Ok(())
}
