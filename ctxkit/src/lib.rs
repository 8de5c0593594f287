//! ctxkit brings Go's `context.Context`, and the concurrency patterns built on it, to Rust, for
//! threads and async code alike.
//!
//! # Coming from Go
//!
//! A [`Context`] carries cancellation, a deadline and request-scoped values down a tree of
//! work. The same context is polled in a loop, awaited in async code and blocked on from a
//! plain thread; the core needs no async runtime. Every Go name of the chapter ctxkit follows
//! (chapter 12, "Context and concurrency patterns"), beside its ctxkit form (async forms need no
//! particular runtime unless marked *tokio*):
//!
//! | Go | ctxkit |
//! |---|---|
//! | `context.Background()`, `context.TODO()` | [`Context::background()`](Context::background), [`Context::todo()`](Context::todo) |
//! | `ctx, cancel := context.WithCancel(parent)`; `defer cancel()` | [`let ctx = parent.with_cancel();`](Context::with_cancel): a [`CancelContext`], canceled when dropped |
//! | `context.WithTimeout(parent, d)`, `WithDeadline(parent, t)` | [`parent.with_timeout(d)`](Context::with_timeout), [`parent.with_deadline(t)`](Context::with_deadline) (`t` an [`Instant`](std::time::Instant)): [`CancelContext`]s too |
//! | `cancel()`; `cancel` handed to another goroutine | [`ctx.cancel()`](CancelContext::cancel) or dropping `ctx`; [`into_parts()`](CancelContext::into_parts) splits off a [`CancelHandle`] |
//! | `context.WithValue(ctx, key, v)`, `ctx.Value(key).(T)` | [`ctx.with_value(v)`](Context::with_value), [`ctx.value::<T>()`](Context::value) → `Option<&T>`: the key is the type `T` |
//! | `<-ctx.Done()` | [`ctx.done().await`](Context::done) (async), [`ctx.wait()`](Context::wait) (blocks a thread) |
//! | `select { case <-ctx.Done(): return ctx.Err(); default: }` | [`ctx.check()?`](Context::check), or [`ctx.is_done()`](Context::is_done) |
//! | `select` on `time.After(d)` and `ctx.Done()` | [`ctx.sleep(d).await`](Context::sleep), [`ctx.blocking_sleep(d)`](Context::blocking_sleep); any future: [`ctx.run(fut).await`](Context::run) |
//! | `ctx.Err()` | [`ctx.err()`](Context::err): `None`, then `Some(`[`Error`]`)` for good |
//! | `errors.Is(err, context.DeadlineExceeded)`, `errors.Is(err, context.Canceled)` | `err == Error::DeadlineExceeded` or `matches!(err, Error::Canceled)`; [`err.is_deadline_exceeded()`](Error::is_deadline_exceeded) (also on [`Cause`] and [`WaitError`]) |
//! | `g, ctx := errgroup.WithContext(parent)` | *tokio*: [`let (mut g, ctx) = Group::with_context(&parent);`][gwith] threads: [`group::scope(&parent, \|s\| ...)`](group::scope) |
//! | `g.Go(f)` | [`g.spawn(\|ctx\| async move { ... }).await`][gspawn]; threads: [`s.spawn(\|ctx\| ...)`](group::Scope::spawn) |
//! | `g.Wait()` | [`g.wait().await`][gwait] → `Result<Vec<T>, E>` in spawn order; threads: what `scope` returns |
//! | `g.SetLimit(n)` | [`g.set_limit(n)`][glimit], [`s.set_limit(n)`](group::Scope::set_limit) |
//! | `g.TryGo(f)` | [`g.try_spawn(f)`][gtry], [`s.try_spawn(f)`](group::Scope::try_spawn): `false` at the limit |
//! | `sync.WaitGroup` | a group or scope (it also returns the errors); a pool's map ends after its last job |
//! | `defer goleak.VerifyNone(t)` | [`let _leaks = leak::Guard::new();`](leak::Guard::new) or [`leak::check(\|\| ...)`](leak::check); async: [`leak::check_async`] |
//! | `goleak.VerifyTestMain(m)` | [`leak::verify_none()`](leak::verify_none), last in the `main` of a `harness = false` test |
//! | `go f()` | [`tracked::thread("name", f)`](tracked::thread), *tokio*: [`tracked::task("name", fut)`][ttask]: named in leak reports |
//! | `runtime.GOMAXPROCS(0)` | [`procs::max_procs()`](procs::max_procs); where the number came from: [`procs::current()`](procs::current) |
//! | `GOMAXPROCS=4 ./server`, `runtime.GOMAXPROCS(4)` | `CTXKIT_MAXPROCS=4` ([`procs::ENV_VAR`]); no runtime setter: give the number to what runs the work ([`Pool::new(4)`](pool::Pool::new), `set_limit(4)`) |
//! | `t := time.NewTicker(d)`; `defer t.Stop()`; `<-t.C` | [`let mut t = Ticker::new(d)?;`](Ticker::new) then [`t.blocking_tick()`](Ticker::blocking_tick) or [`t.tick().await`](Ticker::tick); dropping `t` stops it |
//! | the token bucket: a channel of `burst` tokens, refilled by a goroutine on a ticker | [`Limiter::new(rate, burst)?`](Limiter::new): [`limiter.blocking_wait(&ctx)`](Limiter::blocking_wait) or [`limiter.wait(&ctx).await`](Limiter::wait) take a token, [`limiter.allow()`](Limiter::allow) tries; no refill thread |
//! | the worker pool: `jobs` and `results` channels, N `go worker(...)`, a producer, `wg.Wait(); close(results)` | [`Pool::new(n).map(&ctx, jobs, f)`](pool::Pool::map): an iterator of results, in completion order ([`map_ordered`](pool::Pool::map_ordered): input order); jobs that arrive over time: [`Pool::new(n).start(&ctx, f)`](pool::Pool::start) |
//!
//! Each module's docs say which Go API it mirrors and where it differs on purpose:
//! [`context`], [`group`], [`leak`], [`pool`], [`procs`], [`rate`], [`tracked`].
//!
//! Several rows at once, on threads:
//!
//! ```
//! use std::time::Duration;
//! use ctxkit::{group, leak, pool::Pool, Context, Error, Limiter, Ticker};
//!
//! struct TraceId(&'static str); // a private key type: the key is the type
//!
//! let _leaks = leak::Guard::new(); // defer goleak.VerifyNone(t)
//! let ctx = Context::background().with_value(TraceId("abc-123"));
//! let ctx = ctx.with_timeout(Duration::from_secs(5)); // WithTimeout, and defer cancel() at scope end
//! assert_eq!(ctx.value::<TraceId>().unwrap().0, "abc-123");
//!
//! let titles = group::scope(&ctx, |s| { // errgroup.WithContext
//!     s.set_limit(2); // g.SetLimit(2)
//!     for title in ["Gouryella", "Flaming June", "Saltwater"] {
//!         s.spawn(move |ctx| { // g.Go
//!             ctx.check()?; // select { case <-ctx.Done(): return ctx.Err(); default: }
//!             Ok::<_, Error>(title)
//!         });
//!     }
//! }); // g.Wait()
//! assert_eq!(titles, Ok(vec!["Gouryella", "Flaming June", "Saltwater"]));
//!
//! let squares: u64 = Pool::new(3).map(&ctx, 1..=7u64, |_ctx, n| n * n).map(Result::unwrap).sum();
//! assert_eq!(squares, 140); // the worker pool
//!
//! let limiter = Limiter::new(100, 3)?; // the token bucket: 3 at once, then 100 a second
//! let mut ticker = Ticker::new(Duration::from_millis(1))?; // time.NewTicker
//! for _ in 0..4 {
//!     limiter.blocking_wait(&ctx)?;
//!     ticker.blocking_tick(); // <-t.C
//! }
//!
//! let short = ctx.with_timeout(Duration::from_millis(1));
//! let err = short.wait(); // <-ctx.Done(), then ctx.Err()
//! assert!(err == Error::DeadlineExceeded); // errors.Is(err, context.DeadlineExceeded)
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The chapter's traps
//!
//! Every trap and pitfall the chapter names, and what ctxkit does about it:
//!
//! | trap (section) | ctxkit | how |
//! |---|---|---|
//! | `cancel` stored and called late, or never: the context and its timer stay alive until the parent ends (12.2) | the derived context is its own cancel: a [`CancelContext`] cancels when dropped, and Go's `ctx, _ :=` written in Rust (`let (ctx, _) = parent.with_timeout(d)`) does not compile; a child nobody holds is unlinked from its parent, and a deadline arms no timer until something waits on it (example `release_on_drop`: the trap written on purpose holds every request's context; the habit holds none) | prevented by type |
//! | a CPU-bound loop that never looks at `ctx.Done()` (12.2.1) | [`ctx.check()?`](Context::check) is the check in one line, and takes no lock | documented |
//! | a built-in type (`string`) as a value's key: another package's same key shadows yours, and `go vet` says nothing (12.3.1) | the key is the value's type: a private newtype (`struct TraceId(String)`) is a key no other crate can name; a shared type (`&str`, `String`) is the Rust form of the string key, and [`with_value`](Context::with_value) says to use a newtype | prevented by type (with a newtype) |
//! | a lookup with a key of another type (`ctx.Value("req")`, `ctxKey("user")` against `"user"`) returns `nil` (12.10, 12.12) | there are no untyped keys and no `.(T)` assertion: [`value::<T>()`](Context::value) asks by type and returns `Option<&T>`, which the compiler makes you handle | prevented by type |
//! | a context stored in a struct field and used later, canceled at an unpredictable time; a context not first in the parameters (12.4) | not forbidden (the chapter's exception, a long-lived object's own context, needs it): [`Context`] documents `ctx: &Context` as the first parameter, and a borrowed `&Context` cannot be kept past the call without a visible `clone()` | documented |
//! | a loop variable shared by every goroutine (`i := i`, needed before Go 1.22; 12.5) | `move` closures capture each iteration's own value; results come back from `wait` (or `scope`) in spawn order, not through a shared slice | prevented by type |
//! | a goroutine blocked forever sending to a reader that left (`streamHits`, 12.6) | a leak check ([`leak::check`], [`leak::Guard`]) reports a thread or task started through ctxkit that still runs, with its name, spawn site and age (example `stream_hits_leak`) | caught at run time, in tests |
//! | a loop with no `ctx.Done()` or `done` check: a leak once a caller cancels (12.6) | the report also names the context such a loop waits on, where it was made, and that it is not done; groups, scopes and pools join (or abort) their workers, so work started through them cannot outlive them | caught at run time; prevented for group and pool workers |
//! | `goleak.VerifyTestMain(m)` beside your own `m.Run()` or `os.Exit`: two exits, no check (12.6) | [`leak::verify_none()`](leak::verify_none) runs no tests and never exits: it checks, and panics on a leak, which fails the binary | nothing to get wrong |
//! | GOMAXPROCS from the host's CPUs inside a CPU-limited container (Go 1.24 and older, 12.7) | [`procs::max_procs()`](procs::max_procs) takes the cgroup quota (v1 or v2, the tightest of the process's cgroup and its ancestors), the affinity mask and the CPUs online; [`procs::current()`](procs::current) says which one decided | handled at run time |
//! | unbounded goroutine creation exhausting memory or a downstream service (12.8) | a pool pulls its input lazily, at most `queue + workers` jobs in flight; under a limit, a group's `spawn` waits for a free slot | prevented by design |
//! | `close(results)` from inside a worker (the second close panics), or never (the consumer blocks forever) (12.8) | there is no results channel: [`Pool::map`](pool::Pool::map)'s iterator ends once the input is exhausted and every job has delivered its result; with channels, "closing" is dropping a sender, once each (example `closing_results`, which also runs the forgotten close with a bounded wait) | prevented by ownership |
//! | worker order, and which worker gets how many jobs, are nondeterministic (12.8, "Wut") | the same for [`map`](pool::Pool::map) (completion order); [`map_ordered`](pool::Pool::map_ordered) yields input order, and [`pool::worker_id()`](pool::worker_id) says which worker ran a job | documented |
//! | `time.Tick` leaked its ticker before Go 1.23, and `NewTicker` needs `defer t.Stop()` (12.9) | a [`Ticker`] holds no timer and no thread: it computes its ticks from its schedule, and dropping it is stopping it (example `release_on_drop`: 100,000 made in a loop allocate nothing) | prevented by design |
//! | the token bucket's refiller ranges over `refill.C` forever: `Stop` does not close the channel (12.9's listing) | a [`Limiter`] has no refill thread: its tokens are computed from the time of each call | prevented by design |
//! | `fetchData`'s goroutine outlives the caller that timed out ("Where is the bug?", 12.12) | hand the work the caller's context: [`ctx.run(fut)`](Context::run) drops the future when the context is done; a thread left behind is reported by a leak check (example `fetch_data_leak`) | caught at run time; documented |
//! | `context.TODO()` left in production code (12.1.1) | [`Context::todo()`](Context::todo) prints `Context::todo()` in `Debug` output, so it can be found | documented |
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
//!
// Links to items of the `tokio` feature: without it, to the module that documents them.
#![cfg_attr(
    feature = "tokio",
    doc = "[gwith]: Group::with_context\n[gspawn]: Group::spawn\n[gwait]: Group::wait",
    doc = "[glimit]: Group::set_limit\n[gtry]: Group::try_spawn\n[ttask]: tracked::task"
)]
#![cfg_attr(
    not(feature = "tokio"),
    doc = "[gwith]: group\n[gspawn]: group\n[gwait]: group\n[glimit]: group\n[gtry]: group",
    doc = "[ttask]: tracked\n[`Group`]: group\n[`tracked::task`]: tracked"
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

mod blocking;
pub mod context;
pub mod group;
pub mod leak;
mod panics;
pub mod pool;
pub mod procs;
pub mod rate;
mod spawn;
mod sync;
#[cfg(test)]
mod test_waker;
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
    ConfigError, KeyedLimiter, Limiter, MissedTickBehavior, OwnedReservation, OwnedWait,
    Reservation, Ticker, WaitError,
};

/// The README's code blocks, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
