//! Tests of the inline child place and the quick completion of the cancel tree (`tree.rs`): a
//! node's first child lives under the node's own lock, later ones in shards, and `cancel()`
//! completes reason-less nodes without building a `Done`.
//!
//! The first three tests are regressions for races found in review (see their docs; each failed
//! before the fix: a parent's cancel returning while a concurrently canceled child was still
//! walking its subtree, and a waker that cancels its own context again spinning forever); the
//! others pin down the behaviour of the new paths.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use ctxkit::{CancelHandle, Context, Error};

const HOUR: Duration = Duration::from_secs(3600);

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

/// Invariant 6 ("when `cancel` returns, every descendant reports done") when a child is being
/// canceled on another thread: the child's cancel has completed the child and taken its
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
    let (tx, rx) = mpsc::channel();
    {
        let ctx = ctx.clone();
        thread::spawn(move || {
            let mut done = pin!(ctx.done());
            let mut cx = TaskContext::from_waker(&waker);
            assert!(done.as_mut().poll(&mut cx).is_pending());
            handle.cancel();
            let _ = tx.send(());
        });
    }
    // A deadlock detector, not a timing: a correct run takes microseconds.
    let finished = rx.recv_timeout(Duration::from_secs(10)).is_ok();
    assert!(
        finished,
        "cancel() deadlocked: a waker's re-entrant cancel of the same context waits for itself"
    );
    assert!(wake.woken.load(Ordering::Acquire));
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert_eq!(child.err(), Some(Error::Canceled));
}

/// A chain of contexts, each the inline child of the one before, mixing nodes with and without
/// deadlines (owned and inherited), pending deadline reasons, and threads waiting: one cancel
/// of the root completes the whole chain with `Canceled` and wakes every waiter.
#[test]
fn cancel_of_a_chain_with_deadlines_and_waiters_completes_every_link() {
    let (root, cancel) = Context::background().with_cancel().into_parts();
    let mut chain = vec![root.clone()];
    let mut handles = Vec::new();
    for i in 0..200 {
        let last = chain.last().unwrap();
        let (next, handle) = match i % 5 {
            0 => last.with_cancel(),
            // Owns a deadline (the first) or inherits it (the later, longer ones).
            1 => last.with_timeout(HOUR + Duration::from_secs(i)),
            2 => last.with_timeout_cause(HOUR - Duration::from_secs(i), "own deadline"),
            3 => last.with_cancel_cause(),
            _ => last.with_deadline(std::time::Instant::now() + 2 * HOUR),
        }
        .into_parts();
        assert_eq!(last.__child_count(), 1);
        chain.push(next);
        handles.push(handle);
    }
    let waiters: Vec<_> = chain
        .iter()
        .step_by(7)
        .map(|ctx| {
            let ctx = ctx.clone();
            thread::spawn(move || ctx.wait())
        })
        .collect();
    // Async waiters arm the timer on deadline owners: the completion must disarm them.
    let wakers: Vec<_> = chain.iter().skip(3).step_by(11).collect();
    let flags: Vec<Arc<Flag>> = wakers.iter().map(|_| Arc::new(Flag::default())).collect();
    let mut futures: Vec<_> = wakers.iter().map(|ctx| Box::pin(ctx.done())).collect();
    for (future, flag) in futures.iter_mut().zip(&flags) {
        let waker = Waker::from(flag.clone());
        assert!(future
            .as_mut()
            .poll(&mut TaskContext::from_waker(&waker))
            .is_pending());
    }
    cancel.cancel();
    for (i, ctx) in chain.iter().enumerate() {
        assert_eq!(ctx.err(), Some(Error::Canceled), "link {i}");
        let cause = ctx.cause().unwrap();
        assert!(cause.reason().is_none(), "link {i}: {cause}");
        assert_eq!(ctx.__child_count(), 0, "link {i}");
    }
    for waiter in waiters {
        assert_eq!(waiter.join().unwrap(), Error::Canceled);
    }
    for (future, flag) in futures.iter_mut().zip(&flags) {
        assert!(flag.0.load(Ordering::Acquire));
        let waker = Waker::from(flag.clone());
        assert_eq!(
            future.as_mut().poll(&mut TaskContext::from_waker(&waker)),
            Poll::Ready(Error::Canceled)
        );
    }
    for ctx in &chain {
        assert_eq!(ctx.__waiter_count(), 0);
    }
}

#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// A `with_cancel_cause` reason reaches every descendant, in the inline place and in shards,
/// through nodes with and without deadlines; a descendant born after the cancel gets it too.
#[test]
fn a_cancel_reason_propagates_through_inline_and_shard_children() {
    let (root, cancel) = Context::background().with_cancel_cause().into_parts();
    let inline = root.with_cancel(); // the inline place
    let shard = root.with_timeout_cause(HOUR, "shard deadline"); // a shard
    let inline_of_inline = inline.with_timeout(HOUR);
    let inline_of_shard = shard.with_cancel();
    let shard_of_shard = shard.with_timeout_cause(HOUR / 2, "own deadline");
    let deep = shard_of_shard.with_cancel_cause();
    let all = [
        &root,
        &inline,
        &shard,
        &inline_of_inline,
        &inline_of_shard,
        &shard_of_shard,
        &deep,
    ];
    assert_eq!(root.__child_count(), 2);
    assert_eq!(shard.__child_count(), 2);
    cancel.cancel_with("shutting down");
    for (i, ctx) in all.iter().enumerate() {
        assert_eq!(ctx.err(), Some(Error::Canceled), "node {i}");
        assert_eq!(
            ctx.cause().unwrap().to_string(),
            "shutting down",
            "node {i}"
        );
        assert_eq!(ctx.__child_count(), 0, "node {i}");
    }
    let late = deep.with_timeout_cause(HOUR, "late");
    assert_eq!(late.err(), Some(Error::Canceled));
    assert_eq!(late.cause().unwrap().to_string(), "shutting down");
}

/// The inline place is reused once its child leaves (canceled or dropped); once shards are in
/// use they take every later child; a parent's cancel completes children in both places.
#[test]
fn inline_place_reuse_and_cancel_of_both_places() {
    let (parent, cancel) = Context::background().with_cancel().into_parts();
    for _ in 0..3 {
        let (child, handle) = parent.with_cancel().into_parts();
        assert_eq!(parent.__child_count(), 1);
        handle.cancel();
        assert!(child.is_done());
        assert_eq!(parent.__child_count(), 0);
        let (dropped, handle) = parent.with_cancel().into_parts();
        handle.disarm();
        assert_eq!(parent.__child_count(), 1);
        drop(dropped);
        assert_eq!(parent.__child_count(), 0);
    }
    let (first, first_handle) = parent.with_cancel().into_parts();
    let second = parent.with_cancel();
    drop(first_handle); // the inline place is free again; later children still go to shards
    assert!(first.is_done());
    let third = parent.with_timeout(HOUR);
    let fourth = parent.with_cancel();
    assert_eq!(parent.__child_count(), 3);
    cancel.cancel();
    for ctx in [&second, &third, &fourth] {
        assert_eq!(ctx.err(), Some(Error::Canceled));
    }
    assert_eq!(parent.__child_count(), 0);
}

/// A child that owns a deadline which has passed unseen, under a parent canceled without a
/// reason: the walk completes it with `DeadlineExceeded` and the reason of its own deadline
/// (its deadline came first), and its inheriting child adopts the same.
#[test]
fn a_walk_completes_an_expired_unseen_owner_with_its_deadline() {
    let (parent, cancel) = Context::background().with_cancel().into_parts();
    let plain = parent.with_timeout(Duration::from_millis(1));
    let caused = parent.with_timeout_cause(Duration::from_millis(1), "too slow");
    let below_plain = plain.with_cancel();
    let below_caused = caused.with_cancel();
    // Let both deadlines pass without reading any of these contexts: the probe's deadline is
    // no earlier than theirs.
    let probe = Context::background().with_timeout(Duration::from_millis(1));
    while probe.err().is_none() {
        thread::sleep(Duration::from_millis(1));
    }
    cancel.cancel();
    assert_eq!(parent.err(), Some(Error::Canceled));
    for ctx in [&plain, &below_plain] {
        assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
        assert!(ctx.cause().unwrap().reason().is_none());
    }
    for ctx in [&caused, &below_caused] {
        assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
        assert_eq!(ctx.cause().unwrap().to_string(), "too slow");
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

/// Children created concurrently with the parent's reason-less cancel, all in the inline place
/// race (each thread frees it at once): each child ends up done, exactly once, and a waiter on
/// each wakes.
#[test]
fn inline_children_racing_a_cancel_all_end_done_and_wake_their_waiters() {
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
