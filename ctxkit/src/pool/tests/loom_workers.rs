//! loom models of the long-lived pool's thread form (`workers.rs` driving `workers_core.rs`'s
//! `WorkersCore`): a submission waiting for room, a shutdown waiting for the workers, workers
//! parking while idle, and the cancel hook on the pool's context waking every parked party.
//! Each worker is a loom thread running the thread form's own worker loop (`workers::serve`);
//! the shared state and the cancel hook are made by `workers::make_shared`, as `Pool::start`
//! makes them.
//!
//! Run: `RUSTFLAGS="--cfg loom -C debug_assertions" LOOM_MAX_PREEMPTIONS=3
//! CARGO_TARGET_DIR=target/loom cargo test -p ctxkit --lib --release loom`
//!
//! `Workers` itself cannot run in a model: it starts its workers through `spawn.rs`, on std
//! threads. [`ModelWorkers`] is therefore a copy of `Workers`' submitting and shutting-down
//! side, making the same calls in the same order as `Workers::submit`, `try_submit`,
//! `accepted`, `shutdown` and the drop, with loom threads for the workers (which always start,
//! so the `NoWorker` path is left out).
//!
//! `shutdown` takes the pool by value, so in the thread form no submission can run
//! concurrently with it: the models' submissions come before the shutdown on the submitting
//! thread, and race the workers, the grace period and the pool's cancel.
//!
//! loom reports a deadlock when every thread is parked: that is how a lost wake-up (of a
//! waiting submission or shutdown, of an idle worker) shows.
//! A failing model aborts the test binary once its panic is printed (the drops that run while it
//! unwinds make loom operations after loom has stopped the execution): run a model alone
//! (`-- --exact pool::tests::...`) to see each one's result.

use std::sync::Mutex as Record;

use loom::thread;

use super::super::submit_error::{SubmitError, SubmitErrorKind};
use super::super::workers::{make_shared, serve, JobBody, Shared};
use super::super::workers_core::{Accepted, Refused, State};
use super::super::Pool;
use crate::context::{CancelContext, Context, Done};
use crate::sync::{self, Arc, Thread, Unpark};

/// The jobs that ran, in the order they started: a record for the checks, not part of the
/// protocol, so it is std's lock (loom does not explore it; it is never held across a loom
/// operation).
type Ran = Arc<Record<Vec<u32>>>;

/// The submitting side of a `Workers` (see the module docs), with loom threads for the
/// workers. Submissions come from one thread, so the handles need no lock here.
struct ModelWorkers {
    shared: Arc<Shared<u32, Thread>>,
    body: Arc<dyn JobBody<u32>>,
    handles: Vec<thread::JoinHandle<()>>,
    cancel: CancelContext,
    _hook: Done,
}

impl ModelWorkers {
    /// As `Pool::start`.
    fn start(
        pool: Pool,
        ctx: &Context,
        f: impl Fn(&Context, u32) + Send + Sync + 'static,
    ) -> ModelWorkers {
        let (shared, cancel, hook) = make_shared(&pool, ctx);
        ModelWorkers {
            shared,
            body: Arc::new(f),
            handles: Vec::new(),
            cancel,
            _hook: hook,
        }
    }

    /// As `Workers::submit`.
    fn submit(&mut self, ctx: &Context, job: u32) -> Result<(), SubmitError<u32>> {
        let mut job = job;
        let mut me = None;
        loop {
            let offered = self.shared.core.lock().submit(job);
            match offered {
                Ok((_, accepted)) => {
                    self.accepted(accepted);
                    return Ok(());
                }
                Err((Refused::Closed, refused)) => {
                    return Err(SubmitError::new(refused, SubmitErrorKind::Closed))
                }
                Err((Refused::Full, refused)) => job = refused,
            }
            let me = me.get_or_insert_with(sync::current_thread);
            let waited = ctx.block_until_or(|| {
                let mut core = self.shared.core.lock();
                if core.has_room() {
                    true
                } else {
                    core.wait(me);
                    false
                }
            });
            if let Some(error) = waited {
                self.shared.core.lock().unwait(me);
                return Err(SubmitError::new(job, SubmitErrorKind::Context(error)));
            }
        }
    }

    /// As `Workers::try_submit`.
    fn try_submit(&mut self, job: u32) -> Result<(), SubmitError<u32>> {
        let offered = self.shared.core.lock().submit(job);
        match offered {
            Ok((_, accepted)) => {
                self.accepted(accepted);
                Ok(())
            }
            Err((Refused::Closed, job)) => Err(SubmitError::new(job, SubmitErrorKind::Closed)),
            Err((Refused::Full, job)) => Err(SubmitError::new(job, SubmitErrorKind::Full)),
        }
    }

    /// As `Workers::accepted`, starting a worker on a loom thread.
    fn accepted(&mut self, accepted: Accepted<Thread>) {
        match accepted {
            Accepted::Queued => {}
            Accepted::Wake(worker) => worker.unpark(),
            Accepted::Start => {
                let shared = self.shared.clone();
                let body = self.body.clone();
                let id = self.handles.len() + 1;
                self.handles
                    .push(thread::spawn(move || serve(&shared, &*body, id)));
            }
        }
    }

    /// As `Workers::shutdown`: the jobs never started (in order of acceptance) and how many
    /// jobs failed.
    fn shutdown(mut self, ctx: &Context) -> (Vec<u32>, usize) {
        let mut wake = Vec::new();
        self.shared.core.lock().close(&mut wake);
        wake.into_iter().for_each(Unpark::unpark);
        let me = sync::current_thread();
        let in_time = ctx.block_until_or(|| {
            let mut core = self.shared.core.lock();
            if core.is_over() {
                true
            } else {
                core.wait(&me);
                false
            }
        });
        if in_time.is_some() {
            self.shared.cancel();
            self.cancel.cancel();
            self.shared.wait_over();
        }
        self.join();
        let (unrun, failed) = self.shared.core.lock().take_leftovers();
        (unrun, failed.len())
    }

    /// As `Workers::join`.
    fn join(&mut self) {
        for handle in self.handles.drain(..) {
            handle.join().unwrap();
        }
    }
}

impl Drop for ModelWorkers {
    /// As `Workers`' drop.
    fn drop(&mut self) {
        self.shared.cancel();
        self.cancel.cancel();
        self.shared.wait_over();
        self.join();
    }
}

/// A job body that records the job's start.
fn recording(ran: &Ran) -> impl Fn(&Context, u32) + Send + Sync + 'static {
    let ran = ran.clone();
    move |_ctx, job| ran.lock().unwrap().push(job)
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort_unstable();
    items
}

/// One worker, no queue: the second submission finds no room while the worker has not yet
/// taken the first job or runs it, and waits (invariant 4: the worker taking the job, idling or
/// leaving wakes it); it is accepted once the worker idles, and the worker is woken for it
/// (invariant 1): job 1 runs before the shutdown begins (it opens a latch the submitter waits
/// for), so the shutdown's own wake-up of idle workers cannot stand in for that one. The
/// shutdown then waits for the worker to leave.
#[test]
fn loom_workers_full_queue_vs_finishing_worker() {
    loom::model(|| {
        let ran = Ran::default();
        let (latch, open) = Context::background().with_cancel().into_parts();
        let body = {
            let record = recording(&ran);
            move |ctx: &Context, job: u32| {
                record(ctx, job);
                if job == 1 {
                    open.cancel();
                }
            }
        };
        let ctx = Context::background();
        let mut workers = ModelWorkers::start(Pool::new(1).queue(0), &ctx, body);
        workers.submit(&ctx, 0).unwrap();
        workers.submit(&ctx, 1).unwrap();
        latch.wait();
        assert_eq!(workers.shutdown(&ctx), (vec![], 0));
        assert_eq!(*ran.lock().unwrap(), [0, 1]);
    });
}

/// One worker, a queue of one: three submissions (the third may be refused as full, and then
/// comes back), then a shutdown whose grace period another thread ends at any point (before
/// the shutdown, while it waits, or after the queue is done): the workers run what is queued
/// until then (none is left unrun unless the grace period is over), the pool is canceled, and
/// every accepted job either ran exactly once or is in the shutdown's unrun, never both
/// (invariant 3). (loom does not reach a worker that took a job just before the shutdown's
/// cancel and then sees the context done, under any preemption bound: the cancel models below
/// check that hand-back.)
#[test]
fn loom_workers_shutdown_grace_vs_queued_jobs() {
    loom::model(|| {
        let ran = Ran::default();
        let ctx = Context::background();
        let mut workers = ModelWorkers::start(Pool::new(1).queue(1), &ctx, recording(&ran));
        workers.submit(&ctx, 0).unwrap();
        // The worker is on its way for job 0, runs it, or idles: room for one more.
        workers.try_submit(1).unwrap();
        let mut accepted = vec![0, 1];
        match workers.try_submit(2) {
            Ok(()) => accepted.push(2),
            Err(refused) => {
                assert_eq!(refused.kind(), SubmitErrorKind::Full);
                assert_eq!(refused.into_job(), 2);
            }
        }
        let (grace, end_grace) = ctx.with_cancel().into_parts();
        let ender = thread::spawn(move || end_grace.cancel());
        let (unrun, failed) = workers.shutdown(&grace);
        // Within the grace period every queued job runs: jobs are left only past its end.
        assert!(unrun.is_empty() || grace.is_done(), "jobs left in time");
        ender.join().unwrap();
        assert_eq!(failed, 0);
        assert!(unrun.windows(2).all(|w| w[0] < w[1]), "unrun in order");
        let ran = ran.lock().unwrap().clone();
        assert!(
            ran.windows(2).all(|w| w[0] < w[1]),
            "ran twice or out of order"
        );
        let mut accounted = ran;
        accounted.extend(&unrun);
        assert_eq!(sorted(accounted), accepted, "ran or unrun: exactly once");
    });
}

/// The pool's parent context is canceled by another thread while job 1 is queued behind job 0 (one
/// worker, a queue of one). Job 0 returns only once it sees the context done, so when its
/// worker comes back the context is done: whether or not the cancel hook has canceled the core
/// yet, the worker must not start job 1 (it checks before each job and hands it back,
/// invariant 2), and it leaves on its own (joined here before the pool's drop). Job 1 is then
/// unrun, or was refused as closed with its job back.
#[test]
fn loom_workers_cancel_vs_queued_job() {
    loom::model(|| {
        let (parent, cancel_parent) = Context::background().with_cancel().into_parts();
        let ran = Ran::default();
        let body = {
            let record = recording(&ran);
            move |ctx: &Context, job: u32| {
                record(ctx, job);
                if job == 0 {
                    ctx.wait();
                }
            }
        };
        let mut workers = ModelWorkers::start(Pool::new(1).queue(1), &parent, body);
        let canceler = thread::spawn(move || cancel_parent.cancel());
        let mut accepted = Vec::new();
        for job in 0..2 {
            match workers.try_submit(job) {
                Ok(()) => accepted.push(job),
                Err(refused) => {
                    assert_eq!(refused.kind(), SubmitErrorKind::Closed);
                    assert_eq!(refused.into_job(), job);
                }
            }
        }
        canceler.join().unwrap();
        workers.join();
        let (unrun, _) = workers.shared.core.lock().take_leftovers();
        let ran = ran.lock().unwrap().clone();
        assert!(
            !ran.contains(&1),
            "job 1 started after its worker saw the context done"
        );
        let mut accounted = ran;
        accounted.extend(&unrun);
        assert_eq!(sorted(accounted), accepted, "ran or unrun: exactly once");
    });
}

/// The pool's context is canceled by another thread (through the cancel hook) while the
/// second submission may wait for room and the worker may idle after the first job: the
/// submission returns (accepted, or refused as closed with its job back), and the worker
/// leaves on its own: it is joined here before the pool's drop, which would cancel the core
/// itself. Every job ran once, or is left unrun, or was refused.
#[test]
fn loom_workers_cancel_hook_vs_waiting_submit_and_idle_worker() {
    loom::model(|| {
        let (parent, cancel_parent) = Context::background().with_cancel().into_parts();
        let ran = Ran::default();
        let mut workers = ModelWorkers::start(Pool::new(1).queue(0), &parent, recording(&ran));
        let ctx = Context::background();
        let canceler = thread::spawn(move || cancel_parent.cancel());
        let mut accepted = Vec::new();
        for job in 0..2 {
            match workers.submit(&ctx, job) {
                Ok(()) => accepted.push(job),
                Err(refused) => {
                    assert_eq!(refused.kind(), SubmitErrorKind::Closed);
                    assert_eq!(refused.into_job(), job);
                }
            }
        }
        canceler.join().unwrap();
        workers.join();
        let (unrun, failed) = {
            let mut core = workers.shared.core.lock();
            assert_eq!(core.state(), State::Canceled);
            assert!(core.is_over());
            core.take_leftovers()
        };
        assert!(failed.is_empty());
        let mut accounted = ran.lock().unwrap().clone();
        accounted.extend(&unrun);
        assert_eq!(sorted(accounted), accepted, "ran or unrun: exactly once");
    });
}

/// As above, with the worker held by job 0 until after the second submission returns (the job
/// ignores the pool's context): that submission finds no room, and only the cancel hook can
/// wake it (the worker neither takes a job, nor idles, nor leaves meanwhile). It must return,
/// refused as closed with its job back.
#[test]
fn loom_workers_cancel_hook_vs_waiting_submit_while_the_worker_is_held() {
    loom::model(|| {
        let (parent, cancel_parent) = Context::background().with_cancel().into_parts();
        let (gate, open) = Context::background().with_cancel().into_parts();
        let ran = Ran::default();
        let body = {
            let ran = ran.clone();
            move |_ctx: &Context, job: u32| {
                ran.lock().unwrap().push(job);
                gate.wait();
            }
        };
        let mut workers = ModelWorkers::start(Pool::new(1).queue(0), &parent, body);
        let ctx = Context::background();
        workers.submit(&ctx, 0).unwrap();
        let canceler = thread::spawn(move || cancel_parent.cancel());
        let refused = workers.submit(&ctx, 1).unwrap_err();
        assert_eq!(refused.kind(), SubmitErrorKind::Closed);
        assert_eq!(refused.into_job(), 1);
        open.cancel();
        canceler.join().unwrap();
        workers.join();
        let (unrun, _) = workers.shared.core.lock().take_leftovers();
        // Job 0 ran, or the worker saw the pool canceled before it started it.
        let mut accounted = ran.lock().unwrap().clone();
        accounted.extend(&unrun);
        assert_eq!(accounted, [0]);
    });
}
