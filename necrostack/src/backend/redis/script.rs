//! The Lua scripts: the one that completes a delivery in one atomic step, and those of
//! partitioned streams (membership, leases, fenced reads and completions, forwarding).
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

/// The complete script of a partition (`KEYS[1]` stream, `KEYS[2]` its scheduled set,
/// `KEYS[3]` its outbox, `KEYS[4]` its lease; all in the partition's slot). `ARGV`: group,
/// consumer, entry id, MAXLEN (0 = none), the lease value `<consumer>:<token>` the
/// delivery was read under, number of emitted events, of scheduled events and of outbox
/// entries, then each emitted envelope, each scheduled event as due time and envelope,
/// and each outbox entry as a field count and its field/value pairs.
///
/// The fencing check comes first: if the lease is not (any more) the one the delivery was
/// read under, it writes nothing and returns -2, so a worker that lost its partition
/// (paused past its lease, say) cannot acknowledge or emit behind the new owner's back.
/// Output for other partitions and dead letters (other slots) go to the outbox, in the
/// same atomic step as the ack.
const COMPLETE_FENCED: &str = r"
if redis.call('GET', KEYS[4]) ~= ARGV[5] then return -2 end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 then return 0 end
if pending[1][2] ~= ARGV[2] then return -1 end
local maxlen = tonumber(ARGV[4])
local emitted = tonumber(ARGV[6])
local scheduled = tonumber(ARGV[7])
local outbox = tonumber(ARGV[8])
local i = 9
for _ = 1, emitted do
  if maxlen > 0 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'envelope', ARGV[i])
  else
    redis.call('XADD', KEYS[1], '*', 'envelope', ARGV[i])
  end
  i = i + 1
end
for _ = 1, scheduled do
  redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
for _ = 1, outbox do
  local n = tonumber(ARGV[i])
  i = i + 1
  local fields = {}
  for j = 1, n * 2 do
    fields[j] = ARGV[i]
    i = i + 1
  end
  redis.call('XADD', KEYS[3], '*', unpack(fields))
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
return 1
";

/// `KEYS[1]` a partition's stream, `KEYS[2]` its lease. `ARGV`: group, consumer, lease
/// value, count. Reads new entries (`XREADGROUP ... >`, not blocking) only while the lease
/// is the caller's, so a worker that lost the partition takes nothing more from it.
/// Returns `{0}` when the lease is not the caller's, `{1, entries}`, or `{2, last id}`
/// when there is nothing new (the id to wait after with a plain, side-effect free
/// `XREAD BLOCK`).
const FENCED_READ: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return {0} end
local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[4], 'STREAMS', KEYS[1], '>')
if read and read[1] and #read[1][2] > 0 then return {1, read[1][2]} end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #last == 0 then return {2, '0-0'} end
return {2, last[1][1]}
";

/// `KEYS[1]` the group's members sorted set. `ARGV`: consumer, TTL (ms), `1` to leave.
/// Records the consumer as alive until now + TTL by the *server's* clock (so the workers'
/// clocks do not matter), drops expired members, and returns the live ones.
const MEMBERS: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ARGV[3] == '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
else
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], ttl * 3)
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

/// `KEYS[1]` a partition's lease, `KEYS[2]` its fence counter. `ARGV`: consumer, TTL (ms).
/// Takes the lease if it is free (a new fencing token from `INCR`), or extends it if it
/// is already this consumer's (same token). Returns the token, or 0 when another
/// consumer holds it.
const ACQUIRE: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local owner, token = string.match(current, '^(.*):(%d+)$')
  if owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token
";

/// `KEYS[1]` a lease. `ARGV`: lease value, TTL (ms). Extends the lease only if it is still
/// this value. Returns 1 if extended, 0 if lost.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// `KEYS[1]` a lease. `ARGV`: lease value. Deletes the lease only if it is still this
/// value, so that the next owner can take it at once. Returns 1 if deleted.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
";

/// `KEYS[1]` the forward mark `{destination}:fwd:<source>`, `KEYS[2]` the destination
/// (stream, or scheduled set); both in the destination's slot. `ARGV`: the outbox entry
/// id, kind (`event`, `scheduled` or `dead`), MAXLEN (0 = none), due (ms), then the
/// field/value pairs to add (for `scheduled`, `envelope` and the envelope). Adds the
/// entry only if its outbox id is above the mark, and raises the mark: forwarding the
/// same outbox entry twice (a forwarder died between this and the `XDEL` from the outbox)
/// adds it once, and entries arrive in outbox order. Returns 1 if added, 0 if seen.
const FORWARD: &str = r"
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local mark = redis.call('GET', KEYS[1])
if mark then
  local ms, seq = parse(ARGV[1])
  local mark_ms, mark_seq = parse(mark)
  if ms < mark_ms or (ms == mark_ms and seq <= mark_seq) then return 0 end
end
if ARGV[2] == 'scheduled' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[6])
else
  local fields = {}
  for j = 5, #ARGV do fields[#fields + 1] = ARGV[j] end
  local maxlen = tonumber(ARGV[3])
  if maxlen > 0 and ARGV[2] == 'event' then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*', unpack(fields))
  else
    redis.call('XADD', KEYS[2], '*', unpack(fields))
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
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
    /// The partition's lease is no longer the one the delivery was read under: nothing
    /// written (partitioned streams only).
    Fenced,
}

impl Applied {
    pub(crate) fn from_code(code: i64) -> Self {
        match code {
            1 => Applied::Done,
            -1 => Applied::OtherOwner,
            -2 => Applied::Fenced,
            _ => Applied::NotPending,
        }
    }
}

/// The script, with its SHA computed once.
pub(crate) struct Scripts {
    pub(crate) complete: Script,
    pub(crate) touch: Script,
    pub(crate) move_due: Script,
    pub(crate) complete_fenced: Script,
    pub(crate) fenced_read: Script,
    pub(crate) members: Script,
    pub(crate) acquire: Script,
    pub(crate) renew: Script,
    pub(crate) release: Script,
    pub(crate) forward: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            complete: Script::new(COMPLETE),
            touch: Script::new(TOUCH),
            move_due: Script::new(MOVE_DUE),
            complete_fenced: Script::new(COMPLETE_FENCED),
            fenced_read: Script::new(FENCED_READ),
            members: Script::new(MEMBERS),
            acquire: Script::new(ACQUIRE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            forward: Script::new(FORWARD),
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
    pub(crate) keys: Vec<String>,
    pub(crate) argv: Vec<Vec<u8>>,
    /// Whether this is a partition's fenced completion.
    fenced: bool,
}

/// What one completion on a partition writes besides the acknowledgement: what stays in
/// the partition's slot directly, the rest as outbox entries.
#[derive(Default)]
pub(crate) struct FencedWrites {
    /// Encoded envelopes for this partition's stream, in order.
    pub(crate) emitted: Vec<Vec<u8>>,
    /// Encoded envelopes for this partition's schedule, with due time (Unix ms).
    pub(crate) scheduled: Vec<(i64, Vec<u8>)>,
    /// Outbox entries (destination, kind, due, payload fields), in order.
    pub(crate) outbox: Vec<Vec<(String, Vec<u8>)>>,
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
            keys: vec![
                keys.stream.to_owned(),
                keys.dead_letters.to_owned(),
                keys.scheduled.to_owned(),
            ],
            argv,
            fenced: false,
        }
    }

    /// The arguments of a partition's fenced completion, read under `lease`.
    pub(crate) fn fenced(
        keys: &super::partition::PartitionKeys,
        entry: &Entry<'_>,
        max_len: Option<usize>,
        lease: &str,
        writes: FencedWrites,
    ) -> Self {
        let FencedWrites {
            emitted,
            scheduled,
            outbox,
        } = writes;
        let mut argv =
            Vec::with_capacity(8 + emitted.len() + scheduled.len() * 2 + outbox.len() * 10);
        argv.push(entry.group.as_bytes().to_vec());
        argv.push(entry.consumer.as_bytes().to_vec());
        argv.push(entry.id.as_bytes().to_vec());
        argv.push(max_len.unwrap_or(0).to_string().into_bytes());
        argv.push(lease.as_bytes().to_vec());
        argv.push(emitted.len().to_string().into_bytes());
        argv.push(scheduled.len().to_string().into_bytes());
        argv.push(outbox.len().to_string().into_bytes());
        argv.extend(emitted);
        for (due_ms, envelope) in scheduled {
            argv.push(due_ms.to_string().into_bytes());
            argv.push(envelope);
        }
        for fields in outbox {
            argv.push(fields.len().to_string().into_bytes());
            for (name, value) in fields {
                argv.push(name.into_bytes());
                argv.push(value);
            }
        }
        CompleteArgs {
            keys: vec![
                keys.stream.clone(),
                keys.scheduled.clone(),
                keys.outbox.clone(),
                keys.lease.clone(),
            ],
            argv,
            fenced: true,
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
        let script = if self.fenced {
            &scripts.complete_fenced
        } else {
            &scripts.complete
        };
        let mut invocation = script.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        for arg in &self.argv {
            invocation.arg(arg.as_slice());
        }
        let code: i64 = invocation.invoke_async(connection).await?;
        Ok(Applied::from_code(code))
    }
}
