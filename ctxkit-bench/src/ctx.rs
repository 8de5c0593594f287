//! `ctx.*` workloads: the cancel tree, values, waiting.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use ctxkit::{CancelContext, Context, Done};

use crate::group::on_worker;
use crate::harness::{
    batches, contended_2, count_heap, emit, ns_per_op, percentile, progress, runtime, spin, stats,
    trial_batches, Cfg, HeapCount,
};
use crate::scale::{heap_settled, per_task};

pub(crate) const FLAT: usize = 100_000;
pub(crate) const DEEP: usize = 10_000;
/// Settle time before `cancel()`, as the Go runner's (`bench/go`; the peers use this one): the
/// waiter is really parked.
pub(crate) const WAKE_SETTLE: Duration = Duration::from_micros(100);

/// Runs the selected `ctx.*` workloads.
pub(crate) fn run(cfg: &Cfg) {
    cancel_child(cfg);
    timeout_child(cfg);
    values(cfg);
    flat_tree(cfg);
    cancel_deep(cfg);
    wake_latency(cfg);
    timeout_awaited(cfg);
    after_func(cfg);
    contended(cfg);
}

/// Polls `done` once with a no-op waker, registering it; returns whether it was ready.
fn poll_once(done: &mut Done) -> bool {
    let mut cx = TaskContext::from_waker(Waker::noop());
    Pin::new(done).poll(&mut cx).is_ready()
}

fn cancel_child(cfg: &Cfg) {
    if !cfg.want(&["ctx.cancel_child"]) {
        return;
    }
    progress("ctx.cancel_child");
    let parent = Context::background().with_cancel();
    let samples = ns_per_op(cfg.micro_target(), cfg.micro_runs(), |n| {
        for _ in 0..n {
            let child = parent.with_cancel();
            child.cancel();
            drop(black_box(child));
        }
    });
    emit(
        "ctx.cancel_child",
        "ctxkit",
        "ns_per_op",
        Some(stats(&samples)),
        "parent.with_cancel() + cancel() + drop, on a plain thread, from a long-lived cancelable parent",
    );
}

fn timeout_child(cfg: &Cfg) {
    if !cfg.want(&["ctx.timeout_child"]) {
        return;
    }
    progress("ctx.timeout_child");
    let parent = Context::background().with_cancel();
    let samples = ns_per_op(cfg.micro_target(), cfg.micro_runs(), |n| {
        for _ in 0..n {
            let child = parent.with_timeout(Duration::from_secs(3600));
            child.cancel();
            drop(black_box(child));
        }
    });
    emit(
        "ctx.timeout_child",
        "ctxkit",
        "ns_per_op",
        Some(stats(&samples)),
        "parent.with_timeout(1 h) + cancel + drop: the deadline is lazy (one clock read), no timer is armed because nobody waits; every holder sees the deadline through is_done/err/done",
    );
}

// ===== values =====

/// Layer `A * 16 + B` of a value chain: `16 * LAYER_ROWS` distinct types.
struct Key<const A: usize, const B: usize>(#[allow(dead_code, reason = "payload")] usize);

fn layer<const A: usize, const B: usize>(ctx: &Context) -> Context {
    ctx.with_value(Key::<A, B>(A * 16 + B))
}

macro_rules! layer_table {
    ($($a:literal)*) => {
        [$(layer_table!(@row $a; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)),*].concat()
    };
    (@row $a:literal; $($b:literal)*) => {
        vec![$(layer::<$a, $b> as fn(&Context) -> Context),*]
    };
}

/// The deepest value chain [`value_chain`] builds (`scale.value_depth` goes up to it).
pub(crate) const MAX_VALUE_DEPTH: usize = 1024;

/// A chain of `depth` value layers on the background context, layer i holding a value of its
/// own type (`Key<i / 16, i % 16>`), layer 0 nearest the root.
fn value_chain(depth: usize) -> Context {
    let table: Vec<fn(&Context) -> Context> = layer_table!(
        0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63
    );
    assert_eq!(table.len(), MAX_VALUE_DEPTH);
    table[..depth]
        .iter()
        .fold(Context::background(), |ctx, add| add(&ctx))
}

/// ns per `value::<Key0>()` (the layer nearest the root: the worst-case walk) on a chain of
/// `depth` layers; one figure per batch.
pub(crate) fn value_lookup(target: Duration, runs: usize, depth: usize) -> Vec<f64> {
    let ctx = value_chain(depth);
    ns_per_op(target, runs, |n| {
        let mut hits = 0usize;
        for _ in 0..n {
            hits += black_box(&ctx).value::<Key<0, 0>>().is_some() as usize;
        }
        assert_eq!(hits, n);
    })
}

/// How `value_lookup` measures, for the lines' notes.
pub(crate) fn value_note(depth: usize) -> String {
    format!("ctx.value::<Key0>() on a chain of {depth} with_value layers of distinct types; Key0 is the layer nearest the root (worst case; per-block Bloom filters let the walk skip ahead)")
}

fn values(cfg: &Cfg) {
    for (workload, depth) in [
        ("ctx.value_d1", 1),
        ("ctx.value_d16", 16),
        ("ctx.value_d256", 256),
    ] {
        if !cfg.want(&[workload]) {
            continue;
        }
        progress(workload);
        let samples = value_lookup(cfg.micro_target(), cfg.micro_runs(), depth);
        emit(
            workload,
            "ctxkit",
            "ns_per_op",
            Some(stats(&samples)),
            &value_note(depth),
        );
    }
    if cfg.want(&["ctx.value_miss_d16"]) {
        progress("ctx.value_miss_d16");
        let ctx = value_chain(16);
        let samples = ns_per_op(cfg.micro_target(), cfg.micro_runs(), |n| {
            let mut misses = 0usize;
            for _ in 0..n {
                misses += black_box(&ctx).value::<Key<15, 15>>().is_none() as usize;
            }
            assert_eq!(misses, n);
        });
        emit(
            "ctx.value_miss_d16",
            "ctxkit",
            "ns_per_op",
            Some(stats(&samples)),
            "ctx.value::<T>() for a type no layer of a 16-layer chain holds",
        );
    }
}

// ===== trees =====

fn build_flat(root: &Context, n: usize, into: &mut Vec<CancelContext>) {
    for _ in 0..n {
        into.push(root.with_cancel());
    }
}

/// One batch of `ctx.cancel_flat_100k` (and `scale.cancel_fanout`) with `n` children: a fresh
/// root with `n` direct children, each child's `done()` polled once first if `waited`; timed:
/// the root's `cancel()` until every child reports done.
pub(crate) fn cancel_flat(n: usize, waited: bool) -> Duration {
    let root = Context::background().with_cancel();
    let mut children = Vec::with_capacity(n);
    build_flat(&root, n, &mut children);
    let mut dones: Vec<Done> = if waited {
        children.iter().map(|c| c.done()).collect()
    } else {
        Vec::new()
    };
    for done in &mut dones {
        assert!(!poll_once(done));
    }
    let start = Instant::now();
    root.cancel();
    let done = children.iter().filter(|c| c.is_done()).count();
    let took = start.elapsed();
    assert_eq!(done, n);
    drop(dones);
    took
}

/// The note of `cancel_flat`'s waited form.
pub(crate) const CANCEL_FLAT_NOTE: &str = "every child had done() polled once (a waker registered, woken by the cancel: the cancel really wakes something, as the Go runner's Done() channels and the peers' waited tokens); timed: root cancel() (synchronous over the subtree) + is_done() on every child";

fn flat_tree(cfg: &Cfg) {
    if cfg.want(&["ctx.build_flat_100k"]) {
        progress("ctx.build_flat_100k");
        let samples = batches(cfg.heavy_runs(), || {
            let root = Context::background().with_cancel();
            let mut children = Vec::with_capacity(FLAT);
            let start = Instant::now();
            build_flat(&root, FLAT, &mut children);
            let ms = start.elapsed().as_secs_f64() * 1e3;
            drop(children);
            ms
        });
        emit(
            "ctx.build_flat_100k",
            "ctxkit",
            "ms",
            Some(stats(&samples)),
            "100,000 root.with_cancel() kept (each a CancelContext) in a pre-allocated Vec",
        );
    }
    if cfg.want(&["ctx.bytes_per_child"]) {
        progress("ctx.bytes_per_child");
        let mut plain = Vec::new();
        let mut waiting = Vec::new();
        let mut allocations = (0.0, 0.0);
        for _ in 0..3 {
            let root = Context::background().with_cancel();
            let mut children = Vec::with_capacity(FLAT);
            let mut dones: Vec<Done> = Vec::with_capacity(FLAT);
            let ((), bytes, allocs) = count_heap(|| build_flat(&root, FLAT, &mut children));
            plain.push(bytes as f64 / FLAT as f64);
            allocations.0 = allocs as f64 / FLAT as f64;
            let ((), bytes, allocs) = count_heap(|| {
                for child in &children {
                    let mut done = child.done();
                    assert!(!poll_once(&mut done));
                    dones.push(done);
                }
            });
            waiting.push(bytes as f64 / FLAT as f64);
            allocations.1 = allocs as f64 / FLAT as f64;
            drop(dones);
            drop(children);
        }
        let waiting = stats(&waiting);
        emit(
            "ctx.bytes_per_child",
            "ctxkit",
            "bytes",
            Some(stats(&plain)),
            &format!(
                "live heap bytes requested (counting GlobalAlloc) while building 100,000 root.with_cancel() children, / 100,000: the node and the parent's slab entry, {:.2} allocations/child; the harness Vecs are pre-allocated and excluded, malloc overhead not included. Waiting adds {:.1} B/child ({:.2} allocations): polling done() once registers a waker in the child's waiter slab; so {:.1} B/child waiting included",
                allocations.0,
                waiting.value,
                allocations.1,
                stats(&plain).value + waiting.value
            ),
        );
    }
    if cfg.want(&["ctx.cancel_flat_100k"]) {
        progress("ctx.cancel_flat_100k");
        let samples = batches(cfg.heavy_runs(), || {
            cancel_flat(FLAT, true).as_secs_f64() * 1e3
        });
        emit(
            "ctx.cancel_flat_100k",
            "ctxkit",
            "ms",
            Some(stats(&samples)),
            CANCEL_FLAT_NOTE,
        );
        let samples = batches(cfg.heavy_runs(), || {
            cancel_flat(FLAT, false).as_secs_f64() * 1e3
        });
        emit(
            "ctx.cancel_flat_100k",
            "ctxkit/unwaited",
            "ms",
            Some(stats(&samples)),
            "for comparison with forms that register no waiter (the peers' unwaited CancellationToken row): the same without polling done() first, so the cancel has nothing to wake",
        );
    }
}

fn cancel_deep(cfg: &Cfg) {
    if !cfg.want(&["ctx.cancel_deep_10k"]) {
        return;
    }
    progress("ctx.cancel_deep_10k");
    let samples = batches(cfg.heavy_runs(), || {
        let mut chain = vec![Context::background().with_cancel()];
        for _ in 1..DEEP {
            let next = chain.last().map(|ctx| ctx.with_cancel()).unwrap();
            chain.push(next);
        }
        let mut leaf_done = chain.last().unwrap().done();
        assert!(!poll_once(&mut leaf_done));
        let start = Instant::now();
        chain[0].cancel();
        let ok = chain.last().unwrap().is_done();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        assert!(ok);
        ms
    });
    emit(
        "ctx.cancel_deep_10k",
        "ctxkit",
        "ms",
        Some(stats(&samples)),
        "chain of 10,000 nested with_cancel() including the root, the leaf's done() polled once; timed: root cancel() + leaf.is_done()",
    );
}

// ===== wake latency =====

pub(crate) fn emit_latency(runs: &[Vec<f64>], implementation: &str, note: &str) {
    for (workload, p) in [
        ("ctx.wake_latency_p50", 50.0),
        ("ctx.wake_latency_p99", 99.0),
    ] {
        let per_run: Vec<f64> = runs.iter().map(|r| percentile(r, p)).collect();
        emit(
            workload,
            implementation,
            "us",
            Some(stats(&per_run)),
            &format!(
                "{note}; {} trials per batch, waiter parked >= {} us",
                runs[0].len(),
                WAKE_SETTLE.as_micros()
            ),
        );
    }
}

fn wake_latency(cfg: &Cfg) {
    if !cfg.want(&["ctx.wake_latency_p50", "ctx.wake_latency_p99"]) {
        return;
    }
    let trials = cfg.pick(10_000, 2_000);
    let runs = cfg.pick(7, 3);

    progress("ctx.wake_latency (thread)");
    let (job_tx, job_rx) = mpsc::channel::<(Context, Arc<AtomicBool>)>();
    let (woke_tx, woke_rx) = mpsc::channel::<Instant>();
    let waiter = std::thread::spawn(move || {
        for (ctx, ready) in job_rx {
            ready.store(true, Ordering::Release);
            ctx.wait();
            let _ = woke_tx.send(Instant::now());
        }
    });
    let thread_trial = || -> f64 {
        let ctx = Context::background().with_cancel();
        let ready = Arc::new(AtomicBool::new(false));
        job_tx.send((ctx.clone(), ready.clone())).unwrap();
        while !ready.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        spin(WAKE_SETTLE);
        let t0 = Instant::now();
        ctx.cancel();
        let t1 = woke_rx.recv().unwrap();
        t1.duration_since(t0).as_secs_f64() * 1e6
    };
    let samples = trial_batches(runs, trials, thread_trial);
    drop(job_tx);
    waiter.join().unwrap();
    emit_latency(
        &samples,
        "ctxkit/thread",
        "waiter: a persistent std thread blocked in ctx.wait() (park/unpark); cancel() from another thread that then blocks on a channel receive",
    );

    progress("ctx.wake_latency (task woken by a task)");
    let rt = runtime();
    let task_trial = |rt: &tokio::runtime::Runtime| -> f64 {
        rt.block_on(async {
            let (ctx, cancel) = Context::background().with_cancel().into_parts();
            let ready = Arc::new(AtomicBool::new(false));
            let (tx, rx) = tokio::sync::oneshot::channel::<Instant>();
            let waiter_ready = ready.clone();
            tokio::spawn(async move {
                let mut done = ctx.done();
                let was_ready =
                    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut done).poll(cx).is_ready()))
                        .await;
                assert!(!was_ready);
                waiter_ready.store(true, Ordering::Release);
                done.await;
                let _ = tx.send(Instant::now());
            });
            let canceler = tokio::spawn(async move {
                while !ready.load(Ordering::Acquire) {
                    tokio::task::yield_now().await;
                }
                spin(WAKE_SETTLE);
                let t0 = Instant::now();
                cancel.cancel();
                let t1 = rx.await.unwrap();
                t1.duration_since(t0).as_secs_f64() * 1e6
            });
            canceler.await.unwrap()
        })
    };
    let samples = trial_batches(runs, trials, || task_trial(&rt));
    drop(rt);
    emit_latency(
        &samples,
        "ctxkit/async",
        "waiter: a task awaiting ctx.done(); the canceler is another task on the same 2-worker multi-thread tokio runtime, which then awaits a oneshot (as Go's goroutine-to-goroutine wake)",
    );
}

// ===== awaited timeouts =====

/// Tasks of `ctx.timeout_awaited_100k`.
pub(crate) const AWAITED: usize = 100_000;
/// The timeout of every awaited request of `ctx.timeout_awaited_100k`: far longer than any run,
/// so that none fires.
pub(crate) const AWAITED_TIMEOUT: Duration = Duration::from_secs(10);

/// The timeout of the awaited requests of a run of `n`: 10 s up to 100,000 requests, and 10 s per
/// 100,000 above (so that a run of 1,000,000 on a loaded machine, which may take longer than
/// 10 s to spawn, sees no deadline fire; the length of a deadline nobody reaches hardly changes
/// what arming and disarming it costs). As the Go runner's.
pub(crate) fn awaited_timeout(n: usize) -> Duration {
    AWAITED_TIMEOUT * (n / AWAITED).max(1) as u32
}

/// What the tasks of one awaited run share.
struct Awaited {
    /// Tasks that have polled their request once (its deadline armed, its waker registered).
    parked: AtomicUsize,
    /// Tasks not finished yet.
    remaining: AtomicUsize,
    /// Requests whose deadline won the race (none should).
    timed_out: AtomicUsize,
    /// Notified by the task that parks last.
    all_parked: tokio::sync::Notify,
    /// Notified by the task that finishes last.
    all_done: tokio::sync::Notify,
}

/// Spawns `n` tasks on the current runtime, each awaiting `request(its oneshot)` (true if the
/// oneshot won), its senders pushed to `oneshots`.
fn spawn_awaited<M, F>(
    n: usize,
    request: &M,
    oneshots: &mut Vec<tokio::sync::oneshot::Sender<()>>,
) -> Arc<Awaited>
where
    M: Fn(tokio::sync::oneshot::Receiver<()>) -> F,
    F: Future<Output = bool> + Send + 'static,
{
    let shared = Arc::new(Awaited {
        parked: AtomicUsize::new(0),
        remaining: AtomicUsize::new(n),
        timed_out: AtomicUsize::new(0),
        all_parked: tokio::sync::Notify::new(),
        all_done: tokio::sync::Notify::new(),
    });
    for _ in 0..n {
        let (tx, rx) = tokio::sync::oneshot::channel();
        oneshots.push(tx);
        let (request, shared) = (request(rx), shared.clone());
        tokio::spawn(async move {
            let mut request = std::pin::pin!(request);
            let first = std::future::poll_fn(|cx| Poll::Ready(request.as_mut().poll(cx))).await;
            if shared.parked.fetch_add(1, Ordering::AcqRel) + 1 == n {
                shared.all_parked.notify_one();
            }
            let won = match first {
                Poll::Ready(won) => won,
                Poll::Pending => request.await,
            };
            if !won {
                shared.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            if shared.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                shared.all_done.notify_one();
            }
        });
    }
    shared
}

/// Fires every oneshot, waits for every task, checks that no deadline won.
async fn finish_awaited(shared: &Awaited, oneshots: &mut Vec<tokio::sync::oneshot::Sender<()>>) {
    for tx in oneshots.drain(..) {
        let _ = tx.send(());
    }
    shared.all_done.notified().await;
    let timed_out = shared.timed_out.load(Ordering::Relaxed);
    assert_eq!(timed_out, 0, "{timed_out} awaited requests timed out");
}

/// One run of an awaited workload, as a task on the runtime (the driver): `n` tasks spawned,
/// each awaiting `request(its own oneshot)`; once every one has polled its request once (so
/// is parked on it), every oneshot fires. Returns the wall time from the first spawn until the
/// last task finished, / n, in ns.
pub(crate) async fn awaited_run<M, F>(n: usize, request: M) -> f64
where
    M: Fn(tokio::sync::oneshot::Receiver<()>) -> F,
    F: Future<Output = bool> + Send + 'static,
{
    let mut oneshots = Vec::with_capacity(n);
    let start = Instant::now();
    let shared = spawn_awaited(n, &request, &mut oneshots);
    shared.all_parked.notified().await;
    finish_awaited(&shared, &mut oneshots).await;
    start.elapsed().as_nanos() as f64 / n as f64
}

/// The bare request every awaited form is measured against: the oneshot alone.
pub(crate) async fn bare_request(rx: tokio::sync::oneshot::Receiver<()>) -> bool {
    rx.await.is_ok()
}

/// ctxkit's awaited request: a child of `root` with a `timeout` (10 s), the oneshot run under
/// it (`ctx.run`, which races the work against the child's done), then the child canceled.
pub(crate) async fn ctxkit_request(
    root: Context,
    timeout: Duration,
    rx: tokio::sync::oneshot::Receiver<()>,
) -> bool {
    let ctx = root.with_timeout(timeout);
    let won = matches!(ctx.run(rx).await, Ok(Ok(())));
    ctx.cancel();
    won
}

/// The live heap bytes and allocations per task while `n` tasks are parked on
/// `request(oneshot)` (a `--scale-bytes-run` child, counting from `counting`); then every
/// oneshot fires and every task finishes (not counted).
pub(crate) async fn awaited_bytes<M, F>(counting: &HeapCount, n: usize, request: M) -> (f64, f64)
where
    M: Fn(tokio::sync::oneshot::Receiver<()>) -> F,
    F: Future<Output = bool> + Send + 'static,
{
    let mut oneshots = Vec::with_capacity(n);
    heap_settled(counting).await;
    let before = counting.now();
    let shared = spawn_awaited(n, &request, &mut oneshots);
    shared.all_parked.notified().await;
    let after = counting.now();
    finish_awaited(&shared, &mut oneshots).await;
    per_task(before, after, n)
}

/// The figures of the awaited batches of one form: per batch, ns per request with the
/// deadline, bare, and their difference.
#[derive(Debug, Default)]
pub(crate) struct AwaitedFigures {
    pub(crate) with: Vec<f64>,
    pub(crate) bare: Vec<f64>,
    pub(crate) diff: Vec<f64>,
}

/// A warm-up batch, then `runs` batches of `n` requests on `rt`, each one run of `with` and one
/// bare run, which goes first alternating, all in one driver task.
pub(crate) fn awaited_batches<W, F>(
    rt: &tokio::runtime::Runtime,
    runs: usize,
    n: usize,
    with: W,
) -> AwaitedFigures
where
    W: Fn(usize) -> F + Send + 'static,
    F: Future<Output = f64> + Send,
{
    on_worker(rt, async move {
        let mut figures = AwaitedFigures::default();
        for batch in 0..=runs {
            let (w, b) = if batch % 2 == 0 {
                let w = with(n).await;
                (w, awaited_run(n, bare_request).await)
            } else {
                let b = awaited_run(n, bare_request).await;
                (with(n).await, b)
            };
            if batch > 0 {
                figures.with.push(w);
                figures.bare.push(b);
                figures.diff.push(w - b);
            }
        }
        figures
    })
}

/// The note of an awaited line: `how` (the request of the form), the method and the figures.
pub(crate) fn awaited_note(how: &str, n: usize, figures: &AwaitedFigures) -> String {
    format!("{n} tasks on a 2-worker multi-thread runtime, spawned by a driver task, each: {how}; once every task has polled its request once (parked), the driver fires every oneshot; per request: wall time from the first spawn until the last task finished / {n}, minus the same run with the bare request (rx.await alone), per batch, the two halves alternating which goes first; a warm-up batch first. Medians: {:.1} ns with the deadline, {:.1} ns bare", stats(&figures.with).value, stats(&figures.bare).value)
}

/// How ctxkit's request is written, for the notes.
pub(crate) const CTXKIT_REQUEST: &str = "let ctx = root.with_timeout(10 s) (root one long-lived with_cancel context); ctx.run(oneshot).await (the oneshot raced against the child's done(), which arms the deadline on the ctxkit-timer thread); ctx.cancel()";

fn timeout_awaited(cfg: &Cfg) {
    if !cfg.want(&["ctx.timeout_awaited_100k"]) {
        return;
    }
    progress("ctx.timeout_awaited_100k");
    let rt = runtime();
    let root = Context::background().with_cancel();
    let root_ctx = root.context().clone();
    let figures = awaited_batches(&rt, cfg.pick(7, 3), AWAITED, move |n| {
        let root = root_ctx.clone();
        async move { awaited_run(n, |rx| ctxkit_request(root.clone(), AWAITED_TIMEOUT, rx)).await }
    });
    emit(
        "ctx.timeout_awaited_100k",
        "ctxkit",
        "ns_per_op",
        Some(stats(&figures.diff)),
        &awaited_note(CTXKIT_REQUEST, AWAITED, &figures),
    );
}

// ===== after-functions =====

/// After-functions of `ctx.after_func_10k_*`.
pub(crate) const AFTER_FUNCS: usize = 10_000;
/// `ctx.after_func_10k_cancel_return`: cancel() until it returns.
pub(crate) const AFTER_RETURN: &str = "ctx.after_func_10k_cancel_return";
/// `ctx.after_func_10k_all_ran`: cancel() until every function has finished.
pub(crate) const AFTER_ALL_RAN: &str = "ctx.after_func_10k_all_ran";
/// What every after-function does: sleep 1 ms (blocking), then count itself finished.
pub(crate) const AFTER_SLEEP: Duration = Duration::from_millis(1);

/// Counts the after-functions still to finish; `wait` blocks until none is left.
#[derive(Debug)]
pub(crate) struct Finished {
    left: Mutex<usize>,
    zero: Condvar,
}

impl Finished {
    pub(crate) fn new(n: usize) -> Arc<Finished> {
        Arc::new(Finished {
            left: Mutex::new(n),
            zero: Condvar::new(),
        })
    }

    /// One function has finished.
    pub(crate) fn one(&self) {
        let mut left = self.left.lock().expect("not poisoned");
        *left -= 1;
        if *left == 0 {
            self.zero.notify_all();
        }
    }

    /// Blocks until every function has finished.
    pub(crate) fn wait(&self) {
        let mut left = self.left.lock().expect("not poisoned");
        while *left > 0 {
            left = self.zero.wait(left).expect("not poisoned");
        }
    }
}

/// Times one after-function batch: `cancel` until it returns, and until `finished` reports
/// every function done; (ms, ms).
pub(crate) fn time_cancel(cancel: impl FnOnce(), finished: &Finished) -> (f64, f64) {
    let t0 = Instant::now();
    cancel();
    let t1 = Instant::now();
    finished.wait();
    let t2 = Instant::now();
    (
        t1.duration_since(t0).as_secs_f64() * 1e3,
        t2.duration_since(t0).as_secs_f64() * 1e3,
    )
}

/// Prints the two after-function lines of `implementation` (those selected) from per-batch
/// (cancel_return, all_ran) figures; `how` says how the functions are registered, `sleep` how
/// a function sleeps its 1 ms.
pub(crate) fn emit_after_func(
    cfg: &Cfg,
    implementation: &str,
    figures: &[(f64, f64)],
    how: &str,
    sleep: &str,
) {
    let returned: Vec<f64> = figures.iter().map(|f| f.0).collect();
    let all_ran: Vec<f64> = figures.iter().map(|f| f.1).collect();
    if cfg.want(&[AFTER_RETURN]) {
        emit(
            AFTER_RETURN,
            implementation,
            "ms",
            Some(stats(&returned)),
            &format!("{how}; each function: {sleep}, then counts itself finished (Mutex + Condvar); timed: cancel() until it returns (median all_ran {:.2} ms); a warm-up batch first", stats(&all_ran).value),
        );
    }
    if cfg.want(&[AFTER_ALL_RAN]) {
        emit(
            AFTER_ALL_RAN,
            implementation,
            "ms",
            Some(stats(&all_ran)),
            &format!("{how}; each function: {sleep}, then counts itself finished (Mutex + Condvar); timed: cancel() until every function has finished (median cancel_return {:.2} ms); a warm-up batch first", stats(&returned).value),
        );
    }
}

fn after_func(cfg: &Cfg) {
    if !cfg.want(&[AFTER_RETURN, AFTER_ALL_RAN]) {
        return;
    }
    progress("ctx.after_func_10k");
    let figures = batches_of_two(cfg.pick(7, 3), || {
        let ctx = Context::background().with_cancel();
        let finished = Finished::new(AFTER_FUNCS);
        let handles: Vec<ctxkit::AfterFunc> = (0..AFTER_FUNCS)
            .map(|_| {
                let finished = finished.clone();
                ctx.after_func(move || {
                    std::thread::sleep(AFTER_SLEEP);
                    finished.one();
                })
            })
            .collect();
        let figures = time_cancel(|| ctx.cancel(), &finished);
        drop(handles);
        figures
    });
    emit_after_func(
        cfg,
        "ctxkit",
        &figures,
        "10,000 ctx.after_func(f) on one Context::background().with_cancel(), registered before timing, canceled from a plain thread (each function runs on the after-function pool, ctxkit-after-func threads)",
        "std::thread::sleep(1 ms)",
    );

    progress("ctx.after_func_10k (ctxkit/after_func_async)");
    let rt = runtime();
    let figures = batches_of_two(cfg.pick(7, 3), || after_func_async_batch(&rt));
    emit_after_func(
        cfg,
        "ctxkit/after_func_async",
        &figures,
        "10,000 ctx.after_func_async(f) on one Context::background().with_cancel(), registered before timing inside a 2-worker runtime (its Handle entered; the peers' runtime shape), canceled from a plain thread (each registration spawns a gated task on that runtime; the cancel hands each one to the after-function pool's dispatcher, which opens its gate)",
        "tokio::time::sleep(1 ms).await",
    );
}

/// One batch of `ctxkit/after_func_async`: (cancel_return, all_ran) in ms.
fn after_func_async_batch(rt: &tokio::runtime::Runtime) -> (f64, f64) {
    let ctx = Context::background().with_cancel();
    let finished = Finished::new(AFTER_FUNCS);
    let handles: Vec<ctxkit::AfterFunc> = {
        let _entered = rt.enter();
        (0..AFTER_FUNCS)
            .map(|_| {
                let finished = finished.clone();
                ctx.after_func_async(async move {
                    tokio::time::sleep(AFTER_SLEEP).await;
                    finished.one();
                })
            })
            .collect()
    };
    let figures = time_cancel(|| ctx.cancel(), &finished);
    drop(handles);
    figures
}

/// A warm-up run of `f`, then `runs` runs; each run's pair of figures.
pub(crate) fn batches_of_two(runs: usize, mut f: impl FnMut() -> (f64, f64)) -> Vec<(f64, f64)> {
    black_box(f());
    (0..runs).map(|_| f()).collect()
}

fn contended(cfg: &Cfg) {
    if !cfg.want(&["ctx.contended_create_cancel"]) {
        return;
    }
    progress("ctx.contended_create_cancel");
    let duration = Duration::from_millis(cfg.pick(1000, 150));
    let parent = Context::background().with_cancel();
    let op = || {
        let child = parent.with_cancel();
        child.cancel();
        drop(child);
    };
    contended_2(duration / 10, op);
    let samples: Vec<f64> = (0..7)
        .map(|_| {
            let (ops, seconds) = contended_2(duration, op);
            ops as f64 / seconds / 1e6
        })
        .collect();
    emit(
        "ctx.contended_create_cancel",
        "ctxkit",
        "mops_per_s",
        Some(stats(&samples)),
        &format!(
            "2 threads, with_cancel() + cancel() + drop on one shared parent, {} ms per batch; total over both threads",
            duration.as_millis()
        ),
    );
}
