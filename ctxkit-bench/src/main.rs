//! `ctxkit-bench`: runs the project's benchmark workloads (the cancel tree, groups, the worker
//! pool, rate limiting; the same workloads the Go anchor runs on Go's own packages and the
//! Rust-peers anchor on the Rust crates users would pick instead) on ctxkit and prints one JSON
//! line per workload and form on stdout (progress on stderr).
//!
//! ```text
//! cargo run --release -p ctxkit-bench -- [--quick] [--only PREFIX[,PREFIX...]]
//! ```
//!
//! Each module measures one area; they share `harness.rs`. Figures are measured, never asserted.

mod ctx;
mod group;
mod harness;
mod pool;
mod rate;

use harness::{Cfg, CountingAlloc, OthersLoad};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn main() {
    let cfg = match Cfg::from_args() {
        Ok(cfg) => cfg,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let whole = OthersLoad::start();
    for (name, run) in [
        ("ctx", ctx::run as fn(&Cfg)),
        ("group", group::run),
        ("pool", pool::run),
        ("rate", rate::run),
    ] {
        let section = OthersLoad::start();
        run(&cfg);
        section.report(name);
    }
    whole.report("whole run");
}
