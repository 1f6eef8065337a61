//! Borrowed data anywhere in an event's fields, here a slice in an enum variant: one
//! error on it, with the owned type to use.

use necrostack::Event;
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug)]
enum Upload {
    Started { name: String },
    Chunk { bytes: Option<&'static [u8]> },
}

fn main() {}
