//! loom models of the group's scheduler (`scheduler.rs`) driven as the thread form drives it
//! (`scope.rs`: worker threads that park while idle, a spawn that parks for a free slot, the end
//! of `scope` that parks until nothing is pending), without `std::thread::scope`: each worker is
//! a loom thread running the thread form's own worker loop.
//!
//! Run: `RUSTFLAGS="--cfg loom -C debug_assertions" LOOM_MAX_PREEMPTIONS=3
//! CARGO_TARGET_DIR=target/loom cargo test -p ctxkit --lib --release loom`
//!
//! loom reports a deadlock when every thread is parked: that is how a lost wake-up (of the
//! waiter, of an idle worker, of a waiting spawn) shows. The async form's workers run the same
//! scheduler steps (`Shared::finish`, `poll_idle`, `poll_settled`, `poll_slot`), parking by
//! returning `Pending` instead.

use loom::thread;

use super::super::scheduler::NewWorker;
use super::super::scope::{spawn_when_free, work, Job, Shared, WhenFree};
use crate::context::{Context, Error};
use crate::sync::{Arc, AtomicBool, Ordering::SeqCst};

type Group = Arc<Shared<'static, u32, Error>>;

fn group(parent: &Context, limit: Option<usize>) -> Group {
    let (ctx, cancel) = parent.with_cancel().into_parts();
    let shared = Arc::new(Shared::new(Some(ctx), Some(cancel)));
    shared
        .set_limit(limit.and_then(std::num::NonZeroUsize::new))
        .unwrap();
    shared
}

/// Starts the worker the scheduler asked for, as `Scope::start` does, on a loom thread.
fn start(
    shared: &Group,
    new: Option<NewWorker<Job<'static, u32, Error>>>,
) -> Option<thread::JoinHandle<()>> {
    let NewWorker { id, index, job } = new?;
    let shared = shared.clone();
    Some(thread::spawn(move || work(&shared, id, index, job)))
}

/// Waits as the async `Group::wait` does, with a parked thread for its task: until nothing of
/// the round is pending (scheduler invariant 2).
fn settle(shared: &Group) {
    let me = crate::sync::current_thread();
    while !shared.poll_settled(&me) {
        crate::sync::park();
    }
}

/// The end of a round as the async `Group::wait` does it: settle, then end the round and take
/// the results at once, with the workers possibly still finishing their last step (`scope`
/// joins its threads first, which would hide an ordering bug of the scheduler); then retire the
/// workers and join them.
fn end(
    shared: &Group,
    workers: Vec<thread::JoinHandle<()>>,
    spawned: usize,
) -> Result<Vec<u32>, Error> {
    settle(shared);
    let (mut slots, skipped) = shared.end_round();
    let results = slots.take_first(spawned, skipped).ok().unwrap();
    shared.retire();
    for worker in workers {
        worker.join().unwrap();
    }
    results
}

/// The last task recording its outcome races the end of `scope` checking `pending` (scheduler
/// invariants 1 and 2): the end returns only once both outcomes are recorded, and never misses
/// the wake-up; the idle workers then leave when retired. Also covers the hand-off of task 1 to
/// worker 0 when that one idled first.
#[test]
fn loom_last_task_vs_settle() {
    loom::model(|| {
        let shared = group(&Context::background(), None);
        let workers = (0..2u32)
            .filter_map(|i| {
                let job: Job<'static, u32, Error> = Box::new(move |_| Ok(i));
                start(&shared, shared.spawn(i as usize, job))
            })
            .collect::<Vec<_>>();
        // Task 1 went to a new worker, or to worker 0 if that one already idled.
        assert!(!workers.is_empty());
        assert_eq!(end(&shared, workers, 2), Ok(vec![0, 1]));
    });
}

/// As above with a failing task: `pending` reaches zero only after the failure has canceled
/// the context (scheduler invariant 1), so when the end of `scope` returns, the context's cause
/// is the failure's (not the plain cancel that ends every round).
#[test]
fn loom_failing_last_task_vs_settle() {
    loom::model(|| {
        let shared = group(&Context::background(), None);
        let ok: Job<'static, u32, Error> = Box::new(|_| Ok(0));
        let failing: Job<'static, u32, Error> = Box::new(|_| Err(Error::DeadlineExceeded));
        let workers = [ok, failing]
            .into_iter()
            .enumerate()
            .filter_map(|(i, job)| start(&shared, shared.spawn(i, job)))
            .collect::<Vec<_>>();
        assert_eq!(end(&shared, workers, 2), Err(Error::DeadlineExceeded));
        assert_failure_is_the_cause(&shared);
    });
}

/// The group's context was canceled by the failure (its cause is a `TaskFailed` with the
/// error's text), not by the end of the round.
fn assert_failure_is_the_cause(shared: &Group) {
    let cause = shared.context().unwrap().cause().unwrap();
    let failed = cause.downcast_ref::<crate::group::TaskFailed>();
    assert_eq!(
        failed.map(ToString::to_string).as_deref(),
        Some("context deadline exceeded")
    );
}

/// The end of `scope`: close the scheduler while the last tasks finish (task 1 handed to an
/// idle worker 0, or to a new worker), join the workers, read the outcomes. Every worker
/// leaves (loom reports a deadlock if an idle one is never woken, or one idles after the
/// close), and by then every task is recorded (scheduler invariant 3).
#[test]
fn loom_close_vs_last_tasks() {
    loom::model(|| {
        let shared = group(&Context::background(), None);
        let workers = (0..2u32)
            .filter_map(|i| {
                let job: Job<'static, u32, Error> = Box::new(move |_| Ok(i));
                start(&shared, shared.spawn(i as usize, job))
            })
            .collect::<Vec<_>>();
        shared.close();
        for worker in workers {
            worker.join().unwrap();
        }
        let (mut slots, skipped) = shared.end_round();
        assert_eq!(slots.take_first(2, skipped).ok().unwrap(), Ok(vec![0, 1]));
    });
}

/// Under a limit of 1, a spawn waits for the slot that the running task holds; the task ends
/// (successfully) and its worker idles: the waiting spawn must be woken (scheduler invariant
/// 4), its task handed to that worker, and both results come back.
#[test]
fn loom_slot_freed_vs_waiting_spawn() {
    loom::model(|| {
        let shared = group(&Context::background(), Some(1));
        let first: Job<'static, u32, Error> = Box::new(|_| Ok(10));
        let mut workers: Vec<_> = start(&shared, shared.spawn(0, first)).into_iter().collect();
        let second: Job<'static, u32, Error> = Box::new(|_| Ok(20));
        match spawn_when_free(&shared, 1, second) {
            WhenFree::Spawned(new) => workers.extend(start(&shared, new)),
            WhenFree::GaveUp(_) => {
                panic!("the context is never done here: the spawn must get its slot")
            }
        }
        assert_eq!(end(&shared, workers, 2), Ok(vec![10, 20]));
    });
}

/// conc#88: under a limit of 1, the running task holds the slot and fails; a spawn waiting for
/// that slot returns without its task ever running, whether it wakes for the cancel or for the
/// slot, and the group ends with the failure.
#[test]
fn loom_failing_task_vs_waiting_spawn() {
    loom::model(|| {
        let shared = group(&Context::background(), Some(1));
        let first: Job<'static, u32, Error> = Box::new(|_| Err(Error::DeadlineExceeded));
        let mut workers: Vec<_> = start(&shared, shared.spawn(0, first)).into_iter().collect();
        let ran = Arc::new(AtomicBool::new(false));
        let second: Job<'static, u32, Error> = {
            let ran = ran.clone();
            Box::new(move |_| {
                ran.store(true, SeqCst);
                Ok(20)
            })
        };
        if let WhenFree::Spawned(new) = spawn_when_free(&shared, 1, second) {
            // It found the slot only after the failure freed it: handed, never run.
            workers.extend(start(&shared, new));
        }
        assert_eq!(end(&shared, workers, 2), Err(Error::DeadlineExceeded));
        assert!(!ran.load(SeqCst), "a task spawned after the failure ran");
        assert_failure_is_the_cause(&shared);
    });
}

/// conc#88, the slot never freeing: the running task waits for something the spawner does
/// only after its spawn returns, and the parent is canceled meanwhile. The waiting spawn must
/// return (woken by the context alone), without its task running.
#[test]
fn loom_cancel_vs_waiting_spawn_while_the_slot_is_held() {
    loom::model(|| {
        let (parent, cancel_parent) = Context::background().with_cancel().into_parts();
        let shared = group(&parent, Some(1));
        let (gate, open) = Context::background().with_cancel().into_parts();
        let first: Job<'static, u32, Error> = Box::new(move |_| {
            gate.wait(); // ignores the group's context
            Ok(10)
        });
        let mut workers: Vec<_> = start(&shared, shared.spawn(0, first)).into_iter().collect();
        let canceler = thread::spawn(move || cancel_parent.cancel());
        let second: Job<'static, u32, Error> = Box::new(|_| Ok(20));
        assert!(
            matches!(spawn_when_free(&shared, 1, second), WhenFree::GaveUp(_)),
            "the slot is held until after the spawn: only the cancel can end it"
        );
        open.cancel();
        canceler.join().unwrap();
        assert_eq!(
            end(&shared, workers.drain(..).collect(), 2),
            Err(Error::Canceled)
        );
    });
}
