//! The behaviours tested by Go's `golang.org/x/sync/errgroup/errgroup_test.go`, written anew
//! for ctxkit's `Group` (async) and `group::scope` (threads).
//!
//! Source: golang.org/x/sync, `errgroup/errgroup_test.go` (TestZeroGroup, TestWithContext,
//! TestGoLimit, TestTryGo, TestCancelCause). Copyright 2016 The Go Authors. All rights
//! reserved. Use of the Go source code is governed by a BSD-style licence that can be found in
//! the LICENSE file of golang.org/x/sync. No Go code is copied here; the cases are restated.
//!
//! Deliberate differences, each tested below: `wait` on a zero group starts a new round (Go's
//! keeps returning its first error); `set_limit(0)` panics (Go's makes every `Go` block);
//! spawning under a limit queues instead of blocking.

#![cfg(feature = "tokio")]

mod common;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use common::bounded;
use ctxkit::{group, Context, Error, Group};

#[derive(Clone, Debug, PartialEq)]
enum TestError {
    Doom(u32),
    Msg(String),
    Ctx(Error),
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestError::Doom(n) => write!(f, "errgroup_test: doomed {n}"),
            TestError::Msg(m) => f.write_str(m),
            TestError::Ctx(e) => write!(f, "{e}"),
        }
    }
}

impl From<Error> for TestError {
    fn from(e: Error) -> Self {
        TestError::Ctx(e)
    }
}

// ===== TestZeroGroup =====

/// Go: a zero Group, tasks returning each error in turn, Wait after each Go returns the first
/// error so far. Here the zero group is `Group::new()`; tasks run one at a time (each waited
/// on before the next), so "first" is well defined. Each `wait` ends a round: a later round
/// reports its own first error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_group() {
    common::no_leaks_async(async {
        let cases: Vec<Vec<Option<TestError>>> = vec![
            vec![],
            vec![None],
            vec![Some(TestError::Doom(1))],
            vec![Some(TestError::Doom(1)), None],
            vec![Some(TestError::Doom(1)), None, Some(TestError::Doom(2))],
        ];
        for errs in cases {
            // One round holding every task: the first in time is the first spawned, because each
            // task waits for the one before it to finish.
            let mut g = Group::<usize, TestError>::new();
            let mut prev: Option<tokio::sync::oneshot::Receiver<()>> = None;
            for (i, err) in errs.iter().cloned().enumerate() {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let before = prev.replace(rx);
                g.spawn(move |_ctx| async move {
                    if let Some(before) = before {
                        let _ = before.await;
                    }
                    let _ = tx.send(());
                    match err {
                        Some(e) => Err(e),
                        None => Ok(i),
                    }
                })
                .await;
            }
            let want = errs.iter().flatten().next().cloned();
            let got = bounded(g.wait()).await;
            match want {
                Some(e) => assert_eq!(got, Err(e), "errs {errs:?}"),
                None => assert_eq!(got, Ok((0..errs.len()).collect()), "errs {errs:?}"),
            }

            // Go's form: Wait after each Go. Rounds are separate here.
            let mut g = Group::<(), TestError>::new();
            for err in errs.iter().cloned() {
                let task_err = err.clone();
                g.spawn(move |_ctx| async move { task_err.map_or(Ok(()), Err) })
                    .await;
                let got = bounded(g.wait()).await;
                assert_eq!(got, err.map_or(Ok(vec![()]), Err));
            }
        }
    })
    .await
}

#[test]
fn zero_group_threads() {
    let _leaks = common::no_leaks();
    let r = group::scope(&Context::background(), |s| {
        s.spawn(|_| Ok::<_, TestError>(1));
        s.spawn(|_| Ok(2));
    });
    assert_eq!(r, Ok(vec![1, 2]));
    let r: Result<Vec<()>, TestError> = group::scope(&Context::background(), |_| {});
    assert_eq!(r, Ok(vec![]));
}

// ===== TestWithContext =====

/// Go: for each list of errors, the group's Wait returns the expected error and the context
/// is done afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_context_cancels_on_error_and_after_wait() {
    common::no_leaks_async(async {
        let doom = TestError::Doom(0);
        let cases: Vec<(Vec<Option<TestError>>, Option<TestError>)> = vec![
            (vec![], None),
            (vec![None], None),
            (vec![Some(doom.clone())], Some(doom.clone())),
            (vec![Some(doom.clone()), None], Some(doom.clone())),
        ];
        for (errs, want) in cases {
            let (mut g, ctx) = Group::with_context(&Context::background());
            for err in errs.iter().cloned() {
                g.spawn(move |_ctx| async move { err.map_or(Ok(()), Err) })
                    .await;
            }
            let got = bounded(g.wait()).await;
            match &want {
                Some(e) => assert_eq!(got, Err(e.clone())),
                None => assert_eq!(got.map(|v| v.len()), Ok(errs.len())),
            }
            assert!(ctx.is_done(), "ctx not done after wait for errs {errs:?}");
        }
    })
    .await
}

#[test]
fn with_context_threads() {
    let _leaks = common::no_leaks();
    let mut seen = None;
    let r = group::scope(&Context::background(), |s| {
        s.spawn(|_| Err::<(), _>(TestError::Doom(0)));
        seen = Some(s.context().clone());
    });
    assert_eq!(r, Err(TestError::Doom(0)));
    assert!(seen.unwrap().is_done());
}

/// x/sync's cancel-cause test: the group's context's cause is the failing task's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_cause_is_the_error() {
    common::no_leaks_async(async {
        let (mut g, ctx) = Group::<(), TestError>::with_context(&Context::background());
        g.spawn(|_ctx| async { Err(TestError::Doom(7)) }).await;
        assert_eq!(bounded(g.wait()).await, Err(TestError::Doom(7)));
        let cause = ctx.cause().unwrap();
        assert!(cause.is_canceled());
        assert_eq!(cause.to_string(), "errgroup_test: doomed 7");
        let failed = cause.downcast_ref::<group::TaskFailed>().unwrap();
        assert!(!failed.is_panic());
    })
    .await
}

/// The first error in time wins, whatever the spawn order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_error_in_time_wins() {
    common::no_leaks_async(async {
        let (mut g, ctx) = Group::<(), TestError>::with_context(&Context::background());
        g.spawn(|slow| async move {
            // Fails only after the context is done: second in time, first in spawn order.
            slow.done().await;
            Err(TestError::Doom(1))
        })
        .await;
        g.spawn(|_ctx| async { Err(TestError::Doom(2)) }).await;
        assert_eq!(bounded(g.wait()).await, Err(TestError::Doom(2)));
        assert_eq!(ctx.cause().unwrap().to_string(), "errgroup_test: doomed 2");
    })
    .await
}

// ===== TestGoLimit =====

/// Go: with SetLimit(10), never more than 10 of 1,025 tasks are active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_bounds_active_tasks() {
    common::no_leaks_async(async {
        const LIMIT: usize = 10;
        let mut g = Group::<(), TestError>::new();
        g.set_limit(LIMIT);
        let active = Arc::new(AtomicUsize::new(0));
        for _ in 0..=1 << 10 {
            let active = active.clone();
            g.spawn(move |_ctx| async move {
                let n = active.fetch_add(1, SeqCst) + 1;
                if n > LIMIT {
                    return Err(TestError::Msg(format!(
                        "saw {n} active tasks; want <= {LIMIT}"
                    )));
                }
                tokio::task::yield_now().await; // give others a chance to raise `active`
                active.fetch_sub(1, SeqCst);
                Ok(())
            })
            .await;
        }
        assert_eq!(bounded(g.wait()).await.map(|v| v.len()), Ok(1025));
    })
    .await
}

#[test]
fn limit_bounds_active_threads() {
    let _leaks = common::no_leaks();
    const LIMIT: usize = 3;
    let active = AtomicUsize::new(0);
    let r = group::scope(&Context::background(), |s| {
        s.set_limit(LIMIT);
        for _ in 0..200 {
            let active = &active;
            s.spawn(move |_| {
                let n = active.fetch_add(1, SeqCst) + 1;
                if n > LIMIT {
                    return Err(TestError::Msg(format!(
                        "saw {n} active tasks; want <= {LIMIT}"
                    )));
                }
                std::thread::yield_now();
                active.fetch_sub(1, SeqCst);
                Ok(())
            });
        }
    });
    assert_eq!(r.map(|v| v.len()), Ok(200));
}

// ===== TestTryGo =====

/// Go: with SetLimit(n), n TryGo calls succeed and the next fails until they end; after Wait
/// TryGo succeeds again; SetLimit(1) after Wait. SetLimit(0) is where ctxkit differs: it panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_spawn_under_a_limit() {
    common::no_leaks_async(async {
        let n = 42;
        let mut g = Group::<(), TestError>::new();
        g.set_limit(n);
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let task = |release: Arc<tokio::sync::Semaphore>| async move {
            release.acquire().await.unwrap().forget();
            Ok(())
        };
        for i in 0..n {
            assert!(
                g.try_spawn(|_ctx| task(release.clone())),
                "try_spawn should succeed at call {i}"
            );
        }
        assert!(
            !g.try_spawn(|_ctx| task(release.clone())),
            "try_spawn should fail at the limit"
        );
        release.add_permits(n);
        assert_eq!(bounded(g.wait()).await.map(|v| v.len()), Ok(n));

        assert!(
            g.try_spawn(|_ctx| task(release.clone())),
            "try_spawn should succeed after wait"
        );
        release.add_permits(1);
        bounded(g.wait()).await.unwrap();

        g.set_limit(1);
        assert!(g.try_spawn(|_ctx| task(release.clone())));
        assert!(!g.try_spawn(|_ctx| task(release.clone())));
        release.add_permits(1);
        bounded(g.wait()).await.unwrap();

        let zero = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| g.set_limit(0)));
        let message = zero.unwrap_err();
        assert!(message
            .downcast_ref::<&str>()
            .unwrap()
            .contains("set_limit(0) would never run a task"));
    })
    .await
}

#[test]
fn try_spawn_under_a_limit_threads() {
    let _leaks = common::no_leaks();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = std::sync::Mutex::new(rx);
    let r = group::scope(&Context::background(), |s| {
        s.set_limit(2);
        let rx = &rx;
        assert!(s.try_spawn(move |_| Ok::<_, TestError>(rx.lock().unwrap().recv().is_ok())));
        assert!(s.try_spawn(move |_| Ok(rx.lock().unwrap().recv().is_ok())));
        assert!(!s.try_spawn(|_| Ok(false)));
        tx.send(()).unwrap();
        tx.send(()).unwrap();
    });
    assert_eq!(r, Ok(vec![true, true]));
}

// ===== reuse after wait =====

/// Go's zero Group can be reused after Wait; so can `Group::new()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_after_wait() {
    common::no_leaks_async(async {
        let mut g = Group::<u32, TestError>::new();
        for round in 0..3u32 {
            for i in 0..10 {
                g.spawn(move |_ctx| async move { Ok(round * 10 + i) }).await;
            }
            let want: Vec<u32> = (0..10).map(|i| round * 10 + i).collect();
            assert_eq!(bounded(g.wait()).await, Ok(want));
        }
        g.spawn(|_ctx| async { Err(TestError::Doom(3)) }).await;
        assert_eq!(bounded(g.wait()).await, Err(TestError::Doom(3)));
        g.spawn(|_ctx| async { Ok(4) }).await;
        assert_eq!(
            bounded(g.wait()).await,
            Ok(vec![4]),
            "an error does not stick to the next round"
        );
    })
    .await
}

/// A `with_context` group's context is done once `wait` returns (go#57534): tasks spawned
/// afterwards never start, and the next wait says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_context_group_after_wait() {
    common::no_leaks_async(async {
        let (mut g, ctx) = Group::<u32, TestError>::with_context(&Context::background());
        g.spawn(|_ctx| async { Ok(1) }).await;
        assert_eq!(bounded(g.wait()).await, Ok(vec![1]));
        assert!(ctx.is_done());
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        g.spawn(move |_ctx| async move {
            s.fetch_add(1, SeqCst);
            Ok(2)
        })
        .await;
        assert!(!g.try_spawn(|_ctx| async { Ok(3) }));
        assert_eq!(
            bounded(g.wait()).await,
            Err(TestError::Ctx(Error::Canceled))
        );
        assert_eq!(started.load(SeqCst), 0);
    })
    .await
}
