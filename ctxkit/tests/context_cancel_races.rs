//! Cancels that race other work on the cancel tree, on several threads. The promise under test:
//! when a `cancel()` returns, every descendant of the canceled context reports done, whoever
//! else is canceling, creating or dropping contexts nearby; the first cancel's cause is the one
//! everybody sees; and a cancel never waits for itself.
//!
//! * Concurrent cancels: many threads canceling one context with reasons; two threads canceling
//!   one handle; a cancel that loses to its parent's; a parent's cancel while a child's cancel,
//!   on another thread, is held at a known point of its walk.
//! * Cancel vs create and drop: children created, canceled and dropped on other threads while
//!   their parent is canceled.
//! * Re-entrant cancel: a waker, woken by a cancel, that cancels the same context again.
//!
//! A deadline racing a cancel is in `context_deadline_races.rs`.

mod common;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context as TaskContext, Wake, Waker};
use std::thread;
use std::time::Duration;

use common::HOUR;
use ctxkit::{CancelHandle, Context, Error};

// ===== concurrent cancels =====

/// Four threads cancel one context with different reasons: one cause wins, and it is the one
/// every later read sees (a reader that saw it while the others were still canceling included).
#[test]
fn concurrent_cancels_agree_on_one_winner() {
    for round in 0..50 {
        let (ctx, cancel) = Context::background().with_cancel_cause().into_parts();
        let cancel = std::sync::Arc::new(cancel);
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let cancel = cancel.clone();
                thread::spawn(move || cancel.cancel_with(format!("canceler {i}")))
            })
            .collect();
        let seen = ctx.cause().map(|c| c.to_string());
        for t in threads {
            t.join().unwrap();
        }
        let last = ctx.cause().unwrap().to_string();
        assert!(last.starts_with("canceler "), "round {round}: {last}");
        if let Some(seen) = seen {
            assert_eq!(
                seen, last,
                "round {round}: the cause changed after it was set"
            );
        }
        for _ in 0..3 {
            assert_eq!(ctx.cause().unwrap().to_string(), last);
        }
    }
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

/// A reason whose drop blocks until the test lets it go: it holds the canceling thread at a
/// known point of `complete()` (the node completed, its children taken out and not completed
/// yet), since a replaced pending reason is dropped there.
struct HeldReason {
    entered: Arc<Barrier>,
    release: Arc<Barrier>,
}

impl fmt::Debug for HeldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeldReason")
    }
}

impl fmt::Display for HeldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("held")
    }
}

impl StdError for HeldReason {}

impl Drop for HeldReason {
    fn drop(&mut self) {
        self.entered.wait();
        self.release.wait();
    }
}

/// "When `cancel` returns, every descendant reports done" (invariant 6 of the cancel tree) when
/// a child is being canceled on another thread: the child's cancel has completed the child and taken its
/// children out, but not completed them yet, when the parent's cancel takes the child out of
/// the parent's inline place. The parent's walk must not skip the child's subtree and return.
#[test]
fn a_parent_cancel_returns_only_once_the_subtree_of_a_concurrently_canceled_child_is_done() {
    let entered = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (parent, cancel_parent) = Context::background().with_cancel().into_parts();
    // The child owns a deadline with a pending reason: its cancel replaces that reason and
    // drops it, after the child is completed and before it leaves the parent.
    let reason = HeldReason {
        entered: entered.clone(),
        release: release.clone(),
    };
    let (child, cancel_child) = parent.with_timeout_cause(2 * HOUR, reason).into_parts();
    // Owns an earlier deadline, so it reports done only once it is completed itself.
    let grandchild = child.with_timeout(HOUR);
    let canceler = thread::spawn(move || cancel_child.cancel());
    entered.wait(); // the child is completed; its cancel has not walked below it yet
    assert!(child.is_done());
    let grandchild_done =
        grandchild_done_when_parent_cancel_returns(cancel_parent, &grandchild, &release, canceler);
    assert!(
        grandchild_done,
        "the parent's cancel returned with a grandchild not done"
    );
    assert_eq!(grandchild.err(), Some(Error::Canceled));
}

/// Cancels the parent while the child's cancel (`child_canceler`) is held until `release`, and
/// reports whether `grandchild` was done when the parent's cancel returned.
///
/// A correct parent cancel waits for the child's walk; a wrong one returns at once. The bound
/// only limits how long the wrong one gets to show itself: for a correct implementation the
/// answer is the same either way.
fn grandchild_done_when_parent_cancel_returns(
    cancel_parent: CancelHandle,
    grandchild: &Context,
    release: &Barrier,
    child_canceler: thread::JoinHandle<()>,
) -> bool {
    let (tx, rx) = mpsc::channel();
    let parent_canceler = {
        let grandchild = grandchild.clone();
        thread::spawn(move || {
            cancel_parent.cancel();
            tx.send(grandchild.is_done()).unwrap();
        })
    };
    let early = rx.recv_timeout(Duration::from_millis(500)).ok();
    release.wait();
    child_canceler.join().unwrap();
    let grandchild_done = early.unwrap_or_else(|| rx.recv().unwrap());
    parent_canceler.join().unwrap();
    grandchild_done
}

/// Blocks in `wake` until the test lets it go: it holds the canceling thread at the point where
/// it notifies the canceled node's waiters.
struct HeldWake {
    entered: Arc<Barrier>,
    release: Arc<Barrier>,
}

impl Wake for HeldWake {
    fn wake(self: Arc<Self>) {
        self.entered.wait();
        self.release.wait();
    }
}

/// The same as the test above, once the child's cancel has left the parent's inline place: the
/// parent no longer holds the child, but must not return while the child's own cancel has not
/// completed the grandchild (here it is held in a waker of the child).
#[test]
fn a_parent_cancel_returns_only_once_a_child_that_left_it_has_completed_its_subtree() {
    let entered = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (parent, cancel_parent) = Context::background().with_cancel().into_parts();
    let (child, cancel_child) = parent.with_cancel().into_parts();
    let grandchild = child.with_cancel();
    let waker = Waker::from(Arc::new(HeldWake {
        entered: entered.clone(),
        release: release.clone(),
    }));
    let mut done = Box::pin(child.done());
    assert!(done
        .as_mut()
        .poll(&mut TaskContext::from_waker(&waker))
        .is_pending());
    let canceler = thread::spawn(move || cancel_child.cancel());
    entered.wait(); // the child is completed and its waiters are being woken
    let grandchild_done =
        grandchild_done_when_parent_cancel_returns(cancel_parent, &grandchild, &release, canceler);
    assert!(
        grandchild_done,
        "the parent's cancel returned with a grandchild not done"
    );
    assert_eq!(grandchild.err(), Some(Error::Canceled));
    assert_eq!(parent.__child_count(), 0);
}

// ===== cancel vs create and drop =====

/// Children created concurrently with the parent's reason-less cancel (all in the parent's
/// inline place, which each thread frees at once): each child ends up done, exactly once, and a
/// waiter on each wakes.
#[test]
fn children_created_while_their_parent_is_canceled_end_done_and_wake_their_waiters() {
    for _round in 0..200 {
        let (parent, cancel) = Context::background().with_cancel().into_parts();
        let go = Arc::new(Barrier::new(3));
        let results = Arc::new(Mutex::new(Vec::new()));
        let creators: Vec<_> = (0..2)
            .map(|_| {
                let (parent, go, results) = (parent.clone(), go.clone(), results.clone());
                thread::spawn(move || {
                    go.wait();
                    let (child, handle) = parent.with_cancel().into_parts();
                    handle.disarm();
                    let (tx, rx) = mpsc::channel();
                    let _after = child.after_func(move || tx.send(()).unwrap());
                    let error = child.wait();
                    rx.recv().unwrap();
                    assert!(rx.try_recv().is_err(), "after-function ran twice");
                    results.lock().unwrap().push(error);
                })
            })
            .collect();
        go.wait();
        cancel.cancel();
        for creator in creators {
            creator.join().unwrap();
        }
        assert_eq!(*results.lock().unwrap(), vec![Error::Canceled; 2]);
        assert_eq!(parent.__child_count(), 0);
    }
}

/// Threads create children of one parent (its inline place and shards) and grandchildren, and
/// cancel or drop them, while the parent is canceled. Once the parent's cancel has returned,
/// every context a thread still holds is done, every later child is born done, and the parent
/// keeps no child.
#[test]
fn a_parent_canceled_while_children_come_and_go_leaves_nothing_undone() {
    const THREADS: usize = 3;
    for round in 0..30 {
        let (parent, cancel) = Context::background().with_cancel_cause().into_parts();
        let canceled = Arc::new(AtomicBool::new(false));
        let created = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (parent, canceled, created) =
                    (parent.clone(), canceled.clone(), created.clone());
                thread::spawn(move || {
                    // Contexts held without canceling them: only the parent can complete them.
                    let mut held: Vec<(Context, Context)> = Vec::new();
                    let mut i = 0usize;
                    while !canceled.load(Ordering::Acquire) {
                        i += 1;
                        let (child, child_handle) = if (i + t) % 3 == 0 {
                            parent.with_timeout(HOUR)
                        } else {
                            parent.with_cancel()
                        }
                        .into_parts();
                        let (grandchild, grandchild_handle) = child.with_cancel().into_parts();
                        match i % 4 {
                            // Canceled bottom-up, so each cancel is of a childless node.
                            0 => {
                                grandchild_handle.cancel();
                                child_handle.cancel();
                            }
                            // Dropped without a cancel: they unlink when the last clone goes.
                            1 => {
                                grandchild_handle.disarm();
                                child_handle.disarm();
                                drop(grandchild);
                                drop(child);
                            }
                            _ => {
                                grandchild_handle.disarm();
                                child_handle.disarm();
                                held.push((child, grandchild));
                                if held.len() > 8 {
                                    held.remove(0);
                                }
                            }
                        }
                        created.fetch_add(1, Ordering::Relaxed);
                    }
                    // The parent's cancel has returned: everything below it is done.
                    for (child, grandchild) in &held {
                        assert_eq!(child.err(), Some(Error::Canceled), "round {round}");
                        assert_eq!(grandchild.err(), Some(Error::Canceled), "round {round}");
                        assert_eq!(grandchild.cause().unwrap().to_string(), "stop");
                    }
                    let late = parent.with_cancel();
                    assert_eq!(late.err(), Some(Error::Canceled));
                    assert_eq!(late.cause().unwrap().to_string(), "stop");
                })
            })
            .collect();
        let target = 20 + (round % 7) * 30;
        while created.load(Ordering::Relaxed) < target {
            thread::yield_now();
        }
        cancel.cancel_with("stop");
        canceled.store(true, Ordering::Release);
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(parent.__child_count(), 0, "round {round}");
    }
}

// ===== re-entrant cancel =====

/// Cancels the context of `handle` (a second time) when woken, on the waking thread.
struct CancelOnWake {
    handle: Arc<CancelHandle>,
    woken: AtomicBool,
}

impl Wake for CancelOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.handle.cancel();
    }
}

/// A waker that cancels the very context it waits on (say, it polls the task inline and the
/// task drops its `CancelHandle`) is a re-entrant cancel on the canceling thread: it must
/// return, not wait for the walk its own thread has not started yet (invariant 6).
#[test]
fn a_waker_that_cancels_its_own_context_again_does_not_deadlock() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let child = ctx.with_cancel(); // so the walk is not over at completion
    let handle = Arc::new(cancel);
    let wake = Arc::new(CancelOnWake {
        handle: handle.clone(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(wake.clone());
    // A deadlock detector, not a timing: a correct run takes microseconds.
    common::watchdog(
        "cancel() with a waker that cancels the same context again (waiting for itself?)",
        {
            let ctx = ctx.clone();
            move || {
                let mut done = pin!(ctx.done());
                let mut cx = TaskContext::from_waker(&waker);
                assert!(done.as_mut().poll(&mut cx).is_pending());
                handle.cancel();
            }
        },
    );
    assert!(wake.woken.load(Ordering::Acquire));
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert_eq!(child.err(), Some(Error::Canceled));
}
