//! loom models of the four races of the cancel tree (`tree.rs`): cancel vs child creation (in
//! the inline place and in a shard), cancel vs drop, concurrent cancels, and waiter registration
//! vs cancel.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ctxkit --lib --release loom`
//!
//! loom explores every interleaving of the node locks, the state word and thread parking. The
//! reference counts are std's (`sync.rs` explains why), so a child being dropped is modeled at
//! the points where it takes its parent's lock.

use loom::thread;

use crate::{Context, Error};

/// A parent canceled while a child is being created: the child ends up done either way (born
/// done, or linked and then completed), and the parent keeps no child.
#[test]
fn loom_cancel_vs_child_creation() {
    loom::model(|| {
        let (parent, cancel) = Context::background().with_cancel().into_parts();
        let creator = {
            let parent = parent.clone();
            thread::spawn(move || {
                let (child, handle) = parent.with_cancel().into_parts();
                handle.disarm();
                child
            })
        };
        cancel.cancel();
        let child = creator.join().unwrap();
        assert_eq!(child.err(), Some(Error::Canceled));
        assert_eq!(parent.__child_count(), 0);
    });
}

/// The same race once the parent's inline place is taken, so the new child goes into a shard
/// (`tree.rs`, "Where children live"), while the inline child unlinks itself: both children end
/// up done and the parent keeps none.
#[test]
fn loom_cancel_vs_shard_child_creation() {
    loom::model(|| {
        let (parent, cancel) = Context::background().with_cancel().into_parts();
        let (inline_child, inline_handle) = parent.with_cancel().into_parts();
        let creator = {
            let parent = parent.clone();
            thread::spawn(move || {
                let (child, handle) = parent.with_cancel().into_parts();
                handle.disarm();
                drop(inline_handle); // the inline child cancels and leaves its place
                child
            })
        };
        cancel.cancel();
        let child = creator.join().unwrap();
        assert_eq!(child.err(), Some(Error::Canceled));
        assert_eq!(inline_child.err(), Some(Error::Canceled));
        assert_eq!(parent.__child_count(), 0);
    });
}

/// A child dropped (all handles gone, never canceled) while its parent is canceled: no panic,
/// no child left linked, the parent done.
#[test]
fn loom_cancel_vs_drop() {
    loom::model(|| {
        let (parent, cancel) = Context::background().with_cancel().into_parts();
        let (child, handle) = parent.with_cancel().into_parts();
        handle.disarm();
        let dropper = thread::spawn(move || drop(child));
        cancel.cancel();
        dropper.join().unwrap();
        assert!(parent.is_done());
        assert_eq!(parent.__child_count(), 0);
    });
}

/// Two cancels with different reasons race on one node with a child: exactly one reason wins,
/// the node and the child agree on it, and each cancel returns only once the child is done.
#[test]
fn loom_concurrent_cancels() {
    loom::model(|| {
        let (ctx, cancel) = Context::background().with_cancel_cause().into_parts();
        let child = ctx.with_cancel();
        let cancel = std::sync::Arc::new(cancel);
        let other = {
            let cancel = cancel.clone();
            thread::spawn(move || cancel.cancel_with("first"))
        };
        cancel.cancel_with("second");
        // Invariant 6: whichever cancel won, this one returns only once the subtree is done.
        assert!(child.is_done());
        other.join().unwrap();
        let cause = ctx.cause().unwrap().to_string();
        assert!(cause == "first" || cause == "second", "{cause}");
        assert_eq!(child.cause().unwrap().to_string(), cause);
        assert_eq!(ctx.err(), Some(Error::Canceled));
    });
}

/// A thread registering as a waiter while another cancels: the waiter always wakes (loom
/// reports a deadlock if a wake-up could be lost) and leaves nothing registered.
#[test]
fn loom_waiter_registration_vs_cancel() {
    loom::model(|| {
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        let waiter = {
            let ctx = ctx.clone();
            thread::spawn(move || ctx.wait())
        };
        cancel.cancel();
        assert_eq!(waiter.join().unwrap(), Error::Canceled);
        assert_eq!(ctx.__waiter_count(), 0);
    });
}

/// A waiter on a child while the parent is canceled: the cancel reaches the waiter through the
/// subtree walk.
#[test]
fn loom_waiter_on_child_vs_parent_cancel() {
    loom::model(|| {
        let (parent, cancel) = Context::background().with_cancel().into_parts();
        let child = parent.with_cancel();
        let waiter = thread::spawn(move || child.wait());
        cancel.cancel();
        assert_eq!(waiter.join().unwrap(), Error::Canceled);
    });
}

/// A parent canceled while its child is canceled on another thread (a chain `parent -> child ->
/// grandchild`): the parent's cancel returns only once the grandchild is done (invariant 6),
/// even if the child's own cancel completed the child first and is still to walk below it.
#[test]
fn loom_parent_cancel_vs_child_cancel_waits_for_the_grandchild() {
    loom::model(|| {
        let (parent, cancel) = Context::background().with_cancel().into_parts();
        let (child, child_cancel) = parent.with_cancel().into_parts();
        let grandchild = child.with_cancel();
        let other = thread::spawn(move || child_cancel.cancel());
        cancel.cancel();
        assert!(
            grandchild.is_done(),
            "parent's cancel returned, grandchild not done"
        );
        other.join().unwrap();
        drop(child);
    });
}
