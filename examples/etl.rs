//! A small ETL pipeline: load CSV text, clean it, type and aggregate it, print a summary.
//!
//! ETL_START (CSV text) → RAW_DATA_LOADED (rows of cells) → DATA_CLEANED (trimmed, rows
//! with missing fields dropped and counted) → DATA_TRANSFORMED (typed rows, totals per
//! region) → printed summary.
//!
//! The input is sales data with the header `date,region,product,units,unit_price`
//! (columns may come in any order; extra columns are carried along and ignored).
//!
//! ```text
//! cargo run --example etl                          # a small built-in CSV
//! cargo run --example etl -- --file sales.csv      # your own CSV
//! NECROSTACK_LOG=json cargo run --example etl      # logs as JSON lines on stderr
//! ```
//!
//! The four organs use the four handler forms a user meets first: a sync function, an
//! async function that sees the envelope, a sync function that may fail (`Result`), and a
//! stateful `impl` block.

#[path = "support/csv.rs"]
mod csv;
#[path = "support/logs.rs"]
mod logs;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

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
    total_units: u64,
    total_revenue: f64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct RegionTotal {
    region: String,
    units: u64,
    revenue: f64,
}

/// A sync organ: splits the text into a header and rows of cells.
#[organ(listens_to = EtlStart)]
fn load(start: &EtlStart) -> RawDataLoaded {
    let mut lines = (1..)
        .zip(start.csv.lines())
        .filter(|(_, line)| !line.trim().is_empty());
    let header = lines
        .next()
        .map(|(_, line)| csv::split_line(line))
        .unwrap_or_default();
    RawDataLoaded {
        source: start.source.clone(),
        header,
        rows: lines.map(|(n, line)| (n, csv::split_line(line))).collect(),
    }
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
    let mut totals: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    let mut invalid = Vec::new();
    let mut rows = 0;
    for (line, row) in &data.rows {
        let parsed = (row[units].parse::<u64>(), row[price].parse::<f64>());
        match parsed {
            (Ok(u), Ok(p)) if p.is_finite() && p >= 0.0 => {
                let entry = totals.entry(row[region].clone()).or_default();
                entry.0 += u;
                entry.1 += u as f64 * p;
                rows += 1;
            }
            _ => invalid.push(format!(
                "line {line}: units {:?} / unit_price {:?} are not a count and a price",
                row[units], row[price]
            )),
        }
    }
    let regions: Vec<RegionTotal> = totals
        .into_iter()
        .map(|(region, (units, revenue))| RegionTotal {
            region,
            units,
            revenue,
        })
        .collect();
    Ok(DataTransformed {
        source: data.source.clone(),
        rows,
        dropped: data.dropped,
        invalid,
        total_units: regions.iter().map(|r| r.units).sum(),
        total_revenue: regions.iter().map(|r| r.revenue).sum(),
        regions,
    })
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
                "  region {:<10} units {:>6}  revenue {:>10.2}",
                region.region, region.units, region.revenue
            );
        }
        println!(
            "  total            units {:>6}  revenue {:>10.2}",
            data.total_units, data.total_revenue
        );
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(data.clone());
    }
}

/// Reads `--file PATH` (or nothing) from the command line.
fn input() -> Result<EtlStart, String> {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--file" => file = Some(args.next().ok_or("--file needs a path")?),
            "-h" | "--help" => {
                return Err("usage: etl [--file PATH]   (a CSV with the header date,region,product,units,unit_price)".into())
            }
            other => return Err(format!("unknown argument {other:?}; usage: etl [--file PATH]")),
        }
    }
    match file {
        None => Ok(EtlStart {
            source: "built-in sample".into(),
            csv: BUILT_IN_CSV.into(),
        }),
        Some(path) => {
            let csv =
                std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
            Ok(EtlStart { source: path, csv })
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    logs::init();
    let start = match input() {
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
