//! `group.*` on the peers: tokio's `JoinSet`, with a `Semaphore` for the limit and a
//! `CancellationToken` (tokio-util) for first-error cancellation: what a Rust user stitches
//! together today for Go's errgroup.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::peer;
use crate::group::{on_worker, BLOCKERS, TASKS};
use crate::harness::{after_warm_up, emit, progress, runtime, stats, Cfg};

/// One JoinSet of `tasks` empty tasks (each holding a permit of a `limit` semaphore, acquired
/// before the spawn, so the spawning loop waits as Go's `Go` does under `SetLimit`), joined to
/// the end; ns per task.
pub(crate) async fn join_set(tasks: usize, limit: Option<usize>) -> f64 {
    let start = Instant::now();
    let permits = limit.map(|limit| Arc::new(Semaphore::new(limit)));
    let mut set = JoinSet::new();
    for _ in 0..tasks {
        let permit = match &permits {
            Some(permits) => Some(permits.clone().acquire_owned().await.expect("never closed")),
            None => None,
        };
        set.spawn(async move {
            drop(permit);
            Ok::<(), ()>(())
        });
    }
    let mut results = Vec::with_capacity(tasks);
    while let Some(result) = set.join_next().await {
        results.push(result.expect("no task panics"));
    }
    black_box(results);
    start.elapsed().as_nanos() as f64 / tasks as f64
}

/// `BLOCKERS` tasks wait on a token; one more returns an error once triggered; the driver
/// cancels the token at the first error and joins the rest (errgroup's `Wait`). Microseconds
/// from just before that return until every task is joined.
async fn first_error_trial() -> f64 {
    let token = CancellationToken::new();
    let started = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..BLOCKERS {
        let (token, started) = (token.clone(), started.clone());
        set.spawn(async move {
            let cancelled = token.cancelled();
            started.fetch_add(1, Ordering::Release);
            cancelled.await;
            Err::<(), Option<Instant>>(None)
        });
    }
    let (trigger, fire) = tokio::sync::oneshot::channel::<()>();
    set.spawn(async move {
        let _ = fire.await;
        Err(Some(Instant::now()))
    });
    while started.load(Ordering::Acquire) < BLOCKERS {
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(2)).await; // let every blocker park
    trigger.send(()).expect("the failing task is alive");
    let mut first = None;
    while let Some(result) = set.join_next().await {
        if let Err(Some(t0)) = result.expect("no task panics") {
            first.get_or_insert(t0);
            token.cancel();
        }
    }
    let t1 = Instant::now();
    let t0 = first.expect("one task failed");
    t1.duration_since(t0).as_secs_f64() * 1e6
}

/// Runs the selected `group.*` workloads on the peers.
pub(crate) fn run(cfg: &Cfg) {
    let runs = cfg.pick(11, 7);
    let rt = runtime();
    let join_set_impl = peer!("tokio", "PEER_VERSION_TOKIO");
    for (workload, limit) in [
        ("group.go_wait_10k", None),
        ("group.go_wait_limit2_10k", Some(2)),
    ] {
        if !cfg.want(&[workload]) {
            continue;
        }
        let implementation = match limit {
            None => format!("{join_set_impl}/JoinSet"),
            Some(_) => format!("{join_set_impl}/JoinSet+Semaphore"),
        };
        progress(&format!("{workload} ({implementation})"));
        let samples = on_worker(&rt, async move {
            after_warm_up(runs, || join_set(TASKS, limit)).await
        });
        let note = match limit {
            None => "JoinSet::spawn of 10,000 tasks returning Ok(()), then join_next() to the end (results in completion order)",
            Some(_) => "the same, each task holding a permit of Semaphore::new(2) acquired (awaited) before its spawn, so at most 2 are held, as Go's Go under SetLimit(2)",
        };
        emit(
            workload,
            &implementation,
            "ns_per_task",
            Some(stats(&samples)),
            &format!("{note}; one JoinSet per batch; driver is a task on a 2-worker multi-thread runtime"),
        );
    }
    if cfg.want(&["group.first_error_cancel"]) {
        let implementation = format!(
            "{join_set_impl}/JoinSet+{}",
            peer!("tokio-util", "PEER_VERSION_TOKIO_UTIL")
        );
        progress(&format!("group.first_error_cancel ({implementation})"));
        let trials = cfg.pick(21, 7);
        let samples = on_worker(&rt, async move {
            after_warm_up(trials, first_error_trial).await
        });
        emit(
            "group.first_error_cancel",
            &implementation,
            "us",
            Some(stats(&samples)),
            "1,000 JoinSet tasks await a CancellationToken's cancelled() + 1 failing task (all parked, then 2 ms); from just before the Err return until the driver has joined every task (it cancels the token at the first error, as errgroup); one trial per run",
        );
    }
}
