//! Three clients share one rate limit on one Redis.
//!
//! Each client is a task with its own connection (as three processes would have), asking
//! for a token of the key `shared` every 10 ms. The limit is 10 a second with bursts of 5,
//! so together they get the burst (5) and the first second's 10, then 10 a second, however
//! the tokens fall between them. The table shows, for each second, what each client got and
//! the total, and which path decided.
//!
//! ```text
//! cargo run -p ctxkit-redis --example shared_limit              # 2 s on Redis
//! cargo run -p ctxkit-redis --example shared_limit -- --outage  # Redis killed mid-run
//! ```
//!
//! With `--outage`, the limiters fall back to a local bucket of a third of the limit each
//! (`Fallback::Local { share: 1/3 }`); Redis is killed at 1 s and started again at 2 s,
//! and the run lasts 4 s: the second second is decided locally, then decisions return to
//! Redis. The example starts its own `redis-server` on a free port (it must be installed:
//! `apt-get install -y redis-server`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use ctxkit::Context;
use ctxkit_redis::{Fallback, RedisLimiter};
use support::RedisServer;

/// Tokens a second.
pub const RATE: u32 = 10;
/// Bursts of.
pub const BURST: u32 = 5;
/// Clients sharing the key.
pub const CLIENTS: usize = 3;

/// Which run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Redis up all along, 2 s.
    Shared,
    /// Redis killed at 1 s, restarted at 2 s; 4 s; local fallback.
    Outage,
}

impl Mode {
    fn seconds(self) -> u32 {
        match self {
            Mode::Shared => 2,
            Mode::Outage => 4,
        }
    }
}

/// One second of the run.
#[derive(Clone, Debug)]
pub struct Row {
    /// 1, 2, ...
    pub second: u32,
    /// Tokens each client got in that second.
    pub per_client: Vec<u32>,
    /// Their sum.
    pub total: u32,
    /// The paths of that second's decisions (granted or not).
    pub paths: BTreeSet<String>,
}

/// Runs the example, prints its table to `out`, and returns the rows.
///
/// # Errors
///
/// Writing to `out`.
pub async fn run_with(out: &mut impl Write, mode: Mode) -> io::Result<Vec<Row>> {
    let mut server = RedisServer::start();
    let seconds = mode.seconds();
    writeln!(
        out,
        "{CLIENTS} clients share the key \"shared\" on one Redis (127.0.0.1:{}) at {RATE}/s with \
         bursts of {BURST}, for {seconds} s",
        server.port()
    )?;
    if mode == Mode::Outage {
        writeln!(
            out,
            "each falls back to a local bucket of a third of the limit; Redis is killed at 1 s \
             and restarted at 2 s"
        )?;
    }

    let fallback = match mode {
        Mode::Shared => Fallback::FailClosed,
        Mode::Outage => Fallback::Local {
            share: 1.0 / CLIENTS as f64,
        },
    };
    let mut limiters = Vec::new();
    for _ in 0..CLIENTS {
        let limiter = RedisLimiter::builder(server.manager().await, "example:", RATE, BURST)
            .fallback(fallback)
            .build()
            .expect("a valid configuration");
        limiters.push(limiter);
    }

    let start = Instant::now();
    let run_for = Duration::from_secs(u64::from(seconds));
    let mut clients = Vec::new();
    for limiter in limiters {
        clients.push(tokio::spawn(async move {
            let ctx = Context::background();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut seen = Vec::new(); // (second index, path, granted)
            loop {
                tick.tick().await;
                if start.elapsed() >= run_for {
                    return seen;
                }
                let d = limiter
                    .allow(&ctx, "shared")
                    .await
                    .expect("a valid key and n");
                let second = (start.elapsed().as_millis() / 1000) as usize;
                seen.push((second, d.path, d.allowed));
            }
        }));
    }
    if mode == Mode::Outage {
        tokio::time::sleep_until((start + Duration::from_secs(1)).into()).await;
        server.kill();
        tokio::time::sleep_until((start + Duration::from_secs(2)).into()).await;
        server.restart();
    }

    let mut rows: Vec<Row> = (1..=seconds)
        .map(|second| Row {
            second,
            per_client: vec![0; CLIENTS],
            total: 0,
            paths: BTreeSet::new(),
        })
        .collect();
    for (client, task) in clients.into_iter().enumerate() {
        for (second, path, granted) in task.await.expect("a client task panicked") {
            let Some(row) = rows.get_mut(second) else {
                continue; // the last tick, after the end
            };
            row.per_client[client] += granted;
            row.total += granted;
            row.paths.insert(path.to_string());
        }
    }

    write!(out, "second |")?;
    for client in 1..=CLIENTS {
        write!(out, " client-{client}")?;
    }
    writeln!(out, " | total | paths")?;
    for row in &rows {
        write!(out, "{:>6} |", row.second)?;
        for got in &row.per_client {
            write!(out, " {got:>8}")?;
        }
        let paths: Vec<&str> = row.paths.iter().map(String::as_str).collect();
        writeln!(out, " | {:>5} | {}", row.total, paths.join("+"))?;
    }
    let total: u32 = rows.iter().map(|row| row.total).sum();
    match mode {
        Mode::Shared => writeln!(
            out,
            "total {total}; the limit is {} (burst {BURST} + {RATE}/s × {seconds} s)",
            BURST + RATE * seconds
        )?,
        Mode::Outage => writeln!(
            out,
            "total {total}; on Redis the limit would be {} (burst {BURST} + {RATE}/s × {seconds} \
             s); while Redis was down each client admitted up to its third on its own",
            BURST + RATE * seconds
        )?,
    }
    Ok(rows)
}

fn main() -> io::Result<()> {
    let mode = if std::env::args().any(|arg| arg == "--outage") {
        Mode::Outage
    } else {
        Mode::Shared
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut stdout = io::stdout();
        run_with(&mut stdout, mode).await.map(drop)
    })
}
