//! errgroup-style fan-out: run tasks concurrently, wait for all, get their results in spawn
//! order or the first error, and cancel the rest as soon as one fails.
//!
//! Two forms with the same semantics:
//!
//! * [`Group`] (feature `tokio`): async tasks spawned on tokio; `wait().await`.
//! * [`scope`] / [`Scope`]: tasks on scoped threads that may borrow from the caller's stack;
//!   `scope` returns when all have ended. No runtime needed.
//!
//! Both derive a context from a parent; the first task to fail cancels it with a [`TaskFailed`]
//! cause, tasks not yet started when it is done never start (go#61611), a limit bounds how many
//! run at once without ever blocking the spawner (no conc#88 deadlock), and panics reach the
//! caller.
//!
//! # Which one
//!
//! * Use [`Group`] for I/O-bound work in async code: a task costs a few hundred nanoseconds.
//! * Use [`scope`] for blocking or CPU-bound work, or when tasks must borrow local data. Without
//!   a limit each task gets a thread (tens of microseconds), so set one (`s.set_limit(n)`) when
//!   there are many tasks: then `n` threads run them all.
//!
//! # Coming from Go
//!
//! | Go (`golang.org/x/sync/errgroup`) | ctxkit async | ctxkit threads |
//! |---|---|---|
//! | `g, ctx := errgroup.WithContext(parent)` | `let (mut g, ctx) = Group::with_context(&parent);` | `group::scope(&parent, \|s\| ...)` |
//! | `var g errgroup.Group` | [`Group::new()`](Group::new) | `group::scope(&Context::background(), ...)` |
//! | `g.Go(f)`, `g.TryGo(f)` | `g.spawn(fut)`, `g.try_spawn(fut)` | `s.go(f)`, `s.try_go(f)` |
//! | `g.SetLimit(n)` | `g.set_limit(n)` | `s.set_limit(n)` |
//! | `g.Wait()` | `g.wait().await` (or `wait_all`) | the return of `scope` (or `scope_all`) |
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
//! ```
//! use ctxkit::{group, Context, Error};
//!
//! let nums = [1, 2, 3, 4];
//! let squares = group::scope(&Context::background(), |s| {
//!     s.set_limit(2);
//!     for n in &nums {
//!         s.go(move |_ctx| Ok::<_, Error>(n * n));
//!     }
//! });
//! assert_eq!(squares, Ok(vec![1, 4, 9, 16]));
//! ```

mod scope;
mod slots;
#[cfg(feature = "tokio")]
mod task;

use std::error::Error as StdError;
use std::fmt;

pub use scope::{scope, scope_all, Scope};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use task::Group;

/// The cause of a group's context when a task failed or panicked: what
/// [`Context::cause`](crate::Context::cause) holds after the group's first failure.
///
/// Its text is the failing task's error's text (so `ctx.cause()` reads like Go's
/// `context.Cause(ctx)` of an errgroup), or `ctxkit::group: task panicked: <message>` for a
/// panic. The error value itself is returned by `wait`; the cause holds its text because a
/// task's error type need not be `Clone` or `Sync`.
///
/// # Examples
///
/// ```
/// use ctxkit::{group, Context, Error};
/// use ctxkit::group::TaskFailed;
///
/// let started = std::sync::Barrier::new(2);
/// let r = group::scope(&Context::background(), |s| {
///     s.go(|_| {
///         started.wait();
///         Err::<(), _>(Error::DeadlineExceeded)
///     });
///     s.go(|ctx| {
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
    panicked: bool,
}

impl TaskFailed {
    pub(crate) fn error(message: String) -> Self {
        TaskFailed {
            message,
            panicked: false,
        }
    }

    pub(crate) fn panic(message: String) -> Self {
        TaskFailed {
            message,
            panicked: true,
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
    ///         s.go(|_| -> Result<(), Error> {
    ///             started.wait(); // the observer has started: it will see the cancel
    ///             panic!("oops")
    ///         });
    ///         s.go(|ctx| {
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
        self.panicked
    }

    /// The error's text, or the panic's message.
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
        if self.panicked {
            write!(f, "ctxkit::group: task panicked: {}", self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl StdError for TaskFailed {}
