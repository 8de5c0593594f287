//! Section 12.7 of the chapter: how much parallelism to use, and where the number came from.
//!
//! Go prints `GOMAXPROCS: n` from `runtime.GOMAXPROCS(0)`; since Go 1.25 that number honours the
//! container's CPU quota. `ctxkit::procs::max_procs()` is the same number for Rust programs
//! (the default size of ctxkit's worker pools), decided the same way, and it also honours a
//! tighter quota on an ancestor cgroup, which Go ignores. `procs::current()` says where the
//! number came from, for logs:
//!
//! ```text
//! cargo run --example gomaxprocs
//! GOMAXPROCS: 2
//! from: the logical CPUs online
//! max_procs 2 (affinity 2; 2 logical CPUs)
//! ```
//!
//! Go's `GOMAXPROCS=4 ./myserver` is `CTXKIT_MAXPROCS=4 cargo run --example gomaxprocs`. There
//! is no setter: the number is a decision about the machine, read once and cached
//! (`procs::refresh()` reads it again), and a pool is given its size explicitly when it should
//! differ.

use std::io::{self, Write};

use ctxkit::procs::{self, Procs, Source};

/// Prints `procs` the way the chapter prints `GOMAXPROCS`, then where it came from.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write, procs: &Procs) -> io::Result<()> {
    writeln!(out, "GOMAXPROCS: {}", procs.count())?;
    let from = match procs.source() {
        Source::Override => "the CTXKIT_MAXPROCS environment variable",
        Source::Quota => "the cgroup CPU quota (rounded up)",
        Source::Affinity => "the CPU affinity mask",
        Source::LogicalCpus => "the logical CPUs online",
        _ => "the logical CPU count (not Linux)",
    };
    writeln!(out, "from: {from}")?;
    writeln!(out, "{procs}")
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock(), &procs::current())
}
