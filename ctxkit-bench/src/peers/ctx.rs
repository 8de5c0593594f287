//! `ctx.*` on the peers: tokio-util's `CancellationToken`, the cancel tree a Rust user picks
//! today (no deadlines, no values: those lines are left out, or say what stands in).

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::peer;
use crate::ctx::{
    awaited_batches, awaited_note, awaited_run, batches_of_two, emit_after_func, emit_latency,
    time_cancel, Finished, AFTER_ALL_RAN, AFTER_FUNCS, AFTER_RETURN, AFTER_SLEEP, AWAITED,
    AWAITED_TIMEOUT, DEEP, FLAT, WAKE_SETTLE,
};
use crate::harness::{
    batches, contended_2, count_heap, emit, ns_per_op, progress, runtime, spin, stats,
    trial_batches, Cfg,
};

pub(crate) const TOKEN: &str = peer!("tokio-util", "PEER_VERSION_TOKIO_UTIL");

/// Polls `future` once with a no-op waker, registering it; whether it was ready.
fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> bool {
    let mut cx = TaskContext::from_waker(Waker::noop());
    future.poll(&mut cx).is_ready()
}

/// A child's `cancelled_owned()` future, boxed (it is not `Unpin`) and polled once.
fn waiting_on(child: &CancellationToken) -> Pin<Box<WaitForCancellationFutureOwned>> {
    let mut waiting = Box::pin(child.clone().cancelled_owned());
    assert!(!poll_once(waiting.as_mut()));
    waiting
}

/// Runs the selected `ctx.*` workloads on the peers.
pub(crate) fn run(cfg: &Cfg) {
    if cfg.want(&["ctx.cancel_child"]) {
        progress(&format!("ctx.cancel_child ({TOKEN})"));
        let parent = CancellationToken::new();
        let samples = ns_per_op(cfg.micro_target(), cfg.micro_runs(), |n| {
            for _ in 0..n {
                let child = parent.child_token();
                child.cancel();
                drop(black_box(child));
            }
        });
        emit("ctx.cancel_child", TOKEN, "ns_per_op", Some(stats(&samples)), "parent.child_token() + cancel() + drop, on a plain thread, from a long-lived parent token");
    }
    if cfg.want(&["ctx.timeout_child"]) {
        progress(&format!("ctx.timeout_child ({TOKEN})"));
        let rt = runtime();
        let _entered = rt.enter();
        let parent = CancellationToken::new();
        let samples = ns_per_op(cfg.micro_target(), cfg.micro_runs(), |n| {
            for _ in 0..n {
                let child = parent.child_token();
                let mut deadline = Box::pin(tokio::time::sleep(Duration::from_secs(3600)));
                assert!(!poll_once(deadline.as_mut()));
                child.cancel();
                drop(black_box((child, deadline)));
            }
        });
        emit("ctx.timeout_child", &format!("{TOKEN}+tokio-sleep"), "ns_per_op", Some(stats(&samples)), "a token has no deadline: child_token() + a boxed tokio::time::sleep(1 h) polled once (its timer entry registered, as a deadline must be watched) + cancel + drop, on a thread inside a 2-worker runtime's context");
    }
    flat(cfg);
    if cfg.want(&["ctx.cancel_deep_10k"]) {
        progress(&format!("ctx.cancel_deep_10k ({TOKEN})"));
        let samples = batches(cfg.heavy_runs(), || {
            let mut chain = vec![CancellationToken::new()];
            for _ in 1..DEEP {
                let next = chain
                    .last()
                    .map(CancellationToken::child_token)
                    .expect("a root");
                chain.push(next);
            }
            let leaf_waiting = waiting_on(chain.last().expect("a leaf"));
            let start = Instant::now();
            chain[0].cancel();
            let ok = chain.last().expect("a leaf").is_cancelled();
            let ms = start.elapsed().as_secs_f64() * 1e3;
            assert!(ok);
            drop(leaf_waiting);
            ms
        });
        emit("ctx.cancel_deep_10k", TOKEN, "ms", Some(stats(&samples)), "chain of 10,000 nested child_token() including the root, the leaf's cancelled_owned() polled once; timed: root cancel() + leaf.is_cancelled()");
    }
    wake_latency(cfg);
    timeout_awaited(cfg);
    after_func(cfg);
    if cfg.want(&["ctx.contended_create_cancel"]) {
        progress(&format!("ctx.contended_create_cancel ({TOKEN})"));
        let duration = Duration::from_millis(cfg.pick(1000, 150));
        let parent = CancellationToken::new();
        let op = || {
            let child = parent.child_token();
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
        emit("ctx.contended_create_cancel", TOKEN, "mops_per_s", Some(stats(&samples)), &format!("2 threads, child_token() + cancel() + drop on one shared parent, {} ms per batch; total over both threads", duration.as_millis()));
    }
}

fn build_flat(root: &CancellationToken, n: usize, into: &mut Vec<CancellationToken>) {
    for _ in 0..n {
        into.push(root.child_token());
    }
}

/// One batch of `ctx.cancel_flat_100k` (and `scale.cancel_fanout`) with `n` children: a fresh
/// root token with `n` child tokens, each child's `cancelled_owned()` polled once first if
/// `waited`; timed: the root's `cancel()` until every child reports cancelled.
pub(crate) fn cancel_flat(n: usize, waited: bool) -> Duration {
    let root = CancellationToken::new();
    let mut children = Vec::with_capacity(n);
    build_flat(&root, n, &mut children);
    let futures: Vec<_> = if waited {
        children.iter().map(waiting_on).collect()
    } else {
        Vec::new()
    };
    let start = Instant::now();
    root.cancel();
    let done = children.iter().filter(|child| child.is_cancelled()).count();
    let took = start.elapsed();
    assert_eq!(done, n);
    drop(futures);
    took
}

/// The note of `cancel_flat`'s waited form.
pub(crate) const CANCEL_FLAT_NOTE: &str = "every child's cancelled_owned() polled once (a waker registered, woken by the cancel); timed: root cancel() + is_cancelled() on every child";

fn flat(cfg: &Cfg) {
    if cfg.want(&["ctx.build_flat_100k"]) {
        progress(&format!("ctx.build_flat_100k ({TOKEN})"));
        let samples = batches(cfg.heavy_runs(), || {
            let root = CancellationToken::new();
            let mut children = Vec::with_capacity(FLAT);
            let start = Instant::now();
            build_flat(&root, FLAT, &mut children);
            start.elapsed().as_secs_f64() * 1e3
        });
        emit(
            "ctx.build_flat_100k",
            TOKEN,
            "ms",
            Some(stats(&samples)),
            "100,000 root.child_token() kept in a pre-allocated Vec",
        );
    }
    if cfg.want(&["ctx.bytes_per_child"]) {
        progress(&format!("ctx.bytes_per_child ({TOKEN})"));
        let mut plain = Vec::new();
        let mut waiting = Vec::new();
        for _ in 0..3 {
            let root = CancellationToken::new();
            let mut children = Vec::with_capacity(FLAT);
            let mut futures = Vec::with_capacity(FLAT);
            let ((), bytes, _) = count_heap(|| build_flat(&root, FLAT, &mut children));
            plain.push(bytes as f64 / FLAT as f64);
            let ((), bytes, _) = count_heap(|| {
                for child in &children {
                    futures.push(waiting_on(child));
                }
            });
            waiting.push(bytes as f64 / FLAT as f64);
        }
        emit("ctx.bytes_per_child", TOKEN, "bytes", Some(stats(&plain)), &format!("live heap bytes requested while building 100,000 root.child_token(), / 100,000 (harness Vecs pre-allocated, excluded). Waiting adds {:.1} B/child: a boxed cancelled_owned() (it owns a token clone) polled once", stats(&waiting).value));
    }
    if cfg.want(&["ctx.cancel_flat_100k"]) {
        progress(&format!("ctx.cancel_flat_100k ({TOKEN})"));
        for waited in [true, false] {
            let samples = batches(cfg.heavy_runs(), || {
                cancel_flat(FLAT, waited).as_secs_f64() * 1e3
            });
            let (implementation, note) = if waited {
                (TOKEN.to_owned(), CANCEL_FLAT_NOTE)
            } else {
                (format!("{TOKEN}/unwaited"), "the same without waiting on the children first: the cancel has nothing to wake")
            };
            emit(
                "ctx.cancel_flat_100k",
                &implementation,
                "ms",
                Some(stats(&samples)),
                note,
            );
        }
    }
}

fn wake_latency(cfg: &Cfg) {
    if !cfg.want(&["ctx.wake_latency_p50", "ctx.wake_latency_p99"]) {
        return;
    }
    let trials = cfg.pick(10_000, 2_000);
    let runs = cfg.pick(7, 3);

    progress(&format!("ctx.wake_latency ({TOKEN}, thread)"));
    let (jobs, job) = mpsc::channel::<(CancellationToken, Arc<AtomicBool>)>();
    let (woke, woken) = mpsc::channel::<Instant>();
    let waiter = std::thread::spawn(move || {
        for (token, ready) in job {
            ready.store(true, Ordering::Release);
            futures::executor::block_on(token.cancelled());
            let _ = woke.send(Instant::now());
        }
    });
    let thread_trial = || -> f64 {
        let token = CancellationToken::new();
        let ready = Arc::new(AtomicBool::new(false));
        jobs.send((token.clone(), ready.clone()))
            .expect("the waiter runs");
        while !ready.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        spin(WAKE_SETTLE);
        let t0 = Instant::now();
        token.cancel();
        let t1 = woken.recv().expect("the waiter woke");
        t1.duration_since(t0).as_secs_f64() * 1e6
    };
    let samples = trial_batches(runs, trials, thread_trial);
    drop(jobs);
    waiter.join().expect("the waiter thread");
    emit_latency(&samples, &format!("{TOKEN}/thread"), "waiter: a persistent std thread in futures::executor::block_on(token.cancelled()) (a token has no blocking wait); cancel() from another thread that then blocks on a channel receive");

    progress(&format!("ctx.wake_latency ({TOKEN}, task)"));
    let rt = runtime();
    let task_trial = |rt: &tokio::runtime::Runtime| -> f64 {
        rt.block_on(async {
            let token = CancellationToken::new();
            let ready = Arc::new(AtomicBool::new(false));
            let (tx, rx) = tokio::sync::oneshot::channel::<Instant>();
            let (waiter_token, waiter_ready) = (token.clone(), ready.clone());
            tokio::spawn(async move {
                let mut cancelled = std::pin::pin!(waiter_token.cancelled());
                let was_ready =
                    std::future::poll_fn(|cx| Poll::Ready(cancelled.as_mut().poll(cx).is_ready()))
                        .await;
                assert!(!was_ready);
                waiter_ready.store(true, Ordering::Release);
                cancelled.await;
                let _ = tx.send(Instant::now());
            });
            let canceler = tokio::spawn(async move {
                while !ready.load(Ordering::Acquire) {
                    tokio::task::yield_now().await;
                }
                spin(WAKE_SETTLE);
                let t0 = Instant::now();
                token.cancel();
                let t1 = rx.await.expect("the waiter woke");
                t1.duration_since(t0).as_secs_f64() * 1e6
            });
            canceler.await.expect("the canceler task")
        })
    };
    let samples = trial_batches(runs, trials, || task_trial(&rt));
    emit_latency(&samples, &format!("{TOKEN}/async"), "waiter: a task awaiting token.cancelled(); the canceler is another task on the same 2-worker multi-thread tokio runtime, which then awaits a oneshot");
}

/// tokio's awaited request: `tokio::time::timeout(timeout (10 s), oneshot)` (the deadline an
/// entry of tokio's timer wheel, inline in the future).
pub(crate) async fn tokio_request(
    timeout: Duration,
    rx: tokio::sync::oneshot::Receiver<()>,
) -> bool {
    matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(())))
}

/// How tokio's request is written, for the notes.
pub(crate) const TOKIO_REQUEST: &str = "tokio::time::timeout(10 s, oneshot).await (the deadline an entry of the runtime's timer wheel, inside the task's future; no context, nothing to cancel)";

/// The awaited request stitched from tokio-util and tokio, what a Rust team writes without
/// ctxkit: a child token of one long-lived root token (the cancel tree), the oneshot raced
/// against the child's cancellation (`run_until_cancelled`) inside `tokio::time::timeout` (the
/// deadline), then the child canceled.
pub(crate) async fn stitched_request(
    root: CancellationToken,
    timeout: Duration,
    rx: tokio::sync::oneshot::Receiver<()>,
) -> bool {
    let child = root.child_token();
    let won = matches!(
        tokio::time::timeout(timeout, child.run_until_cancelled(rx)).await,
        Ok(Some(Ok(())))
    );
    child.cancel();
    won
}

/// How the stitched request is written, for the notes.
pub(crate) const STITCHED_REQUEST: &str = "let child = root.child_token() (root one long-lived CancellationToken); tokio::time::timeout(10 s, child.run_until_cancelled(oneshot)).await; child.cancel() (the work ctxkit's request does, from tokio-util's cancel tree and tokio's timer)";

/// The `impl` of the stitched request's lines (`stitched_request`).
pub(crate) const STITCHED: &str = concat!(
    peer!("tokio-util", "PEER_VERSION_TOKIO_UTIL"),
    "+tokio-timeout"
);

/// The `impl` of tokio's lines.
pub(crate) const TOKIO: &str = peer!("tokio", "PEER_VERSION_TOKIO");

fn timeout_awaited(cfg: &Cfg) {
    if !cfg.want(&["ctx.timeout_awaited_100k"]) {
        return;
    }
    progress(&format!("ctx.timeout_awaited_100k ({TOKIO})"));
    let rt = runtime();
    let figures = awaited_batches(&rt, cfg.pick(7, 3), AWAITED, |n| {
        awaited_run(n, |rx| tokio_request(AWAITED_TIMEOUT, rx))
    });
    emit(
        "ctx.timeout_awaited_100k",
        TOKIO,
        "ns_per_op",
        Some(stats(&figures.diff)),
        &awaited_note(TOKIO_REQUEST, AWAITED, &figures),
    );
    progress(&format!("ctx.timeout_awaited_100k ({STITCHED})"));
    let root = CancellationToken::new();
    let figures = awaited_batches(&rt, cfg.pick(7, 3), AWAITED, move |n| {
        let root = root.clone();
        async move { awaited_run(n, |rx| stitched_request(root.clone(), AWAITED_TIMEOUT, rx)).await }
    });
    emit(
        "ctx.timeout_awaited_100k",
        STITCHED,
        "ns_per_op",
        Some(stats(&figures.diff)),
        &awaited_note(STITCHED_REQUEST, AWAITED, &figures),
    );
}

/// How the function of a peer's after-function task runs once the token is cancelled.
#[derive(Clone, Copy)]
enum AfterForm {
    /// `tokio::task::spawn_blocking(f)`: f sleeps 1 ms on the blocking pool.
    SpawnBlocking,
    /// The task itself awaits `tokio::time::sleep(1 ms)` (f written as async).
    AsyncSleep,
}

fn after_func(cfg: &Cfg) {
    if !cfg.want(&[AFTER_RETURN, AFTER_ALL_RAN]) {
        return;
    }
    for (form, suffix, how) in [
        (AfterForm::SpawnBlocking, "spawn_blocking", "10,000 tasks on a 2-worker runtime, each holding a clone of one CancellationToken: token.cancelled() polled once (all parked, then 2 ms, before t0), awaited, then tokio::task::spawn_blocking(f) (f on tokio's blocking pool, at most 512 threads, kept warm by the warm-up batch); cancel() from a plain thread"),
        (AfterForm::AsyncSleep, "async-sleep", "10,000 tasks on a 2-worker runtime, each holding a clone of one CancellationToken: token.cancelled() polled once (all parked, then 2 ms, before t0), awaited, then f written as async, in the task (tokio's timer: 1 ms resolution); cancel() from a plain thread"),
    ] {
        let implementation = format!("{TOKEN}/{suffix}");
        progress(&format!("ctx.after_func_10k ({implementation})"));
        let rt = runtime();
        let figures = batches_of_two(cfg.pick(7, 3), || after_func_batch(&rt, form));
        let sleep = match form {
            AfterForm::SpawnBlocking => "std::thread::sleep(1 ms)",
            AfterForm::AsyncSleep => "tokio::time::sleep(1 ms).await",
        };
        emit_after_func(cfg, &implementation, &figures, how, sleep);
    }
}

/// One batch of a peer's after-functions: (cancel_return, all_ran) in ms.
fn after_func_batch(rt: &tokio::runtime::Runtime, form: AfterForm) -> (f64, f64) {
    let token = CancellationToken::new();
    let finished = Finished::new(AFTER_FUNCS);
    let started = Arc::new(AtomicUsize::new(0));
    for _ in 0..AFTER_FUNCS {
        let (token, finished, started) = (token.clone(), finished.clone(), started.clone());
        rt.spawn(async move {
            let mut cancelled = std::pin::pin!(token.cancelled());
            let ready = poll_once(cancelled.as_mut());
            started.fetch_add(1, Ordering::Release);
            if !ready {
                cancelled.await;
            }
            match form {
                AfterForm::SpawnBlocking => {
                    drop(tokio::task::spawn_blocking(move || {
                        std::thread::sleep(AFTER_SLEEP);
                        finished.one();
                    }));
                }
                AfterForm::AsyncSleep => {
                    tokio::time::sleep(AFTER_SLEEP).await;
                    finished.one();
                }
            }
        });
    }
    while started.load(Ordering::Acquire) < AFTER_FUNCS {
        std::thread::sleep(Duration::from_micros(100));
    }
    std::thread::sleep(Duration::from_millis(2));
    time_cancel(|| token.cancel(), &finished)
}
