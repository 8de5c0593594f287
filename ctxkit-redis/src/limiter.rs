//! [`RedisLimiter`]: the GCRA decisions of `gcra.lua`, made on Redis for every client of a
//! key, with a [`Fallback`] for the calls Redis does not answer in time; and its [`Builder`].
//!
//! # Invariants
//!
//! 1. A call decides on Redis with exactly one script call (one round trip; three, once, after
//!    a `NOSCRIPT`: `EVALSHA`, `SCRIPT LOAD`, `EVALSHA`), bounded by the caller's context
//!    ([`Context::run`]) and by the limiter's timeout; or it takes the fallback and says so
//!    in [`Decision::path`]. A decision comes from one path only; but a call that timed out
//!    may still have run on Redis, spending its tokens there as well as the fallback's, which
//!    only ever makes Redis admit less, never more.
//! 2. Input is checked before anything else: an empty key or `n` above the burst is an error,
//!    with no Redis call; a context that is done is an error, with no Redis call.
//! 3. A wait sleeps only after Redis reserved its tokens, and until their time by this
//!    process's clock counted from the reply's arrival (never earlier than Redis's own time
//!    for them, whatever the clocks say). A wait whose context ends while it sleeps, or whose
//!    future is dropped, gives the reservation back on Redis if nothing was taken after it
//!    (the script checks that the key still holds the reservation's `end`), as
//!    `ctxkit::rate::Limiter` does for the top of its stack of takes; a reservation with
//!    takes after it is not given back (Redis keeps no list of canceled takes: the bucket
//!    then admits less, never more).
//! 4. After a call times out or loses its connection, every call for the next `cooldown`
//!    takes the fallback at once ([`Unavailable::Skipped`]), so an outage costs one timeout
//!    per cooldown rather than one per call; then calls try Redis again.
//! 5. Leases ([`Builder::lease`]): a leased token was taken on Redis (mode 4 of the script,
//!    all of `n` or nothing, and up to `batch` more) after the call's send instant, and is
//!    used only before that instant plus the lifetime; merging a new batch into a live lease
//!    keeps the earlier expiry. So every token is admitted within `lifetime` of its take on
//!    Redis, which bounds a window's admissions by `burst + rate · (t + lifetime)`.
//!
//! # Locks
//!
//! The leases' shards are plain mutexes, held for one map lookup or insertion and never
//! across an await; nothing else is locked here. The fallback's [`KeyedLimiter`] has its own
//! read-locked shards; the cooldown is one atomic word.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ctxkit::rate::KeyedLimiter;
use ctxkit::Context;
use redis::aio::{ConnectionLike, ConnectionManager};

use crate::decision::{Decision, Path, Unavailable};
use crate::error::{ConfigError, Error};
use crate::script::{Mode, Reply, GCRA, MAX_SPAN_US};

/// The default bound on one Redis round trip: 50 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// The default time calls skip Redis after it failed: 250 ms.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_millis(250);

/// The fastest rate: one token a microsecond (the script counts whole microseconds).
const MAX_RATE: f64 = 1e6;

// ===== Fallback =====

/// What a call does when Redis does not answer in time (a timeout, a connection error, an
/// error reply, or the cooldown after one): the limiter's policy, set with
/// [`Builder::fallback`]. Every decision made this way says so in its
/// [`path`](Decision::path).
///
/// | policy | `allow_n`, `allow_at_most` | `wait_n` |
/// |---|---|---|
/// | [`FailClosed`](Fallback::FailClosed) (the default) | grants nothing | [`Error::Unavailable`] |
/// | [`FailOpen`](Fallback::FailOpen) | grants everything | returns at once |
/// | [`Local { share }`](Fallback::Local) | decides on this process's bucket for the key | waits on it |
///
/// Which to choose: `FailClosed` when exceeding the limit costs more than refusing everyone
/// for the outage (a paid upstream API with a hard quota); `FailOpen` when the limit only
/// protects against abuse and availability comes first; `Local` for both, roughly: each
/// process admits up to `share` of the rate on its own, so with `share = 1 / processes` the
/// fleet stays near the limit while Redis is down (a process that gets more than its share of
/// the traffic is limited harder than the fleet would be).
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use ctxkit_redis::{Fallback, RedisLimiter};
///
/// let client = redis::Client::open("redis://127.0.0.1/")?;
/// let conn = redis::aio::ConnectionManager::new(client).await?;
/// // Three API servers share 100 requests a second; each takes a third on its own.
/// let limiter = RedisLimiter::builder(conn, "api:", 100, 20)
///     .fallback(Fallback::Local { share: 1.0 / 3.0 })
///     .build()?;
/// # drop(limiter); Ok(()) }
/// ```
///
/// With no Redis at all (nothing listens on port 1 here), every call takes the fallback, and
/// says why:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use ctxkit::Context;
/// use ctxkit_redis::{Fallback, Path, RedisLimiter, Unavailable};
///
/// let client = redis::Client::open("redis://127.0.0.1:1/").unwrap();
/// let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(0);
/// // A lazy manager: built while Redis is down, it connects on first use.
/// let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config).unwrap();
/// let limiter = RedisLimiter::builder(conn, "rl:", 10, 4)
///     .fallback(Fallback::Local { share: 0.5 }) // here: 5 a second, bursts of 2
///     .build()
///     .unwrap();
///
/// let ctx = Context::background();
/// let d = limiter.allow_n(&ctx, "k", 2).await.unwrap();
/// assert_eq!((d.allowed, d.path), (2, Path::Local));
/// assert_eq!(d.unavailable, Some(Unavailable::Connection)); // refused
/// let d = limiter.allow(&ctx, "k").await.unwrap();
/// assert_eq!((d.allowed, d.path), (0, Path::Local)); // the local burst is spent
/// assert_eq!(d.unavailable, Some(Unavailable::Skipped)); // within the cooldown
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fallback {
    /// Grant every call ([`Path::FailOpen`]).
    FailOpen,
    /// Grant nothing ([`Path::FailClosed`]); waits fail with [`Error::Unavailable`].
    FailClosed,
    /// Decide on an in-process [`KeyedLimiter`] per key, at `share` of the rate and the burst
    /// scaled by `share` (rounded down, at least 1) ([`Path::Local`]). `share` is in
    /// `(0, 1]`. The local buckets start full and are independent of Redis's: when Redis
    /// comes back, its buckets are as the outage left them.
    Local {
        /// The part of the rate (and of the burst) this process takes on its own.
        share: f64,
    },
}

// ===== Builder =====

/// Options of a [`RedisLimiter`]: made by [`RedisLimiter::builder`], finished by
/// [`build`](Builder::build).
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use ctxkit_redis::{Fallback, RedisLimiter};
///
/// let client = redis::Client::open("redis://127.0.0.1/")?;
/// let conn = redis::aio::ConnectionManager::new(client).await?;
/// let limiter = RedisLimiter::builder(conn, "login:", 0.2, 5) // 1 every 5 s, bursts of 5
///     .timeout(Duration::from_millis(20))
///     .cooldown(Duration::from_secs(1))
///     .fallback(Fallback::FailOpen)
///     .build()?;
/// # drop(limiter); Ok(()) }
/// ```
pub struct Builder<C = ConnectionManager> {
    conn: C,
    prefix: String,
    rate: f64,
    burst: u32,
    timeout: Duration,
    cooldown: Duration,
    fallback: Fallback,
    lease: Option<(u32, Duration)>,
}

impl<C> Builder<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// The bound on each Redis round trip (default [`DEFAULT_TIMEOUT`], 50 ms); a call
    /// whose reply does not come within it takes the fallback. The caller's context bounds
    /// the call too, whichever ends first (a context that ends is an error, not a fallback).
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long calls skip Redis after a call timed out or lost its connection (default
    /// [`DEFAULT_COOLDOWN`], 250 ms): they take the fallback at once, with
    /// [`Unavailable::Skipped`]. Zero tries Redis on every call.
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The policy for calls Redis does not answer in time (default
    /// [`Fallback::FailClosed`]).
    ///
    /// # Examples
    ///
    /// See [`Fallback`].
    pub fn fallback(mut self, fallback: Fallback) -> Self {
        self.fallback = fallback;
        self
    }

    /// Leased local batches for [`allow_n`](RedisLimiter::allow_n) (off by default): a call
    /// that goes to Redis takes, with its `n` tokens, up to `batch` more that are there, and
    /// keeps them in this process for `lifetime`; the next calls for the key take from that
    /// lease with no round trip ([`Path::Lease`]), until it is spent or expires. Tokens left in
    /// a lease when it expires are lost (the bucket admits less, never more).
    ///
    /// The trade: fewer round trips (down to one per `batch + 1` decisions) for a looser
    /// bound. A leased token is spent on Redis when leased but admitted up to `lifetime`
    /// later, so per key, over any stretch of time `t`, all clients together admit at most
    /// `burst + rate · (t + lifetime)` (plus a round trip), not `burst + rate · t`; and a
    /// process holding a lease holds those tokens away from the others. Keep `batch` small
    /// against the burst and `lifetime` short against `burst / rate`.
    ///
    /// [`allow_at_most`](RedisLimiter::allow_at_most) and [`wait_n`](RedisLimiter::wait_n)
    /// do not use leases: they always ask Redis.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use ctxkit_redis::RedisLimiter;
    ///
    /// let client = redis::Client::open("redis://127.0.0.1/")?;
    /// let conn = redis::aio::ConnectionManager::new(client).await?;
    /// // 10,000 a second per key; each process takes up to 20 at a time, for at most 10 ms.
    /// let limiter = RedisLimiter::builder(conn, "hot:", 10_000, 500)
    ///     .lease(20, Duration::from_millis(10))
    ///     .build()?;
    /// # drop(limiter); Ok(()) }
    /// ```
    pub fn lease(mut self, batch: u32, lifetime: Duration) -> Self {
        self.lease = Some((batch, lifetime));
        self
    }

    /// The limiter.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a rate that is not a positive finite number (a zero rate, a fixed
    /// quota that never refills, is not supported; an infinite rate needs no limiter), a rate
    /// above 1,000,000 a second, a burst of zero, a bucket that takes more than about 35
    /// years to fill (`burst / rate`), a zero timeout, a local share outside `(0, 1]`, or a
    /// lease whose batch is zero or above the burst, or whose lifetime is zero.
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn build(self) -> Result<RedisLimiter<C>, ConfigError> {
        let Builder {
            conn,
            prefix,
            rate,
            burst,
            timeout,
            cooldown,
            fallback,
            lease,
        } = self;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(ConfigError::rate(rate));
        }
        if rate > MAX_RATE {
            return Err(ConfigError::rate_too_high(rate));
        }
        if burst == 0 {
            return Err(ConfigError::zero_burst());
        }
        // `rate <= 1e6`, so at least 1 µs; a huge quotient saturates and is refused below.
        let interval_us = (1e6 / rate).round() as u64;
        if interval_us
            .checked_mul(u64::from(burst))
            .is_none_or(|tau| tau > MAX_SPAN_US)
        {
            return Err(ConfigError::bucket_too_long(rate, burst));
        }
        if timeout.is_zero() {
            return Err(ConfigError::zero_timeout());
        }
        let local = match fallback {
            Fallback::Local { share } => {
                if !(share > 0.0 && share <= 1.0) {
                    return Err(ConfigError::share(share));
                }
                let local_rate = rate * share;
                let local_burst = ((f64::from(burst) * share).floor() as u32).max(1);
                let limiter = KeyedLimiter::new(local_rate, local_burst)
                    .expect("a positive finite rate and a positive burst");
                Some(LocalBuckets {
                    limiter,
                    rate: local_rate,
                    burst: local_burst,
                })
            }
            Fallback::FailOpen | Fallback::FailClosed => None,
        };
        let leases = match lease {
            None => None,
            Some((batch, lifetime)) => {
                if batch == 0 || batch > burst {
                    return Err(ConfigError::lease_batch(batch, burst));
                }
                if lifetime.is_zero() {
                    return Err(ConfigError::zero_lease_lifetime());
                }
                Some(Leases::new(batch, lifetime))
            }
        };
        Ok(RedisLimiter {
            inner: Arc::new(Inner {
                conn,
                prefix,
                rate,
                burst,
                interval_us,
                timeout,
                cooldown,
                fallback,
                local,
                leases,
                base: Instant::now(),
                skip_until: AtomicU64::new(0),
            }),
        })
    }
}

impl<C> fmt::Debug for Builder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("prefix", &self.prefix)
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("timeout", &self.timeout)
            .field("cooldown", &self.cooldown)
            .field("fallback", &self.fallback)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

// ===== RedisLimiter =====

/// A token bucket per key whose state lives in Redis: every process and machine that uses
/// the same Redis, prefix and key shares one bucket, with the semantics of
/// [`ctxkit::rate::Limiter`]: bursts of up to `burst`, `rate` tokens a second on average,
/// and over any stretch of time `t` at most `burst + rate · t` tokens granted per key (by
/// Redis's clock, on the Redis path).
///
/// Each decision is one Lua script call on Redis, atomic there, with Redis's `TIME` as the
/// clock (the clients' clocks may disagree; only Redis's counts). Its state is one key,
/// `prefix + key`, holding one integer (microseconds), that expires when its bucket is full
/// again, so idle keys cost nothing. One key per decision: it works on Redis Cluster.
///
/// Every caller of a key must use the same rate and burst (the key holds the bucket's state,
/// not its configuration); give limiters of different configurations different prefixes.
///
/// Three ways to spend, as on `Limiter`:
///
/// * [`allow_n`](RedisLimiter::allow_n): all `n` tokens if they are there now, else none;
/// * [`allow_at_most`](RedisLimiter::allow_at_most): what is there now, up to `n`;
/// * [`wait_n`](RedisLimiter::wait_n): reserve `n` tokens on Redis, then sleep until their
///   time, unless the context ends first (or its deadline would come first).
///
/// Each returns a [`Decision`], which says how many tokens were granted, how many remain,
/// when to retry, when the bucket is full, and which [`Path`] decided. When Redis is slow or
/// down, calls take the limiter's [`Fallback`] (see [`Builder`]); nothing panics, and the
/// [`ConnectionManager`] reconnects by itself, after which decisions come from Redis again.
///
/// A `RedisLimiter` is a handle: clone it to share it between tasks (one `Arc`). Its methods
/// must run on a tokio runtime with the time driver enabled (as the connection needs too).
/// The connection is any async Redis connection that can be cloned: a [`ConnectionManager`]
/// (the default, which reconnects), a `MultiplexedConnection`, or a cluster connection.
///
/// # Coming from Go
///
/// | Go (`github.com/go-redis/redis_rate`) | ctxkit-redis |
/// |---|---|
/// | `redis_rate.NewLimiter(rdb)` and `redis_rate.PerSecond(10)` per call | [`RedisLimiter::new(conn, prefix, 10, burst)`](RedisLimiter::new) (the limit is the limiter's) |
/// | `limiter.Allow(ctx, key, limit)` | [`allow(&ctx, key)`](RedisLimiter::allow) |
/// | `limiter.AllowN(ctx, key, limit, n)` | [`allow_n(&ctx, key, n)`](RedisLimiter::allow_n) |
/// | `limiter.AllowAtMost(ctx, key, limit, n)` | [`allow_at_most(&ctx, key, n)`](RedisLimiter::allow_at_most) |
/// | `res.Allowed`, `Remaining`, `RetryAfter`, `ResetAfter` | [`Decision`]'s fields of those names (`retry_after` is `None` rather than -1) |
/// | `limiter.Reset(ctx, key)` | [`reset(&ctx, key)`](RedisLimiter::reset) |
/// | `x/time/rate`'s `WaitN(ctx, n)` | [`wait_n(&ctx, key, n)`](RedisLimiter::wait_n) |
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use ctxkit::Context;
/// use ctxkit_redis::{Path, RedisLimiter};
///
/// let client = redis::Client::open("redis://127.0.0.1/")?;
/// let conn = redis::aio::ConnectionManager::new(client).await?;
/// let limiter = RedisLimiter::new(conn, "rl:", 10, 5)?; // 10 a second, bursts of 5
///
/// let ctx = Context::background();
/// let decision = limiter.allow_n(&ctx, "user:42", 5).await?;
/// assert!(decision.is_allowed());
/// assert_eq!(decision.path, Path::Redis);
/// let refused = limiter.allow(&ctx, "user:42").await?;
/// assert_eq!(refused.allowed, 0);
/// println!("retry in {:?}", refused.retry_after.unwrap()); // about 100 ms
/// # Ok(()) }
/// ```
pub struct RedisLimiter<C = ConnectionManager> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for RedisLimiter<C> {
    fn clone(&self) -> Self {
        RedisLimiter {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<C> {
    conn: C,
    prefix: String,
    rate: f64,
    burst: u32,
    /// Microseconds per token, rounded: what the script is given.
    interval_us: u64,
    timeout: Duration,
    cooldown: Duration,
    fallback: Fallback,
    /// The buckets of [`Fallback::Local`].
    local: Option<LocalBuckets>,
    /// This process's leases ([`Builder::lease`]).
    leases: Option<Leases>,
    /// The origin of `skip_until`.
    base: Instant,
    /// Nanoseconds since `base` until which calls skip Redis (invariant 4); 0 for none.
    skip_until: AtomicU64,
}

struct LocalBuckets {
    limiter: KeyedLimiter<String>,
    rate: f64,
    burst: u32,
}

impl RedisLimiter<ConnectionManager> {
    /// A limiter of `rate` tokens a second and bursts of `burst` per key, on the Redis
    /// behind `conn`, keeping each key's bucket at `prefix + key`; with the default options
    /// (a 50 ms timeout, [`Fallback::FailClosed`]). [`builder`](RedisLimiter::builder) sets
    /// the options.
    ///
    /// `rate` is any number that converts to `f64` without loss (an integer of up to 32
    /// bits, a fraction). It is kept as whole microseconds between tokens, rounded to the
    /// nearest: 3 a second acts as one token every 333,333 µs.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = redis::Client::open("redis://127.0.0.1/")?;
    /// let conn = redis::aio::ConnectionManager::new(client).await?;
    /// let limiter = ctxkit_redis::RedisLimiter::new(conn, "rl:", 0.5, 1)?; // 1 every 2 s
    /// # drop(limiter); Ok(()) }
    /// ```
    pub fn new(
        conn: ConnectionManager,
        prefix: impl Into<String>,
        rate: impl Into<f64>,
        burst: u32,
    ) -> Result<Self, ConfigError> {
        RedisLimiter::builder(conn, prefix, rate, burst).build()
    }
}

impl<C> RedisLimiter<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Options for a limiter of `rate` tokens a second and bursts of `burst` per key, on the
    /// Redis behind `conn`, at `prefix + key`: set them on the [`Builder`], then
    /// [`build`](Builder::build).
    ///
    /// # Examples
    ///
    /// See [`Builder`].
    pub fn builder(
        conn: C,
        prefix: impl Into<String>,
        rate: impl Into<f64>,
        burst: u32,
    ) -> Builder<C> {
        Builder {
            conn,
            prefix: prefix.into(),
            rate: rate.into(),
            burst,
            timeout: DEFAULT_TIMEOUT,
            cooldown: DEFAULT_COOLDOWN,
            fallback: Fallback::FailClosed,
            lease: None,
        }
    }

    /// The rate, in tokens a second, as given.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(limiter: ctxkit_redis::RedisLimiter) {
    /// assert_eq!(limiter.rate(), 10.0);
    /// # }
    /// ```
    pub fn rate(&self) -> f64 {
        self.inner.rate
    }

    /// The time between two tokens as the script counts it: `1 / rate`, rounded to the
    /// microsecond.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(limiter: ctxkit_redis::RedisLimiter) {
    /// // A limiter of 3 a second.
    /// assert_eq!(limiter.interval(), std::time::Duration::from_micros(333_333));
    /// # }
    /// ```
    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.inner.interval_us)
    }

    /// The burst: the most tokens a bucket holds.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(limiter: ctxkit_redis::RedisLimiter) {
    /// assert_eq!(limiter.burst(), 5);
    /// # }
    /// ```
    pub fn burst(&self) -> u32 {
        self.inner.burst
    }

    /// The prefix of every key.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(limiter: ctxkit_redis::RedisLimiter) {
    /// assert_eq!(limiter.prefix(), "rl:");
    /// # }
    /// ```
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// The policy for calls Redis does not answer in time.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(limiter: ctxkit_redis::RedisLimiter) {
    /// assert_eq!(limiter.fallback(), ctxkit_redis::Fallback::FailClosed);
    /// # }
    /// ```
    pub fn fallback(&self) -> Fallback {
        self.inner.fallback
    }

    /// The bound on each Redis round trip.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(limiter: ctxkit_redis::RedisLimiter) {
    /// assert_eq!(limiter.timeout(), ctxkit_redis::DEFAULT_TIMEOUT);
    /// # }
    /// ```
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The Redis key of `key`'s bucket: the prefix, then the key.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(limiter: ctxkit_redis::RedisLimiter) {
    /// assert_eq!(limiter.redis_key("user:42"), "rl:user:42");
    /// # }
    /// ```
    pub fn redis_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.inner.prefix.len() + key.len());
        full.push_str(&self.inner.prefix);
        full.push_str(key);
        full
    }

    /// Takes one token of `key`'s bucket if it is there now:
    /// [`allow_n(ctx, key, 1)`](RedisLimiter::allow_n).
    ///
    /// # Errors
    ///
    /// As [`allow_n`](RedisLimiter::allow_n).
    ///
    /// # Examples
    ///
    /// See [`RedisLimiter`].
    pub async fn allow(&self, ctx: &Context, key: &str) -> Result<Decision, Error> {
        self.allow_n(ctx, key, 1).await
    }

    /// Takes `n` tokens of `key`'s bucket if all are there now; takes none if not (Go's
    /// `AllowN`). `n = 0` is always allowed and takes nothing.
    ///
    /// One round trip to Redis, bounded by `ctx` and the limiter's timeout (none when this
    /// process's lease holds the tokens: see [`Builder::lease`]); if Redis does not answer in
    /// time, the limiter's [`Fallback`] decides and the decision's [`path`](Decision::path)
    /// says so.
    ///
    /// # Errors
    ///
    /// With no Redis call: [`Error::EmptyKey`]; [`Error::ExceedsBurst`] when `n` is above
    /// the burst (the bucket never holds that many, so it could never be allowed);
    /// [`Error::Context`] when `ctx` is already done. [`Error::Context`] too when `ctx` ends
    /// during the round trip (the script may have run; its tokens are then spent).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(limiter: ctxkit_redis::RedisLimiter) -> Result<(), ctxkit_redis::Error> {
    /// use ctxkit::Context;
    ///
    /// // A limiter of 10 a second, bursts of 5, on a fresh key.
    /// let ctx = Context::background();
    /// let d = limiter.allow_n(&ctx, "batch", 4).await?;
    /// assert_eq!((d.allowed, d.remaining, d.retry_after), (4, 1, None));
    /// let d = limiter.allow_n(&ctx, "batch", 3).await?;
    /// assert_eq!(d.allowed, 0); // all or nothing: 1 is there, 3 were asked for
    /// assert!(d.retry_after.unwrap() <= std::time::Duration::from_millis(200));
    /// # Ok(()) }
    /// ```
    pub async fn allow_n(&self, ctx: &Context, key: &str, n: u32) -> Result<Decision, Error> {
        self.inner.decide(ctx, key, n, Mode::AllOrNothing).await
    }

    /// Takes what is there now of `key`'s bucket, up to `n` tokens (Go's `AllowAtMost`):
    /// [`allowed`](Decision::allowed) is `0..=n`, and
    /// [`retry_after`](Decision::retry_after) says when the tokens not granted would be
    /// there.
    ///
    /// # Errors
    ///
    /// As [`allow_n`](RedisLimiter::allow_n); `n` above the burst is an error here too,
    /// though part of it could be granted: ask for at most the burst.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(limiter: ctxkit_redis::RedisLimiter) -> Result<(), ctxkit_redis::Error> {
    /// use ctxkit::Context;
    ///
    /// // A limiter of 10 a second, bursts of 5, on a fresh key.
    /// let ctx = Context::background();
    /// assert_eq!(limiter.allow_at_most(&ctx, "rows", 3).await?.allowed, 3);
    /// let d = limiter.allow_at_most(&ctx, "rows", 3).await?;
    /// assert_eq!((d.allowed, d.remaining), (2, 0)); // what was left
    /// # Ok(()) }
    /// ```
    pub async fn allow_at_most(&self, ctx: &Context, key: &str, n: u32) -> Result<Decision, Error> {
        self.inner.decide(ctx, key, n, Mode::AtMost).await
    }

    /// Waits for one token of `key`'s bucket: [`wait_n(ctx, key, 1)`](RedisLimiter::wait_n).
    ///
    /// # Errors
    ///
    /// As [`wait_n`](RedisLimiter::wait_n).
    ///
    /// # Cancel safety
    ///
    /// As [`wait_n`](RedisLimiter::wait_n).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(limiter: ctxkit_redis::RedisLimiter) -> Result<(), ctxkit_redis::Error> {
    /// let ctx = ctxkit::Context::background();
    /// for page in 0..3 {
    ///     limiter.wait(&ctx, "crawler").await?; // at the key's rate, across all crawlers
    ///     println!("fetch page {page}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait(&self, ctx: &Context, key: &str) -> Result<Decision, Error> {
        self.wait_n(ctx, key, 1).await
    }

    /// Waits until `n` tokens of `key`'s bucket are there and takes them, unless `ctx` ends
    /// first (Go's `WaitN`, with the bucket on Redis).
    ///
    /// One round trip reserves the tokens on Redis if their time comes before `ctx`'s
    /// deadline; if it would not, Redis takes nothing and the call fails at once with a
    /// deadline error ([`Error::WouldExceedDeadline`]), sleeping for nothing. Otherwise the
    /// call sleeps until the tokens' time (counted from the reply, by this process's clock:
    /// never early), or until `ctx` is done. If `ctx` is done first, the reservation is given
    /// back on Redis (one more round trip, bounded by the timeout) when nothing was taken
    /// after it, and the call returns the context's error.
    ///
    /// If Redis does not answer in time: [`Fallback::FailOpen`] returns at once;
    /// [`Fallback::Local`] waits on the local bucket (under `ctx`, the same rules);
    /// [`Fallback::FailClosed`] fails with [`Error::Unavailable`].
    ///
    /// # Errors
    ///
    /// As [`allow_n`](RedisLimiter::allow_n), and: [`Error::WouldExceedDeadline`] when the
    /// deadline would come first; [`Error::Context`] when `ctx` ends during the sleep;
    /// [`Error::Unavailable`] as above, and on [`Fallback::Local`] when `n` is above the local
    /// bucket's burst.
    ///
    /// `n = 0` takes nothing and returns at once.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future while it sleeps gives the reservation back as a done context does,
    /// from a task spawned on the current tokio runtime (the drop cannot wait for Redis);
    /// without a runtime (it is shutting down) nothing is given back. Dropped during the
    /// first round trip, the reservation may have been made and is not given back.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(limiter: ctxkit_redis::RedisLimiter) -> Result<(), ctxkit_redis::Error> {
    /// use std::time::Duration;
    /// use ctxkit::Context;
    ///
    /// // A limiter of 1 a second, bursts of 1.
    /// let ctx = Context::background();
    /// limiter.wait_n(&ctx, "job", 1).await?; // the burst: at once
    /// let ctx = ctx.with_timeout(Duration::from_millis(100));
    /// let err = limiter.wait_n(&ctx, "job", 1).await.unwrap_err(); // at once, too
    /// assert!(err.is_deadline_exceeded());
    /// # Ok(()) }
    /// ```
    pub async fn wait_n(&self, ctx: &Context, key: &str, n: u32) -> Result<Decision, Error> {
        let inner = &*self.inner;
        inner.check(key, n)?;
        ctx.check()?;
        let bucket = self.redis_key(key).into_bytes();
        let max_wait = match ctx.deadline() {
            Some(deadline) => micros(deadline.saturating_duration_since(Instant::now())),
            None => MAX_SPAN_US,
        }
        .min(MAX_SPAN_US);
        let reply = match inner
            .call(ctx, &bucket, Mode::Reserve, u64::from(n), max_wait, n)
            .await?
        {
            Ok(reply) => reply,
            Err(cause) => return inner.fallback_wait(ctx, key, n, cause).await,
        };
        if reply.granted < n {
            return Err(Error::WouldExceedDeadline { n });
        }
        let decision = inner.decision(n, &reply);
        if reply.delay_us == 0 || n == 0 {
            return Ok(decision);
        }
        let until = Instant::now() + Duration::from_micros(reply.delay_us);
        let give_back = GiveBack::new(Arc::clone(&self.inner), bucket, reply.prev, reply.end);
        if ctx.deadline().is_some_and(|deadline| until > deadline) {
            give_back.now().await;
            return Err(Error::WouldExceedDeadline { n });
        }
        match ctx.run(tokio::time::sleep_until(until.into())).await {
            Ok(()) => {
                give_back.disarm();
                Ok(decision)
            }
            Err(error) => {
                give_back.now().await;
                Err(Error::Context(error))
            }
        }
    }

    /// Deletes `key`'s bucket on Redis: it is full again, for every client (Go's `Reset`).
    /// The local fallback's bucket, if any, is left as it is.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyKey`]; [`Error::Context`] when `ctx` is done before or during the
    /// round trip; [`Error::Unavailable`] when Redis does not answer in time (no fallback
    /// applies to a reset).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(limiter: ctxkit_redis::RedisLimiter) -> Result<(), ctxkit_redis::Error> {
    /// let ctx = ctxkit::Context::background();
    /// limiter.reset(&ctx, "user:42").await?;
    /// # Ok(()) }
    /// ```
    pub async fn reset(&self, ctx: &Context, key: &str) -> Result<(), Error> {
        self.inner.check(key, 0)?;
        ctx.check()?;
        let mut conn = self.inner.conn.clone();
        let mut del = redis::cmd("DEL");
        del.arg(self.redis_key(key));
        let round_trip = del.query_async::<i64>(&mut conn);
        match tokio::time::timeout(self.inner.timeout, ctx.run(round_trip)).await {
            Err(_elapsed) => Err(Error::Unavailable(Unavailable::Timeout)),
            Ok(Err(error)) => Err(Error::Context(error)),
            Ok(Ok(Err(error))) => Err(Error::Unavailable(classify(&error))),
            Ok(Ok(Ok(_))) => Ok(()),
        }
    }
}

impl<C> fmt::Debug for RedisLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("RedisLimiter")
            .field("prefix", &inner.prefix)
            .field("rate", &inner.rate)
            .field("burst", &inner.burst)
            .field("interval_us", &inner.interval_us)
            .field("timeout", &inner.timeout)
            .field("cooldown", &inner.cooldown)
            .field("fallback", &inner.fallback)
            .field(
                "lease",
                &inner
                    .leases
                    .as_ref()
                    .map(|leases| (leases.batch, leases.lifetime)),
            )
            .finish_non_exhaustive()
    }
}

// ===== the calls =====

impl<C> Inner<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    /// Invariant 2: the input, before anything else.
    fn check(&self, key: &str, n: u32) -> Result<(), Error> {
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if n > self.burst {
            return Err(Error::ExceedsBurst {
                n,
                burst: self.burst,
            });
        }
        Ok(())
    }

    /// `allow_n` and `allow_at_most`.
    async fn decide(
        &self,
        ctx: &Context,
        key: &str,
        n: u32,
        mode: Mode,
    ) -> Result<Decision, Error> {
        self.check(key, n)?;
        ctx.check()?;
        let mut bucket = Vec::with_capacity(self.prefix.len() + key.len());
        bucket.extend_from_slice(self.prefix.as_bytes());
        bucket.extend_from_slice(key.as_bytes());
        if let (Mode::AllOrNothing, Some(leases), true) = (mode, &self.leases, n > 0) {
            return self.decide_leased(ctx, key, &bucket, n, leases).await;
        }
        match self.call(ctx, &bucket, mode, u64::from(n), 0, n).await? {
            Ok(reply) => Ok(self.decision(n, &reply)),
            Err(cause) => Ok(self.fallback_decide(key, n, mode, cause)),
        }
    }

    /// `allow_n` with leases: from this process's lease if it holds `n`, else from Redis with
    /// up to a batch more for the lease.
    async fn decide_leased(
        &self,
        ctx: &Context,
        key: &str,
        bucket: &[u8],
        n: u32,
        leases: &Leases,
    ) -> Result<Decision, Error> {
        let sent = Instant::now();
        if let Some(held) = leases.take(key, n, sent) {
            return Ok(Decision {
                requested: n,
                allowed: n,
                remaining: held.tokens,
                retry_after: None,
                reset_after: held.reset_at.saturating_duration_since(sent),
                delay: Duration::ZERO,
                path: Path::Lease,
                unavailable: None,
                redis_time: None,
            });
        }
        let batch = leases.batch;
        let reply = match self
            .call(
                ctx,
                bucket,
                Mode::Lease,
                u64::from(n),
                u64::from(batch),
                n.saturating_add(batch),
            )
            .await?
        {
            Ok(reply) => reply,
            Err(cause) => return Ok(self.fallback_decide(key, n, Mode::AllOrNothing, cause)),
        };
        if reply.granted < n {
            return Ok(self.decision(n, &reply));
        }
        let extra = reply.granted - n;
        let reset_at = Instant::now() + Duration::from_micros(reply.reset_after_us);
        // Counted from the send: Redis took the tokens after it, so no leased token is
        // admitted more than `lifetime` after Redis took it.
        let expires = sent
            .checked_add(leases.lifetime)
            .unwrap_or_else(|| sent + Duration::from_micros(MAX_SPAN_US));
        let held = leases.add(key, extra, expires, reset_at, sent);
        let mut decision = self.decision(n, &reply);
        decision.allowed = n;
        decision.remaining = reply.remaining.saturating_add(held).min(self.burst);
        Ok(decision)
    }

    /// One script call (invariant 1): the reply, or why there is none; the context's error
    /// if it ended first.
    async fn call(
        &self,
        ctx: &Context,
        bucket: &[u8],
        mode: Mode,
        arg4: u64,
        arg5: u64,
        max_granted: u32,
    ) -> Result<Result<Reply, Unavailable>, ctxkit::Error> {
        if self.skipping() {
            return Ok(Err(Unavailable::Skipped));
        }
        let mut conn = self.conn.clone();
        let mut invocation = GCRA.key(bucket);
        invocation
            .arg(mode as u64)
            .arg(self.interval_us)
            .arg(self.burst)
            .arg(arg4)
            .arg(arg5);
        let round_trip = invocation.invoke_async::<[i64; 8]>(&mut conn);
        let outcome = match tokio::time::timeout(self.timeout, ctx.run(round_trip)).await {
            Err(_elapsed) => Err(Unavailable::Timeout),
            Ok(Err(error)) => return Err(error),
            Ok(Ok(Err(error))) => Err(classify(&error)),
            Ok(Ok(Ok(raw))) => {
                Reply::parse(raw, max_granted, self.burst).ok_or(Unavailable::Server)
            }
        };
        if let Err(Unavailable::Timeout | Unavailable::Connection) = outcome {
            self.trip();
        }
        Ok(outcome)
    }

    /// Gives a wait's reservation back (invariant 3); whatever Redis says, or nothing if it
    /// does not answer in time.
    async fn give_back(&self, bucket: &[u8], prev: u64, end: u64) {
        // Not under the caller's context, which is done by now: under the timeout only.
        let _ = self
            .call(&Context::background(), bucket, Mode::GiveBack, prev, end, 1)
            .await;
    }

    /// Nanoseconds since `base`.
    fn clock(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether calls skip Redis now (invariant 4).
    fn skipping(&self) -> bool {
        let until = self.skip_until.load(Ordering::Relaxed);
        until != 0 && self.clock() < until
    }

    /// Starts a cooldown (invariant 4).
    fn trip(&self) {
        if !self.cooldown.is_zero() {
            let cooldown = u64::try_from(self.cooldown.as_nanos()).unwrap_or(u64::MAX);
            let until = self.clock().saturating_add(cooldown).max(1);
            self.skip_until.store(until, Ordering::Relaxed);
        }
    }

    /// Redis's decision, as a [`Decision`].
    fn decision(&self, n: u32, reply: &Reply) -> Decision {
        Decision {
            requested: n,
            allowed: reply.granted,
            remaining: reply.remaining,
            retry_after: reply.retry_after_us.map(Duration::from_micros),
            reset_after: Duration::from_micros(reply.reset_after_us),
            delay: Duration::from_micros(reply.delay_us),
            path: Path::Redis,
            unavailable: None,
            redis_time: Some(reply.redis_time()),
        }
    }

    /// A fallback decision without Redis: granting nothing (`FailClosed`) or everything
    /// (`FailOpen`). Empty figures but for `retry_after` (see [`Decision`]).
    fn blind(&self, n: u32, path: Path, cause: Unavailable) -> Decision {
        let allowed = if path == Path::FailOpen { n } else { 0 };
        Decision {
            requested: n,
            allowed,
            remaining: 0,
            retry_after: (allowed < n)
                .then(|| Duration::from_micros(self.interval_us.saturating_mul(u64::from(n)))),
            reset_after: Duration::ZERO,
            delay: Duration::ZERO,
            path,
            unavailable: Some(cause),
            redis_time: None,
        }
    }

    /// `allow_n` and `allow_at_most` on the fallback.
    fn fallback_decide(&self, key: &str, n: u32, mode: Mode, cause: Unavailable) -> Decision {
        let local = match (&self.fallback, &self.local) {
            (Fallback::Local { .. }, Some(local)) => local,
            (Fallback::FailOpen, _) => return self.blind(n, Path::FailOpen, cause),
            _ => return self.blind(n, Path::FailClosed, cause),
        };
        let limiter = local.limiter.limiter(key);
        let allowed = match mode {
            Mode::AtMost => {
                let mut k = n.min(whole(limiter.tokens()));
                // Terminates: `k` falls by at least one each round.
                while k > 0 && !limiter.allow_n(k) {
                    k = (k - 1).min(whole(limiter.tokens()));
                }
                k
            }
            _ => {
                if limiter.allow_n(n) {
                    n
                } else {
                    0
                }
            }
        };
        local.decision(n, allowed, limiter.tokens(), Duration::ZERO, cause)
    }

    /// `wait_n` on the fallback.
    async fn fallback_wait(
        &self,
        ctx: &Context,
        key: &str,
        n: u32,
        cause: Unavailable,
    ) -> Result<Decision, Error> {
        let local = match (&self.fallback, &self.local) {
            (Fallback::Local { .. }, Some(local)) => local,
            (Fallback::FailOpen, _) => return Ok(self.blind(n, Path::FailOpen, cause)),
            _ => return Err(Error::Unavailable(cause)),
        };
        let start = Instant::now();
        match local.limiter.wait_n(ctx, key, n).await {
            Ok(()) => {
                let tokens = local.limiter.tokens_at(key, Instant::now());
                Ok(local.decision(n, n, tokens, start.elapsed(), cause))
            }
            Err(error) if error.is_exceeds_burst() => Err(Error::Unavailable(cause)),
            Err(error) => Err(match ctx.err() {
                Some(done) => Error::Context(done),
                None if error.is_deadline_exceeded() => Error::WouldExceedDeadline { n },
                // A zero local rate (a share that underflowed) waits forever: refuse.
                None => Error::Unavailable(cause),
            }),
        }
    }
}

impl LocalBuckets {
    /// A [`Path::Local`] decision: `allowed` of `n`, with the local bucket at `tokens`.
    fn decision(
        &self,
        n: u32,
        allowed: u32,
        tokens: f64,
        delay: Duration,
        cause: Unavailable,
    ) -> Decision {
        let seconds = |tokens: f64| {
            Duration::try_from_secs_f64(tokens.max(0.0) / self.rate).unwrap_or(Duration::MAX)
        };
        Decision {
            requested: n,
            allowed,
            remaining: whole(tokens).min(self.burst),
            retry_after: (allowed < n).then(|| seconds(f64::from(n - allowed) - tokens)),
            reset_after: seconds(f64::from(self.burst) - tokens),
            delay,
            path: Path::Local,
            unavailable: Some(cause),
            redis_time: None,
        }
    }
}

// ===== leases =====

/// The shards of [`Leases`]: a power of two.
const LEASE_SHARDS: usize = 16;

/// A shard holds at least this many leases before an insertion prunes it.
const LEASE_PRUNE_FLOOR: usize = 64;

/// This process's leases, per key ([`Builder::lease`]), in shards of a plain mutex each
/// (held for a map lookup or insertion, never across an await).
struct Leases {
    batch: u32,
    lifetime: Duration,
    hasher: RandomState,
    shards: Box<[Mutex<LeaseShard>]>,
}

#[derive(Default)]
struct LeaseShard {
    held: HashMap<String, Held>,
    /// The shard's size after its last prune (the amortized prune's baseline).
    pruned_at: usize,
}

/// One key's lease.
#[derive(Clone, Copy, Debug)]
struct Held {
    /// Tokens left.
    tokens: u32,
    /// No token of it is used from this instant on.
    expires: Instant,
    /// When Redis said the bucket would be full again, as of the last take.
    reset_at: Instant,
}

impl Leases {
    fn new(batch: u32, lifetime: Duration) -> Leases {
        Leases {
            batch,
            lifetime,
            hasher: RandomState::new(),
            shards: (0..LEASE_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, LeaseShard> {
        let index = (self.hasher.hash_one(key) as usize) & (LEASE_SHARDS - 1);
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `n` tokens of `key`'s lease if it holds them and has not expired at `now`;
    /// returns the lease as it is left. An expired lease is dropped.
    fn take(&self, key: &str, n: u32, now: Instant) -> Option<Held> {
        let mut shard = self.shard(key);
        let held = shard.held.get_mut(key)?;
        if now >= held.expires {
            shard.held.remove(key);
            return None;
        }
        if held.tokens < n {
            return None;
        }
        held.tokens -= n;
        let left = *held;
        if left.tokens == 0 {
            shard.held.remove(key);
        }
        Some(left)
    }

    /// Adds `tokens` to `key`'s lease. A lease that has not expired keeps the earlier of its
    /// expiry and `expires`, so no token outlives the lifetime of the take it came from.
    /// Returns the tokens the lease holds.
    fn add(
        &self,
        key: &str,
        tokens: u32,
        expires: Instant,
        reset_at: Instant,
        now: Instant,
    ) -> u32 {
        if tokens == 0 {
            return self.take(key, 0, now).map_or(0, |held| held.tokens);
        }
        let mut shard = self.shard(key);
        let len = shard.held.len();
        if len >= LEASE_PRUNE_FLOOR && len >= shard.pruned_at.saturating_mul(2) {
            shard.held.retain(|_, held| now < held.expires);
            shard.pruned_at = shard.held.len();
        }
        let fresh = Held {
            tokens,
            expires,
            reset_at,
        };
        let held = shard
            .held
            .entry(key.to_owned())
            .and_modify(|held| {
                if now >= held.expires {
                    *held = fresh;
                } else {
                    held.tokens = held.tokens.saturating_add(tokens);
                    held.expires = held.expires.min(expires);
                    held.reset_at = reset_at;
                }
            })
            .or_insert(fresh);
        held.tokens
    }
}

/// Whole tokens in a token count (0 for a negative one).
fn whole(tokens: f64) -> u32 {
    // `as` saturates: NaN and negatives give 0.
    tokens.floor() as u32
}

/// A duration in whole microseconds, saturated.
fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Sorts a failed round trip into [`Unavailable`].
fn classify(error: &redis::RedisError) -> Unavailable {
    if error.is_timeout() {
        Unavailable::Timeout
    } else if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
    {
        Unavailable::Connection
    } else {
        Unavailable::Server
    }
}

// ===== giving a wait's reservation back =====

type BoxedGiveBack = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A wait's reservation, to be given back unless the wait ends with its tokens (invariant
/// 3): awaited when the context ends, spawned on the runtime when the wait is dropped.
struct GiveBack {
    give_back: Option<BoxedGiveBack>,
}

impl GiveBack {
    fn new<C>(inner: Arc<Inner<C>>, bucket: Vec<u8>, prev: u64, end: u64) -> GiveBack
    where
        C: ConnectionLike + Clone + Send + Sync + 'static,
    {
        // Lazy: an async block does nothing until polled.
        let give_back: BoxedGiveBack =
            Box::pin(async move { inner.give_back(&bucket, prev, end).await });
        GiveBack {
            give_back: Some(give_back),
        }
    }

    /// The wait kept its tokens.
    fn disarm(mut self) {
        self.give_back = None;
    }

    /// Gives the reservation back now.
    async fn now(mut self) {
        if let Some(give_back) = self.give_back.take() {
            give_back.await;
        }
    }
}

impl Drop for GiveBack {
    fn drop(&mut self) {
        if let Some(give_back) = self.give_back.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                drop(runtime.spawn(give_back));
            }
        }
    }
}

impl fmt::Debug for GiveBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GiveBack")
            .field("armed", &self.give_back.is_some())
            .finish()
    }
}
