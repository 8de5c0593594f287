//! The bookkeeping of a one-shot map ([`Pool::map`](super::Pool::map) and its async
//! counterpart): a pure core, no locks, no atomics, no user code, that both forms drive under
//! their one lock, the way `group/scheduler.rs`'s `Scheduler` is driven.
//!
//! # How jobs and results move
//!
//! The *consumer* (whoever iterates the results: the thread calling `next`, or the task
//! polling the stream) is the only party that pulls the input. Each time it runs out of
//! results it pulls, outside the lock, as many jobs as the in-flight bound leaves room for,
//! then makes one [`exchange`](MapCore::consumer_exchange): the pulled jobs go into `jobs`,
//! idle workers are woken for them, new workers are asked for (up to the pool's size), and the
//! results finished so far come out, all in one critical section. A *worker* likewise makes one
//! [`exchange`](MapCore::worker_exchange) per batch: the results of its last batch go into
//! `finished` (waking the consumer if it waits), and its next batch of jobs comes out. Jobs
//! and results therefore cross the lock in batches, which is what makes a job cost tens of
//! nanoseconds instead of a lock round trip each; a worker sizes its batches from how long the
//! last one took (`map.rs`), so slow jobs still go one at a time.
//!
//! # Invariants
//!
//! 1. *In flight* means pulled from the input and not yet released to the caller (queued in
//!    `jobs`, running, in `finished`, or held by the consumer). Only the consumer changes the
//!    count (it adds what it pulls, subtracts what it releases), so it keeps the count itself
//!    and pulls at most `bound - in_flight` jobs: at most `bound` jobs and results exist at any
//!    time, whatever the speed of the consumer, the workers or the input. A slow consumer
//!    therefore holds the workers back instead of growing a buffer.
//! 2. Every pulled job is, at any time, in exactly one place: `jobs`, a worker's batch, or (as
//!    its result) `finished` / the consumer's hands. A worker that stops in the middle of a
//!    batch puts the jobs it did not start back at the front of `jobs`, in order. So when the
//!    map ends early, `jobs` holds exactly the jobs that never ran.
//! 3. `stopped` is set once and never cleared: by a worker that saw the context done, by the
//!    consumer that saw it done before pulling, or by the consumer's drop. Once it is set no
//!    job starts: a worker checks the context before each job, and a worker that makes an
//!    exchange while `stopped` leaves instead of taking a batch.
//! 4. `consumer` (the consumer's token) is stored only when the consumer found nothing to
//!    return and the map is not over, in the same critical section where it looked; it is
//!    taken by the first exchange after which the consumer has something to see (results
//!    delivered, or the last worker gone). So the consumer cannot miss its wake-up.
//! 5. A worker stores its token in `idle` only when it found no job and the input has not
//!    ended, in the critical section where it looked; the consumer takes tokens out of `idle`
//!    when it queues jobs (one per job, up to all), and takes all of them when the input ends
//!    or the map stops. So an idle worker cannot miss a job or the end. A worker woken
//!    spuriously finds its token still in `idle` and does not store it twice.
//! 6. `live` counts the workers asked for and not yet left. The consumer asks for workers only
//!    while `started < size` and queued jobs outnumber the idle workers it woke; a worker that
//!    could not be started is handed back ([`start_failed`](MapCore::start_failed)). When
//!    `live` is zero with jobs queued and the map not stopped (no worker could ever be
//!    started), the consumer runs a batch itself ([`ConsumerStep::RunHere`]), so the map still
//!    ends.
//! 7. The map is *over* when the input ended and nothing is in flight but what the consumer
//!    holds, or when it stopped and no worker is live (no job runs; `jobs` holds the unrun).

use std::collections::VecDeque;
use std::fmt;

use super::job_failed::JobFailed;
use crate::sync::{remember, Unpark};

/// A job's outcome: its value, or its panic.
pub(crate) type Outcome<T> = Result<T, JobFailed>;

/// The most jobs a worker takes in one batch.
pub(crate) const MAX_BATCH: usize = 1024;

/// What the consumer does after an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConsumerStep {
    /// Results came out (or none are to come yet but the consumer should look again): go on.
    Ready,
    /// Nothing to return yet; the consumer's token is stored: park.
    Park,
    /// No worker is live yet jobs wait: run a batch here (invariant 6).
    RunHere,
    /// The map is over (invariant 7).
    Over,
}

/// What a worker does after an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WorkerStep {
    /// Its batch is filled: run it.
    Work,
    /// No job yet; its token is in `idle`: park.
    Park,
    /// The input ended or the map stopped: leave (it is no longer counted as live).
    Leave,
}

/// The one-shot map's shared state (see the module docs).
pub(crate) struct MapCore<J, T, P> {
    /// Jobs pulled and not yet taken by a worker, in input order, with their input index.
    jobs: VecDeque<(u64, J)>,
    /// Results of finished jobs not yet taken by the consumer.
    finished: Vec<(u64, Outcome<T>)>,
    /// The pool's size: the most workers the map starts.
    size: usize,
    /// Workers asked for so far (invariant 6).
    started: usize,
    /// Workers asked for and not yet left (invariant 6).
    live: usize,
    /// Parked workers' tokens (invariant 5).
    idle: Vec<P>,
    /// The consumer's token while it parks (invariant 4).
    consumer: Option<P>,
    /// The input is exhausted: no job will be queued again.
    input_ended: bool,
    /// No job starts any more (invariant 3).
    stopped: bool,
}

impl<J, T, P: Unpark> MapCore<J, T, P> {
    /// A map that starts at most `size` workers (at least 1).
    pub(crate) fn new(size: usize) -> Self {
        MapCore {
            jobs: VecDeque::new(),
            finished: Vec::new(),
            size: size.max(1),
            started: 0,
            live: 0,
            idle: Vec::new(),
            consumer: None,
            input_ended: false,
            stopped: false,
        }
    }

    /// The consumer's exchange: queues `pulled` (emptied), records that the input ended or
    /// that the consumer saw the context done (`stop`), moves the finished results into
    /// `ready` (which must be empty), pushes the tokens of the workers to wake onto `wake`, and
    /// returns what to do next with how many workers to start (already counted as live).
    pub(crate) fn consumer_exchange(
        &mut self,
        pulled: &mut Vec<(u64, J)>,
        input_ended: bool,
        stop: bool,
        ready: &mut Vec<(u64, Outcome<T>)>,
        token: &P,
        wake: &mut Vec<P>,
    ) -> (ConsumerStep, usize) {
        debug_assert!(ready.is_empty());
        self.jobs.extend(pulled.drain(..));
        self.input_ended |= input_ended;
        self.stopped |= stop;
        // Invariant 5: idle workers learn about new jobs or the end.
        let woken = if self.input_ended || self.stopped {
            self.idle.len()
        } else {
            self.idle.len().min(self.jobs.len())
        };
        wake.extend(self.idle.drain(..woken));
        // Invariant 6: more workers while jobs outnumber the ones that will look.
        let start = if self.stopped {
            0
        } else {
            self.jobs
                .len()
                .saturating_sub(woken)
                .min(self.size - self.started)
        };
        self.started += start;
        self.live += start;
        std::mem::swap(ready, &mut self.finished);
        let step = if !ready.is_empty() {
            ConsumerStep::Ready
        } else if self.is_over() {
            ConsumerStep::Over
        } else if self.live == 0 && !self.stopped && !self.jobs.is_empty() {
            // Jobs wait and no worker will ever take them (invariant 6).
            ConsumerStep::RunHere
        } else if self.live == 0 && self.jobs.is_empty() {
            // Nothing queued, nothing running, input not over: nothing to wait for here
            // (a stream's next item, if any, is awaited by the async form).
            ConsumerStep::Ready
        } else {
            // Something is queued or running: its worker's exchange wakes us (invariant 4).
            remember(&mut self.consumer, token);
            ConsumerStep::Park
        };
        (step, start)
    }

    /// Invariant 7, given that `finished` is empty.
    fn is_over(&self) -> bool {
        self.live == 0 && (self.stopped || (self.input_ended && self.jobs.is_empty()))
    }

    /// A worker asked for by the last exchange could not be started: it is no longer counted
    /// (the consumer calls this, then exchanges again).
    pub(crate) fn start_failed(&mut self) {
        self.live -= 1;
    }

    /// Takes a batch of at most `batch_size` queued jobs for the consumer to run itself
    /// (invariant 6).
    pub(crate) fn take_for_consumer(&mut self, batch: &mut Vec<(u64, J)>, batch_size: usize) {
        let n = batch_size.clamp(1, MAX_BATCH).min(self.jobs.len());
        batch.extend(self.jobs.drain(..n));
    }

    /// Gives the results of a batch the consumer ran itself, and the jobs it did not start
    /// (after seeing the context done: `stop`).
    pub(crate) fn consumer_ran(
        &mut self,
        results: &mut Vec<(u64, Outcome<T>)>,
        not_started: &mut Vec<(u64, J)>,
        stop: bool,
    ) {
        self.finished.append(results);
        self.put_back(not_started);
        self.stopped |= stop;
    }

    /// A worker's exchange: hands in the results of its last batch (emptied) and the jobs of
    /// it that it did not start because it saw the context done (`stop`; emptied, put back
    /// in order: invariant 2), then fills `batch` with at most `batch_size` jobs. Returns what
    /// to do next and the consumer's token if it must be woken.
    pub(crate) fn worker_exchange(
        &mut self,
        results: &mut Vec<(u64, Outcome<T>)>,
        not_started: &mut Vec<(u64, J)>,
        stop: bool,
        batch: &mut Vec<(u64, J)>,
        batch_size: usize,
        token: &P,
    ) -> (WorkerStep, Option<P>) {
        debug_assert!(batch.is_empty());
        let delivered = !results.is_empty();
        self.finished.append(results);
        self.put_back(not_started);
        self.stopped |= stop;
        let step = if self.stopped {
            WorkerStep::Leave
        } else if !self.jobs.is_empty() {
            // Split what is queued among the live workers so one worker does not take all.
            let share = self.jobs.len().div_ceil(self.live.max(1));
            let n = batch_size.clamp(1, MAX_BATCH).min(share);
            batch.extend(self.jobs.drain(..n));
            WorkerStep::Work
        } else if self.input_ended {
            WorkerStep::Leave
        } else {
            if !self.idle.iter().any(|kept| kept.is_same(token)) {
                self.idle.push(token.clone());
            }
            WorkerStep::Park
        };
        if step == WorkerStep::Leave {
            self.idle.retain(|kept| !kept.is_same(token));
            self.live -= 1;
        }
        // Invariant 4: the consumer sees results, or a worker leaving (which may end the map).
        let wake = if delivered || step == WorkerStep::Leave {
            self.consumer.take()
        } else {
            None
        };
        (step, wake)
    }

    /// A worker task was dropped before it left (its runtime shut down, or the map's drop
    /// aborted it): the results it held are delivered, the job it was running is reported as
    /// aborted, the jobs of its batch it did not start are put back (invariant 2), and the map
    /// stops (a runtime that drops one worker drops them all). Returns the consumer's token.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code, reason = "async maps only"))]
    pub(crate) fn worker_abandoned(
        &mut self,
        results: &mut Vec<(u64, Outcome<T>)>,
        running: Option<u64>,
        not_started: &mut Vec<(u64, J)>,
    ) -> Option<P> {
        self.finished.append(results);
        if let Some(index) = running {
            self.finished.push((index, Err(JobFailed::aborted(index))));
        }
        self.put_back(not_started);
        self.stopped = true;
        self.live -= 1;
        self.consumer.take()
    }

    /// Stores the consumer's token while it waits for the workers to leave (an async map's
    /// `into_unrun`); true if none is live any more.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code, reason = "async maps only"))]
    pub(crate) fn all_left_or_wait(&mut self, token: &P) -> bool {
        if self.live == 0 {
            return true;
        }
        remember(&mut self.consumer, token);
        false
    }

    /// Puts jobs that were taken but not started back at the front of `jobs`, in order.
    fn put_back(&mut self, not_started: &mut Vec<(u64, J)>) {
        for job in not_started.drain(..).rev() {
            self.jobs.push_front(job);
        }
    }

    /// The consumer goes away (or wants the unrun jobs now): no job starts any more; every idle
    /// worker is woken to leave.
    pub(crate) fn stop(&mut self, wake: &mut Vec<P>) {
        self.stopped = true;
        wake.append(&mut self.idle);
    }

    /// The jobs that never ran, in input order (invariant 2), and whatever results are left.
    pub(crate) fn take_unrun(&mut self) -> Vec<(u64, J)> {
        let mut unrun: Vec<_> = self.jobs.drain(..).collect();
        unrun.sort_unstable_by_key(|(index, _)| *index);
        unrun
    }
}

impl<J, T, P> fmt::Debug for MapCore<J, T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapCore")
            .field("queued", &self.jobs.len())
            .field("finished", &self.finished.len())
            .field("size", &self.size)
            .field("started", &self.started)
            .field("live", &self.live)
            .field("idle", &self.idle.len())
            .field("consumer_parked", &self.consumer.is_some())
            .field("input_ended", &self.input_ended)
            .field("stopped", &self.stopped)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    //! The core alone: one made-up consumer (token 0) and workers (tokens 1, 2, ...).

    use super::*;
    use crate::sync::NamedToken as Token;

    type Core = MapCore<u32, u32, Token>;

    const CONSUMER: Token = Token(0);

    /// What the consumer's exchange gave: its step, workers to start, results, workers woken.
    type Consumed = (ConsumerStep, usize, Vec<(u64, Outcome<u32>)>, Vec<Token>);

    /// The consumer queues `jobs` (indexed from `first`); returns its step, the workers to
    /// start, the results it got and the workers it woke.
    fn consume(
        core: &mut Core,
        first: u64,
        jobs: &[u32],
        input_ended: bool,
        stop: bool,
    ) -> Consumed {
        let mut pulled: Vec<_> = (first..).zip(jobs.iter().copied()).collect();
        let mut ready = Vec::new();
        let mut wake = Vec::new();
        let (step, start) = core.consumer_exchange(
            &mut pulled,
            input_ended,
            stop,
            &mut ready,
            &CONSUMER,
            &mut wake,
        );
        assert!(pulled.is_empty());
        (step, start, ready, wake)
    }

    /// A worker hands in `results` and asks for up to `size` jobs.
    fn exchange(
        core: &mut Core,
        worker: u32,
        results: Vec<(u64, Outcome<u32>)>,
        size: usize,
    ) -> (WorkerStep, Vec<(u64, u32)>, Option<Token>) {
        let mut results = results;
        let mut not_started = Vec::new();
        let mut batch = Vec::new();
        let (step, wake) = core.worker_exchange(
            &mut results,
            &mut not_started,
            false,
            &mut batch,
            size,
            &Token(worker),
        );
        (step, batch, wake)
    }

    #[test]
    fn jobs_go_out_in_shares_and_results_wake_the_consumer() {
        let mut core = Core::new(2);
        let (step, start, ready, _) = consume(&mut core, 0, &[10, 11, 12, 13], false, false);
        assert_eq!(
            (step, start),
            (ConsumerStep::Park, 2),
            "two workers asked for"
        );
        assert!(ready.is_empty());
        // Each worker takes at most its share (4 jobs / 2 live), even when it asks for more.
        let (step, batch, wake) = exchange(&mut core, 1, vec![], 100);
        assert_eq!(step, WorkerStep::Work);
        assert_eq!(batch, [(0, 10), (1, 11)]);
        assert_eq!(wake, None, "nothing delivered yet");
        let (_, batch, _) = exchange(&mut core, 2, vec![], 1);
        assert_eq!(batch, [(2, 12)], "its own batch size bounds it too");
        // Delivering wakes the parked consumer (invariant 4), once.
        let (step, batch, wake) = exchange(&mut core, 1, vec![(0, Ok(100)), (1, Ok(121))], 8);
        assert_eq!(wake, Some(CONSUMER));
        assert_eq!((step, batch), (WorkerStep::Work, vec![(3, 13)]));
        let (step, _, wake) = exchange(&mut core, 2, vec![(2, Ok(144))], 8);
        assert_eq!(wake, None, "the consumer's token was taken already");
        assert_eq!(step, WorkerStep::Park, "no job, input not over: idle");
        let (step, start, ready, _) = consume(&mut core, 4, &[], false, false);
        assert_eq!((step, start), (ConsumerStep::Ready, 0));
        assert_eq!(ready, [(0, Ok(100)), (1, Ok(121)), (2, Ok(144))]);
    }

    #[test]
    fn an_idle_worker_is_woken_for_new_jobs_and_for_the_end() {
        let mut core = Core::new(1);
        let (_, start, _, _) = consume(&mut core, 0, &[1], false, false);
        assert_eq!(start, 1);
        let (_, batch, _) = exchange(&mut core, 1, vec![], 1);
        assert_eq!(batch.len(), 1);
        assert_eq!(
            exchange(&mut core, 1, vec![(0, Ok(1))], 1).0,
            WorkerStep::Park
        );
        // Woken spuriously: still idle, and its token is not stored twice.
        assert_eq!(exchange(&mut core, 1, vec![], 1).0, WorkerStep::Park);
        let (_, start, ready, wake) = consume(&mut core, 1, &[2], false, false);
        assert_eq!(
            (start, wake),
            (0, vec![Token(1)]),
            "the idle worker, not a new one"
        );
        assert_eq!(ready, [(0, Ok(1))]);
        assert_eq!(exchange(&mut core, 1, vec![], 1).1, [(1, 2)]);
        assert_eq!(
            exchange(&mut core, 1, vec![(1, Ok(2))], 1).0,
            WorkerStep::Park
        );
        // The input ends: the idle worker is woken and leaves; then the map is over.
        let (step, _, ready, wake) = consume(&mut core, 2, &[], true, false);
        assert_eq!((step, wake), (ConsumerStep::Ready, vec![Token(1)]));
        assert_eq!(ready, [(1, Ok(2))]);
        let (step, _, wake) = exchange(&mut core, 1, vec![], 1);
        assert_eq!(step, WorkerStep::Leave);
        assert_eq!(wake, None, "the consumer was not parked");
        assert_eq!(
            consume(&mut core, 2, &[], true, false).0,
            ConsumerStep::Over
        );
    }

    #[test]
    fn a_stop_puts_unstarted_jobs_back_in_order_and_ends_after_the_running_ones() {
        let mut core = Core::new(2);
        consume(&mut core, 0, &[0, 1, 2, 3, 4, 5], false, false);
        let (_, batch, _) = exchange(&mut core, 1, vec![], 3);
        assert_eq!(batch, [(0, 0), (1, 1), (2, 2)]);
        // Worker 1 ran job 0, then saw the context done: jobs 1 and 2 go back, in order.
        let mut results = vec![(0, Ok(0))];
        let mut not_started = vec![(1, 1), (2, 2)];
        let mut next = Vec::new();
        let (step, _) = core.worker_exchange(
            &mut results,
            &mut not_started,
            true,
            &mut next,
            3,
            &Token(1),
        );
        assert_eq!(step, WorkerStep::Leave);
        assert!(next.is_empty(), "no job starts once stopped");
        let (step, _, ready, _) = consume(&mut core, 6, &[], false, false);
        assert_eq!(step, ConsumerStep::Ready);
        assert_eq!(ready, [(0, Ok(0))]);
        // Worker 2 was never started by the test's exchange... it is live: the map waits.
        assert_eq!(
            consume(&mut core, 6, &[], false, false).0,
            ConsumerStep::Park
        );
        assert_eq!(exchange(&mut core, 2, vec![], 3).0, WorkerStep::Leave);
        assert_eq!(
            consume(&mut core, 6, &[], false, false).0,
            ConsumerStep::Over
        );
        let unrun: Vec<u64> = core.take_unrun().into_iter().map(|(i, _)| i).collect();
        assert_eq!(unrun, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn with_no_worker_started_the_consumer_runs_the_jobs() {
        let mut core = Core::new(1);
        let (step, start, _, _) = consume(&mut core, 0, &[7, 8], true, false);
        assert_eq!((step, start), (ConsumerStep::Park, 1));
        core.start_failed();
        assert_eq!(
            consume(&mut core, 2, &[], true, false).0,
            ConsumerStep::RunHere
        );
        let mut batch = Vec::new();
        core.take_for_consumer(&mut batch, 1);
        assert_eq!(batch, [(0, 7)]);
        core.consumer_ran(&mut vec![(0, Ok(49))], &mut Vec::new(), false);
        let (step, _, ready, _) = consume(&mut core, 2, &[], true, false);
        assert_eq!((step, ready), (ConsumerStep::Ready, vec![(0, Ok(49))]));
        assert_eq!(
            consume(&mut core, 2, &[], true, false).0,
            ConsumerStep::RunHere
        );
    }

    #[test]
    fn an_abandoned_worker_reports_its_job_aborted_and_stops_the_map() {
        let mut core = Core::new(1);
        consume(&mut core, 0, &[1, 2, 3], false, false);
        let (_, batch, _) = exchange(&mut core, 1, vec![], 3);
        assert_eq!(batch.len(), 3);
        // It finished job 0, was running job 1, had not started job 2.
        let wake = core.worker_abandoned(&mut vec![(0, Ok(1))], Some(1), &mut vec![(2, 3)]);
        assert_eq!(
            wake,
            Some(CONSUMER),
            "the consumer parked when the jobs were queued"
        );
        let (step, _, ready, _) = consume(&mut core, 3, &[], false, false);
        assert_eq!(step, ConsumerStep::Ready);
        assert_eq!(ready[0], (0, Ok(1)));
        let (index, failed) = (&ready[1].0, ready[1].1.as_ref().unwrap_err());
        assert_eq!(*index, 1);
        assert!(failed.is_aborted());
        assert_eq!(
            consume(&mut core, 3, &[], false, false).0,
            ConsumerStep::Over
        );
        assert_eq!(core.take_unrun(), [(2, 3)]);
    }
}
