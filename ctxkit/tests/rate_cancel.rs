//! Canceled reservations and waits give their tokens back: in any order, from a
//! context canceled on another thread, and from a wait future dropped mid-sleep.
//!
//! The `_at` tests drive made-up instants and compare with a twin limiter that never made the
//! canceled reservations. The real-clock tests use rates slow enough (one token an hour) that
//! no wait can finish while the test runs, wait for state (never for a fixed time) under a
//! watchdog, and assert the tokens, never a timing.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use ctxkit::rate::{Limiter, Reservation};
use ctxkit::Context;

const MS: Duration = Duration::from_millis(1);

/// One token an hour: a wait on an empty bucket cannot end while a test runs.
const SLOW: f64 = 1.0 / 3600.0;

/// Waits until `done(tokens)` holds, polling; panics with the limiter's state after 20 s.
/// Waits (bounded by `common::wait_until`'s patience) until `done` holds for the limiter's
/// tokens.
fn wait_for(lim: &Limiter, what: &str, done: impl Fn(f64) -> bool) {
    common::wait_until(what, || lim.tokens(), |&tokens| done(tokens));
}

// ===== on the `_at` core =====

/// The reproduction on made-up instants: 1 a second, burst 1, three waits queued
/// behind a spent token and all canceled in the order they came. Before the fix, `tokens`
/// was -1.94 afterwards and the next reservation acted at t0 + 3 s.
#[test]
fn three_canceled_waits_give_every_token_back() {
    let _leaks = common::no_leaks();
    let t0 = Instant::now();
    let lim = Limiter::new_at(1.0, 1, t0).unwrap();
    let twin = Limiter::new_at(1.0, 1, t0).unwrap();
    assert!(lim.allow_at(t0) && twin.allow_at(t0));
    let waits: Vec<_> = (0..3)
        .map(|_| lim.reserve_n_at(t0 + 30 * MS, 1).unwrap())
        .collect();
    assert_eq!(waits[2].time_to_act(), t0 + Duration::from_secs(3));
    for wait in waits {
        wait.cancel_at(t0 + 60 * MS);
    }
    let now = t0 + 70 * MS;
    assert_eq!(lim.tokens_at(now), twin.tokens_at(now));
    assert!((lim.tokens_at(now) - 0.07).abs() < 1e-9);
    let next = lim.reserve_n_at(now, 1).unwrap();
    assert_eq!(next.time_to_act(), t0 + Duration::from_secs(1));
}

/// Reserves `sizes` at `now` on `lim`, then cancels them in `order` (indices), returning the
/// tokens at `now` after each cancel.
fn reserve_then_cancel(lim: &Limiter, now: Instant, sizes: &[u32], order: &[usize]) -> Vec<f64> {
    let mut held: Vec<Option<Reservation<'_>>> = sizes
        .iter()
        .map(|&n| Some(lim.reserve_n_at(now, n).unwrap()))
        .collect();
    order
        .iter()
        .map(|&i| {
            held[i].take().unwrap().cancel_at(now);
            lim.tokens_at(now)
        })
        .collect()
}

fn queue_limiter(t0: Instant) -> Limiter {
    let lim = Limiter::new_at(10.0, 3, t0).unwrap();
    assert!(lim.allow_n_at(t0, 2)); // 1 token left, so some reservations are ready
    lim
}

const SIZES: [u32; 6] = [1, 3, 2, 1, 3, 1];

#[test]
fn canceling_in_reverse_order_gives_each_back_at_once() {
    let _leaks = common::no_leaks();
    let t0 = Instant::now();
    let lim = queue_limiter(t0);
    let before = lim.tokens_at(t0);
    let after = reserve_then_cancel(&lim, t0, &SIZES, &[5, 4, 3, 2, 1, 0]);
    // Each is the last one standing when canceled: its tokens come back at once.
    let mut want = before - SIZES.iter().map(|&n| f64::from(n)).sum::<f64>();
    for (i, got) in (0..6).rev().zip(after) {
        want += f64::from(SIZES[i]);
        assert!(
            (got - want).abs() < 1e-9,
            "after canceling #{i}: {got}, want {want}"
        );
    }
}

#[test]
fn canceling_in_arrival_order_gives_everything_back_with_the_last() {
    let _leaks = common::no_leaks();
    let t0 = Instant::now();
    let lim = queue_limiter(t0);
    let before = lim.tokens_at(t0);
    let after = reserve_then_cancel(&lim, t0, &SIZES, &[0, 1, 2, 3, 4, 5]);
    let spent = before - SIZES.iter().map(|&n| f64::from(n)).sum::<f64>();
    // Nothing while a later one stands; everything when the last one goes.
    for got in &after[..5] {
        assert!((got - spent).abs() < 1e-9, "{after:?}");
    }
    assert_eq!(after[5], before);
}

#[test]
fn canceling_in_random_orders_gives_everything_back() {
    let _leaks = common::no_leaks();
    let seed = Instant::now().elapsed().as_nanos() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    println!("seed {seed}");
    let mut state = seed;
    let mut next = move |bound: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize % bound
    };
    for round in 0..200 {
        let t0 = Instant::now();
        let lim = queue_limiter(t0);
        let twin = queue_limiter(t0);
        let sizes: Vec<u32> = (0..1 + next(12)).map(|_| 1 + next(3) as u32).collect();
        let mut order: Vec<usize> = (0..sizes.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, next(i + 1));
        }
        let after = reserve_then_cancel(&lim, t0, &sizes, &order);
        assert_eq!(
            after.last().copied(),
            Some(twin.tokens_at(t0)),
            "seed {seed}, round {round}: sizes {sizes:?}, order {order:?}, tokens {after:?}"
        );
        // And the limiter answers as the twin from then on.
        let (a, b) = (lim.reserve_n_at(t0, 3), twin.reserve_n_at(t0, 3));
        assert_eq!(a.map(|r| r.time_to_act()), b.map(|r| r.time_to_act()));
    }
}

#[test]
fn a_reservation_still_standing_keeps_the_ones_before_it_spent() {
    let _leaks = common::no_leaks();
    let t0 = Instant::now();
    let lim = Limiter::new_at(10.0, 1, t0).unwrap();
    assert!(lim.allow_at(t0));
    let a = lim.reserve_n_at(t0, 1).unwrap(); // t0 + 100 ms
    let b = lim.reserve_n_at(t0, 1).unwrap(); // t0 + 200 ms
    let keep = lim.reserve_n_at(t0, 1).unwrap(); // t0 + 300 ms
    let c = lim.reserve_n_at(t0, 1).unwrap(); // t0 + 400 ms
    a.cancel_at(t0);
    b.cancel_at(t0);
    c.cancel_at(t0); // the last: only its own token comes back, `keep` stands before it
    assert_eq!(lim.tokens_at(t0), -3.0);
    // `keep`'s time was promised after `a` and `b`: their tokens stay spent.
    let next = lim.reserve_n_at(t0, 1).unwrap();
    assert_eq!(next.time_to_act(), t0 + 400 * MS);
    assert_eq!(keep.time_to_act(), t0 + 300 * MS);
    // Once `keep` and `next` go too, everything is back.
    next.cancel_at(t0);
    keep.cancel_at(t0);
    assert_eq!(lim.tokens_at(t0), 0.0);
}

#[test]
fn an_allow_after_a_reservation_keeps_it_spent() {
    let _leaks = common::no_leaks();
    let t0 = Instant::now();
    let lim = Limiter::new_at(10.0, 3, t0).unwrap();
    let r = lim.reserve_n_at(t0, 1).unwrap(); // ready now
    assert!(lim.allow_at(t0)); // placed after `r`
    r.cancel_at(t0);
    assert_eq!(lim.tokens_at(t0), 1.0, "the allow depends on `r`'s token");
}

/// The case the property test found for Go's partial give-back (x/time `CancelAt`): burst 2,
/// one token a microsecond. A reservation of 2 acts at 0; an allow at 1.001 µs takes a token
/// after it; then the reservation is canceled at instant 0 (another thread's `now`). Go gives
/// 1 token back (2, less 1 reserved after), after which a reservation of 2 at 1.001 µs acts
/// at 2 µs: 3 tokens in 0.999 µs, above `burst + rate · t` = 2.999. ctxkit gives nothing back
/// while the allow stands, and the reservation acts at 3 µs.
#[test]
fn no_partial_give_back_that_would_over_admit() {
    let _leaks = common::no_leaks();
    let t0 = Instant::now();
    let ns = |n: u64| t0 + Duration::from_nanos(n);
    let lim = Limiter::new_at(1e6, 2, t0).unwrap();
    let r = lim.reserve_n_at(ns(0), 2).unwrap();
    assert_eq!(r.time_to_act(), ns(0));
    assert!(lim.allow_n_at(ns(1001), 1));
    r.cancel_at(ns(0));
    let next = lim.reserve_n_at(ns(1001), 2).unwrap();
    assert_eq!(next.time_to_act(), ns(3000));
}

#[test]
fn a_rate_change_keeps_earlier_reservations_spent_but_an_idle_setter_does_not() {
    let _leaks = common::no_leaks();
    let t0 = Instant::now();
    let lim = Limiter::new_at(10.0, 1, t0).unwrap();
    assert!(lim.allow_at(t0));
    let r = lim.reserve_n_at(t0, 1).unwrap();
    lim.set_rate_at(t0, 10).unwrap(); // changes nothing
    lim.set_burst_at(t0, 1).unwrap(); // changes nothing
    r.cancel_at(t0);
    assert_eq!(lim.tokens_at(t0), 0.0, "no change: the token is back");

    let r = lim.reserve_n_at(t0, 1).unwrap();
    lim.set_rate_at(t0, 20).unwrap(); // -1 token, now at 20 a second
    r.cancel_at(t0);
    assert_eq!(
        lim.tokens_at(t0),
        -1.0,
        "made before the change: stays spent"
    );
    assert_eq!(lim.tokens_at(t0 + 50 * MS), 0.0);
}

// ===== on the real clock =====

/// The reproduction with real async waits, each canceled through its own context, in
/// the order they came. Before the fix `tokens()` was about -1.9 afterwards.
#[test]
fn canceled_async_waits_give_every_token_back() {
    let _leaks = common::no_leaks();
    let lim = Arc::new(Limiter::new(SLOW, 1).unwrap());
    assert!(lim.allow());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut waits = Vec::new();
    for queued in 1..=3 {
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        let lim2 = lim.clone();
        let task = rt.spawn(async move { lim2.wait(&ctx).await });
        // In arrival order: the next one starts after this one has reserved.
        wait_for(&lim, "reservation", |t| t < 0.5 - f64::from(queued));
        waits.push((cancel, task));
    }
    for (cancel, task) in waits {
        cancel.cancel();
        let result = rt.block_on(task).unwrap();
        assert!(result.unwrap_err().is_canceled());
    }
    // The bucket is as if the waits had never been: the one token spent, refilling.
    assert!(lim.tokens() >= 0.0, "{lim:?}");
}

/// A multi-thread runtime shut down under three waiting tasks drops their futures, and each
/// dropped wait cancels its reservation, whatever the order the runtime drops them in. Before
/// the fix `tokens()` was -0.98 or -1.98 afterwards, depending on that order.
#[test]
fn a_runtime_dropped_under_waiting_tasks_gives_every_token_back() {
    let _leaks = common::no_leaks();
    let lim = Arc::new(Limiter::new(SLOW, 1).unwrap());
    assert!(lim.allow());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for queued in 1..=3 {
        let lim2 = lim.clone();
        drop(rt.spawn(async move { lim2.wait(&Context::background()).await }));
        wait_for(&lim, "reservation", |t| t < 0.5 - f64::from(queued));
    }
    // Dropping the runtime waits for its workers; the watchdog bounds that.
    let (done, dropped) = mpsc::channel();
    let dropper = std::thread::spawn(move || {
        drop(rt);
        done.send(()).unwrap();
    });
    dropped
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("watchdog: the runtime did not shut down in 20 s: {lim:?}"));
    dropper.join().unwrap();
    assert!(lim.tokens() >= 0.0, "{lim:?}");
}

/// Three wait futures polled until they sleep, then dropped in the order they came.
#[test]
fn wait_futures_dropped_mid_sleep_give_every_token_back() {
    let _leaks = common::no_leaks();
    let lim = Limiter::new(SLOW, 1).unwrap();
    assert!(lim.allow());
    let ctx = Context::background();
    futures::executor::block_on(async {
        let mut waits = Vec::new();
        for _ in 0..3 {
            let mut wait = Box::pin(lim.wait(&ctx));
            assert!(futures::poll!(wait.as_mut()).is_pending());
            waits.push(wait);
        }
        assert!(lim.tokens() < -2.5, "all three reserved: {lim:?}");
        for wait in waits {
            drop(wait);
        }
    });
    assert!(lim.tokens() >= 0.0, "{lim:?}");
}

/// Three threads blocked in `blocking_wait`, each canceled from this thread through its
/// context, in the order they came.
#[test]
fn blocking_waits_canceled_from_another_thread_give_every_token_back() {
    let _leaks = common::no_leaks();
    let lim = Arc::new(Limiter::new(SLOW, 1).unwrap());
    assert!(lim.allow());
    let mut waiters = Vec::new();
    for queued in 1..=3 {
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        let lim2 = lim.clone();
        let thread = std::thread::spawn(move || lim2.blocking_wait(&ctx));
        wait_for(&lim, "reservation", |t| t < 0.5 - f64::from(queued));
        waiters.push((cancel, thread));
    }
    for (cancel, thread) in waiters {
        cancel.cancel();
        assert!(thread.join().unwrap().unwrap_err().is_canceled());
    }
    assert!(lim.tokens() >= 0.0, "{lim:?}");
}

// ===== threads racing =====

/// Four threads reserve and cancel, in random orders, on a limiter whose bucket is empty (so
/// every reservation waits an hour and every cancel is in time). Their takes and rollbacks
/// race; once all are canceled, every token is back.
#[test]
fn racing_reserves_and_cancels_give_every_token_back() {
    let _leaks = common::no_leaks();
    let lim = Arc::new(Limiter::new(SLOW, 4).unwrap());
    assert!(lim.allow_n(4));
    let threads: Vec<_> = (0..4u64)
        .map(|id| {
            let lim = lim.clone();
            std::thread::spawn(move || {
                let mut state = 0x2545_f491_4f6c_dd1d ^ id;
                let mut next = move |bound: usize| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as usize % bound
                };
                let mut held = Vec::new();
                for _ in 0..3000 {
                    if held.len() < 8 && (held.is_empty() || next(2) == 0) {
                        held.push(lim.reserve_n(1 + next(3) as u32).unwrap());
                    } else {
                        let r: Reservation<'_> = held.swap_remove(next(held.len()));
                        r.cancel();
                    }
                }
                while let Some(r) = held.pop() {
                    r.cancel();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(lim.tokens() >= 0.0, "{lim:?}");
}

/// Two threads call `allow` while a third reserves and cancels at once. A reservation canceled
/// after its time to act counts as admitted; the total stays within `burst + rate · t`.
#[test]
fn cancels_racing_allows_never_over_admit() {
    let _leaks = common::no_leaks();
    const RATE: f64 = 2_000.0;
    const BURST: u32 = 20;
    let lim = Arc::new(Limiter::new(RATE, BURST).unwrap());
    let start = Instant::now();
    let run_for = Duration::from_millis(200);
    let allowers: Vec<_> = (0..2)
        .map(|_| {
            let lim = lim.clone();
            std::thread::spawn(move || {
                let mut admitted = 0u64;
                while start.elapsed() < run_for {
                    admitted += u64::from(lim.allow());
                }
                admitted
            })
        })
        .collect();
    let canceller = {
        let lim = lim.clone();
        std::thread::spawn(move || {
            let mut admitted = 0u64;
            while start.elapsed() < run_for {
                let r = lim.reserve_n(2).unwrap();
                let now = Instant::now();
                if now > r.time_to_act() {
                    admitted += 2; // too late to cancel: it counts as acted
                }
                r.cancel_at(now);
            }
            admitted
        })
    };
    let mut admitted: u64 = allowers.into_iter().map(|t| t.join().unwrap()).sum();
    admitted += canceller.join().unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(
        admitted as f64 <= f64::from(BURST) + RATE * elapsed + 2.0,
        "{admitted} in {elapsed} s"
    );
}
