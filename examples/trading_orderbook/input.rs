//! Where orders come from: a JSON or CSV file read as it is handled, or a seeded
//! generator for stress runs.
//!
//! Files are read leniently and judged strictly: every entry becomes an
//! `ORDER_SUBMITTED` with its fields as text, so a bad field is rejected by the validator
//! with a reason instead of being lost here. Only a file that is not an order file at all
//! (unreadable, not JSON, no `orders` list, a CSV header without the columns, a broken
//! quote) is an error, and it names the line or the entry.

use crate::events::OrderSubmitted;
use crate::file_input::{as_text, Fields, Shape};
use crate::organs::SYMBOLS;
use crate::rng::Rng;

/// The columns of an order CSV, and the fields of a JSON order.
pub const FIELDS: [&str; 6] = [
    "trader_id",
    "symbol",
    "side",
    "order_type",
    "quantity",
    "price",
];

/// What an order file holds: `{"orders": [...]}`, or a CSV with the [`FIELDS`] columns.
pub const SHAPE: Shape = Shape {
    key: "orders",
    needs: &FIELDS,
};

/// The order in `entry`, the `seq`-th of the file (from 1).
pub fn order(seq: u64, entry: &Fields) -> OrderSubmitted {
    let [trader_id, symbol, side, order_type, quantity, price] =
        FIELDS.map(|field| as_text(entry.get(field)));
    OrderSubmitted {
        seq,
        trader_id,
        symbol,
        side,
        order_type,
        quantity,
        price,
    }
}

/// `count` orders drawn from `seed`, made one at a time: mostly LIMIT orders near each
/// symbol's reference price, some MARKET orders, and about one in a hundred invalid
/// (unknown symbol or zero quantity), so that every path of the flow runs.
pub fn generate(count: u64, seed: u64) -> impl Iterator<Item = OrderSubmitted> {
    let mut rng = Rng::new(seed);
    (1..=count).map(move |seq| generate_one(&mut rng, seq))
}

fn generate_one(rng: &mut Rng, seq: u64) -> OrderSubmitted {
    const REFERENCE: [f64; 7] = [150.0, 140.0, 420.0, 180.0, 250.0, 120.0, 500.0];
    let i = rng.range(0, SYMBOLS.len() as u64 - 1) as usize;
    let symbol = if rng.unit() < 0.005 {
        "XXXX".to_owned()
    } else {
        SYMBOLS[i].to_owned()
    };
    let side = *rng.pick(&["BUY", "SELL"]);
    let market = rng.unit() < 0.15;
    let quantity = if rng.unit() < 0.005 {
        0
    } else {
        rng.range(1, 200)
    };
    // Prices in cents, within two dollars of the reference.
    let cents = (REFERENCE[i] * 100.0) as u64 - 200 + rng.range(0, 400);
    OrderSubmitted {
        seq,
        trader_id: format!("trader-{:02}", rng.range(1, 20)),
        symbol,
        side: side.to_owned(),
        order_type: if market { "MARKET" } else { "LIMIT" }.to_owned(),
        quantity: quantity.to_string(),
        price: if market {
            String::new()
        } else {
            format!("{}.{:02}", cents / 100, cents % 100)
        },
    }
}
