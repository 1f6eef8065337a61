//! Property tests of envelopes and the JSON wire format (issue 2, properties 1–3).

#[path = "common/probes.rs"]
mod probes;

use std::collections::HashSet;
use std::time::Duration;

use necrostack::{AnyEnvelope, Backend, DecodeError, Envelope, Event, Spine};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "RICH_PAYLOAD")]
struct Rich {
    text: String,
    count: i64,
    ratio: f64,
    bytes: Vec<u8>,
    maybe: Option<String>,
    kind: Kind,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Kind {
    Unit,
    Tuple(u16, bool),
    Named { inner: Vec<i32> },
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "OTHER")]
struct Other {
    text: String,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Unit),
        (any::<u16>(), any::<bool>()).prop_map(|(a, b)| Kind::Tuple(a, b)),
        prop::collection::vec(any::<i32>(), 0..5).prop_map(|inner| Kind::Named { inner }),
    ]
}

fn rich() -> impl Strategy<Value = Rich> {
    (
        any::<String>(),
        any::<i64>(),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()),
        prop::collection::vec(any::<u8>(), 0..32),
        any::<Option<String>>(),
        kind(),
    )
        .prop_map(|(text, count, ratio, bytes, maybe, kind)| Rich {
            text,
            count,
            ratio,
            bytes,
            maybe,
            kind,
        })
}

fn uuid_text() -> impl Strategy<Value = String> {
    any::<u128>().prop_map(|n| necrostack::Uuid::from_u128(n).hyphenated().to_string())
}

/// A valid wire envelope with arbitrary metadata (any UUID version, any offset).
fn wire_envelope() -> impl Strategy<Value = Value> {
    (
        uuid_text(),
        0i64..4_102_444_800, // up to 2100-01-01
        0u32..1_000_000_000,
        -12i32..=12,
        uuid_text(),
        prop::option::of(uuid_text()),
        any::<u32>(),
        rich(),
    )
        .prop_map(|(id, secs, nanos, offset_h, corr, cause, depth, payload)| {
            let offset = chrono::FixedOffset::east_opt(offset_h * 3600).unwrap();
            let ts = chrono::DateTime::from_timestamp(secs, nanos)
                .unwrap()
                .with_timezone(&offset)
                .to_rfc3339();
            json!({
                "id": id,
                "timestamp": ts,
                "event_type": "RICH_PAYLOAD",
                "payload": payload,
                "correlation_id": corr,
                "causation_id": cause,
                "depth": depth,
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Property 1: the JSON round trip keeps every field, for generated payloads.
    #[test]
    fn json_round_trip_keeps_every_field(payload in rich()) {
        let envelope = Envelope::new(payload.clone());
        let bytes = envelope.to_json().unwrap();
        let back = Envelope::<Rich>::from_json(&bytes).unwrap();
        prop_assert_eq!(back.payload(), &payload);
        prop_assert_eq!(back.id(), envelope.id());
        prop_assert_eq!(back.timestamp(), envelope.timestamp());
        prop_assert_eq!(back.correlation_id(), envelope.correlation_id());
        prop_assert_eq!(back.causation_id(), envelope.causation_id());
        prop_assert_eq!(back.depth(), envelope.depth());
        prop_assert_eq!(back.event_type(), "RICH_PAYLOAD");
        prop_assert_eq!(&back, &envelope);
    }

    /// Property 1 for arbitrary metadata from other producers: decode, encode, decode
    /// again gives the same envelope, and the wire has exactly the seven fields.
    #[test]
    fn foreign_envelopes_round_trip(wire in wire_envelope()) {
        let bytes = serde_json::to_vec(&wire).unwrap();
        let first = Envelope::<Rich>::from_json(&bytes).unwrap();
        let again = Envelope::<Rich>::from_json(&first.to_json().unwrap()).unwrap();
        prop_assert_eq!(&first, &again);
        prop_assert_eq!(first.id().hyphenated().to_string(), wire["id"].as_str().unwrap());
        prop_assert_eq!(first.depth(), wire["depth"].as_u64().unwrap() as u32);
        let encoded: Value = serde_json::from_slice(&first.to_json().unwrap()).unwrap();
        let mut keys: Vec<_> = encoded.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        prop_assert_eq!(keys, ["causation_id", "correlation_id", "depth", "event_type", "id", "payload", "timestamp"]);
        prop_assert!(encoded["timestamp"].as_str().unwrap().ends_with('Z'), "timestamps are written in UTC");
    }

    /// Property 2: ids are unique and timestamps UTC and non-decreasing in emit order.
    #[test]
    fn ids_unique_and_timestamps_non_decreasing_in_emit_order(n in 1usize..400) {
        let rt = probes::runtime();
        let spine = Spine::builder().build().unwrap();
        let pulled = rt.block_on(async {
            for i in 0..n {
                spine.emit(Other { text: i.to_string() }).await.unwrap();
            }
            spine.backend().pull(n, Duration::ZERO).await.unwrap()
        });
        prop_assert_eq!(pulled.len(), n);
        let mut ids = HashSet::new();
        let mut previous = None;
        for (i, delivery) in pulled.iter().enumerate() {
            let envelope = &delivery.envelope;
            prop_assert!(ids.insert(envelope.id()), "duplicate id");
            prop_assert_eq!(envelope.id().get_version_num(), 7);
            prop_assert_eq!(envelope.downcast_ref::<Other>().unwrap().text.clone(), i.to_string());
            if let Some(previous) = previous {
                prop_assert!(envelope.timestamp() >= previous, "timestamps went backwards");
            }
            previous = Some(envelope.timestamp());
        }
    }

    /// Property 3: generated corruptions are rejected with an error, never a panic.
    #[test]
    fn corrupted_envelopes_are_rejected(wire in wire_envelope(), corruption in corruption()) {
        let bytes = corruption.apply(&wire);
        let typed = Envelope::<Rich>::from_json(&bytes);
        prop_assert!(typed.is_err(), "{:?} was accepted: {}", corruption, String::from_utf8_lossy(&bytes));
        let message = typed.unwrap_err().to_string();
        prop_assert!(!message.is_empty());
    }

    /// Property 3: arbitrary bytes never panic the decoder and are (practically always)
    /// rejected.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        prop_assert!(AnyEnvelope::from_json(&bytes).is_err());
        prop_assert!(Envelope::<Rich>::from_json(&bytes).is_err());
    }
}

#[derive(Debug, Clone)]
enum Corruption {
    Remove(&'static str),
    Unknown(String),
    WrongType(&'static str, Value),
    BadId(&'static str, String),
    BadTimestamp(String),
    BadEventType(String),
    WrongEventType,
    Truncate(usize),
}

const FIELDS: [&str; 7] = [
    "id",
    "timestamp",
    "event_type",
    "payload",
    "correlation_id",
    "causation_id",
    "depth",
];

fn corruption() -> impl Strategy<Value = Corruption> {
    let field = prop::sample::select(FIELDS.to_vec());
    let id_field = prop::sample::select(vec!["id", "correlation_id", "causation_id"]);
    let wrong_value = prop_oneof![
        Just(json!(true)),
        Just(json!([1, 2])),
        Just(json!({"x": 1})),
        Just(json!(-1)),
        Just(json!(1.5)),
    ];
    prop_oneof![
        field.clone().prop_map(Corruption::Remove),
        "[a-z_]{1,12}"
            .prop_filter("not a real field", |k| !FIELDS.contains(&k.as_str()))
            .prop_map(Corruption::Unknown),
        (field, wrong_value).prop_map(|(f, v)| Corruption::WrongType(f, v)),
        (
            id_field,
            prop_oneof![
                "[0-9a-f]{32}".prop_map(String::from), // simple form: not the wire format
                "[0-9a-z-]{0,40}".prop_map(String::from),
                Just("{67e55044-10b1-426f-9247-bb680e5fe0c8}".to_owned()),
            ]
        )
            .prop_map(|(f, v)| Corruption::BadId(f, v)),
        prop_oneof![
            Just("2024-13-01T00:00:00Z".to_owned()),
            Just("2024-01-01 00:00:00".to_owned()),
            Just("yesterday".to_owned()),
            Just(String::new()),
            "[0-9:T-]{0,25}".prop_map(String::from),
        ]
        .prop_map(Corruption::BadTimestamp),
        prop_oneof![
            Just(String::new()),
            Just("TWO WORDS".to_owned()),
            Just("tab\there".to_owned())
        ]
        .prop_map(Corruption::BadEventType),
        Just(Corruption::WrongEventType),
        any::<usize>().prop_map(Corruption::Truncate),
    ]
}

impl Corruption {
    fn apply(&self, wire: &Value) -> Vec<u8> {
        let mut wire = wire.clone();
        let object = wire.as_object_mut().unwrap();
        match self {
            Corruption::Remove(field) => {
                object.remove(*field);
            }
            Corruption::Unknown(key) => {
                object.insert(key.clone(), json!("surprise"));
            }
            Corruption::WrongType(field, value) => {
                // A number is valid for depth only when it is a non-negative integer.
                let value = match (*field, value) {
                    ("depth", Value::Number(_)) => json!("seven"),
                    ("causation_id", Value::Null) => json!(7),
                    _ => value.clone(),
                };
                object.insert((*field).to_owned(), value);
            }
            Corruption::BadId(field, text) => {
                let text = if necrostack::Uuid::try_parse(text).is_ok() && text.len() == 36 {
                    format!("{text}x")
                } else {
                    text.clone()
                };
                object.insert((*field).to_owned(), json!(text));
            }
            Corruption::BadTimestamp(text) => {
                let text = if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
                    format!("{text}?")
                } else {
                    text.clone()
                };
                object.insert("timestamp".to_owned(), json!(text));
            }
            Corruption::BadEventType(name) => {
                object.insert("event_type".to_owned(), json!(name));
            }
            Corruption::WrongEventType => {
                object.insert("event_type".to_owned(), json!("OTHER"));
            }
            Corruption::Truncate(at) => {
                let bytes = serde_json::to_vec(&wire).unwrap();
                return bytes[..at % bytes.len()].to_vec();
            }
        }
        serde_json::to_vec(&wire).unwrap()
    }
}

#[test]
fn decode_errors_name_the_problem() {
    let good = Envelope::new(Other { text: "x".into() }).to_json().unwrap();
    let mut wire: Value = serde_json::from_slice(&good).unwrap();

    let err = Envelope::<Rich>::from_json(&good).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::WrongEventType {
                expected: "RICH_PAYLOAD",
                ..
            }
        ),
        "{err}"
    );

    wire["id"] = json!("not-a-uuid");
    let err = Envelope::<Other>::from_json(&serde_json::to_vec(&wire).unwrap()).unwrap_err();
    assert!(err.to_string().contains("id: "), "{err}");

    wire["id"] = json!(necrostack::Uuid::now_v7().to_string());
    wire.as_object_mut().unwrap().remove("causation_id");
    let err = Envelope::<Other>::from_json(&serde_json::to_vec(&wire).unwrap()).unwrap_err();
    assert!(err.to_string().contains("causation_id"), "{err}");

    wire["causation_id"] = Value::Null;
    wire["extra"] = json!(1);
    let err = Envelope::<Other>::from_json(&serde_json::to_vec(&wire).unwrap()).unwrap_err();
    assert!(err.to_string().contains("unknown field `extra`"), "{err}");

    wire.as_object_mut().unwrap().remove("extra");
    wire["payload"] = json!({"text": 5});
    let err = Envelope::<Other>::from_json(&serde_json::to_vec(&wire).unwrap()).unwrap_err();
    assert!(matches!(err, DecodeError::Payload { .. }), "{err}");
}

#[test]
fn other_uuid_versions_are_accepted_on_decode() {
    let mut wire: Value = serde_json::from_slice(
        &Envelope::new(Other { text: "v4".into() })
            .to_json()
            .unwrap(),
    )
    .unwrap();
    let v4 = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    wire["id"] = json!(v4);
    let envelope = Envelope::<Other>::from_json(&serde_json::to_vec(&wire).unwrap()).unwrap();
    assert_eq!(envelope.id().to_string(), v4);
    assert_eq!(envelope.id().get_version_num(), 4);
}

// Envelope's serde impls (issue 14): the same format and the same strictness as
// `to_json`/`from_json`, through any serde entry point.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// `serde_json` writes exactly the wire bytes, and every reading entry point gives
    /// the envelope back.
    #[test]
    fn serde_writes_the_wire_format(payload in rich()) {
        let envelope = Envelope::new(payload);
        let wire = String::from_utf8(envelope.to_json().unwrap()).unwrap();
        prop_assert_eq!(&serde_json::to_string(&envelope).unwrap(), &wire);
        prop_assert_eq!(serde_json::to_vec(&envelope).unwrap(), wire.as_bytes());
        prop_assert_eq!(&serde_json::from_str::<Envelope<Rich>>(&wire).unwrap(), &envelope);
        prop_assert_eq!(&Envelope::<Rich>::from_json_str(&wire).unwrap(), &envelope);
        let value: Value = serde_json::from_str(&wire).unwrap();
        prop_assert_eq!(&serde_json::to_value(&envelope).unwrap(), &value);
        prop_assert_eq!(&Envelope::<Rich>::from_json_value(value.clone()).unwrap(), &envelope);
        prop_assert_eq!(&serde_json::from_value::<Envelope<Rich>>(value).unwrap(), &envelope);
    }

    /// Envelopes from other producers (any UUID version, any offset) read the same
    /// through serde as through `from_json`.
    #[test]
    fn serde_reads_foreign_envelopes_like_from_json(wire in wire_envelope()) {
        let bytes = serde_json::to_vec(&wire).unwrap();
        let expected = Envelope::<Rich>::from_json(&bytes).unwrap();
        prop_assert_eq!(&serde_json::from_slice::<Envelope<Rich>>(&bytes).unwrap(), &expected);
        prop_assert_eq!(&serde_json::from_value::<Envelope<Rich>>(wire.clone()).unwrap(), &expected);
        prop_assert_eq!(&Envelope::<Rich>::from_json_value(wire.clone()).unwrap(), &expected);
        let erased = AnyEnvelope::from_json_value(wire).unwrap();
        prop_assert_eq!(erased.id(), expected.id());
    }

    /// Every corruption `from_json` rejects is rejected through serde and through the
    /// text and value entry points too.
    #[test]
    fn serde_rejects_what_from_json_rejects(wire in wire_envelope(), corruption in corruption()) {
        let bytes = corruption.apply(&wire);
        let shown = String::from_utf8_lossy(&bytes).into_owned();
        prop_assert!(serde_json::from_slice::<Envelope<Rich>>(&bytes).is_err(), "{:?} accepted: {}", corruption, shown);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            prop_assert!(Envelope::<Rich>::from_json_str(text).is_err(), "{:?} accepted: {}", corruption, shown);
        }
        if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
            prop_assert!(serde_json::from_value::<Envelope<Rich>>(value.clone()).is_err(), "{:?} accepted: {}", corruption, shown);
            prop_assert!(Envelope::<Rich>::from_json_value(value).is_err(), "{:?} accepted: {}", corruption, shown);
        }
    }
}

/// A user's own serde type holding envelopes.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Mailbag {
    note: String,
    first: Envelope<Other>,
    rest: Vec<Envelope<Other>>,
}

#[test]
fn an_envelope_round_trips_inside_a_user_struct() {
    let bag = Mailbag {
        note: "two letters".into(),
        first: Envelope::new(Other { text: "a".into() }),
        rest: vec![Envelope::new(Other { text: "b".into() })],
    };
    let text = serde_json::to_string(&bag).unwrap();
    let back: Mailbag = serde_json::from_str(&text).unwrap();
    assert_eq!(back, bag);
    let value = serde_json::to_value(&bag).unwrap();
    assert_eq!(
        value["first"],
        serde_json::from_slice::<Value>(&bag.first.to_json().unwrap()).unwrap()
    );
}

#[test]
fn a_nested_envelope_is_read_strictly() {
    let bag = Mailbag {
        note: String::new(),
        first: Envelope::new(Other { text: "a".into() }),
        rest: vec![],
    };
    let good = serde_json::to_value(&bag).unwrap();
    let read = |value: &Value| serde_json::from_value::<Mailbag>(value.clone());

    let mut wire = good.clone();
    wire["first"]["extra"] = json!(1);
    let err = read(&wire).unwrap_err().to_string();
    assert!(err.contains("unknown field `extra`"), "{err}");

    let mut wire = good.clone();
    wire["first"]["id"] = json!("67e5504410b1426f9247bb680e5fe0c8");
    let err = read(&wire).unwrap_err().to_string();
    assert!(err.contains("id: "), "{err}");

    let mut wire = good.clone();
    wire["first"]["timestamp"] = json!("2024-01-01 00:00:00");
    let err = read(&wire).unwrap_err().to_string();
    assert!(err.contains("timestamp"), "{err}");

    let mut wire = good.clone();
    wire["first"]["event_type"] = json!("RICH_PAYLOAD");
    let err = read(&wire).unwrap_err().to_string();
    assert!(err.contains("wrong event type"), "{err}");

    let mut wire = good.clone();
    wire["first"]["event_type"] = json!("TWO WORDS");
    let err = read(&wire).unwrap_err().to_string();
    assert!(err.contains("invalid event_type"), "{err}");

    let mut wire = good.clone();
    wire["first"]
        .as_object_mut()
        .unwrap()
        .remove("causation_id");
    let err = read(&wire).unwrap_err().to_string();
    assert!(err.contains("causation_id"), "{err}");

    let mut wire = good;
    let v1 = "c232ab00-9414-11ec-b3c8-9f6bdeced846";
    wire["first"]["id"] = json!(v1);
    let back = read(&wire).unwrap();
    assert_eq!(back.first.id().to_string(), v1);
    assert_eq!(back.first.id().get_version_num(), 1);
}

// Equality and `Debug` of envelopes (issue 14: mutation testing found them unchecked).

/// A wire envelope of `Other` with every metadata field set to something non-default.
fn other_wire() -> Value {
    json!({
        "id": "0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
        "timestamp": "2024-05-06T07:08:09.123456789Z",
        "event_type": "OTHER",
        "payload": {"text": "x"},
        "correlation_id": "67e55044-10b1-426f-9247-bb680e5fe0c8",
        "causation_id": "c232ab00-9414-11ec-b3c8-9f6bdeced846",
        "depth": 2,
    })
}

#[test]
fn envelopes_that_differ_in_any_one_field_are_unequal() {
    let base = Envelope::<Other>::from_json_value(other_wire()).unwrap();
    assert_eq!(
        base,
        Envelope::<Other>::from_json_value(other_wire()).unwrap()
    );
    let changes: [(&str, Value); 7] = [
        ("id", json!("0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5c")),
        ("timestamp", json!("2024-05-06T07:08:09.123456790Z")),
        (
            "correlation_id",
            json!("67e55044-10b1-426f-9247-bb680e5fe0c9"),
        ),
        (
            "causation_id",
            json!("c232ab00-9414-11ec-b3c8-9f6bdeced847"),
        ),
        ("causation_id", Value::Null),
        ("depth", json!(3)),
        ("payload", json!({"text": "y"})),
    ];
    for (field, value) in changes {
        let mut wire = other_wire();
        wire[field] = value.clone();
        let changed = Envelope::<Other>::from_json_value(wire).unwrap();
        assert!(base != changed, "{field} = {value} compared equal");
        assert!(changed != base, "{field} = {value} compared equal");
        assert!(!base.eq(&changed), "{field} = {value} compared equal");
    }
}

#[test]
fn envelope_debug_shows_every_field() {
    let envelope = Envelope::<Other>::from_json_value(other_wire()).unwrap();
    let expected = format!(
        "Envelope {{ id: {:?}, timestamp: {:?}, event_type: \"OTHER\", correlation_id: {:?}, \
         causation_id: Some({:?}), depth: 2, payload: Other {{ text: \"x\" }} }}",
        envelope.id(),
        envelope.timestamp(),
        envelope.correlation_id(),
        envelope.causation_id().unwrap(),
    );
    assert_eq!(format!("{envelope:?}"), expected);
    assert!(expected.contains("0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b"));
    assert!(expected.contains("c232ab00-9414-11ec-b3c8-9f6bdeced846"));

    let root = Envelope::new(Other { text: "r".into() });
    assert!(format!("{root:?}").contains("causation_id: None, depth: 0,"));
}

#[test]
fn any_envelope_debug_shows_every_field_with_the_payload_as_json() {
    let wire = other_wire();
    let typed = Envelope::<Other>::from_json_value(wire.clone()).unwrap();
    let expected = format!(
        "AnyEnvelope {{ id: {:?}, timestamp: {:?}, event_type: \"OTHER\", correlation_id: {:?}, \
         causation_id: Some({:?}), depth: 2, payload: \"{{\\\"text\\\":\\\"x\\\"}}\" }}",
        typed.id(),
        typed.timestamp(),
        typed.correlation_id(),
        typed.causation_id().unwrap(),
    );
    // The same text whether the payload is a typed value or JSON from the wire.
    let from_typed = AnyEnvelope::from(typed);
    let from_wire = AnyEnvelope::from_json_value(wire).unwrap();
    assert_eq!(format!("{from_typed:?}"), expected);
    assert_eq!(format!("{from_wire:?}"), expected);
}

/// An event whose payload cannot be written as JSON (a map with non-string keys).
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Unwritable {
    map: std::collections::HashMap<(u8, u8), u8>,
}

#[test]
fn any_envelope_debug_says_when_the_payload_cannot_be_written() {
    let envelope = AnyEnvelope::from(Envelope::new(Unwritable {
        map: [((1, 2), 3)].into_iter().collect(),
    }));
    let text = format!("{envelope:?}");
    assert!(
        text.contains("event_type: \"Unwritable\"")
            && text.contains("payload: \"<unserializable: event payload cannot be encoded as JSON"),
        "{text}"
    );
    assert!(envelope.to_json().is_err());
}

#[test]
fn any_envelope_accessors_read_the_metadata() {
    let wire = other_wire();
    let typed = Envelope::<Other>::from_json_value(wire.clone()).unwrap();
    for erased in [
        AnyEnvelope::from_json_value(wire).unwrap(),
        AnyEnvelope::from(typed),
    ] {
        assert_eq!(
            erased.id().to_string(),
            "0190f1b2-3c4d-7e5f-8a9b-0c1d2e3f4a5b"
        );
        assert_eq!(
            erased.timestamp().to_rfc3339(),
            "2024-05-06T07:08:09.123456789+00:00"
        );
        assert_eq!(erased.event_type(), "OTHER");
        assert_eq!(
            erased.correlation_id().to_string(),
            "67e55044-10b1-426f-9247-bb680e5fe0c8"
        );
        assert_eq!(
            erased.causation_id().map(|id| id.to_string()).as_deref(),
            Some("c232ab00-9414-11ec-b3c8-9f6bdeced846")
        );
        assert_eq!(erased.depth(), 2);
    }
    let root = AnyEnvelope::from(Envelope::new(Other { text: "r".into() }));
    assert_eq!(root.correlation_id(), root.id());
    assert_eq!(root.causation_id(), None);
}
