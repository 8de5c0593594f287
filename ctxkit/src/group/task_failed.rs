//! [`TaskFailed`]: the cause a group or a join gives its context when a task fails, panics or
//! is aborted. Plain data, no locking.

use std::error::Error as StdError;
use std::fmt;

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
///
#[cfg_attr(feature = "tokio", doc = "[`Group`]: crate::Group")]
#[cfg_attr(not(feature = "tokio"), doc = "[`Group`]: crate::group")]
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

    /// A task of an async `Group` (feature `tokio`) whose future was dropped before it
    /// finished: only the shutdown of its tokio runtime does that while the group is alive
    /// (dropping the group drops its tasks too, but cancels the context first, so this cause
    /// is never seen then).
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
    ///
    #[cfg_attr(feature = "tokio", doc = "[`Group`]: crate::Group")]
    #[cfg_attr(not(feature = "tokio"), doc = "[`Group`]: crate::group")]
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
