//! What the examples do with bad input, run as a user runs them: every bad argument or
//! file gets a clear message and a non-zero exit (2 for usage and input errors), never a
//! panic, a hang or a wrong result; and the command lines behave like any clap program.

#[path = "support/examples.rs"]
mod examples;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use examples::{data_file, run_example, run_example_os, stdout_of_success};
use serde_json::Value;

/// Every example, and an argument list that runs it quickly without Redis.
const EXAMPLES: [&str; 5] = [
    "seance",
    "etl",
    "notification_pipeline",
    "trading_orderbook",
    "redis_workers",
];

/// A scratch folder for this test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("necrostack-bad-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    /// Writes `bytes` to the file `name` in the folder and returns its path.
    fn file(&self, name: impl AsRef<OsStr>, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name.as_ref());
        std::fs::write(&path, bytes).expect("write scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The run failed with `code`, printed nothing on stdout, said `message` on stderr and
/// did not panic.
#[track_caller]
fn fails_with(output: &Output, code: i32, message: &str) {
    let err = stderr(output);
    assert!(!err.contains("panicked at"), "a panic: {err}");
    assert_eq!(output.status.code(), Some(code), "stderr: {err}");
    assert!(
        output.stdout.is_empty(),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(err.contains(message), "expected {message:?} in: {err}");
}

fn orderbook_json(args: &[&OsStr]) -> Value {
    let mut all: Vec<&OsStr> = args.to_vec();
    all.push(OsStr::new("--json"));
    let output = run_example_os("trading_orderbook", &all);
    serde_json::from_str(&stdout_of_success(&output)).expect("one JSON object")
}

fn sample_json() -> Value {
    orderbook_json(&[
        OsStr::new("--file"),
        OsStr::new(&data_file("orderbook_sample.csv")),
    ])
}

fn file_arg(path: &Path) -> [&OsStr; 2] {
    [OsStr::new("--file"), path.as_os_str()]
}

// ---- the command line ----

#[test]
fn help_is_on_stdout_with_a_line_per_option() {
    let options: [(&str, &[&str]); 5] = [
        ("seance", &["--quiet"]),
        ("etl", &["--file", "--quiet"]),
        (
            "notification_pipeline",
            &[
                "--file",
                "--count",
                "--seed",
                "--json",
                "--failure-rate",
                "--permanent-rate",
                "--latency-ms",
                "--quiet",
                "--redis",
                "--stream",
                "--keep",
            ],
        ),
        (
            "trading_orderbook",
            &[
                "--file",
                "--stress",
                "--orders",
                "--seed",
                "--json",
                "--settlement-failure-rate",
                "--latency-ms",
                "--risk-limit",
                "--quiet",
                "--redis",
                "--stream",
                "--keep",
            ],
        ),
        (
            "redis_workers",
            &[
                "--redis",
                "--workers",
                "--orders",
                "--stream",
                "--keep",
                "--timeout-secs",
            ],
        ),
    ];
    for (example, flags) in options {
        for help in ["--help", "-h"] {
            let output = run_example(example, &[help]);
            assert_eq!(output.status.code(), Some(0), "{example} {help}");
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(
                text.contains(&format!("Usage: {example}")),
                "{example}: {text}"
            );
            for flag in flags.iter().chain(&["--help", "--version"]) {
                let line = text.lines().find(|l| l.trim_start().contains(flag));
                let line = line.unwrap_or_else(|| panic!("{example}: no line for {flag}: {text}"));
                assert!(
                    line.split(flag)
                        .nth(1)
                        .is_some_and(|rest| rest.trim().len() > 5),
                    "{example}: {flag} says what it does: {line}"
                );
            }
        }
        let version = run_example(example, &["--version"]);
        assert_eq!(version.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&version.stdout).starts_with(example));
    }
}

#[test]
fn unknown_flags_and_missing_values_are_usage_errors() {
    for example in EXAMPLES {
        fails_with(
            &run_example(example, &["--bogus"]),
            2,
            "unexpected argument '--bogus'",
        );
    }
    fails_with(
        &run_example("etl", &["--file", "--quiet"]),
        2,
        "a value is required for '--file <PATH>'",
    );
    fails_with(
        &run_example("trading_orderbook", &["--seed"]),
        2,
        "a value is required",
    );
    fails_with(
        &run_example("trading_orderbook", &["--seed", "-1"]),
        2,
        "unexpected argument '-1'",
    );
    fails_with(
        &run_example("trading_orderbook", &["--stress", "--orders", "many"]),
        2,
        "invalid value 'many'",
    );
    fails_with(
        &run_example("notification_pipeline", &["--failure-rate=NaN"]),
        2,
        "a rate is a number in [0, 1]",
    );
}

#[test]
fn key_equals_value_works_like_key_space_value() {
    let path = data_file("orderbook_sample.csv");
    let spaced = orderbook_json(&[OsStr::new("--file"), OsStr::new(&path)]);
    let joined = orderbook_json(&[OsStr::new(&format!("--file={path}"))]);
    assert_eq!(spaced, joined);
}

#[test]
fn flags_that_need_or_exclude_another_are_rejected() {
    fails_with(
        &run_example("trading_orderbook", &["--orders", "5"]),
        2,
        "the following required arguments were not provided:\n  --stress",
    );
    for example in ["trading_orderbook", "notification_pipeline"] {
        fails_with(
            &run_example(example, &["--stream", "s"]),
            2,
            "--redis <URL>",
        );
        fails_with(&run_example(example, &["--keep"]), 2, "--redis <URL>");
    }
    fails_with(
        &run_example("trading_orderbook", &["--stress", "--file", "x.csv"]),
        2,
        "cannot be used with",
    );
    fails_with(
        &run_example(
            "notification_pipeline",
            &["--count", "3", "--file", "x.csv"],
        ),
        2,
        "cannot be used with",
    );
}

#[test]
fn numbers_past_their_bound_are_rejected_before_anything_runs() {
    let max = "18446744073709551615";
    let cases: [(&str, &[&str], &str); 8] = [
        (
            "trading_orderbook",
            &["--stress", "--orders", max],
            "is not in 1..=100000000",
        ),
        (
            "trading_orderbook",
            &["--stress", "--orders", "1000000000"],
            "is not in 1..=100000000",
        ),
        (
            "trading_orderbook",
            &["--latency-ms", max],
            "is not in 0..=60000",
        ),
        (
            "trading_orderbook",
            &["--risk-limit", max],
            "is not in 0..=1000000000",
        ),
        (
            "trading_orderbook",
            &["--seed", "18446744073709551616"],
            "invalid value",
        ),
        (
            "notification_pipeline",
            &["--count", max],
            "is not in 0..=10000000",
        ),
        (
            "notification_pipeline",
            &["--latency-ms", max],
            "is not in 0..=60000",
        ),
        (
            "redis_workers",
            &["--workers", "100000"],
            "is not in 1..=64",
        ),
    ];
    for (example, args, message) in cases {
        let started = Instant::now();
        fails_with(&run_example(example, args), 2, message);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{example} {args:?} was quick"
        );
    }
}

#[test]
fn non_utf8_arguments_are_usage_errors_not_panics() {
    let bad = OsStr::from_bytes(b"caf\xe9");
    for example in EXAMPLES {
        // A spirit's name must be text; the others take no such argument at all.
        let message = if example == "seance" {
            "invalid UTF-8"
        } else {
            "unexpected argument 'caf\u{FFFD}'"
        };
        fails_with(&run_example_os(example, &[bad]), 2, message);
        let flag = OsStr::from_bytes(b"--caf\xe9");
        fails_with(&run_example_os(example, &[flag]), 2, "unexpected argument");
    }
    let output = run_example_os("trading_orderbook", &[OsStr::new("--redis"), bad]);
    fails_with(&output, 2, "invalid UTF-8");
}

#[test]
fn non_utf8_file_names_are_read() {
    let scratch = Scratch::new("names");
    let name = OsStr::from_bytes(b"orders-\xe9t\xe9.csv");
    let sample = std::fs::read(data_file("orderbook_sample.csv")).unwrap();
    let path = scratch.file(name, &sample);
    assert_eq!(orderbook_json(&file_arg(&path)), sample_json());

    let sales = std::fs::read(data_file("etl_sales.csv")).unwrap();
    let path = scratch.file(OsStr::from_bytes(b"ventes-\xe9t\xe9.csv"), sales);
    let stdout = stdout_of_success(&run_example_os("etl", &file_arg(&path)));
    assert!(
        stdout.contains("total            units     13  revenue      38.00"),
        "{stdout}"
    );

    // A missing file with such a name is an error that names it, lossily.
    let missing = scratch.0.join(OsStr::from_bytes(b"missing-\xff.csv"));
    for example in ["etl", "trading_orderbook", "notification_pipeline"] {
        fails_with(
            &run_example_os(example, &file_arg(&missing)),
            2,
            "missing-\u{FFFD}.csv",
        );
    }
}

// ---- files that are not what they should be ----

#[test]
fn a_directory_as_file_is_an_error() {
    let scratch = Scratch::new("dir");
    for example in ["etl", "trading_orderbook", "notification_pipeline"] {
        fails_with(
            &run_example_os(example, &file_arg(&scratch.0)),
            2,
            "is a directory, not a file",
        );
    }
}

#[test]
fn an_empty_file_is_reported_as_empty() {
    let scratch = Scratch::new("empty");
    for name in ["empty.csv", "empty.json", "blank.csv"] {
        let text = if name == "blank.csv" {
            "\u{feff}\n\n"
        } else {
            ""
        };
        let path = scratch.file(name, text);
        for example in ["trading_orderbook", "notification_pipeline"] {
            fails_with(&run_example_os(example, &file_arg(&path)), 2, "is empty");
        }
    }
    let path = scratch.file("empty.csv", "");
    fails_with(&run_example_os("etl", &file_arg(&path)), 2, "is empty");
}

#[test]
fn a_binary_file_is_an_error_with_its_line() {
    let scratch = Scratch::new("binary");
    let binary: Vec<u8> = (0..4096u32)
        .map(|i| (i * 7919 % 251) as u8 | 0x80)
        .collect();
    let mut bytes =
        b"trader_id,symbol,side,order_type,quantity,price\nalice,AAPL,BUY,LIMIT,1,1\n".to_vec();
    bytes.extend(&binary);
    let path = scratch.file("orders.csv", &bytes);
    fails_with(
        &run_example_os("trading_orderbook", &file_arg(&path)),
        2,
        "line 3",
    );
    fails_with(
        &run_example_os("trading_orderbook", &file_arg(&path)),
        2,
        "not UTF-8",
    );
    let mut sales = b"date,region,product,units,unit_price\n2026-01-01,north,widget,1,1\n".to_vec();
    sales.extend(&binary);
    let path = scratch.file("sales.csv", &sales);
    fails_with(
        &run_example_os("etl", &file_arg(&path)),
        2,
        "line 3: field 1 is not UTF-8 text",
    );
    let path = scratch.file("orders.json", &binary);
    fails_with(
        &run_example_os("trading_orderbook", &file_arg(&path)),
        2,
        "is not valid JSON",
    );
    fails_with(
        &run_example_os("trading_orderbook", &file_arg(&path)),
        2,
        "line 1 column",
    );
}

#[test]
fn a_huge_single_line_is_refused_without_reading_it_whole() {
    let scratch = Scratch::new("huge");
    let headers = [
        (
            "trading_orderbook",
            "trader_id,symbol,side,order_type,quantity,price\nalice,AAPL,BUY,LIMIT,1,",
        ),
        (
            "notification_pipeline",
            "id,recipient,channels,template\nn1,ann,email,",
        ),
    ];
    for (example, start) in headers {
        let mut text = start.as_bytes().to_vec();
        text.resize(text.len() + (3 << 20), b'9');
        let path = scratch.file("huge.csv", &text);
        fails_with(
            &run_example_os(example, &file_arg(&path)),
            2,
            "line 2 is longer than 1048576 bytes",
        );
    }
    let mut text = b"date,region,product,units,unit_price\n2026-01-01,north,widget,1,".to_vec();
    text.resize(text.len() + (3 << 20), b'9');
    let path = scratch.file("sales.csv", &text);
    let output = run_example_os("etl", &file_arg(&path));
    fails_with(&output, 2, "line 2 is longer than 1048576 bytes");
    assert!(!stderr(&output).contains("panicked at"));
}

#[test]
fn windows_line_endings_and_a_byte_order_mark_read_like_plain_csv() {
    let scratch = Scratch::new("crlf");
    let sample = std::fs::read_to_string(data_file("orderbook_sample.csv")).unwrap();
    let crlf = format!("\u{feff}{}", sample.replace('\n', "\r\n"));
    let path = scratch.file("windows.csv", crlf);
    assert_eq!(orderbook_json(&file_arg(&path)), sample_json());
    let json = std::fs::read_to_string(data_file("orderbook_sample.json")).unwrap();
    let path = scratch.file(
        "windows.json",
        format!("\u{feff}{}", json.replace('\n', "\r\n")),
    );
    assert_eq!(orderbook_json(&file_arg(&path)), sample_json());

    let sales = std::fs::read_to_string(data_file("etl_sales.csv")).unwrap();
    let path = scratch.file(
        "sales.csv",
        format!("\u{feff}{}", sales.replace('\n', "\r\n")),
    );
    let stdout = stdout_of_success(&run_example_os("etl", &file_arg(&path)));
    assert!(
        stdout.contains("total            units     13  revenue      38.00"),
        "{stdout}"
    );

    let requests = std::fs::read_to_string(data_file("notifications.csv")).unwrap();
    let plain = stdout_of_success(&run_example(
        "notification_pipeline",
        &["--file", &data_file("notifications.csv"), "--json"],
    ));
    let path = scratch.file(
        "requests.csv",
        format!("\u{feff}{}", requests.replace('\n', "\r\n")),
    );
    let windows = stdout_of_success(&run_example_os(
        "notification_pipeline",
        &[OsStr::new("--file"), path.as_os_str(), OsStr::new("--json")],
    ));
    assert_eq!(plain, windows);
}

#[test]
fn a_quoted_newline_is_one_record() {
    let scratch = Scratch::new("quoted");
    let text = "trader_id,symbol,side,order_type,quantity,price\n\"al\nice\",AAPL,SELL,LIMIT,5,10\nbob,AAPL,BUY,LIMIT,5,10\n";
    let path = scratch.file("orders.csv", text);
    let got = orderbook_json(&file_arg(&path));
    assert_eq!(got["rejected"], 0, "{got}");
    assert_eq!(got["trades"][0]["seller_id"], "al\nice", "{got}");

    let sales = "date,region,product,units,unit_price\n2026-01-01,north,\"big\nwidget\",2,1.50\n";
    let path = scratch.file("sales.csv", sales);
    let stdout = stdout_of_success(&run_example_os("etl", &file_arg(&path)));
    assert!(stdout.contains("rows loaded:      1\n"), "{stdout}");
    assert!(
        stdout.contains("total            units      2  revenue       3.00"),
        "{stdout}"
    );
}

#[test]
fn an_unterminated_quote_is_an_error_with_its_line() {
    let scratch = Scratch::new("unterminated");
    let text = "trader_id,symbol,side,order_type,quantity,price\nalice,AAPL,SELL,LIMIT,5,10\n\"bob,AAPL,BUY,LIMIT,5,10\ncarol,AAPL,BUY,LIMIT,5,10\n";
    let path = scratch.file("orders.csv", text);
    fails_with(
        &run_example_os("trading_orderbook", &file_arg(&path)),
        2,
        "line 3: a quoted cell is not closed",
    );
    let sales = "date,region,product,units,unit_price\n2026-01-01,north,\"widget,2,1.50\n";
    let path = scratch.file("sales.csv", sales);
    fails_with(
        &run_example_os("etl", &file_arg(&path)),
        2,
        "line 2: a quoted cell is not closed",
    );
}

#[test]
fn csv_errors_name_the_line() {
    let scratch = Scratch::new("csvline");
    let mut text = b"id,recipient,channels,template\nn1,ann,email,welcome\nn2,b".to_vec();
    text.extend(b"\xff\xfe,sms,welcome\n");
    let path = scratch.file("requests.csv", text);
    fails_with(
        &run_example_os("notification_pipeline", &file_arg(&path)),
        2,
        "line 3: field 2 is not UTF-8",
    );
}

#[test]
fn a_json_entry_that_is_not_an_object_is_an_error_naming_it() {
    let scratch = Scratch::new("entry");
    let orders = "{\"orders\": [\n {\"trader_id\": \"a\", \"symbol\": \"AAPL\", \"side\": \"BUY\", \"order_type\": \"LIMIT\", \"quantity\": 1, \"price\": 1},\n 42\n]}";
    let path = scratch.file("orders.json", orders);
    fails_with(
        &run_example_os("trading_orderbook", &file_arg(&path)),
        2,
        "entry 1 of \"orders\" is a number, not an object at line",
    );
    let requests = "{\"notifications\": [\"n1\"]}";
    let path = scratch.file("requests.json", requests);
    fails_with(
        &run_example_os("notification_pipeline", &file_arg(&path)),
        2,
        "entry 0 of \"notifications\" is a string, not an object",
    );
    let path = scratch.file("trailing.json", "{\"orders\": []} {}");
    fails_with(
        &run_example_os("trading_orderbook", &file_arg(&path)),
        2,
        "trailing characters at line 1",
    );
    let path = scratch.file("nolist.json", "{\"order\": []}");
    fails_with(
        &run_example_os("trading_orderbook", &file_arg(&path)),
        2,
        "expected a JSON object {\"orders\": [...]}",
    );
}

// ---- numbers at the edge ----

#[test]
fn etl_units_near_u64_max_are_summed_exactly() {
    let scratch = Scratch::new("etlmax");
    let max = u64::MAX;
    let text = format!(
        "date,region,product,units,unit_price\n\
         2026-01-01,north,widget,{max},2.50\n\
         2026-01-02,north,widget,{max},0.0001\n\
         2026-01-03,south,widget,18446744073709551616,1\n\
         2026-01-04,south,widget,1,1e3\n\
         2026-01-05,south,widget,3,0.5\n"
    );
    let path = scratch.file("sales.csv", text);
    let stdout = stdout_of_success(&run_example_os("etl", &file_arg(&path)));
    // north: 2 × (2^64 − 1) units; revenue (2^64 − 1) × 2.5001, exactly.
    let units = 2 * u128::from(max);
    let revenue_scaled = u128::from(max) * 25_001; // in ten-thousandths
    let cents = revenue_scaled / 100 + u128::from(revenue_scaled % 100 >= 50);
    let revenue = format!("{}.{:02}", cents / 100, cents % 100);
    assert!(
        stdout.contains(&format!(
            "region north      units {units:>6}  revenue {revenue:>10}"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("region south      units      3  revenue       1.50"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("total            units {:>6}", units + 3)),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 4: units \"18446744073709551616\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 5: units \"1\" / unit_price \"1e3\""),
        "{stdout}"
    );
    assert!(!stdout.contains("inf"), "{stdout}");
}

#[test]
fn latency_zero_does_not_sleep() {
    let started = Instant::now();
    let output = run_example(
        "trading_orderbook",
        &[
            "--stress",
            "--orders",
            "3000",
            "--latency-ms",
            "0",
            "--settlement-failure-rate",
            "0",
            "--json",
        ],
    );
    let took = started.elapsed();
    let result: Value = serde_json::from_str(&stdout_of_success(&output)).unwrap();
    let trades = result["trades"].as_array().map_or(0, Vec::len);
    assert!(trades > 1000, "{trades} trades");
    // With a 1 ms sleep per trade this takes over a second more than the work itself.
    assert!(
        took < Duration::from_millis(300) + Duration::from_micros(900 * trades as u64),
        "{trades} trades took {took:?}"
    );
}

#[test]
fn a_long_run_shows_no_progress_when_stderr_is_not_a_terminal() {
    // About three seconds of work: long enough for the bar, were stderr a terminal.
    let started = Instant::now();
    let output = run_example(
        "trading_orderbook",
        &[
            "--stress",
            "--orders",
            "100000",
            "--latency-ms",
            "0",
            "--settlement-failure-rate",
            "0",
            "--json",
        ],
    );
    let stdout = stdout_of_success(&output);
    let err = stderr(&output);
    assert!(
        !err.contains('\r') && !err.contains("orders,"),
        "no bar in a pipe: {err}"
    );
    let mut objects = serde_json::Deserializer::from_str(&stdout).into_iter::<Value>();
    assert!(objects
        .next()
        .is_some_and(|o| o.is_ok_and(|o| o.is_object())));
    assert!(
        objects.next().is_none(),
        "exactly one JSON object on stdout"
    );
    eprintln!("the run took {:?}", started.elapsed());
}

#[test]
fn an_endless_device_as_file_is_refused() {
    let zero = Path::new("/dev/zero");
    if !zero.exists() {
        return;
    }
    for example in ["etl", "trading_orderbook", "notification_pipeline"] {
        fails_with(
            &run_example_os(example, &file_arg(zero)),
            2,
            "line 1 is longer than 1048576 bytes",
        );
    }
}

#[test]
fn orderbook_workers_and_partitions_are_checked_before_anything_runs() {
    let redis = ["--redis", "redis://127.0.0.1:1"]; // never reached: clap refuses first
    let cases: [(&[&str], &str); 6] = [
        (&["--workers", "2"], "--redis <URL>"),
        (&["--partitions", "4"], "--redis <URL>"),
        (
            &[redis[0], redis[1], "--workers", "0"],
            "invalid value '0' for '--workers <N>': 0 is not in 1..=64",
        ),
        (
            &[redis[0], redis[1], "--workers", "65"],
            "invalid value '65' for '--workers <N>': 65 is not in 1..=64",
        ),
        (
            &[redis[0], redis[1], "--partitions", "0"],
            "invalid value '0' for '--partitions <P>': 0 is not in 1..=1024",
        ),
        (
            &[redis[0], redis[1], "--workers", "2"],
            "--workers above 1 needs --partitions P",
        ),
    ];
    for (args, message) in cases {
        fails_with(&run_example("trading_orderbook", args), 2, message);
    }
    fails_with(
        &run_example(
            "trading_orderbook",
            &["--nats", "nats://127.0.0.1:1", "--workers", "2"],
        ),
        2,
        "--redis <URL>",
    );
    let help = run_example("trading_orderbook", &["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--workers <N>", "--partitions <P>"] {
        let line = help.lines().find(|l| l.contains(flag));
        assert!(
            line.is_some_and(|l| l.contains("needs --redis")),
            "{flag} says it needs --redis: {help}"
        );
    }
}
