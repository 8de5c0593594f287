//! Go's own tests of `golang.org/x/time/rate`, written anew for ctxkit's `Limiter`.
//!
//! Source: `rate/rate_test.go` of <https://go.googlesource.com/time> (x/time v0.5). The cases
//! (their limiters, instants and expected outcomes) are Go's; the code is new. Go's code is
//! under this licence:
//!
//! > Copyright 2015 The Go Authors. All rights reserved. Use of this source code is governed by
//! > a BSD-style license that can be found in the LICENSE file
//! > (<https://go.googlesource.com/time/+/refs/heads/master/LICENSE>).
//!
//! The `_at` methods stand in for Go's `AllowN(t, n)` / `reserveN(t, n)` / `CancelAt(t)`, so
//! these run on made-up instants. Where ctxkit differs on purpose the test says so and expects
//! ctxkit's answer. Two differences:
//!
//! * when the instant passed in goes *backwards*, Go keeps the tokens it had earned at the
//!   later instant, and ctxkit does not (it never admits more than `burst + rate · t` over any
//!   window, even for such calls);
//! * a canceled reservation with later reservations still standing gives nothing back at once
//!   (Go gives back its tokens less those reserved after it); it gives everything back once
//!   the later ones are canceled too. Go's partial give-back can admit more than
//!   `burst + rate · t` (`tests/rate_cancel.rs` has the case) and loses the rest of the tokens
//!   for good. A reservation made before a rate or burst change gives nothing back after it
//!   (Go converts its tokens at the new rate). See `Reservation::cancel_at`.
//!
//! `TestEvery` has no counterpart (there is no `Every`), and `TestLongRunningQPS` runs for 1 s
//! instead of 5 s.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctxkit::rate::{Limiter, Reservation};
use ctxkit::Context;

const D: Duration = Duration::from_millis(100);

/// `t(k)` = t0 + k·d, on one shared base.
struct Clock(Instant);

impl Clock {
    fn new() -> Clock {
        Clock(Instant::now())
    }

    fn t(&self, k: u32) -> Instant {
        self.0 + D * k
    }

    /// Multiples of d since t0, rounded to the nearest (Go's `dSince`).
    fn d_since(&self, at: Instant) -> i64 {
        let nanos = at.duration_since(self.0).as_nanos() as i64;
        (nanos + D.as_nanos() as i64 / 2) / D.as_nanos() as i64
    }
}

fn run(lim: &Limiter, c: &Clock, allows: &[(u32, u32, bool)]) {
    for (i, &(t, n, ok)) in allows.iter().enumerate() {
        assert_eq!(
            lim.allow_n_at(c.t(t), n),
            ok,
            "step {i}: allow_n_at(t{t}, {n})"
        );
    }
}

/// Reserves `n` at `t(at)`; expects `Some` acting at `t(act)`, or `None` when `act` is `None`.
fn reserve<'a>(
    lim: &'a Limiter,
    c: &Clock,
    at: u32,
    n: u32,
    act: Option<u32>,
) -> Option<Reservation<'a>> {
    let r = lim.reserve_n_at(c.t(at), n);
    match (act, &r) {
        (Some(act), Some(r)) => assert_eq!(
            c.d_since(r.time_to_act()),
            i64::from(act),
            "reserve_n_at(t{at}, {n}) acts at t{}, want t{act}",
            c.d_since(r.time_to_act())
        ),
        (None, None) => {}
        _ => panic!("reserve_n_at(t{at}, {n}) = {r:?}, want {act:?}"),
    }
    r
}

#[test]
fn limiter_burst_1() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 1, c.t(0)).unwrap();
    run(
        &lim,
        &c,
        &[
            (0, 1, true),
            (0, 1, false),
            (0, 1, false),
            (1, 1, true),
            (1, 1, false),
            (1, 1, false),
            (2, 2, false), // burst size is 1, so n=2 always fails
            (2, 1, true),
            (2, 1, false),
        ],
    );
}

#[test]
fn limiter_burst_3() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 3, c.t(0)).unwrap();
    run(
        &lim,
        &c,
        &[
            (0, 2, true),
            (0, 2, false),
            (0, 1, true),
            (0, 1, false),
            (1, 4, false),
            (2, 1, true),
            (3, 1, true),
            (4, 1, true),
            (4, 1, true),
            (4, 1, false),
            (4, 1, false),
            (9, 3, true),
            (9, 0, true),
        ],
    );
}

#[test]
fn limiter_jump_backwards() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 3, c.t(0)).unwrap();
    run(
        &lim,
        &c,
        &[
            (1, 1, true),  // start at t1
            (0, 1, true),  // jump back to t0: Go keeps 2 tokens, ctxkit 1
            (0, 1, false), // Go: true (ctxkit differs on purpose, see the header)
            (0, 1, false),
            (0, 1, false),
            (1, 1, true), // got a token
            (1, 1, false),
            (1, 1, false),
            (2, 1, true), // got another token
            (2, 1, false),
            (2, 1, false),
        ],
    );
}

/// golang.org/issues/34861: no rounding error turns the first token into less than one.
#[test]
fn limiter_no_truncation_errors() {
    assert!(Limiter::new(0.769_230_769_230_769_3, 1).unwrap().allow());
}

#[test]
fn simultaneous_requests() {
    const BURST: u32 = 5;
    const REQUESTS: usize = 15;
    let lim = Arc::new(Limiter::new(1.0, BURST).unwrap()); // very slow to refill
    let ok = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (lim, ok) = (lim.clone(), ok.clone());
            std::thread::spawn(move || {
                if lim.allow() {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(ok.load(Ordering::Relaxed), BURST);
}

#[test]
fn long_running_qps() {
    const RATE: f64 = 100.0;
    const BURST: u32 = 100;
    let lim = Limiter::new(RATE, BURST).unwrap();
    let start = Instant::now();
    let mut ok = 0u32;
    while start.elapsed() < Duration::from_secs(1) {
        ok += u32::from(lim.allow());
        std::thread::sleep(Duration::from_millis(2));
    }
    let ideal = f64::from(BURST) + RATE * start.elapsed().as_secs_f64();
    // Never more than allowed; close to it (looser than Go's 0.999: a loaded 2-core runner).
    assert!(f64::from(ok) <= ideal + 1.0, "ok = {ok}, ideal {ideal}");
    assert!(f64::from(ok) >= 0.9 * ideal, "ok = {ok}, ideal {ideal}");
}

#[test]
fn simple_reserve() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 0, 2, Some(0));
    let _ = reserve(&lim, &c, 0, 2, Some(2));
    let _ = reserve(&lim, &c, 3, 2, Some(4));
}

#[test]
fn mix() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 0, 3, None); // n > burst
    let _ = reserve(&lim, &c, 0, 2, Some(0));
    run(&lim, &c, &[(1, 2, false)]); // not enough tokens
    let _ = reserve(&lim, &c, 1, 2, Some(2));
    run(&lim, &c, &[(1, 1, false)]); // negative tokens
    run(&lim, &c, &[(3, 1, true)]);
}

#[test]
fn cancel_invalid() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 0, 2, Some(0));
    assert!(reserve(&lim, &c, 0, 3, None).is_none()); // nothing to cancel
    let _ = reserve(&lim, &c, 0, 2, Some(2)); // no extra tokens
}

#[test]
fn cancel_last() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 0, 2, Some(0));
    let r = reserve(&lim, &c, 0, 2, Some(2)).unwrap();
    r.cancel_at(c.t(1)); // 2 tokens back
    let _ = reserve(&lim, &c, 1, 2, Some(2));
}

#[test]
fn cancel_too_late() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 0, 2, Some(0));
    let r = reserve(&lim, &c, 0, 2, Some(2)).unwrap();
    r.cancel_at(c.t(3)); // too late: no effect
    let _ = reserve(&lim, &c, 3, 2, Some(4));
}

#[test]
fn cancel_0_tokens() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 0, 2, Some(0));
    let r = reserve(&lim, &c, 0, 1, Some(1)).unwrap();
    let _ = reserve(&lim, &c, 0, 1, Some(2));
    r.cancel_at(c.t(0)); // 0 tokens back: a later reservation holds them
    let _ = reserve(&lim, &c, 0, 1, Some(3));
}

/// Go's `TestCancel1Token`. Go gives 1 token back at once (2 taken, less the 1 reserved
/// after), and the last reservation acts at t4. ctxkit gives nothing back while the
/// reservation after it stands (see the header), so it acts at t5; `cancel_1_token_then_all`
/// shows the tokens coming back.
#[test]
fn cancel_1_token() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 0, 2, Some(0));
    let r = reserve(&lim, &c, 0, 2, Some(2)).unwrap();
    let _ = reserve(&lim, &c, 0, 1, Some(3));
    r.cancel_at(c.t(2)); // Go: 1 token back; ctxkit: none yet
    let _ = reserve(&lim, &c, 2, 2, Some(5)); // Go: t4
}

/// `cancel_1_token` with the reservation after `r` canceled too: all 3 tokens are back.
#[test]
fn cancel_1_token_then_all() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 0, 2, Some(0));
    let r = reserve(&lim, &c, 0, 2, Some(2)).unwrap();
    let after = reserve(&lim, &c, 0, 1, Some(3)).unwrap();
    r.cancel_at(c.t(2));
    after.cancel_at(c.t(2)); // the last one: its token and `r`'s 2 come back
    let _ = reserve(&lim, &c, 2, 2, Some(2));
}

/// Go's `TestCancelMulti`. Go gives `a` 2 of its 3 tokens back at once (less the 1 reserved
/// after it), and the last reservation acts at t5. ctxkit gives `a`'s tokens back only once
/// the reservation after it is canceled too (see the header), so it acts at t7.
#[test]
fn cancel_multi() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 4, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 0, 4, Some(0));
    let a = reserve(&lim, &c, 0, 3, Some(3)).unwrap();
    let _ = reserve(&lim, &c, 0, 1, Some(4));
    let last = reserve(&lim, &c, 0, 1, Some(5)).unwrap();
    last.cancel_at(c.t(1)); // 1 token back
    a.cancel_at(c.t(1)); // Go: 2 tokens back; ctxkit: none while the one after `a` stands
    let _ = reserve(&lim, &c, 1, 3, Some(7)); // Go: t5
}

#[test]
fn reserve_jump_back() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 1, 2, Some(1)); // start at t1
                                              // Go: acts at t1 ("should violate Limit,Burst"); ctxkit never violates them: t2.
    let _ = reserve(&lim, &c, 0, 1, Some(2));
    // Go: t3; ctxkit: t4 (the reservation above really holds t1..t2).
    let _ = reserve(&lim, &c, 2, 2, Some(4));
}

/// Go's `TestReserveJumpBackCancel`. Go gives 1 token back (2 taken, less the 1 reserved
/// after) and answers t4, which its own comment says "should violate Limit,Burst". ctxkit
/// gives nothing back while the reservation after `r` stands (see the header): t6.
#[test]
fn reserve_jump_back_cancel() {
    let c = Clock::new();
    let lim = Limiter::new_at(10.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 1, 2, Some(1)); // start at t1
    let r = reserve(&lim, &c, 1, 2, Some(3)).unwrap();
    let _ = reserve(&lim, &c, 1, 1, Some(4));
    r.cancel_at(c.t(0)); // Go: 1 token back; ctxkit: none yet
    let _ = reserve(&lim, &c, 1, 2, Some(6)); // Go: t4
}

#[test]
fn reserve_set_limit() {
    let c = Clock::new();
    let lim = Limiter::new_at(5.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 0, 2, Some(0));
    let _ = reserve(&lim, &c, 0, 2, Some(4));
    lim.set_rate_at(c.t(2), 10.0).unwrap();
    let _ = reserve(&lim, &c, 2, 1, Some(4)); // violates neither limit nor burst
}

#[test]
fn reserve_set_burst() {
    let c = Clock::new();
    let lim = Limiter::new_at(5.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 0, 2, Some(0));
    let _ = reserve(&lim, &c, 0, 2, Some(4));
    lim.set_burst_at(c.t(3), 4).unwrap();
    // At t3 the bucket holds -0.5 tokens; 4 more take 4.5 tokens' time (0.9 s) from t3. Go
    // asks at t0 (a jump back) and answers t0 + 0.9 s = t9; ctxkit answers t3 + 0.9 s = t12
    // whether asked at t0 or t3.
    let _ = reserve(&lim, &c, 0, 4, Some(12));
}

/// Go's `TestReserveSetLimitCancel`. Go gives `r`'s 2 tokens back at the new rate, and the
/// next reservation acts at t3. In ctxkit a reservation made before a rate change gives
/// nothing back after it (the queued debt was converted to the new rate, and `r`'s share of
/// it is no longer known; see the header): at t2 the bucket holds -1 token at 10 a second, so
/// 2 more come at t5.
#[test]
fn reserve_set_limit_cancel() {
    let c = Clock::new();
    let lim = Limiter::new_at(5.0, 2, c.t(0)).unwrap();
    let _ = reserve(&lim, &c, 0, 2, Some(0));
    let r = reserve(&lim, &c, 0, 2, Some(4)).unwrap();
    lim.set_rate_at(c.t(2), 10.0).unwrap();
    r.cancel_at(c.t(2)); // Go: 2 tokens back; ctxkit: none (made before the change)
    let _ = reserve(&lim, &c, 2, 2, Some(5)); // Go: t3
}

/// Go's `runWait`: the wait must take `want` multiples of d, rounded; more only by scheduling
/// slop, which a loaded runner can stretch (so the upper bound is generous).
fn wait_took(want: u32, took: Duration) {
    let got = (took + D / 2).as_nanos() / D.as_nanos();
    assert!(
        got >= u128::from(want),
        "took {took:?}, want {want} × {D:?}"
    );
    assert!(
        got <= u128::from(want) + 5,
        "took {took:?}, want {want} × {D:?}"
    );
}

fn blocking_wait(lim: &Limiter, ctx: &Context, n: u32, want: u32, ok: bool) {
    let start = Instant::now();
    let result = lim.blocking_wait_n(ctx, n);
    assert_eq!(result.is_ok(), ok, "{result:?}");
    wait_took(want, start.elapsed());
}

#[test]
fn wait_simple() {
    let lim = Limiter::new(10.0, 3).unwrap();
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    cancel.cancel();
    blocking_wait(&lim, &ctx, 1, 0, false); // already canceled
    blocking_wait(&lim, &Context::background(), 4, 0, false); // exceeds burst
    blocking_wait(&lim, &Context::background(), 2, 0, true); // act now
    blocking_wait(&lim, &Context::background(), 3, 2, true); // act later
}

#[test]
fn wait_cancel() {
    let lim = Limiter::new(10.0, 3).unwrap();
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    blocking_wait(&lim, &ctx, 2, 0, true); // 1 token left
    let canceler = std::thread::spawn(move || {
        std::thread::sleep(D);
        cancel.cancel();
    });
    blocking_wait(&lim, &ctx, 3, 1, false); // canceled after d: 3 tokens back
    canceler.join().unwrap();
    blocking_wait(&lim, &Context::background(), 2, 0, true);
}

#[test]
fn wait_timeout() {
    let lim = Limiter::new(10.0, 3).unwrap();
    let ctx = Context::background().with_timeout(D);
    blocking_wait(&lim, &ctx, 2, 0, true);
    blocking_wait(&lim, &ctx, 3, 0, false); // would exceed the deadline: at once
}

#[test]
fn wait_inf() {
    let lim = Limiter::new(f64::INFINITY, 0).unwrap();
    blocking_wait(&lim, &Context::background(), 3, 0, true); // exceeds burst, but no error
}

#[test]
fn wait_simple_async() {
    futures::executor::block_on(async {
        let lim = Limiter::new(10.0, 3).unwrap();
        let bg = Context::background();
        assert!(lim.wait_n(&bg, 4).await.unwrap_err().is_exceeds_burst());
        lim.wait_n(&bg, 2).await.unwrap();
        let start = Instant::now();
        lim.wait_n(&bg, 3).await.unwrap();
        wait_took(2, start.elapsed());
    });
}

#[test]
fn zero_limit() {
    let lim = Limiter::new(0.0, 1).unwrap();
    assert!(lim.allow(), "Limit(0, 1) want true when first used");
    assert!(!lim.allow(), "Limit(0, 1) want false when already used");
}
