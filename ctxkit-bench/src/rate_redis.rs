//! `rate.redis_allow*`: ctxkit-redis's `RedisLimiter` on loopback, against a `redis-server`
//! this runner starts itself on a free port of 127.0.0.1 (no persistence) and kills when the
//! workload ends.
//!
//! * `rate.redis_allow` (`ops_per_s`): decisions a second from this process, for 2 clients
//!   (two tasks, each with its own `ConnectionManager` and key, each calling `allow` one after
//!   the other: `ctxkit-redis/2clients`) and for 64 tasks sharing one `ConnectionManager`
//!   (its multiplexed connection pipelines their calls: `ctxkit-redis/64tasks`).
//! * `rate.redis_allow_p50`, `rate.redis_allow_p99` (`us`): the latency of one decision, from
//!   the call to its return, per batch (the line's value is the median of the batches').
//!
//! The limiter has a rate of 1,000,000 a second and a burst of 2^32 - 1, so every decision
//! runs the script's real arithmetic, grants and writes its key. A decision that Redis did
//! not make (a fallback after the limiter's 1 s timeout) fails the workload.
//!
//! Without `redis-server` on the PATH (Debian: `apt-get install -y redis-server`), or if it
//! does not start or answer, the workload prints no line and says why in one line on stderr:
//! the run goes on.
//!
//! The server is killed on every way out: by [`RedisServer`]'s `Drop` on a return or a panic,
//! and, if this process dies without unwinding (a signal, `SIGKILL` included), by a watchdog
//! shell (`sh`) whose standard input is a pipe from this process: the pipe's end closes with
//! the process, the watchdog reads end-of-file and kills the server.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ctxkit::Context;
use ctxkit_redis::RedisLimiter;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::harness::{self, emit, percentile, progress, runtime, stats, Cfg};

/// Decisions a second.
const ALLOW: &str = "rate.redis_allow";
/// Latency of one decision, median.
const P50: &str = "rate.redis_allow_p50";
/// Latency of one decision, 99th percentile.
const P99: &str = "rate.redis_allow_p99";

/// Runs the selected `rate.redis_allow*` workloads.
pub(crate) fn run(cfg: &Cfg) {
    if !cfg.want(&[ALLOW, P50, P99]) {
        return;
    }
    let skip = |why: &str| {
        eprintln!("ctxkit-bench: {ALLOW} skipped: {why}");
        harness::note_skipped();
    };
    let Some(binary) = which("redis-server") else {
        skip("redis-server is not on the PATH (Debian: apt-get install -y redis-server)");
        return;
    };
    let server = match RedisServer::start(&binary) {
        Ok(server) => server,
        Err(why) => return skip(&why),
    };
    progress(&format!(
        "{ALLOW}: redis-server on 127.0.0.1:{}",
        server.port
    ));
    let runs = cfg.pick(7, 3);
    let batch = Duration::from_millis(cfg.pick(500, 100));
    let rt = runtime();
    let measured = rt.block_on(measure_all(&server.url(), runs, batch));
    drop(rt);
    drop(server);
    match measured {
        Ok(forms) => {
            for (form, run) in forms {
                report(form, &run, batch);
            }
        }
        Err(why) => skip(&why),
    }
}

/// What one form measured, per batch.
struct Run {
    /// Decisions a second.
    per_second: Vec<f64>,
    /// Latency of one decision, p50 and p99, microseconds.
    p50: Vec<f64>,
    p99: Vec<f64>,
    /// Decisions timed in all (the warm-up batch excluded).
    calls: usize,
    /// What the form is, for the notes.
    what: &'static str,
}

/// Both forms, on the server at `url`.
async fn measure_all(
    url: &str,
    runs: usize,
    batch: Duration,
) -> Result<Vec<(&'static str, Run)>, String> {
    let client = redis::Client::open(url).map_err(|e| format!("redis URL {url}: {e}"))?;
    let two = [
        limiter(connect(&client).await?)?,
        limiter(connect(&client).await?)?,
    ];
    progress(&format!("{ALLOW} ctxkit-redis/2clients"));
    let two_clients = measure(
        runs,
        batch,
        two.into_iter()
            .enumerate()
            .map(|(i, l)| (l, format!("c{i}")))
            .collect(),
        "2 clients (tasks), each with its own ConnectionManager and key, each calling allow() one after the other",
    )
    .await?;
    let shared = limiter(connect(&client).await?)?;
    progress(&format!("{ALLOW} ctxkit-redis/64tasks"));
    let tasks_64 = measure(
        runs,
        batch,
        (0..64).map(|i| (shared.clone(), format!("t{i}"))).collect(),
        "64 tasks sharing one ConnectionManager (its multiplexed connection pipelines their calls), a key each, each calling allow() one after the other",
    )
    .await?;
    Ok(vec![
        ("ctxkit-redis/2clients", two_clients),
        ("ctxkit-redis/64tasks", tasks_64),
    ])
}

/// A connection manager to the bench's server (connecting within 1 s).
async fn connect(client: &redis::Client) -> Result<ConnectionManager, String> {
    let config =
        ConnectionManagerConfig::new().set_connection_timeout(Some(Duration::from_secs(1)));
    ConnectionManager::new_with_config(client.clone(), config)
        .await
        .map_err(|e| format!("cannot connect to the bench's redis-server: {e}"))
}

/// 1,000,000 a second, bursts of 2^32 - 1: every decision grants (real arithmetic, a write
/// per call); a 1 s timeout.
fn limiter(conn: ConnectionManager) -> Result<RedisLimiter, String> {
    RedisLimiter::builder(conn, "bench:", 1e6, u32::MAX)
        .timeout(Duration::from_secs(1))
        .build()
        .map_err(|e| format!("limiter configuration: {e}"))
}

/// One task per `(limiter, key)`, each calling `allow(key)` one after the other for `batch`;
/// a warm-up batch, then `runs` batches.
async fn measure(
    runs: usize,
    batch: Duration,
    tasks: Vec<(RedisLimiter, String)>,
    what: &'static str,
) -> Result<Run, String> {
    let mut run = Run {
        per_second: Vec::new(),
        p50: Vec::new(),
        p99: Vec::new(),
        calls: 0,
        what,
    };
    for round in 0..=runs {
        let start = Instant::now();
        let handles: Vec<_> = tasks
            .iter()
            .map(|(limiter, key)| {
                let (limiter, key) = (limiter.clone(), key.clone());
                tokio::spawn(async move {
                    let ctx = Context::background();
                    let mut latencies = Vec::new();
                    while start.elapsed() < batch {
                        let call = Instant::now();
                        let decision = limiter
                            .allow(&ctx, &key)
                            .await
                            .map_err(|e| format!("allow failed: {e}"))?;
                        latencies.push(call.elapsed().as_secs_f64() * 1e6);
                        if !decision.path.is_redis() || !decision.is_allowed() {
                            return Err(format!("a decision Redis did not grant: {decision:?}"));
                        }
                    }
                    Ok::<_, String>(latencies)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for handle in handles {
            let task = handle
                .await
                .map_err(|e| format!("a bench task failed: {e}"))?;
            latencies.extend(task?);
        }
        let seconds = start.elapsed().as_secs_f64();
        if round == 0 || latencies.is_empty() {
            continue; // the warm-up: connections, the script cache, the allocator
        }
        run.per_second.push(latencies.len() as f64 / seconds);
        run.p50.push(percentile(&latencies, 50.0));
        run.p99.push(percentile(&latencies, 99.0));
        run.calls += latencies.len();
    }
    if run.per_second.is_empty() {
        return Err("no decision was timed".into());
    }
    Ok(run)
}

fn report(form: &str, run: &Run, batch: Duration) {
    let method = format!(
        "RedisLimiter (ctxkit-redis) at 1e6/s, burst 2^32-1, every call granted by the script on a redis-server on loopback started by the runner (client and server share the machine's CPUs); {}; 2-worker multi-thread runtime; {} ms per batch, {} decisions timed",
        run.what,
        batch.as_millis(),
        run.calls
    );
    emit(
        ALLOW,
        form,
        "ops_per_s",
        Some(stats(&run.per_second)),
        &format!("decisions a second from the process; {method}"),
    );
    emit(
        P50,
        form,
        "us",
        Some(stats(&run.p50)),
        &format!("median latency of one decision (call to return), per batch; {method}"),
    );
    emit(
        P99,
        form,
        "us",
        Some(stats(&run.p99)),
        &format!("99th percentile latency of one decision (call to return), per batch; {method}"),
    );
}

// ===== the server =====

/// A `redis-server` child on 127.0.0.1, with its watchdog; killed when dropped.
#[derive(Debug)]
struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// `sh` reading its standard input (a pipe from this process) until end-of-file, then
    /// killing the server: the way out when this process dies without running `Drop`.
    watchdog: Option<Child>,
}

/// Finds `name` on the PATH.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A port that was free a moment ago: bound on 127.0.0.1:0, then released.
fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|e| format!("local address: {e}"))
}

/// Whether a Redis on `port` answers `PING` with `+PONG`.
fn pings(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}

impl RedisServer {
    /// Starts `binary` on a free port (three ports tried) and waits until it answers `PING`.
    fn start(binary: &Path) -> Result<RedisServer, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match RedisServer::launch(binary, free_port()?) {
                Ok(server) => return Ok(server),
                Err(why) => last = why,
            }
        }
        Err(last)
    }

    fn launch(binary: &Path, port: u16) -> Result<RedisServer, String> {
        let child = Command::new(binary)
            .args(["--port", &port.to_string()])
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
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let pid = child.id();
        let mut server = RedisServer {
            port,
            child: Some(child),
            watchdog: None,
        };
        // The pipe is close-on-exec here, so no other child holds its writing end.
        match Command::new("sh")
            .args(["-c", "read -r _; kill -9 \"$1\" 2>/dev/null", "sh"])
            .arg(pid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(watchdog) => server.watchdog = Some(watchdog),
            Err(e) => eprintln!(
                "ctxkit-bench: no watchdog for redis-server (sh: {e}); it is killed on a normal exit only"
            ),
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if pings(port) {
                return Ok(server);
            }
            if let Some(child) = server.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "redis-server on port {port} exited with {status} (port taken?)"
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Err(format!(
            "redis-server on port {port} did not answer PING within 5 s"
        ))
    }

    /// `redis://127.0.0.1:PORT/`.
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // The watchdog first: closing its input makes it kill the server, which is not reaped
        // yet, so its pid cannot have been given to another process.
        if let Some(mut watchdog) = self.watchdog.take() {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
