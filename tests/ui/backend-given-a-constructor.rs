//! `InMemoryBackend::new` without `()`: the first error says what a backend is; the builder's next call is a second error.

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
    let _spine = Spine::builder().backend(InMemoryBackend::new).organ(answer).build()?;
    Ok(())
}
