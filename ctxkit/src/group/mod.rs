//! errgroup-style fan-out: run tasks concurrently, wait for all, get their results in spawn
//! order or the first error, and cancel the rest as soon as one fails.
//!
//! Two forms with the same semantics:
//!
//! * [`Group`] (feature `tokio`): async tasks spawned on tokio; `wait().await`.
//! * [`scope`] / [`Scope`]: tasks on scoped threads that may borrow from the caller's stack;
//!   `scope` returns when all have ended. No runtime needed.
//!
//! Both derive a context from a parent and hand it to each task (`spawn(|ctx| ...)`, in both
//! forms); the first task to fail cancels it with a [`TaskFailed`] cause, tasks not yet started
//! when it is done never start (go#61611), and panics reach the caller. A limit bounds how many
//! run at once: at the limit `spawn` waits for a free slot, as Go's `Go` does, or for the
//! context to be done, whichever comes first (so no conc#88 deadlock), and `spawn_queued`
//! queues instead of waiting (see [`Group`]'s "Limit: why a wait, and why a queue").
//!
//! For a fixed set of calls with different result types there are typed joins: [`join2`] …
//! [`join6`] (async, inside the caller's task, any executor) and [`blocking_join2`] …
//! [`blocking_join6`] (threads). Each returns a tuple of the calls' values, or the first error,
//! which cancels the others.
//!
//! The error type `E` of a group or scope must implement `From<ctxkit::Error>`: a task that
//! never started (the context was done first) reports the context's [`Error`](crate::Error).
//! [`Error`](crate::Error) itself, `String`, `std::io::Error` and
//! `Box<dyn std::error::Error + Send + Sync>` do; for an error type of your own, add the
//! one-line impl shown in the example below. The joins need no such bound.
//!
//! # Which one
//!
//! * Use a join ([`join2`] …, [`blocking_join2`] …) for a fixed set of calls known when you
//!   write the code, each with its own result type ("fetch the user and their playlists").
//! * Use a group for a number of same-typed tasks known only at run time ("fetch every song in
//!   the list"):
//!   * [`Group`] for I/O-bound work in async code: a task costs a few hundred nanoseconds.
//!   * [`scope`] for blocking or CPU-bound work, or when tasks must borrow local data. Without
//!     a limit every task starts at once, on an idle thread of the scope or a new one (tens of
//!     microseconds), so set one (`s.set_limit(n)`) when there are many tasks: then `n` threads
//!     run them all.
//!
//! # Coming from Go
//!
//! | Go (`golang.org/x/sync/errgroup`) | ctxkit async | ctxkit threads |
//! |---|---|---|
//! | `g, ctx := errgroup.WithContext(parent)` | `let (mut g, ctx) = Group::with_context(&parent);` | `group::scope(&parent, \|s\| ...)` |
//! | `var g errgroup.Group` | [`Group::new()`][Group::new] | `group::scope(&Context::background(), ...)` |
//! | `g.Go(f)` (waits under a limit) | `g.spawn(\|ctx\| async move { ... }).await` | `s.spawn(\|ctx\| ...)` |
//! | `g.TryGo(f)` | `g.try_spawn(...)` | `s.try_spawn(...)` |
//! | (none: `Go` waits) | `g.spawn_queued(...)` (queues, never waits) | `s.spawn_queued(...)` |
//! | `g.SetLimit(n)` | `g.set_limit(n)` | `s.set_limit(n)` |
//! | `g.Wait()` | `g.wait().await` (or `wait_all`) | the return of `scope` (or `scope_all`) |
//! | two `g.Go` writing `user` and `songs`, then `g.Wait()` | `let (user, songs) = join2(&ctx, ...).await?;` | `let (user, songs) = blocking_join2(&ctx, ...)?;` |
//!
//! Differences from errgroup on purpose: each task receives the group's context as its
//! argument; `wait` returns every task's value in spawn order (`Result<Vec<T>, E>`), not only
//! the first error; a task not yet started when the context is done never starts (go#61611);
//! a panic is resumed in the caller of `wait` (below); `set_limit(0)` panics, where Go's
//! `SetLimit(0)` makes every `Go` block forever; and `spawn_queued` queues at the limit instead
//! of waiting, which errgroup cannot do.
//!
//! # Panics in tasks
//!
//! A task that panics cancels the group's context like a failure (its [`TaskFailed`] cause says
//! it panicked), the other tasks are left to end, and the panic is resumed, with its original
//! payload, in the caller of `wait` (or of `scope`). If several tasks panic, which payload is
//! resumed is unspecified.
//!
//! Rationale. It is tempting to let a panic take its task down quietly and report "the task
//! failed", or to let it unwind the runtime's worker. Neither fits: swallowed, a panic is a bug
//! nobody sees; left to unwind, it kills a thread the group did not own, or the process, before
//! the siblings are canceled, and `wait` then waits for a task that will never report. Go's
//! errgroup added propagation of panics from `Go` to `Wait` and then reverted it, because
//! re-panicking on another goroutine loses the stack and the program crashed anyway
//! (go#53757); conc catches panics in the task, cancels the siblings, and re-panics in `Wait`
//! with the original value (conc#92), which is what `std::thread::scope` and rayon do too. Rust
//! keeps the payload and the backtrace was already printed by the panic hook, so nothing is
//! lost by resuming at `wait`: that is the choice here. The task's future (or closure) is
//! dropped where it panicked; the group's own bookkeeping never runs user code under its lock,
//! so a panic cannot leave it inconsistent.
//!
//! # Examples
//!
//! A group whose tasks return an error type of your own: one variant and a one-line `From`
//! impl carry the context's error.
//!
//! ```
//! use std::fmt;
//! use ctxkit::{group, Context};
//!
//! #[derive(Debug, PartialEq)]
//! enum FetchError {
//!     NotFound(u32),
//!     Context(ctxkit::Error), // a task that never started, or stopped for the context
//! }
//!
//! impl From<ctxkit::Error> for FetchError {
//!     fn from(e: ctxkit::Error) -> Self {
//!         FetchError::Context(e)
//!     }
//! }
//!
//! impl fmt::Display for FetchError {
//!     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
//!         match self {
//!             FetchError::NotFound(id) => write!(f, "song {id}: not found"),
//!             FetchError::Context(e) => e.fmt(f),
//!         }
//!     }
//! }
//!
//! fn fetch(ctx: &Context, id: u32) -> Result<u32, FetchError> {
//!     ctx.check()?; // `?` converts the context's error
//!     if id == 0 {
//!         return Err(FetchError::NotFound(id));
//!     }
//!     Ok(id * id)
//! }
//!
//! let ids = [1, 2, 3, 4];
//! let squares = group::scope(&Context::background(), |s| {
//!     s.set_limit(2);
//!     for &id in &ids {
//!         s.spawn(move |ctx| fetch(&ctx, id));
//!     }
//! });
//! assert_eq!(squares, Ok(vec![1, 4, 9, 16]));
//! ```
//!
//! [`scope`]: fn@scope
// Without the `tokio` feature there is no `Group`: its links go to this page.
#![cfg_attr(not(feature = "tokio"), doc = "[`Group`]: self\n[Group::new]: self")]

mod join;
mod scheduler;
mod scope;
mod slots;
#[cfg(feature = "tokio")]
mod task;
mod task_failed;
#[cfg(all(test, loom))]
mod tests;

pub use join::{
    blocking_join2, blocking_join3, blocking_join4, blocking_join5, blocking_join6, join2, join3,
    join4, join5, join6,
};
pub use scope::{scope, scope_all, Scope};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use task::Group;
pub use task_failed::TaskFailed;
