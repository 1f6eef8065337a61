//! The events of the order flow, from submission to audit.
//!
//! Every event can describe itself in one line for the readable report
//! ([`Describe`]); the audit trail keeps those lines in the order the events were handled.

use necrostack::Event;
use serde::{Deserialize, Serialize};

/// An order as the user sent it: every field is the raw text, so that the validator can
/// say everything that is wrong with it.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ORDER_SUBMITTED")]
pub struct OrderSubmitted {
    /// Submission sequence number, from 1; the order's id from here on.
    pub seq: u64,
    pub trader_id: String,
    pub symbol: String,
    pub side: String,
    pub order_type: String,
    pub quantity: String,
    pub price: String,
}

/// Buy or sell, as it travels in events.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    Buy,
    Sell,
}

/// An order that passed validation: typed and normalised.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ORDER_VALIDATED")]
pub struct OrderValidated {
    pub seq: u64,
    /// Trimmed.
    pub trader_id: String,
    /// Upper-cased, one of the listed symbols.
    pub symbol: String,
    pub side: Side,
    /// `Some(limit)` for a LIMIT order, `None` for a MARKET order.
    pub limit_price: Option<f64>,
    pub quantity: u64,
}

/// An order that was not accepted: by the validator (with every reason) or by the
/// matching engine (a MARKET order with no liquidity).
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ORDER_REJECTED")]
pub struct OrderRejected {
    pub seq: u64,
    pub trader_id: String,
    pub symbol: String,
    pub reasons: Vec<String>,
}

/// One fill between an incoming and a resting order, at the resting order's price.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "TRADE_EXECUTED")]
pub struct TradeExecuted {
    /// From 1, in execution order.
    pub trade_id: u64,
    pub symbol: String,
    pub price: f64,
    pub quantity: u64,
    pub buyer_id: String,
    pub seller_id: String,
    /// The incoming order's sequence number.
    pub aggressor_seq: u64,
    /// The resting order's sequence number.
    pub resting_seq: u64,
}

/// The incoming order traded its whole quantity.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ORDER_FILLED")]
pub struct OrderFilled {
    pub seq: u64,
    pub symbol: String,
    pub quantity: u64,
}

/// The incoming order traded part of its quantity; the rest rests in the book (LIMIT)
/// or was dropped (MARKET).
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ORDER_PARTIAL_FILL")]
pub struct OrderPartialFill {
    pub seq: u64,
    pub symbol: String,
    pub filled: u64,
    pub rested: u64,
    pub dropped: u64,
}

/// The incoming LIMIT order traded nothing and rests in the book.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ORDER_QUEUED")]
pub struct OrderQueued {
    pub seq: u64,
    pub symbol: String,
    pub side: Side,
    pub price: f64,
    pub quantity: u64,
}

/// A trade was settled (after any retries).
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "SETTLEMENT_COMPLETE")]
pub struct SettlementComplete {
    pub trade_id: u64,
    pub symbol: String,
    pub price: f64,
    pub quantity: u64,
    pub buyer_id: String,
    pub seller_id: String,
    /// How many tries settlement took.
    pub attempts: u32,
}

/// A trader's position in one symbol went past the risk limit.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "RISK_ALERT")]
pub struct RiskAlert {
    pub trader_id: String,
    pub symbol: String,
    /// Net shares: bought minus sold.
    pub position: i64,
    pub limit: u64,
}

/// One line about an event for the readable report; `None` to leave it out.
pub trait Describe {
    fn describe(&self) -> Option<String> {
        None
    }
}

impl Describe for OrderSubmitted {}
impl Describe for OrderValidated {}

impl Describe for OrderRejected {
    fn describe(&self) -> Option<String> {
        Some(format!(
            "order #{} rejected ({:?} {:?}): {}",
            self.seq,
            self.trader_id,
            self.symbol,
            self.reasons.join("; ")
        ))
    }
}

impl Describe for TradeExecuted {
    fn describe(&self) -> Option<String> {
        Some(format!(
            "trade #{}: {} {} @ {} buyer {} seller {} (order #{} hit #{})",
            self.trade_id,
            self.symbol,
            self.quantity,
            self.price,
            self.buyer_id,
            self.seller_id,
            self.aggressor_seq,
            self.resting_seq
        ))
    }
}

impl Describe for OrderFilled {
    fn describe(&self) -> Option<String> {
        Some(format!(
            "order #{} filled: {} {}",
            self.seq, self.symbol, self.quantity
        ))
    }
}

impl Describe for OrderPartialFill {
    fn describe(&self) -> Option<String> {
        let rest = if self.dropped > 0 {
            format!("{} dropped (no more liquidity)", self.dropped)
        } else {
            format!("{} resting", self.rested)
        };
        Some(format!(
            "order #{} partially filled: {} {} filled, {rest}",
            self.seq, self.symbol, self.filled
        ))
    }
}

impl Describe for OrderQueued {
    fn describe(&self) -> Option<String> {
        Some(format!(
            "order #{} queued: {} {:?} {} @ {}",
            self.seq, self.symbol, self.side, self.quantity, self.price
        ))
    }
}

impl Describe for SettlementComplete {
    fn describe(&self) -> Option<String> {
        Some(format!(
            "trade #{} settled after {} attempt(s)",
            self.trade_id, self.attempts
        ))
    }
}

impl Describe for RiskAlert {
    fn describe(&self) -> Option<String> {
        Some(format!(
            "risk alert: {} holds {} {} (limit {})",
            self.trader_id, self.position, self.symbol, self.limit
        ))
    }
}
