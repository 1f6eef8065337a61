//! `necrostack dlq ...`: listing, showing, replaying and purging dead letters.

use std::io::Write as _;

use necrostack::backend::redis::{DeadLetterQuery, RedisAdmin, ReplayOptions, ReplayOutcome};
use serde_json::{json, Value};

use crate::cli::{Dlq, Format, ListArgs, PurgeArgs, ReplayArgs};
use crate::error::CliError;
use crate::output::{clip, letter_json, or_dash, print_json, Table};

/// Runs one `dlq` subcommand.
pub async fn run(admin: &RedisAdmin, command: Dlq, format: Format) -> Result<(), CliError> {
    match command {
        Dlq::List(args) => list(admin, args, format).await,
        Dlq::Show { id } => show(admin, &id, format).await,
        Dlq::Replay(args) => replay(admin, args, format).await,
        Dlq::Purge(args) => purge(admin, args, format).await,
    }
}

/// Refuses, before connecting, what must not run as given.
pub fn check(command: &Dlq) -> Result<(), CliError> {
    match command {
        Dlq::Purge(args) if !args.yes => Err(CliError::Refused(
            "refusing to purge without --yes: purged dead letters are gone for good (look first with `necrostack dlq list`, or replay them)".to_owned(),
        )),
        _ => Ok(()),
    }
}

async fn list(admin: &RedisAdmin, args: ListArgs, format: Format) -> Result<(), CliError> {
    let mut query = DeadLetterQuery::new().limit(usize::try_from(args.limit).unwrap_or(usize::MAX));
    if let Some(after) = &args.after {
        query = query.after(after);
    }
    if let Some(t) = &args.event_type {
        query = query.event_type(t);
    }
    if let Some(o) = &args.organ {
        query = query.organ(o);
    }
    let page = admin.dead_letter_page(&query).await?;
    let dlq = admin.dead_letter_key();
    if format == Format::Json {
        let letters: Vec<Value> = page.letters.iter().map(letter_json).collect();
        print_json(&json!({
            "dead_letter_stream": dlq,
            "letters": letters,
            "next_after": page.next_after,
        }));
        return Ok(());
    }
    if page.letters.is_empty() {
        let what = if args.after.is_some() || args.event_type.is_some() || args.organ.is_some() {
            "no dead letters match"
        } else {
            "no dead letters (the dead-letter stream is empty or does not exist)"
        };
        println!("{what} in {dlq}");
        return Ok(());
    }
    let mut table = Table::new(&[
        "ID",
        "KIND",
        "EVENT TYPE",
        "ORGAN",
        "ATTEMPTS",
        "DEAD-LETTERED AT",
        "REASON",
    ]);
    for letter in &page.letters {
        table.row(vec![
            letter.id.clone(),
            letter.reason_kind.clone(),
            or_dash(letter.event_type()),
            or_dash(letter.organ.clone()),
            or_dash(letter.attempts.map(|a| a.to_string())),
            or_dash(letter.dead_lettered_at()),
            clip(&letter.reason, 60),
        ]);
    }
    print!("{}", table.render(0));
    match &page.next_after {
        Some(after) => println!(
            "{} shown; next page: necrostack dlq list --after {after}{}",
            page.letters.len(),
            repeat_filters(&args)
        ),
        None => println!("{} shown; no more", page.letters.len()),
    }
    Ok(())
}

/// The options of a listing to repeat for its next page.
fn repeat_filters(args: &ListArgs) -> String {
    let mut out = format!(" --limit {}", args.limit);
    if let Some(t) = &args.event_type {
        out.push_str(&format!(" --event-type {t}"));
    }
    if let Some(o) = &args.organ {
        out.push_str(&format!(" --organ {o}"));
    }
    out
}

async fn show(admin: &RedisAdmin, id: &str, format: Format) -> Result<(), CliError> {
    let Some(letter) = admin.dead_letter(id).await? else {
        return Err(CliError::NotFound(format!(
            "no dead letter {id} in {} (replayed or purged already?)",
            admin.dead_letter_key()
        )));
    };
    if format == Format::Json {
        print_json(&letter_json(&letter));
        return Ok(());
    }
    println!("dead letter {}", letter.id);
    for (name, value) in &letter.fields {
        if name == "envelope" || name == "original:envelope" {
            continue;
        }
        println!("  {name}: {}", String::from_utf8_lossy(value));
    }
    match letter.original_envelope() {
        Some(bytes) => {
            let pretty = serde_json::from_slice::<Value>(bytes)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
            println!("  envelope:");
            for line in pretty.lines() {
                println!("    {line}");
            }
        }
        None => println!("  envelope: none (this dead letter cannot be replayed)"),
    }
    Ok(())
}

/// Counts of a replay, for the summary and the exit code.
#[derive(Default, Clone, Copy)]
struct Tally {
    replayed: u64,
    would_replay: u64,
    not_replayable: u64,
    not_found: u64,
}

impl Tally {
    fn add(&mut self, outcome: &ReplayOutcome) {
        match outcome {
            ReplayOutcome::Replayed { .. } => self.replayed += 1,
            ReplayOutcome::WouldReplay { .. } => self.would_replay += 1,
            ReplayOutcome::NotReplayable { .. } => self.not_replayable += 1,
            ReplayOutcome::NotFound { .. } => self.not_found += 1,
            _ => {}
        }
    }
}

fn outcome_line(outcome: &ReplayOutcome) -> String {
    match outcome {
        ReplayOutcome::Replayed {
            dead_letter_id,
            event_id,
            event_type,
            stream_id,
        } => {
            format!("replayed {dead_letter_id}: event {event_id} ({event_type}) is stream entry {stream_id}")
        }
        ReplayOutcome::WouldReplay {
            dead_letter_id,
            event_id,
            event_type,
        } => {
            format!("would replay {dead_letter_id}: event {event_id} ({event_type})")
        }
        ReplayOutcome::NotReplayable {
            dead_letter_id,
            reason,
        } => {
            format!("cannot replay {dead_letter_id}: {reason}")
        }
        ReplayOutcome::NotFound { dead_letter_id } => {
            format!("not found {dead_letter_id}: no such dead letter (replayed or purged already?)")
        }
        other => format!("{other:?}"),
    }
}

fn outcome_json(outcome: &ReplayOutcome) -> Value {
    match outcome {
        ReplayOutcome::Replayed {
            dead_letter_id,
            event_id,
            event_type,
            stream_id,
        } => json!({
            "id": dead_letter_id, "outcome": "replayed", "event_id": event_id,
            "event_type": event_type, "stream_id": stream_id,
        }),
        ReplayOutcome::WouldReplay {
            dead_letter_id,
            event_id,
            event_type,
        } => json!({
            "id": dead_letter_id, "outcome": "would_replay", "event_id": event_id,
            "event_type": event_type,
        }),
        ReplayOutcome::NotReplayable {
            dead_letter_id,
            reason,
        } => json!({
            "id": dead_letter_id, "outcome": "not_replayable", "reason": reason,
        }),
        ReplayOutcome::NotFound { dead_letter_id } => json!({
            "id": dead_letter_id, "outcome": "not_found",
        }),
        other => json!({ "id": other.dead_letter_id(), "outcome": "unknown" }),
    }
}

async fn replay(admin: &RedisAdmin, args: ReplayArgs, format: Format) -> Result<(), CliError> {
    let options = ReplayOptions::new().dry_run(args.dry_run).rate(args.rate);
    let mut tally = Tally::default();
    let mut outcomes = Vec::new();
    // Each outcome is printed as it happens: a replay cut short still shows how far it got.
    let mut report = |outcome: &ReplayOutcome| {
        tally.add(outcome);
        match format {
            Format::Table => {
                println!("{}", outcome_line(outcome));
                let _ = std::io::stdout().flush();
            }
            Format::Json => outcomes.push(outcome_json(outcome)),
        }
    };
    if args.selection.all {
        admin.replay_all(&options, &mut report).await?;
    } else {
        for outcome in admin.replay(&args.selection.ids, &options).await? {
            report(&outcome);
        }
    }
    print_replay_summary(admin, &tally, outcomes, args.dry_run, format);
    let unreplayed = tally.not_replayable + tally.not_found;
    if unreplayed > 0 {
        return Err(CliError::Incomplete(format!(
            "{unreplayed} of the dead letters asked for cannot be replayed or were not found (see above)"
        )));
    }
    Ok(())
}

/// The last word of a replay: the outcomes as JSON, or the counts as a sentence.
fn print_replay_summary(
    admin: &RedisAdmin,
    tally: &Tally,
    outcomes: Vec<Value>,
    dry_run: bool,
    format: Format,
) {
    let Tally {
        replayed,
        would_replay,
        not_replayable,
        not_found,
    } = *tally;
    match format {
        Format::Json => print_json(&json!({
            "dry_run": dry_run,
            "outcomes": outcomes,
            "replayed": replayed,
            "would_replay": would_replay,
            "not_replayable": not_replayable,
            "not_found": not_found,
        })),
        Format::Table if replayed + would_replay + not_replayable + not_found == 0 => {
            println!("no dead letters to replay in {}", admin.dead_letter_key());
        }
        Format::Table if dry_run => println!(
            "dry run: {would_replay} would be replayed, {not_replayable} cannot be, {not_found} not found; nothing changed"
        ),
        Format::Table => println!(
            "{replayed} replayed into {}, {not_replayable} cannot be replayed, {not_found} not found",
            admin.stream_key()
        ),
    }
}

async fn purge(admin: &RedisAdmin, args: PurgeArgs, format: Format) -> Result<(), CliError> {
    let dlq = admin.dead_letter_key();
    if args.selection.all {
        let deleted = admin.purge_all().await?;
        match format {
            Format::Json => print_json(&json!({ "dead_letter_stream": dlq, "deleted": deleted })),
            Format::Table if deleted == 0 => println!("no dead letters to purge in {dlq}"),
            Format::Table => println!("purged {deleted} dead letters from {dlq}"),
        }
        return Ok(());
    }
    let outcomes = admin.purge(&args.selection.ids).await?;
    let missing = outcomes.iter().filter(|o| !o.deleted).count();
    match format {
        Format::Json => {
            let rows: Vec<Value> = outcomes
                .iter()
                .map(|o| json!({ "id": o.id, "deleted": o.deleted }))
                .collect();
            print_json(&json!({ "dead_letter_stream": dlq, "outcomes": rows }));
        }
        Format::Table => {
            for o in &outcomes {
                if o.deleted {
                    println!("purged {}", o.id);
                } else {
                    println!("not found {}: no such dead letter in {dlq}", o.id);
                }
            }
        }
    }
    if missing > 0 {
        return Err(CliError::Incomplete(format!(
            "{missing} of the dead letters asked for were not found"
        )));
    }
    Ok(())
}
