//! After-functions at scale, on the pool that runs them: a cancel hands 10,000 of them off and
//! returns without waiting for any; every one runs exactly once, on a `ctxkit-after-func`
//! thread, even while some of them block; `stop()` racing the cancel prevents exactly the runs
//! it reports; a panic in one stops none of the others; a leak check sees a function that
//! still runs, and never the pool's idle threads.
//!
//! No timing is asserted: where "without waiting" matters, the functions wait for a gate that
//! opens only after `cancel()` has returned.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::PATIENCE;
use ctxkit::leak::{self, Leak, Options};
use ctxkit::{AfterFunc, Context};

const FUNCTIONS: usize = 10_000;
/// How many of them block until the gate opens.
const BLOCKED: usize = 100;

/// Waits (bounded by [`PATIENCE`]) until `done()`; panics with `what` otherwise.
fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn cancel_hands_ten_thousand_functions_off_and_every_one_runs_once() {
    let _leaks = common::no_leaks();
    let (gate, open_gate) = Context::background().with_cancel().into_parts();
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let runs: Arc<Vec<AtomicU8>> = Arc::new((0..FUNCTIONS).map(|_| AtomicU8::new(0)).collect());
    let finished = Arc::new(AtomicUsize::new(0));
    let off_pool = Arc::new(AtomicBool::new(false));
    let finished_before_the_gate = Arc::new(AtomicUsize::new(0));
    let handles: Vec<AfterFunc> = (0..FUNCTIONS)
        .map(|i| {
            let (runs, finished, off_pool) = (runs.clone(), finished.clone(), off_pool.clone());
            let (gate, early) = (gate.clone(), finished_before_the_gate.clone());
            ctx.after_func(move || {
                runs[i].fetch_add(1, Ordering::SeqCst);
                if thread::current().name() != Some("ctxkit-after-func") {
                    off_pool.store(true, Ordering::SeqCst);
                }
                if i < BLOCKED {
                    // Blocks until the test opens the gate, after cancel() has returned.
                    if gate.wait_timeout(PATIENCE).is_none() {
                        early.fetch_add(1, Ordering::SeqCst);
                    }
                } else {
                    thread::sleep(Duration::from_millis(1));
                }
                finished.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    assert_eq!(ctx.__waiter_count(), FUNCTIONS);

    cancel.cancel();
    // cancel() has returned while 100 functions block on the closed gate: it waited for none.
    assert_eq!(
        finished_before_the_gate.load(Ordering::SeqCst),
        0,
        "a blocked function gave up before cancel() returned: cancel() waited for it"
    );
    assert!(!gate.is_done());

    // The blocked functions hold up none of the others: the pool grows past them.
    until("every function that does not block has run", || {
        finished.load(Ordering::SeqCst) == FUNCTIONS - BLOCKED
    });
    open_gate.cancel();
    until("every function has run", || {
        finished.load(Ordering::SeqCst) == FUNCTIONS
    });
    assert_eq!(finished_before_the_gate.load(Ordering::SeqCst), 0);
    assert!(
        runs.iter().all(|r| r.load(Ordering::SeqCst) == 1),
        "a function ran twice or never"
    );
    assert!(
        !off_pool.load(Ordering::SeqCst),
        "a function ran off the pool"
    );
    assert!(
        handles.iter().all(|after| !after.stop()),
        "stop() after the run"
    );
    // `_leaks` checks on drop: every function has returned; the pool's idle workers linger
    // for seconds, and are no leak.
}

#[test]
fn stop_racing_cancel_prevents_exactly_the_runs_it_reports() {
    let _leaks = common::no_leaks();
    const STOPPERS: usize = 4;
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let runs: Arc<Vec<AtomicU8>> = Arc::new((0..FUNCTIONS).map(|_| AtomicU8::new(0)).collect());
    let handles: Arc<Vec<AfterFunc>> = Arc::new(
        (0..FUNCTIONS)
            .map(|i| {
                let runs = runs.clone();
                ctx.after_func(move || {
                    runs[i].fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect(),
    );
    // Every even function is stopped by one of four threads while the cancel runs; the odd
    // ones are never stopped.
    let start = Arc::new(Barrier::new(STOPPERS + 1));
    let stoppers: Vec<_> = (0..STOPPERS)
        .map(|k| {
            let (handles, start) = (handles.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                (0..FUNCTIONS)
                    .filter(|i| i % 2 == 0 && (i / 2) % STOPPERS == k)
                    .map(|i| (i, handles[i].stop()))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    start.wait();
    cancel.cancel();
    let mut stopped = vec![false; FUNCTIONS];
    for stopper in stoppers {
        for (i, prevented) in stopper.join().unwrap() {
            stopped[i] = prevented;
        }
    }
    let expected = stopped.iter().filter(|s| !**s).count();
    until("every function that was not stopped has run", || {
        runs.iter()
            .map(|r| usize::from(r.load(Ordering::SeqCst)))
            .sum::<usize>()
            >= expected
    });
    // Give a run that should not happen time to show itself.
    thread::sleep(Duration::from_millis(20));
    for (i, prevented) in stopped.iter().enumerate() {
        let ran = runs[i].load(Ordering::SeqCst);
        assert_eq!(
            ran,
            u8::from(!prevented),
            "function {i}: stop() said {prevented}, it ran {ran} time(s)"
        );
    }
    assert!(handles.iter().all(|after| !after.stop()), "a second stop()");
}

#[test]
fn a_panicking_function_stops_none_of_the_others() {
    let _leaks = common::no_leaks();
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let ran = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..50 {
        let ran = ran.clone();
        handles.push(ctx.after_func(move || {
            if i % 10 == 0 {
                panic!("after-function {i} panics (expected by this test)");
            }
            ran.fetch_add(1, Ordering::SeqCst);
        }));
    }
    cancel.cancel(); // the panics are not the canceling thread's
    until("every function that does not panic has run", || {
        ran.load(Ordering::SeqCst) == 45
    });
    // The pool still runs later functions.
    let (tx, rx) = mpsc::channel();
    let later = Context::background().with_cancel();
    let _after = later.after_func(move || tx.send(()).unwrap());
    later.cancel();
    rx.recv_timeout(PATIENCE)
        .expect("the pool stopped running functions after the panics");
}

#[test]
fn a_leak_check_sees_a_function_that_runs_and_not_the_idle_pool() {
    // A function that still runs when its test's check looks: reported, as its own unit.
    let guard = leak::Guard::with_options(Options::new().retry_for(Duration::from_millis(50)));
    let (gate, open_gate) = Context::background().with_cancel().into_parts();
    let (started, has_started) = mpsc::channel();
    let (finished, has_finished) = mpsc::channel();
    let ctx = Context::background().with_cancel();
    let _blocked = ctx.after_func(move || {
        started.send(()).unwrap();
        let _ = gate.wait_timeout(PATIENCE);
        finished.send(()).unwrap();
    });
    ctx.cancel();
    has_started
        .recv_timeout(PATIENCE)
        .expect("the function never started");
    let report = guard.report();
    assert_eq!(report.leaks().len(), 1, "{report}");
    let Leak::Tracked {
        name, waiting_on, ..
    } = &report.leaks()[0]
    else {
        panic!("{report}")
    };
    assert_eq!(*name, "ctxkit-after-func");
    let (what, now) = waiting_on.as_ref().expect("it waits on the gate");
    assert!(what.contains("not done"), "{report}");
    assert!(*now, "{report}");
    guard.disarm();
    open_gate.cancel();
    has_finished
        .recv_timeout(PATIENCE)
        .expect("the function never returned");

    // Functions that have returned: their workers idle (for seconds), which is no leak.
    leak::check_with(Options::new().retry_for(PATIENCE), || {
        let ctx = Context::background().with_cancel();
        let (tx, rx) = mpsc::channel();
        let _after: Vec<_> = (0..20)
            .map(|_| {
                let tx = tx.clone();
                ctx.after_func(move || tx.send(()).unwrap())
            })
            .collect();
        ctx.cancel();
        for _ in 0..20 {
            rx.recv_timeout(PATIENCE).expect("never ran");
        }
    });
}

#[test]
fn a_function_is_blamed_on_the_scope_that_registered_it() {
    // Registered inside one check, canceled inside another (a neighbour test, or the timer
    // thread at a deadline): the function belongs to the first.
    let (gate, open_gate) = Context::background().with_cancel().into_parts();
    let (started, has_started) = mpsc::channel();
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let registering =
        leak::Guard::with_options(Options::new().retry_for(Duration::from_millis(50)));
    let _after = ctx.after_func(move || {
        started.send(()).unwrap();
        let _ = gate.wait_timeout(PATIENCE);
    });
    let canceling = {
        // A scope of its own, on another thread, that only cancels.
        thread::spawn(move || {
            let guard =
                leak::Guard::with_options(Options::new().retry_for(Duration::from_millis(50)));
            cancel.cancel();
            has_started
                .recv_timeout(PATIENCE)
                .expect("the function never started");
            let report = guard.report();
            guard.disarm();
            report
        })
        .join()
        .unwrap()
    };
    assert!(
        canceling.is_clean(),
        "blamed on the canceling scope: {canceling}"
    );
    let report = registering.report();
    assert_eq!(report.leaks().len(), 1, "{report}");
    registering.disarm();
    open_gate.cancel();
}
