//! Helpers the integration tests share: the time constants, bounded waits that name what they
//! waited for (and the last state they saw) when they give up, one-shot polling with test
//! wakers, a seeded random generator, the text of a panic payload, and the tracked leaks of a
//! leak report.
//!
//! Each test file that needs them declares `mod common;` and uses a part of them.

#![allow(
    dead_code,
    reason = "each test binary compiles this module and uses only a part of it"
)]

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic;
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use ctxkit::{Context, Error};

pub(crate) mod pool;

// ===== time =====

/// The bound on a wait that must end: a correct run takes a tiny fraction of it, so only a hang
/// reaches it, and it then fails the test instead of hanging the suite.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// A deadline (or a sleep, or a token's interval) that cannot pass while a test runs.
pub(crate) const HOUR: Duration = Duration::from_secs(3600);

// ===== bounded waits =====

/// Waits for `ctx` to be done and returns its error; after [`PATIENCE`], panics with `what` and
/// the context's state.
#[track_caller]
pub(crate) fn wait_done(ctx: &Context, what: &str) -> Error {
    ctx.wait_timeout(PATIENCE)
        .unwrap_or_else(|| panic!("{what}: not done after {PATIENCE:?}: {ctx:?}"))
}

/// Reads `read()` every millisecond until `until` holds for what it read, and returns that; after
/// [`PATIENCE`], panics with `what` and the last value read.
#[track_caller]
pub(crate) fn wait_until<T: fmt::Debug>(
    what: &str,
    mut read: impl FnMut() -> T,
    mut until: impl FnMut(&T) -> bool,
) -> T {
    let give_up = Instant::now() + PATIENCE;
    loop {
        let value = read();
        if until(&value) {
            return value;
        }
        assert!(
            Instant::now() < give_up,
            "{what}: not there after {PATIENCE:?}; last read {value:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `f` on a thread of its own and returns its result, or panics with `what` if there is
/// none after [`PATIENCE`] (the thread is left behind). A panic in `f` is resumed here.
#[track_caller]
pub(crate) fn watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let runner = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(value) => value,
        Err(mpsc::RecvTimeoutError::Disconnected) => match runner.join() {
            Err(payload) => panic::resume_unwind(payload),
            Ok(()) => unreachable!("the runner sends before it ends"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: no result after {PATIENCE:?}: a hang")
        }
    }
}

/// Awaits `f` (on a tokio runtime with its timer enabled), or panics if it is not ready after
/// twice [`PATIENCE`].
pub(crate) async fn bounded<F: Future>(f: F) -> F::Output {
    let bound = 2 * PATIENCE;
    tokio::time::timeout(bound, f)
        .await
        .unwrap_or_else(|_| panic!("no result after {bound:?}: a hang"))
}

// ===== polling and wakers =====

/// Polls `f` once with a waker that does nothing.
pub(crate) fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    poll_with(f, &futures::task::noop_waker())
}

/// Polls `f` once with `waker`.
pub(crate) fn poll_with<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut TaskContext::from_waker(waker))
}

/// A waker that reports each wake on a channel: proof of who woke a task, with no runtime.
struct ChannelWaker(Mutex<mpsc::Sender<()>>);

impl Wake for ChannelWaker {
    fn wake(self: Arc<Self>) {
        let _ = self.0.lock().unwrap().send(());
    }
}

/// A waker and the channel on which it reports each wake.
pub(crate) fn channel_waker() -> (Waker, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    (Waker::from(Arc::new(ChannelWaker(Mutex::new(tx)))), rx)
}

// ===== randomness =====

/// A seeded xorshift generator. Randomized tests print their seed, so a run's choices can be
/// replayed.
pub(crate) struct XorShift(u64);

impl XorShift {
    /// A generator for `seed` (any value; zero is made odd).
    pub(crate) fn new(seed: u64) -> XorShift {
        XorShift(seed | 1)
    }

    /// The next value.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value below `n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A seed from the wall clock, different on each run.
pub(crate) fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
}

// ===== panics =====

/// The message of a panic payload (`&str` or `String`), else an empty string.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// A leak check over the rest of the calling test (dropped at its end): the test fails if work
/// it started through ctxkit still runs then. The project's own tests of groups, pools, tickers
/// and after-functions open one first thing, so each also proves that nothing outlives it.
#[track_caller]
pub(crate) fn no_leaks() -> ctxkit::leak::Guard {
    ctxkit::leak::Guard::with_options(ctxkit::leak::Options::new().retry_for(PATIENCE))
}

/// [`no_leaks`] for an async test: runs `body` in a leak check's scope, then checks it while
/// the test's runtime goes on (a guard's blocking check would stop a current-thread runtime
/// from finishing the tasks that are ending).
#[track_caller]
pub(crate) fn no_leaks_async<F: std::future::Future>(
    body: F,
) -> impl std::future::Future<Output = F::Output> {
    ctxkit::leak::check_async_with(ctxkit::leak::Options::new().retry_for(PATIENCE), body)
}

// ===== leak reports =====

/// The tracked leaks of `report`: (name, spawn line).
pub(crate) fn tracked_leaks(report: &ctxkit::leak::Report) -> Vec<(&'static str, u32)> {
    report
        .leaks()
        .iter()
        .filter_map(|leak| match leak {
            ctxkit::leak::Leak::Tracked {
                name, spawned_at, ..
            } => Some((*name, spawned_at.line())),
            _ => None,
        })
        .collect()
}
