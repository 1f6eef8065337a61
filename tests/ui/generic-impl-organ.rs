use necrostack::{organ, Event, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

#[derive(Default)]
struct Scribe<T> {
    seen: Vec<T>,
}

#[organ(listens_to = Ping)]
impl<T: Send + Sync + 'static> Scribe<T> {
    fn handle(&self, _ping: &Ping) {
        let _ = self.seen.len();
    }
}

fn main() {
    let _ = Spine::builder().organ(Scribe::<String>::default()).build();
}
