//! Throughput benchmark: necrostack workloads against baselines measured in the same run.
//!
//! ```text
//! cargo bench --bench throughput                 # readable table
//! cargo bench --bench throughput -- --json       # one JSON object per line
//! cargo bench --bench throughput -- chain        # only workloads whose name matches
//! cargo bench --bench throughput -- --runs 1     # one run each instead of three
//! cargo bench --bench throughput -- partitions   # only the partitioned Redis rows
//! ```
//!
//! Each workload runs three times (`--runs N`), interleaved: every selected workload once,
//! then every one again, and so on, so that a burst of load from another process on a
//! shared machine hits one run of several workloads rather than every run of one. A row
//! reports the median run (events/s, baseline/s and the ratio each the median of the
//! runs), with `min`/`max` of events/s and `baseline_min`/`baseline_max` in the JSON; its
//! peak RSS is the highest of the runs.
//!
//! Each workload runs in its own child process (this binary, re-executed with
//! `--child BACKEND WORKLOAD`), so that its peak RSS (`VmHWM` from `/proc/self/status`)
//! is its own and not that of an earlier workload. Inside the child the baseline runs
//! first, right before the workload, on the same runtime; then the peak is reset by
//! writing `5` to `/proc/self/clear_refs`, so `peak_rss_mb` covers the workload (plus
//! the process's own baseline footprint: runtime, allocator, binary). Where the kernel
//! refuses the reset, the peak also covers the baseline and the table says so.
//!
//! The partitioned Redis rows (`partitions`, `cluster` in the JSON) run the pipeline on
//! 16 partitions, on the single Redis server and on a throwaway 3-master Redis Cluster
//! the harness starts when one of them is selected (see `throughput/redis.rs`).
//!
//! The ratio is `events_per_sec / baseline_per_sec`: the share of the baseline's speed
//! the framework keeps. It holds better than absolute numbers on a noisy shared machine.

#[path = "throughput/memory.rs"]
mod memory;
#[path = "throughput/nats.rs"]
mod nats;
#[path = "../tests/support/nats_server.rs"]
mod nats_server;
#[path = "throughput/redis.rs"]
mod redis;
#[path = "../tests/support/redis_cluster.rs"]
mod redis_cluster;
#[path = "../tests/support/redis_server.rs"]
mod redis_server;

use std::process::Command;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One measured workload: what `--json` prints, one per line.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Measurement {
    workload: String,
    backend: String,
    workers: u32,
    /// `default` (the spine and backend as a user starts them) or `recommended` (the
    /// README's settings for throughput: concurrency 256, batch 256).
    settings: String,
    events: u64,
    seconds: f64,
    events_per_sec: f64,
    baseline: String,
    baseline_per_sec: f64,
    ratio: f64,
    peak_rss_mb: f64,
    /// Runs the row summarises, and the slowest and fastest of them (events/s); absent
    /// in a child's single measurement.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    runs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    baseline_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    baseline_max: Option<f64>,
    /// Per-hop latency percentiles, for the Redis and NATS chains only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    p50_hop_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    p99_hop_us: Option<f64>,
    /// Partitions of the stream, for the partitioned Redis rows only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    partitions: Option<u32>,
    /// Whether the row ran on a Redis Cluster, for the partitioned Redis rows only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    cluster: Option<bool>,
    /// Whether the peak was reset after the baseline (false: it covers the baseline too).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    peak_includes_baseline: bool,
}

/// What a workload reports to the harness, before the harness adds the RSS.
struct Timed {
    workers: u32,
    events: u64,
    elapsed: Duration,
    baseline: &'static str,
    baseline_per_sec: f64,
    p50_hop_us: Option<f64>,
    p99_hop_us: Option<f64>,
}

/// How a Redis workload's stream is laid out: one stream (every row but the partitioned
/// ones), or partitions, on the single server or on the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// `.partitions(n)` on every backend of the workload.
    pub partitions: Option<u32>,
    /// On the throwaway Redis Cluster rather than the single server.
    pub cluster: bool,
}

impl Layout {
    /// What the filter words are matched against, besides backend, workload and settings.
    fn name(self) -> &'static str {
        match (self.partitions, self.cluster) {
            (None, _) => "",
            (Some(_), false) => "partitions",
            (Some(_), true) => "partitions cluster",
        }
    }
}

/// One stream.
const SINGLE: Layout = Layout {
    partitions: None,
    cluster: false,
};
/// 16 partitions on the single Redis server.
const PARTITIONED: Layout = Layout {
    partitions: Some(redis::PARTITIONS),
    cluster: false,
};
/// 16 partitions on the 3-master Redis Cluster.
const CLUSTER: Layout = Layout {
    partitions: Some(redis::PARTITIONS),
    cluster: true,
};

/// Every workload, in the order they run: (backend, workload, worker spines, settings,
/// stream layout).
const WORKLOADS: &[(&str, &str, u32, &str, Layout)] = &[
    ("memory", "chain", 1, DEFAULT, SINGLE),
    ("memory", "pipeline", 1, DEFAULT, SINGLE),
    ("memory", "fanout", 1, DEFAULT, SINGLE),
    ("redis", "chain", 1, DEFAULT, SINGLE),
    ("redis", "pipeline", 1, RECOMMENDED, SINGLE),
    ("redis", "pipeline", 1, DEFAULT, SINGLE),
    ("redis", "pipeline", 2, RECOMMENDED, SINGLE),
    ("redis", "fanout", 1, RECOMMENDED, SINGLE),
    ("redis", "produce", 1, DEFAULT, SINGLE),
    ("redis", "pipeline", 1, RECOMMENDED, PARTITIONED),
    ("redis", "pipeline", 2, RECOMMENDED, PARTITIONED),
    ("redis", "pipeline", 4, RECOMMENDED, PARTITIONED),
    ("redis", "pipeline", 1, RECOMMENDED, CLUSTER),
    ("redis", "pipeline", 2, RECOMMENDED, CLUSTER),
    ("redis", "pipeline", 4, RECOMMENDED, CLUSTER),
    ("nats", "chain", 1, DEFAULT, SINGLE),
    ("nats", "pipeline", 1, RECOMMENDED, SINGLE),
    ("nats", "pipeline", 2, RECOMMENDED, SINGLE),
    ("nats", "fanout", 1, RECOMMENDED, SINGLE),
];

/// The spine and backend as built with no settings beyond the backend's address.
const DEFAULT: &str = "default";
/// The README's settings for throughput: `.concurrency(256).batch_size(256)`.
const RECOMMENDED: &str = "recommended";
/// Runs of each workload unless `--runs N` says otherwise.
const RUNS: usize = 3;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let usage = "--child BACKEND WORKLOAD WORKERS SETTINGS [--partitions N] [--cluster]";
        let backend = args.get(at + 1).expect(usage);
        let workload = args.get(at + 2).expect(usage);
        let workers: u32 = args.get(at + 3).and_then(|w| w.parse().ok()).expect(usage);
        let settings = args.get(at + 4).expect(usage);
        // Hidden: `--scale F` shrinks the workload, for profiling under valgrind.
        let scale = args
            .iter()
            .position(|a| a == "--scale")
            .and_then(|at| args.get(at + 1))
            .and_then(|f| f.parse().ok())
            .unwrap_or(1.0);
        let layout = Layout {
            partitions: args
                .iter()
                .position(|a| a == "--partitions")
                .map(|at| args.get(at + 1).and_then(|n| n.parse().ok()).expect(usage)),
            cluster: args.iter().any(|a| a == "--cluster"),
        };
        child(backend, workload, workers, settings, layout, scale);
        return;
    }
    let json = args.iter().any(|a| a == "--json");
    let runs_at = args.iter().position(|a| a == "--runs");
    let runs = match runs_at.map(|at| args.get(at + 1).and_then(|n| n.parse::<usize>().ok())) {
        None => RUNS,
        Some(Some(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("--runs takes a positive number");
            std::process::exit(2);
        }
    };
    // `cargo bench` passes `--bench`; other flags are ignored, plain words filter (a
    // workload runs when any word is part of its backend, workload or settings name).
    let filters: Vec<&str> = args
        .iter()
        .enumerate()
        .filter(|&(i, a)| !a.starts_with("--") && runs_at.is_none_or(|at| i != at + 1))
        .map(|(_, a)| a.as_str())
        .collect();
    let selected: Vec<_> = WORKLOADS
        .iter()
        .filter(|(backend, workload, _, settings, layout)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    workload.contains(f)
                        || backend.contains(f)
                        || settings.contains(f)
                        || (!layout.name().is_empty() && layout.name().contains(f))
                })
        })
        .collect();
    // One Redis server for every Redis workload (each uses streams of its own): the one
    // at $NECROSTACK_BENCH_REDIS_URL, or a throwaway `redis-server` started here.
    let mut _server = None;
    let mut redis_url = std::env::var(redis::URL_ENV).ok();
    if redis_url.is_none() && selected.iter().any(|(backend, ..)| *backend == "redis") {
        _server = redis_server::RedisServer::start();
        redis_url = _server.as_ref().map(redis_server::RedisServer::url);
        if redis_url.is_none() {
            eprintln!(
                "skipping the Redis workloads: no redis-server (or set {})",
                redis::URL_ENV
            );
        }
    }

    // A throwaway 3-master Redis Cluster for the cluster rows, and the URL of the master
    // serving the raw baseline's hash-tagged stream.
    let mut _cluster = None;
    let mut cluster_urls = None;
    if selected.iter().any(|(.., layout)| layout.cluster) {
        _cluster = redis_cluster::RedisCluster::start();
        cluster_urls = _cluster.as_ref().map(|cluster| {
            let master = cluster.master_of(redis::CLUSTER_BASELINE_TAG);
            (cluster.url(), format!("redis://127.0.0.1:{master}"))
        });
        if cluster_urls.is_none() {
            eprintln!("skipping the Redis Cluster workloads: no redis-server or redis-cli");
        }
    }

    // The same for NATS: $NECROSTACK_BENCH_NATS_URL, or a throwaway `nats-server -js`.
    let mut _nats_server = None;
    let mut nats_url = std::env::var(nats::URL_ENV).ok();
    if nats_url.is_none() && selected.iter().any(|(backend, ..)| *backend == "nats") {
        _nats_server = nats_server::NatsServer::start();
        nats_url = _nats_server.as_ref().map(nats_server::NatsServer::url);
        if nats_url.is_none() {
            eprintln!(
                "skipping the NATS workloads: no nats-server (or set {})",
                nats::URL_ENV
            );
        }
    }

    if !json {
        print_header();
    }
    let urls = Urls {
        redis: redis_url.as_deref(),
        cluster: cluster_urls
            .as_ref()
            .map(|(seed, baseline)| (seed.as_str(), baseline.as_str())),
        nats: nats_url.as_deref(),
    };
    let runnable: Vec<_> = selected
        .into_iter()
        .filter(|(backend, .., layout)| {
            (*backend != "redis" || urls.redis.is_some())
                && (!layout.cluster || urls.cluster.is_some())
                && (*backend != "nats" || urls.nats.is_some())
        })
        .collect();
    // Interleaved: run 1 of every workload, then run 2 of every workload, ...
    let mut results: Vec<Vec<Measurement>> = vec![Vec::new(); runnable.len()];
    let mut failed = vec![false; runnable.len()];
    for _ in 0..runs {
        for (at, &&(backend, workload, workers, settings, layout)) in runnable.iter().enumerate() {
            if failed[at] {
                continue;
            }
            match run_child(backend, workload, workers, settings, layout, urls) {
                Ok(measured) => results[at].extend(measured),
                Err(error) => {
                    eprintln!("{backend} {workload} ({settings}): {error}");
                    failed[at] = true;
                }
            }
        }
    }
    let mut any_unreset = false;
    for (measured, _) in results.iter().zip(&failed).filter(|(_, failed)| !**failed) {
        let Some(m) = summarise(measured) else {
            continue;
        };
        any_unreset |= m.peak_includes_baseline;
        if json {
            println!("{}", serde_json::to_string(&m).expect("serializable"));
        } else {
            print_row(&m);
        }
    }
    if !json {
        print_machine(any_unreset);
    }
    if failed.iter().any(|f| *f) {
        std::process::exit(1);
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// One row for the runs of a workload: medians of events/s, baseline/s, ratio, seconds
/// and latencies; min and max of events/s and baseline/s; the highest peak RSS.
fn summarise(runs: &[Measurement]) -> Option<Measurement> {
    let first = runs.first()?;
    let of = |f: fn(&Measurement) -> f64| runs.iter().map(f).collect::<Vec<_>>();
    let opt = |f: fn(&Measurement) -> Option<f64>| {
        let values: Vec<f64> = runs.iter().filter_map(f).collect();
        (!values.is_empty()).then(|| median(&values))
    };
    let rates = of(|m| m.events_per_sec);
    let baselines = of(|m| m.baseline_per_sec);
    Some(Measurement {
        seconds: median(&of(|m| m.seconds)),
        events_per_sec: median(&rates),
        baseline_per_sec: median(&baselines),
        ratio: median(&of(|m| m.ratio)),
        peak_rss_mb: of(|m| m.peak_rss_mb).into_iter().fold(0.0, f64::max),
        runs: Some(runs.len()),
        min: rates.iter().copied().reduce(f64::min),
        max: rates.iter().copied().reduce(f64::max),
        baseline_min: baselines.iter().copied().reduce(f64::min),
        baseline_max: baselines.iter().copied().reduce(f64::max),
        p50_hop_us: opt(|m| m.p50_hop_us),
        p99_hop_us: opt(|m| m.p99_hop_us),
        peak_includes_baseline: runs.iter().any(|m| m.peak_includes_baseline),
        ..first.clone()
    })
}

/// The servers' URLs, passed to the child processes.
#[derive(Clone, Copy)]
struct Urls<'a> {
    redis: Option<&'a str>,
    /// The cluster's seed node, and the master of the baseline's stream.
    cluster: Option<(&'a str, &'a str)>,
    nats: Option<&'a str>,
}

/// Runs one workload in a child process and reads back its measurements.
fn run_child(
    backend: &str,
    workload: &str,
    workers: u32,
    settings: &str,
    layout: Layout,
    urls: Urls<'_>,
) -> Result<Vec<Measurement>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the bench binary: {e}"))?;
    let mut command = Command::new(exe);
    if let Some(url) = urls.redis {
        command.env(redis::URL_ENV, url);
    }
    if let Some((seed, baseline)) = urls.cluster {
        command.env(redis::CLUSTER_URL_ENV, seed);
        command.env(redis::CLUSTER_BASELINE_URL_ENV, baseline);
    }
    if let Some(url) = urls.nats {
        command.env(nats::URL_ENV, url);
    }
    command.args(["--child", backend, workload, &workers.to_string(), settings]);
    if let Some(partitions) = layout.partitions {
        command.args(["--partitions", &partitions.to_string()]);
    }
    if layout.cluster {
        command.arg("--cluster");
    }
    let output = command
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start the child process: {e}"))?;
    if !output.status.success() {
        return Err(format!("the child process failed: {}", output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).map_err(|e| format!("bad child output: {e}")))
        .collect()
}

/// In the child: run the workload(s) named and print one JSON line per measurement.
fn child(backend: &str, workload: &str, workers: u32, settings: &str, layout: Layout, scale: f64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let timings: Vec<Timed> = match backend {
        "memory" => vec![runtime.block_on(memory::run(workload, scale, reset_peak_rss))],
        // On a worker thread of the runtime, as under `#[tokio::main]`, so that waking up
        // after a round trip does not cross from a worker to the main thread.
        "redis" => {
            let (workload, settings) = (workload.to_owned(), settings.to_owned());
            let run = runtime.spawn(async move {
                redis::run(&workload, workers, &settings, layout, scale, reset_peak_rss).await
            });
            vec![runtime.block_on(run).expect("the Redis workload task")]
        }
        "nats" => {
            let (workload, scale) = (workload.to_owned(), scale);
            let run = runtime
                .spawn(async move { nats::run(&workload, workers, scale, reset_peak_rss).await });
            vec![runtime.block_on(run).expect("the NATS workload task")]
        }
        other => panic!("unknown backend {other}"),
    };
    for timed in timings {
        let m = measurement(backend, workload, settings, layout, timed);
        println!("{}", serde_json::to_string(&m).expect("serializable"));
    }
}

fn measurement(
    backend: &str,
    workload: &str,
    settings: &str,
    layout: Layout,
    t: Timed,
) -> Measurement {
    let seconds = t.elapsed.as_secs_f64();
    let events_per_sec = t.events as f64 / seconds;
    let (peak_rss_mb, reset) = peak_rss_mb();
    Measurement {
        workload: workload.to_owned(),
        backend: backend.to_owned(),
        workers: t.workers,
        settings: settings.to_owned(),
        events: t.events,
        seconds,
        events_per_sec,
        baseline: t.baseline.to_owned(),
        baseline_per_sec: t.baseline_per_sec,
        ratio: events_per_sec / t.baseline_per_sec,
        peak_rss_mb,
        runs: None,
        min: None,
        max: None,
        baseline_min: None,
        baseline_max: None,
        p50_hop_us: t.p50_hop_us,
        p99_hop_us: t.p99_hop_us,
        partitions: layout.partitions,
        cluster: layout.partitions.map(|_| layout.cluster),
        peak_includes_baseline: !reset,
    }
}

static PEAK_RESET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Resets the kernel's peak-RSS mark (`VmHWM`) to the current RSS. Called by each
/// workload between its baseline and its measured run.
fn reset_peak_rss() {
    let ok = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    PEAK_RESET.store(ok, std::sync::atomic::Ordering::SeqCst);
}

/// The process's peak RSS in MiB, and whether it was reset after the baseline.
fn peak_rss_mb() -> (f64, bool) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(f64::NAN);
    (
        kib / 1024.0,
        PEAK_RESET.load(std::sync::atomic::Ordering::SeqCst),
    )
}

fn print_header() {
    println!(
        "{:<10} {:<7} {:>7} {:<11} {:>10} {:>8} {:>12} {:<28} {:>12} {:>6} {:>9}",
        "workload",
        "backend",
        "workers",
        "settings",
        "events",
        "seconds",
        "events/s",
        "baseline",
        "baseline/s",
        "ratio",
        "peak MB"
    );
}

fn print_row(m: &Measurement) {
    println!(
        "{:<10} {:<7} {:>7} {:<11} {:>10} {:>8.3} {:>12.0} {:<28} {:>12.0} {:>6.3} {:>8.1}{}",
        m.workload,
        m.backend,
        m.workers,
        m.settings,
        m.events,
        m.seconds,
        m.events_per_sec,
        m.baseline,
        m.baseline_per_sec,
        m.ratio,
        m.peak_rss_mb,
        if m.peak_includes_baseline { "*" } else { "" }
    );
    if let Some(partitions) = m.partitions {
        let on = if m.cluster == Some(true) {
            "the 3-master Redis Cluster"
        } else {
            "the single Redis server"
        };
        println!("{:<10} {partitions} partitions on {on}", "");
    }
    if let (Some(runs), Some(min), Some(max)) = (m.runs, m.min, m.max) {
        if runs > 1 {
            println!("{:<10} {runs} runs: {min:.0} to {max:.0} events/s", "");
        }
    }
    if let (Some(p50), Some(p99)) = (m.p50_hop_us, m.p99_hop_us) {
        println!(
            "{:<10} per-hop latency: p50 {p50:.0} µs, p99 {p99:.0} µs",
            ""
        );
    }
}

fn print_machine(any_unreset: bool) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("\nmachine: {model}, {cores} cores available");
    if any_unreset {
        println!("(* peak RSS includes the baseline run: /proc/self/clear_refs refused)");
    }
}
