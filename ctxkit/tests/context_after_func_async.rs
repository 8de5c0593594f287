//! `Context::after_func_async`: a future spawned as a task on the runtime current at its
//! registration once the context is done. It runs after a cancel (from a plain thread, or the
//! deadline timer's thread) on that runtime; `stop()` prevents exactly the runs it reports; a
//! registration on a context already done spawns at once; a runtime shut down before the cancel
//! drops the future unrun, without a panic; a panic in the future is the task's alone; a leak
//! check sees the task, under the registering scope; outside a runtime, registration panics.
//!
//! No timing is asserted: "not yet" is checked after the other side had every chance to act.

#![cfg(feature = "tokio")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::{tracked_leaks, PATIENCE};
use ctxkit::leak::{self, Leak, Options};
use ctxkit::Context;

/// A two-worker runtime whose threads are named `name`.
fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_time()
        .build()
        .unwrap()
}

/// Sends on `tx` when dropped: tells whether a future was dropped.
struct DropSignal(mpsc::Sender<&'static str>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send("dropped");
    }
}

/// Registers on `ctx`, inside `rt`, a future that sends "ran" on `tx` when it runs, and
/// "dropped" when it is dropped (run or not).
fn register_signaling(
    rt: &tokio::runtime::Runtime,
    ctx: &Context,
    tx: mpsc::Sender<&'static str>,
) -> ctxkit::AfterFunc {
    let _entered = rt.enter();
    let signal = DropSignal(tx.clone());
    ctx.after_func_async(async move {
        let _signal = signal;
        tx.send("ran").unwrap();
    })
}

#[test]
fn runs_on_its_runtime_after_a_cancel_from_a_plain_thread() {
    let _leaks = common::no_leaks();
    let rt = runtime("after-async-rt");
    let ctx = Context::background().with_cancel();
    let (tx, rx) = mpsc::channel();
    let after = {
        let _entered = rt.enter();
        ctx.after_func_async(async move {
            tokio::task::yield_now().await;
            tx.send(thread::current().name().map(str::to_owned))
                .unwrap();
        })
    };
    assert!(
        rx.recv_timeout(Duration::from_millis(20)).is_err(),
        "ran before the cancel"
    );
    // Canceled from a thread with no runtime: the registration's runtime runs it.
    let canceler = thread::spawn(move || ctx.cancel());
    canceler.join().unwrap();
    let ran_on = rx.recv_timeout(PATIENCE).expect("never ran");
    assert_eq!(ran_on.as_deref(), Some("after-async-rt"));
    assert!(!after.stop(), "stop after the run reports false");
}

#[test]
fn stop_before_the_cancel_prevents_the_run_and_drops_the_future() {
    let _leaks = common::no_leaks();
    let rt = runtime("after-async-stop");
    let ctx = Context::background().with_cancel();
    let (tx, rx) = mpsc::channel();
    let after = register_signaling(&rt, &ctx, tx);
    assert!(after.stop(), "the first stop prevents the run");
    assert!(!after.stop(), "only the first stop stops it");
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        "dropped",
        "stop drops it"
    );
    ctx.cancel();
    // Another function registered on the same context after the first, to know when the
    // cancel's hand-offs have all been spawned and run.
    let (later_tx, later_rx) = mpsc::channel();
    {
        let _entered = rt.enter();
        drop(ctx.after_func_async(async move { later_tx.send(()).unwrap() }));
    }
    later_rx.recv_timeout(PATIENCE).expect("never ran");
    assert!(rx.try_recv().is_err(), "a stopped function ran");
}

#[test]
fn stop_racing_the_cancel_prevents_exactly_the_runs_it_reports() {
    let _leaks = common::no_leaks();
    let rt = runtime("after-async-race");
    for _ in 0..200 {
        let ctx = Context::background().with_cancel();
        let runs = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let after = {
            let _entered = rt.enter();
            let runs = runs.clone();
            let signal = DropSignal(tx);
            ctx.after_func_async(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                drop(signal);
            })
        };
        let canceler = thread::spawn(move || ctx.cancel());
        let stopped = after.stop();
        canceler.join().unwrap();
        // Run or not, the future is dropped once: after its run, or by the stop.
        rx.recv_timeout(PATIENCE).expect("never ran nor dropped");
        assert_eq!(runs.load(Ordering::SeqCst), usize::from(!stopped));
    }
}

#[test]
fn a_context_already_done_spawns_it_at_once() {
    let _leaks = common::no_leaks();
    let rt = runtime("after-async-done");
    let ctx = Context::background().with_cancel();
    ctx.cancel();
    let (tx, rx) = mpsc::channel();
    let after = rt.block_on(async {
        ctx.after_func_async(async move {
            tx.send(thread::current().name().map(str::to_owned))
                .unwrap();
        })
    });
    let ran_on = rx.recv_timeout(PATIENCE).expect("never ran");
    assert_eq!(ran_on.as_deref(), Some("after-async-done"));
    assert!(!after.stop(), "already spawned");
}

#[test]
fn a_context_that_can_never_be_done_never_spawns_it() {
    let rt = runtime("after-async-never");
    let (tx, rx) = mpsc::channel();
    let after = register_signaling(&rt, &Context::background(), tx);
    assert!(
        rx.recv_timeout(Duration::from_millis(20)).is_err(),
        "ran or was dropped"
    );
    assert!(after.stop(), "still pending: the stop prevents it");
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), "dropped");
}

#[test]
fn a_deadline_expiring_on_the_timer_thread_hands_it_off_too() {
    let _leaks = common::no_leaks();
    let rt = runtime("after-async-timer");
    let ctx = Context::background().with_timeout(Duration::from_millis(5));
    let (tx, rx) = mpsc::channel();
    let _after = {
        let _entered = rt.enter();
        let ctx = ctx.context().clone();
        ctx.clone().after_func_async(async move {
            tx.send((ctx.err(), thread::current().name().map(str::to_owned)))
                .unwrap();
        })
    };
    // Nobody cancels: only the timer thread's expiry of the deadline can start it.
    let (err, ran_on) = rx.recv_timeout(PATIENCE).expect("never ran");
    assert_eq!(err, Some(ctxkit::Error::DeadlineExceeded));
    assert_eq!(ran_on.as_deref(), Some("after-async-timer"));
}

#[test]
fn a_runtime_shut_down_before_the_cancel_drops_the_future_unrun() {
    let _leaks = common::no_leaks();
    let rt = runtime("after-async-gone");
    let ctx = Context::background().with_cancel();
    let (tx, rx) = mpsc::channel();
    let after = register_signaling(&rt, &ctx, tx);
    drop(rt);
    ctx.cancel(); // no panic, here or on the dispatcher
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        "dropped",
        "the future is dropped once its spawn finds the runtime gone"
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(20)).is_err(),
        "it ran"
    );
    assert!(!after.stop(), "the cancel handed it off");

    // The pool goes on: a later async function on a live runtime, and a blocking one, run.
    let rt = runtime("after-async-next");
    let ctx = Context::background().with_cancel();
    let (tx, rx) = mpsc::channel();
    {
        let _entered = rt.enter();
        let tx = tx.clone();
        drop(ctx.after_func_async(async move { tx.send("async").unwrap() }));
    }
    drop(ctx.after_func(move || tx.send("blocking").unwrap()));
    ctx.cancel();
    let mut ran = [
        rx.recv_timeout(PATIENCE).unwrap(),
        rx.recv_timeout(PATIENCE).unwrap(),
    ];
    ran.sort_unstable();
    assert_eq!(ran, ["async", "blocking"]);
}

#[test]
fn a_panicking_future_panics_its_task_alone() {
    let _leaks = common::no_leaks();
    let rt = runtime("after-async-panic");
    let ctx = Context::background().with_cancel();
    let (tx, rx) = mpsc::channel();
    let _afters: Vec<_> = {
        let _entered = rt.enter();
        (0..10)
            .map(|i| {
                let tx = tx.clone();
                ctx.after_func_async(async move {
                    if i == 3 {
                        panic!("an async after-function panics (expected by this test)");
                    }
                    tx.send(i).unwrap();
                })
            })
            .collect()
    };
    ctx.cancel();
    let mut ran: Vec<_> = (0..9).map(|_| rx.recv_timeout(PATIENCE).unwrap()).collect();
    ran.sort_unstable();
    assert_eq!(ran, [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    // The runtime and the pool go on.
    let ctx = Context::background().with_cancel();
    {
        let _entered = rt.enter();
        drop(ctx.after_func_async(async move { tx.send(100).unwrap() }));
    }
    ctx.cancel();
    assert_eq!(rx.recv_timeout(PATIENCE).unwrap(), 100);
}

#[test]
fn a_leak_check_sees_a_spawned_function_that_has_not_finished() {
    let rt = runtime("after-async-leak");
    let guard = leak::Guard::with_options(Options::new().retry_for(Duration::from_millis(50)));
    let (open_gate, gate) = tokio::sync::oneshot::channel::<()>();
    let (started, has_started) = mpsc::channel();
    let (finished, has_finished) = mpsc::channel();
    let ctx = Context::background().with_cancel();
    let line = line!() + 3;
    let _after = {
        let _entered = rt.enter();
        ctx.after_func_async(async move {
            started.send(()).unwrap();
            let _ = gate.await;
            finished.send(()).unwrap();
        })
    };
    // Canceled from another scope's thread: the function is still the registering scope's.
    thread::spawn(move || ctx.cancel()).join().unwrap();
    has_started
        .recv_timeout(PATIENCE)
        .expect("the function never started");
    let report = guard.report();
    let tracked: Vec<_> = report
        .leaks()
        .iter()
        .filter_map(|leak| match leak {
            Leak::Tracked {
                kind,
                name,
                spawned_at,
                ..
            } => Some((*kind, *name, spawned_at.line())),
            _ => None,
        })
        .collect();
    assert_eq!(
        tracked,
        [("task", "ctxkit-after-func-async", line)],
        "{report}"
    );
    guard.disarm();
    open_gate.send(()).unwrap();
    has_finished
        .recv_timeout(PATIENCE)
        .expect("the function never finished");

    // Finished: nothing is left to report.
    leak::check_with(Options::new().retry_for(PATIENCE), || {
        let ctx = Context::background().with_cancel();
        let (tx, rx) = mpsc::channel();
        let _after: Vec<_> = {
            let _entered = rt.enter();
            (0..20)
                .map(|_| {
                    let tx = tx.clone();
                    ctx.after_func_async(async move { tx.send(()).unwrap() })
                })
                .collect()
        };
        ctx.cancel();
        for _ in 0..20 {
            rx.recv_timeout(PATIENCE).expect("never ran");
        }
    });
}

#[test]
#[should_panic(expected = "outside a tokio runtime")]
fn registering_outside_a_runtime_panics() {
    let ctx = Context::background().with_cancel();
    let _after = ctx.after_func_async(async {});
}

#[test]
fn a_cancel_hands_ten_thousand_off_and_every_one_runs_once() {
    let _leaks = common::no_leaks();
    let rt = runtime("after-async-many");
    const FUNCTIONS: usize = 10_000;
    let ctx = Context::background().with_cancel();
    let runs: Arc<Vec<AtomicUsize>> =
        Arc::new((0..FUNCTIONS).map(|_| AtomicUsize::new(0)).collect());
    let finished = Arc::new(AtomicUsize::new(0));
    let _afters: Vec<_> = {
        let _entered = rt.enter();
        (0..FUNCTIONS)
            .map(|i| {
                let (runs, finished) = (runs.clone(), finished.clone());
                ctx.after_func_async(async move {
                    runs[i].fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    finished.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect()
    };
    ctx.cancel();
    let deadline = std::time::Instant::now() + PATIENCE;
    while finished.load(Ordering::SeqCst) < FUNCTIONS {
        assert!(
            std::time::Instant::now() < deadline,
            "not every function ran"
        );
        thread::sleep(Duration::from_millis(1));
    }
    assert!(
        runs.iter().all(|r| r.load(Ordering::SeqCst) == 1),
        "a function ran twice"
    );
}

/// Waits (bounded) until `rt` has no task alive.
fn until_no_task_alive(rt: &tokio::runtime::Runtime) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while rt.metrics().num_alive_tasks() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a task stayed alive: {}",
            rt.metrics().num_alive_tasks()
        );
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_context_dropped_without_being_done_ends_the_waiting_task_and_drops_the_future() {
    let _leaks = common::no_leaks();
    let rt = runtime("after-async-drop");
    // A context that no drop cancels: its node goes when the last handle goes, undone.
    let ctx = Context::background().with_cancel().disarm();
    let (tx, rx) = mpsc::channel();
    let after = register_signaling(&rt, &ctx, tx);
    drop(ctx);
    // The handle still holds the context's node: the registration still waits.
    assert!(
        rx.recv_timeout(Duration::from_millis(20)).is_err(),
        "ran or was dropped while its handle lived"
    );
    drop(after);
    assert_eq!(
        rx.recv_timeout(PATIENCE).unwrap(),
        "dropped",
        "the future is dropped once nothing can complete its context"
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(20)).is_err(),
        "it ran"
    );
    until_no_task_alive(&rt);
}

#[test]
fn stop_ends_the_waiting_task() {
    let _leaks = common::no_leaks();
    let rt = runtime("after-async-stop-task");
    let ctx = Context::background().with_cancel();
    let afters: Vec<_> = {
        let _entered = rt.enter();
        (0..50)
            .map(|_| ctx.after_func_async(async { unreachable!("stopped before the cancel") }))
            .collect()
    };
    assert!(afters.iter().all(ctxkit::AfterFunc::stop));
    until_no_task_alive(&rt);
    ctx.cancel();
}

#[test]
fn a_pending_registration_is_no_leak_until_its_context_is_done() {
    let rt = runtime("after-async-pending");
    let (open_gate, gate) = tokio::sync::oneshot::channel::<()>();
    let (started, has_started) = mpsc::channel();
    let ctx = Context::background().with_cancel();
    // The check is opened with the runtime current, so it also counts the runtime's tasks:
    // a registration's waiting task must count as nobody's leak there either.
    let _entered = rt.enter();
    let guard = leak::Guard::with_options(Options::new().retry_for(Duration::from_millis(50)));
    let line = line!() + 1;
    let after = ctx.after_func_async(async move {
        started.send(()).unwrap();
        let _ = gate.await;
    });
    let pending: Vec<_> = (0..20).map(|_| ctx.after_func_async(async {})).collect();
    thread::sleep(Duration::from_millis(20)); // every task has had its first poll
    let report = guard.report();
    assert!(
        report.leaks().is_empty() && report.uncertain().is_empty(),
        "pending registrations reported: {report}"
    );
    // Done: the first one runs, and is a leak until it ends.
    ctx.cancel();
    has_started
        .recv_timeout(PATIENCE)
        .expect("the function never started");
    let report = guard.report();
    assert_eq!(
        tracked_leaks(&report),
        [("ctxkit-after-func-async", line)],
        "{report}"
    );
    assert!(!after.stop(), "started");
    open_gate.send(()).unwrap();
    drop(pending);
    guard.verify();
}
