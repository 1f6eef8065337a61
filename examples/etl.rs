//! A small ETL pipeline: load CSV text, clean it, type and aggregate it, print a summary.
//!
//! ETL_START (CSV text) → RAW_DATA_LOADED (rows of cells) → DATA_CLEANED (trimmed, rows
//! with missing fields dropped and counted) → DATA_TRANSFORMED (typed rows, totals per
//! region) → printed summary.
//!
//! The input is sales data with the header `date,region,product,units,unit_price`
//! (columns may come in any order; extra columns are carried along and ignored).
//!
//! Units and prices are summed exactly: units as whole numbers up to 18446744073709551615
//! (`u64`), prices as decimals with up to four places, totals in 128-bit integers; a row
//! whose numbers do not fit is reported with the reason, never wrapped or rounded away.
//! The CSV is read by the `csv` crate (RFC 4180 quoting, a UTF-8 byte order mark
//! accepted); a broken file is an error naming its line.
//!
//! ```text
//! cargo run --example etl -- --help                # the options
//! cargo run --example etl                          # a small built-in CSV
//! cargo run --example etl -- --file sales.csv      # your own CSV
//! NECROSTACK_LOG=json cargo run --example etl      # logs as JSON lines on stderr
//! ```
//!
//! The four organs use the four handler forms a user meets first: a sync function, an
//! async function that sees the envelope, a sync function that may fail (`Result`), and a
//! stateful `impl` block.

#[path = "support/logs.rs"]
mod logs;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use clap::Parser;
use necrostack::{organ, Envelope, Event, Spine};
use serde::{Deserialize, Serialize};

/// Used when no `--file` is given: nine rows, two of them missing a field and one with
/// a count that is not a number.
const BUILT_IN_CSV: &str = "\
date,region,product,units,unit_price
2026-01-05, north ,widget,10,2.50
2026-01-05,south,widget,4,2.50
2026-01-06,north,gadget,1,99.90
2026-01-06,east,widget,,2.50
2026-01-07,south,gadget,2,99.90
2026-01-07,,gadget,3,99.90
2026-01-08,east,\"gizmo, large\",5,12.00
2026-01-08,north,widget,6,2.40
2026-01-09,west,widget,two,2.50
";

/// The columns the transform needs.
const REQUIRED: [&str; 5] = ["date", "region", "product", "units", "unit_price"];
/// The largest file read: the whole text travels in one event.
const MAX_FILE_BYTES: u64 = 64 << 20;
/// The highest unit price, and its decimal places.
const MAX_PRICE: u128 = 1_000_000_000_000;
const PRICE_PLACES: u32 = 4;
const PRICE_SCALE: u128 = 10u128.pow(PRICE_PLACES);

/// A small ETL pipeline: load a sales CSV, clean it, type and aggregate it per region,
/// print a summary.
#[derive(Debug, Parser)]
#[command(name = "etl", version)]
struct Args {
    /// Read sales from PATH, a CSV with the header date,region,product,units,unit_price
    /// (any order, extra columns ignored; at most 64 MiB) [default: a built-in sample]
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ETL_START")]
struct EtlStart {
    /// Where the text came from, for the summary.
    source: String,
    csv: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "RAW_DATA_LOADED")]
struct RawDataLoaded {
    source: String,
    header: Vec<String>,
    /// Each row with its line number in the input (the header is line 1).
    rows: Vec<(usize, Vec<String>)>,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "DATA_CLEANED")]
struct DataCleaned {
    source: String,
    header: Vec<String>,
    rows: Vec<(usize, Vec<String>)>,
    /// Rows dropped because a field was missing or empty.
    dropped: usize,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "DATA_TRANSFORMED")]
struct DataTransformed {
    source: String,
    /// Rows that were typed and counted.
    rows: usize,
    /// Rows dropped by the cleaner.
    dropped: usize,
    /// Rows whose numbers did not parse, with the reason.
    invalid: Vec<String>,
    regions: Vec<RegionTotal>,
    total: Totals,
}

/// Units, and revenue in ten-thousandths: exact whole numbers.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
struct Totals {
    units: u128,
    revenue: u128,
}

impl Totals {
    /// These totals with one more row, or `None` if they would not fit.
    fn plus(self, units: u128, revenue: u128) -> Option<Totals> {
        Some(Totals {
            units: self.units.checked_add(units)?,
            revenue: self.revenue.checked_add(revenue)?,
        })
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct RegionTotal {
    region: String,
    total: Totals,
}

/// The text is not a CSV file the loader can read.
#[derive(Debug, thiserror::Error)]
enum LoadError {
    #[error("{0} is empty: it needs the header line {REQUIRED:?}")]
    Empty(String),
    #[error("{input}: line {line}: {message}")]
    Csv {
        input: String,
        line: u64,
        message: String,
    },
    #[error(
        "{input}: line {line}: a quoted cell is not closed: its quote runs to the end of the file"
    )]
    Unterminated { input: String, line: u64 },
}

/// A sync organ that may fail: reads the text as CSV into a header and rows of cells.
#[organ(listens_to = EtlStart)]
fn load(start: &EtlStart) -> Result<RawDataLoaded, LoadError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(start.csv.as_bytes());
    let failed = |error: csv::Error| LoadError::Csv {
        input: start.source.clone(),
        line: error.position().map_or(1, csv::Position::line),
        message: error.to_string(),
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(failed)?
        .iter()
        .map(str::to_owned)
        .collect();
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err(LoadError::Empty(start.source.clone()));
    }
    let mut rows = Vec::new();
    let mut last = None;
    for record in reader.records() {
        let record = record.map_err(failed)?;
        let (byte, line) = record.position().map_or((0, 0), |p| (p.byte(), p.line()));
        last = Some((byte, line));
        rows.push((line as usize, record.iter().map(str::to_owned).collect()));
    }
    // The `csv` crate reads a quote left open to the end of the text without complaint:
    // an odd number of quotes from the last record on means one is open.
    if let Some((byte, line)) = last {
        let rest = start
            .csv
            .as_bytes()
            .get(byte as usize..)
            .unwrap_or_default();
        if rest.iter().filter(|&&b| b == b'"').count() % 2 == 1 {
            return Err(LoadError::Unterminated {
                input: start.source.clone(),
                line,
            });
        }
    }
    Ok(RawDataLoaded {
        source: start.source.clone(),
        header,
        rows,
    })
}

/// An async organ that sees the envelope: trims every cell and drops rows with a
/// missing field (too few cells, or an empty one).
#[organ(listens_to = RawDataLoaded)]
async fn clean(raw: Envelope<RawDataLoaded>) -> DataCleaned {
    let width = raw.header.len();
    let header = raw.header.iter().map(|h| h.trim().to_lowercase()).collect();
    let mut rows = Vec::with_capacity(raw.rows.len());
    let mut dropped = 0;
    for (line, row) in &raw.rows {
        let cells: Vec<String> = row.iter().map(|c| c.trim().to_owned()).collect();
        if cells.len() < width || cells.iter().take(width).any(String::is_empty) {
            dropped += 1;
            tracing::info!(correlation_id = %raw.correlation_id(), line, "row dropped: missing field");
        } else {
            rows.push((*line, cells));
        }
    }
    DataCleaned {
        source: raw.source.clone(),
        header,
        rows,
        dropped,
    }
}

/// The input cannot be transformed at all.
#[derive(Debug, thiserror::Error)]
enum TransformError {
    #[error("the CSV has no column {0:?} (the header needs {REQUIRED:?})")]
    MissingColumn(&'static str),
}

/// A sync organ that may fail: types the rows and sums units and revenue per region.
/// Rows whose numbers do not parse are reported, not silently skipped.
#[organ(listens_to = DataCleaned)]
fn transform(data: &DataCleaned) -> Result<DataTransformed, TransformError> {
    let mut index = [0usize; 5];
    for (slot, name) in index.iter_mut().zip(REQUIRED) {
        *slot = data
            .header
            .iter()
            .position(|h| h == name)
            .ok_or(TransformError::MissingColumn(name))?;
    }
    let [_date, region, _product, units, price] = index;
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    let mut total = Totals::default();
    let mut invalid = Vec::new();
    let mut rows = 0;
    for (line, row) in &data.rows {
        let (units, price) = (&row[units], &row[price]);
        let (Ok(count), Some(price_scaled)) = (units.parse::<u64>(), parse_price(price)) else {
            invalid.push(format!(
                "line {line}: units {units:?} / unit_price {price:?} are not a count and a price"
            ));
            continue;
        };
        let count = u128::from(count);
        let region_total = totals.get(&row[region]).copied().unwrap_or_default();
        let sums = count.checked_mul(price_scaled).and_then(|revenue| {
            Some((
                region_total.plus(count, revenue)?,
                total.plus(count, revenue)?,
            ))
        });
        let Some((region_sum, sum)) = sums else {
            invalid.push(format!(
                "line {line}: units {units:?} × unit_price {price:?} would take the totals past what 128 bits hold"
            ));
            continue;
        };
        totals.insert(row[region].clone(), region_sum);
        total = sum;
        rows += 1;
    }
    Ok(DataTransformed {
        source: data.source.clone(),
        rows,
        dropped: data.dropped,
        invalid,
        regions: totals
            .into_iter()
            .map(|(region, total)| RegionTotal { region, total })
            .collect(),
        total,
    })
}

/// A price such as `2.5` or `99.90` in ten-thousandths, if it is a plain decimal with at
/// most four places and at most [`MAX_PRICE`].
fn parse_price(text: &str) -> Option<u128> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || !digits(whole)
        || !digits(fraction)
        || fraction.len() > PRICE_PLACES as usize
    {
        return None;
    }
    let whole: u128 = whole.parse().ok().filter(|w| *w <= MAX_PRICE)?;
    let fraction: u128 = format!("{fraction:0<4}").parse().ok()?;
    Some(whole * PRICE_SCALE + fraction)
}

/// Ten-thousandths as money with two places, rounded half up: 1234550 → "123.46".
fn money(scaled: u128) -> String {
    let cents = scaled / 100 + u128::from(scaled % 100 >= 50);
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A stateful async organ: prints the summary and keeps it for `main`.
#[derive(Default)]
struct Reporter {
    last: Arc<Mutex<Option<DataTransformed>>>,
}

#[organ(listens_to = DataTransformed)]
impl Reporter {
    async fn handle(&self, data: &DataTransformed) {
        println!("ETL summary for {}", data.source);
        println!(
            "  rows loaded:      {}",
            data.rows + data.dropped + data.invalid.len()
        );
        println!("  rows dropped:     {} (missing fields)", data.dropped);
        println!("  rows invalid:     {}", data.invalid.len());
        for reason in &data.invalid {
            println!("    {reason}");
        }
        println!("  rows transformed: {}", data.rows);
        for region in &data.regions {
            println!(
                "  region {:<10} units {:>6}  revenue {:>10}",
                region.region,
                region.total.units,
                money(region.total.revenue)
            );
        }
        println!(
            "  total            units {:>6}  revenue {:>10}",
            data.total.units,
            money(data.total.revenue)
        );
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(data.clone());
    }
}

/// The input cannot be read as text.
#[derive(Debug, thiserror::Error)]
enum InputError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0} is a directory, not a file")]
    Directory(String),
    #[error("{0} is larger than {MAX_FILE_BYTES} bytes, the most this example reads")]
    TooLarge(String),
    #[error("{0}: line {1} is not UTF-8 text (is this a CSV file?)")]
    NotText(String, usize),
}

/// The ETL_START for `--file PATH`, or for the built-in sample.
fn input(args: &Args) -> Result<EtlStart, InputError> {
    let Some(path) = &args.file else {
        return Ok(EtlStart {
            source: "built-in sample".into(),
            csv: BUILT_IN_CSV.into(),
        });
    };
    let source = path.display().to_string();
    let read = |e| InputError::Read(source.clone(), e);
    if path.is_dir() {
        return Err(InputError::Directory(source));
    }
    // Read at most one byte past the limit: a device such as /dev/zero has no length.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(InputError::TooLarge(source));
    }
    let csv = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
        InputError::NotText(source.clone(), line)
    })?;
    Ok(EtlStart { source, csv })
}

#[tokio::main]
async fn main() -> ExitCode {
    logs::init();
    let args = Args::parse();
    let start = match input(&args) {
        Ok(start) => start,
        Err(message) => {
            eprintln!("etl: {message}");
            return ExitCode::from(2);
        }
    };
    let reporter = Reporter::default();
    let summary = Arc::clone(&reporter.last);
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&failures);
    let built = Spine::builder()
        .organ(load)
        .organ(clean)
        .organ(transform)
        .organ(reporter)
        .on_failure(move |failure| {
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(failure.error.clone())
        })
        .build();
    let run = async {
        let spine = built?;
        spine.emit(start).await?;
        spine.run_until_idle().await
    };
    if let Err(error) = run.await {
        eprintln!("etl: {error}");
        return ExitCode::FAILURE;
    }
    if summary
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_none()
    {
        for error in failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            eprintln!("etl: {error}");
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
