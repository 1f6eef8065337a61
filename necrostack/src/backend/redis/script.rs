//! The Lua script that completes a delivery in one atomic step.
//!
//! Redis runs a script without interleaving any other command, so the emitted events, the
//! dead letters and the `XACK` of the input are applied together or, if the script never
//! ran, not at all. The script first checks that the entry is still pending *for this
//! consumer*: if it was already acknowledged (an earlier attempt of this very call whose
//! reply was lost) or taken over by another consumer, it writes nothing. That makes the
//! call safe to retry after a broken connection, and it is why a completed handling's
//! output appears exactly once.

use redis::Script;

/// `KEYS[1]` stream, `KEYS[2]` dead-letter stream, `KEYS[3]` the sorted set of scheduled
/// events. `ARGV`: group, consumer, entry id, MAXLEN (0 = none), number of emitted
/// events, number of dead letters, number of scheduled events, then each emitted
/// envelope, then each dead letter as a field count followed by its field/value pairs,
/// then each scheduled event as its due time (Unix ms) and its envelope.
///
/// Returns 1 when applied, 0 when the entry is not pending, -1 when another consumer
/// owns it.
const COMPLETE: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 then return 0 end
if pending[1][2] ~= ARGV[2] then return -1 end
local maxlen = tonumber(ARGV[4])
local emitted = tonumber(ARGV[5])
local dead = tonumber(ARGV[6])
local scheduled = tonumber(ARGV[7])
local i = 8
for _ = 1, emitted do
  if maxlen > 0 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'envelope', ARGV[i])
  else
    redis.call('XADD', KEYS[1], '*', 'envelope', ARGV[i])
  end
  i = i + 1
end
for _ = 1, dead do
  local n = tonumber(ARGV[i])
  i = i + 1
  local fields = {}
  for j = 1, n * 2 do
    fields[j] = ARGV[i]
    i = i + 1
  end
  redis.call('XADD', KEYS[2], '*', unpack(fields))
end
for _ = 1, scheduled do
  redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
return 1
";

/// `KEYS[1]` stream, `KEYS[2]` the sorted set of scheduled events (score: due time in
/// Unix ms, member: the envelope). `ARGV`: how many to move at most, MAXLEN (0 = none).
/// Moves the events that are due by the Redis server's clock into the stream, in due
/// order, removing each from the set in the same step: whichever worker runs it, each
/// scheduled event is added to the stream once. Returns how many it moved.
const MOVE_DUE: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local maxlen = tonumber(ARGV[2])
for _, envelope in ipairs(due) do
  if maxlen > 0 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'envelope', envelope)
  else
    redis.call('XADD', KEYS[1], '*', 'envelope', envelope)
  end
  redis.call('ZREM', KEYS[2], envelope)
end
return #due
";

/// `KEYS[1]` stream. `ARGV`: group, consumer, then entry ids. Resets the idle time of
/// each entry that is still pending *for this consumer* (without counting a delivery),
/// so that entries a worker is slow to handle are not taken over; entries another
/// consumer owns by now are left alone. Returns how many were touched.
const TOUCH: &str = r"
local touched = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #pending == 1 and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
";

/// What the complete script found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// Written and acknowledged.
    Done,
    /// The entry was not pending any more: nothing written.
    NotPending,
    /// Another consumer owns the entry now: nothing written.
    OtherOwner,
}

impl Applied {
    pub(crate) fn from_code(code: i64) -> Self {
        match code {
            1 => Applied::Done,
            -1 => Applied::OtherOwner,
            _ => Applied::NotPending,
        }
    }
}

/// The script, with its SHA computed once.
pub(crate) struct Scripts {
    pub(crate) complete: Script,
    pub(crate) touch: Script,
    pub(crate) move_due: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            complete: Script::new(COMPLETE),
            touch: Script::new(TOUCH),
            move_due: Script::new(MOVE_DUE),
        }
    }
}

/// What one completion writes besides the acknowledgement.
#[derive(Default)]
pub(crate) struct Writes {
    /// Encoded envelopes to add to the stream, in order.
    pub(crate) emitted: Vec<Vec<u8>>,
    /// Dead letters, as field/value pairs.
    pub(crate) dead_letters: Vec<Vec<(String, Vec<u8>)>>,
    /// Encoded envelopes to schedule, with their due time in Unix milliseconds.
    pub(crate) scheduled: Vec<(i64, Vec<u8>)>,
}

/// The arguments of one completion, built before the first attempt so retries reuse them.
pub(crate) struct CompleteArgs {
    pub(crate) keys: [String; 3],
    pub(crate) argv: Vec<Vec<u8>>,
}

/// The keys a completion writes to: stream, dead-letter stream, scheduled set.
pub(crate) struct Keys<'a> {
    pub(crate) stream: &'a str,
    pub(crate) dead_letters: &'a str,
    pub(crate) scheduled: &'a str,
}

/// Which delivery a completion acknowledges.
pub(crate) struct Entry<'a> {
    pub(crate) group: &'a str,
    pub(crate) consumer: &'a str,
    pub(crate) id: &'a str,
}

impl CompleteArgs {
    pub(crate) fn new(
        keys: &Keys<'_>,
        entry: &Entry<'_>,
        max_len: Option<usize>,
        writes: Writes,
    ) -> Self {
        let Writes {
            emitted,
            dead_letters,
            scheduled,
        } = writes;
        let mut argv =
            Vec::with_capacity(7 + emitted.len() + dead_letters.len() * 20 + scheduled.len() * 2);
        argv.push(entry.group.as_bytes().to_vec());
        argv.push(entry.consumer.as_bytes().to_vec());
        argv.push(entry.id.as_bytes().to_vec());
        argv.push(max_len.unwrap_or(0).to_string().into_bytes());
        argv.push(emitted.len().to_string().into_bytes());
        argv.push(dead_letters.len().to_string().into_bytes());
        argv.push(scheduled.len().to_string().into_bytes());
        argv.extend(emitted);
        for fields in dead_letters {
            argv.push(fields.len().to_string().into_bytes());
            for (name, value) in fields {
                argv.push(name.into_bytes());
                argv.push(value);
            }
        }
        for (due_ms, envelope) in scheduled {
            argv.push(due_ms.to_string().into_bytes());
            argv.push(envelope);
        }
        CompleteArgs {
            keys: [
                keys.stream.to_owned(),
                keys.dead_letters.to_owned(),
                keys.scheduled.to_owned(),
            ],
            argv,
        }
    }

    /// This entry's arguments without the group and consumer (`ARGV[3]` onwards): what
    /// the batched completion script (`batcher.rs`) takes per entry.
    pub(crate) fn entry_argv(&self) -> &[Vec<u8>] {
        &self.argv[2..]
    }

    /// Runs the script once (`EVALSHA`, loading it first if Redis lost its script cache).
    pub(crate) async fn run(
        &self,
        scripts: &Scripts,
        connection: &mut super::connection::Connection,
    ) -> redis::RedisResult<Applied> {
        let mut invocation = scripts.complete.prepare_invoke();
        invocation
            .key(&self.keys[0])
            .key(&self.keys[1])
            .key(&self.keys[2]);
        for arg in &self.argv {
            invocation.arg(arg.as_slice());
        }
        let code: i64 = invocation.invoke_async(connection).await?;
        Ok(Applied::from_code(code))
    }
}
