//! ctxkit brings Go's `context.Context`, and the concurrency patterns built on it, to Rust, for
//! threads and async code alike.
//!
//! A [`Context`] carries cancellation, a deadline and request-scoped values down a tree of
//! work. The same context is polled in a loop, awaited in async code and blocked on from a
//! plain thread; the core needs no async runtime.
//!
//! # A tour
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
//! let (ctx, _cancel) = ctx.with_timeout(Duration::from_millis(40));
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
//! # What is here
//!
//! * [`Context`]: `background`, `with_cancel`, `with_deadline`, `with_timeout`, `with_value`,
//!   their `_cause` forms, `without_cancel`; `err`, `cause`, `is_done`, `check`, `done().await`,
//!   `wait()`, `run`, `sleep`, `after_func`.
//! * [`CancelHandle`]: cancels on `cancel()`, `cancel_with(reason)` or drop.
//! * [`Error`] (`context canceled`, `context deadline exceeded`) and [`Cause`].
//! * [`Group`] (async, on tokio) and [`group::scope`] (scoped threads): errgroup-style fan-out
//!   with first-error cancellation, results in spawn order, limits, panics resumed at `wait`.
//! * [`Limiter`] (a token bucket: `allow`, `reserve`, `wait`) and [`Ticker`] (a throttle with a
//!   missed-tick policy): rate limiting, in [`rate`]; neither starts a thread.
//!
//! # Which to use
//!
//! * To stop work when the caller gives up or time runs out: pass a [`Context`] and check it
//!   (`ctx.check()?` in loops, `ctx.run(fut).await` around futures, `ctx.wait()` on threads).
//! * To run several tasks and stop them all at the first failure: [`Group`] in async code,
//!   [`group::scope`] for blocking work or work that borrows local data.
//! * To cap how often something happens, allowing bursts: [`Limiter`]. To run a loop at a steady
//!   pace: [`Ticker`].
//!
//! # Threads ctxkit starts
//!
//! * `ctxkit-timer`: one thread, started the first time an async waiter or an after-function
//!   needs to be woken at a deadline, then alive for the life of the process, asleep when idle.
//! * `ctxkit-after-func`: one short-lived thread per after-function that runs.
//! * `ctxkit-group`: the scoped threads of [`group::scope`], always joined before it returns.
//!
//! Async [`Group`] tasks run on the caller's tokio runtime.
//!
//! # Feature flags
//!
//! * `tokio` (default): async variants of the patterns that spawn tasks: `Group`. The
//!   context core, and the thread form of the group (`group::scope`), need no runtime and do
//!   not use it.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod context;
pub mod group;
pub mod rate;
mod spawn;
mod sync;

pub use context::{AfterFunc, CancelHandle, Cause, Context, Done, Error};
// Re-exports of `group` (owned by the group work):
#[cfg(feature = "tokio")]
pub use group::Group;
pub use group::TaskFailed;
// Re-exports of `rate` (owned by the rate work):
pub use rate::{ConfigError, Limiter, MissedTickBehavior, Reservation, Ticker, WaitError};
