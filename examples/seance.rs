//! The séance: a ritual summons a spirit, the spirit answers, the answer is read as an
//! omen, and a scribe writes the omen down.
//!
//! SUMMON_RITUAL → SPIRIT_APPEARED → ANSWER_GENERATED → OMEN_REVEALED → printed omen.
//!
//! ```text
//! cargo run --example seance                     # summons Ada
//! cargo run --example seance -- Ada Grace Alan   # one ritual per spirit
//! NECROSTACK_LOG=json cargo run --example seance # logs as JSON lines on stderr
//! ```

#[path = "support/logs.rs"]
mod logs;

use std::sync::atomic::{AtomicUsize, Ordering};

use necrostack::{organ, Emit, Envelope, Event, Spine};
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

/// Returns `Emit`, which may hold events of several types.
#[organ(listens_to = AnswerGenerated)]
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

#[tokio::main]
async fn main() -> Result<(), necrostack::Error> {
    logs::init();
    let mut spirits: Vec<String> = std::env::args().skip(1).collect();
    if spirits.is_empty() {
        spirits.push("Ada".to_owned());
    }

    let spine = Spine::builder()
        .organ(summon)
        .organ(speak)
        .organ(interpret)
        .organ(Scribe::default())
        .build()?;
    for spirit in spirits {
        spine.emit(SummonRitual { spirit }).await?;
    }
    let report = spine.run_until_idle().await?;
    println!(
        "séance over: {} events, {} handled, {} failed",
        report.steps, report.succeeded, report.failed
    );
    Ok(())
}
