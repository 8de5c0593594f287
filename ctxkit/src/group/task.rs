//! The async [`Group`]: tasks on tokio.
//!
//! # Implementation details
//!
//! Group tasks are boxed and run by *workers*: tokio tasks that run group tasks one after
//! another. `spawn` hands a task to a worker that runs none (an idle one, parked, which it
//! wakes) and starts a new worker (one `tokio::spawn`) only when no worker is free and the
//! limit allows. Under load most tasks therefore cost one box and two short critical sections
//! (the spawn's, and the one where the worker records the outcome, lowers `pending` and picks
//! its next step), and no `tokio::spawn`; yet no task waits for another to end unless the limit
//! says so, because a task is only queued for a worker already committed to it (or when the
//! limit is reached). Results go into a slot vector indexed by spawn order.
//!
//! Latency of a first failure (the `group.first_error_cancel` workload: 1,000 tasks blocked on
//! the context, one fails): the cancel wakes every blocked task's tokio task, each records its
//! outcome and its worker leaves (or idles) in one critical section, and the last one wakes
//! `wait`. The worker's loop is plain code between awaits (no future per step: that cost some
//! 20 ns a task under `set_limit(2)`). `wait` then does O(1) work besides taking the results: the handles of workers that
//! have left are not dropped there (dropping a finished task's last handle frees the task, some
//! 40 ns each) but pruned by later spawns or dropped with the group.
//!
//! A worker's future can be dropped before it returns: tokio drops every task of a runtime that
//! shuts down (dropped, or `shutdown_timeout` passed), and the group's drop aborts its workers.
//! Nothing else would then record the task it was running, and `wait` would wait for it
//! forever; so each worker carries a [`Worker`] guard that knows what it holds and gives it back
//! when dropped (invariant #5).
//!
//! # Invariants
//!
//! 1. `State::pending` counts the tasks of the current round that have been spawned or queued
//!    and not yet finished (recorded, skipped, drained or aborted). It is raised only by the
//!    owner of the `Group` (`spawn` takes `&mut self`) and lowered only by workers (or their
//!    guards, invariant #5), *after* they have recorded the outcome and canceled the context
//!    for a failure (the round's first failure releases the lock to cancel, then lowers in a
//!    second critical section: [`lower`]).
//! 2. `State::waker` is taken, under `state`, only by whoever lowered `pending` to zero, in the
//!    same critical section; `wait` reads `pending` and stores its waker in one critical section
//!    under `state`. So a wait cannot miss the last task's wake-up, and when `wait` sees zero
//!    every outcome is in `State::slots` and the failure's cause is already the context's.
//! 3. `State::workers` counts the workers of the current generation. Each is *busy* (running
//!    a task, or recording its outcome), *searching* (woken from idle by `spawn`, counted in
//!    `State::searching`, bound to take from `queue` before it idles again) or *idle* (its
//!    waker in `State::idle`). A worker whose task ended takes the next queued task, idles or
//!    leaves in the critical section where it records the outcome, so it never searches.
//!    Without a limit, `queue.len() <= searching` at all times: `spawn` queues a task only
//!    while a searching worker is unmatched, or together with waking an idle worker (which
//!    then counts as searching), and a searching worker pops before it idles. With a limit,
//!    `spawn` also queues when `workers == limit`: those busy workers take from the queue when
//!    their task ends. So a queued task never waits for user code to end, unless the limit is
//!    reached. An idle worker polled spuriously (a waker that a finished task left behind
//!    fires) finds its entry still in `idle` and stays idle without touching the counts. At
//!    most `MAX_IDLE` workers idle; another leaves instead. `close_workers` (a limit change, the
//!    drop) starts a new generation: its counts start at zero, and a worker of an older one
//!    leaves at its next search without touching them.
//! 4. Once the group's context is done, no queued task starts: a worker checks the context
//!    before each task, and drains the whole queue when it sees it done.
//! 5. A worker's [`Worker::phase`] says what it holds, and changes only in the same poll as the
//!    critical section that changed what it holds (no `.await` between them), so wherever tokio
//!    drops the future, the phase is right. A worker dropped before it left gives back, in one
//!    critical section ([`abandon`]): its task, if busy, recorded as aborted (after the task's
//!    future has been dropped); its place in the counts of invariant #3, if its generation is
//!    the current one (an idle worker takes its entry out of `idle`, or, if `spawn` took it
//!    already, leaves `searching`; queued tasks that no searching worker claims then go to idle
//!    workers, as `spawn` would hand them; if none idles, a busy one takes them when its task
//!    ends, which can only happen when the group's workers run on several runtimes and one of
//!    them shut down). If no worker of the current generation is left, the queue is recorded as
//!    aborted and drained: nothing could ever run it (a later `spawn` starts new workers, but
//!    only for its own task). Then `pending` is lowered as in invariant #1.
//!
//! # Lock order
//!
//! One lock, `Shared::state`, a leaf: nothing else is locked under it, and no user code runs under
//! it (an error's text is formatted before it is taken; futures are polled and dropped outside
//! it; wakers are woken after it is released; results are taken out of it before `wait` turns
//! them into values and errors). The context is canceled after it is released.

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use tokio::task::JoinHandle;

use super::slots::{lock, Outcome, Panic, Slots};
use super::TaskFailed;
use crate::context::{CancelHandle, Context, Error};

type BoxTask<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'static>>;

/// At most this many workers stay idle (parked tasks, no thread) waiting for the next spawn;
/// a worker that finds this many idle leaves instead.
const MAX_IDLE: usize = 16;

/// What the group and its tasks share.
struct Shared<T, E> {
    /// The group's context; `None` for [`Group::new`]. Never changes.
    ctx: Option<Context>,
    /// Cancels `ctx`; `None` for [`Group::new`]. Canceled by the first failure, by `wait` and by
    /// the group's drop.
    cancel: Option<CancelHandle>,
    /// A hint, set under `state` when the round's first failure is recorded, cleared by `wait`:
    /// lets a failing task skip formatting its error when a cause has already been set.
    failed: AtomicBool,
    /// Protects the round's outcomes, the queue and the waiter.
    state: Mutex<State<T, E>>,
}

struct State<T, E> {
    /// The round's outcomes.
    slots: Slots<T, E>,
    /// See invariant #1.
    pending: usize,
    /// The task of the current `wait`, if it is waiting (invariant #2).
    waker: Option<Waker>,
    /// Tasks handed to an idle worker, or waiting for a busy one under a limit, with their
    /// spawn index (invariant #3).
    queue: VecDeque<(usize, BoxTask<T, E>)>,
    /// Worker tasks alive, idle ones included (invariant #3).
    workers: usize,
    /// Idle workers, by id, with their wakers (invariant #3).
    idle: Vec<(u64, Waker)>,
    /// The id of the next worker.
    next_id: u64,
    /// Workers that run no task and will take one from `queue` before idling (invariant #3).
    searching: usize,
    /// Counts worker generations (one ends when the limit changes and at drop); workers of an
    /// ended one leave (invariant #3).
    generation: u64,
}

impl<T, E> Shared<T, E> {
    fn new(ctx: Option<Context>, cancel: Option<CancelHandle>) -> Self {
        Shared {
            ctx,
            cancel,
            failed: AtomicBool::new(false),
            state: Mutex::new(State {
                slots: Slots::new(),
                pending: 0,
                waker: None,
                queue: VecDeque::new(),
                workers: 0,
                idle: Vec::new(),
                next_id: 0,
                searching: 0,
                generation: 0,
            }),
        }
    }

    fn is_done(&self) -> bool {
        self.ctx.as_ref().is_some_and(Context::is_done)
    }

    /// The context a task gets: the group's, or the background for [`Group::new`].
    fn task_context(&self) -> Context {
        self.ctx.clone().unwrap_or_else(Context::background)
    }

    /// The text of a failing task's error, when it may become the context's cause.
    fn message(&self, outcome: &Outcome<T, E>) -> Option<String>
    where
        E: fmt::Display,
    {
        match outcome {
            Outcome::Returned(Err(error))
                if self.cancel.is_some() && !self.failed.load(Ordering::Relaxed) =>
            {
                Some(error.to_string())
            }
            _ => None,
        }
    }

    /// The handle to cancel the context with `cause`, if the group has a context and `cause`
    /// is the round's first failure.
    fn cancel_for(&self, cause: Option<TaskFailed>) -> Option<(&CancelHandle, TaskFailed)> {
        cause.and_then(|cause| Some((self.cancel.as_ref()?, cause)))
    }
}

/// Polls `task` to completion, catching a panic in it (or in its drop) as an outcome.
async fn catch<F: Future>(task: F) -> Result<F::Output, Panic> {
    let mut slot = pin!(Some(task));
    poll_fn(move |cx| {
        let polled = catch_unwind(AssertUnwindSafe(|| {
            let task = slot
                .as_mut()
                .as_pin_mut()
                .expect("ctxkit::group: task polled after it ended");
            let poll = task.poll(cx);
            if poll.is_ready() {
                slot.set(None);
            }
            poll
        }));
        match polled {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                // The future is never polled again: drop it now, ignoring a second panic.
                let _ = catch_unwind(AssertUnwindSafe(|| slot.set(None)));
                Poll::Ready(Err(payload))
            }
        }
    })
    .await
}

/// Runs `task` unless the context is already done; how it ended, or `None` if it never started.
async fn run_one<T, E, F>(shared: &Shared<T, E>, task: F) -> Option<Outcome<T, E>>
where
    F: Future<Output = Result<T, E>>,
{
    if shared.is_done() {
        // go#61611: a task spawned before the context was done does not start after it.
        return catch_unwind(AssertUnwindSafe(|| drop(task)))
            .err()
            .map(Outcome::Panicked);
    }
    Some(match catch(task).await {
        Ok(result) => Outcome::Returned(result),
        Err(payload) => Outcome::Panicked(payload),
    })
}

/// Where a worker goes after a task (invariant #3).
enum Search<T, E> {
    /// Run this task next.
    Run(usize, BoxTask<T, E>),
    /// Idle: its waker is in `State::idle`.
    Idle,
    /// Leave: its generation ended, or enough workers idle.
    Leave,
}

/// Invariant #3: a worker between tasks takes the next queued one, or idles, or leaves, in the
/// critical section where it became free; `waker` is its task's, for the idle list.
fn search<T, E>(
    state: &mut State<T, E>,
    (generation, id): (u64, u64),
    waker: &Waker,
) -> Search<T, E> {
    if state.generation != generation {
        // Its generation's counts were reset when it ended; leave them untouched.
        return Search::Leave;
    }
    if let Some((index, task)) = state.queue.pop_front() {
        return Search::Run(index, task);
    }
    if state.idle.len() >= MAX_IDLE {
        state.workers -= 1;
        return Search::Leave;
    }
    // Only `spawn` (which counts the worker as searching again), `close_workers` (which ends
    // its generation) and the worker's own guard (invariant #5) take the entry out.
    state.idle.push((id, waker.clone()));
    Search::Idle
}

/// Invariant #1: counts `finished` tasks as finished. For the round's first failure (`cancel`),
/// or when futures were `drained`, releases the lock to cancel the context and drop them (a
/// cancel wakes tasks; a future's drop is user code), then locks again; only then lowers
/// `pending`. Invariant #2: returns `wait`'s waker if it lowered `pending` to zero, to be woken
/// once the caller releases the lock.
fn lower<'a, T, E>(
    shared: &'a Shared<T, E>,
    mut state: MutexGuard<'a, State<T, E>>,
    cancel: Option<(&CancelHandle, TaskFailed)>,
    drained: VecDeque<(usize, BoxTask<T, E>)>,
    finished: usize,
) -> (MutexGuard<'a, State<T, E>>, Option<Waker>) {
    if state.slots.has_failed() && !shared.failed.load(Ordering::Relaxed) {
        shared.failed.store(true, Ordering::Relaxed);
    }
    if cancel.is_some() || !drained.is_empty() {
        drop(state);
        if let Some((cancel, cause)) = cancel {
            cancel.cancel_with(cause);
        }
        let _ = catch_unwind(AssertUnwindSafe(|| drop(drained)));
        state = lock(&shared.state);
    }
    state.pending -= finished;
    // Invariant #2: we lowered it to zero, so the waker is ours to take.
    let waiter = if state.pending == 0 {
        state.waker.take()
    } else {
        None
    };
    (state, waiter)
}

/// Records how task `index` ended and finds the worker's next step, in one critical section
/// in the common case (a second one, after the cancel, for the round's first failure).
///
/// Invariant #1: `pending` is lowered after the outcome is recorded and, for the first failure,
/// after the context is canceled; invariant #2: whoever lowers it to zero wakes `wait`.
fn finish<T, E>(
    shared: &Shared<T, E>,
    worker: (u64, u64),
    index: usize,
    outcome: Option<Outcome<T, E>>,
    message: Option<String>,
    waker: &Waker,
) -> Search<T, E> {
    let mut state = lock(&shared.state);
    let cause = outcome.and_then(|outcome| state.slots.record(index, outcome, message));
    // The round's first failure cancels the context (outside the lock) before `pending` is
    // lowered.
    let cancel = shared.cancel_for(cause);
    // Invariant #4: once the context is (about to be) done, nothing queued starts.
    let drained = if !state.queue.is_empty() && (cancel.is_some() || shared.is_done()) {
        std::mem::take(&mut state.queue)
    } else {
        VecDeque::new()
    };
    let finished = 1 + drained.len();
    let (mut state, waiter) = lower(shared, state, cancel, drained, finished);
    let next = search(&mut state, worker, waker);
    drop(state);
    if let Some(waiter) = waiter {
        waiter.wake();
    }
    next
}

/// An idle worker polled again: still idle (a spurious poll: a waker a finished task left
/// behind fired late), or handed a task by `spawn` (which took its entry out of
/// `State::idle` and counted it as searching), or its generation ended (invariant #3).
fn poll_idle<T, E>(
    shared: &Shared<T, E>,
    worker: (u64, u64),
    waker: &Waker,
) -> Poll<Option<(usize, BoxTask<T, E>)>> {
    let mut state = lock(&shared.state);
    if state.generation != worker.0 {
        return Poll::Ready(None);
    }
    if let Some((_, idle)) = state.idle.iter_mut().find(|(idle, _)| *idle == worker.1) {
        if !idle.will_wake(waker) {
            *idle = waker.clone();
        }
        return Poll::Pending;
    }
    state.searching -= 1;
    match search(&mut state, worker, waker) {
        Search::Run(index, task) => Poll::Ready(Some((index, task))),
        Search::Idle => Poll::Pending,
        Search::Leave => Poll::Ready(None),
    }
}

/// Invariant #5: gives back what a worker whose future was dropped before it left held. `busy`
/// is the index of the task it was running (already dropped), if any; else it was idle.
fn abandon<T, E>(shared: &Shared<T, E>, (generation, id): (u64, u64), busy: Option<usize>) {
    let mut state = lock(&shared.state);
    let mut cause = None;
    let mut finished = 0;
    if let Some(index) = busy {
        cause = state.slots.record(index, Outcome::Aborted, None);
        finished += 1;
    }
    let mut handed = Vec::new();
    if state.generation == generation {
        if busy.is_none() {
            match state.idle.iter().position(|(idle, _)| *idle == id) {
                Some(at) => drop(state.idle.swap_remove(at)),
                // `spawn` took its entry and counted it as searching (invariant #3).
                None => state.searching -= 1,
            }
        }
        state.workers -= 1;
        // Invariant #3: a queued task no searching worker claims goes to an idle worker.
        // Terminates: each turn moves one entry from `idle` to `searching`.
        while state.queue.len() > state.searching {
            let Some((_, idle)) = state.idle.pop() else {
                break;
            };
            state.searching += 1;
            handed.push(idle);
        }
    }
    // No worker of the current generation is left to run what is queued: nothing ever will.
    let orphans = if state.workers == 0 {
        std::mem::take(&mut state.queue)
    } else {
        VecDeque::new()
    };
    for &(index, _) in &orphans {
        let orphan = state.slots.record(index, Outcome::Aborted, None);
        cause = cause.or(orphan);
    }
    finished += orphans.len();
    if finished == 0 && handed.is_empty() {
        return; // an idle worker that only left its place
    }
    let cancel = shared.cancel_for(cause);
    let (state, waiter) = lower(shared, state, cancel, orphans, finished);
    drop(state);
    if let Some(waiter) = waiter {
        waiter.wake();
    }
    for idle in handed {
        idle.wake();
    }
}

/// A worker's guard: what its future holds (invariant #5), given back by its drop if the
/// future is dropped before it leaves (its runtime shut down, or the group's drop aborted it).
struct Worker<T, E> {
    shared: Arc<Shared<T, E>>,
    /// Its generation and id (invariant #3).
    id: (u64, u64),
    /// What it holds; set only by the worker's loop, next to the critical section that changed
    /// it (invariant #5).
    phase: Phase<T, E>,
}

/// What a [`Worker`] holds.
enum Phase<T, E> {
    /// Started by `spawn` and not yet polled: the task it runs first, with its spawn index.
    Start(usize, BoxTask<T, E>),
    /// Running this task, or recording how it ended: counted in `workers`.
    Busy(usize),
    /// Idle, its entry in `State::idle`, or woken by `spawn` and counted in `searching`.
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
        abandon(&self.shared, self.id, busy);
    }
}

/// A worker: a tokio task that runs group tasks one after another, starting with the one
/// `spawn` gave it, then taking from the queue, idle in between (invariant #3). Its guard gives
/// back what it holds if the future is dropped first (invariant #5): the guard is the
/// argument, dropped after whatever the body holds at the `.await` where it stopped.
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
        let outcome = run_one(&worker.shared, task).await;
        let message = outcome.as_ref().and_then(|o| worker.shared.message(o));
        // Invariant #5: each arm sets the phase in the poll that changed what the worker holds.
        let next = match finish(&worker.shared, worker.id, index, outcome, message, &waker) {
            Search::Run(index, task) => Some((index, task)),
            Search::Leave => None,
            Search::Idle => {
                worker.phase = Phase::Idle;
                poll_fn(|cx| poll_idle(&worker.shared, worker.id, cx.waker())).await
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

/// Runs async tasks on tokio, waits for them all, and returns their results in spawn order or
/// the first error; the first failure cancels the group's context.
///
/// Make one with [`Group::with_context`] (a derived context for the tasks, canceled by the first
/// failure) or [`Group::new`] (no context: nothing is canceled, every task runs). Start tasks
/// with [`spawn`](Group::spawn) or [`try_spawn`](Group::try_spawn), bound how many run at once
/// with [`set_limit`](Group::set_limit), then [`wait`](Group::wait) (first error) or
/// [`wait_all`](Group::wait_all) (every error).
///
/// A task is a closure that gets the group's context and returns the future to run:
/// `g.spawn(|ctx| async move { fetch(&ctx, id).await })`. The closure is called by `spawn`
/// itself, so it may borrow; the future it returns is what runs on tokio (`Send + 'static`).
/// Tasks start on the current tokio runtime with `tokio::spawn`, so they run in parallel on a
/// multi-thread runtime.
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
/// * **Spawning never blocks.** With [`set_limit(n)`](Group::set_limit), at most `n` tasks run
///   at once: `spawn` starts the task if fewer than `n` run, else queues it; a queued task
///   starts when a running one ends, in spawn order, or never, once the context is done. See
///   "Limit: why a queue" below.
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
/// # Limit: why a queue
///
/// Go's `Go` blocks the spawning goroutine until a slot frees. In async code that would make
/// `spawn` an `async fn` whose every call under a limit parks and wakes the spawning task: the
/// costliest part of a small task, and the one that deadlocked conc when the spawner held the
/// only path to cancellation (conc#88). Here `spawn` never waits: at most `n` tokio tasks run
/// the queued futures one after another (one box per task, no spawn per task), and they drop
/// what is queued as soon as the context is done. The price is that queued futures take memory
/// until they run; [`try_spawn`](Group::try_spawn) gives back-pressure when that matters.
///
/// Without a limit the same machinery runs every task at once: a task is handed to a tokio task
/// that is free, and a new one is started when none is (see the module source for the
/// invariants).
///
/// # Coming from Go
///
/// | Go (`golang.org/x/sync/errgroup`) | ctxkit |
/// |---|---|
/// | `g, ctx := errgroup.WithContext(parent)` | `let (mut g, ctx) = Group::with_context(&parent);` |
/// | `var g errgroup.Group` | `let mut g = Group::new();` |
/// | `g.Go(func() error { ... })` | `g.spawn(\|ctx\| async move { ... })` |
/// | `g.TryGo(f)` | [`g.try_spawn(f)`](Group::try_spawn) |
/// | `g.SetLimit(n)`, `g.SetLimit(-1)` | [`set_limit(n)`](Group::set_limit), [`remove_limit()`](Group::remove_limit) |
/// | `err := g.Wait()` | `let values = g.wait().await?;` |
///
/// Differences on purpose: results come back in spawn order (no shared slice); tasks not yet
/// started when the context is done never start (go#61611); spawning under a limit queues
/// instead of blocking; panics reach `wait`; dropping the group aborts its tasks; `wait` on a
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
///     g.spawn(move |ctx| async move { fetch(&ctx, song).await });
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
    /// At most this many tasks run at once.
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
    /// g.spawn(|_ctx| async { Ok(1) });
    /// g.spawn(|_ctx| async { Err(ctxkit::Error::Canceled) });
    /// assert_eq!(g.wait().await, Err(ctxkit::Error::Canceled));
    /// g.spawn(|_ctx| async { Ok(2) }); // reused: a new round
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
    /// g.spawn(|_ctx| async { Err("disk full".into()) });
    /// g.spawn(|ctx| async move {
    ///     Err(ctx.done().await.into()) // ends when the sibling fails
    /// });
    /// assert_eq!(g.wait().await.unwrap_err().to_string(), "disk full");
    /// assert_eq!(ctx.cause().unwrap().to_string(), "disk full");
    /// # });
    /// ```
    pub fn with_context(parent: &Context) -> (Self, Context) {
        let (ctx, cancel) = parent.with_cancel().into_parts();
        (Group::make(Some(ctx.clone()), Some(cancel)), ctx)
    }

    /// Lets at most `n` tasks of the group run at once; later spawns queue (see "Limit: why a
    /// queue" on [`Group`]).
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
    ///     });
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
        self.assert_idle("set_limit");
        self.close_workers(); // the workers of the old limit leave
        self.limit = Some(n);
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
        self.assert_idle("remove_limit");
        self.close_workers();
        self.limit = None;
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
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "tokio")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let mut g = ctxkit::Group::<(), ctxkit::Error>::new();
    /// assert_eq!(g.active(), 0);
    /// g.spawn(|_ctx| async { Ok(()) });
    /// g.wait().await.unwrap();
    /// assert_eq!(g.active(), 0);
    /// # });
    /// ```
    pub fn active(&self) -> usize {
        lock(&self.shared.state).pending
    }

    #[track_caller]
    fn assert_idle(&self, what: &str) {
        let active = self.active();
        if active != 0 {
            panic!("ctxkit::group: {what} while {active} tasks are active");
        }
    }

    /// Starts a task: calls `task` with the group's context (a clone of it; the background for
    /// a [`Group::new`] group) and runs the future it returns on the current tokio runtime (on a
    /// free worker task of the group, or a new one), or queues it when the limit is reached.
    ///
    /// `task` is called here, on the caller's side, so it needs no `Send` and may borrow; only
    /// the future it returns must be `Send + 'static`. Once the group's context is done, `task`
    /// is not called at all and nothing starts (`wait` reports the task as failed with the
    /// context's error). Never blocks and never waits (see "Limit: why a queue" on [`Group`]).
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
    /// for id in 1..=3 {
    ///     g.spawn(move |ctx| async move { fetch(&ctx, id).await });
    /// }
    /// assert_eq!(g.wait().await, Ok(vec![10, 20, 30]));
    /// # });
    /// ```
    ///
    /// # Panics
    ///
    /// * Outside a tokio runtime, when a new worker task must be started: "ctxkit::group: spawn
    ///   needs a tokio runtime to start a worker task"; nothing is spawned.
    /// * If `task` panics: the panic propagates and nothing is spawned.
    #[track_caller]
    pub fn spawn<F, Fut>(&mut self, task: F)
    where
        F: FnOnce(Context) -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        if self.shared.is_done() {
            self.spawned += 1;
            return; // go#61611; reported by `wait` as the context's error.
        }
        let task = task(self.shared.task_context());
        self.start(Box::pin(task));
    }

    /// Runs `task`, the next spawn of the round, or queues it (invariants #1 and #3).
    #[track_caller]
    fn start(&mut self, task: BoxTask<T, E>) {
        let index = self.spawned;
        self.spawned += 1;
        let limit = self.limit.map_or(usize::MAX, NonZeroUsize::get);
        let mut state = lock(&self.shared.state);
        if state.queue.len() < state.searching {
            // Invariant #3: a worker that runs no task yet will take it.
            state.pending += 1; // invariant #1: raised before the task can run and lower it
            state.queue.push_back((index, task));
        } else if let Some((_, idle)) = state.idle.pop() {
            // Invariant #3: an idle worker takes it.
            state.pending += 1;
            state.queue.push_back((index, task));
            state.searching += 1;
            drop(state);
            idle.wake();
        } else if state.workers < limit {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                // Checked before anything changes, so the group stays as it was.
                drop(state);
                self.spawned = index;
                drop(task);
                panic!("ctxkit::group: spawn needs a tokio runtime to start a worker task");
            };
            state.pending += 1;
            state.workers += 1;
            let id = (state.generation, state.next_id);
            state.next_id += 1;
            drop(state);
            // From here the worker's guard owns the task (invariant #5): if the runtime is
            // shutting down and drops the future unpolled, the guard records it as aborted.
            let worker = Worker {
                shared: self.shared.clone(),
                id,
                phase: Phase::Start(index, task),
            };
            self.handles.push(runtime.spawn(work(worker)));
            if self.handles.len() >= self.prune_at {
                // Amortized O(1): forget the handles of workers that have left.
                self.handles.retain(|handle| !handle.is_finished());
                self.prune_at = (2 * self.handles.len()).max(64);
            }
        } else {
            // Invariant #3: `limit` workers are busy; the first to finish takes it.
            state.pending += 1;
            state.queue.push_back((index, task));
        }
    }

    /// Starts a task as [`spawn`](Group::spawn) does, but only if that needs no waiting: with
    /// no limit, or fewer than the limit running and none queued; returns whether it started
    /// (Go's `TryGo`). Returns `false`, without calling `task`, when the limit is reached or
    /// the group's context is done.
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
        if let Some(limit) = self.limit {
            let state = lock(&self.shared.state);
            // Exactly when `spawn` would not leave it queued behind running tasks.
            let starts = state.queue.len() < state.searching
                || !state.idle.is_empty()
                || state.workers < limit.get();
            if !starts {
                return false;
            }
        }
        self.spawn(task); // hands it to an idle worker or starts one: never queues
        true
    }

    /// Waits until no task of this round is running or queued (invariant #2).
    async fn settle(&mut self) {
        let shared = &*self.shared;
        poll_fn(|cx| {
            let mut state = lock(&shared.state);
            if state.pending == 0 {
                state.waker = None;
                Poll::Ready(())
            } else {
                if !state
                    .waker
                    .as_ref()
                    .is_some_and(|w| w.will_wake(cx.waker()))
                {
                    state.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await;
        // The handles of workers that have left are pruned by `spawn` (amortized) or dropped
        // with the group, not here: dropping a finished task's handle frees the task, and
        // `wait` should not pay for a thousand frees before it returns.
    }

    /// Ends the round: the context's error for tasks that never started, the context canceled
    /// (`with_context`), the counters reset.
    fn end_round(&mut self) -> (usize, Error) {
        let skipped = self
            .shared
            .ctx
            .as_ref()
            .and_then(Context::err)
            .unwrap_or(Error::Canceled);
        if let Some(cancel) = &self.shared.cancel {
            cancel.cancel();
        }
        self.shared.failed.store(false, Ordering::Relaxed);
        (std::mem::take(&mut self.spawned), skipped)
    }

    /// Waits for the round's tasks, ends the round and takes its results with `take`; resumes
    /// the first panic.
    async fn finish_round<R>(
        &mut self,
        take: impl FnOnce(&mut Slots<T, E>, usize, Error) -> Result<R, Panic>,
    ) -> R {
        self.settle().await;
        let (spawned, skipped) = self.end_round();
        // Taken out of the lock first: `take` runs user code (`E::from`, drops).
        let mut slots = lock(&self.shared.state).slots.take();
        let taken = take(&mut slots, spawned, skipped);
        match taken {
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
    /// g.spawn(|_ctx| async { Ok(1) });
    /// g.spawn(|_ctx| async { Err("no route to host".into()) });
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
    ///     });
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

impl<T, E> Group<T, E> {
    /// Ends the generation of the workers: they leave instead of taking another task, the idle
    /// ones at once (invariant #3). Called when no task is pending (a limit changes) or on
    /// drop.
    fn close_workers(&self) {
        let idle = {
            let mut state = lock(&self.shared.state);
            state.generation += 1;
            state.workers = 0;
            state.searching = 0;
            std::mem::take(&mut state.idle)
        };
        for (_, waker) in idle {
            waker.wake();
        }
    }
}

impl<T, E> Drop for Group<T, E> {
    /// Cancels the group's context and aborts its tasks (see "Drop aborts" on [`Group`]).
    fn drop(&mut self) {
        if let Some(cancel) = &self.shared.cancel {
            cancel.cancel();
        }
        self.close_workers();
        for handle in &self.handles {
            handle.abort();
        }
    }
}

impl<T, E> fmt::Debug for Group<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("active", &lock(&self.shared.state).pending)
            .field("spawned", &self.spawned)
            .field("limit", &self.limit)
            .field("ctx", &self.shared.ctx)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    //! The guard's give-back (invariant #5) on hand-made states: what a worker whose future
    //! tokio dropped leaves behind, whatever it was doing.

    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    /// Counts its wake-ups.
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Wakes>, Waker) {
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        (wakes.clone(), Waker::from(wakes))
    }

    fn woken(wakes: &Wakes) -> usize {
        wakes.0.load(Ordering::SeqCst)
    }

    fn task(value: u32) -> BoxTask<u32, Error> {
        Box::pin(async move { Ok(value) })
    }

    fn with_context() -> (Arc<Shared<u32, Error>>, Context) {
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        (Arc::new(Shared::new(Some(ctx.clone()), Some(cancel))), ctx)
    }

    fn guard(
        shared: &Arc<Shared<u32, Error>>,
        id: u64,
        phase: Phase<u32, Error>,
    ) -> Worker<u32, Error> {
        Worker {
            shared: shared.clone(),
            id: (0, id),
            phase,
        }
    }

    #[test]
    fn a_dropped_idle_worker_only_leaves_its_place() {
        let (shared, ctx) = with_context();
        let ((w0, k0), (w1, k1)) = (waker(), waker());
        {
            let mut state = lock(&shared.state);
            state.workers = 2;
            state.idle = vec![(0, k0), (1, k1)];
        }
        drop(guard(&shared, 0, Phase::Idle));
        let state = lock(&shared.state);
        assert_eq!(state.workers, 1);
        assert_eq!(
            state.idle.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [1]
        );
        assert_eq!((woken(&w0), woken(&w1)), (0, 0));
        assert!(!ctx.is_done());
    }

    #[test]
    fn a_dropped_searching_worker_hands_its_task_to_an_idle_one() {
        let (shared, ctx) = with_context();
        let (w1, k1) = waker();
        {
            // Worker 0 was woken by `spawn` for task 0 (its entry taken, counted searching);
            // worker 1 idles.
            let mut state = lock(&shared.state);
            state.workers = 2;
            state.searching = 1;
            state.pending = 1;
            state.queue.push_back((0, task(0)));
            state.idle = vec![(1, k1)];
        }
        drop(guard(&shared, 0, Phase::Idle));
        let state = lock(&shared.state);
        assert_eq!((state.workers, state.searching), (1, 1));
        assert!(state.idle.is_empty());
        assert_eq!(woken(&w1), 1, "the idle worker was handed the task");
        assert_eq!((state.queue.len(), state.pending), (1, 1), "still to run");
        assert!(!state.slots.has_failed());
        assert!(!ctx.is_done());
    }

    #[test]
    fn the_last_worker_dropped_aborts_its_task_and_the_queue_and_wakes_wait() {
        let (shared, ctx) = with_context();
        let (waits, wait_waker) = waker();
        {
            // Under a limit of 1: task 0 running, 1 and 2 queued, `wait` waiting.
            let mut state = lock(&shared.state);
            state.workers = 1;
            state.pending = 3;
            state.queue.extend([(1, task(1)), (2, task(2))]);
            state.waker = Some(wait_waker);
        }
        drop(guard(&shared, 0, Phase::Busy(0)));
        assert_eq!(woken(&waits), 1, "the last task finished wakes wait");
        let failed = ctx.cause().unwrap();
        assert!(failed.downcast_ref::<TaskFailed>().unwrap().is_aborted());
        let mut state = lock(&shared.state);
        assert_eq!((state.workers, state.pending), (0, 0));
        assert!(state.queue.is_empty());
        let taken = state.slots.take().take_all(3, Error::DeadlineExceeded);
        assert_eq!(taken.ok().unwrap(), Err(vec![Error::Canceled; 3]));
    }

    #[test]
    fn an_unpolled_worker_drops_its_task_before_recording_it() {
        /// Checks, as the task's future is dropped, that its outcome is not yet recorded.
        struct CheckOnDrop(Arc<Shared<u32, Error>>, Arc<AtomicUsize>);
        impl Drop for CheckOnDrop {
            fn drop(&mut self) {
                self.1.store(lock(&self.0.state).pending, Ordering::SeqCst);
            }
        }
        let (shared, ctx) = with_context();
        let pending_at_drop = Arc::new(AtomicUsize::new(usize::MAX));
        let check = CheckOnDrop(shared.clone(), pending_at_drop.clone());
        let first: BoxTask<u32, Error> = Box::pin(async move {
            let _check = check;
            Ok(0)
        });
        {
            let mut state = lock(&shared.state);
            state.workers = 1;
            state.pending = 1;
        }
        drop(guard(&shared, 0, Phase::Start(0, first)));
        assert_eq!(pending_at_drop.load(Ordering::SeqCst), 1);
        assert_eq!(lock(&shared.state).pending, 0);
        assert!(ctx.is_done());
    }

    #[test]
    fn a_worker_of_an_ended_generation_records_its_task_but_not_its_place() {
        let (shared, _ctx) = with_context();
        {
            // The group was dropped: a new generation with no worker; task 0 still running.
            let mut state = lock(&shared.state);
            state.generation = 1;
            state.pending = 1;
        }
        drop(guard(&shared, 0, Phase::Busy(0)));
        let state = lock(&shared.state);
        assert_eq!((state.workers, state.searching, state.pending), (0, 0, 0));
        assert!(state.slots.has_failed());
    }
}
