//! The Redis side of `--redis URL [--stream NAME] [--keep]`, shared by the examples that
//! can run their flow either in memory or on a Redis stream (each includes this file with
//! `#[path = "../support/redis_backend.rs"] mod redis_backend;`).

use necrostack::{RedisBackend, Uuid};

/// The Redis options, flattened into an example's command line.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Run the flow on a Redis stream at URL (e.g. redis://127.0.0.1:6379) instead of in memory
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
    /// Use the stream NAME (left in Redis after the run) instead of a fresh one per run
    #[arg(long, value_name = "NAME", requires = "redis")]
    pub stream: Option<String>,
    /// Keep the fresh per-run stream and its dead-letter stream after the run
    #[arg(long, requires = "redis", conflicts_with = "stream")]
    pub keep: bool,
}

/// The stream of a run of the example called `example`: `stream` when the user named
/// one, else a fresh `<example>:<uuid>`, so that a rerun never sees the events of an
/// earlier one.
pub fn stream_name(example: &str, stream: Option<&str>) -> String {
    stream
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{example}:{}", Uuid::now_v7()))
}

/// Connects to Redis at `url` for the example called `example`, on
/// [`stream_name`]`(example, stream)`. The consumer group is `example`, the consumer
/// `example`.
pub async fn connect(
    example: &str,
    url: &str,
    stream: Option<&str>,
) -> Result<RedisBackend, necrostack::Error> {
    let stream = stream_name(example, stream);
    tracing::info!(%stream, "running on Redis");
    let backend = RedisBackend::builder(url)
        .stream(stream)
        .group(example)
        .consumer("example")
        .build()
        .await?;
    Ok(backend)
}

/// After the run: deletes every key of the per-run stream (the stream, its dead letters
/// and, when partitioned, every partition's stream, schedule, outbox, lease and fence,
/// and the group's members), unless the user named the stream or asked to keep it. A
/// failure here is logged, not fatal: the run's results are already out.
///
/// The keys are found by name (each contains the stream's, which holds a fresh uuid) with
/// `SCAN` on every master: on a Redis Cluster each master holds the partitions of its
/// slots, and a key is deleted on the node that holds it, one at a time, since the keys
/// of different partitions live in different slots. Stop the run's backends first
/// (`Backend::close`), or their heartbeats write their keys again.
pub async fn clean_up(backend: &RedisBackend, args: &RedisArgs) {
    if args.keep || args.stream.is_some() {
        return;
    }
    let Some(url) = args.redis.as_deref() else {
        return;
    };
    let stream = backend.config().stream_key();
    match delete_keys_naming(url, &stream).await {
        Ok(deleted) => tracing::info!(%stream, deleted, "deleted the run's keys"),
        Err(error) => tracing::warn!(%stream, %error, "could not delete the run's keys"),
    }
}

/// Deletes every key whose name contains `name`, on every master reachable from `url`;
/// returns how many it deleted.
async fn delete_keys_naming(url: &str, name: &str) -> redis::RedisResult<u64> {
    let seed = redis::Client::open(url)?;
    let pattern = format!("*{}*", glob_escape(name));
    let mut deleted = 0;
    for node in masters(&seed).await? {
        let mut connection = node.get_multiplexed_async_connection().await?;
        let mut keys: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await?;
            keys.extend(page);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for key in keys {
            deleted += redis::cmd("DEL")
                .arg(&key)
                .query_async::<u64>(&mut connection)
                .await?;
        }
    }
    Ok(deleted)
}

/// The masters behind `seed`: every master of its cluster (from `CLUSTER NODES`, with
/// the seed's credentials and TLS settings), or the seed itself when it is a standalone
/// server (which refuses `CLUSTER NODES`).
async fn masters(seed: &redis::Client) -> redis::RedisResult<Vec<redis::Client>> {
    let mut connection = seed.get_multiplexed_async_connection().await?;
    let nodes = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async::<String>(&mut connection)
        .await;
    let Ok(nodes) = nodes else {
        return Ok(vec![seed.clone()]);
    };
    let info = seed.get_connection_info();
    nodes
        .lines()
        .filter_map(master_address)
        .map(|(host, port)| {
            let addr = match info.addr() {
                redis::ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => redis::ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => redis::ConnectionAddr::Tcp(host, port),
            };
            redis::Client::open(info.clone().set_addr(addr))
        })
        .collect()
}

/// The `host:port` of a live master in one line of `CLUSTER NODES`
/// (`<id> <ip>:<port>@<cport>[,<hostname>] <flags> ...`).
fn master_address(line: &str) -> Option<(String, u16)> {
    let mut fields = line.split_whitespace();
    let address = fields.nth(1)?;
    let flags = fields.next()?;
    let live_master = flags.split(',').any(|f| f == "master")
        && !flags.split(',').any(|f| f == "fail" || f == "noaddr");
    if !live_master {
        return None;
    }
    let (host, port) = address.split(['@', ',']).next()?.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// `text` with the `SCAN MATCH` glob characters escaped, so that it matches itself.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
