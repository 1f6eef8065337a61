//! A worker process for the Redis crash test (`tests/redis_crash.rs`), which starts
//! several of them and kills some with SIGKILL mid-stream.
//!
//! Usage: `necrostack-crash-worker URL STREAM CONSUMER LOG [--fail-first]`. It handles
//! `crash.Job` events: appends `begin N` and `end N` lines to LOG around each handling
//! (written before the handling completes, so the log shows handlings a kill cut off)
//! and emits one `crash.Done` per job. With `--fail-first` (for `tests/redis_fleet.rs`)
//! the first attempt of every job fails, logged as `failed N`, and the spine retries it
//! 1.5 s later through Redis. It runs until SIGTERM or Ctrl-C, then drains and exits 0.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use necrostack::{organ, Backend, Envelope, FailurePolicy, RedisBackend, RetryPolicy, Spine};

#[path = "crash_events.rs"]
mod crash_events;

use crash_events::{Done, Job};

struct Recorder {
    log: Mutex<std::fs::File>,
    name: String,
    fail_first: bool,
}

impl Recorder {
    fn record(&self, what: &str, n: u32) -> std::io::Result<()> {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.write_all(format!("{what} {n}\n").as_bytes())
    }
}

#[organ(listens_to = Job)]
impl Recorder {
    async fn handle(&self, job: &Envelope<Job>) -> Result<Done, std::io::Error> {
        if self.fail_first && job.attempt() == 1 {
            self.record("failed", job.n)?;
            return Err(std::io::Error::other("the first attempt fails"));
        }
        self.record("begin", job.n)?;
        // A little work, so that kills land while events are in flight.
        tokio::time::sleep(Duration::from_millis(15)).await;
        self.record("end", job.n)?;
        Ok(Done {
            n: job.n,
            by: self.name.clone(),
        })
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (fail_first, args) = match args.as_slice() {
        [rest @ .., last] if last == "--fail-first" => (true, rest),
        all => (false, all),
    };
    let [_, url, stream, consumer, log] = args else {
        eprintln!("usage: necrostack-crash-worker URL STREAM CONSUMER LOG [--fail-first]");
        std::process::exit(2);
    };
    if let Err(error) = run(url, stream, consumer, log, fail_first).await {
        eprintln!("crash worker {consumer}: {error}");
        std::process::exit(1);
    }
}

async fn run(
    url: &str,
    stream: &str,
    consumer: &str,
    log: &str,
    fail_first: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let backend = RedisBackend::builder(url)
        .stream(stream)
        .group("crash-workers")
        .consumer(consumer)
        .claim_idle(Duration::from_millis(1000))
        .claim_interval(Duration::from_millis(200))
        .block_time(Duration::from_millis(200))
        .max_deliveries(50)
        .build()
        .await?;
    let spine = Spine::builder()
        .organ(Recorder {
            log: Mutex::new(file),
            name: consumer.to_owned(),
            fail_first,
        })
        .failure_policy(FailurePolicy::Retry(
            RetryPolicy::new(3)
                .backoff(Duration::from_millis(1500), Duration::from_millis(1500))
                .jitter(false),
        ))
        .backend(backend.clone())
        .concurrency(2)
        .batch_size(8)
        .poll_interval(Duration::from_millis(200))
        .stop_on_signals(true)
        .build()?;
    spine.run().await?;
    backend.close().await?;
    Ok(())
}
