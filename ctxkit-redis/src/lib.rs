//! A GCRA rate limiter whose state lives in Redis: one bucket per key, shared by every
//! process and machine that uses the same Redis, with the semantics of ctxkit's in-process
//! [`ctxkit::rate::Limiter`] (and Go's `golang.org/x/time/rate`), and a [`Fallback`] policy
//! for when Redis is slow or down.
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use ctxkit::Context;
//! use ctxkit_redis::{Fallback, Path, RedisLimiter};
//!
//! let client = redis::Client::open("redis://127.0.0.1/")?;
//! let conn = redis::aio::ConnectionManager::new(client).await?;
//! let limiter = RedisLimiter::builder(conn, "api:", 10, 5) // 10 a second, bursts of 5
//!     .fallback(Fallback::Local { share: 0.25 }) // four servers share the limit
//!     .build()?;
//!
//! let ctx = Context::background();
//! let decision = limiter.allow(&ctx, "client-42").await?;
//! if decision.is_allowed() {
//!     // serve
//! } else {
//!     // 429, with `Retry-After: decision.retry_after`
//! }
//! if decision.path != Path::Redis {
//!     eprintln!("rate limit decided without Redis: {:?}", decision.unavailable);
//! }
//! # Ok(()) }
//! ```
//!
//! # What it guarantees
//!
//! * **Shared, exact limits.** Each decision is one Lua script on Redis (`gcra.lua`), which
//!   runs alone there, so concurrent clients never both take the last token. Per key, over
//!   any stretch of time `t` (by Redis's clock), the Redis path grants at most
//!   `burst + rate · t` tokens, whatever the number of clients.
//! * **Redis's clock.** The script reads `TIME` on Redis; the clients' clocks never enter a
//!   decision, so machines whose clocks disagree still share one schedule. Instants are
//!   integer microseconds (a rate is kept as whole microseconds per token, so at most
//!   1,000,000 a second), exact in Lua's doubles: no float rounding of large instants.
//! * **One key per decision**, `prefix + key`, holding one integer: it works on Redis
//!   Cluster, and the key expires (`PX`) when its bucket is full again, so idle keys vanish.
//! * **One round trip** per decision (`EVALSHA`). After a `SCRIPT FLUSH`, a restart or a
//!   failover, the first call gets `NOSCRIPT`, loads the script and calls again.
//! * **Go's semantics.** [`allow_n`](RedisLimiter::allow_n) is all or nothing;
//!   [`allow_at_most`](RedisLimiter::allow_at_most) grants what is there;
//!   [`wait_n`](RedisLimiter::wait_n) reserves on Redis and sleeps under a
//!   [`Context`](ctxkit::Context), failing at once with a deadline error, taking nothing,
//!   when the context's deadline comes before the tokens would, and giving the tokens back
//!   when the context ends during the sleep.
//! * **Bad input is an error**, never a panic: a rate that is not positive and finite, a
//!   zero burst ([`ConfigError`]); an empty key, `n` above the burst ([`Error`]).
//! * **Redis slow or down.** Each round trip is bounded by the caller's context and by the
//!   limiter's timeout (50 ms by default); a call that gets no answer takes the fallback:
//!   [`Fallback::FailOpen`], [`Fallback::FailClosed`] or [`Fallback::Local`] (an in-process
//!   [`ctxkit::rate::KeyedLimiter`] at a share of the rate), and its [`Decision::path`] says
//!   so. After a failure, calls skip Redis for a short cooldown, then try it again; the
//!   [`ConnectionManager`](redis::aio::ConnectionManager) reconnects by itself, so decisions
//!   return to Redis once it is back.
//!
//! * **Leased local batches**, if asked for ([`Builder::lease`]): `allow_n` takes a batch
//!   beyond its own tokens and serves the next calls from it in process
//!   ([`Path::Lease`]), for many decisions per round trip, at the price of a looser bound,
//!   `burst + rate · (t + lifetime)`.
//!
//! Not done: a canceled wait gives its tokens back only if no take came after it (Redis keeps
//! no list of canceled takes; the bucket then admits less, never more).
//!
//! # Reconnection
//!
//! A [`ConnectionManager`](redis::aio::ConnectionManager) retries a lost connection with
//! exponential backoff (by default up to six tries, the longest delay a few seconds), and the
//! limiter's calls go to the fallback meanwhile. For a quick return after a restart, give it a
//! short maximum delay:
//!
//! ```no_run
//! # async fn f() -> redis::RedisResult<()> {
//! use std::time::Duration;
//! use redis::aio::{ConnectionManager, ConnectionManagerConfig};
//!
//! let client = redis::Client::open("redis://127.0.0.1/")?;
//! let config = ConnectionManagerConfig::new()
//!     .set_max_delay(Duration::from_millis(200))
//!     .set_connection_timeout(Some(Duration::from_millis(100)));
//! let conn = ConnectionManager::new_with_config(client, config).await?;
//! # drop(conn); Ok(()) }
//! ```
//!
//! `ConnectionManager::new` fails while Redis is down. A service that must start anyway
//! builds its manager with `ConnectionManager::new_lazy_with_config`, which connects on first
//! use: until then, calls take the fallback.
//!
//! # Runtime
//!
//! The limiter's methods are async and must run on a tokio runtime with its time driver
//! (`#[tokio::main]`, or a builder with `enable_all()`), as the Redis connection itself needs.
//!
//! # Dependencies
//!
//! * [`redis`] (features `tokio-comp`, `connection-manager`, `script`): the Redis client in
//!   wide use, maintained, with a multiplexed async connection that reconnects by itself
//!   and a `Script` type that sends `EVALSHA` and reloads on `NOSCRIPT`. No other feature
//!   (no TLS, no cluster) is turned on here; turn them on in your own dependency on it.
//! * [`ctxkit`]: the [`Context`](ctxkit::Context) every call is bounded by, and the
//!   in-process [`KeyedLimiter`](ctxkit::rate::KeyedLimiter) of the local fallback.
//! * [`tokio`] (features `rt`, `time`): the timeout on each round trip, the sleep of a wait,
//!   and the task that gives a dropped wait's tokens back. The Redis connection runs on tokio
//!   already.
//!
//! # Implementation details
//!
//! The script keeps the bucket as one instant, `zero`, at which it would hold no tokens (the
//! model of ctxkit's `rate/gcra.rs`): with `T` the interval between tokens and
//! `tau = burst · T`, `tokens(now) = min(burst, (now - zero) / T)`, and taking `n` moves
//! `zero` to `max(zero, now - tau) + n · T`, ready at once if that is not after `now`. The
//! key's value is `zero` in microseconds since the Unix epoch, and it expires at
//! `zero + tau`. `script.rs` states the arithmetic limits, `limiter.rs` the invariants of the
//! calls, the fallback and the give-back.

mod decision;
mod error;
mod limiter;
mod script;

pub use decision::{Decision, Path, Unavailable};
pub use error::{ConfigError, Error};
pub use limiter::{Builder, Fallback, RedisLimiter, DEFAULT_COOLDOWN, DEFAULT_TIMEOUT};
