//! A notification pipeline: requests are validated, routed to one queue per channel,
//! sent by three senders that sometimes fail, and audited.
//!
//! ```text
//! NOTIFICATION_REQUESTED → Validate → NOTIFICATION_VALIDATED | NOTIFICATION_REJECTED
//! NOTIFICATION_VALIDATED → Router   → EMAIL_QUEUED, SMS_QUEUED, PUSH_QUEUED (per channel)
//! EMAIL_QUEUED → EmailSender (async, latency) ┐
//! SMS_QUEUED   → SmsSender (sync)             ├→ NOTIFICATION_SENT
//! PUSH_QUEUED  → PushSender (async, latency)  ┘   or, after the last try, a dead letter
//!                                                  → NOTIFICATION_FAILED
//! every event  → Audit (counts per type and channel)
//! ```
//!
//! Senders fail on a seeded fraction of messages. A failing send returns `Err`; the
//! spine's `FailurePolicy::Retry` tries it again with exponential backoff, and once the
//! tries are used up moves the event to the dead-letter store. A transient failure
//! (`--failure-rate`, per try) usually succeeds on a later try; a permanent one
//! (`--permanent-rate`, per message: the address bounces) carries a
//! `necrostack::Permanent` as its source, so the spine does not retry it and moves the
//! event to the dead-letter store at once.
//! After the run, each dead-lettered send is reported as NOTIFICATION_FAILED, so the
//! audit sees one outcome per message and channel.
//!
//! ```text
//! cargo run --example notification_pipeline -- --help                # every option
//! cargo run --example notification_pipeline                         # 20 generated
//! cargo run --example notification_pipeline -- --count 500 --seed 7 --json
//! cargo run --example notification_pipeline -- --file requests.json  # or .csv
//! cargo run --example notification_pipeline -- --redis redis://127.0.0.1:6379
//! cargo run --example notification_pipeline -- --nats nats://127.0.0.1:4222
//! ```
//!
//! With `--redis URL` the same flow runs on a Redis stream (a fresh stream
//! `notification_pipeline:<uuid>` per run unless `--stream NAME` is given, so a rerun
//! never sees the events of an earlier one); dead letters then go to its `:dlq` stream.
//! Both are deleted at the end unless `--keep`. With `--nats URL` it runs on NATS
//! JetStream instead, on a fresh stream `NOTIFICATION_PIPELINE_<uuid>` (memory storage),
//! deleted at the end with its scheduled and dead-letter streams. A file is read while
//! the spine runs, into a bounded queue, so its length does not decide the memory used.

mod audit;
#[path = "../support/cli.rs"]
mod cli;
mod events;
#[path = "../support/feed.rs"]
mod feed;
#[path = "../support/file_input.rs"]
mod file_input;
mod input;
#[path = "../support/logs.rs"]
mod logs;
#[path = "../support/nats_backend.rs"]
mod nats_backend;
mod organs;
#[path = "../support/progress.rs"]
mod progress;
#[path = "../support/redis_backend.rs"]
mod redis_backend;
#[path = "../support/rng.rs"]
mod rng;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::{value_parser, Parser};
use necrostack::{Backend, Failure, FailurePolicy, InMemoryBackend, RetryPolicy, Spine, Uuid};
use serde_json::json;

use audit::*;
use events::*;
use file_input::{Feed, InputError, Source};
use nats_backend::NatsArgs;
use organs::{EmailSender, FailureModel, PushSender, SmsSender};
use progress::Progress;
use redis_backend::RedisArgs;

/// Tries per send before the message is dead-lettered.
const SEND_TRIES: u32 = 4;
/// The most requests `--count` generates.
const MAX_COUNT: u64 = 10_000_000;
/// The longest simulated provider latency, in milliseconds.
const MAX_LATENCY_MS: u64 = 60_000;
/// Events queued in memory ahead of the spine; the reader waits when it is full.
const QUEUE: usize = 4096;

/// A notification pipeline: requests are validated, routed to one queue per channel, sent
/// by three senders that sometimes fail (retried, then dead-lettered), and audited.
#[derive(Debug, Parser)]
#[command(name = "notification_pipeline", version)]
#[command(group = clap::ArgGroup::new("backend").args(["redis", "nats"]))]
struct Args {
    /// Read requests from PATH: JSON {"notifications": [...]} or CSV with at least the
    /// columns id,recipient,channels,template [default: --count generated requests]
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// How many requests to generate, 0..=10000000
    #[arg(long, value_name = "N", default_value_t = 20, conflicts_with = "file",
          value_parser = value_parser!(u64).range(0..=MAX_COUNT))]
    count: u64,
    /// Seed of the generated requests and of the senders' failures, 0..=18446744073709551615
    #[arg(long, value_name = "S", default_value_t = 42)]
    seed: u64,
    /// Print one JSON object with the counts instead of the table
    #[arg(long)]
    json: bool,
    /// Fraction of send tries that fail transiently (and are retried), 0..=1
    #[arg(long = "failure-rate", value_name = "F", default_value_t = 0.2, value_parser = cli::rate)]
    transient_rate: f64,
    /// Fraction of messages whose address bounces (dead-lettered at once), 0..=1
    #[arg(long = "permanent-rate", value_name = "F", default_value_t = 0.05, value_parser = cli::rate)]
    permanent_rate: f64,
    /// Simulated email and push provider latency in ms, 0..=60000 (0: no wait)
    #[arg(long, value_name = "MS", default_value_t = 2,
          value_parser = value_parser!(u64).range(0..=MAX_LATENCY_MS))]
    latency_ms: u64,
    /// Show no progress bar (it shows on a terminal when a run takes over 2 s)
    #[arg(long, short)]
    quiet: bool,
    /// Print the flow as a Mermaid flowchart (organs, the event types between them) and exit
    #[arg(long)]
    topology: bool,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    nats: NatsArgs,
}

/// A run that failed: the input (exit 2) or the spine (exit 1).
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Spine(#[from] necrostack::Error),
}

#[tokio::main]
async fn main() -> ExitCode {
    logs::init();
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("notification_pipeline: {error}");
            match error {
                RunError::Input(_) => ExitCode::from(2),
                RunError::Spine(_) => ExitCode::FAILURE,
            }
        }
    }
}

/// What the summary reports.
struct Summary {
    audit: Arc<Audit>,
    transient: u64,
    permanent: u64,
    retries: usize,
    dead_letters: usize,
}

/// Runs the flow in memory, on Redis with `--redis`, or on NATS with `--nats`.
async fn run(args: &Args) -> Result<(), RunError> {
    if let (Some(url), false) = (&args.nats.nats, args.topology) {
        let backend = nats_backend::connect("notification_pipeline", url).await?;
        let result = run_on(backend.clone(), args).await;
        nats_backend::clean_up(&backend, url).await;
        return result;
    }
    match &args.redis.redis {
        // The picture needs no broker: the organs are the same on every backend.
        _ if args.topology => run_on(InMemoryBackend::new(), args).await,
        None => run_on(InMemoryBackend::bounded(QUEUE), args).await,
        Some(url) => {
            let backend =
                redis_backend::connect("notification_pipeline", url, args.redis.stream.as_deref())
                    .await?;
            let result = run_on(backend.clone(), args).await;
            redis_backend::clean_up(&backend, &args.redis).await;
            result
        }
    }
}

/// Request ids by the id of their root event, to name the request of a dead letter.
type Ids = Arc<Mutex<HashMap<Uuid, String>>>;

/// Submits the requests while the spine runs: read from the feed, else `count`
/// generated from `seed`.
async fn submit<B: Backend>(
    spine: Spine<B>,
    feed: Option<Feed>,
    (count, seed): (u64, u64),
    ids: Ids,
    progress: Arc<Progress>,
    audit: Arc<Audit>,
) -> Result<(), RunError> {
    let emit = |request: NotificationRequested| {
        let (spine, ids) = (spine.clone(), Arc::clone(&ids));
        async move {
            let id = request.id.clone();
            let root = spine.emit(request).await?;
            ids.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(root, id);
            Ok::<(), RunError>(())
        }
    };
    let Some(mut feed) = feed else {
        for request in input::generate(count, seed) {
            progress.set(request.seq, || format!("{} events handled", audit.total()));
            emit(request).await?;
        }
        return Ok(());
    };
    let mut seq = 0;
    while let Some(entry) = feed.entries.recv().await {
        seq += 1;
        let read = feed.bytes_read.load(Ordering::Relaxed);
        progress.set(read, || {
            format!("{seq} requests, {} events handled", audit.total())
        });
        emit(input::request(seq, &entry?.fields)).await?;
    }
    Ok(())
}

/// The flow on `backend`; the summary comes from the audit's counts.
async fn run_on<B: Backend>(backend: B, args: &Args) -> Result<(), RunError> {
    let model = Arc::new(FailureModel::new(
        args.seed,
        args.transient_rate,
        args.permanent_rate,
    ));
    let latency = Duration::from_millis(args.latency_ms);
    let audit = Arc::new(Audit::default());
    let failures: Arc<Mutex<Vec<Failure>>> = Arc::default();
    let failed_sends = Arc::clone(&failures);
    let spine = Spine::builder()
        .backend(backend)
        .organ(organs::validate_request)
        .organ(organs::route)
        .organ(EmailSender {
            failures: Arc::clone(&model),
            latency,
        })
        .organ(SmsSender {
            failures: Arc::clone(&model),
        })
        .organ(PushSender {
            failures: Arc::clone(&model),
            latency,
        })
        .organ(AuditRequested(Arc::clone(&audit)))
        .organ(AuditValidated(Arc::clone(&audit)))
        .organ(AuditRejected(Arc::clone(&audit)))
        .organ(AuditEmail(Arc::clone(&audit)))
        .organ(AuditSms(Arc::clone(&audit)))
        .organ(AuditPush(Arc::clone(&audit)))
        .organ(AuditSent(Arc::clone(&audit)))
        .organ(AuditFailed(Arc::clone(&audit)))
        // Senders wait on (simulated) providers: let several messages be in flight.
        .concurrency(8)
        // The input's length is not known up front; the depth limit still stops loops.
        .max_steps(usize::MAX)
        .failure_policy(FailurePolicy::Retry(
            RetryPolicy::new(SEND_TRIES)
                .backoff(Duration::from_millis(5), Duration::from_millis(40)),
        ))
        .on_failure(move |failure| {
            failed_sends
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(failure.clone())
        })
        .build()?;
    if args.topology {
        print!("{}", spine.topology().to_mermaid());
        return Ok(());
    }

    // Each request is a root event: its id is the correlation id of everything it causes.
    let ids: Ids = Arc::default();
    let feed = (args.file.as_ref())
        .map(|path| file_input::spawn(Source::File(path.clone()), input::SHAPE));
    let (total, unit) = match &feed {
        Some(feed) => (feed.size, "bytes"),
        None => (Some(args.count), "requests"),
    };
    let progress = Arc::new(Progress::new(args.quiet, total, unit));
    let submitting = submit(
        spine.clone(),
        feed,
        (args.count, args.seed),
        Arc::clone(&ids),
        Arc::clone(&progress),
        Arc::clone(&audit),
    );
    let (sending, submitted) = feed::run_while_producing(&spine, submitting).await?;
    progress.finish();
    submitted?;
    let ids = std::mem::take(&mut *ids.lock().unwrap_or_else(PoisonError::into_inner));

    // Reconcile: every send the spine dead-lettered becomes NOTIFICATION_FAILED.
    let dead: Vec<Failure> =
        std::mem::take(&mut *failures.lock().unwrap_or_else(PoisonError::into_inner));
    let mut outcomes = Vec::new();
    for failure in dead {
        let channel = match failure.event_type.as_str() {
            "EMAIL_QUEUED" => Channel::Email,
            "SMS_QUEUED" => Channel::Sms,
            "PUSH_QUEUED" => Channel::Push,
            other => {
                tracing::error!(event_type = other, organ = failure.organ, error = %failure.error, "unexpected failure");
                continue;
            }
        };
        outcomes.push(NotificationFailed {
            id: ids
                .get(&failure.correlation_id)
                .cloned()
                .unwrap_or_default(),
            channel,
            attempts: failure.attempts,
            error: failure.error,
        });
    }
    spine.emit_all(outcomes).await?;
    let reconciling = spine.run_until_idle().await?;

    let summary = Summary {
        audit,
        transient: model.transient.load(Ordering::Relaxed),
        permanent: model.permanent.load(Ordering::Relaxed),
        retries: sending.retried + reconciling.retried,
        dead_letters: sending.dead_lettered + reconciling.dead_lettered,
    };
    if args.json {
        println!("{}", summary_json(&summary));
    } else {
        print!("{}", summary_text(&summary));
    }
    Ok(())
}

fn per_channel<E: necrostack::Event>(audit: &Audit) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for channel in Channel::ALL {
        map.insert(channel.name().into(), audit.count_on::<E>(channel).into());
    }
    map.into()
}

fn summary_json(s: &Summary) -> serde_json::Value {
    let a = &s.audit;
    json!({
        "requested": a.count::<NotificationRequested>(),
        "validated": a.count::<NotificationValidated>(),
        "rejected": a.count::<NotificationRejected>(),
        "queued": {
            "email": a.count::<EmailQueued>(),
            "sms": a.count::<SmsQueued>(),
            "push": a.count::<PushQueued>(),
        },
        "sent": per_channel::<NotificationSent>(a),
        "failed": per_channel::<NotificationFailed>(a),
        "transient_failures": s.transient,
        "permanent_failures": s.permanent,
        "retries": s.retries,
        "dead_letters": s.dead_letters,
    })
}

fn summary_text(s: &Summary) -> String {
    let a = &s.audit;
    let queued = [
        a.count::<EmailQueued>(),
        a.count::<SmsQueued>(),
        a.count::<PushQueued>(),
    ];
    let mut out = format!(
        "notifications: {} requested, {} validated, {} rejected\n",
        a.count::<NotificationRequested>(),
        a.count::<NotificationValidated>(),
        a.count::<NotificationRejected>()
    );
    out.push_str("channel   queued    sent  failed\n");
    for (channel, queued) in Channel::ALL.into_iter().zip(queued) {
        out.push_str(&format!(
            "{:<8} {:>7} {:>7} {:>7}\n",
            channel.name(),
            queued,
            a.count_on::<NotificationSent>(channel),
            a.count_on::<NotificationFailed>(channel)
        ));
    }
    out.push_str(&format!(
        "total    {:>7} {:>7} {:>7}\n",
        queued.iter().sum::<u64>(),
        a.count::<NotificationSent>(),
        a.count::<NotificationFailed>()
    ));
    out.push_str(&format!(
        "failed tries: {} transient, {} permanent; {} retries with backoff (up to {SEND_TRIES} tries); {} dead letters\n",
        s.transient, s.permanent, s.retries, s.dead_letters
    ));
    out
}
