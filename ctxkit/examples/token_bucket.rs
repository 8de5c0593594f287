//! Section 12.9's token bucket: allow a burst of three requests, then settle to one every
//! 200 ms.
//!
//! Go's version builds the bucket by hand: a buffered channel of capacity 3, a loop that
//! pre-fills it, a `time.NewTicker(200 * time.Millisecond)` and a goroutine that drops a token
//! in on every tick (with a `select`/`default` so a full bucket discards it). With a
//! [`Limiter`] all of that is one line:
//!
//! ```
//! # use ctxkit::rate::Limiter;
//! let tokens = Limiter::new(5, 3).unwrap(); // 5 tokens a second (one per 200 ms), bursts of 3, starts full
//! ```
//!
//! and `<-tokens` is `tokens.blocking_wait(&ctx)?` (or `.wait(&ctx).await`). No goroutine (no
//! thread) refills it: the tokens are computed from the time.
//!
//! ```text
//! $ cargo run --example token_bucket
//! request 1 at 0 ms
//! request 2 at 0 ms
//! request 3 at 0 ms
//! request 4 at 200 ms
//! request 5 at 400 ms
//! ```
//!
//! Times are since the start, rounded down to 100 ms (a token never comes early).

use std::io::Write;
use std::time::Instant;

use ctxkit::rate::Limiter;
use ctxkit::Context;

/// Makes five requests through the bucket, writing one line per request to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    let ctx = Context::background();
    let start = Instant::now();
    let tokens = Limiter::new(5, 3)?; // the whole bucket, refill included
    for i in 1..=5 {
        tokens.blocking_wait(&ctx)?; // take a token, blocking if none is there
        let at = start.elapsed().as_millis() / 100 * 100;
        writeln!(out, "request {i} at {at} ms")?;
    }
    Ok(())
}

fn main() {
    if let Err(err) = run(&mut std::io::stdout()) {
        eprintln!("token_bucket: {err}");
        std::process::exit(1);
    }
}
