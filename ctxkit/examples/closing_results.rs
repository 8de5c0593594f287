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
//!    sender twice is a compile error (use of a moved value), not a panic.
//! 3. **The mistake left is the chapter's other one**: "if you forget to close results, main
//!    blocks forever on the final receive". In Rust that is a consumer that keeps a sender of
//!    its own (no `drop(results)` before its loop): after the last result its loop waits for a
//!    sender that never goes away. Go's runtime sees every goroutine asleep and stops the
//!    program with `fatal error: all goroutines are asleep - deadlock!`; Rust has no such
//!    detector, so the loop would wait forever without a word. This example runs that mistake
//!    with a bounded wait (`recv_timeout`, 300 ms) so it can print what happened and go on. The
//!    pool of part 1 cannot make it: there is no sender to keep.
//!
//! ```text
//! cargo run --example closing_results
//! 1. the pool: a job returns its result; there is no channel to close
//! squares: [1, 4, 9, 16, 25, 36, 49]
//! the results ended after the last job: 7 results
//! 2. channels: each worker owns a sender and drops it when it returns
//! squares: [1, 4, 9, 16, 25, 36, 49]
//! the loop ended when the last of 3 senders was dropped: 7 results
//! 3. the forgotten close: main keeps a sender of its own
//! received 7 results, then nothing: the 8th receive was still waiting after 300 ms
//! (Go stops such a program with "fatal error: all goroutines are asleep - deadlock!";
//! in Rust this loop would wait forever: drop main's sender before reading)
//! ```

use std::io::{self, Write};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

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

/// How long part 3 waits for a result that never comes before saying so.
const FORGOTTEN_CLOSE_WAIT: Duration = Duration::from_millis(300);

/// The chapter's deadlock, bounded: the channel shape of [`with_channels`] with main's own
/// sender kept. Returns the results received and whether a further receive was still waiting
/// after [`FORGOTTEN_CLOSE_WAIT`] (it always is: a sender is alive and nobody sends).
fn with_a_forgotten_close() -> (Vec<u64>, bool) {
    let (results, received) = mpsc::channel::<u64>();
    std::thread::scope(|s| {
        for n in 1..=7u64 {
            let results = results.clone();
            s.spawn(move || results.send(n * n).expect("main is receiving"));
        }
        // The mistake: no `drop(results)` here. Main's sender stays alive until it returns,
        // so `for square in received.iter()` would never end. The seven results come; the
        // eighth receive, the one that ends Go's `range` after `close(results)`, waits with a
        // bound that stands in for "forever".
        let squares: Vec<u64> = received.iter().take(7).collect();
        let waited_out = matches!(
            received.recv_timeout(FORGOTTEN_CLOSE_WAIT),
            Err(mpsc::RecvTimeoutError::Timeout)
        );
        let mut squares = squares;
        drop(results);
        squares.sort_unstable();
        (squares, waited_out)
    })
}

/// Runs the three parts and prints what they collected.
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

    writeln!(
        out,
        "3. the forgotten close: main keeps a sender of its own"
    )?;
    let (squares, waited_out) = with_a_forgotten_close();
    if waited_out {
        writeln!(
            out,
            "received {} results, then nothing: the {}th receive was still waiting after {} ms",
            squares.len(),
            squares.len() + 1,
            FORGOTTEN_CLOSE_WAIT.as_millis()
        )?;
    } else {
        writeln!(
            out,
            "received {} results, then the channel closed",
            squares.len()
        )?;
    }
    writeln!(
        out,
        "(Go stops such a program with \"fatal error: all goroutines are asleep - deadlock!\";"
    )?;
    writeln!(
        out,
        "in Rust this loop would wait forever: drop main's sender before reading)"
    )?;
    Ok(())
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
