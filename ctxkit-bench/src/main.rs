//! `ctxkit-bench`: runs the project's benchmark workloads (the cancel tree, groups, the worker
//! pool, rate limiting; the same workloads the Go runner in `bench/go/` runs on Go's own
//! packages) on ctxkit and prints one JSON line per workload and form on stdout (progress on
//! stderr). `tower.*` (`tower.rs`) measures what ctxkit-tower's layers add to a hello-world
//! request, in process and served by hyper over loopback, against the same service without
//! them (`none`). `rate.redis_allow*` (`rate_redis.rs`) measures ctxkit-redis's limiter against
//! a `redis-server` the runner starts on loopback (no line, and a note on stderr, where
//! `redis-server` is not installed).
//!
//! ```text
//! cargo run --release -p ctxkit-bench -- [--quick] [--peers] [--scale] [--in-leak-scope] [--only PREFIX[,PREFIX...]]
//! cargo run --release -p ctxkit-bench -- compare [--rounds N] [--quick] [--only P[,P]] [--scale] [--no-go] [--go-runner PATH] [--charts DIR] [--raw FILE]
//! ```
//!
//! `--scale` prints the scale series (`scale.rs`: each workload over a range of sizes, the
//! JSON lines carrying `n`) instead of the regular workloads.
//!
//! `compare` runs this binary (`--peers`) and the Go runner in alternating rounds as child
//! processes and prints one markdown table (`compare/`; charts of the scale series in
//! `chart.rs`).
//!
//! `--peers` also measures the Rust crates a user would pick instead (tokio, crossbeam,
//! rayon, governor: `peers/`), in the same run, after ctxkit's lines.
//!
//! `--in-leak-scope` runs every workload inside a leak check's scope (`ctxkit::leak::Guard`),
//! so that each line shows what the checker's tracking adds (the lines are otherwise the same).
//!
//! Each module measures one area; they share `harness.rs`. Figures are measured, never asserted.

mod chart;
mod compare;
mod ctx;
mod group;
mod harness;
mod peers;
mod pool;
mod rate;
mod rate_redis;
mod scale;
mod tower;

use harness::{Cfg, CountingAlloc, OthersLoad};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("compare") {
        std::process::exit(compare::main(std::env::args().skip(2)));
    }
    let cfg = match Cfg::from_args() {
        Ok(cfg) => cfg,
        Err(message) if message.is_empty() => {
            println!("{}", harness::USAGE); // --help
            return;
        }
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    harness::settle_allocator();
    // Tracking (tags, wait notes, context sites) is on for the whole process once a scope
    // opens; the guard is disarmed at the end, since the bench's own runtimes may outlive it.
    let leak_scope = cfg.in_leak_scope.then(ctxkit::leak::Guard::new);
    let whole = OthersLoad::start();
    if cfg.scale {
        scale::run(&cfg); // instead of the regular workloads
    }
    for (name, run) in [
        ("ctx", ctx::run as fn(&Cfg)),
        ("group", group::run),
        ("pool", pool::run),
        ("rate", rate::run),
        ("tower", tower::run),
        ("peers", peers::run),
    ] {
        if cfg.scale || (name == "peers" && !cfg.peers) {
            continue;
        }
        let section = OthersLoad::start();
        run(&cfg);
        section.report(name);
    }
    whole.report("whole run");
    if let Some(guard) = leak_scope {
        guard.disarm();
    }
    // A `--scale-bytes-run` child prints its figures as plain numbers, not JSON lines; the
    // parent reads them and needs a zero exit status.
    if cfg.bytes_run.is_none() && !harness::printed_any() && !harness::skipped_any() {
        eprintln!(
            "ctxkit-bench: no workload matches --only {}; names start with ctx., group., pool., rate., ticker. or tower. (scale. with --scale)",
            cfg.only.join(",")
        );
        std::process::exit(compare::NOTHING_SELECTED);
    }
}
