//! What an organ returns: [`Emit`] and the conversions from every accepted return form.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::box_error::BoxError;
use crate::envelope::{Envelope, ErasedEnvelope};
use crate::event::Event;
use crate::identity::Meta;

/// Events of any types returned by one organ, in the order they will be enqueued.
///
/// Return `Emit` when one handling produces events of different types; for one type, a
/// plain event, `Option<E>` or `Vec<E>` is simpler.
///
/// ```
/// use necrostack::{Emit, Event};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Thunder;
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Rain { mm: u32 }
///
/// let emit = Emit::new().with(Thunder).with(Rain { mm: 3 });
/// assert_eq!(emit.len(), 2);
/// assert_eq!(emit.event_types().collect::<Vec<_>>(), ["Thunder", "Rain"]);
/// assert_eq!(emit.events::<Rain>().collect::<Vec<_>>(), [&Rain { mm: 3 }]);
///
/// // An event to deliver later (a reminder, a timeout): stored by the backend with the
/// // handling's acknowledgement and delivered once due, by any worker.
/// let later = Emit::new().with(Thunder).after(std::time::Duration::from_secs(60), Rain { mm: 1 });
/// assert_eq!(later.len(), 2);
/// ```
#[derive(Default, Clone)]
pub struct Emit {
    pub(crate) events: Events,
    /// Events to deliver after a delay, in the order added.
    pub(crate) delayed: Vec<(Duration, Arc<dyn ErasedEnvelope>)>,
}

/// The events of an [`Emit`], in order. Most handlers emit zero or one event per call:
/// the first is kept inline so that those need no allocation besides the event itself.
#[derive(Default, Clone)]
pub(crate) struct Events {
    first: Option<Arc<dyn ErasedEnvelope>>,
    rest: Vec<Arc<dyn ErasedEnvelope>>,
}

impl Events {
    fn push(&mut self, event: Arc<dyn ErasedEnvelope>) {
        if self.first.is_none() {
            self.first = Some(event);
        } else {
            self.rest.push(event);
        }
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<dyn ErasedEnvelope>> + '_ {
        self.first.iter().chain(&self.rest)
    }

    fn reserve(&mut self, additional: usize) {
        let inline = usize::from(self.first.is_none());
        self.rest.reserve(additional.saturating_sub(inline));
    }
}

impl IntoIterator for Events {
    type Item = Arc<dyn ErasedEnvelope>;
    type IntoIter = std::iter::Chain<
        std::option::IntoIter<Arc<dyn ErasedEnvelope>>,
        std::vec::IntoIter<Arc<dyn ErasedEnvelope>>,
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.first.into_iter().chain(self.rest)
    }
}

impl Emit {
    /// No events.
    pub fn new() -> Self {
        Emit {
            events: Events::default(),
            delayed: Vec::new(),
        }
    }

    /// Adds `event` at the end and returns `self`, for chaining.
    pub fn with<E: Event>(mut self, event: E) -> Self {
        self.push(event);
        self
    }

    /// Adds `event` at the end.
    pub fn push<E: Event>(&mut self, event: E) {
        // Kept as a whole envelope, stamped with its real metadata when enqueued, so that
        // enqueuing needs no second allocation.
        self.events
            .push(Arc::new(Envelope::from_parts(Meta::unstamped(), event)));
    }

    /// Adds `event` to be delivered `delay` from now, and returns `self`, for chaining.
    /// The backend stores it with the handling's acknowledgement (on Redis, in a sorted
    /// set beside the stream), so it survives restarts and is delivered by any worker
    /// once due; never before.
    pub fn after<E: Event>(mut self, delay: Duration, event: E) -> Self {
        self.push_after(delay, event);
        self
    }

    /// Adds `event` to be delivered `delay` from now (see [`after`](Self::after)).
    pub fn push_after<E: Event>(&mut self, delay: Duration, event: E) {
        self.delayed.push((
            delay,
            Arc::new(Envelope::from_parts(Meta::unstamped(), event)),
        ));
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.events.len() + self.delayed.len()
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.events.first.is_none() && self.delayed.is_empty()
    }

    /// The event type names, in order.
    pub fn event_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.all().map(|e| e.payload().name())
    }

    /// The events of type `E`, in order; events of other types are skipped.
    pub fn events<E: Event>(&self) -> impl Iterator<Item = &E> + '_ {
        self.all()
            .filter_map(|e| e.payload().as_any().downcast_ref::<E>())
    }
}

impl Emit {
    /// Every event, the immediate ones first, then the delayed ones.
    fn all(&self) -> impl Iterator<Item = &Arc<dyn ErasedEnvelope>> + '_ {
        self.events
            .iter()
            .chain(self.delayed.iter().map(|(_, e)| e))
    }
}

impl fmt::Debug for Emit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.event_types()).finish()
    }
}

/// A value an organ can return to emit events: `()`, an event, `Option<E>`, `Vec<E>`,
/// [`Emit`], or a tuple of those.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be emitted by an organ",
    label = "not an event or a collection of events",
    note = "an organ returns `()`, an event, `Option<E>`, `Vec<E>`, `necrostack::Emit` or a tuple of those, or a `Result` of one of them; `E` is a type with `#[derive(necrostack::Event)]`"
)]
pub trait IntoEmit {
    /// Appends the events in `self` to `out`, in order.
    fn into_emit(self, out: &mut Emit);
}

#[diagnostic::do_not_recommend]
impl IntoEmit for () {
    fn into_emit(self, _out: &mut Emit) {}
}

#[diagnostic::do_not_recommend]
impl<E: Event> IntoEmit for E {
    fn into_emit(self, out: &mut Emit) {
        out.push(self);
    }
}

#[diagnostic::do_not_recommend]
impl<E: Event> IntoEmit for Option<E> {
    fn into_emit(self, out: &mut Emit) {
        if let Some(event) = self {
            out.push(event);
        }
    }
}

#[diagnostic::do_not_recommend]
impl<E: Event> IntoEmit for Vec<E> {
    fn into_emit(self, out: &mut Emit) {
        out.events.reserve(self.len());
        for event in self {
            out.push(event);
        }
    }
}

#[diagnostic::do_not_recommend]
impl IntoEmit for Emit {
    fn into_emit(self, out: &mut Emit) {
        if out.is_empty() {
            *out = self;
        } else {
            out.events.reserve(self.events.len());
            for event in self.events {
                out.events.push(event);
            }
            out.delayed.extend(self.delayed);
        }
    }
}

/// An event an organ returns to be delivered after a delay: return
/// `Delayed::new(Duration::from_secs(30), Reminder { .. })` (or an `Option`/`Vec`/tuple
/// holding one), or use [`Emit::after`].
///
/// ```
/// use necrostack::{organ, Delayed, Event};
/// use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct OrderPlaced { id: u64 }
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct PaymentDeadline { id: u64 }
///
/// #[organ(listens_to = OrderPlaced)]
/// fn start_clock(order: &OrderPlaced) -> Delayed<PaymentDeadline> {
///     Delayed::new(Duration::from_secs(15 * 60), PaymentDeadline { id: order.id })
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Delayed<E> {
    delay: Duration,
    event: E,
}

impl<E: Event> Delayed<E> {
    /// `event`, to be delivered `delay` after the handling that returns it completes.
    pub fn new(delay: Duration, event: E) -> Self {
        Delayed { delay, event }
    }

    /// The delay.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// The event.
    pub fn event(&self) -> &E {
        &self.event
    }
}

#[diagnostic::do_not_recommend]
impl<E: Event> IntoEmit for Delayed<E> {
    fn into_emit(self, out: &mut Emit) {
        out.push_after(self.delay, self.event);
    }
}

#[diagnostic::do_not_recommend]
impl<E: Event> IntoEmit for Option<Delayed<E>> {
    fn into_emit(self, out: &mut Emit) {
        if let Some(delayed) = self {
            delayed.into_emit(out);
        }
    }
}

#[diagnostic::do_not_recommend]
impl<E: Event> IntoEmit for Vec<Delayed<E>> {
    fn into_emit(self, out: &mut Emit) {
        for delayed in self {
            delayed.into_emit(out);
        }
    }
}

macro_rules! tuple_into_emit {
    ($($name:ident)+) => {
        #[diagnostic::do_not_recommend]
        impl<$($name: IntoEmit),+> IntoEmit for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_emit(self, out: &mut Emit) {
                let ($($name,)+) = self;
                $($name.into_emit(out);)+
            }
        }
    };
}

tuple_into_emit!(A);
tuple_into_emit!(A B);
tuple_into_emit!(A B C);
tuple_into_emit!(A B C D);
tuple_into_emit!(A B C D F);
tuple_into_emit!(A B C D F G);
tuple_into_emit!(A B C D F G H);
tuple_into_emit!(A B C D F G H I);

/// What an organ's handler returns, turned into the events to emit or the error: any
/// [`IntoEmit`] value, or a `Result` of one whose error type is a standard error (or a
/// boxed one, such as [`BoxError`](crate::BoxError) or `anyhow::Error`).
///
/// `Via` tells the two impls apart and is inferred; write `IntoOutcome` alone for the
/// values that are not a `Result`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned from an organ",
    label = "an organ cannot return this",
    note = "an organ returns `()`, an event, `Option<E>`, `Vec<E>`, `necrostack::Emit`, a tuple of those, or `Result<any of those, Err>` with `Err: std::error::Error + Send + Sync + 'static` (or `Box<dyn Error + Send + Sync>`, `anyhow::Error`); `E` must derive `necrostack::Event`"
)]
pub trait IntoOutcome<Via = Plain> {
    /// The events to emit, or the handler's error.
    fn into_outcome(self) -> Result<Emit, BoxError>;
}

/// [`IntoOutcome`]'s `Via` for a value that is not a `Result`.
#[doc(hidden)]
#[derive(Debug)]
pub enum Plain {}

/// [`IntoOutcome`]'s `Via` for a `Result` whose error converts through `ErrorType`'s
/// `Via`.
#[doc(hidden)]
#[derive(Debug)]
pub struct Fallible<Via>(std::marker::PhantomData<Via>, Plain);

#[diagnostic::do_not_recommend]
impl<T: IntoEmit> IntoOutcome for T {
    fn into_outcome(self) -> Result<Emit, BoxError> {
        let mut out = Emit::new();
        self.into_emit(&mut out);
        Ok(out)
    }
}

#[diagnostic::do_not_recommend]
impl<T: IntoEmit, Err: ErrorType<Via>, Via> IntoOutcome<Fallible<Via>> for Result<T, Err> {
    fn into_outcome(self) -> Result<Emit, BoxError> {
        match self {
            Ok(value) => value.into_outcome(),
            Err(error) => Err(error.into_organ_error()),
        }
    }
}

/// The error types an organ may return: what `Result<_, Err>` accepts. A trait of its own
/// so that a wrong error type gets a message about organs, on the user's `Err` type (where
/// generated code calls [`ErrorType::into_organ_error`]).
///
/// Two kinds are accepted, told apart by `Via` (inferred, never written):
/// - [`StdError`]: any `std::error::Error + Send + Sync + 'static`, boxed;
/// - [`DynError`]: a type that already holds a boxed one, i.e. that dereferences to
///   `dyn Error + Send + Sync` and converts into [`BoxError`]: `Box<dyn Error + Send +
///   Sync>` itself (the crate's [`BoxError`](crate::BoxError)), `anyhow::Error`,
///   `eyre::Report`. Neither implements `std::error::Error`, and a single blanket impl
///   for both kinds would overlap (the standard library may one day implement `Error`
///   for the box), hence the parameter. `String` and `&str` convert into [`BoxError`]
///   too, but do not dereference to an error, so they stay rejected.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an error type, so an organ cannot return it as its error",
    label = "does not implement `std::error::Error + Send + Sync + 'static`",
    note = "an organ's error type implements `std::error::Error + Send + Sync + 'static`, e.g. `std::io::Error` or your own type with `#[derive(thiserror::Error)]`, or is `Box<dyn std::error::Error + Send + Sync>` or `anyhow::Error`; a `String` or `&str` is not one"
)]
pub trait ErrorType<Via> {
    /// Boxes the error.
    fn into_organ_error(self) -> BoxError;
}

/// [`ErrorType`]'s `Via` for a standard error type.
#[doc(hidden)]
#[derive(Debug)]
pub enum StdError {}

/// [`ErrorType`]'s `Via` for a boxed error, or a type that wraps one.
#[doc(hidden)]
#[derive(Debug)]
pub enum DynError {}

#[diagnostic::do_not_recommend]
impl<E: std::error::Error + Send + Sync + 'static> ErrorType<StdError> for E {
    fn into_organ_error(self) -> BoxError {
        Box::new(self)
    }
}

#[diagnostic::do_not_recommend]
impl<E> ErrorType<DynError> for E
where
    E: std::ops::Deref<Target = dyn std::error::Error + Send + Sync + 'static> + Into<BoxError>,
{
    fn into_organ_error(self) -> BoxError {
        self.into()
    }
}
