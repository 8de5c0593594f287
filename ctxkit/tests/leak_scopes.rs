//! The leak checker under cargo's parallel test runner: work started through ctxkit is
//! attributed to the scope that started it, however deep and on whatever thread or task, and a
//! test is never blamed for its neighbour's leak.

// Tasks are among what is attributed: the file needs the `tokio` feature.
#![cfg(feature = "tokio")]

mod common;

use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;

use common::tracked_leaks;

use ctxkit::leak::{self, Guard, Leak, Options};
use ctxkit::pool::Pool;
use ctxkit::{group, tracked, Context, Error};

fn quick() -> Options {
    Options::new().retry_for(Duration::from_millis(50))
}

#[test]
fn a_leaked_tracked_thread_is_reported_with_its_spawn_site_and_context() {
    let guard = Guard::with_options(quick());
    let ctx = Context::background().with_timeout(common::HOUR);
    let waits = ctx.context().clone();
    let (parked, is_parked) = mpsc::channel();
    let line = line!() + 1;
    let worker = tracked::thread("planted-thread", move || {
        parked.send(()).unwrap();
        waits.wait()
    })
    .unwrap();
    is_parked.recv().unwrap();
    let report = guard.report();
    assert_eq!(
        tracked_leaks(&report),
        [("planted-thread", line)],
        "{report}"
    );
    let Leak::Tracked {
        kind, waiting_on, ..
    } = &report.leaks()[0]
    else {
        unreachable!()
    };
    assert_eq!(*kind, "thread");
    let (context, _) = waiting_on.as_ref().expect("it waits on a context");
    assert!(
        context.contains(file!()),
        "where the context was made: {context}"
    );
    assert!(context.contains("deadline in"), "{context}");
    assert!(context.ends_with("not done"), "{context}");
    let text = report.to_string();
    assert!(
        text.contains("leak 1: thread \"planted-thread\", started through ctxkit"),
        "{text}"
    );
    assert!(text.contains(&format!("{}:{line}:", file!())), "{text}");
    guard.disarm();
    ctx.cancel();
    assert_eq!(worker.join().unwrap(), Error::Canceled);
}

#[test]
fn a_leaked_tracked_task_is_reported_with_its_spawn_site() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let guard = Guard::with_options(quick());
    let ctx = Context::background().with_cancel();
    let waits = ctx.context().clone();
    let _runtime = runtime.enter();
    let line = line!() + 1;
    let task = tracked::task("planted-task", async move { waits.done().await });
    let report = guard.report();
    assert_eq!(tracked_leaks(&report), [("planted-task", line)], "{report}");
    assert!(matches!(
        report.leaks()[0],
        Leak::Tracked { kind: "task", .. }
    ));
    guard.disarm();
    ctx.cancel();
    assert_eq!(runtime.block_on(task).unwrap(), Error::Canceled);
}

#[test]
fn joined_and_finished_work_is_not_reported() {
    leak::check_with(quick(), || {
        let ctx = Context::background();
        let sum: u64 = Pool::new(3)
            .map(&ctx, 1..=100u64, |_ctx, n| n)
            .map(Result::unwrap)
            .sum();
        assert_eq!(sum, 5050);
        let lengths = group::scope(&ctx, |s| {
            s.spawn(|_ctx| Ok::<_, Error>(1));
            s.spawn(|_ctx| Ok::<_, Error>(2));
        });
        assert_eq!(lengths, Ok(vec![1, 2]));
        let workers = Pool::new(2).start(&ctx, |_ctx, _job: u32| {});
        workers.submit(&ctx, 1).unwrap();
        assert!(workers.shutdown(&ctx).unwrap_empty());
        // A thread that is just exiting is not a leak: the check looks again.
        tracked::thread("exiting", || std::thread::sleep(Duration::from_millis(10))).unwrap();
    });
}

trait UnrunEmpty {
    fn unwrap_empty(self) -> bool;
}

impl<J> UnrunEmpty for ctxkit::pool::ShutdownReport<J> {
    fn unwrap_empty(self) -> bool {
        self.unrun.is_empty() && self.failed.is_empty()
    }
}

#[test]
fn work_started_by_work_inherits_the_scope_across_threads_and_tasks() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let guard = Guard::with_options(quick());
    let ctx = Context::background().with_cancel();
    let (started, has_started) = mpsc::channel();
    let handle = runtime.handle().clone();
    let inner_ctx = ctx.context().clone();
    // A tracked thread starts a tracked task on the runtime, which starts a tracked thread.
    let outer = tracked::thread("outer", move || {
        let _runtime = handle.enter();
        tracked::task("middle", async move {
            let innermost = tracked::thread("innermost", move || inner_ctx.wait()).unwrap();
            started.send(()).unwrap();
            tokio::task::spawn_blocking(move || innermost.join().unwrap())
                .await
                .unwrap()
        })
    })
    .unwrap();
    has_started.recv().unwrap();
    let middle = outer.join().unwrap();
    let report = guard.report();
    let mut names: Vec<_> = tracked_leaks(&report)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["innermost", "middle"], "{report}");
    guard.disarm();
    ctx.cancel();
    assert_eq!(runtime.block_on(middle).unwrap(), Error::Canceled);
}

#[test]
fn a_guard_inside_a_guard_checks_its_own_scope_and_the_outer_sees_it_too() {
    let outer = Guard::with_options(quick());
    let ctx = Context::background().with_cancel();
    let waits = ctx.context().clone();
    let inner = Guard::with_options(quick());
    let worker = tracked::thread("inner-leak", move || waits.wait()).unwrap();
    let inner_report = inner.report();
    assert_eq!(tracked_leaks(&inner_report).len(), 1, "{inner_report}");
    inner.disarm();
    // Started in the inner scope, so inside the outer one too.
    let outer_report = outer.report();
    assert_eq!(tracked_leaks(&outer_report).len(), 1, "{outer_report}");
    // A sibling scope opened afterwards does not see it.
    let sibling = Guard::with_options(quick());
    assert!(sibling.report().is_clean());
    sibling.disarm();
    outer.disarm();
    ctx.cancel();
    worker.join().unwrap();
}

#[test]
fn an_armed_guard_fails_the_test_with_the_report_when_dropped() {
    let ctx = Context::background().with_cancel();
    let waits = ctx.context().clone();
    let (started, has_started) = mpsc::channel();
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _leaks = Guard::with_options(quick());
        tracked::thread("dropped-guard", move || {
            started.send(()).unwrap();
            waits.wait()
        })
        .unwrap();
        has_started.recv().unwrap();
    }));
    let message = common::panic_message(&*failed.unwrap_err());
    assert!(
        message.contains("leak 1: thread \"dropped-guard\""),
        "{message}"
    );
    ctx.cancel();
}

/// Two tests' worth of scopes at once, many times over: one leaks, the other never is blamed.
#[test]
fn a_neighbour_is_never_blamed() {
    const ROUNDS: usize = 30;
    let both = Arc::new(Barrier::new(2));
    let clean = {
        let both = both.clone();
        std::thread::spawn(move || {
            for _ in 0..ROUNDS {
                let guard = Guard::with_options(Options::new().retry_for(Duration::ZERO));
                both.wait(); // the leaky scope is open too
                let ctx = Context::background();
                let _ = Pool::new(2).map(&ctx, 0..10u32, |_ctx, n| n).count();
                both.wait(); // the neighbour has leaked by now
                let report = guard.report();
                assert!(
                    report.is_clean(),
                    "blamed for the neighbour's leak:\n{report}"
                );
                guard.disarm();
                both.wait();
            }
        })
    };
    let mut leaked = Vec::new();
    let stop = Context::background().with_cancel();
    for _ in 0..ROUNDS {
        let guard = Guard::with_options(Options::new().retry_for(Duration::ZERO));
        both.wait();
        let waits = stop.context().clone();
        leaked.push(tracked::thread("neighbour-leak", move || waits.wait()).unwrap());
        both.wait();
        let report = guard.report();
        assert_eq!(tracked_leaks(&report).len(), 1, "{report}");
        guard.disarm();
        both.wait();
    }
    clean.join().unwrap();
    stop.cancel();
    for thread in leaked {
        thread.join().unwrap();
    }
}

#[test]
fn plain_threads_of_a_parallel_test_are_not_blamed_with_certainty() {
    if std::thread::current().name() == Some("main") {
        return; // one test thread: every new thread is this test's, with certainty
    }
    let guard = Guard::with_options(quick());
    let (stop, stopped) = mpsc::channel::<()>();
    let (running, is_running) = mpsc::channel();
    let plain = std::thread::Builder::new()
        .name("plain-thread".into())
        .spawn(move || {
            running.send(()).unwrap(); // it has named itself by now
            let _ = stopped.recv();
        })
        .unwrap();
    is_running.recv().unwrap();
    let report = guard.report();
    // Other tests of this binary run in parallel: it is listed, but not counted.
    if std::env::var("RUST_TEST_THREADS").as_deref() != Ok("1") {
        assert!(report.is_clean(), "{report}");
        assert!(
            report
                .uncertain()
                .iter()
                .any(|leak| matches!(leak, Leak::Thread { name, .. } if name == "plain-thread")),
            "{report}"
        );
    }
    guard.disarm();
    drop(stop);
    plain.join().unwrap();
}

#[test]
fn a_group_context_is_reported_as_made_where_the_group_was_made() {
    let guard = Guard::with_options(quick());
    let stop = Context::background().with_cancel();
    let stopped = stop.context().clone();
    let (started, has_started) = mpsc::channel();
    let line = line!() + 1;
    let (mut g, _ctx) = ctxkit::Group::<(), Error>::with_context(&stopped);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    runtime.block_on(async {
        g.spawn(move |ctx| async move {
            started.send(()).unwrap();
            ctx.done().await;
            Ok(())
        })
        .await;
    });
    has_started.recv().unwrap();
    // The task sent `started` just before it polls `done()`: on a loaded machine the first
    // reports may come before it waits. Look again (boundedly) until it does.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (report, waiting_on) = loop {
        let report = guard.report();
        let Some(Leak::Tracked { waiting_on, .. }) = report.leaks().first() else {
            panic!("the group's worker task waits: {report}")
        };
        let waiting_on = waiting_on.clone();
        if waiting_on.is_some() || std::time::Instant::now() > give_up {
            break (report, waiting_on);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let (context, _) = waiting_on
        .as_ref()
        .unwrap_or_else(|| panic!("it waits on the group's context: {report}"));
    assert!(
        context.contains(&format!("{}:{line}:", file!())),
        "{context}"
    );
    guard.disarm();
    stop.cancel();
    runtime.block_on(async { assert_eq!(g.wait().await, Ok(vec![()])) });
}
