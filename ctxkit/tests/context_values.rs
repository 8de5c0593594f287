//! Request-scoped values: keyed by type, the innermost shadowing, carried
//! through every kind of derived context, and kept by `without_cancel`, which is never done.

mod common;

use std::time::Duration;

use common::poll_once;
use ctxkit::{Context, Error};

#[derive(Debug, PartialEq)]
struct TraceId(&'static str);
#[derive(Debug, PartialEq)]
struct User(&'static str);

#[test]
fn with_value_of_a_present_type_shadows() {
    let outer = Context::background().with_value(User("ana"));
    let inner = outer.with_value(User("beto"));
    assert_eq!(inner.value::<User>(), Some(&User("beto")));
    assert_eq!(
        outer.value::<User>(),
        Some(&User("ana")),
        "shadowing changed the outer context"
    );
    // A third layer of another type in between changes nothing.
    let mid = inner.with_value(TraceId("t-1")).with_value(User("caro"));
    assert_eq!(mid.value::<User>(), Some(&User("caro")));
    assert_eq!(mid.value::<TraceId>(), Some(&TraceId("t-1")));
}

#[test]
fn values_are_keyed_by_type_not_by_content() {
    mod a {
        pub(super) struct Key(pub(super) String);
    }
    mod b {
        pub(super) struct Key(pub(super) String);
    }
    let ctx = Context::background()
        .with_value(a::Key("abc-123".into()))
        .with_value(b::Key("xyz-999".into()));
    assert_eq!(ctx.value::<a::Key>().map(|k| k.0.as_str()), Some("abc-123"));
    assert_eq!(ctx.value::<b::Key>().map(|k| k.0.as_str()), Some("xyz-999"));
    assert!(ctx.value::<String>().is_none(), "no bare String was stored");
    assert!(Context::background().value::<a::Key>().is_none());
}

#[test]
fn values_flow_through_every_derived_context() {
    let ctx = Context::background().with_value(TraceId("t-9"));
    let c1 = ctx.with_cancel();
    let c2 = c1.with_timeout(Duration::from_secs(3600));
    let c3 = c2.with_cancel_cause();
    let c4 = c3.without_cancel();
    for c in [&*c1, &*c2, &*c3, &c4, &c4.clone()] {
        assert_eq!(c.value::<TraceId>(), Some(&TraceId("t-9")), "{c:?}");
    }
    // And after cancellation.
    drop(c1);
    assert!(c3.is_done());
    assert_eq!(c3.value::<TraceId>(), Some(&TraceId("t-9")));
}

#[test]
fn a_long_chain_finds_every_value() {
    struct Depth(usize);
    let mut ctx = Context::background().with_value(User("root"));
    for i in 0..300 {
        ctx = ctx.with_value(Depth(i));
    }
    assert_eq!(ctx.value::<Depth>().map(|d| d.0), Some(299));
    assert_eq!(ctx.value::<User>(), Some(&User("root")));
    assert!(ctx.value::<TraceId>().is_none());
}

#[test]
fn without_cancel_keeps_values_and_is_never_done() {
    let (parent, cancel) = Context::background()
        .with_value(TraceId("audit"))
        .with_timeout_cause(Duration::from_millis(5), "slow")
        .into_parts();
    let detached = parent.without_cancel();
    assert_eq!(detached.deadline(), None);
    let child_of_detached = detached.with_cancel();

    assert_eq!(
        parent.wait_timeout(Duration::from_secs(10)),
        Some(Error::DeadlineExceeded)
    );
    cancel.cancel();

    assert!(!detached.is_done());
    assert_eq!(detached.err(), None);
    assert!(detached.cause().is_none());
    assert_eq!(detached.check(), Ok(()));
    assert_eq!(detached.value::<TraceId>(), Some(&TraceId("audit")));
    assert_eq!(detached.wait_timeout(Duration::from_millis(5)), None);
    assert!(poll_once(&mut detached.done()).is_pending());
    assert!(
        !child_of_detached.is_done(),
        "the old parent reached through without_cancel"
    );
    assert_eq!(
        child_of_detached.value::<TraceId>(),
        Some(&TraceId("audit"))
    );
    // An after-function on it never runs, so stop() stops it.
    let after = detached.after_func(|| panic!("ran on a context that is never done"));
    assert!(after.stop());
}

#[test]
fn debug_shows_state_and_value_types() {
    let (ctx, cancel) = Context::background()
        .with_value(TraceId("x"))
        .with_cancel()
        .into_parts();
    let before = format!("{ctx:?}");
    assert!(before.contains("err: None"), "{before}");
    assert!(before.contains("TraceId"), "{before}");
    cancel.cancel();
    let after = format!("{ctx:?}");
    assert!(after.contains("Canceled"), "{after}");
}
