//! A Redis builder must be built (and awaited) before it is a backend; the calls after
//! `.backend(..)` add no errors.

use necrostack::{organ, RedisBackend};
use necrostack::{Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[organ(listens_to = Ping)]
fn answer(_: &Ping) {}

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let backend = RedisBackend::builder("redis://127.0.0.1:6379").stream("orders");
    let spine = Spine::builder().backend(backend).organ(answer).max_steps(10).build()?;
    spine.run().await?;
    Ok(())
}
