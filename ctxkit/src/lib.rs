//! ctxkit brings Go's `context.Context`, and the concurrency patterns built on it, to Rust, for
//! threads and async code alike.
//!
//! A [`Context`] carries cancellation, a deadline and request-scoped values down a tree of
//! work. The same context is polled in a loop, awaited in async code and blocked on from a
//! plain thread; the core needs no async runtime.
//!
//! # A tour
//!
//! A request with a deadline and a value, played track by track; each step respects
//! cancellation:
//!
//! ```
//! use std::time::Duration;
//! use ctxkit::{Context, Error};
//!
//! struct RequestId(&'static str);
//!
//! fn play(ctx: &Context, track: &str) -> Result<(), Error> {
//!     // Sleep 15 ms, unless the context is done first.
//!     ctx.blocking_sleep(Duration::from_millis(15))?;
//!     println!("[{}] played {track:?}", ctx.value::<RequestId>().unwrap().0);
//!     Ok(())
//! }
//!
//! let ctx = Context::background().with_value(RequestId("req-2026"));
//! let ctx = ctx.with_timeout(Duration::from_millis(40)); // canceled when `ctx` goes out of scope
//! let mut played = 0;
//! for track in ["As It Was", "Vampire", "Anti-Hero", "Houdini"] {
//!     match play(&ctx, track) {
//!         Ok(()) => played += 1,
//!         Err(err) => {
//!             assert_eq!(err, Error::DeadlineExceeded);
//!             break;
//!         }
//!     }
//! }
//! assert!(played < 4);
//! ```
//!
//! Fan-out under that kind of context: every task gets the group's context, the first failure
//! cancels the rest, and results come back in spawn order. On threads (no runtime needed; tasks
//! may borrow):
//!
//! ```
//! use std::time::Duration;
//! use ctxkit::{group, Context, Error};
//!
//! let songs = ["Flaming June", "Saltwater", "Windowlicker"];
//! let ctx = Context::background().with_timeout(Duration::from_secs(5));
//! let lengths = group::scope(&ctx, |s| {
//!     for song in &songs {
//!         s.spawn(move |ctx| {
//!             ctx.check()?; // a real fetch would watch `ctx` while it works
//!             Ok::<_, Error>(song.len())
//!         });
//!     }
//! });
//! assert_eq!(lengths, Ok(vec![12, 9, 12]));
//!
//! // A fixed set of calls with different result types: a join.
//! let (title, plays) = group::blocking_join2(
//!     &ctx,
//!     |_ctx| Ok::<_, Error>("Saltwater"),
//!     |_ctx| Ok::<_, Error>(1_234_567u64),
//! )?;
//! assert_eq!((title, plays), ("Saltwater", 1_234_567));
//! # Ok::<(), Error>(())
//! ```
//!
//! The same in async code, on tokio (feature `tokio`):
//!
//! ```
//! # #[cfg(feature = "tokio")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use ctxkit::{Context, Error, Group};
//!
//! async fn fetch(ctx: &Context, song: &'static str) -> Result<usize, Error> {
//!     ctx.sleep(Duration::from_millis(1)).await?; // the network, in this example
//!     Ok(song.len())
//! }
//!
//! let (mut g, _ctx) = Group::with_context(&Context::background());
//! for song in ["Flaming June", "Saltwater"] {
//!     g.spawn(move |ctx| async move { fetch(&ctx, song).await }).await;
//! }
//! assert_eq!(g.wait().await, Ok(vec![12, 9]));
//! # });
//! ```
//!
//! A fixed number of workers over a lazily pulled input (Go's worker pool, 12.8): the results
//! end when the last job has delivered its own, and once the context is done no queued job
//! starts:
//!
//! ```
//! use ctxkit::pool::Pool;
//! use ctxkit::Context;
//!
//! let ctx = Context::background();
//! let total: u64 = Pool::new(3) // or Pool::default(): procs::max_procs() workers
//!     .map(&ctx, 1..=7u64, |_ctx, n| n * n)
//!     .map(|result| result.expect("no job panics"))
//!     .sum();
//! assert_eq!(total, 140);
//! ```
//!
//! A rate limit shared by every caller: a token bucket of 100 events a second with bursts of
//! 10, where a wait gives up at once if the context's deadline would pass first:
//!
//! ```
//! use std::time::Duration;
//! use ctxkit::{Context, Limiter};
//!
//! let limiter = Limiter::new(100, 10)?;
//! assert!(limiter.allow()); // a token was there
//! let ctx = Context::background().with_timeout(Duration::from_secs(1));
//! limiter.blocking_wait(&ctx)?; // waits for a token, or for `ctx`, whichever comes first
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is here
//!
//! * [`Context`]: `background`, `with_cancel`, `with_deadline`, `with_timeout`, `with_value`,
//!   their `_cause` forms, `without_cancel`; `err`, `cause`, `is_done`, `check`, `done().await`,
//!   `wait()`, `run`, `sleep`, `after_func`.
//! * [`CancelContext`]: what `with_cancel` and the deadline constructors return: the child
//!   context (it derefs to `Context`) and the power to cancel it, on `cancel()`,
//!   `cancel_with(reason)` or drop; [`CancelHandle`], that power split off for another thread.
//! * [`Error`] (`context canceled`, `context deadline exceeded`) and [`Cause`].
//! * [`Group`] (async, on tokio) and [`group::scope`] (scoped threads): errgroup-style fan-out
//!   with first-error cancellation, results in spawn order, limits, panics resumed at `wait`;
//!   [`group::join2`] … and [`group::blocking_join2`] …: the same for a fixed set of calls with
//!   different result types, as a tuple.
//! * [`Pool`](pool::Pool): worker pools of a fixed size (default [`procs::max_procs`]): a
//!   one-shot map over an iterator or a stream (results in completion or input order, input
//!   pulled lazily under a bound), or long-lived workers fed by `submit` with a graceful
//!   `shutdown` that returns the jobs that never ran; threads or tokio tasks.
//! * [`Limiter`] (a token bucket: `allow`, `reserve`, `wait`) and [`Ticker`] (a throttle with a
//!   missed-tick policy): rate limiting, in [`rate`]; neither starts a thread.
//! * [`leak`]: leak checks for tests (Go's goleak): a scope (`leak::Guard`, `leak::check`,
//!   `leak::check_async`) fails when work it started still runs, reported with its spawn site
//!   and the context it waits on; attributed exactly under cargo's parallel test runner;
//!   [`tracked::thread`] and [`tracked::task`] start work it can name.
//! * [`procs::max_procs`]: how many threads of parallelism to use, the way Go 1.25 sets
//!   GOMAXPROCS (override, cgroup quota, affinity, CPUs), and where the number came from.
//!
//! # Which to use
//!
//! * To stop work when the caller gives up or time runs out: pass a [`Context`] and check it
//!   (`ctx.check()?` in loops, `ctx.run(fut).await` around futures, `ctx.wait()` on threads).
//! * To run several tasks and stop them all at the first failure: [`Group`] in async code,
//!   [`group::scope`] for blocking work or work that borrows local data; for two to six calls
//!   whose results differ in type, [`group::join2`] (async) or [`group::blocking_join2`]
//!   (threads) and their siblings.
//! * To run many jobs on a fixed number of workers (CPU-bound work, or a downstream service
//!   that takes only so many calls at once): [`Pool`](pool::Pool): `map` for a batch of inputs
//!   with results, `start` for jobs that arrive over time.
//! * To prove in a test that nothing it started outlives it: [`leak::check`] (or a
//!   [`leak::Guard`] at the top of the test).
//! * To cap how often something happens, allowing bursts: [`Limiter`]. To run a loop at a steady
//!   pace: [`Ticker`].
//!
//! # Threads ctxkit starts
//!
//! * `ctxkit-timer`: one thread, started the first time an async waiter or an after-function
//!   needs to be woken at a deadline, then alive for the life of the process, asleep when idle.
//! * `ctxkit-after-func`: one short-lived thread per after-function that runs.
//! * `ctxkit-group`: the scoped threads of [`group::scope`] (reused from task to task while
//!   the scope lasts) and of the blocking joins, always joined before they return.
//! * `ctxkit-pool`: the workers of a thread pool ([`pool::Map`], [`pool::Workers`]), started as
//!   jobs arrive up to the pool's size, joined when the map or the pool is dropped or shut down.
//!
//! Async [`Group`] tasks run on the caller's tokio runtime, on worker tasks that the group
//! starts there and reuses; an async pool's workers are tokio tasks too.
//!
//! # Feature flags
//!
//! * `tokio` (default): async variants of the patterns that spawn tasks: `Group`,
//!   `pool::MapStream`, `pool::AsyncWorkers` (with `futures-core` for the `Stream` trait). The
//!   context core, and the thread forms of the group and of the pools, need no runtime and do
//!   not use it.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod context;
pub mod group;
pub mod leak;
mod panics;
pub mod pool;
pub mod procs;
pub mod rate;
mod spawn;
mod sync;
mod time;
mod timer;
pub mod tracked;

pub use context::{AfterFunc, CancelContext, CancelHandle, Cause, Context, Done, Error};
// Re-exports of `group` (owned by the group work):
#[cfg(feature = "tokio")]
pub use group::Group;
pub use group::TaskFailed;
// Re-exports of `rate` (owned by the rate work):
pub use rate::{
    ConfigError, Limiter, MissedTickBehavior, OwnedReservation, OwnedWait, Reservation, Ticker,
    WaitError,
};

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
