//! `#[organ]` on a method declared in a trait: one error, on the attribute.

use necrostack::{organ, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

trait Handler {
    #[organ(listens_to = Ping)]
    fn handle(&self, ping: &Ping);

    #[organ(listens_to = Ping)]
    fn handle_twice(&self, ping: &Ping) {
        self.handle(ping);
        self.handle(ping);
    }
}

fn main() {}
