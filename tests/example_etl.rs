//! End-to-end tests of `cargo run --example etl`: the summary for the built-in CSV and
//! for a file, hand-checked, and the errors for bad input.

#[path = "support/examples.rs"]
mod examples;
#[path = "support/nats_server.rs"]
mod nats_server;

use examples::{data_file, run_example, stdout_of_success};

#[test]
fn built_in_csv_summary() {
    // Lines 5 (units empty) and 7 (region empty) are dropped; line 10 has units "two".
    // north: 10×2.50 + 1×99.90 + 6×2.40 = 139.30 (17 units); south: 4×2.50 + 2×99.90 =
    // 209.80 (6); east: 5×12.00 = 60.00 (5, the quoted product holds a comma).
    let stdout = stdout_of_success(&run_example("etl", &[]));
    assert_eq!(
        stdout,
        "ETL summary for built-in sample
  rows loaded:      9
  rows dropped:     2 (missing fields)
  rows invalid:     1
    line 10: units \"two\" / unit_price \"2.50\" are not a count and a price
  rows transformed: 6
  region east       units      5  revenue      60.00
  region north      units     17  revenue     139.30
  region south      units      6  revenue     209.80
  total            units     28  revenue     409.10
"
    );
}

#[test]
fn file_summary() {
    // examples/data/etl_sales.csv: line 3 (empty note), 5 (empty units) and 6 (five
    // cells) are dropped; line 8 has negative units. Kept: north 3×1.50 = 4.50,
    // west 1×20.00 (region trimmed), east 7×1.00 + 2×3.25 (quoted cells) = 13.50.
    let path = data_file("etl_sales.csv");
    let stdout = stdout_of_success(&run_example("etl", &["--file", &path]));
    let expected = format!(
        "ETL summary for {path}
  rows loaded:      8
  rows dropped:     3 (missing fields)
  rows invalid:     1
    line 8: units \"-1\" / unit_price \"1.00\" are not a count and a price
  rows transformed: 4
  region east       units      9  revenue      13.50
  region north      units      3  revenue       4.50
  region west       units      1  revenue      20.00
  total            units     13  revenue      38.00
"
    );
    assert_eq!(stdout, expected);
}

#[test]
fn missing_column_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("necrostack-etl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("no_date.csv");
    std::fs::write(
        &path,
        "region,product,units,unit_price\nnorth,widget,1,2.0\n",
    )
    .unwrap();
    let output = run_example("etl", &["--file", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "no summary for an unusable file");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no_date.csv: the CSV header has no column \"date\""),
        "{stderr}"
    );
}

#[test]
fn unreadable_file_and_bad_arguments_are_usage_errors() {
    let output = run_example("etl", &["--file", "/nonexistent/sales.csv"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read /nonexistent/sales.csv"));

    let output = run_example("etl", &["--bogus"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unexpected argument '--bogus'"));
}

#[test]
fn nats_run_gives_the_in_memory_summary() {
    let Some(server) = nats_server::NatsServer::start() else {
        return; // skipped, with a message (or a failure under NECROSTACK_REQUIRE_NATS=1)
    };
    let path = data_file("etl_sales.csv");
    let in_memory = stdout_of_success(&run_example("etl", &["--file", &path]));
    let url = server.url();
    let on_nats = stdout_of_success(&run_example("etl", &["--file", &path, "--nats", &url]));
    assert_eq!(on_nats, in_memory);
}
