//! The blocking group: [`scope`] and [`Scope`], over `std::thread::scope`.
//!
//! # Invariants
//!
//! 1. `Inner::active` counts tasks spawned or queued and not yet ended (recorded, skipped or
//!    drained); only [`Scope::set_limit`] reads it.
//! 2. `State::workers` (limit mode) is the number of worker threads alive, `State::idle` how
//!    many of them wait on `Inner::work` for a task. A worker leaves only once `State::closed`
//!    is set (the caller's closure has returned or unwound) and the queue is empty, deciding so
//!    under `state`; `spawn` queues a task only while more workers are idle than tasks are queued
//!    (and then notifies one: an idle worker counts as idle until it wakes, so each queued task
//!    claims one) or `workers == limit`, under `state`. So a queued task always has a worker
//!    that will run or drain it without waiting for another queued task, at most `limit`
//!    threads ever run tasks, and threads are not started again and again when the queue runs
//!    dry between spawns.
//! 3. Once the context is done no queued task starts: a worker checks the context before each
//!    task and drains the queue when it sees it done.
//! 4. Every thread started is joined before [`scope`] reads the outcomes: by the join loop at the
//!    end of [`scope`], or by `std::thread::scope` itself if the caller's closure panics (the
//!    context is canceled first, so tasks that watch it end).
//!
//! # Lock order
//!
//! One lock, `Inner::state`, a leaf: nothing is locked under it, no user code runs under it (an
//! error's text is formatted first; tasks run and are dropped outside it), and the context is
//! canceled after it is released. Idle workers wait on `Inner::work` with it (released while
//! they wait).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::ScopedJoinHandle;

use super::slots::{lock, Outcome, Panic, Slots};
use super::TaskFailed;
use crate::context::{CancelHandle, Context, Error};

/// A queued task.
type Job<'scope, T, E> = Box<dyn FnOnce(Context) -> Result<T, E> + Send + 'scope>;

/// What the scope's threads share.
struct Inner<'scope, T, E> {
    /// The group's context. Never changes.
    ctx: Context,
    /// Cancels `ctx`: on the first failure, when the caller's closure unwinds, at the end.
    cancel: CancelHandle,
    /// See invariant #1.
    active: AtomicUsize,
    /// A hint, set under `state` when the first failure is recorded: lets a failing task skip
    /// formatting its error once a cause has been set.
    failed: AtomicBool,
    /// Protects the outcomes and the queue.
    state: Mutex<State<'scope, T, E>>,
    /// Limit mode: signaled when a task is queued for an idle worker, or `closed` is set.
    work: Condvar,
}

struct State<'scope, T, E> {
    /// The outcomes.
    slots: Slots<T, E>,
    /// Limit mode: tasks waiting for a worker, with their spawn index (invariant #2).
    queue: VecDeque<(usize, Job<'scope, T, E>)>,
    /// Limit mode: worker threads alive (invariant #2).
    workers: usize,
    /// Limit mode: workers waiting on `Inner::work` (invariant #2).
    idle: usize,
    /// Set once, when the caller's closure has returned or unwound: no task will be added.
    closed: bool,
}

impl<'scope, T, E: fmt::Display> Inner<'scope, T, E> {
    /// Runs `job` unless the context is done; how it ended, `None` if it never started.
    fn run<G>(&self, job: G) -> Option<Outcome<T, E>>
    where
        G: FnOnce(Context) -> Result<T, E>,
    {
        if self.ctx.is_done() {
            // go#61611: a task does not start once the context is done.
            return catch_unwind(AssertUnwindSafe(|| drop(job)))
                .err()
                .map(Outcome::Panicked);
        }
        Some(
            match catch_unwind(AssertUnwindSafe(|| job(self.ctx.clone()))) {
                Ok(result) => Outcome::Returned(result),
                Err(payload) => Outcome::Panicked(payload),
            },
        )
    }

    fn message(&self, outcome: &Option<Outcome<T, E>>) -> Option<String> {
        match outcome {
            Some(Outcome::Returned(Err(error))) if !self.failed.load(Ordering::Relaxed) => {
                Some(error.to_string())
            }
            _ => None,
        }
    }

    /// Records `outcome` under the lock; returns the cause to cancel with, if any.
    fn record(
        &self,
        state: &mut State<'_, T, E>,
        index: usize,
        outcome: Option<Outcome<T, E>>,
        message: Option<String>,
    ) -> Option<TaskFailed> {
        let cause = outcome.and_then(|outcome| state.slots.record(index, outcome, message));
        if state.slots.has_failed() {
            self.failed.store(true, Ordering::Relaxed);
        }
        cause
    }

    /// Cancels for `cause` (outside the lock), then counts `ended` tasks as ended.
    fn ended(&self, cause: Option<TaskFailed>, ended: usize) {
        if let Some(cause) = cause {
            self.cancel.cancel_with(cause);
        }
        self.active.fetch_sub(ended, Ordering::AcqRel);
    }

    /// No limit: one thread, one task.
    fn run_one(&self, index: usize, job: Job<'scope, T, E>) {
        let outcome = self.run(job);
        let message = self.message(&outcome);
        let cause = self.record(&mut lock(&self.state), index, outcome, message);
        self.ended(cause, 1);
    }

    /// Limit mode: a worker thread, starting with `index`/`job`, then taking from the queue.
    fn work(&self, mut index: usize, mut job: Job<'scope, T, E>) {
        loop {
            let outcome = self.run(job);
            let message = self.message(&outcome);
            let (cause, next, drained) = {
                let mut state = lock(&self.state);
                let cause = self.record(&mut state, index, outcome, message);
                // Invariant #3.
                let drained = if cause.is_some() || self.ctx.is_done() {
                    std::mem::take(&mut state.queue)
                } else {
                    VecDeque::new()
                };
                let next = state.queue.pop_front();
                (cause, next, drained)
            };
            let ended = 1 + drained.len();
            let _ = catch_unwind(AssertUnwindSafe(|| drop(drained))); // user drops, outside the lock
            self.ended(cause, ended);
            let next = match next {
                Some(next) => next,
                None => match self.next_job() {
                    Some(next) => next,
                    None => return,
                },
            };
            (index, job) = next;
        }
    }

    /// Limit mode: waits for a queued task; `None` when the worker should leave (invariant #2).
    fn next_job(&self) -> Option<(usize, Job<'scope, T, E>)> {
        let mut state = lock(&self.state);
        // Terminates: each wake-up either finds a task, or finds `closed` (set once, for good).
        loop {
            if let Some(next) = state.queue.pop_front() {
                return Some(next);
            }
            if state.closed {
                state.workers -= 1;
                return None;
            }
            state.idle += 1;
            state = self
                .work
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state.idle -= 1;
        }
    }

    /// No task will be added: idle workers leave (invariant #2).
    fn close(&self) {
        lock(&self.state).closed = true;
        self.work.notify_all();
    }
}

/// Lets [`scope`]'s closure start tasks on threads that may borrow from the caller's stack.
///
/// Tasks get the group's context (a clone of it, by value, as [`Group`](super::Group)'s tasks
/// do); see [`scope`] for the semantics.
///
/// # Coming from Go
///
/// `s.spawn(f)` is errgroup's `g.Go(f)`, `s.try_spawn(f)` is `g.TryGo(f)`, `s.set_limit(n)` is
/// `g.SetLimit(n)`; the `Wait` is the end of [`scope`]. Unlike Go's `Go` under a limit, `spawn`
/// never blocks: the task is queued for one of at most `n` worker threads.
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
pub struct Scope<'scope, 'env, T, E> {
    threads: &'scope std::thread::Scope<'scope, 'env>,
    inner: Arc<Inner<'scope, T, E>>,
    /// Every thread started, joined at the end of [`scope`] (invariant #4).
    handles: RefCell<Vec<ScopedJoinHandle<'scope, ()>>>,
    /// Tasks spawned, skipped ones included: the next spawn index.
    spawned: Cell<usize>,
    /// At most this many threads run tasks; `None`: one thread per task.
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
        &self.inner.ctx
    }

    /// Starts `task` on a thread of its own (no limit) or on one of at most `n` worker threads
    /// (after [`set_limit(n)`](Scope::set_limit), queued until one is free); never blocks.
    /// `task` gets the group's context (a clone, by value). A task spawned once the context is
    /// done never starts.
    ///
    /// # Examples
    ///
    /// ```
    /// let total = std::sync::atomic::AtomicUsize::new(0);
    /// let r = ctxkit::group::scope(&ctxkit::Context::background(), |s| {
    ///     for i in 1..=4 {
    ///         let total = &total;
    ///         s.spawn(move |_ctx| {
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
    #[track_caller]
    pub fn spawn<G>(&self, task: G)
    where
        G: FnOnce(Context) -> Result<T, E> + Send + 'scope,
    {
        let index = self.spawned.get();
        self.spawned.set(index + 1);
        if self.inner.ctx.is_done() {
            return; // go#61611; reported at the end as the context's error.
        }
        let job: Job<'scope, T, E> = Box::new(task);
        self.inner.active.fetch_add(1, Ordering::AcqRel);
        match self.limit.get() {
            None => {
                let inner = self.inner.clone();
                self.start(move || inner.run_one(index, job));
            }
            Some(limit) => {
                let mut state = lock(&self.inner.state);
                // Invariant #2: an idle worker is free only if no queued task claims it yet (it
                // stays counted as idle until it wakes).
                let free_idle = state.idle > state.queue.len();
                if !free_idle && state.workers < limit.get() {
                    state.workers += 1;
                    drop(state);
                    let inner = self.inner.clone();
                    self.start(move || inner.work(index, job));
                } else {
                    state.queue.push_back((index, job));
                    drop(state);
                    if free_idle {
                        self.inner.work.notify_one();
                    }
                }
            }
        }
    }

    /// Starts `task` only if no waiting is needed (no limit, or fewer than the limit running)
    /// and the context is not done; returns whether it did (Go's `TryGo`). On `false`, `task` is
    /// dropped.
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
        if self.inner.ctx.is_done() {
            return false;
        }
        if let Some(limit) = self.limit.get() {
            let state = lock(&self.inner.state);
            // As in `spawn`: a free idle worker, or room for another thread (invariant #2).
            if state.idle <= state.queue.len() && state.workers >= limit.get() {
                return false;
            }
            drop(state);
            self.spawn(task); // starts a worker, or hands the task to an idle one
            return true;
        }
        self.spawn(task);
        true
    }

    #[track_caller]
    fn start<F: FnOnce() + Send + 'scope>(&self, f: F) {
        let handle = std::thread::Builder::new()
            .name("ctxkit-group".to_owned())
            .spawn_scoped(self.threads, f)
            .unwrap_or_else(|error| panic!("ctxkit::group: failed to start a thread: {error}"));
        self.handles.borrow_mut().push(handle);
    }

    /// Runs the scope's tasks on at most `n` threads at once; later tasks queue.
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
        self.assert_idle("set_limit");
        self.limit.set(Some(n));
    }

    /// Removes the limit: one thread per task again.
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
        self.assert_idle("remove_limit");
        self.limit.set(None);
    }

    #[track_caller]
    fn assert_idle(&self, what: &str) {
        let active = self.inner.active.load(Ordering::Acquire);
        if active != 0 {
            panic!("ctxkit::group: {what} while {active} tasks are active");
        }
    }
}

impl<T, E> fmt::Debug for Scope<'_, '_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("active", &self.inner.active.load(Ordering::Acquire))
            .field("spawned", &self.spawned.get())
            .field("limit", &self.limit.get())
            .field("ctx", &self.inner.ctx)
            .finish()
    }
}

/// Closes the queue when the caller's closure returns or unwinds; on unwind also cancels the
/// group's context, so tasks watching it end and `std::thread::scope` can join them
/// (invariant #4).
struct CloseOnExit<'a, 'scope, T, E: fmt::Display>(&'a Inner<'scope, T, E>);

impl<T, E: fmt::Display> Drop for CloseOnExit<'_, '_, T, E> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.cancel.cancel();
        }
        self.0.close();
    }
}

/// Runs the group and hands its outcomes to `take`.
fn run<'env, T, E, F, R>(
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
            inner: Arc::new(Inner {
                ctx,
                cancel,
                active: AtomicUsize::new(0),
                failed: AtomicBool::new(false),
                state: Mutex::new(State {
                    slots: Slots::new(),
                    queue: VecDeque::new(),
                    workers: 0,
                    idle: 0,
                    closed: false,
                }),
                work: Condvar::new(),
            }),
            handles: RefCell::new(Vec::new()),
            spawned: Cell::new(0),
            limit: Cell::new(None),
        };
        {
            let _close = CloseOnExit(&scope.inner);
            f(&scope);
        }
        // Invariant #4. Tasks catch their own panics, so a join error is ctxkit's own bug.
        for handle in scope.handles.take() {
            if let Err(payload) = handle.join() {
                resume_unwind(payload);
            }
        }
        let skipped = scope.inner.ctx.err().unwrap_or(Error::Canceled);
        scope.inner.cancel.cancel();
        // Taken out of the lock first: `take` runs user code (`E::from`, drops).
        let mut slots = lock(&scope.inner.state).slots.take();
        let taken = take(&mut slots, scope.spawned.get(), skipped);
        match taken {
            Ok(result) => result,
            Err(payload) => resume_unwind(payload),
        }
    })
}

/// Runs a group of tasks on scoped threads: the closure starts them with [`Scope::spawn`], and
/// `scope` returns once all have ended, with their results in spawn order or the first error.
///
/// The blocking counterpart of [`Group`](super::Group), with the same semantics:
///
/// * Tasks get the group's context, derived from `parent`. The first task to fail cancels it,
///   with a [`TaskFailed`] cause carrying the error's text; tasks still running should watch it
///   (`ctx.check()?`, `ctx.blocking_sleep(d)?`) and return.
/// * A task spawned once the context is done never starts and counts as failed with the
///   context's [`Error`], unless another error came first. Hence the error type `E` must
///   implement `From<ctxkit::Error>`: `ctxkit::Error`, `String`, `std::io::Error` and
///   `Box<dyn std::error::Error + Send + Sync>` do; for an error enum of your own, add a variant
///   and a one-line `impl From<ctxkit::Error> for MyError` (see the
///   [module docs](super#examples)).
/// * Tasks may borrow from the caller's stack: they only need to outlive the call.
/// * Without a limit each task gets a thread (named `ctxkit-group`), as each `Go` gets a
///   goroutine. With [`Scope::set_limit(n)`](Scope::set_limit), at most `n` threads run the
///   tasks, taking them from a queue in spawn order; `spawn` never blocks.
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
/// Blocks the calling thread until every task has ended. Do not call it from async code.
pub fn scope<'env, T, E, F>(parent: &Context, f: F) -> Result<Vec<T>, E>
where
    T: Send + 'env,
    E: fmt::Display + From<Error> + Send + 'env,
    F: for<'scope> FnOnce(&Scope<'scope, 'env, T, E>),
{
    run(parent, f, Slots::take_first)
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
pub fn scope_all<'env, T, E, F>(parent: &Context, f: F) -> Result<Vec<T>, Vec<E>>
where
    T: Send + 'env,
    E: fmt::Display + From<Error> + Send + 'env,
    F: for<'scope> FnOnce(&Scope<'scope, 'env, T, E>),
{
    run(parent, f, Slots::take_all)
}
