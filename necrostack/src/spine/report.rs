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
    pub(crate) fn add(&mut self, other: &RunReport) {
        self.steps += other.steps;
        self.succeeded += other.succeeded;
        self.emitted += other.emitted;
        self.failed += other.failed;
        self.retried += other.retried;
        self.unrouted += other.unrouted;
        self.dead_lettered += other.dead_lettered;
    }
}
