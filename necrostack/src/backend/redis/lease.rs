//! Leases on partitions: a [`Lane`] (one partition as this worker sees it: its keys and
//! the fencing token of this worker's lease, if it holds one) and the scripts that
//! record membership and take, renew and give up leases.
//!
//! A lease is the value `<consumer>:<token>` under `{<partition stream>}:lease:<group>`,
//! with a TTL; the token comes from `INCR` on the partition's fence counter, so every
//! new owner has a larger one. The completion and the read of new entries check the
//! lease value atomically in their scripts: whoever lost the lease cannot write.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::{Script, Value};

use super::core::Core;
use super::error::RedisBackendError;
use super::partition::PartitionKeys;
use super::reply;

/// One partition's keys and this worker's lease on it.
pub(crate) struct Lane {
    pub(crate) keys: PartitionKeys,
    /// The fencing token of this worker's lease; 0 while it holds none.
    token: AtomicU64,
    /// Set when the outbox has entries to forward; see `outbox::kick`.
    pub(crate) forward_due: AtomicBool,
    /// Whether a forwarder task runs for this partition.
    pub(crate) forwarding: AtomicBool,
    /// Deliveries of this partition handed to the spine and not yet completed, released
    /// or dropped: what is pending beyond these is on its way (or must be re-read).
    handed: AtomicU64,
}

impl Lane {
    pub(crate) fn new(keys: PartitionKeys) -> Self {
        Lane {
            keys,
            token: AtomicU64::new(0),
            forward_due: AtomicBool::new(false),
            forwarding: AtomicBool::new(false),
            handed: AtomicU64::new(0),
        }
    }

    /// Counts deliveries handed to the spine.
    pub(crate) fn hand_out(&self, n: u64) {
        self.handed.fetch_add(n, Ordering::SeqCst);
    }

    /// Counts a handed-out delivery back (completed, released or dropped).
    pub(crate) fn hand_back(&self) {
        let _ = self
            .handed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Deliveries handed to the spine and not back yet.
    pub(crate) fn handed(&self) -> u64 {
        self.handed.load(Ordering::SeqCst)
    }

    pub(crate) fn index(&self) -> u32 {
        self.keys.index
    }

    /// The token of this worker's lease, or `None`.
    pub(crate) fn token(&self) -> Option<u64> {
        match self.token.load(Ordering::SeqCst) {
            0 => None,
            token => Some(token),
        }
    }

    pub(crate) fn set_token(&self, token: Option<u64>) {
        self.token.store(token.unwrap_or(0), Ordering::SeqCst);
    }

    /// Forgets the lease if it is still `token`; `true` if it was.
    pub(crate) fn drop_token(&self, token: u64) -> bool {
        self.token
            .compare_exchange(token, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// The lease value this worker holds, `<consumer>:<token>`.
    pub(crate) fn lease_value(&self, consumer: &str) -> Option<String> {
        self.token().map(|token| value(consumer, token))
    }
}

/// The lease value of `consumer` with `token`.
pub(crate) fn value(consumer: &str, token: u64) -> String {
    format!("{consumer}:{token}")
}

/// Runs `script` once on the command link (no retry loop: the heartbeat runs again
/// within a third of the lease).
async fn run(
    core: &Core,
    name: &'static str,
    script: &Script,
    keys: &[&str],
    args: &[Vec<u8>],
) -> Result<Value, RedisBackendError> {
    let conn = core.cmd.get().await?;
    let mut connection = conn.connection.clone();
    let mut invocation = script.prepare_invoke();
    for key in keys {
        invocation.key(*key);
    }
    for arg in args {
        invocation.arg(arg.as_slice());
    }
    match invocation.invoke_async::<Value>(&mut connection).await {
        Ok(value) => {
            core.cmd.mark_up();
            Ok(value)
        }
        Err(error) => {
            if super::error::is_connection_error(&error) {
                core.cmd.mark_down();
                core.cmd.invalidate(&conn).await;
                return Err(core.cmd.connection_error(&error));
            }
            Err(core.cmd.command_error(name, &error))
        }
    }
}

fn millis(duration: Duration) -> Vec<u8> {
    (duration.as_millis().max(1) as u64)
        .to_string()
        .into_bytes()
}

/// Records this worker as a live member for one lease (or removes it, `leave`), and
/// returns the live members, sorted.
pub(crate) async fn members(
    core: &Core,
    key: &str,
    leave: bool,
) -> Result<Vec<String>, RedisBackendError> {
    let args = [
        core.config.consumer.as_bytes().to_vec(),
        millis(core.config.partition_lease),
        if leave { b"1".to_vec() } else { b"0".to_vec() },
    ];
    let value = run(
        core,
        "EVALSHA (members)",
        &core.scripts.members,
        &[key],
        &args,
    )
    .await?;
    let mut members: Vec<String> = reply::items(&value)
        .unwrap_or_default()
        .into_iter()
        .filter_map(reply::text)
        .collect();
    members.sort();
    Ok(members)
}

/// Takes `lane`'s lease if free (or already this consumer's): the fencing token, or
/// `None` while another consumer holds it.
pub(crate) async fn acquire(core: &Core, lane: &Lane) -> Result<Option<u64>, RedisBackendError> {
    let args = [
        core.config.consumer.as_bytes().to_vec(),
        millis(core.config.partition_lease),
    ];
    let keys = [lane.keys.lease.as_str(), lane.keys.fence.as_str()];
    let value = run(
        core,
        "EVALSHA (acquire)",
        &core.scripts.acquire,
        &keys,
        &args,
    )
    .await?;
    let token = reply::integer(&value).unwrap_or(0);
    Ok(u64::try_from(token).ok().filter(|&t| t > 0))
}

/// Extends the lease `token`: `false` if it is not this worker's any more.
pub(crate) async fn renew(core: &Core, lane: &Lane, token: u64) -> Result<bool, RedisBackendError> {
    let args = [
        value(&core.config.consumer, token).into_bytes(),
        millis(core.config.partition_lease),
    ];
    let keys = [lane.keys.lease.as_str()];
    let value = run(core, "EVALSHA (renew)", &core.scripts.renew, &keys, &args).await?;
    Ok(reply::integer(&value) == Some(1))
}

/// Deletes the lease `token` if it is still this worker's, so the next owner takes the
/// partition at once instead of after the TTL.
pub(crate) async fn release(core: &Core, lane: &Lane, token: u64) -> Result<(), RedisBackendError> {
    let args = [value(&core.config.consumer, token).into_bytes()];
    let keys = [lane.keys.lease.as_str()];
    run(
        core,
        "EVALSHA (release)",
        &core.scripts.release,
        &keys,
        &args,
    )
    .await
    .map(drop)
}

/// Who holds `lane`'s lease: (consumer, token), if anyone.
pub(crate) async fn holder(
    core: &Core,
    lane: &Lane,
) -> Result<Option<(String, u64)>, RedisBackendError> {
    let value = core
        .command("GET", |cmd| {
            cmd.arg(&lane.keys.lease);
        })
        .await?;
    Ok(reply::text(&value).and_then(|text| {
        let (consumer, token) = text.rsplit_once(':')?;
        Some((consumer.to_owned(), token.parse().ok()?))
    }))
}
