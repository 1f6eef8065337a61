//! End-to-end tests of `cargo run --example trading_orderbook` on small order files in
//! `examples/data/`, with trades and books worked out by hand.

#[path = "support/examples.rs"]
mod examples;
#[path = "support/nats_server.rs"]
mod nats_server;
#[path = "support/redis_cluster.rs"]
mod redis_cluster;
#[path = "support/redis_server.rs"]
mod redis_server;

use examples::{data_file, run_example, stdout_of_success};
use serde_json::{json, Value};

/// Runs the example with `args` and `--json` and returns the one JSON object it printed.
fn json_run(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let stdout = stdout_of_success(&run_example("trading_orderbook", &all));
    let mut objects = serde_json::Deserializer::from_str(&stdout).into_iter::<Value>();
    let value = objects
        .next()
        .expect("one JSON object on stdout")
        .expect("stdout is JSON");
    assert!(
        objects.next().is_none(),
        "exactly one JSON object: {stdout}"
    );
    assert_eq!(
        value.as_object().map(|o| o.len()),
        Some(3),
        "keys are trades, rejected, books"
    );
    value
}

fn trade(symbol: &str, price: f64, quantity: u64, buyer: &str, seller: &str) -> Value {
    json!({"symbol": symbol, "price": price, "quantity": quantity, "buyer_id": buyer, "seller_id": seller})
}

/// The sample (orderbook_sample.json / .csv), order by order:
///  1 alice SELL 100 @150, 2 bob SELL 50 @150, 3 carol SELL 200 @151: all rest.
///  4 dave BUY LIMIT 120 @150.50: price-time priority at 150 — alice (rested first)
///    fills 100, then bob 20; filled.
///  5 erin BUY LIMIT 100 @150: bob's last 30 @150, then 151 is above the limit: partial
///    fill, 70 rests at 150.
///  6 frank BUY MARKET 250: carol 200 @151, then no asks: remainder 50 dropped.
///  7 gina BUY MARKET 10: no asks at all: rejected.
///  8 henry SELL LIMIT 40 @149: hits erin's bid at its price 150 (not 149); erin 30 left.
///  9 ivan BUY 25 @149.50 and 10 judy BUY 5 @150 rest (judy behind erin at 150).
/// 11 kate SELL MARKET 32: erin 30 @150, then judy 2 @150; filled. judy 3 left.
/// 12 leo BUY 10 @420 and 13 mia SELL 15 @421 rest in MSFT (no cross).
/// 14 " nina " msft sell limit 5 @419.50: trimmed and upper-cased; hits leo at 420.
fn sample_expectation() -> Value {
    json!({
        "trades": [
            trade("AAPL", 150.0, 100, "dave", "alice"),
            trade("AAPL", 150.0, 20, "dave", "bob"),
            trade("AAPL", 150.0, 30, "erin", "bob"),
            trade("AAPL", 151.0, 200, "frank", "carol"),
            trade("AAPL", 150.0, 40, "erin", "henry"),
            trade("AAPL", 150.0, 30, "erin", "kate"),
            trade("AAPL", 150.0, 2, "judy", "kate"),
            trade("MSFT", 420.0, 5, "leo", "nina"),
        ],
        "rejected": 1,
        "books": {
            "AAPL": {"bids": [[150.0, 3], [149.5, 25]], "asks": []},
            "MSFT": {"bids": [[420.0, 5]], "asks": [[421.0, 15]]},
        },
    })
}

#[test]
fn sample_json_file_trades_and_books() {
    let path = data_file("orderbook_sample.json");
    assert_eq!(json_run(&["--file", &path]), sample_expectation());
}

#[test]
fn sample_csv_file_gives_the_same_result() {
    let path = data_file("orderbook_sample.csv");
    assert_eq!(json_run(&["--file", &path]), sample_expectation());
}

#[test]
fn built_in_sample_is_the_sample_file() {
    assert_eq!(json_run(&[]), sample_expectation());
}

#[test]
fn every_rejection_rule() {
    // Rows 1–14 break the rules one by one (row 14 all at once), row 15 is a valid
    // MARKET order with no liquidity, row 19 is a short row. Rows 16–18 are valid at
    // the boundaries: lower case, price 100000, quantity 10000, price 0.01; the MARKET
    // sell (17) takes the 10 resting at 100000 and drops 9990.
    let path = data_file("orderbook_rejections.csv");
    let expected = json!({
        "trades": [trade("AAPL", 100000.0, 10, "r16", "r17")],
        "rejected": 16,
        "books": {"AAPL": {"bids": [], "asks": [[0.01, 1]]}},
    });
    assert_eq!(json_run(&["--file", &path]), expected);

    let stdout = stdout_of_success(&run_example("trading_orderbook", &["--file", &path]));
    let expected_lines = [
        r#"order #1 rejected ("" "AAPL"): trader_id is empty"#,
        r#"order #2 rejected ("   " "AAPL"): trader_id is empty"#,
        r#"order #3 rejected ("r3" "IBM"): unknown symbol "IBM""#,
        r#"order #4 rejected ("r4" "AAPL"): side must be BUY or SELL, not "HOLD""#,
        r#"order #5 rejected ("r5" "AAPL"): order_type must be LIMIT or MARKET, not "STOP""#,
        r#"order #6 rejected ("r6" "AAPL"): quantity must be an integer in 1..=10000, not "0""#,
        r#"order #7 rejected ("r7" "AAPL"): quantity must be an integer in 1..=10000, not "10001""#,
        r#"order #8 rejected ("r8" "AAPL"): quantity must be an integer in 1..=10000, not "2.5""#,
        r#"order #9 rejected ("r9" "AAPL"): quantity must be an integer in 1..=10000, not "ten""#,
        r#"order #10 rejected ("r10" "AAPL"): a LIMIT price must be a number in (0, 100000], not "0""#,
        r#"order #11 rejected ("r11" "AAPL"): a LIMIT price must be a number in (0, 100000], not "100000.01""#,
        r#"order #12 rejected ("r12" "AAPL"): a LIMIT price must be a number in (0, 100000], not """#,
        r#"order #13 rejected ("r13" "AAPL"): a LIMIT price must be a number in (0, 100000], not "-5""#,
        r#"order #15 rejected ("r15" "AAPL"): MARKET order with no liquidity on the other side"#,
        r#"order #17 partially filled: AAPL 10 filled, 9990 dropped (no more liquidity)"#,
        r#"order #19 rejected ("r19" "AAPL"): order_type must be LIMIT or MARKET, not ""; quantity must be an integer in 1..=10000, not """#,
    ];
    for line in expected_lines {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    let all_reasons = stdout
        .lines()
        .find(|l| l.contains("order #14 rejected"))
        .expect("order 14 is reported");
    for reason in [
        "trader_id is empty",
        "unknown symbol \"XYZ\"",
        "side must be BUY or SELL, not \"BOTH\"",
        "order_type must be LIMIT or MARKET, not \"FOK\"",
        "quantity must be an integer in 1..=10000, not \"-1\"",
    ] {
        assert!(all_reasons.contains(reason), "{reason:?} in {all_reasons}");
    }
}

#[test]
fn json_fields_of_any_type_are_judged_not_lost() {
    // Quantity and price as strings are read; 2.5 is not an integer and a LIMIT without
    // a price are rejected with reasons. (An entry that is not an object is an error of
    // the file, naming the entry: see tests/example_bad_input.rs.)
    let path = data_file("orderbook_edge.json");
    let expected = json!({
        "trades": [trade("NVDA", 120.25, 3, "b3", "s1")],
        "rejected": 2,
        "books": {"NVDA": {"bids": [], "asks": [[120.25, 4]]}},
    });
    assert_eq!(json_run(&["--file", &path]), expected);
}

#[test]
fn readable_report_with_risk_alerts_and_retried_settlements() {
    // Risk limit 100: dave reaches +120 (trade 2), frank +200 and carol -200 (trade 4);
    // alice's -100 and erin's +100 are at the limit, not past it.
    let args = [
        "--risk-limit",
        "100",
        "--settlement-failure-rate",
        "0.5",
        "--seed",
        "42",
    ];
    let stdout = stdout_of_success(&run_example("trading_orderbook", &args));
    // Retried settlements are scheduled through the backend and no longer hold up the
    // others, so alerts appear in settlement order, which depends on the retries' timing:
    // the same three alerts, in any order.
    let mut alerts: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("risk alert"))
        .collect();
    alerts.sort_unstable();
    assert_eq!(
        alerts,
        [
            "  risk alert: carol holds -200 AAPL (limit 100)",
            "  risk alert: dave holds 120 AAPL (limit 100)",
            "  risk alert: frank holds 200 AAPL (limit 100)",
        ]
    );
    assert!(stdout.contains("Settlements (8):"), "{stdout}");
    assert!(stdout.contains("  AAPL   bids 3@150 25@149.5\n         asks -\n"));
    assert!(stdout.contains("  MSFT   bids 5@420\n         asks 15@421\n"));
    // Half the attempts fail: some trades need more than one try, yet all settle, and
    // the same seed gives the same attempts.
    let attempts: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("settled after"))
        .collect();
    assert!(attempts.iter().any(|l| !l.ends_with("after 1 attempt(s)")));
    let again = stdout_of_success(&run_example("trading_orderbook", &args));
    assert_eq!(stdout, again, "a seeded run is reproducible");
}

#[test]
fn settlement_that_always_fails_is_dead_lettered_after_retries() {
    let stdout = stdout_of_success(&run_example(
        "trading_orderbook",
        &["--settlement-failure-rate", "1"],
    ));
    assert!(stdout.contains("Settlements (0):"), "{stdout}");
    assert!(
        stdout.contains("40 settlement attempt(s) failed (each retried with backoff, up to 5 tries); 8 event(s) dead-lettered"),
        "{stdout}"
    );
    // Matching does not depend on settlement.
    assert!(stdout.contains("Trades (8):"));
}

#[test]
fn stress_run_is_seeded_and_consistent() {
    let args = [
        "--stress",
        "--orders",
        "400",
        "--seed",
        "7",
        "--latency-ms",
        "0",
    ];
    let first = json_run(&args);
    assert_eq!(first, json_run(&args), "same seed, same result");
    let other = json_run(&[
        "--stress",
        "--orders",
        "400",
        "--seed",
        "8",
        "--latency-ms",
        "0",
    ]);
    assert_ne!(first, other, "another seed, other orders");

    let trades = first["trades"].as_array().unwrap();
    assert!(trades.len() > 50, "400 orders near one price trade often");
    for (symbol, book) in first["books"].as_object().unwrap() {
        let bids = book["bids"].as_array().unwrap();
        let asks = book["asks"].as_array().unwrap();
        let price = |level: &Value| level[0].as_f64().unwrap();
        assert!(
            bids.windows(2).all(|w| price(&w[0]) > price(&w[1])),
            "{symbol} bids high to low"
        );
        assert!(
            asks.windows(2).all(|w| price(&w[0]) < price(&w[1])),
            "{symbol} asks low to high"
        );
        if let (Some(bid), Some(ask)) = (bids.first(), asks.first()) {
            assert!(price(bid) < price(ask), "{symbol} book crossed: {book}");
        }
    }
}

#[test]
fn not_an_order_file_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("necrostack-orderbook-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("bad.json", "{\"orders\": [", "is not valid JSON"),
        (
            "list.json",
            "[1, 2]",
            "expected a JSON object {\"orders\": [...]}",
        ),
        (
            "bad.csv",
            "trader,symbol\nx,AAPL\n",
            "the CSV header has no column \"trader_id\"",
        ),
    ];
    for (name, text, message) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let output = run_example(
            "trading_orderbook",
            &["--file", path.to_str().unwrap(), "--json"],
        );
        assert_eq!(output.status.code(), Some(2), "{name}");
        assert!(output.stdout.is_empty(), "{name}: nothing on stdout");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{name}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let output = run_example("trading_orderbook", &["--orders", "many"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn redis_run_gives_the_same_trades_and_books() {
    let Some(server) = redis_server::RedisServer::start() else {
        return; // skipped, with a message (or a failure under NECROSTACK_REQUIRE_REDIS=1)
    };
    let url = server.url();
    let path = data_file("orderbook_sample.json");
    // Settlement retries happen on Redis too; matching is untouched by them.
    let args = [
        "--file",
        &path,
        "--redis",
        &url,
        "--settlement-failure-rate",
        "0.5",
    ];
    assert_eq!(json_run(&args), sample_expectation());
    // A fresh stream per run: rerunning does not replay the first run's orders.
    assert_eq!(json_run(&args), sample_expectation());

    let stdout = stdout_of_success(&run_example(
        "trading_orderbook",
        &["--file", &path, "--redis", &url, "--risk-limit", "100"],
    ));
    assert!(stdout.contains("Settlements (8):"), "{stdout}");
    assert!(
        stdout.contains("risk alert: carol holds -200 AAPL (limit 100)"),
        "{stdout}"
    );
}

#[test]
fn nats_run_gives_the_same_json_as_in_memory() {
    let Some(server) = nats_server::NatsServer::start() else {
        return; // skipped, with a message (or a failure under NECROSTACK_REQUIRE_NATS=1)
    };
    let url = server.url();
    let path = data_file("orderbook_sample.json");
    // Settlement retries go through the NATS scheduled stream; matching is untouched.
    let args = ["--file", &path, "--settlement-failure-rate", "0.5"];
    let in_memory = stdout_of_success(&run_example(
        "trading_orderbook",
        &[&args[..], &["--json"]].concat(),
    ));
    let on_nats = stdout_of_success(&run_example(
        "trading_orderbook",
        &[&args[..], &["--json", "--nats", &url]].concat(),
    ));
    assert_eq!(
        on_nats, in_memory,
        "`--nats URL --json` equals the in-memory `--json`"
    );
    assert_eq!(
        json_run(&[&args[..], &["--nats", &url]].concat()),
        sample_expectation()
    );
    // Each run deletes its streams: the server is left empty.
    let streams = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = async_nats::connect(url.as_str()).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let names: Value = js.request("STREAM.NAMES", &json!({})).await.unwrap();
        names["total"].as_u64().unwrap()
    });
    assert_eq!(streams, 0, "the runs deleted their streams");
    let output = run_example("trading_orderbook", &["--nats", &url, "--redis", &url]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "--nats and --redis exclude each other"
    );
}

/// The arguments of a `--stress` run of 2 000 orders, with retried settlements.
const STRESS: [&str; 5] = [
    "--stress",
    "--orders",
    "2000",
    "--settlement-failure-rate",
    "0.2",
];

/// Three workers on eight partitions at `url` give the in-memory `--json` result, on the
/// sample and on 2 000 generated orders; `keys` lists the keys at `url` afterwards, which
/// must be none (every partition's keys deleted).
fn fleet_equals_in_memory(url: &str, keys: impl Fn() -> Vec<String>) {
    let fleet = ["--redis", url, "--workers", "3", "--partitions", "8"];
    let path = data_file("orderbook_sample.json");
    let mut sample = vec!["--file", path.as_str(), "--settlement-failure-rate", "0.2"];
    sample.extend(fleet);
    assert_eq!(json_run(&sample), sample_expectation());

    let in_memory = json_run(&STRESS);
    let trades = in_memory["trades"].as_array().map_or(0, Vec::len);
    assert!(trades > 500, "a stress run trades a lot: {trades}");
    let mut stress = STRESS.to_vec();
    stress.extend(fleet);
    let on_redis = json_run(&stress);
    // Compared whole; on a difference, say where first, not 2 000 orders' worth of JSON.
    for (symbol, book) in in_memory["books"].as_object().expect("books") {
        assert_eq!(&on_redis["books"][symbol], book, "the book of {symbol}");
    }
    assert_eq!(on_redis["rejected"], in_memory["rejected"]);
    assert!(on_redis == in_memory, "the trades differ");
    // A replica may show a deleted key a moment longer: look for up to 5 s.
    let mut left = keys();
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = keys();
    }
    assert_eq!(left, Vec::<String>::new(), "every key of the run deleted");
}

#[test]
fn partitioned_workers_on_redis_give_the_in_memory_json() {
    let Some(server) = redis_server::RedisServer::start() else {
        return; // skipped, with a message (or a failure under NECROSTACK_REQUIRE_REDIS=1)
    };
    fleet_equals_in_memory(&server.url(), || {
        server
            .cli(&["--raw", "KEYS", "*"])
            .lines()
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect()
    });

    // With --keep the partitions are there to see: eight streams, one per partition.
    let path = data_file("orderbook_sample.json");
    let url = server.url();
    let args = [
        "--file",
        &path,
        "--redis",
        &url,
        "--workers",
        "2",
        "--partitions",
        "8",
        "--keep",
    ];
    stdout_of_success(&run_example("trading_orderbook", &args));
    let mut streams: Vec<String> = server
        .cli(&["--raw", "KEYS", "trading_orderbook:*:p*"])
        .lines()
        .filter(|k| !k.is_empty())
        .map(|k| k.rsplit(':').next().unwrap_or_default().to_owned())
        .collect();
    streams.sort();
    assert_eq!(streams, ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"]);
}

#[test]
fn partitioned_workers_on_a_redis_cluster_give_the_in_memory_json() {
    let Some(cluster) = redis_cluster::shared() else {
        return; // skipped, with a message (or a failure under NECROSTACK_REQUIRE_REDIS=1)
    };
    fleet_equals_in_memory(&cluster.url(), || {
        cluster
            .on_every_node(&["--raw", "KEYS", "*trading_orderbook:*"])
            .iter()
            .flat_map(|keys| keys.lines())
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
            .collect()
    });
}
