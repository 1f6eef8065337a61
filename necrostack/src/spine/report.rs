//! [`RunReport`]: what one run did.

/// Counts for one run of a spine ([`run`](crate::Spine::run) or
/// [`run_until_idle`](crate::Spine::run_until_idle)).
///
/// Every count is a `usize`, like the lengths and indices it is compared with, and so is
/// [`max_steps`](crate::SpineBuilder::max_steps). Two units are counted: *events*
/// (`steps`, `emitted`, `unrouted`, `dead_lettered`) and *organ runs* (`succeeded`,
/// `failed`, `retried`), since one event runs every organ that listens to it.
///
/// ```
/// use necrostack::{organ, Event, Spine};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Knock;
///
/// #[organ(listens_to = Knock)]
/// fn listen(_: &Knock) {}
///
/// #[organ(listens_to = Knock)]
/// fn answer(_: &Knock) {}
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), necrostack::Error> {
/// let spine = Spine::builder().organ(listen).organ(answer).build()?;
/// let knocks = vec![Knock, Knock, Knock];
/// spine.emit_all(knocks.clone()).await?;
/// let report = spine.run_until_idle().await?;
/// assert_eq!(report.steps, knocks.len());           // events: no cast needed
/// assert_eq!(report.succeeded, 2 * knocks.len());   // organ runs: two organs each
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunReport {
    /// Events taken from the backend in this run, routed or not (what `max_steps` bounds).
    pub steps: usize,
    /// Organ runs that succeeded: an event heard by three organs counts up to three.
    pub succeeded: usize,
    /// Events emitted by organs and enqueued.
    pub emitted: usize,
    /// Organ runs that failed (error, panic or timeout), counted once after any retries.
    pub failed: usize,
    /// Organ runs repeated after a failure, under [`FailurePolicy::Retry`](crate::FailurePolicy::Retry).
    pub retried: usize,
    /// Events no organ listens to (acknowledged, not an error).
    pub unrouted: usize,
    /// Dead letters written: one per failing organ, undecodable event or probable loop.
    pub dead_lettered: usize,
}

impl RunReport {
    /// Adds what one handling counted.
    pub(crate) fn add(&mut self, tally: Tally) {
        self.succeeded += tally.succeeded as usize;
        self.emitted += tally.emitted as usize;
        self.failed += tally.failed as usize;
        self.retried += tally.retried as usize;
        self.unrouted += tally.unrouted as usize;
        self.dead_lettered += tally.dead_lettered as usize;
    }
}

/// What one handling counted, on its way into the [`RunReport`]: every event's outcome
/// carries one, so it is kept half the size of the report (a handling never counts past
/// `u32::MAX` of anything).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tally {
    pub(crate) succeeded: u32,
    pub(crate) emitted: u32,
    pub(crate) failed: u32,
    pub(crate) retried: u32,
    pub(crate) unrouted: u32,
    pub(crate) dead_lettered: u32,
}

/// `n` as a count of one handling.
pub(crate) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
