//! The events shared by the partition tests (`tests/redis_partitions.rs`) and their
//! worker process (`tests/support/partition_worker.rs`).
#![allow(dead_code)] // each side uses a part of this helper

use necrostack::Event;
use serde::{Deserialize, Serialize};

/// The `seq`-th step of `key`: steps of one key must be handled in `seq` order.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "parts.Step")]
pub struct Step {
    pub key: u32,
    pub seq: u32,
}

/// The output of one handling of a step: unkeyed, so it usually lands in another
/// partition (through the outbox).
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "parts.Echo")]
pub struct Echo {
    pub key: u32,
    pub seq: u32,
}
