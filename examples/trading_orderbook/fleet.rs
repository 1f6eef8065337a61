//! The `--workers N` fleet: N spines in this process, each with a Redis consumer of its
//! own on one (partitioned) stream, run until the whole stream is done.
//!
//! A worker's `run_until_idle` ends when *its* partitions are settled (the partitioned
//! backend checks only the partitions it owns), while another worker may still be
//! emitting; a worker that owns no partition at all is idle at once. So each worker runs
//! until idle again and again, and the fleet ends only when the stream as a whole is
//! quiet: [`RedisBackend::health`] shows, over every partition, nothing pending (read and
//! not acknowledged, in any worker's hands), nothing unread (the group's lag), nothing
//! scheduled (retries waiting) and nothing in an outbox (waiting to be forwarded to
//! another partition or to the dead letters) — twice in a row, with no event handled in
//! between. One reading goes through the partitions one after another, so an entry
//! forwarded from a partition not read yet to one already read could slip through it;
//! it cannot slip through two readings without being handled, and a handling moves the
//! audit trail's count.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use necrostack::backend::redis::RedisHealth;
use necrostack::{RedisBackend, RunReport, Spine};
use tokio::task::JoinSet;

use crate::feed;
use crate::redis_backend;

/// The most workers `--workers` runs.
pub const MAX_WORKERS: u32 = 64;
/// The most partitions `--partitions` asks for.
pub const MAX_PARTITIONS: u32 = 1024;
/// How long an idle worker, or the look at the whole stream, waits before looking again.
const LOOK_AGAIN: Duration = Duration::from_millis(10);

/// One backend per worker, all on the stream [`redis_backend::stream_name`] gives, in the
/// consumer group `example`, with `partitions` partitions (none: one plain stream). A
/// lone worker on a plain stream is the backend every example's `--redis` connects;
/// otherwise the consumers are `example-<i>`.
pub async fn connect(
    example: &str,
    url: &str,
    stream: Option<&str>,
    workers: u32,
    partitions: Option<u32>,
) -> Result<Vec<RedisBackend>, necrostack::Error> {
    if workers == 1 && partitions.is_none() {
        return Ok(vec![redis_backend::connect(example, url, stream).await?]);
    }
    let stream = redis_backend::stream_name(example, stream);
    tracing::info!(%stream, workers, ?partitions, "running on Redis");
    let mut backends = Vec::new();
    for i in 0..workers {
        let mut builder = RedisBackend::builder(url)
            .stream(stream.clone())
            .group(example)
            .consumer(format!("example-{i}"));
        if let Some(partitions) = partitions {
            builder = builder.partitions(partitions);
        }
        backends.push(builder.build().await?);
    }
    Ok(backends)
}

/// Runs every spine of `spines` (at least one) until `produce` has finished and the
/// stream is quiet (see the module docs); `handled` counts the handlings so far. Returns
/// the workers' counts added up and what the producer returned. When a worker fails, the
/// others are stopped, the producer too, and the worker's error is returned.
pub async fn run_while_producing<P, E>(
    spines: &[Spine<RedisBackend>],
    produce: P,
    handled: impl Fn() -> u64,
) -> Result<(RunReport, Result<(), E>), necrostack::Error>
where
    P: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
{
    let probe = spines[0].backend().clone();
    let done = Arc::new(AtomicBool::new(false));
    let mut workers = JoinSet::new();
    for spine in spines {
        workers.spawn(work(spine.clone(), Arc::clone(&done)));
    }
    let mut producer = tokio::spawn(produce);
    let produced = tokio::select! {
        produced = &mut producer => {
            produced.expect("the producer task neither panics nor is cancelled")
        }
        Some(ended) = workers.join_next() => {
            // A worker ends before `done` only when its run failed.
            producer.abort();
            return Err(stop(spines, &done, workers, ended).await);
        }
    };
    loop {
        tokio::select! {
            Some(ended) = workers.join_next() => {
                return Err(stop(spines, &done, workers, ended).await);
            }
            quiet = quiet(&probe, &handled) => {
                if quiet? {
                    break;
                }
            }
        }
    }
    done.store(true, Ordering::SeqCst);
    let mut total = RunReport::default();
    while let Some(ended) = workers.join_next().await {
        feed::add(&mut total, &worker_result(ended)?);
    }
    Ok((total, produced))
}

/// One worker: runs until idle, again and again, until the fleet is done.
async fn work(
    spine: Spine<RedisBackend>,
    done: Arc<AtomicBool>,
) -> Result<RunReport, necrostack::Error> {
    let mut total = RunReport::default();
    while !done.load(Ordering::SeqCst) {
        let run = spine.run_until_idle().await?;
        feed::add(&mut total, &run);
        if run.steps == 0 {
            tokio::time::sleep(LOOK_AGAIN).await;
        }
    }
    Ok(total)
}

type Ended = Result<Result<RunReport, necrostack::Error>, tokio::task::JoinError>;

/// A worker ended early (`ended`): stops the others and returns its error.
async fn stop(
    spines: &[Spine<RedisBackend>],
    done: &AtomicBool,
    mut workers: JoinSet<Result<RunReport, necrostack::Error>>,
    ended: Ended,
) -> necrostack::Error {
    done.store(true, Ordering::SeqCst);
    for spine in spines {
        spine.stop_handle().stop();
    }
    while workers.join_next().await.is_some() {}
    match worker_result(ended) {
        Err(error) => error,
        Ok(_) => necrostack::Error::from(necrostack::BackendError::Other(
            "a worker ended before the run was done".into(),
        )),
    }
}

fn worker_result(ended: Ended) -> Result<RunReport, necrostack::Error> {
    ended.expect("a worker task neither panics nor is cancelled")
}

/// Whether the whole stream is quiet: two readings of its health show nothing left, and
/// nothing was handled in between. Waits a little before answering no.
async fn quiet(
    probe: &RedisBackend,
    handled: &impl Fn() -> u64,
) -> Result<bool, necrostack::Error> {
    let before = handled();
    let quiet =
        settled(&probe.health().await?) && settled(&probe.health().await?) && handled() == before;
    if !quiet {
        tokio::time::sleep(LOOK_AGAIN).await;
    }
    Ok(quiet)
}

/// Nothing pending, unread, scheduled or waiting in an outbox. An unknown lag (Redis
/// cannot tell after deletions inside the stream, which this example never makes) counts
/// as none: the workers' own idle runs still read what is there.
fn settled(health: &RedisHealth) -> bool {
    health.pending == 0
        && health.lag.unwrap_or(0) == 0
        && health.scheduled == 0
        && health.partitions.iter().all(|p| p.outbox == 0)
}
