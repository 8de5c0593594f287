//! `--scale`: the scale series, printed instead of the regular workloads. Each `scale.*`
//! workload is one of the regular ones measured over a range of sizes `n` (the line's `n`
//! field, right after `impl`), so a chart can show how a cost grows:
//!
//! | workload | n | figure |
//! |---|---|---|
//! | `scale.cancel_fanout` | 1,000 to 1,000,000 children (quick: to 100,000) | ns per child, as `ctx.cancel_flat_100k` |
//! | `scale.value_depth` | 1, 2, 4, ..., 1024 value layers | ns per lookup, as `ctx.value_d*` |
//! | `scale.pool_workers` | 1 to 8 workers | ns per job, as `pool.squares_1m_*` |
//! | `scale.group_tasks` | 10,000 to 1,000,000 tasks (quick: to 100,000) | ns per task, as `group.go_wait_10k` |
//! | `scale.group_bytes` | 10,000 to 1,000,000 parked tasks (quick: to 100,000) | live heap bytes per task, each run in a fresh child process |
//! | `scale.limiter_threads` | 1 to 4 threads | Mops/s of `allow()` on one shared limiter |
//! | `scale.timeout_awaited` | 10,000 to 1,000,000 tasks (quick: to 100,000) | ns per request, as `ctx.timeout_awaited_100k` |
//! | `scale.deadline_bytes` | 100,000 and 1,000,000 parked requests (quick: 100,000) | live heap bytes per armed deadline (a request parked with its deadline minus a bare one), each run in a fresh child process |
//!
//! Runs (batches; the value is their median): 7 up to n = 100,000, 3 at 1,000,000; pools and
//! limiters 5; `group_bytes` and `deadline_bytes` 3; all 3 with `--quick`. With `--peers` the Rust peers' forms
//! follow (`peers/scale.rs`).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use ctxkit::{Context, Error, Group};

use crate::ctx::{
    awaited_batches, awaited_bytes, awaited_note, awaited_run, awaited_timeout, bare_request,
    cancel_flat, ctxkit_request, value_lookup, value_note, AwaitedFigures, CANCEL_FLAT_NOTE,
    CTXKIT_REQUEST, MAX_VALUE_DEPTH,
};
use crate::group::{async_go_wait, on_worker, thread_go_wait, Spawn};
use crate::harness::{
    after_warm_up, batches, contended, emit_n, progress, runtime, stats, Cfg, HeapCount, OthersLoad,
};
use crate::peers::ctx::{stitched_request, tokio_request};
use crate::peers::scale::join_set_bytes;
use crate::pool::{async_map_on, pool_batches, thread_map};
use crate::rate::big_limiter;

pub(crate) const CANCEL_FANOUT: &str = "scale.cancel_fanout";
pub(crate) const VALUE_DEPTH: &str = "scale.value_depth";
pub(crate) const POOL_WORKERS: &str = "scale.pool_workers";
pub(crate) const GROUP_TASKS: &str = "scale.group_tasks";
pub(crate) const GROUP_BYTES: &str = "scale.group_bytes";
pub(crate) const LIMITER_THREADS: &str = "scale.limiter_threads";
pub(crate) const TIMEOUT_AWAITED: &str = "scale.timeout_awaited";
pub(crate) const DEADLINE_BYTES: &str = "scale.deadline_bytes";

/// The sizes of the tree and group series: 10,000 (1,000 for the fan-out) to 1,000,000; with
/// `--quick`, to 100,000.
pub(crate) fn sizes(cfg: &Cfg, from: usize) -> Vec<usize> {
    [1_000, 10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|&n| n >= from && (!cfg.quick || n <= 100_000))
        .collect()
}

/// Jobs per pool run: 1,000,000, as `pool.squares_1m_*` (200,000 with `--quick`).
pub(crate) fn pool_jobs(cfg: &Cfg) -> u64 {
    cfg.pick(crate::pool::JOBS, 200_000)
}

/// Pool workers: 1 to 8.
pub(crate) const WORKERS: std::ops::RangeInclusive<usize> = 1..=8;

/// Limiter threads: 1 to 4.
const THREADS: std::ops::RangeInclusive<usize> = 1..=4;

/// Runs of a pool or limiter point: 5 (3 with `--quick`).
pub(crate) fn pool_runs(cfg: &Cfg) -> usize {
    cfg.pick(5, 3)
}

/// Runs of a `group_bytes` point: 3.
pub(crate) const BYTES_RUNS: usize = 3;

/// Length of one limiter batch: 0.5 s (0.1 s with `--quick`).
fn limiter_batch(cfg: &Cfg) -> Duration {
    Duration::from_millis(cfg.pick(500, 100))
}

/// `runs` limiter batches of `threads` threads calling `op` for `length` each (after one
/// warm-up of a tenth of it); Mops/s in total over the threads, per batch.
fn limiter_batches(
    threads: usize,
    runs: usize,
    length: Duration,
    op: impl Fn() + Sync,
) -> Vec<f64> {
    contended(threads, length / 10, &op);
    (0..runs)
        .map(|_| {
            let (ops, seconds) = contended(threads, length, &op);
            ops as f64 / seconds / 1e6
        })
        .collect()
}

/// Polls `future` once with the task's own waker (registering it); whether it was ready.
pub(crate) async fn poll_once<F: Future + Unpin>(future: &mut F) -> bool {
    poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx).is_ready())).await
}

/// Waits, as a task, until `started` reaches `n`, then until every task is parked.
pub(crate) async fn until_started(started: &AtomicUsize, n: usize) {
    while started.load(Ordering::Acquire) < n {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Waits, as a task, until every task of a finished run has dropped its clone of `started`
/// (their futures are gone).
pub(crate) async fn until_released(started: &Arc<AtomicUsize>) {
    while Arc::strong_count(started) > 1 {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Waits, as a task, until the live heap bytes `counting` sees have not changed for 5 ms (at
/// most 2 s): what the warm-up frees late (tokio task cells let go by a worker thread) must not
/// land in the count.
pub(crate) async fn heap_settled(counting: &HeapCount) {
    let (mut last, mut steady) = (counting.now().0, 0);
    for _ in 0..2000 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let now = counting.now().0;
        if now == last {
            steady += 1;
            if steady == 5 {
                return;
            }
        } else {
            (last, steady) = (now, 0);
        }
    }
}

/// Live heap bytes and allocations per task between two marks of a `HeapCount`.
pub(crate) fn per_task(before: (isize, isize), after: (isize, isize), n: usize) -> (f64, f64) {
    (
        (after.0 - before.0) as f64 / n as f64,
        (after.1 - before.1) as f64 / n as f64,
    )
}

/// The `group_bytes` form of ctxkit, as `--scale-bytes-run` names it.
const BYTES_CTXKIT: &str = "ctxkit/async";
/// The `group_bytes` form of the peers (tokio's `JoinSet`), as `--scale-bytes-run` names it.
pub(crate) const BYTES_JOIN_SET: &str = "joinset";
/// The `deadline_bytes` form of ctxkit (`ctx.run` under a `with_timeout` child).
const DEADLINE_CTXKIT: &str = "deadline/ctxkit";
/// The `deadline_bytes` form of tokio (`tokio::time::timeout`).
pub(crate) const DEADLINE_TOKIO: &str = "deadline/tokio";
/// The `deadline_bytes` form stitched from tokio-util and tokio (a child token, `timeout`).
pub(crate) const DEADLINE_STITCHED: &str = "deadline/stitched";
/// The bare request (the oneshot alone) every `deadline_bytes` form is measured against.
const DEADLINE_BARE: &str = "deadline/bare";
/// Tasks of the warm-up group of a `group_bytes` run.
pub(crate) const BYTES_WARM_UP: usize = 100;

/// `--scale-bytes-run FORM N`: one `group_bytes` run of `form` in this fresh process (a
/// warm-up group of `BYTES_WARM_UP` tasks, then one of `n`, heap counting on throughout);
/// prints "bytes_per_task allocations_per_task" on stdout.
fn bytes_run(form: &str, n: usize) {
    let rt = runtime();
    let form = form.to_owned();
    let (bytes, allocations) = on_worker(&rt, async move {
        let counting = HeapCount::start();
        let figures = match form.as_str() {
            BYTES_CTXKIT => {
                async_group_bytes(&counting, BYTES_WARM_UP).await;
                async_group_bytes(&counting, n).await
            }
            BYTES_JOIN_SET => {
                join_set_bytes(&counting, BYTES_WARM_UP).await;
                join_set_bytes(&counting, n).await
            }
            DEADLINE_CTXKIT => {
                let root = Context::background().with_cancel();
                let timeout = awaited_timeout(n);
                let request = |rx| ctxkit_request(root.context().clone(), timeout, rx);
                awaited_bytes(&counting, BYTES_WARM_UP, request).await;
                awaited_bytes(&counting, n, request).await
            }
            DEADLINE_TOKIO => {
                let request = |rx| tokio_request(awaited_timeout(n), rx);
                awaited_bytes(&counting, BYTES_WARM_UP, request).await;
                awaited_bytes(&counting, n, request).await
            }
            DEADLINE_STITCHED => {
                let root = tokio_util::sync::CancellationToken::new();
                let timeout = awaited_timeout(n);
                let request = |rx| stitched_request(root.clone(), timeout, rx);
                awaited_bytes(&counting, BYTES_WARM_UP, request).await;
                awaited_bytes(&counting, n, request).await
            }
            DEADLINE_BARE => {
                awaited_bytes(&counting, BYTES_WARM_UP, bare_request).await;
                awaited_bytes(&counting, n, bare_request).await
            }
            other => panic!("--scale-bytes-run: no form {other:?}"),
        };
        counting.stop();
        figures
    });
    println!("{bytes} {allocations}");
}

/// `BYTES_RUNS` runs of `group_bytes` on `form` at `n`, each in a fresh child process of this
/// runner (`--scale-bytes-run`), so that each counts what a process that has not held `n`
/// tasks before pays for them (what it keeps for reuse afterwards included: ctxkit's registry
/// of running units, say), and no run sees an earlier run's late frees. (bytes, allocations)
/// per task of each run.
fn bytes_in_children(cfg: &Cfg, form: &str, n: usize) -> Vec<(f64, f64)> {
    let exe = std::env::current_exe().expect("the runner's own path");
    (0..BYTES_RUNS)
        .map(|_| {
            let mut child = Command::new(&exe);
            child.args(["--scale-bytes-run", form, &n.to_string()]);
            if cfg.in_leak_scope {
                child.arg("--in-leak-scope");
            }
            let output = child.output().expect("the runner starts itself");
            assert!(
                output.status.success(),
                "--scale-bytes-run {form} {n}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let text = String::from_utf8(output.stdout).expect("UTF-8");
            let mut figures = text
                .split_whitespace()
                .map(|f| f.parse::<f64>().expect("a figure"));
            let bytes = figures.next().expect("bytes per task");
            let allocations = figures.next().expect("allocations per task");
            (bytes, allocations)
        })
        .collect()
}

/// The `scale.cancel_fanout` series of `implementation`, if selected: per n, a warm-up batch,
/// then one fresh tree per batch, timed by `cancel_flat(n, true)` (its waited form); ns per
/// child. `children` names the tree's n children in the note, `flat_note` is `cancel_flat`'s
/// note.
pub(crate) fn cancel_fanout_series(
    cfg: &Cfg,
    implementation: &str,
    cancel_flat: fn(usize, bool) -> Duration,
    children: &str,
    flat_note: &str,
) {
    if !cfg.want(&[CANCEL_FANOUT]) {
        return;
    }
    for n in sizes(cfg, 1_000) {
        progress(&format!("{CANCEL_FANOUT} n={n} ({implementation})"));
        let samples = batches(cfg.scale_runs(n), || {
            cancel_flat(n, true).as_nanos() as f64 / n as f64
        });
        emit_n(
            CANCEL_FANOUT,
            implementation,
            n,
            "ns_per_child",
            Some(stats(&samples)),
            &format!("as ctx.cancel_flat_100k with {n} {children}: {flat_note}; / n; a warm-up batch, then one fresh tree per batch"),
        );
    }
}

/// The `scale.group_bytes` series of the `--scale-bytes-run` form `form`, if selected, printed
/// as `implementation`: per n, `BYTES_RUNS` runs in child processes (`bytes_in_children`);
/// `note(n, allocations per task)` is the line's note.
pub(crate) fn group_bytes_series(
    cfg: &Cfg,
    form: &str,
    implementation: &str,
    note: impl Fn(usize, f64) -> String,
) {
    if !cfg.want(&[GROUP_BYTES]) {
        return;
    }
    for n in sizes(cfg, 10_000) {
        progress(&format!("{GROUP_BYTES} n={n} ({implementation})"));
        let figures = bytes_in_children(cfg, form, n);
        let bytes: Vec<f64> = figures.iter().map(|f| f.0).collect();
        let allocations = stats(&figures.iter().map(|f| f.1).collect::<Vec<_>>()).value;
        emit_n(
            GROUP_BYTES,
            implementation,
            n,
            "bytes_per_task",
            Some(stats(&bytes)),
            &note(n, allocations),
        );
    }
}

/// The `scale.limiter_threads` series of `implementation`, if selected: per thread count, one
/// fresh limiter `new()` shared by the threads, each calling `allow` on it (which must say
/// yes); `limiter` and `call` name the limiter and the call in the note.
pub(crate) fn limiter_threads_series<L: Sync>(
    cfg: &Cfg,
    implementation: &str,
    new: impl Fn() -> L,
    allow: impl Fn(&L) -> bool + Sync,
    limiter: &str,
    call: &str,
) {
    if !cfg.want(&[LIMITER_THREADS]) {
        return;
    }
    let length = limiter_batch(cfg);
    for threads in THREADS {
        progress(&format!("{LIMITER_THREADS} n={threads} ({implementation})"));
        let shared = new();
        let samples = limiter_batches(threads, pool_runs(cfg), length, || {
            assert!(allow(&shared), "the limiter always has tokens")
        });
        emit_n(
            LIMITER_THREADS,
            implementation,
            threads,
            "mops_per_s",
            Some(stats(&samples)),
            &format!("as rate.allow_contended_2 with n threads: one {limiter} shared by n = {threads} threads calling {call}, {} ms per batch (after one of a tenth); total allows over all threads / wall time", length.as_millis()),
        );
    }
}

/// The `scale.timeout_awaited` series of `implementation`, if selected: per n, the batches of
/// `ctx.timeout_awaited_100k` with n tasks, `with(n)` one run of the form; `how` its request.
pub(crate) fn timeout_awaited_series<W, F>(cfg: &Cfg, implementation: &str, how: &str, with: W)
where
    W: Fn(usize) -> F + Clone + Send + 'static,
    F: Future<Output = f64> + Send,
{
    if !cfg.want(&[TIMEOUT_AWAITED]) {
        return;
    }
    let rt = runtime();
    for n in sizes(cfg, 10_000) {
        progress(&format!("{TIMEOUT_AWAITED} n={n} ({implementation})"));
        let figures: AwaitedFigures = awaited_batches(&rt, cfg.scale_runs(n), n, with.clone());
        emit_n(
            TIMEOUT_AWAITED,
            implementation,
            n,
            "ns_per_op",
            Some(stats(&figures.diff)),
            &format!(
                "as ctx.timeout_awaited_100k with n tasks, the timeout {} s (10 s per 100,000 requests, at least 10 s: none fires on a loaded machine): {}",
                awaited_timeout(n).as_secs(),
                awaited_note(how, n, &figures)
            ),
        );
    }
}

/// The `scale.deadline_bytes` series of the `--scale-bytes-run` form `form`, if selected,
/// printed as `implementation`: per n, `BYTES_RUNS` runs of the form and as many of the bare
/// request, each in a child process; per pair, the difference of the bytes per task.
pub(crate) fn deadline_bytes_series(cfg: &Cfg, form: &str, implementation: &str, how: &str) {
    if !cfg.want(&[DEADLINE_BYTES]) {
        return;
    }
    for n in sizes(cfg, 100_000) {
        progress(&format!("{DEADLINE_BYTES} n={n} ({implementation})"));
        let with = bytes_in_children(cfg, form, n);
        let bare = bytes_in_children(cfg, DEADLINE_BARE, n);
        let diff: Vec<f64> = with.iter().zip(&bare).map(|(w, b)| w.0 - b.0).collect();
        let median = |figures: &[(f64, f64)], i: usize| {
            stats(
                &figures
                    .iter()
                    .map(|f| if i == 0 { f.0 } else { f.1 })
                    .collect::<Vec<_>>(),
            )
            .value
        };
        emit_n(
            DEADLINE_BYTES,
            implementation,
            n,
            "bytes",
            Some(stats(&diff)),
            &format!("{n} tasks on a 2-worker runtime, spawned by a driver task, each parked on its request: {how}; once all have polled it once: live heap bytes requested since just before the first spawn (counting GlobalAlloc, every thread: tokio task cells, oneshots, what the deadline allocates; malloc overhead not included) / n, minus the same with the bare request (rx.await alone), run by run; medians: {:.1} B/task with the deadline ({:.2} allocations), {:.1} B/task bare ({:.2} allocations). Each run is a fresh child process of this runner: a warm-up of 100 requests, the heap steady for 5 ms, then the counted n; so a run counts the capacity the timer keeps afterwards too", median(&with, 0), median(&with, 1), median(&bare, 0), median(&bare, 1)),
        );
    }
}

/// Runs the selected scale series on ctxkit, then (with `--peers`) on the peers.
pub(crate) fn run(cfg: &Cfg) {
    if let Some((form, n)) = &cfg.bytes_run {
        return bytes_run(form, *n);
    }
    let section = OthersLoad::start();
    cancel_fanout(cfg);
    value_depth(cfg);
    pool_workers(cfg);
    group_tasks(cfg);
    group_bytes(cfg);
    limiter_threads(cfg);
    timeout_awaited(cfg);
    deadline_bytes_series(cfg, DEADLINE_CTXKIT, "ctxkit", CTXKIT_REQUEST);
    section.report("scale");
    if cfg.peers {
        let section = OthersLoad::start();
        crate::peers::scale::run(cfg);
        section.report("peers scale");
    }
}

fn cancel_fanout(cfg: &Cfg) {
    cancel_fanout_series(
        cfg,
        "ctxkit",
        cancel_flat,
        "direct children of a fresh root.with_cancel()",
        CANCEL_FLAT_NOTE,
    );
}

fn value_depth(cfg: &Cfg) {
    if !cfg.want(&[VALUE_DEPTH]) {
        return;
    }
    let mut depth = 1;
    while depth <= MAX_VALUE_DEPTH {
        progress(&format!("{VALUE_DEPTH} n={depth}"));
        let samples = value_lookup(cfg.micro_target(), cfg.pick(7, 3), depth);
        emit_n(
            VALUE_DEPTH,
            "ctxkit",
            depth,
            "ns_per_op",
            Some(stats(&samples)),
            &format!(
                "as ctx.value_d*: {}; batches calibrated to ~{} ms",
                value_note(depth),
                cfg.micro_target().as_millis()
            ),
        );
        depth *= 2;
    }
}

fn pool_workers(cfg: &Cfg) {
    if !cfg.want(&[POOL_WORKERS]) {
        return;
    }
    let (runs, jobs) = (pool_runs(cfg), pool_jobs(cfg));
    let runtime = runtime();
    for workers in WORKERS {
        progress(&format!("{POOL_WORKERS} n={workers} (ctxkit/thread)"));
        let samples = pool_batches(runs, jobs, |n| thread_map(n, workers, false));
        emit_n(
            POOL_WORKERS,
            "ctxkit/thread",
            workers,
            "ns_per_job",
            Some(stats(&samples)),
            &format!("as pool.squares_1m_*: Pool::new({workers}).map(&ctx, 0..{jobs}, |_, x| x*x) (queue bound 1024), a fresh pool per run (a warm-up of {} jobs first), results in completion order summed by this thread, sum checked; thread spawns and joins included; / jobs", jobs / 10),
        );

        progress(&format!("{POOL_WORKERS} n={workers} (ctxkit/async)"));
        let samples = pool_batches(runs, jobs, |n| async_map_on(&runtime, n, workers));
        emit_n(
            POOL_WORKERS,
            "ctxkit/async",
            workers,
            "ns_per_job",
            Some(stats(&samples)),
            &format!("as pool.squares_1m_*: Pool::new({workers}).map_stream(&ctx, stream::iter(0..{jobs}), |_, x| async move {{ x*x }}) (queue bound 1024), worker tasks: {workers}, a fresh pool per run on a 2-worker tokio runtime (built once); the consumer is a task summing the stream, sum checked; / jobs"),
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
        progress(&format!("{GROUP_TASKS} n={n} (ctxkit/async)"));
        let samples = on_worker(&rt, async move {
            let parent = Context::background();
            after_warm_up(runs, || async_go_wait(&parent, n, None, Spawn::Waits)).await
        });
        emit_n(
            GROUP_TASKS,
            "ctxkit/async",
            n,
            "ns_per_task",
            Some(stats(&samples)),
            &format!("as group.go_wait_10k: one Group::with_context(parent) per batch, {n} tasks spawn(|_ctx| async {{ Ok(()) }}).await (no limit: each handed to a free worker task of the group or a new one), then wait() for the {n} results; driver is a task on a 2-worker multi-thread runtime; a warm-up batch, then {runs} batches; / n"),
        );

        progress(&format!("{GROUP_TASKS} n={n} (ctxkit/thread)"));
        let samples = batches(runs, || {
            thread_go_wait(&Context::background(), n, None, Spawn::Waits)
        });
        emit_n(
            GROUP_TASKS,
            "ctxkit/thread",
            n,
            "ns_per_task",
            Some(stats(&samples)),
            &format!("as group.go_wait_10k: one group::scope(parent) per batch, {n} tasks s.spawn(|_ctx| Ok(())) (no limit: each on an idle thread of the scope or a new OS thread), results in order; a warm-up batch, then {runs} batches; / n"),
        );
    }
}

/// One async group of `n` tasks parked on the group's context: the live heap bytes per task
/// once all have started and registered their waker, and the allocations per task. Then the
/// parent is canceled and the group waited for (not counted).
async fn async_group_bytes(counting: &HeapCount, n: usize) -> (f64, f64) {
    let started = Arc::new(AtomicUsize::new(0));
    let parent = Context::background().with_cancel();
    heap_settled(counting).await;
    let before = counting.now();
    let (mut g, _ctx) = Group::<(), Error>::with_context(&parent);
    for _ in 0..n {
        let started = started.clone();
        g.spawn(move |ctx| async move {
            let mut done = ctx.done();
            let ready = poll_once(&mut done).await; // the waker is registered: parked
            started.fetch_add(1, Ordering::Release);
            if !ready {
                done.await;
            }
            Ok(())
        })
        .await;
    }
    until_started(&started, n).await;
    let after = counting.now();
    parent.cancel();
    let results = g.wait().await.expect("every task returns Ok");
    assert_eq!(results.len(), n);
    drop(g);
    until_released(&started).await;
    per_task(before, after, n)
}

fn group_bytes(cfg: &Cfg) {
    group_bytes_series(cfg, BYTES_CTXKIT, "ctxkit/async", |n, allocations| {
        format!("one Group::with_context(parent) of {n} tasks spawn(|ctx| async {{ ctx.done() polled once, then an atomic counter bumped, then awaited }}).await, driver a task on a 2-worker runtime; once the counter reads {n} (all parked): live heap bytes requested since just before the group (counting GlobalAlloc, every thread: the group and its slots, its worker tasks' tokio cells, the boxed futures, waiter entries, ctxkit's registry entry per running worker task; malloc overhead not included) / n, {allocations:.2} allocations/task; then parent.cancel() and wait() (not counted). {BYTES_NOTE}; threads: no line (a parked OS thread per task)")
    });
}

/// How the `group_bytes` runs are made, for the lines' notes.
pub(crate) const BYTES_NOTE: &str = "Each run is a fresh child process of this runner: a warm-up group of 100 tasks, the heap steady for 5 ms, then the counted one; so a run counts what a process that never held n tasks pays for them, including the capacity it keeps afterwards for reuse (a later group of n in the same process would find it there), and sees no earlier run's late frees";

fn limiter_threads(cfg: &Cfg) {
    limiter_threads_series(
        cfg,
        "ctxkit",
        big_limiter,
        |limiter| limiter.allow(),
        "Limiter::new(1e9, 1e9)",
        "allow()",
    );
}

fn timeout_awaited(cfg: &Cfg) {
    let root = Context::background().with_cancel();
    let root_ctx = root.context().clone();
    timeout_awaited_series(cfg, "ctxkit", CTXKIT_REQUEST, move |n| {
        let root = root_ctx.clone();
        async move {
            let timeout = awaited_timeout(n);
            awaited_run(n, |rx| ctxkit_request(root.clone(), timeout, rx)).await
        }
    });
}
