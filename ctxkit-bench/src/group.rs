//! `group.*` workloads (issue 3), measured as the anchors measure them
//! (`shared/anchors/go/main.go` `benchGroupGoWait`/`firstErrorTrial`,
//! `shared/anchors/rust-peers/src/main.rs` `bench_group`): one group per batch, a 2-worker
//! multi-thread runtime with the driver a task on it, results discarded.

use std::fmt;
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctxkit::{group, Context, Error, Group};

use crate::harness::{batches, emit, progress, runtime, stats, Cfg};

const TASKS: usize = 10_000;
const BLOCKERS: usize = 1_000;

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
fn on_worker<F>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(rt.spawn(fut)).expect("bench task panicked")
}

/// One async group of `TASKS` tasks that succeed at once; ns per task.
async fn async_go_wait(parent: &Context, limit: Option<usize>) -> f64 {
    let start = Instant::now();
    let (mut g, _ctx) = Group::<(), BenchError>::with_context(parent);
    if let Some(limit) = limit {
        g.set_limit(limit);
    }
    for _ in 0..TASKS {
        g.spawn(|_ctx| async { Ok(()) });
    }
    let results = g.wait().await.expect("no task fails");
    black_box(results);
    start.elapsed().as_nanos() as f64 / TASKS as f64
}

/// One scoped-thread group of `TASKS` tasks that succeed at once; ns per task.
fn thread_go_wait(parent: &Context, limit: Option<usize>) -> f64 {
    let start = Instant::now();
    let results = group::scope(parent, |s| {
        if let Some(limit) = limit {
            s.set_limit(limit);
        }
        for _ in 0..TASKS {
            s.spawn(|_ctx| Ok::<(), BenchError>(()));
        }
    })
    .expect("no task fails");
    black_box(results);
    start.elapsed().as_nanos() as f64 / TASKS as f64
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
        });
    }
    let (trigger, fire) = tokio::sync::oneshot::channel::<()>();
    g.spawn(move |_ctx| async move {
        let _ = fire.await;
        Err(BenchError::Boom(Instant::now()))
    });
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
        progress(workload);
        // All runs inside one task (not `batches` around `on_worker`): a fresh task and
        // block_on per run made the limit-2 figure swing between 70 and 220 ns/task.
        let samples = on_worker(&rt, async move {
            let parent = Context::background();
            let mut out = Vec::new();
            for i in 0..=runs {
                let x = async_go_wait(&parent, limit).await;
                if i > 0 {
                    out.push(x);
                }
            }
            out
        });
        let how = match limit {
            None => "no limit: each task is handed to a free worker task of the group or a new one (tokio::spawn only when none is free)",
            Some(_) => "set_limit(2): spawn never blocks, it queues; at most 2 worker tasks run the queue (no spawn per task)",
        };
        emit(
            workload,
            "ctxkit/async",
            "ns_per_task",
            Some(stats(&samples)),
            &format!(
                "one Group::with_context(parent) per batch, 10,000 spawn(|_ctx| async {{ Ok(()) }}) (tasks capture nothing, as Go's; each gets a clone of the context), wait() returns the 10,000 results in order; {how}; driver is a task on a 2-worker multi-thread runtime"
            ),
        );

        progress(&format!("{workload} (scoped threads)"));
        let thread_runs = match limit {
            None => cfg.pick(5, 2),
            Some(_) => runs,
        };
        let samples = batches(thread_runs, || {
            thread_go_wait(&Context::background(), limit)
        });
        let how = match limit {
            None => "no limit: one OS thread per task, as each Go gets a goroutine",
            Some(_) => "set_limit(2): 2 worker threads run the queue",
        };
        emit(
            workload,
            "ctxkit/thread",
            "ns_per_task",
            Some(stats(&samples)),
            &format!("group::scope(parent), 10,000 s.spawn(|_ctx| Ok(())) (each gets a clone of the context), results in order; {how}"),
        );
    }

    if cfg.want(&["group.first_error_cancel"]) {
        progress("group.first_error_cancel");
        let trials = cfg.pick(21, 7);
        let samples = on_worker(&rt, async move {
            let mut out = Vec::new();
            for i in 0..=trials {
                let x = first_error_trial().await;
                if i > 0 {
                    out.push(x);
                }
            }
            out
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
