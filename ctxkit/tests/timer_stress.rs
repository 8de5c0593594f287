//! A stress test of the timer (`timer.rs`): several threads arm deadlines (a `done()` polled
//! once on a context with a timeout arms its owner) and cancel most of them at once, which
//! disarms them; the rest are left to expire. Checked:
//!
//! * none is lost: every deadline left to expire wakes its waiter, and its context reports
//!   `DeadlineExceeded`;
//! * none fires early (its waker runs after its instant) or late by more than a generous
//!   bound (a loaded two-core machine must always pass: the bound is seconds, the timer's
//!   accuracy is a millisecond or so);
//! * every canceled context reports `Canceled` (or `DeadlineExceeded` if its deadline, a few
//!   microseconds away, came first) and is never woken by the timer: its waiter was removed;
//! * afterwards nothing is armed any more.
//!
//! Millions of deadlines in release builds, fewer in debug builds; a few seconds either way.
//! One test, in its own process, because the armed count is process-wide. The seed is
//! printed; set `CTXKIT_STRESS_SEED` to replay a run's choices (thread timing still varies).

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use common::{clock_seed, wait_until, XorShift};
use ctxkit::context::__armed_timers as armed;
use ctxkit::{Context, Error};

const THREADS: u64 = 4;
/// Deadlines armed per thread.
const PER_THREAD: usize = if cfg!(debug_assertions) {
    100_000
} else {
    500_000
};
/// One in this many deadlines is left to expire; the others are canceled at once.
const EXPIRE_ONE_IN: usize = 64;
/// How far ahead a deadline left to expire lies, at most.
const MAX_AHEAD: Duration = Duration::from_millis(50);
/// How late a deadline may fire at most: generous, for a loaded machine.
const LATE_BOUND: Duration = Duration::from_secs(3);

/// A waker that remembers when it was first woken, and whether it was woken at all.
struct Stamp {
    woken_at: OnceLock<Instant>,
    woken: AtomicBool,
}

impl Wake for Stamp {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.woken_at.set(Instant::now());
        self.woken.store(true, Ordering::Release);
    }
}

/// A deadline left to expire: its context, its pending `done()` and its waker's stamp.
struct Expiring {
    deadline: Instant,
    ctx: ctxkit::CancelContext,
    done: Pin<Box<ctxkit::Done>>,
    stamp: Arc<Stamp>,
}

fn stamp() -> Arc<Stamp> {
    Arc::new(Stamp {
        woken_at: OnceLock::new(),
        woken: AtomicBool::new(false),
    })
}

/// One thread's share: returns the deadlines it left to expire.
fn arm_and_cancel(seed: u64) -> Vec<Expiring> {
    let mut random = XorShift::new(seed);
    let root = Context::background();
    let mut expiring = Vec::new();
    for _ in 0..PER_THREAD {
        let stamp = stamp();
        let waker = Waker::from(stamp.clone());
        let mut cx = TaskContext::from_waker(&waker);
        if random.below(EXPIRE_ONE_IN) == 0 {
            let ahead = Duration::from_nanos(random.next() % MAX_AHEAD.as_nanos() as u64);
            let ctx = root.with_timeout(ahead);
            let deadline = ctx.deadline().expect("a timeout has a deadline");
            let mut done = Box::pin(ctx.done());
            if let Poll::Ready(error) = done.as_mut().poll(&mut cx) {
                // Already past (a tiny timeout on a slow thread): nothing was armed.
                assert_eq!(error, Error::DeadlineExceeded);
                assert!(Instant::now() >= deadline);
                continue;
            }
            expiring.push(Expiring {
                deadline,
                ctx,
                done,
                stamp,
            });
            continue;
        }
        // Mostly an hour away; sometimes a few microseconds, so that the cancel races the
        // expiry.
        let ahead = if random.below(8) == 0 {
            Duration::from_nanos(random.next() % 20_000)
        } else {
            Duration::from_secs(3600)
        };
        let ctx = root.with_timeout(ahead);
        {
            let mut done = std::pin::pin!(ctx.done());
            let _ = done.as_mut().poll(&mut cx);
            // Dropped: its waiter leaves; the armed entry stays until the context completes.
        }
        let long = ahead >= Duration::from_secs(1);
        ctx.cancel();
        match ctx.err() {
            Some(Error::Canceled) => {}
            Some(Error::DeadlineExceeded) if !long => {}
            other => panic!("a canceled context reports {other:?}"),
        }
        // A deadline that had passed when it was armed completes the context at once, which
        // wakes the waiter still registered then; an hour-long one never wakes it.
        assert!(
            !(long && stamp.woken.load(Ordering::Acquire)),
            "a waiter that had left was woken"
        );
    }
    expiring
}

#[test]
fn millions_of_deadlines_armed_and_canceled_none_lost_none_late() {
    let seed = std::env::var("CTXKIT_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(clock_seed);
    eprintln!("CTXKIT_STRESS_SEED={seed}");
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| thread::spawn(move || arm_and_cancel(seed.wrapping_add(t))))
        .collect();
    let expiring: Vec<Expiring> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("a stress thread panicked"))
        .collect();
    let armed_in = started.elapsed();
    assert!(!expiring.is_empty());
    // None lost: every deadline left to expire wakes its waiter.
    let last = expiring.iter().map(|e| e.deadline).max().unwrap();
    let give_up = last.max(Instant::now()) + LATE_BOUND + Duration::from_secs(10);
    for mut e in expiring {
        while !e.stamp.woken.load(Ordering::Acquire) {
            assert!(
                Instant::now() < give_up,
                "a deadline never fired: due {:?} ago",
                Instant::now().duration_since(e.deadline)
            );
            thread::sleep(Duration::from_millis(1));
        }
        let woken_at = *e.stamp.woken_at.get().unwrap();
        assert!(woken_at >= e.deadline, "fired before its deadline");
        let late = woken_at - e.deadline;
        assert!(late <= LATE_BOUND, "fired {late:?} late");
        assert_eq!(e.ctx.err(), Some(Error::DeadlineExceeded));
        let waker = Waker::noop();
        let polled = e.done.as_mut().poll(&mut TaskContext::from_waker(waker));
        assert_eq!(polled, Poll::Ready(Error::DeadlineExceeded));
    }
    // Every canceled deadline was disarmed and every expired one taken out.
    wait_until("the armed count back to zero", armed, |&n| n == 0);
    eprintln!(
        "{} deadlines armed by {THREADS} threads in {armed_in:?}",
        THREADS as usize * PER_THREAD
    );
}
