//! The async `Group`'s scheduling guarantees: without a limit every task runs at once (tasks
//! that wait for each other finish), also when the group reuses worker tasks between spawns and
//! rounds; a limit set after an unlimited round still holds. And how a task gets its context:
//! `spawn` calls the closure at once, on the caller's side, with the group's context, and not at
//! all once that context is done.

#![cfg(feature = "tokio")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::bounded;
use ctxkit::{Error, Group};

/// Spawns `n` tasks that each wait until all `n` have started.
async fn spawn_rendezvous(g: &mut Group<usize, Error>, n: usize) {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    for i in 0..n {
        let barrier = barrier.clone();
        g.spawn(move |_ctx| async move {
            barrier.wait().await;
            Ok(i)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_limit_every_task_runs_at_once() {
    common::no_leaks_async(async {
        let mut g = Group::new();
        spawn_rendezvous(&mut g, 200).await;
        assert_eq!(
            bounded(g.wait()).await.unwrap(),
            (0..200).collect::<Vec<_>>()
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reused_workers_still_run_every_task_at_once() {
    common::no_leaks_async(async {
        let mut g = Group::new();
        for round in 0..5 {
            // Quick tasks leave idle workers behind...
            for i in 0..50 {
                g.spawn(move |_ctx| async move { Ok(i) }).await;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            // ...which must not serialize tasks that need each other.
            spawn_rendezvous(&mut g, 30).await;
            let results = bounded(g.wait()).await.unwrap();
            assert_eq!(results.len(), 80, "round {round}");
            assert_eq!(results[..50], (0..50).collect::<Vec<_>>()[..]);
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_set_after_an_unlimited_round_holds() {
    common::no_leaks_async(async {
        let mut g = Group::<usize, Error>::new();
        spawn_rendezvous(&mut g, 40).await; // leaves many idle workers
        bounded(g.wait()).await.unwrap();
        g.set_limit(3);
        let (active, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        for _ in 0..300 {
            let (active, peak) = (active.clone(), peak.clone());
            g.spawn(move |_ctx| async move {
                peak.fetch_max(active.fetch_add(1, SeqCst) + 1, SeqCst);
                tokio::task::yield_now().await;
                active.fetch_sub(1, SeqCst);
                Ok(0)
            })
            .await;
        }
        bounded(g.wait()).await.unwrap();
        let peak = peak.load(SeqCst);
        assert!(peak <= 3, "peak {peak} tasks under a limit of 3");
    })
    .await
}

/// A task may leave a waker behind (here: it polls a channel once and ends); when that waker
/// fires later, the group's idle worker task is polled spuriously. It must stay idle and keep
/// taking tasks. Every round leaves stale wakers on eight workers (the tasks meet at a barrier
/// first, so each runs on a worker of its own) and fires them while those workers idle, so
/// workers reused from earlier rounds get spurious polls too, not only fresh ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_wakers_left_by_tasks_are_harmless() {
    common::no_leaks_async(async {
        use std::future::{poll_fn, Future};
        use std::pin::Pin;
        use std::task::Poll;

        let mut g = Group::<usize, Error>::new();
        for round in 0..3 {
            // Tasks that register their worker's waker with a channel, then end without waiting.
            let mut senders = Vec::new();
            let receivers = Arc::new(std::sync::Mutex::new(Vec::new()));
            let all_running = Arc::new(tokio::sync::Barrier::new(8));
            for i in 0..8 {
                let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                senders.push(tx);
                receivers.lock().unwrap().push(rx);
                let (receivers, all_running) = (receivers.clone(), all_running.clone());
                g.spawn(move |_ctx| async move {
                    all_running.wait().await;
                    poll_fn(|cx| {
                        let mut receivers = receivers.lock().unwrap();
                        let _ = Pin::new(&mut receivers[i]).poll(cx);
                        Poll::Ready(())
                    })
                    .await;
                    Ok(i)
                })
                .await;
            }
            assert_eq!(
                bounded(g.wait()).await.unwrap(),
                (0..8).collect::<Vec<_>>(),
                "round {round}"
            );
            // Fire the stale wakers while the workers are idle (each receiver is still there to be
            // woken), then use the group again.
            for tx in senders {
                assert!(tx.send(()).is_ok(), "round {round}: a receiver is gone");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            // As many tasks as there may be idle workers: each must be taken by a live one.
            spawn_rendezvous(&mut g, 8).await;
            assert_eq!(bounded(g.wait()).await.unwrap().len(), 8, "round {round}");
            for i in 0..100 {
                g.spawn(move |_ctx| async move { Ok(i) }).await;
            }
            assert_eq!(bounded(g.wait()).await.unwrap().len(), 100, "round {round}");
            drop(receivers);
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_calls_the_closure_at_once_with_the_groups_context() {
    common::no_leaks_async(async {
        struct RequestId(&'static str);
        let parent = ctxkit::Context::background().with_value(RequestId("req-9"));
        let (mut g, ctx) = Group::<&'static str, Error>::with_context(&parent);
        // The closure runs here: it may borrow mutably and use what is not `Send`, as long as the
        // future it returns is `Send + 'static`.
        let mut calls = Vec::new();
        let not_send = std::rc::Rc::new("from the caller");
        let mut seen = None;
        g.spawn(|task_ctx| {
            calls.push(*not_send);
            seen = Some(task_ctx.clone());
            async move {
                task_ctx.check()?;
                Ok(task_ctx.value::<RequestId>().map_or("none", |id| id.0))
            }
        })
        .await;
        assert_eq!(calls, ["from the caller"], "called by spawn itself");
        let seen = seen.unwrap();
        assert!(!seen.is_done());
        assert_eq!(bounded(g.wait()).await, Ok(vec!["req-9"]));
        assert!(
            seen.is_done() && ctx.is_done(),
            "the task got the group's context"
        );

        // Once the context is done the closure is not called: nothing starts.
        let mut called = false;
        g.spawn(|_ctx| {
            called = true;
            async { Ok("never") }
        })
        .await;
        assert!(!called);
        assert!(
            !g.try_spawn(|_ctx| -> std::future::Ready<Result<&'static str, Error>> {
                unreachable!("try_spawn on a done group calls nothing")
            })
        );
        assert_eq!(bounded(g.wait()).await, Err(Error::Canceled));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_without_a_context_hands_tasks_the_background() {
    common::no_leaks_async(async {
        let mut g = Group::<bool, Error>::new();
        let mut seen = None;
        g.spawn(|ctx| {
            seen = Some(ctx.clone());
            async move { Ok(ctx.is_done()) }
        })
        .await;
        assert_eq!(bounded(g.wait()).await, Ok(vec![false]));
        let seen = seen.unwrap();
        assert!(!seen.is_done(), "never canceled");
        assert_eq!(seen.deadline(), None);
    })
    .await
}

#[test]
fn spawn_outside_a_runtime_panics_and_changes_nothing() {
    let _leaks = common::no_leaks();
    let mut g = Group::<u32, Error>::new();
    // Both spawns: the awaited one (polled on another executor) and the queuing one.
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        futures::executor::block_on(g.spawn(|_ctx| async { Ok(1) }));
    }));
    let payload = panicked.expect_err("no runtime: spawn panics");
    assert_eq!(
        payload.downcast_ref::<&str>().copied(),
        Some("ctxkit::group: spawn needs a tokio runtime to start a worker task")
    );
    assert_eq!(g.active(), 0);
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        g.spawn_queued(|_ctx| async { Ok(1) });
    }));
    assert!(panicked.is_err(), "no runtime: spawn_queued panics");
    assert_eq!(g.active(), 0);
    // The group is as it was: a round on a runtime holds only its own task.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let r = rt.block_on(async {
        g.spawn(|_ctx| async { Ok(2) }).await;
        bounded(g.wait()).await
    });
    assert_eq!(r, Ok(vec![2]));
}
