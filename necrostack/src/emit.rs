//! What an organ returns: [`Emit`] and the conversions from every accepted return form.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::box_error::BoxError;
use crate::envelope::{Envelope, ErasedEnvelope};
use crate::event::Event;
use crate::identity::Meta;

/// An event to deliver after a delay.
pub(crate) type Later = (Duration, Arc<dyn ErasedEnvelope>);

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
#[expect(
    clippy::box_collection,
    reason = "`delayed` is one pointer instead of a Vec's three in every Emit; delays are rare"
)]
pub struct Emit {
    pub(crate) events: Events,
    /// Events to deliver after a delay, in the order added; boxed, so that the common
    /// `Emit` without any stays small to move.
    pub(crate) delayed: Option<Box<Vec<Later>>>,
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
            delayed: None,
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
        self.delayed.get_or_insert_default().push((
            delay,
            Arc::new(Envelope::from_parts(Meta::unstamped(), event)),
        ));
    }

    /// How many events.
    pub fn len(&self) -> usize {
        self.events.len() + self.delayed.as_ref().map_or(0, |later| later.len())
    }

    /// Whether there are no events.
    pub fn is_empty(&self) -> bool {
        self.events.first.is_none() && self.delayed.is_none()
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
        self.events.iter().chain(
            self.delayed
                .iter()
                .flat_map(|later| later.iter().map(|(_, e)| e)),
        )
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
            if let Some(later) = self.delayed {
                out.delayed.get_or_insert_default().extend(*later);
            }
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

/// The event types a return form can emit, found from its type: what `#[organ]` reports
/// as the organ's [`Emits`](crate::topology::Emits). Implemented for the same forms as
/// [`IntoEmit`] (and for `Result` of them); [`Emit`] holds events of any types, so it
/// adds none and marks the list as open.
#[doc(hidden)]
pub trait EmitTypes {
    /// Appends the event type names to `types`; sets `open` when an [`Emit`] is part of
    /// the form (events whose types the type system does not know).
    fn emit_types(types: &mut Vec<&'static str>, open: &mut bool);
}

impl EmitTypes for () {
    fn emit_types(_: &mut Vec<&'static str>, _: &mut bool) {}
}

impl<E: Event> EmitTypes for E {
    fn emit_types(types: &mut Vec<&'static str>, _: &mut bool) {
        types.push(E::NAME);
    }
}

impl<E: Event> EmitTypes for Option<E> {
    fn emit_types(types: &mut Vec<&'static str>, _: &mut bool) {
        types.push(E::NAME);
    }
}

impl<E: Event> EmitTypes for Vec<E> {
    fn emit_types(types: &mut Vec<&'static str>, _: &mut bool) {
        types.push(E::NAME);
    }
}

impl EmitTypes for Emit {
    fn emit_types(_: &mut Vec<&'static str>, open: &mut bool) {
        *open = true;
    }
}

impl<E: Event> EmitTypes for Delayed<E> {
    fn emit_types(types: &mut Vec<&'static str>, _: &mut bool) {
        types.push(E::NAME);
    }
}

impl<E: Event> EmitTypes for Option<Delayed<E>> {
    fn emit_types(types: &mut Vec<&'static str>, _: &mut bool) {
        types.push(E::NAME);
    }
}

impl<E: Event> EmitTypes for Vec<Delayed<E>> {
    fn emit_types(types: &mut Vec<&'static str>, _: &mut bool) {
        types.push(E::NAME);
    }
}

impl<T: EmitTypes, Err> EmitTypes for Result<T, Err> {
    fn emit_types(types: &mut Vec<&'static str>, open: &mut bool) {
        T::emit_types(types, open);
    }
}

macro_rules! tuple_emit_types {
    ($($name:ident)+) => {
        impl<$($name: EmitTypes),+> EmitTypes for ($($name,)+) {
            fn emit_types(types: &mut Vec<&'static str>, open: &mut bool) {
                $($name::emit_types(types, open);)+
            }
        }
    };
}

tuple_emit_types!(A);
tuple_emit_types!(A B);
tuple_emit_types!(A B C);
tuple_emit_types!(A B C D);
tuple_emit_types!(A B C D F);
tuple_emit_types!(A B C D F G);
tuple_emit_types!(A B C D F G H);
tuple_emit_types!(A B C D F G H I);

/// The output type `T` of an organ's handler, carried as a type so that generated code
/// can ask for its [`EmitTypes`] without naming `T` (which would repeat the user's
/// tokens, and their errors). Made by [`output_of`] and its siblings from the handler
/// function itself.
///
/// Its `emits` method is found by autoref: [`KnownEmits`] when `T: EmitTypes`, else
/// [`UnknownEmits`], so a return type that cannot be emitted (already reported on the
/// return type, once) adds no error here.
#[doc(hidden)]
pub struct OutputOf<T: ?Sized>(std::marker::PhantomData<fn() -> *const T>);

impl<T: ?Sized> fmt::Debug for OutputOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OutputOf")
    }
}

/// The output of a sync function handler `fn(P) -> R`.
#[doc(hidden)]
pub fn output_of<F: Fn(P) -> R, P, R>(_: &F) -> OutputOf<R> {
    OutputOf(std::marker::PhantomData)
}

/// The output of an async function handler.
#[doc(hidden)]
pub fn output_of_async<F: Fn(P) -> Fut, P, Fut: std::future::Future>(
    _: &F,
) -> OutputOf<Fut::Output> {
    OutputOf(std::marker::PhantomData)
}

/// The output of a sync `handle(&self, P) -> R` method.
#[doc(hidden)]
pub fn output_of_method<F: Fn(S, P) -> R, S, P, R>(_: &F) -> OutputOf<R> {
    OutputOf(std::marker::PhantomData)
}

/// The output of an async `handle(&self, P)` method.
#[doc(hidden)]
pub fn output_of_async_method<F: Fn(S, P) -> Fut, S, P, Fut: std::future::Future>(
    _: &F,
) -> OutputOf<Fut::Output> {
    OutputOf(std::marker::PhantomData)
}

/// [`OutputOf`]'s `emits` for an output whose event types are known.
#[doc(hidden)]
pub trait KnownEmits {
    /// The organ's emits: the output's event types, plus `declared` (the `emits = [..]`
    /// key) for its `Emit` parts.
    fn emits(&self, declared: Option<&[&'static str]>) -> crate::topology::Emits;
}

impl<T: EmitTypes + ?Sized> KnownEmits for OutputOf<T> {
    fn emits(&self, declared: Option<&[&'static str]>) -> crate::topology::Emits {
        let mut types = Vec::new();
        let mut open = false;
        T::emit_types(&mut types, &mut open);
        match declared {
            Some(declared) => {
                types.extend_from_slice(declared);
                crate::topology::Emits::known(types)
            }
            None if open => crate::topology::Emits::Unknown,
            None => crate::topology::Emits::known(types),
        }
    }
}

/// [`OutputOf`]'s `emits` for an output that is not a return form (an error has been
/// reported on the return type): unknown.
#[doc(hidden)]
pub trait UnknownEmits {
    /// [`Emits::Unknown`](crate::topology::Emits::Unknown).
    fn emits(&self, declared: Option<&[&'static str]>) -> crate::topology::Emits;
}

impl<T: ?Sized> UnknownEmits for &OutputOf<T> {
    fn emits(&self, _: Option<&[&'static str]>) -> crate::topology::Emits {
        crate::topology::Emits::Unknown
    }
}

/// A type listed in `#[organ(emits = [..])]`: an event. A trait of its own so that a type
/// that is not one gets a message about `emits`, on the listed type.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a necrostack event, so `emits` cannot list it",
    label = "not an event",
    note = "`emits = [..]` lists the event types an organ's `Emit` may hold: types with `#[derive(necrostack::Event)]`"
)]
pub trait EmittedEvent {
    /// The event's name.
    const NAME: &'static str;
}

#[diagnostic::do_not_recommend]
impl<E: Event> EmittedEvent for E {
    const NAME: &'static str = E::NAME;
}
