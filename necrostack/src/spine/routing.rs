//! The routing table: for each event type name, the organs listening to it.
//!
//! Built once by the [`SpineBuilder`](super::SpineBuilder). Each route is typed over its
//! event, so the payload is decoded once per event and handed by reference to every organ.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use super::builder::BuildError;
use super::dispatch::{self, Dispatch, EventOutcome};
use crate::backend::DeadLetterReason;
use crate::envelope::{AnyEnvelope, Envelope};
use crate::event::Event;
use crate::organ::{Handling, Organ};

/// An organ with its concrete type erased, for a list of organs of one event type.
pub(crate) trait DynOrgan<E>: Send + Sync {
    fn name(&self) -> &'static str;
    fn call<'a>(&'a self, event: &'a Envelope<E>) -> Handling<'a>;
}

impl<O: Organ> DynOrgan<O::Event> for O {
    fn name(&self) -> &'static str {
        O::NAME
    }

    fn call<'a>(&'a self, event: &'a Envelope<O::Event>) -> Handling<'a> {
        Organ::call(self, event)
    }
}

type KeyFn<E> = Box<dyn Fn(&E) -> u64 + Send + Sync>;

/// The organs for one event type, and its ordering key.
pub(crate) struct TypedRoute<E: Event> {
    pub(crate) organs: Vec<Box<dyn DynOrgan<E>>>,
    pub(crate) key: Option<KeyFn<E>>,
}

/// A route with its event type erased.
pub(crate) trait Route: Send + Sync {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// Whether no organ listens (the route exists only for an ordering key).
    fn is_empty(&self) -> bool;
    /// The ordering key of `envelope`, if this event type has one.
    fn key(&self, envelope: &AnyEnvelope) -> Option<u64>;
    /// Decodes `envelope` and returns the work of running every organ on it.
    fn prepare<'a>(
        &'a self,
        envelope: AnyEnvelope,
        ctx: &'a Dispatch,
    ) -> BoxFuture<'a, EventOutcome>;
}

impl<E: Event> Route for TypedRoute<E> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn is_empty(&self) -> bool {
        self.organs.is_empty()
    }

    fn key(&self, envelope: &AnyEnvelope) -> Option<u64> {
        let key = self.key.as_ref()?;
        match envelope.downcast_ref::<E>() {
            Some(event) => Some(key(event)),
            // A JSON payload: decode a copy; if it does not decode, `prepare` reports it.
            None => envelope
                .clone()
                .decode::<E>()
                .ok()
                .map(|event| key(event.payload())),
        }
    }

    fn prepare<'a>(
        &'a self,
        envelope: AnyEnvelope,
        ctx: &'a Dispatch,
    ) -> BoxFuture<'a, EventOutcome> {
        if let Some(outcome) = ctx.check_depth(&envelope) {
            return futures_util::future::ready(outcome).boxed();
        }
        match envelope.try_decode::<E>() {
            Ok(event) => dispatch::run_organs(&self.organs, event, ctx).boxed(),
            Err(failed) => {
                let (envelope, error) = *failed;
                tracing::warn!(
                    event_id = %envelope.id(),
                    event_type = %envelope.event_type(),
                    correlation_id = %envelope.correlation_id(),
                    %error,
                    "undecodable event: dead-lettered"
                );
                let reason = DeadLetterReason::Undecodable {
                    error: error.to_string(),
                };
                futures_util::future::ready(EventOutcome::dead(envelope, reason)).boxed()
            }
        }
    }
}

/// The routing table under construction.
#[derive(Default)]
pub(crate) struct RouteTableBuilder {
    slots: HashMap<&'static str, Slot>,
    /// Names in the order first registered, for deterministic error messages.
    order: Vec<&'static str>,
    pub(crate) errors: Vec<BuildError>,
}

struct Slot {
    type_id: TypeId,
    type_name: &'static str,
    route: Box<dyn Route>,
}

impl RouteTableBuilder {
    /// The typed route for `E`, created on first use; `None` (and an error recorded) when
    /// another type already uses `E::NAME`.
    pub(crate) fn route<E: Event>(&mut self) -> Option<&mut TypedRoute<E>> {
        let slot = self.slots.entry(E::NAME).or_insert_with(|| {
            self.order.push(E::NAME);
            Slot {
                type_id: TypeId::of::<E>(),
                type_name: std::any::type_name::<E>(),
                route: Box::new(TypedRoute::<E> {
                    organs: Vec::new(),
                    key: None,
                }),
            }
        });
        if slot.type_id != TypeId::of::<E>() {
            let error = BuildError::DuplicateEventName {
                name: E::NAME,
                first: slot.type_name,
                second: std::any::type_name::<E>(),
            };
            if !self.errors.contains(&error) {
                self.errors.push(error);
            }
            return None;
        }
        slot.route.as_any_mut().downcast_mut::<TypedRoute<E>>()
    }

    pub(crate) fn add_organ<O: Organ>(&mut self, organ: O) {
        if let Some(route) = self.route::<O::Event>() {
            route.organs.push(Box::new(organ));
        }
    }

    pub(crate) fn set_key<E: Event, K: Hash>(
        &mut self,
        key: impl Fn(&E) -> K + Send + Sync + 'static,
    ) {
        if let Some(route) = self.route::<E>() {
            route.key = Some(Box::new(move |event| {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                key(event).hash(&mut hasher);
                hasher.finish()
            }));
        }
    }

    pub(crate) fn finish(self) -> HashMap<&'static str, Box<dyn Route>> {
        self.slots
            .into_iter()
            .map(|(name, slot)| (name, slot.route))
            .collect()
    }
}
