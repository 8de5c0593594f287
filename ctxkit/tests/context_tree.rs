//! The cancel tree's behaviour: propagation one way only (with the cancel's reason, through
//! every kind of child, to every waiter), deadlines as the earlier of a child's and its
//! parent's, contexts born done (with their parent's cause), the first cancel winning, cancel on
//! drop, `disarm`, unlinking from the parent when a child is gone, bad input, and lazily expired
//! deadlines that every reader sees alike, also when a cancel comes after them.
//!
//! Cancels racing other work on other threads are in `context_cancel_races.rs`; a deadline
//! racing a cancel, in `context_deadline_races.rs`.

mod common;

use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use common::{channel_waker, poll_with, wait_done, HOUR};
use ctxkit::{Context, Error};

// ===== propagation =====

#[test]
fn a_child_is_done_when_its_parent_is_never_the_other_way() {
    let (parent, cancel_parent) = Context::background().with_cancel().into_parts();
    let (child, cancel_child) = parent.with_cancel().into_parts();
    let grandchild = child.with_timeout(HOUR);

    cancel_child.cancel();
    assert_eq!(child.err(), Some(Error::Canceled));
    assert_eq!(grandchild.err(), Some(Error::Canceled));
    assert_eq!(
        parent.err(),
        None,
        "a child's cancel reached its parent: {parent:?}"
    );
    assert!(!parent.is_done());

    let sibling = parent.with_cancel();
    assert!(!sibling.is_done());
    cancel_parent.cancel();
    assert!(sibling.is_done());
    assert_eq!(sibling.err(), Some(Error::Canceled));
}

#[test]
fn when_cancel_returns_every_descendant_reports_done() {
    // A wide and deep tree; no waiting of any kind after cancel().
    let (root, cancel) = Context::background().with_cancel().into_parts();
    let mut keep = Vec::new();
    let mut leaves = Vec::new();
    for _ in 0..50 {
        let (a, ha) = root.with_cancel().into_parts();
        let (b, hb) = a.with_timeout(HOUR).into_parts();
        let c = b.with_value(7u8);
        let (d, hd) = c.with_cancel().into_parts();
        keep.extend([ha, hb, hd]);
        leaves.extend([a, b, c, d]);
    }
    // A chain 10,000 deep must not overflow anything.
    let mut deep = root.clone();
    for _ in 0..10_000 {
        let (next, handle) = deep.with_cancel().into_parts();
        keep.push(handle);
        deep = next;
    }
    leaves.push(deep);
    cancel.cancel();
    for (i, leaf) in leaves.iter().enumerate() {
        assert!(
            leaf.is_done(),
            "descendant {i} not done when cancel() returned: {leaf:?}"
        );
        assert_eq!(leaf.err(), Some(Error::Canceled));
    }
    drop(keep);
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
            _ => last.with_deadline(Instant::now() + 2 * HOUR),
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
    let mut futures: Vec<_> = chain
        .iter()
        .skip(3)
        .step_by(11)
        .map(|ctx| {
            let (waker, woken) = channel_waker();
            let mut done = ctx.done();
            assert!(poll_with(&mut done, &waker).is_pending());
            (done, waker, woken)
        })
        .collect();
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
    for (done, waker, woken) in &mut futures {
        assert!(woken.try_recv().is_ok(), "the cancel woke no task");
        assert_eq!(poll_with(done, waker), Poll::Ready(Error::Canceled));
    }
    for ctx in &chain {
        assert_eq!(ctx.__waiter_count(), 0);
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

#[test]
fn a_child_of_a_done_parent_is_born_done_with_its_error_and_cause() {
    let (parent, cancel) = Context::background().with_cancel_cause().into_parts();
    cancel.cancel_with("parent gave up");
    let child = parent.with_timeout(HOUR);
    assert_eq!(child.err(), Some(Error::Canceled));
    assert_eq!(child.cause().unwrap().to_string(), "parent gave up");
    assert_eq!(parent.__child_count(), 0, "a born-done child was linked");

    let expired = Context::background().with_timeout(Duration::ZERO);
    let child = expired.with_cancel();
    assert_eq!(child.err(), Some(Error::DeadlineExceeded));
}

/// A child born done under an already-canceled parent takes the parent's cause, not the reason
/// of its own deadline (Go: `Cause(child) == Cause(parent)`).
#[test]
fn a_child_born_done_takes_its_parents_cause_not_its_deadline_reason() {
    let (parent, cancel) = Context::background().with_cancel().into_parts();
    cancel.cancel();
    let ctx = parent.with_timeout_cause(Duration::from_secs(60), "too slow");
    assert_eq!(ctx.err(), Some(Error::Canceled));
    let cause = ctx.cause().unwrap();
    assert_eq!(cause.error(), Error::Canceled);
    assert_eq!(cause.to_string(), "context canceled", "cause = {cause:?}");
}

/// The same through `with_deadline_cause`, under a parent canceled by dropping its handle: the
/// child has no reason, as its parent has none.
#[test]
fn a_child_born_done_under_a_reasonless_cancel_has_no_reason() {
    let (parent, cancel) = Context::background().with_cancel().into_parts();
    drop(cancel);
    let ctx = parent.with_deadline_cause(Instant::now() + Duration::from_secs(5), "quota");
    assert!(ctx.cause().unwrap().reason().is_none(), "{:?}", ctx.cause());
}

// ===== deadlines =====

#[test]
fn a_childs_deadline_is_the_earlier_of_its_own_and_its_parents() {
    let now = Instant::now();
    let early = now + Duration::from_secs(60);
    let late = now + Duration::from_secs(120);

    let parent = Context::background().with_deadline(early);
    assert_eq!(
        parent.deadline(),
        Some(early),
        "deadline() gives back the instant given"
    );
    let later_child = parent.with_deadline(late);
    assert_eq!(later_child.deadline(), Some(early));
    let timeout_child = parent.with_timeout(HOUR);
    assert_eq!(timeout_child.deadline(), Some(early));
    let plain_child = parent.with_cancel();
    assert_eq!(plain_child.deadline(), Some(early));
    struct V;
    assert_eq!(parent.with_value(V).deadline(), Some(early));

    let late_parent = Context::background().with_deadline(late);
    let earlier_child = late_parent.with_deadline(early);
    assert_eq!(earlier_child.deadline(), Some(early));
    assert_eq!(
        late_parent.deadline(),
        Some(late),
        "a child changed its parent's deadline"
    );

    // Successive calls return the same value.
    assert_eq!(earlier_child.deadline(), earlier_child.deadline());
    assert_eq!(Context::background().with_cancel().deadline(), None);
}

#[test]
fn a_child_is_done_at_its_parents_earlier_deadline() {
    let parent = Context::background().with_timeout(Duration::from_millis(20));
    let child = parent.with_timeout(HOUR);
    assert_eq!(wait_done(&child, "child"), Error::DeadlineExceeded);
    assert_eq!(parent.err(), Some(Error::DeadlineExceeded));
}

#[test]
fn a_past_deadline_gives_a_context_born_done() {
    for (name, ctx) in [
        (
            "deadline in the past",
            Context::background().with_deadline(Instant::now() - Duration::from_secs(5)),
        ),
        (
            "deadline now",
            Context::background().with_deadline(Instant::now()),
        ),
        (
            "zero timeout",
            Context::background().with_timeout(Duration::ZERO),
        ),
        (
            "past deadline under a parent",
            Context::background()
                .with_cancel()
                .with_deadline(Instant::now() - Duration::from_secs(1)),
        ),
    ] {
        assert!(ctx.is_done(), "{name}: not born done: {ctx:?}");
        assert_eq!(ctx.err(), Some(Error::DeadlineExceeded), "{name}");
        assert_eq!(ctx.check(), Err(Error::DeadlineExceeded), "{name}");
        let cause = ctx.cause().unwrap();
        assert!(cause.is_deadline_exceeded(), "{name}: {cause:?}");
        assert_eq!(cause.to_string(), "context deadline exceeded", "{name}");
    }
}

#[test]
fn an_absurd_timeout_means_no_deadline() {
    let ctx = Context::background().with_timeout(Duration::MAX);
    assert_eq!(ctx.deadline(), None);
    assert!(!ctx.is_done());
    let ctx2 = ctx.with_timeout_cause(Duration::MAX, "never");
    assert_eq!(ctx2.deadline(), None);
    assert_eq!(ctx2.wait_timeout(Duration::from_millis(5)), None);

    // Under a parent with a deadline, the parent's deadline stays.
    let parent = Context::background().with_timeout(HOUR);
    let child = parent.with_timeout(Duration::MAX);
    assert_eq!(child.deadline(), parent.deadline());

    // The waits accept it too.
    assert_eq!(ctx.wait_timeout(Duration::ZERO), None);
    let (canceled, cancel) = Context::background().with_cancel().into_parts();
    cancel.cancel();
    assert_eq!(canceled.wait_timeout(Duration::MAX), Some(Error::Canceled));
    assert_eq!(canceled.blocking_sleep(Duration::MAX), Err(Error::Canceled));
}

// ===== the first cancel wins =====

#[test]
fn the_first_cancel_wins_error_and_cause() {
    let (parent, cancel_parent) = Context::background().with_cancel_cause().into_parts();
    let (ctx, cancel) = parent.with_timeout_cause(HOUR, "too slow").into_parts();
    cancel.cancel_with("first");
    cancel.cancel_with("second");
    cancel.cancel();
    cancel_parent.cancel_with("parent");
    // The deadline passes too (read on a made-up instant past it): nothing changes.
    let after_deadline = ctx.deadline().unwrap() + Duration::from_secs(1);
    assert_eq!(ctx.__err_at(after_deadline), Some(Error::Canceled));
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert_eq!(ctx.cause().unwrap().to_string(), "first");
    drop(cancel);
    assert_eq!(ctx.cause().unwrap().to_string(), "first");

    // A deadline that passed first wins over a later cancel.
    let (ctx, cancel) = Context::background()
        .with_timeout_cause(Duration::from_millis(5), "too slow")
        .into_parts();
    assert_eq!(wait_done(&ctx, "timeout"), Error::DeadlineExceeded);
    cancel.cancel_with("late");
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    let cause = ctx.cause().unwrap();
    assert!(cause.is_deadline_exceeded());
    assert_eq!(cause.to_string(), "too slow");
}

// ===== the cancel handle =====

#[test]
fn the_cancel_handle_cancels_on_drop() {
    let root = Context::background();
    let ctx = {
        let (ctx, _cancel) = root.with_cancel().into_parts();
        assert!(!ctx.is_done());
        ctx
    };
    assert_eq!(ctx.err(), Some(Error::Canceled));

    // `let (ctx, _) = ...into_parts()` drops the handle at once: the split form keeps Go's trap,
    // which is why it is not the default.
    #[allow(clippy::let_underscore_untyped, reason = "the pattern under test")]
    let (ctx, _) = root.with_timeout(HOUR).into_parts();
    assert_eq!(ctx.err(), Some(Error::Canceled));

    let (ctx, cancel) = root.with_cancel().into_parts();
    assert!(!cancel.is_done());
    drop(cancel);
    assert!(ctx.is_done());
    assert!(ctx.cause().unwrap().reason().is_none());
}

#[test]
fn disarm_lets_go_without_canceling() {
    let (parent, cancel_parent) = Context::background().with_cancel().into_parts();
    let (child, cancel_child) = parent.with_cancel().into_parts();
    cancel_child.disarm();
    assert!(!child.is_done(), "disarm canceled: {child:?}");
    assert_eq!(
        parent.__child_count(),
        1,
        "a live disarmed child must stay linked"
    );
    // The parent still reaches it.
    cancel_parent.cancel();
    assert_eq!(child.err(), Some(Error::Canceled));

    // A disarmed deadline still fires.
    let (ctx, cancel) = Context::background()
        .with_timeout(Duration::from_millis(5))
        .into_parts();
    cancel.disarm();
    assert_eq!(wait_done(&ctx, "disarmed timeout"), Error::DeadlineExceeded);
}

// ===== nothing is pinned =====

#[test]
fn a_child_nobody_holds_leaves_its_parent() {
    let parent = Context::background().with_cancel();
    let (child, cancel) = parent.with_timeout(HOUR).into_parts();
    cancel.disarm();
    let clones: Vec<Context> = (0..3).map(|_| child.clone()).collect();
    let grandchild = {
        let (g, h) = child.with_cancel().into_parts();
        h.disarm();
        g
    };
    assert_eq!(parent.__child_count(), 1);
    assert_eq!(child.__child_count(), 1);
    drop(child);
    for clone in clones {
        assert_eq!(
            parent.__child_count(),
            1,
            "child unlinked while a clone lives"
        );
        drop(clone);
    }
    // The grandchild keeps its parent alive (and linked): it can still be canceled through it.
    assert_eq!(
        parent.__child_count(),
        1,
        "a child with a live grandchild was unlinked"
    );
    assert!(!grandchild.is_done());
    drop(grandchild);
    assert_eq!(
        parent.__child_count(),
        0,
        "dropped child still linked: {parent:?}"
    );

    // Many children dropped in turn leave nothing behind.
    for _ in 0..1000 {
        let (c, h) = parent.with_cancel().into_parts();
        h.disarm();
        drop(c);
    }
    assert_eq!(parent.__child_count(), 0);

    // A canceled child leaves at once, even while clones of it live.
    let (child, cancel) = parent.with_cancel().into_parts();
    let _clone = child.clone();
    assert_eq!(parent.__child_count(), 1);
    cancel.cancel();
    assert_eq!(parent.__child_count(), 0);
}

/// Children that leave (canceled or dropped) leave no trace, in the parent's inline place or in
/// its shards: the inline place is reused once its child leaves; once shards are in use they
/// take every later child; a parent's cancel completes children in both places.
#[test]
fn children_come_and_go_and_a_cancel_reaches_every_one_left() {
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

#[test]
fn children_outlive_their_parents_handles() {
    let (child, cancel_parent) = {
        let (parent, cancel_parent) = Context::background().with_timeout(HOUR).into_parts();
        let (child, cancel_child) = parent.with_cancel().into_parts();
        cancel_child.disarm();
        (child, cancel_parent)
    };
    // The parent context value is gone; its handle still reaches the child through the tree.
    assert!(!child.is_done());
    assert!(child.deadline().is_some());
    cancel_parent.cancel();
    assert_eq!(child.err(), Some(Error::Canceled));
}

// ===== lazily expired deadlines =====

#[test]
fn lazily_expired_deadlines_read_the_same_everywhere() {
    // `wait()` parks with a timeout and arms no timer, so afterwards the parent has expired
    // "lazily": no completion has run. Every reader must still agree that it is done.
    let (parent, cancel_parent) = Context::background()
        .with_timeout(Duration::from_millis(20))
        .into_parts();
    let (child, cancel_child) = parent.with_cancel_cause().into_parts();
    let timed_child = parent.with_timeout(HOUR);
    struct V;
    let value_child = child.with_value(V);
    assert_eq!(wait_done(&parent, "parent"), Error::DeadlineExceeded);

    for (name, c) in [
        ("child", &child),
        ("timed_child", &timed_child),
        ("value_child", &value_child),
    ] {
        assert!(
            c.is_done(),
            "{name} of an expired parent reports not done: {c:?}"
        );
        assert_eq!(c.err(), Some(Error::DeadlineExceeded), "{name}");
        assert_eq!(c.check(), Err(Error::DeadlineExceeded), "{name}");
        assert!(c.cause().unwrap().is_deadline_exceeded(), "{name}");
        assert_eq!(
            c.wait_timeout(Duration::ZERO),
            Some(Error::DeadlineExceeded),
            "{name}"
        );
    }
    // A child made now is born done.
    let late = parent.with_cancel();
    assert_eq!(late.err(), Some(Error::DeadlineExceeded), "{late:?}");

    // Canceling what readers already saw as expired changes nothing they see.
    cancel_child.cancel_with("too late");
    assert_eq!(child.err(), Some(Error::DeadlineExceeded), "{child:?}");
    assert!(child.cause().unwrap().is_deadline_exceeded());
    cancel_parent.cancel();
    assert_eq!(parent.err(), Some(Error::DeadlineExceeded));
    assert_eq!(timed_child.err(), Some(Error::DeadlineExceeded));
    assert_eq!(late.err(), Some(Error::DeadlineExceeded));
}

#[test]
fn a_lazily_expired_cause_deadline_reports_its_reason() {
    let (parent, cancel) = Context::background()
        .with_timeout_cause(Duration::from_millis(10), "quota window closed")
        .into_parts();
    let child = parent.with_cancel();
    assert_eq!(wait_done(&parent, "parent"), Error::DeadlineExceeded);
    for (name, c) in [("parent", &parent), ("child", &child)] {
        let cause = c
            .cause()
            .unwrap_or_else(|| panic!("{name}: no cause: {c:?}"));
        assert!(cause.is_deadline_exceeded(), "{name}: {cause:?}");
        assert_eq!(cause.to_string(), "quota window closed", "{name}");
        assert_eq!(c.err().unwrap().to_string(), "context deadline exceeded");
    }
    // The completion that follows records the same reason.
    cancel.cancel_with("canceled afterwards");
    assert_eq!(parent.cause().unwrap().to_string(), "quota window closed");
    assert_eq!(child.cause().unwrap().to_string(), "quota window closed");
    let late = parent.with_cancel();
    assert_eq!(late.cause().unwrap().to_string(), "quota window closed");
}

#[test]
fn a_cancel_after_an_unobserved_deadline_records_the_deadline() {
    // Nobody reads or waits on the context before its deadline passes; the cancel that comes
    // afterwards still finds the deadline first, as Go's timer would have fired first.
    let (ctx, cancel) = Context::background()
        .with_timeout_cause(Duration::from_millis(5), "took too long")
        .into_parts();
    let child = ctx.with_cancel();
    let deadline = ctx.deadline().unwrap();
    while std::time::Instant::now() <= deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    cancel.cancel_with("canceled afterwards");
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded), "{ctx:?}");
    assert_eq!(ctx.cause().unwrap().to_string(), "took too long");
    assert_eq!(child.err(), Some(Error::DeadlineExceeded), "{child:?}");
    assert_eq!(child.cause().unwrap().to_string(), "took too long");

    // The same decision on a made-up instant: a read past the deadline records it, and a later
    // cancel keeps it.
    let ctx = Context::background().with_timeout_cause(HOUR, "took too long");
    let after_deadline = ctx.deadline().unwrap() + Duration::from_secs(1);
    assert_eq!(
        ctx.__err_at(after_deadline - HOUR),
        None,
        "read before the deadline"
    );
    assert_eq!(ctx.__err_at(after_deadline), Some(Error::DeadlineExceeded));
    ctx.cancel_with("canceled afterwards");
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    assert_eq!(ctx.cause().unwrap().to_string(), "took too long");

    // Canceled before the deadline: canceled, whatever the clock says later.
    let ctx = Context::background().with_timeout(HOUR);
    let after_deadline = ctx.deadline().unwrap() + Duration::from_secs(1);
    ctx.cancel();
    assert_eq!(ctx.__err_at(after_deadline), Some(Error::Canceled));
    assert_eq!(ctx.err(), Some(Error::Canceled));
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
