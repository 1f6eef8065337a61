//! Creating what the backend needs on the server, when missing: the events stream, the
//! scheduled stream, the dead-letter stream, the durable consumer and the mover's
//! consumer. Existing ones are used as they are.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::stream::{Config, RetentionPolicy, StorageType};

use super::config::Storage;
use super::core::{Core, Failure};
use super::error::NatsBackendError;

/// The durable consumer of the scheduled stream, shared by every worker of every group.
pub(crate) const MOVER_CONSUMER: &str = "necrostack-mover";

/// `AckWait` of the mover's consumer: a move takes two round trips, so this only bounds
/// how late a scheduled event becomes when a worker dies in the middle of moving it.
pub(crate) const MOVER_ACK_WAIT: Duration = Duration::from_secs(10);

/// Creates the three streams if missing.
pub(crate) async fn streams(core: &Core) -> Result<(), NatsBackendError> {
    let c = &core.config;
    let base = Config {
        storage: match c.storage {
            Storage::File => StorageType::File,
            Storage::Memory => StorageType::Memory,
        },
        num_replicas: c.replicas,
        duplicate_window: c.duplicate_window,
        ..Config::default()
    };
    let events = Config {
        name: c.stream.clone(),
        subjects: vec![core.subject.clone()],
        retention: RetentionPolicy::Limits,
        max_age: c.max_age.unwrap_or_default(),
        ..base.clone()
    };
    let scheduled = Config {
        name: c.scheduled_stream(),
        subjects: vec![format!("{}.scheduled.*", core.subject)],
        // A scheduled event leaves the stream once moved (acknowledged by the mover).
        retention: RetentionPolicy::WorkQueue,
        ..base.clone()
    };
    let dead = Config {
        name: c.dead_letter_stream(),
        subjects: vec![c.dead_letter_subject()],
        retention: RetentionPolicy::Limits,
        ..base
    };
    for config in [events, scheduled, dead] {
        let name = config.name.clone();
        let wanted = config.subjects.clone();
        let subjects = core
            .retrying("create stream", || {
                let config = config.clone();
                async move {
                    core.js
                        .get_or_create_stream(config)
                        .await
                        .map(|stream| stream.cached_info().config.subjects.clone())
                        .map_err(|error| classify(core, "create stream", &error))
                }
            })
            .await?;
        check_subjects(&name, &wanted, &subjects)?;
        tracing::debug!(stream = %name, "NATS stream ready");
    }
    Ok(())
}

/// An existing stream must take the subjects this backend publishes to, or every publish
/// would wait for a responder until the reconnect timeout.
fn check_subjects(stream: &str, wanted: &[String], has: &[String]) -> Result<(), NatsBackendError> {
    let missing: Vec<&String> = wanted.iter().filter(|s| !has.contains(s)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(NatsBackendError::Config(format!(
        "the existing stream {stream} has the subjects {has:?}, not {missing:?}: set `.subject(...)` to match it, or use another stream name"
    )))
}

/// Creates the durable consumer and the mover's consumer if missing; returns the
/// `AckWait` the server has for the durable consumer.
pub(crate) async fn consumers(core: &Core) -> Result<Duration, NatsBackendError> {
    let c = &core.config;
    let main = pull::Config {
        durable_name: Some(c.consumer.clone()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: c.ack_wait,
        // The backend counts deliveries itself and dead-letters past max_deliveries: the
        // server's MaxDeliver would only stop delivering, leaving the message unhandled
        // with nothing but an advisory.
        max_deliver: -1,
        max_ack_pending: c.max_ack_pending,
        ..pull::Config::default()
    };
    let ack_wait = ensure_consumer(core, &c.stream, main).await?;
    let mover = pull::Config {
        durable_name: Some(MOVER_CONSUMER.to_owned()),
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: MOVER_ACK_WAIT,
        // Not-yet-due events wait as pending messages (a negative ack with a delay), as
        // many as are scheduled, each delivered again at every due check.
        max_deliver: -1,
        max_ack_pending: -1,
        ..pull::Config::default()
    };
    ensure_consumer(core, &c.scheduled_stream(), mover).await?;
    Ok(ack_wait)
}

async fn ensure_consumer(
    core: &Core,
    stream: &str,
    config: pull::Config,
) -> Result<Duration, NatsBackendError> {
    let name = config.durable_name.clone().unwrap_or_default();
    core.retrying("create consumer", || {
        let config = config.clone();
        let name = name.clone();
        async move {
            let stream = core
                .js
                .get_stream(stream)
                .await
                .map_err(|error| classify(core, "create consumer", &error))?;
            let mut consumer = stream
                .get_or_create_consumer::<pull::Config>(&name, config)
                .await
                .map_err(|error| classify(core, "create consumer", &error))?;
            let info = consumer
                .info()
                .await
                .map_err(|error| classify(core, "create consumer", &error))?;
            Ok(info.config.ack_wait)
        }
    })
    .await
}

/// Timeouts, missing responders and elections are transient; anything else is fatal.
fn classify(core: &Core, operation: &'static str, error: &dyn std::fmt::Display) -> Failure {
    let message = core.scrub(error);
    let lower = message.to_lowercase();
    let transient = [
        "timed out",
        "timeout",
        "unavailable",
        "no responders",
        "leader",
    ]
    .iter()
    .any(|word| lower.contains(word));
    if transient {
        Failure::Transient(message)
    } else {
        Failure::Fatal(NatsBackendError::JetStream { operation, message })
    }
}
