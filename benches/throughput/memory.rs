//! The in-memory workloads and their baseline: a tokio unbounded channel carrying one
//! boxed value per event (send, then receive), the cheapest way to pass an event from one
//! piece of code to another through a queue in tokio.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use necrostack::{organ, Event, InMemoryBackend, Spine};
use serde::{Deserialize, Serialize};

use super::Timed;

/// Events in the chain: one organ re-emits each tick until `CHAIN_N`.
pub const CHAIN_N: u64 = 1_000_000;
/// Orders pre-loaded for the pipeline (4 events each).
pub const PIPELINE_N: u64 = 250_000;
/// Events in the fan-out, each heard by `FANOUT_ORGANS` organs.
pub const FANOUT_N: u64 = 500_000;
/// Organs listening to each fan-out event.
pub const FANOUT_ORGANS: usize = 8;

const BASELINE: &str = "tokio_unbounded_channel";

/// Runs the named workload after its baseline; `reset_peak` is called between the two.
/// `scale` shrinks N (for profiling under valgrind); the reported runs use 1.
pub async fn run(workload: &str, scale: f64, reset_peak: fn()) -> Timed {
    let scaled = |n: u64| ((n as f64 * scale) as u64).max(1);
    match workload {
        "chain" => {
            let n = scaled(CHAIN_N);
            let baseline = channel_baseline(n, |n| Tick { n }).await;
            reset_peak();
            chain(n, baseline).await
        }
        "pipeline" => {
            let n = scaled(PIPELINE_N);
            let baseline = channel_baseline(4 * n, order).await;
            reset_peak();
            pipeline(n, baseline).await
        }
        "fanout" => {
            let n = scaled(FANOUT_N);
            let baseline = channel_baseline(n, |n| Omen { n }).await;
            reset_peak();
            fanout(n, baseline).await
        }
        other => panic!("unknown memory workload {other}"),
    }
}

/// Events per second through a tokio unbounded channel: per event, box a value like the
/// workload's event, send it, receive it.
pub async fn channel_baseline<T: Send + 'static>(events: u64, make: impl Fn(u64) -> T) -> f64 {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Box<T>>();
    let start = Instant::now();
    for n in 0..events {
        tx.send(Box::new(make(n))).expect("receiver alive");
        black_box(rx.recv().await.expect("sender alive"));
    }
    events as f64 / start.elapsed().as_secs_f64()
}

// ---- chain -------------------------------------------------------------------------

/// One hop of the chain.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Tick {
    pub n: u64,
}

/// Re-emits each tick with `n + 1` until `n + 1` reaches `until`.
pub struct Chain {
    pub until: u64,
}

#[organ(listens_to = Tick)]
impl Chain {
    fn handle(&self, tick: &Tick) -> Option<Tick> {
        let next = tick.n + 1;
        (next < self.until).then_some(Tick { n: next })
    }
}

async fn chain(n: u64, baseline_per_sec: f64) -> Timed {
    let spine = Spine::builder()
        .organ(Chain { until: n })
        .max_steps(n as usize)
        .depth_limit(None) // the chain is one causal chain of n hops, on purpose
        .build()
        .expect("valid spine");
    let start = Instant::now();
    spine.emit(Tick { n: 0 }).await.expect("emit");
    let report = spine.run_until_idle().await.expect("run");
    let elapsed = start.elapsed();
    assert_eq!(report.steps as u64, n, "every tick taken once");
    assert_eq!(report.succeeded as u64, n, "every tick handled once");
    assert_eq!(
        report.emitted as u64,
        n - 1,
        "every tick but the last re-emitted"
    );
    assert_eq!(report.failed, 0);
    memory_timed(n, elapsed, baseline_per_sec)
}

// ---- pipeline ----------------------------------------------------------------------

/// An order as it arrives.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OrderPlaced {
    pub order: u64,
    pub quantity: u32,
    pub unit_cents: u64,
}

/// An order whose fields were checked.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OrderValidated {
    pub order: u64,
    pub quantity: u32,
    pub unit_cents: u64,
}

/// An order with its total.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OrderPriced {
    pub order: u64,
    pub total_cents: u64,
}

/// An order that was charged.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OrderBilled {
    pub order: u64,
    pub total_cents: u64,
}

/// Why an order is refused (never, in this workload; the path is the realistic one).
#[derive(Debug)]
pub struct InvalidOrder(pub u64);

impl std::fmt::Display for InvalidOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "order {} has no items", self.0)
    }
}

impl std::error::Error for InvalidOrder {}

/// The `n`th pre-loaded order.
pub fn order(n: u64) -> OrderPlaced {
    OrderPlaced {
        order: n,
        quantity: 1 + (n % 5) as u32,
        unit_cents: 199 + n % 1000,
    }
}

#[organ(listens_to = OrderPlaced)]
pub fn validate(order: &OrderPlaced) -> Result<OrderValidated, InvalidOrder> {
    if order.quantity == 0 {
        return Err(InvalidOrder(order.order));
    }
    Ok(OrderValidated {
        order: order.order,
        quantity: order.quantity,
        unit_cents: order.unit_cents,
    })
}

#[organ(listens_to = OrderValidated)]
pub fn price(order: &OrderValidated) -> OrderPriced {
    OrderPriced {
        order: order.order,
        total_cents: u64::from(order.quantity) * order.unit_cents,
    }
}

#[organ(listens_to = OrderPriced)]
pub fn bill(order: &OrderPriced) -> OrderBilled {
    OrderBilled {
        order: order.order,
        total_cents: order.total_cents,
    }
}

/// The ledger at the end of the pipeline: counts orders and revenue, emits nothing.
#[derive(Default, Clone)]
pub struct Record {
    pub orders: Arc<AtomicU64>,
    pub revenue: Arc<AtomicU64>,
}

#[organ(listens_to = OrderBilled)]
impl Record {
    fn handle(&self, billed: &OrderBilled) {
        self.orders.fetch_add(1, Ordering::Relaxed);
        self.revenue
            .fetch_add(billed.total_cents, Ordering::Relaxed);
    }
}

async fn pipeline(n: u64, baseline_per_sec: f64) -> Timed {
    let record = Record::default();
    let spine = Spine::builder()
        .organ(validate)
        .organ(price)
        .organ(bill)
        .organ(record.clone())
        .max_steps((4 * n) as usize)
        .build()
        .expect("valid spine");
    spine.emit_all((0..n).map(order)).await.expect("pre-load");
    let start = Instant::now();
    let report = spine.run_until_idle().await.expect("run");
    let elapsed = start.elapsed();
    let expected_revenue: u64 = (0..n)
        .map(order)
        .map(|o| u64::from(o.quantity) * o.unit_cents)
        .sum();
    assert_eq!(report.steps as u64, 4 * n);
    assert_eq!(report.succeeded as u64, 4 * n);
    assert_eq!(report.failed, 0);
    assert_eq!(record.orders.load(Ordering::Relaxed), n);
    assert_eq!(record.revenue.load(Ordering::Relaxed), expected_revenue);
    memory_timed(4 * n, elapsed, baseline_per_sec)
}

// ---- fanout ------------------------------------------------------------------------

/// An event every fan-out organ hears.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Omen {
    pub n: u64,
}

/// One of the fan-out listeners: sums what it hears.
#[derive(Default, Clone)]
pub struct Watcher {
    pub sum: Arc<AtomicU64>,
}

#[organ(listens_to = Omen)]
impl Watcher {
    fn handle(&self, omen: &Omen) {
        self.sum.fetch_add(omen.n, Ordering::Relaxed);
    }
}

async fn fanout(n: u64, baseline_per_sec: f64) -> Timed {
    let watchers: Vec<Watcher> = (0..FANOUT_ORGANS).map(|_| Watcher::default()).collect();
    let mut builder = Spine::builder().max_steps(n as usize);
    for watcher in &watchers {
        builder = builder.organ(watcher.clone());
    }
    let spine: Spine<InMemoryBackend> = builder.build().expect("valid spine");
    spine
        .emit_all((0..n).map(|n| Omen { n }))
        .await
        .expect("pre-load");
    let start = Instant::now();
    let report = spine.run_until_idle().await.expect("run");
    let elapsed = start.elapsed();
    assert_eq!(report.steps as u64, n);
    assert_eq!(report.succeeded as u64, n * FANOUT_ORGANS as u64);
    assert_eq!(report.failed, 0);
    let expected = n * (n - 1) / 2;
    for watcher in &watchers {
        assert_eq!(watcher.sum.load(Ordering::Relaxed), expected);
    }
    memory_timed(n, elapsed, baseline_per_sec)
}

fn memory_timed(events: u64, elapsed: std::time::Duration, baseline_per_sec: f64) -> Timed {
    Timed {
        workers: 1,
        events,
        elapsed,
        baseline: BASELINE,
        baseline_per_sec,
        p50_hop_us: None,
        p99_hop_us: None,
    }
}
