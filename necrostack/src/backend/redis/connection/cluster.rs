//! [`Target`]: what the backend's URL points at, a single Redis or a node of a Redis
//! Cluster, and the hash-slot rule the keys of a clustered stream follow.
//!
//! The user gives one URL either way (the "a node of a cluster works too"): at
//! `build()` the backend asks that server `INFO cluster`. A cluster node answers
//! `cluster_enabled:1`; then the backend asks it for the cluster's nodes (`CLUSTER
//! SLOTS`) and connects through redis-rs's cluster client, seeded with all of them, so a
//! reconnection after the seed node died still finds the cluster. A server that refuses
//! `INFO` (an ACL) is a cluster node if it answers `CLUSTER SLOTS`.

use std::time::Duration;

use redis::cluster::ClusterClientBuilder;
use redis::cluster_routing::Slot;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, Value};

use super::super::config::RedisConfig;
use super::super::error::RedisBackendError;
use super::Connector;

/// How often the cluster client retries a command itself (after a redirection, a
/// `TRYAGAIN`/`CLUSTERDOWN` reply or a lost node connection) before it reports the
/// error; the backend's own reconnect loop takes over from there, so this only has to
/// cover the short hiccups, and the per-link response timeout bounds it anyway.
const CLUSTER_RETRIES: u32 = 8;
/// The shortest wait between two of those retries, in milliseconds.
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 20;
/// The longest, in milliseconds: the wait is random up to `50 ms × 2^retry`, capped
/// here, so a failover of a few seconds is retried often enough to be noticed quickly.
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 1_000;
/// The factor of that formula, in milliseconds.
const CLUSTER_RETRY_FACTOR_MS: u64 = 50;

/// What the URL points at.
pub(crate) enum Target {
    /// A standalone Redis (or a primary with replicas).
    Single(Client),
    /// A Redis Cluster, reached through the nodes it listed.
    Cluster {
        /// The URL's node first, then every other node serving slots.
        nodes: Vec<ConnectionInfo>,
        /// The PEM root certificate to trust for `rediss://`.
        tls_root_certificate: Option<Vec<u8>>,
    },
}

impl Target {
    /// Opens a client for `config`'s URL and asks the server whether it is a node of a
    /// Redis Cluster.
    pub(crate) async fn discover(config: &RedisConfig) -> Result<Target, RedisBackendError> {
        let client = open_client(config)?;
        let options = AsyncConnectionConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connect_timeout));
        let unreachable = |error: &redis::RedisError| RedisBackendError::Connection {
            url: config.url.to_string(),
            message: config.url.secrets().scrub(&error.to_string()),
        };
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&options)
            .await
            .map_err(|error| unreachable(&error))?;
        let info = redis::cmd("INFO")
            .arg("cluster")
            .query_async::<String>(&mut connection)
            .await;
        let enabled = match info {
            Ok(info) => Some(info.lines().any(|line| line.trim() == "cluster_enabled:1")),
            Err(error) if super::super::error::is_connection_error(&error) => {
                return Err(unreachable(&error));
            }
            // Refused (an ACL without `INFO`, a proxy): `CLUSTER SLOTS` tells instead.
            Err(error) => {
                tracing::debug!(%error, "INFO cluster refused; asking CLUSTER SLOTS");
                None
            }
        };
        let single = || {
            tracing::info!(url = %config.url, "standalone Redis");
            Ok(Target::Single(client.clone()))
        };
        if enabled == Some(false) {
            return single();
        }
        let slots = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Value>(&mut connection)
            .await;
        let slots = match slots {
            Ok(slots) => slots,
            Err(error) if super::super::error::is_connection_error(&error) => {
                return Err(unreachable(&error));
            }
            // Neither `INFO` nor `CLUSTER SLOTS` (a standalone Redis refuses it): taken
            // for a single Redis, which works as one or fails with a clear command error.
            Err(_) if enabled.is_none() => return single(),
            Err(error) => {
                return Err(RedisBackendError::Command {
                    command: "CLUSTER SLOTS",
                    message: config.url.secrets().scrub(&error.to_string()),
                })
            }
        };
        let seed = client.get_connection_info().clone();
        let nodes = cluster_nodes(&seed, &slot_owners(&slots));
        tracing::info!(url = %config.url, nodes = nodes.len(), "Redis Cluster: connecting through the cluster client");
        Ok(Target::Cluster {
            nodes,
            tls_root_certificate: config.tls_root_certificate.clone(),
        })
    }

    /// Whether the URL points at a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster { .. })
    }

    /// How one link connects, with its timeouts: a command gets `response_timeout` for
    /// its reply (on a cluster, for its reply after any redirections and retries).
    pub(crate) fn connector(
        &self,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Connector, RedisBackendError> {
        match self {
            Target::Single(client) => Ok(Connector::Single {
                client: client.clone(),
                options: AsyncConnectionConfig::new()
                    .set_response_timeout(Some(response_timeout))
                    .set_connection_timeout(Some(connect_timeout)),
            }),
            Target::Cluster {
                nodes,
                tls_root_certificate,
            } => {
                let mut builder = ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(connect_timeout)
                    .response_timeout(response_timeout)
                    .retries(CLUSTER_RETRIES)
                    .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
                    .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
                    .retry_wait_formula(CLUSTER_RETRY_FACTOR_MS, 2);
                if let Some(pem) = tls_root_certificate {
                    builder = builder.certs(redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    });
                }
                // It fails only on settings (a Unix socket, mixed credentials), which
                // carry no password.
                builder.build().map(Connector::Cluster).map_err(|error| {
                    RedisBackendError::Config(format!("cannot use the Redis Cluster: {error}"))
                })
            }
        }
    }
}

/// The client of the URL, with the TLS root certificate if one is set.
fn open_client(config: &RedisConfig) -> Result<Client, RedisBackendError> {
    match &config.tls_root_certificate {
        None => Client::open(config.url.expose()),
        Some(pem) => Client::build_with_tls(
            config.url.expose(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
    }
    .map_err(|error| {
        RedisBackendError::Config(format!(
            "{}: {}",
            config.url,
            config.url.secrets().scrub(&error.to_string())
        ))
    })
}

/// The `host:port` of every node in a `CLUSTER SLOTS` reply (`[[start, end, [host, port,
/// id, ...], replicas...], ...]`), in order, without repeats. An empty or `?` host means
/// "the address you reached me on" and is left empty here.
fn slot_owners(reply: &Value) -> Vec<(String, u16)> {
    let mut nodes: Vec<(String, u16)> = Vec::new();
    let Value::Array(ranges) = reply else {
        return nodes;
    };
    for range in ranges {
        let Value::Array(parts) = range else {
            continue;
        };
        for node in parts.iter().skip(2) {
            let Value::Array(fields) = node else {
                continue;
            };
            let host = match fields.first() {
                Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
                Some(Value::SimpleString(text)) => text.clone(),
                _ => continue,
            };
            let Some(Value::Int(port)) = fields.get(1) else {
                continue;
            };
            let Ok(port) = u16::try_from(*port) else {
                continue;
            };
            let host = if host == "?" { String::new() } else { host };
            if !nodes.contains(&(host.clone(), port)) {
                nodes.push((host, port));
            }
        }
    }
    nodes
}

/// The seed's connection info for each node (credentials, database and TLS settings
/// kept, address replaced), the seed first.
fn cluster_nodes(seed: &ConnectionInfo, owners: &[(String, u16)]) -> Vec<ConnectionInfo> {
    let mut nodes = vec![seed.clone()];
    let seed_host = match seed.addr() {
        ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
        _ => String::new(),
    };
    for (host, port) in owners {
        let host = if host.is_empty() {
            seed_host.clone()
        } else {
            host.clone()
        };
        let addr = match seed.addr().clone() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host,
                port: *port,
                insecure,
                tls_params,
            },
            _ => ConnectionAddr::Tcp(host, *port),
        };
        if addr != *seed.addr() {
            nodes.push(seed.clone().set_addr(addr));
        }
    }
    nodes
}

/// Checks that `keys`, which one script writes together, share a hash slot, as Redis
/// Cluster requires: a stream named with a hash tag (`{orders}`) puts its dead-letter
/// stream (`{orders}:dlq`) and scheduled set (`{orders}:scheduled`) in its own slot.
///
/// Fails with a configuration error naming the fix otherwise: a clear error at `build()`
/// instead of `CROSSSLOT` errors on the first completion.
pub(crate) fn check_same_slot(stream: &str, keys: &[&str]) -> Result<(), RedisBackendError> {
    let Some(first) = keys.first() else {
        return Ok(());
    };
    let slot = Slot::for_key(first);
    if keys.iter().all(|key| Slot::for_key(key) == slot) {
        return Ok(());
    }
    let listed = keys
        .iter()
        .map(|key| format!("`{key}`"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(RedisBackendError::Config(format!(
        "on a Redis Cluster the keys of the stream ({listed}) must share one hash slot, \
         because one script writes them together, and they do not: name the stream with a \
         hash tag, e.g. `.stream(\"{{{stream}}}\")`, so that every key of the stream hashes \
         on `{stream}` alone (a `dead_letter_stream` set apart needs the same tag), or \
         partition the stream with `.partitions(n)`"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tagged_keys_share_a_slot() {
        assert!(check_same_slot(
            "{orders}",
            &["{orders}", "{orders}:dlq", "{orders}:scheduled"]
        )
        .is_ok());
        assert!(check_same_slot("x", &[]).is_ok());
    }

    #[test]
    fn untagged_keys_are_a_config_error_naming_the_fix() {
        let error = check_same_slot("orders", &["orders", "orders:dlq", "orders:scheduled"])
            .expect_err("orders and orders:dlq hash apart");
        let text = error.to_string();
        assert!(matches!(error, RedisBackendError::Config(_)), "{text}");
        assert!(text.contains(".stream(\"{orders}\")"), "{text}");
        assert!(text.contains(".partitions(n)"), "{text}");
        assert!(text.contains("`orders:dlq`"), "{text}");
    }

    #[test]
    fn nodes_come_from_cluster_slots_seed_first() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000),
                node("127.0.0.1", 7003),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                node("?", 7001),
                node("127.0.0.1", 7000),
            ]),
        ]);
        let owners = slot_owners(&reply);
        assert_eq!(
            owners,
            vec![
                ("127.0.0.1".to_owned(), 7000),
                ("127.0.0.1".to_owned(), 7003),
                (String::new(), 7001)
            ]
        );
        let seed = redis::IntoConnectionInfo::into_connection_info("redis://:pw@localhost:7000/")
            .expect("a URL");
        let nodes = cluster_nodes(&seed, &owners);
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr().to_string()).collect();
        assert_eq!(
            addrs,
            [
                "localhost:7000",
                "127.0.0.1:7000",
                "127.0.0.1:7003",
                "localhost:7001"
            ]
        );
        assert!(nodes
            .iter()
            .all(|n| n.redis_settings().password() == Some("pw")));
    }
}
