//! The output: a readable report, or with `--json` exactly one JSON object on stdout.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::events::TradeExecuted;
use crate::organs::{AuditTrail, Market};

/// What a run produced, gathered from the organs' shared state after the run.
pub struct Outcome<'a> {
    pub market: &'a Market,
    pub trail: &'a AuditTrail,
    /// Settlement attempts that failed (and were retried or dead-lettered).
    pub settlement_failures: u64,
    /// The most tries the retry policy allows.
    pub settlement_tries: u32,
    /// Events moved to the dead-letter store.
    pub dead_lettered: usize,
    /// Events the spine took from the backend.
    pub steps: usize,
}

impl Outcome<'_> {
    fn count(&self, event_type: &str) -> u64 {
        self.trail.counts.get(event_type).copied().unwrap_or(0)
    }
}

/// The JSON summary: trades grouped by symbol (symbols in alphabetical order), each
/// symbol's trades in execution order; the number of ORDER_REJECTED events; and each
/// book's price levels, best first.
///
/// Grouped by symbol because that is the order every run agrees on: with `--workers`
/// the symbols' books are matched by different workers at once, so trades of different
/// symbols interleave differently from run to run, while each symbol's own sequence is
/// fixed by the order its orders were submitted in.
pub fn to_json(outcome: &Outcome<'_>) -> Value {
    let mut by_symbol: Vec<&TradeExecuted> = outcome.market.trades.iter().collect();
    by_symbol.sort_by(|a, b| a.symbol.cmp(&b.symbol)); // stable: execution order kept
    let trades: Vec<Value> = by_symbol.into_iter().map(trade_json).collect();
    let books: BTreeMap<&str, Value> = outcome
        .market
        .books
        .iter()
        .map(|(symbol, book)| {
            let levels = |levels: Vec<(f64, u64)>| -> Vec<Value> {
                levels.into_iter().map(|(p, q)| json!([p, q])).collect()
            };
            (
                symbol.as_str(),
                json!({"bids": levels(book.bid_levels()), "asks": levels(book.ask_levels())}),
            )
        })
        .collect();
    json!({
        "trades": trades,
        "rejected": outcome.count("ORDER_REJECTED"),
        "books": books,
    })
}

fn trade_json(trade: &TradeExecuted) -> Value {
    json!({
        "symbol": trade.symbol,
        "price": trade.price,
        "quantity": trade.quantity,
        "buyer_id": trade.buyer_id,
        "seller_id": trade.seller_id,
    })
}

/// The readable report. Long sections show their first `limit` lines, books their best
/// `limit` levels per side.
pub fn to_text(outcome: &Outcome<'_>, limit: usize) -> String {
    let mut out = String::new();
    let section = |out: &mut String, title: &str, types: &[&str]| {
        let total: u64 = types
            .iter()
            .filter_map(|t| outcome.trail.described.get(t))
            .sum();
        let lines = outcome
            .trail
            .lines
            .iter()
            .filter(|(t, _)| types.contains(t))
            .map(|(_, line)| line)
            .take(limit);
        out.push_str(&format!("{title} ({total}):\n"));
        let mut shown = 0;
        for line in lines {
            out.push_str(&format!("  {line}\n"));
            shown += 1;
        }
        if total > shown {
            out.push_str(&format!("  ... and {} more\n", total - shown));
        }
    };
    section(&mut out, "Trades", &["TRADE_EXECUTED"]);
    section(
        &mut out,
        "Order outcomes, as decided",
        &[
            "ORDER_FILLED",
            "ORDER_PARTIAL_FILL",
            "ORDER_QUEUED",
            "ORDER_REJECTED",
        ],
    );
    section(&mut out, "Settlements", &["SETTLEMENT_COMPLETE"]);
    out.push_str(&format!(
        "  {} settlement attempt(s) failed (each retried with backoff, up to {} tries); {} event(s) dead-lettered\n",
        outcome.settlement_failures, outcome.settlement_tries, outcome.dead_lettered
    ));
    section(&mut out, "Risk alerts", &["RISK_ALERT"]);
    out.push_str("Books:\n");
    for (symbol, book) in &outcome.market.books {
        let show = |levels: Vec<(f64, u64)>| -> String {
            if levels.is_empty() {
                return "-".to_owned();
            }
            let mut text = levels
                .iter()
                .take(limit)
                .map(|(p, q)| format!("{q}@{p}"))
                .collect::<Vec<_>>()
                .join(" ");
            if levels.len() > limit {
                text.push_str(&format!(" ... and {} more levels", levels.len() - limit));
            }
            text
        };
        out.push_str(&format!(
            "  {symbol:<6} bids {}\n  {:<6} asks {}\n",
            show(book.bid_levels()),
            "",
            show(book.ask_levels())
        ));
    }
    out.push_str(&format!("Audit trail ({} events):\n", outcome.steps));
    for (event_type, count) in &outcome.trail.counts {
        out.push_str(&format!("  {event_type:<20} {count}\n"));
    }
    out
}
