//! [`Envelope`]: an event with its identity, time and lineage, and [`AnyEnvelope`], the
//! same with the event type erased so backends can carry events of every type.

use std::any::Any;
use std::fmt;
use std::hash::Hash;
use std::ops::Deref;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::event::{ErasedEvent, Event};
use crate::identity::Meta;
use crate::partition::key_hash;
use crate::wire::{self, DecodeError, EncodeError, WireEnvelope, WireOut};

/// An event of type `E` with its id, UTC timestamp and lineage.
///
/// Envelopes are immutable: the spine fills in the metadata and nothing can change it
/// afterwards, so an organ can trust `correlation_id` and `causation_id`. It derefs to the
/// payload, so `envelope.field` reads the event's fields.
///
/// ```
/// use necrostack::{Envelope, Event};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Knock { times: u32 }
///
/// let envelope = Envelope::new(Knock { times: 3 });
/// assert_eq!(envelope.event_type(), "Knock");
/// assert_eq!(envelope.times, 3);                          // Deref to the payload
/// assert_eq!(envelope.correlation_id(), envelope.id());   // a root event
/// assert_eq!(envelope.causation_id(), None);
///
/// let bytes = envelope.to_json().unwrap();
/// let back = Envelope::<Knock>::from_json(&bytes).unwrap();
/// assert_eq!(back, envelope);
/// ```
///
/// It is `Serialize` and `Deserialize` in the same wire format, so it can be a field of
/// your own serde types and go through any self-describing serde format. Reading is as
/// strict as [`from_json`](Envelope::from_json), which gives a typed [`DecodeError`].
///
/// ```
/// # use necrostack::{Envelope, Event};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// # struct Knock { times: u32 }
/// #[derive(Serialize, Deserialize, Debug, PartialEq)]
/// struct Outbox { pending: Vec<Envelope<Knock>> }
///
/// let outbox = Outbox { pending: vec![Envelope::new(Knock { times: 1 })] };
/// let text = serde_json::to_string(&outbox).unwrap();
/// assert_eq!(serde_json::from_str::<Outbox>(&text).unwrap(), outbox);
///
/// let one = serde_json::to_string(&outbox.pending[0]).unwrap();
/// assert_eq!(one.as_bytes(), outbox.pending[0].to_json().unwrap());
/// assert!(serde_json::from_str::<Outbox>(r#"{"pending": [{"id": "x"}]}"#).is_err());
/// ```
pub struct Envelope<E> {
    pub(crate) meta: Meta,
    pub(crate) payload: E,
}

impl<E: Event> Envelope<E> {
    /// Wraps `payload` as a root event: a fresh time-ordered (v7) id, the current UTC
    /// time, a correlation id equal to its own id, no causation and depth 0.
    pub fn new(payload: E) -> Self {
        Envelope {
            meta: Meta::root(),
            payload,
        }
    }

    /// The event type name, [`Event::NAME`].
    pub fn event_type(&self) -> &'static str {
        E::NAME
    }

    /// Encodes the envelope in the JSON wire format: the same bytes as
    /// `serde_json::to_vec(&envelope)`, with the error typed.
    pub fn to_json(&self) -> Result<Vec<u8>, EncodeError> {
        wire::encode(&self.meta, E::NAME, &self.payload)
    }

    /// Decodes an envelope from the JSON wire format, checking every field and that the
    /// event type is `E::NAME`. Never panics, whatever the bytes.
    ///
    /// It accepts exactly what `serde_json::from_slice::<Envelope<E>>` accepts; the
    /// difference is the error, a [`DecodeError`] that says which part was wrong.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        AnyEnvelope::from_json(bytes)?.decode()
    }

    /// [`Envelope::from_json`] for JSON text.
    pub fn from_json_str(text: &str) -> Result<Self, DecodeError> {
        AnyEnvelope::from_json_str(text)?.decode()
    }

    /// [`Envelope::from_json`] for a parsed JSON value, as strict as for bytes.
    pub fn from_json_value(value: serde_json::Value) -> Result<Self, DecodeError> {
        AnyEnvelope::from_json_value(value)?.decode()
    }
}

impl<E> Envelope<E> {
    /// The same envelope with the partition key of `key`
    /// ([`key_hash`](crate::partition::key_hash)`(key)`): events with one key are handled
    /// in the order they were emitted, one at a time, by every spine sharing the backend
    /// (and, on a partitioned backend, they share a partition). It replaces the key the
    /// spine's [`order_key`](crate::SpineBuilder::order_key) would give the event.
    ///
    /// This builds the envelope before it is emitted; it is not a setter: an envelope
    /// that was delivered keeps its key.
    ///
    /// ```
    /// use necrostack::{partition::key_hash, Envelope, Event, Spine};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// struct Deposit { account: String, cents: u64 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), necrostack::Error> {
    /// let deposit = Deposit { account: "acc-7".into(), cents: 500 };
    /// let envelope = Envelope::new(deposit).with_partition_key("acc-7");
    /// assert_eq!(envelope.partition_key(), Some(key_hash("acc-7")));
    ///
    /// let spine = Spine::builder().build()?;
    /// spine.emit_envelope(envelope).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[must_use = "`with_partition_key` returns the keyed envelope"]
    pub fn with_partition_key<K: Hash + ?Sized>(mut self, key: &K) -> Self {
        self.meta.key = Some(key_hash(key));
        self
    }
}

impl<E> Envelope<E> {
    pub(crate) fn from_parts(meta: Meta, payload: E) -> Self {
        Envelope { meta, payload }
    }

    /// The unique id of this event (a UUID; v7 for events created here).
    pub fn id(&self) -> Uuid {
        self.meta.id
    }

    /// When the event was created, in UTC.
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.meta.timestamp
    }

    /// The id of the root event of the chain this event belongs to.
    pub fn correlation_id(&self) -> Uuid {
        self.meta.correlation_id
    }

    /// The id of the event whose handler emitted this one; `None` for a root event.
    pub fn causation_id(&self) -> Option<Uuid> {
        self.meta.causation_id
    }

    /// Hops from the root event: 0 for a root, its cause's depth + 1 otherwise.
    pub fn depth(&self) -> u32 {
        self.meta.depth
    }

    /// Which try this is under [`FailurePolicy::Retry`](crate::FailurePolicy::Retry): 1 for
    /// the first handling, 2 for the first retry, and so on. A retry is the same event
    /// (same id and lineage) delivered again to the one organ that failed. A redelivery
    /// after a crash does not change it: that is the backend's
    /// [`Delivery::attempt`](crate::backend::Delivery::attempt).
    pub fn attempt(&self) -> u32 {
        self.meta.attempt()
    }

    /// For a retry, the name of the organ it is for; `None` for a first handling.
    pub fn retry_organ(&self) -> Option<&str> {
        self.meta.organ()
    }

    /// The partition key, [`key_hash`](crate::partition::key_hash) of the event's key, if
    /// it has one: set with [`with_partition_key`](Envelope::with_partition_key), or by
    /// the spine from the event type's [`order_key`](crate::SpineBuilder::order_key)
    /// when it enqueued the event. `None` for an unkeyed event. Retries and dead letters
    /// of an event keep its key.
    pub fn partition_key(&self) -> Option<u64> {
        self.meta.key
    }

    /// The event itself.
    pub fn payload(&self) -> &E {
        &self.payload
    }

    /// Takes the event out of the envelope.
    pub fn into_payload(self) -> E {
        self.payload
    }
}

impl<E> Deref for Envelope<E> {
    type Target = E;

    fn deref(&self) -> &E {
        &self.payload
    }
}

impl<E: Clone> Clone for Envelope<E> {
    fn clone(&self) -> Self {
        Envelope {
            meta: self.meta.clone(),
            payload: self.payload.clone(),
        }
    }
}

impl<E: PartialEq> PartialEq for Envelope<E> {
    fn eq(&self, other: &Self) -> bool {
        self.meta == other.meta && self.payload == other.payload
    }
}

/// Writes the JSON wire format's seven fields, in any serde format.
impl<E: Event> Serialize for Envelope<E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        WireOut::new(&self.meta, E::NAME, &self.payload).serialize(serializer)
    }
}

/// Reads the wire format's seven fields as strictly as [`Envelope::from_json`]: unknown
/// or missing fields, malformed ids and timestamps, an invalid or different event type
/// are errors; ids of any UUID version are accepted.
impl<'de, E: Event> Deserialize<'de> for Envelope<E> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (meta, payload) = wire::deserialize_typed::<D, E>(deserializer)?;
        Ok(Envelope { meta, payload })
    }
}

impl<E: fmt::Debug + Event> fmt::Debug for Envelope<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Envelope");
        out.field("id", &self.meta.id)
            .field("timestamp", &self.meta.timestamp)
            .field("event_type", &E::NAME)
            .field("correlation_id", &self.meta.correlation_id)
            .field("causation_id", &self.meta.causation_id)
            .field("depth", &self.meta.depth);
        retry_fields(&mut out, &self.meta);
        out.field("payload", &self.payload).finish()
    }
}

/// What an [`AnyEnvelope`] holds. It is one pointer wide, so that queues of envelopes
/// stay small and moving one costs nothing.
#[derive(Clone)]
pub(crate) enum Repr {
    /// A whole typed `Envelope<E>`, whose metadata is this envelope's: a spine's organs
    /// borrow it from the delivery (even across an async organ's await) with no copy
    /// and no allocation.
    Typed(Arc<dyn ErasedEnvelope>),
    /// A typed event enqueued again under new metadata: one `Emit` cloned and returned
    /// twice, whose envelope is shared. Only the payload of the inner envelope is used.
    Restamped(Box<(Meta, Arc<dyn ErasedEnvelope>)>),
    /// An event from the wire, its payload still JSON.
    Json(Box<WireEnvelope>),
}

/// An [`Envelope`] with its event type erased.
pub(crate) trait ErasedEnvelope: Any + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn into_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
    fn payload(&self) -> &dyn ErasedEvent;
    fn meta(&self) -> &Meta;
    fn meta_mut(&mut self) -> &mut Meta;
    fn set_meta(&mut self, meta: Meta);
}

impl<E: Event> ErasedEnvelope for Envelope<E> {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }

    fn payload(&self) -> &dyn ErasedEvent {
        &self.payload
    }

    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn set_meta(&mut self, meta: Meta) {
        self.meta = meta;
    }
}

/// An envelope whose event type is known only by name: what a [`crate::Backend`] stores
/// and delivers.
///
/// In memory the payload stays the typed value (no serialization); a backend that needs
/// bytes calls [`AnyEnvelope::to_json`] and [`AnyEnvelope::from_json`]. Cloning is cheap:
/// a typed payload is shared, not copied.
#[derive(Clone)]
pub struct AnyEnvelope {
    repr: Repr,
}

impl AnyEnvelope {
    /// An emitted event (an envelope built by [`Emit`](crate::Emit) with placeholder
    /// metadata) with its real metadata. The allocation is reused when nothing else
    /// holds it, which is always the case except for a cloned `Emit`.
    pub(crate) fn stamped(meta: Meta, mut envelope: Arc<dyn ErasedEnvelope>) -> Self {
        let repr = match Arc::get_mut(&mut envelope) {
            Some(inner) => {
                inner.set_meta(meta);
                Repr::Typed(envelope)
            }
            None => Repr::Restamped(Box::new((meta, envelope))),
        };
        AnyEnvelope { repr }
    }

    fn from_wire(wire: WireEnvelope) -> Self {
        AnyEnvelope {
            repr: Repr::Json(Box::new(wire)),
        }
    }

    fn meta(&self) -> &Meta {
        match &self.repr {
            Repr::Typed(typed) => typed.meta(),
            Repr::Restamped(restamped) => &restamped.0,
            Repr::Json(wire) => &wire.meta,
        }
    }

    /// The typed payload, wherever it is kept; `None` for JSON.
    fn typed_payload(&self) -> Option<&dyn ErasedEvent> {
        match &self.repr {
            Repr::Typed(typed) => Some(typed.payload()),
            Repr::Restamped(restamped) => Some(restamped.1.payload()),
            Repr::Json(_) => None,
        }
    }

    /// The unique id of this event.
    pub fn id(&self) -> Uuid {
        self.meta().id
    }

    /// When the event was created, in UTC.
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.meta().timestamp
    }

    /// The event type name, the routing key.
    pub fn event_type(&self) -> &str {
        match &self.repr {
            Repr::Typed(typed) => typed.payload().name(),
            Repr::Restamped(restamped) => restamped.1.payload().name(),
            Repr::Json(wire) => &wire.event_type,
        }
    }

    /// The id of the root event of this event's chain.
    pub fn correlation_id(&self) -> Uuid {
        self.meta().correlation_id
    }

    /// The id of the event whose handler emitted this one; `None` for a root event.
    pub fn causation_id(&self) -> Option<Uuid> {
        self.meta().causation_id
    }

    /// Hops from the root event.
    pub fn depth(&self) -> u32 {
        self.meta().depth
    }

    /// Which try of the failure policy this is (see [`Envelope::attempt`]).
    pub fn attempt(&self) -> u32 {
        self.meta().attempt()
    }

    /// For a retry, the organ it is for (see [`Envelope::retry_organ`]).
    pub fn retry_organ(&self) -> Option<&str> {
        self.meta().organ()
    }

    /// The partition key, if the event has one (see [`Envelope::partition_key`]). A
    /// backend that partitions its stream picks the partition from it with
    /// [`partition_of`](crate::partition::partition_of).
    pub fn partition_key(&self) -> Option<u64> {
        self.meta().key
    }

    /// The same envelope with the partition key of `key` (see
    /// [`Envelope::with_partition_key`]); the payload is not copied.
    ///
    /// ```
    /// use necrostack::{partition::key_hash, AnyEnvelope, Envelope, Event};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
    /// struct Reading { device: u32, celsius: i32 }
    ///
    /// let any = AnyEnvelope::from(Envelope::new(Reading { device: 9, celsius: 21 }));
    /// assert_eq!(any.partition_key(), None);
    /// let keyed = any.with_partition_key(&9u32);
    /// assert_eq!(keyed.partition_key(), Some(key_hash(&9u32)));
    /// let back = AnyEnvelope::from_json(&keyed.to_json().unwrap()).unwrap();
    /// assert_eq!(back.partition_key(), keyed.partition_key()); // it travels on the wire
    /// ```
    #[must_use = "`with_partition_key` returns the keyed envelope"]
    pub fn with_partition_key<K: Hash + ?Sized>(mut self, key: &K) -> Self {
        self.set_key(key_hash(key));
        self
    }

    /// Gives the envelope the partition key `key` computes from its typed payload, unless
    /// it has a key already (an explicit key wins over the spine's `order_key`) or its
    /// payload is JSON. Costs no allocation when this envelope is the only holder of its
    /// payload, which is the case for every event the spine enqueues except one `Emit`
    /// returned twice.
    pub(crate) fn key_if_unset(&mut self, key: impl FnOnce(&dyn ErasedEvent) -> Option<u64>) {
        if self.meta().key.is_some() {
            return;
        }
        if let Some(key) = self.typed_payload().and_then(key) {
            self.set_key(key);
        }
    }

    /// Sets the partition key. A typed envelope shared with another holder gets metadata
    /// of its own; the payload stays shared.
    fn set_key(&mut self, key: u64) {
        match &mut self.repr {
            Repr::Typed(typed) => {
                if let Some(inner) = Arc::get_mut(typed) {
                    inner.meta_mut().key = Some(key);
                    return;
                }
                let mut meta = typed.meta().clone();
                meta.key = Some(key);
                self.repr = Repr::Restamped(Box::new((meta, Arc::clone(typed))));
            }
            Repr::Restamped(restamped) => restamped.0.key = Some(key),
            Repr::Json(wire) => wire.meta.key = Some(key),
        }
    }

    /// This event again, as try number `attempt` for `organ` only: same id, lineage and
    /// payload (shared, not copied).
    pub(crate) fn retry(&self, attempt: u32, organ: &str) -> AnyEnvelope {
        let meta = self.meta().retry(attempt, organ);
        let repr = match &self.repr {
            Repr::Typed(typed) => Repr::Restamped(Box::new((meta, Arc::clone(typed)))),
            Repr::Restamped(restamped) => {
                Repr::Restamped(Box::new((meta, Arc::clone(&restamped.1))))
            }
            Repr::Json(wire) => Repr::Json(Box::new(WireEnvelope {
                meta,
                event_type: wire.event_type.clone(),
                payload: wire.payload.clone(),
            })),
        };
        AnyEnvelope { repr }
    }

    /// The payload as a typed reference, when it is an in-process value of type `E`.
    /// `None` for other types and for payloads that arrived as JSON (use
    /// [`AnyEnvelope::decode`] for those).
    pub fn downcast_ref<E: Event>(&self) -> Option<&E> {
        self.typed_payload()?.as_any().downcast_ref::<E>()
    }

    /// The payload as JSON.
    pub fn payload_json(&self) -> Result<Box<RawValue>, EncodeError> {
        match &self.repr {
            Repr::Typed(typed) => typed.payload().to_json().map_err(EncodeError),
            Repr::Restamped(restamped) => restamped.1.payload().to_json().map_err(EncodeError),
            Repr::Json(wire) => Ok(wire.payload.clone()),
        }
    }

    /// Converts to a typed envelope. The event type must be `E::NAME`; a typed payload is
    /// moved out without copying when this is its only holder, a JSON one is decoded.
    pub fn decode<E: Event>(self) -> Result<Envelope<E>, DecodeError> {
        self.try_decode().map_err(|failed| failed.1)
    }

    /// Like [`AnyEnvelope::decode`], but gives the envelope back on failure so that it
    /// can be dead-lettered intact.
    pub(crate) fn try_decode<E: Event>(self) -> Result<Envelope<E>, Box<(Self, DecodeError)>> {
        if self.event_type() != E::NAME {
            let error = DecodeError::WrongEventType {
                expected: E::NAME,
                found: self.event_type().to_owned(),
            };
            return Err(Box::new((self, error)));
        }
        let payload_error = |source| DecodeError::Payload {
            event_type: E::NAME.to_owned(),
            source,
        };
        // The metadata and the typed envelope holding the payload, or the JSON.
        let (meta, typed) = match self.repr {
            Repr::Typed(typed) => (None, typed),
            Repr::Restamped(restamped) => {
                let (meta, typed) = *restamped;
                (Some(meta), typed)
            }
            Repr::Json(wire) => {
                return match serde_json::from_str(wire.payload.get()) {
                    Ok(payload) => Ok(Envelope::from_parts(wire.meta, payload)),
                    Err(source) => Err(Box::new((
                        AnyEnvelope {
                            repr: Repr::Json(wire),
                        },
                        payload_error(source),
                    ))),
                };
            }
        };
        let rebuild = |meta: Option<Meta>, typed| AnyEnvelope {
            repr: match meta {
                None => Repr::Typed(typed),
                Some(meta) => Repr::Restamped(Box::new((meta, typed))),
            },
        };
        let decoded = if typed.as_any().is::<Envelope<E>>() {
            let meta = meta.unwrap_or_else(|| typed.meta().clone());
            match typed.clone().into_any_arc().downcast::<Envelope<E>>() {
                Ok(arc) => {
                    drop(typed);
                    match Arc::try_unwrap(arc) {
                        Ok(owned) => return Ok(Envelope::from_parts(meta, owned.payload)),
                        // Someone else still holds this payload: copy it through JSON.
                        Err(shared) => match reencode::<E>(&shared.payload) {
                            Ok(payload) => return Ok(Envelope::from_parts(meta, payload)),
                            Err(source) => {
                                return Err(Box::new((
                                    rebuild(Some(meta), shared),
                                    payload_error(source),
                                )))
                            }
                        },
                    }
                }
                Err(_) => {
                    let error =
                        serde::de::Error::custom("payload is not of the type it was checked to be");
                    return Err(Box::new((rebuild(Some(meta), typed), payload_error(error))));
                }
            }
        } else {
            // Another Rust type with the same name (e.g. from another crate version): go
            // through JSON, as if it had crossed a process boundary.
            typed
                .payload()
                .to_json()
                .and_then(|raw| serde_json::from_str(raw.get()))
        };
        match decoded {
            Ok(payload) => {
                let meta = meta.unwrap_or_else(|| typed.meta().clone());
                Ok(Envelope::from_parts(meta, payload))
            }
            Err(source) => Err(Box::new((rebuild(meta, typed), payload_error(source)))),
        }
    }

    /// Decodes the payload as `E` and keeps the typed envelope inside, for the spine: the
    /// delivery then owns the event while organs borrow it through [`held`](Self::held).
    /// Gives the envelope back intact when it does not decode.
    pub(crate) fn hold<E: Event>(self) -> Result<Self, Box<(Self, DecodeError)>> {
        if self.held::<E>().is_some() {
            // The common case in memory: already a whole `Envelope<E>`, nothing to do.
            return Ok(self);
        }
        Ok(AnyEnvelope::from(self.try_decode::<E>()?))
    }

    /// The typed envelope inside, if it is an `Envelope<E>` with this envelope's metadata.
    pub(crate) fn held<E: Event>(&self) -> Option<&Envelope<E>> {
        match &self.repr {
            Repr::Typed(typed) => typed.as_any().downcast_ref::<Envelope<E>>(),
            Repr::Restamped(_) | Repr::Json(_) => None,
        }
    }

    /// Encodes the envelope in the JSON wire format.
    pub fn to_json(&self) -> Result<Vec<u8>, EncodeError> {
        let typed = match &self.repr {
            Repr::Typed(typed) => typed,
            Repr::Restamped(restamped) => &restamped.1,
            Repr::Json(wire) => return wire::encode(&wire.meta, &wire.event_type, &*wire.payload),
        };
        let raw = typed.payload().to_json().map_err(EncodeError)?;
        wire::encode(self.meta(), self.event_type(), &*raw)
    }

    /// Decodes an envelope from the JSON wire format, checking every field. The payload
    /// stays JSON until [`AnyEnvelope::decode`]. Never panics, whatever the bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        WireEnvelope::from_slice(bytes).map(Self::from_wire)
    }

    /// [`AnyEnvelope::from_json`] for JSON text.
    pub fn from_json_str(text: &str) -> Result<Self, DecodeError> {
        WireEnvelope::from_text(text).map(Self::from_wire)
    }

    /// [`AnyEnvelope::from_json`] for a parsed JSON value, as strict as for bytes.
    pub fn from_json_value(value: serde_json::Value) -> Result<Self, DecodeError> {
        WireEnvelope::from_value(value).map(Self::from_wire)
    }
}

impl<E: Event> From<Envelope<E>> for AnyEnvelope {
    fn from(envelope: Envelope<E>) -> Self {
        AnyEnvelope {
            repr: Repr::Typed(Arc::new(envelope)),
        }
    }
}

impl fmt::Debug for AnyEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let payload = match self.payload_json() {
            Ok(raw) => raw.get().to_owned(),
            Err(e) => format!("<unserializable: {e}>"),
        };
        let meta = self.meta();
        let mut out = f.debug_struct("AnyEnvelope");
        out.field("id", &meta.id)
            .field("timestamp", &meta.timestamp)
            .field("event_type", &self.event_type())
            .field("correlation_id", &meta.correlation_id)
            .field("causation_id", &meta.causation_id)
            .field("depth", &meta.depth);
        retry_fields(&mut out, meta);
        out.field("payload", &payload).finish()
    }
}

/// The attempt and the organ, shown only for a retry, and the partition key, shown only
/// when set: an unkeyed first handling's envelope reads as the seven wire fields.
fn retry_fields(out: &mut fmt::DebugStruct<'_, '_>, meta: &Meta) {
    if meta.retry.is_some() {
        out.field("attempt", &meta.attempt())
            .field("retry_organ", &meta.organ());
    }
    if let Some(key) = meta.key {
        out.field("partition_key", &key);
    }
}

fn reencode<E: Event>(shared: &E) -> serde_json::Result<E> {
    serde_json::from_str(&serde_json::to_string(shared)?)
}
