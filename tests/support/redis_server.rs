//! A throwaway `redis-server` for tests: a free loopback port, a temporary directory,
//! optional persistence (AOF with `appendfsync always`, so an acknowledged write survives
//! even `kill -9`), and kill / stop / restart on the same port and data.
//!
//! Include it with `#[path = "support/redis_server.rs"] mod redis_server;`. When
//! `redis-server` is not on PATH, [`RedisServer::start`] prints why and returns `None`
//! (the test then returns early), unless `NECROSTACK_REQUIRE_REDIS=1`, which makes it
//! panic instead: CI must not skip these tests silently.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to start the server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Append-only file with `appendfsync always`: data survives kill and restart.
    pub persistence: bool,
    /// `requirepass`.
    pub password: Option<String>,
    /// Serve TLS only (`rediss://`), with a throwaway CA and server certificate made by
    /// the `openssl` command; see [`RedisServer::ca_certificate`].
    pub tls: bool,
    /// Extra `--name value` arguments.
    pub extra_args: Vec<String>,
}

/// A running `redis-server` child process, killed and its directory removed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    options: Options,
}

/// Whether tests must fail rather than skip when Redis is missing.
pub fn redis_required() -> bool {
    std::env::var("NECROSTACK_REQUIRE_REDIS").is_ok_and(|v| v == "1")
}

/// Whether `redis-server` can be run.
pub fn redis_available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Prints the skip message, or panics when Redis is required. Returns `false` when the
/// caller should skip.
pub fn check_available(test: &str) -> bool {
    if redis_available() {
        return true;
    }
    if redis_required() {
        panic!(
            "{test}: redis-server is not on PATH, and NECROSTACK_REQUIRE_REDIS=1 forbids skipping"
        );
    }
    // Written to stderr directly, not with `eprintln!`, so that the test harness does not
    // capture it: a skip must be visible in a normal `cargo test` run.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: redis-server is not on PATH (install Redis to run the Redis tests; set NECROSTACK_REQUIRE_REDIS=1 to make this an error)"
    );
    false
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

impl RedisServer {
    /// A server without persistence, or `None` (after a printed message) without Redis.
    pub fn start() -> Option<Self> {
        Self::start_with(Options::default())
    }

    /// A server with the given options, or `None` without Redis.
    pub fn start_with(options: Options) -> Option<Self> {
        if !check_available(&current_test()) {
            return None;
        }
        for _ in 0..5 {
            let port = free_port();
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "necrostack-redis-{}-{port}-{}",
                std::process::id(),
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("create the Redis temp dir");
            let mut server = RedisServer {
                child: None,
                port,
                dir,
                options: options.clone(),
            };
            if server.spawn().is_ok() {
                return Some(server);
            }
        }
        panic!("could not start redis-server on a free port after 5 tries");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new("redis-server");
        if self.options.tls {
            self.make_certificates()?;
            cmd.args(["--port", "0", "--tls-port"])
                .arg(self.port.to_string())
                .arg("--tls-cert-file")
                .arg(self.dir.join("server.crt"))
                .arg("--tls-key-file")
                .arg(self.dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(self.dir.join("ca.crt"))
                .args(["--tls-auth-clients", "no"]);
        } else {
            cmd.arg("--port").arg(self.port.to_string());
        }
        cmd.arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .arg("--save")
            .arg("")
            .arg("--daemonize")
            .arg("no");
        if self.options.persistence {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        if let Some(password) = &self.options.password {
            cmd.arg("--requirepass").arg(password);
        }
        cmd.args(&self.options.extra_args);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn redis-server: {e}"))?;
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
                        "redis-server exited: {status}; log: {}",
                        self.log_tail()
                    ));
                }
            }
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server not ready in {limit:?}; log: {}",
            self.log_tail()
        ))
    }

    /// Whether the server answers `PING` (with `+PONG`, or `-NOAUTH` when it has a
    /// password); for a TLS server, whether it accepts connections.
    pub fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.options.tls {
            return true;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        match stream.read(&mut buf) {
            Ok(n) => {
                let reply = String::from_utf8_lossy(&buf[..n]);
                reply.starts_with("+PONG") || reply.starts_with("-NOAUTH")
            }
            Err(_) => false,
        }
    }

    /// `redis://127.0.0.1:PORT` (`rediss://` with TLS; with the password, when set).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls { "rediss" } else { "redis" };
        match &self.options.password {
            Some(p) => format!("{scheme}://:{p}@127.0.0.1:{}", self.port),
            None => format!("{scheme}://127.0.0.1:{}", self.port),
        }
    }

    /// The PEM certificate of the throwaway CA that signed a TLS server's certificate.
    pub fn ca_certificate(&self) -> Vec<u8> {
        std::fs::read(self.dir.join("ca.crt")).expect("the CA certificate of a TLS server")
    }

    /// A CA and a server certificate for 127.0.0.1, made with the `openssl` command.
    fn make_certificates(&self) -> Result<(), String> {
        if self.dir.join("server.crt").exists() {
            return Ok(());
        }
        let run = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&self.dir)
                .output()
                .map_err(|e| format!("run openssl: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "openssl {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        std::fs::write(
            self.dir.join("san.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .map_err(|e| e.to_string())?;
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
        ])?;
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
        ])?;
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
        ])
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `kill -9`: no shutdown, no final save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The port may linger for a moment after the kill.
                Err(e) if Instant::now() < deadline => {
                    eprintln!("redis-server restart failed, retrying: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("could not restart redis-server: {e}"),
            }
        }
    }

    /// Runs `redis-cli` against this server and returns its output (for inspection).
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("-p").arg(self.port.to_string());
        if self.options.tls {
            cmd.arg("--tls")
                .arg("--cacert")
                .arg(self.dir.join("ca.crt"));
        }
        if let Some(p) = &self.options.password {
            cmd.arg("--no-auth-warning").arg("-a").arg(p);
        }
        let out = cmd.args(args).output().expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("a Redis test")
        .to_owned()
}

/// A connection to `url` for a test's own checks (reading a whole stream, `INFO`),
/// with timeouts for a loaded machine: redis-rs's default response timeout of 500 ms is
/// too short for an `XRANGE` of thousands of entries right after a Redis restart on two
/// busy cores, and a test must fail on what it checks, not on its own reading.
pub async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(30)))
        .set_connection_timeout(Some(Duration::from_secs(10)));
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}
