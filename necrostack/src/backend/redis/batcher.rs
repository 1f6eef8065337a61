//! [`Batcher`]: the completions of several deliveries sent together, in one script call.
//!
//! A worker with many events in flight completes them one by one, each with the
//! completion script (check pending, write the output, `XACK`). One `EVALSHA` per event
//! costs Redis a script invocation per event and the client a command per event, which
//! measured as most of the gap between the framework and a hand-written consumer. So
//! completions queue here, and one task at a time sends what is queued in one call of a
//! script that completes each entry on its own and answers one result per entry.
//!
//! There is no timer: a completion that finds nothing in flight goes at once, sent by its
//! caller (alone, with the plain completion script), so one event at a time waits no
//! longer than before.
//! Completions that arrive while a call is in flight go together in the next call (at
//! most [`MAX_ENTRIES`] entries, about [`MAX_BYTES`] of arguments).
//!
//! What each entry keeps, batched or not:
//! * It is applied atomically: the batch script runs without any other command in
//!   between, so an entry's output and its `XACK` land together.
//! * It is checked on its own (still pending for this consumer), so a stale completion
//!   writes nothing and does not hold back the others.
//! * A write Redis refuses for one entry (`redis.pcall`) fails that entry only: it is not
//!   acknowledged (and is delivered again); the other entries of the call are applied.
//! * Entries are applied in the order their completions were queued; a caller waits for
//!   its own entry's result, so the spine's ordering (FIFO at concurrency 1, per-key
//!   order) is unchanged.
//! * The script is idempotent per entry, so a call is retried across reconnects like the
//!   single completion.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use redis::{Script, Value};
use tokio::sync::oneshot;

use super::connection::Connection;
use super::core::Core;
use super::error::RedisBackendError;
use super::script::{Applied, CompleteArgs};

/// The most entries one call completes.
pub(crate) const MAX_ENTRIES: usize = 256;
/// Roughly the most argument bytes one call carries (one entry alone may exceed it).
pub(crate) const MAX_BYTES: usize = 4 << 20;

/// The command name in errors and logs.
const COMMAND: &str = "EVALSHA (complete batch)";

/// `KEYS` as the completion script's (stream, dead-letter stream, scheduled set).
/// `ARGV`: group, consumer, then per entry the number of arguments that follow for it and
/// those arguments, laid out as the completion script's `ARGV[3]` onwards (entry id,
/// MAXLEN, counts, envelopes, dead letters, scheduled events).
///
/// Returns one result per entry, in order: 1 applied, 0 not pending, -1 another consumer
/// owns it, or the error text of a write Redis refused (then the entry is not
/// acknowledged).
const COMPLETE_BATCH: &str = r"
local group, consumer = ARGV[1], ARGV[2]
local failed
local function check(reply)
  if type(reply) == 'table' and reply.err then
    failed = reply.err
    return false
  end
  return true
end
local function complete(at)
  local id = ARGV[at]
  local pending = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  if #pending == 0 then return 0 end
  if pending[1][2] ~= consumer then return -1 end
  failed = nil
  local maxlen = tonumber(ARGV[at + 1])
  local emitted = tonumber(ARGV[at + 2])
  local dead = tonumber(ARGV[at + 3])
  local scheduled = tonumber(ARGV[at + 4])
  local i = at + 5
  for _ = 1, emitted do
    local reply
    if maxlen > 0 then
      reply = redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'envelope', ARGV[i])
    else
      reply = redis.pcall('XADD', KEYS[1], '*', 'envelope', ARGV[i])
    end
    if not check(reply) then return failed end
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
    if not check(redis.pcall('XADD', KEYS[2], '*', unpack(fields))) then return failed end
  end
  for _ = 1, scheduled do
    if not check(redis.pcall('ZADD', KEYS[3], ARGV[i], ARGV[i + 1])) then return failed end
    i = i + 2
  end
  if not check(redis.pcall('XACK', KEYS[1], group, id)) then return failed end
  return 1
end
local results = {}
local at = 3
while at <= #ARGV do
  local n = tonumber(ARGV[at])
  results[#results + 1] = complete(at + 1)
  at = at + 1 + n
end
return results
";

/// The outcome of one entry's completion.
type Outcome = Result<Applied, RedisBackendError>;

/// Completions waiting to be sent, and whether a task is sending.
pub(crate) struct Batcher {
    state: Mutex<State>,
    script: Script,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Whether a flush task is running; it takes the queue until it is empty.
    flushing: bool,
}

/// One queued completion and where its result goes.
struct Job {
    args: CompleteArgs,
    done: oneshot::Sender<Outcome>,
}

impl Default for Batcher {
    fn default() -> Self {
        Batcher {
            state: Mutex::default(),
            script: Script::new(COMPLETE_BATCH),
        }
    }
}

impl Batcher {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it; recover rather than propagate.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues one completion and waits for its result. Starts a flush task when none
    /// runs; the task (not the caller) sends the call, so a caller that stops waiting
    /// does not hold back the completions batched with its own.
    pub(crate) async fn complete(core: &Arc<Core>, args: CompleteArgs) -> Outcome {
        if core.batcher.lead() {
            // Nothing queued or in flight (one event at a time, typically): sent from
            // here, without the hop through a task; what queues meanwhile waits for it.
            let _lead = Lead(core);
            return core.run_complete(&args).await;
        }
        let (done, result) = oneshot::channel();
        let start = {
            let mut state = core.batcher.state();
            state.queue.push_back(Job { args, done });
            !std::mem::replace(&mut state.flushing, true)
        };
        if start {
            tokio::spawn(flush(Arc::clone(core)));
        }
        result.await.unwrap_or_else(|_| {
            // The flush task ended without answering: the runtime is shutting down.
            Err(RedisBackendError::Connection {
                url: core.config.url().to_string(),
                message: "the completion was abandoned: the runtime is shutting down".to_owned(),
            })
        })
    }

    /// Whether the caller may send its completion itself: nothing is queued or in
    /// flight. Then it is in flight until its [`Lead`] drops.
    fn lead(&self) -> bool {
        let mut state = self.state();
        if state.flushing || !state.queue.is_empty() {
            return false;
        }
        state.flushing = true;
        true
    }

    /// Takes the next call's worth of queued completions; `None` (and not flushing any
    /// more) when the queue is empty.
    fn next_batch(&self) -> Option<Vec<Job>> {
        let mut state = self.state();
        if state.queue.is_empty() {
            state.flushing = false;
            return None;
        }
        let mut bytes = 0;
        let mut jobs = Vec::new();
        while let Some(job) = state.queue.front() {
            let size = job.args.entry_argv().iter().map(Vec::len).sum::<usize>();
            if !jobs.is_empty() && (jobs.len() == MAX_ENTRIES || bytes + size > MAX_BYTES) {
                break;
            }
            bytes += size;
            jobs.extend(state.queue.pop_front());
        }
        Some(jobs)
    }
}

/// A completion sent by its caller. When it is done (or the caller stops waiting), the
/// completions queued behind it are handed to a flush task.
struct Lead<'a>(&'a Arc<Core>);

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        let mut state = self.0.batcher.state();
        if state.queue.is_empty() {
            state.flushing = false;
            return;
        }
        match tokio::runtime::Handle::try_current() {
            // Still flushing: the task takes over.
            Ok(runtime) => drop(runtime.spawn(flush(Arc::clone(self.0)))),
            // No runtime any more: the queued callers are answered with an error.
            Err(_) => {
                state.flushing = false;
                state.queue.clear();
            }
        }
    }
}

/// Ends the flushing state if the flush task is dropped before its queue is empty (the
/// runtime shutting down): the waiting callers are answered with an error (their senders
/// drop) and the next completion starts a new task.
struct FlushGuard {
    core: Arc<Core>,
    finished: bool,
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if !self.finished {
            let mut state = self.core.batcher.state();
            state.flushing = false;
            state.queue.clear();
        }
    }
}

/// Sends the queued completions, a call at a time, until the queue is empty.
async fn flush(core: Arc<Core>) {
    let mut guard = FlushGuard {
        core,
        finished: false,
    };
    let core = &guard.core;
    while let Some(jobs) = core.batcher.next_batch() {
        if let [job] = jobs.as_slice() {
            // Alone: the plain completion script, one round trip as without batching.
            let outcome = core.run_complete(&job.args).await;
            if let Some(job) = jobs.into_iter().next() {
                // The caller may have stopped waiting; its entry was completed anyway.
                let _ = job.done.send(outcome);
            }
            continue;
        }
        match run_batch(core, &jobs).await {
            Ok(outcomes) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.done.send(outcome);
                }
            }
            Err(error) => {
                for job in jobs {
                    let _ = job.done.send(Err(copy(&error)));
                }
            }
        }
    }
    guard.finished = true;
}

/// Runs the batch script for `jobs`, reconnecting and retrying (it is idempotent).
async fn run_batch(core: &Core, jobs: &[Job]) -> Result<Vec<Outcome>, RedisBackendError> {
    let script = &core.batcher.script;
    let first = &jobs[0].args;
    let value = core
        .cmd
        .retrying(
            COMMAND,
            core.config.reconnect_timeout,
            true,
            |mut conn: Connection| async move {
                // `EVALSHA` built here rather than with `Script::prepare_invoke`, which
                // copies every argument once more (the envelopes are most of the bytes).
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(script.get_hash()).arg(first.keys.len());
                for key in &first.keys {
                    cmd.arg(key);
                }
                cmd.arg(core.config.group.as_str())
                    .arg(core.config.consumer.as_str());
                for job in jobs {
                    let entry = job.args.entry_argv();
                    cmd.arg(entry.len());
                    for arg in entry {
                        cmd.arg(arg.as_slice());
                    }
                }
                let mut reply = cmd.query_async::<Value>(&mut conn).await;
                if matches!(&reply, Err(error) if error.code() == Some("NOSCRIPT")) {
                    // Redis lost its script cache (a restart, `SCRIPT FLUSH`): load, retry.
                    reply = match script.load_async(&mut conn).await {
                        Ok(_) => cmd.query_async::<Value>(&mut conn).await,
                        Err(error) => Err(error),
                    };
                }
                reply.map_err(|error| core.cmd.classify(COMMAND, error))
            },
        )
        .await?;
    outcomes(&value, jobs.len())
}

/// One outcome per entry from the script's reply.
fn outcomes(value: &Value, entries: usize) -> Result<Vec<Outcome>, RedisBackendError> {
    let protocol = |detail: String| RedisBackendError::Protocol {
        command: COMMAND,
        detail,
    };
    let Value::Array(items) = value else {
        return Err(protocol(format!("expected an array, got {value:?}")));
    };
    if items.len() != entries {
        return Err(protocol(format!(
            "{} results for {entries} entries",
            items.len()
        )));
    }
    items
        .iter()
        .map(|item| match item {
            Value::Int(code) => Ok(Ok(Applied::from_code(*code))),
            Value::BulkString(text) => Ok(Err(refused(&String::from_utf8_lossy(text)))),
            Value::SimpleString(text) => Ok(Err(refused(text))),
            other => Err(protocol(format!("unexpected result {other:?}"))),
        })
        .collect()
}

/// The error of one entry whose write Redis refused.
fn refused(message: &str) -> RedisBackendError {
    RedisBackendError::Command {
        command: COMMAND,
        message: message.to_owned(),
    }
}

/// The same error for another entry of the call (the error type is not `Clone`: it is
/// public and `non_exhaustive`, and cloning it is only needed here).
fn copy(error: &RedisBackendError) -> RedisBackendError {
    use RedisBackendError as E;
    match error {
        E::Config(message) => E::Config(message.clone()),
        E::Connection { url, message } => E::Connection {
            url: url.clone(),
            message: message.clone(),
        },
        E::Command { command, message } => E::Command {
            command,
            message: message.clone(),
        },
        E::GroupMissing { command, message } => E::GroupMissing {
            command,
            message: message.clone(),
        },
        E::Protocol { command, detail } => E::Protocol {
            command,
            detail: detail.clone(),
        },
        E::PayloadTooLarge {
            event_id,
            size,
            limit,
        } => E::PayloadTooLarge {
            event_id: *event_id,
            size: *size,
            limit: *limit,
        },
        E::Ambiguous {
            command,
            url,
            message,
        } => E::Ambiguous {
            command,
            url: url.clone(),
            message: message.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_read_one_per_entry_in_order() {
        let reply = Value::Array(vec![
            Value::Int(1),
            Value::Int(0),
            Value::Int(-1),
            Value::BulkString(b"WRONGTYPE nope".to_vec()),
        ]);
        let outcomes = outcomes(&reply, 4).unwrap();
        assert!(matches!(outcomes[0], Ok(Applied::Done)));
        assert!(matches!(outcomes[1], Ok(Applied::NotPending)));
        assert!(matches!(outcomes[2], Ok(Applied::OtherOwner)));
        assert!(
            matches!(&outcomes[3], Err(RedisBackendError::Command { message, .. }) if message == "WRONGTYPE nope")
        );
    }

    #[test]
    fn a_reply_of_the_wrong_length_is_a_protocol_error() {
        let reply = Value::Array(vec![Value::Int(1)]);
        assert!(matches!(
            outcomes(&reply, 2),
            Err(RedisBackendError::Protocol { .. })
        ));
        assert!(matches!(
            outcomes(&Value::Nil, 1),
            Err(RedisBackendError::Protocol { .. })
        ));
    }

    #[test]
    fn a_copied_error_reads_the_same() {
        let error = RedisBackendError::GroupMissing {
            command: COMMAND,
            message: "NOGROUP".to_owned(),
        };
        assert_eq!(copy(&error).to_string(), error.to_string());
    }
}
