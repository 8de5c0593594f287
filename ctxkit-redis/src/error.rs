//! The crate's two error types: [`ConfigError`] (a limiter that cannot be built) and
//! [`Error`] (a call that returned no decision). Plain data.

use std::error::Error as StdError;
use std::fmt;

use crate::decision::Unavailable;

#[cfg(doc)]
use crate::{Builder, Fallback, RedisLimiter};

/// A [`RedisLimiter`] could not be built: a rate, burst, share or duration it cannot work
/// with. The message names the value.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use ctxkit_redis::RedisLimiter;
///
/// let client = redis::Client::open("redis://127.0.0.1:1/").unwrap();
/// let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, Default::default()).unwrap();
/// let err = RedisLimiter::new(conn, "rl:", 0.0, 5).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "ctxkit-redis: rate 0 per second is not a positive finite number"
/// );
/// # }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    kind: ConfigKind,
}

#[derive(Clone, Debug, PartialEq)]
enum ConfigKind {
    Rate(f64),
    RateTooHigh(f64),
    ZeroBurst,
    BucketTooLong { rate: f64, burst: u32 },
    ZeroTimeout,
    Share(f64),
    LeaseBatch { batch: u32, burst: u32 },
    ZeroLeaseLifetime,
}

impl ConfigError {
    pub(crate) fn rate(rate: f64) -> Self {
        ConfigError {
            kind: ConfigKind::Rate(rate),
        }
    }

    pub(crate) fn rate_too_high(rate: f64) -> Self {
        ConfigError {
            kind: ConfigKind::RateTooHigh(rate),
        }
    }

    pub(crate) fn zero_burst() -> Self {
        ConfigError {
            kind: ConfigKind::ZeroBurst,
        }
    }

    pub(crate) fn bucket_too_long(rate: f64, burst: u32) -> Self {
        ConfigError {
            kind: ConfigKind::BucketTooLong { rate, burst },
        }
    }

    pub(crate) fn zero_timeout() -> Self {
        ConfigError {
            kind: ConfigKind::ZeroTimeout,
        }
    }

    pub(crate) fn share(share: f64) -> Self {
        ConfigError {
            kind: ConfigKind::Share(share),
        }
    }

    pub(crate) fn lease_batch(batch: u32, burst: u32) -> Self {
        ConfigError {
            kind: ConfigKind::LeaseBatch { batch, burst },
        }
    }

    pub(crate) fn zero_lease_lifetime() -> Self {
        ConfigError {
            kind: ConfigKind::ZeroLeaseLifetime,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ConfigKind::Rate(rate) => write!(
                f,
                "ctxkit-redis: rate {rate} per second is not a positive finite number"
            ),
            ConfigKind::RateTooHigh(rate) => write!(
                f,
                "ctxkit-redis: rate {rate} per second is above 1000000 (one token a microsecond)"
            ),
            ConfigKind::ZeroBurst => {
                f.write_str("ctxkit-redis: burst 0 would never allow an event")
            }
            ConfigKind::BucketTooLong { rate, burst } => write!(
                f,
                "ctxkit-redis: burst {burst} at rate {rate} per second takes more than 2^50 \
                 microseconds (about 35 years) to fill"
            ),
            ConfigKind::ZeroTimeout => f.write_str("ctxkit-redis: the Redis timeout is zero"),
            ConfigKind::Share(share) => write!(
                f,
                "ctxkit-redis: local fallback share {share} is not in (0, 1]"
            ),
            ConfigKind::LeaseBatch { batch, burst } => write!(
                f,
                "ctxkit-redis: lease batch {batch} is not in 1..=burst ({burst})"
            ),
            ConfigKind::ZeroLeaseLifetime => {
                f.write_str("ctxkit-redis: the lease lifetime is zero")
            }
        }
    }
}

impl StdError for ConfigError {}

/// Why a call of a [`RedisLimiter`] returned no [`Decision`](crate::Decision).
///
/// A call whose Redis round trip fails does *not* return an error: it returns the
/// fallback's decision (see [`Fallback`]). The errors are the caller's: bad input, a context
/// that is done, a wait that cannot end before the context's deadline; and a wait that the
/// fallback cannot serve.
///
/// An `Error` compares equal to the [`ctxkit::Error`] that
/// [`context_error`](Error::context_error) returns, so `assert_eq!(err,
/// ctxkit::Error::DeadlineExceeded)` works, as for [`ctxkit::rate::WaitError`].
///
/// # Examples
///
/// ```
/// use ctxkit_redis::Error;
///
/// let err = Error::WouldExceedDeadline { n: 2 };
/// assert!(err.is_deadline_exceeded());
/// assert_eq!(err, ctxkit::Error::DeadlineExceeded);
/// assert_eq!(
///     err.to_string(),
///     "ctxkit-redis: wait_n(n=2) would exceed the context's deadline"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The context was done before the call decided (canceled, or its deadline passed). If it
    /// was already done when the call began, Redis was not asked. If it ended during the round
    /// trip, the script may have run on Redis; its tokens are then spent.
    Context(ctxkit::Error),
    /// `wait_n`: the context's deadline comes before the tokens would; nothing was taken and
    /// nothing slept. A deadline error, though the context itself is not done yet. Redis
    /// refuses such a reservation itself; in the rare case that the reply comes back so late
    /// that the tokens' time, by this process's clock, is past the deadline, the reservation
    /// is given back first.
    WouldExceedDeadline {
        /// The tokens asked for.
        n: u32,
    },
    /// `n` is above the limiter's burst: the bucket never holds that many, so the call could
    /// never succeed (an `allow_n` would be refused forever, a wait would never end). Ask for
    /// at most the burst.
    ExceedsBurst {
        /// The tokens asked for.
        n: u32,
        /// The limiter's burst.
        burst: u32,
    },
    /// The key is empty: every caller with a bug that loses its key would share one bucket.
    EmptyKey,
    /// `wait_n` could not reach Redis, and the fallback cannot wait: the policy is
    /// [`Fallback::FailClosed`], or it is [`Fallback::Local`] and `n` is above the local
    /// bucket's burst.
    Unavailable(Unavailable),
}

impl Error {
    /// The context error this call failed with: the context's own, or
    /// [`ctxkit::Error::DeadlineExceeded`] when a wait's deadline would come before its
    /// tokens.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit_redis::Error;
    ///
    /// assert_eq!(Error::Context(ctxkit::Error::Canceled).context_error(), Some(ctxkit::Error::Canceled));
    /// assert_eq!(Error::EmptyKey.context_error(), None);
    /// ```
    pub fn context_error(&self) -> Option<ctxkit::Error> {
        match *self {
            Error::Context(error) => Some(error),
            Error::WouldExceedDeadline { .. } => Some(ctxkit::Error::DeadlineExceeded),
            Error::ExceedsBurst { .. } | Error::EmptyKey | Error::Unavailable(_) => None,
        }
    }

    /// True when the context was canceled.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ctxkit_redis::Error::Context(ctxkit::Error::Canceled).is_canceled());
    /// ```
    pub fn is_canceled(&self) -> bool {
        self.context_error() == Some(ctxkit::Error::Canceled)
    }

    /// True when the context's deadline passed, or would pass before a wait's tokens come.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ctxkit_redis::Error::WouldExceedDeadline { n: 1 }.is_deadline_exceeded());
    /// ```
    pub fn is_deadline_exceeded(&self) -> bool {
        self.context_error() == Some(ctxkit::Error::DeadlineExceeded)
    }

    /// The same as [`is_deadline_exceeded`](Error::is_deadline_exceeded), as Go's
    /// `Timeout()` method.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ctxkit_redis::Error::Context(ctxkit::Error::DeadlineExceeded).is_timeout());
    /// ```
    pub fn is_timeout(&self) -> bool {
        self.is_deadline_exceeded()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Context(error) => fmt::Display::fmt(error, f),
            Error::WouldExceedDeadline { n } => write!(
                f,
                "ctxkit-redis: wait_n(n={n}) would exceed the context's deadline"
            ),
            Error::ExceedsBurst { n, burst } => write!(
                f,
                "ctxkit-redis: n={n} exceeds the limiter's burst {burst}: it can never be granted"
            ),
            Error::EmptyKey => f.write_str("ctxkit-redis: the key is empty"),
            Error::Unavailable(why) => write!(
                f,
                "ctxkit-redis: {why}, and the fallback cannot serve this wait"
            ),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::WouldExceedDeadline { .. } => Some(&ctxkit::Error::DeadlineExceeded),
            _ => None,
        }
    }
}

impl From<ctxkit::Error> for Error {
    fn from(error: ctxkit::Error) -> Self {
        Error::Context(error)
    }
}

impl PartialEq<ctxkit::Error> for Error {
    fn eq(&self, other: &ctxkit::Error) -> bool {
        self.context_error() == Some(*other)
    }
}
