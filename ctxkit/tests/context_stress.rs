//! A randomized stress test of the cancel tree: four threads
//! spend about two seconds creating, cloning, canceling, waiting on (blocking `wait_timeout` and
//! async `done()` on `futures`' executor) and dropping contexts at random. Checked:
//!
//! * when a `cancel()` returns, every descendant of the canceled node reports done;
//! * `is_done`, `err` and `cause` agree with each other;
//! * no waiter sleeps through a cancel: every wait returns `Some` error, and returns within a
//!   generous bound of the final cancel of the root that every context descends from;
//! * afterwards the live-node count is back to its start.
//!
//! One test, in its own process, because of the process-wide node count. The seed is printed;
//! set `CTXKIT_STRESS_SEED` to replay a run's choices (thread timing still varies).

mod common;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{clock_seed, XorShift};
use ctxkit::context::__live_nodes;
use ctxkit::{CancelHandle, Context, Error};

const THREADS: u64 = 4;
const RUN_FOR: Duration = Duration::from_secs(2);
const MAX_POOL: usize = 400;
const MAX_DEPTH: usize = 24;
const MAX_WAITERS: usize = 24;
/// How long a waiter may wait at most; longer than the run plus the bound below.
const WAIT_LIMIT: Duration = Duration::from_secs(9);
/// How soon after the final cancel every waiter must be back.
const WAKE_BOUND: Duration = Duration::from_secs(5);

struct Entry {
    id: u64,
    /// Ids of the entry's cancelable ancestors, outermost first.
    ancestors: Arc<Vec<u64>>,
    ctx: Context,
    /// The handle, in one of the entry's clones only.
    handle: Option<CancelHandle>,
}

#[derive(Default)]
struct Shared {
    pool: Vec<Entry>,
    next_id: u64,
}

type WaitResult = (Option<Error>, Instant, String);

fn check_consistent(ctx: &Context) {
    // A context may become done between the reads, never undone: read in that order.
    let err = ctx.err();
    let cause = ctx.cause();
    let done = ctx.is_done();
    if let Some(err) = err {
        assert!(done, "err() is Some but is_done() is false: {ctx:?}");
        let cause = cause.unwrap_or_else(|| panic!("err() is Some but cause() is None: {ctx:?}"));
        assert_eq!(cause.error(), err, "cause and err disagree: {ctx:?}");
    }
}

fn worker(
    seed: u64,
    root: Context,
    shared: Arc<Mutex<Shared>>,
    stop_at: Instant,
) -> Vec<thread::JoinHandle<WaitResult>> {
    let mut rng = XorShift::new(seed);
    let mut waiters = Vec::new();
    while Instant::now() < stop_at {
        let roll = rng.below(100);
        let mut s = shared.lock().unwrap();
        let len = s.pool.len();
        if roll < 35 && len < MAX_POOL {
            // Create a child of a random entry, or of the root.
            let (parent, ancestors) = match (len > 0 && rng.below(5) != 0).then(|| rng.below(len)) {
                Some(i) if s.pool[i].ancestors.len() < MAX_DEPTH => (s.pool[i].ctx.clone(), {
                    let mut a = (*s.pool[i].ancestors).clone();
                    a.push(s.pool[i].id);
                    a
                }),
                _ => (root.clone(), Vec::new()),
            };
            s.next_id += 1;
            let id = s.next_id;
            drop(s);
            let (ctx, handle) = match rng.below(5) {
                0 => parent.with_cancel(),
                1 => parent.with_timeout(Duration::from_millis(1 + rng.below(100) as u64)),
                2 => parent.with_timeout(Duration::from_secs(3600)),
                3 => parent.with_cancel_cause(),
                _ => parent.with_value(id).with_cancel(),
            }
            .into_parts();
            let handle = if rng.below(5) == 0 {
                handle.disarm();
                None
            } else {
                Some(handle)
            };
            let entry = Entry {
                id,
                ancestors: Arc::new(ancestors),
                ctx,
                handle,
            };
            shared.lock().unwrap().pool.push(entry);
        } else if roll < 50 && len > 0 {
            // Cancel a random entry, then check every descendant in the pool.
            let i = rng.below(len);
            let Some(handle) = s.pool[i].handle.take() else {
                continue;
            };
            let id = s.pool[i].id;
            drop(s);
            if rng.below(2) == 0 {
                handle.cancel_with(format!("stress cancel {id}"));
            } else {
                handle.cancel();
            }
            let descendants: Vec<Context> = shared
                .lock()
                .unwrap()
                .pool
                .iter()
                .filter(|e| e.id == id || e.ancestors.contains(&id))
                .map(|e| e.ctx.clone())
                .collect();
            for d in &descendants {
                assert!(
                    d.is_done(),
                    "seed={seed}: a descendant of canceled {id} is not done: {d:?}"
                );
            }
        } else if roll < 75 && len > 0 {
            // Drop a random entry (its handle, if any, cancels on drop).
            let entry = s.pool.swap_remove(rng.below(len));
            drop(s);
            drop(entry);
        } else if roll < 85 && len > 0 {
            // Clone an entry: clones are dropped later in any order.
            let i = rng.below(len);
            let clone = Entry {
                id: s.pool[i].id,
                ancestors: s.pool[i].ancestors.clone(),
                ctx: s.pool[i].ctx.clone(),
                handle: None,
            };
            s.pool.push(clone);
        } else if roll < 93 && len > 0 {
            // Wait on an entry from another thread, blocking or async.
            waiters.retain(|w: &thread::JoinHandle<WaitResult>| !w.is_finished());
            let ctx = s.pool[rng.below(len)].ctx.clone();
            drop(s);
            if waiters.len() >= MAX_WAITERS {
                continue;
            }
            let blocking = rng.below(2) == 0;
            waiters.push(thread::spawn(move || {
                let got = if blocking {
                    ctx.wait_timeout(WAIT_LIMIT)
                } else {
                    let limit = Context::background().with_timeout(WAIT_LIMIT);
                    futures::executor::block_on(limit.run(ctx.done())).ok()
                };
                (got, Instant::now(), format!("{ctx:?}"))
            }));
        } else if len > 0 {
            let ctx = s.pool[rng.below(len)].ctx.clone();
            drop(s);
            check_consistent(&ctx);
        }
    }
    waiters
}

#[test]
fn random_create_cancel_wait_drop() {
    let seed: u64 = std::env::var("CTXKIT_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(clock_seed);
    println!("context_stress seed: {seed} (replay with CTXKIT_STRESS_SEED={seed})");
    let start_nodes = __live_nodes();

    let (root, cancel_root) = Context::background().with_cancel().into_parts();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let stop_at = Instant::now() + RUN_FOR;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (root, shared) = (root.clone(), shared.clone());
            let seed = seed.wrapping_add(t.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            thread::spawn(move || worker(seed, root, shared, stop_at))
        })
        .collect();
    let mut waiters = Vec::new();
    for w in workers {
        waiters.extend(
            w.join()
                .unwrap_or_else(|_| panic!("a worker panicked (seed={seed})")),
        );
    }

    // Every context descends from the root: canceling it must wake every waiter promptly.
    let pool_len = shared.lock().unwrap().pool.len();
    cancel_root.cancel();
    let canceled_at = Instant::now();
    for entry in &shared.lock().unwrap().pool {
        assert!(
            entry.ctx.is_done(),
            "seed={seed}: not done after the root's cancel: {:?}",
            entry.ctx
        );
        check_consistent(&entry.ctx);
    }
    assert_eq!(
        root.__child_count(),
        0,
        "seed={seed}: the canceled root still lists children"
    );
    let waiter_count = waiters.len();
    for w in waiters {
        let (got, finished, ctx) = w
            .join()
            .unwrap_or_else(|_| panic!("a waiter panicked (seed={seed})"));
        assert!(got.is_some(), "seed={seed}: a waiter timed out on {ctx}");
        assert!(
            finished <= canceled_at + WAKE_BOUND,
            "seed={seed}: a waiter slept through its cancel ({:?} after the root's): {ctx}",
            finished.saturating_duration_since(canceled_at)
        );
    }
    println!("pool at the end: {pool_len} entries; {waiter_count} waiters checked");

    drop(shared);
    drop(root);
    drop(cancel_root);
    if let Some(start) = start_nodes {
        // Deadlines that waiters armed are released when they fire (at most 100 ms) or when
        // the root's cancel completed them; allow for both.
        let deadline = Instant::now() + Duration::from_secs(10);
        while __live_nodes() != Some(start) {
            assert!(
                Instant::now() < deadline,
                "seed={seed}: {:?} live nodes, {start} at the start",
                __live_nodes()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}
