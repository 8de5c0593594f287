//! Section 12.2.1 of the chapter: checking for cancellation inside a loop.
//!
//! CPU-bound work cannot wait on a channel; it polls. Go writes a `select` with a `default`
//! branch; ctxkit writes `ctx.check()?`, which never blocks, takes no lock, and turns a done
//! context into an early return with its error.
//!
//! The program processes a playlist twice: once to the end, and once with a caller that gives
//! up (cancels) while the second track is being processed, so the loop stops before the third.
//!
//! Run it with `cargo run --example process_tracks`.

use std::io::{self, Write};

use ctxkit::Context;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Processes `tracks` in order, checking `ctx` before each one; `work` is the per-track work.
///
/// # Errors
///
/// The context's error as soon as it is done (`context canceled`), or an error writing `out`.
pub fn process_tracks(
    ctx: &Context,
    tracks: &[&str],
    out: &mut dyn Write,
    work: &mut dyn FnMut(&str),
) -> Result<(), BoxError> {
    for track in tracks {
        ctx.check()?; // bail out early: Go's `case <-ctx.Done(): return ctx.Err()`
        writeln!(out, "processing: {track}")?;
        work(track);
    }
    Ok(())
}

/// The program: prints which tracks were processed in each of the two runs.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    let tracks = ["As It Was", "Vampire", "Anti-Hero"];

    let ctx = Context::background().with_cancel();
    match process_tracks(&ctx, &tracks, out, &mut |_| {}) {
        Ok(()) => writeln!(out, "all tracks processed")?,
        Err(err) => writeln!(out, "stopped early: {err}")?,
    }

    // The caller gives up while "Vampire" is being processed.
    let ctx = Context::background().with_cancel();
    let mut user_presses_stop = |track: &str| {
        if track == "Vampire" {
            ctx.cancel();
        }
    };
    match process_tracks(&ctx, &tracks, out, &mut user_presses_stop) {
        Ok(()) => writeln!(out, "all tracks processed")?,
        Err(err) => writeln!(out, "stopped early: {err}")?, // stopped early: context canceled
    }
    Ok(())
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
