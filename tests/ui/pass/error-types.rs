//! Every accepted organ error type: a standard error, `Box<dyn Error + Send + Sync>` (the
//! crate's `BoxError`), and a type that wraps one the way `anyhow::Error` does; written
//! out as `Result<T, Err>` or behind an alias, sync and async. A boxed error reaches the
//! spine as it is (not boxed twice), so a `Permanent` inside one is still found.

use necrostack::{organ, testing, BoxError, Event, FailurePolicy, Permanent, RetryPolicy};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong;

/// What `anyhow::Error` and `eyre::Report` look like to necrostack: a boxed error behind
/// `Deref`, convertible into the box.
#[derive(Debug)]
struct Report(BoxError);

impl std::ops::Deref for Report {
    type Target = dyn std::error::Error + Send + Sync + 'static;

    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl From<Report> for BoxError {
    fn from(report: Report) -> Self {
        report.0
    }
}

type ReportResult<T> = Result<T, Report>;

#[organ(listens_to = Ping)]
fn spelled_out(_: &Ping) -> Result<Pong, Box<dyn std::error::Error + Send + Sync>> {
    Err("spelled out".into())
}

#[organ(listens_to = Ping)]
fn box_error(_: &Ping) -> Result<Pong, BoxError> {
    Ok(Pong)
}

#[organ(listens_to = Ping)]
async fn box_error_async(_: &Ping) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
    Err(Box::new(Permanent::new("declined")))
}

#[organ(listens_to = Ping)]
fn wrapper(_: &Ping) -> Result<Pong, Report> {
    Err(Report("wrapped".into()))
}

#[organ(listens_to = Ping)]
async fn wrapper_alias(_: &Ping) -> ReportResult<Option<Pong>> {
    Ok(Some(Pong))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let error = testing::call(&spelled_out, Ping).await.unwrap_err();
    assert_eq!(error.to_string(), "spelled out");
    assert_eq!(testing::call(&box_error, Ping).await.unwrap().len(), 1);
    let error = testing::call(&wrapper, Ping).await.unwrap_err();
    assert_eq!(error.to_string(), "wrapped");
    assert_eq!(testing::call(&wrapper_alias, Ping).await.unwrap().len(), 1);

    // The `Permanent` is the error itself, not the source of a second box: no retries.
    let outcome = testing::Flow::new()
        .organ(box_error_async)
        .failure_policy(FailurePolicy::Retry(RetryPolicy::new(5)))
        .emit(Ping)
        .run()
        .await
        .unwrap();
    assert_eq!(outcome.dead_letters().len(), 1);
    assert_eq!(outcome.failures().len(), 1);
}
