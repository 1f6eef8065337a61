//! [`Organ`]: a handler for one event type.

use std::future::Future;
use std::pin::Pin;

use crate::emit::Emit;
use crate::envelope::Envelope;
use crate::event::Event;

/// The error an organ's handler returned, boxed.
pub type OrganError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result of calling an organ: ready at once (a sync handler, no allocation) or a
/// future to await (an async handler).
pub enum Handling<'a> {
    /// The handler ran synchronously.
    Ready(Result<Emit, OrganError>),
    /// The handler is async; await this to run it.
    Pending(Pin<Box<dyn Future<Output = Result<Emit, OrganError>> + Send + 'a>>),
}

/// A handler for events of type [`Organ::Event`].
///
/// Write organs with `#[organ(listens_to = ...)]` on a function or an `impl` block; the
/// macro implements this trait and checks the handler's signature at compile time.
/// Implementing it by hand is possible (for example to wrap another organ) but rarely
/// needed.
///
/// ```
/// use necrostack::{organ, Event, Organ};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Ping;
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Pong;
///
/// #[organ(listens_to = Ping)]
/// fn answer(_: &Ping) -> Pong {
///     Pong
/// }
///
/// assert_eq!(<answer as Organ>::NAME, "answer");
/// assert_eq!(answer::handle(&Ping), Pong); // the handler stays callable
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an organ",
    label = "not an organ",
    note = "put `#[organ(listens_to = EventType)]` on a handler function, or on an `impl` block with one `handle(&self, event)` method"
)]
pub trait Organ: Send + Sync + 'static {
    /// The event type this organ listens to.
    type Event: Event;

    /// The organ's name in logs, failures and dead letters.
    const NAME: &'static str;

    /// Runs the handler on one event.
    fn call<'a>(&'a self, event: &'a Envelope<Self::Event>) -> Handling<'a>;
}

/// The parameter forms an organ listening to `E` may take, by reference: `&E` and
/// `&Envelope<E>`. By-value forms (`E`, `Envelope<E>`) clone from these.
#[diagnostic::on_unimplemented(
    message = "an organ listening to `{E}` cannot take `{Self}` as its parameter",
    label = "expected `{E}`, `&{E}`, `Envelope<{E}>` or `&Envelope<{E}>`",
    note = "the parameter must be the event named in `listens_to`, by value or by reference, optionally in an `Envelope`"
)]
pub trait EventParam<E: Event> {
    /// Borrows the parameter from the envelope.
    fn from_envelope(envelope: &Envelope<E>) -> &Self;
}

impl<E: Event> EventParam<E> for E {
    fn from_envelope(envelope: &Envelope<E>) -> &E {
        envelope.payload()
    }
}

impl<E: Event> EventParam<E> for Envelope<E> {
    fn from_envelope(envelope: &Envelope<E>) -> &Envelope<E> {
        envelope
    }
}
