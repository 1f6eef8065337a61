//! Partitions: which partition an event goes to, the keys of one partition, and which
//! worker owns which partition (rendezvous hashing).

use super::config::RedisConfig;
use crate::envelope::AnyEnvelope;
use crate::partition::partition_of;

/// The partition `envelope` is stored in: by its partition key, or, for an unkeyed
/// event, by its id (so unkeyed events spread evenly, and a retry of one event stays in
/// its partition).
pub(crate) fn partition_for(config: &RedisConfig, envelope: &AnyEnvelope) -> u32 {
    let partitions = config.partitions.unwrap_or(1).max(1);
    let key = envelope.partition_key().unwrap_or_else(|| {
        // The id's bits, mixed: a UUID v7 starts with a timestamp.
        let id = envelope.id().as_u128();
        mix((id as u64) ^ ((id >> 64) as u64))
    });
    partition_of(key, partitions)
}

/// The keys of one partition. The stream key is in every sibling's hash tag, so all of
/// them live in the stream's Redis Cluster slot.
#[derive(Debug, Clone)]
pub(crate) struct PartitionKeys {
    pub(crate) index: u32,
    pub(crate) stream: String,
    pub(crate) scheduled: String,
    /// Output of completions bound for other slots, waiting to be forwarded.
    pub(crate) outbox: String,
    /// `<consumer>:<token>` of the group's owner, with a TTL (one lease per group).
    pub(crate) lease: String,
    /// The counter fencing tokens are drawn from.
    pub(crate) fence: String,
}

impl PartitionKeys {
    pub(crate) fn new(stream: String, index: u32, group: &str) -> Self {
        let sibling = |suffix: &str| format!("{{{stream}}}:{suffix}");
        PartitionKeys {
            index,
            scheduled: sibling("scheduled"),
            outbox: sibling("outbox"),
            lease: sibling(&format!("lease:{group}")),
            fence: sibling("fence"),
            stream,
        }
    }
}

/// The high-water mark of what partition `source`'s outbox forwarded to `destination`
/// (a stream key, or the dead-letter stream's): in the destination's slot.
pub(crate) fn forward_mark(destination: &str, source: u32) -> String {
    format!("{{{destination}}}:fwd:{source}")
}

/// The members sorted set of the group (score: expiry by the server's clock).
pub(crate) fn members_key(stream_key: &str, group: &str) -> String {
    format!("{{{stream_key}}}:members:{group}")
}

/// The member that owns `partition` among `members`: the one with the highest weight
/// (rendezvous hashing). Every worker computes the same owner from the same list, and a
/// join or a leave moves only the partitions whose highest weight changes.
pub(crate) fn owner_of(members: &[String], partition: u32) -> Option<&str> {
    members
        .iter()
        .max_by_key(|member| (weight(member, partition), member.as_str()))
        .map(String::as_str)
}

/// A stable 64-bit weight of (member, partition). Written here rather than taken from
/// `std`'s hasher because every worker, whatever its Rust version, must compute the same
/// value: FNV-1a over the name, then a SplitMix64 finalizer over it and the partition.
fn weight(member: &str, partition: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in member.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    mix(hash ^ mix(u64::from(partition).wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

/// The SplitMix64 finalizer: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("worker-{i}")).collect()
    }

    #[test]
    fn sibling_keys_share_the_stream_hash_tag() {
        let keys = PartitionKeys::new("orders:p3".to_owned(), 3, "billing");
        assert_eq!(keys.lease, "{orders:p3}:lease:billing");
        assert_eq!(keys.outbox, "{orders:p3}:outbox");
        assert_eq!(keys.scheduled, "{orders:p3}:scheduled");
        assert_eq!(forward_mark("orders:p5", 3), "{orders:p5}:fwd:3");
    }

    #[test]
    fn every_partition_has_one_owner_and_the_load_is_spread() {
        let members = names(3);
        let mut per_member = std::collections::HashMap::new();
        for p in 0..300 {
            *per_member
                .entry(owner_of(&members, p).unwrap())
                .or_insert(0) += 1;
        }
        assert_eq!(per_member.len(), 3);
        assert!(
            per_member.values().all(|&n| (60..=140).contains(&n)),
            "{per_member:?}"
        );
        assert_eq!(owner_of(&[], 1), None);
    }

    #[test]
    fn a_join_moves_only_partitions_to_the_new_member() {
        let before = names(3);
        let after = names(4);
        for p in 0..256 {
            let (old, new) = (owner_of(&before, p).unwrap(), owner_of(&after, p).unwrap());
            assert!(
                old == new || new == "worker-3",
                "partition {p} moved from {old} to {new}"
            );
        }
    }

    /// An envelope as it comes off the wire, with `key` as its partition key.
    fn envelope(key: Option<u64>) -> AnyEnvelope {
        let id = uuid::Uuid::now_v7();
        let key = key.map_or_else(String::new, |k| format!(r#","key":{k}"#));
        let json = format!(
            r#"{{"id":"{id}","timestamp":"2024-07-01T00:00:00Z","event_type":"test.Probe","payload":{{}},"correlation_id":"{id}","causation_id":null,"depth":0{key}}}"#
        );
        AnyEnvelope::from_json(json.as_bytes()).unwrap()
    }

    fn config(partitions: u32) -> RedisConfig {
        crate::RedisBackend::builder("redis://127.0.0.1")
            .partitions(partitions)
            .config()
            .clone()
    }

    #[test]
    fn unkeyed_events_spread_over_all_partitions() {
        let config = config(16);
        let mut seen = [0u32; 16];
        for _ in 0..1600 {
            seen[partition_for(&config, &envelope(None)) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| n > 50), "{seen:?}");
    }

    #[test]
    fn keyed_events_go_to_the_partition_of_their_key() {
        let config = config(16);
        for key in [0, 7, u64::MAX] {
            let expected = partition_of(key, 16);
            for _ in 0..20 {
                assert_eq!(partition_for(&config, &envelope(Some(key))), expected);
            }
        }
    }
}
