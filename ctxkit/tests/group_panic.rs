//! Panics in a group: they cancel the group's context like an error and reach the caller of
//! `wait` (or of `group::scope`) with their payload, never swallowed.

#![cfg(feature = "tokio")]

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use common::{bounded, panic_message as message};
use ctxkit::group::{self, TaskFailed};
use ctxkit::{Context, Error, Group};
use futures::FutureExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_task_cancels_siblings_and_wait_resumes_it() {
    common::no_leaks_async(async {
        let (mut g, _ctx) = Group::<(), Error>::with_context(&Context::background());
        let observed = Arc::new(Mutex::new(None));
        let seen = observed.clone();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        g.spawn(move |sibling| async move {
            let done = sibling.done();
            let _ = started_tx.send(());
            let err = done.await; // ends only because the other task panics
            *seen.lock().unwrap() = sibling.cause();
            Err(err)
        })
        .await;
        g.spawn(move |_ctx| async move {
            // A task not started when the context is done never starts: let the sibling start.
            let _ = started_rx.await;
            panic!("task exploded: {}", 42)
        })
        .await;
        let resumed = bounded(AssertUnwindSafe(g.wait()).catch_unwind()).await;
        let payload = resumed.expect_err("the panic must reach wait");
        assert_eq!(message(&*payload), "task exploded: 42");
        let cause = observed
            .lock()
            .unwrap()
            .clone()
            .expect("the sibling saw the cancel");
        let failed = cause.downcast_ref::<TaskFailed>().unwrap();
        assert!(failed.is_panic());
        assert_eq!(failed.message(), "task exploded: 42");
        assert_eq!(
            cause.to_string(),
            "ctxkit::group: task panicked: task exploded: 42"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_under_a_limit_is_resumed_and_the_group_stays_usable() {
    common::no_leaks_async(async {
        // No context: the panic cancels nothing, the other tasks all run, the panic still reaches
        // wait, and the group is reusable afterwards.
        let mut g = Group::<u32, Error>::new();
        g.set_limit(2);
        let ran = Arc::new(AtomicUsize::new(0));
        for i in 0..20u32 {
            let ran = ran.clone();
            g.spawn(move |_ctx| async move {
                ran.fetch_add(1, SeqCst);
                if i == 3 {
                    panic!("panic in task 3");
                }
                Ok(i)
            })
            .await;
        }
        let payload = bounded(AssertUnwindSafe(g.wait()).catch_unwind())
            .await
            .expect_err("resumed");
        assert_eq!(message(&*payload), "panic in task 3");
        assert_eq!(ran.load(SeqCst), 20);
        g.spawn(|_ctx| async { Ok(7) }).await;
        assert_eq!(bounded(g.wait()).await, Ok(vec![7]));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_wins_over_an_error() {
    common::no_leaks_async(async {
        let mut g = Group::<(), Error>::new();
        g.spawn(|_ctx| async { Err(Error::Canceled) }).await;
        g.spawn(|_ctx| async { panic!("boom") }).await;
        let payload = bounded(AssertUnwindSafe(g.wait_all()).catch_unwind())
            .await
            .expect_err("resumed");
        assert_eq!(message(&*payload), "boom");
    })
    .await
}

#[test]
fn a_panicking_thread_cancels_siblings_and_scope_resumes_it() {
    let _leaks = common::no_leaks();
    let observed = Mutex::new(None);
    let started = std::sync::Barrier::new(2);
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        group::scope(&Context::background(), |s| {
            s.spawn(|ctx| {
                started.wait();
                let err = ctx.wait();
                *observed.lock().unwrap() = ctx.cause();
                Err(err)
            });
            s.spawn(|_| -> Result<(), Error> {
                started.wait();
                panic!("thread exploded")
            });
        })
    }));
    assert_eq!(message(&*r.expect_err("resumed")), "thread exploded");
    let cause = observed.into_inner().unwrap().unwrap();
    assert!(cause.downcast_ref::<TaskFailed>().unwrap().is_panic());
}

#[test]
fn a_panic_in_the_closure_cancels_and_joins_the_tasks() {
    let _leaks = common::no_leaks();
    let finished = AtomicUsize::new(0);
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        group::scope(&Context::background(), |s| {
            for _ in 0..3 {
                let finished = &finished;
                s.spawn(move |ctx| {
                    let err = ctx.wait(); // would block forever without the cancel on unwind
                    finished.fetch_add(1, SeqCst);
                    Err::<(), _>(err)
                });
            }
            panic!("closure exploded");
        })
    }));
    assert_eq!(message(&*r.expect_err("propagated")), "closure exploded");
    assert_eq!(
        finished.load(SeqCst),
        3,
        "every task ended before scope returned"
    );
}

#[test]
fn a_panic_on_a_limited_scope_is_resumed() {
    let _leaks = common::no_leaks();
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
        group::scope(&Context::background(), |s| {
            s.set_limit(1);
            for i in 0..10 {
                s.spawn(move |_| -> Result<u32, Error> {
                    if i == 5 {
                        panic!("limited {i}");
                    }
                    Ok(i)
                });
            }
        })
    }));
    assert_eq!(message(&*r.expect_err("resumed")), "limited 5");
}
