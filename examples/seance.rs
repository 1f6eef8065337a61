//! The séance: a ritual summons a spirit, the spirit answers, the answer is read as an
//! omen, and a scribe writes the omen down.
//!
//! SUMMON_RITUAL → SPIRIT_APPEARED → ANSWER_GENERATED → OMEN_REVEALED → printed omen.
//!
//! Each event is printed as the spine hands it to an organ: its type, a short id, its
//! depth (hops from the ritual that started it), the event that caused it and the organ
//! that handles it. So the output shows the routing (which organ gets which type) and
//! the lineage (every event points at its cause, back to the root).
//!
//! ```text
//! cargo run --example seance                     # summons Ada
//! cargo run --example seance -- Ada Grace Alan   # one ritual per spirit
//! cargo run --example seance -- --help           # the options
//! cargo run --example seance -- --topology       # the flow as a Mermaid flowchart
//! NECROSTACK_LOG=json cargo run --example seance # logs as JSON lines on stderr
//! cargo run --example seance -- --nats nats://127.0.0.1:4222   # the same on NATS JetStream
//! ```

#[path = "support/logs.rs"]
mod logs;
#[path = "support/nats_backend.rs"]
mod nats_backend;

use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;
use nats_backend::NatsArgs;
use necrostack::{
    organ, Backend, Emit, Emits, Envelope, Event, Handling, Organ, Spine, SpineBuilder, Uuid,
};
use serde::{Deserialize, Serialize};

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "SUMMON_RITUAL")]
struct SummonRitual {
    spirit: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "SPIRIT_APPEARED")]
struct SpiritAppeared {
    spirit: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "ANSWER_GENERATED")]
struct AnswerGenerated {
    spirit: String,
    answer: String,
}

#[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[event(name = "OMEN_REVEALED")]
struct OmenRevealed {
    omen: String,
}

/// A sync organ: the ritual always brings the spirit.
#[organ(listens_to = SummonRitual)]
fn summon(ritual: &SummonRitual) -> SpiritAppeared {
    SpiritAppeared {
        spirit: ritual.spirit.clone(),
    }
}

/// An async organ that sees the whole envelope (ids, lineage) and may fail.
#[organ(listens_to = SpiritAppeared)]
async fn speak(event: Envelope<SpiritAppeared>) -> Result<AnswerGenerated, std::io::Error> {
    if event.spirit.trim().is_empty() {
        return Err(std::io::Error::other(
            "no spirit answered: the name was empty",
        ));
    }
    Ok(AnswerGenerated {
        spirit: event.spirit.clone(),
        answer: format!("the {} knocks", ordinal(event.spirit.len())),
    })
}

/// Returns `Emit`, which may hold events of several types; `emits` lists the ones it
/// holds, for the picture of the flow (`--topology`).
#[organ(listens_to = AnswerGenerated, emits = [OmenRevealed])]
fn interpret(answer: &AnswerGenerated) -> Emit {
    Emit::new().with(OmenRevealed {
        omen: format!("{} whispers: {}", answer.spirit, answer.answer),
    })
}

/// A stateful organ: it counts the omens it wrote down.
#[derive(Default)]
struct Scribe {
    written: AtomicUsize,
}

#[organ(listens_to = OmenRevealed)]
impl Scribe {
    async fn handle(&self, omen: &OmenRevealed) {
        let n = self.written.fetch_add(1, Ordering::Relaxed) + 1;
        println!("omen {n}: {}", omen.omen);
    }
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, x) if x != 11 => "st",
        (2, x) if x != 12 => "nd",
        (3, x) if x != 13 => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Wraps an organ to print each event just before the organ handles it. `Organ` is a
/// small public trait, so a wrapper like this needs no macro: it delegates to the organ.
struct Traced<O>(O);

impl<O: Organ> Organ for Traced<O> {
    type Event = O::Event;
    const NAME: &'static str = O::NAME;

    fn call<'a>(&'a self, event: &'a Envelope<O::Event>) -> Handling<'a> {
        row(
            <O::Event as Event>::NAME,
            &short(event.id()),
            &event.depth().to_string(),
            &event.causation_id().map_or("-".to_owned(), short),
            O::NAME,
        );
        self.0.call(event)
    }

    /// What the wrapped organ emits, so that the picture of the flow stays the same.
    fn emits() -> Emits {
        O::emits()
    }
}

/// One line of the trace table.
fn row(event: &str, id: &str, depth: &str, cause: &str, organ: &str) {
    println!("{event:<17} {id:<8}  {depth:>5}  {cause:<9}  {organ}");
}

/// The last 8 hex digits of an id: its random part, so ids made in one millisecond
/// still differ.
fn short(id: Uuid) -> String {
    let hex = id.simple().to_string();
    hex[hex.len() - 8..].to_owned()
}

/// The séance: summons each spirit named and prints what happened.
#[derive(Debug, Parser)]
#[command(name = "seance", version)]
struct Args {
    /// The spirits to summon, one ritual each, at most 100 [default: Ada]
    #[arg(value_name = "SPIRIT", num_args = 0..=100)]
    spirits: Vec<String>,
    /// Print only the omens and the summary, not each event as it flows
    #[arg(long, short)]
    quiet: bool,
    /// Print the flow as a Mermaid flowchart (organs, the event types between them) and exit
    #[arg(long)]
    topology: bool,
    #[command(flatten)]
    nats: NatsArgs,
}

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    logs::init();
    let mut args = Args::parse();
    if args.spirits.is_empty() {
        args.spirits.push("Ada".to_owned());
    }
    match args.nats.nats.clone() {
        // The flow's picture needs no broker.
        None => seance(Spine::builder(), args).await,
        Some(_) if args.topology => seance(Spine::builder(), args).await,
        Some(url) => {
            let backend = nats_backend::connect("seance", &url).await?;
            let result = seance(Spine::builder().backend(backend.clone()), args).await;
            nats_backend::clean_up(&backend, &url).await;
            result
        }
    }
}

/// Holds the séance on the spine `builder` makes (in memory, or on NATS).
async fn seance<B: Backend>(builder: SpineBuilder<B>, args: Args) -> Result<(), necrostack::Error> {
    let spine = if args.quiet {
        builder
            .organ(summon)
            .organ(speak)
            .organ(interpret)
            .organ(Scribe::default())
            .build()?
    } else {
        if !args.topology {
            row("event", "id", "depth", "caused by", "handled by");
        }
        builder
            .organ(Traced(summon))
            .organ(Traced(speak))
            .organ(Traced(interpret))
            .organ(Traced(Scribe::default()))
            .build()?
    };
    if args.topology {
        print!("{}", spine.topology().to_mermaid());
        return Ok(());
    }
    for spirit in args.spirits {
        spine.emit(SummonRitual { spirit }).await?;
    }
    let report = spine.run_until_idle().await?;
    println!(
        "séance over: {} events, {} handled, {} failed",
        report.steps, report.succeeded, report.failed
    );
    Ok(())
}
