//! The thread form of the long-lived pool: [`Pool::start`] and [`Workers`], driving
//! `workers_core.rs`'s [`WorkersCore`] from submitting threads and from worker threads started
//! through `spawn`.
//!
//! # Invariants
//!
//! Those of [`WorkersCore`], plus:
//!
//! 1. The pool's context being done is seen by the core at once, not only when a worker next
//!    looks: a waker registered on the context's [`Done`] cancels the core and wakes every
//!    parked party (the canceling thread runs it, after the context's locks are released). It
//!    holds the shared state weakly, so it keeps nothing alive.
//! 2. Every worker thread's handle is in `handles` from its start; `shutdown` and the drop join
//!    them all after the core says the pool is over (or, for the drop, after canceling). No
//!    worker outlives its `Workers`.
//!
//! # Lock order
//!
//! `Shared::core`, a leaf: no user code runs under it (jobs run and are dropped outside it;
//! tokens are unparked after it is released). `Workers::handles` is taken alone, or before
//! the spawn registry's lock (a worker is started under it, so that its number is unique).

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context as TaskContext, Wake, Waker};
use std::thread::JoinHandle;

use super::job_failed::JobFailed;
use super::submit_error::{ShutdownReport, SubmitError, SubmitErrorKind};
use super::workers_core::{Accepted, Refused, WorkerStep, WorkersCore};
use super::Pool;
use crate::context::{CancelContext, Context, Done};
use crate::panics::panic_message;
use crate::spawn::{self, Origin};
use crate::sync::{self, Arc, Mutex, Thread, Unpark, Weak};

/// The state the submitters, the workers and the cancel hook share (both forms: `P` is a
/// parked thread or a task's waker).
pub(super) struct Shared<J, P> {
    pub(super) core: Mutex<WorkersCore<J, P>>,
    /// The pool's context (a child of the one passed to `start`), handed to every job.
    pub(super) ctx: Context,
}

impl<J, P: Unpark> Shared<J, P> {
    /// Cancels the core and wakes everyone parked on it.
    pub(super) fn cancel(&self) {
        let mut wake = Vec::new();
        self.core.lock().cancel(&mut wake);
        wake.into_iter().for_each(Unpark::unpark);
    }
}

thread_local! {
    /// The shared state of the pool whose worker this thread is (its address), if any: a
    /// pool dropped or shut down from inside one of its own jobs must not wait for itself.
    static WORKER_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl<J> Shared<J, Thread> {
    /// Whether the calling thread is one of this pool's workers.
    fn on_own_worker(&self) -> bool {
        WORKER_OF.with(std::cell::Cell::get) == self as *const Self as usize
    }

    /// Parks the calling thread until the pool is over (invariant 2's precondition), but for
    /// the caller's own worker if it is one.
    pub(super) fn wait_over(&self) {
        let own = usize::from(self.on_own_worker());
        let me = sync::current_thread();
        loop {
            {
                let mut core = self.core.lock();
                if core.is_over_but(own) {
                    return;
                }
                core.wait(&me);
            }
            sync::park();
        }
    }
}

/// A pool's shared state and its context, with the cancel hook registered (invariant 1).
pub(super) fn make_shared<J, P>(
    pool: &Pool,
    ctx: &Context,
) -> (Arc<Shared<J, P>>, CancelContext, Done)
where
    J: Send + 'static,
    P: Unpark + Send + Sync + 'static,
{
    let cancel = ctx.with_cancel();
    let shared = Arc::new(Shared {
        core: Mutex::new(WorkersCore::new(pool.workers, pool.queue)),
        ctx: cancel.context().clone(),
    });
    let waker = Waker::from(Arc::new(CancelHook(Arc::downgrade(&shared))));
    let mut hook = cancel.done();
    if Pin::new(&mut hook)
        .poll(&mut TaskContext::from_waker(&waker))
        .is_ready()
    {
        shared.cancel();
    }
    (shared, cancel, hook)
}

/// Invariant 1: cancels the core when the pool's context is done.
struct CancelHook<J, P>(Weak<Shared<J, P>>);

impl<J, P> Wake for CancelHook<J, P>
where
    J: Send + 'static,
    P: Unpark + Send + Sync + 'static,
{
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.0.upgrade() {
            shared.cancel();
        }
    }
}

/// What a worker runs: the user's function, behind one virtual call per job.
pub(super) trait JobBody<J>: Send + Sync {
    fn run(&self, ctx: &Context, job: J);
}

impl<J, F: Fn(&Context, J) + Send + Sync> JobBody<J> for F {
    fn run(&self, ctx: &Context, job: J) {
        self(ctx, job);
    }
}

/// A worker thread's life: exchange, run the job, exchange again, until told to leave.
pub(super) fn serve<J>(shared: &Shared<J, Thread>, body: &dyn JobBody<J>, id: usize) {
    let _id = super::worker_id::enter(id);
    WORKER_OF.with(|of| of.set(shared as *const Shared<J, Thread> as usize));
    let me = sync::current_thread();
    let mut looking = true;
    let mut panicked = None;
    let mut not_started = None;
    let mut context_done = false;
    let mut wake = Vec::new();
    loop {
        let step = shared.core.lock().worker_exchange(
            &me,
            looking,
            panicked.take(),
            not_started.take(),
            context_done,
            &mut wake,
        );
        wake.drain(..).for_each(Unpark::unpark);
        looking = false;
        match step {
            WorkerStep::Leave => return,
            WorkerStep::Park => {
                sync::park();
                looking = true;
            }
            WorkerStep::Run(index, job) => {
                if shared.ctx.is_done() {
                    not_started = Some((index, job));
                    context_done = true;
                    continue;
                }
                let ran = catch_unwind(AssertUnwindSafe(|| body.run(&shared.ctx, job)));
                if let Err(payload) = ran {
                    panicked = Some(JobFailed::panicked(index, panic_message(&*payload)));
                }
            }
        }
    }
}

/// A long-lived pool of worker threads, made by [`Pool::start`]: jobs are submitted over time
/// into a bounded queue and run by the pool's function, each seeing the pool's context.
///
/// * [`submit`](Workers::submit) waits while the queue is full, and gives up (handing the job
///   back) when its context is done; [`try_submit`](Workers::try_submit) hands the job back at
///   once when the queue is full.
/// * [`shutdown`](Workers::shutdown) takes no more jobs, runs what is queued until its context
///   is done, then cancels the pool and returns the jobs that never ran (and the jobs' panics).
/// * Once the pool's context is done (the context passed to `start` is, or the pool is
///   dropped), no queued job starts and submissions are refused.
/// * A job that panics is reported in the shutdown's [`ShutdownReport::failed`]; its worker
///   goes on.
///
/// Dropping it cancels the pool's context, drops the queued jobs and joins the workers: the
/// drop waits for the jobs that are running to return. Dropped (or shut down) from inside one
/// of its own jobs (a job holding an `Arc<Workers>`), it waits for the other workers only: the
/// worker it runs on leaves when that job returns. `Workers` is `Sync`: share it (`&` or `Arc`)
/// among submitting threads.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use ctxkit::pool::Pool;
/// use ctxkit::Context;
///
/// let ctx = Context::background();
/// let (results, received) = mpsc::channel();
/// let workers = Pool::new(3).queue(100).start(&ctx, move |_ctx, n: u64| {
///     results.send(n * n).unwrap();
/// });
/// for n in 1..=7 {
///     workers.submit(&ctx, n).unwrap();
/// }
/// let report = workers.shutdown(&ctx); // runs everything queued, then joins
/// assert!(report.unrun.is_empty());
/// let mut squares: Vec<u64> = received.iter().collect(); // ends: the senders are gone
/// squares.sort();
/// assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49]);
/// ```
pub struct Workers<J> {
    shared: Arc<Shared<J, Thread>>,
    body: Arc<dyn JobBody<J>>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    origin: Origin,
    /// Cancels the pool's context on drop.
    cancel: CancelContext,
    /// The registration of the cancel hook (invariant 1); dropping it deregisters.
    _hook: Done,
}

impl Pool {
    /// Starts a long-lived pool that runs `f` on each submitted job (see [`Workers`]). Its
    /// workers start as jobs arrive, up to the pool's size.
    ///
    /// `f` gets the pool's context (a child of `ctx`, canceled when the pool shuts down past
    /// its deadline or is dropped) and the job. Where results go is up to `f` (a channel, a
    /// shared map); for results per input, use [`map`](Pool::map).
    ///
    /// # Examples
    ///
    /// See [`Workers`].
    #[track_caller]
    pub fn start<J, F>(&self, ctx: &Context, f: F) -> Workers<J>
    where
        J: Send + 'static,
        F: Fn(&Context, J) + Send + Sync + 'static,
    {
        let (shared, cancel, hook) = make_shared(self, ctx);
        Workers {
            shared,
            body: Arc::new(f),
            handles: Mutex::new(Vec::new()),
            origin: Origin::here(spawn::POOL_THREAD),
            cancel,
            _hook: hook,
        }
    }
}

impl<J: Send + 'static> Workers<J> {
    /// Submits `job`, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// The job comes back in a [`SubmitError`]: [`SubmitErrorKind::Context`] if `ctx` is done
    /// before the queue has room, [`SubmitErrorKind::Closed`] if the pool is shutting down or
    /// its context is done, [`SubmitErrorKind::NoWorker`] if no worker runs and the OS refused
    /// to start one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::pool::{Pool, SubmitErrorKind};
    /// use ctxkit::{Context, Error};
    ///
    /// let ctx = Context::background();
    /// // One worker that never finishes until the pool is canceled, and no queue.
    /// let workers = Pool::new(1).queue(0).start(&ctx, |ctx, _job: u32| {
    ///     ctx.wait();
    /// });
    /// workers.submit(&ctx, 1).unwrap();
    /// let impatient = ctx.with_timeout(Duration::from_millis(20));
    /// let refused = workers.submit(&impatient, 2).unwrap_err();
    /// assert_eq!(refused.kind(), SubmitErrorKind::Context(Error::DeadlineExceeded));
    /// assert_eq!(refused.into_job(), 2);
    /// ```
    pub fn submit(&self, ctx: &Context, job: J) -> Result<(), SubmitError<J>> {
        let mut job = job;
        let mut me = None;
        loop {
            let offered = self.shared.core.lock().submit(job);
            match offered {
                Ok((index, accepted)) => return self.accepted(index, accepted),
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

    /// Submits `job` if the queue has room now.
    ///
    /// # Errors
    ///
    /// The job comes back in a [`SubmitError`]: [`SubmitErrorKind::Full`] if the queue is
    /// full, [`SubmitErrorKind::Closed`] if the pool is shutting down or its context is done,
    /// [`SubmitErrorKind::NoWorker`] if no worker runs and the OS refused to start one.
    ///
    /// # Examples
    ///
    /// See [`SubmitError`].
    pub fn try_submit(&self, job: J) -> Result<(), SubmitError<J>> {
        let offered = self.shared.core.lock().submit(job);
        match offered {
            Ok((index, accepted)) => self.accepted(index, accepted),
            Err((Refused::Closed, job)) => Err(SubmitError::new(job, SubmitErrorKind::Closed)),
            Err((Refused::Full, job)) => Err(SubmitError::new(job, SubmitErrorKind::Full)),
        }
    }

    /// Does what an accepted submission asks: wakes or starts a worker.
    fn accepted(&self, index: u64, accepted: Accepted<Thread>) -> Result<(), SubmitError<J>> {
        match accepted {
            Accepted::Queued => Ok(()),
            Accepted::Wake(worker) => {
                worker.unpark();
                Ok(())
            }
            Accepted::Start => {
                let shared = self.shared.clone();
                let body = self.body.clone();
                // Numbered under the handles' lock, so that numbers are unique.
                let mut handles = self.handles.lock();
                let id = handles.len() + 1;
                let spawned =
                    spawn::try_spawn_named(self.origin, move || serve(&shared, &*body, id));
                match spawned {
                    Ok(handle) => {
                        handles.push(handle);
                        Ok(())
                    }
                    Err((error, _)) => {
                        drop(handles);
                        let mut core = self.shared.core.lock();
                        if core.start_failed() {
                            if let Some(job) = core.withdraw(index) {
                                return Err(SubmitError::no_worker(job, &error));
                            }
                        }
                        Ok(())
                    }
                }
            }
        }
    }

    /// Stops taking jobs, lets the workers run what is queued until `ctx` is done, then cancels
    /// the pool (no queued job starts; running jobs see the pool's context done), waits for the
    /// workers to return and joins them. Returns the jobs that never started and the panics of
    /// those that ran. With `Context::background()` it waits for every queued job.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::pool::Pool;
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background();
    /// // One slow worker: most jobs are still queued when the grace period ends.
    /// let workers = Pool::new(1).start(&ctx, |ctx, _job: u32| {
    ///     let _ = ctx.blocking_sleep(Duration::from_millis(20));
    /// });
    /// for job in 0..10 {
    ///     workers.submit(&ctx, job).unwrap();
    /// }
    /// let grace = ctx.with_timeout(Duration::from_millis(30));
    /// let report = workers.shutdown(&grace);
    /// assert!(!report.unrun.is_empty());
    /// assert!(report.unrun.windows(2).all(|w| w[0] < w[1]), "in submission order");
    /// ```
    pub fn shutdown(self, ctx: &Context) -> ShutdownReport<J> {
        let mut wake = Vec::new();
        self.shared.core.lock().close(&mut wake);
        wake.into_iter().for_each(Unpark::unpark);
        let me = sync::current_thread();
        let own = usize::from(self.shared.on_own_worker());
        let in_time = ctx.block_until_or(|| {
            let mut core = self.shared.core.lock();
            if core.is_over_but(own) {
                true
            } else {
                core.wait(&me);
                false
            }
        });
        if in_time.is_some() {
            // The grace period is over: no queued job starts; running ones see the cancel.
            self.shared.cancel();
            self.cancel.cancel();
            self.shared.wait_over();
        }
        self.join();
        let (unrun, failed) = self.shared.core.lock().take_leftovers();
        ShutdownReport { unrun, failed }
    }

    /// The pool's context: the jobs' context, done once the pool is canceled.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::pool::Pool;
    /// use ctxkit::Context;
    ///
    /// let workers = Pool::new(1).start(&Context::background(), |_ctx, _job: ()| {});
    /// let jobs_context = workers.context().clone();
    /// drop(workers);
    /// assert!(jobs_context.is_done());
    /// ```
    pub fn context(&self) -> &Context {
        &self.shared.ctx
    }

    /// How many accepted jobs wait for a worker now.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::pool::Pool;
    /// use ctxkit::Context;
    ///
    /// let workers = Pool::new(1).start(&Context::background(), |_ctx, _job: ()| {});
    /// assert_eq!(workers.queued(), 0);
    /// ```
    pub fn queued(&self) -> usize {
        self.shared.core.lock().queued()
    }
}

impl<J> Workers<J> {
    /// Joins every worker thread started (invariant 2), but the calling thread if it is one of
    /// them: it cannot join itself, and leaves when its job returns.
    fn join(&self) {
        let handles = std::mem::take(&mut *self.handles.lock());
        let me = std::thread::current().id();
        for handle in handles {
            if handle.thread().id() == me {
                continue;
            }
            // A worker catches its jobs' panics; a join error would be ctxkit's own bug, and a
            // drop must not panic: ignore it.
            let _ = handle.join();
        }
    }
}

impl<J> Drop for Workers<J> {
    fn drop(&mut self) {
        self.shared.cancel();
        self.cancel.cancel();
        self.shared.wait_over();
        self.join();
    }
}

impl<J> fmt::Debug for Workers<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workers")
            .field("core", &*self.shared.core.lock())
            .field("threads", &self.handles.lock().len())
            .finish()
    }
}
