//! The [`Event`] trait: what makes a plain Rust type something a spine can route.

use std::any::Any;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

/// A type that can travel through a spine.
///
/// Derive it rather than implementing it by hand: `#[derive(Event)]` checks the name at
/// compile time. The name is what routes the event and what goes on the wire, so two Rust
/// types must not share one (a spine refuses to build if two of its organs listen to
/// different types with the same name).
///
/// ```
/// use necrostack::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// #[event(name = "SUMMON_RITUAL")]
/// struct SummonRitual {
///     spirit: String,
/// }
///
/// assert_eq!(SummonRitual::NAME, "SUMMON_RITUAL");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a necrostack event",
    label = "this type is not an event",
    note = "an event is a type of your own with `#[derive(necrostack::Event, serde::Serialize, serde::Deserialize)]`; to send a `{Self}`, put it in a field of such a type"
)]
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event type name: the routing key and the `event_type` on the wire.
    const NAME: &'static str;
}

/// The where clause of the stand-in `impl Event` that `#[derive(Event)]` generates for a
/// type that cannot be an event: `Self: RejectedEvent<{ compile_error!(..) }>`. The
/// supertraits let the impl be checked; the argument is an error, so the bound is not
/// reported again where the type is used. Implemented for nothing: the program does not
/// compile.
#[doc(hidden)]
pub trait RejectedEvent<const REJECTED: usize>:
    Serialize + DeserializeOwned + Send + Sync + 'static
{
}

/// An event with its concrete type erased, so that backends and [`crate::Emit`] can hold
/// events of many types in one collection without serializing them.
pub(crate) trait ErasedEvent: Any + Send + Sync {
    fn name(&self) -> &'static str;
    fn as_any(&self) -> &dyn Any;
    fn to_json(&self) -> serde_json::Result<Box<RawValue>>;
}

impl<E: Event> ErasedEvent for E {
    fn name(&self) -> &'static str {
        E::NAME
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn to_json(&self) -> serde_json::Result<Box<RawValue>> {
        serde_json::value::to_raw_value(self)
    }
}

/// Checks an event name the way `#[derive(Event)]` does: non-empty, no whitespace or
/// control characters. Shared by the wire decoder so both sides agree on what a name is.
pub(crate) fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the event type name is empty");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the event type name contains whitespace or a control character");
    }
    Ok(())
}
