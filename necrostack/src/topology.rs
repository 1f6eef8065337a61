//! The flow as a graph: [`Topology`], which organs listen to which event types and which
//! event types they emit, found from the organs' types, and drawn as a Mermaid flowchart.

use std::fmt::Write as _;

/// The event types an organ can emit, as far as its type says.
///
/// `#[organ]` finds them from the handler's return type: an event `E`, `Option<E>`,
/// `Vec<E>`, [`Delayed<E>`](crate::Delayed), tuples and `Result`s of those. An
/// [`Emit`](crate::Emit) may hold events of any types, so an organ that returns one is
/// [`Unknown`](Emits::Unknown) unless it lists them: `#[organ(listens_to = A, emits = [B,
/// C])]`. A hand-written [`Organ`](crate::Organ) impl is `Unknown` unless it implements
/// [`Organ::emits`](crate::Organ::emits).
///
/// ```
/// use necrostack::topology::Emits;
/// use necrostack::{organ, Emit, Event, Organ};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Ping;
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Pong;
///
/// #[organ(listens_to = Ping)]
/// fn answer(_: &Ping) -> Result<Option<Pong>, std::io::Error> {
///     Ok(Some(Pong))
/// }
///
/// #[organ(listens_to = Ping)]
/// fn echo(_: &Ping) -> Emit {
///     Emit::new().with(Ping)
/// }
///
/// assert_eq!(answer::emits(), Emits::known(["Pong"]));
/// assert_eq!(echo::emits(), Emits::Unknown);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emits {
    /// These event type names (possibly none), each once, in the order the return type
    /// names them.
    Known(Vec<&'static str>),
    /// Not known from the types: an organ returning [`Emit`](crate::Emit) without
    /// `emits = [..]`, or a hand-written organ that does not say.
    Unknown,
}

impl Emits {
    /// [`Emits::Known`] with `types`, duplicates removed (the first kept).
    pub fn known(types: impl IntoIterator<Item = &'static str>) -> Self {
        let mut out: Vec<&'static str> = Vec::new();
        for name in types {
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Emits::Known(out)
    }

    /// The known event type names; `None` when unknown.
    pub fn types(&self) -> Option<&[&'static str]> {
        match self {
            Emits::Known(types) => Some(types),
            Emits::Unknown => None,
        }
    }
}

/// One organ in a [`Topology`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganNode {
    name: &'static str,
    listens_to: &'static str,
    emits: Emits,
}

impl OrganNode {
    /// The organ's name ([`Organ::NAME`](crate::Organ::NAME)).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The name of the event type it listens to.
    pub fn listens_to(&self) -> &'static str {
        self.listens_to
    }

    /// The event types it can emit.
    pub fn emits(&self) -> &Emits {
        &self.emits
    }
}

/// The organs of a spine and the event types between them: a graph with an edge from
/// each event type to the organs listening to it, and from each organ to the event types
/// it can emit. Get it with [`Spine::topology`](crate::Spine::topology); draw it with
/// [`to_mermaid`](Topology::to_mermaid).
///
/// Everything is in registration order: organs as registered, event types in the order
/// first met (each organ's input, then its outputs), so the text is the same on every
/// run.
///
/// ```
/// use necrostack::{organ, Event, Spine};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Ping;
/// #[derive(Event, Serialize, Deserialize, Debug, Clone, PartialEq)]
/// struct Pong;
///
/// #[organ(listens_to = Ping)]
/// fn answer(_: &Ping) -> Pong {
///     Pong
/// }
///
/// let spine = Spine::builder().organ(answer).build()?;
/// let topology = spine.topology();
/// assert_eq!(topology.event_types(), ["Ping", "Pong"]);
/// assert_eq!(topology.unheard(), ["Pong"]); // nothing listens to Pong
/// assert_eq!(
///     topology.to_mermaid(),
///     "flowchart LR\n    \
///      e0([\"Ping\"])\n    \
///      e1([\"Pong\"])\n    \
///      o0[\"answer\"]\n    \
///      e0 --> o0\n    \
///      o0 --> e1\n    \
///      class e1 unheard\n    \
///      classDef unheard stroke-dasharray: 4 4\n"
/// );
/// # Ok::<(), necrostack::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    organs: Vec<OrganNode>,
    event_types: Vec<&'static str>,
}

impl Topology {
    /// Adds an organ (in registration order).
    pub(crate) fn add(&mut self, name: &'static str, listens_to: &'static str, emits: Emits) {
        self.add_event_type(listens_to);
        if let Emits::Known(types) = &emits {
            for name in types {
                self.add_event_type(name);
            }
        }
        self.organs.push(OrganNode {
            name,
            listens_to,
            emits,
        });
    }

    fn add_event_type(&mut self, name: &'static str) {
        if !self.event_types.contains(&name) {
            self.event_types.push(name);
        }
    }

    /// The organs, in registration order.
    pub fn organs(&self) -> &[OrganNode] {
        &self.organs
    }

    /// Every event type that an organ listens to or can emit, in the order first met.
    pub fn event_types(&self) -> &[&'static str] {
        &self.event_types
    }

    /// The organs listening to `event_type`, in registration order.
    pub fn listeners<'a>(&'a self, event_type: &'a str) -> impl Iterator<Item = &'a OrganNode> {
        self.organs
            .iter()
            .filter(move |organ| organ.listens_to == event_type)
    }

    /// The organs that can emit `event_type`, in registration order (not counting organs
    /// whose outputs are unknown).
    pub fn emitters<'a>(&'a self, event_type: &'a str) -> impl Iterator<Item = &'a OrganNode> {
        self.organs.iter().filter(move |organ| {
            organ
                .emits
                .types()
                .is_some_and(|types| types.contains(&event_type))
        })
    }

    /// The event types that organs can emit but no organ listens to, in the order first
    /// met. Such events are acknowledged and counted as unrouted when they arrive (or are
    /// meant for another process).
    pub fn unheard(&self) -> Vec<&'static str> {
        self.event_types
            .iter()
            .copied()
            .filter(|name| self.listeners(name).next().is_none())
            .collect()
    }

    /// Every (organ, event type) edge to an event type no organ listens to.
    pub fn unheard_edges(&self) -> Vec<(&'static str, &'static str)> {
        self.organs
            .iter()
            .flat_map(|organ| {
                organ
                    .emits
                    .types()
                    .unwrap_or_default()
                    .iter()
                    .filter(|name| self.listeners(name).next().is_none())
                    .map(|name| (organ.name, *name))
            })
            .collect()
    }

    /// The organs whose outputs are [`Emits::Unknown`], in registration order.
    pub fn unknown_outputs(&self) -> impl Iterator<Item = &OrganNode> {
        self.organs
            .iter()
            .filter(|organ| organ.emits == Emits::Unknown)
    }

    /// The graph as a Mermaid flowchart, left to right.
    ///
    /// Event types are stadium-shaped nodes `e0([".."])`, organs rectangles `o0[".."]`,
    /// numbered in the order of [`event_types`](Self::event_types) and
    /// [`organs`](Self::organs). An edge goes from each event type to its listeners and
    /// from each organ to what it can emit. Event types nobody listens to get the class
    /// `unheard` (drawn dashed). An organ whose outputs are unknown gets a dotted edge to
    /// one hexagon node `unknown{{"unknown events"}}`: it returns `Emit` without
    /// `emits = [..]`.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        let event_id = |name: &str| {
            self.event_types
                .iter()
                .position(|n| *n == name)
                .map_or_else(String::new, |at| format!("e{at}"))
        };
        for (at, name) in self.event_types.iter().enumerate() {
            let _ = writeln!(out, "    e{at}([\"{}\"])", label(name));
        }
        for (at, organ) in self.organs.iter().enumerate() {
            let _ = writeln!(out, "    o{at}[\"{}\"]", label(organ.name));
        }
        let mut unknown = false;
        for (at, organ) in self.organs.iter().enumerate() {
            let _ = writeln!(out, "    {} --> o{at}", event_id(organ.listens_to));
            match &organ.emits {
                Emits::Known(types) => {
                    for name in types {
                        let _ = writeln!(out, "    o{at} --> {}", event_id(name));
                    }
                }
                Emits::Unknown => {
                    unknown = true;
                    let _ = writeln!(out, "    o{at} -.-> unknown");
                }
            }
        }
        if unknown {
            out.push_str("    unknown{{\"unknown events\"}}\n");
        }
        let unheard = self.unheard();
        if !unheard.is_empty() {
            let ids: Vec<String> = unheard.iter().map(|name| event_id(name)).collect();
            let _ = writeln!(out, "    class {} unheard", ids.join(","));
            out.push_str("    classDef unheard stroke-dasharray: 4 4\n");
        }
        out
    }
}

/// `name` as the text of a quoted Mermaid label: `"` and the characters Mermaid reads as
/// markup written as entity codes.
fn label(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_escape_quotes_and_markup() {
        assert_eq!(label("a\"b#<c>"), "a#quot;b#35;#lt;c#gt;");
        assert_eq!(label("order.placed/v2"), "order.placed/v2");
    }

    #[test]
    fn known_removes_duplicates_keeping_the_first() {
        assert_eq!(Emits::known(["B", "A", "B"]), Emits::Known(vec!["B", "A"]));
    }

    #[test]
    fn unknown_outputs_share_one_node() {
        let mut topology = Topology::default();
        topology.add("first", "A", Emits::Unknown);
        topology.add("second", "A", Emits::Unknown);
        let text = topology.to_mermaid();
        assert_eq!(text.matches("unknown{{").count(), 1, "{text}");
        assert!(
            text.contains("o0 -.-> unknown\n    e0 --> o1\n    o1 -.-> unknown\n"),
            "{text}"
        );
        assert!(topology.unheard().is_empty());
        assert_eq!(topology.unknown_outputs().count(), 2);
    }
}
