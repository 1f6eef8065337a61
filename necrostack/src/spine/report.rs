//! [`RunReport`]: what one run did.

/// Counts for one run of a spine ([`run`](crate::Spine::run) or
/// [`run_until_idle`](crate::Spine::run_until_idle)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunReport {
    /// Events taken from the backend in this run, routed or not.
    pub steps: u64,
    /// Organ handlings that succeeded.
    pub handled: u64,
    /// Events emitted by organs and enqueued.
    pub emitted: u64,
    /// Organ handlings that failed (after retries).
    pub failed: u64,
    /// Retries made after failures.
    pub retried: u64,
    /// Events no organ listens to (acknowledged, not an error).
    pub unrouted: u64,
    /// Dead letters written (one per failing organ, undecodable event or loop).
    pub dead_lettered: u64,
}

impl RunReport {
    pub(crate) fn add(&mut self, other: &RunReport) {
        self.steps += other.steps;
        self.handled += other.handled;
        self.emitted += other.emitted;
        self.failed += other.failed;
        self.retried += other.retried;
        self.unrouted += other.unrouted;
        self.dead_lettered += other.dead_lettered;
    }
}
