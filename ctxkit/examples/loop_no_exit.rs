//! The chapter's trap "a loop with no exit path" (12.6): a goroutine that loops forever without
//! checking `ctx.Done()` is a leak waiting for a caller that gives up. Here it is, caught by
//! ctxkit's leak checker, and fixed.
//!
//! 1. A producer loop counts plays every 5 ms. It is handed the request's context but never
//!    looks at it. The caller gives up after 50 ms (its timeout passes); the loop plays on, and
//!    the leak check reports it with the line that started it. It waits on no context: ctxkit
//!    sees the loop never looked at one.
//! 2. The fix: the loop waits for its next tick on the context
//!    (`ctx.wait_timeout(TICK)`, Go's `select` on `ctx.Done()` and a ticker), so it returns
//!    when the caller gives up, and the check passes.
//!
//! ```text
//! cargo run --example loop_no_exit
//! 1. a loop with no exit path:
//! the caller gave up: context deadline exceeded
//! leak check: 1 leak(s)
//! leak 1: thread "plays-forever", spawned at loop_no_exit.rs:<line>
//! waiting on: no context (the loop never looks at one)
//! 2. fixed, the loop returns when its context is done:
//! the caller gave up: context deadline exceeded
//! leak check: no leak
//! ```
//!
//! (The report's own text, with the full path, the scope and how long the loop has run, is in
//! `stream_hits_leak`; this example prints the facts that do not change from run to run.)
//!
//! No thread can be stopped from outside, in Go or in Rust: the chapter's loop runs until the
//! process exits. The leaky loop below stops on one more condition, `process_exit`, which
//! stands in for that exit so that the example (and its test) leaves no thread behind; nothing
//! a caller does to its context ever stops it.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ctxkit::leak::{Guard, Leak, Options, Report};
use ctxkit::{tracked, Context};

/// How often the loop counts a play.
const TICK: Duration = Duration::from_millis(5);

/// How long the caller waits before giving up.
const CALLER_TIMEOUT: Duration = Duration::from_millis(50);

/// The trap: counts plays forever. `_ctx` is the request's context, handed over and ignored.
fn count_plays_forever(_ctx: &Context, plays: &AtomicU64, process_exit: &AtomicBool) {
    loop {
        plays.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(TICK);
        // Not an exit path the program has: stands in for the process ending (see the docs).
        if process_exit.load(Ordering::Relaxed) {
            return;
        }
    }
}

/// The fix: the same loop, waiting for each tick on the context; returns once it is done.
fn count_plays_until_done(ctx: &Context, plays: &AtomicU64) {
    loop {
        plays.fetch_add(1, Ordering::Relaxed);
        // Go's `select { case <-ctx.Done(): return; case <-ticker.C: }`.
        if ctx.wait_timeout(TICK).is_some() {
            return;
        }
    }
}

/// Prints what a check found: the number of leaks, and for each its name, spawn site (file
/// name and line) and the context it waits on, if any.
fn print_report(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    if report.is_clean() {
        return writeln!(out, "leak check: no leak");
    }
    writeln!(out, "leak check: {} leak(s)", report.leaks().len())?;
    for (number, leak) in report.leaks().iter().enumerate() {
        match leak {
            Leak::Tracked {
                kind,
                name,
                spawned_at,
                waiting_on,
                ..
            } => {
                let file = Path::new(spawned_at.file())
                    .file_name()
                    .map_or_else(|| spawned_at.file().into(), |f| f.to_string_lossy());
                writeln!(
                    out,
                    "leak {}: {kind} \"{name}\", spawned at {file}:{}",
                    number + 1,
                    spawned_at.line()
                )?;
                match waiting_on {
                    None => writeln!(out, "waiting on: no context (the loop never looks at one)")?,
                    Some((context, _)) => writeln!(out, "waiting on: {context}")?,
                }
            }
            other => writeln!(out, "leak {}: {other:?}", number + 1)?,
        }
    }
    Ok(())
}

/// Runs the leaky loop and the fixed one, each under a leak check, and prints what each check
/// found. Returns how many plays each loop counted (for the test: both ran).
///
/// # Errors
///
/// Only errors writing to `out`, and the OS refusing a thread.
pub fn run(out: &mut dyn Write) -> io::Result<(u64, u64)> {
    writeln!(out, "1. a loop with no exit path:")?;
    let guard = Guard::with_options(Options::new().retry_for(Duration::from_millis(100)));
    let plays = Arc::new(AtomicU64::new(0));
    let process_exit = Arc::new(AtomicBool::new(false));
    let leaky = {
        let ctx = Context::background().with_timeout(CALLER_TIMEOUT);
        let loop_ctx = ctx.context().clone();
        let (plays, process_exit) = (Arc::clone(&plays), Arc::clone(&process_exit));
        let leaky = tracked::thread("plays-forever", move || {
            count_plays_forever(&loop_ctx, &plays, &process_exit);
        })?;
        writeln!(out, "the caller gave up: {}", ctx.wait())?;
        leaky
    }; // the caller returns; its context is done and dropped
    let report = guard.report();
    print_report(out, &report)?;
    guard.disarm(); // this part expects the leak
    process_exit.store(true, Ordering::Relaxed);
    let _ = leaky.join();
    let leaky_plays = plays.load(Ordering::Relaxed);

    writeln!(out, "2. fixed, the loop returns when its context is done:")?;
    // A longer retry: a clean check returns as soon as the loop has, so it costs nothing.
    let guard = Guard::with_options(Options::new().retry_for(Duration::from_secs(2)));
    let plays = Arc::new(AtomicU64::new(0));
    let fixed = {
        let ctx = Context::background().with_timeout(CALLER_TIMEOUT);
        let loop_ctx = ctx.context().clone();
        let counted = Arc::clone(&plays);
        let fixed = tracked::thread("plays-until-done", move || {
            count_plays_until_done(&loop_ctx, &counted);
        })?;
        writeln!(out, "the caller gave up: {}", ctx.wait())?;
        fixed
    };
    print_report(out, &guard.report())?;
    guard.verify();
    let _ = fixed.join(); // already returned: the check saw it end
    Ok((leaky_plays, plays.load(Ordering::Relaxed)))
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock()).map(|_| ())
}
