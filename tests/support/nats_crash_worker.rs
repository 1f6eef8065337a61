//! A worker process for the NATS fleet tests (`tests/nats_fleet.rs`), which start
//! several of them, kill some with SIGKILL mid-stream, restart the server under them or
//! kill a node of their cluster.
//!
//! Usage: `necrostack-nats-crash-worker URLS STREAM LOG [REPLICAS]`. It handles
//! `crash.Job` events: appends `begin N` and `end N` lines to LOG around each handling
//! (written before the handling completes, so the log shows handlings a kill cut off)
//! and emits one `crash.Done` per job. It runs until SIGTERM or Ctrl-C, then drains and
//! exits 0; when NATS stays away past the reconnect timeout it exits 1 with the error.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use necrostack::{organ, Backend, Envelope, NatsBackend, Spine};

#[path = "crash_events.rs"]
mod crash_events;

use crash_events::{Done, Job};

struct Recorder {
    log: Mutex<std::fs::File>,
    name: String,
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
        self.record("begin", job.n)?;
        // A little work, so that kills land while events are in flight.
        tokio::time::sleep(Duration::from_millis(10)).await;
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
    let (urls, stream, log, replicas) = match args.as_slice() {
        [_, urls, stream, log] => (urls, stream, log, 1),
        [_, urls, stream, log, replicas] => (urls, stream, log, replicas.parse().unwrap_or(1)),
        _ => {
            eprintln!("usage: necrostack-nats-crash-worker URLS STREAM LOG [REPLICAS]");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(urls, stream, log, replicas).await {
        eprintln!("NATS crash worker: {error}");
        std::process::exit(1);
    }
}

async fn run(
    urls: &str,
    stream: &str,
    log: &str,
    replicas: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let name = format!("pid-{}", std::process::id());
    let backend = NatsBackend::builder(urls)
        .stream(stream)
        .consumer("crash-workers")
        .replicas(replicas)
        .ack_wait(Duration::from_secs(1))
        .max_wait(Duration::from_millis(200))
        .max_deliveries(50)
        .reconnect_timeout(Duration::from_secs(20))
        .response_timeout(Duration::from_secs(1))
        .build()
        .await?;
    let spine = Spine::builder()
        .organ(Recorder {
            log: Mutex::new(file),
            name,
        })
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
