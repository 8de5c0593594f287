//! `--peers`: the same workloads on the Rust crates a user would pick instead of ctxkit (tokio-util's
//! `CancellationToken`, tokio's `JoinSet` with `Semaphore`, crossbeam and std channel pools,
//! rayon, governor's direct and keyed limiters with two clocks, tokio's `interval`, crossbeam's `tick`), in the
//! same process and run, measured the way ctxkit's lines are (the method is in each line's
//! note). Each line's `impl` names the crate and its exact version (from the lockfile, through
//! `build.rs`). The peers are dependencies of this runner only, never of the library.

pub(crate) mod ctx;
mod group;
mod pool;
mod rate;
pub(crate) mod scale;
mod ticker;

use crate::harness::Cfg;

/// `name-version`, as the lines' `impl`.
macro_rules! peer {
    ($name:literal, $env:literal) => {
        concat!($name, "-", env!($env))
    };
}
pub(crate) use peer;

/// Runs the selected workloads on the peers.
pub(crate) fn run(cfg: &Cfg) {
    ctx::run(cfg);
    group::run(cfg);
    pool::run(cfg);
    rate::run(cfg);
    ticker::run(cfg);
}
