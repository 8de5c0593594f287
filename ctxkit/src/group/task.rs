//! The async [`Group`]: tasks on tokio, run by reusable worker tasks.
//!
//! # Implementation details
//!
//! Scheduling is the group's one scheduler (`scheduler.rs`: when a task is handed to an idle
//! worker, when a worker starts, what is queued, its invariants 1 to 6). This file supplies only
//! how a worker runs and parks: a worker is a tokio task (started through `spawn.rs`, one
//! registration per worker, not per group task) that polls group tasks one after another, and
//! idles by returning `Pending` with its [`Waker`] registered. Under load most group tasks
//! therefore cost one box and two short critical sections (the spawn's, and the one where the
//! worker records the outcome, lowers the pending count and picks its next step), and no
//! `tokio::spawn`.
//!
//! Latency of a first failure (the `group.first_error_cancel` workload: 1,000 tasks blocked on
//! the context, one fails): the cancel wakes every blocked task's tokio task, each records its
//! outcome and its worker leaves (or idles) in one critical section, and the last one wakes
//! `wait`. The worker's loop is plain code between awaits (no future per step: that cost some
//! 20 ns a task under `set_limit(2)`). `wait` then does O(1) work besides taking the results:
//! the handles of workers that have left are not dropped there (dropping a finished task's last
//! handle frees the task, some 40 ns each) but pruned by later spawns or dropped with the group.
//!
//! A worker's future can be dropped before it returns: tokio drops every task of a runtime that
//! shuts down (dropped, or `shutdown_timeout` passed), and the group's drop aborts its workers.
//! Nothing else would then record the task it was running, and `wait` would wait for it
//! forever; so each worker carries a [`Worker`] guard that knows what it holds and gives it back
//! when dropped (scheduler invariant 6).
//!
//! # Invariants
//!
//! 1. A worker's [`Worker::phase`] says what it holds, and changes only in the same poll as the
//!    critical section that changed what it holds (no `.await` between them), so wherever tokio
//!    drops the future, the phase is right and its drop gives back exactly that.
//!
//! # Lock order
//!
//! Only the scheduler's lock (`scheduler.rs`, a leaf), never held across an `.await`.

use std::fmt;
use std::future::{poll_fn, Future};
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Poll, Waker};

use tokio::task::JoinHandle;

use super::scheduler::{NewWorker, Search, Shared as Scheduled, WorkerId};
use super::slots::{Outcome, Panic, Slots};
use crate::context::{CancelHandle, Context, Error};
use crate::spawn::{self, Origin};
use crate::sync::Arc;

type BoxTask<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

/// What the group and its workers share: the scheduler of `BoxTask`s, with wakers as tokens.
type Shared<T, E> = Scheduled<T, E, BoxTask<T, E>, Waker>;

/// Polls a task to completion, catching a panic in it (or in its drop) as the outcome.
///
/// A struct rather than an `async fn`: it is part of every worker task's future, and an
/// `async fn` that awaits a future made from its argument keeps room for both (the worker's
/// tokio cell is what a parked task costs).
struct Catch<T, E> {
    /// The task; `None` once it has ended (returned, or panicked and been dropped).
    task: Option<BoxTask<T, E>>,
}

impl<T, E> Future for Catch<T, E> {
    type Output = Result<Result<T, E>, Panic>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let slot = &mut self.task;
        let polled = catch_unwind(AssertUnwindSafe(|| {
            let task = slot
                .as_mut()
                .expect("ctxkit::group: task polled after it ended");
            let poll = task.as_mut().poll(cx);
            if poll.is_ready() {
                *slot = None;
            }
            poll
        }));
        match polled {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                // The future is never polled again: drop it now, ignoring a second panic.
                let _ = catch_unwind(AssertUnwindSafe(|| *slot = None));
                Poll::Ready(Err(payload))
            }
        }
    }
}

/// Runs `task` unless the context is already done; how it ended, or `None` if it never started
/// (scheduler invariant 5). Returns the future to await (not an `async fn`: see [`Catch`]).
fn run_one<T, E>(
    shared: &Shared<T, E>,
    task: BoxTask<T, E>,
) -> Result<Catch<T, E>, Option<Outcome<T, E>>> {
    if shared.is_done() {
        // go#61611: a task spawned before the context was done does not start after it.
        return Err(catch_unwind(AssertUnwindSafe(|| drop(task)))
            .err()
            .map(Outcome::Panicked));
    }
    Ok(Catch { task: Some(task) })
}

/// A worker's guard: what its future holds (invariant 1), given back by its drop if the future
/// is dropped before it leaves (its runtime shut down, or the group's drop aborted it).
struct Worker<T, E> {
    shared: Arc<Shared<T, E>>,
    /// Its identity in the scheduler.
    id: WorkerId,
    /// What it holds; set only by the worker's loop, next to the critical section that changed
    /// it (invariant 1).
    phase: Phase<T, E>,
}

/// What a [`Worker`] holds.
enum Phase<T, E> {
    /// Started by `spawn` and not yet polled: the task it runs first, with its spawn index.
    Start(usize, BoxTask<T, E>),
    /// Running this task, or recording how it ended: counted as busy.
    Busy(usize),
    /// Idle (its waker registered), or woken by `spawn` and counted as searching.
    Idle,
    /// Left: holds nothing, counts nothing.
    Left,
}

impl<T, E> Worker<T, E> {
    /// Takes the first task, as the worker starts running it.
    fn start(&mut self) -> Option<(usize, BoxTask<T, E>)> {
        match std::mem::replace(&mut self.phase, Phase::Left) {
            Phase::Start(index, task) => {
                self.phase = Phase::Busy(index);
                Some((index, task))
            }
            other => {
                self.phase = other;
                None
            }
        }
    }
}

impl<T, E> Drop for Worker<T, E> {
    fn drop(&mut self) {
        let (busy, task) = match std::mem::replace(&mut self.phase, Phase::Left) {
            Phase::Left => return,
            Phase::Start(index, task) => (Some(index), Some(task)),
            Phase::Busy(index) => (Some(index), None),
            Phase::Idle => (None, None),
        };
        // The task's future goes before its outcome is recorded (so before `wait` can return);
        // its drop is user code: outside the lock, a panic in it ignored (it is gone anyway).
        let _ = catch_unwind(AssertUnwindSafe(|| drop(task)));
        self.shared.abandon(self.id, busy);
    }
}

/// A worker: a tokio task that runs group tasks one after another, starting with the one
/// `spawn` gave it, then taking from the queue, idle in between (scheduler invariant 3). Its
/// guard gives back what it holds if the future is dropped first (invariant 1): the guard is
/// the argument, dropped after whatever the body holds at the `.await` where it stopped.
async fn work<T, E>(mut worker: Worker<T, E>)
where
    E: fmt::Display,
{
    // The worker's own waker, for the idle list (a tokio task's waker stays valid for its
    // lifetime; an idle worker refreshes it on each poll).
    let waker = poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
    let Some((mut index, mut task)) = worker.start() else {
        return;
    };
    loop {
        let outcome = match run_one(&worker.shared, task) {
            Ok(running) => Some(match running.await {
                Ok(result) => Outcome::Returned(result),
                Err(payload) => Outcome::Panicked(payload),
            }),
            Err(never_started) => never_started,
        };
        let message = outcome.as_ref().and_then(|o| worker.shared.message(o));
        // Invariant 1: each arm sets the phase in the poll that changed what the worker holds.
        let next = match worker
            .shared
            .finish(worker.id, index, outcome, message, &waker)
        {
            Search::Run(index, task) => Some((index, task)),
            Search::Leave => None,
            Search::Idle => {
                worker.phase = Phase::Idle;
                poll_fn(|cx| worker.shared.poll_idle(worker.id, cx.waker())).await
            }
        };
        match next {
            Some(next) => {
                (index, task) = next;
                worker.phase = Phase::Busy(index);
            }
            None => {
                worker.phase = Phase::Left;
                return;
            }
        }
    }
}

/// Clears the group's waiting-spawner token if a waiting spawn stops waiting without its slot
/// (its context is done, or its future is dropped): no stale waker is kept.
struct SlotWait<'a, T, E> {
    shared: &'a Shared<T, E>,
    registered: bool,
}

impl<T, E> Drop for SlotWait<'_, T, E> {
    fn drop(&mut self) {
        if self.registered {
            self.shared.forget_spawner();
        }
    }
}

/// Runs async tasks on tokio, waits for them all, and returns their results in spawn order or
/// the first error; the first failure cancels the group's context.
///
/// Make one with [`Group::with_context`] (a derived context for the tasks, canceled by the first
/// failure) or [`Group::new`] (no context: nothing is canceled, every task runs). Bound how
/// many run at once with [`set_limit`](Group::set_limit), start tasks with
/// [`spawn`](Group::spawn) (waits for a free slot under a limit),
/// [`spawn_queued`](Group::spawn_queued) (never waits: queues) or
/// [`try_spawn`](Group::try_spawn) (never waits: refuses), then [`wait`](Group::wait) (first
/// error) or [`wait_all`](Group::wait_all) (every error).
///
/// A task is a closure that gets the group's context and returns the future to run:
/// `g.spawn(|ctx| async move { fetch(&ctx, id).await }).await`. The closure is called by the
/// spawn itself, so it may borrow; the future it returns is what runs on tokio
/// (`Send + 'static`). Tasks run on worker tasks of the current tokio runtime, so they run in
/// parallel on a multi-thread runtime.
///
/// The error type `E` must implement `From<ctxkit::Error>`, because a task that never started
/// (the context was done first) reports the context's error, and one aborted by the shutdown of
/// its runtime reports [`Error::Canceled`]. `ctxkit::Error`,
/// `String`, `std::io::Error` and `Box<dyn std::error::Error + Send + Sync>` do; for an error
/// enum of your own, add a variant and a one-line `impl From<ctxkit::Error> for MyError` (see
/// the [module docs](super#examples)). The bound is on [`Group::new`] and
/// [`Group::with_context`], so a type without it is refused where the group is made:
///
/// ```compile_fail
/// #[derive(Debug)]
/// struct NotFound;
/// impl std::fmt::Display for NotFound {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("not found")
///     }
/// }
/// // error: the trait `From<ctxkit::Error>` is not implemented for `NotFound`
/// let g = ctxkit::Group::<u32, NotFound>::new();
/// ```
///
/// # Semantics
///
/// * **First failure cancels.** When a task returns `Err(e)` and the group has a context, the
///   context is canceled with a [`TaskFailed`](super::TaskFailed) cause whose text is `e`'s;
///   tasks still running see it through their clone of the context and should return.
/// * **Nothing starts after the context is done** (whoever made it done: a failure, the parent,
///   a deadline). A task spawned or queued then never runs; [`wait`](Group::wait) reports it as
///   failed with the context's [`Error`] (hence `E: From<ctxkit::Error>`), unless another error
///   came first.
/// * **A limit bounds the running tasks, and `spawn` waits for a slot.** With
///   [`set_limit(n)`](Group::set_limit), at most `n` tasks run at once. When `n` run,
///   [`spawn`](Group::spawn) waits until one ends (as Go's `Go` blocks), or until the context
///   is done: then it gives up without calling its closure, so a spawning loop whose failing
///   task held the only slot ends as soon as the failure cancels the context (no conc#88
///   deadlock). [`spawn_queued`](Group::spawn_queued) never waits: it queues the task, which
///   starts when a running one ends, in spawn order, or never, once the context is done. See
///   "Limit: why a wait, and why a queue" below.
/// * **Panics** cancel the context like an error, and [`wait`](Group::wait) resumes the panic
///   once every task has ended (see the module docs for why).
/// * **A runtime that shuts down fails its tasks.** If the tokio runtime running the group's
///   tasks shuts down (is dropped, or `shutdown_timeout` passes) before they finish, tokio drops
///   them; each such task, and each task still queued for it, counts as *aborted*: a failure
///   whose [`TaskFailed`](super::TaskFailed) cause says so
///   ([`is_aborted`](super::TaskFailed::is_aborted)), reported by [`wait`](Group::wait) as
///   `E::from(Error::Canceled)`. So `wait`, run on another runtime or executor, returns at
///   once instead of waiting for tasks that no longer exist. The group can still be used on
///   another runtime.
/// * **Drop aborts.** Dropping the group without waiting cancels its context and aborts the
///   tokio tasks that run its tasks (`JoinHandle::abort`: a running task is dropped at its next
///   `.await`, queued ones with it; the drop does not wait for that, as it cannot block inside
///   async code). Nothing outlives the group but code that never yields.
/// * **After `wait`.** A [`Group::new`] group starts afresh and can be reused. A
///   [`Group::with_context`] group's context is done once `wait` returns (as Go's); tasks spawned
///   on it afterwards never start, and the next `wait` returns `Err(E::from(Error::Canceled))`.
///   Make a new group for new work.
///
/// # Limit: why a wait, and why a queue
///
/// Go's `SetLimit` exists for the loop that spawns more tasks than should run at once, often
/// far more than fit in memory ("for each line of a huge file"): its `Go` blocks until a slot
/// frees. [`spawn`](Group::spawn) does the same, awaited: under a limit of `n` the group holds
/// at most `n` tasks (running, or handed to a worker about to run them), whatever the loop
/// spawns, so memory stays bounded. It also waits for the group's context: when that is done,
/// the spawn returns at once and its task never starts (conc#88 deadlocked there: the spawner
/// waited for a slot that the failing task, the only path to cancellation, held).
///
/// [`spawn_queued`](Group::spawn_queued) never waits: at the limit the task's future is queued
/// and run by one of the `n` worker tasks when a task ends (one box per task, no spawn per
/// task); the queue is dropped as soon as the context is done. It is the cheaper call when
/// many tasks are spawned at once and they are known to fit in memory (a list already in
/// hand), and the only one in code that cannot await (a `Drop`, a callback), but every queued
/// future takes memory until it runs. [`try_spawn`](Group::try_spawn) never waits either: it
/// refuses instead, for a caller that has something better to do.
///
/// Which to use: `spawn` by default, and always for an unbounded or large source of tasks;
/// `spawn_queued` for a known, moderate number of tasks that should all be in flight at once;
/// `try_spawn` to shed load. Without a limit the three are the same: every task starts at once,
/// handed to a worker task that is free, or a new one when none is (see the module source for
/// the invariants).
///
/// # Coming from Go
///
/// | Go (`golang.org/x/sync/errgroup`) | ctxkit |
/// |---|---|
/// | `g, ctx := errgroup.WithContext(parent)` | `let (mut g, ctx) = Group::with_context(&parent);` |
/// | `var g errgroup.Group` | `let mut g = Group::new();` |
/// | `g.Go(func() error { ... })` | `g.spawn(\|ctx\| async move { ... }).await` |
/// | `g.TryGo(f)` | [`g.try_spawn(f)`](Group::try_spawn) |
/// | (no counterpart: `Go` waits at the limit) | [`g.spawn_queued(f)`](Group::spawn_queued) |
/// | `g.SetLimit(n)`, `g.SetLimit(-1)` | [`set_limit(n)`](Group::set_limit), [`remove_limit()`](Group::remove_limit) |
/// | `err := g.Wait()` | `let values = g.wait().await?;` |
///
/// Differences on purpose: results come back in spawn order (no shared slice); tasks not yet
/// started when the context is done never start (go#61611); a spawn waiting for a slot gives
/// up when the context is done (conc#88); panics reach `wait`; dropping the group aborts its tasks; `wait` on a
/// [`Group::new`] group resets it, where Go's keeps returning its first error.
///
/// # Group vs `JoinSet`
///
/// tokio's `JoinSet` hands back outcomes in completion order and leaves cancellation, limits and
/// "first error wins" to the caller's loop. `Group` does those, returns results in spawn order,
/// and costs less per task: free tokio tasks are reused, so most group tasks cost a box and two
/// short critical sections rather than a `tokio::spawn` and a join.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "tokio")]
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use ctxkit::{Context, Error, Group};
///
/// async fn fetch(ctx: &Context, song: &str) -> Result<usize, Error> {
///     ctx.check()?; // a real fetch would race its I/O against `ctx`
///     Ok(song.len())
/// }
///
/// let (mut g, ctx) = Group::with_context(&Context::background());
/// for song in ["Flaming June", "Saltwater", "Windowlicker"] {
///     g.spawn(move |ctx| async move { fetch(&ctx, song).await }).await;
/// }
/// assert_eq!(g.wait().await, Ok(vec![12, 9, 12]));
/// assert!(ctx.is_done()); // as Go's: the group's context ends with `wait`
/// # });
/// ```
#[must_use = "a Group does nothing useful unless it is waited on; dropping it aborts its tasks"]
pub struct Group<T, E> {
    shared: Arc<Shared<T, E>>,
    /// The workers that may be alive, for abort on drop.
    handles: Vec<JoinHandle<()>>,
    /// `handles` is pruned of finished workers when it grows to this length.
    prune_at: usize,
    /// Tasks spawned this round, skipped ones included: the next spawn index.
    spawned: usize,
    /// At most this many tasks run at once (the scheduler keeps the same limit).
    limit: Option<NonZeroUsize>,
}

impl<T, E> Group<T, E>
where
    T: Send + 'static,
    E: From<Error> + fmt::Display + Send + 'static,
{
    fn make(ctx: Option<Context>, cancel: Option<CancelHandle>) -> Self {
        Group {
            shared: Arc::new(Shared::new(ctx, cancel)),
            handles: Vec::new(),
            prune_at: 64,
            spawned: 0,
            limit: None,
        }
    }

    /// A group without a context, as Go's zero `errgroup.Group`: a failure cancels nothing and
    /// every task runs; [`wait`](Group::wait) still returns the first error. Reusable after
    /// `wait`.
    ///
    /// To collect every error of tasks that all run whatever fails, use this with
    /// [`wait_all`](Group::wait_all).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut g = ctxkit::Group::new();
    /// g.spawn(|_ctx| async { Ok(1) }).await;
    /// g.spawn(|_ctx| async { Err(ctxkit::Error::Canceled) }).await;
    /// assert_eq!(g.wait().await, Err(ctxkit::Error::Canceled));
    /// g.spawn(|_ctx| async { Ok(2) }).await; // reused: a new round
    /// assert_eq!(g.wait().await, Ok(vec![2]));
    /// # });
    /// ```
    pub fn new() -> Self {
        Group::make(None, None)
    }

    /// A group and its context, derived from `parent`: canceled by the group's first failure
    /// (with a [`TaskFailed`](super::TaskFailed) cause), by the parent, and when
    /// [`wait`](Group::wait) returns or the group is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use ctxkit::{Context, Group};
    ///
    /// type BoxError = Box<dyn std::error::Error + Send + Sync>;
    ///
    /// let (mut g, ctx) = Group::<(), BoxError>::with_context(&Context::background());
    /// g.spawn(|_ctx| async { Err("disk full".into()) }).await;
    /// g.spawn(|ctx| async move {
    ///     Err(ctx.done().await.into()) // ends when the sibling fails
    /// })
    /// .await;
    /// assert_eq!(g.wait().await.unwrap_err().to_string(), "disk full");
    /// assert_eq!(ctx.cause().unwrap().to_string(), "disk full");
    /// # });
    /// ```
    #[track_caller]
    pub fn with_context(parent: &Context) -> (Self, Context) {
        let (ctx, cancel) = parent.with_cancel().into_parts();
        (Group::make(Some(ctx.clone()), Some(cancel)), ctx)
    }

    /// Lets at most `n` tasks of the group run at once: at the limit, [`spawn`](Group::spawn)
    /// waits for a slot and [`spawn_queued`](Group::spawn_queued) queues (see "Limit: why a
    /// wait, and why a queue" on [`Group`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    /// use std::sync::Arc;
    ///
    /// let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    /// let mut g = ctxkit::Group::new();
    /// g.set_limit(2);
    /// for i in 0..10 {
    ///     let (running, peak) = (running.clone(), peak.clone());
    ///     g.spawn(move |_ctx| async move {
    ///         peak.fetch_max(running.fetch_add(1, SeqCst) + 1, SeqCst);
    ///         tokio::task::yield_now().await;
    ///         running.fetch_sub(1, SeqCst);
    ///         Ok::<_, ctxkit::Error>(i)
    ///     })
    ///     .await; // waits while 2 run
    /// }
    /// assert_eq!(g.wait().await.unwrap(), (0..10).collect::<Vec<_>>());
    /// assert!(peak.load(SeqCst) <= 2);
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// * `n == 0`: "ctxkit::group: set_limit(0) would never run a task; use remove_limit() for no
    ///   limit". (Go's `SetLimit(0)` makes every `Go` block forever.)
    /// * Tasks of the group are still running or queued: "ctxkit::group: set_limit while N tasks
    ///   are active", as Go's `SetLimit` panics. Set the limit before spawning, or after `wait`.
    #[track_caller]
    pub fn set_limit(&mut self, n: usize) {
        let Some(n) = NonZeroUsize::new(n) else {
            panic!("ctxkit::group: set_limit(0) would never run a task; use remove_limit() for no limit");
        };
        self.change_limit(Some(n), "set_limit");
    }

    /// Removes the limit (Go's `SetLimit(-1)`): every spawn starts its task at once.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # {
    /// let mut g = ctxkit::Group::<(), ctxkit::Error>::new();
    /// g.set_limit(1);
    /// g.remove_limit();
    /// assert_eq!(g.limit(), None);
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`set_limit`](Group::set_limit), if tasks are active.
    #[track_caller]
    pub fn remove_limit(&mut self) {
        self.change_limit(None, "remove_limit");
    }

    /// The current limit, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # {
    /// let mut g = ctxkit::Group::<(), ctxkit::Error>::new();
    /// g.set_limit(4);
    /// assert_eq!(g.limit(), Some(4));
    /// # }
    /// ```
    pub fn limit(&self) -> Option<usize> {
        self.limit.map(NonZeroUsize::get)
    }

    /// Tasks spawned and not yet ended (queued ones included).
    ///
    /// Under a limit of `n`, a group whose tasks are all started with [`spawn`](Group::spawn)
    /// never has more than `n` active: that is the bound on memory that the waiting gives.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut g = ctxkit::Group::<(), ctxkit::Error>::new();
    /// g.set_limit(8);
    /// for _ in 0..1_000 {
    ///     g.spawn(|_ctx| async { Ok(()) }).await;
    ///     assert!(g.active() <= 8);
    /// }
    /// g.wait().await.unwrap();
    /// assert_eq!(g.active(), 0);
    /// # });
    /// ```
    pub fn active(&self) -> usize {
        self.shared.lock().pending()
    }

    #[track_caller]
    fn change_limit(&mut self, limit: Option<NonZeroUsize>, what: &str) {
        // The workers of the old limit leave (scheduler invariant 3).
        if let Err(active) = self.shared.set_limit(limit) {
            panic!("ctxkit::group: {what} while {active} tasks are active");
        }
        self.limit = limit;
    }

    /// Starts a task, waiting first for a free slot if the group's limit is reached (as Go's
    /// `g.Go` blocks under `SetLimit`); gives up, without calling `task`, once the group's
    /// context is done.
    ///
    /// `task` gets the group's context (a clone of it; the background for a [`Group::new`]
    /// group) and returns the future to run on the current tokio runtime, on a free worker task
    /// of the group or a new one. `task` is called here, on the caller's side, once there is a
    /// slot, so it may borrow; only the future it returns must be `Send + 'static` (while this
    /// spawn waits it holds `task`, so the caller's future is `Send` only if `task` is).
    ///
    /// Without a limit, or below it, the returned future completes at its first poll. At the
    /// limit it waits until a running task ends, or until the group's context is done: then
    /// `task` is never called, nothing starts, and [`wait`](Group::wait) reports the task as
    /// failed with the context's error (unless another error came first). So a spawning loop
    /// whose failing task held the only slot ends as soon as that failure cancels the context
    /// (conc#88). See "Limit: why a wait, and why a queue" on [`Group`] for when to use
    /// [`spawn_queued`](Group::spawn_queued) or [`try_spawn`](Group::try_spawn) instead.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use futures::FutureExt;
    /// use ctxkit::{Context, Error, Group};
    ///
    /// let (mut g, _ctx) = Group::with_context(&Context::background());
    /// g.set_limit(1);
    /// let (finish, finished) = tokio::sync::oneshot::channel::<()>();
    /// g.spawn(|_ctx| async move {
    ///     finished.await.ok();
    ///     Ok::<_, Error>(1)
    /// })
    /// .await;
    /// // The one slot is taken: this spawn waits (polled once, it is not done)...
    /// assert!(g.spawn(|_ctx| async { Ok(2) }).now_or_never().is_none());
    /// // ...and, dropped, it has started nothing. Once the first task ends, it starts.
    /// finish.send(()).unwrap();
    /// g.spawn(|_ctx| async { Ok(3) }).await;
    /// assert_eq!(g.wait().await, Ok(vec![1, 3]));
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// * Outside a tokio runtime, when a new worker task must be started: "ctxkit::group: spawn
    ///   needs a tokio runtime to start a worker task"; nothing is spawned.
    /// * If `task` panics: the panic propagates and nothing is spawned.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropped before it completes, it has not called `task` and the group is as
    /// it was (the task is not counted as spawned).
    ///
    /// # Performance
    ///
    /// Measured with `ctxkit-bench` (`group.go_wait_limit2_10k`: 10,000 empty tasks under a
    /// limit of 2, the spawning loop a task on a 2-worker runtime, 2 shared vCPUs; see
    /// `BENCHMARKS.md`, run 8): 0.13 to 0.4 µs a task (best to median) when every spawn
    /// waits, against 0.06 to 0.2 µs with [`spawn_queued`](Group::spawn_queued), which never
    /// waits. Without a limit, or below
    /// it, `spawn` costs what `spawn_queued` does.
    #[track_caller]
    pub fn spawn<'a, F, Fut>(&'a mut self, task: F) -> impl Future<Output = ()> + 'a
    where
        F: FnOnce(Context) -> Fut + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let origin = Origin::here(spawn::GROUP_TASK);
        async move {
            if self.limit.is_some() && !self.has_free_slot().await {
                self.spawned += 1; // go#61611: reported by `wait` as the context's error
                return;
            }
            self.spawn_at(task, origin);
        }
    }

    /// Waits until there is a free slot (true) or the group's context is done (false; also when
    /// both). Scheduler invariant 4: a free slot stays free until this group spawns.
    async fn has_free_slot(&self) -> bool {
        let shared = &*self.shared;
        if shared.has_free_slot() {
            return true;
        }
        let mut done = shared.context().map(Context::done);
        let mut wait = SlotWait {
            shared,
            registered: false,
        };
        poll_fn(|cx| {
            if let Some(done) = &mut done {
                if Pin::new(done).poll(cx).is_ready() {
                    return Poll::Ready(false);
                }
            }
            if shared.poll_slot(cx.waker()) {
                wait.registered = false;
                Poll::Ready(true)
            } else {
                wait.registered = true;
                Poll::Pending
            }
        })
        .await
    }

    /// Starts a task as [`spawn`](Group::spawn) does, but never waits: at the limit, the
    /// task's future is queued, and starts when a running task ends (in spawn order), or
    /// never, once the group's context is done.
    ///
    /// `task` is called here, at once, with the group's context, unless that context is done
    /// (then nothing starts and `wait` reports the task as failed with the context's error).
    /// Every queued future takes memory until it runs: for a large or unbounded number of
    /// tasks, use [`spawn`](Group::spawn), which waits instead. Without a limit it is the same
    /// as `spawn`, and it needs no `.await`, so it also serves code that cannot await.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use ctxkit::{Context, Error, Group};
    ///
    /// async fn fetch(ctx: &Context, id: u32) -> Result<u32, Error> {
    ///     ctx.check()?;
    ///     Ok(id * 10)
    /// }
    ///
    /// let (mut g, _ctx) = Group::with_context(&Context::background());
    /// g.set_limit(2);
    /// for id in 1..=5 {
    ///     g.spawn_queued(move |ctx| async move { fetch(&ctx, id).await }); // never waits
    /// }
    /// assert!(g.active() <= 5); // 2 running, the rest queued
    /// assert_eq!(g.wait().await, Ok(vec![10, 20, 30, 40, 50]));
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// As [`spawn`](Group::spawn).
    #[track_caller]
    pub fn spawn_queued<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.spawn_at(task, Origin::here(spawn::GROUP_TASK));
    }

    /// Calls `task` and spawns its future, or skips it once the context is done.
    fn spawn_at<F, Fut>(&mut self, task: F, origin: Origin)
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        if self.shared.is_done() {
            self.spawned += 1;
            return; // go#61611; reported by `wait` as the context's error.
        }
        let task = task(self.shared.task_context());
        self.start(Box::pin(task), origin);
    }

    /// Hands `task`, the next spawn of the round, to the scheduler, and starts the worker it
    /// asks for (scheduler invariants 1 and 3).
    fn start(&mut self, task: BoxTask<T, E>, origin: Origin) {
        let index = self.spawned;
        self.spawned += 1;
        let Some(NewWorker {
            id,
            index,
            job: task,
        }) = self.shared.spawn(index, task)
        else {
            return; // handed to a worker, or queued
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // The group goes back to how it was.
            self.shared.unstart(id);
            self.spawned = index;
            drop(task);
            panic!("ctxkit::group: spawn needs a tokio runtime to start a worker task");
        };
        // From here the worker's guard owns the task (invariant 1): if the runtime is shutting
        // down and drops the future unpolled, the guard records it as aborted.
        let worker = Worker {
            shared: self.shared.clone(),
            id,
            phase: Phase::Start(index, task),
        };
        self.handles
            .push(spawn::spawn_task(&runtime, origin, work(worker)));
        if self.handles.len() >= self.prune_at {
            // Amortized O(1): forget the handles of workers that have left.
            self.handles.retain(|handle| !handle.is_finished());
            self.prune_at = (2 * self.handles.len()).max(64);
        }
    }

    /// Starts a task as [`spawn`](Group::spawn) does, but only if that needs no waiting: with
    /// no limit, or with a free slot; returns whether it started (Go's `TryGo`). Returns
    /// `false`, without calling `task`, when the limit is reached or the group's context is
    /// done.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut g = ctxkit::Group::new();
    /// g.set_limit(1);
    /// let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    /// assert!(g.try_spawn(|_ctx| async move { rx.await.ok(); Ok::<_, ctxkit::Error>(1) }));
    /// assert!(!g.try_spawn(|_ctx| async { Ok(2) })); // the one slot is taken
    /// tx.send(()).unwrap();
    /// assert_eq!(g.wait().await, Ok(vec![1]));
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// As [`spawn`](Group::spawn).
    #[track_caller]
    pub fn try_spawn<F, Fut>(&mut self, task: F) -> bool
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        if self.shared.is_done() {
            return false;
        }
        // Scheduler invariant 4: the slot stays free until this spawn takes it.
        if self.limit.is_some() && !self.shared.has_free_slot() {
            return false;
        }
        // Hands it to a free worker or starts one: never queues behind running tasks.
        self.spawn_at(task, Origin::here(spawn::GROUP_TASK));
        true
    }

    /// Waits until no task of this round is running or queued (scheduler invariant 2).
    async fn settle(&mut self) {
        let shared = &*self.shared;
        poll_fn(|cx| {
            if shared.poll_settled(cx.waker()) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        // The handles of workers that have left are pruned by `spawn` (amortized) or dropped
        // with the group, not here: dropping a finished task's handle frees the task, and
        // `wait` should not pay for a thousand frees before it returns.
    }

    /// Waits for the round's tasks, ends the round and takes its results with `take`; resumes
    /// the first panic.
    async fn finish_round<R>(
        &mut self,
        take: impl FnOnce(&mut Slots<T, E>, usize, Error) -> Result<R, Panic>,
    ) -> R {
        self.settle().await;
        let (mut slots, skipped) = self.shared.end_round();
        let spawned = std::mem::take(&mut self.spawned);
        // Out of the lock: `take` runs user code (`E::from`, drops).
        match take(&mut slots, spawned, skipped) {
            Ok(result) => result,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// Waits for every task, then returns their results in spawn order, or the first error (in
    /// time) if any failed. Cancels the group's context when it returns (as Go's `Wait`).
    ///
    /// A task that never started (the context was done first) counts as failed with the
    /// context's [`Error`], and one aborted by the shutdown of its tokio runtime with
    /// [`Error::Canceled`]. A [`Group::new`] group is empty again afterwards and can be reused.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut g = ctxkit::Group::<u32, Box<dyn std::error::Error + Send + Sync>>::new();
    /// g.spawn(|_ctx| async { Ok(1) }).await;
    /// g.spawn(|_ctx| async { Err("no route to host".into()) }).await;
    /// assert_eq!(g.wait().await.unwrap_err().to_string(), "no route to host");
    /// # });
    /// ```
    ///
    /// # Errors
    ///
    /// The first failure in time: the error a task returned, or `E::from(Error::Canceled)` for
    /// a task aborted because its tokio runtime shut down before it finished (see the group's
    /// semantics: `wait` returns then instead of waiting for it); else the context's error if a
    /// task never started.
    ///
    /// # Panics
    ///
    /// If a task panicked, that panic is resumed here once every task has ended (which one, if
    /// several did, is unspecified).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing; the tasks keep running and a later
    /// `wait` returns their results.
    pub async fn wait(&mut self) -> Result<Vec<T>, E> {
        self.finish_round(Slots::take_first).await
    }

    /// As [`wait`](Group::wait), but returns every error, in spawn order, instead of the first.
    ///
    /// With [`Group::with_context`] the first failure still cancels the context, so later errors
    /// are often the context's; use [`Group::new`] to let every task run whatever fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use ctxkit::Error;
    ///
    /// let mut g = ctxkit::Group::new();
    /// for (i, name) in ["a.txt", "b.txt", "c.txt"].into_iter().enumerate() {
    ///     g.spawn(move |_ctx| async move {
    ///         match i {
    ///             0 => Err(Error::DeadlineExceeded),
    ///             2 => Err(Error::Canceled),
    ///             _ => Ok(name.len()),
    ///         }
    ///     })
    ///     .await;
    /// }
    /// // In spawn order, whichever failed first.
    /// assert_eq!(g.wait_all().await, Err(vec![Error::DeadlineExceeded, Error::Canceled]));
    /// # });
    /// ```
    ///
    /// # Errors
    ///
    /// Every task's error, `E::from(Error::Canceled)` for each aborted one, and the context's
    /// error for each task that never started.
    ///
    /// # Panics
    ///
    /// As [`wait`](Group::wait).
    ///
    /// # Cancel safety
    ///
    /// As [`wait`](Group::wait).
    pub async fn wait_all(&mut self) -> Result<Vec<T>, Vec<E>> {
        self.finish_round(Slots::take_all).await
    }
}

impl<T, E> Default for Group<T, E>
where
    T: Send + 'static,
    E: From<Error> + fmt::Display + Send + 'static,
{
    /// [`Group::new`].
    fn default() -> Self {
        Group::new()
    }
}

impl<T, E> Drop for Group<T, E> {
    /// Cancels the group's context and aborts its tasks (see "Drop aborts" on [`Group`]).
    fn drop(&mut self) {
        self.shared.cancel();
        // The workers' generation ends (scheduler invariant 3); what is queued is dropped.
        self.shared.retire();
        for handle in &self.handles {
            handle.abort();
        }
    }
}

impl<T, E> fmt::Debug for Group<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("active", &self.shared.lock().pending())
            .field("spawned", &self.spawned)
            .field("limit", &self.limit)
            .field("ctx", &self.shared.context())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The worker guard (invariant 1; the scheduler's give-back itself is tested in
    //! `scheduler.rs`), and the workers' registration in `spawn.rs`.

    use super::*;
    use crate::spawn::{live_units, Kind, ScopeTag};
    use crate::sync::{AtomicUsize, Ordering};

    #[test]
    fn an_unpolled_worker_drops_its_task_before_recording_it() {
        /// Checks, as the task's future is dropped, that its outcome is not yet recorded.
        struct CheckOnDrop(Arc<Shared<u32, Error>>, Arc<AtomicUsize>);
        impl Drop for CheckOnDrop {
            fn drop(&mut self) {
                let pending = self.0.lock().pending();
                self.1.store(pending, Ordering::SeqCst);
            }
        }
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        let shared = Arc::new(Shared::new(Some(ctx.clone()), Some(cancel)));
        let pending_at_drop = Arc::new(AtomicUsize::new(usize::MAX));
        let check = CheckOnDrop(shared.clone(), pending_at_drop.clone());
        let first: BoxTask<u32, Error> = Box::pin(async move {
            let _check = check;
            Ok(0)
        });
        let new = shared.spawn(0, first).expect("a new worker");
        drop(Worker {
            shared: shared.clone(),
            id: new.id,
            phase: Phase::Start(new.index, new.job),
        });
        assert_eq!(pending_at_drop.load(Ordering::SeqCst), 1);
        assert_eq!(shared.lock().pending(), 0);
        let cause = ctx.cause().unwrap();
        assert!(cause
            .downcast_ref::<super::super::TaskFailed>()
            .unwrap()
            .is_aborted());
    }

    #[test]
    fn a_dropped_idle_worker_leaves_a_free_slot_and_cancels_nothing() {
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        let shared: Arc<Shared<u32, Error>> =
            Arc::new(Shared::new(Some(ctx.clone()), Some(cancel)));
        shared.set_limit(NonZeroUsize::new(1)).unwrap();
        let id = shared.spawn(0, Box::pin(async { Ok(0) })).unwrap().id;
        assert!(!shared.has_free_slot());
        let waker = std::task::Waker::noop().clone();
        let next = shared.finish(id, 0, Some(Outcome::Returned(Ok(0))), None, &waker);
        assert!(matches!(next, Search::Idle));
        drop(Worker {
            shared: shared.clone(),
            id,
            phase: Phase::Idle,
        });
        assert!(shared.has_free_slot());
        assert!(!ctx.is_done());
    }

    /// The group's worker tasks go through `spawn.rs`: recorded as tasks named
    /// `ctxkit-group-worker`, started at the user's `spawn` call, and polled with the tag of
    /// the code that spawned them; gone once the runtime drops them.
    #[test]
    fn worker_tasks_are_recorded_and_inherit_the_spawners_tag() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let tag = ScopeTag::new();
        let r = rt.block_on(async {
            // `block_on` polls this future on the current thread, so the tag is current at
            // each spawn below.
            let _entered = tag.enter();
            let mut g = Group::new();
            for _ in 0..4 {
                g.spawn(move |_ctx| async move {
                    let mine: Vec<_> = live_units()
                        .into_iter()
                        .filter(|u| u.tag == Some(tag))
                        .collect();
                    assert!(!mine.is_empty());
                    for unit in &mine {
                        assert_eq!((unit.kind, unit.name), (Kind::Task, spawn::GROUP_TASK));
                        assert_eq!(unit.spawned_at.file(), file!());
                    }
                    Ok::<_, Error>(ScopeTag::current())
                })
                .await;
            }
            g.wait().await
        });
        assert_eq!(r, Ok(vec![Some(tag); 4]));
        // Dropping the runtime drops the idle workers. Their records go as their futures are
        // dropped, on the runtime's threads: look again, boundedly, rather than once.
        drop(rt);
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while live_units().iter().any(|u| u.tag == Some(tag)) {
            assert!(
                std::time::Instant::now() < give_up,
                "a unit of the group outlived its runtime"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}
