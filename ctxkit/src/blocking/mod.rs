//! The after-function pool: reusable threads that run the functions a completing context hands
//! off, so that a cancel only queues them (no thread start, no user code on its thread).
//!
//! A cancel (or a deadline's expiry, on the timer thread) hands the after-functions its
//! completion took from the context's list to [`hand_off_started`], all at once and untouched:
//! it appends their pointers to the *intake* (a lock that only hand-offs and the dispatcher
//! take, so the cancel does not queue behind busy workers) and, the first time since the
//! dispatcher last slept, wakes it; the dispatcher takes each one's job
//! (`Deferred::take_job_at`). A single function started any other way (registered on a done
//! context) goes through [`hand_off`]. Measured in `ctx.after_func_10k`, a 2-core machine:
//! with one `hand_off` per function (a compare-and-swap and a lock on each registration, then
//! the intake's lock, contended by the dispatcher draining it), `cancel()` returned in 0.6-3 ms;
//! handing them off as one batch of pointers, in 0.04-0.08 ms (blocking functions) and
//! 0.12-0.18 ms (async ones), against Go's 0.45-0.78 ms in the same runs. The *dispatcher* (one thread,
//! `ctxkit-after-dispatch`) moves the intake onto the queue, wakes idle workers for it, and
//! starts a worker when none is idle; the *workers* (threads named `ctxkit-after-func`) run the
//! queued functions, one at a time each, roughly oldest first (see "The queue's shards"). The
//! dispatcher is started by the first `after_func` registration on a context that can be done
//! ([`prepare`]), lives as long as the process (as the timer thread does), and never runs user
//! code: a function that blocks never stops the pool from growing, and the thread that hands
//! off never starts one.
//!
//! # Async after-functions
//!
//! An async after-function (`Context::after_func_async`) has its task spawned at its
//! registration, *gated* (`spawn::spawn_gated_task`: it waits, recorded but reported by no
//! leak check, until its gate opens). What its completion hands off is a [`Work::Spawn`] whose
//! start opens that gate (`spawn::Trigger::open`: one store, and a wake of the task on its
//! runtime). The dispatcher takes it from the intake with the others but queues it on no
//! shard: once it has released `state` (and woken the workers it claimed), it starts each one
//! itself. An opening does not block, so no worker is used and the pool does not grow for
//! them. The canceling thread does no more for them than for a blocking function (a pointer
//! copied into the intake). Measured, with one hand-off per function then, in `ctx.after_func_10k` (10,000 async functions on a 2-worker runtime,
//! a loaded 2-core machine; medians of 3-round `compare` runs, alternating), against the
//! tokio-util peer measured in the same run:
//!
//! * spawning each task here at the hand-off (the design before the gates: a spawn is about a
//!   microsecond, tokio's allocation, queue and wake-up, and `spawn`'s record) made `all_ran`
//!   11.2-11.7 ms, 1.6 times the peer's, as the dispatcher's 10,000 serial spawns were its
//!   critical path; opening gates makes it 6.2-7.7 ms, 0.76-0.98 times the peer's. The cancel
//!   pays for it a little: `cancel_return` 1.3-1.5 ms instead of 1.0-1.1 ms (0.7-1.2 times the
//!   peer's either way), though its own work is the same: the tasks it releases run sooner,
//!   on the two cores it runs on;
//! * spawning on the canceling thread itself made `cancel_return` 14-17 ms instead of
//!   1.0-1.4 ms, as the cancel's walk then paid for 10,000 spawns;
//! * opening the gates on the canceling thread itself (a wake per function there, no
//!   hand-off) made `all_ran` about the peer's (5.8-6.2 ms) but `cancel_return` 1.8-2.4 ms
//!   (single passes): the wake's tokio queue and the task's cache lines, on the cancel's walk;
//! * letting a burst of hand-offs settle before the dispatcher starts them (it waited while
//!   the intake still grew) gained nothing clear on the async cancel and lost on `all_ran`.
//!
//! The task is detached: its panic is reported by the panic hook and caught by tokio. A
//! runtime that has shut down has dropped the future already (with its task); its opening
//! does nothing. The dispatcher runs no user code for them: the closure that opens a gate
//! holds no user data (a never-done context's registration holds its future in a closure
//! that is never started, only dropped by its stop or its handle).
//!
//! # How many threads
//!
//! **No hard bound; a soft limit of [`SOFT_LIMIT`] (512) workers.** Up to it, while every
//! worker is busy and a function waits in the queue, the dispatcher starts one more worker, one
//! at a time, for as long as that stays true. Past it, it starts one more only when no queued
//! function has been taken for [`STUCK_AFTER`] (10 ms): when every worker is stuck.
//!
//! Why no hard bound: a function may block (on I/O, on a lock, on another after-function's
//! effect, or forever). Go runs each after-function on a goroutine of its own, so one that
//! never returns delays nobody, and functions may wait for each other. A fixed bound breaks
//! that: once that many functions block, every later one waits forever, behind work that may
//! itself wait for it. Here a blocked function costs a thread, as it did when every function
//! had a thread of its own, and as it costs a goroutine in Go; past the soft limit, a pool
//! whose every worker blocks still grows, by one thread per 10 ms, so it never deadlocks.
//!
//! Why a soft limit: a burst of short functions is served by the workers that free up first (a
//! worker that finishes takes the next function at once), and workers are added one after
//! another, not one per function, so a first burst of 10,000 functions of 1 ms ran on a few
//! hundred threads. But a later burst finds the last one's idle workers, claims them all, still
//! has more functions queued than workers, and grows again: bursts a few seconds apart would
//! creep towards a thread per function. Past the soft limit, a queue that drains drains through
//! the workers it has.
//!
//! Why 512 and not more: a worker whose function sleeps costs the OS a sleep and two context
//! switches per function (about 5-10 µs of CPU on a loaded 2-core machine), so 512 workers
//! sleeping 1 ms each already ask for more than two cores' worth of switching alone; in
//! `ctx.after_func_10k` a limit of 1,024 made no measurable difference, and a pure-`std` pool of 512 to 4,096 threads was
//! fastest at 512 to 1,024. A parked thread holds about 10 KiB of resident user memory (512
//! parked threads: +5 MB RSS) and a 16 KiB kernel stack (x86-64), and 2 MiB of address space.
//!
//! Workers are started with std's default stack size (2 MiB, or `RUST_MIN_STACK`), as the
//! threads that ran each function before the pool were: an after-function is user code that
//! may recurse or hold large locals, and a smaller stack would be a stack overflow that only
//! some functions hit. The stack is address space reserved, not memory committed: its size
//! costs nothing a function does not touch.
//!
//! A worker started while growth is wanted does not itself start the next one: tried, with
//! workers starting workers, the first burst reached more workers sooner but finished no
//! sooner (the starts took the CPU the functions needed), and the canceling thread, competing
//! with the starts, returned 5-20 ms late instead of in about 1 ms.
//!
//! **Idle workers exit after [`KEEP_ALIVE`]** (5 s) without a function: long enough that the
//! bursts of a service (a deploy, a client that drops its connections) reuse the threads of
//! the last one, short enough that a burst's threads do not linger. The dispatcher stays.
//!
//! # The queue's shards
//!
//! The queue is [`SHARDS`] (16) queues, each under its own lock. A fill spreads the intake over
//! them in runs of consecutive functions, from the shard after the last fill's; a worker
//! searches them from a shard of its own (`home`, given out in turn as workers start) and
//! takes the oldest function of the first one that has one. A busy worker that finishes a
//! function takes the next this way under that shard's lock alone, without `state`: hundreds
//! of workers whose 1 ms sleeps end on the same timer tick all take their next function at
//! once, and on one lock they queued on it (a futex sleep and wake-up each, about a tenth of
//! the pool's CPU time in `ctx.after_func_10k`). Only a worker about to wait takes `state`,
//! and searches again under it. So the order is oldest first within a shard and within a
//! fill's runs, not across the whole queue: functions handed off together start together.
//!
//! # Panics
//!
//! As when each function had its thread: the panic hook reports it (`thread
//! 'ctxkit-after-func' panicked at ...`), and nothing else sees it (nobody joins an
//! after-function). The worker catches the unwind and goes on with the next function, so one
//! panic never takes a thread away from the others.
//!
//! # Leak checks
//!
//! The dispatcher and the workers are ctxkit's own threads, shared by the whole process
//! (`spawn::Kind::Shared`, untagged): never a leak by themselves, idle or not, as the timer
//! thread is not. Each function is a unit of its own instead, which a check sees from its
//! hand-off until it returns: queued, it is listed by [`queued_units`] ("waiting on: a free
//! ctxkit-after-func thread"); running, it is a `spawn::PooledUnit` on its worker, recorded
//! with its own start. Both carry the tag current where `after_func` was called (the
//! registration's scope), so a check finds exactly the functions its test registered that have
//! not returned, whoever canceled the context (a neighbour test, or the timer thread). An async
//! one's task is recorded by `spawn` from its registration, but as *dormant* (`spawn`'s
//! invariant 5: counted as a tracked task of its runtime, reported by no check) until its gate
//! opens: a registration whose context is not done is nobody's leak. Once handed off, it is
//! listed by [`queued_units`] until its gate is open (a task, [`AFTER_FUNC_TASK`], "waiting
//! on: the dispatcher"), then reported by `spawn`, with the registration's site and tag, until
//! tokio drops its future (it completed, or its runtime shut down). The task was spawned with
//! the registration's tag current, so it carries that tag, and what it starts inherits it.

//! # Invariants
//!
//! 1. A handed-off function is in the intake (as a job, or, started by a completion, as its
//!    registration, listed with its site and tag), then in a shard, then recorded as a unit
//!    (`PooledUnit::begin`) until it returns. It moves from the intake to a shard under
//!    `state` (and each of the two locks in turn), and a worker records it before it releases
//!    the shard's lock it popped it under; [`queued_units`] reads the intake and every shard
//!    under `state`, and a leak check reads it before the registry: a function is never
//!    missed. An async one moves from the intake to `spawning` (a list of what is being
//!    started) under `state`, and leaves it only after its start (its gate's opening) has
//!    returned, by which time `spawn` reports its task; [`queued_units`] reads `spawning` too
//!    (a loom model: `loom_spawn_vs_a_look_at_the_queue`).
//! 2. `workers = running + idle + claimed + starting`, under `state`: `idle` counts the
//!    workers waiting and not claimed, `claimed` those waiting that the dispatcher has claimed
//!    (and notified) for a queued function, `starting` those it started that have not taken
//!    the lock yet.
//! 3. While an unclaimed worker waits (`idle > 0`), every queued function is claimed: the
//!    shards hold no more than `claimed` functions. The dispatcher keeps it by claiming idle
//!    workers when it fills the shards, under `state` (and notifies them once it has released
//!    it: the claim, not the notify, is what a worker acts on); a worker only waits once it
//!    has found every shard empty under `state` (no fill runs then, so they stay empty until
//!    it waits); a worker that consumes a claim searches the shards in the same critical
//!    section. Busy workers take functions without `state`, which only lowers the count: a
//!    claimed worker may find nothing left, and then waits again. So a queued function never
//!    waits beside an idle worker.
//! 4. Growth is wanted ([`State::wants_growth`]) when no worker is idle and more functions
//!    are queued than the claimed and starting workers will take. Only the dispatcher fills
//!    the shards, so only it makes growth wanted (a busy worker's take only lowers the count
//!    it reads); it checks after every fill, and, past the soft limit, again when
//!    [`STUCK_AFTER`] has passed (a timed wait) to see whether the shards' `taken` counts
//!    moved meanwhile.
//! 5. While `Intake.awake` is true the dispatcher runs or has been notified, and will look at
//!    the intake again before it sleeps: it sets it false only under both locks, with the
//!    intake empty, right before it waits (which releases `state`). A hand-off that finds it
//!    false sets it and notifies under `state`, so the dispatcher is either before its look
//!    (and sees the function) or waiting (and wakes). So a function pushed onto the intake is
//!    always seen, and a burst of hand-offs notifies once (a loom model:
//!    `loom_hand_off_vs_the_dispatcher_going_to_sleep`).
//! 6. A worker exits only under `state`, with no claim to consume and its keep-alive spent:
//!    it leaves `idle`, so no later fill counts on it (invariant 3).
//!
//! # Lock order
//!
//! `state`, then `intake`, one shard or `spawning` (never two of those at once). A hand-off takes
//! `intake` alone, then, to wake the dispatcher, `state` alone; a busy worker takes a shard alone;
//! the dispatcher, once its spawns have returned, `spawning` alone. Under a shard, all leaves of
//! `spawn`: a worker records its function's unit in its own thread's record (that record's `job`
//! lock; the registry's lock on a thread that is not a shared one; the first time it does while
//! leak checks are in use, it also reads its OS thread id, one file read per worker). Under
//! `state`, the first registration starts the dispatcher (the registry's lock), and a fill
//! takes the jobs of the registrations a completion handed off (each `Deferred`'s lock, a
//! leaf, with the intake's released). No user code runs
//! under any of them: functions run, and are dropped, after they are released; async ones are
//! started (their gates opened) with no lock of the pool held.
//! A hand-off comes from under no lock of the tree (`tree.rs` notifies its waiters after releasing
//! the node's lock).
//!
//! # Loom
//!
//! Under `--cfg loom` no thread is started through `spawn` (as for the timer): [`prepare`]
//! only marks the dispatcher as running. The models (`tests/loom_blocking.rs`) run the
//! dispatcher's loop on a loom thread of their own, which starts its workers as loom threads,
//! or drain the pool themselves; a worker's idle wait ends at once, as if its keep-alive were
//! spent (loom's waits never time out, and a model must see a worker leave).

use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::context::deferred::Deferred;
use crate::spawn::{self, Kind, Origin, PooledUnit, ScopeTag, UnitInfo};
use crate::sync::{self, Arc, AtomicBool, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering};

#[cfg(all(test, loom))]
mod tests;

/// How long a worker waits for a function before it exits.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Workers past which the pool grows only when it is stuck (see the module docs).
pub(crate) const SOFT_LIMIT: usize = 512;

/// Past [`SOFT_LIMIT`], how long no queued function may be taken before one more worker starts.
pub(crate) const STUCK_AFTER: Duration = Duration::from_millis(10);

/// How many parts the queue is split into: busy workers that take their next function at the
/// same moment (their sleeps end on the same timer tick) take different locks. Two under loom,
/// to model a search that crosses shards at all.
const SHARDS: usize = if cfg!(loom) { 2 } else { 16 };

/// How long the dispatcher waits before trying again when the OS refused a thread.
const RETRY_START: Duration = Duration::from_millis(10);

/// What a queued function waits on, in a leak report.
const QUEUED: &str = "a free ctxkit-after-func thread (handed off, not started yet)";

/// What a leak report calls an async after-function (`Context::after_func_async`): queued
/// here, then its tokio task, spawned gated through `spawn::spawn_gated_task` at its
/// registration, once its gate is open.
pub(crate) const AFTER_FUNC_TASK: &str = "ctxkit-after-func-async";

/// What a queued async after-function waits on, in a leak report.
const QUEUED_SPAWN: &str =
    "the dispatcher, to be started on its tokio runtime (handed off, not started yet)";

/// A handed-off function.
pub(crate) type Callback = Box<dyn FnOnce() + Send + 'static>;

/// Starts a unit that never blocks (opens the gate of an async after-function's task, spawned
/// at its registration), given the job's `Origin`. Called by the dispatcher (never a worker),
/// with the job's tag current.
pub(crate) type Spawner = Box<dyn FnOnce(Origin) + Send + 'static>;

/// What a handed-off job does.
pub(crate) enum Work {
    /// A function that may block: run on a worker.
    Run(Callback),
    /// A start that does not block: run by the dispatcher itself (see "Async after-functions"
    /// in the module docs).
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "only the async after-functions spawn")
    )]
    Spawn(Spawner),
}

impl Work {
    /// Does the work on the calling thread, as `origin` under `tag`: runs the function, or
    /// spawns the task (the OS refused every thread of the pool; or an async after-function
    /// registered on a context that was already done, spawned at once by its registration).
    pub(crate) fn run_here(self, origin: Origin, tag: Option<ScopeTag>) {
        match self {
            Work::Run(callback) => callback(),
            Work::Spawn(spawner) => {
                let _tag = tag.map(ScopeTag::enter);
                spawner(origin);
            }
        }
    }
}

/// A function handed off, with what a leak check records of it. `W` is what it does: [`Work`]
/// in the intake, a [`Callback`] in the queue's shards, a [`Spawner`] while the dispatcher
/// spawns it, nothing (`()`) in the list of those being spawned.
pub(crate) struct Job<W = Work> {
    work: W,
    /// Who registered it: its unit's name and spawn site.
    origin: Origin,
    /// The tag current where it was registered.
    tag: Option<ScopeTag>,
    /// When it was handed off (a queued function's age in a leak report).
    handed: Instant,
}

impl Job {
    /// The function `callback`, registered at `origin` under `tag`, handed off now.
    #[cfg(test)]
    pub(crate) fn new(callback: Callback, origin: Origin, tag: Option<ScopeTag>) -> Job {
        Job::of(Work::Run(callback), origin, tag)
    }

    /// `work`, registered at `origin` under `tag`, handed off now.
    pub(crate) fn of(work: Work, origin: Origin, tag: Option<ScopeTag>) -> Job {
        Job::of_at(work, origin, tag, Instant::now())
    }

    /// `work`, registered at `origin` under `tag`, handed off at `handed`.
    pub(crate) fn of_at(work: Work, origin: Origin, tag: Option<ScopeTag>, handed: Instant) -> Job {
        Job {
            work,
            origin,
            tag,
            handed,
        }
    }

    /// Does it on the calling thread (the OS refused every thread of the pool): see
    /// [`Work::run_here`].
    pub(crate) fn run_here(self) {
        self.work.run_here(self.origin, self.tag);
    }

    /// Whether the dispatcher spawns it (else a worker runs it).
    pub(crate) fn spawns(&self) -> bool {
        matches!(self.work, Work::Spawn(_))
    }
}

impl Job<()> {
    /// The same job doing `work`.
    fn with<V>(&self, work: V) -> Job<V> {
        Job {
            work,
            origin: self.origin,
            tag: self.tag,
            handed: self.handed,
        }
    }
}

impl<W> Job<W> {
    /// What it does, and the rest of it.
    fn split(self) -> (W, Job<()>) {
        let rest = Job {
            work: (),
            origin: self.origin,
            tag: self.tag,
            handed: self.handed,
        };
        (self.work, rest)
    }

    /// What a leak report says of it while it is queued; `spawns`: an async one, which the
    /// dispatcher spawns.
    fn queued_unit(&self, spawns: bool) -> UnitInfo {
        queued_unit(spawns, self.origin, self.tag, self.handed)
    }
}

/// A queued function, as a unit for a leak report: registered at `origin` under `tag`,
/// handed off at `handed`; an async one's (`spawns`) is a task.
fn queued_unit(spawns: bool, origin: Origin, tag: Option<ScopeTag>, handed: Instant) -> UnitInfo {
    let (kind, name, waiting) = if spawns {
        (Kind::Task, AFTER_FUNC_TASK, QUEUED_SPAWN)
    } else {
        (Kind::Thread, spawn::AFTER_FUNC_THREAD, QUEUED)
    };
    UnitInfo {
        kind,
        name,
        spawned_at: origin.site(),
        started: handed,
        tag,
        waiting: Some((waiting.to_owned(), true)),
        os_id: None,
    }
}

/// A pool of workers and its dispatcher (see the module docs). One per process ([`hand_off`]);
/// tests make their own with a shorter keep-alive.
pub(crate) struct BlockingPool {
    /// The workers' counts and claims (invariants 1 to 4, 6).
    state: Mutex<State>,
    /// The queue, in [`SHARDS`] parts (see "The queue's shards" in the module docs): filled
    /// under `state`, popped by a busy worker under its shard's lock alone.
    shards: Box<[Mutex<Shard>]>,
    /// Where the next worker starts its search of the shards.
    homes: AtomicUsize,
    /// What hand-offs push (invariants 1, 5). Taken under `state` or alone; a leaf.
    intake: Mutex<Intake>,
    /// The async functions the dispatcher took from the intake and is spawning, listed (without
    /// their futures) until every one of them is spawned and recorded (invariant 1). Filled
    /// under `state`, emptied by the dispatcher alone; a leaf.
    spawning: Mutex<Vec<Job<()>>>,
    /// Idle workers wait on it (with `state`); notified once per claim, after `state` is
    /// released (invariant 3).
    work: Condvar,
    /// The dispatcher waits on it (with `state`); notified by a hand-off (invariant 5).
    dispatch: Condvar,
    /// Set once the dispatcher runs, never cleared: [`prepare`]'s lock-free fast path.
    dispatcher_up: AtomicBool,
    /// How long an idle worker waits before it exits.
    keep_alive: Duration,
    /// Workers past which the pool grows only when stuck.
    soft_limit: usize,
    /// How long past `soft_limit` no function may be taken before one more worker starts.
    stuck_after: Duration,
}

/// Under `BlockingPool.state`.
#[derive(Default)]
struct State {
    /// The shard the next fill starts with.
    cursor: usize,
    /// Workers started and not exited (invariant 2).
    workers: usize,
    /// Workers waiting, unclaimed (invariants 2, 3).
    idle: usize,
    /// Workers waiting, claimed for a queued function, not woken yet (invariants 2, 3).
    claimed: usize,
    /// Workers started that have not taken the lock yet (invariant 2).
    starting: usize,
    /// Past the soft limit: the functions taken ([`BlockingPool::taken`]) when the dispatcher began to wait for progress, and when.
    watch: Option<(u64, Instant)>,
    /// Whether the dispatcher runs (under loom: was asked to); set once.
    dispatcher: bool,
    /// Whether the last worker start failed (the OS's refusal is said once per streak).
    refused: bool,
    /// Set by tests only: the dispatcher returns, idle workers exit at once.
    closed: bool,
}

/// Under `BlockingPool.intake`.
struct Intake {
    /// Handed off, not yet taken by the dispatcher (invariant 1).
    jobs: Vec<Job>,
    /// Handed off by a completion, their jobs not taken yet ([`hand_off_started`]); queued as
    /// `jobs` are (invariant 1).
    started: Vec<Arc<Deferred>>,
    /// When the first of `started` was handed off.
    started_at: Instant,
    /// Invariant 5.
    awake: bool,
}

impl Default for Intake {
    fn default() -> Self {
        Intake {
            jobs: Vec::new(),
            started: Vec::new(),
            started_at: Instant::now(),
            awake: false,
        }
    }
}

/// One part of the queue.
#[derive(Default)]
struct Shard {
    /// Functions taken from the intake, oldest first (invariant 1).
    jobs: VecDeque<Job<Callback>>,
    /// Functions workers have taken from it, ever: progress, for the soft limit.
    taken: u64,
}

impl State {
    /// Invariant 4, with `queued` functions in the shards.
    fn wants_growth(&self, queued: usize) -> bool {
        self.idle == 0 && queued > self.claimed + self.starting
    }
}

sync::lazy_static! {
    /// The process's pool.
    static ref POOL: Arc<BlockingPool> = Arc::new(BlockingPool::new(KEEP_ALIVE));
}

/// Makes sure the pool's dispatcher runs, so that a later hand-off needs no thread start:
/// called when an after-function is registered on a context that can be done. One load once
/// the dispatcher runs. False if the OS refused its thread (said on standard error; the next
/// call tries again).
pub(crate) fn prepare() -> bool {
    POOL.prepare()
}

/// Hands `job` to the pool: it runs on a worker, soon, never on this thread.
///
/// # Errors
///
/// `job`, back, if no dispatcher runs and the OS refused to start one now: the caller runs it
/// some other way.
pub(crate) fn hand_off(job: Job) -> Result<(), Job> {
    POOL.hand_off(job)
}

/// Hands the after-functions a completion started (`context/waiters.rs`) to the pool at once,
/// in order, under one take of the intake's lock, without touching them: the dispatcher takes
/// each one's job ([`Deferred::take_job_at`]) when it moves the intake. So a cancel that starts
/// 10,000 of them copies 10,000 pointers, where taking each one's job itself would visit each
/// registration's memory (cache misses), and pushing each would contend with the dispatcher
/// for the lock 10,000 times.
///
/// # Errors
///
/// `started`, back, if no dispatcher runs and the OS refused to start one now.
pub(crate) fn hand_off_started(started: Vec<Arc<Deferred>>) -> Result<(), Vec<Arc<Deferred>>> {
    POOL.hand_off_started(started)
}

/// The functions handed off and not started yet, as units for a leak report (invariant 1:
/// read this before `spawn::live_units`).
pub(crate) fn queued_units() -> Vec<UnitInfo> {
    POOL.queued_units()
}

impl BlockingPool {
    pub(crate) fn new(keep_alive: Duration) -> BlockingPool {
        BlockingPool::with_limits(keep_alive, SOFT_LIMIT, STUCK_AFTER)
    }

    pub(crate) fn with_limits(
        keep_alive: Duration,
        soft_limit: usize,
        stuck_after: Duration,
    ) -> BlockingPool {
        BlockingPool {
            state: Mutex::new(State::default()),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            homes: AtomicUsize::new(0),
            intake: Mutex::new(Intake::default()),
            spawning: Mutex::new(Vec::new()),
            work: Condvar::new(),
            dispatch: Condvar::new(),
            dispatcher_up: AtomicBool::new(false),
            keep_alive,
            soft_limit,
            stuck_after,
        }
    }

    /// See [`prepare`].
    fn prepare(self: &Arc<Self>) -> bool {
        if self.dispatcher_up.load(Ordering::Acquire) {
            return true;
        }
        let started = self.start_dispatcher(&mut self.state.lock());
        if let Err(error) = &started {
            eprintln!("ctxkit: could not start the after-function pool's {} thread ({error}); an after-function will run on the thread that completes its context", spawn::AFTER_FUNC_DISPATCHER);
        }
        started.is_ok()
    }

    /// Starts the dispatcher unless it runs; requires `state` locked. The registry's lock is
    /// taken under it (a leaf); the new thread waits for `state` to be released.
    fn start_dispatcher(self: &Arc<Self>, state: &mut State) -> std::io::Result<()> {
        if state.dispatcher {
            return Ok(());
        }
        if cfg!(not(loom)) {
            let pool = self.clone();
            spawn::try_spawn_shared(Origin::here(spawn::AFTER_FUNC_DISPATCHER), move || {
                pool.dispatch_loop();
            })?;
        }
        state.dispatcher = true;
        self.dispatcher_up.store(true, Ordering::Release);
        Ok(())
    }

    /// See [`hand_off`].
    fn hand_off(self: &Arc<Self>, job: Job) -> Result<(), Job> {
        if !self.dispatcher_up.load(Ordering::Acquire) && !self.prepare() {
            // Only after the OS refused the dispatcher at registration, and again now.
            return Err(job);
        }
        self.push(|intake| intake.jobs.push(job));
        Ok(())
    }

    /// See [`hand_off_started`].
    fn hand_off_started(
        self: &Arc<Self>,
        mut started: Vec<Arc<Deferred>>,
    ) -> Result<(), Vec<Arc<Deferred>>> {
        if !self.dispatcher_up.load(Ordering::Acquire) && !self.prepare() {
            return Err(started);
        }
        self.push(|intake| {
            if intake.started.is_empty() {
                intake.started_at = Instant::now();
            }
            intake.started.append(&mut started);
        });
        Ok(())
    }

    /// Adds to the intake with `add`, under its lock, and wakes the dispatcher if it may sleep.
    fn push(&self, add: impl FnOnce(&mut Intake)) {
        let wake = {
            let mut intake = self.intake.lock();
            add(&mut intake);
            !std::mem::replace(&mut intake.awake, true)
        };
        if wake {
            // Invariant 5: under `state`, so the dispatcher is either before its check of the
            // intake (and will see the functions) or waiting (and gets this notify).
            let _state = self.state.lock();
            self.dispatch.notify_one();
        }
    }

    /// See [`queued_units`].
    fn queued_units(&self) -> Vec<UnitInfo> {
        // Lock order: `state`, then one shard or `intake` at a time. Under `state` no function
        // moves from the intake to a shard (invariant 1).
        let _state = self.state.lock();
        let mut units: Vec<UnitInfo> = {
            let intake = self.intake.lock();
            let started = intake
                .started
                .iter()
                .map(|d| queued_unit(d.spawns(), d.origin(), d.tag(), intake.started_at));
            intake
                .jobs
                .iter()
                .map(|job| job.queued_unit(job.spawns()))
                .chain(started)
                .collect()
        };
        for shard in self.shards.iter() {
            units.extend(shard.lock().jobs.iter().map(|job| job.queued_unit(false)));
        }
        units.extend(self.spawning.lock().iter().map(|job| job.queued_unit(true)));
        units
    }

    /// The functions in the shards. With `state` locked it counts every fill; a busy worker
    /// may take one meanwhile, so it can be high, never low.
    fn queued(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().jobs.len())
            .sum()
    }

    /// The functions workers have taken from the shards, ever.
    fn taken(&self) -> u64 {
        self.shards.iter().map(|shard| shard.lock().taken).sum()
    }

    /// Takes the oldest function of the first shard that has one, from `home` on, and
    /// records it as a unit under that shard's lock (invariant 1).
    fn pop(&self, home: usize) -> Option<(PooledUnit, Callback)> {
        (0..self.shards.len()).find_map(|i| {
            let mut shard = self.shards[(home + i) % self.shards.len()].lock();
            let job = shard.jobs.pop_front()?;
            shard.taken += 1;
            Some((PooledUnit::begin(job.origin, job.tag), job.work))
        })
    }

    /// Moves the intake onto the queue and claims idle workers for it (invariants 1, 3);
    /// requires `state` locked. Returns how many workers it claimed, for [`wake`](Self::wake)
    /// to notify once `state` is released: a woken worker's first act is to take `state`, so
    /// a notify sent under it wakes a thread only to block it again on the lock (at the start
    /// of a burst on a warm pool, hundreds of them, which delayed the first function by ms).
    /// The async functions go to no shard: they are listed in `spawning` and returned, for
    /// [`spawn_all`](Self::spawn_all) once `state` is released.
    #[must_use]
    fn fill(&self, state: &mut State) -> (usize, Vec<Job<Spawner>>) {
        let (mut taken, started, started_at) = {
            let mut intake = self.intake.lock();
            let started = std::mem::take(&mut intake.started);
            (std::mem::take(&mut intake.jobs), started, intake.started_at)
        };
        // The jobs of what a completion started, taken here, with no lock but `state` held (a
        // `Deferred`'s lock is a leaf). Its stop cannot have won: it lost when the completion
        // took it from its context's list (`after_func.rs`).
        taken.extend(started.iter().filter_map(|d| d.take_job_at(started_at)));
        drop(started);
        let spawning = taken.iter().filter(|job| job.spawns()).count();
        let mut jobs: Vec<Job<Callback>> = Vec::with_capacity(taken.len() - spawning);
        let mut spawns = Vec::with_capacity(spawning);
        let mut listed = Vec::with_capacity(spawning);
        for job in taken {
            let (work, job) = job.split();
            match work {
                Work::Run(callback) => jobs.push(job.with(callback)),
                Work::Spawn(spawner) => {
                    spawns.push(job.with(spawner));
                    listed.push(job);
                }
            }
        }
        if !listed.is_empty() {
            let mut spawning = self.spawning.lock();
            if spawning.is_empty() {
                *spawning = listed;
            } else {
                spawning.append(&mut listed);
            }
        }
        if jobs.is_empty() {
            return (0, spawns);
        }
        // Spread over the shards in order, a run of consecutive functions per shard, from
        // where the last fill stopped.
        let (n, parts) = (jobs.len(), self.shards.len());
        let mut jobs = jobs.into_iter();
        for i in 0..parts.min(n) {
            let share = n / parts + usize::from(i < n % parts);
            let mut shard = self.shards[(state.cursor + i) % parts].lock();
            shard.jobs.extend(jobs.by_ref().take(share));
        }
        state.cursor = (state.cursor + n) % parts;
        let claim = self.queued().saturating_sub(state.claimed).min(state.idle);
        state.idle -= claim;
        state.claimed += claim;
        (claim, spawns)
    }

    /// Starts the async functions [`fill`](Self::fill) took (opens their tasks' gates), each
    /// with its own tag current, then unlists them (invariant 1: each is reported by `spawn`
    /// once its start returns); called by the dispatcher with no lock held. A start does not
    /// block and runs no user code; a panic would be caught all the same: the dispatcher never
    /// unwinds.
    fn spawn_all(&self, spawns: Vec<Job<Spawner>>) {
        if spawns.is_empty() {
            return;
        }
        for job in spawns {
            let (origin, tag) = (job.origin, job.tag);
            let spawner = job.work;
            let spawned = panic::catch_unwind(AssertUnwindSafe(move || {
                Work::Spawn(spawner).run_here(origin, tag)
            }));
            if let Err(payload) = spawned {
                forget_panic(payload);
            }
        }
        let listed = std::mem::take(&mut *self.spawning.lock());
        drop(listed);
    }

    /// Wakes `claimed` waiting workers, for the claims [`fill`](Self::fill) made; called
    /// with `state` released. One notify per claim, not one for every waiter when all are
    /// claimed: hundreds of workers woken at once would all queue on `state` again. A claimed
    /// worker that a notify reaches late (or never, having timed out meanwhile) still finds
    /// its claim under `state` (invariant 3), and a notify that reaches an unclaimed waiter
    /// only sends it back to wait.
    fn wake(&self, claimed: usize) {
        for _ in 0..claimed {
            self.work.notify_one();
        }
    }

    /// The dispatcher's loop: fills the queue from the intake, starts a worker whenever
    /// growth is wanted (invariant 4), one at a time, and sleeps when there is nothing to do
    /// (invariant 5). Returns only when a test closes the pool.
    fn dispatch_loop(self: Arc<Self>) {
        let mut state = self.state.lock();
        loop {
            if state.closed {
                return;
            }
            let (claimed, spawns) = self.fill(&mut state);
            if claimed > 0 || !spawns.is_empty() {
                drop(state);
                self.wake(claimed);
                self.spawn_all(spawns);
                state = self.state.lock();
                continue;
            }
            let mut pause = None;
            let growth = state.wants_growth(self.queued());
            if growth {
                pause = self.stuck_for(&mut state);
            }
            if growth && pause.is_none() {
                // Counted before it runs (invariant 2), so the next round does not start a
                // second worker for the same function.
                state.starting += 1;
                state.workers += 1;
                drop(state);
                let started = self.start_worker();
                state = self.state.lock();
                if let Err(error) = started {
                    state.starting -= 1;
                    state.workers -= 1;
                    let first = !std::mem::replace(&mut state.refused, true);
                    drop(state);
                    if first {
                        eprintln!("ctxkit: could not start an after-function thread ({error}); the functions wait for a busy one to finish, and a start is tried again every {RETRY_START:?}");
                    }
                    std::thread::sleep(RETRY_START);
                    state = self.state.lock();
                } else {
                    state.refused = false;
                }
                continue;
            }
            {
                // Invariant 5: sleep only with the intake empty, both locks held.
                let mut intake = self.intake.lock();
                if !intake.jobs.is_empty() || !intake.started.is_empty() {
                    continue;
                }
                intake.awake = false;
            }
            state = match pause {
                // Past the soft limit: look at the progress again then (invariant 4).
                Some(pause) => self.dispatch.wait_timeout(state, pause),
                None => self.dispatch.wait(state),
            };
        }
    }

    /// Past the soft limit, with growth wanted: `None` if no function has been taken for
    /// `stuck_after` (start a worker now), else how long to wait before looking again.
    /// Below it: `None`. Requires `state` locked.
    fn stuck_for(&self, state: &mut State) -> Option<Duration> {
        if state.workers < self.soft_limit {
            state.watch = None;
            return None;
        }
        let now = Instant::now();
        let taken_now = self.taken();
        match state.watch {
            Some((taken, since)) if taken == taken_now => {
                let stuck = now.saturating_duration_since(since);
                if stuck >= self.stuck_after {
                    state.watch = None; // the next worker waits a whole period again
                    None
                } else {
                    Some(self.stuck_after - stuck)
                }
            }
            // First look, or progress since: watch from now.
            _ => {
                state.watch = Some((taken_now, now));
                Some(self.stuck_after)
            }
        }
    }

    /// Starts a worker counted as starting.
    #[cfg(not(loom))]
    fn start_worker(self: &Arc<Self>) -> std::io::Result<()> {
        let pool = self.clone();
        spawn::try_spawn_shared(Origin::here(spawn::AFTER_FUNC_THREAD), move || {
            pool.work(true);
        })
    }

    /// Under loom a worker is a model's thread (see the module docs).
    #[cfg(loom)]
    fn start_worker(self: &Arc<Self>) -> std::io::Result<()> {
        let pool = self.clone();
        loom::thread::spawn(move || pool.work(true));
        Ok(())
    }

    /// A worker's loop: runs queued functions, waits up to the keep-alive for more, exits
    /// (invariant 6). `started` says whether the dispatcher counted it as starting.
    fn work(&self, started: bool) {
        let home = self.homes.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        let mut state = self.state.lock();
        if started {
            state.starting -= 1;
        }
        loop {
            // Under `state`: no fill runs, so shards found empty stay empty until this worker
            // waits (invariant 3).
            if let Some((unit, callback)) = self.pop(home) {
                drop(state);
                run(unit, callback);
                // Busy: the next function without `state`, while the shards have one.
                while let Some((unit, callback)) = self.pop(home) {
                    run(unit, callback);
                }
                state = self.state.lock();
                continue;
            }
            // The queue is empty: wait, unclaimed (invariant 3 holds).
            state.idle += 1;
            let deadline = Instant::now().checked_add(self.keep_alive);
            loop {
                let timed_out;
                (state, timed_out) = self.wait_for_work(state, deadline);
                if state.claimed > 0 {
                    // Claimed (whichever waiter the notify woke): pop in this same critical
                    // section (invariant 3); a busy worker may have taken the function
                    // meanwhile, and then this one waits again.
                    state.claimed -= 1;
                    break;
                }
                if timed_out || state.closed {
                    // Invariant 6.
                    state.idle -= 1;
                    state.workers -= 1;
                    return;
                }
            }
        }
    }

    /// Waits on `work` until notified or `deadline` (`None`: never); whether the deadline has
    /// passed. Under loom the wait lets the other threads run once and then counts as timed
    /// out (see the module docs).
    fn wait_for_work<'a>(
        &'a self,
        state: MutexGuard<'a, State>,
        deadline: Option<Instant>,
    ) -> (MutexGuard<'a, State>, bool) {
        if cfg!(loom) {
            drop(state);
            sync::yield_now();
            return (self.state.lock(), true);
        }
        let Some(deadline) = deadline else {
            return (self.work.wait(state), false);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (state, true);
        }
        let state = self.work.wait_timeout(state, left);
        (state, Instant::now() >= deadline)
    }
}

/// Runs one function as its own unit; a panic is reported by the panic hook, caught here, and
/// goes no further (see "Panics" in the module docs).
fn run(unit: PooledUnit, callback: Callback) {
    unit.run(|| {
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(callback)) {
            forget_panic(payload);
        }
    });
}

/// Drops a caught panic's payload; a payload whose drop panics again must not end the thread
/// either.
fn forget_panic(payload: Box<dyn std::any::Any + Send>) {
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

#[cfg(all(test, not(loom)))]
mod unit_tests {
    use super::*;
    use std::sync::mpsc;

    const PATIENCE: Duration = Duration::from_secs(10);

    /// A pool of its own, with a short keep-alive; closed (its starter returns) on drop.
    struct TestPool(Arc<BlockingPool>);

    impl TestPool {
        fn new(keep_alive: Duration) -> TestPool {
            TestPool::limited(keep_alive, SOFT_LIMIT, STUCK_AFTER)
        }

        fn limited(keep_alive: Duration, soft_limit: usize, stuck_after: Duration) -> TestPool {
            let pool = Arc::new(BlockingPool::with_limits(
                keep_alive,
                soft_limit,
                stuck_after,
            ));
            assert!(pool.prepare());
            TestPool(pool)
        }

        #[track_caller]
        fn hand(&self, f: impl FnOnce() + Send + 'static) {
            let job = Job::new(Box::new(f), Origin::here("ctxkit-test-job"), None);
            assert!(self.0.hand_off(job).is_ok());
        }

        fn workers(&self) -> usize {
            self.0.state.lock().workers
        }

        /// Waits (bounded) until `f` holds of the state.
        fn until(&self, what: &str, f: impl Fn(&State) -> bool) {
            let deadline = Instant::now() + PATIENCE;
            while !f(&self.0.state.lock()) {
                assert!(Instant::now() < deadline, "never: {what}");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    impl Drop for TestPool {
        fn drop(&mut self) {
            self.0.state.lock().closed = true;
            self.0.dispatch.notify_one();
            self.0.work.notify_all();
        }
    }

    #[test]
    fn grows_while_every_worker_is_busy() {
        // Eight functions that each wait until all eight run: only a pool that starts a
        // worker per busy one while functions wait in the queue gets there.
        let pool = TestPool::new(Duration::from_secs(5));
        let all = Arc::new(std::sync::Barrier::new(9));
        for _ in 0..8 {
            let all = all.clone();
            pool.hand(move || {
                all.wait();
            });
        }
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            all.wait();
            let _ = tx.send(());
        });
        rx.recv_timeout(PATIENCE)
            .expect("the pool did not grow to eight busy workers");
        assert_eq!(pool.workers(), 8, "one worker per blocked function");
    }

    #[test]
    fn past_the_soft_limit_it_grows_only_while_stuck() {
        // A soft limit of 2: functions that all block still all run (the pool grows past
        // the limit, a worker per period without progress)...
        let pool = TestPool::limited(Duration::from_secs(5), 2, Duration::from_millis(20));
        let all = Arc::new(std::sync::Barrier::new(6));
        for _ in 0..5 {
            let all = all.clone();
            pool.hand(move || {
                all.wait();
            });
        }
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            all.wait();
            let _ = tx.send(());
        });
        rx.recv_timeout(PATIENCE)
            .expect("stuck past the soft limit, the pool did not grow");
        assert_eq!(pool.workers(), 5);
        drop(pool);

        // ... while functions that finish drain through the workers there are.
        let pool = TestPool::limited(Duration::from_secs(5), 2, Duration::from_secs(5));
        let (tx, rx) = mpsc::channel();
        for _ in 0..200 {
            let tx = tx.clone();
            pool.hand(move || {
                std::thread::sleep(Duration::from_micros(100));
                tx.send(()).unwrap();
            });
        }
        for _ in 0..200 {
            rx.recv_timeout(PATIENCE).expect("never ran");
        }
        assert!(
            pool.workers() <= 2,
            "grew past the soft limit with progress"
        );
    }

    #[test]
    fn reuses_a_free_worker_instead_of_starting_one() {
        let pool = TestPool::new(Duration::from_secs(5));
        let mut threads = std::collections::HashSet::new();
        for _ in 0..50 {
            let (tx, rx) = mpsc::channel();
            pool.hand(move || tx.send(std::thread::current().id()).unwrap());
            threads.insert(rx.recv_timeout(PATIENCE).expect("never ran"));
            // The worker is idle again before the next hand-off (it waits on the condvar).
            pool.until("the worker idles", |s| s.idle == 1);
        }
        assert_eq!(threads.len(), 1, "one function at a time needs one worker");
        assert_eq!(pool.workers(), 1);
    }

    #[test]
    fn idle_workers_exit_after_the_keep_alive() {
        let pool = TestPool::new(Duration::from_millis(30));
        let (tx, rx) = mpsc::channel();
        for _ in 0..4 {
            let tx = tx.clone();
            pool.hand(move || {
                std::thread::sleep(Duration::from_millis(5));
                tx.send(()).unwrap();
            });
        }
        for _ in 0..4 {
            rx.recv_timeout(PATIENCE).expect("never ran");
        }
        pool.until("every worker exits", |s| s.workers == 0 && s.idle == 0);
        // A later function still runs: the starter starts a worker again.
        pool.hand(move || tx.send(()).unwrap());
        rx.recv_timeout(PATIENCE)
            .expect("never ran after the pool emptied");
    }

    #[test]
    fn a_panicking_function_does_not_take_its_worker_away() {
        let pool = TestPool::new(Duration::from_secs(5));
        let (tx, rx) = mpsc::channel();
        let first = tx.clone();
        pool.hand(move || {
            first.send(std::thread::current().id()).unwrap();
            panic!("an after-function panics (expected by this test)");
        });
        let panicked_on = rx.recv_timeout(PATIENCE).expect("never ran");
        pool.until("the worker idles", |s| s.idle == 1);
        pool.hand(move || tx.send(std::thread::current().id()).unwrap());
        assert_eq!(
            rx.recv_timeout(PATIENCE).expect("never ran after a panic"),
            panicked_on,
            "the same worker goes on"
        );
        assert_eq!(pool.workers(), 1);
    }

    #[test]
    fn an_async_function_is_listed_until_the_dispatcher_has_spawned_it_under_its_tag() {
        // A pool without a dispatcher: the test plays its part.
        let pool = Arc::new(BlockingPool::new(Duration::from_secs(5)));
        let tag = ScopeTag::new();
        let (tx, rx) = mpsc::channel();
        let job = {
            let _entered = tag.enter();
            let spawner: Spawner = Box::new(move |origin: Origin| {
                tx.send((ScopeTag::current(), origin.site().line()))
                    .unwrap();
            });
            Job::of(
                Work::Spawn(spawner),
                Origin::here(AFTER_FUNC_TASK),
                ScopeTag::current(),
            )
        };
        let site = job.origin.site();
        pool.intake.lock().jobs.push(job);
        let listed = |pool: &BlockingPool| {
            pool.queued_units()
                .into_iter()
                .map(|u| (u.kind, u.name, u.tag, u.spawned_at.line()))
                .collect::<Vec<_>>()
        };
        let expected = [(Kind::Task, AFTER_FUNC_TASK, Some(tag), site.line())];
        assert_eq!(listed(&pool), expected, "in the intake");

        // Taken by a fill: on no shard, claims no worker, listed while it is spawned.
        let (claimed, spawns) = pool.fill(&mut pool.state.lock());
        assert_eq!((claimed, spawns.len(), pool.queued()), (0, 1, 0));
        assert_eq!(listed(&pool), expected, "being spawned");
        assert_eq!(ScopeTag::current(), None);
        pool.spawn_all(spawns);
        assert_eq!(
            rx.try_recv().unwrap(),
            (Some(tag), site.line()),
            "spawned under its registration's tag, with its origin"
        );
        assert_eq!(
            ScopeTag::current(),
            None,
            "the tag was left after the spawn"
        );
        assert_eq!(listed(&pool), [], "spawned: the spawn records it from here");
        assert_eq!(pool.state.lock().workers, 0);
    }

    #[test]
    fn a_function_is_queued_or_recorded_until_it_returns() {
        // A pool without a dispatcher: a function handed off stays in the intake.
        let pool = Arc::new(BlockingPool::new(Duration::from_secs(5)));
        {
            let mut state = pool.state.lock();
            state.starting = 1; // the worker started below
            state.workers = 1;
        }
        let tag = ScopeTag::new();
        let (tx, rx) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let job = {
            let _entered = tag.enter();
            Job::new(
                Box::new(move || {
                    tx.send(ScopeTag::current()).unwrap();
                    let _ = released.recv_timeout(PATIENCE);
                }),
                Origin::here(spawn::AFTER_FUNC_THREAD),
                ScopeTag::current(),
            )
        };
        let site = job.origin.site();
        pool.intake.lock().jobs.push(job);
        let queued = pool.queued_units();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].tag, Some(tag));
        assert_eq!(queued[0].spawned_at, site);
        assert!(queued[0]
            .waiting
            .as_ref()
            .unwrap()
            .0
            .contains("not started"));

        // On the queue, then taken by a worker: it is then a live unit with the
        // registration's tag.
        assert_eq!(pool.fill(&mut pool.state.lock()).0, 0);
        assert_eq!(pool.queued_units().len(), 1);
        let worker = {
            let pool = pool.clone();
            spawn::try_spawn_shared(Origin::here("ctxkit-test-worker"), move || pool.work(true))
        };
        worker.unwrap();
        assert_eq!(
            rx.recv_timeout(PATIENCE).unwrap(),
            Some(tag),
            "runs under its tag"
        );
        assert!(pool.queued_units().is_empty());
        let running: Vec<_> = spawn::live_units()
            .into_iter()
            .filter(|u| u.tag == Some(tag))
            .collect();
        assert_eq!(running.len(), 1, "{running:?}");
        assert_eq!(
            (running[0].kind, running[0].name),
            (Kind::Thread, spawn::AFTER_FUNC_THREAD)
        );
        assert_eq!(running[0].spawned_at, site);
        let worker_unit = || {
            spawn::live_units()
                .into_iter()
                .filter(|u| u.name == "ctxkit-test-worker")
                .map(|u| (u.kind, u.tag))
                .collect::<Vec<_>>()
        };
        assert_eq!(worker_unit(), [(Kind::Shared, None)]);

        // Returned: no unit of it is left; the idle worker is the shared one, untagged.
        release.send(()).unwrap();
        let deadline = Instant::now() + PATIENCE;
        while spawn::live_units().iter().any(|u| u.tag == Some(tag)) {
            assert!(Instant::now() < deadline, "its unit outlived it");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(worker_unit(), [(Kind::Shared, None)]);
        pool.state.lock().closed = true;
        pool.work.notify_all();
    }
}
