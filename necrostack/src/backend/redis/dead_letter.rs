//! The dead-letter stream: what an entry there holds, how it is written and read back.
//!
//! Each dead letter is one entry of `{stream}:dlq` with text fields `reason_kind`,
//! `reason` (a sentence), `source_stream`, `source_id` (the original entry id), `group`,
//! `consumer`, `deliveries` (of the original entry), `dead_lettered_at` (RFC 3339), then,
//! where known, `organ`, `error`, `attempts`, `depth`, `limit`, the event as `envelope`
//! (its JSON), and for entries that never decoded, the original fields, each under
//! `original:{field}`. Nothing of the original entry is dropped.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::backend::{DeadLetter, DeadLetterReason};
use crate::envelope::AnyEnvelope;

/// Prefix of the fields that copy the original entry.
pub const ORIGINAL_FIELD_PREFIX: &str = "original:";

/// Why the backend itself (not the spine) dead-lettered an entry.
#[derive(Debug, Clone)]
pub(crate) enum EntryProblem {
    /// Delivered more than `max_deliveries` times without completing.
    TooManyDeliveries { deliveries: u32, limit: u32 },
    /// The entry does not have exactly the one field `envelope`.
    WrongFields { detail: String },
    /// The entry is larger than `max_payload_bytes`.
    Oversize { size: usize, limit: usize },
    /// The `envelope` field does not decode.
    Undecodable { error: String },
}

impl EntryProblem {
    fn kind(&self) -> &'static str {
        match self {
            EntryProblem::TooManyDeliveries { .. } => "max_deliveries",
            EntryProblem::WrongFields { .. } => "wrong_fields",
            EntryProblem::Oversize { .. } => "oversize",
            EntryProblem::Undecodable { .. } => "undecodable",
        }
    }

    fn sentence(&self) -> String {
        match self {
            EntryProblem::TooManyDeliveries { deliveries, limit } => format!(
                "delivered {deliveries} times without completing (max_deliveries is {limit}); probably crashes its workers"
            ),
            EntryProblem::WrongFields { detail } => format!("malformed stream entry: {detail}"),
            EntryProblem::Oversize { size, limit } => {
                format!("entry is {size} bytes, over max_payload_bytes ({limit})")
            }
            EntryProblem::Undecodable { error } => format!("undecodable envelope: {error}"),
        }
    }
}

/// Where a dead letter came from, for its fields.
pub(crate) struct Source<'a> {
    pub(crate) stream: &'a str,
    pub(crate) entry_id: &'a str,
    pub(crate) group: &'a str,
    pub(crate) consumer: &'a str,
    pub(crate) deliveries: u32,
}

pub(crate) type Fields = Vec<(String, Vec<u8>)>;

fn common(source: &Source<'_>, kind: &str, reason: String, at: DateTime<Utc>) -> Fields {
    vec![
        ("reason_kind".into(), kind.as_bytes().to_vec()),
        ("reason".into(), reason.into_bytes()),
        ("source_stream".into(), source.stream.as_bytes().to_vec()),
        ("source_id".into(), source.entry_id.as_bytes().to_vec()),
        ("group".into(), source.group.as_bytes().to_vec()),
        ("consumer".into(), source.consumer.as_bytes().to_vec()),
        (
            "deliveries".into(),
            source.deliveries.to_string().into_bytes(),
        ),
        (
            "dead_lettered_at".into(),
            at.to_rfc3339_opts(SecondsFormat::Millis, true).into_bytes(),
        ),
    ]
}

/// Fields for an entry the backend could not hand to the spine.
pub(crate) fn for_entry(
    source: &Source<'_>,
    problem: &EntryProblem,
    original: &[(Vec<u8>, Vec<u8>)],
) -> Fields {
    let mut fields = common(source, problem.kind(), problem.sentence(), Utc::now());
    if let EntryProblem::TooManyDeliveries { deliveries, .. } = problem {
        fields.push(("attempts".into(), deliveries.to_string().into_bytes()));
    }
    for (name, value) in original {
        let mut key = ORIGINAL_FIELD_PREFIX.to_owned();
        key.push_str(&String::from_utf8_lossy(name));
        fields.push((key, value.clone()));
    }
    fields
}

/// Fields for a dead letter the spine asked for in a completion.
pub(crate) fn for_spine(source: &Source<'_>, letter: &DeadLetter) -> Fields {
    let kind = match &letter.reason {
        DeadLetterReason::HandlerFailed { .. } => "handler_failed",
        DeadLetterReason::Undecodable { .. } => "undecodable",
        DeadLetterReason::ProbableLoop { .. } => "probable_loop",
    };
    let mut fields = common(source, kind, letter.reason.to_string(), letter.at);
    match &letter.reason {
        DeadLetterReason::HandlerFailed {
            organ,
            error,
            attempts,
        } => {
            fields.push(("organ".into(), organ.as_bytes().to_vec()));
            fields.push(("error".into(), error.as_bytes().to_vec()));
            fields.push(("attempts".into(), attempts.to_string().into_bytes()));
        }
        DeadLetterReason::Undecodable { error } => {
            fields.push(("error".into(), error.as_bytes().to_vec()));
        }
        DeadLetterReason::ProbableLoop { depth, limit } => {
            fields.push(("depth".into(), depth.to_string().into_bytes()));
            fields.push(("limit".into(), limit.to_string().into_bytes()));
        }
    }
    push_envelope(&mut fields, &letter.envelope);
    fields
}

/// Fields for an emitted event too large to store in the stream.
pub(crate) fn for_oversize_emitted(
    source: &Source<'_>,
    envelope_json: Vec<u8>,
    limit: usize,
) -> Fields {
    let problem = EntryProblem::Oversize {
        size: envelope_json.len(),
        limit,
    };
    let reason = format!(
        "an event emitted while handling entry {} is {}",
        source.entry_id,
        problem.sentence()
    );
    let mut fields = common(source, "oversize_emitted", reason, Utc::now());
    fields.push(("envelope".into(), envelope_json));
    fields
}

/// Fields for an emitted (or scheduled) event whose payload cannot be encoded as JSON.
pub(crate) fn for_unencodable_emitted(
    source: &Source<'_>,
    envelope: &AnyEnvelope,
    error: &crate::wire::EncodeError,
) -> Fields {
    let reason = format!(
        "an event of type {} emitted while handling entry {} cannot be stored: {error}",
        envelope.event_type(),
        source.entry_id
    );
    let mut fields = common(source, "unencodable_emitted", reason, Utc::now());
    fields.push((
        "event_type".into(),
        envelope.event_type().as_bytes().to_vec(),
    ));
    fields.push(("event_id".into(), envelope.id().to_string().into_bytes()));
    fields
}

fn push_envelope(fields: &mut Fields, envelope: &AnyEnvelope) {
    match envelope.to_json() {
        Ok(json) => fields.push(("envelope".into(), json)),
        Err(error) => fields.push(("envelope_error".into(), error.to_string().into_bytes())),
    }
}

/// One entry of the dead-letter stream, read back with
/// [`RedisBackend::dead_letters`](super::RedisBackend::dead_letters).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisDeadLetter {
    /// The id of this entry in the dead-letter stream.
    pub id: String,
    /// A short machine-readable reason: `handler_failed`, `undecodable`,
    /// `probable_loop`, `max_deliveries`, `wrong_fields`, `oversize`, `oversize_emitted`,
    /// `unencodable_emitted`.
    pub reason_kind: String,
    /// The reason as a sentence.
    pub reason: String,
    /// The id of the original entry in the event stream.
    pub source_id: Option<String>,
    /// The organ that failed, when an organ failed.
    pub organ: Option<String>,
    /// How many times the organ was tried, or the entry delivered, when known.
    pub attempts: Option<u32>,
    /// How many times the original stream entry had been delivered (its delivery
    /// count in the consumer group) when it was dead-lettered.
    pub deliveries: Option<u32>,
    /// The event as JSON, when the entry held one.
    pub envelope: Option<Vec<u8>>,
    /// The original entry's fields, for entries that did not decode.
    pub original: Vec<(String, Vec<u8>)>,
    /// Every field of the dead-letter entry, as stored.
    pub fields: Vec<(String, Vec<u8>)>,
}

impl RedisDeadLetter {
    pub(crate) fn from_entry(id: String, raw: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        let fields: Vec<(String, Vec<u8>)> = raw
            .into_iter()
            .map(|(k, v)| (String::from_utf8_lossy(&k).into_owned(), v))
            .collect();
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        RedisDeadLetter {
            reason_kind: get("reason_kind").unwrap_or_default(),
            reason: get("reason").unwrap_or_default(),
            source_id: get("source_id"),
            organ: get("organ"),
            attempts: get("attempts").and_then(|a| a.parse().ok()),
            deliveries: get("deliveries").and_then(|a| a.parse().ok()),
            envelope: fields
                .iter()
                .find(|(k, _)| k == "envelope")
                .map(|(_, v)| v.clone()),
            original: fields
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(ORIGINAL_FIELD_PREFIX)
                        .map(|name| (name.to_owned(), v.clone()))
                })
                .collect(),
            id,
            fields,
        }
    }

    /// The event, decoded from [`envelope`](Self::envelope), when there is one.
    pub fn decode_envelope(&self) -> Option<Result<AnyEnvelope, crate::DecodeError>> {
        self.envelope.as_deref().map(AnyEnvelope::from_json)
    }
}
