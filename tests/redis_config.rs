//! Configuration, passwords and TLS: `redis://:password@` and `rediss://` work, and the
//! password never shows in `Debug`/`Display` of the settings, in errors, or in logs.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use necrostack::backend::redis::{RedisBackendError, DEFAULT_GROUP, DEFAULT_STREAM};
use necrostack::backend::BackendError;
use necrostack::{Backend, Envelope, Event, RedisBackend};
use serde::{Deserialize, Serialize};

const SECRET: &str = "hunter2-Sup3rSecret";

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "config.Ping")]
struct Ping {
    n: u32,
}

/// Captures everything `tracing` logs on this thread, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(SECRET), "{what} leaks the password: {text}");
    assert!(
        !text.contains("Sup3r"),
        "{what} leaks part of the password: {text}"
    );
}

#[test]
fn settings_hide_the_password_and_document_defaults() {
    let url = format!("rediss://admin:{SECRET}@db.internal:6380/2");
    let builder = RedisBackend::builder(url.clone());
    let config = builder.config();
    assert_no_secret("Debug of the builder", &format!("{builder:?}"));
    assert_no_secret("Debug of the config", &format!("{config:?}"));
    assert_no_secret("Display of the config", &config.to_string());
    assert_no_secret("Display of the URL", &config.url().to_string());
    assert_eq!(
        config.url().to_string(),
        "rediss://admin:***@db.internal:6380/2"
    );
    assert_eq!(config.stream_key(), DEFAULT_STREAM);
    assert_eq!(config.dead_letter_key(), format!("{DEFAULT_STREAM}:dlq"));
    assert_eq!(config.group(), DEFAULT_GROUP);
    let pid = std::process::id().to_string();
    assert!(
        config.consumer().contains(&pid),
        "default consumer name has the pid: {}",
        config.consumer()
    );
    let other = RedisBackend::builder("redis://h")
        .config()
        .consumer()
        .to_owned();
    assert_ne!(
        config.consumer(),
        other,
        "default consumer names are unique per backend"
    );

    let prefixed = RedisBackend::builder("redis://h")
        .key_prefix("app:")
        .stream("orders");
    assert_eq!(prefixed.config().stream_key(), "app:orders");
    assert_eq!(prefixed.config().dead_letter_key(), "app:orders:dlq");
}

#[tokio::test]
async fn connection_errors_and_logs_hide_the_password() {
    let logs = Captured::default();
    let _guard = logs.install();
    let port = redis_server::free_port(); // nobody listens here
    let error = RedisBackend::builder(format!("redis://user:{SECRET}@127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(500))
        .build()
        .await
        .expect_err("nothing listens on that port");
    assert!(matches!(error, BackendError::Unavailable(_)), "{error:?}");
    assert_no_secret("the connection error", &error.to_string());
    assert_no_secret("the connection error's Debug", &format!("{error:?}"));
    assert!(error.to_string().contains("user:***@127.0.0.1"), "{error}");

    let invalid = RedisBackend::builder(format!("bogus://:{SECRET}@127.0.0.1:{port}"))
        .build()
        .await
        .expect_err("not a Redis URL");
    assert!(matches!(invalid, BackendError::Other(_)), "{invalid:?}");
    assert_no_secret("the invalid-URL error", &format!("{invalid} {invalid:?}"));

    let zero = RedisBackend::builder("redis://127.0.0.1:1")
        .block_time(Duration::ZERO)
        .build()
        .await
        .expect_err("BLOCK 0 is refused");
    assert!(zero.to_string().contains("block_time"), "{zero}");
    assert_no_secret("the logs", &logs.text());
}

#[tokio::test]
async fn a_password_protected_redis_works_and_a_wrong_password_is_a_clean_error() {
    let Some(server) = redis_server::RedisServer::start_with(redis_server::Options {
        password: Some(SECRET.to_owned()),
        ..Default::default()
    }) else {
        return;
    };
    let logs = Captured::default();
    let _guard = logs.install();
    let backend = RedisBackend::builder(server.url()).build().await.unwrap();
    backend
        .enqueue(vec![Envelope::new(Ping { n: 1 }).into()])
        .await
        .unwrap();
    let got = backend.pull(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_no_secret("Debug of the backend", &format!("{backend:?}"));

    let wrong = format!("redis://:wrong-{SECRET}@127.0.0.1:{}", server.port());
    let error = RedisBackend::builder(wrong)
        .build()
        .await
        .expect_err("wrong password");
    eprintln!("wrong password: {error}");
    assert_no_secret("the authentication error", &format!("{error} {error:?}"));
    let text = error.to_string();
    assert!(text.contains("127.0.0.1"), "{text}");
    let source = std::error::Error::source(&error).expect("a cause");
    let redis_error = source
        .downcast_ref::<RedisBackendError>()
        .expect("a RedisBackendError");
    assert_no_secret("the inner error", &format!("{redis_error:?}"));
    assert_no_secret("the logs", &logs.text());
    backend.close().await.unwrap();
}

#[tokio::test]
async fn rediss_with_a_private_ca_works() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        assert!(
            !redis_server::redis_required(),
            "openssl is needed for the TLS test"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED rediss_with_a_private_ca_works: the openssl command is missing"
        );
        return;
    }
    let Some(server) = redis_server::RedisServer::start_with(redis_server::Options {
        tls: true,
        password: Some(SECRET.to_owned()),
        ..Default::default()
    }) else {
        return;
    };
    assert!(server.url().starts_with("rediss://"));
    // Without trusting the CA, the server's certificate is rejected.
    let untrusted = RedisBackend::builder(server.url())
        .connect_timeout(Duration::from_secs(2))
        .build()
        .await
        .expect_err("an unknown CA is not trusted");
    eprintln!("untrusted CA: {untrusted}");
    assert_no_secret("the TLS error", &format!("{untrusted} {untrusted:?}"));

    let backend = RedisBackend::builder(server.url())
        .tls_root_certificate(server.ca_certificate())
        .build()
        .await
        .unwrap();
    backend
        .enqueue(vec![Envelope::new(Ping { n: 2 }).into()])
        .await
        .unwrap();
    let got = backend.pull(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].envelope.clone().decode::<Ping>().unwrap().n, 2);
    let health = backend.health().await.unwrap();
    assert_eq!(health.stream_length, 1);
    assert_eq!(health.pending, 1);
    backend.close().await.unwrap();
}

#[tokio::test]
async fn max_len_trims_approximately_and_group_start_is_honoured() {
    let Some(server) = redis_server::RedisServer::start() else {
        return;
    };
    let trimmed = RedisBackend::builder(server.url())
        .stream("config:trimmed")
        .max_len(100)
        .build()
        .await
        .unwrap();
    for chunk in 0..20u32 {
        let batch = (chunk * 50..chunk * 50 + 50)
            .map(|n| Envelope::new(Ping { n }).into())
            .collect();
        trimmed.enqueue(batch).await.unwrap();
    }
    let length = trimmed.health().await.unwrap().stream_length;
    // `MAXLEN ~` trims whole macro nodes (100 entries by default): about 100, never 1000.
    assert!((100..=300).contains(&length), "stream length {length}");

    // A group created at the end does not see what was there before it.
    let late = RedisBackend::builder(server.url())
        .stream("config:trimmed")
        .group("late-joiners")
        .group_start(necrostack::backend::redis::GroupStart::End)
        .build()
        .await
        .unwrap();
    assert!(late.pull(10, Duration::ZERO).await.unwrap().is_empty());
    late.enqueue(vec![Envelope::new(Ping { n: 5000 }).into()])
        .await
        .unwrap();
    let got = late.pull(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].envelope.clone().decode::<Ping>().unwrap().n, 5000);
    // The default group starts at the beginning: it sees what is left after trimming.
    let early = trimmed.pull(1000, Duration::ZERO).await.unwrap();
    assert_eq!(early.len() as u64, length + 1);
}
