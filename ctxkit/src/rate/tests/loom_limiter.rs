//! loom models of the limiter's races (`limiter.rs`): a configuration change racing a take
//! (the sequence lock, invariants 2 and 3), a cancel's give-back racing a take (the rollback's
//! compare-exchange, invariant 5), and a cancel racing a configuration change (the lock order
//! and the epoch check, invariant 5).
//!
//! Run: `RUSTFLAGS="--cfg loom -C debug_assertions" LOOM_MAX_PREEMPTIONS=3
//! CARGO_TARGET_DIR=target/loom cargo test -p ctxkit --lib --release loom`
//!
//! Each model runs two calls on two threads and checks that the result is what one of the two
//! orders of the same calls gives when run one after the other on a fresh limiter: the take
//! decided on one consistent snapshot and committed on the state it read, and nothing was lost
//! in between. Each order's result is also pinned to the value worked out by hand in the
//! model, so a model cannot pass by comparing a wrong sequential answer with itself. All
//! instants are made up (the `_at` forms), so the results are exact.
//!
//! loom explores the sequence lock (`seq` and the configuration words, with their fences), the
//! state word `zero` and the `undo` lock, which `limiter.rs` takes from `crate::sync`.

use std::time::{Duration, Instant};

use loom::thread;

use crate::rate::Limiter;
use crate::sync::Arc;

const MS: Duration = Duration::from_millis(1);

/// What a model can observe after both calls: the take's time to act (`None`: refused), and
/// the limiter's tokens, rate and burst at a fixed instant.
#[derive(Debug, PartialEq)]
struct Outcome {
    take: Option<Instant>,
    tokens: f64,
    rate: f64,
    burst: u32,
}

fn outcome(limiter: &Limiter, take: Option<Instant>, at: Instant) -> Outcome {
    Outcome {
        take,
        tokens: limiter.tokens_at(at),
        rate: limiter.rate(),
        burst: limiter.burst(),
    }
}

/// Checks that `got` is the outcome of one of the two orders.
fn assert_one_of(got: &Outcome, first: &Outcome, second: &Outcome) {
    assert!(
        got == first || got == second,
        "not the outcome of either order:\n got       {got:?}\n one order {first:?}\n the other {second:?}"
    );
}

/// A rate change racing a reservation that must queue: the reservation is decided under the
/// old configuration or the new one, never a mix (a reader that took `zero` after the setter
/// rewrote it but the interval before would queue it 150 ms out, not 50 or 100).
#[test]
fn loom_set_rate_vs_take() {
    let t0 = Instant::now();
    let check = t0 + MS;
    // 10 a second (100 ms a token), burst 4, one token left at t0.
    let setup = move || {
        let limiter = Limiter::new_at(10.0, 4, t0).unwrap();
        assert!(limiter.allow_n_at(t0, 3));
        limiter
    };
    let take = move |limiter: &Limiter| limiter.reserve_n_at(t0, 2).map(|r| r.time_to_act());
    let set = move |limiter: &Limiter| limiter.set_rate_at(t0, 20.0).unwrap();
    loom::model(move || {
        let take_first = {
            let limiter = setup();
            let took = take(&limiter);
            set(&limiter);
            outcome(&limiter, took, check)
        };
        let set_first = {
            let limiter = setup();
            set(&limiter);
            let took = take(&limiter);
            outcome(&limiter, took, check)
        };
        // Queued 100 ms out at 10 a second, or 50 ms at 20; owing one token either way.
        assert_eq!(take_first.take, Some(t0 + 100 * MS));
        assert_eq!(set_first.take, Some(t0 + 50 * MS));
        assert_eq!((take_first.tokens, set_first.tokens), (-0.98, -0.98));

        let limiter = Arc::new(setup());
        let setter = {
            let limiter = limiter.clone();
            thread::spawn(move || set(&limiter))
        };
        let took = take(&limiter);
        setter.join().unwrap();
        assert_one_of(&outcome(&limiter, took, check), &take_first, &set_first);
    });
}

/// A burst change racing an allow of two tokens out of two held: the allow sees the old burst
/// (3: allowed, then the change keeps the empty bucket) or the new one (1: two is more than the
/// burst, refused, and the change has capped the bucket at one token), each with the `zero` of
/// its own configuration.
#[test]
fn loom_set_burst_vs_allow() {
    let t0 = Instant::now();
    let check = t0 + MS;
    let setup = move || {
        let limiter = Limiter::new_at(10.0, 3, t0).unwrap();
        assert!(limiter.allow_n_at(t0, 1));
        limiter
    };
    let take = move |limiter: &Limiter| limiter.allow_n_at(t0, 2).then_some(t0);
    let set = move |limiter: &Limiter| limiter.set_burst_at(t0, 1).unwrap();
    loom::model(move || {
        let take_first = {
            let limiter = setup();
            let took = take(&limiter);
            set(&limiter);
            outcome(&limiter, took, check)
        };
        let set_first = {
            let limiter = setup();
            set(&limiter);
            let took = take(&limiter);
            outcome(&limiter, took, check)
        };
        assert_eq!((take_first.take, take_first.tokens), (Some(t0), 0.01));
        assert_eq!((set_first.take, set_first.tokens), (None, 1.0));

        let limiter = Arc::new(setup());
        let setter = {
            let limiter = limiter.clone();
            thread::spawn(move || set(&limiter))
        };
        let took = take(&limiter);
        setter.join().unwrap();
        assert_one_of(&outcome(&limiter, took, check), &take_first, &set_first);
    });
}

/// A cancel racing a take on top of the canceled reservation: the cancel rolls back only while
/// its reservation is the top, so the take is never undone (over-admission) and the token
/// comes back only if nothing was taken after it.
#[test]
fn loom_cancel_vs_take() {
    let t0 = Instant::now();
    let check = t0 + MS;
    // 10 a second, burst 1, empty at t0: each reservation queues 100 ms further.
    let setup = move || {
        let limiter = Arc::new(Limiter::new_at(10.0, 1, t0).unwrap());
        assert!(limiter.allow_at(t0));
        let queued = limiter.clone().reserve_n_owned_at(t0, 1).unwrap();
        (limiter, queued)
    };
    let take = move |limiter: &Limiter| limiter.reserve_n_at(t0, 1).map(|r| r.time_to_act());
    loom::model(move || {
        let take_first = {
            let (limiter, queued) = setup();
            let took = take(&limiter);
            queued.cancel_at(t0);
            outcome(&limiter, took, check)
        };
        let cancel_first = {
            let (limiter, queued) = setup();
            queued.cancel_at(t0);
            let took = take(&limiter);
            outcome(&limiter, took, check)
        };
        // Taken on top of the canceled reservation, which then waits to be uncovered (owing
        // two tokens); or taken in its place once its token is back (owing one).
        assert_eq!(
            (take_first.take, take_first.tokens),
            (Some(t0 + 200 * MS), -1.99)
        );
        assert_eq!(
            (cancel_first.take, cancel_first.tokens),
            (Some(t0 + 100 * MS), -0.99)
        );

        let (limiter, queued) = setup();
        let canceller = thread::spawn(move || queued.cancel_at(t0));
        let took = take(&limiter);
        canceller.join().unwrap();
        assert_one_of(&outcome(&limiter, took, check), &take_first, &cancel_first);
    });
}

/// A cancel racing a rate change: both take `undo` first (the lock order), so they serialise;
/// a cancel before the change gives its token back and the change converts the result, a
/// cancel after it gives nothing back (a new epoch). The reservation takes the bucket's last
/// token at `t0`, so the change at `t0` (zero tokens, in any units) leaves `zero` exactly at
/// the reservation's `end`: only the epoch check keeps a late cancel from rolling `zero` back
/// to a `prev` in the old units (which would hand out two tokens of the new rate for one).
#[test]
fn loom_cancel_vs_set_rate() {
    let t0 = Instant::now();
    let check = t0 + MS;
    let setup = move || {
        let limiter = Arc::new(Limiter::new_at(10.0, 2, t0).unwrap());
        assert!(limiter.allow_n_at(t0, 1));
        let queued = limiter.clone().reserve_n_owned_at(t0, 1).unwrap();
        assert_eq!(queued.time_to_act(), t0, "the last token, due at once");
        (limiter, queued)
    };
    let set = move |limiter: &Limiter| limiter.set_rate_at(t0, 20.0).unwrap();
    loom::model(move || {
        let set_first = {
            let (limiter, queued) = setup();
            set(&limiter);
            queued.cancel_at(t0);
            outcome(&limiter, None, check)
        };
        let cancel_first = {
            let (limiter, queued) = setup();
            queued.cancel_at(t0);
            set(&limiter);
            outcome(&limiter, None, check)
        };
        // The token given back is one token at the new rate too (1 + 1 ms / 50 ms), while a
        // cancel after the change leaves the bucket empty at `t0`.
        assert_eq!(cancel_first.tokens, 1.02);
        assert_eq!(set_first.tokens, 0.02);

        let (limiter, queued) = setup();
        let setter = {
            let limiter = limiter.clone();
            thread::spawn(move || set(&limiter))
        };
        queued.cancel_at(t0);
        setter.join().unwrap();
        assert_one_of(&outcome(&limiter, None, check), &set_first, &cancel_first);
    });
}
