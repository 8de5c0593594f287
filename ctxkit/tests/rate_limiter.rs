//! Behaviour of `Limiter` on the real clock: waits and their contexts, bad input, threads.
//!
//! Timing bounds are generous (a loaded 2-core runner): tests assert what happened and in
//! which order, and that "at once" is far shorter than the alternative, never a tight figure.

mod common;

use std::error::Error as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use common::{wait_until, watchdog, HOUR};
use ctxkit::rate::{ConfigError, Limiter, WaitError};
use ctxkit::{Context, Error};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn types_are_send_and_sync() {
    assert_send_sync::<Limiter>();
    assert_send_sync::<WaitError>();
    assert_send_sync::<ConfigError>();
    assert_send_sync::<ctxkit::rate::Reservation<'static>>();
}

/// One token an hour: a wait on an empty bucket cannot end by itself while a test runs.
fn slow_limiter() -> Arc<Limiter> {
    let lim = Arc::new(Limiter::new(1.0 / HOUR.as_secs_f64(), 1).unwrap());
    assert!(lim.allow());
    lim
}

/// Waits until the waiter on `lim` has taken its reservation (the bucket went into debt): from
/// then on it is waiting, and a cancel lands mid-wait, not before the wait began.
fn until_reserved(lim: &Limiter) {
    wait_until("the waiter's reservation", || lim.tokens(), |&t| t < -0.5);
}

#[test]
fn blocking_wait_canceled_midway_returns_promptly_and_gives_the_token_back() {
    let lim = slow_limiter();
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let waiter = {
        let lim = lim.clone();
        std::thread::spawn(move || lim.blocking_wait(&ctx))
    };
    until_reserved(&lim);
    cancel.cancel();
    // Prompt: within the watchdog's bound, where a wait that missed the cancel takes an hour.
    let result = watchdog("a blocking wait canceled mid-wait", move || waiter.join());
    assert_eq!(result.unwrap().unwrap_err(), Error::Canceled);
    // The reservation was the last one: its token is back (no debt left).
    assert!(lim.tokens() > -0.01, "tokens {}", lim.tokens());
}

#[test]
fn async_wait_canceled_midway_returns_promptly_and_gives_the_token_back() {
    let lim = slow_limiter();
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let waiter = {
        let lim = lim.clone();
        std::thread::spawn(move || futures::executor::block_on(lim.wait(&ctx)))
    };
    until_reserved(&lim);
    drop(cancel);
    let result = watchdog("an async wait canceled mid-wait", move || waiter.join());
    assert!(result.unwrap().unwrap_err().is_canceled());
    assert!(lim.tokens() > -0.01, "tokens {}", lim.tokens());
}

#[test]
fn wait_whose_deadline_is_too_near_fails_at_once_and_spends_nothing() {
    let lim = Limiter::new(1.0 / 3600.0, 1).unwrap(); // next token in an hour
    assert!(lim.allow());
    let ctx = Context::background().with_timeout(Duration::from_secs(20));
    let before = lim.tokens();
    let start = Instant::now();
    let err = lim.blocking_wait(&ctx).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "slept instead of failing at once"
    );
    assert!(err.is_deadline_exceeded());
    assert!(err.is_timeout());
    assert_eq!(err, Error::DeadlineExceeded);
    assert_eq!(err.context_error(), Some(Error::DeadlineExceeded));
    assert_eq!(ctx.err(), None, "the context itself is not done yet");
    let after = lim.tokens();
    assert!(
        after >= before && after - before < 0.01,
        "spent: {before} -> {after}"
    );

    let err = futures::executor::block_on(lim.wait(&ctx)).unwrap_err();
    assert!(err.is_deadline_exceeded());
    assert!(
        lim.tokens() >= before,
        "the async form spent nothing either"
    );
}

#[test]
fn wait_errors_say_what_happened() {
    let lim = Limiter::new(1.0 / 3600.0, 2).unwrap();
    let bg = Context::background();
    let err = lim.blocking_wait_n(&bg, 3).unwrap_err();
    assert!(err.is_exceeds_burst());
    assert!(!err.is_deadline_exceeded() && !err.is_canceled());
    assert_eq!(err.context_error(), None);
    assert_eq!(
        err.to_string(),
        "ctxkit::rate: wait_n(n=3) exceeds the limiter's burst 2"
    );

    lim.blocking_wait_n(&bg, 2).unwrap();
    let ctx = bg.with_timeout(Duration::from_secs(60));
    let err = lim.blocking_wait_n(&ctx, 2).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ctxkit::rate: wait_n(n=2) would exceed the context's deadline"
    );
    let source = err.source().unwrap();
    assert_eq!(
        source.downcast_ref::<Error>(),
        Some(&Error::DeadlineExceeded)
    );

    let (ctx, cancel) = bg.with_cancel().into_parts();
    cancel.cancel();
    let err = lim.blocking_wait(&ctx).unwrap_err();
    assert_eq!(err.to_string(), "context canceled");
    assert_eq!(WaitError::from(Error::Canceled), err);
}

#[test]
fn a_done_context_fails_even_with_tokens() {
    let lim = Limiter::new(10.0, 5).unwrap();
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    cancel.cancel();
    assert!(lim.blocking_wait(&ctx).unwrap_err().is_canceled());
    assert!(lim.allow_n(5), "nothing was spent");
}

#[test]
fn dropping_a_wait_future_gives_the_tokens_back() {
    let lim = Limiter::new(1.0 / 3600.0, 2).unwrap();
    assert!(lim.allow_n(2));
    let ctx = Context::background();
    futures::executor::block_on(async {
        let mut wait = Box::pin(lim.wait_n(&ctx, 2));
        let polled = futures::poll!(wait.as_mut());
        assert!(matches!(polled, Poll::Pending));
        assert!(
            lim.tokens() < -1.0,
            "the tokens are reserved while it waits"
        );
        drop(wait);
    });
    assert!(lim.tokens() > -0.01, "tokens {}", lim.tokens());
}

#[test]
fn waits_are_paced_on_threads_and_tasks() {
    let lim = Limiter::new(100.0, 1).unwrap();
    let bg = Context::background();
    let start = Instant::now();
    for _ in 0..5 {
        lim.blocking_wait(&bg).unwrap();
    }
    assert!(
        start.elapsed() >= Duration::from_millis(39),
        "{:?}",
        start.elapsed()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lim = Arc::new(Limiter::new(100.0, 1).unwrap());
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let lim = lim.clone();
                tokio::spawn(async move { lim.wait(&Context::background()).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    });
    assert!(
        start.elapsed() >= Duration::from_millis(39),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn unlimited_allows_everything_at_once() {
    let lim = Limiter::unlimited();
    assert!(lim.allow_n(u32::MAX));
    assert_eq!(lim.reserve_n(u32::MAX).unwrap().delay(), Duration::ZERO);
    lim.blocking_wait_n(&Context::background(), 1_000_000)
        .unwrap();
    assert_eq!(lim.tokens(), f64::INFINITY);
}

#[test]
fn a_zero_rate_limiter_only_spends_its_burst() {
    let lim = Limiter::new(0.0, 3).unwrap();
    let bg = Context::background();
    lim.blocking_wait_n(&bg, 2).unwrap();
    assert!(lim.allow());
    assert!(!lim.allow());
    assert!(lim.reserve().is_none());
    let err = lim.blocking_wait(&bg).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ctxkit::rate: wait_n(n=1) can never be satisfied: the limiter's rate is zero"
    );
    let ctx = bg.with_timeout(Duration::from_secs(60));
    assert!(lim.blocking_wait(&ctx).unwrap_err().is_deadline_exceeded());
    let nothing = Limiter::new(0.0, 0).unwrap();
    assert!(!nothing.allow());
    assert!(nothing.allow_n(0));
}

#[test]
fn bad_input_gets_documented_results() {
    for (rate, burst, text) in [
        (-1.0, 1, "ctxkit::rate: rate -1 per second is negative"),
        (f64::NAN, 1, "ctxkit::rate: rate is NaN"),
        (
            f64::NEG_INFINITY,
            1,
            "ctxkit::rate: rate -inf per second is negative",
        ),
        (
            5.0,
            0,
            "ctxkit::rate: burst 0 with rate 5 per second would never allow an event",
        ),
    ] {
        assert_eq!(Limiter::new(rate, burst).unwrap_err().to_string(), text);
    }
    let lim = Limiter::new(10.0, 2).unwrap();
    assert!(!lim.allow_n(3), "n above the burst: false, as Go");
    assert!(lim.reserve_n(3).is_none());
    assert!(lim.set_burst(0).is_err());
    assert!(lim.set_rate(f64::NAN).is_err());
    assert_eq!(
        (lim.rate(), lim.burst()),
        (10.0, 2),
        "unchanged after errors"
    );
    // Extremes neither overflow nor panic.
    let slow = Limiter::new(f64::MIN_POSITIVE, u32::MAX).unwrap();
    let _ = slow.allow_n(u32::MAX);
    let _ = slow.reserve_n(u32::MAX).map(|r| r.delay());
    let fast = Limiter::new(f64::MAX, u32::MAX).unwrap();
    assert!(fast.allow_n(u32::MAX));
}

#[test]
fn set_rate_and_burst_at_run_time_keep_earned_tokens() {
    let lim = Limiter::new(1.0 / 3600.0, 4).unwrap();
    assert!(lim.allow_n(2));
    lim.set_rate(1.0 / 7200.0).unwrap();
    assert!((lim.tokens() - 2.0).abs() < 0.01);
    lim.set_burst(10).unwrap();
    assert!(
        (lim.tokens() - 2.0).abs() < 0.01,
        "not refilled to the new burst"
    );
    lim.set_burst(1).unwrap();
    assert!((lim.tokens() - 1.0).abs() < 0.01, "capped at the new burst");
}

#[test]
fn threads_never_get_more_than_burst_plus_rate_times_elapsed() {
    const RATE: f64 = 2_000.0;
    const BURST: u32 = 20;
    let lim = Arc::new(Limiter::new(RATE, BURST).unwrap());
    let admitted = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (lim, admitted) = (lim.clone(), admitted.clone());
            std::thread::spawn(move || {
                while start.elapsed() < Duration::from_millis(200) {
                    if lim.allow() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let admitted = f64::from(admitted.load(Ordering::Relaxed));
    assert!(
        admitted <= f64::from(BURST) + RATE * elapsed + 1.0,
        "{admitted} in {elapsed} s"
    );
    assert!(admitted >= f64::from(BURST), "{admitted}");
}

#[test]
fn debug_shows_live_state() {
    let lim = Limiter::new(2.0, 3).unwrap();
    let text = format!("{lim:?}");
    assert!(
        text.starts_with("Limiter { rate: 2.0, burst: 3, tokens: "),
        "{text}"
    );
    let r = lim.reserve().unwrap();
    assert!(format!("{r:?}").starts_with("Reservation { tokens: 1"));
    r.cancel();
}

#[test]
fn set_rate_racing_allow_neither_hangs_nor_over_admits() {
    // Readers take a snapshot of the configuration under a sequence lock; a setter flipping
    // the rate meanwhile must not let a reader mix two configurations or lose its update.
    const BURST: u32 = 10;
    let lim = Arc::new(Limiter::new(1_000.0, BURST).unwrap());
    let admitted = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let run_for = Duration::from_millis(200);
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (lim, admitted) = (lim.clone(), admitted.clone());
            std::thread::spawn(move || {
                while start.elapsed() < run_for {
                    if lim.allow() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let setter = {
        let lim = lim.clone();
        std::thread::spawn(move || {
            let mut flips = 0u32;
            while start.elapsed() < run_for {
                let rate = if flips % 2 == 0 { 500.0 } else { 1_000.0 };
                lim.set_rate(rate).unwrap();
                lim.set_burst(BURST).unwrap();
                flips += 1;
            }
            flips
        })
    };
    for r in readers {
        r.join().unwrap();
    }
    assert!(setter.join().unwrap() > 0);
    let elapsed = start.elapsed().as_secs_f64();
    let admitted = f64::from(admitted.load(Ordering::Relaxed));
    // Each setter call keeps the tokens held (rounded to a nanosecond of interval), so the
    // faster of the two rates bounds the total.
    assert!(
        admitted <= f64::from(BURST) + 1_000.0 * elapsed + 2.0,
        "{admitted} in {elapsed} s"
    );
}

#[test]
fn a_zero_rate_keeps_its_tokens_across_set_burst() {
    let lim = Limiter::new(0.0, 5).unwrap();
    assert!(lim.allow_n(3));
    lim.set_burst(10).unwrap();
    assert_eq!(lim.tokens(), 2.0);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(lim.tokens(), 2.0, "a zero rate earns nothing");
    lim.set_rate(1.0 / 3600.0).unwrap();
    assert!((lim.tokens() - 2.0).abs() < 0.01);
}

// ===== owned forms (for tasks and tower services) =====

/// One token an hour: a wait on an empty bucket cannot end while a test runs.
const SLOW: f64 = 1.0 / 3600.0;

/// Waits until `done(tokens)` holds, polling; panics with the limiter's state after 20 s.
fn wait_for_tokens(lim: &Limiter, what: &str, done: impl Fn(f64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(lim.tokens()) {
        assert!(
            Instant::now() < deadline,
            "watchdog: no {what} after 20 s: {lim:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn owned_waits_run_in_spawned_tasks_holding_only_an_arc_and_a_context() {
    let rt = runtime();
    let lim = Arc::new(Limiter::new(100.0, 2).unwrap());
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            // tokio::spawn needs a 'static + Send future: the owned wait is one.
            let wait = lim.clone().wait_owned(Context::background());
            rt.spawn(wait)
        })
        .collect();
    for task in tasks {
        rt.block_on(task).unwrap().unwrap();
    }
    let ctx = Context::background().with_cancel();
    rt.block_on(rt.spawn(lim.clone().wait_n_owned(ctx.clone(), 2)))
        .unwrap()
        .unwrap();
    assert!(immediate_err(lim.wait_n_owned(ctx.clone(), 3)).is_exceeds_burst());
}

/// The error of a wait that must fail at its first poll.
fn immediate_err(wait: ctxkit::rate::OwnedWait) -> WaitError {
    match futures::FutureExt::now_or_never(wait) {
        Some(Err(err)) => err,
        other => panic!("expected an immediate error, got {other:?}"),
    }
}

#[test]
fn an_owned_wait_canceled_midway_gives_the_token_back() {
    let rt = runtime();
    let lim = Arc::new(Limiter::new(SLOW, 1).unwrap());
    assert!(lim.allow());
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let task = rt.spawn(lim.clone().wait_owned(ctx));
    // The wait has reserved the next token (an hour away) and sleeps.
    wait_for_tokens(&lim, "reservation", |t| t < -0.5);
    cancel.cancel();
    let err = rt.block_on(task).unwrap().unwrap_err();
    assert!(err.is_canceled());
    assert!(lim.tokens() > -0.01, "tokens {}", lim.tokens());
}

#[test]
fn an_aborted_task_gives_its_owned_wait_s_tokens_back() {
    let rt = runtime();
    let lim = Arc::new(Limiter::new(SLOW, 2).unwrap());
    assert!(lim.allow_n(2));
    let task = rt.spawn(lim.clone().wait_n_owned(Context::background(), 2));
    wait_for_tokens(&lim, "reservation", |t| t < -1.5);
    task.abort();
    assert!(rt.block_on(task).unwrap_err().is_cancelled());
    wait_for_tokens(&lim, "tokens back after the abort", |t| t > -0.01);
}

#[test]
fn an_owned_wait_dropped_before_its_first_poll_took_nothing() {
    let lim = Arc::new(Limiter::new(SLOW, 1).unwrap());
    let wait = lim.clone().wait_owned(Context::background());
    assert!(format!("{wait:?}").contains("not polled"), "{wait:?}");
    drop(wait);
    assert!(lim.allow(), "the token is still there");
}

#[test]
#[should_panic(expected = "polled after it completed")]
fn an_owned_wait_polled_after_it_completed_panics() {
    let lim = Arc::new(Limiter::new(10.0, 1).unwrap());
    let mut wait = lim.wait_owned(Context::background());
    futures::executor::block_on(async {
        assert!(matches!(futures::poll!(&mut wait), Poll::Ready(Ok(()))));
        let _ = futures::poll!(&mut wait);
    });
}

#[test]
fn an_owned_reservation_acts_and_cancels_as_a_borrowed_one() {
    let t0 = Instant::now();
    let ms = Duration::from_millis(1);
    let owned = Arc::new(Limiter::new_at(10.0, 2, t0).unwrap());
    let twin = Limiter::new_at(10.0, 2, t0).unwrap();
    for n in [2, 1, 3, 1] {
        let a = owned.clone().reserve_n_owned_at(t0, n);
        let b = twin.reserve_n_at(t0, n);
        assert_eq!(a.is_some(), b.is_some(), "n = {n}");
        if let (Some(a), Some(b)) = (a, b) {
            assert_eq!(a.tokens(), b.tokens());
            assert_eq!(a.time_to_act(), b.time_to_act());
            assert_eq!(a.delay_from(t0 + 50 * ms), b.delay_from(t0 + 50 * ms));
            if n == 1 {
                // Cancel the queued one (the last take): both get the token back.
                a.cancel_at(t0 + ms);
                b.cancel_at(t0 + ms);
            }
        }
        assert_eq!(owned.tokens_at(t0 + ms), twin.tokens_at(t0 + ms), "n = {n}");
    }
    assert!(format!("{:?}", owned.clone().reserve_owned().unwrap())
        .starts_with("OwnedReservation { tokens: 1"));
}

#[test]
fn an_async_wait_sleeps_without_building_a_context() {
    // The wait sleeps on the timer thread beside the context's `done()`: no child context
    // with a timeout per wait.
    let lim = Limiter::new(SLOW, 1).unwrap();
    assert!(lim.allow());
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    futures::executor::block_on(async {
        let mut wait = Box::pin(lim.wait(&ctx));
        assert!(matches!(futures::poll!(wait.as_mut()), Poll::Pending));
        assert!(lim.tokens() < -0.5, "reserved: it is asleep, not refused");
        assert_eq!(ctx.__child_count(), 0);
        cancel.cancel();
        let result = wait.await;
        assert!(result.unwrap_err().is_canceled());
    });
    assert!(lim.tokens() > -0.01, "tokens {}", lim.tokens());
}
