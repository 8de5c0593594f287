//! A real `redis-server` for the tests and examples: started on a free port of 127.0.0.1
//! with no persistence, ready once it answers `PING`, killed when dropped. It can be paused
//! (SIGSTOP: every call then hangs, as on a slow or stuck server), killed and restarted on
//! the same port (an outage).
//!
//! Needs the `redis-server` binary on the PATH (Debian: `apt-get install -y redis-server`);
//! without it, [`RedisServer::start`] panics with a message that says so.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The install command named when `redis-server` is missing.
pub(crate) const INSTALL: &str = "apt-get install -y redis-server";

/// A `redis-server` child process on 127.0.0.1.
#[derive(Debug)]
pub(crate) struct RedisServer {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// Finds `name` on the PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A port that was free a moment ago: bound on 127.0.0.1:0, then released.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Whether a Redis on `port` answers `PING` with `+PONG`.
fn pings(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// If `redis-server` is not on the PATH (the message names the install command), or
    /// no server answers within 10 s on any of five ports tried.
    pub(crate) fn start() -> RedisServer {
        let binary = which("redis-server").unwrap_or_else(|| {
            panic!(
                "redis-server is not installed (not found on the PATH): the ctxkit-redis tests \
                 and examples run a real Redis. Install it with `{INSTALL}` (Debian), then run \
                 the tests again."
            )
        });
        let mut last = String::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                binary: binary.clone(),
                port: free_port(),
                child: None,
            };
            match server.launch() {
                Ok(()) => return server,
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// Spawns the server on `self.port` and waits for its `PONG`.
    fn launch(&mut self) -> Result<(), String> {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().to_string_lossy()])
            .args(["--daemonize", "no"])
            .args(["--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if pings(self.port) {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "redis-server on port {} exited with {status} (port taken?)",
                        self.port
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        Err(format!(
            "redis-server on port {} did not answer PING within 10 s",
            self.port
        ))
    }

    /// The port it listens on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL, as a crash) and reaps it. The port stays this server's.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Resumed first in case it was paused, so the kill is not delayed.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`kill`](RedisServer::kill)), empty.
    ///
    /// # Panics
    ///
    /// If it does not answer `PING` within 10 s (the port was taken meanwhile).
    pub(crate) fn restart(&mut self) {
        self.kill();
        if let Err(why) = self.launch() {
            panic!("redis-server did not restart: {why}");
        }
    }

    /// Stops the process (SIGSTOP): connections stay open, calls get no answer.
    pub(crate) fn pause(&self) {
        self.signal("-STOP");
    }

    /// Resumes a paused process (SIGCONT).
    pub(crate) fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the server is running");
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// A redis client for this server.
    pub(crate) fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("a valid URL")
    }

    /// A connection manager that reconnects quickly (at most 100 ms between tries), as a
    /// limiter's connection in the tests.
    pub(crate) async fn manager(&self) -> redis::aio::ConnectionManager {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_max_delay(Duration::from_millis(100))
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1_000);
        redis::aio::ConnectionManager::new_with_config(self.client(), config)
            .await
            .expect("connect to the test redis-server")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
