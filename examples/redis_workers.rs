//! Workers sharing a Redis stream: a producer places orders, N workers (each a spine with
//! its own `RedisBackend` consumer in one group) bill them and archive the invoices, and
//! the program prints which worker handled what.
//!
//! ```text
//! redis-server --port 6379 &                       # any Redis 6.2+ (7 recommended)
//! cargo run --example redis_workers                # 3 workers, 12 orders, redis://127.0.0.1:6379
//! cargo run --example redis_workers -- --redis redis://127.0.0.1:6380 --workers 5 --orders 40
//! REDIS_URL=rediss://:password@host:6380 cargo run --example redis_workers
//! # Prometheus metrics on http://127.0.0.1:9898/metrics, served until Ctrl-C:
//! cargo run --features metrics --example redis_workers -- --metrics-addr 127.0.0.1:9898 --serve
//! ```
//!
//! Each run uses a stream of its own, so old entries never mix in, and deletes it (and its
//! dead-letter stream) at the end; `--keep` leaves it in Redis for inspection
//! (`XRANGE name - +`), and a stream named with `--stream` is always left.

#[path = "support/logs.rs"]
mod logs;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::net::SocketAddr;

use clap::{value_parser, CommandFactory, Parser};
use necrostack::{
    organ, Backend, Envelope, Event, FailurePolicy, RedisBackend, RetryPolicy, Spine, SpineBuilder,
};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ORDER_PLACED")]
struct OrderPlaced {
    order: u32,
    amount_cents: u64,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "INVOICE_SENT")]
struct InvoiceSent {
    order: u32,
    amount_cents: u64,
    billed_by: String,
}

/// What each worker handled, in order: shared by the organs of all workers.
type Ledger = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

fn note(ledger: &Ledger, worker: &str, line: String) {
    println!("{worker:>9} | {line}");
    ledger
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(worker.to_owned())
        .or_default()
        .push(line);
}

/// Bills an order: one invoice per order, emitted atomically with the order's ack.
struct Billing {
    worker: String,
    ledger: Ledger,
}

#[organ(listens_to = OrderPlaced)]
impl Billing {
    async fn handle(&self, order: Envelope<OrderPlaced>) -> InvoiceSent {
        tokio::time::sleep(Duration::from_millis(20)).await; // talk to the payment provider
        note(
            &self.ledger,
            &self.worker,
            format!(
                "billed order {} ({} cents)",
                order.order, order.amount_cents
            ),
        );
        InvoiceSent {
            order: order.order,
            amount_cents: order.amount_cents,
            billed_by: self.worker.clone(),
        }
    }
}

/// Archives an invoice, possibly on another worker than the one that billed it.
struct Archive {
    worker: String,
    ledger: Ledger,
}

#[organ(listens_to = InvoiceSent)]
impl Archive {
    fn handle(&self, invoice: &InvoiceSent) {
        note(
            &self.ledger,
            &self.worker,
            format!(
                "archived invoice for order {} (billed by {})",
                invoice.order, invoice.billed_by
            ),
        );
    }
}

/// Workers sharing a Redis stream: a producer places orders, the workers bill them and
/// archive the invoices, and the program prints which worker handled what.
#[derive(Debug, Parser)]
#[command(name = "redis_workers", version)]
struct Args {
    /// The Redis server
    #[arg(
        long = "redis",
        value_name = "URL",
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    url: String,
    /// How many workers share the stream, 1..=64
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = value_parser!(u16).range(1..=64))]
    workers: u16,
    /// How many orders the producer places, 0..=100000
    #[arg(long, value_name = "N", default_value_t = 12,
          value_parser = value_parser!(u32).range(0..=100_000))]
    orders: u32,
    /// Use the stream NAME (left in Redis) instead of a fresh one per run
    #[arg(long, value_name = "NAME")]
    stream: Option<String>,
    /// Keep the fresh per-run stream and its dead-letter stream after the run
    #[arg(long, conflicts_with = "stream")]
    keep: bool,
    /// Give up when the orders are not all handled after S seconds, 1..=3600
    #[arg(long, value_name = "S", default_value_t = 30,
          value_parser = value_parser!(u64).range(1..=3600))]
    timeout_secs: u64,
    /// Serve Prometheus metrics on http://ADDR/metrics while the workers run (needs the
    /// `metrics` feature: `cargo run --features metrics --example redis_workers`)
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Keep serving the metrics after the work is done, until Ctrl-C
    #[arg(long, requires = "metrics_addr")]
    serve: bool,
    /// Print the flow as a Mermaid flowchart (organs, the event types between them) and exit
    #[arg(long)]
    topology: bool,
}

#[tokio::main]
async fn main() {
    logs::init();
    let args = Args::parse();
    if let Some(addr) = args.metrics_addr {
        serve_metrics(addr);
    }
    if let Err(error) = run(args).await {
        eprintln!("redis_workers: {error}");
        std::process::exit(1);
    }
}

/// Installs the Prometheus exporter: the library records through the `metrics` facade,
/// this program chooses where the numbers go.
fn serve_metrics(addr: SocketAddr) {
    if !cfg!(feature = "metrics") {
        Args::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--metrics-addr needs the `metrics` feature: `cargo run --features metrics --example redis_workers -- --metrics-addr ADDR`",
            )
            .exit();
    }
    if let Err(error) = metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
    {
        eprintln!("redis_workers: cannot serve metrics on {addr}: {error}");
        std::process::exit(1);
    }
    println!("metrics   | serving http://{addr}/metrics");
}

/// A worker's organs, registered on `builder`.
fn organs<B: Backend>(builder: SpineBuilder<B>, worker: &str, ledger: &Ledger) -> SpineBuilder<B> {
    builder
        .organ(Billing {
            worker: worker.to_owned(),
            ledger: Arc::clone(ledger),
        })
        .organ(Archive {
            worker: worker.to_owned(),
            ledger: Arc::clone(ledger),
        })
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let ledger: Ledger = Arc::default();
    if args.topology {
        // The picture needs no Redis: the organs are the same on every backend.
        let spine = organs(Spine::builder(), "worker", &ledger).build()?;
        print!("{}", spine.topology().to_mermaid());
        return Ok(());
    }
    let stream = args.stream.clone().unwrap_or_else(|| {
        format!(
            "necrostack:redis_workers:{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        )
    });
    let timeout = Duration::from_secs(args.timeout_secs);
    let backend = |consumer: String| {
        RedisBackend::builder(args.url.clone())
            .stream(stream.clone())
            .group("billing")
            .consumer(consumer)
            .build()
    };

    // The workers: one spine each, all in the group "billing".
    let mut workers = Vec::new();
    for i in 0..args.workers {
        let name = format!("worker-{i}");
        let backend = backend(name.clone()).await?;
        let spine = organs(Spine::builder(), &name, &ledger)
            .backend(backend.clone())
            // A failed billing is retried later, by any worker, then dead-lettered:
            // on Redis, the policy to copy (the default would acknowledge a failure).
            .failure_policy(FailurePolicy::Retry(RetryPolicy::new(5)))
            .batch_size(2) // small batches spread a short demo over every worker
            .poll_interval(Duration::from_millis(200))
            .build()?;
        let stop = spine.stop_handle();
        let task = tokio::spawn(async move { spine.run().await });
        workers.push((name, backend, stop, task));
    }

    // The producer only writes: no spine, no consumer group of its own.
    let producer = RedisBackend::builder(args.url.clone())
        .stream(stream.clone())
        .build_producer()
        .await?;
    let orders = (1..=args.orders).map(|order| {
        Envelope::new(OrderPlaced {
            order,
            amount_cents: 1_000 + u64::from(order) * 250,
        })
        .into()
    });
    producer.enqueue(orders.collect()).await?;
    // A worker's backend, to watch the group's progress.
    let watcher = backend("watcher".to_owned()).await?;
    println!(
        "producer  | placed {} orders on stream {}",
        args.orders, stream
    );

    // Wait until every order is billed and archived and nothing is pending.
    let expected = 2 * args.orders as usize;
    let deadline = Instant::now() + timeout;
    loop {
        let handled: usize = ledger
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(Vec::len)
            .sum();
        let health = watcher.health().await?;
        if handled >= expected && health.pending == 0 && health.lag == Some(0) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("timed out: {handled} of {expected} handlings, {health:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Graceful shutdown: stop reading, finish in-flight work, close.
    for (_, _, stop, _) in &workers {
        stop.stop();
    }
    println!();
    for (name, backend, _, task) in workers {
        let report = task.await??;
        backend.close().await?;
        let m = backend.metrics();
        println!(
            "{name}: {} events ({} pulled, {} acked, {} emitted)",
            report.steps, m.pulled, m.acked, m.emitted
        );
    }
    for (worker, lines) in ledger.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        println!("{worker} handled {}: {}", lines.len(), lines.join("; "));
    }
    let health = watcher.health().await?;
    println!(
        "stream {}: {} entries, {} pending, {} dead letters, ping {:?}",
        stream, health.stream_length, health.pending, health.dead_letters, health.ping
    );
    watcher.close().await?;
    if args.stream.is_none() && !args.keep {
        delete_streams(&args.url, &watcher).await?;
        println!("stream {stream} and its dead letters deleted (--keep leaves them)");
    }
    if args.serve {
        if let Some(addr) = args.metrics_addr {
            println!("metrics   | work done; still serving http://{addr}/metrics until Ctrl-C");
        }
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}

/// Deletes the run's stream and its dead-letter stream.
async fn delete_streams(url: &str, backend: &RedisBackend) -> redis::RedisResult<()> {
    let config = backend.config();
    let mut connection = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    redis::cmd("DEL")
        .arg(&[
            config.stream_key(),
            config.dead_letter_key(),
            config.scheduled_key(),
        ])
        .query_async::<u64>(&mut connection)
        .await?;
    Ok(())
}
