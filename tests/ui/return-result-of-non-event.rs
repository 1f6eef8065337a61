use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[organ(listens_to = Ping)]
async fn answer(_ping: &Ping) -> Result<String, std::io::Error> {
    Ok(String::new())
}

fn main() {
    let _ = Spine::builder().organ(answer).build();
}
