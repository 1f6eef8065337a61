//! The events shared by the partition tests (`tests/redis_partitions.rs`) and their
//! worker process (`tests/support/partition_worker.rs`), and the partition key of each.
#![allow(dead_code)] // each side uses a part of this helper

use necrostack::{AnyEnvelope, Event};
use serde::{Deserialize, Serialize};

/// The `seq`-th step of `key`: steps of one key must be handled in `seq` order.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "parts.Step")]
pub struct Step {
    pub key: u32,
    pub seq: u32,
}

/// The output of one handling of a step, keyed by `key + 1000` so that it usually lands
/// in another partition (through the outbox).
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "parts.Echo")]
pub struct Echo {
    pub key: u32,
    pub seq: u32,
}

/// The partition key of the test events (until events carry one themselves).
pub fn key_of(envelope: &AnyEnvelope) -> Option<u64> {
    if let Some(step) = envelope.downcast_ref::<Step>() {
        return Some(u64::from(step.key));
    }
    envelope
        .downcast_ref::<Echo>()
        .map(|echo| u64::from(echo.key) + 1000)
}
