//! The token-bucket [`Limiter`]: the GCRA decisions of `gcra.rs` committed on one atomic word,
//! with a sequence lock around the configuration and a small lock on the cancel path.
//!
//! What a take or a cancel *decides* is `gcra.rs`'s (pure functions over the state, the time
//! and the configuration, with the argument that cancels never over-admit); this file *stores*
//! the state and commits the decisions, and owns the waits and reservations built on them.
//!
//! # Invariants
//!
//! 1. `zero` is the bucket's state of `gcra.rs`: the instant (nanoseconds on the crate
//!    clock) at which the bucket holds no tokens; it never exceeds `gcra::MAX_T`. Takers and
//!    cancellers change it only with a compare-exchange whose expected value is the `zero`
//!    their decision was computed from (a take's `prev`; for a rollback, the take's `end`), so
//!    a decision made from a stale `zero` never commits.
//! 2. The configuration (`interval`, `tau`, `burst`, `frozen`, `rate`) changes only while `seq`
//!    is odd, and only by the one setter that made it odd (setters make it odd only while they
//!    hold `undo`, which is therefore the setters' lock). A reader takes a snapshot of `zero`
//!    and the configuration between two loads of `seq` that see the same even value (a
//!    sequence lock), so it never computes from half of one configuration and half of
//!    another. The even value a snapshot saw is its *epoch*; a setter that changes nothing
//!    puts `seq` back, so epochs change only with the configuration.
//! 3. A setter rewrites `zero` for the new configuration (keeping the tokens earned) with a
//!    compare-exchange while `seq` is odd, so a reader that took its snapshot before the setter
//!    began fails its own compare-exchange and retries under the new configuration (unless the
//!    setter left `zero` unchanged, in which case the old decision is still valid).
//! 4. `interval == 0` means unlimited: `zero` is then neither read nor written by takers.
//!    `frozen != 0` means a zero rate: the bucket's clock stands still at `frozen`, so it only
//!    spends what it holds.
//! 5. Within one epoch, the takes that moved `zero` form `gcra.rs`'s stack (its "The stack of
//!    takes"), whose top's `end` is `zero`: by invariant 1, each take's compare-exchange
//!    `prev → end` lands only on the `zero` it was decided from. A cancel decides with
//!    `gcra::undo` and commits a rollback with one compare-exchange `end → to`, which itself
//!    checks that the take is still the top (`zero == end` means the top, because `end`s
//!    strictly increase and a reservation is canceled once). Only a reservation of the current
//!    epoch is rolled back. `undo` holds the remembered takes of the current epoch only (a
//!    setter clears it under the lock), and while `undo` is unlocked no remembered `end`
//!    equals `zero` (a rollback goes on through every remembered take it uncovers).
//!
//! So the bound `gcra.rs` argues, at most `burst + rate · t` tokens in any window of length
//! `t` for the takes of one configuration, holds for the limiter: it commits exactly the
//! decisions `gcra.rs` makes, each on the state it was made from.
//!
//! # Lock order
//!
//! There is no lock on the fast path: takers (`allow`, `reserve`, the start of a wait) take
//! neither lock. Setters serialise on `seq` (invariant 2); readers back off
//! (`sync::Backoff`: spin, then yield) while a setter runs, which takes a few nanoseconds and
//! calls no user code. The cancel path locks `undo`, a leaf mutex that only cancellers and
//! setters take, and in one order: `undo` first, then `seq` (a setter locks `undo` before it
//! makes `seq` odd), so a canceller holding `undo` sees `seq` even and unchanging
//! (invariant 5).
//!
//! # Memory
//!
//! `undo` holds a few bytes per canceled reservation that was not the top when canceled and
//! has not been uncovered since, at most `burst + 1 + q` after a cancel at `now`, where `q` is
//! the number of tokens reserved beyond `now` ("Memory" in `gcra.rs`).

use std::fmt;
use std::future::Future;
use std::mem;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use super::error::{ConfigError, WaitError};
use super::gcra::{self, Config, Limit, Refusal, Remembered, Take, Undo, MAX_T};
use super::sleep::{self, SleepUntil};
use crate::context::Context;
use crate::sync::{fence, Arc, AtomicU32, AtomicU64, Backoff, Mutex, MutexGuard, Ordering};
use crate::time;

/// Encodes an instant on the crate clock (invariant 1 bounds it).
#[inline]
fn encode(instant: Instant) -> u64 {
    time::encode(instant).unwrap_or(MAX_T).min(MAX_T)
}

/// Tokens taken: the decision and the configuration it was made under.
#[derive(Clone, Copy, Debug)]
struct Grant {
    /// What `gcra::take` decided (and `Limiter::take` committed).
    take: Take,
    /// The epoch (`seq`) of the snapshot the take was decided on (invariants 2 and 5).
    epoch: u64,
}

// ===== impl Limiter =====

/// A token bucket: events may come in bursts of up to `burst`, and at `rate` per second on
/// average.
///
/// The bucket starts full with `burst` tokens and earns `rate` tokens a second, never holding
/// more than `burst`. Each event spends one token ([`allow`](Limiter::allow),
/// [`wait`](Limiter::wait)) or `n` ([`allow_n`](Limiter::allow_n), [`wait_n`](Limiter::wait_n)).
/// Over any stretch of time `t`, a limiter admits at most `burst + rate · t` tokens.
///
/// Three ways to spend:
///
/// * [`allow`](Limiter::allow): take a token if one is there now, else return `false` (drop
///   or refuse the event);
/// * [`wait`](Limiter::wait) / [`blocking_wait`](Limiter::blocking_wait): take a token, sleeping
///   until it comes, unless the [`Context`] is done first (or its deadline would come first);
/// * [`reserve`](Limiter::reserve): take a token now, to be used after the
///   [`Reservation`]'s delay; cancel it to give the token back.
///
/// Waiting and reserving have *owned* forms for an `Arc<Limiter>`, which borrow nothing:
/// [`wait_owned`](Limiter::wait_owned) returns a `'static` future ([`OwnedWait`]) for a
/// spawned task or a tower service, and [`reserve_owned`](Limiter::reserve_owned) an
/// [`OwnedReservation`] that can be kept across awaits beside the `Arc` it came from.
///
/// A limiter runs no thread: tokens are computed from the time of each call. `allow` and
/// `reserve` take no lock (one atomic compare-exchange); canceling a reservation takes a
/// small lock of its own. Share a limiter between threads with `Arc<Limiter>` or a `static`.
///
/// Rates are kept as whole nanoseconds between tokens: `1e9 / rate` is rounded to the nearest
/// nanosecond, so a rate above 1e9 per second acts as 1e9 per second. [`Limiter::unlimited`]
/// (or a rate of `f64::INFINITY`) allows everything; a rate of zero only spends the tokens the
/// bucket holds, and never earns more.
///
/// # Coming from Go
///
/// Mirrors `golang.org/x/time/rate.Limiter`:
///
/// | Go | ctxkit |
/// |---|---|
/// | `rate.NewLimiter(r, b)` | [`Limiter::new(r, b)`](Limiter::new) (an error for a negative or NaN rate, or burst 0 with a positive rate) |
/// | `rate.NewLimiter(rate.Inf, 0)` | [`Limiter::unlimited()`](Limiter::unlimited) |
/// | `Allow`, `AllowN(t, n)` | [`allow`](Limiter::allow), [`allow_n_at(t, n)`](Limiter::allow_n_at) |
/// | `Reserve`, `ReserveN(t, n)` (check `OK()`) | [`reserve`](Limiter::reserve), [`reserve_n_at(t, n)`](Limiter::reserve_n_at) (`None` for not OK) |
/// | `Wait(ctx)`, `WaitN(ctx, n)` | [`wait(&ctx)`](Limiter::wait), [`wait_n`](Limiter::wait_n), their `blocking_` forms, and [`wait_owned`](Limiter::wait_owned) / [`wait_n_owned`](Limiter::wait_n_owned) for `Arc<Limiter>` |
/// | `SetLimit`, `SetBurst` (and `…At`) | [`set_rate`](Limiter::set_rate), [`set_burst`](Limiter::set_burst) (and `_at`) |
/// | `Tokens`, `TokensAt` | [`tokens`](Limiter::tokens), [`tokens_at`](Limiter::tokens_at) |
///
/// Differences on purpose: a wait that cannot finish before the context's deadline fails with
/// a [`WaitError`] that *is* a deadline error (`is_deadline_exceeded()`; Go's is a plain
/// string, go#54541); a wait whose future is dropped gives its tokens back; canceled
/// reservations give back exactly the tokens they took, in whatever order they are canceled,
/// once nothing taken after them stands (Go gives back only what no later reservation
/// depends on, and a part of a reservation's tokens at once, which can over-admit: see
/// [`Reservation::cancel_at`]); a reservation made before a rate or burst change gives
/// nothing back after it; and when the clock passed to an `_at` method goes backwards, tokens
/// earned "in the future" are not kept (Go keeps them), since [`Instant`] never goes
/// backwards anyway.
///
/// # Examples
///
/// ```
/// use ctxkit::rate::Limiter;
///
/// let limiter = Limiter::new(5.0, 3).unwrap(); // 5 a second, bursts of 3
/// assert!(limiter.allow());
/// assert!(limiter.allow_n(2));
/// assert!(!limiter.allow(), "the burst is spent; the next token comes in 200 ms");
/// ```
pub struct Limiter {
    /// `zero` (invariant 1): changed by compare-exchange by every taker, canceller and setter.
    zero: AtomicU64,
    /// The sequence lock of the configuration below (invariant 2): odd while a setter runs.
    seq: AtomicU64,
    /// Nanoseconds per token; 0 = unlimited. Written only under `seq` (invariant 2).
    interval: AtomicU64,
    /// `burst · interval`, saturated. Written only under `seq`.
    tau: AtomicU64,
    /// Tokens the bucket holds at most. Written only under `seq`.
    burst: AtomicU32,
    /// 0, or the instant a zero rate froze the bucket's clock at. Written only under `seq`.
    frozen: AtomicU64,
    /// The rate as set, as `f64` bits. Written only under `seq`.
    rate: AtomicU64,
    /// Canceled reservations waiting to be uncovered (invariant 5). Locked only by cancellers
    /// and setters, before `seq` (see "Lock order").
    undo: Mutex<Remembered>,
}

impl Limiter {
    /// A limiter of `rate` tokens a second and bursts of up to `burst`, starting full.
    ///
    /// `rate` is any number that converts to `f64` without loss: an integer (`5`, `1_000`, of
    /// up to 32 bits), a fraction (`0.5`) or an `f32`. A `u64` or `usize` does not (it could
    /// lose precision, so it does not compile): write `rate as f64`.
    ///
    /// `f64::INFINITY` makes an unlimited limiter (Go's `rate.Inf`), which ignores `burst`. A
    /// rate of zero makes a limiter that spends its `burst` tokens and no more; with a burst of
    /// zero too, it allows nothing (except requests for zero tokens).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::rate::Limiter;
    ///
    /// let five_a_second = Limiter::new(5, 2).unwrap();
    /// let one_every_two_seconds = Limiter::new(0.5, 1).unwrap();
    /// let a_billion = Limiter::new(1e9, 1_000_000_000).unwrap();
    /// assert_eq!(five_a_second.rate(), 5.0);
    /// # drop((one_every_two_seconds, a_billion));
    ///
    /// let limiter = Limiter::new(0, 2).unwrap(); // a zero rate: two tokens, ever
    /// assert!(limiter.allow() && limiter.allow());
    /// assert!(!limiter.allow());
    /// assert!(Limiter::new(f64::INFINITY, 0).unwrap().allow_n(1_000));
    ///
    /// let from_config: u64 = 250;
    /// let limiter = Limiter::new(from_config as f64, 10).unwrap();
    /// # drop(limiter);
    /// ```
    ///
    /// A `u64` (or `usize`) rate needs that `as f64`:
    ///
    /// ```compile_fail,E0277
    /// let from_config: u64 = 250;
    /// // error: the trait bound `f64: From<u64>` is not satisfied
    /// let limiter = ctxkit::rate::Limiter::new(from_config, 10);
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a rate that is negative or NaN, and for a burst of zero with a
    /// positive finite rate (it could never allow an event).
    pub fn new(rate: impl Into<f64>, burst: u32) -> Result<Limiter, ConfigError> {
        Limiter::new_at(rate, burst, Instant::now())
    }

    /// [`Limiter::new`] on a clock of the caller's: `now` only matters for a zero rate, whose
    /// bucket's clock stands at `now` (the bucket starts full at any time).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Limiter;
    ///
    /// let t0 = Instant::now();
    /// let limiter = Limiter::new_at(10.0, 1, t0).unwrap();
    /// assert!(limiter.allow_at(t0));
    /// assert!(!limiter.allow_at(t0 + Duration::from_millis(99)));
    /// assert!(limiter.allow_at(t0 + Duration::from_millis(100)));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Limiter::new`].
    pub fn new_at(rate: impl Into<f64>, burst: u32, now: Instant) -> Result<Limiter, ConfigError> {
        let config = Config::new(rate.into(), burst, encode(now))?;
        Ok(Limiter {
            // Zero tokens at the clock's base, about a century ago: full now (invariant 1).
            zero: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            interval: AtomicU64::new(config.interval),
            tau: AtomicU64::new(config.tau),
            burst: AtomicU32::new(config.burst),
            frozen: AtomicU64::new(config.frozen),
            rate: AtomicU64::new(config.rate.to_bits()),
            undo: Mutex::new(Remembered::default()),
        })
    }

    /// [`Limiter::new_at`] for a key of a keyed limiter that has dropped keys (`keyed.rs`):
    /// its `zero` starts at `floor` (the latest `zero` of a key dropped), so its takes stand
    /// above those of every dropped bucket, as a take of the dropped bucket itself would have.
    /// A bucket dropped was full at the prune's instant, so this is a full bucket at that
    /// instant and after, as for a new limiter; only a decision at an earlier instant finds
    /// fewer tokens, no more than the dropped bucket would have held then.
    pub(crate) fn new_above(
        rate: f64,
        burst: u32,
        now: Instant,
        floor: u64,
    ) -> Result<Limiter, ConfigError> {
        let limiter = Limiter::new_at(rate, burst, now)?;
        let config = limiter.load_config();
        // A zero rate's buckets are dropped only unspent (they never refill): nothing to carry.
        if config.interval != 0 && config.frozen == 0 {
            // Not shared yet. Invariant 1: `floor` is a `zero`, at most `MAX_T`.
            limiter.zero.store(floor, Ordering::Relaxed);
        }
        Ok(limiter)
    }

    /// The bucket's state `zero` (invariant 1), for a keyed limiter dropping the bucket.
    pub(crate) fn zero(&self) -> u64 {
        self.snapshot().0
    }

    /// Whether the bucket is full at `now` and has been for `buckets` whole bucket times
    /// (`burst / rate` each), in whole nanoseconds: no `f64` rounding makes a bucket short of
    /// full by less than its resolution count as full. Always for an unlimited limiter.
    pub(crate) fn full_for_at(&self, now: Instant, buckets: u64) -> bool {
        let (zero, config) = self.snapshot();
        if config.interval == 0 {
            return true;
        }
        let held = config.clock(encode(now)).saturating_sub(zero);
        held >= config.tau.saturating_mul(buckets + 1)
    }

    /// A limiter that allows every event at once (Go's `rate.NewLimiter(rate.Inf, 0)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::rate::Limiter;
    ///
    /// let limiter = Limiter::unlimited();
    /// assert!(limiter.allow_n(u32::MAX));
    /// assert_eq!(limiter.rate(), f64::INFINITY);
    /// ```
    pub fn unlimited() -> Limiter {
        match Limiter::new(f64::INFINITY, 0) {
            Ok(limiter) => limiter,
            Err(_) => unreachable!("ctxkit::rate: an infinite rate is always valid"),
        }
    }

    // ===== the snapshot and the core =====

    /// The configuration's fields, each read once; consistent only inside the sequence lock
    /// (invariant 2).
    #[inline]
    fn load_config(&self) -> Config {
        Config {
            interval: self.interval.load(Ordering::Relaxed),
            tau: self.tau.load(Ordering::Relaxed),
            burst: self.burst.load(Ordering::Relaxed),
            frozen: self.frozen.load(Ordering::Relaxed),
            rate: f64::from_bits(self.rate.load(Ordering::Relaxed)),
        }
    }

    /// `zero` and the configuration, consistent with each other (invariant 2).
    #[inline]
    fn snapshot(&self) -> (u64, Config) {
        let (_, zero, config) = self.snapshot_epoch();
        (zero, config)
    }

    /// The epoch, `zero` and the configuration, consistent with each other (invariant 2).
    #[inline]
    fn snapshot_epoch(&self) -> (u64, u64, Config) {
        let mut backoff = Backoff::new();
        // Terminates: a setter keeps `seq` odd only for a few instructions (no user code).
        loop {
            let seq = self.seq.load(Ordering::Acquire);
            if seq & 1 == 0 {
                let zero = self.zero.load(Ordering::Relaxed);
                let config = self.load_config();
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == seq {
                    return (seq, zero, config);
                }
            }
            backoff.snooze();
        }
    }

    /// Locks `undo`: the first lock of the lock order, taken by cancellers and setters only.
    ///
    /// Nothing under this lock panics (an allocation failure aborts). Were it poisoned, the
    /// map would still hold whole entries (an insert or removal happens or does not), each
    /// safe to roll back or to forget, so the lock ignores poisoning (`sync::Mutex`).
    fn lock_undo(&self) -> MutexGuard<'_, Remembered> {
        self.undo.lock()
    }

    /// Takes `n` tokens at `now` (encoded), if `limit` allows: decides with `gcra::take` on a
    /// snapshot and commits the decision on the `zero` it was made from.
    #[inline]
    fn take(&self, now: u64, n: u32, limit: Limit) -> Result<Grant, Refusal> {
        // Terminates: each failed compare-exchange means another taker, canceller or setter
        // changed `zero` (lock-free progress), invariant 1.
        loop {
            let (epoch, zero, config) = self.snapshot_epoch();
            let take = gcra::take(zero, now, &config, n, limit)?;
            // Pushes this take on the stack of invariant 5 (`end > prev` unless nothing moves;
            // `end == prev` for an unlimited bucket, invariant 4, which stores nothing).
            if take.end == take.prev
                || self
                    .zero
                    .compare_exchange_weak(take.prev, take.end, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                return Ok(Grant { take, epoch });
            }
        }
    }

    /// Gives back the tokens of a reservation canceled at `now`, as far as invariant 5 allows:
    /// all of them, and those of every canceled reservation this uncovers, if it is the top of
    /// the stack of the current epoch; none yet if it is not the top (it is remembered until
    /// it is uncovered); none ever if the configuration changed since it was made, or its time
    /// to act has passed.
    fn cancel_grant(&self, grant: &Grant, now: u64) {
        if !grant.take.may_give_back_at(now) {
            return; // spares the lock: `gcra::undo` would decide `Nothing`
        }
        // Lock order: `undo` first; a setter holds it while `seq` is odd, so `seq` is even and
        // does not change while we hold it (invariant 5).
        let mut remembered = self.lock_undo();
        let (epoch, mut zero, config) = self.snapshot_epoch();
        if epoch != grant.epoch {
            // The configuration changed: `zero` was rewritten in the new units and `prev` is
            // meaningless now; the tokens stay spent (the safe side).
            return;
        }
        remembered.prune(config.cutoff(now));
        // Terminates in at most two rounds: a rollback's compare-exchange fails only when a
        // taker pushed on top, and then `zero` stays above this take's `end` for the rest of
        // the epoch (invariant 5), so the next decision is not a rollback.
        loop {
            let undo = gcra::undo(zero, now, &config, &grant.take, &remembered);
            if let Undo::RollBack { to } = undo {
                if let Err(actual) = self.zero.compare_exchange(
                    grant.take.end,
                    to,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    zero = actual;
                    continue;
                }
            }
            remembered.commit(&grant.take, undo);
            return;
        }
    }

    /// Replaces the configuration, keeping the tokens held at `now` (invariants 2 and 3).
    fn reconfigure(
        &self,
        now: u64,
        change: impl Fn(&Config) -> Result<Config, ConfigError>,
    ) -> Result<(), ConfigError> {
        // Lock order: `undo`, then `seq`. Holding `undo` makes this the only setter, so `seq`
        // is even here and nobody else makes it odd (invariant 2).
        let mut remembered = self.lock_undo();
        let seq = self.seq.load(Ordering::Relaxed);
        debug_assert_eq!(seq & 1, 0, "a setter runs without holding `undo`");
        self.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        // Only this thread writes the configuration now (invariant 2).
        let old = self.load_config();
        let new = match change(&old) {
            Ok(new) if new != old => new,
            unchanged => {
                // Nothing was written: the epoch goes on, and the reservations made in it can
                // still be rolled back (invariants 2 and 5).
                self.seq.store(seq, Ordering::Release);
                return unchanged.map(|_| ());
            }
        };
        // Terminates: takers' compare-exchanges are lock-free progress (invariant 3).
        loop {
            let zero = self.zero.load(Ordering::Acquire);
            let tokens = if old.interval == 0 {
                f64::from(new.burst)
            } else {
                old.tokens(zero, now)
            };
            let converted = if new.interval == 0 {
                zero
            } else {
                new.zero_for(tokens, now)
            };
            if self
                .zero
                .compare_exchange_weak(zero, converted, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        self.interval.store(new.interval, Ordering::Relaxed);
        self.tau.store(new.tau, Ordering::Relaxed);
        self.burst.store(new.burst, Ordering::Relaxed);
        self.frozen.store(new.frozen, Ordering::Relaxed);
        self.rate.store(new.rate.to_bits(), Ordering::Relaxed);
        // A new epoch: the remembered reservations' `prev`s are in the old units (invariant 5).
        remembered.clear();
        self.seq.store(seq + 2, Ordering::Release);
        Ok(())
    }

    // ===== configuration =====

    /// The rate, in tokens a second, as last set (`f64::INFINITY` for an unlimited limiter).
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = ctxkit::rate::Limiter::new(2.5, 1).unwrap();
    /// assert_eq!(limiter.rate(), 2.5);
    /// ```
    pub fn rate(&self) -> f64 {
        self.snapshot().1.rate
    }

    /// The burst: the most tokens the bucket holds.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = ctxkit::rate::Limiter::new(2.5, 4).unwrap();
    /// assert_eq!(limiter.burst(), 4);
    /// ```
    pub fn burst(&self) -> u32 {
        self.snapshot().1.burst
    }

    /// Changes the rate, keeping the tokens the bucket holds now (and the debt of queued
    /// reservations, which are not rescheduled). `rate` is a number as for [`Limiter::new`].
    ///
    /// A change starts a new configuration: reservations made before it give nothing back
    /// when canceled after it (see [`Reservation::cancel_at`]). Setting the rate it already
    /// has changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::rate::Limiter;
    ///
    /// let limiter = Limiter::new(1, 3).unwrap();
    /// limiter.set_rate(1_000).unwrap();
    /// assert!(limiter.allow_n(3), "the 3 tokens earned are kept");
    /// limiter.set_rate(0.5).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] as for [`Limiter::new`] (also when the burst is 0 and the new rate is
    /// positive); the limiter is then unchanged.
    pub fn set_rate(&self, rate: impl Into<f64>) -> Result<(), ConfigError> {
        self.set_rate_at(Instant::now(), rate)
    }

    /// [`set_rate`](Limiter::set_rate) at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Limiter;
    ///
    /// let t0 = Instant::now();
    /// let limiter = Limiter::new_at(10.0, 2, t0).unwrap();
    /// assert!(limiter.allow_n_at(t0, 2));
    /// limiter.set_rate_at(t0, 100.0).unwrap();
    /// assert!(limiter.allow_at(t0 + Duration::from_millis(10)));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`set_rate`](Limiter::set_rate).
    pub fn set_rate_at(&self, now: Instant, rate: impl Into<f64>) -> Result<(), ConfigError> {
        let (now, rate) = (encode(now), rate.into());
        self.reconfigure(now, |old| Config::new(rate, old.burst, now))
    }

    /// Changes the burst, keeping the tokens the bucket holds now (up to the new burst).
    ///
    /// A change starts a new configuration, as [`set_rate`](Limiter::set_rate) says; setting
    /// the burst it already has changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::rate::Limiter;
    ///
    /// let limiter = Limiter::new(1.0, 1).unwrap();
    /// limiter.set_burst(5).unwrap();
    /// assert_eq!(limiter.burst(), 5);
    /// assert!(limiter.allow());
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a burst of 0 while the rate is positive and finite; the limiter is
    /// then unchanged.
    pub fn set_burst(&self, burst: u32) -> Result<(), ConfigError> {
        self.set_burst_at(Instant::now(), burst)
    }

    /// [`set_burst`](Limiter::set_burst) at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Limiter;
    ///
    /// let t0 = Instant::now();
    /// let limiter = Limiter::new_at(10.0, 1, t0).unwrap();
    /// limiter.set_burst_at(t0, 3).unwrap();
    /// assert!(limiter.allow_at(t0), "one token earned, kept");
    /// assert!(limiter.allow_n_at(t0 + Duration::from_millis(300), 3));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`set_burst`](Limiter::set_burst).
    pub fn set_burst_at(&self, now: Instant, burst: u32) -> Result<(), ConfigError> {
        let now = encode(now);
        self.reconfigure(now, |old| {
            let mut new = Config::new(old.rate, burst, now)?;
            if old.frozen != 0 {
                new.frozen = old.frozen;
            }
            Ok(new)
        })
    }

    /// The tokens the bucket holds now: at most the burst, negative while reservations wait for
    /// tokens, `f64::INFINITY` when unlimited.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = ctxkit::rate::Limiter::new(1.0, 3).unwrap();
    /// assert_eq!(limiter.tokens(), 3.0);
    /// ```
    pub fn tokens(&self) -> f64 {
        self.tokens_at(Instant::now())
    }

    /// The tokens the bucket holds at `now` (Go's `TokensAt`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Limiter;
    ///
    /// let t0 = Instant::now();
    /// let limiter = Limiter::new_at(10.0, 3, t0).unwrap();
    /// assert!(limiter.allow_n_at(t0, 3));
    /// assert_eq!(limiter.tokens_at(t0 + Duration::from_millis(150)), 1.5);
    /// ```
    pub fn tokens_at(&self, now: Instant) -> f64 {
        let (zero, config) = self.snapshot();
        config.tokens(zero, encode(now))
    }

    // ===== allow =====

    /// Takes one token if the bucket holds one now; `false` otherwise (nothing is taken).
    ///
    /// Takes no lock: a clock read, a few atomic loads and one compare-exchange.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = ctxkit::rate::Limiter::new(1.0, 1).unwrap();
    /// assert!(limiter.allow());
    /// assert!(!limiter.allow());
    /// ```
    #[inline]
    pub fn allow(&self) -> bool {
        self.allow_n_at(Instant::now(), 1)
    }

    /// [`allow`](Limiter::allow) at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Limiter;
    ///
    /// let t0 = Instant::now();
    /// let limiter = Limiter::new_at(10.0, 1, t0).unwrap();
    /// assert!(limiter.allow_at(t0));
    /// assert!(!limiter.allow_at(t0));
    /// assert!(limiter.allow_at(t0 + Duration::from_millis(100)));
    /// ```
    pub fn allow_at(&self, now: Instant) -> bool {
        self.allow_n_at(now, 1)
    }

    /// Takes `n` tokens if the bucket holds `n` now; `false` otherwise, and always when `n`
    /// exceeds the burst (as Go). `allow_n(0)` is true unless reservations are queued.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = ctxkit::rate::Limiter::new(1.0, 3).unwrap();
    /// assert!(!limiter.allow_n(4), "more than the burst: never");
    /// assert!(limiter.allow_n(3));
    /// ```
    pub fn allow_n(&self, n: u32) -> bool {
        self.allow_n_at(Instant::now(), n)
    }

    /// [`allow_n`](Limiter::allow_n) at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Limiter;
    ///
    /// let t0 = Instant::now();
    /// let limiter = Limiter::new_at(10.0, 3, t0).unwrap();
    /// assert!(limiter.allow_n_at(t0, 2));
    /// assert!(!limiter.allow_n_at(t0, 2));
    /// assert!(limiter.allow_n_at(t0 + Duration::from_millis(100), 2));
    /// ```
    #[inline]
    pub fn allow_n_at(&self, now: Instant, n: u32) -> bool {
        self.take(encode(now), n, Limit::ReadyOnly).is_ok()
    }

    // ===== reserve =====

    /// Takes one token now, to be used after the returned [`Reservation`]'s delay; `None` if
    /// it can never come (the burst is 0, or the rate is 0 and the bucket is empty).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::rate::Limiter;
    ///
    /// let limiter = Limiter::new(10.0, 1).unwrap();
    /// assert_eq!(limiter.reserve().unwrap().delay(), Duration::ZERO);
    /// let r = limiter.reserve().unwrap();
    /// assert!(r.delay() > Duration::from_millis(50));
    /// r.cancel(); // not acting after all: the token goes back
    /// ```
    pub fn reserve(&self) -> Option<Reservation<'_>> {
        self.reserve_n_at(Instant::now(), 1)
    }

    /// Takes `n` tokens now, to be used after the returned [`Reservation`]'s delay; `None` if
    /// they can never come: `n` exceeds the burst, or the rate is 0 and the bucket holds fewer
    /// than `n` (Go's `OK() == false`).
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = ctxkit::rate::Limiter::new(10.0, 2).unwrap();
    /// assert!(limiter.reserve_n(3).is_none());
    /// assert_eq!(limiter.reserve_n(2).unwrap().tokens(), 2);
    /// ```
    pub fn reserve_n(&self, n: u32) -> Option<Reservation<'_>> {
        self.reserve_n_at(Instant::now(), n)
    }

    /// [`reserve_n`](Limiter::reserve_n) at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Limiter;
    ///
    /// let t0 = Instant::now();
    /// let limiter = Limiter::new_at(10.0, 2, t0).unwrap();
    /// assert_eq!(limiter.reserve_n_at(t0, 2).unwrap().time_to_act(), t0);
    /// let r = limiter.reserve_n_at(t0, 2).unwrap();
    /// assert_eq!(r.time_to_act(), t0 + Duration::from_millis(200));
    /// assert_eq!(r.delay_from(t0), Duration::from_millis(200));
    /// ```
    pub fn reserve_n_at(&self, now: Instant, n: u32) -> Option<Reservation<'_>> {
        let ticket = self.ticket(now, n)?;
        Some(Reservation {
            limiter: self,
            ticket,
        })
    }

    /// [`reserve`](Limiter::reserve) on an `Arc<Limiter>`: the reservation holds the `Arc`, so
    /// it borrows nothing and can be kept in a `'static` task or service beside the limiter.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ctxkit::rate::{Limiter, OwnedReservation};
    ///
    /// let limiter = Arc::new(Limiter::new(10.0, 1).unwrap());
    /// let r: OwnedReservation = limiter.clone().reserve_owned().unwrap();
    /// assert!(r.delay().is_zero());
    /// let later = std::thread::spawn(move || r.tokens()); // 'static: moves anywhere
    /// assert_eq!(later.join().unwrap(), 1);
    /// ```
    pub fn reserve_owned(self: Arc<Self>) -> Option<OwnedReservation> {
        self.reserve_n_owned_at(Instant::now(), 1)
    }

    /// [`reserve_n`](Limiter::reserve_n) on an `Arc<Limiter>`, as
    /// [`reserve_owned`](Limiter::reserve_owned).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ctxkit::rate::Limiter;
    ///
    /// let limiter = Arc::new(Limiter::new(10.0, 2).unwrap());
    /// assert!(limiter.clone().reserve_n_owned(3).is_none(), "above the burst");
    /// assert_eq!(limiter.reserve_n_owned(2).unwrap().tokens(), 2);
    /// ```
    pub fn reserve_n_owned(self: Arc<Self>, n: u32) -> Option<OwnedReservation> {
        self.reserve_n_owned_at(Instant::now(), n)
    }

    /// [`reserve_n_owned`](Limiter::reserve_n_owned) at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Limiter;
    ///
    /// let t0 = Instant::now();
    /// let limiter = Arc::new(Limiter::new_at(10.0, 1, t0).unwrap());
    /// let _first = limiter.clone().reserve_n_owned_at(t0, 1).unwrap();
    /// let second = limiter.clone().reserve_n_owned_at(t0, 1).unwrap();
    /// assert_eq!(second.time_to_act(), t0 + Duration::from_millis(100));
    /// second.cancel_at(t0); // the last take: its token is back
    /// assert_eq!(limiter.tokens_at(t0), 0.0);
    /// ```
    pub fn reserve_n_owned_at(self: Arc<Self>, now: Instant, n: u32) -> Option<OwnedReservation> {
        let ticket = self.ticket(now, n)?;
        Some(OwnedReservation {
            limiter: self,
            ticket,
        })
    }

    /// Takes `n` tokens at `now` for a reservation, whenever they come.
    fn ticket(&self, now: Instant, n: u32) -> Option<Ticket> {
        let grant = self.take(encode(now), n, Limit::Any).ok()?;
        Some(Ticket { n, grant })
    }

    // ===== wait =====

    /// Reserves `n` tokens for a wait at `now`: Go's `WaitN` up to its sleep.
    fn start_wait(&self, ctx: &Context, n: u32, now: Instant) -> Result<Ticket, WaitError> {
        if let Some(error) = ctx.err() {
            // A request the burst can never hold is reported as such, as `take` would.
            let (_, config) = self.snapshot();
            if config.interval != 0 && n > config.burst {
                return Err(WaitError::exceeds_burst(n, config.burst));
            }
            return Err(WaitError::context(error));
        }
        let now_t = encode(now);
        let deadline = ctx.deadline().map(encode);
        let limit = match deadline {
            Some(deadline) => Limit::Within(deadline.saturating_sub(now_t)),
            None => Limit::Any,
        };
        match self.take(now_t, n, limit) {
            Ok(grant) => Ok(Ticket { n, grant }),
            Err(Refusal::ExceedsBurst(burst)) => Err(WaitError::exceeds_burst(n, burst)),
            Err(Refusal::Never) if deadline.is_none() => Err(WaitError::never(n)),
            Err(Refusal::Never | Refusal::TooLate) => Err(WaitError::would_exceed_deadline(n)),
        }
    }

    /// Waits for one token: [`wait_n(ctx, 1)`](Limiter::wait_n).
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use ctxkit::{rate::Limiter, Context};
    ///
    /// let limiter = Limiter::new(100.0, 1).unwrap();
    /// let ctx = Context::background();
    /// for _ in 0..3 {
    ///     limiter.wait(&ctx).await.unwrap(); // 0, 10 and 20 ms
    /// }
    /// # });
    /// ```
    ///
    /// # Errors
    ///
    /// As [`wait_n`](Limiter::wait_n).
    ///
    /// # Cancel safety
    ///
    /// As [`wait_n`](Limiter::wait_n): dropping the future gives the token back.
    pub async fn wait(&self, ctx: &Context) -> Result<(), WaitError> {
        self.wait_n(ctx, 1).await
    }

    /// Waits until `n` tokens are there and takes them, unless `ctx` is done first.
    ///
    /// Fails at once, sleeping for nothing and spending nothing, when `n` exceeds the burst,
    /// when `ctx` is already done, and when `ctx`'s deadline comes before the tokens would.
    /// Otherwise it reserves the tokens (as [`reserve_n`](Limiter::reserve_n)) and sleeps
    /// until their time (precisely: on the `ctxkit-timer` thread until a fraction of a
    /// millisecond before, then yielding to the executor) or until `ctx` is done, whichever
    /// comes first. If `ctx` is done first, the wait cancels its reservation
    /// ([`Reservation::cancel`]) and returns the context's error: the tokens come back at
    /// once if no take after it is still held, else as soon as the takes after it are
    /// canceled too, so when every waiter of a queue is canceled, in any order, the bucket
    /// gets every token back. Needs no async runtime. An unlimited limiter returns at once for
    /// any `n`.
    ///
    /// The future borrows the limiter and the context; [`wait_n_owned`](Limiter::wait_n_owned)
    /// is the same wait for an `Arc<Limiter>` and an owned [`Context`], as a `'static`
    /// future.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use std::time::Duration;
    /// use ctxkit::{rate::Limiter, Context};
    ///
    /// let limiter = Limiter::new(1.0, 3).unwrap();
    /// limiter.wait_n(&Context::background(), 3).await.unwrap();
    /// // The next token comes in a second: too late for this deadline.
    /// let ctx = Context::background().with_timeout(Duration::from_millis(100));
    /// let err = limiter.wait_n(&ctx, 1).await.unwrap_err();
    /// assert!(err.is_deadline_exceeded());
    /// # });
    /// ```
    ///
    /// # Errors
    ///
    /// A [`WaitError`]: the context's error; a deadline error when the deadline would come
    /// first; "exceeds the limiter's burst" when `n` is above the burst; "can never be
    /// satisfied" when the rate is zero, the bucket holds fewer than `n` and `ctx` has no
    /// deadline.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe. Dropping the future before it completes (a `select!` that picked another
    /// branch, an aborted task, a runtime shut down under it) cancels its reservation at the
    /// instant it is dropped, exactly as a done context does: the tokens come back as
    /// [`Reservation::cancel`] says (not if their time had already come). Dropped before
    /// its first poll, it took nothing.
    pub async fn wait_n(&self, ctx: &Context, n: u32) -> Result<(), WaitError> {
        Waiting::new(self, ctx.clone(), n).await
    }

    /// [`wait`](Limiter::wait) on an `Arc<Limiter>` with an owned [`Context`]:
    /// [`wait_n_owned(ctx, 1)`](Limiter::wait_n_owned).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ctxkit::{rate::Limiter, Context};
    ///
    /// let limiter = Arc::new(Limiter::new(100.0, 1).unwrap());
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// // The task owns everything it needs: an `Arc<Limiter>` and a `Context`.
    /// let task = rt.spawn(limiter.clone().wait_owned(Context::background()));
    /// rt.block_on(task).unwrap().unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`wait_n`](Limiter::wait_n).
    ///
    /// # Panics
    ///
    /// As [`OwnedWait`]: if polled again after it completed.
    ///
    /// # Cancel safety
    ///
    /// As [`wait_n`](Limiter::wait_n): dropping the future gives the token back.
    pub fn wait_owned(self: Arc<Self>, ctx: Context) -> OwnedWait {
        self.wait_n_owned(ctx, 1)
    }

    /// [`wait_n`](Limiter::wait_n) on an `Arc<Limiter>` with an owned [`Context`]: the same
    /// wait, by the same rules, as a named future that borrows nothing.
    ///
    /// [`OwnedWait`] is `'static + Send + Unpin`: a tower service can return it from `call`
    /// (or keep it in its state between `poll_ready` calls), and a task can be spawned on it,
    /// with no wrapper and no boxing. Like every future it does nothing until polled: the
    /// tokens are reserved at its first poll, not when it is made.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use ctxkit::{rate::Limiter, Context};
    ///
    /// // A handler that must hold its request's rate-limit wait in a 'static future.
    /// fn admit(limiter: &Arc<Limiter>, request: &Context) -> ctxkit::rate::OwnedWait {
    ///     limiter.clone().wait_n_owned(request.clone(), 1)
    /// }
    ///
    /// let limiter = Arc::new(Limiter::new(1.0, 1).unwrap());
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let request = Context::background().with_timeout(Duration::from_millis(100));
    /// rt.block_on(admit(&limiter, &request)).unwrap(); // the burst's token
    /// // The next one comes in a second, after this request's deadline: refused at once.
    /// let err = rt.block_on(rt.spawn(admit(&limiter, &request))).unwrap().unwrap_err();
    /// assert!(err.is_deadline_exceeded());
    /// ```
    ///
    /// # Errors
    ///
    /// As [`wait_n`](Limiter::wait_n).
    ///
    /// # Panics
    ///
    /// As [`OwnedWait`]: if polled again after it completed.
    ///
    /// # Cancel safety
    ///
    /// As [`wait_n`](Limiter::wait_n): dropping the future gives the tokens back by the rules
    /// of [`Reservation::cancel`]; dropped before its first poll, it took nothing.
    pub fn wait_n_owned(self: Arc<Self>, ctx: Context, n: u32) -> OwnedWait {
        OwnedWait {
            inner: Waiting::new(self, ctx, n),
        }
    }

    /// Blocks the thread until a token is there: [`blocking_wait_n(ctx, 1)`](Limiter::blocking_wait_n).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{rate::Limiter, Context};
    ///
    /// let limiter = Limiter::new(100.0, 1).unwrap();
    /// for _ in 0..3 {
    ///     limiter.blocking_wait(&Context::background()).unwrap(); // 0, 10 and 20 ms
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`wait_n`](Limiter::wait_n).
    ///
    /// # Blocking
    ///
    /// As [`blocking_wait_n`](Limiter::blocking_wait_n).
    pub fn blocking_wait(&self, ctx: &Context) -> Result<(), WaitError> {
        self.blocking_wait_n(ctx, 1)
    }

    /// Blocks the thread until `n` tokens are there and takes them, unless `ctx` is done
    /// first: the blocking form of [`wait_n`](Limiter::wait_n), with the same rules.
    ///
    /// It has no owned form: a blocked thread keeps its borrows alive for the whole wait, so
    /// `limiter.blocking_wait_n(&ctx, n)` on an `Arc<Limiter>` already works on any thread.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::{rate::Limiter, Context};
    ///
    /// let limiter = std::sync::Arc::new(Limiter::new(1.0, 1).unwrap());
    /// limiter.blocking_wait_n(&Context::background(), 1).unwrap();
    /// let ctx = Context::background().with_cancel();
    /// let waiter = {
    ///     let (limiter, ctx) = (limiter.clone(), ctx.clone());
    ///     std::thread::spawn(move || limiter.blocking_wait(&ctx))
    /// };
    /// std::thread::sleep(Duration::from_millis(10));
    /// ctx.cancel();
    /// assert!(waiter.join().unwrap().unwrap_err().is_canceled());
    /// ```
    ///
    /// # Errors
    ///
    /// As [`wait_n`](Limiter::wait_n).
    ///
    /// # Blocking
    ///
    /// Parks the thread until shortly before the tokens' time, then spins (the last
    /// 150 µs) to return on time. Wakes at once when `ctx` is done (canceled from any thread,
    /// or its deadline), and then cancels its reservation as [`wait_n`](Limiter::wait_n)
    /// does, so the tokens come back by the same rules. Do not call it inside async code;
    /// await [`wait_n`](Limiter::wait_n) there.
    pub fn blocking_wait_n(&self, ctx: &Context, n: u32) -> Result<(), WaitError> {
        let ticket = self.start_wait(ctx, n, Instant::now())?;
        let at = ticket.time_to_act();
        // Also gives the tokens back if the sleep unwinds.
        let guard = CancelOnDrop {
            limiter: self,
            ticket: Some(ticket),
        };
        match sleep::blocking_sleep_until(ctx, at) {
            Ok(()) => {
                guard.disarm();
                Ok(())
            }
            Err(error) => Err(WaitError::context(error)), // `guard` gives the tokens back
        }
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (zero, config) = self.snapshot();
        f.debug_struct("Limiter")
            .field("rate", &config.rate)
            .field("burst", &config.burst)
            .field("tokens", &config.tokens(zero, encode(Instant::now())))
            .finish()
    }
}

/// Cancels a blocking wait's reservation unless disarmed (the context's error, or an unwind).
struct CancelOnDrop<'a> {
    limiter: &'a Limiter,
    ticket: Option<Ticket>,
}

impl CancelOnDrop<'_> {
    fn disarm(mut self) {
        self.ticket = None;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            ticket.cancel_at(self.limiter, Instant::now());
        }
    }
}

// ===== the async wait, borrowed or owned =====

/// The async wait of [`Limiter::wait_n`] (over `&Limiter`) and of [`OwnedWait`] (over
/// `Arc<Limiter>`): one state machine for both forms.
struct Waiting<L: Deref<Target = Limiter>> {
    state: WaitState<L>,
}

enum WaitState<L> {
    /// Not polled yet: nothing taken.
    Start { limiter: L, ctx: Context, n: u32 },
    /// Tokens reserved; sleeping until their time or until the context is done.
    Sleeping {
        limiter: L,
        ticket: Ticket,
        sleep: SleepUntil,
    },
    /// The output was returned.
    Finished,
}

impl<L: Deref<Target = Limiter>> Waiting<L> {
    fn new(limiter: L, ctx: Context, n: u32) -> Self {
        Waiting {
            state: WaitState::Start { limiter, ctx, n },
        }
    }

    /// Reserves the tokens (the first poll): `Start` becomes `Sleeping`, or the wait fails.
    fn start(&mut self) -> Result<(), WaitError> {
        if let WaitState::Start { limiter, ctx, n } =
            mem::replace(&mut self.state, WaitState::Finished)
        {
            let ticket = limiter.start_wait(&ctx, n, Instant::now())?;
            let sleep = SleepUntil::new(ctx, ticket.time_to_act());
            self.state = WaitState::Sleeping {
                limiter,
                ticket,
                sleep,
            };
        }
        Ok(())
    }

    /// Ends the sleep: keeps the tokens, or gives them back when the context was done first.
    fn finish(&mut self, slept: Result<(), crate::context::Error>) -> Result<(), WaitError> {
        if let WaitState::Sleeping {
            limiter, ticket, ..
        } = mem::replace(&mut self.state, WaitState::Finished)
        {
            if slept.is_err() {
                ticket.cancel_at(&limiter, Instant::now());
            }
        }
        slept.map_err(WaitError::context)
    }
}

impl<L: Deref<Target = Limiter> + Unpin> Future for Waiting<L> {
    type Output = Result<(), WaitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // Terminates: at most two rounds, `Start` then `Sleeping`.
        loop {
            match &mut this.state {
                WaitState::Start { .. } => {
                    if let Err(error) = this.start() {
                        return Poll::Ready(Err(error));
                    }
                }
                WaitState::Sleeping { sleep, .. } => {
                    let slept = match Pin::new(sleep).poll(cx) {
                        Poll::Ready(slept) => slept,
                        Poll::Pending => return Poll::Pending,
                    };
                    return Poll::Ready(this.finish(slept));
                }
                WaitState::Finished => {
                    panic!("ctxkit::rate: a limiter wait polled after it completed")
                }
            }
        }
    }
}

impl<L: Deref<Target = Limiter>> Drop for Waiting<L> {
    fn drop(&mut self) {
        // Cancel safety: a wait dropped mid-sleep gives its tokens back.
        if let WaitState::Sleeping {
            limiter, ticket, ..
        } = &self.state
        {
            ticket.cancel_at(limiter, Instant::now());
        }
    }
}

// ===== impl OwnedWait =====

/// The future of [`Limiter::wait_owned`] and [`Limiter::wait_n_owned`]: a limiter wait that
/// owns its `Arc<Limiter>` and its [`Context`].
///
/// `'static + Send + Unpin`, so a tower service can return it from `call`, or keep it in its
/// own state, and a task can be spawned on it, with no wrapper. Completes with `Ok(())` once
/// the tokens are taken, or with the [`WaitError`] of [`Limiter::wait_n`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use ctxkit::{rate::{Limiter, OwnedWait}, Context};
///
/// let limiter = Arc::new(Limiter::new(100.0, 1).unwrap());
/// let waits: Vec<OwnedWait> = (0..3)
///     .map(|_| limiter.clone().wait_owned(Context::background()))
///     .collect();
/// drop(limiter); // the waits hold it
/// futures::executor::block_on(async {
///     for wait in waits {
///         wait.await.unwrap(); // 0, 10 and 20 ms
///     }
/// });
/// ```
///
/// # Panics
///
/// If polled again after it completed (as `async fn` futures do).
///
/// # Cancel safety
///
/// As [`Limiter::wait_n`]: dropping it mid-sleep gives the tokens back by the rules of
/// [`Reservation::cancel`]; dropped before its first poll, it took nothing.
#[must_use = "futures do nothing unless awaited"]
pub struct OwnedWait {
    inner: Waiting<Arc<Limiter>>,
}

impl Future for OwnedWait {
    type Output = Result<(), WaitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

impl fmt::Debug for OwnedWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("OwnedWait");
        match &self.inner.state {
            WaitState::Start { n, .. } => d.field("state", &"not polled").field("tokens", n),
            WaitState::Sleeping { ticket, .. } => d
                .field("state", &"sleeping")
                .field("tokens", &ticket.n)
                .field("delay", &ticket.delay_from(Instant::now())),
            WaitState::Finished => d.field("state", &"finished"),
        }
        .finish()
    }
}

// ===== impl Reservation =====

/// What a reservation holds besides its limiter: the tokens and the take.
#[derive(Clone, Copy, Debug)]
struct Ticket {
    n: u32,
    grant: Grant,
}

impl Ticket {
    fn time_to_act(&self) -> Instant {
        time::decode(self.grant.take.at.max(1))
    }

    fn delay_from(&self, now: Instant) -> Duration {
        time::until(self.grant.take.at, encode(now))
    }

    /// Gives the tokens back to `limiter`, the one they were taken from.
    fn cancel_at(&self, limiter: &Limiter, now: Instant) {
        limiter.cancel_grant(&self.grant, encode(now));
    }
}

/// Tokens taken from a [`Limiter`] now, to be used at [`time_to_act`](Reservation::time_to_act).
///
/// Made by [`Limiter::reserve`] and [`Limiter::reserve_n`]. Wait out its
/// [`delay`](Reservation::delay), then act; or [`cancel`](Reservation::cancel) it to give the
/// tokens back. Dropping it does neither: the tokens stay spent.
///
/// # Coming from Go
///
/// Go's `*rate.Reservation`. `OK() == false` is `None` from `reserve_n`; `Delay`, `DelayFrom`,
/// `Cancel`, `CancelAt` are [`delay`](Reservation::delay),
/// [`delay_from`](Reservation::delay_from), [`cancel`](Reservation::cancel),
/// [`cancel_at`](Reservation::cancel_at).
///
/// # `Reservation` vs `OwnedReservation`
///
/// A `Reservation` borrows its limiter, so it cannot outlive it nor sit in the same struct as
/// the `Arc` it came from: a `'static` task or a tower service that reserves in one poll and
/// acts or cancels in a later one cannot keep it. [`OwnedReservation`] (from
/// [`Limiter::reserve_owned`]) holds an `Arc<Limiter>` instead and behaves the same way.
///
/// # Examples
///
/// ```
/// use ctxkit::rate::Limiter;
///
/// let limiter = Limiter::new(10.0, 1).unwrap();
/// let r = limiter.reserve().unwrap();
/// std::thread::sleep(r.delay()); // zero: the bucket was full
/// // … act …
/// ```
#[must_use = "a reservation spends tokens: wait out its delay and act, or cancel it"]
pub struct Reservation<'a> {
    limiter: &'a Limiter,
    ticket: Ticket,
}

impl Reservation<'_> {
    /// How many tokens it took.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = ctxkit::rate::Limiter::new(10.0, 3).unwrap();
    /// assert_eq!(limiter.reserve_n(2).unwrap().tokens(), 2);
    /// ```
    pub fn tokens(&self) -> u32 {
        self.ticket.n
    }

    /// When the tokens may be used.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    ///
    /// let before = Instant::now();
    /// let limiter = ctxkit::rate::Limiter::new(10.0, 1).unwrap();
    /// assert!(limiter.reserve().unwrap().time_to_act() >= before);
    /// ```
    pub fn time_to_act(&self) -> Instant {
        self.ticket.time_to_act()
    }

    /// How long from now until the tokens may be used (zero if they may be used now).
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = ctxkit::rate::Limiter::new(10.0, 1).unwrap();
    /// assert!(limiter.reserve().unwrap().delay().is_zero());
    /// ```
    pub fn delay(&self) -> Duration {
        self.delay_from(Instant::now())
    }

    /// How long from `now` until the tokens may be used.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let t0 = Instant::now();
    /// let limiter = ctxkit::rate::Limiter::new_at(10.0, 1, t0).unwrap();
    /// let _first = limiter.reserve_n_at(t0, 1).unwrap();
    /// let r = limiter.reserve_n_at(t0, 1).unwrap();
    /// assert_eq!(r.delay_from(t0), Duration::from_millis(100));
    /// assert_eq!(r.delay_from(t0 + Duration::from_secs(1)), Duration::ZERO);
    /// ```
    pub fn delay_from(&self, now: Instant) -> Duration {
        self.ticket.delay_from(now)
    }

    /// Gives the tokens back: the holder will not act. [`cancel_at`](Reservation::cancel_at)
    /// at [`Instant::now`], which says what comes back and when.
    ///
    /// # Examples
    ///
    /// ```
    /// let limiter = ctxkit::rate::Limiter::new(1.0, 1).unwrap();
    /// assert!(limiter.allow());
    /// let r = limiter.reserve().unwrap(); // due in a second
    /// assert!(!limiter.allow());
    /// r.cancel();
    /// assert!(limiter.tokens() > -0.01, "the token is back");
    /// ```
    pub fn cancel(self) {
        self.cancel_at(Instant::now());
    }

    /// Gives the tokens back at `now`: the holder will not act.
    ///
    /// What comes back, and when:
    ///
    /// * **Nothing, ever**, if `now` is after [`time_to_act`](Reservation::time_to_act): the
    ///   tokens count as used (as in Go). Nothing either for a reservation of an unlimited
    ///   limiter or of zero tokens, which took nothing.
    /// * **All its tokens, at once**, if it is the last take still standing: nothing taken
    ///   after it is left (or all of that was canceled already). The limiter is then exactly as
    ///   if the reservation had never been made (go#69419).
    /// * **All its tokens, later**, if tokens were taken after it and are still held: it is
    ///   remembered, and its tokens come back the moment every take after it has been canceled
    ///   too, in any order. So canceling all of a queue of waits, in any order, gives every
    ///   token back. Until then the tokens stay spent, and they stay spent for good if an
    ///   [`allow`](Limiter::allow) or a reservation that is not canceled was made after it:
    ///   the times promised to those were computed with this reservation's tokens gone.
    /// * **Nothing, ever**, if [`set_rate`](Limiter::set_rate) or
    ///   [`set_burst`](Limiter::set_burst) changed the limiter since the reservation was made
    ///   (a call that changes nothing does not count): the queued tokens were converted to the
    ///   new configuration, and this reservation's share of them is no longer known.
    ///
    /// A remembered reservation costs the limiter a few bytes until its tokens come back, the
    /// configuration changes, or a whole bucket's time (`burst / rate`) has passed since its
    /// tokens' time, when the bucket is full again either way and it is forgotten. So a limiter
    /// remembers at most `burst + 1` reservations plus one per token reserved ahead of now.
    ///
    /// # Coming from Go
    ///
    /// Go's `CancelAt` gives a reservation with later ones behind it part of its tokens back
    /// at once (its tokens less those reserved after it). ctxkit gives nothing back at once
    /// then, and everything once the later ones are canceled: Go's partial give-back lets the
    /// limiter admit more than `burst + rate · t` when the cancel's instant is earlier than a
    /// take made after the reservation (two threads racing), and the tokens it leaves behind
    /// can never come back. Go's tests `TestCancel1Token`, `TestCancelMulti` and
    /// `TestReserveJumpBackCancel` expect the partial give-back; `tests/go_rate.rs` says where
    /// ctxkit's answer differs.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Limiter;
    ///
    /// let t0 = Instant::now();
    /// let limiter = Limiter::new_at(10.0, 1, t0).unwrap();
    /// let before = limiter.tokens_at(t0);
    /// let first = limiter.reserve_n_at(t0, 1).unwrap(); // acts at t0
    /// let second = limiter.reserve_n_at(t0, 1).unwrap(); // at t0 + 100 ms
    /// let third = limiter.reserve_n_at(t0, 1).unwrap(); // at t0 + 200 ms
    /// second.cancel_at(t0); // `third` is after it: nothing back yet
    /// assert_eq!(limiter.tokens_at(t0), before - 3.0);
    /// third.cancel_at(t0); // the last one: its token and `second`'s come back
    /// assert_eq!(limiter.tokens_at(t0), before - 1.0);
    /// first.cancel_at(t0 + Duration::from_millis(1)); // too late: it acted at t0
    /// assert_eq!(limiter.tokens_at(t0), before - 1.0);
    /// ```
    pub fn cancel_at(self, now: Instant) {
        self.ticket.cancel_at(self.limiter, now);
    }
}

impl fmt::Debug for Reservation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("tokens", &self.ticket.n)
            .field("delay", &self.delay())
            .finish()
    }
}

// ===== impl OwnedReservation =====

/// A [`Reservation`] that holds an `Arc<Limiter>` instead of borrowing it.
///
/// Made by [`Limiter::reserve_owned`], [`Limiter::reserve_n_owned`] and
/// [`Limiter::reserve_n_owned_at`]. It is `'static`, so a task or a tower service can keep it
/// across awaits (reserve in `poll_ready`, act or cancel in `call`) next to its own
/// `Arc<Limiter>`. Everything else is as for a [`Reservation`]: wait out its delay and act, or
/// cancel it to give the tokens back; dropping it does neither.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use ctxkit::rate::{Limiter, OwnedReservation};
///
/// /// Reserves for a request and answers "retry after" instead of queueing it too long.
/// fn admit(limiter: &Arc<Limiter>) -> Result<OwnedReservation, Duration> {
///     let r = limiter.clone().reserve_owned().expect("burst of at least 1");
///     match r.delay() {
///         delay if delay > Duration::from_millis(50) => {
///             r.cancel();
///             Err(delay)
///         }
///         _ => Ok(r),
///     }
/// }
///
/// let limiter = Arc::new(Limiter::new(1.0, 1).unwrap());
/// let first = admit(&limiter).unwrap(); // acts now
/// assert!(admit(&limiter).is_err(), "the next token is a second away");
/// drop(first); // acted: the token stays spent
/// ```
#[must_use = "a reservation spends tokens: wait out its delay and act, or cancel it"]
pub struct OwnedReservation {
    limiter: Arc<Limiter>,
    ticket: Ticket,
}

impl OwnedReservation {
    /// How many tokens it took: as [`Reservation::tokens`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let limiter = Arc::new(ctxkit::rate::Limiter::new(10.0, 3).unwrap());
    /// assert_eq!(limiter.reserve_n_owned(2).unwrap().tokens(), 2);
    /// ```
    pub fn tokens(&self) -> u32 {
        self.ticket.n
    }

    /// When the tokens may be used: as [`Reservation::time_to_act`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Instant;
    ///
    /// let before = Instant::now();
    /// let limiter = Arc::new(ctxkit::rate::Limiter::new(10.0, 1).unwrap());
    /// assert!(limiter.reserve_owned().unwrap().time_to_act() >= before);
    /// ```
    pub fn time_to_act(&self) -> Instant {
        self.ticket.time_to_act()
    }

    /// How long from now until the tokens may be used: as [`Reservation::delay`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let limiter = Arc::new(ctxkit::rate::Limiter::new(10.0, 1).unwrap());
    /// assert!(limiter.reserve_owned().unwrap().delay().is_zero());
    /// ```
    pub fn delay(&self) -> Duration {
        self.delay_from(Instant::now())
    }

    /// How long from `now` until the tokens may be used: as [`Reservation::delay_from`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::{Duration, Instant};
    ///
    /// let t0 = Instant::now();
    /// let limiter = Arc::new(ctxkit::rate::Limiter::new_at(10.0, 1, t0).unwrap());
    /// let _first = limiter.clone().reserve_n_owned_at(t0, 1).unwrap();
    /// let r = limiter.reserve_n_owned_at(t0, 1).unwrap();
    /// assert_eq!(r.delay_from(t0), Duration::from_millis(100));
    /// ```
    pub fn delay_from(&self, now: Instant) -> Duration {
        self.ticket.delay_from(now)
    }

    /// Gives the tokens back now: as [`Reservation::cancel`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let limiter = Arc::new(ctxkit::rate::Limiter::new(1.0, 1).unwrap());
    /// assert!(limiter.allow());
    /// let r = limiter.clone().reserve_owned().unwrap(); // due in a second
    /// r.cancel();
    /// assert!(limiter.tokens() > -0.01, "the token is back");
    /// ```
    pub fn cancel(self) {
        self.cancel_at(Instant::now());
    }

    /// Gives the tokens back at `now`, by the rules of [`Reservation::cancel_at`]: all of
    /// them if nothing taken after it still stands (at once, or once the later takes are
    /// canceled too), nothing once its time to act has passed or the limiter's configuration
    /// changed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Instant;
    ///
    /// let t0 = Instant::now();
    /// let limiter = Arc::new(ctxkit::rate::Limiter::new_at(10.0, 1, t0).unwrap());
    /// let first = limiter.clone().reserve_n_owned_at(t0, 1).unwrap();
    /// let second = limiter.clone().reserve_n_owned_at(t0, 1).unwrap();
    /// first.cancel_at(t0); // `second` is after it: nothing back yet
    /// assert_eq!(limiter.tokens_at(t0), -1.0);
    /// second.cancel_at(t0); // the last one: both tokens come back
    /// assert_eq!(limiter.tokens_at(t0), 1.0);
    /// ```
    pub fn cancel_at(self, now: Instant) {
        self.ticket.cancel_at(&self.limiter, now);
    }
}

impl fmt::Debug for OwnedReservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedReservation")
            .field("tokens", &self.ticket.n)
            .field("delay", &self.delay())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn burst_then_rate_on_a_fake_clock() {
        let t0 = Instant::now();
        let lim = Limiter::new_at(10.0, 3, t0).unwrap();
        assert!(lim.allow_n_at(t0, 3));
        assert!(!lim.allow_at(t0));
        assert!(!lim.allow_at(t0 + 99 * MS));
        assert!(lim.allow_at(t0 + 100 * MS));
        assert!(
            lim.allow_n_at(t0 + 10_000 * MS, 3),
            "refilled, capped at burst"
        );
        assert!(!lim.allow_at(t0 + 10_000 * MS));
    }

    #[test]
    fn cancel_last_gives_back_exactly() {
        let t0 = Instant::now();
        let lim = Limiter::new_at(7.0, 5, t0).unwrap();
        assert!(lim.allow_n_at(t0, 4));
        let before = lim.tokens_at(t0 + 3 * MS);
        let r = lim.reserve_n_at(t0 + 3 * MS, 5).unwrap();
        r.cancel_at(t0 + 3 * MS);
        assert_eq!(lim.tokens_at(t0 + 3 * MS), before);
    }

    /// Reserves `count` single tokens at `now`.
    fn queue(lim: &Limiter, now: Instant, count: usize) -> Vec<Reservation<'_>> {
        (0..count)
            .map(|_| lim.reserve_n_at(now, 1).unwrap())
            .collect()
    }

    fn remembered(lim: &Limiter) -> usize {
        lim.lock_undo().len()
    }

    #[test]
    fn remembered_cancels_are_uncovered_in_one_go() {
        let t0 = Instant::now();
        let lim = Limiter::new_at(1000.0, 2, t0).unwrap();
        assert!(lim.allow_n_at(t0, 2));
        let mut waits = queue(&lim, t0, 1000);
        let last = waits.pop().unwrap();
        for w in waits {
            w.cancel_at(t0);
        }
        assert_eq!(remembered(&lim), 999);
        assert_eq!(lim.tokens_at(t0), -1000.0);
        last.cancel_at(t0);
        assert_eq!(remembered(&lim), 0);
        assert_eq!(lim.tokens_at(t0), 0.0);
    }

    #[test]
    fn remembered_cancels_are_pruned_to_the_documented_bound() {
        let t0 = Instant::now();
        let lim = Limiter::new_at(1000.0, 2, t0).unwrap(); // 1 ms a token
        assert!(lim.allow_n_at(t0, 2));
        let mut waits = queue(&lim, t0, 1000);
        // The last acts at t0 + 1 s and keeps the others' tokens spent while it stands.
        let keep = waits.pop().unwrap();
        // Cancel in arrival order, each at its own instant just before its time to act.
        for (k, w) in waits.into_iter().enumerate() {
            let now = w.time_to_act() - Duration::from_micros(1);
            w.cancel_at(now);
            // The module docs' bound: burst + 1 + tokens reserved beyond `now`.
            let queued = (-lim.tokens_at(now)).max(0.0);
            let bound = 2.0 + 1.0 + queued;
            assert!(
                remembered(&lim) as f64 <= bound,
                "after cancel #{k}: {} remembered, bound {bound}",
                remembered(&lim)
            );
            assert!(remembered(&lim) <= 3, "only the last bucketful is kept");
        }
        assert!(
            remembered(&lim) >= 1,
            "the latest ones are still remembered"
        );
        keep.cancel_at(t0 + 999 * MS);
        assert_eq!(remembered(&lim), 0);
        // The bucket is full at t0 + 1 s either way, as if nothing had been reserved.
        assert_eq!(lim.tokens_at(t0 + 1000 * MS), 2.0);
    }

    #[test]
    fn a_setter_that_changes_something_forgets_remembered_cancels() {
        let t0 = Instant::now();
        let lim = Limiter::new_at(10.0, 1, t0).unwrap();
        assert!(lim.allow_at(t0));
        let mut waits = queue(&lim, t0, 3);
        let last = waits.pop().unwrap();
        for w in waits {
            w.cancel_at(t0);
        }
        assert_eq!(remembered(&lim), 2);
        lim.set_rate_at(t0, 10.0).unwrap();
        lim.set_burst_at(t0, 1).unwrap();
        assert!(lim.set_rate_at(t0, f64::NAN).is_err());
        assert_eq!(remembered(&lim), 2, "nothing changed: the epoch goes on");
        lim.set_burst_at(t0, 2).unwrap();
        assert_eq!(remembered(&lim), 0);
        last.cancel_at(t0);
        assert_eq!(
            lim.tokens_at(t0),
            -3.0,
            "all made before the change: all spent"
        );
    }

    #[test]
    fn set_rate_keeps_tokens() {
        let t0 = Instant::now();
        let lim = Limiter::new_at(10.0, 4, t0).unwrap();
        assert!(lim.allow_n_at(t0, 3)); // 1 left
        lim.set_rate_at(t0, 1.0).unwrap();
        assert_eq!(lim.tokens_at(t0), 1.0);
        lim.set_rate_at(t0, 0.0).unwrap();
        assert_eq!(lim.tokens_at(t0 + 10_000 * MS), 1.0, "frozen");
        lim.set_rate_at(t0 + 10_000 * MS, f64::INFINITY).unwrap();
        assert!(lim.allow_n_at(t0, 1000));
        lim.set_rate_at(t0, 2.0).unwrap();
        assert_eq!(lim.tokens_at(t0), 4.0, "from unlimited: full");
        assert!(lim.set_rate_at(t0, -1.0).is_err());
        assert_eq!(lim.rate(), 2.0);
    }

    #[test]
    fn zero_rate_spends_its_burst() {
        let t0 = Instant::now();
        let lim = Limiter::new_at(0.0, 2, t0).unwrap();
        assert!(lim.reserve_n_at(t0, 3).is_none());
        assert!(lim.allow_at(t0 + 1000 * MS));
        assert!(lim.allow_at(t0));
        assert!(!lim.allow_at(t0 + 100_000 * MS));
        assert!(lim.reserve_n_at(t0, 1).is_none());
    }

    /// Go's `TestReserveMax` (x/time `rate_test.go`, BSD licence): a reservation limited to
    /// one period ahead.
    #[test]
    fn reserve_within_a_limit() {
        let t0 = Instant::now();
        let d = 100 * MS;
        let lim = Limiter::new_at(10.0, 2, t0).unwrap();
        let now = encode(t0);
        let max = Limit::Within(d.as_nanos() as u64);
        assert_eq!(lim.take(now, 2, max).unwrap().take.at, now);
        assert_eq!(lim.take(now, 1, max).unwrap().take.at, now + 100_000_000);
        assert_eq!(lim.take(now, 1, max).unwrap_err(), Refusal::TooLate);
    }

    #[test]
    fn overflow_does_not_panic() {
        let t0 = Instant::now();
        let lim = Limiter::new_at(1e-300, u32::MAX, t0).unwrap();
        assert!(lim.allow_n_at(t0, u32::MAX) || !lim.allow_n_at(t0, 1));
        let r = lim.reserve_n_at(t0, u32::MAX).unwrap();
        assert!(r.delay_from(t0) > Duration::from_secs(3600));
        r.cancel_at(t0);
    }
}
