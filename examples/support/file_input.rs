//! Reading entries from a file that may be JSON or CSV, every field kept as text: shared
//! by the examples with a `--file` option (each includes this file with
//! `#[path = "../support/file_input.rs"] mod file_input;`, next to `support/csv.rs` as
//! `mod csv`).
//!
//! The fields stay text so that a bad one reaches the example's validator, which rejects
//! the entry with a reason, instead of failing the whole file here. Only a file that is
//! not an input file at all is an [`InputError`].

use std::path::Path;

use serde_json::Value;

/// The file is not an input file: unreadable, not JSON, without the list of entries, or
/// a CSV header without a needed column. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: expected a JSON object {{\"{key}\": [...]}}")]
    NoList { path: String, key: &'static str },
    #[error("{path}: the CSV header has no column {column:?} (it needs {needs:?})")]
    MissingColumn {
        path: String,
        column: &'static str,
        needs: &'static [&'static str],
    },
}

/// The text of the file at `path`.
pub fn read(path: &str) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|source| InputError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The entries of a JSON file shaped `{"<key>": [entry, ...]}`; `path` names it in errors.
pub fn json_list(path: &str, text: &str, key: &'static str) -> Result<Vec<Value>, InputError> {
    let value: Value = serde_json::from_str(text).map_err(|source| InputError::Json {
        path: path.to_owned(),
        source,
    })?;
    match value {
        Value::Object(mut object) => match object.remove(key) {
            Some(Value::Array(entries)) => Some(entries),
            _ => None,
        },
        _ => None,
    }
    .ok_or_else(|| InputError::NoList {
        path: path.to_owned(),
        key,
    })
}

/// Whether the file at `path` holding `text` is JSON: by its extension (`.json` or
/// `.csv`, any case), else JSON when the text starts with `{`.
pub fn is_json(path: &str, text: &str) -> bool {
    match Path::new(path).extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("json") => true,
        Some(ext) if ext.eq_ignore_ascii_case("csv") => false,
        _ => text.trim_start().starts_with('{'),
    }
}

/// A JSON value as the text the validator reads: strings as they are, numbers as
/// written, missing or null as empty, anything else as JSON.
pub fn as_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

/// The column names of a CSV header line, trimmed and lower-cased so that `Symbol ` finds
/// the column `symbol`.
pub fn csv_header(line: &str) -> Vec<String> {
    crate::csv::split_line(line)
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect()
}
