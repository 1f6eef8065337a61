//! Every accepted parameter form, sync and async, on functions and on impl blocks.

use necrostack::{organ, testing, Envelope, Event, Organ};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ping(u32);

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pong(u32);

#[organ(listens_to = Ping)]
fn by_value(ping: Ping) -> Pong {
    Pong(ping.0)
}

#[organ(listens_to = Ping)]
fn by_reference(ping: &Ping) -> Pong {
    Pong(ping.0)
}

#[organ(listens_to = Ping)]
fn envelope_by_value(ping: Envelope<Ping>) -> Pong {
    Pong(ping.into_payload().0)
}

#[organ(listens_to = Ping)]
fn envelope_by_reference(ping: &Envelope<Ping>) -> Pong {
    Pong(ping.payload().0)
}

#[organ(listens_to = Ping)]
async fn async_by_value(ping: Ping) -> Pong {
    tokio::task::yield_now().await;
    Pong(ping.0)
}

#[organ(listens_to = Ping)]
async fn async_by_reference(ping: &Ping) -> Pong {
    tokio::task::yield_now().await;
    Pong(ping.0)
}

#[organ(listens_to = Ping)]
async fn async_envelope_by_value(ping: Envelope<Ping>) -> Pong {
    tokio::task::yield_now().await;
    Pong(ping.0)
}

#[organ(listens_to = Ping)]
async fn async_envelope_by_reference(ping: &Envelope<Ping>) -> Pong {
    tokio::task::yield_now().await;
    Pong(ping.0)
}

/// A fully qualified `listens_to` path and a pattern parameter.
#[organ(listens_to = crate::Ping)]
fn destructured(Ping(n): &Ping) -> Pong {
    Pong(*n)
}

struct ByValue;
struct ByReference;
struct EnvelopeByValue;
struct EnvelopeByReference;
struct AsyncByValue;
struct AsyncByReference;
struct AsyncEnvelopeByValue;
struct AsyncEnvelopeByReference;

#[organ(listens_to = Ping)]
impl ByValue {
    fn handle(&self, ping: Ping) -> Pong {
        Pong(ping.0)
    }
}

#[organ(listens_to = Ping)]
impl ByReference {
    fn handle(&self, ping: &Ping) -> Pong {
        Pong(ping.0)
    }
}

#[organ(listens_to = Ping)]
impl EnvelopeByValue {
    fn handle(&self, ping: Envelope<Ping>) -> Pong {
        Pong(ping.0)
    }
}

#[organ(listens_to = Ping)]
impl EnvelopeByReference {
    fn handle(&self, ping: &Envelope<Ping>) -> Pong {
        Pong(ping.0)
    }
}

#[organ(listens_to = Ping)]
impl AsyncByValue {
    async fn handle(&self, ping: Ping) -> Pong {
        tokio::task::yield_now().await;
        Pong(ping.0)
    }
}

#[organ(listens_to = Ping)]
impl AsyncByReference {
    async fn handle(&self, ping: &Ping) -> Pong {
        tokio::task::yield_now().await;
        Pong(ping.0)
    }
}

#[organ(listens_to = Ping)]
impl AsyncEnvelopeByValue {
    async fn handle(&self, ping: Envelope<Ping>) -> Pong {
        tokio::task::yield_now().await;
        Pong(ping.0)
    }
}

#[organ(listens_to = Ping)]
impl AsyncEnvelopeByReference {
    async fn handle(&self, ping: &Envelope<Ping>) -> Pong {
        tokio::task::yield_now().await;
        Pong(ping.0)
    }
}

/// Calls `organ` on `Ping(n)` and checks that it answered `Pong(n)`.
async fn check<O: Organ<Event = Ping>>(organ: O, n: u32) {
    let emit = testing::call(&organ, Ping(n)).await.unwrap();
    assert_eq!(emit.events::<Pong>().collect::<Vec<_>>(), [&Pong(n)], "{}", O::NAME);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    check(by_value, 1).await;
    check(by_reference, 2).await;
    check(envelope_by_value, 3).await;
    check(envelope_by_reference, 4).await;
    check(async_by_value, 5).await;
    check(async_by_reference, 6).await;
    check(async_envelope_by_value, 7).await;
    check(async_envelope_by_reference, 8).await;
    check(destructured, 9).await;
    check(ByValue, 11).await;
    check(ByReference, 12).await;
    check(EnvelopeByValue, 13).await;
    check(EnvelopeByReference, 14).await;
    check(AsyncByValue, 15).await;
    check(AsyncByReference, 16).await;
    check(AsyncEnvelopeByValue, 17).await;
    check(AsyncEnvelopeByReference, 18).await;

    // The handlers stay callable as plain functions and methods.
    assert_eq!(by_reference::handle(&Ping(20)), Pong(20));
    assert_eq!(async_by_value::handle(Ping(21)).await, Pong(21));
    assert_eq!(ByReference.handle(&Ping(22)), Pong(22));
    assert_eq!(<by_value as Organ>::NAME, "by_value");
    assert_eq!(<AsyncByValue as Organ>::NAME, "AsyncByValue");
}
