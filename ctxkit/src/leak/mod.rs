//! Leak checks for tests: threads and tasks that outlive the test (or the scope) that started
//! them, reported with where they came from. Go's `goleak`, attributed exactly under cargo's
//! parallel test runner.
//!
//! | Go (`go.uber.org/goleak`) | ctxkit |
//! |---|---|
//! | `defer goleak.VerifyNone(t)` | `let _leaks = leak::Guard::new();` (checks on drop) or `leak::check(\|\| { ... })` |
//! | (none: goroutines of a parallel test are blamed on yours, goleak#83) | scopes: work started through ctxkit carries its scope, across threads and tasks |
//! | `goleak.VerifyTestMain(m)` | [`verify_none`] at the end of a `harness = false` test's `main`, or of any program |
//! | `goleak.IgnoreTopFunction(...)` | [`Options::ignore_spawn_site`], [`Options::ignore_thread_name`] |
//! | `goleak.MaxRetryAttempts`, `MaxSleepInterval` | [`Options::retry_for`] (default [`DEFAULT_RETRY_FOR`]) |
//!
//! Differences on purpose: a check covers a scope, not the whole process, so tests running in
//! parallel do not blame each other; it names units (a thread or task, its spawn site, the
//! context it waits on) instead of printing every goroutine's stack; and [`verify_none`] runs no
//! tests and never exits, so it cannot be skipped the way `VerifyTestMain` is when `TestMain`
//! also calls `m.Run()` or `os.Exit` itself. It sees only threads and tasks: a thread blocked on
//! a channel is reported, but not what the channel is.
//!
//! A check panics with a [`Report`] (failing the test) when work started inside its scope still
//! runs after the retries. What it sees, and how sure it is, is in three layers:
//!
//! * **Work started through ctxkit** (a group's or a pool's workers, after-functions, and
//!   [`tracked::thread`](crate::tracked::thread) / [`tracked::task`]):
//!   attributed exactly, even with tests running in parallel: a scope is inherited by whatever
//!   its work starts, across threads and tasks. Reported with its name, its spawn site, how long
//!   it has run, and what it waits on when it waits on a context (where that context was made,
//!   its deadline, whether it is done).
//! * **Other threads** (`std::thread::spawn`, a library's): those that started while the scope
//!   was open and still run, from the OS's list (Linux), with their name and age. The OS does
//!   not say who started a thread, so they fail the check only when no other test can have run
//!   meanwhile (the check runs on the main thread, with `--test-threads=1`, or in
//!   [`verify_none`]); otherwise the report lists them as uncertain rather than blame a
//!   neighbour.
//! * **Other tokio tasks** on the runtime current when the scope opened: how many more are
//!   alive than at the opening (tokio names no task). Certain when that runtime had none at
//!   the opening (a `#[tokio::test]`'s own runtime).
//!
//! ctxkit's own process-wide threads are never reported: `ctxkit-timer`, and the after-function
//! pool's (its `ctxkit-after-func` workers, which linger a few seconds once idle, and their
//! dispatcher). An after-function is attributed to the scope where `after_func` was called, and
//! fails a check from the cancel that hands it off until it returns, whether it still waits
//! for a free worker or runs on one. A thread or task that
//! is just exiting is not a leak: a check looks again, with growing pauses, for up to
//! [`Options::retry_for`] before it reports (tokio's count of live tasks still includes a task
//! whose join has just completed, tokio#7591).
//!
//! # The chapter's leak, reported
//!
//! The chapter's `streamHits` producer blocks forever sending to a consumer that stopped
//! reading. goleak (Debian's 1.2.0, go1.19; a test that reads three hits and stops) reports it
//! as a goroutine's stack, with the line that created it:
//!
//! ```text
//! --- FAIL: TestStreamHits (0.45s)
//!     hits_test.go:17: found unexpected goroutines:
//!         [Goroutine 19 in state chan send, with hits.streamHits on top of the stack:
//!         goroutine 19 [chan send]:
//!         hits.streamHits(0x0?)
//!             /tmp/gohits/src/hits/hits.go:6 +0x25
//!         created by hits.TestStreamHits
//!             /tmp/gohits/src/hits/hits_test.go:12 +0xb6
//!         ]
//! ```
//!
//! ctxkit's report of the same leak, from the `stream_hits_leak` example, in the version where
//! the producer watches a context but its caller never cancels it: the report names the
//! producer, the line that started it, how long it has run, and the context it waits on, with
//! the line that made it and its state: no deadline and not done, which is the bug. goleak says
//! where the goroutine sits and who created it, but not what it waits for or why that never
//! comes; and with tests in parallel (`t.Parallel()`) it fails whichever test checks first,
//! goleak#83. ctxkit's check also needs no stack to be read: it names the unit and the line.
//!
//! ```text
//! ctxkit::leak: 1 leak(s) from the scope opened at ctxkit/examples/stream_hits_leak.rs:88:17 (still running after 100ms of retries):
//! leak 1: thread "stream-hits", started through ctxkit
//!     spawned at: ctxkit/examples/stream_hits_leak.rs:92:20
//!     running for: 100.3ms
//!     waiting on: a context made at ctxkit/examples/stream_hits_leak.rs:89:37, no deadline, not done
//! ```
//!
//! The faithful port (blocked in a send on a channel nobody reads) is reported with its name,
//! spawn site and age, and "waiting on: nothing ctxkit knows": ctxkit sees contexts, not
//! channels.
//!
//! # Examples
//!
//! A test that checks that nothing it starts outlives it:
//!
//! ```
//! use ctxkit::pool::Pool;
//! use ctxkit::{leak, Context};
//!
//! leak::check(|| {
//!     let ctx = Context::background();
//!     let sum: u64 = Pool::new(2).map(&ctx, 1..=3u64, |_ctx, n| n).map(Result::unwrap).sum();
//!     assert_eq!(sum, 6);
//! }); // the pool's workers were joined when the map was dropped: no leak
//! ```
//!
//! A leak, caught and reported:
//!
//! ```
//! use std::time::Duration;
//! use ctxkit::leak::{self, Leak, Options};
//! use ctxkit::{tracked, Context};
//!
//! let guard = leak::Guard::with_options(Options::new().retry_for(Duration::from_millis(200)));
//! let ctx = Context::background().with_cancel();
//! let waits = ctx.context().clone();
//! let worker = tracked::thread("waits-forever", move || {
//!     waits.wait(); // nobody cancels `ctx` before the check
//! })
//! .unwrap();
//! let report = guard.report();
//! assert_eq!(report.leaks().len(), 1);
//! let Leak::Tracked { name, waiting_on, .. } = &report.leaks()[0] else { panic!() };
//! assert_eq!(*name, "waits-forever");
//! let (context, now) = waiting_on.as_ref().unwrap();
//! assert!(context.contains("no deadline, not done"));
//! assert!(*now, "parked in `wait` at the look");
//! guard.disarm(); // this example expected the leak
//! ctx.cancel();
//! worker.join().unwrap();
//! ```
//!
// `tracked::task` needs the `tokio` feature; without it the link goes to `tracked`.
#![cfg_attr(feature = "tokio", doc = "[`tracked::task`]: crate::tracked::task")]
#![cfg_attr(not(feature = "tokio"), doc = "[`tracked::task`]: crate::tracked")]

mod options;
mod os_threads;
mod report;
mod scope;

use std::future::{poll_fn, Future};
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::pin;
use std::time::Duration;

pub use options::{Options, DEFAULT_RETRY_FOR};
pub use report::{Leak, Report};

use crate::spawn::Entered;
use crate::time;
use crate::timer::Alarm;
use scope::{Retry, Scope};

/// A leak check over a scope: from [`new`](Guard::new) to [`verify`](Guard::verify) or the
/// guard's drop, work started on this thread (and whatever that work starts) belongs to the
/// scope; at the end, whatever of it still runs after the retries fails the check.
///
/// Dropping an armed guard verifies (unless the thread is already panicking: a failed test is
/// not failed twice). Guards nest: an inner guard checks its own scope, and the outer one
/// sees the inner one's work too. A guard must be dropped on the thread that made it, inner
/// before outer; it is not `Send`. In async code, use [`check_async`].
///
/// # Examples
///
/// ```
/// use ctxkit::{group, leak, Context, Error};
///
/// let _leaks = leak::Guard::new(); // checked when the test returns
/// let lengths = group::scope(&Context::background(), |s| {
///     s.spawn(|_ctx| Ok::<_, Error>("Saltwater".len()));
/// });
/// assert_eq!(lengths, Ok(vec![9]));
/// ```
#[must_use = "a guard checks when it is dropped: bind it to a variable (`let _leaks = ...`)"]
#[derive(Debug)]
pub struct Guard {
    scope: Scope,
    /// Restores the previous scope tag when dropped.
    entered: Option<Entered>,
    armed: bool,
    /// Not `Send`: the scope's tag is the making thread's.
    _not_send: PhantomData<*const ()>,
}

impl Guard {
    /// Opens a scope on the calling thread with the default [`Options`].
    ///
    /// # Examples
    ///
    /// See [`Guard`].
    #[track_caller]
    pub fn new() -> Guard {
        Guard::open(Location::caller(), Options::new())
    }

    /// Opens a scope on the calling thread with `options`.
    ///
    /// # Examples
    ///
    /// See [the module docs](self).
    #[track_caller]
    pub fn with_options(options: Options) -> Guard {
        Guard::open(Location::caller(), options)
    }

    fn open(opened_at: &'static Location<'static>, options: Options) -> Guard {
        let scope = Scope::open(opened_at, options);
        let entered = Some(scope.tag.enter());
        Guard {
            scope,
            entered,
            armed: true,
            _not_send: PhantomData,
        }
    }

    /// Looks (retrying as the options say) and returns what it found, without failing.
    ///
    /// # Examples
    ///
    /// ```
    /// let guard = ctxkit::leak::Guard::new();
    /// assert!(guard.report().is_clean());
    /// ```
    pub fn report(&self) -> Report {
        self.scope.report()
    }

    /// Ends the scope and checks it.
    ///
    /// # Panics
    ///
    /// With the [`Report`] as the message if work started in the scope still runs after the
    /// retries: that is how it fails the test.
    ///
    /// # Examples
    ///
    /// ```
    /// let guard = ctxkit::leak::Guard::new();
    /// // ... the test ...
    /// guard.verify();
    /// ```
    pub fn verify(mut self) {
        self.armed = false;
        conclude(&self.scope.report());
    }

    /// Ends the scope without checking it.
    ///
    /// # Examples
    ///
    /// See [the module docs](self).
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Default for Guard {
    #[track_caller]
    fn default() -> Guard {
        Guard::new()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed && !std::thread::panicking() {
            self.armed = false;
            let report = self.scope.report();
            // Leave the scope before failing, so the panic's unwinding is outside it.
            self.entered.take();
            conclude(&report);
        }
    }
}

/// Runs `body` in a leak check's scope and checks it (see [`Guard`]); returns what `body`
/// returned.
///
/// # Panics
///
/// With the [`Report`] as the message if work `body` started still runs after the retries;
/// and if `body` panics (then nothing is checked).
///
/// # Examples
///
/// ```
/// use ctxkit::{leak, Context};
///
/// let fired = leak::check(|| {
///     let ctx = Context::background().with_cancel();
///     let (tx, rx) = std::sync::mpsc::channel();
///     let _after = ctx.after_func(move || tx.send(()).unwrap());
///     ctx.cancel();
///     rx.recv().is_ok() // it ran, and returns right after; its idle thread is no leak
/// });
/// assert!(fired);
/// ```
#[track_caller]
pub fn check<T>(body: impl FnOnce() -> T) -> T {
    check_with(Options::new(), body)
}

/// As [`check`], with `options`.
///
/// # Panics
///
/// As [`check`].
///
/// # Examples
///
/// See [`Options`].
#[track_caller]
pub fn check_with<T>(options: Options, body: impl FnOnce() -> T) -> T {
    let guard = Guard::open(Location::caller(), options);
    let output = body();
    guard.verify();
    output
}

/// Runs `future` in a leak check's scope (the scope is current around each of its polls, so
/// work started through ctxkit while it runs belongs to it, on any thread), then checks the
/// scope, pausing asynchronously between looks. For `#[tokio::test]`:
/// `leak::check_async(async { ... }).await`.
///
/// # Panics
///
/// When awaited: with the [`Report`] as the message if work started in the scope still runs
/// after the retries.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use ctxkit::pool::Pool;
/// use ctxkit::{leak, Context};
///
/// leak::check_async(async {
///     let ctx = Context::background();
///     let workers = Pool::new(2).start_async(&ctx, |_ctx, _job: u32| async {});
///     workers.submit(&ctx, 1).await.unwrap();
///     workers.shutdown(&ctx).await; // its worker tasks end before this returns
/// })
/// .await;
/// # });
/// ```
#[track_caller]
pub fn check_async<F: Future>(future: F) -> impl Future<Output = F::Output> {
    check_async_with(Options::new(), future)
}

/// As [`check_async`], with `options`.
///
/// # Panics
///
/// As [`check_async`].
///
/// # Examples
///
/// See [`check_async`] and [`Options`].
#[track_caller]
pub fn check_async_with<F: Future>(options: Options, future: F) -> impl Future<Output = F::Output> {
    let opened_at = Location::caller();
    async move {
        // Opened at the first poll: inside the caller's runtime, if any.
        let scope = Scope::open(opened_at, options);
        let tag = scope.tag;
        let mut future = pin!(future);
        let output = poll_fn(|cx| {
            let _entered = tag.enter();
            future.as_mut().poll(cx)
        })
        .await;
        // Pauses between looks on the timer thread: the runtime goes on running the tasks
        // that are ending meanwhile.
        let mut retry = Retry::new(&scope.options);
        let report = loop {
            let report = scope.look_report(retry.started);
            match retry.next_pause() {
                Some(pause) if !report.is_clean() => {
                    let mut alarm = Alarm::new(time::now().saturating_add(nanos(pause)));
                    poll_fn(|cx| alarm.poll(cx.waker())).await;
                }
                _ => break report,
            }
        };
        conclude(&report);
        output
    }
}

/// Ends a check: fails with the report if it found a leak; else lists on standard error what
/// it could not attribute with certainty, if anything.
fn conclude(report: &Report) {
    if !report.is_clean() {
        panic!("{report}");
    }
    if !report.uncertain().is_empty() {
        eprintln!("{report}");
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Checks that nothing runs but the calling thread: no work started through ctxkit (but its
/// timer thread), no other thread. For the end of a test binary with `harness = false` (Go's
/// `goleak.VerifyTestMain`), or of a program; every leak found is certain.
///
/// # Panics
///
/// With the [`Report`] as the message if anything still runs after the retries.
///
/// # Examples
///
/// In `tests/leaks.rs`, declared with `harness = false` in `Cargo.toml`, `main` runs the
/// checks, then calls `verify_none()`; here a program checks that the work it started is over:
///
/// ```
/// use ctxkit::{tracked, Context, Error};
///
/// let ctx = Context::background().with_cancel();
/// let waiter = {
///     let ctx: Context = (*ctx).clone();
///     tracked::thread("waiter", move || ctx.wait()).unwrap()
/// };
/// ctx.cancel();
/// assert_eq!(waiter.join().unwrap(), Error::Canceled); // it saw the cancel
/// ctxkit::leak::verify_none(); // nothing else runs: passes
/// ```
#[track_caller]
pub fn verify_none() {
    verify_none_with(Options::new());
}

/// As [`verify_none`], with `options`.
///
/// # Panics
///
/// As [`verify_none`].
///
/// # Examples
///
/// See [`verify_none`].
#[track_caller]
pub fn verify_none_with(options: Options) {
    let scope = Scope::whole_process(Location::caller(), options);
    conclude(&scope.report());
}
