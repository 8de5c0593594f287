//! The reusable-worker scheduler of a group: one core that both forms drive (the async
//! `Group`'s (feature `tokio`) worker tasks, [`scope`](fn@super::scope)'s worker threads), and that
//! the coming worker pool will drive too.
//!
//! # How it schedules
//!
//! Tasks are run by *workers*, each running tasks one after another. `spawn` hands a task to a
//! worker that runs none (an idle one, parked, which it wakes), and starts a new worker only
//! when no worker is free and the limit allows; at the limit it queues the task for the busy
//! workers. So under load most tasks cost no start of a thread or task, yet no task waits for
//! another to end unless the limit says so, because a task is queued only for a worker already
//! committed to it (or when the limit is reached). A worker whose task ended records the
//! outcome, lowers the pending count and picks its next step (the next queued task, idle, or
//! leave) in one critical section. Results go into [`Slots`], indexed by spawn order.
//!
//! Two layers live here:
//!
//! * [`Scheduler`]: pure bookkeeping, no locks, no atomics, no user code: the round's outcomes,
//!   the pending count, the queue, the idle, searching and busy workers, generations, the limit,
//!   and the tokens of whoever waits (`wait`, or a spawn waiting for a free slot). Its methods
//!   take `&mut self`: the caller holds the lock. It is unit-tested alone (below).
//! * [`Shared`]: the scheduler behind the group's one lock, with the group's context: each step
//!   as a short critical section, followed, after the lock is released, by what must not run
//!   under it (canceling the context, dropping futures and closures, waking tokens).
//!
//! A form supplies only how a worker runs a task and how it parks: a tokio task that returns
//! `Pending` with its [`Waker`](std::task::Waker) registered, or a thread that parks with its
//! [`Thread`](std::thread::Thread) registered ([`Unpark`]).
//!
//! # Invariants
//!
//! 1. `pending` counts the tasks of the current round that have been spawned (handed, claimed
//!    or queued) and not yet finished (recorded, skipped, drained or aborted). It is raised only
//!    by the group's one spawner (the owner: `Group` methods take `&mut self`, a `Scope` is not
//!    `Sync`) and lowered only by workers (or for them, invariant 6), *after* the outcome is
//!    recorded and, for the round's first failure, after the context is canceled: the lock is
//!    released to cancel, then taken again to lower ([`Shared::finish`]).
//! 2. `waiter` (the token of `wait`, or of the end of `scope`) is taken only by whoever lowers
//!    `pending` to zero, in the same critical section; the waiter reads `pending` and stores its
//!    token in one critical section ([`Scheduler::poll_settled`]). So a waiter cannot miss the
//!    last task's wake-up, and when it sees zero every outcome is recorded and the failure's
//!    cause is already the context's.
//! 3. `workers` counts the workers of the current generation. Each is *busy* (running a task,
//!    or recording its outcome), *searching* (woken from idle by `spawn`, counted in
//!    `searching`, bound to take from `queue` before it idles again) or *idle* (its token in
//!    `idle`). A worker whose task ended takes the next queued task, idles or leaves in the
//!    critical section where it records the outcome, so it never searches. Without a limit,
//!    `queue.len() <= searching` at all times: `spawn` queues a task only while a searching
//!    worker is unmatched, or together with waking an idle worker (which then counts as
//!    searching), and a searching worker pops before it idles. With a limit, `spawn` also
//!    queues when `workers == limit`: those busy workers take from the queue when their task
//!    ends. So a queued task never waits for user code to end, unless the limit is reached. An
//!    idle worker woken spuriously finds its entry still in `idle` and stays idle without
//!    touching the counts. At most [`MAX_IDLE`] workers idle; another leaves instead.
//!    [`retire`](Scheduler::retire) starts a new generation: its counts start at zero, and a
//!    worker of an older one leaves at its next search without touching them.
//!    [`close`](Scheduler::close) (no more spawns will come) makes a worker that finds the queue
//!    empty leave instead of idling, and counts the idle ones as searching (woken, they search
//!    and leave): once every worker has left, every task has been run or skipped.
//! 4. A *free slot* ([`has_free_slot`](Scheduler::has_free_slot)) means a spawn now would not
//!    queue behind running tasks: a searching worker is unmatched, a worker idles, or
//!    `workers < limit`. Only the spawner takes a free slot away (by spawning, or by changing
//!    the limit); workers only add free slots (they idle or leave). `spawner` (the token of a
//!    spawn waiting for a free slot) is taken by whoever adds one, in the same critical section
//!    ([`Scheduler::take_spawner`]); the spawner checks for a free slot and stores its token in
//!    one critical section ([`Scheduler::poll_slot`]). So a waiting spawn cannot miss its slot.
//! 5. Once the group's context is done, no queued task starts: a worker checks the context
//!    before each task, and drains the whole queue when it records an outcome while the context
//!    is done or about to be (the round's first failure).
//! 6. A worker that is dropped before it left (a tokio task whose runtime shut down, or that
//!    the group's drop aborted) gives back what it held, in one critical section
//!    ([`Scheduler::abandon`]): its task, if busy, recorded as aborted (after the task's future
//!    has been dropped); its place in the counts of invariant 3, if its generation is the
//!    current one (an idle worker takes its entry out of `idle`, or, if `spawn` took it
//!    already, leaves `searching`; queued tasks that no searching worker claims then go to idle
//!    workers, as `spawn` would hand them). If no worker of the current generation is left, the
//!    queue is recorded as aborted and drained: nothing could ever run it. Then `pending` is
//!    lowered as in invariant 1.
//!
//! # Lock order
//!
//! One lock, `Shared::state`, a leaf: nothing else is locked under it, and no user code runs
//! under it (an error's text is formatted before it is taken; tasks run, and futures and
//! closures are dropped, outside it; tokens are woken after it is released; results are taken
//! out of it before they are turned into values and errors). The context is canceled after it
//! is released. It may be taken under nothing else of ctxkit's but itself.

use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Poll;

use super::slots::{Outcome, Slots};
use super::task_failed::TaskFailed;
use crate::context::{CancelHandle, Context, Error};
pub(crate) use crate::sync::Unpark;
use crate::sync::{remember, AtomicBool, Mutex, MutexGuard, Ordering};

/// At most this many workers stay idle waiting for the next spawn; a worker that finds this
/// many idle leaves instead (invariant 3).
pub(crate) const MAX_IDLE: usize = 16;

/// A worker's identity: its generation (invariant 3) and its number within the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WorkerId {
    generation: u64,
    id: u64,
}

/// A worker to start, with its first task ([`Spawned::Start`]).
#[derive(Debug)]
pub(crate) struct NewWorker<J> {
    /// Its identity in the scheduler, already counted in the workers.
    pub(crate) id: WorkerId,
    /// The spawn index of its first task.
    pub(crate) index: usize,
    /// Its first task.
    pub(crate) job: J,
}

/// What [`Scheduler::spawn`] did with a task.
#[derive(Debug)]
pub(crate) enum Spawned<J, P> {
    /// Queued: for a searching worker that will take it, or behind the busy workers at the
    /// limit (invariant 3).
    Queued,
    /// Queued for this idle worker, now counted as searching: unpark it once the lock is
    /// released.
    Handed(P),
    /// No worker was free and the limit allows one more: counted; the caller starts it with
    /// its first task (or calls [`Scheduler::unstart`]).
    Start(NewWorker<J>),
}

/// Where a worker goes after a task (invariant 3).
#[derive(Debug)]
pub(crate) enum Search<J> {
    /// Run this task next, with its spawn index.
    Run(usize, J),
    /// Idle: its token is in `idle`; park until woken, then [`Scheduler::poll_idle`].
    Idle,
    /// Leave: its generation ended, or enough workers idle.
    Leave,
}

/// What an abandoned worker gave back ([`Scheduler::abandon`]): to be finished by the caller
/// outside the lock (cancel, drop the orphans) and then lowered.
#[cfg_attr(
    not(feature = "tokio"),
    allow(dead_code, reason = "only the async Group's workers are abandoned")
)]
pub(crate) struct Abandoned<J, P> {
    /// The cause to cancel the context with, if this was the round's first failure.
    pub(crate) cause: Option<TaskFailed>,
    /// Queued tasks nobody will run, recorded as aborted: to be dropped outside the lock.
    pub(crate) orphans: VecDeque<(usize, J)>,
    /// How many tasks finished (its own, if busy, and the orphans): to lower `pending` by.
    pub(crate) finished: usize,
    /// Idle workers handed the queued tasks that no searching worker claims: to unpark.
    pub(crate) handed: Vec<P>,
}

/// The scheduler's state for one group (see the module docs). Everything here is guarded by
/// the caller's lock: every method takes `&mut self` or `&self` under it.
pub(crate) struct Scheduler<T, E, J, P> {
    /// The round's outcomes, by spawn index.
    slots: Slots<T, E>,
    /// Invariant 1.
    pending: usize,
    /// The token of whoever waits for `pending` to reach zero (invariant 2).
    waiter: Option<P>,
    /// The token of a spawn waiting for a free slot (invariant 4).
    spawner: Option<P>,
    /// Tasks handed to a searching worker, or waiting for a busy one at the limit, with their
    /// spawn index (invariant 3).
    queue: VecDeque<(usize, J)>,
    /// Workers of the current generation alive, idle ones included (invariant 3).
    workers: usize,
    /// Idle workers, by id, with their tokens (invariant 3).
    idle: Vec<(u64, P)>,
    /// Workers that run no task and will take one from `queue` before idling (invariant 3).
    searching: usize,
    /// The id of the next worker.
    next_id: u64,
    /// Counts worker generations; workers of an ended one leave (invariant 3).
    generation: u64,
    /// At most this many workers; `usize::MAX` for no limit. Changed only while nothing is
    /// pending.
    limit: usize,
    /// Set once by [`close`](Scheduler::close) (no more spawns), never cleared (invariant 3).
    closed: bool,
}

impl<T, E, J, P: Unpark> Scheduler<T, E, J, P> {
    pub(crate) fn new() -> Self {
        Scheduler {
            slots: Slots::new(),
            pending: 0,
            waiter: None,
            spawner: None,
            queue: VecDeque::new(),
            workers: 0,
            idle: Vec::new(),
            searching: 0,
            next_id: 0,
            generation: 0,
            limit: usize::MAX,
            closed: false,
        }
    }

    /// Tasks spawned and not yet finished (invariant 1).
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Tasks queued, not yet taken by a worker.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Invariant 4: a spawn now would not queue behind running tasks.
    pub(crate) fn has_free_slot(&self) -> bool {
        self.queue.len() < self.searching || !self.idle.is_empty() || self.workers < self.limit
    }

    /// Sets the limit (`None`: no limit) and retires the workers of the old one; refuses, with
    /// the number of pending tasks, while any is pending. Returns the idle workers' tokens, to
    /// unpark (they leave).
    pub(crate) fn set_limit(&mut self, limit: Option<NonZeroUsize>) -> Result<Vec<P>, usize> {
        if self.pending != 0 {
            return Err(self.pending);
        }
        self.limit = limit.map_or(usize::MAX, NonZeroUsize::get);
        Ok(self.retire())
    }

    /// Takes task `index` (invariants 1 and 3): hands it to a searching or idle worker, or
    /// asks for a new worker, or queues it at the limit.
    #[inline]
    pub(crate) fn spawn(&mut self, index: usize, job: J) -> Spawned<J, P> {
        // Invariant 1: raised before the task can run and lower it.
        self.pending += 1;
        self.slots.make_room(index);
        if self.queue.len() < self.searching {
            // A worker that runs no task yet will take it.
            self.queue.push_back((index, job));
            Spawned::Queued
        } else if let Some((_, idle)) = self.idle.pop() {
            self.queue.push_back((index, job));
            self.searching += 1;
            Spawned::Handed(idle)
        } else if self.workers < self.limit {
            self.workers += 1;
            let worker = WorkerId {
                generation: self.generation,
                id: self.next_id,
            };
            self.next_id += 1;
            Spawned::Start(NewWorker {
                id: worker,
                index,
                job,
            })
        } else {
            // `limit` workers are busy; the first to finish takes it.
            self.queue.push_back((index, job));
            Spawned::Queued
        }
    }

    /// Undoes a [`Spawned::Start`] whose worker could not be started (its task was dropped):
    /// the worker leaves its place and its task is no longer pending. Returns the waiter's
    /// token if that lowered `pending` to zero (invariant 2).
    pub(crate) fn unstart(&mut self, worker: WorkerId) -> Option<P> {
        if worker.generation == self.generation {
            self.workers -= 1;
        }
        self.lower(1)
    }

    /// Records how task `index` ended; the cause to cancel the context with, if it is the
    /// round's first failure (see [`Slots::record`]).
    #[inline]
    pub(crate) fn record(
        &mut self,
        index: usize,
        outcome: Outcome<T, E>,
        message: Option<String>,
    ) -> Option<TaskFailed> {
        self.slots.record(index, outcome, message)
    }

    /// Whether a task has failed this round.
    pub(crate) fn has_failed(&self) -> bool {
        self.slots.has_failed()
    }

    /// Invariant 5: takes every queued task out, not to be run (the caller drops them outside
    /// the lock and counts them as finished).
    pub(crate) fn drain(&mut self) -> VecDeque<(usize, J)> {
        std::mem::take(&mut self.queue)
    }

    /// Counts `finished` tasks as finished (invariant 1); returns the waiter's token if this
    /// lowered `pending` to zero (invariant 2), to be unparked once the lock is released.
    #[inline]
    pub(crate) fn lower(&mut self, finished: usize) -> Option<P> {
        self.pending -= finished;
        if self.pending == 0 {
            self.waiter.take()
        } else {
            None
        }
    }

    /// Invariant 3: a worker between tasks takes the next queued one, or idles (`token` goes
    /// into `idle`), or leaves, in the critical section where it became free.
    #[inline]
    pub(crate) fn search(&mut self, worker: WorkerId, token: &P) -> Search<J> {
        if self.generation != worker.generation {
            // Its generation's counts were reset when it ended; leave them untouched.
            return Search::Leave;
        }
        if let Some((index, job)) = self.queue.pop_front() {
            return Search::Run(index, job);
        }
        if self.closed || self.idle.len() >= MAX_IDLE {
            self.workers -= 1;
            return Search::Leave;
        }
        // Only `spawn` (which counts the worker as searching), `close` (likewise), `retire`
        // (which ends its generation) and `abandon` (invariant 6) take the entry out.
        self.idle.push((worker.id, token.clone()));
        Search::Idle
    }

    /// An idle worker woken: still idle (a spurious wake-up: its token is refreshed), or handed
    /// a task by `spawn` (which took its entry out of `idle` and counted it as searching), or
    /// its generation ended (invariant 3). `Ready(None)`: leave.
    pub(crate) fn poll_idle(&mut self, worker: WorkerId, token: &P) -> Poll<Option<(usize, J)>> {
        if self.generation != worker.generation {
            return Poll::Ready(None);
        }
        if let Some((_, idle)) = self.idle.iter_mut().find(|(id, _)| *id == worker.id) {
            if !idle.is_same(token) {
                *idle = token.clone();
            }
            return Poll::Pending;
        }
        self.searching -= 1;
        match self.search(worker, token) {
            Search::Run(index, job) => Poll::Ready(Some((index, job))),
            Search::Idle => Poll::Pending,
            Search::Leave => Poll::Ready(None),
        }
    }

    /// Invariant 4: the waiting spawner's token, if there is a free slot now; called by
    /// whoever may have added one, in the same critical section.
    #[inline]
    pub(crate) fn take_spawner(&mut self) -> Option<P> {
        if self.spawner.is_some() && self.has_free_slot() {
            self.spawner.take()
        } else {
            None
        }
    }

    /// Invariant 4, the spawner's side: true if there is a free slot (and forgets any token),
    /// else stores `token` to be unparked when one frees up.
    pub(crate) fn poll_slot(&mut self, token: &P) -> bool {
        if self.has_free_slot() {
            self.spawner = None;
            return true;
        }
        remember(&mut self.spawner, token);
        false
    }

    /// Forgets the waiting spawner's token (it stopped waiting: its context is done, or its
    /// future was dropped).
    pub(crate) fn forget_spawner(&mut self) -> Option<P> {
        self.spawner.take()
    }

    /// Invariant 2, the waiter's side: true if nothing is pending (and forgets any token), else
    /// stores `token` to be unparked by whoever lowers `pending` to zero.
    #[cfg_attr(
        not(feature = "tokio"),
        allow(
            dead_code,
            reason = "only the async Group's wait settles; a scope closes"
        )
    )]
    pub(crate) fn poll_settled(&mut self, token: &P) -> bool {
        if self.pending == 0 {
            self.waiter = None;
            return true;
        }
        remember(&mut self.waiter, token);
        false
    }

    /// No more spawns (invariant 3): from now on a worker that finds the queue empty leaves
    /// instead of idling; the idle ones are counted as searching and their tokens returned, to
    /// unpark (they leave at their next search). Queued tasks still run, so once every worker
    /// has left, every task has finished.
    pub(crate) fn close(&mut self) -> Vec<P> {
        self.closed = true;
        self.searching += self.idle.len();
        self.idle.drain(..).map(|(_, token)| token).collect()
    }

    /// Ends the generation of the workers (invariant 3): they leave instead of taking another
    /// task, the idle ones as soon as they are woken (their tokens are returned, to unpark).
    /// Queued tasks stay queued: call it when nothing is pending, or drain them.
    pub(crate) fn retire(&mut self) -> Vec<P> {
        self.generation += 1;
        self.workers = 0;
        self.searching = 0;
        self.idle.drain(..).map(|(_, token)| token).collect()
    }

    /// Invariant 6: what a worker dropped before it left gives back. `busy` is the index of the
    /// task it was running (its future already dropped), if any; else it was idle (or woken).
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "only the async Group's workers are abandoned")
    )]
    pub(crate) fn abandon(&mut self, worker: WorkerId, busy: Option<usize>) -> Abandoned<J, P> {
        let mut cause = None;
        let mut finished = 0;
        if let Some(index) = busy {
            cause = self.slots.record(index, Outcome::Aborted, None);
            finished += 1;
        }
        let mut handed = Vec::new();
        if self.generation == worker.generation {
            if busy.is_none() {
                match self.idle.iter().position(|(id, _)| *id == worker.id) {
                    Some(at) => drop(self.idle.swap_remove(at)),
                    // `spawn` took its entry and counted it as searching.
                    None => self.searching -= 1,
                }
            }
            self.workers -= 1;
            // A queued task no searching worker claims goes to an idle worker. Terminates:
            // each turn moves one entry from `idle` to `searching`.
            while self.queue.len() > self.searching {
                let Some((_, idle)) = self.idle.pop() else {
                    break;
                };
                self.searching += 1;
                handed.push(idle);
            }
        }
        // No worker of the current generation is left to run what is queued: nothing ever will.
        let orphans = if self.workers == 0 {
            std::mem::take(&mut self.queue)
        } else {
            VecDeque::new()
        };
        for &(index, _) in &orphans {
            let orphan = self.slots.record(index, Outcome::Aborted, None);
            cause = cause.or(orphan);
        }
        finished += orphans.len();
        Abandoned {
            cause,
            orphans,
            finished,
            handed,
        }
    }

    /// Takes the round's outcomes out, leaving empty ones: under the lock, so that turning them
    /// into values and errors (user code) runs outside it.
    pub(crate) fn take_slots(&mut self) -> Slots<T, E> {
        self.slots.take()
    }
}

impl<T, E, J, P> fmt::Debug for Scheduler<T, E, J, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("pending", &self.pending)
            .field("queued", &self.queue.len())
            .field("workers", &self.workers)
            .field("idle", &self.idle.len())
            .field("searching", &self.searching)
            .field("generation", &self.generation)
            .field("slots", &self.slots)
            .finish()
    }
}

// ===== the locked protocol =====

/// The scheduler, locked: what proves a caller holds the group's lock.
pub(crate) type Locked<'a, T, E, J, P> = MutexGuard<'a, Scheduler<T, E, J, P>>;

/// What a group and its workers share: the scheduler behind the group's one lock, and the
/// group's context.
pub(crate) struct Shared<T, E, J, P> {
    /// The group's context; `None` for a `Group::new` group. Never changes.
    ctx: Option<Context>,
    /// Cancels `ctx`; `None` without a context. Canceled by the first failure and at the end
    /// of the round (and by a group's drop).
    cancel: Option<CancelHandle>,
    /// A hint, set under `state` when the round's first failure is recorded, cleared when the
    /// round ends: lets a failing task skip formatting its error when a cause has already been
    /// set.
    failed: AtomicBool,
    /// The scheduler (see the module's lock order).
    state: Mutex<Scheduler<T, E, J, P>>,
}

impl<T, E, J, P: Unpark> Shared<T, E, J, P> {
    pub(crate) fn new(ctx: Option<Context>, cancel: Option<CancelHandle>) -> Self {
        Shared {
            ctx,
            cancel,
            failed: AtomicBool::new(false),
            state: Mutex::new(Scheduler::new()),
        }
    }

    /// The group's context, if it has one.
    pub(crate) fn context(&self) -> Option<&Context> {
        self.ctx.as_ref()
    }

    /// Whether the group's context is done (never, without one).
    pub(crate) fn is_done(&self) -> bool {
        self.ctx.as_ref().is_some_and(Context::is_done)
    }

    /// The context a task gets: the group's, or the background without one.
    pub(crate) fn task_context(&self) -> Context {
        self.ctx.clone().unwrap_or_else(Context::background)
    }

    /// The lock, for reads (`pending`, `queued`, `Debug`) and for the tests.
    pub(crate) fn lock(&self) -> Locked<'_, T, E, J, P> {
        self.state.lock()
    }

    /// The text of a failing task's error, when it may become the context's cause: formatted
    /// before the lock is taken (user code).
    #[inline]
    pub(crate) fn message(&self, outcome: &Outcome<T, E>) -> Option<String>
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

    /// Spawns task `index` (see [`Scheduler::spawn`]), unparking the idle worker it was handed
    /// to after the lock is released. `Some` when the caller must start a new worker with it.
    #[inline]
    pub(crate) fn spawn(&self, index: usize, job: J) -> Option<NewWorker<J>> {
        let spawned = self.state.lock().spawn(index, job);
        Self::after_spawn(spawned)
    }

    /// What a spawn does once the lock is released: unpark the idle worker it handed its task
    /// to, or ask for a new worker.
    #[inline]
    fn after_spawn(spawned: Spawned<J, P>) -> Option<NewWorker<J>> {
        match spawned {
            Spawned::Queued => None,
            Spawned::Handed(idle) => {
                idle.unpark();
                None
            }
            Spawned::Start(new) => Some(new),
        }
    }

    /// As [`spawn`](Shared::spawn), but only if there is a free slot (invariant 4); hands the
    /// job back otherwise, having changed nothing.
    pub(crate) fn spawn_if_free(&self, index: usize, job: J) -> Result<Option<NewWorker<J>>, J> {
        let spawned = {
            let mut state = self.state.lock();
            if !state.has_free_slot() {
                return Err(job);
            }
            state.spawn(index, job)
        };
        Ok(Self::after_spawn(spawned))
    }

    /// See [`Scheduler::unstart`].
    pub(crate) fn unstart(&self, worker: WorkerId) {
        let waiter = self.state.lock().unstart(worker);
        if let Some(waiter) = waiter {
            waiter.unpark();
        }
    }

    /// Whether a spawn now would find a free slot (invariant 4).
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "the thread form asks with `spawn_if_free`")
    )]
    pub(crate) fn has_free_slot(&self) -> bool {
        self.state.lock().has_free_slot()
    }

    /// See [`Scheduler::poll_slot`].
    pub(crate) fn poll_slot(&self, token: &P) -> bool {
        self.state.lock().poll_slot(token)
    }

    /// See [`Scheduler::forget_spawner`]; the token is dropped after the lock is released.
    pub(crate) fn forget_spawner(&self) {
        let forgotten = self.state.lock().forget_spawner();
        drop(forgotten);
    }

    /// See [`Scheduler::poll_settled`].
    #[cfg_attr(
        not(feature = "tokio"),
        allow(
            dead_code,
            reason = "only the async Group's wait settles; a scope closes"
        )
    )]
    pub(crate) fn poll_settled(&self, token: &P) -> bool {
        self.state.lock().poll_settled(token)
    }

    /// Invariant 1, the second half of a worker's step: for the round's first failure
    /// (`cancel`), or when tasks were `drained`, releases the lock to cancel the context and
    /// drop them (a cancel wakes tasks; a future's or closure's drop is user code), then locks
    /// again; only then counts `finished` tasks as finished. Returns the lock and the waiter's
    /// token if `pending` reached zero (invariant 2), to be unparked once the caller releases it.
    fn lower<'a>(
        &'a self,
        mut state: Locked<'a, T, E, J, P>,
        cause: Option<TaskFailed>,
        drained: VecDeque<(usize, J)>,
        finished: usize,
    ) -> (Locked<'a, T, E, J, P>, Option<P>) {
        if state.has_failed() && !self.failed.load(Ordering::Relaxed) {
            self.failed.store(true, Ordering::Relaxed);
        }
        let cancel = cause.and_then(|cause| Some((self.cancel.as_ref()?, cause)));
        if cancel.is_some() || !drained.is_empty() {
            drop(state);
            if let Some((cancel, cause)) = cancel {
                cancel.cancel_with(cause);
            }
            let _ = catch_unwind(AssertUnwindSafe(|| drop(drained)));
            state = self.state.lock();
        }
        let waiter = state.lower(finished);
        (state, waiter)
    }

    /// A worker's step after task `index` ended (`None`: it never started, the context was
    /// done): records the outcome, cancels for the round's first failure, drains the queue once
    /// the context is done (invariant 5), lowers `pending` (invariant 1) and finds the worker's
    /// next step (invariant 3), in one critical section in the common case (a second one,
    /// after the cancel or the drops). Wakes `wait` (invariant 2) and a waiting spawn
    /// (invariant 4) after releasing the lock.
    ///
    /// # Performance
    ///
    /// Inlined into each form's worker loop: called through a function boundary, with its
    /// outcome and result passed by value, one worker thread draining 100,000 queued empty
    /// tasks spent 34 ns a task, against 19 inlined (the thread form before the scheduler was
    /// extracted: 19).
    #[inline(always)]
    pub(crate) fn finish(
        &self,
        worker: WorkerId,
        index: usize,
        outcome: Option<Outcome<T, E>>,
        message: Option<String>,
        token: &P,
    ) -> Search<J> {
        let mut state = self.state.lock();
        let cause = match outcome {
            Some(outcome) => state.record(index, outcome, message),
            None => None,
        };
        let (mut state, waiter) = if cause.is_none() && (state.queued() == 0 || !self.is_done()) {
            // The common case: nothing to cancel or drain, so one critical section.
            let waiter = state.lower(1);
            (state, waiter)
        } else {
            let failing = cause.is_some() && self.cancel.is_some();
            let drained = if state.queued() != 0 && (failing || self.is_done()) {
                state.drain()
            } else {
                VecDeque::new()
            };
            let finished = 1 + drained.len();
            self.lower(state, cause, drained, finished)
        };
        let next = state.search(worker, token);
        let spawner = state.take_spawner();
        drop(state);
        if let Some(waiter) = waiter {
            waiter.unpark();
        }
        if let Some(spawner) = spawner {
            spawner.unpark();
        }
        next
    }

    /// An idle worker woken (see [`Scheduler::poll_idle`]).
    pub(crate) fn poll_idle(&self, worker: WorkerId, token: &P) -> Poll<Option<(usize, J)>> {
        let mut state = self.state.lock();
        let next = state.poll_idle(worker, token);
        let spawner = if next.is_ready() {
            None
        } else {
            state.take_spawner()
        };
        drop(state);
        if let Some(spawner) = spawner {
            spawner.unpark();
        }
        next
    }

    /// Invariant 6: gives back what a worker dropped before it left held (its task's future
    /// already dropped, if it was busy).
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "only the async Group's workers are abandoned")
    )]
    pub(crate) fn abandon(&self, worker: WorkerId, busy: Option<usize>) {
        let mut state = self.state.lock();
        let Abandoned {
            cause,
            orphans,
            finished,
            handed,
        } = state.abandon(worker, busy);
        let (mut state, waiter) = if finished == 0 {
            (state, None) // an idle worker that only left its place
        } else {
            self.lower(state, cause, orphans, finished)
        };
        let spawner = state.take_spawner();
        drop(state);
        for token in waiter.into_iter().chain(handed).chain(spawner) {
            token.unpark();
        }
    }

    /// Sets the limit (see [`Scheduler::set_limit`]); `Err(pending)` while tasks are pending.
    pub(crate) fn set_limit(&self, limit: Option<NonZeroUsize>) -> Result<(), usize> {
        let idle = self.state.lock().set_limit(limit)?;
        for token in idle {
            token.unpark();
        }
        Ok(())
    }

    /// See [`Scheduler::close`]: the idle workers are unparked after the lock is released.
    pub(crate) fn close(&self) {
        let idle = self.state.lock().close();
        for token in idle {
            token.unpark();
        }
    }

    /// Retires the workers (see [`Scheduler::retire`]) and drains what is queued, dropping it
    /// outside the lock (nothing queued ever starts after this; call it when nothing is pending
    /// or when the round's results no longer matter).
    pub(crate) fn retire(&self) {
        let (idle, drained) = {
            let mut state = self.state.lock();
            (state.retire(), state.drain())
        };
        for token in idle {
            token.unpark();
        }
        let _ = catch_unwind(AssertUnwindSafe(|| drop(drained)));
    }

    /// Ends the round once nothing is pending: the context's error for tasks that never started,
    /// the context canceled, the failure hint cleared; returns the outcomes, taken out of the
    /// lock (turning them into results runs user code).
    pub(crate) fn end_round(&self) -> (Slots<T, E>, Error) {
        let skipped = self
            .ctx
            .as_ref()
            .and_then(Context::err)
            .unwrap_or(Error::Canceled);
        if let Some(cancel) = &self.cancel {
            cancel.cancel();
        }
        self.failed.store(false, Ordering::Relaxed);
        let slots = self.state.lock().take_slots();
        (slots, skipped)
    }

    /// Cancels the group's context (a group's drop, a scope's closure unwinding).
    pub(crate) fn cancel(&self) {
        if let Some(cancel) = &self.cancel {
            cancel.cancel();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The core alone, on made-up workers: tokens are names.

    use super::*;

    /// A token: a worker's (or waiter's) name. The core only stores and returns tokens; the
    /// tests check which one it returns.
    #[derive(Clone, Debug)]
    struct Token(u32);

    impl Token {
        fn new(name: u32) -> Token {
            Token(name)
        }
    }

    impl Unpark for Token {
        fn unpark(self) {}
        fn is_same(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }

    type Core = Scheduler<u32, Error, u32, Token>;

    fn limited(n: usize) -> Core {
        let mut core = Core::new();
        assert!(core.set_limit(NonZeroUsize::new(n)).unwrap().is_empty());
        core
    }

    fn start(spawned: Spawned<u32, Token>) -> (WorkerId, usize, u32) {
        match spawned {
            Spawned::Start(new) => (new.id, new.index, new.job),
            other => panic!("expected a new worker, got {other:?}"),
        }
    }

    fn ok(core: &mut Core, index: usize) {
        assert!(core
            .record(index, Outcome::Returned(Ok(index as u32)), None)
            .is_none());
    }

    #[test]
    fn a_finished_worker_idles_and_the_next_spawn_hands_it_the_task() {
        let mut core = Core::new();
        let token = Token::new(0);
        let (worker, index, job) = start(core.spawn(0, 10));
        assert_eq!((index, job), (0, 10));
        ok(&mut core, 0);
        assert!(core.lower(1).is_none(), "no waiter");
        assert!(matches!(core.search(worker, &token), Search::Idle));
        // A spurious wake-up: still idle, counts untouched.
        assert!(core.poll_idle(worker, &token).is_pending());
        match core.spawn(1, 11) {
            Spawned::Handed(t) => assert!(t.is_same(&token)),
            other => panic!("{other:?}"),
        }
        assert_eq!((core.searching, core.queued(), core.pending()), (1, 1, 1));
        // A second spawn while the worker has not woken yet: it is not free (it is bound to
        // task 1), so a new worker starts, never a queue behind task 1.
        let (second, _, _) = start(core.spawn(2, 12));
        assert_ne!(second, worker);
        assert_eq!(core.poll_idle(worker, &token), Poll::Ready(Some((1, 11))));
        assert_eq!((core.searching, core.workers), (0, 2));
    }

    #[test]
    fn at_the_limit_tasks_queue_for_the_busy_workers_and_no_slot_is_free() {
        let mut core = limited(2);
        let w0 = start(core.spawn(0, 0)).0;
        let _w1 = start(core.spawn(1, 1)).0;
        assert!(!core.has_free_slot());
        assert!(matches!(core.spawn(2, 2), Spawned::Queued));
        assert!(matches!(core.spawn(3, 3), Spawned::Queued));
        assert_eq!((core.pending(), core.queued(), core.workers), (4, 2, 2));
        ok(&mut core, 0);
        core.lower(1);
        assert!(matches!(core.search(w0, &Token::new(0)), Search::Run(2, 2)));
        ok(&mut core, 2);
        core.lower(1);
        assert!(matches!(core.search(w0, &Token::new(0)), Search::Run(3, 3)));
        assert!(!core.has_free_slot());
        ok(&mut core, 3);
        core.lower(1);
        assert!(matches!(core.search(w0, &Token::new(0)), Search::Idle));
        assert!(core.has_free_slot(), "an idle worker is a free slot");
    }

    #[test]
    fn a_waiting_spawner_is_unparked_by_the_worker_that_frees_a_slot() {
        let mut core = limited(1);
        let worker = start(core.spawn(0, 0)).0;
        let spawner = Token::new(99);
        assert!(!core.poll_slot(&spawner));
        assert!(!core.poll_slot(&spawner), "registered once");
        assert!(core.take_spawner().is_none(), "no slot free yet");
        ok(&mut core, 0);
        core.lower(1);
        assert!(matches!(core.search(worker, &Token::new(0)), Search::Idle));
        let woken = core.take_spawner().expect("the idle worker frees the slot");
        assert!(woken.is_same(&spawner));
        assert!(core.poll_slot(&spawner));
        assert!(core.spawner.is_none());
    }

    #[test]
    fn a_worker_that_leaves_frees_a_slot_too() {
        let mut core = limited(1);
        let worker = start(core.spawn(0, 0)).0;
        // Fill the idle list with others so that this one leaves instead of idling.
        core.idle = (0..MAX_IDLE as u64)
            .map(|id| (100 + id, Token::new(id as u32)))
            .collect();
        core.workers += MAX_IDLE;
        core.limit = 1 + MAX_IDLE;
        core.spawner = Some(Token::new(99));
        ok(&mut core, 0);
        core.lower(1);
        assert!(matches!(core.search(worker, &Token::new(0)), Search::Leave));
        assert_eq!(core.workers, MAX_IDLE);
        assert!(core.take_spawner().is_some());
    }

    #[test]
    fn the_waiter_is_unparked_by_whoever_lowers_pending_to_zero() {
        let mut core = Core::new();
        let waiter = Token::new(7);
        assert!(core.poll_settled(&waiter), "nothing pending");
        let _ = start(core.spawn(0, 0));
        let _ = start(core.spawn(1, 1));
        assert!(!core.poll_settled(&waiter));
        assert!(core.lower(1).is_none());
        assert!(core.lower(1).unwrap().is_same(&waiter));
        assert!(core.waiter.is_none());
        assert!(core.poll_settled(&waiter));
    }

    #[test]
    fn unstart_gives_back_the_place_and_the_pending_count() {
        let mut core = limited(1);
        let (worker, _, _) = start(core.spawn(0, 0));
        assert!(core.unstart(worker).is_none());
        assert_eq!((core.workers, core.pending()), (0, 0));
        assert!(core.has_free_slot());
    }

    #[test]
    fn retire_ends_a_generation_without_its_workers_touching_the_new_counts() {
        let mut core = Core::new();
        let token = Token::new(0);
        let old = start(core.spawn(0, 0)).0;
        let busy = start(core.spawn(1, 1)).0;
        ok(&mut core, 0);
        core.lower(1);
        assert!(matches!(core.search(old, &token), Search::Idle));
        let idle = core.retire();
        assert_eq!(idle.len(), 1);
        assert_eq!(core.poll_idle(old, &token), Poll::Ready(None));
        // The busy one of the old generation leaves after its task, counts untouched.
        let new = start(core.spawn(2, 2)).0;
        ok(&mut core, 1);
        core.lower(1);
        assert!(matches!(core.search(busy, &token), Search::Leave));
        assert_eq!(core.workers, 1);
        assert_ne!(new.generation, busy.generation);
    }

    #[test]
    fn after_close_workers_finish_the_queue_then_leave_and_idle_ones_leave_when_woken() {
        let mut core = limited(2);
        let (t0, t1) = (Token::new(0), Token::new(1));
        let w0 = start(core.spawn(0, 0)).0;
        let w1 = start(core.spawn(1, 1)).0;
        assert!(matches!(core.spawn(2, 2), Spawned::Queued));
        ok(&mut core, 0);
        core.lower(1);
        assert!(matches!(core.search(w0, &t0), Search::Run(2, 2)));
        ok(&mut core, 1);
        core.lower(1);
        assert!(matches!(core.search(w1, &t1), Search::Idle));
        let woken = core.close();
        assert_eq!(woken.len(), 1);
        assert!(woken[0].is_same(&t1));
        assert_eq!(core.poll_idle(w1, &t1), Poll::Ready(None));
        ok(&mut core, 2);
        core.lower(1);
        assert!(matches!(core.search(w0, &t0), Search::Leave));
        assert_eq!((core.workers, core.searching, core.pending()), (0, 0, 0));
    }

    #[test]
    fn set_limit_refuses_while_tasks_are_pending() {
        let mut core = Core::new();
        let _ = start(core.spawn(0, 0));
        assert_eq!(core.set_limit(NonZeroUsize::new(2)).unwrap_err(), 1);
        core.lower(1);
        assert!(core.set_limit(NonZeroUsize::new(2)).is_ok());
        assert_eq!(core.limit, 2);
    }

    #[test]
    fn a_dropped_idle_worker_only_leaves_its_place() {
        let mut core = Core::new();
        let (t0, t1) = (Token::new(0), Token::new(1));
        let w0 = start(core.spawn(0, 0)).0;
        let w1 = start(core.spawn(1, 1)).0;
        for (w, t) in [(w0, &t0), (w1, &t1)] {
            core.lower(1);
            assert!(matches!(core.search(w, t), Search::Idle));
        }
        let gave = core.abandon(w0, None);
        assert_eq!(
            (gave.finished, gave.orphans.len(), gave.handed.len()),
            (0, 0, 0)
        );
        assert!(gave.cause.is_none());
        assert_eq!(core.workers, 1);
        assert_eq!(
            core.idle.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            [w1.id]
        );
    }

    #[test]
    fn a_dropped_searching_worker_hands_its_task_to_an_idle_one() {
        let mut core = Core::new();
        let (t0, t1) = (Token::new(0), Token::new(1));
        let w0 = start(core.spawn(0, 0)).0;
        let w1 = start(core.spawn(1, 1)).0;
        core.lower(1);
        assert!(matches!(core.search(w0, &t0), Search::Idle));
        core.lower(1);
        assert!(matches!(core.search(w1, &t1), Search::Idle));
        // `spawn` hands task 2 to worker 1 (the last to idle), which is dropped before it wakes.
        assert!(matches!(core.spawn(2, 2), Spawned::Handed(_)));
        let gave = core.abandon(w1, None);
        assert_eq!(gave.finished, 0);
        assert_eq!(gave.handed.len(), 1, "the idle worker 0 is handed the task");
        assert!(gave.handed[0].is_same(&t0));
        assert_eq!((core.workers, core.searching), (1, 1));
        assert_eq!((core.queued(), core.pending()), (1, 1), "still to run");
        assert!(!core.has_failed());
    }

    #[test]
    fn the_last_worker_dropped_aborts_its_task_and_the_queue() {
        let mut core = limited(1);
        let w0 = start(core.spawn(0, 0)).0;
        assert!(matches!(core.spawn(1, 1), Spawned::Queued));
        assert!(matches!(core.spawn(2, 2), Spawned::Queued));
        let waiter = Token::new(7);
        assert!(!core.poll_settled(&waiter));
        let gave = core.abandon(w0, Some(0));
        assert!(gave.cause.as_ref().unwrap().is_aborted());
        assert_eq!(gave.finished, 3);
        assert_eq!(
            gave.orphans.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [1, 2]
        );
        assert!(core.lower(gave.finished).unwrap().is_same(&waiter));
        assert_eq!((core.workers, core.pending(), core.queued()), (0, 0, 0));
        let taken = core.take_slots().take_all(3, Error::DeadlineExceeded);
        assert_eq!(taken.ok().unwrap(), Err(vec![Error::Canceled; 3]));
    }

    #[test]
    fn a_worker_of_an_ended_generation_records_its_task_but_not_its_place() {
        let mut core = Core::new();
        let w0 = start(core.spawn(0, 0)).0;
        let _idle = core.retire();
        let gave = core.abandon(w0, Some(0));
        assert_eq!(gave.finished, 1);
        assert_eq!((core.workers, core.searching), (0, 0));
        assert!(core.has_failed());
    }

    /// A made-up worker's state, as the simulation below tracks it.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Sim {
        Busy(usize),
        Idle,
        Left,
    }

    /// A small xorshift generator: the simulation's only randomness, seeded per run.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// Random interleavings of spawns, task ends and wake-ups (spurious ones included) on the
    /// core, checking invariants 1, 3 and 4 after every step, and that every task runs exactly
    /// once and every round settles.
    #[test]
    fn random_schedules_keep_the_invariants_and_run_every_task_once() {
        for seed in 1..=300u64 {
            for limit in [None, Some(1), Some(3)] {
                simulate(seed, limit);
            }
        }
    }

    fn simulate(seed: u64, limit: Option<usize>) {
        let ctx = format!("seed {seed}, limit {limit:?}");
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut core = Core::new();
        core.set_limit(limit.and_then(NonZeroUsize::new)).unwrap();
        let mut workers: Vec<(WorkerId, Token, Sim)> = Vec::new();
        let mut ran = Vec::new();
        let tasks = 40;
        let mut spawned = 0;
        for _step in 0..2_000 {
            let op = rng.below(4);
            if op == 0 && spawned < tasks {
                let was_free = core.has_free_slot();
                let (queued_before, workers_before) = (core.queued(), core.workers);
                match core.spawn(spawned, spawned as u32) {
                    Spawned::Start(NewWorker { id, index, .. }) => {
                        assert!(was_free, "{ctx}");
                        let token = Token::new(workers.len() as u32);
                        workers.push((id, token, Sim::Busy(index)));
                    }
                    Spawned::Handed(token) => {
                        assert!(was_free, "{ctx}");
                        let w = workers.iter().find(|w| w.1.is_same(&token)).unwrap();
                        assert_eq!(w.2, Sim::Idle, "{ctx}: handed to a non-idle worker");
                    }
                    Spawned::Queued => {
                        // Invariant 4: queued behind running tasks only when no slot was free.
                        if !was_free {
                            assert_eq!(Some(workers_before), limit, "{ctx}");
                        } else {
                            assert!(queued_before < core.searching, "{ctx}");
                        }
                    }
                }
                spawned += 1;
            } else if op == 1 {
                // A busy worker's task ends.
                let busy: Vec<usize> = (0..workers.len())
                    .filter(|&i| matches!(workers[i].2, Sim::Busy(_)))
                    .collect();
                if busy.is_empty() {
                    continue;
                }
                let i = busy[rng.below(busy.len())];
                let Sim::Busy(index) = workers[i].2 else {
                    unreachable!()
                };
                ran.push(index);
                ok(&mut core, index);
                core.lower(1);
                workers[i].2 = match core.search(workers[i].0, &workers[i].1) {
                    Search::Run(next, _) => Sim::Busy(next),
                    Search::Idle => Sim::Idle,
                    Search::Leave => Sim::Left,
                };
            } else {
                // An idle worker polled: woken by a hand-off, or spuriously.
                let idle: Vec<usize> = (0..workers.len())
                    .filter(|&i| workers[i].2 == Sim::Idle)
                    .collect();
                if idle.is_empty() {
                    continue;
                }
                let i = idle[rng.below(idle.len())];
                workers[i].2 = match core.poll_idle(workers[i].0, &workers[i].1) {
                    Poll::Pending => Sim::Idle,
                    Poll::Ready(Some((next, _))) => Sim::Busy(next),
                    Poll::Ready(None) => Sim::Left,
                };
            }
            check(&core, &workers, limit, &ctx);
        }
        // Drain: run everything to the end (wake every handed worker, end every task).
        loop {
            let mut moved = false;
            for i in 0..workers.len() {
                match workers[i].2 {
                    Sim::Busy(index) => {
                        ran.push(index);
                        ok(&mut core, index);
                        core.lower(1);
                        workers[i].2 = match core.search(workers[i].0, &workers[i].1) {
                            Search::Run(next, _) => Sim::Busy(next),
                            Search::Idle => Sim::Idle,
                            Search::Leave => Sim::Left,
                        };
                        moved = true;
                    }
                    Sim::Idle => {
                        if let Poll::Ready(next) = core.poll_idle(workers[i].0, &workers[i].1) {
                            workers[i].2 = next.map_or(Sim::Left, |(n, _)| Sim::Busy(n));
                            moved = true;
                        }
                    }
                    Sim::Left => {}
                }
                check(&core, &workers, limit, &ctx);
            }
            if !moved {
                break;
            }
        }
        assert_eq!(core.pending(), 0, "{ctx}: the round settles");
        ran.sort_unstable();
        assert_eq!(
            ran,
            (0..spawned).collect::<Vec<_>>(),
            "{ctx}: each task once"
        );
        let results = core.take_slots().take_first(spawned, Error::Canceled);
        assert_eq!(
            results.ok().unwrap().unwrap(),
            (0..spawned as u32).collect::<Vec<_>>(),
            "{ctx}"
        );
    }

    fn check(core: &Core, workers: &[(WorkerId, Token, Sim)], limit: Option<usize>, ctx: &str) {
        let busy = workers
            .iter()
            .filter(|w| matches!(w.2, Sim::Busy(_)))
            .count();
        let alive = workers.iter().filter(|w| w.2 != Sim::Left).count();
        // Invariant 1.
        assert_eq!(core.pending(), busy + core.queued(), "{ctx}");
        // Invariant 3: every live worker is counted; busy + searching + idle = workers.
        assert_eq!(core.workers, alive, "{ctx}");
        assert_eq!(
            busy + core.searching + core.idle.len(),
            core.workers,
            "{ctx}"
        );
        assert!(core.idle.len() <= MAX_IDLE, "{ctx}");
        match limit {
            None => assert!(core.queued() <= core.searching, "{ctx}"),
            Some(limit) => assert!(core.workers <= limit, "{ctx}"),
        }
    }
}
