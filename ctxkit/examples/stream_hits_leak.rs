//! Section 12.6 of the chapter: a leaked producer, caught by a leak check, and the fix.
//!
//! The chapter's `streamHits` sends "Gamemaster" on a channel forever; when the caller stops
//! reading, the goroutine blocks in the send and never exits. Rust's channels end that one way
//! out (a dropped receiver makes `send` fail), but a producer still leaks the same way while
//! its receiver is kept and not read, or while it waits on a context nobody cancels. The
//! program runs three versions of it under a leak check and prints each check's report:
//!
//! 1. the faithful port: the producer blocks sending to a receiver that is kept but not read;
//! 2. a producer that watches a context, but its caller never cancels it: the report names the
//!    context, where it was made, and that it is not done, which points at the bug;
//! 3. the fix: the caller cancels the context when it has read enough (here by dropping it),
//!    the producer returns, and the check passes.
//!
//! ```text
//! cargo run --example stream_hits_leak
//! 1. the chapter's streamHits, blocked sending to a reader that stopped:
//! ctxkit::leak: 1 leak(s) from the scope opened at ctxkit/examples/stream_hits_leak.rs:...
//! leak 1: thread "stream-hits", started through ctxkit
//!     spawned at: ctxkit/examples/stream_hits_leak.rs:...
//!     running for: 101.2ms
//!     waiting on: nothing ctxkit knows (running, or blocked elsewhere)
//! ...
//! ```

use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use ctxkit::leak::{Guard, Options};
use ctxkit::{tracked, Context};

/// How long each check retries before it reports: long enough for a producer that is exiting.
const RETRY_FOR: Duration = Duration::from_millis(100);

/// The chapter's `streamHits`, ported as it is: sends forever; blocks once nobody reads.
fn stream_hits(results: SyncSender<&'static str>) {
    while results.send("Gamemaster").is_ok() {}
}

/// `streamHits` with an exit path: it returns once `ctx` is done (or the reader is gone).
fn stream_hits_until_done(ctx: &Context, results: &SyncSender<&'static str>) {
    loop {
        match results.try_send("Gamemaster") {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                // Wait a little for the reader, unless the context is done first.
                if ctx.wait_timeout(Duration::from_millis(1)).is_some() {
                    return;
                }
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

/// Reads three hits, as a caller that "stops listening" does.
fn read_three(hits: &Receiver<&'static str>) -> Vec<&'static str> {
    hits.iter().take(3).collect()
}

/// Runs the three versions, printing each check's report.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    let options = Options::new().retry_for(RETRY_FOR);

    writeln!(
        out,
        "1. the chapter's streamHits, blocked sending to a reader that stopped:"
    )?;
    let guard = Guard::with_options(options.clone());
    let (results, hits) = sync_channel(1);
    let producer = tracked::thread("stream-hits", move || stream_hits(results))?;
    let read = read_three(&hits); // ...and `hits` is kept, unread
    write!(out, "{}", guard.report())?;
    guard.disarm();
    drop(hits); // the way out Rust gives the producer: its send fails
    let _ = producer.join();
    writeln!(out, "(read {read:?})")?;

    writeln!(
        out,
        "2. a producer that watches a context its caller never cancels:"
    )?;
    let guard = Guard::with_options(options.clone());
    let ctx = Context::background().with_cancel();
    let (results, hits) = sync_channel(1);
    let producer_ctx = ctx.context().clone();
    let producer = tracked::thread("stream-hits", move || {
        stream_hits_until_done(&producer_ctx, &results);
    })?;
    let _read = read_three(&hits);
    write!(out, "{}", guard.report())?;
    guard.disarm();
    ctx.cancel();
    let _ = producer.join();

    writeln!(
        out,
        "3. fixed: the caller cancels the context when it has read enough:"
    )?;
    let guard = Guard::with_options(options);
    {
        let ctx = Context::background().with_cancel();
        let (results, hits) = sync_channel(1);
        let producer_ctx = ctx.context().clone();
        tracked::thread("stream-hits", move || {
            stream_hits_until_done(&producer_ctx, &results);
        })?;
        let _read = read_three(&hits);
    } // `ctx` is dropped here: canceled, so the producer returns
    write!(out, "{}", guard.report())?;
    guard.verify();
    Ok(())
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
