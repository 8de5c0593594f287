//! A group whose tokio runtime shuts down while its tasks run: tokio drops the tasks' futures,
//! and `wait`, run on another runtime or executor, must return (an error: the tasks were
//! aborted) instead of waiting for outcomes nobody will record. Queued tasks (under a limit,
//! with `spawn_queued`), which nothing can run any more, count as aborted too; idle workers of
//! the dead runtime must not be handed new tasks.
//!
//! The failure to guard against is a hang: `wait` never returning. So every wait runs on a
//! thread of its own under a watchdog (`common::watchdog`), and a hang fails the test instead of
//! hanging the suite.

#![cfg(feature = "tokio")]

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{wait_until, watchdog};
use ctxkit::group::TaskFailed;
use ctxkit::{Context, Error, Group};

/// How long each task sleeps (ignoring its context): only the shutdown ends it. Long, so that a
/// stall of the test machine between the tasks' start and the shutdown cannot let one finish.
const NAP: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// How a test ends the runtime.
#[derive(Clone, Copy, Debug)]
enum Shutdown {
    Drop,
    TimeoutZero,
}

impl Shutdown {
    fn apply(self, rt: tokio::runtime::Runtime) {
        match self {
            Shutdown::Drop => drop(rt),
            Shutdown::TimeoutZero => rt.shutdown_timeout(Duration::ZERO),
        }
    }
}

/// Where a test runs `wait` once the runtime is gone.
#[derive(Clone, Copy, Debug)]
enum Waiter {
    BlockOn,
    SecondRuntime,
}

impl Waiter {
    fn wait<T: Send + 'static>(self, mut g: Group<T, Error>) -> Result<Vec<T>, Vec<Error>> {
        let waited = async move { g.wait_all().await };
        match self {
            Waiter::BlockOn => futures::executor::block_on(waited),
            Waiter::SecondRuntime => runtime().block_on(waited),
        }
    }
}

/// Spawns `n` tasks on `rt` that each sleep [`NAP`]; returns once the ones that can run (all,
/// or `limit`) have started.
fn sleepers(
    rt: &tokio::runtime::Runtime,
    limit: Option<usize>,
    n: usize,
) -> (Group<(), Error>, Context) {
    let _enter = rt.enter();
    let (mut g, ctx) = Group::with_context(&Context::background());
    if let Some(limit) = limit {
        g.set_limit(limit);
    }
    let (started, started_rx) = mpsc::channel();
    for _ in 0..n {
        let started = started.clone();
        g.spawn_queued(move |_ctx| async move {
            let _ = started.send(());
            tokio::time::sleep(NAP).await; // ignores its context
            Ok(())
        });
    }
    for _ in 0..limit.unwrap_or(n) {
        started_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("setup: the tasks started");
    }
    (g, ctx)
}

fn check_aborted(case: &str, ctx: &Context, result: Result<Vec<()>, Vec<Error>>, n: usize) {
    // Every task failed with the context's error: the running ones aborted, the queued ones
    // aborted too (nothing could run them).
    assert_eq!(result, Err(vec![Error::Canceled; n]), "{case}");
    let cause = ctx.cause().expect("the group's context is canceled");
    let failed = cause
        .downcast_ref::<TaskFailed>()
        .unwrap_or_else(|| panic!("{case}: the cause is a TaskFailed, got {cause}"));
    assert!(failed.is_aborted(), "{case}: {failed:?}");
    assert!(!failed.is_panic(), "{case}");
    assert_eq!(
        cause.to_string(),
        "ctxkit::group: task aborted: its tokio runtime shut down before it finished",
        "{case}"
    );
}

fn shutdown_case(shutdown: Shutdown, waiter: Waiter, limit: Option<usize>) {
    const TASKS: usize = 6;
    let case = format!("{shutdown:?}, {waiter:?}, limit {limit:?}");
    let rt = runtime();
    let (g, ctx) = sleepers(&rt, limit, TASKS);
    shutdown.apply(rt);
    let result = watchdog(&case, move || waiter.wait(g));
    check_aborted(&case, &ctx, result, TASKS);
}

#[test]
fn runtime_dropped_while_tasks_sleep_wait_under_block_on() {
    let _leaks = common::no_leaks();
    shutdown_case(Shutdown::Drop, Waiter::BlockOn, None);
}

#[test]
fn runtime_dropped_while_tasks_sleep_wait_on_a_second_runtime() {
    let _leaks = common::no_leaks();
    shutdown_case(Shutdown::Drop, Waiter::SecondRuntime, None);
}

#[test]
fn shutdown_timeout_zero_wait_under_block_on() {
    let _leaks = common::no_leaks();
    shutdown_case(Shutdown::TimeoutZero, Waiter::BlockOn, None);
}

#[test]
fn shutdown_timeout_zero_wait_on_a_second_runtime() {
    let _leaks = common::no_leaks();
    shutdown_case(Shutdown::TimeoutZero, Waiter::SecondRuntime, None);
}

#[test]
fn queued_tasks_under_a_limit_runtime_dropped() {
    let _leaks = common::no_leaks();
    shutdown_case(Shutdown::Drop, Waiter::BlockOn, Some(2));
    shutdown_case(Shutdown::Drop, Waiter::SecondRuntime, Some(1));
}

#[test]
fn queued_tasks_under_a_limit_shutdown_timeout_zero() {
    let _leaks = common::no_leaks();
    shutdown_case(Shutdown::TimeoutZero, Waiter::BlockOn, Some(2));
    shutdown_case(Shutdown::TimeoutZero, Waiter::SecondRuntime, Some(1));
}

/// A current-thread runtime drops its tasks on the thread that drops it.
#[test]
fn current_thread_runtime_dropped() {
    let _leaks = common::no_leaks();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (mut g, ctx) = Group::<(), Error>::with_context(&Context::background());
    g.set_limit(2);
    rt.block_on(async {
        let (started, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..5 {
            let started = started.clone();
            g.spawn_queued(move |_ctx| async move {
                let _ = started.send(());
                tokio::time::sleep(NAP).await;
                Ok(())
            });
        }
        for _ in 0..2 {
            started_rx.recv().await.expect("setup: the tasks started");
        }
    });
    drop(rt);
    let result = watchdog("current-thread runtime", move || {
        futures::executor::block_on(g.wait_all())
    });
    check_aborted("current-thread runtime", &ctx, result, 5);
}

/// A group without a context: nothing to cancel, but `wait` still returns and reports the
/// aborted tasks.
#[test]
fn a_group_without_a_context_reports_aborted_tasks() {
    let _leaks = common::no_leaks();
    let rt = runtime();
    let mut g = Group::<u32, Error>::new();
    {
        let _enter = rt.enter();
        let (started, started_rx) = mpsc::channel();
        g.spawn_queued(|_ctx| async { Ok(1) });
        for _ in 0..3 {
            let started = started.clone();
            g.spawn_queued(move |_ctx| async move {
                let _ = started.send(());
                tokio::time::sleep(NAP).await;
                Ok(2)
            });
        }
        for _ in 0..3 {
            started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
        // The first task has finished too (it may not even have been polled yet on a loaded
        // machine): only the three sleepers are left to abort.
        wait_until("setup: the first task's end", || g.active(), |&n| n == 3);
    }
    drop(rt);
    let result = watchdog("Group::new", move || {
        futures::executor::block_on(g.wait_all())
    });
    assert_eq!(result, Err(vec![Error::Canceled; 3]));
}

/// The workers that idled on the dead runtime are gone: a later round on another runtime must
/// start new ones, not hand its tasks to the dead (before the fix, this round never ended).
#[test]
fn the_group_works_on_another_runtime_afterwards() {
    let _leaks = common::no_leaks();
    let rt = runtime();
    let mut g = Group::<u32, Error>::new();
    rt.block_on(async {
        for i in 0..8 {
            g.spawn(move |_ctx| async move { Ok(i) }).await;
        }
        assert_eq!(g.wait().await, Ok((0..8).collect()));
    });
    drop(rt); // drops the idle workers
    let result = watchdog("a round on a second runtime", move || {
        runtime().block_on(async move {
            for i in 0..8 {
                g.spawn(move |_ctx| async move { Ok(i * 10) }).await;
            }
            g.wait().await
        })
    });
    assert_eq!(result, Ok((0..8).map(|i| i * 10).collect()));
}

/// Under a limit, after the runtime died with tasks running and queued: the next round on
/// another runtime runs every task, still within the limit.
#[test]
fn a_limited_group_works_on_another_runtime_afterwards() {
    let _leaks = common::no_leaks();
    let rt = runtime();
    let mut g = Group::<usize, Error>::new();
    g.set_limit(2);
    {
        let _enter = rt.enter();
        let (started, started_rx) = mpsc::channel();
        for i in 0..5 {
            let started = started.clone();
            g.spawn_queued(move |_ctx| async move {
                let _ = started.send(());
                tokio::time::sleep(NAP).await;
                Ok(i)
            });
        }
        for _ in 0..2 {
            started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
    }
    drop(rt);
    let (first, second) = watchdog("two rounds after the runtime died", move || {
        runtime().block_on(async move {
            let first = g.wait_all().await;
            for i in 0..20 {
                g.spawn(move |_ctx| async move { Ok(i) }).await;
            }
            (first, g.wait().await)
        })
    });
    assert_eq!(first, Err(vec![Error::Canceled; 5]));
    assert_eq!(second, Ok((0..20).collect()));
}
