//! `CancelContext`: the derived context that owns its cancellation. What a Go user types first
//! (`ctx, cancel := context.WithTimeout(...)`) must not give a context that is already canceled;
//! the compile-time half of that is the `compile_fail` example on `CancelContext`.

mod common;

use std::sync::mpsc;
use std::thread;

use common::HOUR;
use ctxkit::{Context, Error};

fn takes_a_context(ctx: &Context) -> Option<Error> {
    ctx.err()
}

#[test]
fn a_derived_context_is_live_until_its_owner_drops_it() {
    let root = Context::background();
    for (name, ctx) in [
        ("with_cancel", root.with_cancel()),
        ("with_cancel_cause", root.with_cancel_cause()),
        ("with_timeout", root.with_timeout(HOUR)),
        ("with_timeout_cause", root.with_timeout_cause(HOUR, "slow")),
        (
            "with_deadline",
            root.with_deadline(std::time::Instant::now() + HOUR),
        ),
        (
            "with_deadline_cause",
            root.with_deadline_cause(std::time::Instant::now() + HOUR, "late"),
        ),
    ] {
        // The one-value idiom: nothing was dropped, so nothing is canceled.
        assert_eq!(ctx.err(), None, "{name}: born canceled");
        assert_eq!(
            takes_a_context(&ctx),
            None,
            "{name}: &CancelContext as &Context"
        );
        let observer = ctx.clone(); // a plain Context
        let child = ctx.with_cancel();
        drop(ctx);
        assert_eq!(
            observer.err(),
            Some(Error::Canceled),
            "{name}: drop did not cancel"
        );
        assert_eq!(
            child.err(),
            Some(Error::Canceled),
            "{name}: child not canceled"
        );
    }
}

#[test]
fn clones_are_plain_contexts_that_cancel_nothing() {
    let ctx = Context::background().with_cancel();
    let clone: Context = ctx.clone();
    drop(clone);
    assert!(!ctx.is_done(), "dropping a clone canceled the context");
    let clones: Vec<Context> = (0..3).map(|_| ctx.clone()).collect();
    drop(clones);
    assert!(!ctx.is_done());
    ctx.cancel();
    assert!(ctx.is_done());
}

#[test]
fn cancel_and_cancel_with_keep_the_first_reason() {
    let ctx = Context::background().with_timeout(HOUR);
    ctx.cancel_with("user pressed stop");
    ctx.cancel();
    ctx.cancel_with("later");
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert_eq!(ctx.cause().unwrap().to_string(), "user pressed stop");
}

#[test]
fn into_parts_hands_the_cancel_to_another_thread() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let (tx, rx) = mpsc::channel::<()>();
    let canceler = thread::spawn(move || {
        rx.recv().unwrap();
        drop(cancel); // dropping the handle cancels, as the CancelContext's drop would
    });
    assert!(!ctx.is_done(), "split without canceling");
    tx.send(()).unwrap();
    assert_eq!(ctx.wait(), Error::Canceled);
    canceler.join().unwrap();
}

#[test]
fn disarm_lets_go_without_canceling() {
    let parent = Context::background().with_cancel();
    let ctx = parent.with_timeout(HOUR).disarm();
    assert!(!ctx.is_done());
    assert!(ctx.deadline().is_some(), "disarm keeps the deadline");
    parent.cancel();
    assert_eq!(
        ctx.err(),
        Some(Error::Canceled),
        "still a child of its parent"
    );
}

#[test]
fn a_cancel_context_moved_into_a_thread_cancels_when_the_thread_ends() {
    // Documented: the owner decides when the context ends, wherever it was moved.
    let ctx = Context::background().with_cancel();
    let observer = ctx.clone();
    thread::spawn(move || assert!(!ctx.is_done()))
        .join()
        .unwrap();
    assert_eq!(observer.err(), Some(Error::Canceled));
}

#[test]
fn canceling_a_parent_owner_reaches_children_of_clones() {
    let parent = Context::background().with_cancel();
    let plain = parent.clone();
    let grandchild = plain.with_value(7u8).with_timeout(HOUR);
    parent.cancel();
    assert_eq!(grandchild.err(), Some(Error::Canceled));
    assert_eq!(grandchild.value::<u8>(), Some(&7));
}

#[test]
fn debug_shows_the_context() {
    let ctx = Context::background().with_value(1u32).with_timeout(HOUR);
    let text = format!("{ctx:?}");
    assert!(text.starts_with("CancelContext(Context {"), "{text}");
    assert!(text.contains("err: None"), "{text}");
    ctx.cancel();
    assert!(format!("{ctx:?}").contains("Canceled"), "{ctx:?}");
}
