//! [`Ticker`]: ticks on a fixed schedule `start + k · period`, with a missed-tick policy.
//!
//! A ticker is plain data (the schedule); it has no thread or timer to stop, so dropping it
//! stops it. Waiting for a tick uses the precise sleep of `sleep.rs`.

use std::fmt;
use std::time::{Duration, Instant};

use super::error::ConfigError;
use super::sleep;
use crate::context::Context;

/// What a [`Ticker`] does when a tick is taken late, after the next one was due too.
///
/// A tick is *missed* when the receiver comes for it a whole period or more after its time.
/// A tick taken late by less than a period is simply late: the schedule does not move.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use ctxkit::rate::{MissedTickBehavior, Ticker};
///
/// let ms = Duration::from_millis(1);
/// let t0 = Instant::now();
/// for (behavior, next) in [
///     (MissedTickBehavior::Skip, t0 + 40 * ms),  // the next point of the grid
///     (MissedTickBehavior::Burst, t0 + 20 * ms), // every missed tick, at once
///     (MissedTickBehavior::Delay, t0 + 45 * ms), // a period after this one
/// ] {
///     let mut ticker = Ticker::new_at(10 * ms, t0).unwrap();
///     ticker.set_missed_tick_behavior(behavior);
///     assert_eq!(ticker.tick_at(t0 + 35 * ms), Some(t0 + 10 * ms));
///     assert_eq!(ticker.next_tick(), Some(next));
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MissedTickBehavior {
    /// Deliver one tick at once and drop the other missed ones; later ticks stay on the
    /// original schedule. Go's `time.Ticker` (a slow receiver finds one tick in the channel's
    /// buffer). The default.
    #[default]
    Skip,
    /// Deliver every missed tick, one after another at once, until caught up (tokio's default).
    Burst,
    /// Deliver one tick at once and start the schedule again a period from now.
    Delay,
}

/// Ticks every `period`, the first tick one period after creation: a throttle for loops.
///
/// [`tick`](Ticker::tick) (async) and [`blocking_tick`](Ticker::blocking_tick) (a thread) wait
/// for the next tick and return its scheduled instant. Ticks are scheduled at
/// `start + k · period`, so a late wake-up never delays the ticks after it, and they are
/// waited for precisely (the last fraction of a millisecond is spun, not slept). A receiver
/// that falls behind gets ticks as [`MissedTickBehavior`] says ([`Skip`](MissedTickBehavior::Skip)
/// by default).
///
/// A ticker runs no thread and holds no timer: dropping it stops it.
///
/// # Coming from Go
///
/// Mirrors `time.NewTicker(d)`: `<-t.C` is [`ticker.tick().await`](Ticker::tick) or
/// [`ticker.blocking_tick()`](Ticker::blocking_tick), `t.Reset(d)` is
/// [`reset(d)`](Ticker::reset), and `defer t.Stop()` is nothing (drop). A zero period is an
/// error value rather than a panic. The channel's send time is replaced by the tick's
/// scheduled instant. Unlike tokio's `interval`, the first tick comes one period after
/// creation, as in Go, and missed ticks are skipped, as in Go.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use ctxkit::rate::Ticker;
///
/// let start = Instant::now();
/// let mut ticker = Ticker::new(Duration::from_millis(5)).unwrap();
/// for request in ["As It Was", "Vampire", "Anti-Hero"] {
///     ticker.blocking_tick(); // one request per tick
///     println!("serving {request}");
/// }
/// assert!(start.elapsed() >= Duration::from_millis(15));
/// ```
pub struct Ticker {
    /// The time between ticks; never zero.
    period: Duration,
    /// The next tick's scheduled instant; `None` once it would be too far to represent.
    next: Option<Instant>,
    /// What a late receiver gets.
    behavior: MissedTickBehavior,
}

impl Ticker {
    /// A ticker whose first tick comes `period` from now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::rate::Ticker;
    ///
    /// let ticker = Ticker::new(Duration::from_millis(200)).unwrap();
    /// assert_eq!(ticker.period(), Duration::from_millis(200));
    /// assert!(Ticker::new(Duration::ZERO).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a zero period (Go panics on a period that is not positive; a
    /// negative one cannot be written as a [`Duration`]), and for one so long that the first
    /// tick's instant cannot be represented.
    pub fn new(period: Duration) -> Result<Ticker, ConfigError> {
        Ticker::new_at(period, Instant::now())
    }

    /// [`Ticker::new`] created at `now`: the first tick is due at `now + period`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Ticker;
    ///
    /// let t0 = Instant::now();
    /// let ticker = Ticker::new_at(Duration::from_millis(10), t0).unwrap();
    /// assert_eq!(ticker.next_tick(), Some(t0 + Duration::from_millis(10)));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Ticker::new`].
    pub fn new_at(period: Duration, now: Instant) -> Result<Ticker, ConfigError> {
        let next = Ticker::first(period, now)?;
        Ok(Ticker {
            period,
            next: Some(next),
            behavior: MissedTickBehavior::default(),
        })
    }

    fn first(period: Duration, now: Instant) -> Result<Instant, ConfigError> {
        if period.is_zero() {
            return Err(ConfigError::zero_period());
        }
        now.checked_add(period)
            .ok_or(ConfigError::period_too_long(period))
    }

    /// The period.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let ticker = ctxkit::rate::Ticker::new(Duration::from_secs(1)).unwrap();
    /// assert_eq!(ticker.period(), Duration::from_secs(1));
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The policy for missed ticks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::rate::{MissedTickBehavior, Ticker};
    ///
    /// let ticker = Ticker::new(Duration::from_secs(1)).unwrap();
    /// assert_eq!(ticker.missed_tick_behavior(), MissedTickBehavior::Skip);
    /// ```
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.behavior
    }

    /// Sets the policy for missed ticks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::rate::{MissedTickBehavior, Ticker};
    ///
    /// let mut ticker = Ticker::new(Duration::from_secs(1)).unwrap();
    /// ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    /// assert_eq!(ticker.missed_tick_behavior(), MissedTickBehavior::Burst);
    /// ```
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.behavior = behavior;
    }

    /// When the next tick is due; `None` if it is too far in the future to represent (after
    /// centuries of ticking with a huge period).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Ticker;
    ///
    /// let t0 = Instant::now();
    /// let mut ticker = Ticker::new_at(Duration::from_millis(10), t0).unwrap();
    /// ticker.tick_at(t0 + Duration::from_millis(10));
    /// assert_eq!(ticker.next_tick(), Some(t0 + Duration::from_millis(20)));
    /// ```
    pub fn next_tick(&self) -> Option<Instant> {
        self.next
    }

    /// Starts the schedule again: the next tick comes `period` after now (Go's `Reset`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::rate::Ticker;
    ///
    /// let mut ticker = Ticker::new(Duration::from_secs(3600)).unwrap();
    /// ticker.reset(Duration::from_millis(1)).unwrap();
    /// ticker.blocking_tick();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Ticker::new`]; the ticker is then unchanged.
    pub fn reset(&mut self, period: Duration) -> Result<(), ConfigError> {
        self.reset_at(period, Instant::now())
    }

    /// [`reset`](Ticker::reset) at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Ticker;
    ///
    /// let t0 = Instant::now();
    /// let mut ticker = Ticker::new_at(Duration::from_millis(10), t0).unwrap();
    /// ticker.reset_at(Duration::from_millis(3), t0 + Duration::from_millis(5)).unwrap();
    /// assert_eq!(ticker.next_tick(), Some(t0 + Duration::from_millis(8)));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Ticker::new`].
    pub fn reset_at(&mut self, period: Duration, now: Instant) -> Result<(), ConfigError> {
        let next = Ticker::first(period, now)?;
        self.period = period;
        self.next = Some(next);
        Ok(())
    }

    /// Takes the tick due at `now`, if one is: returns its scheduled instant and moves the
    /// schedule on as the [`MissedTickBehavior`] says. `None` if the next tick is not due yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Ticker;
    ///
    /// let ms = Duration::from_millis(1);
    /// let t0 = Instant::now();
    /// let mut ticker = Ticker::new_at(10 * ms, t0).unwrap();
    /// assert_eq!(ticker.tick_at(t0 + 9 * ms), None);
    /// assert_eq!(ticker.tick_at(t0 + 12 * ms), Some(t0 + 10 * ms)); // late, not missed
    /// assert_eq!(ticker.tick_at(t0 + 19 * ms), None);
    /// assert_eq!(ticker.tick_at(t0 + 20 * ms), Some(t0 + 20 * ms));
    /// ```
    pub fn tick_at(&mut self, now: Instant) -> Option<Instant> {
        let due = self.next?;
        if now < due {
            return None;
        }
        let late = now - due;
        let next = match self.behavior {
            MissedTickBehavior::Burst => due.checked_add(self.period),
            MissedTickBehavior::Delay if late >= self.period => now.checked_add(self.period),
            MissedTickBehavior::Delay => due.checked_add(self.period),
            MissedTickBehavior::Skip => {
                // The first point of the grid after `now`.
                let periods = late.as_nanos() / self.period.as_nanos() + 1;
                u32::try_from(periods)
                    .ok()
                    .and_then(|k| self.period.checked_mul(k))
                    .and_then(|step| due.checked_add(step))
                    .or_else(|| now.checked_add(self.period))
            }
        };
        self.next = next;
        Some(due)
    }

    /// Waits for the next tick and returns its scheduled instant.
    ///
    /// Needs no async runtime. Wakes from the `ctxkit-timer` thread a fraction of a millisecond
    /// early, then yields to the executor until the tick's instant, so it returns on time.
    /// A ticker whose next tick cannot be represented ([`next_tick`](Ticker::next_tick) is
    /// `None`) never ticks again.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use std::time::Duration;
    /// use ctxkit::rate::Ticker;
    ///
    /// let mut ticker = Ticker::new(Duration::from_millis(2)).unwrap();
    /// let first = ticker.tick().await;
    /// let second = ticker.tick().await;
    /// // Ticks are due every 2 ms; a receiver that comes back late skips the ones it missed.
    /// let gap = second - first;
    /// assert!(gap >= Duration::from_millis(2));
    /// assert_eq!(gap.as_nanos() % 2_000_000, 0);
    /// # });
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a tick is taken only when the future completes, so dropping it (in
    /// `select!`, or with [`Context::run`]) loses none.
    pub async fn tick(&mut self) -> Instant {
        loop {
            if let Some(tick) = self.tick_at(Instant::now()) {
                return tick;
            }
            match self.next {
                Some(due) => {
                    // Never done: the sleep only ends at `due`.
                    let _ = sleep::sleep_until(&Context::background(), due).await;
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Blocks the thread until the next tick and returns its scheduled instant.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::rate::Ticker;
    ///
    /// let start = Instant::now();
    /// let mut ticker = Ticker::new(Duration::from_millis(2)).unwrap();
    /// ticker.blocking_tick();
    /// ticker.blocking_tick();
    /// assert!(start.elapsed() >= Duration::from_millis(4));
    /// ```
    ///
    /// # Blocking
    ///
    /// Parks the thread until shortly before the tick, then spins (the last
    /// 150 µs) to return on time. A ticker whose next tick cannot be represented blocks
    /// forever. Do not call it inside async code; await [`tick`](Ticker::tick) there.
    pub fn blocking_tick(&mut self) -> Instant {
        loop {
            if let Some(tick) = self.tick_at(Instant::now()) {
                return tick;
            }
            match self.next {
                Some(due) => {
                    let _ = sleep::blocking_sleep_until(&Context::background(), due);
                }
                None => {
                    let _ = Context::background().wait();
                }
            }
        }
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker")
            .field("period", &self.period)
            .field(
                "next_tick_in",
                &self
                    .next
                    .map(|at| at.saturating_duration_since(Instant::now())),
            )
            .field("missed_tick_behavior", &self.behavior)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn first_tick_one_period_after_creation() {
        let t0 = Instant::now();
        let mut t = Ticker::new_at(10 * MS, t0).unwrap();
        assert_eq!(t.tick_at(t0), None);
        assert_eq!(t.tick_at(t0 + 10 * MS), Some(t0 + 10 * MS));
    }

    #[test]
    fn skip_delivers_one_and_stays_on_the_grid() {
        let t0 = Instant::now();
        let mut t = Ticker::new_at(10 * MS, t0).unwrap();
        assert_eq!(t.tick_at(t0 + 55 * MS), Some(t0 + 10 * MS));
        assert_eq!(t.tick_at(t0 + 55 * MS), None);
        assert_eq!(t.tick_at(t0 + 60 * MS), Some(t0 + 60 * MS));
    }

    #[test]
    fn burst_delivers_every_missed_tick() {
        let t0 = Instant::now();
        let mut t = Ticker::new_at(10 * MS, t0).unwrap();
        t.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let now = t0 + 35 * MS;
        let got: Vec<_> = std::iter::from_fn(|| t.tick_at(now)).collect();
        assert_eq!(got, vec![t0 + 10 * MS, t0 + 20 * MS, t0 + 30 * MS]);
    }

    #[test]
    fn delay_restarts_a_period_after_a_missed_tick() {
        let t0 = Instant::now();
        let mut t = Ticker::new_at(10 * MS, t0).unwrap();
        t.set_missed_tick_behavior(MissedTickBehavior::Delay);
        assert_eq!(t.tick_at(t0 + 13 * MS), Some(t0 + 10 * MS));
        assert_eq!(t.next_tick(), Some(t0 + 20 * MS), "late, not missed");
        assert_eq!(t.tick_at(t0 + 31 * MS), Some(t0 + 20 * MS));
        assert_eq!(t.next_tick(), Some(t0 + 41 * MS));
    }

    #[test]
    fn huge_periods_do_not_overflow() {
        let t0 = Instant::now();
        assert!(Ticker::new_at(Duration::MAX, t0).is_err());
        let mut t = Ticker::new_at(Duration::from_secs(1), t0).unwrap();
        assert_eq!(
            t.tick_at(t0 + Duration::from_secs(1_000_000_000)),
            Some(t0 + Duration::from_secs(1))
        );
        let mut t = Ticker::new_at(Duration::from_nanos(1), t0).unwrap();
        assert!(t.tick_at(t0 + Duration::from_secs(100_000)).is_some());
        assert!(t.next_tick().unwrap() > t0 + Duration::from_secs(100_000));
    }
}
