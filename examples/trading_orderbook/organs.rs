//! The organs of the order flow: ValidateOrder, MatchingEngine, Settlement, RiskManager
//! and the AuditTrail, each in the handler form that suits it.

use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use necrostack::{organ, Emit, Emits, Envelope, Event, Handling, Organ};

use crate::book::{self, Book, Kind, Price};
use crate::events::*;
use crate::rng::draw;

/// The symbols the exchange lists.
pub const SYMBOLS: [&str; 7] = ["AAPL", "GOOGL", "MSFT", "AMZN", "TSLA", "NVDA", "META"];
/// The largest quantity one order may ask for.
pub const MAX_QUANTITY: i64 = 10_000;
/// The highest LIMIT price.
pub const MAX_PRICE: f64 = 100_000.0;

/// Locks a mutex even if a panicking handler poisoned it: the spine catches panics, and
/// the data behind these locks stays consistent between statements.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A symbol as the exchange spells it: trimmed and upper-cased. Also the partition key
/// of every event about it, so that one symbol's events are handled in order by one
/// worker at a time (see `main`).
pub fn normalised_symbol(symbol: &str) -> String {
    symbol.trim().to_uppercase()
}

/// Checks every rule and returns the typed order, or all the reasons it is invalid.
pub fn validate(order: &OrderSubmitted) -> Result<OrderValidated, Vec<String>> {
    let mut reasons = Vec::new();
    let trader_id = order.trader_id.trim();
    if trader_id.is_empty() {
        reasons.push("trader_id is empty".to_owned());
    }
    let symbol = normalised_symbol(&order.symbol);
    if !SYMBOLS.contains(&symbol.as_str()) {
        reasons.push(format!(
            "unknown symbol {:?} (listed: {})",
            order.symbol,
            SYMBOLS.join(", ")
        ));
    }
    let side = match order.side.trim().to_uppercase().as_str() {
        "BUY" => Some(Side::Buy),
        "SELL" => Some(Side::Sell),
        _ => {
            reasons.push(format!("side must be BUY or SELL, not {:?}", order.side));
            None
        }
    };
    let market = match order.order_type.trim().to_uppercase().as_str() {
        "MARKET" => Some(true),
        "LIMIT" => Some(false),
        _ => {
            reasons.push(format!(
                "order_type must be LIMIT or MARKET, not {:?}",
                order.order_type
            ));
            None
        }
    };
    let quantity = match order.quantity.trim().parse::<i64>() {
        Ok(q) if (1..=MAX_QUANTITY).contains(&q) => Some(q as u64),
        _ => {
            reasons.push(format!(
                "quantity must be an integer in 1..={MAX_QUANTITY}, not {:?}",
                order.quantity
            ));
            None
        }
    };
    // A MARKET order's price is ignored; a LIMIT order's must be in (0, MAX_PRICE].
    let limit_price = match market {
        Some(true) => Some(None),
        Some(false) => match order.price.trim().parse::<f64>() {
            Ok(p) if p > 0.0 && p <= MAX_PRICE => Some(Some(p)),
            _ => {
                reasons.push(format!(
                    "a LIMIT price must be a number in (0, {MAX_PRICE}], not {:?}",
                    order.price
                ));
                None
            }
        },
        None => None,
    };
    match (side, quantity, limit_price) {
        (Some(side), Some(quantity), Some(limit_price)) if reasons.is_empty() => {
            Ok(OrderValidated {
                seq: order.seq,
                trader_id: trader_id.to_owned(),
                symbol,
                side,
                limit_price,
                quantity,
            })
        }
        _ => Err(reasons),
    }
}

/// ValidateOrder, a sync function organ returning a tuple: exactly one of the two.
#[organ(listens_to = OrderSubmitted, name = "ValidateOrder")]
pub fn validate_order(order: &OrderSubmitted) -> (Option<OrderValidated>, Option<OrderRejected>) {
    match validate(order) {
        Ok(valid) => (Some(valid), None),
        Err(reasons) => (
            None,
            Some(OrderRejected {
                seq: order.seq,
                trader_id: order.trader_id.clone(),
                symbol: order.symbol.clone(),
                reasons,
            }),
        ),
    }
}

/// The books and the trades so far; shared with `main` for the report.
#[derive(Debug, Default)]
pub struct Market {
    /// One book per symbol that has seen a valid order.
    pub books: BTreeMap<String, Book>,
    /// Trades executed so far.
    pub trade_count: u64,
    /// Every trade, in execution order, when kept (for `--json`, which lists them all).
    pub trades: Vec<TradeExecuted>,
    pub keep_trades: bool,
}

/// MatchingEngine, a stateful sync organ: matches each valid order in its symbol's book.
pub struct MatchingEngine {
    market: Arc<Mutex<Market>>,
}

impl MatchingEngine {
    /// An engine over `market` (empty books to start with).
    pub fn new(market: Arc<Mutex<Market>>) -> Self {
        MatchingEngine { market }
    }
}

#[organ(
    listens_to = OrderValidated,
    name = "MatchingEngine",
    emits = [TradeExecuted, OrderFilled, OrderPartialFill, OrderQueued, OrderRejected]
)]
impl MatchingEngine {
    fn handle(&self, order: &OrderValidated) -> Emit {
        let mut market = lock(&self.market);
        let side = match order.side {
            Side::Buy => book::Side::Buy,
            Side::Sell => book::Side::Sell,
        };
        let kind = match order.limit_price {
            Some(price) => Kind::Limit(Price(price)),
            None => Kind::Market,
        };
        let execution = market
            .books
            .entry(order.symbol.clone())
            .or_default()
            .submit(book::Order {
                id: order.seq,
                trader: order.trader_id.clone(),
                side,
                kind,
                quantity: order.quantity,
            });
        let mut emit = Emit::new();
        for fill in &execution.fills {
            let (buyer_id, seller_id) = match order.side {
                Side::Buy => (order.trader_id.clone(), fill.resting_trader.clone()),
                Side::Sell => (fill.resting_trader.clone(), order.trader_id.clone()),
            };
            let trade = TradeExecuted {
                trade_id: market.trade_count + 1,
                symbol: order.symbol.clone(),
                price: fill.price,
                quantity: fill.quantity,
                buyer_id,
                seller_id,
                aggressor_seq: order.seq,
                resting_seq: fill.resting_id,
            };
            market.trade_count += 1;
            if market.keep_trades {
                market.trades.push(trade.clone());
            }
            emit.push(trade);
        }
        let filled = execution.filled();
        if filled == order.quantity {
            emit.push(OrderFilled {
                seq: order.seq,
                symbol: order.symbol.clone(),
                quantity: filled,
            });
        } else if filled > 0 {
            emit.push(OrderPartialFill {
                seq: order.seq,
                symbol: order.symbol.clone(),
                filled,
                rested: execution.rested,
                dropped: execution.dropped,
            });
        } else if let Some(price) = order.limit_price {
            emit.push(OrderQueued {
                seq: order.seq,
                symbol: order.symbol.clone(),
                side: order.side,
                price,
                quantity: order.quantity,
            });
        } else {
            emit.push(OrderRejected {
                seq: order.seq,
                trader_id: order.trader_id.clone(),
                symbol: order.symbol.clone(),
                reasons: vec!["MARKET order with no liquidity on the other side".to_owned()],
            });
        }
        emit
    }
}

/// Settlement failed this time; the spine's retry policy tries again.
#[derive(Debug, thiserror::Error)]
#[error("settlement of trade #{trade_id} failed (attempt {attempt}): clearing house timed out")]
pub struct SettlementError {
    trade_id: u64,
    attempt: u32,
}

/// Settlement, a stateful async organ: talks to a (simulated) clearing house that takes
/// `latency` and fails a seeded fraction of attempts.
///
/// Clones share their state: the workers of a `--workers` run each register a clone,
/// and a retry counts its attempts wherever it is handled.
#[derive(Clone)]
pub struct Settlement {
    seed: u64,
    failure_rate: f64,
    latency: Duration,
    /// Attempts per trade id, so that each retry draws afresh.
    attempts: Arc<Mutex<HashMap<u64, u32>>>,
    /// Failed attempts, for the report.
    pub failures: Arc<AtomicU64>,
}

impl Settlement {
    /// A clearing house failing `failure_rate` of attempts (drawn from `seed`).
    pub fn new(seed: u64, failure_rate: f64, latency: Duration) -> Self {
        Settlement {
            seed,
            failure_rate,
            latency,
            attempts: Arc::new(Mutex::new(HashMap::new())),
            failures: Arc::new(AtomicU64::new(0)),
        }
    }
}

#[organ(listens_to = TradeExecuted, name = "Settlement")]
impl Settlement {
    async fn handle(&self, trade: &TradeExecuted) -> Result<SettlementComplete, SettlementError> {
        let attempt = {
            let mut attempts = lock(&self.attempts);
            let n = attempts.entry(trade.trade_id).or_insert(0);
            *n += 1;
            *n
        };
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if draw(self.seed, &[trade.trade_id, u64::from(attempt)]) < self.failure_rate {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(SettlementError {
                trade_id: trade.trade_id,
                attempt,
            });
        }
        lock(&self.attempts).remove(&trade.trade_id);
        Ok(SettlementComplete {
            trade_id: trade.trade_id,
            symbol: trade.symbol.clone(),
            price: trade.price,
            quantity: trade.quantity,
            buyer_id: trade.buyer_id.clone(),
            seller_id: trade.seller_id.clone(),
            attempts: attempt,
        })
    }
}

/// RiskManager, a stateful sync organ: net position per trader and symbol, with an
/// alert when one moves past the limit.
///
/// Clones share the positions, like [`Settlement`]'s clones share their attempts.
#[derive(Clone)]
pub struct RiskManager {
    limit: u64,
    positions: Arc<Mutex<BTreeMap<(String, String), i64>>>,
}

impl RiskManager {
    /// Alerts on positions beyond ±`limit` shares.
    pub fn new(limit: u64) -> Self {
        RiskManager {
            limit,
            positions: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }
}

#[organ(listens_to = SettlementComplete, name = "RiskManager")]
impl RiskManager {
    fn handle(&self, settled: &SettlementComplete) -> Vec<RiskAlert> {
        let mut positions = lock(&self.positions);
        let quantity = i64::try_from(settled.quantity).unwrap_or(i64::MAX);
        let mut alerts = Vec::new();
        for (trader, change) in [
            (&settled.buyer_id, quantity),
            (&settled.seller_id, -quantity),
        ] {
            let position = positions
                .entry((trader.clone(), settled.symbol.clone()))
                .or_insert(0);
            let before = position.unsigned_abs();
            *position = position.saturating_add(change);
            // Alert when the position moves out past the limit, not on every trade there.
            if position.unsigned_abs() > self.limit && position.unsigned_abs() > before {
                alerts.push(RiskAlert {
                    trader_id: trader.clone(),
                    symbol: settled.symbol.clone(),
                    position: *position,
                    limit: self.limit,
                });
            }
        }
        alerts
    }
}

/// What the audit trail saw: a count per event type and one line per notable event, the
/// first `keep` of each type (so that a long input does not fill memory with lines).
#[derive(Debug, Default)]
pub struct AuditTrail {
    /// Events handled, by type name.
    pub counts: BTreeMap<&'static str, u64>,
    /// Events that had a line to describe them, by type name.
    pub described: BTreeMap<&'static str, u64>,
    /// (event type, description), in handling order, at most `keep` per type.
    pub lines: Vec<(&'static str, String)>,
    pub keep: u64,
}

impl AuditTrail {
    /// A trail keeping the first `keep` lines of each event type.
    pub fn new(keep: u64) -> Self {
        AuditTrail {
            keep,
            ..AuditTrail::default()
        }
    }
}

/// AuditTrail: one organ per event type, all writing to one shared trail.
///
/// An organ listens to one type, so auditing every type takes one organ each. `Audit`
/// is generic, which `#[organ]` does not allow, so it implements [`Organ`] by hand:
/// the trait is small and public for exactly this kind of wrapper.
pub struct Audit<E> {
    trail: Arc<Mutex<AuditTrail>>,
    _event: PhantomData<fn() -> E>,
}

impl<E> Audit<E> {
    /// An auditor of `E` events writing to `trail`.
    pub fn new(trail: &Arc<Mutex<AuditTrail>>) -> Self {
        Audit {
            trail: Arc::clone(trail),
            _event: PhantomData,
        }
    }
}

impl<E: Event + Describe> Organ for Audit<E> {
    type Event = E;
    const NAME: &'static str = "AuditTrail";

    fn call<'a>(&'a self, event: &'a Envelope<E>) -> Handling<'a> {
        let mut trail = lock(&self.trail);
        *trail.counts.entry(E::NAME).or_insert(0) += 1;
        if let Some(line) = event.payload().describe() {
            let described = trail.described.entry(E::NAME).or_insert(0);
            *described += 1;
            if *described <= trail.keep {
                trail.lines.push((E::NAME, line));
            }
        }
        Handling::Ready(Ok(Emit::new()))
    }

    /// A hand-written organ says what it emits (the default is "unknown"): nothing.
    fn emits() -> Emits {
        Emits::known([])
    }
}
