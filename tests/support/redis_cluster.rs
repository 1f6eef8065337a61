//! A throwaway Redis Cluster for tests: six `redis-server --cluster-enabled yes` processes
//! (three masters, each with a replica) on free loopback ports in a temporary directory,
//! joined with `redis-cli --cluster create` (optionally serving TLS only), and
//! [`RedisCluster::fail_over_master_of`] to SIGKILL the master of a key's slot and wait
//! until its replica took over.
//!
//! Include it with `#[path = "support/redis_cluster.rs"] mod redis_cluster;`. Without
//! `redis-server`, [`RedisCluster::start`] prints why and returns `None` (the test then
//! returns early), unless `NECROSTACK_REQUIRE_REDIS=1`, which makes it panic instead.
//! Dropping the cluster kills its own processes (only those) and removes the directory;
//! [`shared`] hands the tests of one binary one cluster while any of them holds it.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Masters, each with one replica.
const MASTERS: usize = 3;
/// How long a node may be unreachable before the cluster fails it over: short, so that a
/// test's failover takes a couple of seconds (production default: 15 s).
const NODE_TIMEOUT_MS: u32 = 1000;
/// The longest wait for the cluster to form or to recover from a failover.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// A master [`RedisCluster::kill_master_of`] killed.
pub struct Killed {
    key: String,
    port: u16,
    slot: u16,
    at: Instant,
}

/// One `redis-server` of the cluster.
struct Node {
    port: u16,
    /// The cluster bus port.
    bus: u16,
    child: Option<Child>,
}

/// A running Redis Cluster, its processes killed and its directory removed on drop.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
    /// Nodes, cluster bus and replication speak TLS only (`rediss://`).
    tls: bool,
}

/// Whether tests must fail rather than skip when Redis is missing.
fn redis_required() -> bool {
    std::env::var("NECROSTACK_REQUIRE_REDIS").is_ok_and(|v| v == "1")
}

/// Prints the skip message, or panics when Redis is required. Returns `false` when the
/// caller should skip.
fn check_available(test: &str) -> bool {
    let available = ["redis-server", "redis-cli"].iter().all(|program| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if available {
        return true;
    }
    if redis_required() {
        panic!("{test}: redis-server or redis-cli is not on PATH, and NECROSTACK_REQUIRE_REDIS=1 forbids skipping");
    }
    // Not `eprintln!`: the harness would capture it, and a skip must be visible.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: redis-server or redis-cli is not on PATH (install Redis to run the Redis Cluster tests; set NECROSTACK_REQUIRE_REDIS=1 to make this an error)"
    );
    false
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// The cluster shared by the tests of this binary: started by the first caller, torn
/// down when the last holder drops it. `None` without Redis (after the skip message).
pub fn shared() -> Option<Arc<RedisCluster>> {
    static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(cluster) = shared.upgrade() {
        return Some(cluster);
    }
    let cluster = Arc::new(RedisCluster::start()?);
    *shared = Arc::downgrade(&cluster);
    Some(cluster)
}

impl RedisCluster {
    /// A new cluster of three masters and three replicas, or `None` without Redis.
    pub fn start() -> Option<Self> {
        Self::start_with(false)
    }

    /// The same, serving TLS only, with a throwaway CA and a certificate for 127.0.0.1
    /// made by the `openssl` command; see [`ca_certificate`](Self::ca_certificate).
    pub fn start_tls() -> Option<Self> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Option<Self> {
        let test = std::thread::current()
            .name()
            .unwrap_or("a Redis Cluster test")
            .to_owned();
        if !check_available(&test) {
            return None;
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "necrostack-cluster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the cluster temp dir");
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
            tls,
        };
        if tls {
            cluster.make_certificates();
        }
        for _ in 0..MASTERS * 2 {
            cluster.spawn_node();
        }
        cluster.create();
        cluster.wait_ok();
        Some(cluster)
    }

    /// Starts one node on a free port (trying again if another process took the port).
    fn spawn_node(&mut self) {
        for _ in 0..5 {
            let port = free_port();
            // The bus port is chosen too: the default, port + 10 000, may be taken or
            // past 65 535 for an ephemeral port.
            let bus = free_port();
            let taken = |p: u16| self.nodes.iter().any(|n| n.port == p || n.bus == p);
            if bus == port || taken(port) || taken(bus) {
                continue;
            }
            let dir = self.dir.join(port.to_string());
            std::fs::create_dir_all(&dir).expect("create a node dir");
            let mut command = Command::new("redis-server");
            if self.tls {
                command
                    .args(["--port", "0", "--tls-port", &port.to_string()])
                    .args(["--tls-cluster", "yes", "--tls-replication", "yes"])
                    .args(["--tls-auth-clients", "no"])
                    .arg("--tls-cert-file")
                    .arg(self.dir.join("server.crt"))
                    .arg("--tls-key-file")
                    .arg(self.dir.join("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(self.dir.join("ca.crt"));
            } else {
                command.args(["--port", &port.to_string()]);
            }
            let child = command
                .args(["--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(dir.join("redis.log"))
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-port", &bus.to_string()])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                // A replica may always take over: in a test it was in sync a moment ago.
                .args(["--cluster-replica-validity-factor", "0"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut node = Node {
                port,
                bus,
                child: Some(child),
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                // Exited (the port was taken after all)? Checked before the PING, so that
                // another process answering on the port is not taken for this node.
                let exited = node
                    .child
                    .as_mut()
                    .is_some_and(|c| c.try_wait().ok().flatten().is_some());
                if !exited && self.node_cli(port, &["PING"]).trim() == "PONG" {
                    self.nodes.push(node);
                    return;
                }
                if exited || Instant::now() > deadline {
                    node.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start a cluster node on a free port after 5 tries");
    }

    /// `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`.
    fn create(&self) {
        let addresses: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = self
            .redis_cli()
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("All 16384 slots covered"),
            "redis-cli --cluster create failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits until every live node says `cluster_state:ok`, knows every other live node,
    /// and every replica's link to its master is up.
    fn wait_ok(&self) {
        let deadline = Instant::now() + READY_LIMIT;
        let live: Vec<u16> = self.live_ports();
        loop {
            let ok = live.iter().all(|&port| {
                let info = self.node_cli(port, &["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{}", self.nodes.len()))
                    && self.replication_up(port)
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster is not ok after {READY_LIMIT:?}: {}",
                self.node_cli(live[0], &["CLUSTER", "NODES"])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The ports of the nodes still running.
    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// `redis://127.0.0.1:PORT` of a live node: the seed URL of a backend.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.live_ports()[0])
    }

    /// The port of the master serving `key`'s slot, as a live node sees it now.
    pub fn master_of(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        let slot = self.key_slot(port, key);
        self.master_seen_by(port, slot)
            .unwrap_or_else(|| panic!("no master serves slot {slot} of {key}"))
    }

    /// Kills (SIGKILL) the master of `key`'s slot, after its replica has every write so
    /// far (`WAIT`), then waits until the replica is promoted (see
    /// [`wait_for_failover`](Self::wait_for_failover)). Returns the new master's port.
    pub fn fail_over_master_of(&mut self, key: &str) -> u16 {
        let killed = self.kill_master_of(key);
        self.wait_for_failover(&killed)
    }

    /// Kills (SIGKILL) the master of `key`'s slot, after its replica has every write so
    /// far (`WAIT`); the cluster has not noticed yet when this returns.
    pub fn kill_master_of(&mut self, key: &str) -> Killed {
        let old = self.master_of(key);
        let slot = self.key_slot(old, key);
        let synced = self.node_cli(old, &["WAIT", "1", "5000"]);
        assert_eq!(synced.trim(), "1", "the replica of {old} did not sync");
        let at = Instant::now();
        self.nodes
            .iter_mut()
            .find(|n| n.port == old)
            .expect("the master is one of ours")
            .kill();
        Killed {
            key: key.to_owned(),
            port: old,
            slot,
            at,
        }
    }

    /// Waits until a replica took over from the killed master: every live node says
    /// `cluster_state:ok` and names the same new master for the slot. Returns its port.
    pub fn wait_for_failover(&self, killed: &Killed) -> u16 {
        let deadline = killed.at + READY_LIMIT;
        loop {
            let live = self.live_ports();
            let views: Vec<Option<u16>> = live
                .iter()
                .map(|&port| {
                    let ok = self
                        .node_cli(port, &["CLUSTER", "INFO"])
                        .contains("cluster_state:ok");
                    ok.then(|| self.master_seen_by(port, killed.slot)).flatten()
                })
                .collect();
            if let Some(Some(new)) = views.first() {
                if *new != killed.port && views.iter().all(|view| *view == Some(*new)) {
                    let _ = writeln!(
                        std::io::stderr(),
                        "redis cluster: master {} of {} killed; replica {new} took over in {:?}",
                        killed.port,
                        killed.key,
                        killed.at.elapsed()
                    );
                    return *new;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no failover of {} within {READY_LIMIT:?}: {}",
                killed.port,
                self.node_cli(live[0], &["CLUSTER", "NODES"])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `redis-cli -c` (following redirections) against a live node.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self
            .redis_cli()
            .arg("-c")
            .arg("-p")
            .arg(self.live_ports()[0].to_string())
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `redis-cli args...` on every live node (e.g. an `ACL SETUSER`, which each
    /// node keeps for itself); the outputs, in node order.
    pub fn on_every_node(&self, args: &[&str]) -> Vec<String> {
        self.live_ports()
            .into_iter()
            .map(|port| self.node_cli(port, args))
            .collect()
    }

    /// The port of the node [`url`](Self::url) names.
    pub fn seed_port(&self) -> u16 {
        self.live_ports()[0]
    }

    /// The seed URL with `rediss://` for a TLS cluster (see [`url`](Self::url)).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.live_ports()[0])
    }

    /// The PEM certificate of the throwaway CA of a TLS cluster.
    pub fn ca_certificate(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("the CA certificate of a TLS cluster")
    }

    /// `redis-cli`, with `--tls --cacert` for a TLS cluster.
    fn redis_cli(&self) -> Command {
        let mut command = Command::new("redis-cli");
        if self.tls {
            command
                .arg("--tls")
                .arg("--cacert")
                .arg(self.dir.join("ca.crt"));
        }
        command.stdin(Stdio::null());
        command
    }

    /// `redis-cli -p PORT args...` against one node, its output (empty if it could not
    /// run).
    fn node_cli(&self, port: u16, args: &[&str]) -> String {
        self.redis_cli()
            .arg("-p")
            .arg(port.to_string())
            .args(args)
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default()
    }

    /// `CLUSTER KEYSLOT key`, asked of the node on `port`.
    fn key_slot(&self, port: u16, key: &str) -> u16 {
        let out = self.node_cli(port, &["CLUSTER", "KEYSLOT", key]);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT {key}: {out}"))
    }

    /// The port of the master serving `slot` in the `CLUSTER NODES` of the node on
    /// `port`: a node flagged `master` and not failed, whose slot ranges hold it.
    fn master_seen_by(&self, port: u16, slot: u16) -> Option<u16> {
        self.node_cli(port, &["CLUSTER", "NODES"])
            .lines()
            .find_map(|line| {
                // id addr flags master ping pong epoch link slot-ranges...
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                    return None;
                }
                let serves = fields[8..].iter().any(|range| {
                    let (start, end) = range.split_once('-').unwrap_or((range, range));
                    match (start.parse::<u16>(), end.parse::<u16>()) {
                        (Ok(start), Ok(end)) => (start..=end).contains(&slot),
                        _ => false,
                    }
                });
                serves.then(|| node_port(fields[1]))
            })
    }

    /// Whether a node is a master, or a replica whose link to its master is up.
    fn replication_up(&self, port: u16) -> bool {
        let info = self.node_cli(port, &["INFO", "replication"]);
        info.contains("role:master") || info.contains("master_link_status:up")
    }

    /// A CA and a server certificate for 127.0.0.1, made with the `openssl` command.
    fn make_certificates(&self) {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&self.dir)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            self.dir.join("san.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("write san.cnf");
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=necrostack test CA",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.cnf",
        ]);
    }
}

impl Node {
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The port of a `CLUSTER NODES` address (`ip:port@cport`).
fn node_port(address: &str) -> u16 {
    address
        .split('@')
        .next()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("a node address ip:port@cport")
}
