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
//! cargo run --example trading_orderbook                              # built-in sample
//! cargo run --example trading_orderbook -- --file orders.json        # or orders.csv
//! cargo run --example trading_orderbook -- --stress --orders 5000 --seed 7
//! cargo run --example trading_orderbook -- --file orders.csv --json  # one JSON object
//! cargo run --example trading_orderbook -- --redis redis://127.0.0.1:6379
//! ```
//!
//! With `--redis URL` the same flow runs on a Redis stream (a fresh stream
//! `trading_orderbook:<uuid>` per run unless `--stream NAME` is given, so a rerun never
//! sees the events of an earlier one); every event then travels as JSON through Redis.
//!
//! Orders are handled in submission order: the spine runs with concurrency 1, so its
//! queue is strictly FIFO and the validated orders reach the engine in the order the
//! submissions were emitted. Symbols, sides and order types are upper-cased and trimmed
//! before they are checked; the trader id is trimmed.

mod book;
#[path = "../support/cli.rs"]
mod cli;
#[path = "../support/csv.rs"]
mod csv;
mod events;
#[path = "../support/file_input.rs"]
mod file_input;
mod input;
#[path = "../support/logs.rs"]
mod logs;
mod organs;
#[path = "../support/redis_backend.rs"]
mod redis_backend;
mod report;
#[path = "../support/rng.rs"]
mod rng;

use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use necrostack::{Backend, FailurePolicy, InMemoryBackend, RetryPolicy, Spine};

use events::*;
use organs::{Audit, AuditTrail, Market, MatchingEngine, RiskManager, Settlement};

/// The order file used when neither `--file` nor `--stress` is given.
const SAMPLE: &str = include_str!("../data/orderbook_sample.json");

/// Tries per failing handling (only Settlement fails) before the event is dead-lettered.
const SETTLEMENT_TRIES: u32 = 5;

const USAGE: &str = "usage: trading_orderbook [--file PATH | --stress [--orders N]] [--seed S]
                         [--json] [--settlement-failure-rate F] [--latency-ms MS]
                         [--risk-limit SHARES] [--redis URL [--stream NAME]]";

/// The command line.
struct Args {
    file: Option<String>,
    stress: bool,
    orders: u64,
    seed: u64,
    json: bool,
    failure_rate: f64,
    latency: Duration,
    risk_limit: u64,
    redis: Option<String>,
    stream: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        file: None,
        stress: false,
        orders: 1000,
        seed: 42,
        json: false,
        failure_rate: 0.1,
        latency: Duration::from_millis(1),
        risk_limit: 1000,
        redis: None,
        stream: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--file" => args.file = Some(value("--file")?),
            "--stress" => args.stress = true,
            "--orders" => args.orders = cli::number(&value("--orders")?, "--orders")?,
            "--seed" => args.seed = cli::number(&value("--seed")?, "--seed")?,
            "--json" => args.json = true,
            "--settlement-failure-rate" => {
                let rate = value("--settlement-failure-rate")?;
                args.failure_rate = match rate.parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => r,
                    _ => {
                        return Err(format!(
                            "--settlement-failure-rate must be in [0, 1], not {rate:?}"
                        ))
                    }
                };
            }
            "--latency-ms" => {
                args.latency =
                    Duration::from_millis(cli::number(&value("--latency-ms")?, "--latency-ms")?)
            }
            "--redis" => args.redis = Some(value("--redis")?),
            "--stream" => args.stream = Some(value("--stream")?),
            "--risk-limit" => {
                args.risk_limit = cli::number(&value("--risk-limit")?, "--risk-limit")?
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.stress && args.file.is_some() {
        return Err(format!("--file and --stress exclude each other\n{USAGE}"));
    }
    Ok(args)
}

/// The orders to submit, from the file, the generator or the built-in sample.
fn orders(args: &Args) -> Result<Vec<OrderSubmitted>, String> {
    if args.stress {
        return Ok(input::generate(args.orders, args.seed));
    }
    match &args.file {
        Some(path) => input::read_file(path).map_err(|e| e.to_string()),
        None => input::parse("built-in sample", SAMPLE).map_err(|e| e.to_string()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    logs::init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("trading_orderbook: {message}");
            return ExitCode::from(2);
        }
    };
    let orders = match orders(&args) {
        Ok(orders) => orders,
        Err(message) => {
            eprintln!("trading_orderbook: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&args, orders).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("trading_orderbook: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the flow in memory, or on Redis with `--redis`.
async fn run(args: &Args, orders: Vec<OrderSubmitted>) -> Result<(), necrostack::Error> {
    match &args.redis {
        None => run_on(InMemoryBackend::new(), args, orders).await,
        Some(url) => {
            let backend =
                redis_backend::connect("trading_orderbook", url, args.stream.as_deref()).await?;
            run_on(backend, args, orders).await
        }
    }
}

/// The flow on `backend`; the report comes from the organs' shared state.
async fn run_on<B: Backend>(
    backend: B,
    args: &Args,
    orders: Vec<OrderSubmitted>,
) -> Result<(), necrostack::Error> {
    let market = Arc::new(Mutex::new(Market::default()));
    let trail = Arc::new(Mutex::new(AuditTrail::default()));
    let settlement = Settlement::new(args.seed, args.failure_rate, args.latency);
    let settlement_failures = Arc::clone(&settlement.failures);
    // Each order yields at most 2 order events, 2 fills (every fill completes the
    // incoming or a resting order) and per fill 4 events (trade, settlement, 2 alerts).
    let max_steps = 16 * orders.len() + 100;
    let retry = RetryPolicy::new(SETTLEMENT_TRIES)
        .backoff(Duration::from_millis(2), Duration::from_millis(50));
    let spine = Spine::builder()
        .backend(backend)
        .organ(organs::validate_order)
        .organ(MatchingEngine::new(Arc::clone(&market)))
        .organ(settlement)
        .organ(RiskManager::new(args.risk_limit))
        .organ(Audit::<OrderSubmitted>::new(&trail))
        .organ(Audit::<OrderValidated>::new(&trail))
        .organ(Audit::<OrderRejected>::new(&trail))
        .organ(Audit::<TradeExecuted>::new(&trail))
        .organ(Audit::<OrderFilled>::new(&trail))
        .organ(Audit::<OrderPartialFill>::new(&trail))
        .organ(Audit::<OrderQueued>::new(&trail))
        .organ(Audit::<SettlementComplete>::new(&trail))
        .organ(Audit::<RiskAlert>::new(&trail))
        .concurrency(1) // strict FIFO: orders are matched in submission order
        .max_steps(max_steps)
        .failure_policy(FailurePolicy::Retry(retry))
        .build()?;
    tracing::info!(orders = orders.len(), "submitting orders");
    spine.emit_all(orders).await?;
    let run = spine.run_until_idle().await?;
    if run.dead_lettered > 0 {
        tracing::warn!(
            dead_lettered = run.dead_lettered,
            "some events could not be handled and were dead-lettered"
        );
    }
    let market = market.lock().unwrap_or_else(PoisonError::into_inner);
    let trail = trail.lock().unwrap_or_else(PoisonError::into_inner);
    let outcome = report::Outcome {
        market: &market,
        trail: &trail,
        settlement_failures: settlement_failures.load(std::sync::atomic::Ordering::Relaxed),
        settlement_tries: SETTLEMENT_TRIES,
        dead_lettered: run.dead_lettered,
        steps: run.steps,
    };
    if args.json {
        println!("{}", report::to_json(&outcome));
    } else {
        let limit = if args.stress { 10 } else { usize::MAX };
        print!("{}", report::to_text(&outcome, limit));
    }
    Ok(())
}
