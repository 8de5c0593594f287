//! The chapter's first "What does this print?" (12.12): two workers under a 200 ms timeout,
//! each waiting 500 ms for work or for the context, and `main` sleeping 400 ms.
//!
//! Go's answer: after 200 ms the deadline passes, both goroutines see `ctx.Done()` first and
//! print `<label> cancelled: context deadline exceeded` (in either order), and at 400 ms main
//! prints `main done`. Neither goroutine ever prints `done`: 500 ms is past the deadline.
//!
//! The Rust version prints
//!
//! ```text
//! Flaming June cancelled: context deadline exceeded
//! Saltwater cancelled: context deadline exceeded
//! main done
//! ```
//!
//! Two deliberate differences, both for a deterministic answer:
//!
//! * The workers run in `std::thread::scope`, so `main` cannot finish before them: in Rust a
//!   worker that is still running when `main` returns is a compile-time question (the scope
//!   joins it), not a race. Go only gets `main done` last because 400 ms > 200 ms.
//! * The workers send their lines to `main`, which prints them sorted. Go's two lines may come
//!   in either order; sorting makes the output checkable.
//!
//! `ctx.wait_timeout(d)` is Go's `select { case <-time.After(d): case <-ctx.Done(): }` for a
//! thread: `None` when `d` passed first, the context's error when it was done first.
//!
//! Run it with `cargo run --example two_workers_puzzle`.

use std::io::{self, Write};
use std::sync::mpsc;
use std::time::Duration;

use ctxkit::Context;

fn work(ctx: &Context, label: &str, work_time: Duration) -> String {
    match ctx.wait_timeout(work_time) {
        None => format!("{label} done"),
        Some(err) => format!("{label} cancelled: {err}"),
    }
}

/// The program with its timings as parameters.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run_with(
    out: &mut dyn Write,
    timeout: Duration,
    work_time: Duration,
    main_sleep: Duration,
) -> io::Result<()> {
    let ctx = Context::background().with_timeout(timeout);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        for label in ["Flaming June", "Saltwater"] {
            let (ctx, tx) = (&ctx, tx.clone());
            s.spawn(move || tx.send(work(ctx, label, work_time)));
        }
        std::thread::sleep(main_sleep);
    });
    drop(tx);
    let mut lines: Vec<String> = rx.into_iter().collect();
    lines.sort();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "main done")
}

/// The puzzle's program: a 200 ms timeout, 500 ms of work, main sleeping 400 ms.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    run_with(
        out,
        Duration::from_millis(200),
        Duration::from_millis(500),
        Duration::from_millis(400),
    )
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
