//! [`Organ`]: a handler for one event type.

use std::future::Future;
use std::pin::Pin;

use crate::box_error::BoxError;
use crate::emit::Emit;
use crate::envelope::Envelope;
use crate::event::Event;
use crate::policy::FailurePolicy;
use crate::topology::Emits;

/// Marks an organ's error as one that trying again cannot fix (a malformed request, a
/// card that was declined): under [`FailurePolicy::Retry`](crate::FailurePolicy::Retry)
/// the event goes to the dead-letter store at once instead of being retried.
///
/// Return it as the organ's error (`Result<_, Permanent>`), or as the
/// [`source`](std::error::Error::source) of an error type of your own, so that one
/// handler can fail both ways. It displays as the error it wraps.
///
/// ```
/// use necrostack::{organ, Event, Permanent};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Charge { cents: i64 }
///
/// #[organ(listens_to = Charge)]
/// fn bill(request: &Charge) -> Result<(), Permanent> {
///     if request.cents < 0 {
///         return Err(Permanent::new(format!("negative amount: {}", request.cents)));
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Permanent {
    error: BoxError,
}

impl Permanent {
    /// Wraps `error` (any error, or a message) as permanent.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Permanent {
            error: error.into(),
        }
    }

    /// The wrapped error.
    pub fn into_inner(self) -> BoxError {
        self.error
    }

    /// Whether `error` or one of its sources is a [`Permanent`].
    pub(crate) fn is_in_chain(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut current = Some(error);
        while let Some(error) = current {
            if error.is::<Permanent>() {
                return true;
            }
            current = error.source();
        }
        false
    }
}

impl std::fmt::Display for Permanent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Permanent {
    // Transparent: the wrapped error's own sources, so that its message is not repeated.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// The result of calling an organ: ready at once (a sync handler, no allocation) or a
/// future to await (an async handler).
pub enum Handling<'a> {
    /// The handler ran synchronously.
    Ready(Result<Emit, BoxError>),
    /// The handler is async; await this to run it.
    Pending(Pin<Box<dyn Future<Output = Result<Emit, BoxError>> + Send + 'a>>),
}

impl std::fmt::Debug for Handling<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Handling::Ready(result) => f.debug_tuple("Ready").field(result).finish(),
            Handling::Pending(_) => f.write_str("Pending(<future>)"),
        }
    }
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

    /// The event types this organ can emit, for [`Spine::topology`](crate::Spine::topology).
    ///
    /// `#[organ]` implements it from the handler's return type (and its `emits = [..]`
    /// key). The default, for hand-written impls, is [`Emits::Unknown`]; a wrapper
    /// around another organ says what the wrapped organ says:
    ///
    /// ```
    /// use necrostack::topology::Emits;
    /// use necrostack::{Envelope, Handling, Organ};
    ///
    /// struct Logged<O>(O);
    ///
    /// impl<O: Organ> Organ for Logged<O> {
    ///     type Event = O::Event;
    ///     const NAME: &'static str = O::NAME;
    ///
    ///     fn call<'a>(&'a self, event: &'a Envelope<O::Event>) -> Handling<'a> {
    ///         println!("{} handles {}", O::NAME, event.id());
    ///         self.0.call(event)
    ///     }
    ///
    ///     fn emits() -> Emits {
    ///         O::emits()
    ///     }
    /// }
    /// ```
    fn emits() -> Emits
    where
        Self: Sized,
    {
        Emits::Unknown
    }
}

/// An organ with its concrete type erased, for a list of organs of one event type.
pub(crate) trait DynOrgan<E>: Send + Sync {
    fn name(&self) -> &'static str;
    fn call<'a>(&'a self, event: &'a Envelope<E>) -> Handling<'a>;
    /// The organ's own failure policy, overriding the spine's.
    fn policy(&self) -> Option<&FailurePolicy> {
        None
    }
}

impl<O: Organ> DynOrgan<O::Event> for O {
    fn name(&self) -> &'static str {
        O::NAME
    }

    fn call<'a>(&'a self, event: &'a Envelope<O::Event>) -> Handling<'a> {
        Organ::call(self, event)
    }
}

/// An organ registered with a failure policy of its own
/// ([`SpineBuilder::organ_with_policy`](crate::SpineBuilder::organ_with_policy)).
pub(crate) struct WithPolicy<O> {
    pub(crate) organ: O,
    pub(crate) policy: FailurePolicy,
}

impl<O: Organ> DynOrgan<O::Event> for WithPolicy<O> {
    fn name(&self) -> &'static str {
        O::NAME
    }

    fn call<'a>(&'a self, event: &'a Envelope<O::Event>) -> Handling<'a> {
        self.organ.call(event)
    }

    fn policy(&self) -> Option<&FailurePolicy> {
        Some(&self.policy)
    }
}

/// The parameter forms an organ listening to the event `Self` may take, by reference:
/// `&E` and `&Envelope<E>`. By-value forms (`E`, `Envelope<E>`) clone from these.
///
/// Used by generated code, spanned on the user's parameter type, so that a wrong
/// parameter is reported there. Implemented on the event (not on the parameter) so that
/// the compiler's hints list the accepted forms, and without an `Event` bound so that a
/// `listens_to` type that is not an event is reported once, on `listens_to`, not here.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "an organ listening to `{Self}` cannot take `{P}` as its parameter",
    label = "expected `{Self}`, `&{Self}`, `Envelope<{Self}>` or `&Envelope<{Self}>`",
    note = "the parameter is the event named in `listens_to`, by value or by reference, optionally in an `Envelope`"
)]
pub trait EventParam<P: ?Sized> {
    /// Borrows the parameter from the envelope.
    fn from_envelope(envelope: &Envelope<Self>) -> &P
    where
        Self: Sized;
}

impl<E> EventParam<E> for E {
    fn from_envelope(envelope: &Envelope<E>) -> &E {
        envelope.payload()
    }
}

impl<E> EventParam<Envelope<E>> for E {
    fn from_envelope(envelope: &Envelope<E>) -> &Envelope<E> {
        envelope
    }
}

/// A by-value parameter (`E` or `Envelope<E>`): every organ of an event gets its own copy,
/// so the type must be `Clone`. A trait of its own so that the message says why, on the
/// user's parameter type, where generated code calls [`OwnedParam::owned`].
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "an organ that takes `{Self}` by value needs `{Self}: Clone`",
    label = "every organ of the event gets its own copy of this",
    note = "add `#[derive(Clone)]` to the event type, or take the parameter by reference (`&{Self}`)"
)]
pub trait OwnedParam: Sized {
    /// The parameter's own copy.
    fn owned(&self) -> Self;
}

#[diagnostic::do_not_recommend]
impl<T: Clone> OwnedParam for T {
    fn owned(&self) -> T {
        self.clone()
    }
}

/// An async handler's future, with its output converted by `convert` (generated code that
/// calls `IntoOutcome`, or `IntoEmit` and `ErrorType`), as a [`Handling`]. Used by
/// generated code, spanned on the handler's `async` keyword, so that a future that is not
/// `Send` is reported there, once, with the compiler's note on what is held across which
/// `.await`.
#[doc(hidden)]
pub fn pending<'a, F, C>(future: F, convert: C) -> Handling<'a>
where
    F: Future + Send + 'a,
    C: FnOnce(F::Output) -> Result<Emit, BoxError> + Send + 'a,
{
    Handling::Pending(Box::pin(async move { convert(future.await) }))
}

/// The event type of the stand-in organ that `#[organ]` generates when `listens_to` is
/// missing, so that code registering that organ adds no errors to the one about the
/// attribute. Never sent: the program does not compile.
#[doc(hidden)]
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy)]
pub struct NoEvent;

impl Event for NoEvent {
    const NAME: &'static str = "necrostack::NoEvent";
}
