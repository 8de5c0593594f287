//! `--delay` and `--rate`: one limit on how often jobs start, on ctxkit's `Limiter` (burst 1),
//! or, with `--rate-redis`, on ctxkit-redis's `RedisLimiter`, shared by every runner that uses
//! the same Redis and key.
//!
//! A job waits on the pacer once it has its `-j` slot, under the group's context: a wait ends
//! early when the run is halted, signaled or past its deadline (and a wait whose turn would
//! come after the deadline fails at once, Go's `Wait` rule, so no job is started late).
//!
//! Jobs start in input order: each takes a ticket when it gets its slot (slots are handed out
//! in input order), and waits on the limiter only when the tickets before it have had their
//! turn (a `watch` channel holds the next ticket). So the limiter is asked by one job at a
//! time, and two starts are never closer than the pace.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ctxkit::rate::Limiter;
use ctxkit::Context;
use ctxkit_redis::{Fallback, RedisLimiter};

use crate::args::Pace;

/// How long a pacer on Redis waits before asking again while Redis cannot be reached.
const REDIS_RETRY: Duration = Duration::from_millis(200);

/// The limit on job starts, and the order they take it in.
pub(crate) struct Pacer {
    limit: Limit,
    /// The next ticket to hand out.
    tickets: AtomicUsize,
    /// The ticket whose turn it is.
    turn: tokio::sync::watch::Sender<usize>,
}

/// A ticket: a job's place in the order of starts.
#[derive(Debug)]
pub(crate) struct Ticket(usize);

/// The limit itself.
enum Limit {
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
        f.debug_struct("Pacer")
            .field("limit", &self.limit)
            .field("tickets", &self.tickets)
            .field("turn", &*self.turn.borrow())
            .finish()
    }
}

impl std::fmt::Debug for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Local(limiter) => f.debug_tuple("Local").field(limiter).finish(),
            Limit::Redis { key, url, .. } => f
                .debug_struct("Redis")
                .field("url", url)
                .field("key", key)
                .finish_non_exhaustive(),
        }
    }
}

impl Pacer {
    fn with(limit: Limit) -> Pacer {
        Pacer {
            limit,
            tickets: AtomicUsize::new(0),
            turn: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The next place in the order of starts. Take it when the job gets its slot.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket(self.tickets.fetch_add(1, Ordering::SeqCst))
    }

    /// Waits for `ticket`'s turn, then for the limit. `false` when `ctx` ended first, or its
    /// deadline would come before the turn: no more jobs start.
    pub(crate) async fn wait(&self, ctx: &Context, ticket: Ticket) -> bool {
        if !self.turn_of(ctx, &ticket).await {
            return false;
        }
        let ok = self.limit.wait(ctx).await;
        // The next ticket's turn, whatever happened to this one.
        self.turn.send_modify(|next| *next += 1);
        ok
    }

    /// Gives up `ticket` for a job that will not start: once its turn comes, the next
    /// ticket's turn comes, so no later job waits for this one forever.
    pub(crate) async fn pass(&self, ctx: &Context, ticket: Ticket) {
        if self.turn_of(ctx, &ticket).await {
            self.turn.send_modify(|next| *next += 1);
        }
    }

    /// Waits until it is `ticket`'s turn; `false` if `ctx` ended first (then every job is
    /// ending, and no turn matters any more).
    async fn turn_of(&self, ctx: &Context, ticket: &Ticket) -> bool {
        let mut turn = self.turn.subscribe();
        loop {
            if *turn.borrow_and_update() == ticket.0 {
                return true;
            }
            tokio::select! {
                changed = turn.changed() => if changed.is_err() { return false },
                _ = ctx.done() => return false,
            }
        }
    }

    /// The pacer `pace` asks for; on Redis, after connecting.
    ///
    /// # Errors
    ///
    /// A message when the URL is malformed or Redis cannot be reached (within 5 s).
    pub(crate) async fn new(pace: &Pace) -> Result<Pacer, String> {
        let Some((url, key)) = &pace.redis else {
            return Limiter::new(pace.rate, 1)
                .map(|limiter| Pacer::with(Limit::Local(limiter)))
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
        Ok(Pacer::with(Limit::Redis {
            limiter,
            key: key.clone(),
            url: url.clone(),
            warned: AtomicBool::new(false),
        }))
    }
}

impl Limit {
    /// Waits for the limit. `false` as [`Pacer::wait`].
    async fn wait(&self, ctx: &Context) -> bool {
        match self {
            Limit::Local(limiter) => limiter.wait(ctx).await.is_ok(),
            Limit::Redis {
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
