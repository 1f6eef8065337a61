//! Every accepted return form, plain and in a `Result`, sync and async.

use necrostack::{organ, testing, Emit, Event, Organ};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping;

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong(u32);

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Echo;

/// A hand-written error type, so that the test needs no error crate.
#[derive(Debug)]
struct Failed;

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed")
    }
}

impl std::error::Error for Failed {}

#[organ(listens_to = Ping)]
fn unit(_: &Ping) {}

#[organ(listens_to = Ping)]
fn explicit_unit(_: &Ping) -> () {}

#[organ(listens_to = Ping)]
fn event(_: &Ping) -> Pong {
    Pong(1)
}

#[organ(listens_to = Ping)]
fn option(_: &Ping) -> Option<Pong> {
    Some(Pong(1))
}

#[organ(listens_to = Ping)]
fn vec(_: &Ping) -> Vec<Pong> {
    vec![Pong(1), Pong(2)]
}

#[organ(listens_to = Ping)]
fn emits(_: &Ping) -> Emit {
    Emit::new().with(Pong(1)).with(Echo)
}

#[organ(listens_to = Ping)]
fn tuple(_: &Ping) -> (Pong, Echo) {
    (Pong(1), Echo)
}

#[organ(listens_to = Ping)]
fn mixed_tuple(_: &Ping) -> (Option<Pong>, Vec<Echo>, Emit, ()) {
    (Some(Pong(1)), vec![Echo], Emit::new().with(Pong(2)), ())
}

#[organ(listens_to = Ping)]
fn result_unit(_: &Ping) -> Result<(), Failed> {
    Ok(())
}

#[organ(listens_to = Ping)]
fn result_event(_: &Ping) -> Result<Pong, std::io::Error> {
    Ok(Pong(1))
}

#[organ(listens_to = Ping)]
fn result_option(_: &Ping) -> Result<Option<Pong>, Failed> {
    Ok(None)
}

#[organ(listens_to = Ping)]
fn result_vec(_: &Ping) -> Result<Vec<Pong>, Failed> {
    Ok(vec![Pong(1), Pong(2), Pong(3)])
}

#[organ(listens_to = Ping)]
fn result_emit(_: &Ping) -> Result<Emit, Failed> {
    Ok(Emit::new().with(Echo))
}

#[organ(listens_to = Ping)]
fn result_tuple(_: &Ping) -> Result<(Pong, Echo), Failed> {
    Ok((Pong(1), Echo))
}

#[organ(listens_to = Ping)]
fn result_failing(_: &Ping) -> Result<Pong, Failed> {
    Err(Failed)
}

#[organ(listens_to = Ping)]
async fn async_unit(_: &Ping) {}

#[organ(listens_to = Ping)]
async fn async_event(_: &Ping) -> Pong {
    Pong(1)
}

#[organ(listens_to = Ping)]
async fn async_option(_: &Ping) -> Option<Pong> {
    None
}

#[organ(listens_to = Ping)]
async fn async_vec(_: &Ping) -> Vec<Pong> {
    vec![Pong(1)]
}

#[organ(listens_to = Ping)]
async fn async_emit(_: &Ping) -> Emit {
    Emit::new().with(Echo).with(Pong(1))
}

#[organ(listens_to = Ping)]
async fn async_tuple(_: &Ping) -> (Pong, Pong) {
    (Pong(1), Pong(2))
}

/// A `Result` behind an alias, as `std::io::Result` is.
#[organ(listens_to = Ping)]
async fn async_result(_: &Ping) -> std::io::Result<Vec<Pong>> {
    Ok(vec![Pong(1)])
}

#[organ(listens_to = Ping)]
async fn async_result_failing(_: &Ping) -> Result<Emit, std::io::Error> {
    Err(std::io::Error::other("no"))
}

struct Stateful;

#[organ(listens_to = Ping)]
impl Stateful {
    async fn handle(&self, _: &Ping) -> Result<(Pong, Option<Echo>), Failed> {
        Ok((Pong(7), Some(Echo)))
    }
}

/// Calls `organ` on `Ping` and returns the emitted event types, or "error".
async fn types<O: Organ<Event = Ping>>(organ: O) -> Vec<&'static str> {
    match testing::call(&organ, Ping).await {
        Ok(emit) => emit.event_types().collect(),
        Err(_) => vec!["error"],
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let none: Vec<&str> = Vec::new();
    assert_eq!(types(unit).await, none);
    assert_eq!(types(explicit_unit).await, none);
    assert_eq!(types(event).await, ["Pong"]);
    assert_eq!(types(option).await, ["Pong"]);
    assert_eq!(types(vec).await, ["Pong", "Pong"]);
    assert_eq!(types(emits).await, ["Pong", "Echo"]);
    assert_eq!(types(tuple).await, ["Pong", "Echo"]);
    assert_eq!(types(mixed_tuple).await, ["Pong", "Echo", "Pong"]);
    assert_eq!(types(result_unit).await, none);
    assert_eq!(types(result_event).await, ["Pong"]);
    assert_eq!(types(result_option).await, none);
    assert_eq!(types(result_vec).await, ["Pong", "Pong", "Pong"]);
    assert_eq!(types(result_emit).await, ["Echo"]);
    assert_eq!(types(result_tuple).await, ["Pong", "Echo"]);
    assert_eq!(types(result_failing).await, ["error"]);
    assert_eq!(types(async_unit).await, none);
    assert_eq!(types(async_event).await, ["Pong"]);
    assert_eq!(types(async_option).await, none);
    assert_eq!(types(async_vec).await, ["Pong"]);
    assert_eq!(types(async_emit).await, ["Echo", "Pong"]);
    assert_eq!(types(async_tuple).await, ["Pong", "Pong"]);
    assert_eq!(types(async_result).await, ["Pong"]);
    assert_eq!(types(async_result_failing).await, ["error"]);
    assert_eq!(types(Stateful).await, ["Pong", "Echo"]);
}
