//! loom models of arming the timer (`timer.rs`) under a node's lock (`tree.rs`, `arm_locked`,
//! invariant 4) racing a cancel of that node, which must disarm what was armed, and racing
//! the timer's expiry of the entry (`timer::expire_all_for_model`, what the thread does once
//! the instant has passed), which must complete the node and notify its waiter exactly as a
//! cancel would.
//!
//! Run: `RUSTFLAGS="--cfg loom -C debug_assertions" LOOM_MAX_PREEMPTIONS=3
//! CARGO_TARGET_DIR=target/loom cargo test -p ctxkit --lib --release loom`
//!
//! Under loom the timer starts no thread and its state is built inside each model
//! (`sync::lazy_static!`), so `armed_count` counts this model's entries only: after both sides,
//! an entry left for a completed node is a leak (it would keep the node alive until its
//! deadline, an hour here).

use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use loom::thread;
use std::sync::atomic::Ordering;

use crate::test_waker::counter;
use crate::{Context, Error};

/// Polls `ctx.done()` once, as an async waiter's first poll: registers its waker, which arms
/// the timer on the deadline's owner. Returns whether it was already done.
fn poll_done_once(ctx: &Context) -> bool {
    let mut cx = TaskContext::from_waker(Waker::noop());
    let done = pin!(ctx.done());
    // Dropped here: the waiter leaves, the armed entry stays until the node completes.
    matches!(done.poll(&mut cx), Poll::Ready(_))
}

/// A node with a deadline, armed by its first async waiter while another thread cancels it:
/// whichever comes first, no timer entry is left once both are done.
#[test]
fn loom_arming_vs_cancel() {
    loom::model(|| {
        let (ctx, cancel) = Context::background()
            .with_timeout(Duration::from_secs(3600))
            .into_parts();
        let waiter = {
            let ctx = ctx.clone();
            thread::spawn(move || poll_done_once(&ctx))
        };
        cancel.cancel();
        waiter.join().unwrap();
        assert_eq!(ctx.err(), Some(Error::Canceled));
        assert_eq!(crate::timer::armed_count(), 0, "an entry outlived its node");
    });
}

/// The waiter is on a child without a deadline of its own, so the timer is armed on the parent
/// that owns the deadline (the walk up in `arm_owner`) while the parent is canceled.
#[test]
fn loom_arming_on_the_deadline_owner_vs_its_cancel() {
    loom::model(|| {
        let (parent, cancel) = Context::background()
            .with_timeout(Duration::from_secs(3600))
            .into_parts();
        let child = parent.with_cancel();
        let waiter = thread::spawn(move || poll_done_once(&child));
        cancel.cancel();
        waiter.join().unwrap();
        assert!(parent.is_done());
        assert_eq!(crate::timer::armed_count(), 0, "an entry outlived its node");
    });
}

/// An async waiter arms the deadline while the timer expires whatever is armed and another
/// thread cancels: the context ends canceled or expired, a waiter that was left registered is
/// woken, and no entry is left.
#[test]
fn loom_arming_vs_expiry_vs_cancel() {
    loom::model(|| {
        let (ctx, cancel) = Context::background()
            .with_timeout(Duration::from_secs(3600))
            .into_parts();
        let (count, waker) = counter();
        let waiter = {
            let ctx = ctx.clone();
            thread::spawn(move || {
                let mut done = Box::pin(ctx.done());
                let first = done
                    .as_mut()
                    .poll(&mut TaskContext::from_waker(&waker))
                    .is_ready();
                (first, done)
            })
        };
        let timer = thread::spawn(crate::timer::expire_all_for_model);
        cancel.cancel();
        let (first, mut done) = waiter.join().unwrap();
        timer.join().unwrap();
        let error = ctx.err();
        assert!(
            matches!(error, Some(Error::Canceled | Error::DeadlineExceeded)),
            "{error:?}"
        );
        if !first {
            assert!(
                count.0.load(Ordering::SeqCst) >= 1,
                "a registered waiter was not woken"
            );
        }
        let polled = done
            .as_mut()
            .poll(&mut TaskContext::from_waker(Waker::noop()));
        assert_eq!(polled, Poll::Ready(error.unwrap()));
        drop(done);
        assert_eq!(crate::timer::armed_count(), 0, "an entry outlived its node");
    });
}

/// The timer expires a parent's deadline, armed by a waiter on its child, while the child is
/// canceled: both end done, the child's waiter is woken, nothing stays armed.
#[test]
fn loom_owner_expiry_vs_child_cancel() {
    loom::model(|| {
        let parent = Context::background().with_timeout(Duration::from_secs(3600));
        let (child, cancel_child) = parent.with_cancel().into_parts();
        let (count, waker) = counter();
        let mut done = Box::pin(child.done());
        let first = done
            .as_mut()
            .poll(&mut TaskContext::from_waker(&waker))
            .is_ready();
        assert!(!first);
        assert_eq!(crate::timer::armed_count(), 1);
        let timer = thread::spawn(crate::timer::expire_all_for_model);
        cancel_child.cancel();
        timer.join().unwrap();
        assert_eq!(parent.err(), Some(Error::DeadlineExceeded));
        assert!(child.is_done());
        assert!(
            count.0.load(Ordering::SeqCst) >= 1,
            "the child's waiter was not woken"
        );
        drop(done);
        assert_eq!(crate::timer::armed_count(), 0, "an entry outlived its node");
    });
}

/// A waiter kept in the node's inline place (the first task registered, which armed the
/// deadline) while a second task registers (into the extra list) and leaves, racing a cancel:
/// the kept waiter is woken exactly once, the one that left never, and no entry is left.
#[test]
fn loom_inline_waiter_and_a_listed_one_vs_cancel() {
    loom::model(|| {
        let (ctx, cancel) = Context::background()
            .with_timeout(Duration::from_secs(3600))
            .into_parts();
        let (kept_count, kept_waker) = counter();
        let mut kept = Box::pin(ctx.done());
        let first = kept
            .as_mut()
            .poll(&mut TaskContext::from_waker(&kept_waker));
        assert!(first.is_pending());
        let (left_count, left_waker) = counter();
        let other = {
            let ctx = ctx.clone();
            thread::spawn(move || {
                let done = pin!(ctx.done());
                let _ = done.poll(&mut TaskContext::from_waker(&left_waker));
            })
        };
        cancel.cancel();
        other.join().unwrap();
        assert_eq!(
            kept_count.0.load(Ordering::SeqCst),
            1,
            "the kept waiter is woken once"
        );
        assert!(left_count.0.load(Ordering::SeqCst) <= 1);
        assert_eq!(ctx.err(), Some(Error::Canceled));
        assert_eq!(crate::timer::armed_count(), 0, "an entry outlived its node");
        drop(kept);
    });
}
