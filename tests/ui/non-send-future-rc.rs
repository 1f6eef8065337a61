use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[organ(listens_to = Ping)]
async fn answer(_ping: &Ping) -> Pong {
    let count = std::rc::Rc::new(1);
    tokio::task::yield_now().await;
    let _ = *count;
    Pong
}

fn main() {
    let _ = Spine::builder().organ(answer).build();
}
