//! `necrostack stats`: the stream, each partition (one today), its groups and consumers,
//! dead letters and schedule.

use chrono::SecondsFormat;
use necrostack::backend::redis::{GroupStats, RedisAdmin, RedisStats, StreamStats};
use serde_json::{json, Value};

use crate::cli::Format;
use crate::error::CliError;
use crate::output::{duration, or_dash, print_json, Table};

/// Prints the stats of the stream.
pub async fn run(admin: &RedisAdmin, format: Format) -> Result<(), CliError> {
    let stats = admin.stats().await?;
    match format {
        Format::Json => print_json(&stats_json(&stats)),
        Format::Table => print!("{}", stats_text(admin, &stats)),
    }
    Ok(())
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn stats_json(stats: &RedisStats) -> Value {
    let streams: Vec<Value> = stats.streams.iter().map(stream_json).collect();
    json!({
        "server_time": stats.server_time.to_rfc3339_opts(SecondsFormat::Millis, true),
        "streams": streams,
    })
}

fn stream_json(s: &StreamStats) -> Value {
    let groups: Vec<Value> = s.groups.iter().map(group_json).collect();
    json!({
        "stream": s.stream,
        "partition": s.partition,
        "exists": s.exists,
        "length": s.length,
        "groups": groups,
        "dead_letter_stream": s.dead_letter_stream,
        "dead_letters": s.dead_letters,
        "scheduled_key": s.scheduled_key,
        "scheduled": s.scheduled,
        "next_due": s.next_due.map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true)),
    })
}

fn group_json(g: &GroupStats) -> Value {
    let consumers: Vec<Value> = g
        .consumers
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "pending": c.pending,
                "idle_ms": ms(c.idle),
                "inactive_ms": c.inactive.map(ms),
            })
        })
        .collect();
    let oldest = g.oldest_pending.as_ref().map(|p| {
        json!({
            "id": p.id,
            "consumer": p.consumer,
            "age_ms": ms(p.age),
            "idle_ms": ms(p.idle),
            "deliveries": p.deliveries,
        })
    });
    json!({
        "name": g.name,
        "pending": g.pending,
        "lag": g.lag,
        "last_delivered_id": g.last_delivered_id,
        "oldest_pending": oldest,
        "consumers": consumers,
    })
}

fn stats_text(admin: &RedisAdmin, stats: &RedisStats) -> String {
    let mut out = format!(
        "redis {}  (server time {})\n",
        admin.config().url(),
        stats.server_time.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    for stream in &stats.streams {
        out.push_str(&stream_text(stream));
    }
    out
}

fn stream_text(s: &StreamStats) -> String {
    let partition = match s.partition {
        Some(p) => format!("partition {p}"),
        None => "unpartitioned".to_owned(),
    };
    let mut out = format!("\nstream {}  ({partition})\n", s.stream);
    if s.exists {
        out.push_str(&format!("  length        {}\n", s.length));
    } else {
        out.push_str(
            "  length        0 (the stream does not exist: no event was ever added to it)\n",
        );
    }
    out.push_str(&format!(
        "  dead letters  {}  ({})\n",
        s.dead_letters, s.dead_letter_stream
    ));
    let next = s
        .next_due
        .map(|d| {
            format!(
                ", next due {}",
                d.to_rfc3339_opts(SecondsFormat::Millis, true)
            )
        })
        .unwrap_or_default();
    out.push_str(&format!(
        "  scheduled     {}  ({}{next})\n",
        s.scheduled, s.scheduled_key
    ));
    if s.exists && s.groups.is_empty() {
        out.push_str("  no consumer groups (no worker has started on this stream)\n");
    }
    for group in &s.groups {
        out.push_str(&group_text(group));
    }
    out
}

fn group_text(g: &GroupStats) -> String {
    let lag = or_dash(g.lag.map(|l| l.to_string()));
    let mut out = format!(
        "\n  group {}: pending {}, lag {lag}, last delivered {}\n",
        g.name, g.pending, g.last_delivered_id
    );
    match &g.oldest_pending {
        Some(p) => out.push_str(&format!(
            "    oldest pending {}: age {}, idle {}, deliveries {}, held by {}\n",
            p.id,
            duration(p.age),
            duration(p.idle),
            p.deliveries,
            p.consumer
        )),
        None => out.push_str("    nothing pending\n"),
    }
    if g.consumers.is_empty() {
        out.push_str("    no consumers\n");
        return out;
    }
    let mut table = Table::new(&["CONSUMER", "PENDING", "IDLE", "INACTIVE"]);
    for c in &g.consumers {
        table.row(vec![
            c.name.clone(),
            c.pending.to_string(),
            duration(c.idle),
            or_dash(c.inactive.map(duration)),
        ]);
    }
    out.push_str(&table.render(4));
    out
}
