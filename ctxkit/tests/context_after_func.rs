//! `after_func`: runs once, on its own `ctxkit-after-func` thread, after the
//! context is done (at once if it already is), never on the canceling thread; `stop()` reports
//! whether it prevented the run and does not wait for a started function.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::PATIENCE;
use ctxkit::Context;

/// Registers an after-function that reports (thread name, thread id) on a channel.
fn reporting(
    ctx: &Context,
) -> (
    ctxkit::AfterFunc,
    mpsc::Receiver<(Option<String>, thread::ThreadId)>,
) {
    let (tx, rx) = mpsc::channel();
    let after = ctx.after_func(move || {
        let me = thread::current();
        let _ = tx.send((me.name().map(String::from), me.id()));
    });
    (after, rx)
}

#[test]
fn runs_once_on_its_own_named_thread_after_done() {
    let _leaks = common::no_leaks();
    let (parent, cancel_parent) = Context::background().with_cancel().into_parts();
    let (ctx, cancel) = parent.with_cancel().into_parts();
    let runs = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let after = ctx.after_func({
        let runs = runs.clone();
        move || {
            runs.fetch_add(1, Ordering::SeqCst);
            let me = thread::current();
            let _ = tx.send((me.name().map(String::from), me.id()));
        }
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(10)).is_err(),
        "ran before the context was done"
    );
    cancel.cancel();
    cancel.cancel();
    cancel_parent.cancel();
    let (name, id) = rx
        .recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("after-function never ran: {ctx:?} {after:?}"));
    assert_eq!(name.as_deref(), Some("ctxkit-after-func"));
    assert_ne!(id, thread::current().id(), "ran on the canceling thread");
    assert!(!after.stop(), "stop() after the run must report false");
    // Give a second run time to show itself.
    thread::sleep(Duration::from_millis(20));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "ran more than once");
}

#[test]
fn runs_at_once_for_an_already_done_context() {
    let _leaks = common::no_leaks();
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    cancel.cancel();
    let (after, rx) = reporting(&ctx);
    let (name, id) = rx
        .recv_timeout(PATIENCE)
        .expect("never ran for a done context");
    assert_eq!(name.as_deref(), Some("ctxkit-after-func"));
    assert_ne!(
        id,
        thread::current().id(),
        "ran inline on the registering thread"
    );
    assert!(!after.stop());

    // Also for a deadline that has passed lazily (nobody completed it).
    let ctx = Context::background().with_timeout(Duration::from_millis(5));
    assert!(ctx.wait_timeout(PATIENCE).is_some());
    let (after, rx) = reporting(&ctx);
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("never ran for an expired context: {ctx:?} {after:?}"));
    assert!(!after.stop());
}

#[test]
fn runs_when_a_deadline_passes_with_nobody_waiting() {
    let _leaks = common::no_leaks();
    let ctx = Context::background().with_timeout(Duration::from_millis(10));
    let (after, rx) = reporting(&ctx);
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("not run at the deadline: {ctx:?} {after:?}"));
    assert!(!after.stop());
}

#[test]
fn stop_before_done_prevents_the_run() {
    let _leaks = common::no_leaks();
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let runs = Arc::new(AtomicUsize::new(0));
    let after = ctx.after_func({
        let runs = runs.clone();
        move || {
            runs.fetch_add(1, Ordering::SeqCst);
        }
    });
    assert_eq!(ctx.__waiter_count(), 1);
    assert!(after.stop(), "the first stop prevents the run");
    assert_eq!(ctx.__waiter_count(), 0, "stop() left its waiter behind");
    assert!(!after.stop(), "a second stop prevents nothing");
    cancel.cancel();
    thread::sleep(Duration::from_millis(20));
    assert_eq!(runs.load(Ordering::SeqCst), 0, "ran after stop()");
}

/// `Debug` says what `stop()` would do: "pending" while a stop would win, "started" from the
/// cancel on (even before the pool has taken the function), "stopped" after a winning stop.
#[test]
fn debug_tells_pending_started_and_stopped_as_stop_would() {
    let _leaks = common::no_leaks();
    let ctx = Context::background().with_cancel();
    let (ran_tx, ran_rx) = mpsc::channel();
    let after = ctx.after_func(move || ran_tx.send(()).unwrap());
    let stopped = ctx.after_func(|| unreachable!("stopped before the cancel"));
    assert_eq!(format!("{after:?}"), r#"AfterFunc { state: "pending" }"#);
    assert!(stopped.stop());
    assert_eq!(format!("{stopped:?}"), r#"AfterFunc { state: "stopped" }"#);
    ctx.cancel();
    // Right after the cancel, whether or not the pool has taken it yet.
    assert_eq!(format!("{after:?}"), r#"AfterFunc { state: "started" }"#);
    assert!(!after.stop());
    ran_rx.recv_timeout(PATIENCE).expect("never ran");
    assert_eq!(format!("{after:?}"), r#"AfterFunc { state: "started" }"#);
    assert_eq!(format!("{stopped:?}"), r#"AfterFunc { state: "stopped" }"#);
}

#[test]
fn neither_cancel_nor_stop_waits_for_a_running_function() {
    let _leaks = common::no_leaks();
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let after = ctx.after_func(move || {
        started_tx.send(()).unwrap();
        // Blocks until the test releases it.
        let _ = release_rx.recv_timeout(PATIENCE);
    });
    cancel.cancel(); // returns although the function blocks
    started_rx.recv_timeout(PATIENCE).expect("never started");
    assert!(!after.stop(), "stop() on a started function"); // returns at once too
    release_tx.send(()).unwrap();
}

#[test]
fn stop_racing_cancel_has_exactly_one_winner() {
    let _leaks = common::no_leaks();
    const ROUNDS: usize = 200;
    let runs = Arc::new(AtomicUsize::new(0));
    let mut not_stopped = 0;
    for _ in 0..ROUNDS {
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        let after = ctx.after_func({
            let runs = runs.clone();
            move || {
                runs.fetch_add(1, Ordering::SeqCst);
            }
        });
        let canceler = thread::spawn(move || cancel.cancel());
        if !after.stop() {
            not_stopped += 1;
        }
        canceler.join().unwrap();
    }
    // Every function that stop() did not prevent must run; none of the others.
    let start = std::time::Instant::now();
    while runs.load(Ordering::SeqCst) < not_stopped && start.elapsed() < PATIENCE {
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_millis(20));
    assert_eq!(
        runs.load(Ordering::SeqCst),
        not_stopped,
        "runs must equal the stops that reported false ({not_stopped} of {ROUNDS})"
    );
}

#[test]
fn a_context_that_is_never_done_never_runs_it() {
    let _leaks = common::no_leaks();
    let after = Context::background().after_func(|| panic!("ran on background"));
    assert!(after.stop());
    let format = format!("{after:?}");
    assert!(format.contains("stopped"), "{format}");
}
