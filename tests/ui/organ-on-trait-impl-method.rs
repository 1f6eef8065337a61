//! `#[organ]` on a method of a trait impl: one error, on the attribute; the method stays
//! as written, so the impl still satisfies its trait.

use necrostack::{organ, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

trait Handler {
    fn handle(&self, ping: &Ping);
}

struct Scribe;

impl Handler for Scribe {
    #[organ(listens_to = Ping)]
    fn handle(&self, _ping: &Ping) {}
}

fn main() {
    Scribe.handle(&Ping);
}
