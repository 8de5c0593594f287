//! The long-lived pools, `Pool::start` → `Workers` (threads) and `Pool::start_async` →
//! `AsyncWorkers` (tokio tasks, on a current-thread and on a multi-thread runtime), checked for
//! behaviour:
//!
//! * `submit` waits while the queue is full and gives up, handing the job back, when its own
//!   context is done; `try_submit` hands the job back when the queue is full; once the pool's
//!   context is done submissions are refused as `Closed`, with the job;
//! * `shutdown(background)` runs every accepted job; `shutdown(grace)` returns the jobs that
//!   never started, in submission order; every accepted job either ran exactly once or came
//!   back unrun;
//! * a panicking job is reported in `failed`, and its worker goes on;
//! * `Workers` and `AsyncWorkers` take submissions from several threads (tasks) at once;
//! * `Pool::new(0)` is `max_procs()` workers, `queue(0)` a rendezvous;
//! * dropping a pool cancels its context (threads: and waits for the running jobs); a runtime
//!   that shuts down under an async pool reports its running jobs aborted, without a hang.
//!
//! `shutdown` takes the pool by value, so "a submission after the shutdown" cannot be written;
//! the refusals are checked after the pool's context is done instead.
//!
//! Two bugs these tests found are fixed: `huge_sizes_take_jobs` and `async_huge_sizes_take_jobs`
//! (`WorkersCore`'s capacity sum overflowed for `queue(usize::MAX)` or `Pool::new(usize::MAX)`),
//! and `dropping_the_last_handle_inside_one_of_its_jobs_does_not_deadlock` (the drop waited for
//! its own worker).

// The async pools' tests sit beside the thread ones': the file needs the `tokio` feature.
#![cfg(feature = "tokio")]

mod common;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::pool::{current_thread, eventually, hang_guard, multi_thread, on_both_runtimes, Runs};
use common::{wait_until, watchdog, PATIENCE};
use ctxkit::pool::{AsyncWorkers, JobFailed, Pool, SubmitError, SubmitErrorKind, Workers};
use ctxkit::{procs, Context, Error};

// ===== helpers =====

/// A latch jobs wait on (bounded), opened by the test.
#[derive(Clone, Default)]
struct Gate(Arc<AtomicBool>);

impl Gate {
    fn open(&self) {
        self.0.store(true, SeqCst);
    }

    fn is_open(&self) -> bool {
        self.0.load(SeqCst)
    }

    /// Blocks until the gate is open (threads).
    fn wait(&self) {
        wait_until("the gate opens", || self.is_open(), |&open| open);
    }

    /// Awaits the gate (tasks).
    async fn opened(&self) {
        eventually("the gate opens", || self.is_open(), |&open| open).await;
    }
}

/// Checks a shutdown's accounting: the accepted jobs (`accepted`) each either ran exactly
/// once or came back unrun, never both; the unrun ones are in submission order (the order of
/// `accepted`); the refused ones never ran.
#[track_caller]
fn check_report(case: &str, accepted: &[usize], refused: &[usize], unrun: &[usize], runs: &Runs) {
    let ran = runs.ran();
    let unrun_set: BTreeSet<usize> = unrun.iter().copied().collect();
    assert_eq!(unrun_set.len(), unrun.len(), "{case}: an unrun job twice");
    let position = |job: &usize| accepted.iter().position(|a| a == job);
    let positions: Vec<_> = unrun.iter().map(position).collect();
    assert!(
        positions.iter().all(Option::is_some),
        "{case}: a job came back unrun that was never accepted: {unrun:?}"
    );
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{case}: unrun jobs not in submission order: {unrun:?}"
    );
    let both: Vec<_> = ran.intersection(&unrun_set).collect();
    assert!(both.is_empty(), "{case}: ran and came back: {both:?}");
    let accepted_set: BTreeSet<usize> = accepted.iter().copied().collect();
    let all: BTreeSet<usize> = ran.union(&unrun_set).copied().collect();
    assert_eq!(
        all, accepted_set,
        "{case}: accepted jobs lost (or unaccepted ones ran)"
    );
    for job in refused {
        assert!(!ran.contains(job), "{case}: refused job {job} ran");
    }
}

fn send_sync<T: Send + Sync>() {}

// ===== threads: submit and try_submit =====

/// One worker, a queue of one: with a job running and one queued, `submit` does not return
/// until the running job has ended (a thread opens its gate after a while), and `try_submit`
/// meanwhile says `Full`.
#[test]
fn submit_waits_while_the_queue_is_full() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(submit_waits_while_the_queue_is_full),
        submit_waits_while_the_queue_is_full_body,
    );
}

fn submit_waits_while_the_queue_is_full_body() {
    let bg = Context::background();
    let runs = Runs::new(10);
    let seen = runs.clone();
    let gate = Gate::default();
    let held = gate.clone();
    let workers = Pool::new(1).queue(1).start(&bg, move |_ctx, n: usize| {
        let _run = seen.start(n);
        if n == 0 {
            held.wait();
        }
    });
    workers.submit(&bg, 0).unwrap();
    workers.submit(&bg, 1).unwrap();
    wait_until("job 0 runs", || runs.total(), |&n| n == 1);
    assert_eq!(workers.queued(), 1);
    let refused = workers.try_submit(2).unwrap_err();
    assert_eq!(refused.kind(), SubmitErrorKind::Full);
    assert_eq!(refused.into_job(), 2);

    let opener = {
        let gate = gate.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(30));
            gate.open();
        })
    };
    workers.submit(&bg, 3).unwrap();
    assert!(
        runs.ended() >= 1,
        "submit returned while job 0 still ran and job 1 was queued"
    );
    opener.join().unwrap();
    let report = workers.shutdown(&bg);
    assert!(report.unrun.is_empty() && report.failed.is_empty());
    check_report("submit waits", &[0, 1, 3], &[2], &[], &runs);
}

/// `submit` on a full pool gives up when its own context is done (a deadline, a cancel from
/// another thread, a context done already), handing the job back; the job never runs.
#[test]
fn submit_gives_up_when_its_context_is_done_and_hands_the_job_back() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(submit_gives_up_when_its_context_is_done_and_hands_the_job_back),
        submit_gives_up_when_its_context_is_done_and_hands_the_job_back_body,
    );
}

fn submit_gives_up_when_its_context_is_done_and_hands_the_job_back_body() {
    let bg = Context::background();
    let runs = Runs::new(10);
    let seen = runs.clone();
    let workers = Pool::new(1).queue(0).start(&bg, move |ctx, n: usize| {
        let _run = seen.start(n);
        if n == 0 {
            assert_eq!(ctx.wait_timeout(PATIENCE), Some(Error::Canceled));
        }
    });
    workers.submit(&bg, 0).unwrap();
    wait_until("job 0 runs", || runs.total(), |&n| n == 1);

    let impatient = bg.with_timeout(Duration::from_millis(20));
    let refused = workers.submit(&impatient, 1).unwrap_err();
    assert_eq!(
        refused.kind(),
        SubmitErrorKind::Context(Error::DeadlineExceeded)
    );
    assert_eq!(refused.to_string(), Error::DeadlineExceeded.to_string());
    assert_eq!(*refused.job(), 1);
    assert_eq!(refused.into_job(), 1);

    let (canceled, cancel) = bg.with_cancel().into_parts();
    let canceler = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        cancel.cancel();
    });
    let refused = workers.submit(&canceled, 2).unwrap_err();
    assert_eq!(refused.kind(), SubmitErrorKind::Context(Error::Canceled));
    assert_eq!(refused.into_job(), 2);
    canceler.join().unwrap();

    let refused = workers.submit(&canceled, 3).unwrap_err();
    assert_eq!(refused.kind(), SubmitErrorKind::Context(Error::Canceled));
    assert_eq!(refused.into_job(), 3);

    // The grace period is over at once: the pool is canceled, job 0 returns.
    let report = workers.shutdown(&canceled);
    assert!(report.unrun.is_empty() && report.failed.is_empty());
    check_report("submit gives up", &[0], &[1, 2, 3], &[], &runs);
}

/// `try_submit` on a full queue hands the job back (`Full`), untouched, and it never runs;
/// `queued` counts the waiting jobs.
#[test]
fn try_submit_hands_the_job_back_when_the_queue_is_full() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(try_submit_hands_the_job_back_when_the_queue_is_full),
        try_submit_hands_the_job_back_when_the_queue_is_full_body,
    );
}

fn try_submit_hands_the_job_back_when_the_queue_is_full_body() {
    let bg = Context::background();
    let runs = Runs::new(10);
    let seen = runs.clone();
    let gate = Gate::default();
    let held = gate.clone();
    let workers = Pool::new(1).queue(2).start(&bg, move |_ctx, n: usize| {
        let _run = seen.start(n);
        if n == 0 {
            held.wait();
        }
    });
    assert_eq!(workers.queued(), 0);
    workers.try_submit(0).unwrap();
    wait_until("job 0 runs", || runs.total(), |&n| n == 1);
    workers.try_submit(1).unwrap();
    workers.try_submit(2).unwrap();
    assert_eq!(workers.queued(), 2);
    for job in 3..6 {
        let refused = workers.try_submit(job).unwrap_err();
        assert_eq!(refused.kind(), SubmitErrorKind::Full);
        assert_eq!(refused.to_string(), "ctxkit::pool: the queue is full");
        assert_eq!(refused.into_job(), job);
    }
    assert_eq!(workers.queued(), 2);
    gate.open();
    let report = workers.shutdown(&bg);
    assert!(
        report.unrun.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
    check_report("try_submit", &[0, 1, 2], &[3, 4, 5], &[], &runs);
}

/// Once the parent is canceled: the pool's context is done, `try_submit` and `submit` refuse
/// with `Closed` (the job back), the queued jobs never start, and the shutdown returns them in
/// submission order.
#[test]
fn after_a_cancel_submissions_are_closed_and_queued_jobs_never_start() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(after_a_cancel_submissions_are_closed_and_queued_jobs_never_start),
        after_a_cancel_submissions_are_closed_and_queued_jobs_never_start_body,
    );
}

fn after_a_cancel_submissions_are_closed_and_queued_jobs_never_start_body() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let runs = Runs::new(10);
    let seen = runs.clone();
    let workers = Pool::new(1).queue(4).start(&ctx, move |ctx, n: usize| {
        let _run = seen.start(n);
        if n == 0 {
            assert_eq!(ctx.wait_timeout(PATIENCE), Some(Error::Canceled));
        }
    });
    workers.submit(&ctx, 0).unwrap();
    wait_until("job 0 runs", || runs.total(), |&n| n == 1);
    for job in 1..=4 {
        workers.submit(&ctx, job).unwrap();
    }
    assert!(!workers.context().is_done());
    cancel.cancel();
    assert_eq!(workers.context().err(), Some(Error::Canceled));
    let refused = workers.try_submit(5).unwrap_err();
    assert_eq!(refused.kind(), SubmitErrorKind::Closed);
    assert_eq!(
        refused.to_string(),
        "ctxkit::pool: the pool is shut down or its context is done"
    );
    assert_eq!(refused.into_job(), 5);
    // `submit` too, even with a context that is not done.
    let refused = workers.submit(&Context::background(), 6).unwrap_err();
    assert_eq!(refused.kind(), SubmitErrorKind::Closed);
    assert_eq!(refused.into_job(), 6);

    let report = workers.shutdown(&Context::background());
    assert_eq!(report.unrun, [1, 2, 3, 4]);
    assert!(report.failed.is_empty());
    check_report(
        "after a cancel",
        &[0, 1, 2, 3, 4],
        &[5, 6],
        &report.unrun,
        &runs,
    );
}

/// A `submit` waiting on a full queue (with a context that is never done) when the pool's
/// context is canceled: it returns `Closed` with its job, at the cancel, not never.
#[test]
fn a_waiting_submit_is_refused_as_closed_at_the_cancel() {
    let _leaks = common::no_leaks();
    hang_guard(
        "a_waiting_submit_is_refused_as_closed_at_the_cancel",
        a_waiting_submit_is_refused_as_closed_at_the_cancel_body,
    );
}

fn a_waiting_submit_is_refused_as_closed_at_the_cancel_body() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let runs = Runs::new(10);
    let seen = runs.clone();
    let workers = Pool::new(1).queue(1).start(&ctx, move |ctx, n: usize| {
        let _run = seen.start(n);
        if n == 0 {
            assert_eq!(ctx.wait_timeout(PATIENCE), Some(Error::Canceled));
        }
    });
    workers.submit(&ctx, 0).unwrap();
    workers.submit(&ctx, 1).unwrap();
    wait_until("job 0 runs", || runs.total(), |&n| n == 1);
    let canceler = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        cancel.cancel();
    });
    let refused = workers.submit(&Context::background(), 2).unwrap_err();
    assert_eq!(refused.kind(), SubmitErrorKind::Closed);
    assert_eq!(refused.into_job(), 2);
    canceler.join().unwrap();
    let report = workers.shutdown(&Context::background());
    assert_eq!(report.unrun, [1]);
    check_report("waiting submit", &[0, 1], &[2], &report.unrun, &runs);
}

/// A pool started on a done context refuses everything and runs nothing.
#[test]
fn a_pool_started_on_a_done_context_refuses_every_job() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(a_pool_started_on_a_done_context_refuses_every_job),
        a_pool_started_on_a_done_context_refuses_every_job_body,
    );
}

fn a_pool_started_on_a_done_context_refuses_every_job_body() {
    let ctx = Context::background().with_cancel();
    ctx.cancel();
    let ran = Arc::new(AtomicUsize::new(0));
    let count = ran.clone();
    let workers = Pool::new(2).start(&ctx, move |_ctx, _n: usize| {
        count.fetch_add(1, SeqCst);
    });
    assert!(workers.context().is_done());
    assert_eq!(
        workers.try_submit(1).unwrap_err().kind(),
        SubmitErrorKind::Closed
    );
    assert_eq!(
        workers
            .submit(&Context::background(), 2)
            .unwrap_err()
            .kind(),
        SubmitErrorKind::Closed
    );
    let report = workers.shutdown(&Context::background());
    assert!(report.unrun.is_empty() && report.failed.is_empty());
    assert_eq!(ran.load(SeqCst), 0);
}

// ===== threads: shutdown =====

/// `shutdown(background)` runs every accepted job, exactly once, before it returns.
#[test]
fn shutdown_with_background_runs_every_accepted_job() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(shutdown_with_background_runs_every_accepted_job),
        shutdown_with_background_runs_every_accepted_job_body,
    );
}

fn shutdown_with_background_runs_every_accepted_job_body() {
    const N: usize = 500;
    let bg = Context::background();
    let runs = Runs::new(N);
    let seen = runs.clone();
    let workers = Pool::new(3).queue(4).start(&bg, move |_ctx, n: usize| {
        let _run = seen.start(n);
        if n % 50 == 0 {
            thread::sleep(Duration::from_millis(2));
        }
    });
    for n in 0..N {
        workers.submit(&bg, n).unwrap();
    }
    let report = workers.shutdown(&bg);
    assert!(
        report.unrun.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
    assert_eq!(runs.ended(), N, "shutdown returned before every job ended");
    check_report(
        "shutdown(background)",
        &(0..N).collect::<Vec<_>>(),
        &[],
        &[],
        &runs,
    );
}

/// Two workers busy with jobs that end only with the pool's cancel, twenty jobs queued, a
/// grace period of 20 ms: the shutdown cancels the pool and returns the twenty, in submission
/// order; the pool's context is done.
#[test]
fn shutdown_with_a_grace_period_returns_the_unrun_jobs_in_submission_order() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(shutdown_with_a_grace_period_returns_the_unrun_jobs_in_submission_order),
        shutdown_with_a_grace_period_returns_the_unrun_jobs_in_submission_order_body,
    );
}

fn shutdown_with_a_grace_period_returns_the_unrun_jobs_in_submission_order_body() {
    let bg = Context::background();
    let runs = Runs::new(30);
    let seen = runs.clone();
    let workers = Pool::new(2).queue(20).start(&bg, move |ctx, n: usize| {
        let _run = seen.start(n);
        if n < 2 {
            assert_eq!(ctx.wait_timeout(PATIENCE), Some(Error::Canceled));
        }
    });
    workers.submit(&bg, 0).unwrap();
    workers.submit(&bg, 1).unwrap();
    wait_until("both workers busy", || runs.total(), |&n| n == 2);
    // Submitted in a scrambled order: the report keeps the submission order.
    let queued: Vec<usize> = (2..22).map(|n| 2 + (n * 7) % 20).collect();
    for &job in &queued {
        workers.try_submit(job).unwrap();
    }
    let pool_ctx = workers.context().clone();
    let report = workers.shutdown(&bg.with_timeout(Duration::from_millis(20)));
    assert_eq!(report.unrun, queued);
    assert!(report.failed.is_empty());
    assert_eq!(pool_ctx.err(), Some(Error::Canceled));
    let mut accepted = vec![0, 1];
    accepted.extend(&queued);
    check_report("shutdown(grace)", &accepted, &[], &report.unrun, &runs);
}

/// Quick jobs, a grace period that ends while many are still queued: whatever the timing,
/// every accepted job ran exactly once or came back unrun, never both, unrun in order.
#[test]
fn shutdown_with_a_grace_period_accounts_for_every_accepted_job() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(shutdown_with_a_grace_period_accounts_for_every_accepted_job),
        shutdown_with_a_grace_period_accounts_for_every_accepted_job_body,
    );
}

fn shutdown_with_a_grace_period_accounts_for_every_accepted_job_body() {
    const N: usize = 400;
    for workers_n in [1, 2, 3] {
        let bg = Context::background();
        let runs = Runs::new(N);
        let seen = runs.clone();
        let workers = Pool::new(workers_n)
            .queue(N)
            .start(&bg, move |_ctx, n: usize| {
                let _run = seen.start(n);
                thread::sleep(Duration::from_micros(200));
            });
        for n in 0..N {
            workers.submit(&bg, n).unwrap();
        }
        let report = workers.shutdown(&bg.with_timeout(Duration::from_millis(5)));
        let case = format!("{workers_n} workers");
        check_report(
            &case,
            &(0..N).collect::<Vec<_>>(),
            &[],
            &report.unrun,
            &runs,
        );
        if workers_n == 1 {
            // One worker takes the jobs in order: the unrun ones are a suffix.
            let ran = runs.ran().len();
            assert_eq!(report.unrun, (ran..N).collect::<Vec<_>>(), "{case}");
        }
    }
}

// ===== threads: panics =====

/// One worker; jobs 2 and 4 panic: both are in `failed` (index, message, in the order they
/// were reported), and every job ran, all on the one worker thread.
#[test]
fn panics_are_reported_in_failed_and_the_worker_goes_on() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(panics_are_reported_in_failed_and_the_worker_goes_on),
        panics_are_reported_in_failed_and_the_worker_goes_on_body,
    );
}

fn panics_are_reported_in_failed_and_the_worker_goes_on_body() {
    let bg = Context::background();
    let runs = Runs::new(10);
    let seen = runs.clone();
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let names = threads.clone();
    let completed = Arc::new(Mutex::new(Vec::new()));
    let log = completed.clone();
    let workers = Pool::new(1).start(&bg, move |_ctx, n: usize| {
        let _run = seen.start(n);
        names.lock().unwrap().insert(thread::current().id());
        assert_eq!(thread::current().name(), Some("ctxkit-pool"));
        match n {
            2 => panic!("job {n} panicked"),
            4 => std::panic::panic_any(n),
            _ => log.lock().unwrap().push(n),
        }
    });
    for n in 0..6 {
        workers.submit(&bg, n).unwrap();
    }
    let report = workers.shutdown(&bg);
    assert!(report.unrun.is_empty());
    let failed: &[JobFailed] = &report.failed;
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(
        (failed[0].index(), failed[0].message()),
        (2, "job 2 panicked")
    );
    assert_eq!(
        (failed[1].index(), failed[1].message()),
        (4, "Box<dyn Any>")
    );
    assert!(failed.iter().all(|f| f.is_panic() && !f.is_aborted()));
    assert_eq!(
        failed[0].to_string(),
        "ctxkit::pool: job 2 panicked: job 2 panicked"
    );
    assert_eq!(*completed.lock().unwrap(), [0, 1, 3, 5]);
    assert_eq!(runs.ran(), (0..6).collect());
    assert_eq!(threads.lock().unwrap().len(), 1);
}

/// The index of a failure counts accepted submissions: refused ones take no number.
#[test]
fn a_failures_index_counts_accepted_jobs_only() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(a_failures_index_counts_accepted_jobs_only),
        a_failures_index_counts_accepted_jobs_only_body,
    );
}

fn a_failures_index_counts_accepted_jobs_only_body() {
    let bg = Context::background();
    let runs = Runs::new(10);
    let seen = runs.clone();
    let gate = Gate::default();
    let held = gate.clone();
    let workers = Pool::new(1).queue(0).start(&bg, move |_ctx, n: usize| {
        let _run = seen.start(n);
        if n == 0 {
            held.wait();
        }
        assert!(n != 9, "nine");
    });
    workers.submit(&bg, 0).unwrap(); // index 0
    wait_until("job 0 runs", || runs.total(), |&n| n == 1);
    for _ in 0..3 {
        let refused = workers.try_submit(7).unwrap_err();
        assert_eq!(refused.kind(), SubmitErrorKind::Full);
    }
    gate.open();
    workers.submit(&bg, 9).unwrap(); // index 1
    let report = workers.shutdown(&bg);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].message(), "nine");
    assert_eq!(report.failed[0].index(), 1, "{:?}", report.failed);
}

// ===== threads: sharing, sizes =====

/// `Workers` is `Send + Sync`: four threads submit 250 jobs each through one `&Workers` (a
/// small queue, so they wait on each other); each of the 1,000 jobs runs exactly once.
#[test]
fn workers_take_submissions_from_several_threads() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(workers_take_submissions_from_several_threads),
        workers_take_submissions_from_several_threads_body,
    );
}

fn workers_take_submissions_from_several_threads_body() {
    send_sync::<Workers<usize>>();
    send_sync::<SubmitError<usize>>();
    const PER: usize = 250;
    const THREADS: usize = 4;
    let bg = Context::background();
    let runs = Runs::new(PER * THREADS);
    let seen = runs.clone();
    let workers = Pool::new(2).queue(2).start(&bg, move |_ctx, n: usize| {
        let _run = seen.start(n);
    });
    thread::scope(|s| {
        for t in 0..THREADS {
            let workers = &workers;
            let bg = &bg;
            s.spawn(move || {
                for i in 0..PER {
                    workers.submit(bg, t * PER + i).unwrap();
                }
            });
        }
    });
    let report = workers.shutdown(&bg);
    assert!(report.unrun.is_empty() && report.failed.is_empty());
    assert_eq!(runs.ran().len(), PER * THREADS);
}

/// A queue of 0 is a rendezvous: with both workers of two busy, `try_submit` is refused every
/// time; once one is free again, it is accepted.
#[test]
fn a_queue_of_0_accepts_a_job_only_while_a_worker_is_free() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(a_queue_of_0_accepts_a_job_only_while_a_worker_is_free),
        a_queue_of_0_accepts_a_job_only_while_a_worker_is_free_body,
    );
}

fn a_queue_of_0_accepts_a_job_only_while_a_worker_is_free_body() {
    let bg = Context::background();
    let runs = Runs::new(10);
    let seen = runs.clone();
    let gates: Arc<Vec<Gate>> = Arc::new((0..10).map(|_| Gate::default()).collect());
    let held = gates.clone();
    let workers = Pool::new(2).queue(0).start(&bg, move |_ctx, n: usize| {
        let _run = seen.start(n);
        held[n].wait();
    });
    workers.try_submit(0).unwrap();
    workers.try_submit(1).unwrap();
    for _ in 0..20 {
        let refused = workers.try_submit(2).unwrap_err();
        assert_eq!(refused.kind(), SubmitErrorKind::Full);
    }
    wait_until("both jobs run", || runs.total(), |&n| n == 2);
    assert_eq!(workers.queued(), 0);
    assert_eq!(
        workers.try_submit(2).unwrap_err().kind(),
        SubmitErrorKind::Full
    );
    gates[0].open();
    wait_until(
        "a worker is free again",
        || workers.try_submit(2).is_ok(),
        |&accepted| accepted,
    );
    assert_eq!(
        workers.try_submit(3).unwrap_err().kind(),
        SubmitErrorKind::Full
    );
    for gate in gates.iter() {
        gate.open();
    }
    let report = workers.shutdown(&bg);
    assert!(
        report.unrun.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
    check_report("rendezvous", &[0, 1, 2], &[3], &[], &runs);
}

/// `Pool::new(0)` with no queue: exactly `max_procs()` jobs are accepted while they all run
/// (at once); the next is refused.
#[test]
fn pool_new_0_starts_max_procs_workers() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(pool_new_0_starts_max_procs_workers),
        pool_new_0_starts_max_procs_workers_body,
    );
}

fn pool_new_0_starts_max_procs_workers_body() {
    let procs = procs::max_procs();
    let bg = Context::background();
    let runs = Runs::new(procs + 1);
    let seen = runs.clone();
    let gate = Gate::default();
    let held = gate.clone();
    let workers = Pool::new(0).queue(0).start(&bg, move |_ctx, n: usize| {
        let _run = seen.start(n);
        held.wait();
    });
    for n in 0..procs {
        workers.try_submit(n).unwrap();
    }
    assert_eq!(
        workers.try_submit(procs).unwrap_err().kind(),
        SubmitErrorKind::Full
    );
    wait_until(
        "max_procs jobs at once",
        || runs.max_running.load(SeqCst),
        |&k| k == procs,
    );
    gate.open();
    let report = workers.shutdown(&bg);
    assert!(
        report.unrun.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
    assert_eq!(runs.ran(), (0..procs).collect());
}

// ===== threads: drop =====

/// A job value that records being dropped.
struct Tracked {
    n: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

/// Dropping `Workers` cancels the pool's context, waits for the running job (which takes a
/// while after the cancel), and drops the queued jobs without running them.
#[test]
fn dropping_workers_cancels_waits_for_the_running_job_and_drops_the_queued_ones() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(dropping_workers_cancels_waits_for_the_running_job_and_drops_the_queued_ones),
        dropping_workers_cancels_waits_for_the_running_job_and_drops_the_queued_ones_body,
    );
}

fn dropping_workers_cancels_waits_for_the_running_job_and_drops_the_queued_ones_body() {
    let bg = Context::background();
    let runs = Runs::new(10);
    let seen = runs.clone();
    let drops = Arc::new(AtomicUsize::new(0));
    let workers = Pool::new(1).queue(4).start(&bg, move |ctx, job: Tracked| {
        let _run = seen.start(job.n);
        if job.n == 0 {
            assert_eq!(ctx.wait_timeout(PATIENCE), Some(Error::Canceled));
            thread::sleep(Duration::from_millis(20));
        }
    });
    let job = |n| Tracked {
        n,
        drops: drops.clone(),
    };
    workers.submit(&bg, job(0)).unwrap();
    wait_until("job 0 runs", || runs.total(), |&n| n == 1);
    for n in 1..=4 {
        workers.submit(&bg, job(n)).unwrap();
    }
    let pool_ctx = workers.context().clone();
    watchdog("the drop", move || drop(workers));
    assert_eq!(runs.ended(), 1, "the drop did not wait for job 0");
    assert_eq!(runs.total(), 1, "a queued job ran");
    assert_eq!(drops.load(SeqCst), 5, "jobs leaked");
    assert_eq!(pool_ctx.err(), Some(Error::Canceled));
}

// ===== trait hygiene =====

/// The pools' values cross threads, their errors box into `dyn Error + Send + Sync`, and
/// `Debug` on a running pool does not deadlock.
#[test]
fn errors_box_and_debug_works_on_a_running_pool() {
    let _leaks = common::no_leaks();
    hang_guard(
        "errors_box_and_debug_works_on_a_running_pool",
        errors_box_and_debug_works_on_a_running_pool_body,
    );
}

fn errors_box_and_debug_works_on_a_running_pool_body() {
    send_sync::<JobFailed>();
    send_sync::<ctxkit::pool::ShutdownReport<usize>>();
    let workers = Pool::new(1)
        .queue(0)
        .start(&Context::background(), |ctx, _n: usize| {
            let _ = ctx.wait_timeout(PATIENCE);
        });
    workers.try_submit(0).unwrap();
    let refused = workers.try_submit(1).unwrap_err();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(refused);
    assert_eq!(boxed.to_string(), "ctxkit::pool: the queue is full");
    drop(workers); // cancels job 0

    let bg = Context::background();
    let gate = Gate::default();
    let held = gate.clone();
    let workers = Pool::new(1)
        .queue(1)
        .start(&bg, move |_ctx, _n: usize| held.wait());
    workers.try_submit(0).unwrap();
    workers.try_submit(1).unwrap();
    let text = format!("{workers:?}");
    assert!(text.starts_with("Workers"), "{text}");
    gate.open();
    let report = workers.shutdown(&bg);
    assert!(
        report.unrun.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
}

// ===== bad sizes =====

/// `queue(usize::MAX)` (an "unbounded" queue) and `Pool::new(usize::MAX)` (as many workers
/// as jobs) are accepted by `Pool`; a pool made from them must take jobs like any other.
#[test]
fn huge_sizes_take_jobs() {
    let _leaks = common::no_leaks();
    hang_guard("huge_sizes_take_jobs", huge_sizes_take_jobs_body);
}

fn huge_sizes_take_jobs_body() {
    let bg = Context::background();
    for (case, pool) in [
        ("queue(usize::MAX)", Pool::new(2).queue(usize::MAX)),
        ("Pool::new(usize::MAX)", Pool::new(usize::MAX).queue(1)),
    ] {
        let runs = Runs::new(20);
        let seen = runs.clone();
        let workers = pool.start(&bg, move |_ctx, n: usize| {
            let _run = seen.start(n);
        });
        for n in 0..20 {
            if let Err(e) = workers.try_submit(n) {
                panic!("{case}: job {n} refused: {:?}", e.kind());
            }
        }
        let report = workers.shutdown(&bg);
        assert!(
            report.unrun.is_empty() && report.failed.is_empty(),
            "{case}"
        );
        assert_eq!(runs.ran().len(), 20, "{case}");
    }
}

#[test]
fn async_huge_sizes_take_jobs() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        let bg = Context::background();
        for (case, pool) in [
            ("queue(usize::MAX)", Pool::new(2).queue(usize::MAX)),
            ("Pool::new(usize::MAX)", Pool::new(usize::MAX).queue(1)),
        ] {
            let workers = pool.start_async(&bg, |_ctx, _n: usize| async {});
            for n in 0..20 {
                if let Err(e) = workers.try_submit(n) {
                    panic!("{case}: job {n} refused: {:?}", e.kind());
                }
            }
            let report = workers.shutdown(&bg).await;
            assert!(
                report.unrun.is_empty() && report.failed.is_empty(),
                "{case}"
            );
        }
    });
}

// ===== threads: a pool dropped by one of its own jobs =====

/// A job that drops the last handle to its own pool (jobs carry an `Arc<Workers>`, as a
/// self-resubmitting crawler's would): the drop must not wait for the very worker it runs on.
#[test]
fn dropping_the_last_handle_inside_one_of_its_jobs_does_not_deadlock() {
    let _leaks = common::no_leaks();
    type Job = Box<dyn FnOnce() + Send>;
    let (dropped, has_dropped) = std::sync::mpsc::channel();
    let workers: Arc<Workers<Job>> =
        Arc::new(Pool::new(2).start(&Context::background(), |_ctx, job: Job| job()));
    let slot = Arc::new(Mutex::new(Some(workers.clone())));
    let in_job = slot.clone();
    let started = Gate::default();
    let go = started.clone();
    workers
        .try_submit(Box::new(move || {
            go.wait();
            let last = in_job.lock().unwrap().take();
            drop(last); // the last handle, on one of the pool's workers
            let _ = dropped.send(());
        }))
        .unwrap_or_else(|_| panic!("the job is accepted"));
    drop(workers);
    drop(slot);
    started.open();
    has_dropped
        .recv_timeout(PATIENCE)
        .expect("the drop inside the job returned");
}

// ===== async =====

#[test]
fn async_submit_waits_while_the_queue_is_full_and_gives_up_with_its_context() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        let bg = Context::background();
        let runs = Runs::new(10);
        let seen = runs.clone();
        let gate = Gate::default();
        let held = gate.clone();
        let workers = Pool::new(1)
            .queue(1)
            .start_async(&bg, move |_ctx, n: usize| {
                let run = seen.start(n);
                let held = held.clone();
                async move {
                    if n == 0 {
                        held.opened().await;
                    }
                    drop(run);
                }
            });
        workers.submit(&bg, 0).await.unwrap();
        workers.submit(&bg, 1).await.unwrap();
        eventually("job 0 runs", || runs.total(), |&n| n == 1).await;
        assert_eq!(workers.queued(), 1);
        let refused = workers.try_submit(2).unwrap_err();
        assert_eq!(refused.kind(), SubmitErrorKind::Full);
        assert_eq!(refused.into_job(), 2);

        // Gives up with its context: a deadline, then a cancel from a task.
        let impatient = bg.with_timeout(Duration::from_millis(20));
        let refused = workers.submit(&impatient, 3).await.unwrap_err();
        assert_eq!(
            refused.kind(),
            SubmitErrorKind::Context(Error::DeadlineExceeded)
        );
        assert_eq!(refused.into_job(), 3);
        let (canceled, cancel) = bg.with_cancel().into_parts();
        let canceler = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            cancel.cancel();
        });
        let refused = workers.submit(&canceled, 4).await.unwrap_err();
        assert_eq!(refused.kind(), SubmitErrorKind::Context(Error::Canceled));
        assert_eq!(refused.into_job(), 4);
        canceler.await.unwrap();

        // Waits until job 0 ends (a task opens its gate after a while).
        let opener = {
            let gate = gate.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(30)).await;
                gate.open();
            })
        };
        workers.submit(&bg, 5).await.unwrap();
        assert!(
            runs.ended() >= 1,
            "submit returned while the queue was full"
        );
        opener.await.unwrap();
        let report = workers.shutdown(&bg).await;
        assert!(report.unrun.is_empty() && report.failed.is_empty());
        check_report("async submit", &[0, 1, 5], &[2, 3, 4], &[], &runs);
    });
}

#[test]
fn async_after_a_cancel_submissions_are_closed_and_queued_jobs_never_start() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        let runs = Runs::new(10);
        let seen = runs.clone();
        let workers = Pool::new(1)
            .queue(4)
            .start_async(&ctx, move |ctx, n: usize| {
                let run = seen.start(n);
                async move {
                    if n == 0 {
                        assert_eq!(ctx.done().await, Error::Canceled);
                    }
                    drop(run);
                }
            });
        workers.submit(&ctx, 0).await.unwrap();
        eventually("job 0 runs", || runs.total(), |&n| n == 1).await;
        for job in 1..=4 {
            workers.try_submit(job).unwrap();
        }
        assert_eq!(workers.queued(), 4);
        cancel.cancel();
        assert!(workers.context().is_done());
        let refused = workers.try_submit(5).unwrap_err();
        assert_eq!(refused.kind(), SubmitErrorKind::Closed);
        assert_eq!(refused.into_job(), 5);
        let refused = workers.submit(&Context::background(), 6).await.unwrap_err();
        assert_eq!(refused.kind(), SubmitErrorKind::Closed);
        assert_eq!(refused.into_job(), 6);
        let report = workers.shutdown(&Context::background()).await;
        assert_eq!(report.unrun, [1, 2, 3, 4]);
        assert!(report.failed.is_empty());
        check_report(
            "async cancel",
            &[0, 1, 2, 3, 4],
            &[5, 6],
            &report.unrun,
            &runs,
        );
    });
}

/// An async `submit` waiting on a full queue when the pool's context is canceled: `Closed`,
/// with its job.
#[test]
fn async_a_waiting_submit_is_refused_as_closed_at_the_cancel() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        let runs = Runs::new(10);
        let seen = runs.clone();
        let workers = Pool::new(1)
            .queue(1)
            .start_async(&ctx, move |ctx, n: usize| {
                let run = seen.start(n);
                async move {
                    if n == 0 {
                        assert_eq!(ctx.done().await, Error::Canceled);
                    }
                    drop(run);
                }
            });
        workers.submit(&ctx, 0).await.unwrap();
        workers.submit(&ctx, 1).await.unwrap();
        eventually("job 0 runs", || runs.total(), |&n| n == 1).await;
        let canceler = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            cancel.cancel();
        });
        let refused = workers.submit(&Context::background(), 2).await.unwrap_err();
        assert_eq!(refused.kind(), SubmitErrorKind::Closed);
        assert_eq!(refused.into_job(), 2);
        canceler.await.unwrap();
        let report = workers.shutdown(&Context::background()).await;
        assert_eq!(report.unrun, [1]);
        check_report("async waiting submit", &[0, 1], &[2], &report.unrun, &runs);
    });
}

#[test]
fn async_shutdown_runs_everything_or_returns_the_unrun_in_order() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        const N: usize = 500;
        let bg = Context::background();
        // Background: everything runs.
        let runs = Runs::new(N);
        let seen = runs.clone();
        let workers = Pool::new(3)
            .queue(4)
            .start_async(&bg, move |_ctx, n: usize| {
                let run = seen.start(n);
                async move {
                    if n % 50 == 0 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    drop(run);
                }
            });
        for n in 0..N {
            workers.submit(&bg, n).await.unwrap();
        }
        let report = workers.shutdown(&bg).await;
        assert!(report.unrun.is_empty() && report.failed.is_empty());
        assert_eq!(runs.ended(), N);
        check_report(
            "async background",
            &(0..N).collect::<Vec<_>>(),
            &[],
            &[],
            &runs,
        );

        // A grace period while two jobs wait for the pool's cancel and twenty are queued.
        let runs = Runs::new(30);
        let seen = runs.clone();
        let workers = Pool::new(2)
            .queue(20)
            .start_async(&bg, move |ctx, n: usize| {
                let run = seen.start(n);
                async move {
                    if n < 2 {
                        assert_eq!(ctx.done().await, Error::Canceled);
                    }
                    drop(run);
                }
            });
        workers.submit(&bg, 0).await.unwrap();
        workers.submit(&bg, 1).await.unwrap();
        eventually("both workers busy", || runs.total(), |&n| n == 2).await;
        let queued: Vec<usize> = (2..22).map(|n| 2 + (n * 7) % 20).collect();
        for &job in &queued {
            workers.try_submit(job).unwrap();
        }
        let pool_ctx = workers.context().clone();
        let report = workers
            .shutdown(&bg.with_timeout(Duration::from_millis(20)))
            .await;
        assert_eq!(report.unrun, queued);
        assert!(report.failed.is_empty());
        assert_eq!(pool_ctx.err(), Some(Error::Canceled));
        let mut accepted = vec![0, 1];
        accepted.extend(&queued);
        check_report("async grace", &accepted, &[], &report.unrun, &runs);
    });
}

#[test]
fn async_panics_are_reported_in_failed_and_the_worker_task_goes_on() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        let bg = Context::background();
        let tasks = Arc::new(Mutex::new(HashSet::new()));
        let ids = tasks.clone();
        let completed = Arc::new(Mutex::new(Vec::new()));
        let log = completed.clone();
        let workers = Pool::new(1).start_async(&bg, move |_ctx, n: usize| {
            let ids = ids.clone();
            let log = log.clone();
            async move {
                ids.lock().unwrap().insert(tokio::task::try_id());
                match n {
                    2 => panic!("job {n} panicked"),
                    4 => {
                        tokio::task::yield_now().await;
                        std::panic::panic_any(n)
                    }
                    _ => log.lock().unwrap().push(n),
                }
            }
        });
        for n in 0..6 {
            workers.submit(&bg, n).await.unwrap();
        }
        let report = workers.shutdown(&bg).await;
        assert!(report.unrun.is_empty());
        let failed = &report.failed;
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert_eq!(
            (failed[0].index(), failed[0].message()),
            (2, "job 2 panicked")
        );
        assert_eq!(
            (failed[1].index(), failed[1].message()),
            (4, "Box<dyn Any>")
        );
        assert!(failed.iter().all(JobFailed::is_panic));
        assert_eq!(*completed.lock().unwrap(), [0, 1, 3, 5]);
        let tasks = tasks.lock().unwrap();
        assert_eq!(tasks.len(), 1, "{tasks:?}");
        assert!(!tasks.contains(&None));
    });
}

#[test]
fn async_workers_take_submissions_from_several_tasks() {
    let _leaks = common::no_leaks();
    send_sync::<ctxkit::pool::AsyncWorkers<usize>>();
    on_both_runtimes(|| async {
        const PER: usize = 250;
        const TASKS: usize = 4;
        let bg = Context::background();
        let runs = Runs::new(PER * TASKS);
        let seen = runs.clone();
        let workers = Arc::new(
            Pool::new(2)
                .queue(2)
                .start_async(&bg, move |_ctx, n: usize| {
                    let run = seen.start(n);
                    async move {
                        if n % 3 == 0 {
                            tokio::task::yield_now().await;
                        }
                        drop(run);
                    }
                }),
        );
        let mut submitters = Vec::new();
        for t in 0..TASKS {
            let workers = workers.clone();
            submitters.push(tokio::spawn(async move {
                for i in 0..PER {
                    workers
                        .submit(&Context::background(), t * PER + i)
                        .await
                        .unwrap();
                }
            }));
        }
        for submitter in submitters {
            submitter.await.unwrap();
        }
        let workers = Arc::into_inner(workers).expect("the submitters are done");
        let report = workers.shutdown(&bg).await;
        assert!(report.unrun.is_empty() && report.failed.is_empty());
        assert_eq!(runs.ran().len(), PER * TASKS);
    });
}

#[test]
fn async_a_queue_of_0_accepts_a_job_only_while_a_worker_is_free() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        let bg = Context::background();
        let runs = Runs::new(10);
        let seen = runs.clone();
        let gates: Arc<Vec<Gate>> = Arc::new((0..10).map(|_| Gate::default()).collect());
        let held = gates.clone();
        let workers = Pool::new(2)
            .queue(0)
            .start_async(&bg, move |_ctx, n: usize| {
                let run = seen.start(n);
                let held = held.clone();
                async move {
                    held[n].opened().await;
                    drop(run);
                }
            });
        workers.try_submit(0).unwrap();
        workers.try_submit(1).unwrap();
        for _ in 0..20 {
            assert_eq!(
                workers.try_submit(2).unwrap_err().kind(),
                SubmitErrorKind::Full
            );
        }
        eventually("both jobs run", || runs.total(), |&n| n == 2).await;
        assert_eq!(
            workers.try_submit(2).unwrap_err().kind(),
            SubmitErrorKind::Full
        );
        gates[0].open();
        eventually(
            "a worker is free again",
            || workers.try_submit(2).is_ok(),
            |&accepted| accepted,
        )
        .await;
        assert_eq!(
            workers.try_submit(3).unwrap_err().kind(),
            SubmitErrorKind::Full
        );
        for gate in gates.iter() {
            gate.open();
        }
        let report = workers.shutdown(&bg).await;
        assert!(
            report.unrun.is_empty() && report.failed.is_empty(),
            "{report:?}"
        );
        check_report("async rendezvous", &[0, 1, 2], &[3], &[], &runs);

        // Pool::new(0): max_procs() jobs accepted at once, the next refused.
        let procs = procs::max_procs();
        let gate = Gate::default();
        let held = gate.clone();
        let workers = Pool::new(0)
            .queue(0)
            .start_async(&bg, move |_ctx, _n: usize| {
                let held = held.clone();
                async move { held.opened().await }
            });
        for n in 0..procs {
            workers.try_submit(n).unwrap();
        }
        assert_eq!(
            workers.try_submit(procs).unwrap_err().kind(),
            SubmitErrorKind::Full
        );
        gate.open();
        let report = workers.shutdown(&bg).await;
        assert!(
            report.unrun.is_empty() && report.failed.is_empty(),
            "{report:?}"
        );
    });
}

/// Dropping `AsyncWorkers` cancels the pool's context, aborts the running job (its future is
/// dropped, it never completes) and drops the queued jobs without running them.
#[test]
fn async_dropping_the_pool_aborts_the_running_job_and_drops_the_queued_ones() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        let bg = Context::background();
        let runs = Runs::new(10);
        let seen = runs.clone();
        let drops = Arc::new(AtomicUsize::new(0));
        let completed = Arc::new(AtomicUsize::new(0));
        let done = completed.clone();
        let workers = Pool::new(1)
            .queue(4)
            .start_async(&bg, move |_ctx, job: Tracked| {
                let run = seen.start(job.n);
                let done = done.clone();
                async move {
                    tokio::time::sleep(common::HOUR).await; // ignores its context
                    drop((run, job));
                    done.fetch_add(1, SeqCst);
                }
            });
        let job = |n| Tracked {
            n,
            drops: drops.clone(),
        };
        workers.submit(&bg, job(0)).await.unwrap();
        eventually("job 0 runs", || runs.total(), |&n| n == 1).await;
        for n in 1..=4 {
            workers.try_submit(job(n)).unwrap();
        }
        let pool_ctx = workers.context().clone();
        drop(workers);
        assert_eq!(pool_ctx.err(), Some(Error::Canceled));
        eventually("every job dropped", || drops.load(SeqCst), |&n| n == 5).await;
        assert_eq!(runs.ended(), 1, "job 0's future was not dropped");
        assert_eq!(runs.total(), 1, "a queued job ran");
        assert_eq!(completed.load(SeqCst), 0);
    });
}

#[test]
#[should_panic(
    expected = "ctxkit::pool: start_async needs a tokio runtime to start its worker tasks"
)]
fn start_async_outside_a_runtime_panics() {
    let _leaks = common::no_leaks();
    let _workers = Pool::new(1).start_async(&Context::background(), |_ctx, _n: u8| async {});
}

// ===== async: the runtime shuts down under the pool =====

/// Both workers of a pool run jobs that sleep an hour, three more are queued; the runtime is
/// dropped (or shut down with a zero timeout). On another executor: submissions are refused,
/// the shutdown returns (no hang) with the two running jobs reported aborted and the three
/// queued ones unrun.
fn async_runtime_shutdown_case(multi: bool, timeout_zero: bool) {
    let case = format!("multi-thread {multi}, timeout zero {timeout_zero}");
    let rt = if multi {
        multi_thread()
    } else {
        current_thread()
    };
    let runs = Runs::new(10);
    let seen = runs.clone();
    let workers = rt.block_on(async {
        let bg = Context::background();
        let workers = Pool::new(2)
            .queue(3)
            .start_async(&bg, move |_ctx, n: usize| {
                let run = seen.start(n);
                async move {
                    tokio::time::sleep(common::HOUR).await; // ignores its context
                    drop(run);
                }
            });
        workers.submit(&bg, 0).await.unwrap();
        workers.submit(&bg, 1).await.unwrap();
        eventually("both workers busy", || runs.total(), |&n| n == 2).await;
        for n in 2..5 {
            workers.try_submit(n).unwrap();
        }
        workers
    });
    if timeout_zero {
        rt.shutdown_timeout(Duration::ZERO);
    } else {
        drop(rt);
    }
    let (refused, report) = watchdog(&case, move || {
        futures::executor::block_on(async move {
            let refused = workers.try_submit(9).map_err(|e| e.kind());
            (refused, workers.shutdown(&Context::background()).await)
        })
    });
    if timeout_zero && multi {
        // `shutdown_timeout(ZERO)` returns before the runtime's threads have dropped the
        // tasks: the pool may not know yet, and the queue is still full.
        assert!(
            matches!(
                refused,
                Err(SubmitErrorKind::Closed | SubmitErrorKind::Full)
            ),
            "{case}: {refused:?}"
        );
    } else {
        assert_eq!(refused, Err(SubmitErrorKind::Closed), "{case}");
    }
    assert_eq!(report.unrun, [2, 3, 4], "{case}");
    let mut aborted: Vec<u64> = report
        .failed
        .iter()
        .map(|f| {
            assert!(f.is_aborted() && !f.is_panic(), "{case}: {f:?}");
            assert_eq!(
                f.message(),
                "its tokio runtime shut down before it finished"
            );
            f.index()
        })
        .collect();
    aborted.sort_unstable();
    assert_eq!(aborted, [0, 1], "{case}");
    assert_eq!(
        runs.ended(),
        2,
        "{case}: the running jobs' futures were not dropped"
    );
    check_report(&case, &[0, 1, 2, 3, 4], &[9], &report.unrun, &runs);
}

#[test]
fn async_a_runtime_dropped_under_the_pool_reports_the_running_jobs_aborted() {
    let _leaks = common::no_leaks();
    for multi in [false, true] {
        async_runtime_shutdown_case(multi, false);
    }
}

#[test]
fn async_a_runtime_shut_down_with_timeout_zero_under_the_pool() {
    let _leaks = common::no_leaks();
    for multi in [false, true] {
        async_runtime_shutdown_case(multi, true);
    }
}

/// A pool whose runtime is gone before its first job: the job is accepted (or refused as
/// closed), never runs, and if accepted comes back from the shutdown; nothing hangs.
#[test]
fn async_a_pool_whose_runtime_is_gone_before_its_first_job() {
    let _leaks = common::no_leaks();
    let rt = multi_thread();
    let ran = Arc::new(AtomicUsize::new(0));
    let count = ran.clone();
    let workers = {
        let _enter = rt.enter();
        Pool::new(2).start_async(&Context::background(), move |_ctx, _n: usize| {
            count.fetch_add(1, SeqCst);
            async {}
        })
    };
    drop(rt);
    let (first, second, report) = watchdog("a pool on a dead runtime", move || {
        futures::executor::block_on(async move {
            let first = workers.try_submit(1).map_err(|e| e.kind());
            let second = workers
                .submit(&Context::background(), 2)
                .await
                .map_err(|e| e.kind());
            (
                first,
                second,
                workers.shutdown(&Context::background()).await,
            )
        })
    });
    assert_eq!(ran.load(SeqCst), 0);
    let mut accepted = Vec::new();
    for (job, outcome) in [(1, first), (2, second)] {
        match outcome {
            Ok(()) => accepted.push(job),
            Err(kind) => assert_eq!(kind, SubmitErrorKind::Closed, "job {job}"),
        }
    }
    assert_eq!(report.unrun, accepted);
    assert!(report.failed.is_empty(), "{:?}", report.failed);
}

/// A job that shuts its own pool down (the last handle taken out of a slot): the shutdown waits
/// for the other workers only, and reports the jobs that never ran.
#[test]
fn a_shutdown_from_inside_one_of_its_own_jobs_returns() {
    let _leaks = common::no_leaks();
    type Job = Box<dyn FnOnce() + Send>;
    let (reported, report) = std::sync::mpsc::channel();
    let workers: Workers<Job> = Pool::new(1)
        .queue(4)
        .start(&Context::background(), |_ctx, job: Job| job());
    let slot: Arc<Mutex<Option<Workers<Job>>>> = Arc::new(Mutex::new(None));
    let in_job = slot.clone();
    let started = Gate::default();
    let go = started.clone();
    workers
        .try_submit(Box::new(move || {
            go.wait();
            let own = in_job
                .lock()
                .unwrap()
                .take()
                .expect("the pool is in the slot");
            let report =
                own.shutdown(&Context::background().with_timeout(Duration::from_millis(10)));
            let _ = reported.send(report.unrun.len());
        }))
        .unwrap_or_else(|_| panic!("the job is accepted"));
    // Queued behind the running job on the one worker: never run, since the shutdown's grace
    // ends while this worker is still busy with the job that shuts the pool down.
    workers
        .try_submit(Box::new(|| {}))
        .unwrap_or_else(|_| panic!("the second job is accepted"));
    *slot.lock().unwrap() = Some(workers);
    started.open();
    let unrun = report
        .recv_timeout(PATIENCE)
        .expect("the shutdown inside the job returned");
    assert_eq!(unrun, 1);
}

#[test]
fn an_async_shutdown_from_inside_one_of_its_own_jobs_returns() {
    let _leaks = common::no_leaks();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(common::bounded(async {
        type Slot = Arc<Mutex<Option<AsyncWorkers<u32>>>>;
        let slot: Slot = Arc::new(Mutex::new(None));
        let in_job = slot.clone();
        let (reported, report) = tokio::sync::oneshot::channel();
        let reported = Arc::new(Mutex::new(Some(reported)));
        let workers = Pool::new(1).start_async(&Context::background(), move |_ctx, job: u32| {
            let in_job = in_job.clone();
            let reported = reported.clone();
            async move {
                if job == 0 {
                    let own = in_job
                        .lock()
                        .unwrap()
                        .take()
                        .expect("the pool is in the slot");
                    let report = own.shutdown(&Context::background()).await;
                    let _ = reported
                        .lock()
                        .unwrap()
                        .take()
                        .unwrap()
                        .send(report.unrun.len());
                }
            }
        });
        *slot.lock().unwrap() = Some(workers);
        let submit = slot.lock().unwrap().as_ref().unwrap().try_submit(0);
        assert!(submit.is_ok());
        assert_eq!(report.await.unwrap(), 0);
    }));
}
