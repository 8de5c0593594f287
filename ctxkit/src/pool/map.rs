//! The thread form of the one-shot map: [`Pool::map`], [`Pool::map_ordered`] and the [`Map`]
//! iterator, driving `map_core.rs`'s [`MapCore`] from the consumer's thread and from worker
//! threads started through `spawn`.
//!
//! # Invariants
//!
//! Those of [`MapCore`] (`map_core.rs`), plus:
//!
//! 1. The consumer is whoever holds the [`Map`]: it alone pulls the input and keeps the
//!    in-flight count (`MapCore` invariant 1), so the input need not be `Send`.
//! 2. Every worker thread's handle is in `handles` from its start; dropping the map (or
//!    [`Map::into_unrun`]) stops the core, wakes the idle workers, cancels the pool's context
//!    and joins them all. No worker outlives the map.
//!
//! # Lock order
//!
//! One lock, `Shared::core`, a leaf: no user code runs under it (jobs run, the input is pulled,
//! results are handed out and dropped outside it; tokens are unparked after it is released).

use std::fmt;
use std::iter::FusedIterator;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::consumer::Consumer;
use super::job_failed::JobFailed;
use super::map_core::{ConsumerStep, MapCore, Outcome, WorkerStep};
use super::Pool;
use crate::context::{CancelContext, Context};
use crate::panics::panic_message;
use crate::spawn::{self, Origin};
use crate::sync::{self, Arc, Mutex, Thread, Unpark};

/// A batch that took less than this doubles the worker's next batch (up to
/// [`MAX_BATCH`](super::map_core::MAX_BATCH)): cheap jobs travel in large batches.
pub(crate) const FAST_BATCH: Duration = Duration::from_micros(50);
/// A batch that took more than this halves the worker's next batch: slow jobs travel alone,
/// so that no worker sits on queued jobs another could start.
pub(crate) const SLOW_BATCH: Duration = Duration::from_micros(500);

/// The next batch size after a batch of `size` jobs took `took`.
pub(crate) fn next_batch_size(size: usize, took: Duration) -> usize {
    if took < FAST_BATCH {
        size.saturating_mul(2).min(super::map_core::MAX_BATCH)
    } else if took > SLOW_BATCH {
        (size / 2).max(1)
    } else {
        size
    }
}

/// The state the consumer and the workers share.
pub(super) struct Shared<J, T> {
    pub(super) core: Mutex<MapCore<J, T, Thread>>,
    /// The pool's context (a child of the one passed to `map`), handed to every job.
    pub(super) ctx: Context,
}

/// What a worker runs: the user's function, behind one virtual call per batch.
pub(crate) trait Body<J, T>: Send + Sync {
    /// Runs `batch` (emptied) in order, pushing each job's outcome onto `results`, until the
    /// context is done: then pushes the jobs not started onto `not_started` and returns true.
    fn run_batch(
        &self,
        ctx: &Context,
        batch: &mut Vec<(u64, J)>,
        results: &mut Vec<(u64, Outcome<T>)>,
        not_started: &mut Vec<(u64, J)>,
    ) -> bool;
}

impl<J, T, F> Body<J, T> for F
where
    F: Fn(&Context, J) -> T + Send + Sync,
{
    fn run_batch(
        &self,
        ctx: &Context,
        batch: &mut Vec<(u64, J)>,
        results: &mut Vec<(u64, Outcome<T>)>,
        not_started: &mut Vec<(u64, J)>,
    ) -> bool {
        let mut jobs = batch.drain(..);
        while let Some((index, job)) = jobs.next() {
            if ctx.is_done() {
                not_started.push((index, job));
                not_started.extend(jobs);
                return true;
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| self(ctx, job)))
                .map_err(|payload| JobFailed::panicked(index, panic_message(&*payload)));
            results.push((index, outcome));
        }
        false
    }
}

/// A worker thread's life: exchange, run the batch, exchange again, until told to leave.
pub(super) fn work<J, T>(shared: &Shared<J, T>, body: &dyn Body<J, T>, id: usize) {
    let _id = super::worker_id::enter(id);
    let me = sync::current_thread();
    let mut batch = Vec::new();
    let mut results = Vec::new();
    let mut not_started = Vec::new();
    let mut stop = false;
    let mut batch_size = 1;
    loop {
        let (step, consumer) = shared.core.lock().worker_exchange(
            &mut results,
            &mut not_started,
            stop,
            &mut batch,
            batch_size,
            &me,
        );
        if let Some(consumer) = consumer {
            consumer.unpark();
        }
        match step {
            WorkerStep::Leave => return,
            // Spurious wake-ups come back here and exchange again (MapCore invariant 5).
            WorkerStep::Park => sync::park(),
            WorkerStep::Work => {
                let began = Instant::now();
                let ran = batch.len();
                stop = body.run_batch(&shared.ctx, &mut batch, &mut results, &mut not_started);
                if !stop {
                    batch_size = next_batch_size(batch_size.max(ran), began.elapsed());
                }
            }
        }
    }
}

/// The results of [`Pool::map`] (in completion order) or [`Pool::map_ordered`] (in input
/// order): an iterator of `Result<T, JobFailed>`, one per job that ran.
///
/// It ends when every job has delivered its result, or, once the pool's context is done, after
/// the jobs that were running: the jobs pulled from the input but never started are then in
/// [`into_unrun`](Map::into_unrun), and the rest of the input was never pulled (pass
/// `input.by_ref()` to keep it).
///
/// Dropping it cancels the pool's context and joins the worker threads: the drop waits for the
/// jobs that are running to return.
///
/// `next` blocks the calling thread until a result is ready; in async code use
/// [`map_stream`][map-stream], whose results are awaited.
///
/// # Examples
///
/// ```
/// use ctxkit::pool::Pool;
/// use ctxkit::Context;
///
/// let words = ["context", "errgroup", "pool"];
/// let lengths: Vec<usize> = Pool::new(2)
///     .map_ordered(&Context::background(), words, |_ctx, word| word.len())
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(lengths, [7, 8, 4]);
/// ```
///
#[cfg_attr(feature = "tokio", doc = "[map-stream]: Pool::map_stream")]
#[cfg_attr(not(feature = "tokio"), doc = "[map-stream]: crate::pool")]
#[must_use = "iterators are lazy: a map runs jobs only as its results are read"]
pub struct Map<I: Iterator, T> {
    /// The input, pulled only here (invariant 1).
    input: I,
    /// The bound, the jobs and results on their way, the reordering window.
    consumer: Consumer<I::Item, T>,
    /// Tokens to unpark after an exchange.
    wake: Vec<Thread>,
    shared: Arc<Shared<I::Item, T>>,
    body: Arc<dyn Body<I::Item, T>>,
    /// Every worker thread started (invariant 2).
    handles: Vec<JoinHandle<()>>,
    /// Where the map was made: the workers' recorded spawn site.
    origin: Origin,
    /// Cancels the pool's context on drop.
    cancel: CancelContext,
    /// For running a batch here when no worker could be started.
    batch_size: usize,
}

impl Pool {
    /// Runs `f` on every item of `jobs` with this pool's workers; the results come in the order
    /// the jobs finish. See [`Map`] for how it ends and [the module docs](super) for the bound.
    ///
    /// `f` gets the pool's context (a child of `ctx`, canceled when the map is dropped) and the
    /// job. The input is pulled on the thread that reads the results, so it need not be `Send`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::pool::Pool;
    /// use ctxkit::Context;
    ///
    /// let sum: u64 = Pool::new(2)
    ///     .map(&Context::background(), 0..1000u64, |_ctx, n| n * n)
    ///     .map(Result::unwrap)
    ///     .sum();
    /// assert_eq!(sum, 332_833_500);
    /// ```
    #[track_caller]
    pub fn map<I, F, T>(&self, ctx: &Context, jobs: I, f: F) -> Map<I::IntoIter, T>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(&Context, I::Item) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        Map::new(self, ctx, jobs.into_iter(), Arc::new(f), false)
    }

    /// As [`map`](Pool::map), with the results in the order of the input. A result waits
    /// until those before it are delivered; the in-flight bound counts it, so one slow job
    /// holds the others back once `queue + workers` results wait behind it.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::pool::Pool;
    /// use ctxkit::Context;
    ///
    /// let squares: Vec<u32> = Pool::new(3)
    ///     .map_ordered(&Context::background(), 1..=7, |_ctx, n: u32| n * n)
    ///     .map(Result::unwrap)
    ///     .collect();
    /// assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49]);
    /// ```
    #[track_caller]
    pub fn map_ordered<I, F, T>(&self, ctx: &Context, jobs: I, f: F) -> Map<I::IntoIter, T>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(&Context, I::Item) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        Map::new(self, ctx, jobs.into_iter(), Arc::new(f), true)
    }
}

impl<I, T> Map<I, T>
where
    I: Iterator,
    I::Item: Send + 'static,
    T: Send + 'static,
{
    #[track_caller]
    fn new(
        pool: &Pool,
        ctx: &Context,
        input: I,
        body: Arc<dyn Body<I::Item, T>>,
        ordered: bool,
    ) -> Self {
        let cancel = ctx.with_cancel();
        let shared = Arc::new(Shared {
            core: Mutex::new(MapCore::new(pool.workers)),
            ctx: cancel.context().clone(),
        });
        Map {
            input,
            consumer: Consumer::new(pool.in_flight_bound(), ordered),
            wake: Vec::new(),
            shared,
            body,
            handles: Vec::new(),
            origin: Origin::here(spawn::POOL_THREAD),
            cancel,
            batch_size: 1,
        }
    }

    /// Stops the map (no job starts any more; the jobs running finish), joins its workers, and
    /// returns the jobs that were pulled from the input but never started, in input order.
    /// Results not yet read are dropped. After the iterator has ended early (the context was
    /// done), these are exactly the jobs that never ran; after it has ended normally, none.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::pool::Pool;
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background().with_cancel();
    /// let mut input = 0..1_000_000u32;
    /// let mut map = Pool::new(2).queue(8).map(&ctx, input.by_ref(), |_ctx, n| n);
    /// let first = map.next();
    /// assert!(first.is_some());
    /// ctx.cancel();
    /// let delivered = 1 + map.by_ref().count();
    /// let unrun = map.into_unrun();
    /// // Every job pulled from the input either delivered its result or came back unrun...
    /// let pulled = 1_000_000 - input.len();
    /// assert_eq!(delivered + unrun.len(), pulled);
    /// // ...and at most the bound (8 queued + 2 workers) was ever pulled.
    /// assert!(pulled <= 10);
    /// ```
    pub fn into_unrun(mut self) -> Vec<I::Item> {
        self.stop_and_join();
        let unrun = self.shared.core.lock().take_unrun();
        unrun.into_iter().map(|(_, job)| job).collect()
    }

    /// Pulls what the bound leaves room for, exchanges with the core, and acts on the answer.
    fn exchange(&mut self) {
        let stop = self.shared.ctx.is_done();
        if !stop {
            while self.consumer.has_room() {
                match self.input.next() {
                    Some(job) => self.consumer.pulled(job),
                    None => self.consumer.input_ended = true,
                }
            }
            self.consumer.count_pulled();
        }
        let me = sync::current_thread();
        let (step, start) = self.shared.core.lock().consumer_exchange(
            &mut self.consumer.pulled,
            self.consumer.input_ended,
            stop,
            &mut self.consumer.ready,
            &me,
            &mut self.wake,
        );
        for worker in self.wake.drain(..) {
            worker.unpark();
        }
        let mut failed = 0;
        for _ in 0..start {
            if !self.start_worker() {
                failed += 1;
            }
        }
        if failed > 0 {
            let mut core = self.shared.core.lock();
            for _ in 0..failed {
                core.start_failed();
            }
        }
        match step {
            ConsumerStep::Ready => self.consumer.place_ready(),
            // A worker that could not start may leave nobody to wake us: look again instead.
            ConsumerStep::Park if failed > 0 => {}
            ConsumerStep::Park => sync::park(),
            ConsumerStep::RunHere => self.run_here(),
            ConsumerStep::Over => self.consumer.over = true,
        }
    }

    /// Starts a worker thread; false if the OS refused.
    fn start_worker(&mut self) -> bool {
        let shared = self.shared.clone();
        let body = self.body.clone();
        let id = self.handles.len() + 1;
        match spawn::try_spawn_named(self.origin, move || work(&shared, &*body, id)) {
            Ok(handle) => {
                self.handles.push(handle);
                true
            }
            Err(_) => false,
        }
    }

    /// No worker could be started and jobs wait: runs a batch on this thread (`MapCore`
    /// invariant 6), so the map still ends.
    fn run_here(&mut self) {
        let mut batch = Vec::new();
        self.shared
            .core
            .lock()
            .take_for_consumer(&mut batch, self.batch_size);
        let mut results = Vec::new();
        let mut not_started = Vec::new();
        let began = Instant::now();
        let stop =
            self.body
                .run_batch(&self.shared.ctx, &mut batch, &mut results, &mut not_started);
        self.batch_size = next_batch_size(self.batch_size, began.elapsed());
        self.shared
            .core
            .lock()
            .consumer_ran(&mut results, &mut not_started, stop);
    }
}

impl<I, T> Iterator for Map<I, T>
where
    I: Iterator,
    I::Item: Send + 'static,
    T: Send + 'static,
{
    type Item = Result<T, JobFailed>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(outcome) = self.consumer.pop() {
                return Some(outcome);
            }
            if self.consumer.over {
                return None;
            }
            self.exchange();
        }
    }
}

impl<I, T> FusedIterator for Map<I, T>
where
    I: Iterator,
    I::Item: Send + 'static,
    T: Send + 'static,
{
}

impl<I: Iterator, T> Map<I, T> {
    /// Stops the core, cancels the pool's context, wakes and joins every worker (invariant 2).
    fn stop_and_join(&mut self) {
        let mut wake = Vec::new();
        self.shared.core.lock().stop(&mut wake);
        self.cancel.cancel();
        for worker in wake {
            worker.unpark();
        }
        for handle in self.handles.drain(..) {
            // A worker catches its jobs' panics; a join error would be ctxkit's own bug, and a
            // drop must not panic: ignore it.
            let _ = handle.join();
        }
    }
}

impl<I: Iterator, T> Drop for Map<I, T> {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl<I: Iterator, T> fmt::Debug for Map<I, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (in_flight, bound) = self.consumer.in_flight();
        f.debug_struct("Map")
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
