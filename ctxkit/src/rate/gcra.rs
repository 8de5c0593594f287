//! The GCRA decision as pure functions: what a take, and what a cancel, does to a bucket, given
//! its state, the time and the configuration. No atomics, no locks, no clock.
//!
//! [`Limiter`](super::Limiter) keeps the state in one atomic word and commits each decision
//! with a compare-exchange against the state the decision was computed from (`limiter.rs`). A
//! limiter that keeps one bucket per key, or keeps its buckets in a store shared by many
//! processes, commits decisions its own way; as long as it calls [`take`] and [`undo`], it
//! admits exactly what `Limiter` admits, for the same calls at the same instants.
//!
//! # The model
//!
//! GCRA, the generic cell rate algorithm (ATM Forum TM 4.1), is a token bucket written as one
//! instant: `zero`, the time at which the bucket would hold no tokens. All times are
//! nanoseconds on the crate clock (`time.rs`). With `T` the interval between tokens and
//! `tau = burst · T` the bucket's size as time:
//!
//! ```text
//! tokens(now) = min(burst, (now - zero) / T)       negative while reservations are queued
//! take n:      from = max(zero, now - tau)         the bucket holds at most `burst`
//!              end  = from + n · T                 the new `zero`
//!              ready at `now` if end <= now, else at `end`
//! ```
//!
//! Two configurations have no finite `T`: an unlimited bucket (`interval == 0`) takes nothing
//! and admits everything at once, and a zero rate stands the bucket's clock still at `frozen`
//! (one "nanosecond" per token, so `tokens = frozen - zero`): it spends what it holds and
//! never earns more.
//!
//! # The stack of takes, and why a cancel never over-admits
//!
//! Committed takes form a stack: each moved `zero` from `prev` to `end > prev` and was computed
//! from the `zero` it replaced, so the `end`s strictly increase up the stack and the top's
//! `end` is `zero`. A cancel (see [`undo`]) gives a take's tokens back only by popping it, as
//! if it had never been made: if it is the top, `zero` goes back to its `prev`; if it is not,
//! it is *remembered* (`end → prev`) until every take above it has been popped, which
//! *uncovers* it. A take that has already acted, or any take under a configuration that has
//! changed since, gives nothing back.
//!
//! Why that never lets a bucket admit more than `burst + rate · t` in a window of length `t`:
//! give each admitted take the stretch `[from, end)` of `n · T` it moved `zero` over. A take
//! acts at `max(now, end)` and starts at `from ≥ now - tau`, with `n ≤ burst`, so its stretch
//! lies within `[act - tau, act]`. The stretches of the stack never overlap, and popping the
//! top only removes the stretch of a take that does not act; later takes start at or after
//! the new `zero`, above every stretch still standing. So the takes acting in `[a, a + t]` own
//! disjoint stretches inside `[a - tau, a + t]`: at most `(t + tau) / T = burst + rate · t`
//! tokens. This holds per configuration (a change rewrites `zero` in the new units and starts
//! a new stack), and `tests/rate_props.rs` checks the bound for the takes of each. Go's partial
//! give-back for a take that is not the top (x/time `CancelAt`) breaks this: it lowers `zero`
//! under stretches that stay, which admits more when the cancel's instant is earlier than a
//! take made after it (as the `now`s of racing threads are); `tests/rate_cancel.rs` has the
//! case.
//!
//! # Memory
//!
//! [`Remembered`] holds one entry per canceled take that was not the top and has not been
//! uncovered. An entry is dropped once it cannot matter: when a rollback uncovers it, when the
//! configuration changes, or once its `end` is a whole bucket (`tau`) before a later cancel's
//! instant, since the bucket is full again by then either way ([`Config::cutoff`]). Entries'
//! `end`s are at least an interval apart and no later than `zero`, so after a cancel at `now`
//! there are at most `burst + 1 + q` entries, where `q` is the number of tokens reserved beyond
//! `now` (`max(0, -tokens(now))`).

use std::collections::BTreeMap;

use super::error::ConfigError;

/// The largest value `zero` takes: about 146 years past the clock's base, which is about a
/// century before the process started. So `zero + n · interval` cannot overflow before it is
/// clamped here.
pub(crate) const MAX_T: u64 = u64::MAX / 2;

/// Nanoseconds in a second.
const NANOS_PER_SEC: f64 = 1e9;

// ===== Config =====

/// A bucket's configuration, with the arithmetic derived from it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Config {
    /// Nanoseconds per token (`T`); 0 = unlimited.
    pub(crate) interval: u64,
    /// `burst · interval`, saturated at [`MAX_T`]: the bucket's size as time.
    pub(crate) tau: u64,
    /// The bucket's size in tokens.
    pub(crate) burst: u32,
    /// 0 while the clock runs; for a zero rate, the instant the bucket's clock stands at.
    pub(crate) frozen: u64,
    /// The rate as set (for `rate()`).
    pub(crate) rate: f64,
}

impl Config {
    /// Validates `rate` and `burst` and derives the arithmetic (`now` is where a zero rate
    /// freezes the clock).
    pub(crate) fn new(rate: f64, burst: u32, now: u64) -> Result<Config, ConfigError> {
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

    /// The bucket's clock at `now`: `now`, or the instant a zero rate froze it at.
    #[inline]
    pub(crate) fn clock(&self, now: u64) -> u64 {
        if self.frozen != 0 {
            self.frozen
        } else {
            now
        }
    }

    /// Tokens in the bucket at `now` given `zero`; negative while reservations are queued,
    /// infinite when unlimited.
    pub(crate) fn tokens(&self, zero: u64, now: u64) -> f64 {
        if self.interval == 0 {
            return f64::INFINITY;
        }
        let held = (i128::from(self.clock(now)) - i128::from(zero)) as f64 / self.interval as f64;
        held.min(f64::from(self.burst))
    }

    /// The `zero` that holds `tokens` at `now` under this configuration (how a configuration
    /// change keeps the tokens earned).
    pub(crate) fn zero_for(&self, tokens: f64, now: u64) -> u64 {
        let tokens = tokens.min(f64::from(self.burst));
        let span = (tokens * self.interval as f64).round();
        let zero = i128::from(self.clock(now)) - span as i128;
        zero.clamp(0, i128::from(MAX_T)) as u64
    }

    /// The instant a whole bucket before `now`: a take whose `end` is at or before it gives
    /// back nothing a full bucket would not hold anyway, so it need not be remembered.
    pub(crate) fn cutoff(&self, now: u64) -> u64 {
        self.clock(now).saturating_sub(self.tau)
    }
}

// ===== take =====

/// How long a taker may be made to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    /// Only take tokens that are there now (`allow`).
    ReadyOnly,
    /// Take them if they come within this many nanoseconds of `now` (a wait under a deadline).
    Within(u64),
    /// Take them whenever they come (`reserve`).
    Any,
}

/// A take that [`take`] allows: the new state, and when the tokens may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Take {
    /// The `zero` the decision was computed from, and where a rollback puts it back. The
    /// decision holds only while `zero` is still this: commit it with a compare-exchange
    /// `prev → end` (nothing to store when they are equal).
    pub(crate) prev: u64,
    /// The new `zero`: where this take's tokens end on the timeline.
    pub(crate) end: u64,
    /// When the tokens may be used: `now` if they are there now, else `end`.
    pub(crate) at: u64,
    /// The tokens are there now (`at == now`).
    pub(crate) ready: bool,
    /// Tokens were taken: false for an unlimited bucket and for `n == 0`, which have nothing
    /// to give back.
    pub(crate) took: bool,
}

impl Take {
    /// Whether a cancel at `now` may give something back: tokens were taken and their time
    /// to act has not passed (as in Go, tokens whose time has come count as used).
    #[inline]
    pub(crate) fn may_give_back_at(&self, now: u64) -> bool {
        self.took && now <= self.at
    }
}

/// Why [`take`] took nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `n` exceeds this burst.
    ExceedsBurst(u32),
    /// The rate is zero and the bucket holds too few tokens: they never come.
    Never,
    /// The tokens come, but later than `limit` allows.
    TooLate,
}

/// Decides a take of `n` tokens at `now` from a bucket whose state is `zero`: the new state
/// and when the tokens may be used, or why nothing is taken. `limit` says how far ahead the
/// tokens may be (see "The model" in the module docs).
///
/// Pure: the caller commits the decision, and must commit it only while its state is still
/// `zero` (`Take::prev`), else decide again. `now` may be earlier than the `now` of earlier
/// takes (racing threads); tokens earned "in the future" then do not count.
#[inline]
pub(crate) fn take(
    zero: u64,
    now: u64,
    config: &Config,
    n: u32,
    limit: Limit,
) -> Result<Take, Refusal> {
    if config.interval == 0 {
        // Unlimited: nothing to take, nothing to store.
        return Ok(Take {
            prev: zero,
            end: zero,
            at: now,
            ready: true,
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
        // Not frozen, so `clock == now < end`.
        match limit {
            Limit::ReadyOnly => return Err(Refusal::TooLate),
            Limit::Within(max) if end - now > max => return Err(Refusal::TooLate),
            Limit::Within(_) | Limit::Any => {}
        }
    }
    Ok(Take {
        prev: zero,
        end,
        at: if ready { now } else { end },
        ready,
        took: n != 0,
    })
}

// ===== undo =====

/// The canceled takes that were not the top of the stack when canceled, waiting to be
/// uncovered ("The stack of takes" in the module docs). Belongs to one configuration: clear it
/// when the configuration changes.
#[derive(Debug, Default)]
pub(crate) struct Remembered {
    /// `end → prev` of each such take; `end`s are unique (they strictly increase up the
    /// stack). No key equals the bucket's `zero` between two cancels: a rollback goes on
    /// through every entry it uncovers.
    by_end: BTreeMap<u64, u64>,
}

impl Remembered {
    /// Forgets the entries whose `end` is at or before `cutoff` ([`Config::cutoff`]): the
    /// bucket is full again by then, so rolling them back would change nothing.
    pub(crate) fn prune(&mut self, cutoff: u64) {
        // Terminates: each round removes an entry of the finite map.
        while let Some((&end, _)) = self.by_end.first_key_value() {
            if end > cutoff {
                break;
            }
            self.by_end.pop_first();
        }
    }

    /// Where a rollback that leaves `zero` at `top` ends: below every remembered take it
    /// uncovers in turn.
    fn bottom(&self, mut top: u64) -> u64 {
        // Terminates: each round moves to a strictly smaller key of the finite map
        // (`prev < end` for every entry).
        while let Some(&prev) = self.by_end.get(&top) {
            top = prev;
        }
        top
    }

    /// Commits what [`undo`] decided for `take`: forgets the entries a rollback uncovered, or
    /// remembers `take`.
    pub(crate) fn commit(&mut self, take: &Take, undo: Undo) {
        match undo {
            Undo::RollBack { .. } => {
                let mut top = take.prev;
                // Terminates: as in `bottom`.
                while let Some(prev) = self.by_end.remove(&top) {
                    top = prev;
                }
            }
            Undo::Remember => {
                self.by_end.insert(take.end, take.prev);
            }
            Undo::Nothing | Undo::Forget => {}
        }
    }

    /// Forgets every entry (a new configuration).
    pub(crate) fn clear(&mut self) {
        self.by_end.clear();
    }

    /// Number of entries (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn len(&self) -> usize {
        self.by_end.len()
    }
}

/// What a cancel does to the bucket, as [`undo`] decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Undo {
    /// Nothing comes back, ever: nothing was taken, or the time to act has passed.
    Nothing,
    /// The take is the top of the stack: `zero` goes from its `end` back to `to`, its `prev`
    /// or lower, past every remembered take this uncovers.
    RollBack {
        /// The new `zero`.
        to: u64,
    },
    /// Not the top: remember it until a rollback uncovers it.
    Remember,
    /// Not the top, and a whole bucket before the cancel: nothing to remember.
    Forget,
}

/// Decides what canceling `take` at `now` does to a bucket whose state is `zero` and whose
/// remembered takes are `remembered` (pruned to `config.cutoff(now)` first). `take` must have
/// been committed under this same configuration; a take of an earlier one gives nothing back,
/// which only the caller can know (`limiter.rs` compares epochs).
///
/// Pure: the caller commits a [`Undo::RollBack`] by moving the state from `take.end` to `to`
/// only while it is still `take.end` (else decides again), then calls
/// [`Remembered::commit`] with the decision.
pub(crate) fn undo(
    zero: u64,
    now: u64,
    config: &Config,
    take: &Take,
    remembered: &Remembered,
) -> Undo {
    if !take.may_give_back_at(now) {
        return Undo::Nothing;
    }
    if zero == take.end {
        // The top: `end`s strictly increase up the stack, and a take is canceled once.
        Undo::RollBack {
            to: remembered.bottom(take.prev),
        }
    } else if take.end > config.cutoff(now) {
        Undo::Remember
    } else {
        Undo::Forget
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// 1 ms a token, bursts of 3.
    fn ms_bucket() -> Config {
        Config::new(1000.0, 3, 1).unwrap()
    }

    const MS: u64 = 1_000_000;
    /// An instant well past the clock's base.
    const NOW: u64 = 1_000 * MS;

    fn ok(prev: u64, end: u64, at: u64, ready: bool, took: bool) -> Result<Take, Refusal> {
        Ok(Take {
            prev,
            end,
            at,
            ready,
            took,
        })
    }

    /// A row of the table: name, `zero`, `now`, configuration, `n`, limit, the decision.
    type Case<'a> = (
        &'a str,
        u64,
        u64,
        &'a Config,
        u32,
        Limit,
        Result<Take, Refusal>,
    );

    #[test]
    fn take_decides_each_case_of_the_model() {
        let c = ms_bucket();
        let full = 0; // `zero` long ago: the bucket is full
        let empty = NOW; // no tokens at NOW
        let owed = NOW + 2 * MS; // two tokens reserved ahead
        let unlimited = Config::new(f64::INFINITY, 0, 1).unwrap();
        let frozen = Config::new(0.0, 3, NOW).unwrap();
        #[rustfmt::skip]
        let cases: Vec<Case<'_>> = vec![
            // A full bucket is capped at `burst`: a take starts a bucket before now.
            ("full, 1", full, NOW, &c, 1, Limit::ReadyOnly, ok(0, NOW - 2 * MS, NOW, true, true)),
            ("full, the whole burst", full, NOW, &c, 3, Limit::ReadyOnly, ok(0, NOW, NOW, true, true)),
            ("n = 0 on a full bucket: normalises, takes nothing", full, NOW, &c, 0, Limit::ReadyOnly, ok(0, NOW - 3 * MS, NOW, true, false)),
            ("n above the burst", full, NOW, &c, 4, Limit::Any, Err(Refusal::ExceedsBurst(3))),
            ("empty, allow", empty, NOW, &c, 1, Limit::ReadyOnly, Err(Refusal::TooLate)),
            ("empty, reserve", empty, NOW, &c, 1, Limit::Any, ok(NOW, NOW + MS, NOW + MS, false, true)),
            ("empty, within exactly", empty, NOW, &c, 2, Limit::Within(2 * MS), ok(NOW, NOW + 2 * MS, NOW + 2 * MS, false, true)),
            ("empty, within too short", empty, NOW, &c, 2, Limit::Within(2 * MS - 1), Err(Refusal::TooLate)),
            ("one token earned, exactly", empty, NOW + MS, &c, 1, Limit::ReadyOnly, ok(NOW, NOW + MS, NOW + MS, true, true)),
            ("one nanosecond short", empty, NOW + MS - 1, &c, 1, Limit::ReadyOnly, Err(Refusal::TooLate)),
            ("n = 0 while owed: not ready", owed, NOW, &c, 0, Limit::ReadyOnly, Err(Refusal::TooLate)),
            ("n = 0 while owed, reserve: at the queue's end", owed, NOW, &c, 0, Limit::Any, ok(owed, owed, owed, false, false)),
            ("queued behind two", owed, NOW, &c, 3, Limit::Any, ok(owed, owed + 3 * MS, owed + 3 * MS, false, true)),
            // Instants going backwards: a `now` before the last take's sees no tokens
            // earned after it.
            ("now before zero", empty, NOW - 5 * MS, &c, 1, Limit::Any, ok(NOW, NOW + MS, NOW + MS, false, true)),
            ("now before zero, allow", empty, NOW - 5 * MS, &c, 1, Limit::ReadyOnly, Err(Refusal::TooLate)),
            ("unlimited", 42, NOW, &unlimited, u32::MAX, Limit::ReadyOnly, ok(42, 42, NOW, true, false)),
            ("zero rate, holds it", full, NOW + 99 * MS, &frozen, 2, Limit::ReadyOnly, ok(0, NOW - 1, NOW + 99 * MS, true, true)),
            ("zero rate, too few: never", NOW - 1, NOW, &frozen, 2, Limit::Any, Err(Refusal::Never)),
            ("zero rate, above the burst", full, NOW, &frozen, 4, Limit::Any, Err(Refusal::ExceedsBurst(3))),
        ];
        for (name, zero, now, config, n, limit, want) in cases {
            assert_eq!(take(zero, now, config, n, limit), want, "{name}");
        }
    }

    #[test]
    fn take_saturates_instead_of_overflowing() {
        let slow = Config::new(1e-300, u32::MAX, 1).unwrap();
        assert_eq!((slow.interval, slow.tau), (MAX_T, MAX_T));
        let t = take(0, NOW, &slow, u32::MAX, Limit::Any).unwrap();
        assert_eq!(t.end, MAX_T);
        assert!(!t.ready);
        let t = take(MAX_T, NOW, &slow, 1, Limit::Any).unwrap();
        assert_eq!((t.end, t.at), (MAX_T, MAX_T));
    }

    #[test]
    fn successive_takes_stack_and_never_exceed_burst_plus_rate() {
        // Takes at one instant: `end`s strictly increase, each from the last.
        let c = ms_bucket();
        let mut zero = 0;
        let mut ends = Vec::new();
        for _ in 0..5 {
            let t = take(zero, NOW, &c, 1, Limit::Any).unwrap();
            assert_eq!(t.prev, zero);
            zero = t.end;
            ends.push((t.end, t.ready));
        }
        let ready = ends.iter().filter(|(_, r)| *r).count();
        assert_eq!(ready, 3, "the burst is ready now, the rest queue");
        assert!(ends.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(zero, NOW + 2 * MS);
    }

    #[test]
    fn config_rounds_and_rejects() {
        assert_eq!(Config::new(3.0, 1, 1).unwrap().interval, 333_333_333);
        assert_eq!(Config::new(2e9, 1, 1).unwrap().interval, 1);
        assert_eq!(Config::new(1e-300, 1, 1).unwrap().interval, MAX_T);
        assert!(Config::new(f64::NAN, 1, 1).is_err());
        assert!(Config::new(-0.5, 1, 1).is_err());
        assert!(Config::new(1.0, 0, 1).is_err());
        assert!(Config::new(0.0, 0, 1).is_ok());
        assert!(Config::new(f64::INFINITY, 0, 1).is_ok());
    }

    #[test]
    fn tokens_and_zero_for_are_inverse() {
        let c = ms_bucket();
        for tokens in [-2.0, 0.0, 1.5, 3.0] {
            assert_eq!(c.tokens(c.zero_for(tokens, NOW), NOW), tokens);
        }
        assert_eq!(c.tokens(0, NOW), 3.0, "capped at the burst");
        let frozen = Config::new(0.0, 3, NOW).unwrap();
        assert_eq!(
            frozen.tokens(NOW - 2, NOW + 5 * MS),
            2.0,
            "a zero rate earns nothing"
        );
    }

    /// Applies `undo` the way a sole owner of the state would.
    fn cancel(zero: &mut u64, remembered: &mut Remembered, now: u64, c: &Config, t: &Take) -> Undo {
        remembered.prune(c.cutoff(now));
        let decision = undo(*zero, now, c, t, remembered);
        if let Undo::RollBack { to } = decision {
            assert_eq!(*zero, t.end);
            *zero = to;
        }
        remembered.commit(t, decision);
        decision
    }

    #[test]
    fn undo_pops_the_top_and_remembers_the_rest_in_any_order() {
        let c = ms_bucket();
        let start = NOW; // empty at NOW
        let mut zero = start;
        let mut takes = Vec::new();
        for _ in 0..4 {
            let t = take(zero, NOW, &c, 1, Limit::Any).unwrap();
            zero = t.end;
            takes.push(t);
        }
        let mut remembered = Remembered::default();
        // Not the top: remembered, nothing back yet.
        assert_eq!(
            cancel(&mut zero, &mut remembered, NOW, &c, &takes[1]),
            Undo::Remember
        );
        assert_eq!(
            cancel(&mut zero, &mut remembered, NOW, &c, &takes[2]),
            Undo::Remember
        );
        assert_eq!(zero, NOW + 4 * MS);
        assert_eq!(remembered.len(), 2);
        // The top: back to its `prev`, then past both remembered takes it uncovers.
        assert_eq!(
            cancel(&mut zero, &mut remembered, NOW, &c, &takes[3]),
            Undo::RollBack { to: takes[0].end }
        );
        assert_eq!(zero, NOW + MS);
        assert_eq!(remembered.len(), 0);
        // Exactly as if only the first take had been made.
        assert_eq!(
            take(zero, NOW, &c, 1, Limit::Any),
            take(takes[0].end, NOW, &c, 1, Limit::Any)
        );
    }

    #[test]
    fn undo_gives_nothing_back_after_the_time_to_act_or_for_nothing_taken() {
        let c = ms_bucket();
        let t = take(NOW, NOW, &c, 1, Limit::Any).unwrap();
        let remembered = Remembered::default();
        assert_eq!(undo(t.end, t.at + 1, &c, &t, &remembered), Undo::Nothing);
        assert_eq!(
            undo(t.end, t.at, &c, &t, &remembered),
            Undo::RollBack { to: NOW }
        );
        let zero_n = take(NOW, NOW, &c, 0, Limit::Any).unwrap();
        assert_eq!(
            undo(zero_n.end, NOW, &c, &zero_n, &remembered),
            Undo::Nothing
        );
        let unlimited = Config::new(f64::INFINITY, 0, 1).unwrap();
        let free = take(7, NOW, &unlimited, 5, Limit::Any).unwrap();
        assert_eq!(undo(7, NOW, &unlimited, &free, &remembered), Undo::Nothing);
    }

    #[test]
    fn undo_forgets_what_a_full_bucket_would_hold_anyway() {
        let c = ms_bucket();
        let first = take(NOW, NOW, &c, 1, Limit::Any).unwrap();
        let second = take(first.end, NOW, &c, 1, Limit::Any).unwrap();
        let mut remembered = Remembered::default();
        // Canceled a whole bucket after its end (and before its time to act, which a take
        // far in the past still has in this made-up case): not worth remembering.
        let late = Take {
            at: u64::MAX,
            ..first
        };
        assert_eq!(
            undo(second.end, first.end + c.tau, &c, &late, &remembered),
            Undo::Forget
        );
        // Remembered entries a whole bucket old are pruned.
        remembered.commit(&first, Undo::Remember);
        remembered.prune(c.cutoff(first.end + c.tau - 1));
        assert_eq!(remembered.len(), 1);
        remembered.prune(c.cutoff(first.end + c.tau));
        assert_eq!(remembered.len(), 0);
    }
}
