//! The async form of the one-shot map (`Pool::map_stream`, `Pool::map_stream_ordered` →
//! `MapStream`), checked for behaviour, on a current-thread runtime (the consumer and the
//! worker tasks share one thread) and on a two-worker multi-thread runtime (`block_on` polls
//! the consumer on the test's thread, the worker tasks run on the runtime's):
//!
//! * every job's result comes back exactly once, in input order for the ordered form, the same
//!   multiset in completion order for the other;
//! * the input is polled lazily, never more than `queue + workers` ahead of what the consumer
//!   has read; a consumer that stops reading holds the worker tasks back; an input that is not
//!   ready does not stop the results of the jobs already pulled;
//! * once the pool's context is done no queued job starts, the stream ends, and every pulled
//!   job either delivered its result or comes back from `into_unrun`, never both;
//! * a panicking job is that job's `JobFailed`, and its worker task goes on;
//! * the runtime of the worker tasks shutting down under a map ends it: the jobs that ran are
//!   reported aborted, the rest come back unrun, nothing hangs.
//!
//! No assertion depends on how fast anything runs: where a test needs a state, it waits for
//! it, bounded by `common::PATIENCE`.

#![cfg(feature = "tokio")]

mod common;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::pool::{
    check_accounting, current_thread, eventually, multi_thread, on_both_runtimes, sorted, Runs,
    Tally,
};
use common::{watchdog, HOUR};
use ctxkit::pool::{JobFailed, MapStream, Pool};
use ctxkit::{procs, Context, Error};
use futures::{Stream, StreamExt as _};

// ===== helpers =====

/// A map stream over `input` with `f`, ordered or not.
fn map_stream<S, F, Fut, T>(
    pool: Pool,
    ctx: &Context,
    input: S,
    ordered: bool,
    f: F,
) -> MapStream<S, T>
where
    S: Stream,
    S::Item: Send + 'static,
    F: Fn(Context, S::Item) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    if ordered {
        pool.map_stream_ordered(ctx, input, f)
    } else {
        pool.map_stream(ctx, input, f)
    }
}

/// Reads every result (each must be `Ok`), reporting each read to `tally`.
async fn read_all<S>(results: &mut MapStream<S, usize>, tally: &Tally) -> Vec<usize>
where
    S: Stream + Unpin,
    S::Item: Send + 'static,
{
    let mut delivered = Vec::new();
    while let Some(result) = results.next().await {
        delivered.push(result.expect("no job panics"));
        tally.read_one();
    }
    delivered
}

// ===== results =====

#[test]
fn map_stream_delivers_every_result_exactly_once() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        const N: usize = 20_000;
        for ordered in [false, true] {
            let runs = Runs::new(N);
            let seen = runs.clone();
            let tally = Tally::default();
            let pool = Pool::new(3).queue(16);
            let mut results = map_stream(
                pool,
                &Context::background(),
                tally.input_stream(0..N),
                ordered,
                move |_ctx, n| {
                    let run = seen.start(n);
                    async move {
                        if n % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                        drop(run);
                        n * 2
                    }
                },
            );
            let mut delivered = read_all(&mut results, &tally).await;
            if !ordered {
                delivered.sort_unstable();
            }
            assert_eq!(delivered, (0..N).map(|n| n * 2).collect::<Vec<_>>());
            assert_eq!(runs.ran().len(), N);
            assert_eq!(runs.total(), N);
        }
    });
}

/// No more than `workers` jobs run at once, and three workers do run three at once (the first
/// three jobs wait for it); every job runs in a worker task, no more than three of them.
#[test]
fn a_map_stream_runs_up_to_its_workers_jobs_at_once_in_worker_tasks() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        const N: usize = 300;
        let runs = Runs::new(N);
        let seen = runs.clone();
        let tasks = Arc::new(Mutex::new(HashSet::new()));
        let ids = tasks.clone();
        let tally = Tally::default();
        let mut results = Pool::new(3).queue(4).map_stream(
            &Context::background(),
            tally.input_stream(0..N),
            move |_ctx, n| {
                let seen = seen.clone();
                let ids = ids.clone();
                async move {
                    let _run = seen.start(n);
                    let task = tokio::task::try_id().expect("a job runs in a task");
                    ids.lock().unwrap().insert(task);
                    if n < 3 {
                        eventually(
                            "three jobs running at once",
                            || seen.max_running.load(SeqCst),
                            |&k| k >= 3,
                        )
                        .await;
                    }
                    n
                }
            },
        );
        let delivered = read_all(&mut results, &tally).await;
        assert_eq!(sorted(delivered), (0..N).collect::<Vec<_>>());
        assert_eq!(runs.max_running.load(SeqCst), 3);
        assert!(tasks.lock().unwrap().len() <= 3);
    });
}

/// The ordered form yields input order although job 0 finishes after jobs 1..=5.
#[test]
fn map_stream_ordered_yields_input_order_whatever_the_completion_order() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        const N: usize = 200;
        let finished = Arc::new(Mutex::new(Vec::new()));
        let log = finished.clone();
        let tally = Tally::default();
        let mut results = Pool::new(3).queue(8).map_stream_ordered(
            &Context::background(),
            tally.input_stream(0..N),
            move |_ctx, n| {
                let log = log.clone();
                async move {
                    if n == 0 {
                        eventually(
                            "jobs 1..=5 finished before job 0",
                            || log.lock().unwrap().len(),
                            |&k| k >= 5,
                        )
                        .await;
                    }
                    log.lock().unwrap().push(n);
                    n
                }
            },
        );
        let delivered = read_all(&mut results, &tally).await;
        assert_eq!(delivered, (0..N).collect::<Vec<_>>());
        let finished = finished.lock().unwrap();
        let zero_at = finished.iter().position(|&n| n == 0).unwrap();
        assert!(zero_at >= 5, "setup: job 0 finished early");
    });
}

/// The unordered form yields in completion order (job 0 returns only once the consumer read
/// another result), the same multiset as the ordered form.
#[test]
fn map_stream_yields_in_completion_order_the_same_multiset() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        const N: usize = 500;
        let first_read = Arc::new(AtomicBool::new(false));
        let flag = first_read.clone();
        let f = move |_ctx: Context, n: usize| {
            let flag = flag.clone();
            async move {
                if n == 0 {
                    eventually(
                        "the consumer read a result before job 0's",
                        || flag.load(SeqCst),
                        |&read| read,
                    )
                    .await;
                } else if n % 13 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                n % 7
            }
        };
        let mut results = Pool::new(2).queue(4).map_stream(
            &Context::background(),
            futures::stream::iter(0..N),
            f.clone(),
        );
        let first = results.next().await.unwrap().unwrap();
        first_read.store(true, SeqCst);
        let mut unordered = vec![first];
        while let Some(r) = results.next().await {
            unordered.push(r.unwrap());
        }
        assert_eq!(unordered.len(), N);
        assert!(
            first != 0 || unordered[1..].contains(&0),
            "job 0 came first"
        );
        let mut results = Pool::new(2).queue(4).map_stream_ordered(
            &Context::background(),
            futures::stream::iter(0..N),
            f,
        );
        let mut ordered = Vec::new();
        while let Some(r) = results.next().await {
            ordered.push(r.unwrap());
        }
        assert_eq!(ordered, (0..N).map(|n| n % 7).collect::<Vec<_>>());
        assert_eq!(sorted(unordered), sorted(ordered));
    });
}

/// `MapStream` is a `Stream`: `StreamExt` combinators work on it too.
#[test]
fn a_map_stream_is_a_stream() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        let results = Pool::new(2).map_stream_ordered(
            &Context::background(),
            futures::stream::iter(1..=7u64),
            |_ctx, n| async move { n * n },
        );
        let squares: Vec<u64> = results.map(Result::unwrap).collect().await;
        assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49]);
    });
}

// ===== laziness and the bound =====

#[test]
fn the_input_is_never_pulled_more_than_the_bound_ahead_of_the_reader() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        const N: usize = 600;
        for (workers, queue) in [(1, 0), (2, 0), (1, 3), (3, 5), (4, 1), (2, 64)] {
            for ordered in [false, true] {
                let case = format!("{workers} workers, queue {queue}, ordered {ordered}");
                let tally = Tally::default();
                let mut results = map_stream(
                    Pool::new(workers).queue(queue),
                    &Context::background(),
                    tally.input_stream(0..N),
                    ordered,
                    |_ctx, n| async move {
                        if n % 17 == 0 {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        n
                    },
                );
                let delivered = read_all(&mut results, &tally).await;
                assert_eq!(sorted(delivered), (0..N).collect::<Vec<_>>(), "{case}");
                assert_eq!(tally.pulled(), N, "{case}");
                assert!(
                    tally.max_lead() <= workers + queue,
                    "{case}: pulled {} ahead of the reader",
                    tally.max_lead()
                );
            }
        }
    });
}

/// Nothing is polled and nothing runs before the first read; a consumer that stops reading
/// holds the worker tasks back; reading on delivers the rest.
#[test]
fn a_consumer_that_stops_reading_holds_the_worker_tasks_back() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        const N: usize = 1000;
        const WORKERS: usize = 2;
        const QUEUE: usize = 3;
        const READ: usize = 2;
        for ordered in [false, true] {
            let case = format!("ordered {ordered}");
            let tally = Tally::default();
            let runs = Runs::new(N);
            let seen = runs.clone();
            let mut results = map_stream(
                Pool::new(WORKERS).queue(QUEUE),
                &Context::background(),
                tally.input_stream(0..N),
                ordered,
                move |_ctx, n| {
                    let run = seen.start(n);
                    async move {
                        drop(run);
                        n
                    }
                },
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_eq!((tally.pulled(), runs.total()), (0, 0), "{case}: not lazy");
            for _ in 0..READ {
                results.next().await.unwrap().unwrap();
                tally.read_one();
            }
            let (ran, pulled) = eventually(
                "the pulled jobs ran",
                || (runs.total(), tally.pulled()),
                |(ran, pulled)| ran == pulled,
            )
            .await;
            assert!(pulled <= READ + WORKERS + QUEUE, "{case}: pulled {pulled}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(
                (runs.total(), tally.pulled()),
                (ran, pulled),
                "{case}: the map went on while nobody read"
            );
            let rest = read_all(&mut results, &tally).await;
            assert_eq!(READ + rest.len(), N, "{case}");
            assert_eq!(runs.ran().len(), N, "{case}");
        }
    });
}

/// A million-item input, one result read (or a hundred), then the stream dropped: at most the
/// bound ahead of the reads was pulled.
#[test]
fn a_million_item_input_with_an_early_break_pulls_at_most_the_bound() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        for ordered in [false, true] {
            for read in [1, 100] {
                let tally = Tally::default();
                let mut results = map_stream(
                    Pool::new(2).queue(8),
                    &Context::background(),
                    tally.input_stream(0..1_000_000usize),
                    ordered,
                    |_ctx, n| async move { n },
                );
                for _ in 0..read {
                    results.next().await.unwrap().unwrap();
                    tally.read_one();
                }
                drop(results);
                assert!(
                    tally.max_lead() <= 10 && tally.pulled() <= read + 10,
                    "ordered {ordered}, read {read}: pulled {}, lead {}",
                    tally.pulled(),
                    tally.max_lead()
                );
            }
        }
    });
}

/// An input that is not ready (a channel): the results of the jobs pulled so far still come,
/// more come as items arrive, and the stream ends when the input does.
#[test]
fn results_flow_while_the_input_is_not_ready() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        let (feed, input) = futures::channel::mpsc::unbounded::<usize>();
        let mut results = Pool::new(2).queue(2).map_stream_ordered(
            &Context::background(),
            input,
            |_ctx, n| async move { n * 3 },
        );
        for n in 0..3 {
            feed.unbounded_send(n).unwrap();
        }
        for n in 0..3 {
            assert_eq!(results.next().await, Some(Ok(n * 3)));
        }
        // Nothing is ready: the stream waits (and is woken by the input).
        let reader = tokio::spawn(async move {
            let mut rest = Vec::new();
            while let Some(r) = results.next().await {
                rest.push(r.unwrap());
            }
            rest
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            !reader.is_finished(),
            "the stream ended with the input open"
        );
        for n in 3..10 {
            feed.unbounded_send(n).unwrap();
        }
        drop(feed);
        let rest = reader.await.unwrap();
        assert_eq!(rest, (3..10).map(|n| n * 3).collect::<Vec<_>>());
    });
}

// ===== cancellation =====

/// Every worker runs a job that waits for the pool's context; a task cancels the parent: the
/// running jobs deliver, no queued job starts, the stream ends, `into_unrun` has the rest.
#[test]
fn once_the_context_is_done_no_queued_job_starts() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
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
                tokio::spawn(async move {
                    eventually(
                        "every worker runs a job",
                        || runs.total(),
                        |&n| n >= WORKERS,
                    )
                    .await;
                    cancel.cancel();
                })
            };
            let mut results = map_stream(
                Pool::new(WORKERS).queue(QUEUE),
                &ctx,
                tally.input_stream(0..1000),
                ordered,
                move |ctx, n| {
                    let run = seen.start(n);
                    async move {
                        let err = ctx.done().await;
                        assert_eq!(err, Error::Canceled);
                        drop(run);
                        n
                    }
                },
            );
            let delivered = read_all(&mut results, &tally).await;
            canceler.await.unwrap();
            let unrun = results.into_unrun().await;
            assert_eq!(
                runs.total(),
                WORKERS,
                "{case}: a job started after the cancel"
            );
            assert!(tally.pulled() <= WORKERS + QUEUE, "{case}");
            if ordered {
                assert!(delivered.windows(2).all(|w| w[0] < w[1]), "{case}");
            }
            check_accounting(&case, &delivered, &unrun, tally.pulled(), &runs);
        }
    });
}

/// Quick jobs that check their context; one cancels the parent. At most one job per worker
/// starts on a done context (the instant between its worker's check and the cancel), the map
/// ends long before the input, and the accounting holds.
#[test]
fn a_cancel_in_the_middle_ends_the_map_and_accounts_for_every_pulled_job() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        const N: usize = 100_000;
        const TRIGGER: usize = 500;
        const WORKERS: usize = 2;
        for ordered in [false, true] {
            let case = format!("ordered {ordered}");
            let (ctx, cancel) = Context::background().with_cancel().into_parts();
            let cancel = Arc::new(cancel);
            let tally = Tally::default();
            let runs = Runs::new(N);
            let seen = runs.clone();
            let late = Arc::new(AtomicUsize::new(0));
            let late_seen = late.clone();
            let mut results = map_stream(
                Pool::new(WORKERS).queue(4),
                &ctx,
                tally.input_stream(0..N),
                ordered,
                move |ctx, n| {
                    let run = seen.start(n);
                    if ctx.is_done() {
                        late_seen.fetch_add(1, SeqCst);
                    }
                    let cancel = cancel.clone();
                    async move {
                        if n == TRIGGER {
                            cancel.cancel();
                        } else if n > TRIGGER {
                            ctx.done().await;
                        } else if n % 50 == 0 {
                            tokio::task::yield_now().await;
                        }
                        drop(run);
                        n
                    }
                },
            );
            let delivered = read_all(&mut results, &tally).await;
            let unrun = results.into_unrun().await;
            assert!(tally.pulled() < N, "{case}: the map did not end early");
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
    });
}

#[test]
fn a_map_stream_on_a_done_context_pulls_and_runs_nothing() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        let ctx = Context::background().with_cancel();
        ctx.cancel();
        for ordered in [false, true] {
            let tally = Tally::default();
            let ran = Arc::new(AtomicUsize::new(0));
            let count = ran.clone();
            let mut results = map_stream(
                Pool::new(2).queue(4),
                &ctx,
                tally.input_stream(0..1000usize),
                ordered,
                move |_ctx, n| {
                    count.fetch_add(1, SeqCst);
                    async move { n }
                },
            );
            assert!(results.next().await.is_none());
            assert!(results.next().await.is_none(), "fused");
            assert!(results.into_unrun().await.is_empty());
            assert_eq!((tally.pulled(), ran.load(SeqCst)), (0, 0));
        }
    });
}

/// Dropping the stream cancels the jobs' context and aborts the worker tasks: the running
/// jobs' futures are dropped without completing, and no queued job starts.
#[test]
fn dropping_a_map_stream_cancels_its_context_and_drops_the_running_jobs() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        let runs = Runs::new(100);
        let seen = runs.clone();
        let contexts = Arc::new(Mutex::new(Vec::new()));
        let kept = contexts.clone();
        let completed = Arc::new(AtomicUsize::new(0));
        let done = completed.clone();
        let mut results = Pool::new(2).queue(4).map_stream(
            &Context::background(),
            futures::stream::iter(0..100usize),
            move |ctx, n| {
                let run = (n > 0).then(|| seen.start(n));
                kept.lock().unwrap().push(ctx);
                let done = done.clone();
                async move {
                    if n > 0 {
                        tokio::time::sleep(HOUR).await; // ignores the context
                    }
                    drop(run);
                    done.fetch_add(1, SeqCst);
                    n
                }
            },
        );
        assert_eq!(results.next().await, Some(Ok(0)));
        eventually("both workers busy", || runs.total(), |&n| n == 2).await;
        drop(results);
        eventually(
            "the running jobs' futures dropped",
            || runs.ended(),
            |&n| n == 2,
        )
        .await;
        assert_eq!(completed.load(SeqCst), 1, "only job 0 completed");
        assert_eq!(runs.total(), 2, "a queued job started");
        for ctx in contexts.lock().unwrap().iter() {
            assert_eq!(ctx.err(), Some(Error::Canceled));
        }
    });
}

// ===== panics =====

/// One worker task; job 3 panics in its first poll, job 6 after an await with a non-string
/// payload. Each is that job's `JobFailed`; the other jobs deliver, all in the same task.
#[test]
fn a_panicking_job_is_its_failure_and_its_worker_task_goes_on() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        let tasks = Arc::new(Mutex::new(HashSet::new()));
        let ids = tasks.clone();
        let mut results = Pool::new(1).queue(2).map_stream_ordered(
            &Context::background(),
            futures::stream::iter(0..10usize),
            move |_ctx, n| {
                let ids = ids.clone();
                async move {
                    ids.lock().unwrap().insert(tokio::task::try_id());
                    match n {
                        3 => panic!("job {n} failed"),
                        6 => {
                            tokio::task::yield_now().await;
                            std::panic::panic_any(7u8)
                        }
                        _ => n * 10,
                    }
                }
            },
        );
        let mut all = Vec::new();
        while let Some(r) = results.next().await {
            all.push(r);
        }
        assert_eq!(all.len(), 10);
        for (n, result) in all.iter().enumerate() {
            match n {
                3 => {
                    let failed: &JobFailed = result.as_ref().unwrap_err();
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
        let tasks = tasks.lock().unwrap();
        assert_eq!(tasks.len(), 1, "the panics cost the worker task: {tasks:?}");
        assert!(!tasks.contains(&None), "a job ran outside a task");
    });
}

// ===== sizes =====

#[test]
fn pool_new_0_runs_max_procs_worker_tasks() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        const N: usize = 200;
        let procs = procs::max_procs();
        let runs = Runs::new(N);
        let seen = runs.clone();
        let tally = Tally::default();
        let mut results = Pool::new(0).map_stream(
            &Context::background(),
            tally.input_stream(0..N),
            move |_ctx, n| {
                let seen = seen.clone();
                async move {
                    let _run = seen.start(n);
                    if n < procs {
                        eventually(
                            "max_procs jobs at once",
                            || seen.max_running.load(SeqCst),
                            |&k| k >= procs,
                        )
                        .await;
                    }
                    n
                }
            },
        );
        let delivered = read_all(&mut results, &tally).await;
        assert_eq!(sorted(delivered), (0..N).collect::<Vec<_>>());
        assert_eq!(runs.max_running.load(SeqCst), procs);
    });
}

#[test]
fn a_map_stream_with_queue_0_delivers_everything_one_job_per_worker_in_flight() {
    let _leaks = common::no_leaks();
    on_both_runtimes(|| async {
        const N: usize = 2000;
        for workers in [1, 2, 3] {
            for ordered in [false, true] {
                let case = format!("{workers} workers, ordered {ordered}");
                let tally = Tally::default();
                let mut results = map_stream(
                    Pool::new(workers).queue(0),
                    &Context::background(),
                    tally.input_stream(0..N),
                    ordered,
                    |_ctx, n| async move {
                        if n % 100 == 0 {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        n
                    },
                );
                let delivered = read_all(&mut results, &tally).await;
                assert_eq!(sorted(delivered), (0..N).collect::<Vec<_>>(), "{case}");
                assert!(
                    tally.max_lead() <= workers,
                    "{case}: lead {}",
                    tally.max_lead()
                );
            }
        }
    });
}

#[test]
#[should_panic(
    expected = "ctxkit::pool: map_stream needs a tokio runtime to start its worker tasks"
)]
fn map_stream_outside_a_runtime_panics() {
    let _leaks = common::no_leaks();
    let _results = Pool::new(1).map_stream(
        &Context::background(),
        futures::stream::iter([1u8]),
        |_ctx, n| async move { n },
    );
}

// ===== the runtime shuts down under a map =====

/// How a test ends the worker tasks' runtime.
#[derive(Clone, Copy, Debug)]
enum Shutdown {
    Drop,
    TimeoutZero,
}

/// Every worker task runs a job that sleeps an hour; the runtime shuts down; the stream,
/// read on another executor, yields each of those jobs as aborted, then ends; the rest of the
/// pulled jobs come back unrun.
fn runtime_shutdown_case(multi: bool, shutdown: Shutdown, ordered: bool) {
    const WORKERS: usize = 2;
    const QUEUE: usize = 3;
    let case = format!("multi-thread {multi}, {shutdown:?}, ordered {ordered}");
    let rt = if multi {
        multi_thread()
    } else {
        current_thread()
    };
    let tally = Tally::default();
    let runs = Runs::new(100);
    let seen = runs.clone();
    let results = rt.block_on(async {
        let mut results = map_stream(
            Pool::new(WORKERS).queue(QUEUE),
            &Context::background(),
            tally.input_stream(0..100usize),
            ordered,
            move |_ctx, n| {
                let run = seen.start(n);
                async move {
                    tokio::time::sleep(HOUR).await; // ignores its context
                    drop(run);
                    n
                }
            },
        );
        tokio::select! {
            r = results.next() => panic!("{case}: a result: {r:?}"),
            _ = eventually("every worker runs a job", || runs.total(), |&n| n >= WORKERS) => {}
        }
        results
    });
    match shutdown {
        Shutdown::Drop => drop(rt),
        Shutdown::TimeoutZero => rt.shutdown_timeout(Duration::ZERO),
    }
    let (outcomes, unrun) = watchdog(&case, move || {
        futures::executor::block_on(async move {
            let mut results = results;
            let mut outcomes = Vec::new();
            while let Some(r) = results.next().await {
                outcomes.push(r);
            }
            (outcomes, results.into_unrun().await)
        })
    });
    let mut aborted = Vec::new();
    for outcome in outcomes {
        let failed = outcome.expect_err("no job completed");
        assert!(
            failed.is_aborted() && !failed.is_panic(),
            "{case}: {failed:?}"
        );
        assert_eq!(
            failed.to_string(),
            format!(
                "ctxkit::pool: job {} aborted: its tokio runtime shut down before it finished",
                failed.index()
            )
        );
        aborted.push(usize::try_from(failed.index()).unwrap());
    }
    if ordered {
        assert!(aborted.windows(2).all(|w| w[0] < w[1]), "{case}");
    }
    assert_eq!(runs.total(), WORKERS, "{case}");
    assert_eq!(runs.ended(), WORKERS, "{case}: job futures leaked");
    check_accounting(&case, &aborted, &unrun, tally.pulled(), &runs);
}

#[test]
fn a_runtime_dropped_under_a_map_stream_reports_the_running_jobs_aborted() {
    let _leaks = common::no_leaks();
    for multi in [false, true] {
        for ordered in [false, true] {
            runtime_shutdown_case(multi, Shutdown::Drop, ordered);
        }
    }
}

#[test]
fn a_runtime_shut_down_with_timeout_zero_under_a_map_stream() {
    let _leaks = common::no_leaks();
    for multi in [false, true] {
        runtime_shutdown_case(multi, Shutdown::TimeoutZero, false);
    }
}

/// A map stream made on a runtime that is gone before it is first polled: polled on another
/// executor, it ends (no worker can run), and every job it pulled comes back unrun.
#[test]
fn a_map_stream_whose_runtime_is_gone_before_the_first_poll_ends() {
    let _leaks = common::no_leaks();
    let rt = multi_thread();
    let tally = Tally::default();
    let ran = Arc::new(AtomicUsize::new(0));
    let count = ran.clone();
    let results = {
        let _enter = rt.enter();
        Pool::new(2).queue(3).map_stream(
            &Context::background(),
            tally.input_stream(0..100usize),
            move |_ctx, n| {
                count.fetch_add(1, SeqCst);
                async move { n }
            },
        )
    };
    drop(rt);
    let (delivered, unrun) = watchdog("first poll after the runtime is gone", move || {
        futures::executor::block_on(async move {
            let mut results = results;
            let mut delivered = Vec::new();
            while let Some(r) = results.next().await {
                delivered.push(r);
            }
            (delivered, results.into_unrun().await)
        })
    });
    assert!(delivered.is_empty(), "{delivered:?}");
    assert_eq!(ran.load(SeqCst), 0);
    assert_eq!(unrun, (0..tally.pulled()).collect::<Vec<_>>());
}
