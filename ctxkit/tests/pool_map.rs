//! The thread form of the one-shot map (`Pool::map`, `Pool::map_ordered` → `Map`), checked for
//! behaviour only:
//!
//! * every job's result comes back exactly once; `map_ordered` yields them in input order,
//!   `map` in completion order, the same multiset;
//! * the input is pulled lazily, never more than `queue + workers` ahead of what the consumer
//!   has read, and a consumer that stops reading holds the workers back;
//! * once the pool's context is done no queued job starts, the map ends, and every pulled job
//!   either delivered its result or comes back from `into_unrun`, never both;
//! * a panicking job is that job's `JobFailed`, and its worker goes on;
//! * `Pool::new(0)` is `max_procs()` workers, `queue(0)` a rendezvous that still delivers all;
//! * an input that panics reaches the reader, and the workers are still joined.
//!
//! No assertion depends on how fast anything runs: where a test needs a state (every worker
//! busy, a result read), jobs wait for it, bounded by `common::PATIENCE`.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::pool::{check_accounting, hang_guard, sorted, Runs, Tally};
use common::{wait_until, watchdog, PATIENCE};
use ctxkit::pool::{Pool, DEFAULT_QUEUE};
use ctxkit::{procs, Context, Error};

// ===== helpers =====

// ===== results =====

/// Each of 20,000 jobs runs exactly once and its result comes back exactly once.
#[test]
fn map_delivers_every_result_exactly_once() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(map_delivers_every_result_exactly_once),
        map_delivers_every_result_exactly_once_body,
    );
}

fn map_delivers_every_result_exactly_once_body() {
    const N: usize = 20_000;
    for ordered in [false, true] {
        let runs = Runs::new(N);
        let seen = runs.clone();
        let pool = Pool::new(3).queue(16);
        let f = move |_ctx: &Context, n: usize| {
            let _run = seen.start(n);
            n * 2
        };
        let results = if ordered {
            pool.map_ordered(&Context::background(), 0..N, f)
        } else {
            pool.map(&Context::background(), 0..N, f)
        };
        let mut results: Vec<usize> = results.map(|r| r.expect("no job panics")).collect();
        if !ordered {
            results.sort_unstable();
        }
        assert_eq!(results, (0..N).map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(runs.ran().len(), N, "ordered {ordered}");
        assert_eq!(runs.total(), N, "ordered {ordered}");
    }
}

/// No more than `workers` jobs run at once, and the pool does run that many at once: the first
/// three jobs of a three-worker map each wait until three have run at the same time.
#[test]
fn a_map_runs_up_to_its_workers_jobs_at_once_on_named_threads() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(a_map_runs_up_to_its_workers_jobs_at_once_on_named_threads),
        a_map_runs_up_to_its_workers_jobs_at_once_on_named_threads_body,
    );
}

fn a_map_runs_up_to_its_workers_jobs_at_once_on_named_threads_body() {
    const N: usize = 300;
    let runs = Runs::new(N);
    let seen = runs.clone();
    let consumer = thread::current().id();
    let results: Vec<usize> = Pool::new(3)
        .queue(4)
        .map(&Context::background(), 0..N, move |_ctx, n| {
            let _run = seen.start(n);
            assert_ne!(
                thread::current().id(),
                consumer,
                "a job ran on the consumer"
            );
            assert_eq!(thread::current().name(), Some("ctxkit-pool"));
            if n < 3 {
                wait_until(
                    "three jobs running at once",
                    || seen.max_running.load(SeqCst),
                    |&k| k >= 3,
                );
            } else if n % 10 == 0 {
                thread::sleep(Duration::from_millis(1));
            }
            n
        })
        .map(|r| r.expect("no job panics"))
        .collect();
    assert_eq!(sorted(results), (0..N).collect::<Vec<_>>());
    assert_eq!(runs.max_running.load(SeqCst), 3);
}

/// `map_ordered` yields input order although job 0 finishes after jobs 1..=5.
#[test]
fn map_ordered_yields_input_order_whatever_the_completion_order() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(map_ordered_yields_input_order_whatever_the_completion_order),
        map_ordered_yields_input_order_whatever_the_completion_order_body,
    );
}

fn map_ordered_yields_input_order_whatever_the_completion_order_body() {
    const N: usize = 200;
    let finished = Arc::new(Mutex::new(Vec::new()));
    let log = finished.clone();
    let results: Vec<usize> = Pool::new(3)
        .queue(8)
        .map_ordered(&Context::background(), 0..N, move |_ctx, n| {
            if n == 0 {
                wait_until(
                    "jobs 1..=5 finished before job 0",
                    || log.lock().unwrap().len(),
                    |&k| k >= 5,
                );
            }
            log.lock().unwrap().push(n);
            n
        })
        .map(|r| r.expect("no job panics"))
        .collect();
    assert_eq!(results, (0..N).collect::<Vec<_>>());
    let finished = finished.lock().unwrap();
    let zero_at = finished.iter().position(|&n| n == 0).unwrap();
    assert!(zero_at >= 5, "setup: job 0 finished early: {finished:?}");
}

/// `map` yields in completion order: job 0 returns only once the consumer has read another
/// result, so it is not first. And it yields the same multiset as `map_ordered`.
#[test]
fn map_yields_in_completion_order_the_same_multiset_as_map_ordered() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(map_yields_in_completion_order_the_same_multiset_as_map_ordered),
        map_yields_in_completion_order_the_same_multiset_as_map_ordered_body,
    );
}

fn map_yields_in_completion_order_the_same_multiset_as_map_ordered_body() {
    const N: usize = 500;
    let first_read = Arc::new(AtomicBool::new(false));
    let flag = first_read.clone();
    let f = move |_ctx: &Context, n: usize| {
        if n == 0 {
            wait_until(
                "the consumer read a result before job 0's",
                || flag.load(SeqCst),
                |&read| read,
            );
        } else if n % 13 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        n % 7 // many equal results: a multiset
    };
    let mut results = Pool::new(2)
        .queue(4)
        .map(&Context::background(), 0..N, f.clone());
    let first = results.next().unwrap().unwrap();
    first_read.store(true, SeqCst);
    let mut unordered = vec![first];
    unordered.extend(results.map(|r| r.unwrap()));
    assert_eq!(unordered.len(), N);
    // Job 0 (result 0) came after at least one other result.
    assert!(
        first != 0 || unordered[1..].contains(&0),
        "completion order: job 0 came first"
    );

    let ordered: Vec<usize> = Pool::new(2)
        .queue(4)
        .map_ordered(&Context::background(), 0..N, f)
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(ordered, (0..N).map(|n| n % 7).collect::<Vec<_>>());
    assert_eq!(sorted(unordered), sorted(ordered));
}

// ===== laziness and the bound =====

/// For several sizes, the input is never pulled more than `queue + workers` ahead of the
/// results read, whatever the order of completion (some jobs are slower than the others).
#[test]
fn the_input_is_never_pulled_more_than_the_bound_ahead_of_the_reader() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(the_input_is_never_pulled_more_than_the_bound_ahead_of_the_reader),
        the_input_is_never_pulled_more_than_the_bound_ahead_of_the_reader_body,
    );
}

fn the_input_is_never_pulled_more_than_the_bound_ahead_of_the_reader_body() {
    const N: usize = 600;
    for (workers, queue) in [(1, 0), (2, 0), (1, 3), (3, 5), (4, 1), (2, 64)] {
        for ordered in [false, true] {
            let case = format!("{workers} workers, queue {queue}, ordered {ordered}");
            let tally = Tally::default();
            let pool = Pool::new(workers).queue(queue);
            let f = |_ctx: &Context, n: usize| {
                if n % 17 == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
                n
            };
            let input = tally.input(0..N);
            let results = if ordered {
                pool.map_ordered(&Context::background(), input, f)
            } else {
                pool.map(&Context::background(), input, f)
            };
            let mut delivered = Vec::new();
            for r in results {
                delivered.push(r.unwrap());
                tally.read_one();
            }
            assert_eq!(sorted(delivered), (0..N).collect::<Vec<_>>(), "{case}");
            assert_eq!(tally.pulled(), N, "{case}");
            assert!(
                tally.max_lead() <= workers + queue,
                "{case}: pulled {} ahead of the reader",
                tally.max_lead()
            );
        }
    }
}

/// Nothing is pulled and nothing runs before the first read; a consumer that stops reading
/// holds the workers back: they run what was pulled, at most the bound beyond what was read,
/// and then wait; reading on delivers the rest.
#[test]
fn a_consumer_that_stops_reading_holds_the_workers_back() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(a_consumer_that_stops_reading_holds_the_workers_back),
        a_consumer_that_stops_reading_holds_the_workers_back_body,
    );
}

fn a_consumer_that_stops_reading_holds_the_workers_back_body() {
    const N: usize = 1000;
    const WORKERS: usize = 2;
    const QUEUE: usize = 3;
    const READ: usize = 2;
    for ordered in [false, true] {
        let case = format!("ordered {ordered}");
        let tally = Tally::default();
        let runs = Runs::new(N);
        let seen = runs.clone();
        let pool = Pool::new(WORKERS).queue(QUEUE);
        let f = move |_ctx: &Context, n: usize| {
            let _run = seen.start(n);
            n
        };
        let input = tally.input(0..N);
        let mut results = if ordered {
            pool.map_ordered(&Context::background(), input, f)
        } else {
            pool.map(&Context::background(), input, f)
        };
        thread::sleep(Duration::from_millis(20));
        assert_eq!(
            (tally.pulled(), runs.total()),
            (0, 0),
            "{case}: pulled or ran before the first read"
        );

        for _ in 0..READ {
            results.next().unwrap().unwrap();
            tally.read_one();
        }
        // The workers run every job pulled so far, then have nothing to do.
        let (ran, pulled) = wait_until(
            "the pulled jobs ran",
            || (runs.total(), tally.pulled()),
            |(ran, pulled)| ran == pulled,
        );
        assert!(
            pulled <= READ + WORKERS + QUEUE,
            "{case}: pulled {pulled} with {READ} read"
        );
        assert!(
            ran - READ <= WORKERS + QUEUE,
            "{case}: {ran} ran, {READ} read"
        );
        // While nobody reads, nothing more is pulled or run.
        thread::sleep(Duration::from_millis(50));
        assert_eq!(
            (runs.total(), tally.pulled()),
            (ran, pulled),
            "{case}: the map went on while nobody read"
        );

        let rest: Vec<usize> = results.map(Result::unwrap).collect();
        assert_eq!(READ + rest.len(), N, "{case}");
        assert_eq!(runs.ran().len(), N, "{case}");
    }
}

/// An ordered map whose first job is slow: the results behind it wait, and once the bound's
/// worth is pulled the workers stop, although the consumer is blocked in `next` (not reading).
#[test]
fn a_slow_first_job_of_an_ordered_map_holds_the_others_back() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(a_slow_first_job_of_an_ordered_map_holds_the_others_back),
        a_slow_first_job_of_an_ordered_map_holds_the_others_back_body,
    );
}

fn a_slow_first_job_of_an_ordered_map_holds_the_others_back_body() {
    const N: usize = 100;
    const BOUND: usize = 2 + 2;
    let tally = Tally::default();
    let runs = Runs::new(N);
    let seen = runs.clone();
    let release = Arc::new(AtomicBool::new(false));
    let released = release.clone();
    let watcher = {
        let tally = tally.clone();
        let runs = runs.clone();
        thread::spawn(move || {
            let (ran, pulled) = wait_until(
                "jobs 1..bound ran",
                || (runs.total(), tally.pulled()),
                |&(ran, _)| ran >= BOUND,
            );
            thread::sleep(Duration::from_millis(50));
            let later = (runs.total(), tally.pulled());
            release.store(true, SeqCst);
            (ran, pulled, later)
        })
    };
    let results: Vec<usize> = Pool::new(2)
        .queue(2)
        .map_ordered(&Context::background(), tally.input(0..N), move |_ctx, n| {
            let _run = seen.start(n);
            if n == 0 {
                wait_until("released", || released.load(SeqCst), |&r| r);
            }
            n
        })
        .map(|r| r.unwrap())
        .inspect(|_| tally.read_one())
        .collect();
    let (ran, pulled, later) = watcher.join().unwrap();
    assert_eq!(
        (ran, pulled),
        (BOUND, BOUND),
        "job 0 blocked: the bound's worth"
    );
    assert_eq!(later, (ran, pulled), "the workers went on behind job 0");
    assert_eq!(results, (0..N).collect::<Vec<_>>());
    assert!(tally.max_lead() <= BOUND);
}

/// A million-item input, one result read, then the map dropped: at most the bound was pulled,
/// and the drop returns at once (it does not run the input).
#[test]
fn a_million_item_input_with_an_early_break_pulls_at_most_the_bound() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(a_million_item_input_with_an_early_break_pulls_at_most_the_bound),
        a_million_item_input_with_an_early_break_pulls_at_most_the_bound_body,
    );
}

fn a_million_item_input_with_an_early_break_pulls_at_most_the_bound_body() {
    const MILLION: usize = 1_000_000;
    for ordered in [false, true] {
        let tally = Tally::default();
        let counted = tally.clone();
        watchdog("an early break", move || {
            let pool = Pool::new(2).queue(8);
            let input = counted.input(0..MILLION);
            let mut results = if ordered {
                pool.map_ordered(&Context::background(), input, |_ctx, n| n)
            } else {
                pool.map(&Context::background(), input, |_ctx, n| n)
            };
            results.next().unwrap().unwrap();
        });
        assert!(
            tally.pulled() <= 10,
            "ordered {ordered}: pulled {}",
            tally.pulled()
        );

        // A hundred results read, then a break: still at most the bound ahead.
        let tally = Tally::default();
        let counted = tally.clone();
        watchdog("a break after 100 results", move || {
            let pool = Pool::new(2).queue(8);
            let input = counted.input(0..MILLION);
            let results = if ordered {
                pool.map_ordered(&Context::background(), input, |_ctx, n| n)
            } else {
                pool.map(&Context::background(), input, |_ctx, n| n)
            };
            for (read, result) in results.enumerate() {
                result.unwrap();
                counted.read_one();
                if read + 1 == 100 {
                    break;
                }
            }
        });
        assert!(
            tally.max_lead() <= 10 && tally.pulled() <= 100 + 10,
            "ordered {ordered}: pulled {}, lead {}",
            tally.pulled(),
            tally.max_lead()
        );
    }
}

// ===== cancellation =====

/// Every worker runs a job that waits for the pool's context; the parent is canceled: the
/// running jobs return their results, no queued job starts, the map ends, and the pulled jobs
/// not run come back from `into_unrun`, in input order.
#[test]
fn once_the_context_is_done_no_queued_job_starts() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(once_the_context_is_done_no_queued_job_starts),
        once_the_context_is_done_no_queued_job_starts_body,
    );
}

fn once_the_context_is_done_no_queued_job_starts_body() {
    const WORKERS: usize = 3;
    const QUEUE: usize = 5;
    for ordered in [false, true] {
        let case = format!("ordered {ordered}");
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        let tally = Tally::default();
        let runs = Runs::new(1000);
        let seen = runs.clone();
        let canceler = {
            let runs = runs.clone();
            thread::spawn(move || {
                wait_until(
                    "every worker runs a job",
                    || runs.total(),
                    |&n| n >= WORKERS,
                );
                cancel.cancel();
            })
        };
        let pool = Pool::new(WORKERS).queue(QUEUE);
        let f = move |ctx: &Context, n: usize| {
            let _run = seen.start(n);
            let err = ctx.wait_timeout(PATIENCE);
            assert_eq!(err, Some(Error::Canceled), "job {n}: the pool's context");
            n
        };
        let input = tally.input(0..1000);
        let mut results = if ordered {
            pool.map_ordered(&ctx, input, f)
        } else {
            pool.map(&ctx, input, f)
        };
        let delivered: Vec<usize> = collect_ok(&mut results);
        canceler.join().unwrap();
        let unrun = results.into_unrun();
        assert_eq!(
            runs.total(),
            WORKERS,
            "{case}: a job started after the cancel: {:?}",
            runs.ran()
        );
        assert!(tally.pulled() <= WORKERS + QUEUE, "{case}");
        if ordered {
            assert!(delivered.windows(2).all(|w| w[0] < w[1]), "{case}");
        }
        check_accounting(&case, &delivered, &unrun, tally.pulled(), &runs);
    }
}

/// Collects a map's results (each must be `Ok`).
fn collect_ok<I: Iterator<Item = Result<usize, ctxkit::pool::JobFailed>>>(
    results: &mut I,
) -> Vec<usize> {
    results.map(|r| r.expect("no job panics")).collect()
}

/// A long input of quick jobs that check their context; one of them cancels the parent. No
/// job starts after a worker saw the context done (a job may start in the instant between its
/// worker's check and the cancel: at most one per worker sees it done at its start), the map
/// ends long before the input does, and the accounting holds.
#[test]
fn a_cancel_in_the_middle_ends_the_map_and_accounts_for_every_pulled_job() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(a_cancel_in_the_middle_ends_the_map_and_accounts_for_every_pulled_job),
        a_cancel_in_the_middle_ends_the_map_and_accounts_for_every_pulled_job_body,
    );
}

fn a_cancel_in_the_middle_ends_the_map_and_accounts_for_every_pulled_job_body() {
    const N: usize = 100_000;
    const TRIGGER: usize = 500;
    const WORKERS: usize = 2;
    for ordered in [false, true] {
        let case = format!("ordered {ordered}");
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        let tally = Tally::default();
        let runs = Runs::new(N);
        let seen = runs.clone();
        let late = Arc::new(AtomicUsize::new(0));
        let late_seen = late.clone();
        let pool = Pool::new(WORKERS).queue(4);
        let f = move |ctx: &Context, n: usize| {
            let _run = seen.start(n);
            if ctx.is_done() {
                late_seen.fetch_add(1, SeqCst);
            }
            if n == TRIGGER {
                cancel.cancel();
            } else if n > TRIGGER {
                // Jobs after the trigger end only with the cancel: the map cannot finish
                // the input first.
                ctx.wait_timeout(PATIENCE)
                    .expect("the pool's context is canceled");
            }
            n
        };
        let input = tally.input(0..N);
        let mut results = if ordered {
            pool.map_ordered(&ctx, input, f)
        } else {
            pool.map(&ctx, input, f)
        };
        let delivered: Vec<usize> = collect_ok(&mut results);
        let unrun = results.into_unrun();
        assert!(tally.pulled() < N, "{case}: the map did not end early");
        assert!(ctx.is_done());
        assert!(
            late.load(SeqCst) <= WORKERS,
            "{case}: {} jobs started on a done context",
            late.load(SeqCst)
        );
        if ordered {
            assert!(delivered.windows(2).all(|w| w[0] < w[1]), "{case}");
        }
        check_accounting(&case, &delivered, &unrun, tally.pulled(), &runs);
    }
}

/// A map made on a done context pulls nothing, runs nothing, ends at once.
#[test]
fn a_map_on_a_done_context_pulls_and_runs_nothing() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(a_map_on_a_done_context_pulls_and_runs_nothing),
        a_map_on_a_done_context_pulls_and_runs_nothing_body,
    );
}

fn a_map_on_a_done_context_pulls_and_runs_nothing_body() {
    let ctx = Context::background().with_cancel();
    ctx.cancel();
    for ordered in [false, true] {
        let tally = Tally::default();
        let ran = Arc::new(AtomicUsize::new(0));
        let count = ran.clone();
        let pool = Pool::new(2).queue(4);
        let f = move |_ctx: &Context, n: usize| {
            count.fetch_add(1, SeqCst);
            n
        };
        let input = tally.input(0..1000);
        let mut results = if ordered {
            pool.map_ordered(&ctx, input, f)
        } else {
            pool.map(&ctx, input, f)
        };
        assert!(results.next().is_none(), "ordered {ordered}");
        assert!(results.next().is_none(), "fused");
        assert!(results.into_unrun().is_empty());
        assert_eq!((tally.pulled(), ran.load(SeqCst)), (0, 0));
    }
}

/// Dropping a map cancels the jobs' context and waits for the running jobs to return (even
/// those that take a while after the cancel); no queued job starts.
#[test]
fn dropping_a_map_cancels_its_context_and_waits_for_the_running_jobs() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(dropping_a_map_cancels_its_context_and_waits_for_the_running_jobs),
        dropping_a_map_cancels_its_context_and_waits_for_the_running_jobs_body,
    );
}

fn dropping_a_map_cancels_its_context_and_waits_for_the_running_jobs_body() {
    let contexts = Arc::new(Mutex::new(Vec::new()));
    let kept = contexts.clone();
    let started = Arc::new(AtomicUsize::new(0));
    let returned = Arc::new(AtomicUsize::new(0));
    let (s, r) = (started.clone(), returned.clone());
    let mut results = Pool::new(2)
        .queue(4)
        .map(&Context::background(), 0..100, move |ctx, n| {
            if n == 0 {
                return n;
            }
            kept.lock().unwrap().push(ctx.clone());
            s.fetch_add(1, SeqCst);
            ctx.wait_timeout(PATIENCE).expect("the drop cancels");
            thread::sleep(Duration::from_millis(20));
            r.fetch_add(1, SeqCst);
            n
        });
    assert_eq!(results.next(), Some(Ok(0)));
    wait_until("both workers busy", || started.load(SeqCst), |&n| n == 2);
    drop(results);
    assert_eq!(returned.load(SeqCst), 2, "the drop did not wait");
    assert_eq!(started.load(SeqCst), 2, "a queued job started");
    for ctx in contexts.lock().unwrap().iter() {
        assert_eq!(ctx.err(), Some(Error::Canceled));
    }
}

// ===== panics =====

/// One worker; jobs 3 and 6 panic (a `String` and a non-string payload). Each is that job's
/// `JobFailed`; every other job delivers, on the same one worker thread, before and after.
#[test]
fn a_panicking_job_is_its_failure_and_its_worker_goes_on() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(a_panicking_job_is_its_failure_and_its_worker_goes_on),
        a_panicking_job_is_its_failure_and_its_worker_goes_on_body,
    );
}

fn a_panicking_job_is_its_failure_and_its_worker_goes_on_body() {
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let seen = threads.clone();
    let results: Vec<_> = Pool::new(1)
        .queue(2)
        .map_ordered(&Context::background(), 0..10usize, move |_ctx, n| {
            seen.lock().unwrap().insert(thread::current().id());
            match n {
                3 => panic!("job {n} failed"),
                6 => std::panic::panic_any(7u8),
                _ => n * 10,
            }
        })
        .collect();
    assert_eq!(results.len(), 10);
    for (n, result) in results.iter().enumerate() {
        match n {
            3 => {
                let failed = result.as_ref().unwrap_err();
                assert!(failed.is_panic() && !failed.is_aborted());
                assert_eq!(failed.index(), 3);
                assert_eq!(failed.message(), "job 3 failed");
                assert_eq!(
                    failed.to_string(),
                    "ctxkit::pool: job 3 panicked: job 3 failed"
                );
            }
            6 => {
                let failed = result.as_ref().unwrap_err();
                assert!(failed.is_panic());
                assert_eq!(failed.index(), 6);
                assert_eq!(failed.message(), "Box<dyn Any>");
            }
            _ => assert_eq!(result, &Ok(n * 10)),
        }
    }
    let threads = threads.lock().unwrap();
    assert_eq!(threads.len(), 1, "the panics cost the worker: {threads:?}");
    assert!(!threads.contains(&thread::current().id()));
}

/// Two workers, every third job of 300 panics, in completion order: the failures are exactly
/// those jobs (by index), the others all deliver, and no more than two threads ever ran jobs.
#[test]
fn many_panics_on_two_workers_each_reported_by_index() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(many_panics_on_two_workers_each_reported_by_index),
        many_panics_on_two_workers_each_reported_by_index_body,
    );
}

fn many_panics_on_two_workers_each_reported_by_index_body() {
    const N: usize = 300;
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let seen = threads.clone();
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for result in Pool::new(2)
        .queue(3)
        .map(&Context::background(), 0..N, move |_ctx, n| {
            seen.lock().unwrap().insert(thread::current().id());
            assert!(n % 3 != 0, "job {n}");
            n
        })
    {
        match result {
            Ok(n) => ok.push(n),
            Err(e) => {
                assert!(e.is_panic());
                assert_eq!(e.message(), format!("job {}", e.index()));
                failed.push(usize::try_from(e.index()).unwrap());
            }
        }
    }
    assert_eq!(
        sorted(failed),
        (0..N).filter(|n| n % 3 == 0).collect::<Vec<_>>()
    );
    assert_eq!(
        sorted(ok),
        (0..N).filter(|n| n % 3 != 0).collect::<Vec<_>>()
    );
    assert!(threads.lock().unwrap().len() <= 2);
}

// ===== sizes =====

/// `Pool::new(0)` (and the default) is `max_procs()` workers with the default queue; a map on
/// it runs that many jobs at once, on no more threads.
#[test]
fn pool_new_0_is_max_procs_workers() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(pool_new_0_is_max_procs_workers),
        pool_new_0_is_max_procs_workers_body,
    );
}

fn pool_new_0_is_max_procs_workers_body() {
    let procs = procs::max_procs();
    assert_eq!(Pool::new(0).workers(), procs);
    assert_eq!(Pool::default(), Pool::new(0));
    assert_eq!(Pool::new(0).queue_bound(), DEFAULT_QUEUE);
    assert_eq!(Pool::new(5).queue(0).workers(), 5);

    const N: usize = 200;
    let runs = Runs::new(N);
    let seen = runs.clone();
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let names = threads.clone();
    let results: Vec<usize> = Pool::new(0)
        .map(&Context::background(), 0..N, move |_ctx, n| {
            let _run = seen.start(n);
            names.lock().unwrap().insert(thread::current().id());
            if n < procs {
                wait_until(
                    "max_procs jobs running at once",
                    || seen.max_running.load(SeqCst),
                    |&k| k >= procs,
                );
            }
            n
        })
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(sorted(results), (0..N).collect::<Vec<_>>());
    assert_eq!(runs.max_running.load(SeqCst), procs);
    assert_eq!(threads.lock().unwrap().len(), procs);
}

/// A queue of 0 is a rendezvous: at most one job per worker is in flight (pulled and not yet
/// read), and the map still delivers everything.
#[test]
fn a_map_with_queue_0_delivers_everything_one_job_per_worker_in_flight() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(a_map_with_queue_0_delivers_everything_one_job_per_worker_in_flight),
        a_map_with_queue_0_delivers_everything_one_job_per_worker_in_flight_body,
    );
}

fn a_map_with_queue_0_delivers_everything_one_job_per_worker_in_flight_body() {
    const N: usize = 2000;
    for workers in [1, 2, 3] {
        for ordered in [false, true] {
            let case = format!("{workers} workers, ordered {ordered}");
            let tally = Tally::default();
            let pool = Pool::new(workers).queue(0);
            let f = |_ctx: &Context, n: usize| {
                if n % 100 == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
                n
            };
            let input = tally.input(0..N);
            let results = if ordered {
                pool.map_ordered(&Context::background(), input, f)
            } else {
                pool.map(&Context::background(), input, f)
            };
            let mut delivered = Vec::new();
            for r in results {
                delivered.push(r.unwrap());
                tally.read_one();
            }
            if !ordered {
                delivered.sort_unstable();
            }
            assert_eq!(delivered, (0..N).collect::<Vec<_>>(), "{case}");
            assert!(
                tally.max_lead() <= workers,
                "{case}: lead {}",
                tally.max_lead()
            );
        }
    }
}

/// An input whose `next` panics: the panic reaches the reader (the input is pulled on its
/// thread), and the map, dropped while it unwinds, still cancels its jobs' context and joins
/// its workers (no worker holds the job function any more).
#[test]
fn an_input_that_panics_reaches_the_reader_and_the_workers_are_joined() {
    let _leaks = common::no_leaks();
    hang_guard(
        "an_input_that_panics_reaches_the_reader_and_the_workers_are_joined",
        an_input_that_panics_body,
    );
}

fn an_input_that_panics_body() {
    let probe = Arc::new(());
    let held = probe.clone();
    let contexts = Arc::new(Mutex::new(Vec::new()));
    let kept = contexts.clone();
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let input = (0..100usize).inspect(|&n| assert!(n != 5, "the input broke at {n}"));
        let results = Pool::new(2)
            .queue(2)
            .map(&Context::background(), input, move |ctx, n| {
                let _held = &held;
                kept.lock().unwrap().push(ctx.clone());
                n
            });
        results.map(Result::unwrap).count()
    }));
    let payload = read.expect_err("the input's panic reaches the reader");
    assert_eq!(common::panic_message(&*payload), "the input broke at 5");
    assert_eq!(Arc::strong_count(&probe), 1, "a worker outlived the map");
    for ctx in contexts.lock().unwrap().iter() {
        assert!(ctx.is_done());
    }
}

/// `into_unrun` of a map never read returns nothing and pulls nothing; of a map read to its
/// end, nothing.
#[test]
fn into_unrun_of_a_map_never_read_or_read_to_its_end_is_empty() {
    let _leaks = common::no_leaks();
    let tally = Tally::default();
    let results = Pool::new(2).map(&Context::background(), tally.input(0..10), |_, n| n);
    assert!(results.into_unrun().is_empty());
    assert_eq!(tally.pulled(), 0);
    let mut results = Pool::new(2).map(&Context::background(), tally.input(0..10), |_, n| n);
    assert_eq!(results.by_ref().count(), 10);
    assert!(results.into_unrun().is_empty());
}

/// A map over an empty input ends at once, with nothing unrun.
#[test]
fn an_empty_input_ends_at_once() {
    let _leaks = common::no_leaks();
    hang_guard(
        stringify!(an_empty_input_ends_at_once),
        an_empty_input_ends_at_once_body,
    );
}

fn an_empty_input_ends_at_once_body() {
    let mut results = Pool::new(3).map(&Context::background(), std::iter::empty::<u8>(), |_, n| n);
    assert!(results.next().is_none());
    assert!(results.into_unrun().is_empty());
}

/// Cross-check of the job-accounting helper: it fails on a job both delivered and unrun.
#[test]
#[should_panic(expected = "delivered and unrun")]
fn the_accounting_check_catches_a_job_that_ran_and_came_back() {
    let _leaks = common::no_leaks();
    let runs = Runs::new(3);
    drop(runs.start(0));
    drop(runs.start(1));
    check_accounting("self-check", &[0, 1], &[1, 2], 3, &runs);
}
