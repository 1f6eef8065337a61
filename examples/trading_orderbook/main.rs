//! A trading order book: orders are validated, matched with price-time priority, the
//! trades settled and risk-checked, and every event audited.
//!
//! ```text
//! ORDER_SUBMITTED → ValidateOrder → ORDER_VALIDATED | ORDER_REJECTED
//! ORDER_VALIDATED → MatchingEngine → TRADE_EXECUTED (one per fill) and
//!                   ORDER_FILLED | ORDER_PARTIAL_FILL | ORDER_QUEUED | ORDER_REJECTED
//! TRADE_EXECUTED → Settlement (async, latency, seeded transient failures, retried)
//!                → SETTLEMENT_COMPLETE → RiskManager → RISK_ALERT (position past limit)
//! every event    → AuditTrail (counts every event type)
//! ```
//!
//! ```text
//! cargo run --example trading_orderbook -- --help                    # every option
//! cargo run --example trading_orderbook                              # built-in sample
//! cargo run --example trading_orderbook -- --file orders.json        # or orders.csv
//! cargo run --example trading_orderbook -- --stress --orders 5000 --seed 7
//! cargo run --example trading_orderbook -- --file orders.csv --json  # one JSON object
//! cargo run --example trading_orderbook -- --redis redis://127.0.0.1:6379
//! cargo run --example trading_orderbook -- --redis redis://127.0.0.1:6379 --workers 3 --partitions 8
//! cargo run --example trading_orderbook -- --nats nats://127.0.0.1:4222
//! ```
//!
//! With `--redis URL` the same flow runs on a Redis stream (a fresh stream
//! `trading_orderbook:<uuid>` per run unless `--stream NAME` is given, so a rerun never
//! sees the events of an earlier one); every event then travels as JSON through Redis.
//! The fresh stream and its dead-letter stream are deleted at the end unless `--keep`.
//! With `--nats URL` it runs on NATS JetStream instead, on a fresh stream
//! `TRADING_ORDERBOOK_<uuid>` (memory storage), deleted at the end with its scheduled and
//! dead-letter streams.
//!
//! With `--workers N --partitions P` (both need `--redis`) N workers run in this
//! process, each a spine with a Redis consumer of its own, on one stream split into P
//! partitions (`<stream>:p0` ...; the URL may be any node of a Redis Cluster). Every
//! event of the flow carries its symbol, upper-cased and trimmed, as its partition key
//! (`order_key`), so one symbol's orders, trades and outcomes are all in one partition,
//! handled one at a time, in order, by its one owner: a symbol's book sees its orders in
//! submission order, and the `--json` result is the in-memory one. The run ends when the
//! whole stream is done, not when one worker is idle (see `fleet.rs`); then every key of
//! the fresh stream is deleted. More than one worker needs `--partitions`: on one plain
//! stream the consumers of a group share the entries with no order between them.
//!
//! Orders are read and submitted while the spine runs, into a bounded queue: a file of
//! any length is handled in constant memory (the readable report keeps the first 1 000
//! lines of each section; `--json` lists every trade, so it holds them all).
//!
//! Orders are handled in submission order: the spine runs with concurrency 1, so its
//! queue is strictly FIFO and the validated orders reach the engine in the order the
//! submissions were emitted (with `--workers`, in submission order per symbol). Symbols,
//! sides and order types are upper-cased and trimmed before they are checked; the trader
//! id is trimmed.

mod book;
#[path = "../support/cli.rs"]
mod cli;
mod events;
#[path = "../support/feed.rs"]
mod feed;
#[path = "../support/file_input.rs"]
mod file_input;
mod fleet;
mod input;
#[path = "../support/logs.rs"]
mod logs;
#[path = "../support/nats_backend.rs"]
mod nats_backend;
mod organs;
#[path = "../support/progress.rs"]
mod progress;
#[path = "../support/redis_backend.rs"]
mod redis_backend;
mod report;
#[path = "../support/rng.rs"]
mod rng;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::{value_parser, CommandFactory, Parser};
use necrostack::{
    Backend, FailurePolicy, InMemoryBackend, RedisBackend, RetryPolicy, RunReport, Spine,
    SpineBuilder,
};

use events::*;
use file_input::{Feed, InputError, Source};
use nats_backend::NatsArgs;
use organs::{
    normalised_symbol, Audit, AuditTrail, Market, MatchingEngine, RiskManager, Settlement,
};
use progress::Progress;
use redis_backend::RedisArgs;

/// Tries per failing handling (only Settlement fails) before the event is dead-lettered.
const SETTLEMENT_TRIES: u32 = 5;
/// The most orders `--stress` generates.
const MAX_ORDERS: u64 = 100_000_000;
/// The longest simulated settlement latency, in milliseconds.
const MAX_LATENCY_MS: u64 = 60_000;
/// The highest `--risk-limit`.
const MAX_RISK_LIMIT: u64 = 1_000_000_000;
/// Events queued in memory ahead of the spine; the reader waits when it is full.
const QUEUE: usize = 4096;
/// Orders submitted per call to the backend.
const BATCH: usize = 64;
/// Lines per report section a file run keeps (a stress run shows 10).
const KEEP_LINES: u64 = 1000;

/// A trading order book: orders are validated, matched with price-time priority, the
/// trades settled and risk-checked, and every event audited.
#[derive(Debug, Parser)]
#[command(name = "trading_orderbook", version)]
#[command(group = clap::ArgGroup::new("backend").args(["redis", "nats"]))]
struct Args {
    /// Read orders from PATH: JSON {"orders": [...]} or CSV with the header
    /// trader_id,symbol,side,order_type,quantity,price [default: a built-in sample]
    #[arg(long, value_name = "PATH", conflicts_with = "stress")]
    file: Option<PathBuf>,
    /// Generate orders (see --orders) instead of reading them
    #[arg(long)]
    stress: bool,
    /// How many orders --stress generates, 1..=100000000
    #[arg(long, value_name = "N", default_value_t = 1000, requires = "stress",
          value_parser = value_parser!(u64).range(1..=MAX_ORDERS))]
    orders: u64,
    /// Seed of the generated orders and of settlement failures, 0..=18446744073709551615
    #[arg(long, value_name = "S", default_value_t = 42)]
    seed: u64,
    /// Print one JSON object (trades, rejected count, books) instead of the report
    #[arg(long)]
    json: bool,
    /// Fraction of settlement attempts that fail and are retried, 0..=1
    #[arg(long, value_name = "F", default_value_t = 0.1, value_parser = cli::rate)]
    settlement_failure_rate: f64,
    /// Simulated clearing-house latency per settlement in ms, 0..=60000 (0: no wait)
    #[arg(long, value_name = "MS", default_value_t = 1,
          value_parser = value_parser!(u64).range(0..=MAX_LATENCY_MS))]
    latency_ms: u64,
    /// Alert when a trader's position in a symbol moves past SHARES, 0..=1000000000
    #[arg(long, value_name = "SHARES", default_value_t = 1000,
          value_parser = value_parser!(u64).range(0..=MAX_RISK_LIMIT))]
    risk_limit: u64,
    /// Show no progress bar (it shows on a terminal when a run takes over 2 s)
    #[arg(long, short)]
    quiet: bool,
    /// Print the flow as a Mermaid flowchart (organs, the event types between them) and exit
    #[arg(long)]
    topology: bool,
    /// Workers in this process, each its own consumer of the Redis stream, 1..=64
    /// (needs --redis; more than one needs --partitions)
    #[arg(long, value_name = "N", default_value_t = 1, requires = "redis",
          value_parser = value_parser!(u32).range(1..=i64::from(fleet::MAX_WORKERS)))]
    workers: u32,
    /// Split the Redis stream into P partitions, by symbol, 1..=1024 (needs --redis)
    #[arg(long, value_name = "P", requires = "redis",
          value_parser = value_parser!(u32).range(1..=i64::from(fleet::MAX_PARTITIONS)))]
    partitions: Option<u32>,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    nats: NatsArgs,
}

/// A run that failed: the input (exit 2) or the spine (exit 1).
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Spine(#[from] necrostack::Error),
}

#[tokio::main]
async fn main() -> ExitCode {
    logs::init();
    let args = Args::parse();
    if let Some(problem) = fleet_problem(&args) {
        Args::command()
            .error(clap::error::ErrorKind::MissingRequiredArgument, problem)
            .exit();
    }
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("trading_orderbook: {error}");
            match error {
                RunError::Input(_) => ExitCode::from(2),
                RunError::Spine(_) => ExitCode::FAILURE,
            }
        }
    }
}

/// What is wrong with `--workers`/`--partitions` that clap's own rules let through: clap
/// does not enforce `requires = "redis"` when `--nats` (in the same group) is given, and
/// cannot say "more than one" worker.
fn fleet_problem(args: &Args) -> Option<&'static str> {
    let fleet = args.workers > 1 || args.partitions.is_some();
    if fleet && args.redis.redis.is_none() {
        return Some("--workers and --partitions need --redis <URL>");
    }
    if args.workers > 1 && args.partitions.is_none() {
        return Some(
            "--workers above 1 needs --partitions P: per-symbol order across workers \
             needs each symbol in a partition with one owner",
        );
    }
    None
}

/// Runs the flow in memory, on Redis with `--redis`, or on NATS with `--nats`.
async fn run(args: &Args) -> Result<(), RunError> {
    if let (Some(url), false) = (&args.nats.nats, args.topology) {
        let backend = nats_backend::connect("trading_orderbook", url).await?;
        let result = run_on(backend.clone(), args).await;
        nats_backend::clean_up(&backend, url).await;
        return result;
    }
    match &args.redis.redis {
        // The picture needs no broker: the organs are the same on every backend.
        _ if args.topology => run_on(InMemoryBackend::new(), args).await,
        None => run_on(InMemoryBackend::bounded(QUEUE), args).await,
        Some(url) => {
            let backends = fleet::connect(
                "trading_orderbook",
                url,
                args.redis.stream.as_deref(),
                args.workers,
                args.partitions,
            )
            .await?;
            let result = run_fleet(&backends, args).await;
            for backend in &backends {
                // Stops the heartbeats (which would write their keys again) and gives the
                // partitions up; the results are out already, so a failure is only logged.
                if let Err(error) = backend.close().await {
                    tracing::warn!(%error, "could not close a worker's backend");
                }
            }
            redis_backend::clean_up(&backends[0], &args.redis).await;
            result
        }
    }
}

/// Where the orders come from.
enum Orders {
    Generated { count: u64, seed: u64 },
    Read(Feed),
}

fn orders(args: &Args) -> Orders {
    if args.stress {
        return Orders::Generated {
            count: args.orders,
            seed: args.seed,
        };
    }
    let source = match &args.file {
        Some(path) => Source::File(path.clone()),
        None => Source::BuiltIn {
            name: "built-in sample.json",
            text: include_str!("../data/orderbook_sample.json"),
        },
    };
    Orders::Read(file_input::spawn(source, input::SHAPE))
}

/// Submits the orders in batches while the spine runs, moving the progress bar.
async fn submit<B: Backend>(
    spine: Spine<B>,
    orders: Orders,
    progress: Arc<Progress>,
    trail: Arc<Mutex<AuditTrail>>,
) -> Result<(), RunError> {
    let handled = || {
        let trail = trail.lock().unwrap_or_else(PoisonError::into_inner);
        format!("{} events handled", trail.counts.values().sum::<u64>())
    };
    let mut batch = Vec::with_capacity(BATCH);
    match orders {
        Orders::Generated { count, seed } => {
            for order in input::generate(count, seed) {
                batch.push(order);
                if batch.len() == BATCH {
                    progress.set(batch[BATCH - 1].seq, handled);
                    spine.emit_all(batch.drain(..)).await?;
                }
            }
        }
        Orders::Read(mut feed) => {
            let mut seq = 0;
            while let Some(entry) = feed.entries.recv().await {
                seq += 1;
                batch.push(input::order(seq, &entry?.fields));
                if batch.len() == BATCH {
                    let read = feed.bytes_read.load(Ordering::Relaxed);
                    progress.set(read, || format!("{seq} orders, {}", handled()));
                    spine.emit_all(batch.drain(..)).await?;
                }
            }
        }
    }
    spine.emit_all(batch).await?;
    Ok(())
}

/// The organs' state, shared by every worker of a run; the report comes from it.
struct Shared {
    market: Arc<Mutex<Market>>,
    trail: Arc<Mutex<AuditTrail>>,
    settlement: Settlement,
    risk: RiskManager,
    /// Lines per report section.
    keep: u64,
}

impl Shared {
    fn new(args: &Args) -> Self {
        let keep = if args.stress { 10 } else { KEEP_LINES };
        Shared {
            market: Arc::new(Mutex::new(Market {
                keep_trades: args.json,
                ..Market::default()
            })),
            trail: Arc::new(Mutex::new(AuditTrail::new(keep))),
            settlement: Settlement::new(
                args.seed,
                args.settlement_failure_rate,
                Duration::from_millis(args.latency_ms),
            ),
            risk: RiskManager::new(args.risk_limit),
            keep,
        }
    }

    /// A spine of the flow on `backend`, its organs on this shared state.
    fn spine<B: Backend>(&self, builder: SpineBuilder<B>) -> Result<Spine<B>, RunError> {
        let retry = RetryPolicy::new(SETTLEMENT_TRIES)
            .backoff(Duration::from_millis(2), Duration::from_millis(50));
        let trail = &self.trail;
        let spine = builder
            .organ(organs::validate_order)
            .organ(MatchingEngine::new(Arc::clone(&self.market)))
            .organ(self.settlement.clone())
            .organ(self.risk.clone())
            .organ(Audit::<OrderSubmitted>::new(trail))
            .organ(Audit::<OrderValidated>::new(trail))
            .organ(Audit::<OrderRejected>::new(trail))
            .organ(Audit::<TradeExecuted>::new(trail))
            .organ(Audit::<OrderFilled>::new(trail))
            .organ(Audit::<OrderPartialFill>::new(trail))
            .organ(Audit::<OrderQueued>::new(trail))
            .organ(Audit::<SettlementComplete>::new(trail))
            .organ(Audit::<RiskAlert>::new(trail))
            .concurrency(1) // strict FIFO: orders are matched in submission order
            // The input's length is not known up front; the depth limit still stops loops.
            .max_steps(usize::MAX)
            .failure_policy(FailurePolicy::Retry(retry))
            .build()?;
        Ok(spine)
    }

    /// Events handled so far: every event type has an auditor, so every handling counts.
    fn handled(&self) -> impl Fn() -> u64 + Send + 'static {
        let trail = Arc::clone(&self.trail);
        move || {
            let trail = trail.lock().unwrap_or_else(PoisonError::into_inner);
            trail.counts.values().sum()
        }
    }
}

/// Keys every event of the flow by its symbol, normalised as `validate` does it, so that
/// a partitioned stream puts all of a symbol's events in one partition: its submissions,
/// validations and rejections (in submission order, so its book matches them in that
/// order), and what the matching emits (trades, outcomes, then settlements and risk
/// alerts), whose per-trader positions are per symbol too.
fn keyed_by_symbol<B: Backend>(builder: SpineBuilder<B>) -> SpineBuilder<B> {
    builder
        .order_key(|o: &OrderSubmitted| normalised_symbol(&o.symbol))
        .order_key(|o: &OrderValidated| o.symbol.clone())
        .order_key(|o: &OrderRejected| normalised_symbol(&o.symbol))
        .order_key(|t: &TradeExecuted| t.symbol.clone())
        .order_key(|o: &OrderFilled| o.symbol.clone())
        .order_key(|o: &OrderPartialFill| o.symbol.clone())
        .order_key(|o: &OrderQueued| o.symbol.clone())
        .order_key(|s: &SettlementComplete| s.symbol.clone())
        .order_key(|r: &RiskAlert| r.symbol.clone())
}

/// The flow on one `backend` (in memory, or NATS), by one spine.
///
/// In memory, events are not keyed: the one spine with concurrency 1 handles them in
/// FIFO order already, and a keyed in-memory queue would hand out only one event per
/// symbol at a time.
async fn run_on<B: Backend>(backend: B, args: &Args) -> Result<(), RunError> {
    let shared = Shared::new(args);
    let spine = shared.spine(Spine::builder().backend(backend))?;
    if args.topology {
        print!("{}", spine.topology().to_mermaid());
        return Ok(());
    }
    let (orders, progress) = start(args);
    let submitting = submit(
        spine.clone(),
        orders,
        Arc::clone(&progress),
        Arc::clone(&shared.trail),
    );
    let (run, submitted) = feed::run_while_producing(&spine, submitting).await?;
    finish(&shared, args, &progress, run, submitted)
}

/// The flow on Redis: one spine per backend (worker), every event keyed by its symbol;
/// the orders are submitted through the first worker.
async fn run_fleet(backends: &[RedisBackend], args: &Args) -> Result<(), RunError> {
    let shared = Shared::new(args);
    let spines = backends
        .iter()
        .map(|backend| shared.spine(keyed_by_symbol(Spine::builder().backend(backend.clone()))))
        .collect::<Result<Vec<_>, _>>()?;
    let (orders, progress) = start(args);
    let submitting = submit(
        spines[0].clone(),
        orders,
        Arc::clone(&progress),
        Arc::clone(&shared.trail),
    );
    let (run, submitted) =
        fleet::run_while_producing(&spines, submitting, shared.handled()).await?;
    finish(&shared, args, &progress, run, submitted)
}

/// The orders to submit and the progress bar that follows them.
fn start(args: &Args) -> (Orders, Arc<Progress>) {
    let orders = orders(args);
    let total = match &orders {
        Orders::Generated { count, .. } => Some(*count),
        Orders::Read(feed) => feed.size,
    };
    let unit = if args.stress { "orders" } else { "bytes" };
    (orders, Arc::new(Progress::new(args.quiet, total, unit)))
}

/// After the run: the report, from the shared state.
fn finish(
    shared: &Shared,
    args: &Args,
    progress: &Progress,
    run: RunReport,
    submitted: Result<(), RunError>,
) -> Result<(), RunError> {
    progress.finish();
    submitted?;
    if run.dead_lettered > 0 {
        tracing::warn!(
            dead_lettered = run.dead_lettered,
            "some events could not be handled and were dead-lettered"
        );
    }
    let market = shared.market.lock().unwrap_or_else(PoisonError::into_inner);
    let trail = shared.trail.lock().unwrap_or_else(PoisonError::into_inner);
    let outcome = report::Outcome {
        market: &market,
        trail: &trail,
        settlement_failures: shared.settlement.failures.load(Ordering::Relaxed),
        settlement_tries: SETTLEMENT_TRIES,
        dead_lettered: run.dead_lettered,
        steps: run.steps,
    };
    if args.json {
        println!("{}", report::to_json(&outcome));
    } else {
        print!("{}", report::to_text(&outcome, shared.keep as usize));
    }
    Ok(())
}
