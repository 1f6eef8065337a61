//! The events shared by the Redis crash test (`tests/redis_crash.rs`) and its worker
//! process (`tests/support/crash_worker.rs`): one definition, so both sides agree on the
//! names and fields that cross the stream.

use necrostack::Event;
use serde::{Deserialize, Serialize};

/// Work to do.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "crash.Job")]
pub struct Job {
    pub n: u32,
}

/// The output of one completed handling of a job.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "crash.Done")]
pub struct Done {
    pub n: u32,
    pub by: String,
}
