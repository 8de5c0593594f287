//! The bookkeeping of a long-lived pool ([`Workers`](super::Workers) and
//! `AsyncWorkers` (feature `tokio`)): a pure core, no locks, no atomics, no user code,
//! driven under each form's one lock.
//!
//! # How it schedules
//!
//! A submission is *accepted* when the queue has room: fewer than `bound` jobs wait beyond
//! those a free worker is already on its way to take. A free worker is an idle one (parked, its
//! token in `idle`), a *searching* one (woken or just started for a job, not yet back for it),
//! or one not started yet (workers start as jobs arrive, up to the pool's size). Accepting a
//! job recruits a free worker for it when every searching one is already matched: it wakes an
//! idle worker, or asks the form to start one. So with a bound of 0 a job is accepted only when
//! a worker will take it at once (a rendezvous), and no queued job waits for a running job to
//! end unless the queue holds more than the free workers.
//!
//! # Invariants
//!
//! 1. `searching` counts the workers woken from `idle` or asked for by
//!    [`submit`](WorkersCore::submit) that have not yet made their next
//!    [`exchange`](WorkersCore::worker_exchange); a worker learns it was searching from the
//!    exchange (its token is no longer in `idle`, or it is new). After every submission,
//!    either `queued.len() <= searching` or no worker is free (none idles, all are started): a
//!    queued job has a worker on its way, or waits only for busy workers. And
//!    `queued.len() <= bound + searching` holds whenever a submission is accepted.
//! 2. `state` only moves forward: `Running` → `Closing` (shutdown: no submission is accepted,
//!    workers run what is queued then leave) → `Canceled` (no job starts any more; workers leave
//!    after the job they run). `Running` may also go straight to `Canceled` (the pool's context
//!    is done, or the pool is dropped). In `Canceled`, `queued` holds exactly the accepted jobs
//!    that never started: a worker takes a job out of `queued` only to run it, after checking
//!    the state in the same critical section, and runs it unless the context is done, in which
//!    case it hands it back ([`worker_exchange`](WorkersCore::worker_exchange)'s `not_started`).
//! 3. Every accepted job is, at any time, in exactly one place: `queued`, a worker's hands, or
//!    done (its panic, if any, in `panicked`). So a shutdown returns every accepted job that never
//!    ran, and none that ran.
//! 4. Tokens: `idle` holds the tokens of workers parked for lack of work (stored in the critical
//!    section where they found none; taken out to wake them); `waiting` holds the tokens of
//!    submissions waiting for room or of a shutdown waiting for the workers to leave. Every
//!    step that may make room or end the pool (a job taken out of `queued`, a worker idling or
//!    leaving, a state change) takes all of `waiting` to wake them, so no waiter misses its
//!    chance; a woken waiter that finds nothing for it registers again.
//! 5. `live` counts the workers started (or asked for) and not yet left; the pool is over when
//!    the state is not `Running` and `live` is zero.

use std::collections::VecDeque;
use std::fmt;

use super::job_failed::JobFailed;
use crate::sync::Unpark;

/// Where a long-lived pool is in its life (invariant 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Accepting submissions.
    Running,
    /// Shutting down: queued jobs run, nothing new is accepted.
    Closing,
    /// No job starts any more.
    Canceled,
}

/// Why a submission was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is full.
    Full,
    /// The pool is shutting down, or its context is done.
    Closed,
}

/// What a submission that was accepted asks of the form.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Accepted<P> {
    /// Nothing: a searching or busy worker will take it.
    Queued,
    /// Wake this idle worker.
    Wake(P),
    /// Start a worker (already counted as live and searching).
    Start,
}

/// What a worker does after an exchange.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WorkerStep<J> {
    /// Run this job (its index is the order of acceptance).
    Run(u64, J),
    /// Nothing to run yet; its token is in `idle`: park.
    Park,
    /// The pool is over for it: leave (it is no longer counted).
    Leave,
}

/// A long-lived pool's shared state (see the module docs).
pub(crate) struct WorkersCore<J, P> {
    queued: VecDeque<(u64, J)>,
    bound: usize,
    /// The pool's size, and the workers asked for so far.
    size: usize,
    started: usize,
    /// Workers asked for and not yet left (invariant 5).
    live: usize,
    /// Free workers on their way to take a job (invariant 1).
    searching: usize,
    idle: Vec<P>,
    waiting: Vec<P>,
    state: State,
    /// The next accepted job's index.
    next_index: u64,
    /// The panics of jobs so far, in the order they were reported.
    panicked: Vec<JobFailed>,
}

impl<J, P: Unpark> WorkersCore<J, P> {
    /// A pool of at most `size` workers (at least 1) and a queue bound of `bound`.
    pub(crate) fn new(size: usize, bound: usize) -> Self {
        WorkersCore {
            queued: VecDeque::new(),
            bound,
            size: size.max(1),
            started: 0,
            live: 0,
            searching: 0,
            idle: Vec::new(),
            waiting: Vec::new(),
            state: State::Running,
            next_index: 0,
            panicked: Vec::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Offers `job`. Accepted: what the form must do for it. Refused: the job comes back with
    /// the reason, and the queue is untouched.
    pub(crate) fn submit(&mut self, job: J) -> Result<(u64, Accepted<P>), (Refused, J)> {
        if self.state != State::Running {
            return Err((Refused::Closed, job));
        }
        // Free workers not yet matched with a queued job could take one more at once.
        if self.queued.len() >= self.capacity() {
            return Err((Refused::Full, job));
        }
        let recruitable = self.recruitable();
        let index = self.next_index;
        self.queued.push_back((index, job));
        self.next_index += 1;
        if self.queued.len() <= self.searching || recruitable == 0 {
            // A searching worker will take it, or every worker is busy: one will.
            return Ok((index, Accepted::Queued));
        }
        self.searching += 1;
        if let Some(worker) = self.idle.pop() {
            Ok((index, Accepted::Wake(worker)))
        } else {
            self.started += 1;
            self.live += 1;
            Ok((index, Accepted::Start))
        }
    }

    /// A worker asked for by [`submit`](Self::submit) could not be started (the OS refused a
    /// thread): it is no longer counted, and may be asked for again. If no worker is live,
    /// the queue can be run by nobody: true (the form then runs a job itself or reports it).
    pub(crate) fn start_failed(&mut self) -> bool {
        self.started -= 1;
        self.live -= 1;
        self.searching -= 1;
        self.live == 0
    }

    /// A worker's exchange. `looking` is true for a worker that is new or has parked since its
    /// last exchange: if its token is gone from `idle` it was searching (invariant 1), else it
    /// woke spuriously and parks again. `panicked` is the panic of the job it just ran, if any;
    /// `not_started` a job it took but did not start because the pool's context was done
    /// (`context_done`; put back at the front: invariant 2). Pushes the tokens to wake onto
    /// `wake`.
    pub(crate) fn worker_exchange(
        &mut self,
        token: &P,
        looking: bool,
        panicked: Option<JobFailed>,
        not_started: Option<(u64, J)>,
        context_done: bool,
        wake: &mut Vec<P>,
    ) -> WorkerStep<J> {
        if looking {
            if self.idle.iter().any(|kept| kept.is_same(token)) {
                // Woken spuriously: still idle, nothing changed.
                return WorkerStep::Park;
            }
            self.searching -= 1;
        }
        self.panicked.extend(panicked);
        if let Some(job) = not_started {
            self.queued.push_front(job);
        }
        if context_done {
            self.cancel(wake);
        }
        let step = match self.state {
            State::Canceled => WorkerStep::Leave,
            State::Running | State::Closing => match self.queued.pop_front() {
                Some((index, job)) => WorkerStep::Run(index, job),
                None if self.state == State::Closing => WorkerStep::Leave,
                None => {
                    self.idle.push(token.clone());
                    WorkerStep::Park
                }
            },
        };
        if matches!(step, WorkerStep::Leave) {
            self.live -= 1;
        }
        // Invariant 4: a job left the queue, a worker idles or leaves: room, or the end.
        wake.append(&mut self.waiting);
        step
    }

    /// A worker task was dropped before it left (its runtime shut down, or the pool's drop
    /// aborted it): the job it ran, if any, is reported as aborted, it is no longer counted,
    /// and the pool is canceled (a runtime that drops one worker drops them all).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code, reason = "async pools only"))]
    pub(crate) fn worker_abandoned(&mut self, running: Option<u64>, wake: &mut Vec<P>) {
        if let Some(index) = running {
            self.panicked.push(JobFailed::aborted(index));
        }
        self.live -= 1;
        self.cancel(wake);
    }

    /// Takes back the accepted job `index` if no worker has taken it (a submission whose
    /// worker could not be started, with no other worker live to run it).
    pub(crate) fn withdraw(&mut self, index: u64) -> Option<J> {
        let position = self.queued.iter().position(|(i, _)| *i == index)?;
        self.queued.remove(position).map(|(_, job)| job)
    }

    /// The pool's context is done or the pool is dropped: no job starts any more (invariant
    /// 2); every parked party is woken.
    pub(crate) fn cancel(&mut self, wake: &mut Vec<P>) {
        self.state = State::Canceled;
        // Woken idle workers count as searching (invariant 1), as any worker woken from idle.
        self.searching += self.idle.len();
        wake.append(&mut self.idle);
        wake.append(&mut self.waiting);
    }

    /// Shutdown begins: nothing new is accepted; queued jobs still run (invariant 2).
    pub(crate) fn close(&mut self, wake: &mut Vec<P>) {
        if self.state == State::Running {
            self.state = State::Closing;
        }
        self.searching += self.idle.len();
        wake.append(&mut self.idle);
        wake.append(&mut self.waiting);
    }

    /// Whether the pool is over: not running, no worker left (invariant 5).
    #[cfg(test)]
    pub(crate) fn is_over(&self) -> bool {
        self.is_over_but(0)
    }

    /// Whether the pool is over but for `busy` workers (the caller's own, when it runs on one
    /// of the pool's workers and cannot wait for itself).
    pub(crate) fn is_over_but(&self, busy: usize) -> bool {
        self.state != State::Running && self.live <= busy
    }

    /// Stores the token of a submission waiting for room or a shutdown waiting for the end
    /// (invariant 4), unless it is there already.
    pub(crate) fn wait(&mut self, token: &P) {
        if !self.waiting.iter().any(|kept| kept.is_same(token)) {
            self.waiting.push(token.clone());
        }
    }

    /// Removes a waiter's token (it gave up).
    pub(crate) fn unwait(&mut self, token: &P) {
        self.waiting.retain(|kept| !kept.is_same(token));
    }

    /// Whether a submission now would be accepted (or refused for good).
    pub(crate) fn has_room(&self) -> bool {
        self.state != State::Running || self.queued.len() < self.capacity()
    }

    /// Free workers not yet matched with a queued job: idle ones, and those not started yet.
    fn recruitable(&self) -> usize {
        self.idle.len() + (self.size - self.started)
    }

    /// How many jobs may be queued now: the bound, plus one for each free worker (searching or
    /// recruitable). Saturating: `queue(usize::MAX)` or `Pool::new(usize::MAX)` mean "no bound".
    fn capacity(&self) -> usize {
        self.bound
            .saturating_add(self.searching)
            .saturating_add(self.recruitable())
    }

    /// The accepted jobs that never started, in order of acceptance, and the panics reported.
    pub(crate) fn take_leftovers(&mut self) -> (Vec<J>, Vec<JobFailed>) {
        let mut unrun: Vec<_> = self.queued.drain(..).collect();
        unrun.sort_unstable_by_key(|(index, _)| *index);
        (
            unrun.into_iter().map(|(_, job)| job).collect(),
            std::mem::take(&mut self.panicked),
        )
    }

    /// How many accepted jobs wait for a worker.
    pub(crate) fn queued(&self) -> usize {
        self.queued.len()
    }
}

impl<J, P> fmt::Debug for WorkersCore<J, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkersCore")
            .field("state", &self.state)
            .field("queued", &self.queued.len())
            .field("bound", &self.bound)
            .field("size", &self.size)
            .field("live", &self.live)
            .field("searching", &self.searching)
            .field("idle", &self.idle.len())
            .field("waiting", &self.waiting.len())
            .field("failed", &self.panicked.len())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The core alone: made-up workers (tokens 1, 2, ...) and waiters (tokens 100, ...).

    use super::*;
    use crate::sync::NamedToken as Token;

    type Core = WorkersCore<&'static str, Token>;

    /// Worker `id`'s exchange with nothing to report.
    fn look(core: &mut Core, id: u32, looking: bool) -> (WorkerStep<&'static str>, Vec<Token>) {
        let mut wake = Vec::new();
        let step = core.worker_exchange(&Token(id), looking, None, None, false, &mut wake);
        (step, wake)
    }

    #[test]
    fn a_zero_bound_accepts_only_for_a_free_worker() {
        let mut core = Core::new(1, 0);
        assert_eq!(core.submit("a"), Ok((0, Accepted::Start)));
        // The worker is on its way to "a": nothing else fits.
        assert_eq!(core.submit("b"), Err((Refused::Full, "b")));
        assert_eq!(look(&mut core, 1, true).0, WorkerStep::Run(0, "a"));
        assert_eq!(core.submit("b"), Err((Refused::Full, "b")), "busy");
        assert!(!core.has_room());
        core.wait(&Token(100));
        // It finishes and idles: the waiting submitter is woken, and there is room.
        let (step, wake) = look(&mut core, 1, false);
        assert_eq!((step, wake), (WorkerStep::Park, vec![Token(100)]));
        assert!(core.has_room());
        assert_eq!(core.submit("b"), Ok((1, Accepted::Wake(Token(1)))));
        assert_eq!(core.submit("c"), Err((Refused::Full, "c")));
        assert_eq!(look(&mut core, 1, true).0, WorkerStep::Run(1, "b"));
    }

    #[test]
    fn a_bound_queues_beyond_the_free_workers_and_recruits_them_first() {
        let mut core = Core::new(2, 2);
        assert_eq!(core.submit("a"), Ok((0, Accepted::Start)));
        assert_eq!(core.submit("b"), Ok((1, Accepted::Start)));
        // Both workers are on their way; two more fit in the queue.
        assert_eq!(core.submit("c"), Ok((2, Accepted::Queued)));
        assert_eq!(core.submit("d"), Ok((3, Accepted::Queued)));
        assert_eq!(core.submit("e"), Err((Refused::Full, "e")));
        assert_eq!(core.queued(), 4);
        assert_eq!(look(&mut core, 1, true).0, WorkerStep::Run(0, "a"));
        assert_eq!(look(&mut core, 2, true).0, WorkerStep::Run(1, "b"));
        assert_eq!(
            core.submit("e"),
            Err((Refused::Full, "e")),
            "both busy, 2 queued"
        );
        assert_eq!(look(&mut core, 1, false).0, WorkerStep::Run(2, "c"));
        assert_eq!(core.submit("e"), Ok((4, Accepted::Queued)));
    }

    #[test]
    fn a_spurious_wake_changes_nothing() {
        let mut core = Core::new(1, 0);
        assert_eq!(core.submit("a"), Ok((0, Accepted::Start)));
        assert_eq!(look(&mut core, 1, true).0, WorkerStep::Run(0, "a"));
        assert_eq!(look(&mut core, 1, false).0, WorkerStep::Park);
        assert_eq!(look(&mut core, 1, true).0, WorkerStep::Park, "still idle");
        assert_eq!(
            core.submit("b"),
            Ok((1, Accepted::Wake(Token(1)))),
            "still one idle"
        );
    }

    #[test]
    fn closing_runs_the_queue_then_the_workers_leave() {
        let mut core = Core::new(1, 4);
        core.submit("a").unwrap();
        core.submit("b").unwrap();
        let mut wake = Vec::new();
        core.close(&mut wake);
        assert_eq!(core.submit("c"), Err((Refused::Closed, "c")));
        assert_eq!(look(&mut core, 1, true).0, WorkerStep::Run(0, "a"));
        assert!(!core.is_over());
        assert_eq!(look(&mut core, 1, false).0, WorkerStep::Run(1, "b"));
        assert_eq!(look(&mut core, 1, false).0, WorkerStep::Leave);
        assert!(core.is_over());
        assert_eq!(core.take_leftovers(), (vec![], vec![]));
    }

    #[test]
    fn a_cancel_keeps_the_unstarted_jobs_in_order_with_the_failures() {
        let mut core = Core::new(1, 4);
        for job in ["a", "b", "c"] {
            core.submit(job).unwrap();
        }
        assert_eq!(look(&mut core, 1, true).0, WorkerStep::Run(0, "a"));
        assert_eq!(look(&mut core, 1, false).0, WorkerStep::Run(1, "b"));
        // "a" panicked; the worker took "b" but saw the context done before starting it.
        let mut wake = Vec::new();
        let failed = JobFailed::panicked(0, "boom".to_owned());
        let step = core.worker_exchange(
            &Token(1),
            false,
            Some(failed.clone()),
            Some((1, "b")),
            true,
            &mut wake,
        );
        assert_eq!(step, WorkerStep::Leave);
        assert!(core.is_over());
        assert_eq!(core.submit("d"), Err((Refused::Closed, "d")));
        assert_eq!(core.take_leftovers(), (vec!["b", "c"], vec![failed]));
    }

    #[test]
    fn a_worker_that_could_not_start_hands_its_job_back() {
        let mut core = Core::new(1, 0);
        assert_eq!(core.submit("a"), Ok((0, Accepted::Start)));
        assert!(core.start_failed(), "no worker left");
        assert_eq!(core.withdraw(0), Some("a"));
        assert_eq!(
            core.submit("b"),
            Ok((1, Accepted::Start)),
            "asked for again"
        );
    }

    #[test]
    fn an_abandoned_worker_cancels_the_pool_and_reports_its_job() {
        let mut core = Core::new(2, 1);
        core.submit("a").unwrap();
        assert_eq!(look(&mut core, 1, true).0, WorkerStep::Run(0, "a"));
        core.wait(&Token(100));
        let mut wake = Vec::new();
        core.worker_abandoned(Some(0), &mut wake);
        assert_eq!(wake, [Token(100)]);
        assert_eq!(core.state(), State::Canceled);
        assert!(core.is_over());
        let (unrun, failed) = core.take_leftovers();
        assert!(unrun.is_empty());
        assert!(failed[0].is_aborted());
    }
}
