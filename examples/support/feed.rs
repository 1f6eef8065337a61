//! Running a spine while a producer is still emitting into it: the input is handled as it
//! is read, never held whole. Shared by the examples that read files (each includes this
//! file with `#[path = "../support/feed.rs"] mod feed;`).
//!
//! With a bounded backend (`InMemoryBackend::bounded(n)`), the producer waits whenever
//! `n` events are queued, so memory stays flat however long the input is.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use necrostack::{Backend, RunReport, Spine};

/// Runs `spine` until `produce` has finished and everything it emitted (and everything
/// that caused) is handled. Returns the spine's counts over the whole time and what the
/// producer returned; when the spine fails, the producer is stopped.
pub async fn run_while_producing<B, P, E>(
    spine: &Spine<B>,
    produce: P,
) -> Result<(RunReport, Result<(), E>), necrostack::Error>
where
    B: Backend,
    P: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let done = Arc::new(AtomicBool::new(false));
    let finished = Arc::clone(&done);
    let producer = tokio::spawn(async move {
        let result = produce.await;
        finished.store(true, Ordering::SeqCst);
        result
    });
    let mut total = RunReport::default();
    loop {
        let last = done.load(Ordering::SeqCst);
        let run = match spine.run_until_idle().await {
            Ok(run) => run,
            Err(error) => {
                producer.abort();
                return Err(error);
            }
        };
        add(&mut total, &run);
        if last {
            break;
        }
        if run.steps == 0 {
            // Idle while the producer reads: look again shortly.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let produced = producer
        .await
        .expect("the producer task neither panics nor is cancelled before it finished");
    Ok((total, produced))
}

/// Adds the counts of `run` to `total`.
pub fn add(total: &mut RunReport, run: &RunReport) {
    total.steps += run.steps;
    total.succeeded += run.succeeded;
    total.emitted += run.emitted;
    total.failed += run.failed;
    total.retried += run.retried;
    total.unrouted += run.unrouted;
    total.dead_lettered += run.dead_lettered;
}
