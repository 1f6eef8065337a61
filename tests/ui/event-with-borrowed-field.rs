//! An event with a `&'static str` field cannot be decoded (serde would have to borrow
//! from bytes that do not live forever): one error, on the field's type, saying to use
//! `String`. The type's uses add no errors of their own.

use necrostack::{organ, testing, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping {
    body: &'static str,
    count: u32,
}

#[organ(listens_to = Ping)]
fn answer(ping: &Ping) -> Option<Ping> {
    (ping.count > 0).then(|| Ping { body: ping.body, count: ping.count - 1 })
}

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let spine = Spine::builder().organ(answer).build()?;
    spine.emit(Ping { body: "ping", count: 3 }).await?;
    let _ = testing::call(&answer, Ping { body: "ping", count: 1 }).await;
    Ok(())
}
