//! The dead-letter stream: what a message there holds, how it is written and read back.
//!
//! Each dead letter is one message on `{subject}.dead` in `{stream}_DLQ`. Its body is the
//! original message's body (the envelope JSON, or whatever bytes a poison message had), so
//! nothing is lost; its headers say why: `Necrostack-Reason-Kind`, `Necrostack-Reason` (a
//! sentence), `Necrostack-Source-Stream`, `Necrostack-Source-Sequence`,
//! `Necrostack-Consumer`, `Necrostack-Deliveries`, `Necrostack-Dead-Lettered-At` (RFC
//! 3339), then where known `Necrostack-Organ`, `Necrostack-Error`, `Necrostack-Attempts`,
//! `Necrostack-Depth`, `Necrostack-Limit`, and the original message's own headers, each
//! under `Necrostack-Original-{name}`.

use async_nats::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};

use super::publish::{header_value, Outgoing};
use crate::backend::{DeadLetter, DeadLetterReason};
use crate::envelope::AnyEnvelope;

/// Prefix of the headers that copy the original message's headers.
pub const ORIGINAL_HEADER_PREFIX: &str = "Necrostack-Original-";

/// Why the backend itself (not the spine) dead-lettered a message.
#[derive(Debug, Clone)]
pub(crate) enum MessageProblem {
    /// Delivered more than `max_deliveries` times without completing.
    TooManyDeliveries { deliveries: u32, limit: u32 },
    /// The body is larger than `max_payload_bytes`.
    Oversize { size: usize, limit: usize },
    /// The body is not an envelope.
    Undecodable { error: String },
    /// An emitted or scheduled event too large to store.
    OversizeEmitted { size: usize, limit: usize },
    /// An emitted or scheduled event whose payload cannot be encoded.
    UnencodableEmitted { error: String },
}

impl MessageProblem {
    fn kind(&self) -> &'static str {
        match self {
            MessageProblem::TooManyDeliveries { .. } => "max_deliveries",
            MessageProblem::Oversize { .. } => "oversize",
            MessageProblem::Undecodable { .. } => "undecodable",
            MessageProblem::OversizeEmitted { .. } => "oversize_emitted",
            MessageProblem::UnencodableEmitted { .. } => "unencodable_emitted",
        }
    }

    fn sentence(&self) -> String {
        match self {
            MessageProblem::TooManyDeliveries { deliveries, limit } => format!(
                "delivered {deliveries} times without completing (max_deliveries is {limit}); probably crashes its workers"
            ),
            MessageProblem::Oversize { size, limit } => {
                format!("message is {size} bytes, over max_payload_bytes ({limit})")
            }
            MessageProblem::Undecodable { error } => format!("undecodable envelope: {error}"),
            MessageProblem::OversizeEmitted { size, limit } => format!(
                "an event emitted while handling this message is {size} bytes, over max_payload_bytes ({limit})"
            ),
            MessageProblem::UnencodableEmitted { error } => {
                format!("an event emitted while handling this message cannot be encoded: {error}")
            }
        }
    }
}

/// Where a dead letter came from.
pub(crate) struct Source<'a> {
    pub(crate) stream: &'a str,
    pub(crate) sequence: u64,
    pub(crate) consumer: &'a str,
    pub(crate) deliveries: u32,
}

fn common(source: &Source<'_>, kind: &str, reason: &str, at: DateTime<Utc>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("Necrostack-Reason-Kind", kind);
    headers.insert("Necrostack-Reason", header_value(reason).as_str());
    headers.insert("Necrostack-Source-Stream", source.stream);
    headers.insert(
        "Necrostack-Source-Sequence",
        source.sequence.to_string().as_str(),
    );
    headers.insert("Necrostack-Consumer", source.consumer);
    headers.insert(
        "Necrostack-Deliveries",
        source.deliveries.to_string().as_str(),
    );
    headers.insert(
        "Necrostack-Dead-Lettered-At",
        at.to_rfc3339_opts(SecondsFormat::Millis, true).as_str(),
    );
    headers
}

/// A message the backend could not hand to the spine (or an output it could not store).
pub(crate) fn for_message(
    subject: String,
    msg_id: String,
    source: &Source<'_>,
    problem: &MessageProblem,
    original_headers: Option<&HeaderMap>,
    body: Bytes,
) -> Outgoing {
    let mut headers = common(source, problem.kind(), &problem.sentence(), Utc::now());
    if let MessageProblem::TooManyDeliveries { deliveries, .. } = problem {
        headers.insert("Necrostack-Attempts", deliveries.to_string().as_str());
    }
    if let Some(original) = original_headers {
        for (name, values) in original.iter() {
            let copied = format!("{ORIGINAL_HEADER_PREFIX}{name}");
            for value in values {
                headers.append(copied.as_str(), header_value(value.as_str()).as_str());
            }
        }
    }
    Outgoing {
        subject,
        msg_id,
        headers,
        payload: body,
    }
}

/// A dead letter the spine asked for in a completion.
pub(crate) fn for_spine(
    subject: String,
    msg_id: String,
    source: &Source<'_>,
    letter: &DeadLetter,
) -> Outgoing {
    let kind = match &letter.reason {
        DeadLetterReason::HandlerFailed { .. } => "handler_failed",
        DeadLetterReason::Undecodable { .. } => "undecodable",
        DeadLetterReason::ProbableLoop { .. } => "probable_loop",
    };
    let mut headers = common(source, kind, &letter.reason.to_string(), letter.at);
    match &letter.reason {
        DeadLetterReason::HandlerFailed {
            organ,
            error,
            attempts,
        } => {
            headers.insert("Necrostack-Organ", header_value(organ).as_str());
            headers.insert("Necrostack-Error", header_value(error).as_str());
            headers.insert("Necrostack-Attempts", attempts.to_string().as_str());
        }
        DeadLetterReason::Undecodable { error } => {
            headers.insert("Necrostack-Error", header_value(error).as_str());
        }
        DeadLetterReason::ProbableLoop { depth, limit } => {
            headers.insert("Necrostack-Depth", depth.to_string().as_str());
            headers.insert("Necrostack-Limit", limit.to_string().as_str());
        }
    }
    let payload = match letter.envelope.to_json() {
        Ok(json) => Bytes::from(json),
        Err(error) => {
            headers.insert(
                "Necrostack-Envelope-Error",
                header_value(&error.to_string()).as_str(),
            );
            Bytes::new()
        }
    };
    Outgoing {
        subject,
        msg_id,
        headers,
        payload,
    }
}

/// One message of the dead-letter stream, read back with
/// [`NatsBackend::dead_letters`](super::NatsBackend::dead_letters).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsDeadLetter {
    /// Its sequence in the dead-letter stream.
    pub sequence: u64,
    /// A short machine-readable reason: `handler_failed`, `undecodable`,
    /// `probable_loop`, `max_deliveries`, `oversize`, `oversize_emitted`,
    /// `unencodable_emitted`.
    pub reason_kind: String,
    /// The reason as a sentence.
    pub reason: String,
    /// The sequence of the original message in the events stream.
    pub source_sequence: Option<u64>,
    /// The organ that failed, when an organ failed.
    pub organ: Option<String>,
    /// How many times the organ was tried, or the message delivered, when known.
    pub attempts: Option<u32>,
    /// How many times the original message had been delivered.
    pub deliveries: Option<u32>,
    /// The original body: the envelope JSON, or the poison bytes.
    pub body: Vec<u8>,
    /// Every header, as stored.
    pub headers: Vec<(String, String)>,
}

impl NatsDeadLetter {
    pub(crate) fn from_message(sequence: u64, headers: &HeaderMap, body: &[u8]) -> Self {
        let all: Vec<(String, String)> = headers
            .iter()
            .flat_map(|(name, values)| {
                values
                    .iter()
                    .map(move |v| (name.to_string(), v.as_str().to_owned()))
            })
            .collect();
        let get = |name: &str| {
            all.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        NatsDeadLetter {
            sequence,
            reason_kind: get("Necrostack-Reason-Kind").unwrap_or_default(),
            reason: get("Necrostack-Reason").unwrap_or_default(),
            source_sequence: get("Necrostack-Source-Sequence").and_then(|s| s.parse().ok()),
            organ: get("Necrostack-Organ"),
            attempts: get("Necrostack-Attempts").and_then(|s| s.parse().ok()),
            deliveries: get("Necrostack-Deliveries").and_then(|s| s.parse().ok()),
            body: body.to_vec(),
            headers: all,
        }
    }

    /// The event, decoded from the body, when it is an envelope.
    pub fn decode_envelope(&self) -> Result<AnyEnvelope, crate::DecodeError> {
        AnyEnvelope::from_json(&self.body)
    }
}
