//! A small ETL pipeline: read sales rows from a CSV, clean them, type them, total them
//! per region, print a summary.
//!
//! ROW_READ (one row's cells, as read) → clean → ROW_CLEANED (trimmed) or ROW_DROPPED (a
//! field missing) → transform → ROW_TYPED (units and revenue as numbers), or an organ
//! error for a row whose numbers do not parse → Tally (totals per region) → summary.
//!
//! The input is sales data with the header `date,region,product,units,unit_price`
//! (columns may come in any order; a row with any empty cell, extra columns included,
//! is dropped). The file is read on a thread while the spine runs, into a bounded
//! queue, so a file of any size is handled in constant memory. It is read by the `csv`
//! crate (RFC 4180 quoting, a UTF-8 byte order mark and Windows line ends accepted); a
//! broken file is an error naming its line.
//!
//! Units and prices are summed exactly: units as whole numbers up to 18446744073709551615
//! (`u64`), prices as decimals with up to four places, totals in 128-bit integers; a row
//! whose numbers do not fit is reported with the reason, never wrapped or rounded away.
//!
//! ```text
//! cargo run --example etl -- --help                # the options
//! cargo run --example etl                          # a small built-in CSV
//! cargo run --example etl -- --file sales.csv      # your own CSV
//! NECROSTACK_LOG=json cargo run --example etl      # logs as JSON lines on stderr
//! cargo run --example etl -- --nats nats://127.0.0.1:4222   # the same on NATS JetStream
//! ```
//!
//! The organs use the handler forms a user meets first: an async function that sees the
//! envelope and returns a tuple, a sync function that may fail (`Result`), and stateful
//! `impl` blocks sharing one summary.

#[path = "support/feed.rs"]
mod feed;
#[path = "support/file_input.rs"]
mod file_input;
#[path = "support/logs.rs"]
mod logs;
#[path = "support/nats_backend.rs"]
mod nats_backend;
#[path = "support/progress.rs"]
mod progress;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use clap::Parser;
use necrostack::{organ, Backend, Envelope, Event, InMemoryBackend, Spine};
use serde::{Deserialize, Serialize};

use file_input::{as_text, InputError, Shape, Source};
use nats_backend::NatsArgs;
use progress::Progress;

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
/// What a sales file holds: a CSV with the [`REQUIRED`] columns (or JSON `{"sales": [...]}`).
const SHAPE: Shape = Shape {
    key: "sales",
    needs: &REQUIRED,
};
/// The highest unit price, and its decimal places.
const MAX_PRICE: u128 = 1_000_000_000_000;
const PRICE_PLACES: u32 = 4;
const PRICE_SCALE: u128 = 10u128.pow(PRICE_PLACES);
/// Rows queued in memory ahead of the spine; the reader waits when it is full.
const QUEUE: usize = 4096;
/// Rows submitted per call to the backend.
const BATCH: usize = 64;

/// A small ETL pipeline: read a sales CSV, clean it, type and total it per region, print
/// a summary.
#[derive(Debug, Parser)]
#[command(name = "etl", version)]
struct Args {
    /// Read sales from PATH, a CSV with the header date,region,product,units,unit_price
    /// (any order; extra columns must not be empty either) [default: a built-in sample]
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Show no progress bar (it shows on a terminal when a run takes over 2 s)
    #[arg(long, short)]
    quiet: bool,
    /// Print the flow as a Mermaid flowchart (organs, the event types between them) and exit
    #[arg(long)]
    topology: bool,
    #[command(flatten)]
    nats: NatsArgs,
}

/// One row as read: every cell under its column name; `None` where the row is short.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ROW_READ")]
struct RowRead {
    line: u64,
    cells: BTreeMap<String, Option<String>>,
}

/// A row with every field present, trimmed.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ROW_CLEANED")]
struct RowCleaned {
    line: u64,
    region: String,
    units: String,
    unit_price: String,
}

/// A row dropped because a field was missing or empty.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ROW_DROPPED")]
struct RowDropped {
    line: u64,
}

/// A row whose numbers parsed: units, and revenue in ten-thousandths.
#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ROW_TYPED")]
struct RowTyped {
    line: u64,
    region: String,
    units: u128,
    revenue: u128,
}

/// An async organ that sees the envelope: trims every cell, and drops the row when one
/// is missing or empty.
#[organ(listens_to = RowRead)]
async fn clean(row: Envelope<RowRead>) -> (Option<RowCleaned>, Option<RowDropped>) {
    let cell = |name: &str| row.cells.get(name).cloned().flatten().unwrap_or_default();
    let missing = row
        .cells
        .values()
        .any(|c| c.as_deref().is_none_or(|c| c.trim().is_empty()));
    if missing {
        tracing::info!(correlation_id = %row.correlation_id(), line = row.line, "row dropped: missing field");
        return (None, Some(RowDropped { line: row.line }));
    }
    let cleaned = RowCleaned {
        line: row.line,
        region: cell("region").trim().to_owned(),
        units: cell("units").trim().to_owned(),
        unit_price: cell("unit_price").trim().to_owned(),
    };
    (Some(cleaned), None)
}

/// A row whose units and price are not a count and a price.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: units {units:?} / unit_price {price:?} are not a count and a price")]
struct InvalidRow {
    line: u64,
    units: String,
    price: String,
}

/// A sync organ that may fail: types the numbers. A row that does not type is an organ
/// error: the spine logs it and goes on, and the failure hook keeps the reason.
#[organ(listens_to = RowCleaned)]
fn transform(row: &RowCleaned) -> Result<RowTyped, InvalidRow> {
    let invalid = || InvalidRow {
        line: row.line,
        units: row.units.clone(),
        price: row.unit_price.clone(),
    };
    let units = u128::from(row.units.parse::<u64>().map_err(|_| invalid())?);
    let price = parse_price(&row.unit_price).ok_or_else(invalid)?;
    Ok(RowTyped {
        line: row.line,
        region: row.region.clone(),
        units,
        // At most (2^64 - 1) × 10^16: far inside 128 bits.
        revenue: units * price,
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

/// Units, and revenue in ten-thousandths: exact whole numbers.
#[derive(Debug, Clone, Copy, Default)]
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

/// What the run counted, shared by the tally organs and `main`.
#[derive(Debug, Default)]
struct Summary {
    loaded: u64,
    dropped: u64,
    /// Rows whose numbers did not parse or fit, with the reason.
    invalid: Vec<String>,
    transformed: u64,
    regions: BTreeMap<String, Totals>,
    total: Totals,
}

type Shared = Arc<Mutex<Summary>>;

fn lock(summary: &Shared) -> MutexGuard<'_, Summary> {
    summary.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A stateful organ: adds each typed row to its region's totals and the grand total.
struct Tally(Shared);

#[organ(listens_to = RowTyped)]
impl Tally {
    fn handle(&self, row: &RowTyped) {
        let mut summary = lock(&self.0);
        let region = summary
            .regions
            .get(&row.region)
            .copied()
            .unwrap_or_default();
        let sums = region
            .plus(row.units, row.revenue)
            .zip(summary.total.plus(row.units, row.revenue));
        let Some((region, total)) = sums else {
            let reason = format!(
                "line {}: the totals would pass what 128 bits hold",
                row.line
            );
            summary.invalid.push(reason);
            return;
        };
        summary.regions.insert(row.region.clone(), region);
        summary.total = total;
        summary.transformed += 1;
    }
}

/// A stateful organ: counts the rows dropped by the cleaner.
struct CountDropped(Shared);

#[organ(listens_to = RowDropped)]
impl CountDropped {
    fn handle(&self, _row: &RowDropped) {
        lock(&self.0).dropped += 1;
    }
}

/// The summary, as printed.
fn report(source: &str, summary: &Summary) -> String {
    let mut out = format!("ETL summary for {source}\n");
    out += &format!("  rows loaded:      {}\n", summary.loaded);
    out += &format!("  rows dropped:     {} (missing fields)\n", summary.dropped);
    out += &format!("  rows invalid:     {}\n", summary.invalid.len());
    for reason in &summary.invalid {
        out += &format!("    {reason}\n");
    }
    out += &format!("  rows transformed: {}\n", summary.transformed);
    for (region, totals) in &summary.regions {
        out += &format!(
            "  region {region:<10} units {:>6}  revenue {:>10}\n",
            totals.units,
            money(totals.revenue)
        );
    }
    out += &format!(
        "  total            units {:>6}  revenue {:>10}\n",
        summary.total.units,
        money(summary.total.revenue)
    );
    out
}

/// A run that failed: the input (exit 2) or the spine (exit 1).
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Spine(#[from] necrostack::Error),
}

/// Reads the rows and submits them in batches while the spine runs.
async fn submit<B: Backend>(
    spine: Spine<B>,
    mut feed: file_input::Feed,
    summary: Shared,
    progress: Arc<Progress>,
) -> Result<(), RunError> {
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(entry) = feed.entries.recv().await {
        let entry = entry?;
        let cells = entry.fields.iter().map(|(name, value)| {
            let text = (!value.is_null()).then(|| as_text(Some(value)));
            (name.clone(), text)
        });
        batch.push(RowRead {
            line: entry.place,
            cells: cells.collect(),
        });
        let loaded = {
            let mut summary = lock(&summary);
            summary.loaded += 1;
            summary.loaded
        };
        if batch.len() == BATCH {
            let read = feed.bytes_read.load(Ordering::Relaxed);
            progress.set(read, || format!("{loaded} rows"));
            spine.emit_all(batch.drain(..)).await?;
        }
    }
    spine.emit_all(batch).await?;
    Ok(())
}

/// Runs the flow in memory, or on NATS with `--nats`.
async fn run(args: &Args) -> Result<String, RunError> {
    match &args.nats.nats {
        None => run_on(InMemoryBackend::bounded(QUEUE), args).await,
        // The flow's picture needs no broker.
        Some(_) if args.topology => run_on(InMemoryBackend::bounded(QUEUE), args).await,
        Some(url) => {
            let backend = nats_backend::connect("etl", url).await?;
            let result = run_on(backend.clone(), args).await;
            nats_backend::clean_up(&backend, url).await;
            result
        }
    }
}

async fn run_on<B: Backend>(backend: B, args: &Args) -> Result<String, RunError> {
    let source = match &args.file {
        Some(path) => Source::File(path.clone()),
        None => Source::BuiltIn {
            name: "built-in sample",
            text: BUILT_IN_CSV,
        },
    };
    let name = source.to_string();
    let summary = Shared::default();
    let failures = Arc::clone(&summary);
    let spine = Spine::builder()
        .backend(backend)
        .organ(clean)
        .organ(transform)
        .organ(Tally(Arc::clone(&summary)))
        .organ(CountDropped(Arc::clone(&summary)))
        .on_failure(move |failure| lock(&failures).invalid.push(failure.error.clone()))
        // The input's length is not known up front; the depth limit still stops loops.
        .max_steps(usize::MAX)
        .build()?;
    if args.topology {
        return Ok(spine.topology().to_mermaid());
    }
    let feed = file_input::spawn(source, SHAPE);
    let progress = Arc::new(Progress::new(args.quiet, feed.size, "bytes"));
    let submitting = submit(
        spine.clone(),
        feed,
        Arc::clone(&summary),
        Arc::clone(&progress),
    );
    let (_, submitted) = feed::run_while_producing(&spine, submitting).await?;
    progress.finish();
    submitted?;
    let summary = lock(&summary);
    Ok(report(&name, &summary))
}

#[tokio::main]
async fn main() -> ExitCode {
    logs::init();
    let args = Args::parse();
    match run(&args).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("etl: {error}");
            match error {
                RunError::Input(_) => ExitCode::from(2),
                RunError::Spine(_) => ExitCode::FAILURE,
            }
        }
    }
}
