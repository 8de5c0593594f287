//! A failed group cancels work still running (tasks observe the context and stop), never
//! starts queued work once its context is done, and never blocks a spawner on a limit after
//! cancellation (two pitfalls reported against Go's errgroup and sourcegraph/conc; the tests
//! name the reports).

#![cfg(feature = "tokio")]

mod common;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::bounded;
use ctxkit::{group, Context, Error, Group};

#[derive(Debug, PartialEq)]
enum FetchError {
    Broken(usize),
    Ctx(Error),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Broken(i) => write!(f, "fetch {i}: connection reset"),
            FetchError::Ctx(e) => e.fmt(f),
        }
    }
}

impl From<Error> for FetchError {
    fn from(e: Error) -> Self {
        FetchError::Ctx(e)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_stops_tasks_that_watch_the_context() {
    common::no_leaks_async(async {
        let (mut g, ctx) = Group::<u32, FetchError>::with_context(&Context::background());
        let stopped = Arc::new(AtomicUsize::new(0));
        // Every task starts before the failure (one not started by then would never start).
        let started = Arc::new(tokio::sync::Barrier::new(9));
        for _ in 0..8 {
            let (stopped, started) = (stopped.clone(), started.clone());
            g.spawn(move |ctx| async move {
                started.wait().await;
                // Long-running work in slices, checking the context between them.
                loop {
                    if let Err(err) = ctx.sleep(Duration::from_millis(1)).await {
                        stopped.fetch_add(1, SeqCst);
                        return Err(err.into());
                    }
                }
            })
            .await;
        }
        g.spawn(move |ctx| async move {
            started.wait().await;
            ctx.sleep(Duration::from_millis(5)).await?;
            Err(FetchError::Broken(8))
        })
        .await;
        assert_eq!(bounded(g.wait()).await, Err(FetchError::Broken(8)));
        assert_eq!(
            stopped.load(SeqCst),
            8,
            "every running task saw the cancel and stopped"
        );
        assert_eq!(ctx.err(), Some(Error::Canceled));
        assert_eq!(
            ctx.cause().unwrap().to_string(),
            "fetch 8: connection reset"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_tasks_never_start_after_a_failure() {
    common::no_leaks_async(async {
        let (mut g, _ctx) = Group::<(), FetchError>::with_context(&Context::background());
        g.set_limit(1);
        let started = Arc::new(AtomicUsize::new(0));
        g.spawn(|_ctx| async { Err(FetchError::Broken(0)) }).await;
        for _ in 0..100 {
            let started = started.clone();
            g.spawn_queued(move |_ctx| async move {
                started.fetch_add(1, SeqCst);
                Ok(())
            });
        }
        assert_eq!(bounded(g.wait()).await, Err(FetchError::Broken(0)));
        assert_eq!(
            started.load(SeqCst),
            0,
            "go#61611: nothing starts after the context is done"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawning_under_a_limit_does_not_block_after_cancellation() {
    common::no_leaks_async(async {
        // conc#88: the only slot is held by a task that waits for the context; the context is
        // canceled by the parent; spawning more must not deadlock, and wait must return.
        let parent = Context::background().with_cancel();
        let (mut g, _ctx) = Group::<(), FetchError>::with_context(&parent);
        g.set_limit(1);
        g.spawn(|ctx| async move { Err(ctx.done().await.into()) })
            .await;
        for _ in 0..1000 {
            g.spawn_queued(|_ctx| async { Ok(()) }); // queued: returns at once
        }
        parent.cancel();
        for _ in 0..1000 {
            g.spawn(|_ctx| async { Ok(()) }).await; // context done: returns at once, not queued
        }
        assert_eq!(
            bounded(g.wait()).await,
            Err(FetchError::Ctx(Error::Canceled))
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_parent_means_no_task_starts() {
    common::no_leaks_async(async {
        let (parent, cancel) = Context::background()
            .with_timeout(Duration::from_millis(1))
            .into_parts();
        parent.done().await;
        let (mut g, _ctx) = Group::<(), FetchError>::with_context(&parent);
        let started = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let started = started.clone();
            g.spawn(move |_ctx| async move {
                started.fetch_add(1, SeqCst);
                Ok(())
            })
            .await;
        }
        assert_eq!(
            bounded(g.wait_all()).await.map_err(|errors| errors.len()),
            Err(10),
            "each skipped task reports the context's error"
        );
        assert_eq!(started.load(SeqCst), 0);
        drop(cancel);
    })
    .await
}

#[test]
fn a_failure_stops_threads_that_watch_the_context() {
    let _leaks = common::no_leaks();
    let stopped = AtomicUsize::new(0);
    let started = std::sync::Barrier::new(5);
    let r = group::scope(&Context::background(), |s| {
        for _ in 0..4 {
            let (stopped, started) = (&stopped, &started);
            s.spawn(move |ctx| -> Result<(), FetchError> {
                started.wait();
                loop {
                    if let Err(err) = ctx.blocking_sleep(Duration::from_millis(1)) {
                        stopped.fetch_add(1, SeqCst);
                        return Err(err.into());
                    }
                }
            });
        }
        let started = &started;
        s.spawn(move |ctx| {
            started.wait();
            ctx.blocking_sleep(Duration::from_millis(5))?;
            Err(FetchError::Broken(4))
        });
    });
    assert_eq!(r, Err(FetchError::Broken(4)));
    assert_eq!(stopped.load(SeqCst), 4);
}

#[test]
fn queued_threads_tasks_never_start_after_a_failure() {
    let _leaks = common::no_leaks();
    let started = AtomicUsize::new(0);
    let r = group::scope(&Context::background(), |s| {
        s.set_limit(1);
        s.spawn(|_| Err::<(), _>(FetchError::Broken(0)));
        for _ in 0..100 {
            let started = &started;
            s.spawn_queued(move |_| {
                started.fetch_add(1, SeqCst);
                Ok(())
            });
        }
    });
    assert_eq!(r, Err(FetchError::Broken(0)));
    assert_eq!(started.load(SeqCst), 0);
}

#[test]
fn scope_all_collects_every_error() {
    let _leaks = common::no_leaks();
    let r = group::scope_all(&Context::background(), |s| {
        s.set_limit(1); // run in order so every task starts before the first failure lands
        for i in 0..4usize {
            s.spawn_queued(move |_| {
                if i % 2 == 0 {
                    Err(FetchError::Broken(i))
                } else {
                    Ok(i)
                }
            });
        }
    });
    // Task 0 fails first; the rest were queued and never start: each reports the context's error.
    assert_eq!(
        r,
        Err(vec![
            FetchError::Broken(0),
            FetchError::Ctx(Error::Canceled),
            FetchError::Ctx(Error::Canceled),
            FetchError::Ctx(Error::Canceled),
        ])
    );
}
