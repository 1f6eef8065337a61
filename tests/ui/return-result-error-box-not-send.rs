//! `Box<dyn Error>` without `Send + Sync` cannot cross threads: the message names the
//! boxed form that works.

use necrostack::{organ, Event};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[organ(listens_to = Ping)]
fn answer(_ping: &Ping) -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}

fn main() {}
