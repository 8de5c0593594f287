//! Property tests of the limiter's arithmetic on a fake clock (its `_at` methods).
//!
//! 1. Over any sequence of calls, the tokens admitted in any window of length `t` are at most
//!    `burst + rate · t` (an admission counts at the instant it may act).
//! 2. A call is never refused when the bucket holds the tokens it asks for, and never
//!    admitted when it does not.
//! 3. A canceled reservation gives back exactly what it took: a limiter that reserved and
//!    canceled behaves from then on exactly as a twin that never reserved.
//!
//! Rates are generated as whole nanoseconds per token (the limiter's own resolution), so the
//! bounds are exact.

use std::time::{Duration, Instant};

use ctxkit::rate::Limiter;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Allow(u32),
    Reserve(u32),
    /// Reserve, let `after` thousandths of an interval pass, then cancel.
    ReserveCancel(u32, u64),
}

/// (advance in thousandths of an interval, op), with n up to burst + 1.
fn ops(burst: u32) -> impl Strategy<Value = Vec<(u64, Op)>> {
    let n = 0..=burst + 1;
    let op = prop_oneof![
        3 => n.clone().prop_map(Op::Allow),
        1 => n.clone().prop_map(Op::Reserve),
        1 => (n, 0u64..2000).prop_map(|(n, after)| Op::ReserveCancel(n, after)),
    ];
    proptest::collection::vec((0u64..2500, op), 1..60)
}

fn config() -> impl Strategy<Value = (u64, u32)> {
    (
        prop_oneof![Just(1_000u64), Just(1_000_000), 1_000u64..5_000_000],
        1u32..8,
    )
}

/// A limiter's (interval, burst) and calls whose sizes go up to that burst + 1.
fn case() -> impl Strategy<Value = (u64, u32, Vec<(u64, Op)>)> {
    config().prop_flat_map(|(interval, burst)| (Just(interval), Just(burst), ops(burst)))
}

fn at(t0: Instant, ns: u64) -> Instant {
    t0 + Duration::from_nanos(ns)
}

/// Runs `op` at `now` on twins `a` and `b` (a reserve-and-cancel is only a reserve here) and
/// checks they answer alike.
fn same_op(a: &Limiter, b: &Limiter, now: Instant, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Allow(n) => {
            prop_assert_eq!(a.allow_n_at(now, n), b.allow_n_at(now, n));
        }
        Op::Reserve(n) | Op::ReserveCancel(n, _) => {
            let ra = a.reserve_n_at(now, n).map(|r| r.time_to_act());
            let rb = b.reserve_n_at(now, n).map(|r| r.time_to_act());
            prop_assert_eq!(ra, rb);
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn admitted_in_any_window_at_most_burst_plus_rate_times_length(
        (interval, burst, ops) in case(),
    ) {
        let t0 = Instant::now();
        let lim = Limiter::new_at(1e9 / interval as f64, burst, t0).unwrap();
        let mut now = 0u64;
        let mut admitted: Vec<(u64, u64)> = Vec::new(); // (ns since t0, tokens)
        for (advance, op) in ops {
            now += advance * interval / 1000;
            match op {
                Op::Allow(n) => {
                    // Property 2, both ways.
                    let held = lim.tokens_at(at(t0, now));
                    let ok = lim.allow_n_at(at(t0, now), n);
                    if n <= burst && held >= f64::from(n) {
                        prop_assert!(ok, "refused {n} while holding {held}");
                    }
                    if ok {
                        prop_assert!(held >= f64::from(n), "admitted {n} while holding {held}");
                        admitted.push((now, u64::from(n)));
                    }
                }
                Op::Reserve(n) => {
                    if let Some(r) = lim.reserve_n_at(at(t0, now), n) {
                        let act = r.time_to_act().duration_since(t0).as_nanos() as u64;
                        prop_assert!(act >= now);
                        admitted.push((act, u64::from(n)));
                    } else {
                        prop_assert!(n > burst);
                    }
                }
                Op::ReserveCancel(n, after) => {
                    if let Some(r) = lim.reserve_n_at(at(t0, now), n) {
                        let act = r.time_to_act().duration_since(t0).as_nanos() as u64;
                        now += after * interval / 1000;
                        r.cancel_at(at(t0, now));
                        if now > act {
                            admitted.push((act, u64::from(n))); // too late to cancel: it acted
                        }
                    }
                }
            }
        }
        admitted.sort_unstable();
        for (i, &(start, _)) in admitted.iter().enumerate() {
            let mut tokens = 0u64;
            for &(end, n) in &admitted[i..] {
                tokens += n;
                prop_assert!(
                    tokens * interval <= u64::from(burst) * interval + (end - start),
                    "{tokens} tokens in [{start}, {end}] ns at {interval} ns per token, burst {burst}"
                );
            }
        }
    }

    #[test]
    fn a_canceled_reservation_gives_back_exactly_what_it_took(
        (interval, burst, prefix, suffix) in config().prop_flat_map(|(interval, burst)| {
            (Just(interval), Just(burst), ops(burst), ops(burst))
        }),
        n in 0u32..8,
        after in 0u64..1000,
    ) {
        let t0 = Instant::now();
        let rate = 1e9 / interval as f64;
        let a = Limiter::new_at(rate, burst, t0).unwrap();
        let b = Limiter::new_at(rate, burst, t0).unwrap();
        let mut now = 0u64;
        // The same history on both (reservations kept).
        for (advance, op) in prefix {
            now += advance * interval / 1000;
            same_op(&a, &b, at(t0, now), &op)?;
        }
        // `a` reserves and cancels in time; `b` does nothing.
        let n = n.min(burst);
        let before = a.tokens_at(at(t0, now));
        let r = a.reserve_n_at(at(t0, now), n).unwrap();
        let act = r.time_to_act().duration_since(t0).as_nanos() as u64;
        let cancel_at = now + (act - now) * after / 1000;
        r.cancel_at(at(t0, cancel_at));
        prop_assert_eq!(a.tokens_at(at(t0, now)), before);
        now = cancel_at;
        // From then on they are the same limiter.
        for (advance, op) in suffix {
            now += advance * interval / 1000;
            prop_assert_eq!(a.tokens_at(at(t0, now)), b.tokens_at(at(t0, now)));
            same_op(&a, &b, at(t0, now), &op)?;
        }
    }

    #[test]
    fn a_cancel_never_gives_back_more_than_it_took(
        (interval, burst, ops) in case(),
    ) {
        let t0 = Instant::now();
        let lim = Limiter::new_at(1e9 / interval as f64, burst, t0).unwrap();
        let mut now = 0u64;
        let mut held = Vec::new();
        for (advance, op) in ops {
            now += advance * interval / 1000;
            match op {
                Op::Allow(n) => {
                    lim.allow_n_at(at(t0, now), n);
                }
                Op::Reserve(n) => held.extend(lim.reserve_n_at(at(t0, now), n)),
                Op::ReserveCancel(..) => {
                    if let Some(r) = held.pop() {
                        let before = lim.tokens_at(at(t0, now));
                        let n = f64::from(r.tokens());
                        r.cancel_at(at(t0, now));
                        let after = lim.tokens_at(at(t0, now));
                        prop_assert!(after >= before && after <= before + n + 1e-9,
                            "{before} -> {after} canceling {n}");
                    }
                }
            }
        }
    }
}
