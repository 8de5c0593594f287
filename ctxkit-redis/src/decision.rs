//! [`Decision`]: what a limiter call decided, and by which [`Path`]. Plain data.

use std::fmt;
use std::time::{Duration, SystemTime};

#[cfg(doc)]
use crate::{Fallback, RedisLimiter};

/// Which path made a [`Decision`]: Redis, or the limiter's [`Fallback`] because Redis could
/// not answer in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Path {
    /// The script decided on Redis: the decision is shared with every client of the key.
    Redis,
    /// Redis did not answer, and the policy is [`Fallback::FailOpen`]: everything asked for
    /// was granted, counted nowhere.
    FailOpen,
    /// Redis did not answer, and the policy is [`Fallback::FailClosed`]: nothing was granted.
    FailClosed,
    /// Redis did not answer, and the policy is [`Fallback::Local`]: this process's own bucket
    /// for the key (at its share of the rate) decided.
    Local,
    /// This process's lease decided ([`Builder::lease`](crate::Builder::lease)): tokens an
    /// earlier call took from Redis in a batch, used with no round trip. Not a fallback.
    Lease,
}

impl Path {
    /// Whether Redis decided (not a lease, not a fallback).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit_redis::Path;
    ///
    /// assert!(Path::Redis.is_redis());
    /// assert!(!Path::Local.is_redis());
    /// ```
    pub fn is_redis(self) -> bool {
        self == Path::Redis
    }
}

/// The path's name: `redis`, `fail-open`, `fail-closed`, `local`, `lease`.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Path::Redis => "redis",
            Path::FailOpen => "fail-open",
            Path::FailClosed => "fail-closed",
            Path::Local => "local",
            Path::Lease => "lease",
        })
    }
}

/// Why a call did not get Redis's decision, and took the fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unavailable {
    /// No reply within the limiter's timeout (or the connection's own response timeout).
    /// The script may still have run on Redis: its tokens are then taken there too, which
    /// errs on the side of admitting less.
    Timeout,
    /// The connection failed: refused, dropped, or being re-established.
    Connection,
    /// Redis answered with an error (for example `READONLY`, `OOM`, `BUSY`, a key that holds
    /// something else than a bucket), or with a reply the limiter does not recognise.
    Server,
    /// Not tried: a call timed out or lost its connection less than the limiter's cooldown
    /// ago, so the call went to the fallback at once (see
    /// [`Builder::cooldown`](crate::Builder::cooldown)).
    Skipped,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unavailable::Timeout => "redis did not answer in time",
            Unavailable::Connection => "the connection to redis failed",
            Unavailable::Server => "redis answered with an error",
            Unavailable::Skipped => "redis was skipped: it failed less than a cooldown ago",
        })
    }
}

/// What one call of a [`RedisLimiter`] decided.
///
/// The fields, with the meaning HTTP rate-limit headers give them (users trip on
/// `retry_after` against `reset_after`):
///
/// * [`allowed`](Decision::allowed): tokens granted by this call (`0..=requested`):
///   `allow_n` grants all or none; `allow_at_most` what was there; a wait all of them.
/// * [`remaining`](Decision::remaining): whole tokens left in the bucket right after the
///   decision (`0..=burst`; 0 while reservations are queued), for `X-RateLimit-Remaining`.
/// * [`retry_after`](Decision::retry_after): `None` when every token asked for was granted;
///   else how long until the tokens *not* granted (`requested - allowed`) would be in the
///   bucket as this decision left it, if nobody else takes any. For a refused `allow_n(n)`
///   that is when `n` tokens would be there: retrying `allow_n(n)` sooner fails, retrying at
///   that time succeeds unless another client took tokens meanwhile. This is HTTP's
///   `Retry-After`.
/// * [`reset_after`](Decision::reset_after): how long until the bucket is full again
///   (`burst` tokens) if nobody takes any; zero when it is full. Not a time to retry at:
///   tokens come back one by one long before it. This is `X-RateLimit-Reset`, and the time
///   the key lives on in Redis.
/// * [`delay`](Decision::delay): how long the granted tokens had to wait: zero for
///   `allow_n` and `allow_at_most`; for `wait_n`, the time from Redis's decision to the
///   tokens' time (the wait slept about that long).
/// * [`path`](Decision::path) and [`unavailable`](Decision::unavailable): who decided, and,
///   for a fallback, why Redis did not.
/// * [`redis_time`](Decision::redis_time): Redis's clock when it decided.
///
/// With leases ([`Builder::lease`](crate::Builder::lease)), `remaining` adds the tokens
/// this process holds in its lease for the key to those left on Redis; on [`Path::Lease`] it
/// is the lease's alone, and `reset_after` is Redis's as of the take that filled the lease.
///
/// On the fallback paths the figures are those of the fallback: [`Path::Local`] reports this
/// process's bucket; [`Path::FailOpen`] grants everything and reports `remaining` 0 and
/// `reset_after` zero (nothing is known); [`Path::FailClosed`] grants nothing, with
/// `retry_after` the time `requested` tokens take to come at the full rate (as if the bucket
/// were empty) and `reset_after` zero.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ctxkit_redis::{Decision, Path};
///
/// fn headers(d: &Decision) -> Vec<(&'static str, String)> {
///     let mut h = vec![("X-RateLimit-Remaining", d.remaining.to_string())];
///     h.push(("X-RateLimit-Reset", d.reset_after.as_secs().to_string()));
///     if let Some(retry) = d.retry_after {
///         // Round up: a client that retries a little early is refused again.
///         h.push(("Retry-After", retry.as_secs_f64().ceil().to_string()));
///     }
///     h
/// }
/// # let _ = headers;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Decision {
    /// Tokens asked for (`n`).
    pub requested: u32,
    /// Tokens granted, `0..=requested`.
    pub allowed: u32,
    /// Whole tokens left right after the decision, `0..=burst`.
    pub remaining: u32,
    /// `None` if every token asked for was granted; else the time until the missing tokens
    /// would be there (see above).
    pub retry_after: Option<Duration>,
    /// The time until the bucket is full again if nobody takes; zero when full.
    pub reset_after: Duration,
    /// The time the granted tokens had to wait (`wait_n` only; else zero).
    pub delay: Duration,
    /// Which path decided.
    pub path: Path,
    /// Why Redis did not decide; `None` on [`Path::Redis`] and [`Path::Lease`].
    pub unavailable: Option<Unavailable>,
    /// Redis's clock (`TIME`) when the script decided; `None` on the other paths.
    pub redis_time: Option<SystemTime>,
}

impl Decision {
    /// Whether every token asked for was granted (`allowed == requested`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(limiter: ctxkit_redis::RedisLimiter) -> Result<(), ctxkit_redis::Error> {
    /// let ctx = ctxkit::Context::background();
    /// if limiter.allow(&ctx, "client-42").await?.is_allowed() {
    ///     // serve the request
    /// }
    /// # Ok(()) }
    /// ```
    pub fn is_allowed(&self) -> bool {
        self.allowed == self.requested
    }
}
