//! `group.*` workloads (issue 3), measured as the Go runner (`bench/go`: the same workloads on
//! Go's errgroup) and the peers (`--peers`, `peers/group.rs`) measure them: one group per
//! batch, a 2-worker multi-thread runtime with the driver a task on it, results discarded.

use std::fmt;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctxkit::{group, Context, Error, Group};

use crate::harness::{after_warm_up, batches, emit, progress, runtime, stats, Cfg};

pub(crate) const TASKS: usize = 10_000;
pub(crate) const BLOCKERS: usize = 1_000;

/// A task error that carries the time it was returned (for `first_error_cancel`).
#[derive(Debug)]
enum BenchError {
    Boom(Instant),
    Ctx(Error),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Boom(_) => f.write_str("boom"),
            BenchError::Ctx(e) => e.fmt(f),
        }
    }
}

impl From<Error> for BenchError {
    fn from(e: Error) -> Self {
        BenchError::Ctx(e)
    }
}

/// Runs `fut` as a task on `rt` (a worker, like server code) and waits for it.
pub(crate) fn on_worker<F>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(rt.spawn(fut)).expect("bench task panicked")
}

/// How the spawning loop starts its tasks under a limit.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Spawn {
    /// `spawn_queued`: never waits, queues at the limit (the form these rows always measured).
    Queued,
    /// `spawn`: waits for a free slot at the limit (as Go's `Go`).
    Waits,
}

/// One async group of `tasks` tasks that succeed at once; ns per task.
pub(crate) async fn async_go_wait(
    parent: &Context,
    tasks: usize,
    limit: Option<usize>,
    how: Spawn,
) -> f64 {
    let start = Instant::now();
    let (mut g, _ctx) = Group::<(), BenchError>::with_context(parent);
    if let Some(limit) = limit {
        g.set_limit(limit);
    }
    for _ in 0..tasks {
        match how {
            Spawn::Queued => g.spawn_queued(|_ctx| async { Ok(()) }),
            Spawn::Waits => g.spawn(|_ctx| async { Ok(()) }).await,
        }
    }
    let results = g.wait().await.expect("no task fails");
    black_box(results);
    start.elapsed().as_nanos() as f64 / tasks as f64
}

/// One scoped-thread group of `tasks` tasks that succeed at once; ns per task.
pub(crate) fn thread_go_wait(
    parent: &Context,
    tasks: usize,
    limit: Option<usize>,
    how: Spawn,
) -> f64 {
    let start = Instant::now();
    let results = group::scope(parent, |s| {
        if let Some(limit) = limit {
            s.set_limit(limit);
        }
        for _ in 0..tasks {
            match how {
                Spawn::Queued => s.spawn_queued(|_ctx| Ok::<(), BenchError>(())),
                Spawn::Waits => s.spawn(|_ctx| Ok::<(), BenchError>(())),
            }
        }
    })
    .expect("no task fails");
    black_box(results);
    start.elapsed().as_nanos() as f64 / tasks as f64
}

/// `BLOCKERS` tasks park on the group's context; one more returns an error once triggered.
/// Microseconds from just before that return until `wait` has returned the error.
async fn first_error_trial() -> f64 {
    let (mut g, _ctx) = Group::<(), BenchError>::with_context(&Context::background());
    let started = Arc::new(AtomicUsize::new(0));
    for _ in 0..BLOCKERS {
        let started = started.clone();
        g.spawn(move |ctx| async move {
            let done = ctx.done();
            started.fetch_add(1, Ordering::Release);
            Err(done.await.into())
        })
        .await;
    }
    let (trigger, fire) = tokio::sync::oneshot::channel::<()>();
    g.spawn(move |_ctx| async move {
        let _ = fire.await;
        Err(BenchError::Boom(Instant::now()))
    })
    .await;
    while started.load(Ordering::Acquire) < BLOCKERS {
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2)).await; // let every blocker park
    trigger.send(()).expect("the failing task is alive");
    let err = g.wait().await.expect_err("one task fails");
    let t1 = Instant::now();
    match err {
        BenchError::Boom(t0) => t1.duration_since(t0).as_secs_f64() * 1e6,
        other => panic!("unexpected first error {other}"),
    }
}

/// Runs the selected `group.*` workloads.
pub(crate) fn run(cfg: &Cfg) {
    let runs = cfg.pick(11, 7);
    let rt = runtime();

    for (workload, limit) in [
        ("group.go_wait_10k", None),
        ("group.go_wait_limit2_10k", Some(2)),
    ] {
        if !cfg.want(&[workload]) {
            continue;
        }
        // Without a limit `spawn` never waits (the same as `spawn_queued`); with one, the rows
        // named `ctxkit/async` and `ctxkit/thread` measure `spawn_queued` (what they always
        // measured), the `-wait` rows the waiting `spawn`.
        let forms: &[(Spawn, &str, &str)] = match limit {
            None => &[(Spawn::Waits, "ctxkit/async", "ctxkit/thread")],
            Some(_) => &[
                (Spawn::Queued, "ctxkit/async", "ctxkit/thread"),
                (Spawn::Waits, "ctxkit/async-wait", "ctxkit/thread-wait"),
            ],
        };
        for &(how, async_impl, thread_impl) in forms {
            progress(&format!("{workload} ({async_impl})"));
            // All runs inside one task (not `batches` around `on_worker`): a fresh task and
            // block_on per run made the limit-2 figure swing between 70 and 220 ns/task.
            let samples = on_worker(&rt, async move {
                let parent = Context::background();
                after_warm_up(runs, || async_go_wait(&parent, TASKS, limit, how)).await
            });
            let note = match (limit, how) {
                (None, _) => "spawn(|_ctx| async { Ok(()) }).await; no limit: each task is handed to a free worker task of the group or a new one (a worker task is started only when none is free)",
                (Some(_), Spawn::Queued) => "spawn_queued(|_ctx| async { Ok(()) }); set_limit(2): never waits, it queues; at most 2 worker tasks run the queue (no start per task)",
                (Some(_), Spawn::Waits) => "spawn(|_ctx| async { Ok(()) }).await; set_limit(2): waits while 2 tasks run (as Go's Go blocks), so at most 2 are held; the driver is woken by the worker that frees a slot",
            };
            emit(
                workload,
                async_impl,
                "ns_per_task",
                Some(stats(&samples)),
                &format!(
                    "one Group::with_context(parent) per batch, 10,000 tasks (capturing nothing, as Go's; each gets a clone of the context), wait() returns the 10,000 results in order; {note}; driver is a task on a 2-worker multi-thread runtime"
                ),
            );

            progress(&format!("{workload} ({thread_impl})"));
            let thread_runs = match limit {
                None => cfg.pick(5, 2),
                Some(_) => runs,
            };
            let samples = batches(thread_runs, || {
                thread_go_wait(&Context::background(), TASKS, limit, how)
            });
            let note = match (limit, how) {
                (None, _) => "s.spawn; no limit: every task starts at once, on an idle thread of the scope or a new OS thread",
                (Some(_), Spawn::Queued) => "s.spawn_queued; set_limit(2): never blocks; 2 worker threads run the queue",
                (Some(_), Spawn::Waits) => "s.spawn; set_limit(2): blocks while 2 tasks run (as Go's Go), woken by the worker thread that frees a slot",
            };
            emit(
                workload,
                thread_impl,
                "ns_per_task",
                Some(stats(&samples)),
                &format!("group::scope(parent), 10,000 tasks |_ctx| Ok(()) (each gets a clone of the context), results in order; {note}"),
            );
        }
    }

    if cfg.want(&["group.first_error_cancel"]) {
        progress("group.first_error_cancel");
        let trials = cfg.pick(21, 7);
        let samples = on_worker(&rt, async move {
            after_warm_up(trials, first_error_trial).await
        });
        emit(
            "group.first_error_cancel",
            "ctxkit/async",
            "us",
            Some(stats(&samples)),
            "1,000 tasks await ctx.done() + 1 failing task (all parked, then 2 ms); from just before the Err return until wait() has returned it (the cancel wakes the 1,000, each records its outcome, the last wakes wait); one trial per run",
        );
    }
}
