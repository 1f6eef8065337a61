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

/// `KEYS[1]` stream, `KEYS[2]` dead-letter stream. `ARGV`: group, consumer, entry id,
/// MAXLEN (0 = none), number of emitted events, number of dead letters, then each emitted
/// envelope, then each dead letter as a field count followed by its field/value pairs.
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
local i = 7
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
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
return 1
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
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            complete: Script::new(COMPLETE),
            touch: Script::new(TOUCH),
        }
    }
}

/// The arguments of one completion, built before the first attempt so retries reuse them.
pub(crate) struct CompleteArgs {
    pub(crate) keys: [String; 2],
    pub(crate) argv: Vec<Vec<u8>>,
}

impl CompleteArgs {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        stream: String,
        dead_letter_stream: String,
        group: &str,
        consumer: &str,
        entry_id: &str,
        max_len: Option<usize>,
        emitted: Vec<Vec<u8>>,
        dead_letters: Vec<Vec<(String, Vec<u8>)>>,
    ) -> Self {
        let mut argv = Vec::with_capacity(6 + emitted.len() + dead_letters.len() * 20);
        argv.push(group.as_bytes().to_vec());
        argv.push(consumer.as_bytes().to_vec());
        argv.push(entry_id.as_bytes().to_vec());
        argv.push(max_len.unwrap_or(0).to_string().into_bytes());
        argv.push(emitted.len().to_string().into_bytes());
        argv.push(dead_letters.len().to_string().into_bytes());
        argv.extend(emitted);
        for fields in dead_letters {
            argv.push(fields.len().to_string().into_bytes());
            for (name, value) in fields {
                argv.push(name.into_bytes());
                argv.push(value);
            }
        }
        CompleteArgs {
            keys: [stream, dead_letter_stream],
            argv,
        }
    }

    /// Runs the script once (`EVALSHA`, loading it first if Redis lost its script cache).
    pub(crate) async fn run(
        &self,
        scripts: &Scripts,
        connection: &mut redis::aio::MultiplexedConnection,
    ) -> redis::RedisResult<Applied> {
        let mut invocation = scripts.complete.prepare_invoke();
        invocation.key(&self.keys[0]).key(&self.keys[1]);
        for arg in &self.argv {
            invocation.arg(arg.as_slice());
        }
        let code: i64 = invocation.invoke_async(connection).await?;
        Ok(Applied::from_code(code))
    }
}
