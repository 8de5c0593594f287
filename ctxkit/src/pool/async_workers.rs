//! The async form of the long-lived pool: [`Pool::start_async`] and [`AsyncWorkers`], driving
//! `workers_core.rs`'s [`WorkersCore`] from submitting tasks and from worker tasks started on
//! tokio through `spawn`.
//!
//! # Invariants
//!
//! Those of [`WorkersCore`] and invariant 1 of the thread form (`workers.rs`: the cancel hook),
//! plus:
//!
//! 1. A worker task's future owns a guard from its spawn; dropped before the worker left (its
//!    runtime shut down, or the pool's drop aborted it), the guard reports the job it ran as
//!    aborted and cancels the pool ([`WorkersCore::worker_abandoned`]), so submitters and a
//!    shutdown are not left waiting for a worker that is gone.
//! 2. Every worker task's handle is in `handles` from its spawn; `shutdown` awaits them all
//!    once the core says the pool is over; the drop cancels and aborts them (a drop cannot
//!    await: each task is dropped at its next `.await`).
//!
//! A parked worker is identified by its task's waker (`Waker::will_wake`), which tokio keeps
//! the same for every poll of one task.
//!
//! # Lock order
//!
//! `Shared::core`, a leaf: no user code runs under it (job futures are made, polled and dropped
//! outside it; wakers are woken after it is released). `AsyncWorkers::handles` is taken alone,
//! or to start a worker task (so that its number is unique): then before the spawn registry's
//! lock and, if the runtime has shut down, before `Shared::core` (tokio drops the new task's
//! future inside the spawn, and its guard's drop takes the core: invariant 1).
//!
//! [`WorkersCore`]: super::workers_core::WorkersCore
//! [`WorkersCore::worker_abandoned`]: super::workers_core::WorkersCore::worker_abandoned

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Poll, Waker};

use tokio::task::JoinHandle;

use super::job_failed::JobFailed;
use super::map_stream::catch_panic;
use super::submit_error::{ShutdownReport, SubmitError, SubmitErrorKind};
use super::workers::{make_shared, Shared};
use super::workers_core::{Accepted, Refused, WorkerStep};
use super::Pool;
use crate::context::{CancelContext, Context, Done};
use crate::panics::panic_message;
use crate::spawn::{self, Origin};
use crate::sync::{Arc, Mutex};

/// Invariant 1: a worker task's guard.
struct Held<J> {
    shared: Arc<Shared<J, Waker>>,
    /// The index of the job it runs.
    running: Option<u64>,
    left: bool,
}

impl<J> Drop for Held<J> {
    fn drop(&mut self) {
        if self.left {
            return;
        }
        let mut wake = Vec::new();
        self.shared
            .core
            .lock()
            .worker_abandoned(self.running, &mut wake);
        wake.into_iter().for_each(Waker::wake);
    }
}

/// A worker task's life: exchange, run the job, exchange again, until told to leave.
async fn serve<J, F, Fut>(mut held: Held<J>, f: Arc<F>, id: usize)
where
    F: Fn(Context, J) -> Fut,
    Fut: Future<Output = ()>,
{
    let shared = held.shared.clone();
    let mut looking = true;
    let mut failed = None;
    let mut not_started = None;
    let mut context_done = false;
    let mut wake = Vec::new();
    loop {
        let step = poll_fn(|cx| {
            let step = shared.core.lock().worker_exchange(
                cx.waker(),
                looking,
                failed.take(),
                not_started.take(),
                context_done,
                &mut wake,
            );
            wake.drain(..).for_each(Waker::wake);
            match step {
                WorkerStep::Park => {
                    // The next poll comes after a wake-up (or spuriously): look again.
                    looking = true;
                    Poll::Pending
                }
                step => {
                    looking = false;
                    Poll::Ready(step)
                }
            }
        })
        .await;
        match step {
            WorkerStep::Leave => {
                held.left = true;
                return;
            }
            WorkerStep::Park => {}
            WorkerStep::Run(index, job) => {
                if shared.ctx.is_done() {
                    not_started = Some((index, job));
                    context_done = true;
                    continue;
                }
                held.running = Some(index);
                let ran = catch_panic(id, f(shared.ctx.clone(), job)).await;
                held.running = None;
                if let Err(payload) = ran {
                    failed = Some(JobFailed::panicked(index, panic_message(&*payload)));
                }
            }
        }
    }
}

/// The async form of [`Workers`](super::Workers), made by [`Pool::start_async`]: a long-lived
/// pool of worker tasks on tokio. `submit(..).await` waits while the queue is full and gives up
/// when its context is done; `try_submit` hands the job back at once; `shutdown(&ctx).await`
/// runs what is queued until `ctx` is done, then cancels and returns the jobs that never ran.
///
/// Dropping it cancels the pool's context, drops the queued jobs and *aborts* the worker tasks
/// (each is dropped at its next `.await`; a drop cannot wait). If their runtime shuts down, the
/// pool is canceled and the jobs that were running are reported as aborted
/// ([`JobFailed::is_aborted`]).
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use ctxkit::pool::Pool;
/// use ctxkit::Context;
///
/// let ctx = Context::background();
/// let (results, mut received) = tokio::sync::mpsc::unbounded_channel();
/// let workers = Pool::new(3).queue(100).start_async(&ctx, move |_ctx, n: u64| {
///     let results = results.clone();
///     async move {
///         results.send(n * n).unwrap();
///     }
/// });
/// for n in 1..=7 {
///     workers.submit(&ctx, n).await.unwrap();
/// }
/// let report = workers.shutdown(&ctx).await;
/// assert!(report.unrun.is_empty());
/// let mut squares = Vec::new();
/// while let Some(square) = received.recv().await {
///     squares.push(square);
/// }
/// squares.sort();
/// assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49]);
/// # });
/// ```
pub struct AsyncWorkers<J> {
    shared: Arc<Shared<J, Waker>>,
    /// Starts worker task number `id` (invariant 2).
    start: Box<dyn Fn(usize) -> JoinHandle<()> + Send + Sync>,
    handles: Mutex<Vec<JoinHandle<()>>>,
    cancel: CancelContext,
    _hook: Done,
}

impl Pool {
    /// The async form of [`start`](Pool::start): a long-lived pool of worker tasks on the
    /// current tokio runtime, running `f`'s future for each submitted job (see
    /// [`AsyncWorkers`]).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime: "ctxkit::pool: start_async needs a tokio runtime to start its
    /// worker tasks" (as `tokio::spawn` would).
    ///
    /// # Examples
    ///
    /// See [`AsyncWorkers`].
    #[track_caller]
    pub fn start_async<J, F, Fut>(&self, ctx: &Context, f: F) -> AsyncWorkers<J>
    where
        J: Send + 'static,
        F: Fn(Context, J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            panic!("ctxkit::pool: start_async needs a tokio runtime to start its worker tasks");
        };
        let origin = Origin::here(spawn::POOL_TASK);
        let (shared, cancel, hook) = make_shared(self, ctx);
        let f = Arc::new(f);
        let start = {
            let shared = shared.clone();
            Box::new(move |id| {
                let held = Held {
                    shared: shared.clone(),
                    running: None,
                    left: false,
                };
                spawn::spawn_task(&runtime, origin, serve(held, f.clone(), id))
            })
        };
        AsyncWorkers {
            shared,
            start,
            handles: Mutex::new(Vec::new()),
            cancel,
            _hook: hook,
        }
    }
}

impl<J: Send + 'static> AsyncWorkers<J> {
    /// Submits `job`, waiting while the queue is full.
    ///
    /// # Errors
    ///
    /// The job comes back in a [`SubmitError`]: [`SubmitErrorKind::Context`] if `ctx` is done
    /// before the queue has room, [`SubmitErrorKind::Closed`] if the pool is shutting down or
    /// its context is done.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it completes drops the job with it (as tokio's
    /// `mpsc::Sender::send` does); the pool is unchanged. Use [`try_submit`](Self::try_submit)
    /// in a `select!` loop to keep the job.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use ctxkit::pool::{Pool, SubmitErrorKind};
    /// use ctxkit::{Context, Error};
    ///
    /// let ctx = Context::background();
    /// // One worker that waits for the pool's cancel, and no queue.
    /// let workers = Pool::new(1).queue(0).start_async(&ctx, |ctx, _job: u32| async move {
    ///     ctx.done().await;
    /// });
    /// workers.submit(&ctx, 1).await.unwrap();
    /// let impatient = ctx.with_timeout(Duration::from_millis(20));
    /// let refused = workers.submit(&impatient, 2).await.unwrap_err();
    /// assert_eq!(refused.kind(), SubmitErrorKind::Context(Error::DeadlineExceeded));
    /// assert_eq!(refused.into_job(), 2);
    /// # });
    /// ```
    pub async fn submit(&self, ctx: &Context, job: J) -> Result<(), SubmitError<J>> {
        let mut job = Some(job);
        let mut done = ctx.done();
        let (index, accepted) = poll_fn(|cx| {
            let Some(offer) = job.take() else {
                // Polled again after it completed: a misuse the compiler prevents for `.await`.
                return Poll::Pending;
            };
            let mut core = self.shared.core.lock();
            match core.submit(offer) {
                Ok(accepted) => Poll::Ready(Ok(accepted)),
                Err((Refused::Closed, offer)) => {
                    Poll::Ready(Err(SubmitError::new(offer, SubmitErrorKind::Closed)))
                }
                Err((Refused::Full, offer)) => {
                    core.wait(cx.waker());
                    drop(core);
                    if let Poll::Ready(error) = Pin::new(&mut done).poll(cx) {
                        self.shared.core.lock().unwait(cx.waker());
                        return Poll::Ready(Err(SubmitError::new(
                            offer,
                            SubmitErrorKind::Context(error),
                        )));
                    }
                    job = Some(offer);
                    Poll::Pending
                }
            }
        })
        .await?;
        self.accepted(index, accepted);
        Ok(())
    }

    /// Submits `job` if the queue has room now.
    ///
    /// # Errors
    ///
    /// The job comes back in a [`SubmitError`]: [`SubmitErrorKind::Full`] if the queue is
    /// full, [`SubmitErrorKind::Closed`] if the pool is shutting down or its context is done.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use ctxkit::pool::{Pool, SubmitErrorKind};
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background();
    /// let workers = Pool::new(1).queue(0).start_async(&ctx, |ctx, _job: u32| async move {
    ///     ctx.done().await;
    /// });
    /// workers.try_submit(1).unwrap(); // a worker starts for it
    /// let refused = workers.try_submit(2).unwrap_err();
    /// assert_eq!(refused.kind(), SubmitErrorKind::Full);
    /// # });
    /// ```
    pub fn try_submit(&self, job: J) -> Result<(), SubmitError<J>> {
        let offered = self.shared.core.lock().submit(job);
        match offered {
            Ok((index, accepted)) => {
                self.accepted(index, accepted);
                Ok(())
            }
            Err((Refused::Closed, job)) => Err(SubmitError::new(job, SubmitErrorKind::Closed)),
            Err((Refused::Full, job)) => Err(SubmitError::new(job, SubmitErrorKind::Full)),
        }
    }

    /// Does what an accepted submission asks: wakes or starts a worker task.
    fn accepted(&self, _index: u64, accepted: Accepted<Waker>) {
        match accepted {
            Accepted::Queued => {}
            Accepted::Wake(worker) => worker.wake(),
            Accepted::Start => {
                let mut handles = self.handles.lock();
                let id = handles.len() + 1;
                handles.push((self.start)(id));
            }
        }
    }

    /// Stops taking jobs, lets the workers run what is queued until `ctx` is done, then cancels
    /// the pool (no queued job starts; running jobs see the pool's context done), waits for the
    /// worker tasks to end, and returns the jobs that never started and the failures of those
    /// that ran.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use ctxkit::pool::Pool;
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background();
    /// let workers = Pool::new(1).start_async(&ctx, |ctx, _job: u32| async move {
    ///     let _ = ctx.sleep(Duration::from_millis(20)).await;
    /// });
    /// for job in 0..10 {
    ///     workers.submit(&ctx, job).await.unwrap();
    /// }
    /// let grace = ctx.with_timeout(Duration::from_millis(30));
    /// let report = workers.shutdown(&grace).await;
    /// assert!(!report.unrun.is_empty());
    /// # });
    /// ```
    pub async fn shutdown(self, ctx: &Context) -> ShutdownReport<J> {
        let mut wake = Vec::new();
        self.shared.core.lock().close(&mut wake);
        wake.into_iter().for_each(Waker::wake);
        // Shut down from inside one of its own jobs, it cannot wait for that worker task.
        let me = tokio::task::try_id();
        let own = usize::from(
            me.is_some_and(|me| self.handles.lock().iter().any(|handle| handle.id() == me)),
        );
        let mut done = ctx.done();
        let in_time = poll_fn(|cx| {
            let mut core = self.shared.core.lock();
            if core.is_over_but(own) {
                return Poll::Ready(true);
            }
            core.wait(cx.waker());
            drop(core);
            match Pin::new(&mut done).poll(cx) {
                Poll::Ready(_) => Poll::Ready(false),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        if !in_time {
            self.shared.cancel();
            self.cancel.cancel();
            poll_fn(|cx| {
                let mut core = self.shared.core.lock();
                if core.is_over_but(own) {
                    Poll::Ready(())
                } else {
                    core.wait(cx.waker());
                    Poll::Pending
                }
            })
            .await;
        }
        let handles = std::mem::take(&mut *self.handles.lock());
        for handle in handles {
            if Some(handle.id()) == me {
                continue; // our own task: it leaves when this job returns
            }
            // The task has left the core; this waits for it to return. Its jobs' panics are
            // caught, so an error here means it was aborted, which is what we wanted anyway.
            let _ = handle.await;
        }
        let (unrun, failed) = self.shared.core.lock().take_leftovers();
        ShutdownReport { unrun, failed }
    }

    /// The pool's context: the jobs' context, done once the pool is canceled.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use ctxkit::pool::Pool;
    /// use ctxkit::Context;
    ///
    /// let workers = Pool::new(1).start_async(&Context::background(), |_ctx, _job: ()| async {});
    /// let jobs_context = workers.context().clone();
    /// drop(workers);
    /// assert!(jobs_context.is_done());
    /// # });
    /// ```
    pub fn context(&self) -> &Context {
        &self.shared.ctx
    }

    /// How many accepted jobs wait for a worker now.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use ctxkit::pool::Pool;
    /// use ctxkit::Context;
    ///
    /// let workers = Pool::new(1).start_async(&Context::background(), |_ctx, _job: ()| async {});
    /// assert_eq!(workers.queued(), 0);
    /// # });
    /// ```
    pub fn queued(&self) -> usize {
        self.shared.core.lock().queued()
    }
}

impl<J> Drop for AsyncWorkers<J> {
    fn drop(&mut self) {
        self.shared.cancel();
        self.cancel.cancel();
        for handle in self.handles.lock().drain(..) {
            handle.abort();
        }
    }
}

impl<J> fmt::Debug for AsyncWorkers<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncWorkers")
            .field("core", &*self.shared.core.lock())
            .field("tasks", &self.handles.lock().len())
            .finish()
    }
}
