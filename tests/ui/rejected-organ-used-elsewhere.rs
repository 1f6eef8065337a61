//! A rejected organ still exists as a type with an `Organ` impl, so the code that
//! registers and tests it adds no errors of its own: the one error is the mistake.

use necrostack::{organ, testing, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[organ(listens_to = Ping)]
fn answer(_ping: &Ping, _times: u32) -> Pong {
    Pong
}

#[tokio::main]
async fn main() {
    let _ = Spine::builder().organ(answer).build();
    let _ = testing::call(&answer, Ping).await;
    let _ = testing::Flow::new().organ(answer).emit(Ping).run().await;
    let _: Pong = answer::handle(&Ping, 2);
}
