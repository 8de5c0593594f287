//! The token-bucket [`Limiter`]: GCRA on one atomic word, with a sequence lock around its
//! configuration.
//!
//! # Invariants
//!
//! 1. `zero` is the instant (nanoseconds on `context::clock`) at which the bucket holds no
//!    tokens; it never exceeds [`MAX_T`], so `zero + n · interval` cannot overflow before it is
//!    clamped. Takers and cancellers change it only with a compare-exchange whose expected value
//!    they computed from, so a decision made from a stale `zero` never commits.
//! 2. The configuration (`interval`, `tau`, `burst`, `frozen`, `rate`) changes only while `seq`
//!    is odd, and only by the one setter that made it odd (the compare-exchange from even to
//!    odd is the setters' lock). A reader takes a snapshot of `zero` and the configuration
//!    between two loads of `seq` that see the same even value (a sequence lock), so it never
//!    computes from half of one configuration and half of another.
//! 3. A setter rewrites `zero` for the new configuration (keeping the tokens earned) with a
//!    compare-exchange while `seq` is odd, so a reader that took its snapshot before the setter
//!    began fails its own compare-exchange and retries under the new configuration (unless the
//!    setter left `zero` unchanged, in which case the old decision is still valid).
//! 4. `interval == 0` means unlimited: `zero` is then neither read nor written by takers.
//!    `frozen != 0` means a zero rate: the bucket's clock stands still at `frozen`, so it only
//!    spends what it holds.
//!
//! # Lock order
//!
//! There is no lock on the fast path. Setters serialise on `seq` (invariant 2); readers spin
//! (with `yield_now` after a few rounds) while a setter runs, which takes a few nanoseconds
//! and calls no user code.

use std::fmt;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::sleep;
use super::{ConfigError, WaitError};
use crate::time as clock;
use crate::Context;

/// The largest value `zero` takes (invariant 1): about 146 years past the clock's base, which
/// is about a century before the process started.
const MAX_T: u64 = u64::MAX / 2;

/// Nanoseconds in a second.
const NANOS_PER_SEC: f64 = 1e9;

/// Encodes an instant on the crate clock (invariant 1 bounds it).
#[inline]
fn encode(instant: Instant) -> u64 {
    clock::encode(instant).unwrap_or(MAX_T).min(MAX_T)
}

/// Spins, then yields, while a setter holds the sequence lock.
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// One consistent view of the configuration (invariant 2).
#[derive(Clone, Copy, Debug)]
struct Config {
    /// Nanoseconds per token; 0 = unlimited.
    interval: u64,
    /// `burst · interval`, saturated at [`MAX_T`]: the bucket's size as time.
    tau: u64,
    /// The bucket's size in tokens.
    burst: u32,
    /// 0 while the clock runs; for a zero rate, the instant the bucket's clock stands at.
    frozen: u64,
    /// The rate as set (for `rate()`).
    rate: f64,
}

impl Config {
    /// Validates `rate` and `burst` and derives the arithmetic (`now` is where a zero rate
    /// freezes the clock).
    fn new(rate: f64, burst: u32, now: u64) -> Result<Config, ConfigError> {
        if rate.is_nan() {
            return Err(ConfigError::nan_rate());
        }
        if rate < 0.0 {
            return Err(ConfigError::negative_rate(rate));
        }
        if rate == f64::INFINITY {
            return Ok(Config {
                interval: 0,
                tau: 0,
                burst,
                frozen: 0,
                rate,
            });
        }
        if rate == 0.0 {
            // A frozen clock and one "nanosecond" per token: tokens = frozen - zero.
            return Ok(Config {
                interval: 1,
                tau: u64::from(burst),
                burst,
                frozen: now.max(1),
                rate,
            });
        }
        if burst == 0 {
            return Err(ConfigError::zero_burst(rate));
        }
        let interval = ((NANOS_PER_SEC / rate).round() as u64).clamp(1, MAX_T);
        Ok(Config {
            interval,
            tau: interval.saturating_mul(u64::from(burst)).min(MAX_T),
            burst,
            frozen: 0,
            rate,
        })
    }

    /// The bucket's clock at `now` (invariant 4).
    fn clock(&self, now: u64) -> u64 {
        if self.frozen != 0 {
            self.frozen
        } else {
            now
        }
    }

    /// Tokens in the bucket at `now` given `zero`; negative while reservations are queued.
    fn tokens(&self, zero: u64, now: u64) -> f64 {
        if self.interval == 0 {
            return f64::INFINITY;
        }
        let held = (i128::from(self.clock(now)) - i128::from(zero)) as f64 / self.interval as f64;
        held.min(f64::from(self.burst))
    }

    /// The `zero` that holds `tokens` at `now` under this configuration.
    fn zero_for(&self, tokens: f64, now: u64) -> u64 {
        let tokens = tokens.min(f64::from(self.burst));
        let span = (tokens * self.interval as f64).round();
        let zero = i128::from(self.clock(now)) - span as i128;
        zero.clamp(0, i128::from(MAX_T)) as u64
    }
}

/// How long a taker may be made to wait.
#[derive(Clone, Copy, Debug)]
enum Limit {
    /// Only take tokens that are there now (`allow`).
    ReadyOnly,
    /// Take them if they come within this many nanoseconds (a wait under a deadline).
    Within(u64),
    /// Take them whenever they come (`reserve`).
    Any,
}

/// Tokens taken.
#[derive(Clone, Copy, Debug)]
struct Grant {
    /// `zero` just after the take: where this grant's tokens end on the timeline.
    end: u64,
    /// When the tokens may be used.
    at: u64,
    /// False for an unlimited limiter, which takes nothing.
    took: bool,
}

/// Why no tokens were taken.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Refusal {
    /// `n` exceeds this burst.
    ExceedsBurst(u32),
    /// The rate is zero and the bucket holds too few tokens.
    Never,
    /// The tokens come, but later than allowed.
    TooLate,
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
/// A limiter runs no thread: tokens are computed from the time of each call. `allow` takes no
/// lock (one atomic compare-exchange). Share a limiter between threads with `Arc<Limiter>` or a
/// `static`.
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
/// | `Wait(ctx)`, `WaitN(ctx, n)` | [`wait(&ctx)`](Limiter::wait), [`wait_n`](Limiter::wait_n), and their `blocking_` forms |
/// | `SetLimit`, `SetBurst` (and `…At`) | [`set_rate`](Limiter::set_rate), [`set_burst`](Limiter::set_burst) (and `_at`) |
/// | `Tokens`, `TokensAt` | [`tokens`](Limiter::tokens), [`tokens_at`](Limiter::tokens_at) |
///
/// Differences on purpose: a wait that cannot finish before the context's deadline fails with
/// a [`WaitError`] that *is* a deadline error (`is_deadline_exceeded()`; Go's is a plain
/// string, go#54541); a wait whose future is dropped gives its tokens back; a reservation
/// canceled before anybody reserved after it gives back exactly the tokens it took (go#69419);
/// and when the clock passed to an `_at` method goes backwards, tokens earned "in the future"
/// are not kept (Go keeps them), since [`Instant`] never goes backwards anyway.
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
}

impl Limiter {
    /// A limiter of `rate` tokens a second (a fraction is fine) and bursts of up to `burst`,
    /// starting full.
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
    /// let limiter = Limiter::new(0.0, 2).unwrap(); // a zero rate: two tokens, ever
    /// assert!(limiter.allow() && limiter.allow());
    /// assert!(!limiter.allow());
    /// assert!(Limiter::new(f64::INFINITY, 0).unwrap().allow_n(1_000));
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a rate that is negative or NaN, and for a burst of zero with a
    /// positive finite rate (it could never allow an event).
    pub fn new(rate: f64, burst: u32) -> Result<Limiter, ConfigError> {
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
    pub fn new_at(rate: f64, burst: u32, now: Instant) -> Result<Limiter, ConfigError> {
        let config = Config::new(rate, burst, encode(now))?;
        Ok(Limiter {
            // Zero tokens at the clock's base, about a century ago: full now (invariant 1).
            zero: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            interval: AtomicU64::new(config.interval),
            tau: AtomicU64::new(config.tau),
            burst: AtomicU32::new(config.burst),
            frozen: AtomicU64::new(config.frozen),
            rate: AtomicU64::new(config.rate.to_bits()),
        })
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
            Err(_) => unreachable!("an infinite rate is always valid"),
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
        let mut spins = 0;
        // Terminates: a setter keeps `seq` odd only for a few instructions (no user code).
        loop {
            let seq = self.seq.load(Ordering::Acquire);
            if seq & 1 == 0 {
                let zero = self.zero.load(Ordering::Relaxed);
                let config = self.load_config();
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == seq {
                    return (zero, config);
                }
            }
            backoff(&mut spins);
        }
    }

    /// Takes `n` tokens at `now` (encoded), if `limit` allows.
    #[inline]
    fn take(&self, now: u64, n: u32, limit: Limit) -> Result<Grant, Refusal> {
        // Terminates: each failed compare-exchange means another taker, canceller or setter
        // changed `zero` (lock-free progress), invariant 1.
        loop {
            let (zero, config) = self.snapshot();
            if config.interval == 0 {
                return Ok(Grant {
                    end: now,
                    at: now,
                    took: false,
                });
            }
            if n > config.burst {
                return Err(Refusal::ExceedsBurst(config.burst));
            }
            let clock = config.clock(now);
            let from = zero.max(clock.saturating_sub(config.tau));
            let end = from
                .saturating_add(u64::from(n).saturating_mul(config.interval))
                .min(MAX_T);
            let ready = end <= clock;
            if !ready {
                if config.frozen != 0 {
                    return Err(Refusal::Never);
                }
                match limit {
                    Limit::ReadyOnly => return Err(Refusal::TooLate),
                    Limit::Within(max) if end - now > max => return Err(Refusal::TooLate),
                    Limit::Within(_) | Limit::Any => {}
                }
            }
            let at = if ready { now } else { end };
            if end == zero
                || self
                    .zero
                    .compare_exchange_weak(zero, end, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                return Ok(Grant {
                    end,
                    at,
                    took: true,
                });
            }
        }
    }

    /// Gives back what a grant of `n` tokens ending at `end` took, less the time reserved
    /// after it.
    fn give_back(&self, n: u32, end: u64) {
        // Terminates: as `take`.
        loop {
            let (zero, config) = self.snapshot();
            if config.interval == 0 {
                return;
            }
            let taken = u64::from(n).saturating_mul(config.interval);
            let reserved_after = zero.saturating_sub(end);
            let restore = taken.saturating_sub(reserved_after);
            if restore == 0 {
                return;
            }
            let new = zero.saturating_sub(restore);
            if self
                .zero
                .compare_exchange_weak(zero, new, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Replaces the configuration, keeping the tokens held at `now` (invariants 2 and 3).
    fn reconfigure(
        &self,
        now: u64,
        change: impl Fn(&Config) -> Result<Config, ConfigError>,
    ) -> Result<(), ConfigError> {
        // Take the setters' lock: `seq` from even to odd. Terminates: setters hold it briefly.
        let mut spins = 0;
        let seq = loop {
            let seq = self.seq.load(Ordering::Relaxed);
            if seq & 1 == 0
                && self
                    .seq
                    .compare_exchange_weak(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break seq;
            }
            backoff(&mut spins);
        };
        fence(Ordering::Release);
        // Only this thread writes the configuration now (invariant 2).
        let old = self.load_config();
        let result = change(&old);
        if let Ok(new) = &result {
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
        }
        self.seq.store(seq + 2, Ordering::Release);
        result.map(|_| ())
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
    /// reservations, which are not rescheduled).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::rate::Limiter;
    ///
    /// let limiter = Limiter::new(1.0, 3).unwrap();
    /// limiter.set_rate(1_000.0).unwrap();
    /// assert!(limiter.allow_n(3), "the 3 tokens earned are kept");
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] as for [`Limiter::new`] (also when the burst is 0 and the new rate is
    /// positive); the limiter is then unchanged.
    pub fn set_rate(&self, rate: f64) -> Result<(), ConfigError> {
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
    pub fn set_rate_at(&self, now: Instant, rate: f64) -> Result<(), ConfigError> {
        let now = encode(now);
        self.reconfigure(now, |old| Config::new(rate, old.burst, now))
    }

    /// Changes the burst, keeping the tokens the bucket holds now (up to the new burst).
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
        let grant = self.take(encode(now), n, Limit::Any).ok()?;
        Some(Reservation {
            limiter: self,
            n,
            grant,
        })
    }

    // ===== wait =====

    /// Reserves `n` tokens for a wait at `now`: Go's `WaitN` up to its sleep.
    fn start_wait(
        &self,
        ctx: &Context,
        n: u32,
        now: Instant,
    ) -> Result<Reservation<'_>, WaitError> {
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
            Ok(grant) => Ok(Reservation {
                limiter: self,
                n,
                grant,
            }),
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
    /// Otherwise sleeps until the tokens' time (precisely: it spins for the last fraction of a
    /// millisecond) or until `ctx` is done, whichever comes first; in the latter case the
    /// tokens go back to the bucket. Needs no async runtime. An unlimited limiter returns at
    /// once for any `n`.
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
    /// first; "exceeds limiter's burst" when `n` is above the burst; "can never be satisfied"
    /// when the rate is zero, the bucket holds fewer than `n` and `ctx` has no deadline.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future before it completes cancels its reservation, which
    /// gives the tokens back (unless their time has come).
    pub async fn wait_n(&self, ctx: &Context, n: u32) -> Result<(), WaitError> {
        let reservation = self.start_wait(ctx, n, Instant::now())?;
        let at = reservation.time_to_act();
        let guard = CancelOnDrop(Some(reservation));
        match sleep::sleep_until(ctx, at).await {
            Ok(()) => {
                guard.disarm();
                Ok(())
            }
            Err(error) => Err(WaitError::context(error)), // `guard` gives the tokens back
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
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::{rate::Limiter, Context};
    ///
    /// let limiter = std::sync::Arc::new(Limiter::new(1.0, 1).unwrap());
    /// limiter.blocking_wait_n(&Context::background(), 1).unwrap();
    /// let (ctx, cancel) = Context::background().with_cancel().into_parts();
    /// let waiter = {
    ///     let limiter = limiter.clone();
    ///     std::thread::spawn(move || limiter.blocking_wait(&ctx))
    /// };
    /// std::thread::sleep(Duration::from_millis(10));
    /// cancel.cancel();
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
    /// 150 µs) to return on time. Wakes at once when `ctx` is done. Do not call it inside
    /// async code; await [`wait_n`](Limiter::wait_n) there.
    pub fn blocking_wait_n(&self, ctx: &Context, n: u32) -> Result<(), WaitError> {
        let reservation = self.start_wait(ctx, n, Instant::now())?;
        match sleep::blocking_sleep_until(ctx, reservation.time_to_act()) {
            Ok(()) => Ok(()),
            Err(error) => {
                reservation.cancel();
                Err(WaitError::context(error))
            }
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

/// Cancels a wait's reservation unless disarmed (cancel safety of `wait_n`).
struct CancelOnDrop<'a>(Option<Reservation<'a>>);

impl CancelOnDrop<'_> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(reservation) = self.0.take() {
            reservation.cancel();
        }
    }
}

// ===== impl Reservation =====

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
    n: u32,
    grant: Grant,
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
        self.n
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
        clock::decode(self.grant.at.max(1))
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
        clock::until(self.grant.at, encode(now))
    }

    /// Gives the tokens back: the holder will not act. See [`cancel_at`](Reservation::cancel_at).
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

    /// Gives the tokens back at `now`, as far as other reservations allow.
    ///
    /// Nothing happens if the tokens' time has passed (they count as used, as in Go). A
    /// reservation that is the last one made gives back exactly the tokens it took (go#69419).
    /// One with later reservations behind it gives back less, by the tokens those were already
    /// promised (their times are not moved, and the rate must hold for them), as Go does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Limiter;
    ///
    /// let t0 = Instant::now();
    /// let limiter = Limiter::new_at(10.0, 2, t0).unwrap();
    /// let before = limiter.tokens_at(t0);
    /// let r = limiter.reserve_n_at(t0, 2).unwrap();
    /// r.cancel_at(t0);
    /// assert_eq!(limiter.tokens_at(t0), before);
    /// ```
    pub fn cancel_at(self, now: Instant) {
        if !self.grant.took || self.n == 0 || encode(now) > self.grant.at {
            return;
        }
        self.limiter.give_back(self.n, self.grant.end);
    }
}

impl fmt::Debug for Reservation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("tokens", &self.n)
            .field("delay", &self.delay())
            .finish()
    }
}

#[cfg(test)]
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
    fn interval_rounds_to_nanoseconds() {
        let c = Config::new(3.0, 1, 1).unwrap();
        assert_eq!(c.interval, 333_333_333);
        assert_eq!(Config::new(2e9, 1, 1).unwrap().interval, 1);
        assert_eq!(Config::new(1e-300, 1, 1).unwrap().interval, MAX_T);
        assert_eq!(Config::new(1e-300, u32::MAX, 1).unwrap().tau, MAX_T);
    }

    #[test]
    fn bad_config() {
        assert!(Config::new(f64::NAN, 1, 1).is_err());
        assert!(Config::new(-0.5, 1, 1).is_err());
        assert!(Config::new(1.0, 0, 1).is_err());
        assert!(Config::new(0.0, 0, 1).is_ok());
        assert!(Config::new(f64::INFINITY, 0, 1).is_ok());
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
        assert_eq!(lim.take(now, 2, max).unwrap().at, now);
        assert_eq!(lim.take(now, 1, max).unwrap().at, now + 100_000_000);
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
