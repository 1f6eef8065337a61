//! The matching engine: one limit order book per symbol with price-time priority.
//!
//! This file uses only `std`, so that the property tests in `tests/` can include it with
//! `#[path]` and drive the very code the example runs.
//!
//! Rules: a BUY matches the lowest ask first, a SELL the highest bid first; at one price
//! the order that rested first fills first; a trade executes at the resting order's
//! price. A LIMIT order stops matching when the best opposite price is worse than its
//! limit and its remainder rests in the book. A MARKET order matches while there is
//! liquidity; its remainder is dropped (and if nothing filled, the order is rejected).
#![allow(dead_code)] // the example and the property tests each use a part of it

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};

/// Which side of the book an order is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Wants to buy: rests among the bids.
    Buy,
    /// Wants to sell: rests among the asks.
    Sell,
}

/// A price: finite and above zero (the validator checks), ordered by value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price(pub f64);

impl Eq for Price {}

impl PartialOrd for Price {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Price {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A LIMIT order with its limit price, or a MARKET order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Matches up to `Price`, then rests.
    Limit(Price),
    /// Matches whatever is there; the remainder is dropped.
    Market,
}

/// A valid order for one book.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Unique per run; the submission sequence number.
    pub id: u64,
    /// Who sent it.
    pub trader: String,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub kind: Kind,
    /// How much, at least 1.
    pub quantity: u64,
}

/// One match between the incoming order and one resting order.
#[derive(Debug, Clone, PartialEq)]
pub struct Fill {
    /// The resting order's price.
    pub price: f64,
    /// How much traded.
    pub quantity: u64,
    /// The resting order's id.
    pub resting_id: u64,
    /// The resting order's trader.
    pub resting_trader: String,
}

/// What became of an incoming order.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    /// The fills, in execution order.
    pub fills: Vec<Fill>,
    /// Quantity left resting in the book (LIMIT only).
    pub rested: u64,
    /// Quantity dropped (MARKET only): no more liquidity.
    pub dropped: u64,
}

impl Execution {
    /// The quantity that traded.
    pub fn filled(&self) -> u64 {
        self.fills.iter().map(|f| f.quantity).sum()
    }
}

#[derive(Debug, Clone)]
struct Resting {
    id: u64,
    trader: String,
    remaining: u64,
}

/// One symbol's book: price levels, each a FIFO queue of resting orders.
#[derive(Debug, Clone, Default)]
pub struct Book {
    bids: BTreeMap<Price, VecDeque<Resting>>,
    asks: BTreeMap<Price, VecDeque<Resting>>,
}

impl Book {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Matches `order` against the opposite side, then rests or drops the remainder.
    pub fn submit(&mut self, order: Order) -> Execution {
        let mut remaining = order.quantity;
        let mut fills = Vec::new();
        while remaining > 0 {
            let opposite = match order.side {
                Side::Buy => self.asks.first_entry(),
                Side::Sell => self.bids.last_entry(),
            };
            let Some(mut level) = opposite else { break };
            let price = *level.key();
            let crosses = match (order.kind, order.side) {
                (Kind::Market, _) => true,
                (Kind::Limit(limit), Side::Buy) => price <= limit,
                (Kind::Limit(limit), Side::Sell) => price >= limit,
            };
            if !crosses {
                break;
            }
            let queue = level.get_mut();
            while remaining > 0 {
                let Some(front) = queue.front_mut() else {
                    break;
                };
                let quantity = remaining.min(front.remaining);
                fills.push(Fill {
                    price: price.0,
                    quantity,
                    resting_id: front.id,
                    resting_trader: front.trader.clone(),
                });
                remaining -= quantity;
                front.remaining -= quantity;
                if front.remaining == 0 {
                    queue.pop_front();
                }
            }
            if queue.is_empty() {
                level.remove();
            }
        }
        let (rested, dropped) = match order.kind {
            Kind::Limit(limit) if remaining > 0 => {
                let side = match order.side {
                    Side::Buy => &mut self.bids,
                    Side::Sell => &mut self.asks,
                };
                side.entry(limit).or_default().push_back(Resting {
                    id: order.id,
                    trader: order.trader,
                    remaining,
                });
                (remaining, 0)
            }
            Kind::Limit(_) => (0, 0),
            Kind::Market => (0, remaining),
        };
        Execution {
            fills,
            rested,
            dropped,
        }
    }

    /// The highest bid price.
    pub fn best_bid(&self) -> Option<f64> {
        self.bids.keys().next_back().map(|p| p.0)
    }

    /// The lowest ask price.
    pub fn best_ask(&self) -> Option<f64> {
        self.asks.keys().next().map(|p| p.0)
    }

    /// Bid levels as (price, total resting quantity), best (highest) first.
    pub fn bid_levels(&self) -> Vec<(f64, u64)> {
        self.bids.iter().rev().map(level_total).collect()
    }

    /// Ask levels as (price, total resting quantity), best (lowest) first.
    pub fn ask_levels(&self) -> Vec<(f64, u64)> {
        self.asks.iter().map(level_total).collect()
    }

    /// All quantity resting on both sides.
    pub fn resting_quantity(&self) -> u64 {
        self.bids
            .values()
            .chain(self.asks.values())
            .flatten()
            .map(|r| r.remaining)
            .sum()
    }
}

fn level_total((price, queue): (&Price, &VecDeque<Resting>)) -> (f64, u64) {
    (price.0, queue.iter().map(|r| r.remaining).sum())
}
