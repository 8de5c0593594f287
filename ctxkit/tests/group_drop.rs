//! Dropping a group without waiting: its context is canceled and its tasks are aborted.
//! Misuse of the limit panics with a message that names the component.

#![cfg(feature = "tokio")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::bounded;
use ctxkit::{Context, Error, Group};

/// Signals on a channel when dropped: shows that a task's future was dropped.
struct DropSignal(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_cancels_the_context_and_aborts_tasks() {
    common::no_leaks_async(async {
        let (mut g, ctx) = Group::<(), Error>::with_context(&Context::background());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        g.spawn(move |_ctx| async move {
            let _signal = DropSignal(Some(tx));
            let _ = started_tx.send(());
            // Ignores the context: only the abort can end it.
            std::future::pending::<()>().await;
            Ok(())
        })
        .await;
        bounded(started_rx).await.unwrap();
        drop(g);
        assert!(ctx.is_done(), "the group's context is canceled by the drop");
        bounded(rx)
            .await
            .expect("the task's future was dropped (aborted)");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_under_a_limit_aborts_running_and_queued_tasks() {
    common::no_leaks_async(async {
        let mut g = Group::<(), Error>::new();
        g.set_limit(1);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let signal = DropSignal(Some(tx));
        g.spawn(move |_ctx| async move {
            let _signal = signal;
            std::future::pending::<()>().await;
            Ok(())
        })
        .await;
        let (queued_tx, queued_rx) = tokio::sync::oneshot::channel();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let signal = DropSignal(Some(queued_tx));
        g.spawn_queued(move |_ctx| async move {
            let _signal = signal;
            r.fetch_add(1, SeqCst);
            Ok(())
        });
        drop(g);
        let _ = bounded(rx).await; // sent or dropped: either way the future is gone
        let _ = bounded(queued_rx).await;
        assert_eq!(
            ran.load(SeqCst),
            0,
            "a queued task never starts after the drop"
        );
    })
    .await
}

#[test]
fn scope_joins_every_thread_before_returning() {
    let _leaks = common::no_leaks();
    // The blocking form cannot be dropped early: scope returns only once every thread has
    // been joined, so nothing outlives it.
    let live = AtomicUsize::new(0);
    let r = ctxkit::group::scope(&Context::background(), |s| {
        for _ in 0..8 {
            let live = &live;
            s.spawn(move |_| {
                live.fetch_add(1, SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                live.fetch_sub(1, SeqCst);
                Ok::<_, Error>(())
            });
        }
    });
    assert_eq!(r.map(|v| v.len()), Ok(8));
    assert_eq!(live.load(SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_limit_while_tasks_are_active_panics() {
    common::no_leaks_async(async {
        let mut g = Group::<(), Error>::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        g.spawn(move |_ctx| async move {
            let _ = rx.await;
            Ok(())
        })
        .await;
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.set_limit(2)));
        let payload = caught.expect_err("must panic");
        let text = payload.downcast_ref::<String>().unwrap();
        assert_eq!(text, "ctxkit::group: set_limit while 1 tasks are active");
        tx.send(()).unwrap();
        bounded(g.wait()).await.unwrap();
        g.set_limit(2); // fine once idle
        assert_eq!(g.limit(), Some(2));
    })
    .await
}

#[test]
#[should_panic(expected = "ctxkit::group: set_limit(0) would never run a task")]
fn set_limit_zero_panics_on_a_scope() {
    let _leaks = common::no_leaks();
    let _ = ctxkit::group::scope(
        &Context::background(),
        |s: &ctxkit::group::Scope<'_, '_, (), Error>| {
            s.set_limit(0);
        },
    );
}

#[test]
#[should_panic(expected = "ctxkit::group: set_limit while")]
fn set_limit_while_threads_are_active_panics() {
    let _leaks = common::no_leaks();
    let _ = ctxkit::group::scope(&Context::background(), |s| {
        s.spawn(|ctx| {
            ctx.wait_timeout(Duration::from_secs(10));
            Ok::<_, Error>(())
        });
        s.set_limit(1);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_wait_loses_nothing() {
    common::no_leaks_async(async {
        // Cancel safety: dropping the wait future leaves the tasks running; a later wait returns
        // their results.
        let mut g = Group::<u32, Error>::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        g.spawn(move |_ctx| async move {
            let _ = rx.await;
            Ok(1)
        })
        .await;
        assert!(tokio::time::timeout(Duration::from_millis(10), g.wait())
            .await
            .is_err());
        tx.send(()).unwrap();
        assert_eq!(bounded(g.wait()).await, Ok(vec![1]));
    })
    .await
}
