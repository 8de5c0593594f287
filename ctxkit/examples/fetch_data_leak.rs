//! The chapter's "Where is the bug?" exercise (12.12): `fetchData` starts a goroutine that
//! sleeps 2 s, then sends its result on an unbuffered channel; `main` gives up after 500 ms.
//! The bug: nobody ever receives, so the goroutine blocks in its send forever, a leak.
//!
//! In Rust a dropped receiver makes the send fail, so the thread does end, but only when its
//! slow fetch is over: it outlives the caller that gave up on it, holding whatever it holds,
//! and a server that times out many requests accumulates them. A leak check sees it. The fix
//! hands the fetch the caller's context: the fetch gives up when the caller does, and sends on
//! a channel with room for its one result, so it never blocks.
//!
//! ```text
//! cargo run --example fetch_data_leak
//! faithful port: timed out
//! ctxkit::leak: 1 leak(s) from the scope opened at ...
//! leak 1: thread "fetch-data", started through ctxkit
//!     spawned at: ctxkit/examples/fetch_data_leak.rs:...
//! ...
//! fixed: timed out
//! ctxkit::leak: no leak from the scope opened at ...
//! ```
//!
//! The book's times are 2 s and 500 ms; `run` takes them as parameters so that the test that
//! checks this output runs in a fraction of that.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use ctxkit::leak::{Guard, Options};
use ctxkit::{tracked, Context};

/// The chapter's `fetchData`, ported as it is: a thread that sleeps `fetch_time`, then sends
/// on a rendezvous channel (Go's unbuffered channel).
fn fetch_data(url: &'static str, fetch_time: Duration) -> io::Result<Receiver<String>> {
    let (results, result) = mpsc::sync_channel(0);
    tracked::thread("fetch-data", move || {
        std::thread::sleep(fetch_time); // the slow call, deaf to the caller
        let _ = results.send(format!("result for {url}"));
    })?;
    Ok(result)
}

/// The fix: the fetch watches the caller's context, and its channel has room for the result.
fn fetch_data_with(
    ctx: &Context,
    url: &'static str,
    fetch_time: Duration,
) -> io::Result<Receiver<String>> {
    let (results, result) = mpsc::sync_channel(1);
    let ctx = ctx.clone();
    tracked::thread("fetch-data", move || {
        if ctx.blocking_sleep(fetch_time).is_ok() {
            let _ = results.send(format!("result for {url}"));
        } // else: the caller gave up; so do we
    })?;
    Ok(result)
}

/// `main`'s select: the result, or "timed out" when `ctx` is done first.
fn wait_for(ctx: &Context, result: &Receiver<String>) -> String {
    let deadline = ctx.deadline().expect("the caller set a timeout");
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    match result.recv_timeout(left) {
        Ok(result) => result,
        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => "timed out".to_owned(),
    }
}

/// Runs the faithful port and the fix under leak checks, with the fetch taking `fetch_time`
/// and the caller giving up after `timeout`; prints what `main` prints and each check's report.
///
/// # Errors
///
/// Only errors writing to `out`, or the OS refusing a thread.
pub fn run(out: &mut dyn Write, fetch_time: Duration, timeout: Duration) -> io::Result<()> {
    let options = Options::new().retry_for(timeout);
    let url = "https://example.com/songs";

    let guard = Guard::with_options(options.clone());
    {
        let ctx = Context::background().with_timeout(timeout);
        let result = fetch_data(url, fetch_time)?;
        writeln!(out, "faithful port: {}", wait_for(&ctx, &result))?;
    }
    write!(out, "{}", guard.report())?;
    guard.disarm(); // expected: the fetch outlives main's select

    let guard = Guard::with_options(options);
    {
        let ctx = Context::background().with_timeout(timeout);
        let result = fetch_data_with(&ctx, url, fetch_time)?;
        writeln!(out, "fixed: {}", wait_for(&ctx, &result))?;
    } // the context is canceled here, if its deadline has not passed already
    write!(out, "{}", guard.report())?;
    guard.verify();
    Ok(())
}

fn main() -> io::Result<()> {
    run(
        &mut io::stdout().lock(),
        Duration::from_secs(2),
        Duration::from_millis(500),
    )
}
