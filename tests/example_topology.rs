//! The flow of each example as a picture: `--topology` prints the Mermaid flowchart that
//! `Spine::topology()` draws from the organs' types, and exits without running anything.
//! Each expected text is written out by hand from the example's organs.

#[path = "support/examples.rs"]
mod examples;

use examples::{run_example, stdout_of_success};

/// Runs `name --topology` (plus `args`) and checks it printed exactly `expected`.
fn assert_topology(name: &str, args: &[&str], expected: &str) {
    let mut all = vec!["--topology"];
    all.extend_from_slice(args);
    let output = run_example(name, &all);
    let stdout = stdout_of_success(&output);
    assert_eq!(stdout, expected, "{name} --topology");
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const SEANCE: &str = "\
flowchart LR
    e0([\"SUMMON_RITUAL\"])
    e1([\"SPIRIT_APPEARED\"])
    e2([\"ANSWER_GENERATED\"])
    e3([\"OMEN_REVEALED\"])
    o0[\"summon\"]
    o1[\"speak\"]
    o2[\"interpret\"]
    o3[\"Scribe\"]
    e0 --> o0
    o0 --> e1
    e1 --> o1
    o1 --> e2
    e2 --> o2
    o2 --> e3
    e3 --> o3
";

const ETL: &str = "\
flowchart LR
    e0([\"ROW_READ\"])
    e1([\"ROW_CLEANED\"])
    e2([\"ROW_DROPPED\"])
    e3([\"ROW_TYPED\"])
    o0[\"clean\"]
    o1[\"transform\"]
    o2[\"Tally\"]
    o3[\"CountDropped\"]
    e0 --> o0
    o0 --> e1
    o0 --> e2
    e1 --> o1
    o1 --> e3
    e3 --> o2
    e2 --> o3
";

const NOTIFICATION_PIPELINE: &str = "\
flowchart LR
    e0([\"NOTIFICATION_REQUESTED\"])
    e1([\"NOTIFICATION_VALIDATED\"])
    e2([\"NOTIFICATION_REJECTED\"])
    e3([\"EMAIL_QUEUED\"])
    e4([\"SMS_QUEUED\"])
    e5([\"PUSH_QUEUED\"])
    e6([\"NOTIFICATION_SENT\"])
    e7([\"NOTIFICATION_FAILED\"])
    o0[\"Validate\"]
    o1[\"Router\"]
    o2[\"EmailSender\"]
    o3[\"SmsSender\"]
    o4[\"PushSender\"]
    o5[\"Audit\"]
    o6[\"Audit\"]
    o7[\"Audit\"]
    o8[\"Audit\"]
    o9[\"Audit\"]
    o10[\"Audit\"]
    o11[\"Audit\"]
    o12[\"Audit\"]
    e0 --> o0
    o0 --> e1
    o0 --> e2
    e1 --> o1
    o1 --> e3
    o1 --> e4
    o1 --> e5
    e3 --> o2
    o2 --> e6
    e4 --> o3
    o3 --> e6
    e5 --> o4
    o4 --> e6
    e0 --> o5
    e1 --> o6
    e2 --> o7
    e3 --> o8
    e4 --> o9
    e5 --> o10
    e6 --> o11
    e7 --> o12
";

const TRADING_ORDERBOOK: &str = "\
flowchart LR
    e0([\"ORDER_SUBMITTED\"])
    e1([\"ORDER_VALIDATED\"])
    e2([\"ORDER_REJECTED\"])
    e3([\"TRADE_EXECUTED\"])
    e4([\"ORDER_FILLED\"])
    e5([\"ORDER_PARTIAL_FILL\"])
    e6([\"ORDER_QUEUED\"])
    e7([\"SETTLEMENT_COMPLETE\"])
    e8([\"RISK_ALERT\"])
    o0[\"ValidateOrder\"]
    o1[\"MatchingEngine\"]
    o2[\"Settlement\"]
    o3[\"RiskManager\"]
    o4[\"AuditTrail\"]
    o5[\"AuditTrail\"]
    o6[\"AuditTrail\"]
    o7[\"AuditTrail\"]
    o8[\"AuditTrail\"]
    o9[\"AuditTrail\"]
    o10[\"AuditTrail\"]
    o11[\"AuditTrail\"]
    o12[\"AuditTrail\"]
    e0 --> o0
    o0 --> e1
    o0 --> e2
    e1 --> o1
    o1 --> e3
    o1 --> e4
    o1 --> e5
    o1 --> e6
    o1 --> e2
    e3 --> o2
    o2 --> e7
    e7 --> o3
    o3 --> e8
    e0 --> o4
    e1 --> o5
    e2 --> o6
    e3 --> o7
    e4 --> o8
    e5 --> o9
    e6 --> o10
    e7 --> o11
    e8 --> o12
";

const REDIS_WORKERS: &str = "\
flowchart LR
    e0([\"ORDER_PLACED\"])
    e1([\"INVOICE_SENT\"])
    o0[\"Billing\"]
    o1[\"Archive\"]
    e0 --> o0
    o0 --> e1
    e1 --> o1
";

#[test]
fn seance_prints_its_four_organs_in_a_line() {
    assert_topology("seance", &[], SEANCE);
}

#[test]
fn seance_traced_and_quiet_draw_the_same_flow() {
    // Without `--quiet` every organ is wrapped in `Traced`, which forwards `emits`.
    assert_topology("seance", &["--quiet"], SEANCE);
    assert_topology("seance", &["Ada", "Grace"], SEANCE);
}

#[test]
fn etl_prints_its_flow_without_reading_input() {
    assert_topology("etl", &[], ETL);
    assert_topology("etl", &["--file", "/nonexistent/sales.csv"], ETL);
}

#[test]
fn notification_pipeline_prints_its_flow_with_every_audit() {
    assert_topology("notification_pipeline", &[], NOTIFICATION_PIPELINE);
}

#[test]
fn trading_orderbook_prints_its_flow_with_every_audit() {
    assert_topology("trading_orderbook", &[], TRADING_ORDERBOOK);
}

#[test]
fn topology_needs_no_redis_server() {
    // Port 1: nothing listens there; `--topology` must not try.
    let url = "redis://127.0.0.1:1";
    assert_topology(
        "notification_pipeline",
        &["--redis", url],
        NOTIFICATION_PIPELINE,
    );
    assert_topology("trading_orderbook", &["--redis", url], TRADING_ORDERBOOK);
    assert_topology("redis_workers", &["--redis", url], REDIS_WORKERS);
}

#[test]
fn help_lists_topology() {
    for name in [
        "seance",
        "etl",
        "notification_pipeline",
        "trading_orderbook",
        "redis_workers",
    ] {
        let help = stdout_of_success(&run_example(name, &["--help"]));
        assert!(
            help.contains("--topology") && help.contains("Mermaid flowchart"),
            "{name}: {help}"
        );
    }
}
