//! Decisions a second and latency per decision of `RedisLimiter` on loopback, printed as the
//! benchmark JSON lines of `ctxkit-bench` (one object per line on stdout, progress on
//! stderr).
//!
//! ```text
//! cargo run --release -p ctxkit-redis --example redis_bench [-- --quick] [--only PREFIX]
//! ```
//!
//! Starts its own `redis-server` on a free port (`apt-get install -y redis-server`). The
//! limiter has a rate of 1,000,000 a second and a burst of 2^32 - 1, so every decision
//! grants and writes its key (the real arithmetic, never a refusal). Workloads:
//!
//! * `rate.redis_allow`, `ops_per_s`: decisions a second from this process, for two
//!   clients (two tasks, each with its own connection, each calling `allow` one after the
//!   other: `ctxkit-redis/2clients`) and for 64 tasks sharing one multiplexed connection
//!   (`ctxkit-redis/64tasks`, whose calls are pipelined on the socket), and the same with
//!   leases of 16 tokens for 10 ms (`ctxkit-redis/64tasks_lease16`). `redis-rs/ping_*`
//!   is the floor: a bare `PING` round trip the same way; `redis-rs/script_64tasks` is the
//!   limiter's script called bare (no context, no timeout), what Redis itself costs.
//! * `rate.redis_allow_p50`, `rate.redis_allow_p99`, `us`: the latency of one decision, from
//!   the call to its return, over all the calls of the same runs.
//!
//! The server runs on the same machine, so client and server share its cores: the figures
//! are this machine's, comparable only within one run.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ctxkit::Context;
use ctxkit_redis::{Path, RedisLimiter};
use redis::aio::ConnectionManager;
use support::RedisServer;

struct Cfg {
    quick: bool,
    only: Option<String>,
}

impl Cfg {
    fn from_args() -> Cfg {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let only = args
            .iter()
            .position(|a| a == "--only")
            .and_then(|i| args.get(i + 1).cloned());
        Cfg {
            quick: args.iter().any(|a| a == "--quick"),
            only,
        }
    }

    fn want(&self, workload: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|prefix| workload.starts_with(prefix))
    }

    fn runs(&self) -> usize {
        if self.quick {
            3
        } else {
            7
        }
    }

    fn batch(&self) -> Duration {
        if self.quick {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(1)
        }
    }
}

/// Median, min, max.
fn stats(samples: &[f64]) -> (f64, f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, sorted[0], sorted[n - 1])
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn emit(workload: &str, implementation: &str, metric: &str, samples: &[f64], note: &str) {
    let (value, min, max) = stats(samples);
    let mut line = format!(
        "{{\"workload\":\"{workload}\",\"impl\":\"{implementation}\",\"metric\":\"{metric}\",\
         \"value\":{value:.3},\"min\":{min:.3},\"max\":{max:.3},\"runs\":{}",
        samples.len()
    );
    if !note.is_empty() {
        line.push_str(&format!(",\"note\":\"{note}\""));
    }
    line.push('}');
    println!("{line}");
}

/// What one run of a workload measured.
struct Run {
    /// Decisions a second, per batch.
    per_second: Vec<f64>,
    /// Latency of every call, microseconds, sorted.
    latencies: Vec<f64>,
}

/// `tasks` tasks calling `op` one after the other, each on the connection `conn(task)`
/// gives, for `runs` batches of `batch` (after a warm-up batch).
async fn measure<F, Fut>(
    tasks: usize,
    runs: usize,
    batch: Duration,
    op: impl Fn(usize) -> F + Send + Sync + 'static,
) -> Run
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let mut per_second = Vec::new();
    let mut latencies = Vec::new();
    for round in 0..=runs {
        let start = Instant::now();
        let mut handles = Vec::new();
        for task in 0..tasks {
            let op = Arc::clone(&op);
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while start.elapsed() < batch {
                    let call = op(task);
                    let t0 = Instant::now();
                    call().await;
                    lat.push(t0.elapsed().as_secs_f64() * 1e6);
                }
                lat
            }));
        }
        let mut calls = 0usize;
        let mut batch_lat = Vec::new();
        for handle in handles {
            let lat = handle.await.expect("a bench task panicked");
            calls += lat.len();
            batch_lat.extend(lat);
        }
        let elapsed = start.elapsed().as_secs_f64();
        if round > 0 {
            // Round 0 warms up connections, the script cache and the allocator.
            per_second.push(calls as f64 / elapsed);
            latencies.extend(batch_lat);
        }
    }
    latencies.sort_by(f64::total_cmp);
    Run {
        per_second,
        latencies,
    }
}

async fn limiter(conn: ConnectionManager) -> RedisLimiter {
    RedisLimiter::builder(conn, "bench:", 1e6, u32::MAX)
        .timeout(Duration::from_secs(1))
        .build()
        .expect("a valid configuration")
}

fn report(name: &str, run: &Run) {
    if run.latencies.is_empty() {
        return;
    }
    emit(
        "rate.redis_allow",
        name,
        "ops_per_s",
        &run.per_second,
        "decisions a second from one process, loopback",
    );
    let p50 = percentile(&run.latencies, 50.0);
    let p99 = percentile(&run.latencies, 99.0);
    let note = format!("over {} calls", run.latencies.len());
    emit("rate.redis_allow_p50", name, "us", &[p50], &note);
    emit("rate.redis_allow_p99", name, "us", &[p99], &note);
}

async fn bench(cfg: &Cfg, server: &RedisServer) {
    if !cfg.want("rate.redis_allow") {
        return;
    }
    let (runs, batch) = (cfg.runs(), cfg.batch());

    // Two clients, each with its own connection, sequential calls.
    let two = [
        limiter(server.manager().await).await,
        limiter(server.manager().await).await,
    ];
    support_check(&two[0]).await;
    eprintln!("[redis_bench] 2 clients, sequential allow()");
    let run = measure(2, runs, batch, move |task| {
        let limiter = two[task].clone();
        move || async move {
            let d = limiter
                .allow(&Context::background(), &format!("k{task}"))
                .await
                .unwrap();
            assert_eq!(d.path, Path::Redis, "a bench call fell back: {d:?}");
        }
    })
    .await;
    report("ctxkit-redis/2clients", &run);

    // 64 tasks on one multiplexed connection.
    let shared = limiter(server.manager().await).await;
    eprintln!("[redis_bench] 64 tasks, one connection");
    let run = measure(64, runs, batch, move |task| {
        let limiter = shared.clone();
        move || async move {
            let d = limiter
                .allow(&Context::background(), &format!("k{}", task % 8))
                .await
                .unwrap();
            assert_eq!(d.path, Path::Redis, "a bench call fell back: {d:?}");
        }
    })
    .await;
    report("ctxkit-redis/64tasks", &run);

    // The same with leases of 16 tokens for 10 ms: up to 17 decisions per round trip.
    let leased = RedisLimiter::builder(server.manager().await, "bench:", 1e6, u32::MAX)
        .timeout(Duration::from_secs(1))
        .lease(16, Duration::from_millis(10))
        .build()
        .expect("a valid configuration");
    eprintln!("[redis_bench] 64 tasks, one connection, leases of 16");
    let run = measure(64, runs, batch, move |task| {
        let limiter = leased.clone();
        move || async move {
            let d = limiter
                .allow(&Context::background(), &format!("k{}", task % 8))
                .await
                .unwrap();
            assert!(d.path == Path::Redis || d.path == Path::Lease, "{d:?}");
        }
    })
    .await;
    report("ctxkit-redis/64tasks_lease16", &run);

    // The floor: a bare PING round trip, the same two ways.
    let conns = [server.manager().await, server.manager().await];
    eprintln!("[redis_bench] floor: PING");
    let run = measure(2, runs, batch, move |task| {
        let mut conn = conns[task].clone();
        move || async move {
            let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
        }
    })
    .await;
    report("redis-rs/ping_2clients", &run);
    let conn = server.manager().await;
    let run = measure(64, runs, batch, move |_| {
        let mut conn = conn.clone();
        move || async move {
            let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
        }
    })
    .await;
    report("redis-rs/ping_64tasks", &run);

    // The same script, called bare (no context, no timeout, no checks): what Redis costs.
    let script = Arc::new(redis::Script::new(include_str!("../src/gcra.lua")));
    let conn = server.manager().await;
    eprintln!("[redis_bench] floor: the script, bare");
    let run = measure(64, runs, batch, move |task| {
        let (mut conn, script) = (conn.clone(), Arc::clone(&script));
        move || async move {
            let _: [i64; 8] = script
                .key(format!("bench:k{}", task % 8))
                .arg(0)
                .arg(1)
                .arg(u32::MAX)
                .arg(1)
                .arg(0)
                .invoke_async(&mut conn)
                .await
                .unwrap();
        }
    })
    .await;
    report("redis-rs/script_64tasks", &run);
}

/// One decision, to fail early and clearly if Redis is not there.
async fn support_check(limiter: &RedisLimiter) {
    let d = limiter
        .allow(&Context::background(), "check")
        .await
        .expect("a valid call");
    assert_eq!(
        d.path,
        Path::Redis,
        "the bench's redis-server does not answer"
    );
}

fn main() {
    let cfg = Cfg::from_args();
    let server = RedisServer::start();
    eprintln!("[redis_bench] redis-server on 127.0.0.1:{}", server.port());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(bench(&cfg, &server));
}
