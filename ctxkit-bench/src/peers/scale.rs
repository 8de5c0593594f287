//! `--scale --peers`: the scale series (`scale.rs`) on the Rust peers: tokio-util's
//! `CancellationToken` (`cancel_fanout`), the crossbeam-channel pool (`pool_workers`), tokio's
//! `JoinSet` (`group_tasks`; `group_bytes` with the tasks parked on a `CancellationToken`),
//! governor with its default clock and with std's `Instant` (`limiter_threads`), tokio's
//! `time::timeout` (`timeout_awaited`, `deadline_bytes`), and the same request stitched from a
//! tokio-util child token and tokio's `timeout`.
//! `value_depth` has no Rust peer (tokio's task-locals are one slot per key, not a chain): no
//! line.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock, MonotonicClock, ReasonablyRealtime};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::ctx::{
    cancel_flat, stitched_request, tokio_request, CANCEL_FLAT_NOTE, STITCHED, STITCHED_REQUEST,
    TOKEN, TOKIO, TOKIO_REQUEST,
};
use super::group::join_set;
use super::peer;
use super::pool::crossbeam_pool;
use super::rate::{big, implementation};
use crate::ctx::{awaited_run, awaited_timeout};
use crate::group::on_worker;
use crate::harness::{after_warm_up, emit_n, progress, runtime, stats, Cfg, HeapCount};
use crate::pool::pool_batches;
use crate::scale::{
    cancel_fanout_series, deadline_bytes_series, group_bytes_series, heap_settled,
    limiter_threads_series, per_task, poll_once, pool_jobs, pool_runs, sizes,
    timeout_awaited_series, until_released, until_started, BYTES_JOIN_SET, BYTES_NOTE,
    DEADLINE_STITCHED, DEADLINE_TOKIO, GROUP_TASKS, POOL_WORKERS, WORKERS,
};

const JOIN_SET: &str = concat!(peer!("tokio", "PEER_VERSION_TOKIO"), "/JoinSet");

/// Runs the selected scale series on the peers.
pub(crate) fn run(cfg: &Cfg) {
    cancel_fanout(cfg);
    pool_workers(cfg);
    group_tasks(cfg);
    group_bytes(cfg);
    limiter_threads::<DefaultClock>(
        cfg,
        "",
        "its default clock: quanta's TSC clock, no system call per read",
    );
    limiter_threads::<MonotonicClock>(
        cfg,
        "std-instant",
        "MonotonicClock: std's Instant, as ctxkit",
    );
    timeout_awaited_series(cfg, TOKIO, TOKIO_REQUEST, |n| {
        awaited_run(n, move |rx| tokio_request(awaited_timeout(n), rx))
    });
    deadline_bytes_series(cfg, DEADLINE_TOKIO, TOKIO, TOKIO_REQUEST);
    let root = CancellationToken::new();
    timeout_awaited_series(cfg, STITCHED, STITCHED_REQUEST, move |n| {
        let root = root.clone();
        async move {
            awaited_run(n, move |rx| {
                stitched_request(root.clone(), awaited_timeout(n), rx)
            })
            .await
        }
    });
    deadline_bytes_series(cfg, DEADLINE_STITCHED, STITCHED, STITCHED_REQUEST);
}

fn cancel_fanout(cfg: &Cfg) {
    cancel_fanout_series(
        cfg,
        TOKEN,
        cancel_flat,
        "child_token()s of a fresh root token",
        CANCEL_FLAT_NOTE,
    );
}

fn pool_workers(cfg: &Cfg) {
    if !cfg.want(&[POOL_WORKERS]) {
        return;
    }
    let (runs, jobs) = (pool_runs(cfg), pool_jobs(cfg));
    let implementation = concat!(
        peer!("crossbeam-channel", "PEER_VERSION_CROSSBEAM_CHANNEL"),
        "-buffered"
    );
    for workers in WORKERS {
        progress(&format!("{POOL_WORKERS} n={workers} ({implementation})"));
        let samples = pool_batches(runs, jobs, |n| crossbeam_pool(n, workers, 1024));
        emit_n(
            POOL_WORKERS,
            implementation,
            workers,
            "ns_per_job",
            Some(stats(&samples)),
            &format!("as pool.squares_1m_*: the chapter's pool with OS threads: producer thread -> bounded(1024) jobs channel -> n = {workers} worker threads -> bounded(1024) results channel -> this thread sums, {jobs} jobs, a fresh pool per run (a warm-up of {} jobs first), sum checked; thread spawns included; / jobs", jobs / 10),
        );
    }
}

fn group_tasks(cfg: &Cfg) {
    if !cfg.want(&[GROUP_TASKS]) {
        return;
    }
    let rt = runtime();
    for n in sizes(cfg, 10_000) {
        let runs = cfg.scale_runs(n);
        progress(&format!("{GROUP_TASKS} n={n} ({JOIN_SET})"));
        let samples = on_worker(&rt, async move {
            after_warm_up(runs, || join_set(n, None)).await
        });
        emit_n(
            GROUP_TASKS,
            JOIN_SET,
            n,
            "ns_per_task",
            Some(stats(&samples)),
            &format!("as group.go_wait_10k: JoinSet::spawn of {n} tasks returning Ok(()), then join_next() to the end (results in completion order); one JoinSet per batch; driver is a task on a 2-worker multi-thread runtime; a warm-up batch, then {runs} batches; / n"),
        );
    }
}

/// One JoinSet of `n` tasks parked on a `CancellationToken` (the group's context): live heap
/// bytes and allocations per task once all have started and registered their waker; then the
/// token is canceled and every task joined (not counted).
pub(crate) async fn join_set_bytes(counting: &HeapCount, n: usize) -> (f64, f64) {
    let started = Arc::new(AtomicUsize::new(0));
    let token = CancellationToken::new();
    heap_settled(counting).await;
    let before = counting.now();
    let mut set = JoinSet::new();
    for _ in 0..n {
        let (token, started) = (token.clone(), started.clone());
        set.spawn(async move {
            let mut cancelled = std::pin::pin!(token.cancelled());
            let ready = poll_once(&mut cancelled).await; // the waker is registered: parked
            started.fetch_add(1, Ordering::Release);
            if !ready {
                cancelled.await;
            }
            Ok::<(), ()>(())
        });
    }
    until_started(&started, n).await;
    let after = counting.now();
    token.cancel();
    let mut joined = 0;
    while let Some(result) = set.join_next().await {
        result
            .expect("no task panics")
            .expect("every task returns Ok");
        joined += 1;
    }
    assert_eq!(joined, n);
    drop(set);
    until_released(&started).await;
    per_task(before, after, n)
}

fn group_bytes(cfg: &Cfg) {
    let implementation = format!(
        "{JOIN_SET}+{}",
        peer!("tokio-util", "PEER_VERSION_TOKIO_UTIL")
    );
    group_bytes_series(cfg, BYTES_JOIN_SET, &implementation, |n, allocations| {
        format!("one JoinSet of {n} tasks, each holding a clone of one CancellationToken (the group's context), its cancelled() polled once, then an atomic counter bumped, then awaited; driver a task on a 2-worker runtime; once the counter reads {n} (all parked): live heap bytes requested since just before the JoinSet (counting GlobalAlloc, every thread: tokio task cells, JoinSet entries; the token's waiter nodes live inside the futures; malloc overhead not included) / n, {allocations:.2} allocations/task; then token.cancel() and join_next() to the end (not counted). {BYTES_NOTE}")
    });
}

fn limiter_threads<C>(cfg: &Cfg, clock: &str, clock_note: &str)
where
    C: Clock + ReasonablyRealtime + Default + Send + Sync + 'static,
{
    limiter_threads_series(
        cfg,
        &implementation(clock),
        big::<C>,
        |limiter| limiter.check().is_ok(),
        &format!("governor RateLimiter::direct_with_clock(Quota::per_second(1e9), {clock_note}) (burst 1e9)"),
        "check()",
    );
}
