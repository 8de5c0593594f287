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
//! | `var g errgroup.Group` | [`Group::new()`](Group::new) | `group::scope(&Context::background(), ...)` |
//! | `g.Go(f)` (waits under a limit) | `g.spawn(\|ctx\| async move { ... }).await` | `s.spawn(\|ctx\| ...)` |
//! | `g.TryGo(f)` | `g.try_spawn(...)` | `s.try_spawn(...)` |
//! | (none: `Go` waits) | `g.spawn_queued(...)` (queues, never waits) | `s.spawn_queued(...)` |
//! | `g.SetLimit(n)` | `g.set_limit(n)` | `s.set_limit(n)` |
//! | `g.Wait()` | `g.wait().await` (or `wait_all`) | the return of `scope` (or `scope_all`) |
//! | two `g.Go` writing `user` and `songs`, then `g.Wait()` | `let (user, songs) = join2(&ctx, ...).await?;` | `let (user, songs) = blocking_join2(&ctx, ...)?;` |
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

mod join;
mod scheduler;
mod scope;
mod slots;
#[cfg(feature = "tokio")]
mod task;
#[cfg(all(test, loom))]
mod tests;

use std::error::Error as StdError;
use std::fmt;

pub use join::{
    blocking_join2, blocking_join3, blocking_join4, blocking_join5, blocking_join6, join2, join3,
    join4, join5, join6,
};
pub use scope::{scope, scope_all, Scope};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use task::Group;

/// The cause of a group's (or a join's) context when a task failed, panicked or was aborted:
/// what [`Context::cause`](crate::Context::cause) holds after the first failure.
///
/// Its text is the failing task's error's text (so `ctx.cause()` reads like Go's
/// `context.Cause(ctx)` of an errgroup), or `ctxkit::group: task panicked: <message>` for a
/// panic, or `ctxkit::group: task aborted: its tokio runtime shut down before it finished` for
/// an async [`Group`]'s task that its runtime dropped ([`is_aborted`](TaskFailed::is_aborted)).
/// The error value itself is returned by `wait`; the cause holds its text because a task's
/// error type need not be `Clone` or `Sync`.
///
/// # Examples
///
/// ```
/// use ctxkit::{group, Context, Error};
/// use ctxkit::group::TaskFailed;
///
/// let started = std::sync::Barrier::new(2);
/// let r = group::scope(&Context::background(), |s| {
///     s.spawn(|_| {
///         started.wait();
///         Err::<(), _>(Error::DeadlineExceeded)
///     });
///     s.spawn(|ctx| {
///         started.wait();
///         ctx.wait(); // until the sibling fails
///         let cause = ctx.cause().unwrap();
///         let failed = cause.downcast_ref::<TaskFailed>().unwrap();
///         assert!(!failed.is_panic());
///         assert_eq!(failed.to_string(), "context deadline exceeded");
///         Ok(())
///     });
/// });
/// assert_eq!(r, Err(Error::DeadlineExceeded));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskFailed {
    message: String,
    kind: FailureKind,
}

/// How the task failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FailureKind {
    /// It returned an error; `message` is the error's text.
    Error,
    /// It panicked; `message` is the panic's message.
    Panic,
    /// Its tokio runtime shut down before it finished; `message` says so.
    Aborted,
}

/// The text of an aborted task's [`TaskFailed`].
const ABORTED: &str = "its tokio runtime shut down before it finished";

impl TaskFailed {
    pub(crate) fn error(message: String) -> Self {
        TaskFailed {
            message,
            kind: FailureKind::Error,
        }
    }

    pub(crate) fn panic(message: String) -> Self {
        TaskFailed {
            message,
            kind: FailureKind::Panic,
        }
    }

    /// A task of an async [`Group`] whose future was dropped before it finished: only the
    /// shutdown of its tokio runtime does that while the group is alive (dropping the group
    /// drops its tasks too, but cancels the context first, so this cause is never seen then).
    pub(crate) fn aborted() -> Self {
        TaskFailed {
            message: ABORTED.to_owned(),
            kind: FailureKind::Aborted,
        }
    }

    /// True if the task panicked rather than returned an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::group::{self, TaskFailed};
    /// use ctxkit::{Context, Error};
    ///
    /// let observed = std::sync::Mutex::new(None);
    /// let started = std::sync::Barrier::new(2);
    /// let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    ///     group::scope(&Context::background(), |s| {
    ///         s.spawn(|_| -> Result<(), Error> {
    ///             started.wait(); // the observer has started: it will see the cancel
    ///             panic!("oops")
    ///         });
    ///         s.spawn(|ctx| {
    ///             started.wait();
    ///             ctx.wait();
    ///             let failed = ctx.cause().unwrap().downcast_ref::<TaskFailed>().cloned();
    ///             *observed.lock().unwrap() = failed;
    ///             Ok(())
    ///         });
    ///     })
    /// }));
    /// assert!(r.is_err()); // the panic reached the caller
    /// let failed = observed.into_inner().unwrap().unwrap();
    /// assert!(failed.is_panic());
    /// assert_eq!(failed.message(), "oops");
    /// ```
    pub fn is_panic(&self) -> bool {
        self.kind == FailureKind::Panic
    }

    /// True if the task was aborted: an async [`Group`]'s task whose tokio runtime shut down
    /// (was dropped, or `shutdown_timeout` passed) before the task finished. Its text is
    /// `ctxkit::group: task aborted: its tokio runtime shut down before it finished`, and `wait`
    /// reports the task as `E::from(ctxkit::Error::Canceled)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # {
    /// use std::time::Duration;
    /// use ctxkit::group::TaskFailed;
    /// use ctxkit::{Context, Error, Group};
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    /// let (mut g, ctx) = Group::<(), Error>::with_context(&Context::background());
    /// runtime.block_on(async {
    ///     let (started, started_rx) = tokio::sync::oneshot::channel();
    ///     g.spawn(|_ctx| async move {
    ///         let _ = started.send(());
    ///         tokio::time::sleep(Duration::from_secs(3600)).await; // ignores its context
    ///         Ok(())
    ///     })
    ///     .await;
    ///     started_rx.await.unwrap(); // the task is running, asleep
    /// });
    /// drop(runtime); // drops the sleeping task
    ///
    /// // `wait` returns at once, on any executor.
    /// assert_eq!(futures::executor::block_on(g.wait()), Err(Error::Canceled));
    /// let cause = ctx.cause().unwrap();
    /// let failed = cause.downcast_ref::<TaskFailed>().unwrap();
    /// assert!(failed.is_aborted());
    /// assert_eq!(
    ///     failed.to_string(),
    ///     "ctxkit::group: task aborted: its tokio runtime shut down before it finished"
    /// );
    /// # }
    /// ```
    pub fn is_aborted(&self) -> bool {
        self.kind == FailureKind::Aborted
    }

    /// The error's text, the panic's message, or why the task was aborted.
    ///
    /// # Examples
    ///
    /// See [`is_panic`](TaskFailed::is_panic).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TaskFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            FailureKind::Error => f.write_str(&self.message),
            FailureKind::Panic => write!(f, "ctxkit::group: task panicked: {}", self.message),
            FailureKind::Aborted => write!(f, "ctxkit::group: task aborted: {}", self.message),
        }
    }
}

impl StdError for TaskFailed {}
