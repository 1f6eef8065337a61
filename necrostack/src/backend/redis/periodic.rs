//! A backend's periodic background work (the heartbeat, the mover of scheduled events,
//! the gauges): a task that runs one piece of work every period until the backend is
//! closed or dropped.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::core::Core;

/// When the first run happens.
#[derive(Clone, Copy)]
pub(crate) enum First {
    /// At once, when the backend is built.
    Now,
    /// One period after the backend is built.
    AfterOnePeriod,
}

/// Runs `work` every `period` (a late run delays the next instead of bunching up) until
/// the backend is closed or every handle to it is dropped. The task holds only a weak
/// reference, so it never keeps a backend alive.
pub(crate) fn spawn<F, Fut>(core: &Arc<Core>, period: Duration, first: First, work: F)
where
    F: Fn(Arc<Core>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let weak = Arc::downgrade(core);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        if let First::AfterOnePeriod = first {
            tick.tick().await;
        }
        loop {
            tick.tick().await;
            let Some(core) = weak.upgrade() else {
                return;
            };
            if core.is_closed() {
                return;
            }
            work(core).await;
        }
    });
}
