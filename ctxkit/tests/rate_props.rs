//! Property tests of the limiter's arithmetic on a fake clock (its `_at` methods).
//!
//! 1. Over any sequence of calls, the tokens admitted in any window of length `t` are at most
//!    `burst + rate · t` (an admission counts at the instant it may act).
//! 2. A call is never refused when the bucket holds the tokens it asks for, and never
//!    admitted when it does not.
//! 3. A canceled reservation gives back exactly what it took: a limiter that reserved and
//!    canceled behaves from then on exactly as a twin that never reserved.
//! 4. Property 1 holds for any interleaving of allows, reservations and cancels of held
//!    reservations in any order, with instants that sometimes go backwards (as the `now` of
//!    two threads racing on one limiter does). With rate and burst changes among them, it
//!    holds for each configuration: the takes made under it never exceed its own
//!    `burst + rate · t` (a reservation keeps the time it was promised when the rate changes,
//!    as in Go, so takes made under different configurations are not bounded together).
//! 5. Reservations made on top of any history and all canceled in time, in any order and at
//!    any instants before their time to act, leave the limiter exactly as a twin that never
//!    made them: the same tokens, and the same answers to every later call.
//!
//! Rates are generated as whole nanoseconds per token (the limiter's own resolution), so the
//! bounds are exact.

use std::time::{Duration, Instant};

use ctxkit::rate::{Limiter, Reservation};
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
                    "{tokens} tokens in [{start}, {end}] ns, {interval} ns per token, burst {burst}"
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

// ===== any interleaving, cancels in any order =====

/// One step of an interleaving: the instant moves on, then one call.
#[derive(Clone, Debug)]
enum Step {
    Allow(u32),
    /// Reserve and hold the reservation.
    Reserve(u32),
    /// Cancel the held reservation at this index (modulo how many are held).
    Cancel(usize),
    /// Set the rate to one token per this many nanoseconds (at the latest instant so far).
    SetInterval(u64),
    /// Set the burst (at the latest instant so far).
    SetBurst(u32),
}

/// (advance in thousandths of an interval, how far back this call's instant is in thousandths
/// of an interval (0 most of the time), step).
type Timed = (u64, u64, Step);

const INTERVALS: [u64; 3] = [1_000, 7_919, 1_000_000];

fn steps(max_n: u32, configs: bool, back: bool) -> impl Strategy<Value = Vec<Timed>> {
    let n = 0..=max_n + 1;
    let cfg_weight = if configs { 1 } else { 0 };
    let step = prop_oneof![
        3 => n.clone().prop_map(Step::Allow),
        3 => n.prop_map(Step::Reserve),
        3 => any::<usize>().prop_map(Step::Cancel),
        cfg_weight => proptest::sample::select(&INTERVALS[..]).prop_map(Step::SetInterval),
        cfg_weight => (1..=max_n).prop_map(Step::SetBurst),
    ];
    let back = if back {
        prop_oneof![4 => Just(0u64), 1 => 0u64..5000].boxed()
    } else {
        Just(0u64).boxed()
    };
    proptest::collection::vec((0u64..2500, back, step), 1..80)
}

/// Checks that the admissions `(instant, tokens)` never exceed `burst + t / interval` tokens
/// in any window `[start, start + t]`.
fn check_windows(
    admitted: &mut [(u64, u64)],
    interval: u64,
    burst: u32,
) -> Result<(), TestCaseError> {
    admitted.sort_unstable();
    for (i, &(start, _)) in admitted.iter().enumerate() {
        let mut tokens = 0u64;
        for &(end, n) in &admitted[i..] {
            tokens += n;
            prop_assert!(
                u128::from(tokens) * u128::from(interval)
                    <= u128::from(burst) * u128::from(interval) + u128::from(end - start),
                "{tokens} tokens in [{start}, {end}] ns at {interval} ns per token, burst {burst}"
            );
        }
    }
    Ok(())
}

/// The admissions `(instant, tokens)` of the takes made under one configuration.
struct Epoch {
    interval: u64,
    burst: u32,
    admitted: Vec<(u64, u64)>,
}

/// Runs `steps` on one limiter, returning for each configuration in turn the admissions of the
/// takes made under it: a successful allow at its instant, and a reservation at its time to act
/// unless it was canceled in time (held ones at the end count as acting). Setters run at the
/// latest instant so far.
fn run_interleaving(
    interval: u64,
    burst: u32,
    steps: &[Timed],
) -> Result<Vec<Epoch>, TestCaseError> {
    // Far enough from the clock's base that instants may go back.
    let t0 = Instant::now() + Duration::from_secs(10);
    let lim = Limiter::new_at(1e9 / interval as f64, burst, t0).unwrap();
    let mut epochs = vec![Epoch {
        interval,
        burst,
        admitted: Vec::new(),
    }];
    let mut cur = interval;
    let mut latest = 0u64;
    // (reservation, time to act, the epoch it was made in)
    let mut held = Vec::new();
    for (advance, back, step) in steps {
        latest += advance * cur / 1000;
        let now = latest.saturating_sub(back * cur / 1000);
        let epoch = epochs.len() - 1;
        match *step {
            Step::Allow(n) => {
                if lim.allow_n_at(at(t0, now), n) {
                    epochs[epoch].admitted.push((now, u64::from(n)));
                }
            }
            Step::Reserve(n) => {
                if let Some(r) = lim.reserve_n_at(at(t0, now), n) {
                    let act = r.time_to_act().duration_since(t0).as_nanos() as u64;
                    prop_assert!(act >= now);
                    held.push((r, act, epoch));
                }
            }
            Step::Cancel(i) => {
                if !held.is_empty() {
                    let (r, act, made_in) = held.swap_remove(i % held.len());
                    let n = u64::from(r.tokens());
                    r.cancel_at(at(t0, now));
                    if now > act {
                        epochs[made_in].admitted.push((act, n)); // too late to cancel: it acted
                    }
                }
            }
            Step::SetInterval(i) => {
                lim.set_rate_at(at(t0, latest), 1e9 / i as f64).unwrap();
                cur = i;
                let burst = epochs[epoch].burst;
                epochs.push(Epoch {
                    interval: i,
                    burst,
                    admitted: Vec::new(),
                });
            }
            Step::SetBurst(b) => {
                lim.set_burst_at(at(t0, latest), b).unwrap();
                epochs.push(Epoch {
                    interval: cur,
                    burst: b,
                    admitted: Vec::new(),
                });
            }
        }
    }
    for (r, act, made_in) in held {
        epochs[made_in].admitted.push((act, u64::from(r.tokens())));
    }
    Ok(epochs)
}

proptest! {
    #[test]
    fn any_interleaving_with_cancels_in_any_order_never_over_admits(
        (interval, burst, steps) in config().prop_flat_map(|(interval, burst)| {
            (Just(interval), Just(burst), steps(burst, false, true))
        }),
    ) {
        let mut epochs = run_interleaving(interval, burst, &steps)?;
        prop_assert_eq!(epochs.len(), 1);
        check_windows(&mut epochs[0].admitted, interval, burst)?;
    }

    #[test]
    fn with_rate_and_burst_changes_each_configuration_never_over_admits(
        (interval, burst, steps) in (proptest::sample::select(&INTERVALS[..]), 1u32..8)
            .prop_flat_map(|(interval, burst)| {
                (Just(interval), Just(burst), steps(8, true, true))
            }),
    ) {
        for mut epoch in run_interleaving(interval, burst, &steps)? {
            check_windows(&mut epoch.admitted, epoch.interval, epoch.burst)?;
        }
    }
}

// ===== canceling everything restores the tokens =====

/// A step of the block of reservations that all get canceled in time.
#[derive(Clone, Debug)]
enum Undo {
    Reserve(u32),
    /// Cancel the outstanding reservation at this index (modulo how many are outstanding).
    Cancel(usize),
    /// Move the clock on by this many thousandths of the time left before the earliest
    /// outstanding reservation acts (or of an interval, when none is outstanding).
    Advance(u64),
}

fn undo_steps(burst: u32) -> impl Strategy<Value = Vec<Undo>> {
    let step = prop_oneof![
        3 => (0..=burst).prop_map(Undo::Reserve),
        2 => any::<usize>().prop_map(Undo::Cancel),
        2 => (0u64..=1000).prop_map(Undo::Advance),
    ];
    proptest::collection::vec(step, 1..40)
}

/// Runs a step of a shared history on twins `a` and `b` (each holding its own reservations)
/// at `now`, checking they answer alike.
fn same_step<'a>(
    a: &'a Limiter,
    b: &'a Limiter,
    held: &mut Vec<(Reservation<'a>, Reservation<'a>)>,
    now: Instant,
    step: &Step,
) -> Result<(), TestCaseError> {
    match *step {
        Step::Allow(n) => prop_assert_eq!(a.allow_n_at(now, n), b.allow_n_at(now, n)),
        Step::Reserve(n) => match (a.reserve_n_at(now, n), b.reserve_n_at(now, n)) {
            (Some(ra), Some(rb)) => {
                prop_assert_eq!(ra.time_to_act(), rb.time_to_act());
                held.push((ra, rb));
            }
            (None, None) => {}
            (ra, rb) => prop_assert!(false, "{ra:?} vs {rb:?}"),
        },
        Step::Cancel(i) => {
            if !held.is_empty() {
                let (ra, rb) = held.swap_remove(i % held.len());
                ra.cancel_at(now);
                rb.cancel_at(now);
            }
        }
        Step::SetInterval(_) | Step::SetBurst(_) => {}
    }
    prop_assert_eq!(a.tokens_at(now), b.tokens_at(now));
    Ok(())
}

proptest! {
    #[test]
    fn canceling_every_reservation_in_any_order_restores_the_tokens(
        (interval, burst, prefix, block, suffix) in config().prop_flat_map(|(interval, burst)| {
            (
                Just(interval),
                Just(burst),
                steps(burst, false, false),
                undo_steps(burst),
                steps(burst, false, false),
            )
        }),
        order in any::<u64>(),
    ) {
        let t0 = Instant::now();
        let rate = 1e9 / interval as f64;
        let a = Limiter::new_at(rate, burst, t0).unwrap();
        let b = Limiter::new_at(rate, burst, t0).unwrap();
        let mut now = 0u64;
        let mut held = Vec::new();
        // A shared history, reservations held and canceled alike on both.
        for (advance, _, step) in &prefix {
            now += advance * interval / 1000;
            same_step(&a, &b, &mut held, at(t0, now), step)?;
        }
        // `a` alone reserves and cancels, every cancel in time, in any order.
        let before = a.tokens_at(at(t0, now));
        let mut outstanding: Vec<(Reservation<'_>, u64)> = Vec::new();
        for step in &block {
            match *step {
                Undo::Reserve(n) => {
                    let r = a.reserve_n_at(at(t0, now), n).unwrap();
                    let act = r.time_to_act().duration_since(t0).as_nanos() as u64;
                    outstanding.push((r, act));
                }
                Undo::Cancel(i) => {
                    if !outstanding.is_empty() {
                        let (r, _) = outstanding.swap_remove(i % outstanding.len());
                        r.cancel_at(at(t0, now));
                    }
                }
                Undo::Advance(k) => {
                    let room = outstanding.iter().map(|&(_, act)| act - now).min();
                    now += room.unwrap_or(interval) * k / 1000;
                }
            }
        }
        // The rest, in an order drawn from `order` (a Fisher-Yates shuffle).
        let mut seed = order;
        while !outstanding.is_empty() {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let (r, _) = outstanding.swap_remove((seed >> 33) as usize % outstanding.len());
            r.cancel_at(at(t0, now));
        }
        prop_assert_eq!(
            a.tokens_at(at(t0, now)),
            b.tokens_at(at(t0, now)),
            "before the block: {}",
            before
        );
        // From then on they are the same limiter, held reservations and cancels included.
        for (advance, _, step) in &suffix {
            now += advance * interval / 1000;
            same_step(&a, &b, &mut held, at(t0, now), step)?;
        }
    }
}
