//! loom models of the after-function pool (`blocking/mod.rs`): a hand-off racing the
//! dispatcher going to sleep (invariant 5), a busy worker's take from the shards racing a fill
//! (invariants 1, 3, 4), a worker's idle exit racing the claim made for a
//! function (invariants 3, 6), `AfterFunc::stop` racing the cancel that hands the function
//! off (`context/deferred.rs`, invariant 1), and an async function's spawn by the dispatcher
//! racing a leak check's look at the queue (invariant 1).
//!
//! Run: `RUSTFLAGS="--cfg loom -C debug_assertions" LOOM_MAX_PREEMPTIONS=3
//! CARGO_TARGET_DIR=target/loom cargo test -p ctxkit --lib --release loom`
//!
//! Under loom no thread is started through `spawn`: a model runs the dispatcher's loop on a
//! loom thread, which starts its workers as loom threads, and a worker's idle wait ends at
//! once (see the module docs). A lost wake-up or a function left behind shows as a model that
//! never finishes (loom reports the spin as a livelock) or as a failed count.

use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::time::Duration;

use loom::thread;

use super::super::{BlockingPool, Callback, Job, Work, POOL};
use crate::spawn::Origin;
use crate::sync::Arc;
use crate::Context;

/// A function that counts its runs.
fn counting(runs: &Arc<StdAtomicUsize>) -> Job {
    let runs = runs.clone();
    Job::new(
        Box::new(move || {
            runs.fetch_add(1, StdOrdering::SeqCst);
        }),
        Origin::here("ctxkit-test-job"),
        None,
    )
}

/// An async function whose spawn counts its runs (the model's stand-in for a tokio spawn).
fn spawning(runs: &Arc<StdAtomicUsize>) -> Job {
    let runs = runs.clone();
    Job::of(
        Work::Spawn(Box::new(move |_origin| {
            runs.fetch_add(1, StdOrdering::SeqCst);
        })),
        Origin::here("ctxkit-test-job"),
        None,
    )
}

/// Waits, yielding to the model, until `runs` reaches `n`.
fn until_runs(runs: &StdAtomicUsize, n: usize) {
    while runs.load(StdOrdering::SeqCst) < n {
        thread::yield_now();
    }
}

/// A pool ready for hand-offs, its dispatcher not started yet.
fn prepared_pool() -> Arc<BlockingPool> {
    let pool = Arc::new(BlockingPool::new(Duration::from_secs(5)));
    assert!(pool.prepare());
    pool
}

/// Runs `pool`'s dispatcher on a thread of the model.
fn start_dispatcher(pool: &Arc<BlockingPool>) -> thread::JoinHandle<()> {
    let pool = pool.clone();
    thread::spawn(move || pool.dispatch_loop())
}

/// Ends a model's pool: the dispatcher returns, idle workers leave.
fn close(pool: &BlockingPool) {
    pool.state.lock().closed = true;
    pool.dispatch.notify_one();
    pool.work.notify_all();
}

/// Two hand-offs from another thread while the dispatcher fills the queue, starts a worker
/// and goes to sleep: the second, which finds the dispatcher awake and does not notify it, is
/// still seen (invariant 5), and every function runs once.
#[test]
fn loom_hand_off_vs_the_dispatcher_going_to_sleep() {
    loom::model(|| {
        let pool = prepared_pool();
        let dispatcher = start_dispatcher(&pool);
        let runs = Arc::new(StdAtomicUsize::new(0));
        let handing = {
            let (pool, first, second) = (pool.clone(), counting(&runs), counting(&runs));
            thread::spawn(move || {
                assert!(pool.hand_off(first).is_ok());
                assert!(pool.hand_off(second).is_ok());
            })
        };
        handing.join().unwrap();
        until_runs(&runs, 2);
        close(&pool);
        dispatcher.join().unwrap();
        assert_eq!(runs.load(StdOrdering::SeqCst), 2);
    });
}

/// A function that hands off another while it runs: the worker, busy, looks for its next
/// function in the shards without `state` while the dispatcher fills them (and may start a
/// second worker, which may find the function taken and wait): the second function runs
/// once, whoever takes it (invariants 1, 3, 4).
#[test]
fn loom_busy_take_vs_fill() {
    loom::model(|| {
        let pool = prepared_pool();
        let dispatcher = start_dispatcher(&pool);
        let runs = Arc::new(StdAtomicUsize::new(0));
        let first = {
            let (pool, second) = (pool.clone(), counting(&runs));
            let runs = runs.clone();
            Job::new(
                Box::new(move || {
                    runs.fetch_add(1, StdOrdering::SeqCst);
                    assert!(pool.hand_off(second).is_ok());
                }),
                Origin::here("ctxkit-test-job"),
                None,
            )
        };
        assert!(pool.hand_off(first).is_ok());
        until_runs(&runs, 2);
        close(&pool);
        dispatcher.join().unwrap();
        assert_eq!(runs.load(StdOrdering::SeqCst), 2);
    });
}

/// A worker that finds nothing to do and leaves (its keep-alive spent at once, as under loom
/// every idle wait is) while the dispatcher fills the queue: either the dispatcher claims it
/// before it leaves and it runs the function, or it has left and the dispatcher starts
/// another (invariants 3, 6). The function runs once either way.
#[test]
fn loom_idle_exit_vs_claim() {
    loom::model(|| {
        let pool = prepared_pool();
        pool.state.lock().workers = 1;
        let worker = {
            let pool = pool.clone();
            thread::spawn(move || pool.work(false))
        };
        let runs = Arc::new(StdAtomicUsize::new(0));
        assert!(pool.hand_off(counting(&runs)).is_ok());
        let dispatcher = start_dispatcher(&pool);
        until_runs(&runs, 1);
        close(&pool);
        dispatcher.join().unwrap();
        worker.join().unwrap();
        assert_eq!(runs.load(StdOrdering::SeqCst), 1);
    });
}

/// `stop()` racing the cancel that hands the function off: it runs exactly when `stop()`
/// reports false (the pool's queue is drained by the model, no worker runs here).
#[test]
fn loom_stop_vs_cancel_hand_off() {
    loom::model(|| {
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        let runs = Arc::new(StdAtomicUsize::new(0));
        let after = {
            let runs = runs.clone();
            ctx.after_func(move || {
                runs.fetch_add(1, StdOrdering::SeqCst);
            })
        };
        let canceler = thread::spawn(move || cancel.cancel());
        let stopped = after.stop();
        canceler.join().unwrap();
        assert!(ctx.is_done());
        // What a worker would do: fill the queue and run it.
        let jobs: Vec<Job<Callback>> = {
            let mut state = POOL.state.lock();
            let (claimed, spawns) = POOL.fill(&mut state);
            assert_eq!(claimed, 0, "no worker waits here");
            assert!(spawns.is_empty(), "no async function here");
            POOL.shards
                .iter()
                .flat_map(|shard| std::mem::take(&mut shard.lock().jobs))
                .collect()
        };
        for job in jobs {
            (job.work)();
        }
        assert_eq!(runs.load(StdOrdering::SeqCst), usize::from(!stopped));
    });
}

/// An async function handed off while the dispatcher runs, and a leak check's look at the
/// queue meanwhile: the function is listed until its spawn has returned, so a look that finds
/// it unlisted finds it spawned (invariant 1); it is spawned once, by the dispatcher, and no
/// worker is started for it.
#[test]
fn loom_spawn_vs_a_look_at_the_queue() {
    loom::model(|| {
        let pool = prepared_pool();
        let dispatcher = start_dispatcher(&pool);
        let runs = Arc::new(StdAtomicUsize::new(0));
        assert!(pool.hand_off(spawning(&runs)).is_ok());
        let listed = pool.queued_units().len();
        let ran = runs.load(StdOrdering::SeqCst);
        assert!(
            listed == 1 || ran == 1,
            "missed: neither listed nor spawned"
        );
        until_runs(&runs, 1);
        close(&pool);
        dispatcher.join().unwrap();
        assert_eq!(runs.load(StdOrdering::SeqCst), 1);
        assert!(pool.queued_units().is_empty());
        assert_eq!(pool.state.lock().workers, 0, "a spawn needs no worker");
    });
}
