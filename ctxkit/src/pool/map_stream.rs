//! The async form of the one-shot map: [`Pool::map_stream`], [`Pool::map_stream_ordered`] and
//! the [`MapStream`] stream, driving `map_core.rs`'s [`MapCore`] from the task that polls the
//! results and from worker tasks started on tokio through `spawn`.
//!
//! # Invariants
//!
//! Those of [`MapCore`] and of the thread form (`map.rs`: the consumer alone pulls the input
//! and keeps the in-flight count), plus:
//!
//! 1. A worker task owns a guard holding everything it took from the core and has not handed
//!    back (its batch, its results, the index of the job it runs). The guard is moved into the
//!    task's future when the task is spawned, so it is dropped with the future even if the
//!    future never ran; dropped before the worker left (its runtime shut down, or the map's
//!    drop aborted it), it hands all of it back ([`MapCore::worker_abandoned`]): results
//!    delivered, the running job reported aborted, the rest put back, the map stopped. So a
//!    runtime that shuts down under a map ends it instead of leaving the consumer waiting.
//! 2. Every worker task's handle is in `handles` from its spawn; dropping the stream stops the
//!    core, cancels the pool's context and aborts them all (a drop cannot await; each task is
//!    dropped at its next `.await`). [`MapStream::into_unrun`] instead waits for them to leave.
//!
//! # Lock order
//!
//! One lock, `Shared::core`, a leaf: no user code runs under it (job futures are made, polled
//! and dropped, the input stream is polled, results are handed out outside it; wakers are woken
//! after it is released).

use std::any::Any;
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Instant;

use futures_core::Stream;
use tokio::task::JoinHandle;

use super::consumer::Consumer;
use super::job_failed::JobFailed;
use super::map::next_batch_size;
use super::map_core::{ConsumerStep, MapCore, Outcome, WorkerStep};
use super::Pool;
use crate::context::{CancelContext, Context};
use crate::panics::panic_message;
use crate::spawn::{self, Origin};
use crate::sync::{Arc, Mutex};

/// The state the consumer and the worker tasks share.
struct Shared<J, T> {
    core: Mutex<MapCore<J, T, Waker>>,
    /// The pool's context (a child of the one passed in), handed to every job.
    ctx: Context,
}

/// Polls `future` as worker `id`'s job ([`worker_id`](fn@super::worker_id) says `id` during each
/// poll), catching a panic of its poll as the payload.
pub(super) async fn catch_panic<F: Future>(
    id: usize,
    future: F,
) -> Result<F::Output, Box<dyn Any + Send>> {
    let mut future = pin!(future);
    poll_fn(|cx| {
        let _id = super::worker_id::enter(id);
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    })
    .await
}

/// Invariant 1: what a worker task holds, handed back if it is dropped before it left.
struct Held<J, T> {
    shared: Arc<Shared<J, T>>,
    /// Its batch, reversed (the next job last).
    batch: Vec<(u64, J)>,
    results: Vec<(u64, Outcome<T>)>,
    not_started: Vec<(u64, J)>,
    /// The index of the job it runs.
    running: Option<u64>,
    left: bool,
}

impl<J, T> Drop for Held<J, T> {
    fn drop(&mut self) {
        if self.left {
            return;
        }
        let mut not_started: Vec<_> = self.batch.drain(..).rev().collect();
        not_started.append(&mut self.not_started);
        let consumer = self.shared.core.lock().worker_abandoned(
            &mut self.results,
            self.running,
            &mut not_started,
        );
        if let Some(consumer) = consumer {
            consumer.wake();
        }
    }
}

/// A worker task's life: exchange, run the batch job by job, exchange again, until told to
/// leave.
async fn serve<J, T, F, Fut>(mut held: Held<J, T>, f: Arc<F>, id: usize)
where
    F: Fn(Context, J) -> Fut,
    Fut: Future<Output = T>,
{
    let shared = held.shared.clone();
    let mut stop = false;
    let mut batch_size = 1;
    loop {
        let step = poll_fn(|cx| {
            let held = &mut held;
            let (step, consumer) = shared.core.lock().worker_exchange(
                &mut held.results,
                &mut held.not_started,
                stop,
                &mut held.batch,
                batch_size,
                cx.waker(),
            );
            if let Some(consumer) = consumer {
                consumer.wake();
            }
            match step {
                // Woken (or polled spuriously): exchange again (MapCore invariant 5).
                WorkerStep::Park => Poll::Pending,
                step => Poll::Ready(step),
            }
        })
        .await;
        if step == WorkerStep::Leave {
            held.left = true;
            return;
        }
        held.batch.reverse();
        let began = Instant::now();
        let ran = held.batch.len();
        while let Some((index, job)) = held.batch.pop() {
            if shared.ctx.is_done() {
                stop = true;
                held.not_started.push((index, job));
                held.not_started.extend(held.batch.drain(..).rev());
                break;
            }
            held.running = Some(index);
            let outcome = catch_panic(id, async { f(shared.ctx.clone(), job).await })
                .await
                .map_err(|payload| JobFailed::panicked(index, panic_message(&*payload)));
            held.running = None;
            held.results.push((index, outcome));
        }
        if !stop {
            batch_size = next_batch_size(batch_size.max(ran), began.elapsed());
        }
    }
}

pin_project_lite::pin_project! {
    /// The results of [`Pool::map_stream`] (in completion order) or
    /// [`Pool::map_stream_ordered`] (in input order): a [`Stream`] of `Result<T, JobFailed>`,
    /// one per job that ran. The async form of [`Map`](super::Map), with the same ending rules:
    /// it ends when every job has delivered its result, or, once the pool's context is done,
    /// after the jobs that were running; [`into_unrun`](MapStream::into_unrun) then returns the
    /// jobs pulled but never started.
    ///
    /// Dropping it cancels the pool's context and *aborts* the worker tasks: each is dropped at
    /// its next `.await` (a drop cannot wait). If the tokio runtime of the worker tasks shuts
    /// down, the map stops: the job each worker ran is reported as aborted
    /// ([`JobFailed::is_aborted`]), and the stream ends.
    ///
    /// For `while let Some(r) = results.next().await` there is an inherent
    /// [`next`](MapStream::next) (for an `Unpin` input), so no extension trait is needed.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use ctxkit::pool::Pool;
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background();
    /// let inputs = futures::stream::iter(1..=7u64);
    /// let mut results = Pool::new(3).map_stream(&ctx, inputs, |_ctx, n| async move { n * n });
    /// let mut squares = Vec::new();
    /// while let Some(result) = results.next().await {
    ///     squares.push(result.unwrap());
    /// }
    /// squares.sort();
    /// assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49]);
    /// # });
    /// ```
    #[must_use = "streams are lazy: a map runs jobs only as its results are read"]
    pub struct MapStream<S: Stream, T> {
        #[pin]
        input: S,
        // The bound, the jobs and results on their way, the reordering window.
        consumer: Consumer<S::Item, T>,
        wake: Vec<Waker>,
        shared: Arc<Shared<S::Item, T>>,
        // Starts worker task number `id` (invariant 2).
        start: Box<dyn Fn(usize) -> JoinHandle<()> + Send + Sync>,
        handles: Vec<JoinHandle<()>>,
        cancel: CancelContext,
    }

    impl<S: Stream, T> PinnedDrop for MapStream<S, T> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let mut wake = Vec::new();
            this.shared.core.lock().stop(&mut wake);
            this.cancel.cancel();
            wake.into_iter().for_each(Waker::wake);
            for handle in this.handles.drain(..) {
                handle.abort();
            }
        }
    }
}

impl Pool {
    /// The async form of [`map`](Pool::map): runs `f` on every item of the stream `jobs` with
    /// this pool's worker tasks on the current tokio runtime; the results come in the order the
    /// jobs finish. See [`MapStream`].
    ///
    /// `f` gets the pool's context (a child of `ctx`) and the job, and returns the job's
    /// future. The input is polled by the task that polls the results, so it need not be
    /// `Send`; the results stream is `Send` when the input is.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime: "ctxkit::pool: map_stream needs a tokio runtime to start its
    /// worker tasks" (as `tokio::spawn` would).
    ///
    /// # Examples
    ///
    /// See [`MapStream`].
    #[track_caller]
    pub fn map_stream<S, F, Fut, T>(&self, ctx: &Context, jobs: S, f: F) -> MapStream<S, T>
    where
        S: Stream,
        S::Item: Send + 'static,
        F: Fn(Context, S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        MapStream::new(self, ctx, jobs, f, false)
    }

    /// As [`map_stream`](Pool::map_stream), with the results in the order of the input (see
    /// [`map_ordered`](Pool::map_ordered) for what a slow job holds back).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, as [`map_stream`](Pool::map_stream).
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
    /// let inputs = futures::stream::iter([30u64, 10, 20]);
    /// let mut results = Pool::new(3).map_stream_ordered(&ctx, inputs, |ctx, ms| async move {
    ///     ctx.sleep(Duration::from_millis(ms)).await.unwrap();
    ///     ms
    /// });
    /// let mut order = Vec::new();
    /// while let Some(result) = results.next().await {
    ///     order.push(result.unwrap());
    /// }
    /// assert_eq!(order, [30, 10, 20]); // input order, whatever finished first
    /// # });
    /// ```
    #[track_caller]
    pub fn map_stream_ordered<S, F, Fut, T>(&self, ctx: &Context, jobs: S, f: F) -> MapStream<S, T>
    where
        S: Stream,
        S::Item: Send + 'static,
        F: Fn(Context, S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        MapStream::new(self, ctx, jobs, f, true)
    }
}

impl<S, T> MapStream<S, T>
where
    S: Stream,
    S::Item: Send + 'static,
    T: Send + 'static,
{
    #[track_caller]
    fn new<F, Fut>(pool: &Pool, ctx: &Context, input: S, f: F, ordered: bool) -> Self
    where
        F: Fn(Context, S::Item) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            panic!("ctxkit::pool: map_stream needs a tokio runtime to start its worker tasks");
        };
        let origin = Origin::here(spawn::POOL_TASK);
        let cancel = ctx.with_cancel();
        let shared = Arc::new(Shared {
            core: Mutex::new(MapCore::new(pool.workers)),
            ctx: cancel.context().clone(),
        });
        let f = Arc::new(f);
        let start = {
            let shared = shared.clone();
            Box::new(move |id| {
                let held = Held {
                    shared: shared.clone(),
                    batch: Vec::new(),
                    results: Vec::new(),
                    not_started: Vec::new(),
                    running: None,
                    left: false,
                };
                spawn::spawn_task(&runtime, origin, serve(held, f.clone(), id))
            })
        };
        MapStream {
            input,
            consumer: Consumer::new(pool.in_flight_bound(), ordered),
            wake: Vec::new(),
            shared,
            start,
            handles: Vec::new(),
            cancel,
        }
    }

    /// The next result, or `None` at the end: `StreamExt::next` without the import.
    ///
    /// # Examples
    ///
    /// See [`MapStream`].
    pub async fn next(&mut self) -> Option<Result<T, JobFailed>>
    where
        S: Unpin,
    {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Stops the map (no job starts any more; the jobs running see the pool's context done),
    /// waits for its worker tasks to leave, and returns the jobs pulled from the input but
    /// never started, in input order. Results not yet read are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use ctxkit::pool::Pool;
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background().with_cancel();
    /// let inputs = futures::stream::iter(0..1_000_000u32);
    /// let mut results = Pool::new(2).queue(8).map_stream(&ctx, inputs, |_ctx, n| async move { n });
    /// assert!(results.next().await.is_some());
    /// ctx.cancel();
    /// let mut delivered = 1;
    /// while results.next().await.is_some() {
    ///     delivered += 1;
    /// }
    /// let unrun = results.into_unrun().await;
    /// assert!(delivered + unrun.len() <= 10, "at most the bound was pulled");
    /// # });
    /// ```
    pub async fn into_unrun(self) -> Vec<S::Item> {
        let mut wake = Vec::new();
        self.shared.core.lock().stop(&mut wake);
        self.cancel.cancel();
        wake.into_iter().for_each(Waker::wake);
        poll_fn(|cx| {
            if self.shared.core.lock().all_left_or_wait(cx.waker()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        let unrun = self.shared.core.lock().take_unrun();
        unrun.into_iter().map(|(_, job)| job).collect()
    }
}

impl<S, T> Stream for MapStream<S, T>
where
    S: Stream,
    S::Item: Send + 'static,
    T: Send + 'static,
{
    type Item = Result<T, JobFailed>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let mut this = self.project();
        let consumer = this.consumer;
        loop {
            if let Some(outcome) = consumer.pop() {
                return Poll::Ready(Some(outcome));
            }
            if consumer.over {
                return Poll::Ready(None);
            }
            // Pull what the bound leaves room for.
            let stop = this.shared.ctx.is_done();
            let mut input_pending = false;
            if !stop {
                while consumer.has_room() {
                    match this.input.as_mut().poll_next(cx) {
                        Poll::Ready(Some(job)) => consumer.pulled(job),
                        Poll::Ready(None) => consumer.input_ended = true,
                        Poll::Pending => {
                            input_pending = true;
                            break;
                        }
                    }
                }
                consumer.count_pulled();
            }
            let pulled_any = !consumer.pulled.is_empty();
            let (step, start) = this.shared.core.lock().consumer_exchange(
                &mut consumer.pulled,
                consumer.input_ended,
                stop,
                &mut consumer.ready,
                cx.waker(),
                this.wake,
            );
            this.wake.drain(..).for_each(Waker::wake);
            for _ in 0..start {
                let id = this.handles.len() + 1;
                this.handles.push((this.start)(id));
            }
            match step {
                ConsumerStep::Ready => {
                    if consumer.ready.is_empty() && !pulled_any && input_pending {
                        // Nothing runs and the input has nothing yet: it wakes us.
                        return Poll::Pending;
                    }
                    consumer.place_ready();
                }
                ConsumerStep::Park => return Poll::Pending,
                // Only a map whose workers were all abandoned gets here, and that stopped it
                // (invariant 1); stop it here too, so the next exchange says it is over.
                ConsumerStep::RunHere => {
                    this.shared.core.lock().stop(this.wake);
                    this.wake.drain(..).for_each(Waker::wake);
                }
                ConsumerStep::Over => consumer.over = true,
            }
        }
    }
}

impl<S: Stream, T> fmt::Debug for MapStream<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (in_flight, bound) = self.consumer.in_flight();
        f.debug_struct("MapStream")
            .field("ordered", &self.consumer.is_ordered())
            .field("in_flight", &in_flight)
            .field("bound", &bound)
            .field("pulled", &self.consumer.pulled_count())
            .field("input_ended", &self.consumer.input_ended)
            .field("over", &self.consumer.over)
            .field("workers", &self.handles.len())
            .field("core", &*self.shared.core.lock())
            .finish()
    }
}
