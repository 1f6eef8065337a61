//! Throwaway `nats-server -js` processes for tests: free loopback ports, temporary store
//! directories, file storage, kill / restart on the same port and data, and 3-node
//! clusters.
//!
//! Include it with `#[path = "support/nats_server.rs"] mod nats_server;`. When
//! `nats-server` is not on PATH, [`NatsServer::start`] prints why and returns `None`
//! (the test then returns early), unless `NECROSTACK_REQUIRE_NATS=1`, which makes it
//! panic instead: CI must not skip these tests silently.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether tests must fail rather than skip when NATS is missing.
pub fn nats_required() -> bool {
    std::env::var("NECROSTACK_REQUIRE_NATS").is_ok_and(|v| v == "1")
}

/// Whether `nats-server` can be run.
pub fn nats_available() -> bool {
    Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Prints the skip message, or panics when NATS is required. Returns `false` when the
/// caller should skip.
pub fn check_available(test: &str) -> bool {
    if nats_available() {
        return true;
    }
    if nats_required() {
        panic!(
            "{test}: nats-server is not on PATH, and NECROSTACK_REQUIRE_NATS=1 forbids skipping"
        );
    }
    // Written to stderr directly, so that the test harness does not capture it.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: nats-server is not on PATH (install nats-server to run the NATS tests; set NECROSTACK_REQUIRE_NATS=1 to make this an error)"
    );
    false
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

fn temp_dir(kind: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "necrostack-nats-{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create the NATS temp dir");
    dir
}

/// A running `nats-server -js`, killed and its directory removed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    /// The configuration file (cluster nodes), or none (a single server).
    config: Option<PathBuf>,
    /// Extra command-line arguments (a single server), e.g. `--user`/`--pass`.
    extra_args: Vec<String>,
}

impl NatsServer {
    /// A single JetStream server, or `None` (after a printed message) without NATS.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// A single JetStream server with extra arguments (e.g. `["--user", "u", "--pass",
    /// "p"]`), or `None` without NATS.
    pub fn start_with(extra_args: &[&str]) -> Option<Self> {
        if !check_available(&current_test()) {
            return None;
        }
        for _ in 0..5 {
            let mut server = NatsServer {
                child: None,
                port: free_port(),
                dir: temp_dir("single"),
                config: None,
                extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
            };
            if server.spawn().is_ok() {
                return Some(server);
            }
        }
        panic!("could not start nats-server on a free port after 5 tries");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("nats-server");
        match &self.config {
            Some(config) => {
                cmd.arg("-c").arg(config);
            }
            None => {
                cmd.args(["-js", "-a", "127.0.0.1", "-p"])
                    .arg(self.port.to_string())
                    .arg("-sd")
                    .arg(self.dir.join("store"))
                    .arg("-l")
                    .arg(self.dir.join("nats.log"))
                    .args(&self.extra_args);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn nats-server: {e}"))?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(10))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "nats-server exited: {status}; log: {}",
                        self.log_tail()
                    ));
                }
            }
            if self.answers() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "nats-server did not answer within {limit:?}; log: {}",
            self.log_tail()
        ))
    }

    /// Whether the server sends its `INFO` line.
    pub fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).is_ok() && &buf == b"INFO"
    }

    /// `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`: no shutdown.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The port may linger for a moment after the kill.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("nats-server restart failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("could not restart nats-server: {e}"),
            }
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A JetStream cluster of three nodes on loopback.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    /// Three clustered JetStream servers, or `None` without NATS.
    pub fn start() -> Option<Self> {
        if !check_available(&current_test()) {
            return None;
        }
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let mut nodes = Vec::new();
        for (i, (port, cluster_port)) in ports.iter().enumerate() {
            let dir = temp_dir(&format!("node{i}"));
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, c))| format!("\"nats-route://127.0.0.1:{c}\""))
                .collect();
            let config = dir.join("node.conf");
            let text = format!(
                "server_name: n{i}\nlisten: \"127.0.0.1:{port}\"\nlog_file: \"{log}\"\njetstream {{ store_dir: \"{store}\" }}\ncluster {{\n  name: necrostack\n  listen: \"127.0.0.1:{cluster_port}\"\n  routes: [{routes}]\n}}\n",
                log = dir.join("nats.log").display(),
                store = dir.join("store").display(),
                routes = routes.join(", "),
            );
            std::fs::write(&config, text).expect("write the node config");
            let mut node = NatsServer {
                child: None,
                port: *port,
                dir,
                config: Some(config),
                extra_args: Vec::new(),
            };
            node.spawn().expect("start a cluster node");
            nodes.push(node);
        }
        Some(NatsCluster { nodes })
    }

    /// Every node's URL, comma-separated (what the backend takes for a cluster).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a NATS test")
        .to_owned()
}
