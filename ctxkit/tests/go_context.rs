//! The cases of Go's own context tests, written anew in Rust against ctxkit.
//!
//! Source: `src/context/x_test.go` and `src/context/context_test.go` of the Go distribution
//! (<https://go.dev/src/context/>), as of Go 1.21–1.23 (the versions with `WithCancelCause`,
//! `AfterFunc` and `WithoutCancel`). The case list, the scenarios and their expected outcomes
//! come from there; the code is new. Go is
//!
//! > Copyright 2009 The Go Authors. All rights reserved. Use of this source code is governed by
//! > a BSD-style license that can be found in the LICENSE file
//! > (<https://go.dev/LICENSE>).
//!
//! Where Go's test reads an unexported field (`len(ctx.(*cancelCtx).children)`), this port reads
//! the hidden `Context::__child_count()` / `Context::__waiter_count()`. Where Go drops a cancel
//! function with `_`, this port keeps the `CancelHandle` alive, since dropping a ctxkit handle
//! cancels. Go's `nil` cause has no Rust counterpart; `cancel()` (no reason) plays its part.
//! Cases about Go's `String()` method, allocation counts, nil parents, custom `Context`
//! implementations and `WithValue` key checks have no counterpart in ctxkit's API and are left
//! out.

mod common;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

// `PATIENCE` plays the part of Go's `veryLongDuration` as an upper bound on any wait that must
// succeed; `wait_done` is Go's `<-c.Done()` under that bound.
use common::{clock_seed, wait_done, XorShift, PATIENCE};
use ctxkit::{CancelHandle, Context, Error};

/// Go's `shortDuration`.
const SHORT: Duration = Duration::from_millis(1);
/// Go's `veryLongDuration` used as a timeout that must never fire during a test.
const VERY_LONG: Duration = Duration::from_secs(1000 * 3600);

/// A named error, as Go's `fmt.Errorf("parentCause")` values.
#[derive(Debug, PartialEq, Eq)]
struct Named(&'static str);

impl fmt::Display for Named {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Named {}

/// A cause as Go's tests compare it: its kind, its text and the `Named` reason, if any.
type CauseView = (Error, String, Option<&'static str>);

/// `(err, cause)` of a context: what Go's tests compare.
fn err_and_cause(ctx: &Context) -> (Option<Error>, Option<CauseView>) {
    let cause = ctx.cause().map(|c| {
        (
            c.error(),
            c.to_string(),
            c.downcast_ref::<Named>().map(|n| n.0),
        )
    });
    (ctx.err(), cause)
}

// ===== Background, TODO, WithCancel =====

#[test]
fn background() {
    let c = Context::background();
    assert!(!c.is_done());
    assert_eq!(c.err(), None);
    assert_eq!(c.deadline(), None);
    assert_eq!(c.wait_timeout(SHORT), None, "<-c.Done() should block");
    assert_eq!(format!("{c:?}"), "Context::background()");
}

#[test]
fn todo() {
    let c = Context::todo();
    assert!(!c.is_done());
    assert_eq!(c.err(), None);
    assert_eq!(c.wait_timeout(SHORT), None, "<-c.Done() should block");
    assert_eq!(format!("{c:?}"), "Context::todo()");
}

#[test]
fn with_cancel() {
    let (c1, cancel) = Context::background().with_cancel().into_parts();
    // Go wraps c1 in an `otherContext`; a value layer is ctxkit's closest "other" wrapper.
    struct Other;
    let o = c1.with_value(Other);
    let c2 = o.with_cancel();
    let contexts = [&c1, &o, &c2];
    for (i, c) in contexts.iter().enumerate() {
        assert_eq!(c.err(), None, "c[{i}].err()");
        assert!(!c.is_done(), "c[{i}] should not be done: {c:?}");
    }
    cancel.cancel(); // Should propagate synchronously.
    for (i, c) in contexts.iter().enumerate() {
        assert!(c.is_done(), "c[{i}] not done right after cancel(): {c:?}");
        assert_eq!(c.err(), Some(Error::Canceled), "c[{i}].err()");
    }
}

// ===== XTestParentFinishesChild, XTestChildFinishesFirst =====

#[test]
fn parent_finishes_child() {
    // parent: cancelable; children: a cancelable child, a value child, and a timer child under
    // the value child. Canceling the parent finishes them all and unlinks them.
    let (parent, cancel) = Context::background().with_cancel().into_parts();
    let cancel_child = parent.with_cancel();
    struct V;
    let value_child = parent.with_value(V);
    let timer_child = value_child.with_timeout(VERY_LONG);
    assert!(timer_child.deadline().is_some());

    for (name, c) in [
        ("parent", &parent),
        ("cancel_child", &cancel_child),
        ("value_child", &value_child),
        ("timer_child", &timer_child),
    ] {
        assert_eq!(c.err(), None, "{name} done before cancel: {c:?}");
    }
    // Value layers add no node: the parent holds two cancelable children.
    assert_eq!(parent.__child_count(), 2, "parent's children before cancel");

    cancel.cancel();
    for (name, c) in [
        ("parent", &parent),
        ("cancel_child", &cancel_child),
        ("value_child", &value_child),
        ("timer_child", &timer_child),
    ] {
        assert_eq!(
            c.err(),
            Some(Error::Canceled),
            "{name} after parent cancel: {c:?}"
        );
    }
    assert_eq!(
        parent.__child_count(),
        0,
        "parent still lists children after cancel"
    );
    assert_eq!(cancel_child.__child_count(), 0);
    assert_eq!(timer_child.__child_count(), 0);

    // A child made after the parent is done is born done.
    let late = parent.with_cancel();
    assert_eq!(late.err(), Some(Error::Canceled));
    assert_eq!(parent.__child_count(), 0);
}

#[test]
fn child_finishes_first() {
    let cancelable = Context::background().with_cancel();
    let timed = Context::background().with_timeout(VERY_LONG);
    for parent in [cancelable, timed] {
        let (child, cancel_child) = parent.with_cancel().into_parts();
        assert_eq!(parent.__child_count(), 1, "child not linked: {parent:?}");
        cancel_child.cancel();
        assert_eq!(child.err(), Some(Error::Canceled));
        assert_eq!(parent.__child_count(), 0, "canceled child still linked");
        assert_eq!(
            parent.err(),
            None,
            "child cancel reached the parent: {parent:?}"
        );
        assert_eq!(parent.wait_timeout(SHORT), None, "parent should block");
    }
}

// ===== deadlines and timeouts =====

#[test]
fn deadline() {
    let c = Context::background().with_deadline(Instant::now() + SHORT);
    assert_eq!(wait_done(&c, "WithDeadline"), Error::DeadlineExceeded);

    struct Other;
    let c = Context::background().with_deadline(Instant::now() + SHORT);
    let o = c.with_value(Other);
    assert_eq!(wait_done(&o, "WithDeadline+other"), Error::DeadlineExceeded);

    let c = Context::background().with_deadline(Instant::now() + SHORT);
    let o = c.with_value(Other);
    let c = o.with_deadline(Instant::now() + VERY_LONG);
    assert_eq!(
        wait_done(&c, "WithDeadline+other+WithDeadline"),
        Error::DeadlineExceeded
    );

    let c = Context::background().with_deadline(Instant::now() - SHORT);
    assert_eq!(
        c.err(),
        Some(Error::DeadlineExceeded),
        "in the past: born done"
    );
    assert_eq!(
        wait_done(&c, "WithDeadline+inthepast"),
        Error::DeadlineExceeded
    );

    let c = Context::background().with_deadline(Instant::now());
    assert_eq!(c.err(), Some(Error::DeadlineExceeded), "now: born done");
    assert_eq!(wait_done(&c, "WithDeadline+now"), Error::DeadlineExceeded);
}

#[test]
fn timeout() {
    let c = Context::background().with_timeout(SHORT);
    assert_eq!(wait_done(&c, "WithTimeout"), Error::DeadlineExceeded);

    struct Other;
    let c = Context::background().with_timeout(SHORT);
    let o = c.with_value(Other);
    assert_eq!(wait_done(&o, "WithTimeout+other"), Error::DeadlineExceeded);

    let c = Context::background().with_timeout(SHORT);
    let o = c.with_value(Other);
    let c = o.with_timeout(VERY_LONG);
    assert_eq!(
        wait_done(&c, "WithTimeout+other+WithTimeout"),
        Error::DeadlineExceeded
    );
}

#[test]
fn canceled_timeout() {
    struct Other;
    let c = Context::background().with_timeout(Duration::from_secs(1));
    let o = c.with_value(Other);
    let (c, cancel) = o.with_timeout(VERY_LONG).into_parts();
    cancel.cancel(); // Should propagate synchronously.
    assert!(c.is_done(), "not done right after cancel(): {c:?}");
    assert_eq!(c.err(), Some(Error::Canceled));
}

// ===== values =====

/// Go's `key1`: an int-based key type. The value is an `Option` so that a layer can hold Go's
/// `nil`.
struct Key1(Option<&'static str>);
/// Go's `key2(1)` and `key2(3)`: one key type, two key values. In ctxkit a key is a type, so
/// the two keys are two instances of a generic type.
struct Key2<const N: u8>(Option<&'static str>);

fn check_values(c: &Context, name: &str, v1: &str, v2: &str, v3: &str) {
    let get = |v: Option<Option<&'static str>>| v.flatten().unwrap_or("");
    assert_eq!(get(c.value::<Key1>().map(|k| k.0)), v1, "{name}.value(k1)");
    assert_eq!(
        get(c.value::<Key2<1>>().map(|k| k.0)),
        v2,
        "{name}.value(k2)"
    );
    assert_eq!(
        get(c.value::<Key2<3>>().map(|k| k.0)),
        v3,
        "{name}.value(k3)"
    );
}

#[test]
fn values() {
    let c0 = Context::background();
    check_values(&c0, "c0", "", "", "");

    let c1 = Context::background().with_value(Key1(Some("c1k1")));
    check_values(&c1, "c1", "c1k1", "", "");

    let c2 = c1.with_value(Key2::<1>(Some("c2k2")));
    check_values(&c2, "c2", "c1k1", "c2k2", "");

    let c3 = c2.with_value(Key2::<3>(Some("c3k3")));
    check_values(&c3, "c3", "c1k1", "c2k2", "c3k3");

    // Shadowing with "nil".
    let c4 = c3.with_value(Key1(None));
    check_values(&c4, "c4", "", "c2k2", "c3k3");
    // The outer contexts are unchanged.
    check_values(&c3, "c3 after c4", "c1k1", "c2k2", "c3k3");

    struct Other;
    let o0 = Context::background().with_value(Other);
    check_values(&o0, "o0", "", "", "");

    let o1 = Context::background()
        .with_value(Key1(Some("c1k1")))
        .with_value(Other);
    check_values(&o1, "o1", "c1k1", "", "");

    let o2 = o1.with_value(Key2::<1>(Some("o2k2")));
    check_values(&o2, "o2", "c1k1", "o2k2", "");

    let o3 = c4.with_value(Other);
    check_values(&o3, "o3", "", "c2k2", "c3k3");

    let o4 = o3.with_value(Key2::<3>(None));
    check_values(&o4, "o4", "", "c2k2", "");

    // Values cross cancelable layers in both directions.
    let c5 = o4.with_cancel();
    check_values(&c5, "c5", "", "c2k2", "");
}

// ===== concurrent cancels =====

#[test]
fn simultaneous_cancels() {
    // A tree of about 100 contexts, four children each, breadth first.
    let (root, cancel) = Context::background().with_cancel().into_parts();
    let mut all: Vec<(Context, CancelHandle)> = vec![(root.clone(), cancel)];
    let mut queue = vec![root];
    let mut next = 0;
    while next < queue.len() && all.len() < 100 {
        let parent = queue[next].clone();
        next += 1;
        for _ in 0..4 {
            let (ctx, cancel) = parent.with_cancel().into_parts();
            queue.push(ctx.clone());
            all.push((ctx, cancel));
        }
    }
    let (contexts, cancels): (Vec<Context>, Vec<CancelHandle>) = all.into_iter().unzip();

    // Start all the cancels at once, each on its own thread.
    let cancelers: Vec<_> = cancels
        .into_iter()
        .map(|cancel| thread::spawn(move || cancel.cancel()))
        .collect();
    // Wait on all the contexts.
    for (i, ctx) in contexts.iter().enumerate() {
        assert_eq!(wait_done(ctx, &format!("context {i}")), Error::Canceled);
    }
    // Wait for all the cancels to return.
    for canceler in cancelers {
        canceler.join().expect("a cancel panicked");
    }
    for ctx in &contexts {
        assert_eq!(
            ctx.__child_count(),
            0,
            "children left after all cancels: {ctx:?}"
        );
    }
}

#[test]
fn interlocked_cancels() {
    let (parent, cancel_parent) = Context::background().with_cancel().into_parts();
    let (child, cancel_child) = parent.with_cancel().into_parts();
    let watcher = {
        let parent = parent.clone();
        thread::spawn(move || {
            parent.wait();
            cancel_child.cancel();
        })
    };
    cancel_parent.cancel();
    assert_eq!(wait_done(&child, "child"), Error::Canceled);
    watcher.join().expect("watcher panicked");
}

// ===== layers =====

/// One of eight value types; which one a layer uses is chosen at random.
#[derive(Debug, PartialEq)]
struct Layer<const N: usize>(usize);

fn add_value(ctx: &Context, kind: usize, id: usize) -> Context {
    match kind {
        0 => ctx.with_value(Layer::<0>(id)),
        1 => ctx.with_value(Layer::<1>(id)),
        2 => ctx.with_value(Layer::<2>(id)),
        3 => ctx.with_value(Layer::<3>(id)),
        4 => ctx.with_value(Layer::<4>(id)),
        5 => ctx.with_value(Layer::<5>(id)),
        6 => ctx.with_value(Layer::<6>(id)),
        _ => ctx.with_value(Layer::<7>(id)),
    }
}

fn get_value(ctx: &Context, kind: usize) -> Option<usize> {
    match kind {
        0 => ctx.value::<Layer<0>>().map(|l| l.0),
        1 => ctx.value::<Layer<1>>().map(|l| l.0),
        2 => ctx.value::<Layer<2>>().map(|l| l.0),
        3 => ctx.value::<Layer<3>>().map(|l| l.0),
        4 => ctx.value::<Layer<4>>().map(|l| l.0),
        5 => ctx.value::<Layer<5>>().map(|l| l.0),
        6 => ctx.value::<Layer<6>>().map(|l| l.0),
        _ => ctx.value::<Layer<7>>().map(|l| l.0),
    }
}

fn test_layers(test_timeout: bool) {
    // Go's test uses math/rand with a printed seed; this one a seeded xorshift.
    let seed = clock_seed();
    let mut rng = XorShift::new(seed);
    println!("test_layers(timeout={test_timeout}): seed={seed}");
    const MIN_LAYERS: usize = 30;
    let mut innermost: [Option<usize>; 8] = [None; 8];
    let mut cancels: Vec<CancelHandle> = Vec::new();
    let mut timers = 0;
    let mut ctx = Context::background();
    let mut i = 0;
    while i < MIN_LAYERS
        || timers == 0
        || cancels.is_empty()
        || innermost.iter().all(Option::is_none)
    {
        match rng.below(3) {
            0 => {
                let kind = rng.below(8);
                ctx = add_value(&ctx, kind, i);
                innermost[kind] = Some(i);
            }
            1 => {
                let (c, cancel) = ctx.with_cancel().into_parts();
                ctx = c;
                cancels.push(cancel);
            }
            _ => {
                let d = if test_timeout { SHORT } else { VERY_LONG };
                let (c, cancel) = ctx.with_timeout(d).into_parts();
                ctx = c;
                cancels.push(cancel);
                timers += 1;
            }
        }
        i += 1;
    }
    let check_values = |when: &str| {
        for (kind, want) in innermost.iter().enumerate() {
            assert_eq!(
                get_value(&ctx, kind),
                *want,
                "seed={seed}: {when}: value of Layer<{kind}>"
            );
        }
    };
    if !test_timeout {
        assert!(
            !ctx.is_done(),
            "seed={seed}: ctx should not be canceled yet: {ctx:?}"
        );
    }
    check_values("before cancel");
    if test_timeout {
        assert_eq!(
            wait_done(&ctx, &format!("seed={seed}")),
            Error::DeadlineExceeded
        );
        check_values("after timeout");
    } else {
        let index = rng.below(cancels.len());
        cancels[index].cancel();
        assert!(
            ctx.is_done(),
            "seed={seed}: ctx should be canceled (layer {index}): {ctx:?}"
        );
        assert_eq!(ctx.err(), Some(Error::Canceled));
        check_values("after cancel");
    }
}

#[test]
fn layers_cancel() {
    test_layers(false);
}

#[test]
fn layers_timeout() {
    test_layers(true);
}

// ===== XTestCancelRemoves =====

#[test]
fn cancel_removes() {
    let ctx = Context::background().with_cancel();
    assert_eq!(ctx.__child_count(), 0, "after creation");

    let (_child, cancel) = ctx.with_cancel().into_parts();
    assert_eq!(ctx.__child_count(), 1, "with WithCancel child");
    cancel.cancel();
    assert_eq!(ctx.__child_count(), 0, "after canceling WithCancel child");

    let (_child, cancel) = ctx.with_timeout(Duration::from_secs(3600)).into_parts();
    assert_eq!(ctx.__child_count(), 1, "with WithTimeout child");
    cancel.cancel();
    assert_eq!(ctx.__child_count(), 0, "after canceling WithTimeout child");

    // Go counts an AfterFunc as a child; ctxkit keeps it in the waiter list.
    let stop = ctx.after_func(|| {});
    assert_eq!(ctx.__waiter_count(), 1, "with AfterFunc");
    assert!(stop.stop());
    assert_eq!(ctx.__waiter_count(), 0, "after stopping AfterFunc");
}

// ===== a canceled parent at creation =====

#[test]
fn with_cancel_canceled_parent() {
    let (parent, pcancel) = Context::background().with_cancel_cause().into_parts();
    pcancel.cancel_with(Named("Because!"));

    let c = parent.with_cancel();
    assert!(c.is_done(), "child not done immediately upon construction");
    assert_eq!(c.err(), Some(Error::Canceled));
    assert_eq!(
        err_and_cause(&c).1,
        Some((Error::Canceled, "Because!".to_owned(), Some("Because!"))),
        "child has wrong cause"
    );
}

#[test]
fn with_cancel_simultaneously_canceled_parent() {
    for i in 0..100 {
        let (parent, pcancel) = Context::background().with_cancel_cause().into_parts();
        let canceler = thread::spawn(move || pcancel.cancel_with(Named("Because!")));
        let c = parent.with_cancel();
        assert_eq!(wait_done(&c, &format!("iteration {i}")), Error::Canceled);
        assert_eq!(
            err_and_cause(&c).1,
            Some((Error::Canceled, "Because!".to_owned(), Some("Because!"))),
            "iteration {i}: child has wrong cause"
        );
        canceler.join().expect("canceler panicked");
    }
}

#[test]
fn deadline_exceeded_supports_timeout() {
    assert!(Error::DeadlineExceeded.is_timeout());
    assert!(!Error::Canceled.is_timeout());
}

// ===== Cause =====

type Built = (Context, Vec<CancelHandle>);

#[test]
fn cause() {
    const FOREVER: Duration = Duration::from_secs(1_000_000);
    const CANCELED: &str = "context canceled";
    const DEADLINE: &str = "context deadline exceeded";
    // (name, build, want err, want cause: (kind, text, named reason))
    #[allow(clippy::type_complexity, reason = "a table of test cases")]
    let cases: Vec<(
        &str,
        fn() -> Built,
        Option<Error>,
        Option<(Error, &str, Option<&str>)>,
    )> = vec![
        ("Background", || (Context::background(), vec![]), None, None),
        ("TODO", || (Context::todo(), vec![]), None, None),
        (
            "WithCancel",
            || {
                let (ctx, cancel) = Context::background().with_cancel().into_parts();
                cancel.cancel();
                (ctx, vec![cancel])
            },
            Some(Error::Canceled),
            Some((Error::Canceled, CANCELED, None)),
        ),
        (
            "WithCancelCause",
            || {
                let (ctx, cancel) = Context::background().with_cancel_cause().into_parts();
                cancel.cancel_with(Named("parentCause"));
                (ctx, vec![cancel])
            },
            Some(Error::Canceled),
            Some((Error::Canceled, "parentCause", Some("parentCause"))),
        ),
        (
            "WithCancelCause without a reason (Go: nil)",
            || {
                let (ctx, cancel) = Context::background().with_cancel_cause().into_parts();
                cancel.cancel();
                (ctx, vec![cancel])
            },
            Some(Error::Canceled),
            Some((Error::Canceled, CANCELED, None)),
        ),
        (
            "WithCancelCause: parent cause before child",
            || {
                let (ctx, cancel_parent) = Context::background().with_cancel_cause().into_parts();
                let (ctx, cancel_child) = ctx.with_cancel_cause().into_parts();
                cancel_parent.cancel_with(Named("parentCause"));
                cancel_child.cancel_with(Named("childCause"));
                (ctx, vec![cancel_parent, cancel_child])
            },
            Some(Error::Canceled),
            Some((Error::Canceled, "parentCause", Some("parentCause"))),
        ),
        (
            "WithCancelCause: parent cause after child",
            || {
                let (ctx, cancel_parent) = Context::background().with_cancel_cause().into_parts();
                let (ctx, cancel_child) = ctx.with_cancel_cause().into_parts();
                cancel_child.cancel_with(Named("childCause"));
                cancel_parent.cancel_with(Named("parentCause"));
                (ctx, vec![cancel_parent, cancel_child])
            },
            Some(Error::Canceled),
            Some((Error::Canceled, "childCause", Some("childCause"))),
        ),
        (
            "WithCancelCause: parent cause before nil",
            || {
                let (ctx, cancel_parent) = Context::background().with_cancel_cause().into_parts();
                let (ctx, cancel_child) = ctx.with_cancel().into_parts();
                cancel_parent.cancel_with(Named("parentCause"));
                cancel_child.cancel();
                (ctx, vec![cancel_parent, cancel_child])
            },
            Some(Error::Canceled),
            Some((Error::Canceled, "parentCause", Some("parentCause"))),
        ),
        (
            "WithCancelCause: parent cause after nil",
            || {
                let (ctx, cancel_parent) = Context::background().with_cancel_cause().into_parts();
                let (ctx, cancel_child) = ctx.with_cancel().into_parts();
                cancel_child.cancel();
                cancel_parent.cancel_with(Named("parentCause"));
                (ctx, vec![cancel_parent, cancel_child])
            },
            Some(Error::Canceled),
            Some((Error::Canceled, CANCELED, None)),
        ),
        (
            "WithCancelCause: child cause after nil",
            || {
                let (ctx, cancel_parent) = Context::background().with_cancel().into_parts();
                let (ctx, cancel_child) = ctx.with_cancel_cause().into_parts();
                cancel_parent.cancel();
                cancel_child.cancel_with(Named("childCause"));
                (ctx, vec![cancel_parent, cancel_child])
            },
            Some(Error::Canceled),
            Some((Error::Canceled, CANCELED, None)),
        ),
        (
            "WithCancelCause: child cause before nil",
            || {
                let (ctx, cancel_parent) = Context::background().with_cancel().into_parts();
                let (ctx, cancel_child) = ctx.with_cancel_cause().into_parts();
                cancel_child.cancel_with(Named("childCause"));
                cancel_parent.cancel();
                (ctx, vec![cancel_parent, cancel_child])
            },
            Some(Error::Canceled),
            Some((Error::Canceled, "childCause", Some("childCause"))),
        ),
        (
            "WithTimeout",
            || {
                let (ctx, cancel) = Context::background()
                    .with_timeout(Duration::ZERO)
                    .into_parts();
                cancel.cancel();
                (ctx, vec![cancel])
            },
            Some(Error::DeadlineExceeded),
            Some((Error::DeadlineExceeded, DEADLINE, None)),
        ),
        (
            "WithTimeout canceled",
            || {
                let (ctx, cancel) = Context::background().with_timeout(FOREVER).into_parts();
                cancel.cancel();
                (ctx, vec![cancel])
            },
            Some(Error::Canceled),
            Some((Error::Canceled, CANCELED, None)),
        ),
        (
            "WithTimeoutCause",
            || {
                let (ctx, cancel) = Context::background()
                    .with_timeout_cause(Duration::ZERO, Named("tooSlow"))
                    .into_parts();
                cancel.cancel();
                (ctx, vec![cancel])
            },
            Some(Error::DeadlineExceeded),
            Some((Error::DeadlineExceeded, "tooSlow", Some("tooSlow"))),
        ),
        (
            "WithTimeoutCause canceled",
            || {
                let (ctx, cancel) = Context::background()
                    .with_timeout_cause(FOREVER, Named("tooSlow"))
                    .into_parts();
                cancel.cancel();
                (ctx, vec![cancel])
            },
            Some(Error::Canceled),
            Some((Error::Canceled, CANCELED, None)),
        ),
        (
            "WithTimeoutCause stacked",
            || {
                let (ctx, cancel) = Context::background().with_cancel_cause().into_parts();
                let (ctx, keep) = ctx
                    .with_timeout_cause(Duration::ZERO, Named("tooSlow"))
                    .into_parts();
                cancel.cancel_with(Named("finishedEarly"));
                (ctx, vec![cancel, keep])
            },
            Some(Error::DeadlineExceeded),
            Some((Error::DeadlineExceeded, "tooSlow", Some("tooSlow"))),
        ),
        (
            "WithTimeoutCause stacked canceled",
            || {
                let (ctx, cancel) = Context::background().with_cancel_cause().into_parts();
                let (ctx, keep) = ctx
                    .with_timeout_cause(FOREVER, Named("tooSlow"))
                    .into_parts();
                cancel.cancel_with(Named("finishedEarly"));
                (ctx, vec![cancel, keep])
            },
            Some(Error::Canceled),
            Some((Error::Canceled, "finishedEarly", Some("finishedEarly"))),
        ),
        (
            "WithoutCancel",
            || (Context::background().without_cancel(), vec![]),
            None,
            None,
        ),
        (
            "WithoutCancel canceled",
            || {
                let (ctx, cancel) = Context::background().with_cancel_cause().into_parts();
                let ctx = ctx.without_cancel();
                cancel.cancel_with(Named("finishedEarly"));
                (ctx, vec![cancel])
            },
            None,
            None,
        ),
        (
            "WithoutCancel timeout",
            || {
                let (ctx, cancel) = Context::background()
                    .with_timeout_cause(Duration::ZERO, Named("tooSlow"))
                    .into_parts();
                let ctx = ctx.without_cancel();
                cancel.cancel();
                (ctx, vec![cancel])
            },
            None,
            None,
        ),
    ];
    for (name, build, want_err, want_cause) in cases {
        let (ctx, handles) = build();
        let (err, cause) = err_and_cause(&ctx);
        assert_eq!(err, want_err, "{name}: ctx.err()");
        let want_cause = want_cause.map(|(e, text, named)| (e, text.to_owned(), named));
        assert_eq!(cause, want_cause, "{name}: ctx.cause()");
        drop(handles);
        // Dropping the handles (a late cancel) changes nothing.
        assert_eq!(
            err_and_cause(&ctx),
            (err, cause),
            "{name}: after dropping the handles"
        );
    }
}

#[test]
fn cause_race() {
    let (ctx, cancel) = Context::background().with_cancel_cause().into_parts();
    let canceler = thread::spawn(move || {
        cancel.cancel_with(Named("TestCauseRace"));
        cancel
    });
    let start = Instant::now();
    // Poll the cause rather than waiting, to exercise the synchronization of the cause.
    loop {
        if let Some(cause) = ctx.cause() {
            assert_eq!(
                cause.downcast_ref::<Named>(),
                Some(&Named("TestCauseRace")),
                "{cause:?}"
            );
            assert_eq!(cause.error(), Error::Canceled);
            break;
        }
        assert!(start.elapsed() < PATIENCE, "cause never appeared: {ctx:?}");
        thread::yield_now();
    }
    drop(canceler.join().expect("canceler panicked"));
}

#[test]
fn without_cancel() {
    struct Key(&'static str);
    let (parent, cancel) = Context::background()
        .with_value(Key("value"))
        .with_timeout(Duration::from_secs(3600))
        .into_parts();
    let ctx = parent.without_cancel();
    assert_eq!(ctx.deadline(), None);
    assert_eq!(ctx.err(), None);
    assert_eq!(ctx.value::<Key>().map(|k| k.0), Some("value"));
    cancel.cancel();
    assert_eq!(parent.err(), Some(Error::Canceled));
    assert_eq!(
        ctx.err(),
        None,
        "without_cancel followed its parent: {ctx:?}"
    );
    assert!(ctx.cause().is_none());
    assert_eq!(
        ctx.wait_timeout(SHORT),
        None,
        "done() of without_cancel should block"
    );
}

// ===== AfterFunc =====

#[test]
fn after_func_called_after_cancel() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let (tx, rx) = mpsc::channel();
    let stop = ctx.after_func(move || tx.send(()).expect("receiver gone"));
    assert!(
        rx.recv_timeout(SHORT).is_err(),
        "AfterFunc called before context is done"
    );
    cancel.cancel();
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("AfterFunc not called after context is canceled: {stop:?}"));
    assert!(!stop.stop(), "stop() = true, want false");
}

#[test]
fn after_func_called_after_timeout() {
    let ctx = Context::background().with_timeout(SHORT);
    let (tx, rx) = mpsc::channel();
    let stop = ctx.after_func(move || tx.send(()).expect("receiver gone"));
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("AfterFunc not called after timeout: {ctx:?} {stop:?}"));
}

#[test]
fn after_func_called_immediately() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    cancel.cancel();
    let (tx, rx) = mpsc::channel();
    let stop = ctx.after_func(move || tx.send(()).expect("receiver gone"));
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("AfterFunc not called for already-canceled context: {stop:?}"));
    assert!(!stop.stop());
}

#[test]
fn after_func_not_called_after_stop() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let calls = Arc::new(AtomicUsize::new(0));
    let stop = ctx.after_func({
        let calls = calls.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
        }
    });
    assert!(stop.stop(), "stop() = false, want true");
    cancel.cancel();
    // Give a wrongly started function time to show itself.
    thread::sleep(Duration::from_millis(20));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "AfterFunc called after stop()"
    );
    assert!(!stop.stop(), "second stop() = true, want false");
}

#[test]
fn after_func_called_asynchronously() {
    // Canceling does not wait for the after-function: it blocks until we read, after cancel().
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let (tx, rx) = mpsc::sync_channel::<()>(0);
    let stop = ctx.after_func(move || tx.send(()).expect("receiver gone"));
    cancel.cancel();
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("AfterFunc not called after context is canceled: {stop:?}"));
    drop(stop);
}
