//! Reading the entries of an input file, JSON or CSV, one at a time on a thread of its
//! own, so that a program can handle entry 1 while entry 100 000 is still on disk.
//! Shared by the examples with a `--file` option (each includes this file with
//! `#[path = "../support/file_input.rs"] mod file_input;`).
//!
//! Every entry arrives as a JSON object of its fields (a CSV row as text cells under its
//! lower-cased header names), so a bad field reaches the example's validator, which
//! rejects the entry with a reason. Only a file that is not an input file at all is an
//! [`InputError`], and each one says where: line and column, or the entry's index.
//!
//! CSV is read by the `csv` crate: RFC 4180 quoting (a quoted cell may hold commas and
//! newlines), a leading UTF-8 byte order mark skipped, `\r\n` line ends accepted.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// The fields of one entry, by name.
pub type Fields = Map<String, Value>;

/// One entry of the file, and where it is.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The line a CSV record starts on, or the number of a JSON list's entry (from 1).
    pub place: u64,
    pub fields: Fields,
}

/// The longest CSV line accepted, in bytes (a longer one is not a hand-made order).
pub const MAX_LINE: usize = 1 << 20;

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Entries read ahead of the program: the channel between the reading thread and it.
const READ_AHEAD: usize = 256;

/// The file is not an input file; every message names the file and the place.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is a directory, not a file")]
    Directory { path: String },
    #[error(
        "{path} is empty: it needs a header line {needs:?} or a JSON object {{\"{key}\": [...]}}"
    )]
    Empty {
        path: String,
        key: &'static str,
        needs: &'static [&'static str],
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    JsonShape {
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
    #[error("{path}: line {line}: {message}")]
    Csv {
        path: String,
        line: u64,
        message: String,
    },
    #[error("{path}: {message}")]
    CsvIo { path: String, message: String },
    #[error(
        "{path}: line {line}: a quoted cell is not closed: its quote runs to the end of the file"
    )]
    Unterminated { path: String, line: u64 },
}

/// Where entries come from: a file, or text built into the program.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    #[allow(dead_code)] // not every example has a built-in input
    BuiltIn {
        name: &'static str,
        text: &'static str,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::BuiltIn { name, .. } => f.write_str(name),
        }
    }
}

/// What the reading thread hands over: entries in file order, or the error that ended it.
pub struct Feed {
    pub entries: mpsc::Receiver<Result<Entry, InputError>>,
    /// Bytes read so far, and the file's size: for a progress bar.
    pub bytes_read: Arc<AtomicU64>,
    pub size: Option<u64>,
}

/// What a file must hold: the JSON list's key and the CSV columns that must be there.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub key: &'static str,
    pub needs: &'static [&'static str],
}

/// Starts reading `source` on a thread; entries arrive on the feed as they are read.
pub fn spawn(source: Source, shape: Shape) -> Feed {
    let (sender, entries) = mpsc::channel(READ_AHEAD);
    let bytes_read = Arc::new(AtomicU64::new(0));
    let size = match &source {
        Source::File(path) => std::fs::metadata(path).ok().map(|m| m.len()),
        Source::BuiltIn { text, .. } => Some(text.len() as u64),
    };
    let counter = Arc::clone(&bytes_read);
    std::thread::spawn(move || {
        let out = Out { sender };
        if let Err(error) = read(&source, shape, counter, &out) {
            out.send(Err(error));
        }
    });
    Feed {
        entries,
        bytes_read,
        size,
    }
}

/// The sending end; a send fails only when the program stopped listening.
struct Out {
    sender: mpsc::Sender<Result<Entry, InputError>>,
}

impl Out {
    fn send(&self, item: Result<Entry, InputError>) -> bool {
        self.sender.blocking_send(item).is_ok()
    }
}

fn read(
    source: &Source,
    shape: Shape,
    counter: Arc<AtomicU64>,
    out: &Out,
) -> Result<(), InputError> {
    let name = source.to_string();
    let input = open(source)?;
    let mut reader = BufReader::new(Counting {
        inner: input,
        read: counter,
    });
    let json = is_json(source, &mut reader).map_err(|e| read_error(&name, e))?;
    if json {
        read_json(&name, reader, shape, out)
    } else {
        read_csv(source, &name, reader, shape, out)
    }
}

/// A file or built-in text, readable and seekable.
trait Input: Read + Seek + Send {}
impl<T: Read + Seek + Send> Input for T {}

fn open(source: &Source) -> Result<Box<dyn Input>, InputError> {
    match source {
        Source::BuiltIn { text, .. } => Ok(Box::new(Cursor::new(text.as_bytes()))),
        Source::File(path) => {
            let name = source.to_string();
            if path.is_dir() {
                return Err(InputError::Directory { path: name });
            }
            let file = File::open(path).map_err(|e| read_error(&name, e))?;
            Ok(Box::new(file))
        }
    }
}

fn read_error(path: &str, source: std::io::Error) -> InputError {
    InputError::Read {
        path: path.to_owned(),
        source,
    }
}

/// JSON when the name ends in `.json`, CSV when it ends in `.csv` (any case), else JSON
/// when the first character (after a byte order mark and blanks) is `{`.
fn is_json(source: &Source, reader: &mut impl BufRead) -> std::io::Result<bool> {
    let extension = match source {
        Source::File(path) => Path::new(path).extension(),
        Source::BuiltIn { name, .. } => Path::new(name).extension(),
    };
    match extension {
        Some(ext) if ext.eq_ignore_ascii_case("json") => return Ok(true),
        Some(ext) if ext.eq_ignore_ascii_case("csv") => return Ok(false),
        _ => {}
    }
    let start = reader.fill_buf()?;
    let start = start.strip_prefix(BOM).unwrap_or(start);
    Ok(start.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'))
}

/// Counts the bytes read, for progress.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

// ---- JSON: {"<key>": [entry, ...]}, each entry sent as soon as it is parsed ----

fn read_json(
    path: &str,
    mut reader: impl BufRead,
    shape: Shape,
    out: &Out,
) -> Result<(), InputError> {
    let start = reader.fill_buf().map_err(|e| read_error(path, e))?;
    if start.is_empty() {
        return Err(empty(path, shape));
    }
    // A byte order mark is no part of JSON, but editors on Windows write one.
    if start.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    let mut json = serde_json::Deserializer::from_reader(reader);
    let found = de::Deserializer::deserialize_map(&mut json, TopLevel { shape, out })
        .and_then(|found| json.end().map(|()| found))
        .map_err(|source| match source.classify() {
            serde_json::error::Category::Data => InputError::JsonShape {
                path: path.to_owned(),
                source,
            },
            _ => InputError::Json {
                path: path.to_owned(),
                source,
            },
        })?;
    if found {
        Ok(())
    } else {
        Err(InputError::NoList {
            path: path.to_owned(),
            key: shape.key,
        })
    }
}

fn empty(path: &str, shape: Shape) -> InputError {
    InputError::Empty {
        path: path.to_owned(),
        key: shape.key,
        needs: shape.needs,
    }
}

/// The top-level object: finds the list under the key; `true` when it was there.
struct TopLevel<'a> {
    shape: Shape,
    out: &'a Out,
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a JSON object {{\"{}\": [...]}}", self.shape.key)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == self.shape.key && !found {
                map.next_value_seed(List {
                    key: self.shape.key,
                    out: self.out,
                })?;
                found = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The list of entries: each one must be an object, and is sent as it is parsed.
struct List<'a> {
    key: &'static str,
    out: &'a Out,
}

impl<'de> DeserializeSeed<'de> for List<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for List<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a JSON object {{\"{}\": [...]}} with a list there",
            self.key
        )
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while let Some(entry) = seq.next_element::<Value>()? {
            let Value::Object(fields) = entry else {
                return Err(de::Error::custom(format!(
                    "entry {index} of \"{}\" is {}, not an object",
                    self.key,
                    kind(&entry)
                )));
            };
            let entry = Entry {
                place: index as u64 + 1,
                fields,
            };
            if !self.out.send(Ok(entry)) {
                return Err(de::Error::custom("the program stopped reading"));
            }
            index += 1;
        }
        Ok(())
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// ---- CSV: a header line, then one entry per record ----

fn read_csv(
    source: &Source,
    path: &str,
    reader: impl Read,
    shape: Shape,
    out: &Out,
) -> Result<(), InputError> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(LineLimit::new(reader));
    let header = header(path, &mut csv, shape)?;
    // Each record is sent once the next one is read, so that a quote left open in the
    // last record is found before that record is handled.
    let mut held: Option<(Entry, u64)> = None;
    for record in csv.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let (byte, line) = record.position().map_or((0, 0), |p| (p.byte(), p.line()));
        if let Some((entry, _)) = held.take() {
            if !out.send(Ok(entry)) {
                return Ok(());
            }
        }
        let fields = to_fields(&header, &record);
        held = Some((
            Entry {
                place: line,
                fields,
            },
            byte,
        ));
    }
    if let Some((entry, byte)) = held {
        if quote_left_open(source, byte).map_err(|e| read_error(path, e))? {
            return Err(InputError::Unterminated {
                path: path.to_owned(),
                line: entry.place,
            });
        }
        out.send(Ok(entry));
    }
    Ok(())
}

/// The header's names, trimmed and lower-cased so that `Symbol ` finds `symbol`.
fn header<R: Read>(
    path: &str,
    csv: &mut csv::Reader<R>,
    shape: Shape,
) -> Result<Vec<String>, InputError> {
    let names: Vec<String> = csv
        .headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(|name| name.trim().to_lowercase())
        .collect();
    if names.iter().all(String::is_empty) {
        return Err(empty(path, shape));
    }
    if let Some(column) = shape.needs.iter().find(|c| !names.iter().any(|n| n == *c)) {
        return Err(InputError::MissingColumn {
            path: path.to_owned(),
            column,
            needs: shape.needs,
        });
    }
    Ok(names)
}

/// The record's cells under the header's names; a short row's missing cells are null.
fn to_fields(header: &[String], record: &csv::StringRecord) -> Fields {
    let cells = record.iter().map(|cell| Value::String(cell.to_owned()));
    let padded = cells.chain(std::iter::repeat(Value::Null));
    header.iter().cloned().zip(padded).collect()
}

/// A `csv` error with its line, and its field where it has one.
fn csv_error(path: &str, error: csv::Error) -> InputError {
    let line = error.position().map(csv::Position::line);
    let message = match error.kind() {
        csv::ErrorKind::Utf8 { err, .. } => {
            format!(
                "field {} is not UTF-8 text (is this a CSV file?)",
                err.field() + 1
            )
        }
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => error.to_string(),
    };
    match line {
        Some(line) => InputError::Csv {
            path: path.to_owned(),
            line,
            message,
        },
        None => InputError::CsvIo {
            path: path.to_owned(),
            message,
        },
    }
}

/// Whether the text from byte `start` (the last record) to the end holds an odd number
/// of quotes: a quoted cell opened and never closed (the `csv` crate reads such a cell
/// to the end of the file without complaint).
fn quote_left_open(source: &Source, start: u64) -> std::io::Result<bool> {
    let mut input = open(source).map_err(|e| std::io::Error::other(e.to_string()))?;
    input.seek(SeekFrom::Start(start))?;
    let mut quotes = 0u64;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(quotes % 2 == 1);
        }
        quotes += buf[..n].iter().filter(|&&b| b == b'"').count() as u64;
    }
}

/// Fails a read once a line passes [`MAX_LINE`] bytes, naming the line.
struct LineLimit<R> {
    inner: R,
    line: u64,
    length: usize,
}

impl<R> LineLimit<R> {
    fn new(inner: R) -> Self {
        LineLimit {
            inner,
            line: 1,
            length: 0,
        }
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &byte in &buf[..n] {
            if byte == b'\n' {
                self.line += 1;
                self.length = 0;
            } else {
                self.length += 1;
                if self.length > MAX_LINE {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("line {} is longer than {MAX_LINE} bytes", self.line),
                    ));
                }
            }
        }
        Ok(n)
    }
}

/// A field as the text the validator reads: strings as they are, numbers as written,
/// missing or null as empty, anything else as JSON.
pub fn as_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}
