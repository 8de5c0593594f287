//! loom models of arming the timer (`timer.rs`) under a node's lock (`tree.rs`, `arm_owner`,
//! invariant 4) racing a cancel of that node, which must disarm what was armed.
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
