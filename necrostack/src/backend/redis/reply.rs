//! Parsing Redis stream replies by hand, so that any entry, however malformed, becomes a
//! value the backend can dead-letter instead of an error that stops the worker.

use std::collections::HashMap;

use redis::Value;

/// One stream entry as stored: its id and its field/value pairs (`None` when the entry
/// was deleted from the stream while still pending).
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub(crate) id: String,
    pub(crate) fields: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

pub(crate) fn text(value: &Value) -> Option<String> {
    bytes(value).and_then(|b| std::str::from_utf8(b).ok().map(str::to_owned))
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => text(other).and_then(|t| t.parse().ok()),
    }
}

/// The items of an array-like reply (RESP2 arrays, RESP3 sets and maps flattened).
pub(crate) fn items(value: &Value) -> Option<Vec<&Value>> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items.iter().collect()),
        Value::Map(pairs) => Some(pairs.iter().flat_map(|(k, v)| [k, v]).collect()),
        Value::Attribute { data, .. } => items(data),
        _ => None,
    }
}

/// `[[id, [field, value, ...] | nil], ...]`
pub(crate) fn entries(value: &Value) -> Result<Vec<RawEntry>, String> {
    let list = items(value).ok_or("entries are not a list")?;
    let mut out = Vec::with_capacity(list.len());
    for entry in list {
        let parts = items(entry).ok_or("an entry is not a list")?;
        let [id, fields] = parts.as_slice() else {
            return Err(format!("an entry has {} parts, not 2", parts.len()));
        };
        let id = text(id).ok_or("an entry id is not text")?;
        let fields = match fields {
            Value::Nil => None,
            other => {
                let flat = items(other).ok_or("entry fields are not a list")?;
                let mut pairs = Vec::with_capacity(flat.len() / 2);
                for pair in flat.chunks(2) {
                    let (Some(f), Some(v)) = (pair.first(), pair.get(1)) else {
                        return Err("entry fields are not in pairs".to_owned());
                    };
                    let f = bytes(f).ok_or("an entry field name is not a string")?;
                    let v = bytes(v).ok_or("an entry field value is not a string")?;
                    pairs.push((f.to_vec(), v.to_vec()));
                }
                Some(pairs)
            }
        };
        out.push(RawEntry { id, fields });
    }
    Ok(out)
}

/// An `XREADGROUP` reply for one stream: `nil` (timeout) or `[[stream, entries]]`.
pub(crate) fn read_group(value: &Value) -> Result<Vec<RawEntry>, String> {
    if matches!(value, Value::Nil) {
        return Ok(Vec::new());
    }
    let streams = items(value).ok_or("XREADGROUP reply is not a list")?;
    let mut out = Vec::new();
    match value {
        // RESP3: {stream: entries}
        Value::Map(pairs) => {
            for (_, stream_entries) in pairs {
                out.extend(entries(stream_entries)?);
            }
        }
        _ => {
            for stream in streams {
                let parts = items(stream).ok_or("a stream in the reply is not a list")?;
                let entries_value = parts.get(1).ok_or("a stream in the reply has no entries")?;
                out.extend(entries(entries_value)?);
            }
        }
    }
    Ok(out)
}

/// An `XAUTOCLAIM` reply: `[next cursor, entries, deleted ids (Redis 7+)]`.
pub(crate) fn autoclaim(value: &Value) -> Result<(String, Vec<RawEntry>, Vec<String>), String> {
    let parts = items(value).ok_or("XAUTOCLAIM reply is not a list")?;
    let cursor = parts
        .first()
        .and_then(|v| text(v))
        .ok_or("XAUTOCLAIM reply has no cursor")?;
    let claimed = match parts.get(1) {
        Some(v) => entries(v)?,
        None => Vec::new(),
    };
    let deleted = match parts.get(2).and_then(|v| items(v)) {
        Some(ids) => ids.into_iter().filter_map(text).collect(),
        None => Vec::new(),
    };
    Ok((cursor, claimed, deleted))
}

/// An extended `XPENDING` reply: `[[id, consumer, idle ms, deliveries], ...]`, as a map
/// from id to deliveries.
pub(crate) fn pending_counts(value: &Value) -> Result<HashMap<String, u32>, String> {
    let list = items(value).ok_or("XPENDING reply is not a list")?;
    let mut out = HashMap::with_capacity(list.len());
    for row in list {
        let parts = items(row).ok_or("an XPENDING row is not a list")?;
        let id = parts.first().and_then(|v| text(v));
        let count = parts.get(3).and_then(|v| int(v));
        match (id, count) {
            (Some(id), Some(count)) => {
                out.insert(id, u32::try_from(count.max(0)).unwrap_or(u32::MAX));
            }
            _ => return Err("an XPENDING row lacks its id or delivery count".to_owned()),
        }
    }
    Ok(out)
}

/// The ids of an extended `XPENDING` reply.
pub(crate) fn pending_ids(value: &Value) -> Result<Vec<String>, String> {
    let list = items(value).ok_or("XPENDING reply is not a list")?;
    list.into_iter()
        .map(|row| {
            items(row)
                .and_then(|parts| parts.first().and_then(|v| text(v)))
                .ok_or_else(|| "an XPENDING row has no id".to_owned())
        })
        .collect()
}

/// The fields of our group in an `XINFO GROUPS` reply: (consumers, pending, lag).
pub(crate) fn group_info(value: &Value, group: &str) -> Option<(u64, u64, Option<u64>)> {
    for info in items(value)? {
        let flat = items(info)?;
        let mut fields: HashMap<String, &Value> = HashMap::new();
        for pair in flat.chunks(2) {
            if let (Some(k), Some(v)) = (pair.first().and_then(|k| text(k)), pair.get(1)) {
                fields.insert(k, v);
            }
        }
        if fields.get("name").and_then(|v| text(v)).as_deref() != Some(group) {
            continue;
        }
        let number = |key: &str| {
            fields
                .get(key)
                .and_then(|v| int(v))
                .and_then(|n| u64::try_from(n).ok())
        };
        return Some((
            number("consumers").unwrap_or(0),
            number("pending").unwrap_or(0),
            number("lag"),
        ));
    }
    None
}

/// The `last-delivered-id` of our group in an `XINFO GROUPS` reply.
pub(crate) fn last_delivered(value: &Value, group: &str) -> Option<String> {
    for info in items(value)? {
        let flat = items(info)?;
        let mut fields: HashMap<String, &Value> = HashMap::new();
        for pair in flat.chunks(2) {
            if let (Some(k), Some(v)) = (pair.first().and_then(|k| text(k)), pair.get(1)) {
                fields.insert(k, v);
            }
        }
        if fields.get("name").and_then(|v| text(v)).as_deref() == Some(group) {
            return fields.get("last-delivered-id").and_then(|v| text(v));
        }
    }
    None
}

/// The total of an `XPENDING key group` summary reply.
pub(crate) fn pending_total(value: &Value) -> Option<u64> {
    items(value)?
        .first()
        .and_then(|v| int(v))
        .and_then(|n| u64::try_from(n).ok())
}

/// An integer reply.
pub(crate) fn integer(value: &Value) -> Option<i64> {
    int(value)
}

/// A sorted-set score (a bulk string in RESP2, a double in RESP3).
pub(crate) fn score(value: &Value) -> Option<f64> {
    match value {
        Value::Double(score) => Some(*score),
        Value::Int(n) => Some(*n as f64),
        other => text(other).and_then(|t| t.parse().ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn read_group_parses_entries_and_deleted_ones() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![
                Value::Array(vec![bulk("1-0"), Value::Array(vec![bulk("f"), bulk("v")])]),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
            ]),
        ])]);
        let entries = read_group(&reply).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id, "1-0");
        assert_eq!(
            entries[0].fields.as_deref(),
            Some(&[(b"f".to_vec(), b"v".to_vec())][..])
        );
        assert!(entries[1].fields.is_none());
        assert!(read_group(&Value::Nil).unwrap().is_empty());
        assert!(read_group(&Value::Int(3)).is_err());
    }

    fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(Value::BulkString),
            "[a-z0-9-]{0,6}".prop_map(Value::SimpleString),
            Just(Value::Okay),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Value::Map),
            ]
        })
    }

    proptest::proptest! {
        /// Whatever Redis (or something pretending to be it) answers, parsing returns a
        /// value or an error; it never panics.
        #[test]
        fn parsing_any_reply_never_panics(value in any_value()) {
            let _ = read_group(&value);
            let _ = autoclaim(&value);
            let _ = pending_counts(&value);
            let _ = pending_ids(&value);
            let _ = group_info(&value, "g");
            let _ = pending_total(&value);
        }
    }

    #[test]
    fn odd_field_lists_are_errors_not_panics() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![Value::Array(vec![
                bulk("1-0"),
                Value::Array(vec![bulk("f")]),
            ])]),
        ])]);
        assert!(read_group(&reply).is_err());
    }
}
