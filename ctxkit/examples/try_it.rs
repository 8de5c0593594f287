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
//! The chapter's "Try these modifications", as flags:
//!
//! * `--timeout-ms 600`: a longer timeout; all three tracks play.
//! * `--cancel-at-ms 250`: `with_cancel` instead of `with_timeout`, and another thread cancels
//!   at 250 ms: the error turns from `context deadline exceeded` to `context canceled`.
//!   "Vampire" is aborted, and so is "Anti-Hero": the loop only stops early on a deadline, as
//!   the chapter's `if errors.Is(err, context.DeadlineExceeded) { break }` does.
//!
//!   ```text
//!   cargo run --example try_it -- --cancel-at-ms 250
//!   [req-2026] played "As It Was"
//!   [req-2026] "Vampire" aborted: context canceled
//!   [req-2026] "Anti-Hero" aborted: context canceled
//!   ```
//!
//! The third modification, looking the id up under a plain string key (`ctx.Value("req")`,
//! `nil` in Go), cannot be written here: the key is a type, not an argument. It is a
//! `compile_fail` test in the docs of `Context::value`, beside what the same mistake does in
//! Go.
//!
//! Run it with `cargo run --example try_it` (add `-- --timeout-ms 600` or
//! `-- --cancel-at-ms 250`).

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
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

/// What ends the playlist early: the chapter's timeout, or its second modification, a cancel
/// from another thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// `with_timeout(d)`: the chapter's program (400 ms), or `--timeout-ms`.
    Timeout(Duration),
    /// `with_cancel()`, and a thread that cancels after `d`: `--cancel-at-ms`.
    CancelAt(Duration),
}

/// The chapter's program: a 400 ms timeout.
pub const DEFAULT_STOP: Stop = Stop::Timeout(Duration::from_millis(400));

/// The chapter's track length.
pub const TRACK: Duration = Duration::from_millis(150);

/// Reads the flags (the arguments after the program's name): none, `--timeout-ms N` or
/// `--cancel-at-ms N`, with `N` whole milliseconds.
///
/// # Errors
///
/// A message for the user: an unknown flag, a missing or bad number, or both flags.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Stop, String> {
    let mut stop = None;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let make: fn(Duration) -> Stop = match flag.as_str() {
            "--timeout-ms" => Stop::Timeout,
            "--cancel-at-ms" => Stop::CancelAt,
            _ => {
                return Err(format!(
                    "unknown argument {flag:?} (expected --timeout-ms N or --cancel-at-ms N)"
                ))
            }
        };
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a number of milliseconds"))?;
        let ms: u64 = value
            .parse()
            .map_err(|_| format!("{flag} needs a whole number of milliseconds, not {value:?}"))?;
        if stop.is_some() {
            return Err(
                "give one of --timeout-ms and --cancel-at-ms, once (each replaces the 400 ms timeout)"
                    .to_owned(),
            );
        }
        stop = Some(make(Duration::from_millis(ms)));
    }
    Ok(stop.unwrap_or(DEFAULT_STOP))
}

/// Plays the tracks in turn; stops at the first error only if it is a deadline, as the
/// chapter's loop does.
fn play_all(ctx: &Context, out: &mut dyn Write, lengths: [Duration; 3]) -> io::Result<()> {
    let tracks = ["As It Was", "Vampire", "Anti-Hero"];
    for (track, length) in tracks.into_iter().zip(lengths) {
        if let Err(err) = play(ctx, out, track, length)? {
            writeln!(out, "{err}")?;
            if err.error == Error::DeadlineExceeded {
                break;
            }
        }
    }
    Ok(())
}

/// The program with its timings as parameters: what stops it, and each track's length.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run_stop(out: &mut dyn Write, stop: Stop, lengths: [Duration; 3]) -> io::Result<()> {
    let ctx = with_req_id(&Context::background(), "req-2026");
    match stop {
        Stop::Timeout(timeout) => {
            let ctx = ctx.with_timeout(timeout);
            play_all(&ctx, out, lengths)
        }
        Stop::CancelAt(after) => {
            // Go's `defer cancel()`: `playlist` is canceled once the tracks are over (on
            // purpose, before the scope ends), which also lets the canceler go if the tracks
            // ended before it fired; the scope then joins it.
            let playlist = ctx.with_cancel();
            let (ctx, cancel) = playlist.with_cancel().into_parts();
            let over = playlist.context().clone();
            std::thread::scope(|s| {
                // Go's `go func() { time.Sleep(250 * time.Millisecond); cancel() }()`.
                s.spawn(move || {
                    if over.wait_timeout(after).is_none() {
                        cancel.cancel();
                    }
                });
                let played = play_all(&ctx, out, lengths);
                playlist.cancel();
                played
            })
        }
    }
}

/// The program with a timeout and track lengths of the caller's.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run_with(out: &mut dyn Write, timeout: Duration, lengths: [Duration; 3]) -> io::Result<()> {
    run_stop(out, Stop::Timeout(timeout), lengths)
}

/// The chapter's program: a 400 ms timeout over three 150 ms tracks.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    run_stop(out, DEFAULT_STOP, [TRACK; 3])
}

fn main() -> ExitCode {
    let stop = match parse_args(std::env::args().skip(1)) {
        Ok(stop) => stop,
        Err(message) => {
            eprintln!("try_it: {message}");
            return ExitCode::from(2);
        }
    };
    match run_stop(&mut io::stdout().lock(), stop, [TRACK; 3]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("try_it: {err}");
            ExitCode::FAILURE
        }
    }
}
