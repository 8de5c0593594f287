//! Pay for what you use: creating, reading and blocking on a context with a deadline arms no
//! timer and starts no thread. The first async waiter or after-function on a deadline arms one
//! entry for the deadline's owner on the one `ctxkit-timer` thread (more waiters on the same
//! deadline arm nothing more); canceling the owner, or its deadline firing, disarms that entry
//! and no other.
//!
//! The armed count (`__armed_timers()`) and the timer thread are process-wide, so the checks
//! are one test, alone in this file (its own process): every count it asserts is the exact
//! number of deadlines it has armed at that point, never a bound.

mod common;

use std::time::{Duration, Instant};

use common::{poll_once, wait_until, HOUR, PATIENCE};
use ctxkit::context::__armed_timers as armed;
use ctxkit::Context;

/// Whether a thread named `name` runs in this process (Linux only; `None` elsewhere).
fn thread_running(name: &str) -> Option<bool> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim_end() == name)
    }))
}

/// A pending `done()` future on `ctx`: an async waiter.
fn async_waiter(ctx: &Context) -> ctxkit::Done {
    let mut done = ctx.done();
    assert!(poll_once(&mut done).is_pending(), "{ctx:?}");
    done
}

#[test]
fn deadlines_arm_the_timer_only_for_async_waiters_and_after_functions() {
    assert_eq!(armed(), 0);
    assert_ne!(
        thread_running("ctxkit-timer"),
        Some(true),
        "timer thread started too early"
    );

    // Creating, reading, child creation and blocking waits arm nothing.
    let (ctx, cancel) = Context::background().with_timeout(HOUR).into_parts();
    let child = ctx.with_timeout(2 * HOUR);
    assert!(!ctx.is_done());
    assert_eq!(ctx.err(), None);
    assert!(ctx.deadline().is_some());
    assert_eq!(child.wait_timeout(Duration::from_millis(5)), None);
    let short = Context::background().with_timeout(Duration::from_millis(5));
    assert!(short.wait_timeout(PATIENCE).is_some());
    assert_eq!(armed(), 0, "a timer was armed without an async waiter");
    assert_ne!(
        thread_running("ctxkit-timer"),
        Some(true),
        "timer thread started without need"
    );

    // The first async waiter arms the owner of the deadline (the child inherits the parent's).
    let done = async_waiter(&child);
    assert_eq!(armed(), 1, "{child:?}");
    // The new thread names itself as it starts: give it time.
    wait_until(
        "a ctxkit-timer thread after arming",
        || thread_running("ctxkit-timer"),
        |running| *running != Some(false),
    );
    // A second waiter on the same deadline arms nothing more.
    let done2 = async_waiter(&ctx);
    assert_eq!(armed(), 1);
    drop((done, done2));
    // Canceling disarms.
    cancel.cancel();
    assert_eq!(armed(), 0, "cancel left the deadline armed");

    // An after-function arms too, once per deadline, as a waiter does; the cancel disarms.
    let (ctx, cancel) = Context::background().with_timeout(HOUR).into_parts();
    let _after = ctx.after_func(|| {});
    assert_eq!(armed(), 1, "an after-function did not arm its deadline");
    let done = async_waiter(&ctx);
    assert_eq!(armed(), 1, "a waiter after an after-function armed again");
    cancel.cancel();
    drop(done);
    assert_eq!(
        armed(),
        0,
        "cancel left the after-function's deadline armed"
    );

    // Two owners, two entries; each cancel disarms its own.
    let (first, cancel_first) = Context::background().with_timeout(HOUR).into_parts();
    let (second, cancel_second) = Context::background().with_timeout(2 * HOUR).into_parts();
    let waiters = (async_waiter(&first), async_waiter(&second));
    assert_eq!(armed(), 2);
    cancel_second.cancel();
    assert_eq!(
        armed(),
        1,
        "canceling one owner disarmed another, or nothing"
    );
    cancel_first.cancel();
    assert_eq!(armed(), 0);
    drop(waiters);

    // A deadline firing disarms its own entry and leaves the others. Its count is checked only
    // while it has not passed: read before the clock, a count taken before the deadline cannot
    // have seen it fire.
    let (long, cancel_long) = Context::background().with_timeout(HOUR).into_parts();
    let waiter = async_waiter(&long);
    let ctx = Context::background().with_timeout(Duration::from_millis(200));
    let deadline = ctx.deadline().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let _after = ctx.after_func(move || tx.send(()).unwrap());
    let both = armed();
    if Instant::now() < deadline {
        assert_eq!(both, 2, "the after-function did not arm its deadline");
    } else {
        eprintln!("the 200 ms deadline passed before the count was read: count not checked");
    }
    rx.recv_timeout(PATIENCE)
        .expect("the deadline never ran the after-function");
    let left = wait_until("the fired deadline's disarming", armed, |&n| n < 2);
    assert_eq!(left, 1, "the fired deadline took another entry with it");
    assert!(!long.is_done(), "{long:?}");
    assert_eq!(armed(), 1);
    cancel_long.cancel();
    drop(waiter);
    assert_eq!(armed(), 0);
}
