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
//! cargo run --example notification_pipeline                         # 20 generated
//! cargo run --example notification_pipeline -- --count 500 --seed 7 --json
//! cargo run --example notification_pipeline -- --file requests.json  # or .csv
//! cargo run --example notification_pipeline -- --redis redis://127.0.0.1:6379
//! ```
//!
//! With `--redis URL` the same flow runs on a Redis stream (a fresh stream
//! `notification_pipeline:<uuid>` per run unless `--stream NAME` is given, so a rerun
//! never sees the events of an earlier one); dead letters then go to its `:dlq` stream.

mod audit;
#[path = "../support/cli.rs"]
mod cli;
#[path = "../support/csv.rs"]
mod csv;
mod events;
#[path = "../support/file_input.rs"]
mod file_input;
mod input;
#[path = "../support/logs.rs"]
mod logs;
mod organs;
#[path = "../support/redis_backend.rs"]
mod redis_backend;
#[path = "../support/rng.rs"]
mod rng;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use necrostack::{Backend, Failure, FailurePolicy, InMemoryBackend, RetryPolicy, Spine, Uuid};
use serde_json::json;

use audit::*;
use events::*;
use organs::{EmailSender, FailureModel, PushSender, SmsSender};

/// Tries per send before the message is dead-lettered.
const SEND_TRIES: u32 = 4;

const USAGE: &str = "usage: notification_pipeline [--file PATH | --count N] [--seed S] [--json]
                             [--failure-rate F] [--permanent-rate F] [--latency-ms MS]
                             [--redis URL [--stream NAME]]";

/// The command line.
struct Args {
    file: Option<String>,
    count: u64,
    seed: u64,
    json: bool,
    transient_rate: f64,
    permanent_rate: f64,
    latency: Duration,
    redis: Option<String>,
    stream: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        file: None,
        count: 20,
        seed: 42,
        json: false,
        transient_rate: 0.2,
        permanent_rate: 0.05,
        latency: Duration::from_millis(2),
        redis: None,
        stream: None,
    };
    let mut count_given = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--file" => args.file = Some(value("--file")?),
            "--count" => {
                args.count = cli::number(&value("--count")?, "--count")?;
                count_given = true;
            }
            "--seed" => args.seed = cli::number(&value("--seed")?, "--seed")?,
            "--json" => args.json = true,
            "--redis" => args.redis = Some(value("--redis")?),
            "--stream" => args.stream = Some(value("--stream")?),
            "--failure-rate" => args.transient_rate = rate(&value("--failure-rate")?)?,
            "--permanent-rate" => args.permanent_rate = rate(&value("--permanent-rate")?)?,
            "--latency-ms" => {
                args.latency =
                    Duration::from_millis(cli::number(&value("--latency-ms")?, "--latency-ms")?)
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if count_given && args.file.is_some() {
        return Err(format!("--file and --count exclude each other\n{USAGE}"));
    }
    Ok(args)
}

fn rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("a rate must be a number in [0, 1], not {text:?}")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    logs::init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("notification_pipeline: {message}");
            return ExitCode::from(2);
        }
    };
    let requests = match &args.file {
        Some(path) => match input::read_file(path) {
            Ok(requests) => requests,
            Err(error) => {
                eprintln!("notification_pipeline: {error}");
                return ExitCode::from(2);
            }
        },
        None => input::generate(args.count, args.seed),
    };
    match run(&args, requests).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("notification_pipeline: {error}");
            ExitCode::FAILURE
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

/// Runs the flow in memory, or on Redis with `--redis`.
async fn run(args: &Args, requests: Vec<NotificationRequested>) -> Result<(), necrostack::Error> {
    match &args.redis {
        None => run_on(InMemoryBackend::new(), args, requests).await,
        Some(url) => {
            let backend =
                redis_backend::connect("notification_pipeline", url, args.stream.as_deref())
                    .await?;
            run_on(backend, args, requests).await
        }
    }
}

/// The flow on `backend`; the summary comes from the audit's counts.
async fn run_on<B: Backend>(
    backend: B,
    args: &Args,
    requests: Vec<NotificationRequested>,
) -> Result<(), necrostack::Error> {
    let model = Arc::new(FailureModel::new(
        args.seed,
        args.transient_rate,
        args.permanent_rate,
    ));
    let audit = Arc::new(Audit::default());
    let failures: Arc<Mutex<Vec<Failure>>> = Arc::default();
    let failed_sends = Arc::clone(&failures);
    // Per request at most: request, verdict, 3 queued, 3 outcomes.
    let max_steps = 8 * requests.len() + 100;
    let spine = Spine::builder()
        .backend(backend)
        .organ(organs::validate_request)
        .organ(organs::route)
        .organ(EmailSender {
            failures: Arc::clone(&model),
            latency: args.latency,
        })
        .organ(SmsSender {
            failures: Arc::clone(&model),
        })
        .organ(PushSender {
            failures: Arc::clone(&model),
            latency: args.latency,
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
        .max_steps(max_steps)
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

    // Each request is a root event: its id is the correlation id of everything it causes.
    let mut ids: HashMap<Uuid, String> = HashMap::new();
    for request in requests {
        let id = request.id.clone();
        ids.insert(spine.emit(request).await?, id);
    }
    let sending = spine.run_until_idle().await?;

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
        transient: model.transient.load(std::sync::atomic::Ordering::Relaxed),
        permanent: model.permanent.load(std::sync::atomic::Ordering::Relaxed),
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
