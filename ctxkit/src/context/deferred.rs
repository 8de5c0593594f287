//! [`Deferred`]: a function (or the opening of an async one's gated task) to hand to the
//! after-function pool at most once, unless stopped first. What an after-function is, seen from the waiter list:
//! `waiters.rs` holds one and hands it off when the context completes; the public `AfterFunc`
//! handle (`after_func.rs`) stops it. It knows nothing of the tree.
//!
//! # Invariants
//!
//! 1. `state` goes from `PENDING` to `STARTED` ([`Deferred::start_at_registration`] or
//!    [`Deferred::take_job_at`] won) or to `STOPPED` ([`Deferred::stop`] won), once; whoever
//!    moves it decides whether the function runs. For a registration on a context's waiter
//!    list the decision is made earlier, under the node's lock: a completion that takes the
//!    list has started every registration in it (it hands them off untouched,
//!    [`hand_off_started`], and the pool's dispatcher moves their state later, with
//!    `take_job_at`), and `AfterFunc::stop` calls [`Deferred::stop`] only after taking its
//!    registration off the list itself, so the two compare-and-swaps never race. A leak check
//!    lists such a function as queued from that hand-off on (the pool lists the
//!    registration); a check during the cancel's walk sees the state from before the cancel.
//! 2. The function runs at most once, on a worker of the after-function pool (`blocking/`),
//!    never on the thread completing the context: the completion only hands it off. The one exception: the OS refused the pool's dispatcher thread, both when the
//!    function was registered and at the hand-off; then it runs on that thread, late rather
//!    than never, after a message on standard error. An async one (`Work::Spawn`) has its task
//!    spawned, gated, at its registration (`after_func.rs`); its work opens that gate, at most
//!    once, on the pool's dispatcher; or in `start_at_registration`, on the registering
//!    thread, when the context was already done; or, with no dispatcher, on the thread that
//!    handed it off (an opening never blocks, so no message). Dropped unstarted (a stop, or
//!    the last reference to this going), its work shuts the gate: the task ends, dropping the
//!    future unpolled.
//! 3. `origin` and `tag` are fixed at registration: the function's unit, queued or running,
//!    carries the registration's site and scope tag, whoever completes the context (a leak
//!    check blames the test that registered it).

use crate::blocking::{self, Job, Work};
use crate::spawn::{Origin, ScopeTag};
use crate::sync::{Arc, AtomicU8, Mutex, Ordering};

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const STOPPED: u8 = 2;

/// A function to start once, or never (see the module docs).
pub(crate) struct Deferred {
    /// Invariant 1.
    state: AtomicU8,
    /// Taken by the one start, or dropped by the one stop: a function to run, or an async
    /// one's spawner (which holds its future and its runtime's handle).
    work: Mutex<Option<Work>>,
    /// Where it was registered (invariant 3).
    origin: Origin,
    /// The scope tag current at its registration (invariant 3).
    tag: Option<ScopeTag>,
    /// Whether `work` is an async one's (`Work::Spawn`). Fixed.
    spawns: bool,
}

impl Deferred {
    /// `work`, registered at `origin`, under the tag current now.
    pub(crate) fn new(work: Work, origin: Origin) -> Deferred {
        Deferred {
            spawns: matches!(work, Work::Spawn(_)),
            state: AtomicU8::new(PENDING),
            work: Mutex::new(Some(work)),
            origin,
            tag: ScopeTag::current(),
        }
    }

    /// Starts a function whose context was done when it was registered, on the registering
    /// thread, unless `stop` got there first (invariants 1, 2): an async one's gate is opened
    /// here and now, with no trip through the pool's dispatcher; a blocking one is handed off.
    pub(crate) fn start_at_registration(&self) {
        match self.take() {
            Some(work @ Work::Spawn(_)) => work.run_here(self.origin, self.tag),
            Some(work) => self.hand_off(work),
            None => {}
        }
    }

    /// The job to run, unless `stop` got there first (invariant 1), handed off at `handed`:
    /// for the pool's dispatcher, which takes the jobs of what a completion started
    /// ([`hand_off_started`]).
    pub(crate) fn take_job_at(&self, handed: std::time::Instant) -> Option<Job> {
        self.take()
            .map(|work| Job::of_at(work, self.origin, self.tag, handed))
    }

    /// Whether its work opens an async one's gate (else a worker runs it). Fixed.
    pub(crate) fn spawns(&self) -> bool {
        self.spawns
    }

    /// Where it was registered (invariant 3).
    pub(crate) fn origin(&self) -> Origin {
        self.origin
    }

    /// The scope tag current at its registration (invariant 3).
    pub(crate) fn tag(&self) -> Option<ScopeTag> {
        self.tag
    }

    /// Hands `work` to the pool; runs it here if no dispatcher could be started (invariant 2).
    fn hand_off(&self, work: Work) {
        if let Err(job) = blocking::hand_off(Job::of(work, self.origin, self.tag)) {
            run_refused(job);
        }
    }

    /// Moves the state to `STARTED` and takes the work, unless `stop` got there first
    /// (invariant 1).
    fn take(&self) -> Option<Work> {
        if self
            .state
            .compare_exchange(PENDING, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        self.work.lock().take()
    }

    /// Stops the function from ever running; true if this call did (invariant 1). The
    /// function is dropped on this thread.
    pub(crate) fn stop(&self) -> bool {
        let stopped = self
            .state
            .compare_exchange(PENDING, STOPPED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if stopped {
            let work = self.work.lock().take();
            drop(work); // user data: dropped after the lock is released
        }
        stopped
    }

    /// "pending", "started" or "stopped", for `Debug`.
    pub(crate) fn state_name(&self) -> &'static str {
        match self.state.load(Ordering::Acquire) {
            PENDING => "pending",
            STARTED => "started",
            _ => "stopped",
        }
    }
}

/// Hands what a completion started to the pool together, untouched: its dispatcher takes
/// their jobs (`blocking::hand_off_started`). With no dispatcher (the OS refused it), each is
/// run here (invariant 2).
pub(crate) fn hand_off_started(started: Vec<Arc<Deferred>>) {
    if let Err(started) = blocking::hand_off_started(started) {
        let now = std::time::Instant::now();
        for deferred in started {
            if let Some(job) = deferred.take_job_at(now) {
                run_refused(job);
            }
        }
    }
}

/// Runs on this thread a job the pool could not take (invariant 2's exception).
fn run_refused(job: Job) {
    if !job.spawns() {
        // Running it late on this thread is the only way left to keep the promise that it
        // runs; say so.
        eprintln!("ctxkit: no thread could be started for an after-function; running it inline");
    }
    job.run_here();
}
