//! The chapter's trap of 12.8, "do not close `results` from inside a worker": with N workers
//! the channel would be closed N times, and closing a closed channel panics. In Rust it cannot
//! happen, for two reasons this example runs side by side:
//!
//! 1. **ctxkit's pool has no results channel.** A job returns its result; the map's iterator
//!    owns the results and ends after the last job has delivered its own. There is nothing for
//!    a worker to close, and no closer goroutine or `WaitGroup` to write. (Trying to close a
//!    channel from a job does not compile: a job is an `Fn` shared by every worker, so it
//!    cannot give away what it captures. That is a `compile_fail` test in the `pool` module's
//!    docs.)
//! 2. **The chapter's channel shape, in Rust**: each worker owns a clone of the results sender,
//!    and "closing" is dropping. A worker that returns drops its own clone and closes nothing
//!    else; the receiver's loop ends when the last clone is gone, which is the chapter's
//!    closer goroutine (`wg.Wait(); close(results)`) done by ownership. Dropping the same
//!    sender twice is a compile error (use of a moved value), not a panic. The one mistake left
//!    is Go's other one, keeping a sender alive in the consumer: its loop would then wait
//!    forever, as Go's does when nobody closes `results`; here `main` hands its sender away.
//!
//! ```text
//! cargo run --example closing_results
//! 1. the pool: a job returns its result; there is no channel to close
//! squares: [1, 4, 9, 16, 25, 36, 49]
//! the results ended after the last job: 7 results
//! 2. channels: each worker owns a sender and drops it when it returns
//! squares: [1, 4, 9, 16, 25, 36, 49]
//! the loop ended when the last of 3 senders was dropped: 7 results
//! ```

use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::Mutex;

use ctxkit::pool::Pool;
use ctxkit::Context;

const NUM_WORKERS: usize = 3;

/// The pool: results owned by the map's iterator.
fn with_the_pool() -> Vec<u64> {
    let ctx = Context::background();
    let mut squares = Vec::new();
    for result in Pool::new(NUM_WORKERS)
        .queue(0)
        .map(&ctx, 1..=7u64, |_ctx, n| n * n)
    {
        squares.push(result.expect("squaring never panics"));
    } // ends after the last job's result: nobody closed anything
    squares
}

/// The chapter's channels, with ownership doing the closing.
fn with_channels() -> Vec<u64> {
    let (jobs_in, jobs) = mpsc::channel::<u64>();
    let jobs = Mutex::new(jobs); // the workers share the one receiver of jobs
    let (results, received) = mpsc::channel::<u64>();
    std::thread::scope(|s| {
        for _ in 0..NUM_WORKERS {
            let results = results.clone(); // this worker's own sender
            let jobs = &jobs;
            s.spawn(move || {
                // Go's `for n := range jobs`: ends once the jobs sender is gone and drained.
                loop {
                    let next = jobs.lock().expect("no worker panics").recv(); // unlocks here
                    let Ok(n) = next else { break };
                    results.send(n * n).expect("the consumer reads to the end");
                }
                // `results` (this worker's clone) is dropped here: it closes only itself.
            });
        }
        drop(results); // main's own sender: kept, the loop below would never end
        for n in 1..=7 {
            jobs_in.send(n).expect("the workers are running");
        }
        drop(jobs_in); // Go's `close(jobs)`
        let mut squares: Vec<u64> = received.iter().collect(); // ends after the last sender
        squares.sort_unstable();
        squares
    })
}

/// Runs both and prints what they collected.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    writeln!(
        out,
        "1. the pool: a job returns its result; there is no channel to close"
    )?;
    let mut squares = with_the_pool();
    squares.sort_unstable(); // completion order is not fixed
    writeln!(out, "squares: {squares:?}")?;
    writeln!(
        out,
        "the results ended after the last job: {} results",
        squares.len()
    )?;

    writeln!(
        out,
        "2. channels: each worker owns a sender and drops it when it returns"
    )?;
    let squares = with_channels();
    writeln!(out, "squares: {squares:?}")?;
    writeln!(
        out,
        "the loop ended when the last of {NUM_WORKERS} senders was dropped: {} results",
        squares.len()
    )?;
    Ok(())
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
