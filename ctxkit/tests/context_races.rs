//! Regression tests for races found in review of the cancel tree: a cancel that loses the race
//! to complete a node must still return only once the subtree is done; a cancel racing a
//! reader's lock-free deadline check must not mix the error of one with the reason of the
//! other; a child born done under a completed parent takes the parent's cause.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctxkit::{Context, Error};

/// A cancel racing a reader's deadline check on an unwatched owner: the error and the reason
/// always come from the same side.

#[test]
fn a_cancel_racing_a_deadline_reader_never_mixes_error_and_reason() {
    let slot: Arc<Mutex<Option<Context>>> = Arc::new(Mutex::new(None));
    let generation = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (slot, generation, stop) = (slot.clone(), generation.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = 0;
            while stop.load(Ordering::Relaxed) == 0 {
                let g = generation.load(Ordering::Acquire);
                if g == seen {
                    std::hint::spin_loop();
                    continue;
                }
                seen = g;
                let ctx = slot.lock().unwrap().clone();
                if let Some(ctx) = ctx {
                    while ctx.err().is_none() {}
                }
            }
        })
    };
    let mut mixed = 0;
    let mut split = [0usize; 2];
    let start = Instant::now();
    let mut i: u64 = 0;
    while start.elapsed() < Duration::from_secs(2) && mixed == 0 {
        i += 1;
        let (ctx, cancel) = Context::background()
            .with_timeout_cause(Duration::from_micros(30), "deadline-reason")
            .into_parts();
        let deadline = ctx.deadline().unwrap();
        *slot.lock().unwrap() = Some(ctx.clone());
        generation.fetch_add(1, Ordering::Release);
        // Cancel around the deadline, a few hundred ns either side.
        let jitter = Duration::from_nanos((i * 37) % 600);
        let at = if i % 2 == 0 {
            deadline - jitter
        } else {
            deadline + jitter
        };
        while Instant::now() < at {}
        cancel.cancel_with("cancel-reason");
        // Wait for the reader to finish with it.
        let cause = ctx.cause().unwrap();
        match cause.error() {
            Error::Canceled => split[0] += 1,
            Error::DeadlineExceeded => split[1] += 1,
        }
        let text = cause.to_string();
        let consistent = matches!(
            (cause.error(), text.as_str()),
            (Error::Canceled, "cancel-reason") | (Error::DeadlineExceeded, "deadline-reason")
        );
        if !consistent {
            eprintln!("iteration {i}: mixed cause {cause:?}");
            mixed += 1;
        }
    }
    stop.store(1, Ordering::Relaxed);
    reader.join().unwrap();
    eprintln!("{i} iterations, canceled/deadline = {split:?}");
    assert_eq!(mixed, 0);
}
/// A child born done under an already-canceled parent takes the parent's cause, not the reason
/// of its own deadline (Go: `Cause(child) == Cause(parent)`).
#[test]
fn born_done_child_of_canceled_parent_reports_parents_cause() {
    let (parent, cancel) = Context::background().with_cancel().into_parts();
    cancel.cancel();
    let ctx = parent.with_timeout_cause(Duration::from_secs(60), "too slow");
    assert_eq!(ctx.err(), Some(Error::Canceled));
    let cause = ctx.cause().unwrap();
    assert_eq!(cause.error(), Error::Canceled);
    assert_eq!(cause.to_string(), "context canceled", "cause = {cause:?}");
}

/// Same, via with_deadline_cause under a parent canceled with a reason-less cancel.
#[test]
fn born_done_child_deadline_cause_variant() {
    let (parent, cancel) = Context::background().with_cancel().into_parts();
    drop(cancel);
    let ctx = parent.with_deadline_cause(Instant::now() + Duration::from_secs(5), "quota");
    assert!(ctx.cause().unwrap().reason().is_none(), "{:?}", ctx.cause());
}

/// A cancel of a node whose parent's cancel (on another thread) completed it first returns only
/// once the whole subtree is done, though the other thread is still walking it.
#[test]
fn a_cancel_that_loses_to_a_parent_cancel_returns_once_the_subtree_is_done() {
    let mut failures = 0;
    for _round in 0..20 {
        let (parent, cancel_parent) = Context::background().with_cancel().into_parts();
        let (node, cancel_node) = parent.with_cancel().into_parts();
        let children: Vec<_> = (0..20_000).map(|_| node.with_cancel()).collect();
        let last = children.last().unwrap().context().clone();
        let go = Arc::new(AtomicBool::new(false));
        let t = {
            let go = go.clone();
            std::thread::spawn(move || {
                while !go.load(Ordering::Acquire) {}
                cancel_parent.cancel();
            })
        };
        go.store(true, Ordering::Release);
        // Wait until the parent's walk has completed `node` (but maybe not its children yet).
        while !node.is_done() {
            std::hint::spin_loop();
        }
        cancel_node.cancel();
        if !last.is_done() {
            failures += 1;
        }
        t.join().unwrap();
        drop(children);
    }
    assert_eq!(
        failures, 0,
        "cancel() returned with a descendant not done in {failures}/20 rounds"
    );
}

/// The same with two threads canceling the very same handle.
#[test]
fn two_cancels_of_one_handle_both_return_once_the_subtree_is_done() {
    let mut failures = 0;
    for _round in 0..20 {
        let (node, cancel_node) = Context::background().with_cancel().into_parts();
        let children: Vec<_> = (0..20_000).map(|_| node.with_cancel()).collect();
        let last = children.last().unwrap().context().clone();
        std::thread::scope(|s| {
            s.spawn(|| cancel_node.cancel());
            while !node.is_done() {
                std::hint::spin_loop();
            }
            cancel_node.cancel();
            if !last.is_done() {
                failures += 1;
            }
        });
        drop(children);
    }
    assert_eq!(
        failures, 0,
        "cancel() returned with a descendant not done in {failures}/20 rounds"
    );
}
