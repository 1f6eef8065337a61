//! A backend is passed by value (it is a cheap handle: clone it to keep one); the builder's next call is a second error.

use necrostack::{organ, Event, InMemoryBackend, Spine};
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
    let backend = InMemoryBackend::new();
    let _spine = Spine::builder().backend(&backend).organ(answer).build()?;
    Ok(())
}
