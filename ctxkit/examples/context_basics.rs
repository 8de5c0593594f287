//! Sections 12.1, 12.1.1 and 12.2 of the chapter: what a context answers, its two roots, the
//! three constructors that make it cancelable, and telling a timeout from a cancel.
//!
//! * 12.1: Go's `Context` interface has four methods. In ctxkit they are `deadline()` (an
//!   `Option<Instant>`, not a time plus an `ok` flag), `is_done()` / `wait()` / `done()` (Go's
//!   `Done()` channel: ask, block, or await), `err()` (an `Option<Error>`, not a nilable
//!   `error`) and `value::<T>()` (keyed by a type, so no key can be mistyped or collide). The
//!   program prints all four for `Context::background()` and for a 50 ms timeout, before and
//!   after its deadline.
//! * 12.1.1: `background()` and `todo()` answer alike (no deadline, never done, no values);
//!   `todo()` is told apart by its `Debug` output, which says `todo`, so a leftover one is easy
//!   to find.
//! * 12.2: `with_cancel()`, `with_deadline(now + 100 ms)` and `with_timeout(100 ms)` side by
//!   side: their deadlines, their error after `cancel()`, and after the deadline. Each returns
//!   one value that cancels on drop, so Go's "always `defer cancel()`" cannot be forgotten.
//! * 12.2, `errors.Is`: `stop_reason` sorts a context's error with an exhaustive `match`, so a
//!   third kind of error could not be silently missed.
//!
//! The output does not depend on timing unless the machine stalls for a whole timeout: a
//! deadline is printed as "within N ms" (it was set N ms ahead), and the program waits for a
//! deadline with the context's own blocking `wait()`.
//!
//! ```text
//! == 12.1 the four methods ==
//! Context::background()
//!   deadline(): none
//!   is_done(): false
//!   err(): none
//!   value::<Song>(): none
//! with_timeout(50 ms), before its deadline
//!   deadline(): within 50 ms
//!   is_done(): false
//!   err(): none
//!   value::<Song>(): none
//! with_timeout(50 ms), after wait() returned "context deadline exceeded"
//!   deadline(): passed
//!   is_done(): true
//!   err(): context deadline exceeded
//!   value::<Song>(): none
//! == 12.1.1 the two roots ==
//! background(): deadline none, done false, err none, value none, Debug "Context::background()"
//! todo(): deadline none, done false, err none, value none, Debug "Context::todo()"
//! == 12.2 with_cancel, with_deadline, with_timeout ==
//! with_cancel(): deadline none
//!   after cancel(): context canceled
//! with_deadline(now + 100 ms): deadline within 100 ms
//!   after cancel(): context canceled
//!   after the deadline: context deadline exceeded
//! with_timeout(100 ms): deadline within 100 ms
//!   after cancel(): context canceled
//!   after the deadline: context deadline exceeded
//! == 12.2 errors.Is: which kind of error? ==
//! a timed-out context: ran out of time
//! a canceled context: caller gave up
//! ```
//!
//! Run it with `cargo run --example context_basics`.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use ctxkit::{CancelContext, Context, Error};

/// A constructor with a deadline, given the time to it: `with_deadline` or `with_timeout`.
type WithDeadlineIn = fn(Duration) -> CancelContext;

/// A value key of this program's own, for `value::<Song>()`; nothing stores one here.
#[derive(Debug)]
struct Song(&'static str);

/// A deadline as a person reads it: `none`, `passed`, or `within N ms` (it was set `N` ms
/// ahead). Never a raw instant or an exact duration, so the output is the same on every run
/// unless the machine stalls for the whole of `N`.
fn deadline_text(deadline: Option<Instant>, set_ahead: Duration) -> String {
    let Some(deadline) = deadline else {
        return "none".to_owned();
    };
    if deadline <= Instant::now() {
        return "passed".to_owned();
    }
    format!("within {} ms", set_ahead.as_millis())
}

/// An error as Go prints a nilable one: `none` for no error.
fn err_text(err: Option<Error>) -> String {
    err.map_or_else(|| "none".to_owned(), |err| err.to_string())
}

/// Go's four methods, one a line.
fn four_methods(
    out: &mut dyn Write,
    title: &str,
    ctx: &Context,
    set_ahead: Duration,
) -> io::Result<()> {
    writeln!(out, "{title}")?;
    writeln!(
        out,
        "  deadline(): {}",
        deadline_text(ctx.deadline(), set_ahead)
    )?;
    writeln!(out, "  is_done(): {}", ctx.is_done())?;
    writeln!(out, "  err(): {}", err_text(ctx.err()))?;
    let value = ctx.value::<Song>().map_or("none", |song| song.0);
    writeln!(out, "  value::<Song>(): {value}")
}

/// A root on one line: the same four answers, and its `Debug` output.
fn root_line(out: &mut dyn Write, name: &str, ctx: &Context) -> io::Result<()> {
    writeln!(
        out,
        "{name}: deadline {}, done {}, err {}, value {}, Debug \"{ctx:?}\"",
        deadline_text(ctx.deadline(), Duration::ZERO),
        ctx.is_done(),
        err_text(ctx.err()),
        if ctx.value::<Song>().is_some() {
            "some"
        } else {
            "none"
        },
    )
}

/// Go's `errors.Is(ctx.Err(), context.DeadlineExceeded)` / `errors.Is(ctx.Err(),
/// context.Canceled)`: the error's kind, by an exhaustive `match`.
pub fn stop_reason(err: Error) -> &'static str {
    match err {
        Error::DeadlineExceeded => "ran out of time",
        Error::Canceled => "caller gave up",
    }
}

/// The program, with the chapter's timeouts (50 and 100 ms).
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    run_with(out, Duration::from_millis(50))
}

/// The program with timeouts of `unit` and twice `unit` (the test gives them room to spare).
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run_with(out: &mut dyn Write, unit: Duration) -> io::Result<()> {
    let ms = unit.as_millis();
    // 12.1: the four methods.
    writeln!(out, "== 12.1 the four methods ==")?;
    four_methods(out, "Context::background()", &Context::background(), unit)?;
    let ctx = Context::background().with_timeout(unit);
    four_methods(
        out,
        &format!("with_timeout({ms} ms), before its deadline"),
        &ctx,
        unit,
    )?;
    let err = ctx.wait(); // Go's `<-ctx.Done()`: blocks until the deadline
    let title = format!("with_timeout({ms} ms), after wait() returned \"{err}\"");
    four_methods(out, &title, &ctx, unit)?;

    // 12.1.1: the two roots.
    writeln!(out, "== 12.1.1 the two roots ==")?;
    root_line(out, "background()", &Context::background())?;
    root_line(out, "todo()", &Context::todo())?;

    // 12.2: the three constructors side by side.
    writeln!(out, "== 12.2 with_cancel, with_deadline, with_timeout ==")?;
    let ctx = Context::background().with_cancel();
    writeln!(
        out,
        "with_cancel(): deadline {}",
        deadline_text(ctx.deadline(), Duration::ZERO)
    )?;
    ctx.cancel();
    writeln!(out, "  after cancel(): {}", err_text(ctx.err()))?;

    let twice = unit * 2;
    let constructors: [(String, WithDeadlineIn); 2] = [
        (
            format!("with_deadline(now + {} ms)", twice.as_millis()),
            |d| Context::background().with_deadline(Instant::now() + d),
        ),
        (format!("with_timeout({} ms)", twice.as_millis()), |d| {
            Context::background().with_timeout(d)
        }),
    ];
    for (name, make) in constructors {
        let canceled = make(twice);
        writeln!(
            out,
            "{name}: deadline {}",
            deadline_text(canceled.deadline(), twice)
        )?;
        canceled.cancel();
        writeln!(out, "  after cancel(): {}", err_text(canceled.err()))?;
        let timed_out = make(twice);
        timed_out.wait();
        writeln!(out, "  after the deadline: {}", err_text(timed_out.err()))?;
    }

    // 12.2: errors.Is, each kind once.
    writeln!(out, "== 12.2 errors.Is: which kind of error? ==")?;
    let timed_out = Context::background().with_timeout(Duration::from_millis(10));
    writeln!(
        out,
        "a timed-out context: {}",
        stop_reason(timed_out.wait())
    )?;
    let canceled = Context::background().with_cancel();
    canceled.cancel();
    // Already done: wait() returns its error at once.
    writeln!(out, "a canceled context: {}", stop_reason(canceled.wait()))
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
