//! `build().await` gives a `Result`: the backend needs `?`.

use necrostack::{organ, RedisBackend};
use necrostack::{Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[organ(listens_to = Ping)]
fn answer(_: &Ping) {}

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let backend = RedisBackend::builder("redis://127.0.0.1:6379").build().await;
    let spine = Spine::builder().backend(backend).organ(answer).build()?;
    spine.run().await?;
    Ok(())
}
