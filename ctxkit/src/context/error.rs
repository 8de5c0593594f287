//! Why a context is done: the [`Error`] kind and its [`Cause`].

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// Why a context is done: it was canceled, or its deadline passed.
///
/// The texts are Go's, to the letter: `context canceled` and `context deadline exceeded`.
/// `Error` is `Copy`, so it is cheap to return from hot loops (`ctx.check()?`); the reason a
/// caller gave, if any, is the context's [`Cause`].
///
/// # Coming from Go
///
/// Mirrors `context.Canceled` and `context.DeadlineExceeded`. Where Go code writes
/// `errors.Is(err, context.DeadlineExceeded)`, match on the variant or call
/// [`is_deadline_exceeded`](Error::is_deadline_exceeded).
///
/// # Examples
///
/// ```
/// use ctxkit::{Context, Error};
///
/// let ctx = Context::background().with_cancel();
/// ctx.cancel();
/// let err = ctx.err().unwrap();
/// assert_eq!(err, Error::Canceled);
/// assert!(err.is_canceled());
/// assert_eq!(err.to_string(), "context canceled");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The context (or an ancestor) was canceled: `context canceled`.
    Canceled,
    /// The context's deadline (or an ancestor's) passed: `context deadline exceeded`.
    DeadlineExceeded,
}

impl Error {
    /// True for [`Error::Canceled`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ctxkit::Error::Canceled.is_canceled());
    /// assert!(!ctxkit::Error::DeadlineExceeded.is_canceled());
    /// ```
    pub fn is_canceled(self) -> bool {
        self == Error::Canceled
    }

    /// True for [`Error::DeadlineExceeded`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ctxkit::Error::DeadlineExceeded.is_deadline_exceeded());
    /// ```
    pub fn is_deadline_exceeded(self) -> bool {
        self == Error::DeadlineExceeded
    }

    /// True for [`Error::DeadlineExceeded`], as Go's `Timeout()` method on that error.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ctxkit::Error::DeadlineExceeded.is_timeout());
    /// assert!(!ctxkit::Error::Canceled.is_timeout());
    /// ```
    pub fn is_timeout(self) -> bool {
        self.is_deadline_exceeded()
    }

    /// Go's text for this error.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Error::Canceled => "context canceled",
            Error::DeadlineExceeded => "context deadline exceeded",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StdError for Error {}

impl From<Error> for std::io::Error {
    /// Wraps the error in an I/O error, so `?` works in functions that return `io::Result` (and
    /// `io::Error` can be a [`Group`](crate::group)'s error type): `DeadlineExceeded` becomes
    /// [`ErrorKind::TimedOut`](std::io::ErrorKind::TimedOut), `Canceled`
    /// [`ErrorKind::Other`](std::io::ErrorKind::Other) (not `Interrupted`, which std's I/O
    /// helpers retry). The original is the I/O error's inner error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    /// use ctxkit::{Context, Error};
    ///
    /// fn copy_chunks(ctx: &Context) -> io::Result<usize> {
    ///     ctx.check()?;
    ///     Ok(0)
    /// }
    ///
    /// let ctx = Context::background().with_cancel();
    /// ctx.cancel();
    /// let err = copy_chunks(&ctx).unwrap_err();
    /// assert_eq!(err.kind(), io::ErrorKind::Other);
    /// assert_eq!(err.to_string(), "context canceled");
    /// assert_eq!(err.into_inner().unwrap().downcast::<Error>().ok().map(|e| *e), Some(Error::Canceled));
    ///
    /// let timeout: io::Error = Error::DeadlineExceeded.into();
    /// assert_eq!(timeout.kind(), io::ErrorKind::TimedOut);
    /// ```
    fn from(error: Error) -> std::io::Error {
        let kind = match error {
            Error::DeadlineExceeded => std::io::ErrorKind::TimedOut,
            Error::Canceled => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, error)
    }
}

/// The shared, type-erased error a caller gave as the reason for a cancellation.
pub(crate) type Reason = Arc<dyn StdError + Send + Sync + 'static>;

/// Why a context is done, with the reason a caller gave: one value that answers both
/// "canceled or deadline?" ([`error`](Cause::error)) and "why?" ([`reason`](Cause::reason)).
///
/// A `Cause` displays as the reason given (by [`CancelContext::cancel_with`] or the `_cause`
/// constructors), else as the [`Error`] itself, as Go's `context.Cause` returns the cause, else
/// `ctx.Err()`. Its [`source`](StdError::source) is the reason's own source, so a reporter that
/// walks the chain prints each text once.
///
/// Cloning is cheap (one reference count).
///
/// [`CancelContext::cancel_with`]: crate::CancelContext::cancel_with
///
/// # Examples
///
/// ```
/// use ctxkit::Context;
///
/// let ctx = Context::background().with_cancel_cause();
/// ctx.cancel_with("upstream closed the connection");
///
/// let cause = ctx.cause().unwrap();
/// assert!(cause.is_canceled());
/// assert_eq!(cause.to_string(), "upstream closed the connection");
/// assert_eq!(ctx.err().unwrap().to_string(), "context canceled");
/// ```
#[derive(Clone)]
pub struct Cause {
    error: Error,
    reason: Option<Reason>,
}

impl Cause {
    pub(crate) fn new(error: Error, reason: Option<Reason>) -> Self {
        Cause { error, reason }
    }

    pub(crate) fn reason_arc(&self) -> Option<&Reason> {
        self.reason.as_ref()
    }

    /// Whether the context was canceled or its deadline passed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ctxkit::{Context, Error};
    /// let ctx = Context::background().with_cancel();
    /// ctx.cancel();
    /// assert_eq!(ctx.cause().unwrap().error(), Error::Canceled);
    /// ```
    pub fn error(&self) -> Error {
        self.error
    }

    /// True if the context was canceled (with or without a reason), rather than timed out.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background().with_timeout(Duration::from_secs(3600));
    /// ctx.cancel_with("user pressed stop");
    /// let cause = ctx.cause().unwrap();
    /// assert!(cause.is_canceled());
    /// assert!(!cause.is_deadline_exceeded());
    /// ```
    pub fn is_canceled(&self) -> bool {
        self.error.is_canceled()
    }

    /// True if the context's deadline passed (its own or an ancestor's) before any cancel.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background().with_timeout_cause(Duration::ZERO, "lookup took too long");
    /// let cause = ctx.cause().unwrap();
    /// assert!(cause.is_deadline_exceeded());
    /// assert!(!cause.is_canceled());
    /// assert_eq!(cause.to_string(), "lookup took too long");
    /// ```
    pub fn is_deadline_exceeded(&self) -> bool {
        self.error.is_deadline_exceeded()
    }

    /// The reason a caller gave, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ctxkit::Context;
    /// let ctx = Context::background().with_cancel();
    /// ctx.cancel();
    /// assert!(ctx.cause().unwrap().reason().is_none());
    /// ```
    pub fn reason(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.reason.as_deref()
    }

    /// The reason, if one was given and it is an `E`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::Context;
    ///
    /// #[derive(Debug)]
    /// struct Shutdown;
    /// impl std::fmt::Display for Shutdown {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         f.write_str("server shutting down")
    ///     }
    /// }
    /// impl std::error::Error for Shutdown {}
    ///
    /// let ctx = Context::background().with_cancel_cause();
    /// ctx.cancel_with(Shutdown);
    /// assert!(ctx.cause().unwrap().downcast_ref::<Shutdown>().is_some());
    /// ```
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.reason.as_deref()?.downcast_ref::<E>()
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cause")
            .field("error", &self.error)
            .field("reason", &self.reason)
            .finish()
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Some(reason) => fmt::Display::fmt(reason, f),
            None => fmt::Display::fmt(&self.error, f),
        }
    }
}

impl StdError for Cause {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.reason.as_deref()?.source()
    }
}

impl From<Cause> for Error {
    fn from(cause: Cause) -> Error {
        cause.error
    }
}

impl PartialEq<Error> for Cause {
    fn eq(&self, other: &Error) -> bool {
        self.error == *other
    }
}

impl From<Error> for String {
    /// The error's text, Go's: `context canceled` or `context deadline exceeded`. So `String`
    /// works as the error type of a [`Group`](crate::group) or [`scope`](crate::group::scope),
    /// and `?` works in functions that return `Result<_, String>`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{group, Context, Error};
    ///
    /// assert_eq!(String::from(Error::DeadlineExceeded), "context deadline exceeded");
    ///
    /// let r = group::scope::<u32, String, _>(&Context::background(), |s| {
    ///     s.spawn(|ctx| {
    ///         ctx.check()?;
    ///         Err(format!("song {}: not found", 7))
    ///     });
    /// });
    /// assert_eq!(r, Err("song 7: not found".to_string()));
    /// ```
    fn from(error: Error) -> String {
        error.as_str().to_owned()
    }
}
