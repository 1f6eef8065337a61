use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

static COUNT: std::sync::Mutex<u32> = std::sync::Mutex::new(0);

#[organ(listens_to = Ping)]
async fn answer(_ping: &Ping) -> Pong {
    let mut count = COUNT.lock().unwrap();
    tokio::task::yield_now().await;
    *count += 1;
    Pong
}

fn main() {
    let _ = Spine::builder().organ(answer).build();
}
