//! Properties of the order book that `examples/trading_orderbook` runs: the very file
//! the example compiles is included here, so these tests drive its matching engine.
//!
//! For generated sequences of LIMIT and MARKET orders on a few nearby prices:
//! - the book never crosses: after every order, best bid < best ask;
//! - quantity is conserved: each order's quantity is filled, rested or dropped, and all
//!   submitted quantity is traded (counted on both sides), resting or dropped;
//! - fills agree with a naive reference model of price-time priority.

#[path = "../examples/trading_orderbook/book.rs"]
mod book;

use book::{Book, Fill, Kind, Order, Price, Side};
use proptest::prelude::*;

fn order_strategy() -> impl Strategy<Value = (bool, Option<u32>, u64)> {
    // (buy?, limit price in half-dollar ticks from 95.0 to 105.0 or MARKET, quantity)
    (
        any::<bool>(),
        prop_oneof![4 => (190u32..=210).prop_map(Some), 1 => Just(None)],
        1u64..=60,
    )
}

fn make_order(id: u64, (buy, ticks, quantity): (bool, Option<u32>, u64)) -> Order {
    Order {
        id,
        trader: format!("t{}", id % 5),
        side: if buy { Side::Buy } else { Side::Sell },
        kind: match ticks {
            Some(t) => Kind::Limit(Price(f64::from(t) / 2.0)),
            None => Kind::Market,
        },
        quantity,
    }
}

/// The slowest obvious implementation: resting orders in arrival order, scanned for the
/// best price each time (ties go to the earliest).
#[derive(Default)]
struct Model {
    resting: Vec<(u64, Side, f64, u64)>,
}

impl Model {
    fn submit(&mut self, order: &Order) -> Vec<(f64, u64, u64)> {
        let mut remaining = order.quantity;
        let mut fills = Vec::new();
        while remaining > 0 {
            let best = self
                .resting
                .iter()
                .enumerate()
                .filter(|(_, r)| r.1 != order.side)
                .filter(|(_, r)| match (order.kind, order.side) {
                    (Kind::Market, _) => true,
                    (Kind::Limit(p), Side::Buy) => r.2 <= p.0,
                    (Kind::Limit(p), Side::Sell) => r.2 >= p.0,
                })
                .min_by(|(i, a), (j, b)| {
                    let by_price = match order.side {
                        Side::Buy => a.2.total_cmp(&b.2),
                        Side::Sell => b.2.total_cmp(&a.2),
                    };
                    by_price.then(i.cmp(j))
                })
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            let quantity = remaining.min(self.resting[i].3);
            fills.push((self.resting[i].2, quantity, self.resting[i].0));
            remaining -= quantity;
            self.resting[i].3 -= quantity;
            if self.resting[i].3 == 0 {
                self.resting.remove(i);
            }
        }
        if let (Kind::Limit(p), true) = (order.kind, remaining > 0) {
            self.resting.push((order.id, order.side, p.0, remaining));
        }
        fills
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_crosses_and_conserves_quantity(specs in prop::collection::vec(order_strategy(), 1..150)) {
        let mut book = Book::new();
        let mut model = Model::default();
        let (mut submitted, mut traded, mut dropped) = (0u64, 0u64, 0u64);
        for (id, spec) in (1u64..).zip(specs) {
            let order = make_order(id, spec);
            submitted += order.quantity;
            let expected_fills = model.submit(&order);
            let execution = book.submit(order.clone());

            // Per order: every unit is filled, rested or dropped.
            prop_assert_eq!(execution.filled() + execution.rested + execution.dropped, order.quantity);
            match order.kind {
                Kind::Market => prop_assert_eq!(execution.rested, 0),
                Kind::Limit(limit) => {
                    prop_assert_eq!(execution.dropped, 0);
                    for Fill { price, .. } in &execution.fills {
                        match order.side {
                            Side::Buy => prop_assert!(*price <= limit.0),
                            Side::Sell => prop_assert!(*price >= limit.0),
                        }
                    }
                }
            }
            let fills: Vec<(f64, u64, u64)> = execution
                .fills
                .iter()
                .map(|f| (f.price, f.quantity, f.resting_id))
                .collect();
            prop_assert_eq!(fills, expected_fills, "order {:?}", order);

            traded += execution.filled();
            dropped += execution.dropped;
            // Never crossed.
            if let (Some(bid), Some(ask)) = (book.best_bid(), book.best_ask()) {
                prop_assert!(bid < ask, "crossed after order {}: bid {} ask {}", id, bid, ask);
            }
            // Conserved: each traded unit left one incoming and one resting order.
            prop_assert_eq!(submitted, 2 * traded + book.resting_quantity() + dropped);
            let levels: u64 = book
                .bid_levels()
                .iter()
                .chain(book.ask_levels().iter())
                .map(|(_, q)| q)
                .sum();
            prop_assert_eq!(levels, book.resting_quantity());
            let model_resting: u64 = model.resting.iter().map(|r| r.3).sum();
            prop_assert_eq!(model_resting, book.resting_quantity());
        }
        // Levels are best first and strictly ordered.
        let bids = book.bid_levels();
        let asks = book.ask_levels();
        prop_assert!(bids.windows(2).all(|w| w[0].0 > w[1].0));
        prop_assert!(asks.windows(2).all(|w| w[0].0 < w[1].0));
        prop_assert!(bids.iter().chain(asks.iter()).all(|(_, q)| *q > 0));
    }
}
