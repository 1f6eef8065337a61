//! A worker process for the partition tests (`tests/redis_partitions.rs`,
//! `tests/redis_partition_chaos.rs`), which pause it with SIGSTOP or kill it with SIGKILL
//! while it owns partitions.
//!
//! Usage: `necrostack-partition-worker URL STREAM CONSUMER LOG PARTITIONS LEASE_MS
//! [WORK_MS]`. It handles `parts.Step` events: appends `begin KEY SEQ ATTEMPT UNIX_NANOS`
//! to LOG before each handling (so the log shows handlings a kill cut off, and the logs
//! of several workers merge in time order), works WORK_MS (default 20) ms, and emits one
//! `parts.Echo`. On SIGTERM it drains, closes the backend, appends
//! `metrics FENCED TAKEOVERS` and exits 0.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use necrostack::{organ, Backend, Envelope, RedisBackend, Spine};

#[path = "partition_events.rs"]
mod partition_events;

use partition_events::{Echo, Step};

struct Recorder {
    log: Mutex<std::fs::File>,
    work: Duration,
}

impl Recorder {
    fn write(&self, line: &str) -> std::io::Result<()> {
        let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.write_all(line.as_bytes())
    }
}

#[organ(listens_to = Step)]
impl Recorder {
    async fn handle(&self, step: &Envelope<Step>) -> Result<Echo, std::io::Error> {
        self.write(&format!(
            "begin {} {} {} {}\n",
            step.key,
            step.seq,
            step.attempt(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| since.as_nanos())
        ))?;
        tokio::time::sleep(self.work).await;
        Ok(Echo {
            key: step.key,
            seq: step.seq,
        })
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (args, work_ms) = match args.as_slice() {
        [rest @ .., work] if rest.len() == 7 => (rest, work.as_str()),
        all => (all, "20"),
    };
    let [_, url, stream, consumer, log, partitions, lease_ms] = args else {
        eprintln!("usage: necrostack-partition-worker URL STREAM CONSUMER LOG PARTITIONS LEASE_MS [WORK_MS]");
        std::process::exit(2);
    };
    let (Ok(partitions), Ok(lease_ms), Ok(work_ms)) =
        (partitions.parse(), lease_ms.parse(), work_ms.parse())
    else {
        eprintln!("PARTITIONS, LEASE_MS and WORK_MS must be numbers");
        std::process::exit(2);
    };
    let work = Duration::from_millis(work_ms);
    if let Err(error) = run(url, stream, consumer, log, (partitions, lease_ms), work).await {
        eprintln!("partition worker {consumer}: {error}");
        std::process::exit(1);
    }
}

async fn run(
    url: &str,
    stream: &str,
    consumer: &str,
    log: &str,
    (partitions, lease_ms): (u32, u64),
    work: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let backend = RedisBackend::builder(url)
        .stream(stream)
        .consumer(consumer)
        .partitions(partitions)
        .partition_lease(Duration::from_millis(lease_ms))
        .block_time(Duration::from_millis(200))
        .max_deliveries(50)
        .build()
        .await?;
    let recorder = Recorder {
        log: Mutex::new(file),
        work,
    };
    let spine = Spine::builder()
        .organ(recorder)
        .order_key::<Step, _>(|step: &Step| step.key)
        .backend(backend.clone())
        .concurrency(4)
        .batch_size(16)
        .poll_interval(Duration::from_millis(100))
        .stop_on_signals(true)
        .build()?;
    spine.run().await?;
    backend.close().await?;
    let metrics = backend.metrics();
    let mut log = std::fs::OpenOptions::new().append(true).open(log)?;
    writeln!(
        log,
        "metrics {} {}",
        metrics.fenced_completions, metrics.partition_takeovers
    )?;
    Ok(())
}
