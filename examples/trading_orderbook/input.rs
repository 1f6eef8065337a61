//! Where orders come from: a JSON or CSV file, or a seeded generator for stress runs.
//!
//! Files are read leniently and judged strictly: every entry becomes an
//! `ORDER_SUBMITTED` with its fields as text, so a bad field is rejected by the validator
//! with a reason instead of being lost here. Only a file that is not an order file at all
//! (unreadable, not JSON, no `orders` list, a CSV header without the columns) is an error.

use crate::csv;
use crate::events::OrderSubmitted;
use crate::file_input::{self, as_text, InputError};
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

/// Reads orders from `path`: JSON if it ends in `.json` or starts with `{`, else CSV.
pub fn read_file(path: &str) -> Result<Vec<OrderSubmitted>, InputError> {
    let text = file_input::read(path)?;
    parse(path, &text)
}

/// Reads orders from `text`, named `path` in errors; JSON or CSV as for [`read_file`].
pub fn parse(path: &str, text: &str) -> Result<Vec<OrderSubmitted>, InputError> {
    let rows = if file_input::is_json(path, text) {
        parse_json(path, text)?
    } else {
        parse_csv(path, text)?
    };
    Ok(number(rows))
}

/// Gives each order its sequence number, from 1, in file order.
fn number(rows: Vec<[String; 6]>) -> Vec<OrderSubmitted> {
    (1..)
        .zip(rows)
        .map(
            |(seq, [trader_id, symbol, side, order_type, quantity, price])| OrderSubmitted {
                seq,
                trader_id,
                symbol,
                side,
                order_type,
                quantity,
                price,
            },
        )
        .collect()
}

fn parse_json(path: &str, text: &str) -> Result<Vec<[String; 6]>, InputError> {
    let orders = file_input::json_list(path, text, "orders")?;
    Ok(orders
        .iter()
        .map(|order| FIELDS.map(|field| as_text(order.get(field))))
        .collect())
}

fn parse_csv(path: &str, text: &str) -> Result<Vec<[String; 6]>, InputError> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header = lines.next().map(file_input::csv_header).unwrap_or_default();
    let mut columns = [0usize; 6];
    for (slot, field) in columns.iter_mut().zip(FIELDS) {
        *slot = header
            .iter()
            .position(|h| h == field)
            .ok_or(InputError::MissingColumn {
                path: path.to_owned(),
                column: field,
                needs: &FIELDS,
            })?;
    }
    Ok(lines
        .map(|line| {
            let cells = csv::split_line(line);
            columns.map(|i| cells.get(i).cloned().unwrap_or_default())
        })
        .collect())
}

/// `count` orders drawn from `seed`: mostly LIMIT orders near each symbol's reference
/// price, some MARKET orders, and about one in a hundred invalid (unknown symbol or zero
/// quantity), so that every path of the flow runs.
pub fn generate(count: u64, seed: u64) -> Vec<OrderSubmitted> {
    const REFERENCE: [f64; 7] = [150.0, 140.0, 420.0, 180.0, 250.0, 120.0, 500.0];
    let mut rng = Rng::new(seed);
    (1..=count)
        .map(|seq| {
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
        })
        .collect()
}
