//! The rate module's two error types: [`ConfigError`] (a rate, burst or period a limiter or
//! ticker cannot work with) and [`WaitError`] (why a limiter's wait ended without its tokens).
//! Plain data, no locking.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::context::Error;

#[cfg(doc)]
use crate::rate::{Limiter, Reservation, Ticker};
#[cfg(doc)]
use std::time::Instant;

// ===== ConfigError =====

/// A limiter or ticker was given a rate, burst or period it cannot work with.
///
/// Returned by [`Limiter::new`], [`Limiter::set_rate`], [`Limiter::set_burst`], [`Ticker::new`]
/// and [`Ticker::reset`]; the message names the value.
///
/// # Examples
///
/// ```
/// use ctxkit::rate::Limiter;
///
/// let err = Limiter::new(-1.0, 3).unwrap_err();
/// assert_eq!(err.to_string(), "ctxkit::rate: rate -1 per second is negative");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    kind: ConfigKind,
}

#[derive(Clone, Debug, PartialEq)]
enum ConfigKind {
    NegativeRate(f64),
    NanRate,
    ZeroBurst(f64),
    ZeroPeriod,
    PeriodTooLong(Duration),
}

impl ConfigError {
    pub(crate) fn negative_rate(rate: f64) -> Self {
        ConfigError {
            kind: ConfigKind::NegativeRate(rate),
        }
    }

    pub(crate) fn nan_rate() -> Self {
        ConfigError {
            kind: ConfigKind::NanRate,
        }
    }

    pub(crate) fn zero_burst(rate: f64) -> Self {
        ConfigError {
            kind: ConfigKind::ZeroBurst(rate),
        }
    }

    pub(crate) fn zero_period() -> Self {
        ConfigError {
            kind: ConfigKind::ZeroPeriod,
        }
    }

    pub(crate) fn period_too_long(period: Duration) -> Self {
        ConfigError {
            kind: ConfigKind::PeriodTooLong(period),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ConfigKind::NegativeRate(rate) => {
                write!(f, "ctxkit::rate: rate {rate} per second is negative")
            }
            ConfigKind::NanRate => f.write_str("ctxkit::rate: rate is NaN"),
            ConfigKind::ZeroBurst(rate) => write!(
                f,
                "ctxkit::rate: burst 0 with rate {rate} per second would never allow an event"
            ),
            ConfigKind::ZeroPeriod => f.write_str("ctxkit::rate: ticker period is zero"),
            ConfigKind::PeriodTooLong(period) => {
                write!(
                    f,
                    "ctxkit::rate: ticker period {period:?} is too long to schedule"
                )
            }
        }
    }
}

impl StdError for ConfigError {}

// ===== WaitError =====

/// Why a [`Limiter`] wait returned without its tokens.
///
/// Four things can stop a wait, and each spends nothing (a wait whose context is done while
/// it sleeps gives its tokens back as [`Reservation::cancel`] says):
///
/// * the context was done before the tokens came: [`context_error`](WaitError::context_error)
///   is its [`Error`], and the text is the context's own (`context canceled`,
///   `context deadline exceeded`), passed through as Go's `Wait` returns `ctx.Err()`;
/// * the context's deadline comes before the tokens would
///   (`ctxkit::rate: wait_n(n=5) would exceed the context's deadline`; Go's
///   `rate: Wait(n=5) would exceed context deadline`): this error **is** a deadline error,
///   [`is_deadline_exceeded`](WaitError::is_deadline_exceeded) is true and
///   [`context_error`](WaitError::context_error) is [`Error::DeadlineExceeded`], though the
///   context itself is not done yet (Go's error is a plain string, which broke callers that
///   test for a deadline: go#54541);
/// * `n` exceeds the limiter's burst (`ctxkit::rate: wait_n(n=5) exceeds the limiter's burst 3`);
/// * the limiter's rate is zero and it has too few tokens left for `n`, so the wait could never
///   end (`ctxkit::rate: wait_n(n=5) can never be satisfied: the limiter's rate is zero`).
///
/// Every text but the context's own starts with `ctxkit::rate: ` and names the method as
/// `wait_n`, for all four wait methods (`wait` is `wait_n(n=1)`, the `blocking_` forms are
/// the same waits).
///
/// A `WaitError` compares equal to the [`Error`] that [`context_error`](WaitError::context_error)
/// returns, so `assert_eq!(err, Error::DeadlineExceeded)` works.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ctxkit::{rate::Limiter, Context, Error};
///
/// let limiter = Limiter::new(1.0, 1).unwrap(); // one token a second
/// assert!(limiter.allow());
/// let ctx = Context::background().with_timeout(Duration::from_millis(10));
/// let err = limiter.blocking_wait(&ctx).unwrap_err(); // fails at once
/// assert!(err.is_deadline_exceeded());
/// assert_eq!(err, Error::DeadlineExceeded);
/// assert_eq!(
///     err.to_string(),
///     "ctxkit::rate: wait_n(n=1) would exceed the context's deadline"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitError {
    kind: WaitKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaitKind {
    Context(Error),
    WouldExceedDeadline { n: u32 },
    ExceedsBurst { n: u32, burst: u32 },
    Never { n: u32 },
}

impl WaitError {
    pub(crate) fn context(error: Error) -> Self {
        WaitError {
            kind: WaitKind::Context(error),
        }
    }

    pub(crate) fn would_exceed_deadline(n: u32) -> Self {
        WaitError {
            kind: WaitKind::WouldExceedDeadline { n },
        }
    }

    pub(crate) fn exceeds_burst(n: u32, burst: u32) -> Self {
        WaitError {
            kind: WaitKind::ExceedsBurst { n, burst },
        }
    }

    pub(crate) fn never(n: u32) -> Self {
        WaitError {
            kind: WaitKind::Never { n },
        }
    }

    /// The context error this wait failed with: the context's own, or
    /// [`Error::DeadlineExceeded`] when the deadline would come before the tokens.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{rate::Limiter, Context, Error};
    ///
    /// let ctx = Context::background().with_cancel();
    /// ctx.cancel();
    /// let err = Limiter::new(10.0, 1).unwrap().blocking_wait(&ctx).unwrap_err();
    /// assert_eq!(err.context_error(), Some(Error::Canceled));
    /// ```
    pub fn context_error(&self) -> Option<Error> {
        match self.kind {
            WaitKind::Context(error) => Some(error),
            WaitKind::WouldExceedDeadline { .. } => Some(Error::DeadlineExceeded),
            WaitKind::ExceedsBurst { .. } | WaitKind::Never { .. } => None,
        }
    }

    /// True when the context was canceled.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{rate::Limiter, Context};
    ///
    /// let ctx = Context::background().with_cancel();
    /// ctx.cancel();
    /// assert!(Limiter::new(10.0, 1).unwrap().blocking_wait(&ctx).unwrap_err().is_canceled());
    /// ```
    pub fn is_canceled(&self) -> bool {
        self.context_error() == Some(Error::Canceled)
    }

    /// True when the context's deadline passed, or would pass before the tokens come.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::{rate::Limiter, Context};
    ///
    /// let limiter = Limiter::new(0.5, 1).unwrap();
    /// limiter.allow();
    /// let ctx = Context::background().with_timeout(Duration::from_secs(1));
    /// assert!(limiter.blocking_wait(&ctx).unwrap_err().is_deadline_exceeded());
    /// ```
    pub fn is_deadline_exceeded(&self) -> bool {
        self.context_error() == Some(Error::DeadlineExceeded)
    }

    /// The same as [`is_deadline_exceeded`](WaitError::is_deadline_exceeded), as Go's
    /// `Timeout()` method.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::{rate::Limiter, Context};
    ///
    /// let limiter = Limiter::new(0.5, 1).unwrap();
    /// limiter.allow();
    /// let ctx = Context::background().with_timeout(Duration::from_secs(1));
    /// assert!(limiter.blocking_wait(&ctx).unwrap_err().is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.is_deadline_exceeded()
    }

    /// True when the wait asked for more tokens than the limiter's burst.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{rate::Limiter, Context};
    ///
    /// let limiter = Limiter::new(10.0, 3).unwrap();
    /// let err = limiter.blocking_wait_n(&Context::background(), 4).unwrap_err();
    /// assert!(err.is_exceeds_burst());
    /// assert_eq!(
    ///     err.to_string(),
    ///     "ctxkit::rate: wait_n(n=4) exceeds the limiter's burst 3"
    /// );
    /// ```
    pub fn is_exceeds_burst(&self) -> bool {
        matches!(self.kind, WaitKind::ExceedsBurst { .. })
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            WaitKind::Context(error) => fmt::Display::fmt(&error, f),
            WaitKind::WouldExceedDeadline { n } => write!(
                f,
                "ctxkit::rate: wait_n(n={n}) would exceed the context's deadline"
            ),
            WaitKind::ExceedsBurst { n, burst } => write!(
                f,
                "ctxkit::rate: wait_n(n={n}) exceeds the limiter's burst {burst}"
            ),
            WaitKind::Never { n } => write!(
                f,
                "ctxkit::rate: wait_n(n={n}) can never be satisfied: the limiter's rate is zero"
            ),
        }
    }
}

impl StdError for WaitError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self.kind {
            WaitKind::WouldExceedDeadline { .. } => Some(&Error::DeadlineExceeded),
            _ => None,
        }
    }
}

impl From<Error> for WaitError {
    fn from(error: Error) -> Self {
        WaitError::context(error)
    }
}

impl PartialEq<Error> for WaitError {
    fn eq(&self, other: &Error) -> bool {
        self.context_error() == Some(*other)
    }
}
