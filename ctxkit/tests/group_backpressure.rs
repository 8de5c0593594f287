//! Back-pressure under a group limit, in both forms: `spawn` waits for a free slot (the async
//! form is awaited, the thread form blocks, as Go's `Go` does), so a loop that spawns far more
//! tasks than the limit holds only about the limit's worth at a time; and it gives up, without
//! running its task, once the group's context is done, so the conc#88 deadlock (a spawner
//! waiting for the slot that the failing task holds) cannot happen. `spawn_queued` keeps the
//! queue for callers who ask for it.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use ctxkit::{group, Context, Error};

/// How many tasks the memory-bound tests spawn.
const MANY: usize = 1_000_000;

/// Runs `f` on a thread of its own and fails the test if it has not returned within 30 s: a
/// spawn that never stops waiting shows as that failure, not as a hung suite.
fn watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what}: still waiting after 30 s"))
}

// ===== threads =====

/// The new user's check: with a limit of 1, the second spawn does not return while the first
/// task still runs. The first task ends only after a delay (if `spawn` returned at once, it
/// would return before that); it records that it ended just before returning.
#[test]
fn thread_spawn_blocks_while_the_limit_is_reached() {
    let _leaks = common::no_leaks();
    let first_ended = AtomicBool::new(false);
    let (release, released) = mpsc::channel::<()>();
    let r = group::scope(&Context::background(), |s| {
        s.set_limit(1);
        let first_ended = &first_ended;
        s.spawn(move |_| {
            released.recv().unwrap();
            first_ended.store(true, SeqCst);
            Ok::<_, Error>(1)
        });
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            release.send(()).unwrap();
        });
        s.spawn(move |_| {
            assert!(
                first_ended.load(SeqCst),
                "ran beside the first under a limit of 1"
            );
            Ok(2)
        });
        assert!(
            first_ended.load(SeqCst),
            "the second spawn returned while the first task still ran"
        );
        releaser.join().unwrap();
    });
    assert_eq!(r, Ok(vec![1, 2]));
}

/// conc#88: a limit of 1, the running task fails, a spawner waits for its slot: the spawn
/// returns without its task ever running, and the scope reports the failure.
#[test]
fn thread_spawn_waiting_for_the_failing_tasks_slot_gives_up() {
    let _leaks = common::no_leaks();
    let ran = Arc::new(AtomicUsize::new(0));
    let seen = ran.clone();
    let r = watchdog("the waiting spawn", move || {
        group::scope(&Context::background(), |s| {
            s.set_limit(1);
            let (fail, failing) = mpsc::channel::<()>();
            s.spawn(move |_| {
                failing.recv().unwrap();
                Err::<u32, _>(Error::DeadlineExceeded)
            });
            // Fails once the spawner below is (most likely) waiting; either way it must not
            // wait forever, and its task must not run.
            let failer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                fail.send(()).unwrap();
            });
            for _ in 0..100 {
                let ran = ran.clone();
                s.spawn(move |_| {
                    ran.fetch_add(1, SeqCst);
                    Ok(0)
                });
            }
            failer.join().unwrap();
        })
    });
    assert_eq!(r, Err(Error::DeadlineExceeded));
    assert_eq!(seen.load(SeqCst), 0, "a task spawned after the failure ran");
}

/// The slot never frees (its task ignores the context and waits for the spawner), and the
/// parent is canceled: the waiting spawn returns anyway, at the cancel, without its task.
#[test]
fn thread_spawn_waiting_for_a_held_slot_gives_up_when_the_context_is_done() {
    let _leaks = common::no_leaks();
    let r = watchdog("the waiting spawn", || {
        let (parent, cancel) = Context::background().with_cancel().into_parts();
        let ran = AtomicBool::new(false);
        let r = group::scope(&parent, |s| {
            s.set_limit(1);
            let (release, released) = mpsc::channel::<()>();
            let (started, has_started) = mpsc::channel::<()>();
            s.spawn(move |_| {
                started.send(()).unwrap();
                released.recv().unwrap(); // ignores its context: only the spawner ends it
                Ok(1)
            });
            // Started before the cancel (a task not started by then never starts).
            has_started.recv().unwrap();
            let canceler = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                cancel.cancel();
            });
            s.spawn(|_| {
                ran.store(true, SeqCst);
                Ok(2)
            });
            assert!(
                s.context().is_done(),
                "the spawn returned before the cancel"
            );
            release.send(()).unwrap();
            canceler.join().unwrap();
        });
        (r, ran.into_inner())
    });
    assert_eq!(r, (Err(Error::Canceled), false));
}

/// A million spawns under a limit of 8 never hold more than 8 tasks (running or handed to a
/// worker): the spawner waits instead of queueing.
#[test]
fn thread_spawn_holds_at_most_the_limit_however_many_are_spawned() {
    let _leaks = common::no_leaks();
    let ran = AtomicUsize::new(0);
    let r = group::scope(&Context::background(), |s| {
        s.set_limit(8);
        let mut peak = 0;
        for _ in 0..MANY {
            let ran = &ran;
            s.spawn(move |_| {
                ran.fetch_add(1, SeqCst);
                Ok::<_, Error>(())
            });
            peak = peak.max(s.active());
        }
        assert!(peak <= 8, "{peak} tasks held under a limit of 8");
    });
    assert_eq!(r.map(|v| v.len()), Ok(MANY));
    assert_eq!(ran.into_inner(), MANY);
}

/// `spawn_queued` is the queue, for callers who ask for it: it never blocks, and everything it
/// queued is held until it runs.
#[test]
fn thread_spawn_queued_never_blocks_and_holds_the_queue() {
    let _leaks = common::no_leaks();
    let r = group::scope(&Context::background(), |s| {
        s.set_limit(1);
        let (release, released) = mpsc::channel::<()>();
        s.spawn_queued(move |_| {
            released.recv().unwrap();
            Ok::<_, Error>(0)
        });
        for i in 1..=1_000 {
            s.spawn_queued(move |_| Ok(i));
        }
        assert_eq!(s.active(), 1_001, "all held: 1 running, 1,000 queued");
        release.send(()).unwrap();
    });
    assert_eq!(r, Ok((0..=1_000).collect()));
}

/// Without a limit, an idle thread of the scope is reused: tasks spawned one after another,
/// each once the previous has ended, all run on the first thread.
#[test]
fn thread_spawn_without_a_limit_reuses_an_idle_thread() {
    let _leaks = common::no_leaks();
    let threads = std::sync::Mutex::new(std::collections::HashSet::new());
    let r = group::scope(&Context::background(), |s| {
        for i in 0..50 {
            let threads = &threads;
            s.spawn(move |_| {
                threads.lock().unwrap().insert(std::thread::current().id());
                Ok::<_, Error>(i)
            });
            // The worker lowers the count and idles in one critical section (scheduler
            // invariant 3): once it reads zero, the worker is idle and takes the next task.
            while s.active() != 0 {
                std::thread::yield_now();
            }
        }
    });
    assert_eq!(r, Ok((0..50).collect()));
    assert_eq!(threads.into_inner().unwrap().len(), 1);
}

// ===== async =====

#[cfg(feature = "tokio")]
mod tasks {
    use std::future::Future;
    use std::pin::pin;
    use std::task::Poll;

    use futures::poll;

    use super::*;
    use ctxkit::Group;

    async fn bounded<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(30), f)
            .await
            .expect("timed out after 30 s")
    }

    /// The new user's check, async: with a limit of 1, the second spawn does not complete
    /// while the first task still runs, and completes once it has ended.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawn_waits_while_the_limit_is_reached() {
        common::no_leaks_async(async {
            let mut g = Group::<u32, Error>::new();
            g.set_limit(1);
            let first_ended = Arc::new(AtomicBool::new(false));
            let (release, released) = tokio::sync::oneshot::channel::<()>();
            let ended = first_ended.clone();
            g.spawn(move |_ctx| async move {
                released.await.unwrap();
                ended.store(true, SeqCst);
                Ok(1)
            })
            .await;
            let called = AtomicBool::new(false);
            let ended = first_ended.clone();
            {
                let mut second = pin!(g.spawn(|_ctx| {
                    called.store(true, SeqCst);
                    async move {
                        assert!(
                            ended.load(SeqCst),
                            "ran beside the first under a limit of 1"
                        );
                        Ok(2)
                    }
                }));
                for _ in 0..10 {
                    assert_eq!(poll!(second.as_mut()), Poll::Pending);
                    tokio::task::yield_now().await;
                }
                assert!(!called.load(SeqCst), "the closure waits for the slot too");
                release.send(()).unwrap();
                bounded(second).await;
            }
            assert!(first_ended.load(SeqCst));
            assert!(called.load(SeqCst));
            assert_eq!(bounded(g.wait()).await, Ok(vec![1, 2]));
        })
        .await
    }

    /// conc#88, async: the running task fails while a spawn waits for its slot; the spawn
    /// completes without calling its closure, and `wait` reports the failure.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawn_waiting_for_the_failing_tasks_slot_gives_up() {
        common::no_leaks_async(async {
            let (mut g, ctx) = Group::<u32, Error>::with_context(&Context::background());
            g.set_limit(1);
            let (fail, failing) = tokio::sync::oneshot::channel::<()>();
            g.spawn(|_ctx| async move {
                failing.await.unwrap();
                Err(Error::DeadlineExceeded)
            })
            .await;
            let called = AtomicBool::new(false);
            {
                let mut waiting = pin!(g.spawn(|_ctx| {
                    called.store(true, SeqCst);
                    async { Ok(2) }
                }));
                assert_eq!(poll!(waiting.as_mut()), Poll::Pending, "waits for the slot");
                fail.send(()).unwrap();
                bounded(waiting).await;
            }
            assert!(
                !called.load(SeqCst),
                "the task of a spawn that gave up was called"
            );
            assert!(ctx.is_done());
            assert_eq!(bounded(g.wait()).await, Err(Error::DeadlineExceeded));
        })
        .await
    }

    /// The slot never frees (its task ignores the context), and the parent is canceled: the
    /// waiting spawn completes at the cancel, without calling its closure.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawn_waiting_for_a_held_slot_gives_up_when_the_context_is_done() {
        common::no_leaks_async(async {
            let parent = Context::background().with_cancel();
            let (mut g, _ctx) = Group::<u32, Error>::with_context(&parent);
            g.set_limit(1);
            let (release, released) = tokio::sync::oneshot::channel::<()>();
            let (started, has_started) = tokio::sync::oneshot::channel::<()>();
            g.spawn(|_ctx| async move {
                started.send(()).unwrap();
                released.await.unwrap(); // ignores its context
                Ok(1)
            })
            .await;
            // Started before the cancel (a task not started by then never starts).
            bounded(has_started).await.unwrap();
            let called = AtomicBool::new(false);
            {
                let mut waiting = pin!(g.spawn(|_ctx| {
                    called.store(true, SeqCst);
                    async { Ok(2) }
                }));
                assert_eq!(poll!(waiting.as_mut()), Poll::Pending);
                parent.cancel();
                bounded(waiting).await;
            }
            assert!(!called.load(SeqCst));
            release.send(()).unwrap();
            assert_eq!(bounded(g.wait()).await, Err(Error::Canceled));
        })
        .await
    }

    /// Dropping a waiting spawn spawns nothing and leaves the group as it was (cancel safety).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_waiting_spawn_spawns_nothing() {
        common::no_leaks_async(async {
            let mut g = Group::<u32, Error>::new();
            g.set_limit(1);
            let (release, released) = tokio::sync::oneshot::channel::<()>();
            g.spawn(|_ctx| async move {
                released.await.unwrap();
                Ok(1)
            })
            .await;
            let called = AtomicBool::new(false);
            {
                let mut waiting = pin!(g.spawn(|_ctx| {
                    called.store(true, SeqCst);
                    async { Ok(2) }
                }));
                assert_eq!(poll!(waiting.as_mut()), Poll::Pending);
            } // dropped while waiting
            assert_eq!(g.active(), 1);
            release.send(()).unwrap();
            g.spawn(|_ctx| async { Ok(3) }).await;
            assert_eq!(bounded(g.wait()).await, Ok(vec![1, 3]));
            assert!(!called.load(SeqCst));
        })
        .await
    }

    /// A million spawns under a limit of 8 never hold more than 8 tasks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawn_holds_at_most_the_limit_however_many_are_spawned() {
        common::no_leaks_async(async {
            let mut g = Group::<(), Error>::new();
            g.set_limit(8);
            let ran = Arc::new(AtomicUsize::new(0));
            let mut peak = 0;
            for _ in 0..MANY {
                let ran = ran.clone();
                g.spawn(move |_ctx| async move {
                    ran.fetch_add(1, SeqCst);
                    Ok(())
                })
                .await;
                peak = peak.max(g.active());
            }
            assert!(peak <= 8, "{peak} tasks held under a limit of 8");
            assert_eq!(bounded(g.wait()).await.map(|v| v.len()), Ok(MANY));
            assert_eq!(ran.load(SeqCst), MANY);
        })
        .await
    }

    /// The spawn future of a `Send` closure is `Send`, so a spawning loop can run in a task
    /// that tokio moves between threads (it holds the closure while it waits).
    #[test]
    fn the_spawn_future_is_send() {
        let _leaks = common::no_leaks();
        fn assert_send<T: Send>(_: &T) {}
        let mut g = Group::<u32, Error>::new();
        let id = 7;
        let spawn = g.spawn(move |_ctx| async move { Ok(id) });
        assert_send(&spawn);
    }

    /// `spawn_queued` never waits and holds what it queued.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spawn_queued_never_waits_and_holds_the_queue() {
        common::no_leaks_async(async {
            let mut g = Group::<u32, Error>::new();
            g.set_limit(1);
            let (release, released) = tokio::sync::oneshot::channel::<()>();
            g.spawn_queued(|_ctx| async move {
                released.await.unwrap();
                Ok(0)
            });
            for i in 1..=1_000 {
                g.spawn_queued(move |_ctx| async move { Ok(i) });
            }
            assert_eq!(g.active(), 1_001, "all held: 1 running, 1,000 queued");
            release.send(()).unwrap();
            assert_eq!(bounded(g.wait()).await, Ok((0..=1_000).collect()));
        })
        .await
    }
}
