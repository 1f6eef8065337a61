//! A worker process for the partition tests (`tests/redis_partitions.rs`), which pause it
//! with SIGSTOP or kill it with SIGKILL while it owns partitions.
//!
//! Usage: `necrostack-partition-worker URL STREAM CONSUMER LOG PARTITIONS LEASE_MS`. It
//! handles `parts.Step` events: appends `begin KEY SEQ ATTEMPT` to LOG before each
//! handling (so the log shows handlings a kill cut off), works 20 ms, and emits one
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
            "begin {} {} {}\n",
            step.key,
            step.seq,
            step.attempt()
        ))?;
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(Echo {
            key: step.key,
            seq: step.seq,
        })
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, stream, consumer, log, partitions, lease_ms] = args.as_slice() else {
        eprintln!("usage: necrostack-partition-worker URL STREAM CONSUMER LOG PARTITIONS LEASE_MS");
        std::process::exit(2);
    };
    let (Ok(partitions), Ok(lease_ms)) = (partitions.parse(), lease_ms.parse()) else {
        eprintln!("PARTITIONS and LEASE_MS must be numbers");
        std::process::exit(2);
    };
    if let Err(error) = run(url, stream, consumer, log, partitions, lease_ms).await {
        eprintln!("partition worker {consumer}: {error}");
        std::process::exit(1);
    }
}

async fn run(
    url: &str,
    stream: &str,
    consumer: &str,
    log: &str,
    partitions: u32,
    lease_ms: u64,
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
