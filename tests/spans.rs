//! Every handling runs in a span that names the event and the organ, so a log line a
//! handler writes carries them; expected, retried failures log below `warn`, the last
//! failure at `warn`.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use necrostack::{organ, Envelope, Event, FailurePolicy, RetryPolicy, Spine};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "spans.Ping")]
struct Ping {
    n: u32,
}

/// Logs from inside the handler, and fails its first try.
#[organ(listens_to = Ping)]
async fn chatty(ping: &Envelope<Ping>) -> Result<(), std::io::Error> {
    tracing::info!(n = ping.n, "inside the handler");
    tokio::task::yield_now().await;
    tracing::info!("after an await");
    if ping.attempt() == 1 {
        return Err(std::io::Error::other("first try fails"));
    }
    Ok(())
}

#[organ(listens_to = Ping)]
fn hopeless(_: &Ping) -> Result<(), std::io::Error> {
    tracing::info!("a sync handler logs too");
    Err(std::io::Error::other("never works"))
}

/// A log sink the test can read: JSON lines, one per event.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn lines(sink: &Sink) -> Vec<serde_json::Value> {
    String::from_utf8(sink.0.lock().unwrap().clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn handler_logs_carry_the_handling_span_and_retries_are_not_warnings() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_current_span(true)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ping_id, correlation_id) = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let retry =
                RetryPolicy::new(2).backoff(Duration::from_millis(5), Duration::from_millis(5));
            let spine = Spine::builder()
                .organ_with_policy(chatty, FailurePolicy::Retry(retry))
                .organ_with_policy(hopeless, FailurePolicy::DeadLetter)
                .build()
                .unwrap();
            let ping = Envelope::new(Ping { n: 7 });
            let ids = (ping.id(), ping.correlation_id());
            spine.emit_envelope(ping).await.unwrap();
            spine.run_until_idle().await.unwrap();
            ids
        })
    });
    let lines = lines(&sink);
    let inside: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "inside the handler")
        .collect();
    assert_eq!(inside.len(), 2, "first try and retry: {lines:#?}");
    for (line, attempt) in inside.iter().zip([1, 2]) {
        let span = &line["span"];
        assert_eq!(span["name"], "handle", "{line}");
        assert_eq!(span["organ"], "chatty");
        assert_eq!(span["event_type"], "spans.Ping");
        assert_eq!(span["event_id"], ping_id.to_string());
        assert_eq!(span["correlation_id"], correlation_id.to_string());
        assert_eq!(span["causation_id"], "none");
        assert_eq!(span["depth"], 0);
        assert_eq!(span["attempt"], attempt);
    }
    let after_await = lines
        .iter()
        .find(|l| l["fields"]["message"] == "after an await")
        .expect("logged after the await");
    assert_eq!(
        after_await["span"]["organ"], "chatty",
        "the span follows the future"
    );
    let sync = lines
        .iter()
        .find(|l| l["fields"]["message"] == "a sync handler logs too")
        .expect("the sync handler logged");
    assert_eq!(sync["span"]["organ"], "hopeless");

    // The failure that is retried is `info`; the final ones are `warn`.
    let failures: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("organ failed"))
        })
        .map(|l| {
            (
                l["level"].as_str().unwrap(),
                l["fields"]["organ"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failures,
        [("INFO", "chatty"), ("WARN", "hopeless")],
        "{lines:#?}"
    );
}
