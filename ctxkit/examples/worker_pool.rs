//! Section 12.8 of the chapter: a worker pool. Three workers square the numbers 1 to 7; the
//! output is sorted, because which worker takes which job is not fixed:
//!
//! ```text
//! cargo run --example worker_pool
//! worker 1 squared 1 = 1
//! worker 1 squared 4 = 16
//! worker 2 squared 2 = 4
//! ...
//! ```
//!
//! Go needs three moving parts for this: a producer that sends the jobs and closes `jobs`, the
//! workers ranging over `jobs`, and a closer goroutine that waits for the workers and then
//! closes `results` (exactly once: twice panics, never deadlocks the consumer). Here the pool is
//! all three: `map` pulls the jobs as the workers need them, and the results iterator ends when
//! the last job has delivered its result, by ownership. `queue(0)` makes the hand-over a
//! rendezvous, as Go's unbuffered channels in the chapter.

use std::io::{self, Write};

use ctxkit::pool::{self, Pool};
use ctxkit::Context;

/// Runs the chapter's pool and prints its sorted results.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    const NUM_WORKERS: usize = 3;
    let ctx = Context::background();
    let mut results: Vec<String> = Pool::new(NUM_WORKERS)
        .queue(0)
        .map(&ctx, 1..=7u64, |_ctx, n| {
            let id = pool::worker_id().expect("a pool's job knows its worker");
            format!("worker {id} squared {n} = {}", n * n)
        })
        .map(|result| result.expect("squaring never panics"))
        .collect();
    results.sort(); // worker order is nondeterministic; sort for a stable display
    for line in results {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
