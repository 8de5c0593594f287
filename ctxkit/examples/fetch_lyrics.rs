//! Section 12.2 of the chapter: a slow call under a timeout.
//!
//! `fetch_lyrics` races a simulated 3 s network call against a context with a 2 s timeout and
//! prints `timed out: context deadline exceeded`.
//!
//! What it shows:
//!
//! * `with_timeout` returns one value, the context that owns its cancellation. Go's "always
//!   `defer cancel()`" is that value going out of scope at the end of `run_with`: nothing to
//!   remember, and no `cancel` to lose.
//! * `ctx.run(work)` is Go's `select { case <-done: case <-ctx.Done(): }`. When the context wins,
//!   the slow call is *dropped*, so unlike the Go version no goroutine is left sleeping behind.
//! * The slow call itself waits with `Context::sleep`, which needs no async runtime: the whole
//!   program runs on `futures::executor::block_on`.
//!
//! Run it with `cargo run --example fetch_lyrics`.

use std::io::{self, Write};
use std::time::Duration;

use ctxkit::{Context, Error};
use futures::executor::block_on;

/// Simulates a slow network call that takes `latency`.
async fn slow_lyrics_api(song: &str, latency: Duration) -> String {
    // A plain delay: the background context is never done, so this sleeps the full latency.
    let _ = Context::background().sleep(latency).await;
    format!("{song}: I can't keep loving you the way I do")
}

/// Fetches a song's lyrics unless `ctx` is done first.
///
/// # Errors
///
/// The context's error (`context deadline exceeded` here) if it is done first.
pub async fn fetch_lyrics(ctx: &Context, song: &str, latency: Duration) -> Result<String, Error> {
    ctx.run(slow_lyrics_api(song, latency)).await
}

/// The program with its timings as parameters: a `timeout` over a call of `latency`.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run_with(out: &mut dyn Write, timeout: Duration, latency: Duration) -> io::Result<()> {
    let ctx = Context::background().with_timeout(timeout);
    match block_on(fetch_lyrics(&ctx, "Gouryella", latency)) {
        Ok(lyrics) => writeln!(out, "{lyrics}"),
        Err(err) => writeln!(out, "timed out: {err}"), // timed out: context deadline exceeded
    }
}

/// The chapter's program: a 2 s timeout over a 3 s call.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    run_with(out, Duration::from_secs(2), Duration::from_secs(3))
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
