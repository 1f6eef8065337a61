//! The routing table: for each event type name, the organs listening to it.
//!
//! Built once by the [`SpineBuilder`](super::SpineBuilder). Each route is typed over its
//! event, so the payload is decoded once per event and handed by reference to every organ;
//! what happens to the event then is [`dispatch`](super::dispatch)'s.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use super::dispatch::{self, Dispatch, Prepared};
use crate::envelope::AnyEnvelope;
use crate::error::BuildError;
use crate::event::{ErasedEvent, Event};
use crate::organ::{DynOrgan, Organ, WithPolicy};
use crate::partition::key_hash;
use crate::policy::FailurePolicy;
use crate::topology::Topology;

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
    /// Whether this event type has an ordering key.
    fn has_key(&self) -> bool;
    /// The ordering key of `envelope`, if this event type has one.
    fn key(&self, envelope: &AnyEnvelope) -> Option<u64>;
    /// The ordering key of a typed payload, if this event type has one and the payload
    /// is of this route's type.
    fn payload_key(&self, payload: &dyn ErasedEvent) -> Option<u64>;
    /// Decodes `envelope` into `slot` (where the caller keeps it while organs borrow it)
    /// and runs every organ on it, or returns the work left when an organ must be awaited.
    fn prepare<'a>(
        &'a self,
        envelope: AnyEnvelope,
        slot: &'a mut Option<AnyEnvelope>,
        ctx: &'a Dispatch,
    ) -> Prepared<'a>;
}

impl<E: Event> Route for TypedRoute<E> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn is_empty(&self) -> bool {
        self.organs.is_empty()
    }

    fn has_key(&self) -> bool {
        self.key.is_some()
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

    fn payload_key(&self, payload: &dyn ErasedEvent) -> Option<u64> {
        let key = self.key.as_ref()?;
        payload.as_any().downcast_ref::<E>().map(key)
    }

    fn prepare<'a>(
        &'a self,
        envelope: AnyEnvelope,
        slot: &'a mut Option<AnyEnvelope>,
        ctx: &'a Dispatch,
    ) -> Prepared<'a> {
        dispatch::prepare(&self.organs, envelope, slot, ctx)
    }
}

/// The routing table under construction.
#[derive(Default)]
pub(crate) struct RouteTableBuilder {
    slots: HashMap<&'static str, Slot>,
    /// Names in the order first registered, for deterministic error messages.
    order: Vec<&'static str>,
    pub(crate) errors: Vec<BuildError>,
    /// The organs and the event types between them, for [`Spine::topology`](super::Spine::topology).
    pub(crate) topology: Topology,
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

    pub(crate) fn add_organ<O: Organ>(&mut self, organ: O, policy: Option<FailurePolicy>) {
        self.topology
            .add(O::NAME, <O::Event as Event>::NAME, O::emits());
        if let Some(route) = self.route::<O::Event>() {
            match policy {
                None => route.organs.push(Box::new(organ)),
                Some(policy) => route.organs.push(Box::new(WithPolicy { organ, policy })),
            }
        }
    }

    pub(crate) fn set_key<E: Event, K: Hash>(
        &mut self,
        key: impl Fn(&E) -> K + Send + Sync + 'static,
    ) {
        if let Some(route) = self.route::<E>() {
            // The stable hash, so that the key the spine orders by in this process is the
            // partition key it writes on the wire for every other process.
            route.key = Some(Box::new(move |event| key_hash(&key(event))));
        }
    }

    pub(crate) fn finish(self) -> RouteTable {
        let keyed = self.slots.values().any(|slot| slot.route.has_key());
        let mut keyed_types = Vec::new();
        let mut routes: Vec<(&'static str, Box<dyn Route>)> = Vec::new();
        for (name, slot) in self.slots {
            if slot.route.has_key() {
                keyed_types.push((slot.type_id, routes.len()));
            }
            routes.push((name, slot.route));
        }
        let index = (routes.len() > LINEAR_SCAN_ROUTES).then(|| {
            routes
                .iter()
                .enumerate()
                .map(|(at, (name, _))| (*name, at))
                .collect()
        });
        RouteTable {
            routes,
            index,
            keyed,
            keyed_types,
        }
    }
}

/// Up to this many event types, finding a route by comparing names one by one is
/// faster than hashing the name.
const LINEAR_SCAN_ROUTES: usize = 8;

/// The finished routing table: event type name to route, looked up once per event.
pub(crate) struct RouteTable {
    routes: Vec<(&'static str, Box<dyn Route>)>,
    /// Name to position in `routes`, for tables too large to scan.
    index: Option<HashMap<&'static str, usize, BuildHasherDefault<NameHasher>>>,
    /// Whether any route has an ordering key; when none has, no lookup is needed for it.
    keyed: bool,
    /// The Rust types of the routes with an ordering key, and their positions in
    /// `routes`: usually one or two, found by comparing a `TypeId` rather than a name.
    keyed_types: Vec<(TypeId, usize)>,
}

impl RouteTable {
    /// The route for an event type name.
    pub(crate) fn get(&self, event_type: &str) -> Option<&dyn Route> {
        let at = match &self.index {
            Some(index) => *index.get(event_type)?,
            None => self
                .routes
                .iter()
                .position(|(name, _)| *name == event_type)?,
        };
        self.routes.get(at).map(|(_, route)| &**route)
    }

    /// The ordering key of a delivered `envelope`: its partition key when it carries
    /// one (no decoding needed), else the key its event type's `order_key` gives, if any.
    pub(crate) fn key(&self, envelope: &AnyEnvelope) -> Option<u64> {
        if let Some(key) = envelope.partition_key() {
            return Some(key);
        }
        if !self.keyed {
            return None;
        }
        self.get(envelope.event_type())?.key(envelope)
    }

    /// Gives each of `envelopes` that the spine is about to enqueue the partition key its
    /// event type's `order_key` computes, unless it has a key already. No work at all when
    /// no event type has an `order_key`.
    pub(crate) fn stamp<'e>(&self, envelopes: impl IntoIterator<Item = &'e mut AnyEnvelope>) {
        if !self.keyed {
            return;
        }
        for envelope in envelopes {
            envelope.key_if_unset(|payload| self.payload_key(payload));
        }
    }

    /// The ordering key of a typed payload, if its type has an `order_key`.
    fn payload_key(&self, payload: &dyn ErasedEvent) -> Option<u64> {
        let type_id = payload.as_any().type_id();
        let (_, at) = self.keyed_types.iter().find(|(id, _)| *id == type_id)?;
        self.routes.get(*at)?.1.payload_key(payload)
    }

    /// The event type names that have routes.
    pub(crate) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes.iter().map(|(name, _)| *name)
    }
}

/// FNV-1a, for the routing table's keys: event names are short, and SipHash's
/// protection against flooding is not needed in a table that is never inserted into
/// after `build()` (a lookup of a hostile name costs at most one probe sequence).
#[derive(Default)]
pub(crate) struct NameHasher(u64);

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = hash;
    }
}
