//! Section 12.10 of the chapter, "Try It": a request id in a value, a 400 ms timeout, and a
//! playlist where each 150 ms track respects cancellation.
//!
//! Prints
//!
//! ```text
//! [req-2026] played "As It Was"
//! [req-2026] played "Vampire"
//! [req-2026] "Anti-Hero" aborted: context deadline exceeded
//! ```
//!
//! What it shows: `with_value` with a private key type (`ReqId`), `with_timeout` over it (values
//! flow through), and `blocking_sleep`, an interruptible sleep: Go's
//! `select { case <-time.After(d): case <-ctx.Done(): }` in one call. The error is matched by
//! kind (`Error::DeadlineExceeded`), as Go's `errors.Is(err, context.DeadlineExceeded)`.
//!
//! The chapter's modifications work the same way: a 600 ms timeout plays all three tracks;
//! `with_cancel` plus a thread that cancels after 250 ms turns the error into
//! `context canceled`; and looking the id up under another type (`ctx.value::<String>()`)
//! finds nothing, because the key is the type.
//!
//! Run it with `cargo run --example try_it`.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use ctxkit::{Context, Error};

/// The request id; private, so it is a private key.
struct ReqId(String);

fn with_req_id(ctx: &Context, id: &str) -> Context {
    ctx.with_value(ReqId(id.to_owned()))
}

fn req_id(ctx: &Context) -> &str {
    ctx.value::<ReqId>().map_or("unknown", |id| id.0.as_str())
}

/// A track that did not finish: Go's `fmt.Errorf("[%s] %q aborted: %w", ...)`.
#[derive(Debug)]
pub struct Aborted {
    line: String,
    /// Why: the context's error.
    pub error: Error,
}

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

impl std::error::Error for Aborted {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Plays `track` for `length`, unless the context is done first.
///
/// # Errors
///
/// [`Aborted`] if the context is done before the track ends.
fn play(
    ctx: &Context,
    out: &mut dyn Write,
    track: &str,
    length: Duration,
) -> io::Result<Result<(), Aborted>> {
    match ctx.blocking_sleep(length) {
        Ok(()) => {
            writeln!(out, "[{}] played {track:?}", req_id(ctx))?;
            Ok(Ok(()))
        }
        Err(error) => Ok(Err(Aborted {
            line: format!("[{}] {track:?} aborted: {error}", req_id(ctx)),
            error,
        })),
    }
}

/// The program with its timings as parameters: the timeout and each track's length.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run_with(out: &mut dyn Write, timeout: Duration, lengths: [Duration; 3]) -> io::Result<()> {
    let ctx = with_req_id(&Context::background(), "req-2026");
    let ctx = ctx.with_timeout(timeout);
    let tracks = ["As It Was", "Vampire", "Anti-Hero"];
    for (track, length) in tracks.into_iter().zip(lengths) {
        if let Err(err) = play(&ctx, out, track, length)? {
            writeln!(out, "{err}")?;
            if err.error == Error::DeadlineExceeded {
                break;
            }
        }
    }
    Ok(())
}

/// The chapter's program: a 400 ms timeout over three 150 ms tracks.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    run_with(
        out,
        Duration::from_millis(400),
        [Duration::from_millis(150); 3],
    )
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
