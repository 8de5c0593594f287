//! The blocking group: [`scope`] and [`Scope`], over `std::thread::scope`.
//!
//! # Implementation details
//!
//! Scheduling is the group's one scheduler (`scheduler.rs`: when a task is handed to an idle
//! worker, when a worker starts, what is queued, its invariants 1 to 5). This file supplies only
//! how a worker runs and parks: a worker is a scoped thread (named `ctxkit-group`, started
//! through `spawn.rs`) that runs tasks one after another and idles by parking with its
//! [`Thread`] registered. A spawn waiting for a free slot parks too, registered with the
//! scheduler (for the slot) and with the group's context (for its end); the end of [`scope`]
//! closes the scheduler and joins the workers.
//!
//! # Invariants
//!
//! 1. Every thread started is joined before [`scope`] reads the outcomes: by the join loop at
//!    the end of [`scope`], after the scheduler is closed (scheduler invariant 3: the workers
//!    run what is queued, then leave, the idle ones as soon as they are woken); or by
//!    `std::thread::scope` itself if the caller's closure panics (the context is canceled and
//!    the workers retired first, so tasks that watch it end and idle workers leave).
//! 2. Only the caller's closure spawns (a [`Scope`] is not `Sync`), so the scheduler has one
//!    spawner, as its invariants 1 and 4 require.
//!
//! # Lock order
//!
//! Only the scheduler's lock (`scheduler.rs`, a leaf); no thread parks while holding it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::task::Poll;
use std::thread::ScopedJoinHandle;

use super::scheduler::{NewWorker, Search, Shared as Scheduled, WorkerId};
use super::slots::{Outcome, Panic, Slots};
use crate::context::{Context, Error};
use crate::spawn::{self, Origin};
use crate::sync::{self, Arc, Thread};

/// A task: a boxed closure, called with the group's context.
pub(super) type Job<'scope, T, E> = Box<dyn FnOnce(Context) -> Result<T, E> + Send + 'scope>;

/// What the scope and its threads share: the scheduler of `Job`s, with threads as tokens.
pub(super) type Shared<'scope, T, E> = Scheduled<T, E, Job<'scope, T, E>, Thread>;

/// Runs `job` unless the context is done; how it ended, `None` if it never started (scheduler
/// invariant 5).
fn run<T, E>(shared: &Shared<'_, T, E>, job: Job<'_, T, E>) -> Option<Outcome<T, E>> {
    if shared.is_done() {
        // go#61611: a task does not start once the context is done.
        return catch_unwind(AssertUnwindSafe(|| drop(job)))
            .err()
            .map(Outcome::Panicked);
    }
    let ctx = shared.task_context();
    Some(match catch_unwind(AssertUnwindSafe(|| job(ctx))) {
        Ok(result) => Outcome::Returned(result),
        Err(payload) => Outcome::Panicked(payload),
    })
}

/// A worker thread's life: runs `job` (task `index`), then the tasks the scheduler gives it,
/// parked while idle, until the scheduler says leave (scheduler invariant 3).
pub(super) fn work<'scope, T, E>(
    shared: &Shared<'scope, T, E>,
    worker: WorkerId,
    mut index: usize,
    mut job: Job<'scope, T, E>,
) where
    E: fmt::Display,
{
    let me = sync::current_thread();
    loop {
        let outcome = run(shared, job);
        let message = outcome.as_ref().and_then(|o| shared.message(o));
        let next = match shared.finish(worker, index, outcome, message, &me) {
            Search::Run(index, job) => Some((index, job)),
            Search::Leave => None,
            // Terminates: a spawn hands it a task, or `close` (at the latest at the end of
            // `scope`) or `retire` makes it leave; each unparks it.
            Search::Idle => loop {
                sync::park();
                if let Poll::Ready(next) = shared.poll_idle(worker, &me) {
                    break next;
                }
            },
        };
        match next {
            Some(next) => (index, job) = next,
            None => return,
        }
    }
}

/// How [`spawn_when_free`] ended.
pub(super) enum WhenFree<J> {
    /// Spawned: handed to a worker, or with a new worker thread to start.
    Spawned(Option<NewWorker<J>>),
    /// The group's context was done first: not spawned, the job handed back.
    GaveUp(J),
}

/// Spawns task `index` once there is a free slot, blocking until then (see [`Scope::spawn`]),
/// or gives up if the group's context is done first.
pub(super) fn spawn_when_free<'scope, T, E>(
    shared: &Shared<'scope, T, E>,
    index: usize,
    mut job: Job<'scope, T, E>,
) -> WhenFree<Job<'scope, T, E>> {
    // Terminates: each turn spawns, or gives up once the context is done, or waits until a
    // slot frees (scheduler invariant 4: it then stays free until this spawn takes it).
    loop {
        if shared.is_done() {
            return WhenFree::GaveUp(job);
        }
        match shared.spawn_if_free(index, job) {
            Ok(new) => return WhenFree::Spawned(new),
            Err(back) => job = back,
        }
        if !wait_for_slot(shared) {
            return WhenFree::GaveUp(job);
        }
    }
}

/// Blocks until there is a free slot (true) or the group's context is done (false): parked,
/// registered with the scheduler for the slot and with the context for its end (scheduler
/// invariant 4).
pub(super) fn wait_for_slot<T, E>(shared: &Shared<'_, T, E>) -> bool {
    let me = sync::current_thread();
    let ctx = shared
        .context()
        .expect("ctxkit::group: a scope always has a context");
    match ctx.block_until_or(|| shared.poll_slot(&me)) {
        None => true,
        Some(_) => {
            shared.forget_spawner();
            false
        }
    }
}

/// Lets [`scope`]'s closure start tasks on threads that may borrow from the caller's stack.
///
/// Tasks get the group's context (a clone of it, by value, as [`Group`]'s tasks
/// do); see [`scope`] for the semantics.
///
/// # Coming from Go
///
/// `s.spawn(f)` is errgroup's `g.Go(f)` (under a limit it blocks until a slot frees, as `Go`
/// does, or until the context is done), `s.try_spawn(f)` is `g.TryGo(f)`, `s.set_limit(n)` is
/// `g.SetLimit(n)`; the `Wait` is the end of [`scope`]. [`spawn_queued`](Scope::spawn_queued)
/// has no Go counterpart: under a limit it queues the task instead of blocking.
///
/// # Examples
///
/// ```
/// use ctxkit::{group, Context, Error};
///
/// let words = vec!["Flaming June", "Saltwater", "Windowlicker"];
/// let lengths = group::scope(&Context::background(), |s| {
///     for word in &words {
///         s.spawn(move |ctx| {
///             ctx.check()?;
///             Ok::<_, Error>(word.len()) // borrows `words` from the caller's stack
///         });
///     }
/// });
/// assert_eq!(lengths, Ok(vec![12, 9, 12]));
/// ```
///
#[cfg_attr(feature = "tokio", doc = "[`Group`]: crate::Group")]
#[cfg_attr(not(feature = "tokio"), doc = "[`Group`]: crate::group")]
pub struct Scope<'scope, 'env, T, E> {
    threads: &'scope std::thread::Scope<'scope, 'env>,
    inner: Arc<Shared<'scope, T, E>>,
    /// Every thread started, joined at the end of [`scope`] (invariant 1).
    handles: RefCell<Vec<ScopedJoinHandle<'scope, ()>>>,
    /// Tasks spawned, skipped ones included: the next spawn index.
    spawned: Cell<usize>,
    /// At most this many threads run tasks (the scheduler keeps the same limit).
    limit: Cell<Option<NonZeroUsize>>,
}

impl<'scope, T, E> Scope<'scope, '_, T, E>
where
    T: Send + 'scope,
    E: From<Error> + fmt::Display + Send + 'scope,
{
    /// The group's context, as tasks get it: canceled by the first failure and when [`scope`]
    /// returns.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ctxkit::group::scope(&ctxkit::Context::background(), |s| {
    ///     assert!(!s.context().is_done());
    ///     s.spawn(|_| Err::<(), _>(ctxkit::Error::Canceled));
    /// });
    /// assert!(r.is_err());
    /// ```
    pub fn context(&self) -> &Context {
        self.inner
            .context()
            .expect("ctxkit::group: a scope always has a context")
    }

    /// Starts `task` on a thread of the scope, blocking first until a slot is free if the
    /// scope's limit is reached (as Go's `g.Go` blocks under `SetLimit`); gives up, without
    /// running `task`, once the group's context is done.
    ///
    /// `task` gets the group's context (a clone, by value). It runs on an idle thread of the
    /// scope, or on a new one; without a limit, or below it, `spawn` never blocks. At the limit
    /// it blocks until a running task ends, or until the context is done: then `task` never
    /// runs, and [`scope`] reports it as failed with the context's error (unless another error
    /// came first). So a spawning loop whose failing task held the only slot ends as soon as
    /// that failure cancels the context (conc#88). A task spawned once the context is done
    /// never starts.
    ///
    /// Which spawn: `spawn` by default, and always for a large or unbounded number of tasks:
    /// under a limit of `n` at most `n` tasks are ever held, running or about to, whatever the
    /// loop spawns. [`spawn_queued`](Scope::spawn_queued) never blocks: it queues, which costs
    /// memory per queued task and suits a moderate number known in advance.
    /// [`try_spawn`](Scope::try_spawn) refuses instead of waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let total = std::sync::atomic::AtomicUsize::new(0);
    /// let r = ctxkit::group::scope(&ctxkit::Context::background(), |s| {
    ///     s.set_limit(2);
    ///     for i in 1..=4 {
    ///         let total = &total;
    ///         s.spawn(move |_ctx| { // blocks while 2 tasks run
    ///             total.fetch_add(i, std::sync::atomic::Ordering::Relaxed);
    ///             Ok::<_, ctxkit::Error>(i * i)
    ///         });
    ///     }
    /// });
    /// assert_eq!(r, Ok(vec![1, 4, 9, 16]));
    /// assert_eq!(total.into_inner(), 10);
    /// ```
    ///
    /// # Panics
    ///
    /// If the OS refuses to start a thread (as `std::thread::scope`'s `spawn`).
    ///
    /// # Blocking
    ///
    /// Under a limit, blocks the calling thread (parked) until a slot is free or the group's
    /// context is done. A task must therefore not wait for something the closure does after
    /// this spawn, when the limit may be reached (as with Go's `Go`).
    ///
    /// # Performance
    ///
    /// A spawn that must wait parks the spawning thread, and the worker that frees the slot
    /// unparks it: OS thread switches, not goroutine switches. Measured with `ctxkit-bench`
    /// (`group.go_wait_limit2_10k`: 10,000 empty tasks under a limit of 2, 2 shared vCPUs; see
    /// `BENCHMARKS.md`, run 8), that is 3 to 10 µs a task (best to median), against about
    /// 0.1 µs with [`spawn_queued`](Scope::spawn_queued), which never waits. Tasks that do real work, the reason to use threads, hide it; for
    /// very many tiny tasks known to fit in memory, `spawn_queued` is the cheaper call.
    #[track_caller]
    pub fn spawn<G>(&self, task: G)
    where
        G: FnOnce(Context) -> Result<T, E> + Send + 'scope,
    {
        let origin = Origin::here(spawn::GROUP_THREAD);
        let index = self.next_index();
        if self.inner.is_done() {
            return; // go#61611; reported at the end as the context's error.
        }
        let job: Job<'scope, T, E> = Box::new(task);
        if self.limit.get().is_none() {
            return self.start(self.inner.spawn(index, job), origin);
        }
        match spawn_when_free(&self.inner, index, job) {
            WhenFree::Spawned(new) => self.start(new, origin),
            // User data, dropped with no lock held; reported at the end as the context's error.
            WhenFree::GaveUp(job) => drop(job),
        }
    }

    /// Starts `task` as [`spawn`](Scope::spawn) does, but never blocks: at the limit, the task
    /// is queued, and starts when a running task ends (in spawn order), or never, once the
    /// context is done. Every queued task takes memory until it runs; without a limit it is the
    /// same as `spawn`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = ctxkit::group::scope(&ctxkit::Context::background(), |s| {
    ///     s.set_limit(2);
    ///     for i in 0..5 {
    ///         s.spawn_queued(move |_ctx| Ok::<_, ctxkit::Error>(i)); // never blocks
    ///     }
    ///     assert!(s.active() <= 5); // 2 running, the rest queued
    /// });
    /// assert_eq!(r, Ok(vec![0, 1, 2, 3, 4]));
    /// ```
    ///
    /// # Panics
    ///
    /// As [`spawn`](Scope::spawn).
    #[track_caller]
    pub fn spawn_queued<G>(&self, task: G)
    where
        G: FnOnce(Context) -> Result<T, E> + Send + 'scope,
    {
        let origin = Origin::here(spawn::GROUP_THREAD);
        let index = self.next_index();
        if self.inner.is_done() {
            return; // go#61611; reported at the end as the context's error.
        }
        self.start(self.inner.spawn(index, Box::new(task)), origin);
    }

    /// Starts `task` only if no waiting is needed (no limit, or a free slot) and the context is
    /// not done; returns whether it did (Go's `TryGo`). On `false`, `task` is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// let (tx, rx) = mpsc::channel::<()>();
    /// let r = ctxkit::group::scope(&ctxkit::Context::background(), |s| {
    ///     s.set_limit(1);
    ///     assert!(s.try_spawn(move |_| { rx.recv().ok(); Ok::<_, ctxkit::Error>(1) }));
    ///     assert!(!s.try_spawn(|_| Ok(2))); // the one thread is busy
    ///     tx.send(()).unwrap();
    /// });
    /// assert_eq!(r, Ok(vec![1]));
    /// ```
    ///
    /// # Panics
    ///
    /// As [`spawn`](Scope::spawn).
    #[track_caller]
    pub fn try_spawn<G>(&self, task: G) -> bool
    where
        G: FnOnce(Context) -> Result<T, E> + Send + 'scope,
    {
        let origin = Origin::here(spawn::GROUP_THREAD);
        if self.inner.is_done() {
            return false;
        }
        let index = self.spawned.get();
        match self.inner.spawn_if_free(index, Box::new(task)) {
            Ok(start) => {
                self.spawned.set(index + 1);
                self.start(start, origin);
                true
            }
            Err(job) => {
                drop(job);
                false
            }
        }
    }

    /// Tasks spawned and not yet ended (queued ones included).
    ///
    /// Under a limit of `n`, a scope whose tasks are all started with [`spawn`](Scope::spawn)
    /// never has more than `n` active: that is the bound on memory that the blocking gives.
    ///
    /// # Examples
    ///
    /// ```
    /// ctxkit::group::scope(&ctxkit::Context::background(), |s| {
    ///     s.set_limit(4);
    ///     for i in 0..1_000 {
    ///         s.spawn(move |_| Ok::<_, ctxkit::Error>(i));
    ///         assert!(s.active() <= 4);
    ///     }
    /// })
    /// .unwrap();
    /// ```
    pub fn active(&self) -> usize {
        self.inner.lock().pending()
    }

    /// The next spawn index, counted whether or not the task starts.
    fn next_index(&self) -> usize {
        let index = self.spawned.get();
        self.spawned.set(index + 1);
        index
    }

    /// Starts the worker thread the scheduler asked for, if any, with its first task.
    #[track_caller]
    fn start(&self, new: Option<NewWorker<Job<'scope, T, E>>>, origin: Origin) {
        let Some(NewWorker { id, index, job }) = new else {
            return; // handed to a worker, or queued
        };
        let inner = self.inner.clone();
        match spawn::try_spawn_scoped(self.threads, origin, move || work(&inner, id, index, job)) {
            Ok(handle) => self.handles.borrow_mut().push(handle),
            Err(error) => {
                self.inner.unstart(id);
                panic!("ctxkit::group: failed to start a thread: {error}");
            }
        }
    }

    /// Runs the scope's tasks on at most `n` threads at once: at the limit,
    /// [`spawn`](Scope::spawn) blocks and [`spawn_queued`](Scope::spawn_queued) queues.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashSet;
    /// use std::sync::Mutex;
    ///
    /// let threads = Mutex::new(HashSet::new());
    /// let r = ctxkit::group::scope(&ctxkit::Context::background(), |s| {
    ///     s.set_limit(2);
    ///     for i in 0..100 {
    ///         let threads = &threads;
    ///         s.spawn(move |_| {
    ///             threads.lock().unwrap().insert(std::thread::current().id());
    ///             Ok::<_, ctxkit::Error>(i)
    ///         });
    ///     }
    /// });
    /// assert_eq!(r.unwrap().len(), 100);
    /// assert!(threads.into_inner().unwrap().len() <= 2);
    /// ```
    ///
    /// # Panics
    ///
    /// * `n == 0`: "ctxkit::group: set_limit(0) would never run a task; use remove_limit() for no
    ///   limit".
    /// * Tasks are still running or queued: "ctxkit::group: set_limit while N tasks are active"
    ///   (as Go's `SetLimit`).
    #[track_caller]
    pub fn set_limit(&self, n: usize) {
        let Some(n) = NonZeroUsize::new(n) else {
            panic!("ctxkit::group: set_limit(0) would never run a task; use remove_limit() for no limit");
        };
        self.change_limit(Some(n), "set_limit");
    }

    /// Removes the limit: every spawn starts its task at once again.
    ///
    /// # Examples
    ///
    /// ```
    /// ctxkit::group::scope(&ctxkit::Context::background(), |s| {
    ///     s.set_limit(1);
    ///     s.remove_limit();
    ///     s.spawn(|_| Ok::<_, ctxkit::Error>(()));
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Panics
    ///
    /// As [`set_limit`](Scope::set_limit), if tasks are active.
    #[track_caller]
    pub fn remove_limit(&self) {
        self.change_limit(None, "remove_limit");
    }

    #[track_caller]
    fn change_limit(&self, limit: Option<NonZeroUsize>, what: &str) {
        // The workers of the old limit leave (scheduler invariant 3).
        if let Err(active) = self.inner.set_limit(limit) {
            panic!("ctxkit::group: {what} while {active} tasks are active");
        }
        self.limit.set(limit);
    }
}

impl<T, E> fmt::Debug for Scope<'_, '_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("active", &self.inner.lock().pending())
            .field("spawned", &self.spawned.get())
            .field("limit", &self.limit.get())
            .field("ctx", &self.inner.context())
            .finish()
    }
}

/// If the caller's closure unwinds: cancels the group's context, so tasks watching it end, and
/// retires the workers, so idle ones leave and `std::thread::scope` can join them (invariant 1).
struct OnUnwind<'a, 'scope, T, E>(&'a Shared<'scope, T, E>);

impl<T, E> Drop for OnUnwind<'_, '_, T, E> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.cancel();
            self.0.retire();
        }
    }
}

/// Runs the group and hands its outcomes to `take`.
#[track_caller]
fn run_scope<'env, T, E, F, R>(
    parent: &Context,
    f: F,
    take: impl FnOnce(&mut Slots<T, E>, usize, Error) -> Result<R, Panic>,
) -> R
where
    T: Send + 'env,
    E: fmt::Display + Send + 'env,
    F: for<'scope> FnOnce(&Scope<'scope, 'env, T, E>),
{
    let (ctx, cancel) = parent.with_cancel().into_parts();
    std::thread::scope(|threads| {
        let scope = Scope {
            threads,
            inner: Arc::new(Shared::new(Some(ctx), Some(cancel))),
            handles: RefCell::new(Vec::new()),
            spawned: Cell::new(0),
            limit: Cell::new(None),
        };
        {
            let _unwind = OnUnwind(&scope.inner);
            f(&scope);
        }
        // Invariant 1: no more spawns, so the workers run what is queued and leave; joined, they
        // have recorded every task.
        scope.inner.close();
        // Tasks catch their own panics, so a join error is ctxkit's own bug.
        for handle in scope.handles.take() {
            if let Err(payload) = handle.join() {
                resume_unwind(payload);
            }
        }
        let (mut slots, skipped) = scope.inner.end_round();
        // Out of the lock: `take` runs user code (`E::from`, drops).
        match take(&mut slots, scope.spawned.get(), skipped) {
            Ok(result) => result,
            Err(payload) => resume_unwind(payload),
        }
    })
}

/// Runs a group of tasks on scoped threads: the closure starts them with [`Scope::spawn`], and
/// `scope` returns once all have ended, with their results in spawn order or the first error.
///
/// The blocking counterpart of [`Group`], with the same semantics:
///
/// * Tasks get the group's context, derived from `parent`. The first task to fail cancels it,
///   with a [`TaskFailed`](super::TaskFailed) cause carrying the error's text; tasks still
///   running should watch it (`ctx.check()?`, `ctx.blocking_sleep(d)?`) and return.
/// * A task spawned once the context is done never starts and counts as failed with the
///   context's [`Error`], unless another error came first. Hence the error type `E` must
///   implement `From<ctxkit::Error>`: `ctxkit::Error`, `String`, `std::io::Error` and
///   `Box<dyn std::error::Error + Send + Sync>` do; for an error enum of your own, add a variant
///   and a one-line `impl From<ctxkit::Error> for MyError` (see the
///   [module docs](super#examples)).
/// * Tasks may borrow from the caller's stack: they only need to outlive the call.
/// * Without a limit every task starts at once, as each `Go` gets a goroutine: on a thread of
///   the scope that is idle, or on a new one (named `ctxkit-group`). Threads are reused, so a
///   thread may run several tasks one after another, and they end with the scope. With
///   [`Scope::set_limit(n)`](Scope::set_limit), at most `n` threads run the tasks; when all `n`
///   are busy, [`Scope::spawn`] blocks until one is free, or until the context is done (then
///   the task never starts), and [`Scope::spawn_queued`] queues the task instead (see
///   [`Scope::spawn`] for which to use).
/// * A task that panics cancels the context like an error; `scope` resumes the panic once every
///   thread has been joined (which panic, if several, is unspecified). If the closure itself
///   panics, the context is canceled, the threads are joined, and that panic propagates.
/// * The context is done when `scope` returns.
///
/// # Examples
///
/// ```
/// use ctxkit::{group, Context};
///
/// type BoxError = Box<dyn std::error::Error + Send + Sync>;
///
/// let pages = ["/", "/about", "/missing"];
/// let r = group::scope(&Context::background(), |s| {
///     for page in &pages {
///         s.spawn(move |ctx| -> Result<usize, BoxError> {
///             ctx.check()?;
///             if page.ends_with("missing") {
///                 return Err(format!("{page}: 404").into());
///             }
///             Ok(page.len())
///         });
///     }
/// });
/// assert_eq!(r.unwrap_err().to_string(), "/missing: 404");
/// ```
///
/// Tasks run on other threads, so what they capture must be `Send`:
///
/// ```compile_fail
/// use std::rc::Rc;
///
/// let shared = Rc::new(5);
/// let _ = ctxkit::group::scope(&ctxkit::Context::background(), |s| {
///     let shared = shared.clone();
///     s.spawn(move |_| Ok::<_, ctxkit::Error>(*shared)); // error: `Rc<i32>` cannot be sent
/// });
/// ```
///
/// # Errors
///
/// The first error a task returned (in time); else the context's error if a task never started
/// (the parent was done first).
///
/// # Panics
///
/// Resumes a task's panic, or the closure's, as described above; and if the OS refuses to start
/// a thread.
///
/// # Blocking
///
/// Blocks the calling thread until every task has ended (and, inside the closure,
/// [`Scope::spawn`] blocks under a limit). Do not call it from async code.
///
#[cfg_attr(feature = "tokio", doc = "[`Group`]: crate::Group")]
#[cfg_attr(not(feature = "tokio"), doc = "[`Group`]: crate::group")]
#[track_caller]
pub fn scope<'env, T, E, F>(parent: &Context, f: F) -> Result<Vec<T>, E>
where
    T: Send + 'env,
    E: fmt::Display + From<Error> + Send + 'env,
    F: for<'scope> FnOnce(&Scope<'scope, 'env, T, E>),
{
    run_scope(parent, f, Slots::take_first)
}

/// As [`scope`], but returns every error, in spawn order, instead of the first.
///
/// The first failure still cancels the context, so tasks that watch it may fail with the
/// context's error too; those errors are included.
///
/// # Examples
///
/// ```
/// use ctxkit::{group, Context, Error};
///
/// // Both tasks start before either fails (a task not started when the context is done never
/// // starts, and would report the context's error instead).
/// let started = std::sync::Barrier::new(2);
/// let r = group::scope_all(&Context::background(), |s| {
///     let started = &started;
///     s.spawn(move |_| {
///         started.wait();
///         Err::<u32, _>(Error::DeadlineExceeded)
///     });
///     s.spawn(move |_| {
///         started.wait();
///         Err(Error::Canceled)
///     });
/// });
/// assert_eq!(r, Err(vec![Error::DeadlineExceeded, Error::Canceled]));
/// ```
///
/// # Errors
///
/// Every task's error, and the context's error for each task that never started.
///
/// # Panics
///
/// As [`scope`].
///
/// # Blocking
///
/// As [`scope`].
#[track_caller]
pub fn scope_all<'env, T, E, F>(parent: &Context, f: F) -> Result<Vec<T>, Vec<E>>
where
    T: Send + 'env,
    E: fmt::Display + From<Error> + Send + 'env,
    F: for<'scope> FnOnce(&Scope<'scope, 'env, T, E>),
{
    run_scope(parent, f, Slots::take_all)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::spawn::{live_units, Kind, ScopeTag};

    /// The scope's threads go through `spawn.rs`: recorded while they run (as scoped threads
    /// named `ctxkit-group`, started at the user's `spawn` call), gone once joined, and run
    /// with the tag of the code that started the scope.
    #[test]
    fn group_threads_are_recorded_and_inherit_the_spawners_tag() {
        let tag = ScopeTag::new();
        let _entered = tag.enter();
        let r = scope(&Context::background(), |s| {
            s.set_limit(2);
            for _ in 0..4 {
                s.spawn(move |_| {
                    let mine: Vec<_> = live_units()
                        .into_iter()
                        .filter(|u| u.tag == Some(tag))
                        .collect();
                    assert!((1..=2).contains(&mine.len()), "{mine:?}");
                    for unit in &mine {
                        assert_eq!((unit.kind, unit.name), (Kind::ScopedThread, "ctxkit-group"));
                        assert_eq!(unit.spawned_at.file(), file!());
                    }
                    Ok::<_, Error>(ScopeTag::current())
                });
            }
        });
        assert_eq!(r, Ok(vec![Some(tag); 4]));
        assert!(
            !live_units().iter().any(|u| u.tag == Some(tag)),
            "a joined thread is still recorded"
        );
    }
}
