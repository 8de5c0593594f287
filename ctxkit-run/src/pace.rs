//! `--delay` and `--rate`: one limit on how often jobs start, on ctxkit's `Limiter` (burst 1),
//! or, with `--rate-redis`, on ctxkit-redis's `RedisLimiter`, shared by every runner that uses
//! the same Redis and key.
//!
//! The spawning loop waits on the pacer before each job, under the group's context: a wait
//! ends early when the run is halted, signaled or past its deadline (and a wait whose turn
//! would come after the deadline fails at once, Go's `Wait` rule, so no job is started late).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ctxkit::rate::Limiter;
use ctxkit::Context;
use ctxkit_redis::{Fallback, RedisLimiter};

use crate::args::Pace;

/// How long a pacer on Redis waits before asking again while Redis cannot be reached.
const REDIS_RETRY: Duration = Duration::from_millis(200);

/// The limit on job starts.
pub(crate) enum Pacer {
    /// In this process.
    Local(Limiter),
    /// On Redis, at `key`.
    Redis {
        limiter: RedisLimiter,
        key: String,
        url: String,
        /// Whether the "Redis is unavailable" warning was printed (once a run).
        warned: AtomicBool,
    },
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pacer::Local(limiter) => f.debug_tuple("Local").field(limiter).finish(),
            Pacer::Redis { key, url, .. } => f
                .debug_struct("Redis")
                .field("url", url)
                .field("key", key)
                .finish_non_exhaustive(),
        }
    }
}

impl Pacer {
    /// The pacer `pace` asks for; on Redis, after connecting.
    ///
    /// # Errors
    ///
    /// A message when the URL is malformed or Redis cannot be reached (within 5 s).
    pub(crate) async fn new(pace: &Pace) -> Result<Pacer, String> {
        let Some((url, key)) = &pace.redis else {
            return Limiter::new(pace.rate, 1)
                .map(Pacer::Local)
                .map_err(|err| format!("bad --rate/--delay: {err}"));
        };
        let client = redis::Client::open(url.as_str())
            .map_err(|err| format!("bad --rate-redis {url:?}: {err}"))?;
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            redis::aio::ConnectionManager::new(client),
        )
        .await
        .map_err(|_| format!("cannot reach Redis at {url}: no answer in 5 s"))?
        .map_err(|err| format!("cannot reach Redis at {url}: {err}"))?;
        let limiter = RedisLimiter::builder(conn, "ctxrun:", pace.rate, 1)
            .fallback(Fallback::FailClosed)
            .build()
            .map_err(|err| format!("bad --rate/--delay: {err}"))?;
        Ok(Pacer::Redis {
            limiter,
            key: key.clone(),
            url: url.clone(),
            warned: AtomicBool::new(false),
        })
    }

    /// Waits for the next job's turn. `false` when `ctx` ended first, or its deadline would
    /// come before the turn: no more jobs start.
    pub(crate) async fn wait(&self, ctx: &Context) -> bool {
        match self {
            Pacer::Local(limiter) => limiter.wait(ctx).await.is_ok(),
            Pacer::Redis {
                limiter,
                key,
                url,
                warned,
            } => loop {
                match limiter.wait(ctx, key).await {
                    Ok(_) => return true,
                    Err(ctxkit_redis::Error::Unavailable(why)) => {
                        // Never above the shared rate: wait for Redis rather than go alone.
                        if !warned.swap(true, Ordering::Relaxed) {
                            eprintln!(
                                "ctxrun: the shared rate on Redis at {url} is unavailable ({why}); \
                                 no job starts until it answers"
                            );
                        }
                        if ctx.sleep(REDIS_RETRY).await.is_err() {
                            return false;
                        }
                    }
                    Err(_) => return false,
                }
            },
        }
    }
}
