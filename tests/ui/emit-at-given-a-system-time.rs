//! `emit_at` takes a `chrono::DateTime<Utc>`; the compiler says how to convert a
//! `SystemTime`.

use necrostack::{Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    let spine = Spine::builder().build()?;
    spine.emit_at(std::time::SystemTime::now(), Ping).await?;
    Ok(())
}
