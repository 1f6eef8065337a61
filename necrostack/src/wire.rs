//! The JSON wire format:
//! `{"id", "timestamp", "event_type", "payload", "correlation_id", "causation_id", "depth"}`,
//! plus `"attempt"` and `"organ"` on a scheduled retry and `"key"` (the partition key, a
//! JSON number that is a `u64`) on a keyed event, each absent otherwise, so that an
//! unkeyed first handling is exactly the seven documented fields.
//!
//! Decoding is strict: every field must be present with the right type, unknown
//! top-level fields are rejected, ids are hyphenated UUID strings (any version, so other
//! producers interoperate), timestamps are RFC 3339. Errors say which field is wrong.
//!
//! One definition serves every path: [`Envelope`](crate::Envelope)'s serde impls, its
//! `to_json`/`from_json` conveniences and the erased [`AnyEnvelope`](crate::AnyEnvelope)
//! that backends decode, so they cannot drift apart.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::event::{validate_name, Event};
use crate::identity::{Meta, Retry};

/// Why bytes could not be decoded into an envelope.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON, not an object, a field missing, unknown or of the wrong type.
    #[error("malformed envelope: {0}")]
    Malformed(#[source] serde_json::Error),
    /// The `event_type` field is not a valid event name.
    #[error("malformed envelope: invalid event_type {found:?}: {reason}")]
    InvalidEventType {
        /// The name found.
        found: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The envelope holds another event type than the one asked for.
    #[error("wrong event type: expected {expected:?}, found {found:?}")]
    WrongEventType {
        /// The name of the type asked for.
        expected: &'static str,
        /// The name in the envelope.
        found: String,
    },
    /// The envelope is well formed but its payload does not decode as the event type.
    #[error("payload of a {event_type:?} event does not decode: {source}")]
    Payload {
        /// The event type name.
        event_type: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// An event payload could not be serialized (for example a map with non-string keys).
#[derive(Debug, thiserror::Error)]
#[error("event payload cannot be encoded as JSON: {0}")]
pub struct EncodeError(#[source] pub(crate) serde_json::Error);

/// The seven fields as written. Field order is the wire's order.
#[derive(Serialize)]
pub(crate) struct WireOut<'a, P: ?Sized + Serialize> {
    id: Hyphenated,
    timestamp: String,
    event_type: &'a str,
    payload: &'a P,
    correlation_id: Hyphenated,
    causation_id: Option<Hyphenated>,
    depth: u32,
    // Written only for retries, so a first handling's entry is exactly the documented
    // seven fields.
    #[serde(skip_serializing_if = "is_first_attempt")]
    attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    organ: Option<&'a str>,
    // Written only when set: an unkeyed event's bytes are those of before keys existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<u64>,
}

fn is_first_attempt(attempt: &u32) -> bool {
    *attempt == 1
}

fn first_attempt() -> u32 {
    1
}

impl<'a, P: ?Sized + Serialize> WireOut<'a, P> {
    pub(crate) fn new(meta: &'a Meta, event_type: &'a str, payload: &'a P) -> Self {
        WireOut {
            id: Hyphenated(meta.id),
            timestamp: meta.timestamp.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            event_type,
            payload,
            correlation_id: Hyphenated(meta.correlation_id),
            causation_id: meta.causation_id.map(Hyphenated),
            depth: meta.depth,
            attempt: meta.attempt(),
            organ: meta.organ(),
            key: meta.key,
        }
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct Hyphenated(#[serde(serialize_with = "ser_uuid")] Uuid);

fn ser_uuid<S: serde::Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
}

pub(crate) fn encode<P: ?Sized + Serialize>(
    meta: &Meta,
    event_type: &str,
    payload: &P,
) -> Result<Vec<u8>, EncodeError> {
    serde_json::to_vec(&WireOut::new(meta, event_type, payload)).map_err(EncodeError)
}

/// The seven fields as read, with the payload as `P`: still JSON (`Box<RawValue>`) for an
/// erased envelope, the event itself for a typed one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIn<P> {
    #[serde(deserialize_with = "de_id")]
    id: Uuid,
    #[serde(deserialize_with = "de_timestamp")]
    timestamp: DateTime<Utc>,
    event_type: String,
    payload: P,
    #[serde(deserialize_with = "de_correlation_id")]
    correlation_id: Uuid,
    // `deserialize_with` also makes the field required: `null` is allowed, absence is not.
    #[serde(deserialize_with = "de_causation_id")]
    causation_id: Option<Uuid>,
    depth: u32,
    // Optional: absent means a first handling (1) for every organ.
    #[serde(default = "first_attempt", deserialize_with = "de_attempt")]
    attempt: u32,
    #[serde(default)]
    organ: Option<String>,
    // Optional: absent means unkeyed. Present, it must be a `u64` (not `null`, not a
    // float, not a string), read exactly (up to `u64::MAX`).
    #[serde(default, deserialize_with = "de_key")]
    key: Option<u64>,
}

impl<P> WireIn<P> {
    /// Checks the event name and splits off the metadata.
    fn checked(self) -> Result<(Meta, String, P), DecodeError> {
        if let Err(reason) = validate_name(&self.event_type) {
            return Err(DecodeError::InvalidEventType {
                found: self.event_type,
                reason,
            });
        }
        let meta = Meta {
            id: self.id,
            timestamp: self.timestamp,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            depth: self.depth,
            retry: (self.attempt != 1 || self.organ.is_some()).then(|| {
                Arc::new(Retry {
                    attempt: self.attempt,
                    organ: self.organ,
                })
            }),
            key: self.key,
        };
        Ok((meta, self.event_type, self.payload))
    }
}

/// An envelope read from the wire whose payload is still JSON.
#[derive(Clone)]
pub(crate) struct WireEnvelope {
    pub(crate) meta: Meta,
    pub(crate) event_type: String,
    pub(crate) payload: Box<RawValue>,
}

impl WireEnvelope {
    fn checked(read: serde_json::Result<WireIn<Box<RawValue>>>) -> Result<Self, DecodeError> {
        let (meta, event_type, payload) = read.map_err(DecodeError::Malformed)?.checked()?;
        Ok(WireEnvelope {
            meta,
            event_type,
            payload,
        })
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::checked(serde_json::from_slice(bytes))
    }

    pub(crate) fn from_text(text: &str) -> Result<Self, DecodeError> {
        Self::checked(serde_json::from_str(text))
    }

    pub(crate) fn from_value(value: serde_json::Value) -> Result<Self, DecodeError> {
        Self::checked(serde_json::from_value(value))
    }
}

/// Reads a typed envelope of event `E` from any serde format, as strictly as
/// [`WireEnvelope`] reads JSON, and checks that the event type is `E::NAME`.
pub(crate) fn deserialize_typed<'de, D, E>(deserializer: D) -> Result<(Meta, E), D::Error>
where
    D: Deserializer<'de>,
    E: Event,
{
    let (meta, event_type, payload) = WireIn::<E>::deserialize(deserializer)?
        .checked()
        .map_err(de::Error::custom)?;
    if event_type != E::NAME {
        return Err(de::Error::custom(DecodeError::WrongEventType {
            expected: E::NAME,
            found: event_type,
        }));
    }
    Ok((meta, payload))
}

fn parse_uuid<E: de::Error>(field: &str, text: &str) -> Result<Uuid, E> {
    // Only the hyphenated form (8-4-4-4-12) is the wire format; `Uuid::try_parse` alone
    // would also take the simple, braced and URN forms.
    if text.len() != 36 {
        return Err(E::custom(format_args!(
            "{field}: expected a hyphenated UUID string, found {text:?}"
        )));
    }
    Uuid::try_parse(text)
        .map_err(|e| E::custom(format_args!("{field}: invalid UUID {text:?}: {e}")))
}

fn de_attempt<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    match u32::deserialize(d)? {
        0 => Err(de::Error::custom("attempt: must be at least 1, found 0")),
        attempt => Ok(attempt),
    }
}

fn de_key<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    u64::deserialize(d)
        .map(Some)
        .map_err(|e| de::Error::custom(format_args!("key: {e}")))
}

fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    parse_uuid("id", &String::deserialize(d)?)
}

fn de_correlation_id<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    parse_uuid("correlation_id", &String::deserialize(d)?)
}

fn de_causation_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|text| parse_uuid("causation_id", &text))
        .transpose()
}

fn de_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| de::Error::custom(format_args!("timestamp: not RFC 3339 {text:?}: {e}")))
}
