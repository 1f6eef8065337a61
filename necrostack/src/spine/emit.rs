//! Emitting root events: [`Spine::emit`], [`Spine::emit_all`],
//! [`Spine::emit_envelope`], [`Spine::emit_after`] and [`Spine::emit_at`], and the
//! [`Emitting`] future they return.
//!
//! Each is a plain method, not an `async fn`: it checks and converts its argument at once
//! and returns a future that is not generic in the event type. A wrong argument is then
//! one error, on the argument. An `async fn` generic over the event would repeat the
//! unmet bound on the call and again on `.await`, three copies of one mistake.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Spine;
use crate::backend::{Backend, Scheduled};
use crate::envelope::{AnyEnvelope, Envelope};
use crate::error::Error;
use crate::event::Event;

/// What [`Spine::emit`], [`Spine::emit_all`] and
/// [`testing::Flow::emit`](crate::testing::Flow::emit) accept: an [`Event`], by value.
///
/// Implemented for every event and nothing else. It is a trait of its own, rather than
/// the `Event` bound itself, so that passing `&event`, an `Envelope`, a `Vec` or a string
/// gets a message about emitting that names what to pass instead.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be emitted: `emit` takes one event, by value",
    label = "expected an event by value",
    note = "pass the event itself, `emit(event)` (or `emit(event.clone())`), not a reference to it",
    note = "an `Envelope` goes through `spine.emit_envelope(envelope)`; several events through `spine.emit_all(events)`, or one `emit` each",
    note = "an event is a type of your own with `#[derive(necrostack::Event, serde::Serialize, serde::Deserialize)]`"
)]
pub trait RootEvent: sealed::Sealed {
    /// The event in a new root envelope, type-erased for the backend.
    #[doc(hidden)]
    fn into_root(self) -> AnyEnvelope;
}

#[diagnostic::do_not_recommend]
impl<E: Event> RootEvent for E {
    fn into_root(self) -> AnyEnvelope {
        Envelope::new(self).into()
    }
}

/// What [`Spine::emit_all`] accepts: a `Vec`, an array or any other iterator of events,
/// by value.
///
/// A trait of its own for the same reason as [`RootEvent`]: passing one event, or a
/// collection of references, gets a message about `emit_all` that says what to pass.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be emitted with `emit_all`: it takes a `Vec`, an array or an iterator of events by value",
    label = "expected a collection of events",
    note = "several events: `spine.emit_all([first, second])` or `spine.emit_all(events)` with a `Vec` of events; one event: `spine.emit(event)`",
    note = "`&events` and `events.iter()` give references: pass the `Vec` itself, or `events.iter().cloned()`"
)]
pub trait RootEvents: sealed::SealedMany {
    /// The events in new root envelopes, in order.
    #[doc(hidden)]
    fn into_roots(self) -> Vec<AnyEnvelope>;
}

#[diagnostic::do_not_recommend]
impl<I> RootEvents for I
where
    I: IntoIterator,
    I::Item: RootEvent,
{
    fn into_roots(self) -> Vec<AnyEnvelope> {
        self.into_iter().map(RootEvent::into_root).collect()
    }
}

mod sealed {
    /// Keeps [`RootEvent`](super::RootEvent) and [`RootEvents`](super::RootEvents)
    /// implemented for events and collections of events only.
    pub trait Sealed {}

    impl<E: crate::event::Event> Sealed for E {}

    /// The same for collections.
    pub trait SealedMany {}

    impl<I> SealedMany for I
    where
        I: IntoIterator,
        I::Item: super::RootEvent,
    {
    }
}

/// The future returned by [`Spine::emit`], [`Spine::emit_all`] and
/// [`Spine::emit_envelope`]: resolves once the backend has stored the events.
///
/// The events are already in their envelopes (ids and timestamps taken at the call);
/// nothing is stored until it is awaited.
#[must_use = "nothing is emitted until the future is awaited: add `.await`"]
pub struct Emitting<'a, T> {
    future: Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>,
}

impl<'a, T> Emitting<'a, T> {
    /// Wraps the work of an emitting method. The method converts its argument before
    /// calling this, so that the future (and the error a wrong argument gives) does not
    /// depend on the event type.
    pub(crate) fn new(future: impl Future<Output = Result<T, Error>> + Send + 'a) -> Self {
        Emitting {
            future: Box::pin(future),
        }
    }
}

impl<T> Future for Emitting<'_, T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx)
    }
}

impl<T> std::fmt::Debug for Emitting<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Emitting(<future>)")
    }
}

impl<B: Backend> Spine<B> {
    /// Enqueues `event` as a root event and returns its id.
    ///
    /// Takes the event by value: for an envelope built beforehand use
    /// [`emit_envelope`](Self::emit_envelope), for several events
    /// [`emit_all`](Self::emit_all).
    pub fn emit<E: RootEvent>(&self, event: E) -> Emitting<'_, Uuid> {
        let envelope = event.into_root();
        let id = envelope.id();
        self.enqueue(vec![envelope], id)
    }

    /// Enqueues an envelope built beforehand (for example to know its id first).
    ///
    /// ```
    /// # use necrostack::{Envelope, Event, Spine};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// # struct Tick { n: u32 }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), necrostack::Error> {
    /// let spine = Spine::builder().build()?;
    /// let envelope = Envelope::new(Tick { n: 1 });
    /// let id = envelope.id();
    /// assert_eq!(spine.emit_envelope(envelope).await?, id);
    /// # Ok(())
    /// # }
    /// ```
    pub fn emit_envelope<E: Event>(&self, envelope: Envelope<E>) -> Emitting<'_, Uuid> {
        let id = envelope.id();
        self.enqueue(vec![envelope.into()], id)
    }

    /// Enqueues many root events in one call to the backend, in order: a `Vec`, an array
    /// or any iterator of events, by value.
    ///
    /// ```
    /// # use necrostack::{Event, Spine};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// # struct Tick { n: u32 }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), necrostack::Error> {
    /// let spine = Spine::builder().build()?;
    /// spine.emit_all([Tick { n: 1 }, Tick { n: 2 }]).await?;
    /// let ticks = vec![Tick { n: 3 }];
    /// spine.emit_all(ticks.iter().cloned()).await?; // keeps `ticks`
    /// spine.emit_all(ticks).await?;
    /// assert_eq!(spine.run_until_idle().await?.steps, 4);
    /// # Ok(())
    /// # }
    /// ```
    pub fn emit_all<I: RootEvents>(&self, events: I) -> Emitting<'_, ()> {
        self.enqueue(events.into_roots(), ())
    }

    /// Schedules `event` as a root event to be delivered `delay` from now (not before),
    /// and returns its id. The backend keeps it until due: in memory a timer queue, on
    /// Redis a sorted set beside the stream, so it survives restarts and is delivered by
    /// whichever worker sees it due.
    ///
    /// ```
    /// # use necrostack::{organ, Event, Spine};
    /// # use serde::{Deserialize, Serialize};
    /// # use std::time::Duration;
    /// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// struct Reminder { text: String }
    /// # #[organ(listens_to = Reminder)]
    /// # fn remind(_: &Reminder) {}
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), necrostack::Error> {
    /// let spine = Spine::builder().organ(remind).build()?;
    /// spine.emit_after(Duration::from_millis(20), Reminder { text: "feed the cat".into() }).await?;
    /// let report = spine.run_until_idle().await?; // waits for scheduled events too
    /// assert_eq!(report.steps, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn emit_after<E: RootEvent>(&self, delay: Duration, event: E) -> Emitting<'_, Uuid> {
        self.emit_at(super::due_after(Utc::now(), delay), event)
    }

    /// Schedules `event` as a root event to be delivered at `due` (not before; at once if
    /// `due` has passed), and returns its id. See [`emit_after`](Self::emit_after).
    pub fn emit_at<E: RootEvent>(&self, due: DateTime<Utc>, event: E) -> Emitting<'_, Uuid> {
        let mut envelope = event.into_root();
        self.inner.routes.stamp([&mut envelope]);
        let id = envelope.id();
        let backend = &self.inner.backend;
        Emitting::new(async move {
            backend.schedule(vec![Scheduled { envelope, due }]).await?;
            Ok(id)
        })
    }

    /// Stores `batch` in the backend, each event with the partition key of its type's
    /// `order_key` unless it has one; the future resolves to `value` once it is stored.
    fn enqueue<T: Send + 'static>(&self, mut batch: Vec<AnyEnvelope>, value: T) -> Emitting<'_, T> {
        self.inner.routes.stamp(&mut batch);
        let backend = &self.inner.backend;
        Emitting::new(async move {
            backend.enqueue(batch).await?;
            Ok(value)
        })
    }
}
