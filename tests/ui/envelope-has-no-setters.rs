use necrostack::{Envelope, Event, Uuid};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

fn main() {
    let mut envelope = Envelope::new(Ping);
    envelope.set_correlation_id(Uuid::nil());
}
