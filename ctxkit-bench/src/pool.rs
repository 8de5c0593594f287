//! `pool.*` workloads: the chapter's worker pool. N workers (2 or 3) square the integers
//! 0..1,000,000 and the consumer sums the results. Measured as the Go runner (`bench/go`) and
//! the peers (`--peers`, `peers/pool.rs`) measure their pools: one warm-up pool of n/10 jobs,
//! then 7 timed pools of n jobs (3 with `--quick`), each a fresh pool (thread spawns and joins
//! included), each sum checked; the figure is a run's elapsed time divided by n.

use std::hint::black_box;
use std::time::Instant;

use ctxkit::pool::Pool;
use ctxkit::Context;

use crate::harness::{emit, progress, stats, Cfg};

/// Jobs per timed run, as the Go runner's pools (the workload's name says 1m).
pub(crate) const JOBS: u64 = 1_000_000;

/// Sum of i*i for i in 0..n (the input every implementation sends).
fn expected_sum(n: u64) -> u64 {
    (n - 1) * n * (2 * n - 1) / 6
}

/// A warm-up of n/10 jobs, then `runs` timed pools of n jobs; ns per job of each run. `f(n)`
/// runs one whole pool over 0..n and returns the sum, checked here.
pub(crate) fn pool_batches(runs: usize, n: u64, f: impl Fn(u64) -> u64) -> Vec<f64> {
    assert_eq!(f(n / 10), expected_sum(n / 10), "warm-up sum");
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            let sum = f(n);
            let ns = start.elapsed().as_nanos() as f64 / n as f64;
            assert_eq!(sum, expected_sum(n), "pool sum");
            ns
        })
        .collect()
}

/// One thread-form map over 0..n on a fresh pool of `workers`, summed on this thread. The map
/// is consumed, so its drop (which joins the workers) is part of the call.
pub(crate) fn thread_map(n: u64, workers: usize, ordered: bool) -> u64 {
    let ctx = Context::background();
    let pool = Pool::new(workers);
    let input = 0..black_box(n);
    let square = |_ctx: &Context, x: u64| x * x;
    let results = if ordered {
        pool.map_ordered(&ctx, input, square)
    } else {
        pool.map(&ctx, input, square)
    };
    results.fold(0u64, |sum, result| {
        sum.wrapping_add(result.expect("squaring never panics"))
    })
}

/// One async map over 0..n on a fresh pool of `workers` worker tasks, summed by the calling
/// task.
async fn async_map(n: u64, workers: usize) -> u64 {
    let ctx = Context::background();
    let input = futures::stream::iter(0..black_box(n));
    let mut results =
        Pool::new(workers).map_stream(&ctx, input, |_ctx, x: u64| async move { x * x });
    let mut sum = 0u64;
    while let Some(result) = results.next().await {
        sum = sum.wrapping_add(result.expect("squaring never panics"));
    }
    sum
}

/// `async_map(n, workers)` as a task on `runtime`, waited for by this thread; its sum.
pub(crate) fn async_map_on(runtime: &tokio::runtime::Runtime, n: u64, workers: usize) -> u64 {
    runtime
        .block_on(runtime.spawn(async_map(n, workers)))
        .expect("the bench task panicked")
}

/// Runs the selected `pool.*` workloads.
pub(crate) fn run(cfg: &Cfg) {
    let runs = cfg.pick(7, 3);
    for (workload, workers) in [("pool.squares_1m_w2", 2usize), ("pool.squares_1m_w3", 3)] {
        if !cfg.want(&[workload]) {
            continue;
        }
        for (implementation, ordered, order_note) in [
            ("ctxkit/thread", false, "results in completion order"),
            (
                "ctxkit/thread-ordered",
                true,
                "results in input order (a result waits in a reordering window until those before it are delivered; the in-flight bound counts it)",
            ),
        ] {
            progress(&format!("{workload} ({implementation})"));
            let samples = pool_batches(runs, JOBS, |n| thread_map(n, workers, ordered));
            let call = if ordered { "map_ordered" } else { "map" };
            emit(
                workload,
                implementation,
                "ns_per_job",
                Some(stats(&samples)),
                &format!(
                    "Pool::new({workers}).{call}(&ctx, 0..n, |_, x| x*x) (default queue bound 1024), a fresh pool per run: jobs pulled lazily by the consumer (this thread), handed to the workers and back in adaptive batches; {order_note}; the consumer sums with wrapping_add, sum checked; thread spawns and joins included"
                ),
            );
        }

        progress(&format!("{workload} (ctxkit/async)"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("a tokio runtime");
        let samples = pool_batches(runs, JOBS, |n| async_map_on(&runtime, n, workers));
        emit(
            workload,
            "ctxkit/async",
            "ns_per_job",
            Some(stats(&samples)),
            &format!(
                "Pool::new({workers}).map_stream(&ctx, stream::iter(0..n), |_, x| async move {{ x*x }}) (default queue bound 1024), a fresh pool per run on a 2-worker tokio runtime (built once): the consumer is a task on the runtime summing the stream with wrapping_add; {workers} worker tasks; results in completion order; sum checked"
            ),
        );
    }
}
