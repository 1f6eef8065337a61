use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[derive(Default)]
struct Scribe {
    seen: std::sync::Mutex<u64>,
}

#[organ(listens_to = Ping)]
impl Scribe {
    async fn handle(&self, _ping: &Ping) {
        let mut seen = self.seen.lock().unwrap();
        tokio::task::yield_now().await;
        *seen += 1;
    }
}

fn main() {
    let _ = Spine::builder().organ(Scribe::default()).build();
}
