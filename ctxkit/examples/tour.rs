//! A tour of the book chapter ctxkit follows (chapter 12, "Context and concurrency patterns"),
//! section by section: for each step, the section's number and title, what happens and what
//! Rust and ctxkit do about it, then the output of the section's example, run in place.
//!
//! ```text
//! cargo run --example tour
//! ```
//!
//! Each step is one of the examples in this directory, compiled in as a module; the command
//! printed above its output runs it alone. The chapter's timings are kept (the 2 s timeout of
//! 12.2, the 200 ms ticks of 12.9, the 400 ms deadline of 12.10): the tour takes about 5 s.
//! The traps, the modifications of "Try It" and the exercises have their own examples, listed
//! in `examples/README.md`.

use std::io::{self, Write};
use std::time::{Duration, Instant};

// The examples, compiled in as modules. A `#[path]` here is relative to this file's directory,
// whether this file is the example's crate root or is itself included from `tests/`.

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; its main is unused"
)]
#[path = "fetch_lyrics.rs"]
mod fetch_lyrics;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; its main is unused"
)]
#[path = "process_tracks.rs"]
mod process_tracks;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; its main is unused"
)]
#[path = "request_meta.rs"]
mod request_meta;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; its main is unused"
)]
#[path = "ctx_first.rs"]
mod ctx_first;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; its main is unused"
)]
#[path = "fetch_titles.rs"]
mod fetch_titles;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; its main is unused"
)]
#[path = "loop_no_exit.rs"]
mod loop_no_exit;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; its main is unused"
)]
#[path = "gomaxprocs.rs"]
mod gomaxprocs;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; its main is unused"
)]
#[path = "worker_pool.rs"]
mod worker_pool;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; its main is unused"
)]
#[path = "ticker_throttle.rs"]
mod ticker_throttle;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; its main is unused"
)]
#[path = "token_bucket.rs"]
mod token_bucket;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; its main is unused"
)]
#[path = "try_it.rs"]
mod try_it;

/// One program of a step: the command that runs it alone, and the program itself.
type Program = (&'static str, fn(&mut dyn Write) -> io::Result<()>);

/// One section of the chapter.
struct Step {
    /// The section's number and title, as in the chapter.
    header: &'static str,
    /// What happens and why: what Rust and ctxkit do better.
    why: &'static [&'static str],
    /// The section's programs, run in order.
    programs: &'static [Program],
}

/// The chapter's sections, in order.
const STEPS: &[Step] = &[
    Step {
        header: "12.2 Cancellation, Deadlines, and Timeouts",
        why: &[
            "A 3 s lyrics call under a 2 s timeout. `with_timeout` returns one value that cancels when",
            "dropped (no `defer cancel()` to forget); `ctx.run(call)` drops the slow call, leaving no goroutine behind.",
        ],
        programs: &[("cargo run --example fetch_lyrics", fetch_lyrics::run)],
    },
    Step {
        header: "12.2.1 Checking Cancellation Inside a Loop",
        why: &[
            "Go's `select { case <-ctx.Done(): ... default: }` is `ctx.check()?`: it never blocks or locks.",
            "The second run's caller cancels during \"Vampire\", so the loop stops before \"Anti-Hero\".",
        ],
        programs: &[("cargo run --example process_tracks", process_tracks::run)],
    },
    Step {
        header: "12.3 context.WithValue",
        why: &[
            "A value is keyed by its Rust type: a module's private newtype is a private key by construction,",
            "so two modules' `TraceId`s cannot collide, and a string key cannot be written at all.",
        ],
        programs: &[("cargo run --example request_meta", request_meta::run)],
    },
    Step {
        header: "12.4 Context as First Parameter",
        why: &[
            "`fn search_songs(ctx: &Context, query: &str)`, as in Go. A struct that borrows a context cannot",
            "outlive its request; one that keeps a clone falls into Go's trap (WRONG), then the fix and the exception.",
        ],
        programs: &[("cargo run --example ctx_first", ctx_first::run)],
    },
    Step {
        header: "12.5 errgroup — Fan-Out with Error Collection",
        why: &[
            "`Group::with_context` is `errgroup.WithContext`, `spawn` is `g.Go`; `wait` returns the results in",
            "spawn order (no shared slice to index by hand), or the first error, which cancels the other fetches.",
        ],
        programs: &[
            ("cargo run --example fetch_titles", |out| {
                fetch_titles::run(out, Duration::from_millis(100), None)
            }),
            ("cargo run --example fetch_titles -- fail 1", |out| {
                fetch_titles::run(out, Duration::from_millis(100), Some(1))
            }),
        ],
    },
    Step {
        header: "12.6 Goroutine Leak Detection",
        why: &[
            "The trap, a loop with no exit path: it never looks at its context and plays on after the caller gives",
            "up. ctxkit's leak check (goleak's `VerifyNone`) names it and its spawn line; the fixed loop passes.",
        ],
        programs: &[("cargo run --example loop_no_exit", |out| {
            loop_no_exit::run(out).map(|_| ())
        })],
    },
    Step {
        header: "12.7 GOMAXPROCS",
        why: &[
            "`procs::max_procs()` is `runtime.GOMAXPROCS(0)`, container-aware like Go 1.25 (and it honours an",
            "ancestor cgroup's quota too); `CTXKIT_MAXPROCS=4` is `GOMAXPROCS=4`. This machine's number:",
        ],
        programs: &[("cargo run --example gomaxprocs", |out| {
            gomaxprocs::run(out, &ctxkit::procs::current())
        })],
    },
    Step {
        header: "12.8 Worker Pool",
        why: &[
            "`Pool::new(3).queue(0).map(...)` is the producer, the workers, the WaitGroup and the closer: the results",
            "end after the last job, by ownership, so no channel is closed twice. Sorted: worker order varies.",
        ],
        programs: &[("cargo run --example worker_pool", worker_pool::run)],
    },
    Step {
        header: "12.9 Rate Limiting",
        why: &[
            "A `Ticker` stops when dropped (no `defer limiter.Stop()`); the chapter's hand-built token bucket",
            "(channel, refill goroutine, ticker) is `Limiter::new(5, 3)`, its tokens computed from the clock.",
        ],
        programs: &[
            ("cargo run --example ticker_throttle", |out| {
                ticker_throttle::run(out).map_err(|err| io::Error::other(err.to_string()))
            }),
            ("cargo run --example token_bucket", |out| {
                token_bucket::run(out).map_err(|err| io::Error::other(err.to_string()))
            }),
        ],
    },
    Step {
        header: "12.10 Try It",
        why: &[
            "A request id as a typed value, a 400 ms timeout, three 150 ms tracks on an interruptible sleep; the",
            "deadline cuts the third, matched by kind (`errors.Is`). Flags `--timeout-ms 600`, `--cancel-at-ms 250`.",
        ],
        programs: &[("cargo run --example try_it", try_it::run)],
    },
];

/// A writer that indents every line it is given.
struct Indent<'a> {
    out: &'a mut dyn Write,
    at_line_start: bool,
}

impl Write for Indent<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for line in buf.split_inclusive(|&byte| byte == b'\n') {
            if self.at_line_start && line != b"\n" {
                self.out.write_all(b"    ")?;
            }
            self.out.write_all(line)?;
            self.at_line_start = line.ends_with(b"\n");
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Walks the chapter: for each section, its header, what happens and why, then its programs'
/// output (indented, under the command that runs each alone).
///
/// # Errors
///
/// Errors writing to `out`, and the OS refusing a thread.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    let start = Instant::now();
    writeln!(
        out,
        "A tour of chapter 12, \"Context and concurrency patterns\", in Rust with ctxkit."
    )?;
    writeln!(
        out,
        "Each step runs the section's example in place; the command above its output runs it alone."
    )?;
    for step in STEPS {
        writeln!(out)?;
        writeln!(out, "{}", step.header)?;
        writeln!(out, "{}", "-".repeat(step.header.chars().count()))?;
        for line in step.why {
            writeln!(out, "{line}")?;
        }
        for (command, program) in step.programs {
            writeln!(out, "  $ {command}")?;
            out.flush()?; // the header shows while the program runs
            program(&mut Indent {
                out: &mut *out,
                at_line_start: true,
            })?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "tour done in {:.1} s. The traps, the modifications of \"Try It\" and the exercises have their own",
        start.elapsed().as_secs_f64()
    )?;
    writeln!(out, "examples: see ctxkit/examples/README.md.")?;
    Ok(())
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
