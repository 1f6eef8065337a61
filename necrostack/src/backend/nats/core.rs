//! [`Core`]: the state every clone of a [`NatsBackend`](super::NatsBackend) shares (the
//! connection, the names, what this worker holds), and the retry rule every operation
//! follows: transient failures are retried until the reconnect timeout, counted from the
//! first failure, has passed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::Subject;
use tokio::time::Instant;

use super::config::{NatsBackendBuilder, NatsConfig};
use super::error::NatsBackendError;
use super::health::Counters;
use super::secret::{Credentials, Secrets};

/// The first pause after a failure; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Why one try of an operation failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The server is away or busy (timeout, no responders, leader election): try again.
    Transient(String),
    /// Trying again will not help.
    Fatal(NatsBackendError),
}

impl From<NatsBackendError> for Failure {
    fn from(error: NatsBackendError) -> Self {
        Failure::Fatal(error)
    }
}

pub(crate) struct Core {
    pub(crate) config: NatsConfig,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) secrets: Secrets,
    pub(crate) subject: String,
    /// `$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}`.
    pub(crate) next_subject: String,
    /// The `AckWait` of the consumer as the server has it (an existing consumer keeps its
    /// own): the heartbeat's period is a third of it.
    pub(crate) ack_wait: Mutex<Duration>,
    pub(crate) counters: Arc<Counters>,
    /// Messages this worker holds (fetched, not yet completed or released), by stream
    /// sequence, with their ack subject: the heartbeat keeps them from being redelivered.
    pub(crate) held: Mutex<HashMap<u64, Subject>>,
    /// Since when operations fail; `None` while the server answers.
    down_since: Mutex<Option<Instant>>,
    pub(crate) closed: AtomicBool,
    /// Held by the schedule mover while it moves one message, so that `next_due` never
    /// sees a message this worker already moved but has not yet acknowledged.
    pub(crate) moving: tokio::sync::Mutex<()>,
    /// Held by a fetch for as long as it runs: `close` waits for it, because a pull
    /// request cannot be taken back, and a message given back while one is open could be
    /// delivered to it after this worker stopped listening.
    pub(crate) fetching: tokio::sync::Mutex<()>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code path panics while holding these locks; recover rather than propagate.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Core {
    /// Connects and creates the streams and the consumers.
    pub(crate) async fn connect(builder: NatsBackendBuilder) -> Result<Core, NatsBackendError> {
        builder.validate()?;
        let config = builder.config;
        let secrets = config.urls.secrets();
        let client = connect_client(&config, &secrets).await?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.response_timeout);
        let core = Core {
            subject: config.subject(),
            next_subject: format!(
                "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
                config.stream, config.consumer
            ),
            ack_wait: Mutex::new(config.ack_wait),
            config,
            client,
            js,
            secrets,
            counters: Arc::new(Counters::default()),
            held: Mutex::new(HashMap::new()),
            down_since: Mutex::new(None),
            closed: AtomicBool::new(false),
            moving: tokio::sync::Mutex::new(()),
            fetching: tokio::sync::Mutex::new(()),
        };
        super::setup::streams(&core).await?;
        let ack_wait = super::setup::consumers(&core).await?;
        *lock(&core.ack_wait) = ack_wait;
        Ok(core)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub(crate) fn held(&self) -> MutexGuard<'_, HashMap<u64, Subject>> {
        lock(&self.held)
    }

    pub(crate) fn ack_wait(&self) -> Duration {
        *lock(&self.ack_wait)
    }

    /// Records a failure; the first one starts the reconnect timeout.
    pub(crate) fn mark_down(&self) {
        lock(&self.down_since).get_or_insert_with(Instant::now);
    }

    /// Records a success: the server answers again.
    pub(crate) fn mark_up(&self) {
        *lock(&self.down_since) = None;
    }

    /// Whether operations have been failing for the whole reconnect timeout.
    pub(crate) fn gave_up(&self) -> bool {
        lock(&self.down_since).is_some_and(|since| since.elapsed() >= self.config.reconnect_timeout)
    }

    /// Whether the client is connected right now.
    pub(crate) fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// An error text from the client, credentials masked.
    pub(crate) fn scrub(&self, error: &dyn std::fmt::Display) -> String {
        self.secrets.scrub(&error.to_string())
    }

    /// The error after giving up on `operation`.
    pub(crate) fn unavailable(&self, operation: &'static str, message: String) -> NatsBackendError {
        NatsBackendError::Unavailable {
            operation,
            url: self.config.urls.to_string(),
            message,
        }
    }

    /// Runs `attempt` until it succeeds, fails fatally, or transient failures have lasted
    /// the reconnect timeout (then the error is [`NatsBackendError::Unavailable`]).
    /// `attempt` must be safe to repeat.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        operation: &'static str,
        mut attempt: F,
    ) -> Result<T, NatsBackendError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match attempt().await {
                Ok(value) => {
                    self.mark_up();
                    return Ok(value);
                }
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Transient(message)) => {
                    self.mark_down();
                    if self.gave_up() || self.is_closed() {
                        return Err(self.unavailable(operation, message));
                    }
                    tracing::debug!(operation, %message, retry_in = ?backoff, "NATS operation failed; retrying");
                    tokio::time::sleep(jittered(backoff)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// A request to an ack subject (`+ACK`, `+NAK`, `+TERM`), awaiting the server's
    /// confirmation, retried (acks are idempotent).
    pub(crate) async fn ack(
        &self,
        reply: &Subject,
        body: &'static str,
    ) -> Result<(), NatsBackendError> {
        self.retrying("ack", || async {
            match tokio::time::timeout(
                self.config.response_timeout,
                self.client.request(reply.clone(), body.into()),
            )
            .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(Failure::Transient(self.scrub(&error))),
                Err(_) => Err(Failure::Transient("no confirmation in time".to_owned())),
            }
        })
        .await
    }

    /// A JetStream API request returning raw JSON; an `error` in the answer is fatal.
    pub(crate) async fn api(
        &self,
        operation: &'static str,
        subject: String,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, Failure> {
        let reply: Result<serde_json::Value, _> = self.js.request(subject, &body).await;
        match reply {
            Ok(value) => match value.get("error") {
                None => Ok(value),
                Some(error) => Err(Failure::Fatal(NatsBackendError::JetStream {
                    operation,
                    message: error.to_string(),
                })),
            },
            Err(error) => Err(Failure::Transient(self.scrub(&error))),
        }
    }

    /// Whether the durable consumer still exists; `Err` when the server cannot tell.
    pub(crate) async fn consumer_exists(&self) -> Result<bool, Failure> {
        let subject = format!(
            "CONSUMER.INFO.{}.{}",
            self.config.stream, self.config.consumer
        );
        match self
            .api("consumer info", subject, serde_json::json!({}))
            .await
        {
            Ok(_) => Ok(true),
            Err(Failure::Fatal(NatsBackendError::JetStream { message, .. }))
                if message.contains("10014") || message.contains("10059") =>
            {
                Ok(false)
            }
            Err(other) => Err(other),
        }
    }

    /// The error for a consumer found missing.
    pub(crate) fn consumer_missing(&self, message: String) -> NatsBackendError {
        NatsBackendError::ConsumerMissing {
            stream: self.config.stream.clone(),
            consumer: self.config.consumer.clone(),
            message,
        }
    }
}

async fn connect_client(
    config: &NatsConfig,
    secrets: &Secrets,
) -> Result<async_nats::Client, NatsBackendError> {
    let (urls, credentials) = config.urls.for_client();
    let options = match credentials {
        None => async_nats::ConnectOptions::new(),
        Some(Credentials::UserPassword(user, password)) => {
            async_nats::ConnectOptions::with_user_and_password(user, password)
        }
        Some(Credentials::Token(token)) => async_nats::ConnectOptions::with_token(token),
    };
    let options = options
        .name("necrostack")
        .connection_timeout(config.connect_timeout)
        .request_timeout(Some(config.response_timeout))
        .max_reconnects(None)
        // Reconnect fast after a restart; the reconnect timeout bounds the whole wait.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((50 * attempts as u64).clamp(50, 1000))
        });
    let connecting = options.connect(urls.as_slice());
    match tokio::time::timeout(config.connect_timeout + Duration::from_secs(1), connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(error)) => Err(NatsBackendError::Unavailable {
            operation: "connect",
            url: config.urls.to_string(),
            message: secrets.scrub(&error.to_string()),
        }),
        Err(_) => Err(NatsBackendError::Unavailable {
            operation: "connect",
            url: config.urls.to_string(),
            message: format!("no connection within {:?}", config.connect_timeout),
        }),
    }
}

/// `d` with up to a quarter of random jitter added, so that workers do not retry in step.
pub(crate) fn jittered(d: Duration) -> Duration {
    let quarter = (d.as_millis() as u64 / 4).max(1);
    d + Duration::from_millis(fastrand::u64(0..quarter))
}
