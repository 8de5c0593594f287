//! Randomized stress of the pools, in all four forms: random worker counts (1-4), queue bounds
//! (0-8), job counts, random panics, and a random ending (read to the end, a cancel from
//! another thread or from a job, an early break, a shutdown with or without a grace period, a
//! drop, and for the async forms a runtime shutting down). Whatever happens, each job
//! either ran exactly once (its result delivered, or for the long-lived pools its run recorded
//! once) or came back unrun, never both, never neither; nothing hangs (every round is
//! bounded); the input is never pulled more than the bound ahead of the reader; and no job
//! starts once its worker has seen the pool's context done.
//!
//! Each test runs rounds for about two seconds (`POOL_STRESS_SECS` to change it). The seed is
//! printed; set `POOL_STRESS_SEED` to replay a run's choices (thread timing still varies). The jobs' planned panics carry the
//! marker `pool-stress:`; a panic hook keeps them off the test output.

#![cfg(feature = "tokio")]

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use common::{bounded, clock_seed, panic_message, watchdog, XorShift, HOUR, PATIENCE};
use ctxkit::pool::{JobFailed, Pool, SubmitErrorKind};
use ctxkit::{CancelHandle, Context};
use futures::StreamExt as _;

/// How long each test runs rounds, unless `POOL_STRESS_SECS` says otherwise.
fn run_for() -> Duration {
    let secs = std::env::var("POOL_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    Duration::from_secs(secs)
}
/// The marker of a planned panic.
const MARKER: &str = "pool-stress:";

fn seed(test: &str) -> u64 {
    let seed: u64 = std::env::var("POOL_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(clock_seed);
    println!("{test} seed: {seed} (replay with POOL_STRESS_SEED={seed})");
    quiet_planned_panics();
    seed
}

/// Keeps the planned panics off the output; any other panic is reported as usual.
fn quiet_planned_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !panic_message(info.payload()).starts_with(MARKER) {
                default(info);
            }
        }));
    });
}

/// One round's shape.
#[derive(Clone, Copy, Debug)]
struct Shape {
    workers: usize,
    queue: usize,
    jobs: usize,
    /// Jobs whose index is a multiple of this panic (0: none).
    panic_every: usize,
    /// Jobs whose index is a multiple of this sleep a little (0: none).
    slow_every: usize,
}

impl Shape {
    fn random(rng: &mut XorShift) -> Shape {
        Shape {
            workers: 1 + rng.below(4),
            queue: rng.below(9),
            jobs: match rng.below(10) {
                0 => 0,
                1 => 2000,
                _ => rng.below(300),
            },
            panic_every: [0, 0, 3, 10, 57][rng.below(5)],
            slow_every: [0, 0, 7, 40][rng.below(4)],
        }
    }

    fn panics(&self, n: usize) -> bool {
        self.panic_every != 0 && n % self.panic_every == 0
    }

    fn slow(&self, n: usize) -> bool {
        self.slow_every != 0 && n % self.slow_every == 0
    }

    fn pool(&self) -> Pool {
        Pool::new(self.workers).queue(self.queue)
    }
}

/// What every round records about its jobs.
struct Log {
    /// Per job: how many times it started.
    starts: Vec<AtomicUsize>,
    /// Jobs that found the pool's context done when they started.
    late: AtomicUsize,
    /// Pulled from the input (maps) / number of the last read (maps).
    pulled: AtomicUsize,
    read: AtomicUsize,
    max_lead: AtomicUsize,
}

impl Log {
    fn new(jobs: usize) -> Arc<Log> {
        Arc::new(Log {
            starts: (0..jobs).map(|_| AtomicUsize::new(0)).collect(),
            late: AtomicUsize::new(0),
            pulled: AtomicUsize::new(0),
            read: AtomicUsize::new(0),
            max_lead: AtomicUsize::new(0),
        })
    }

    /// A job starts: records it; panics if the shape says so.
    fn run(&self, shape: &Shape, ctx: &Context, n: usize) -> usize {
        self.starts[n].fetch_add(1, SeqCst);
        if ctx.is_done() {
            self.late.fetch_add(1, SeqCst);
        }
        if shape.slow(n) {
            thread::sleep(Duration::from_micros(100));
        }
        assert!(!shape.panics(n), "{MARKER} job {n}");
        n * 2 + 1
    }

    fn pull(&self) {
        let pulled = self.pulled.fetch_add(1, SeqCst) + 1;
        self.max_lead
            .fetch_max(pulled - self.read.load(SeqCst), SeqCst);
    }

    fn ran(&self, case: &str) -> BTreeSet<usize> {
        let mut ran = BTreeSet::new();
        for (n, count) in self.starts.iter().enumerate() {
            match count.load(SeqCst) {
                0 => {}
                1 => {
                    ran.insert(n);
                }
                more => panic!("{case}: job {n} ran {more} times"),
            }
        }
        ran
    }
}

/// How a map round ends.
#[derive(Clone, Copy, Debug)]
enum MapEnd {
    /// Read every result.
    ReadAll,
    /// Another thread cancels once this many jobs have started.
    CancelAfter(usize),
    /// The job with this index cancels.
    CancelInJob(usize),
    /// Stop reading after this many results, then `into_unrun`.
    BreakUnrun(usize),
    /// Stop reading after this many results, then drop the map.
    BreakDrop(usize),
}

impl MapEnd {
    fn random(rng: &mut XorShift, jobs: usize) -> MapEnd {
        let k = rng.below(jobs.max(1) + 5);
        match rng.below(5) {
            0 => MapEnd::ReadAll,
            1 => MapEnd::CancelAfter(k),
            2 => MapEnd::CancelInJob(k),
            3 => MapEnd::BreakUnrun(k),
            _ => MapEnd::BreakDrop(k),
        }
    }
}

/// A map's outcomes: checks each against the shape and returns the indices delivered.
#[track_caller]
fn check_outcomes(case: &str, shape: &Shape, outcomes: &[Result<usize, JobFailed>]) -> Vec<usize> {
    outcomes
        .iter()
        .map(|outcome| match outcome {
            Ok(value) => {
                assert!(value % 2 == 1, "{case}: {value}");
                let n = value / 2;
                assert!(!shape.panics(n), "{case}: job {n} should have panicked");
                n
            }
            Err(failed) => {
                let n = usize::try_from(failed.index()).unwrap();
                assert!(failed.is_panic(), "{case}: {failed:?}");
                assert!(shape.panics(n), "{case}: job {n} failed: {failed}");
                assert_eq!(failed.message(), format!("{MARKER} job {n}"), "{case}");
                n
            }
        })
        .collect()
}

/// The accounting of a map that ended: each of `0..pulled` was delivered (ran), came back
/// unrun (never ran), or, when results were dropped unread (`dropped_results`), ran without
/// being delivered; never two of these; never neither.
#[track_caller]
fn check_map_accounting(
    case: &str,
    log: &Log,
    delivered: &[usize],
    unrun: Option<&[usize]>,
    dropped_results: bool,
    ordered: bool,
) {
    let pulled = log.pulled.load(SeqCst);
    let ran = log.ran(case);
    let delivered_set: BTreeSet<usize> = delivered.iter().copied().collect();
    assert_eq!(
        delivered_set.len(),
        delivered.len(),
        "{case}: a result twice"
    );
    if ordered {
        assert!(
            delivered.windows(2).all(|w| w[0] < w[1]),
            "{case}: not in input order: {delivered:?}"
        );
    }
    assert!(
        delivered_set.is_subset(&ran),
        "{case}: delivered without running"
    );
    assert!(
        ran.iter().all(|&n| n < pulled),
        "{case}: ran a job never pulled"
    );
    // Without `unrun` (the map was dropped), the unrun jobs are gone: only "none ran twice"
    // (checked by `ran`) holds.
    if let Some(unrun) = unrun {
        let unrun_set: BTreeSet<usize> = unrun.iter().copied().collect();
        assert_eq!(unrun_set.len(), unrun.len(), "{case}: unrun twice");
        assert!(
            unrun.windows(2).all(|w| w[0] < w[1]),
            "{case}: unrun not in input order"
        );
        let both: Vec<_> = ran.intersection(&unrun_set).collect();
        assert!(both.is_empty(), "{case}: ran and came back unrun: {both:?}");
        let all: BTreeSet<usize> = ran.union(&unrun_set).copied().collect();
        assert_eq!(all, (0..pulled).collect(), "{case}: pulled jobs lost");
    }
    if !dropped_results {
        assert_eq!(ran, delivered_set, "{case}: ran but not delivered");
    }
}

// ===== threads: map =====

fn map_round(rng: &mut XorShift, round: usize) {
    let shape = Shape::random(rng);
    let ordered = rng.below(2) == 0;
    let end = MapEnd::random(rng, shape.jobs);
    let case = format!("map round {round}: {shape:?}, ordered {ordered}, {end:?}");
    let log = Log::new(shape.jobs);
    let c = case.clone();
    let l = log.clone();
    watchdog(&case, move || map_round_body(&c, shape, ordered, end, &l));
    let late = log.late.load(SeqCst);
    assert!(
        late <= shape.workers,
        "{case}: {late} jobs started on a done context"
    );
    let lead = log.max_lead.load(SeqCst);
    assert!(
        lead <= shape.workers + shape.queue,
        "{case}: pulled {lead} ahead of the reader"
    );
}

fn map_round_body(case: &str, shape: Shape, ordered: bool, end: MapEnd, log: &Arc<Log>) {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let cancel = Arc::new(Mutex::new(Some(cancel)));
    let cancel_now = {
        let cancel = cancel.clone();
        move || {
            if let Some(cancel) = cancel.lock().unwrap().take() {
                cancel.cancel();
            }
        }
    };
    let finished = Arc::new(AtomicBool::new(false));
    let canceler = match end {
        MapEnd::CancelAfter(k) => {
            let log = log.clone();
            let finished = finished.clone();
            let cancel_now = cancel_now.clone();
            Some(thread::spawn(move || {
                let give_up = Instant::now() + PATIENCE;
                while log.starts.iter().map(|c| c.load(SeqCst)).sum::<usize>() < k
                    && !finished.load(SeqCst)
                    && Instant::now() < give_up
                {
                    thread::yield_now();
                }
                cancel_now();
            }))
        }
        _ => None,
    };
    let job_log = log.clone();
    let trigger = match end {
        MapEnd::CancelInJob(k) => Some(k),
        _ => None,
    };
    let f = move |ctx: &Context, n: usize| {
        if trigger == Some(n) {
            cancel_now();
        }
        job_log.run(&shape, ctx, n)
    };
    let input_log = log.clone();
    let input = (0..shape.jobs).inspect(move |_| input_log.pull());
    let mut results = if ordered {
        shape.pool().map_ordered(&ctx, input, f)
    } else {
        shape.pool().map(&ctx, input, f)
    };
    let limit = match end {
        MapEnd::BreakUnrun(k) | MapEnd::BreakDrop(k) => k,
        _ => usize::MAX,
    };
    let mut outcomes = Vec::new();
    let mut ended = false;
    while outcomes.len() < limit {
        match results.next() {
            Some(outcome) => {
                outcomes.push(outcome);
                log.read.fetch_add(1, SeqCst);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    finished.store(true, SeqCst);
    let delivered = check_outcomes(case, &shape, &outcomes);
    let broke_early = !ended;
    match end {
        MapEnd::BreakDrop(_) => {
            drop(results);
            check_map_accounting(case, log, &delivered, None, broke_early, ordered);
        }
        _ => {
            let unrun = results.into_unrun();
            check_map_accounting(case, log, &delivered, Some(&unrun), broke_early, ordered);
        }
    }
    if let Some(canceler) = canceler {
        canceler.join().unwrap();
    }
    if matches!(end, MapEnd::ReadAll) {
        assert_eq!(
            sorted(delivered),
            (0..shape.jobs).collect::<Vec<_>>(),
            "{case}: not every job delivered"
        );
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[test]
fn stress_map() {
    let _leaks = common::no_leaks();
    let mut rng = XorShift::new(seed("stress_map"));
    let stop_at = Instant::now() + run_for();
    let mut rounds = 0;
    while Instant::now() < stop_at {
        map_round(&mut rng, rounds);
        rounds += 1;
    }
    println!("stress_map: {rounds} rounds");
    assert!(rounds > 10);
}

// ===== threads: Workers =====

/// A job of a long-lived pool: its number, and a count of its drops.
struct Job {
    n: usize,
    drops: Arc<Vec<AtomicUsize>>,
}

impl Drop for Job {
    fn drop(&mut self) {
        self.drops[self.n].fetch_add(1, SeqCst);
    }
}

/// How a long-lived pool's round ends.
#[derive(Clone, Copy, Debug)]
enum PoolEnd {
    /// `shutdown(background)`.
    Shutdown,
    /// `shutdown` with a grace period of this many microseconds.
    Grace(u64),
    /// Another thread cancels the parent once this many jobs are accepted; then
    /// `shutdown(background)`.
    CancelAfter(usize),
    /// Drop the pool.
    Drop,
}

impl PoolEnd {
    fn random(rng: &mut XorShift, jobs: usize) -> PoolEnd {
        match rng.below(4) {
            0 => PoolEnd::Shutdown,
            1 => PoolEnd::Grace(rng.below(3000) as u64),
            2 => PoolEnd::CancelAfter(rng.below(jobs.max(1) + 3)),
            _ => PoolEnd::Drop,
        }
    }
}

/// What the submitters of a round record.
#[derive(Default)]
struct Submissions {
    /// Per submitter, in its order: the jobs accepted.
    accepted: Vec<Vec<usize>>,
    refused: Vec<usize>,
}

/// Checks a long-lived pool's round: every accepted job ran exactly once or came back unrun
/// (or, after a drop, did not run); refused jobs never ran; every job value was dropped exactly
/// once; unrun jobs keep each submitter's order; the failures are exactly the panicked jobs.
#[allow(
    clippy::too_many_arguments,
    reason = "a check with everything it checks"
)]
fn check_pool_round(
    case: &str,
    shape: &Shape,
    end: PoolEnd,
    log: &Log,
    subs: &Submissions,
    unrun: Option<&[usize]>,
    failed: &[JobFailed],
    drops: &[AtomicUsize],
    submitted: usize,
) {
    let ran = log.ran(case);
    let accepted: BTreeSet<usize> = subs.accepted.iter().flatten().copied().collect();
    let refused: BTreeSet<usize> = subs.refused.iter().copied().collect();
    assert_eq!(
        accepted.len() + refused.len(),
        submitted,
        "{case}: a submission neither accepted nor refused"
    );
    assert!(accepted.is_disjoint(&refused), "{case}");
    assert!(ran.is_subset(&accepted), "{case}: ran a job not accepted");
    // Without `unrun` (the pool was dropped), the queued jobs are gone: only "none ran twice"
    // and "each job value dropped once" hold.
    if let Some(unrun) = unrun {
        let unrun_set: BTreeSet<usize> = unrun.iter().copied().collect();
        assert_eq!(unrun_set.len(), unrun.len(), "{case}: unrun twice");
        let both: Vec<_> = ran.intersection(&unrun_set).collect();
        assert!(both.is_empty(), "{case}: ran and came back unrun: {both:?}");
        let all: BTreeSet<usize> = ran.union(&unrun_set).copied().collect();
        assert_eq!(all, accepted, "{case}: accepted jobs lost");
        for mine in &subs.accepted {
            let order: Vec<usize> = unrun.iter().copied().filter(|n| mine.contains(n)).collect();
            let expected: Vec<usize> = mine
                .iter()
                .copied()
                .filter(|n| unrun_set.contains(n))
                .collect();
            assert_eq!(order, expected, "{case}: unrun out of submission order");
        }
        if matches!(end, PoolEnd::Shutdown) {
            assert!(
                unrun.is_empty(),
                "{case}: shutdown(background) left jobs unrun"
            );
        }
    }
    // Failures: the panicked jobs that ran, each once, by their acceptance index (which the
    // test does not know across submitters: check the messages instead).
    let mut failed_jobs = Vec::new();
    for f in failed {
        assert!(f.is_panic(), "{case}: {f:?}");
        let n: usize = f
            .message()
            .strip_prefix(MARKER)
            .and_then(|rest| rest.trim().strip_prefix("job "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{case}: unexpected failure {f:?}"));
        failed_jobs.push(n);
    }
    let failed_set: BTreeSet<usize> = failed_jobs.iter().copied().collect();
    assert_eq!(
        failed_set.len(),
        failed_jobs.len(),
        "{case}: a failure twice"
    );
    if unrun.is_some() {
        let panicked: BTreeSet<usize> = ran.iter().copied().filter(|&n| shape.panics(n)).collect();
        assert_eq!(failed_set, panicked, "{case}: failures");
    }
    for (n, count) in drops.iter().enumerate().take(submitted) {
        assert_eq!(
            count.load(SeqCst),
            1,
            "{case}: job {n} dropped {count:?} times"
        );
    }
}

fn workers_round(rng: &mut XorShift, round: usize) {
    let shape = Shape::random(rng);
    let end = PoolEnd::random(rng, shape.jobs);
    let submitters = 1 + rng.below(3);
    let use_try = rng.below(3) == 0;
    let case = format!(
        "workers round {round}: {shape:?}, {end:?}, {submitters} submitters, try {use_try}"
    );
    let c = case.clone();
    watchdog(&case, move || {
        workers_round_body(&c, shape, end, submitters, use_try);
    });
}

fn workers_round_body(case: &str, shape: Shape, end: PoolEnd, submitters: usize, use_try: bool) {
    let log = Log::new(shape.jobs);
    let drops: Arc<Vec<AtomicUsize>> =
        Arc::new((0..shape.jobs).map(|_| AtomicUsize::new(0)).collect());
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let job_log = log.clone();
    let workers = shape.pool().start(&ctx, move |ctx, job: Job| {
        job_log.run(&shape, ctx, job.n);
    });
    let accepted_count = AtomicUsize::new(0);
    let canceled = AtomicBool::new(false);
    let cancel = Mutex::new(Some(cancel));
    let subs = Mutex::new(Submissions {
        accepted: vec![Vec::new(); submitters],
        refused: Vec::new(),
    });
    thread::scope(|s| {
        if let PoolEnd::CancelAfter(k) = end {
            let (accepted_count, canceled, cancel) = (&accepted_count, &canceled, &cancel);
            let total = shape.jobs;
            let subs = &subs;
            s.spawn(move || {
                let give_up = Instant::now() + PATIENCE;
                while accepted_count.load(SeqCst) < k
                    && {
                        let subs = subs.lock().unwrap();
                        subs.refused.len() + subs.accepted.iter().map(Vec::len).sum::<usize>()
                    } < total
                    && Instant::now() < give_up
                {
                    thread::yield_now();
                }
                if let Some(cancel) = cancel.lock().unwrap().take() {
                    cancel.cancel();
                }
                canceled.store(true, SeqCst);
            });
        }
        for who in 0..submitters {
            let (workers, subs, accepted_count, canceled) =
                (&workers, &subs, &accepted_count, &canceled);
            let drops = drops.clone();
            s.spawn(move || {
                for n in (who..shape.jobs).step_by(submitters) {
                    let was_canceled = canceled.load(SeqCst);
                    let job = Job {
                        n,
                        drops: drops.clone(),
                    };
                    let outcome = if use_try {
                        // A few tries, then give up.
                        let mut job = job;
                        let mut tries = 0;
                        loop {
                            match workers.try_submit(job) {
                                Err(e) if e.kind() == SubmitErrorKind::Full && tries < 50 => {
                                    tries += 1;
                                    job = e.into_job();
                                    thread::yield_now();
                                }
                                other => break other,
                            }
                        }
                    } else {
                        let patience =
                            Context::background().with_timeout(Duration::from_millis(20));
                        workers.submit(&patience, job)
                    };
                    match outcome {
                        Ok(()) => {
                            assert!(!was_canceled, "{case}: job {n} accepted after the cancel");
                            subs.lock().unwrap().accepted[who].push(n);
                            accepted_count.fetch_add(1, SeqCst);
                        }
                        Err(e) => {
                            if was_canceled {
                                assert_eq!(e.kind(), SubmitErrorKind::Closed, "{case}");
                            }
                            assert!(
                                matches!(
                                    e.kind(),
                                    SubmitErrorKind::Full
                                        | SubmitErrorKind::Closed
                                        | SubmitErrorKind::Context(_)
                                ),
                                "{case}: {e:?}"
                            );
                            let job = e.into_job();
                            assert_eq!(job.n, n, "{case}: another job came back");
                            subs.lock().unwrap().refused.push(n);
                        }
                    }
                }
            });
        }
    });
    let subs = subs.into_inner().unwrap();
    let (unrun, failed) = match end {
        PoolEnd::Shutdown | PoolEnd::CancelAfter(_) => {
            let report = workers.shutdown(&Context::background());
            (Some(report.unrun), report.failed)
        }
        PoolEnd::Grace(us) => {
            let grace = Context::background().with_timeout(Duration::from_micros(us));
            let report = workers.shutdown(&grace);
            (Some(report.unrun), report.failed)
        }
        PoolEnd::Drop => {
            drop(workers);
            (None, Vec::new())
        }
    };
    let unrun_numbers: Option<Vec<usize>> = unrun.as_ref().map(|u| u.iter().map(|j| j.n).collect());
    drop(unrun);
    check_pool_round(
        case,
        &shape,
        end,
        &log,
        &subs,
        unrun_numbers.as_deref(),
        &failed,
        &drops,
        shape.jobs,
    );
    if matches!(end, PoolEnd::CancelAfter(_) | PoolEnd::Grace(_)) {
        let late = log.late.load(SeqCst);
        assert!(
            late <= shape.workers,
            "{case}: {late} jobs started on a done context"
        );
    }
}

#[test]
fn stress_workers() {
    let _leaks = common::no_leaks();
    let mut rng = XorShift::new(seed("stress_workers"));
    let stop_at = Instant::now() + run_for();
    let mut rounds = 0;
    while Instant::now() < stop_at {
        workers_round(&mut rng, rounds);
        rounds += 1;
    }
    println!("stress_workers: {rounds} rounds");
    assert!(rounds > 10);
}

// ===== async: map_stream =====

fn runtime(multi: bool) -> tokio::runtime::Runtime {
    if multi {
        common::pool::multi_thread()
    } else {
        common::pool::current_thread()
    }
}

/// An async job: as [`Log::run`], with an await in the middle (a yield, or for slow jobs a
/// short sleep).
async fn run_async(log: Arc<Log>, shape: Shape, ctx: Context, n: usize) -> usize {
    log.starts[n].fetch_add(1, SeqCst);
    if ctx.is_done() {
        log.late.fetch_add(1, SeqCst);
    }
    if shape.slow(n) {
        tokio::time::sleep(Duration::from_micros(100)).await;
    } else if n % 3 == 0 {
        tokio::task::yield_now().await;
    }
    assert!(!shape.panics(n), "{MARKER} job {n}");
    n * 2 + 1
}

async fn map_stream_round(rng: &mut XorShift, round: usize, multi: bool) {
    let shape = Shape::random(rng);
    let ordered = rng.below(2) == 0;
    let end = MapEnd::random(rng, shape.jobs);
    let case = format!(
        "map_stream round {round} (multi-thread {multi}): {shape:?}, ordered {ordered}, {end:?}"
    );
    let log = Log::new(shape.jobs);
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let cancel: Arc<CancelHandle> = Arc::new(cancel);
    let finished = Arc::new(AtomicBool::new(false));
    let canceler = match end {
        MapEnd::CancelAfter(k) => {
            let (log, finished, cancel) = (log.clone(), finished.clone(), cancel.clone());
            Some(thread::spawn(move || {
                let give_up = Instant::now() + PATIENCE;
                while log.starts.iter().map(|c| c.load(SeqCst)).sum::<usize>() < k
                    && !finished.load(SeqCst)
                    && Instant::now() < give_up
                {
                    thread::yield_now();
                }
                cancel.cancel();
            }))
        }
        _ => None,
    };
    let trigger = match end {
        MapEnd::CancelInJob(k) => Some(k),
        _ => None,
    };
    let job_log = log.clone();
    let job_cancel = cancel.clone();
    let f = move |ctx: Context, n: usize| {
        if trigger == Some(n) {
            job_cancel.cancel();
        }
        run_async(job_log.clone(), shape, ctx, n)
    };
    let input_log = log.clone();
    let input = futures::stream::iter(0..shape.jobs).inspect(move |_| input_log.pull());
    let mut results = if ordered {
        shape.pool().map_stream_ordered(&ctx, input, f)
    } else {
        shape.pool().map_stream(&ctx, input, f)
    };
    let limit = match end {
        MapEnd::BreakUnrun(k) | MapEnd::BreakDrop(k) => k,
        _ => usize::MAX,
    };
    let mut outcomes = Vec::new();
    let mut ended = false;
    while outcomes.len() < limit {
        match results.next().await {
            Some(outcome) => {
                outcomes.push(outcome);
                log.read.fetch_add(1, SeqCst);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    finished.store(true, SeqCst);
    let delivered = check_outcomes(&case, &shape, &outcomes);
    match end {
        MapEnd::BreakDrop(_) => {
            drop(results);
            check_map_accounting(&case, &log, &delivered, None, !ended, ordered);
        }
        _ => {
            let unrun = results.into_unrun().await;
            check_map_accounting(&case, &log, &delivered, Some(&unrun), !ended, ordered);
        }
    }
    if let Some(canceler) = canceler {
        canceler.join().unwrap();
    }
    if matches!(end, MapEnd::ReadAll) {
        assert_eq!(
            sorted(delivered),
            (0..shape.jobs).collect::<Vec<_>>(),
            "{case}"
        );
    }
    let late = log.late.load(SeqCst);
    assert!(
        late <= shape.workers,
        "{case}: {late} jobs started on a done context"
    );
    let lead = log.max_lead.load(SeqCst);
    assert!(lead <= shape.workers + shape.queue, "{case}: lead {lead}");
}

/// A map stream whose runtime is dropped while its jobs sleep: read elsewhere, it yields the
/// running jobs as aborted (and any results that were in), then ends; accounting holds.
fn map_stream_runtime_drop_round(rng: &mut XorShift, round: usize) {
    let shape = Shape {
        jobs: 1 + rng.below(50),
        panic_every: 0,
        ..Shape::random(rng)
    };
    let multi = rng.below(2) == 0;
    let sleepy_from = rng.below(shape.jobs);
    let case = format!("map_stream runtime drop round {round} (multi {multi}): {shape:?}, jobs from {sleepy_from} sleep");
    let log = Log::new(shape.jobs);
    let rt = runtime(multi);
    let job_log = log.clone();
    let input_log = log.clone();
    let results = rt.block_on(async {
        let mut results = shape.pool().map_stream(
            &Context::background(),
            futures::stream::iter(0..shape.jobs).inspect(move |_| input_log.pull()),
            move |_ctx, n| {
                let log = job_log.clone();
                async move {
                    log.starts[n].fetch_add(1, SeqCst);
                    if n >= sleepy_from {
                        tokio::time::sleep(HOUR).await;
                    }
                    n * 2 + 1
                }
            },
        );
        // Read a few results, maybe none.
        let read = rng.below(sleepy_from + 1);
        let mut outcomes = Vec::new();
        for _ in 0..read {
            match tokio::time::timeout(Duration::from_millis(50), results.next()).await {
                Ok(Some(outcome)) => outcomes.push(outcome),
                _ => break,
            }
        }
        (results, outcomes)
    });
    drop(rt);
    let (results, mut outcomes) = results;
    let c = case.clone();
    let (rest, unrun) = watchdog(&case, move || {
        futures::executor::block_on(async move {
            let mut results = results;
            let mut rest = Vec::new();
            while let Some(r) = results.next().await {
                rest.push(r);
            }
            let _ = &c;
            (rest, results.into_unrun().await)
        })
    });
    outcomes.extend(rest);
    let mut delivered = Vec::new();
    for outcome in &outcomes {
        match outcome {
            Ok(value) => delivered.push(value / 2),
            Err(failed) => {
                assert!(failed.is_aborted(), "{case}: {failed:?}");
                delivered.push(usize::try_from(failed.index()).unwrap());
            }
        }
    }
    check_map_accounting(&case, &log, &delivered, Some(&unrun), false, false);
}

#[test]
fn stress_map_stream() {
    let _leaks = common::no_leaks();
    let mut rng = XorShift::new(seed("stress_map_stream"));
    let stop_at = Instant::now() + run_for();
    let mut rounds = 0;
    let current = runtime(false);
    let multi = runtime(true);
    while Instant::now() < stop_at {
        match rounds % 5 {
            0 => map_stream_runtime_drop_round(&mut rng, rounds),
            1 | 2 => current.block_on(bounded(map_stream_round(&mut rng, rounds, false))),
            _ => multi.block_on(bounded(map_stream_round(&mut rng, rounds, true))),
        }
        rounds += 1;
    }
    println!("stress_map_stream: {rounds} rounds");
    assert!(rounds > 10);
}

// ===== async: AsyncWorkers =====

async fn async_workers_round(rng: &mut XorShift, round: usize, multi: bool) {
    let shape = Shape::random(rng);
    let end = PoolEnd::random(rng, shape.jobs);
    let submitters = 1 + rng.below(3);
    let use_try = rng.below(3) == 0;
    let case = format!(
        "async workers round {round} (multi-thread {multi}): {shape:?}, {end:?}, {submitters} submitters, try {use_try}"
    );
    let log = Log::new(shape.jobs);
    let drops: Arc<Vec<AtomicUsize>> =
        Arc::new((0..shape.jobs).map(|_| AtomicUsize::new(0)).collect());
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    // Kept to the end of the round: dropping the handle would cancel.
    let cancel = Arc::new(cancel);
    let job_log = log.clone();
    let workers = Arc::new(shape.pool().start_async(&ctx, move |ctx, job: Job| {
        let log = job_log.clone();
        async move {
            let n = job.n;
            run_async(log, shape, ctx, n).await;
            drop(job);
        }
    }));
    let accepted_count = Arc::new(AtomicUsize::new(0));
    let canceled = Arc::new(AtomicBool::new(false));
    let subs = Arc::new(Mutex::new(Submissions {
        accepted: vec![Vec::new(); submitters],
        refused: Vec::new(),
    }));
    let canceler = match end {
        PoolEnd::CancelAfter(k) => {
            let (accepted_count, canceled, subs, cancel) = (
                accepted_count.clone(),
                canceled.clone(),
                subs.clone(),
                cancel.clone(),
            );
            let total = shape.jobs;
            Some(tokio::spawn(async move {
                let give_up = Instant::now() + PATIENCE;
                while accepted_count.load(SeqCst) < k
                    && {
                        let subs = subs.lock().unwrap();
                        subs.refused.len() + subs.accepted.iter().map(Vec::len).sum::<usize>()
                    } < total
                    && Instant::now() < give_up
                {
                    tokio::task::yield_now().await;
                }
                cancel.cancel();
                canceled.store(true, SeqCst);
            }))
        }
        _ => None,
    };
    let mut tasks = Vec::new();
    for who in 0..submitters {
        let (workers, subs, accepted_count, canceled, drops) = (
            workers.clone(),
            subs.clone(),
            accepted_count.clone(),
            canceled.clone(),
            drops.clone(),
        );
        let case = case.clone();
        tasks.push(tokio::spawn(async move {
            for n in (who..shape.jobs).step_by(submitters) {
                let was_canceled = canceled.load(SeqCst);
                let job = Job {
                    n,
                    drops: drops.clone(),
                };
                let outcome = if use_try {
                    let mut job = job;
                    let mut tries = 0;
                    loop {
                        match workers.try_submit(job) {
                            Err(e) if e.kind() == SubmitErrorKind::Full && tries < 50 => {
                                tries += 1;
                                job = e.into_job();
                                tokio::task::yield_now().await;
                            }
                            other => break other,
                        }
                    }
                } else {
                    let patience = Context::background().with_timeout(Duration::from_millis(20));
                    workers.submit(&patience, job).await
                };
                match outcome {
                    Ok(()) => {
                        assert!(!was_canceled, "{case}: job {n} accepted after the cancel");
                        subs.lock().unwrap().accepted[who].push(n);
                        accepted_count.fetch_add(1, SeqCst);
                    }
                    Err(e) => {
                        if was_canceled {
                            assert_eq!(e.kind(), SubmitErrorKind::Closed, "{case}");
                        }
                        let job = e.into_job();
                        assert_eq!(job.n, n, "{case}");
                        subs.lock().unwrap().refused.push(n);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    if let Some(canceler) = canceler {
        canceler.await.unwrap();
    }
    let workers = Arc::into_inner(workers).expect("the submitters are done");
    let (unrun, failed) = match end {
        PoolEnd::Shutdown | PoolEnd::CancelAfter(_) => {
            let report = workers.shutdown(&Context::background()).await;
            (Some(report.unrun), report.failed)
        }
        PoolEnd::Grace(us) => {
            let grace = Context::background().with_timeout(Duration::from_micros(us));
            let report = workers.shutdown(&grace).await;
            (Some(report.unrun), report.failed)
        }
        PoolEnd::Drop => {
            drop(workers);
            // The aborted tasks drop their jobs a moment later.
            let give_up = Instant::now() + PATIENCE;
            // (The refused ones were dropped at once: every job is waited for.)
            while drops.iter().any(|d| d.load(SeqCst) == 0) {
                assert!(
                    Instant::now() < give_up,
                    "{case}: queued jobs never dropped"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (None, Vec::new())
        }
    };
    let unrun_numbers: Option<Vec<usize>> = unrun.as_ref().map(|u| u.iter().map(|j| j.n).collect());
    drop(unrun);
    let subs = std::mem::take(&mut *subs.lock().unwrap());
    check_pool_round(
        &case,
        &shape,
        end,
        &log,
        &subs,
        unrun_numbers.as_deref(),
        &failed,
        &drops,
        shape.jobs,
    );
    if matches!(end, PoolEnd::CancelAfter(_) | PoolEnd::Grace(_)) {
        let late = log.late.load(SeqCst);
        assert!(
            late <= shape.workers,
            "{case}: {late} jobs started on a done context"
        );
    }
}

#[test]
fn stress_async_workers() {
    let _leaks = common::no_leaks();
    let mut rng = XorShift::new(seed("stress_async_workers"));
    let stop_at = Instant::now() + run_for();
    let mut rounds = 0;
    let current = runtime(false);
    let multi = runtime(true);
    while Instant::now() < stop_at {
        if rounds % 2 == 0 {
            current.block_on(bounded(async_workers_round(&mut rng, rounds, false)));
        } else {
            multi.block_on(bounded(async_workers_round(&mut rng, rounds, true)));
        }
        rounds += 1;
    }
    println!("stress_async_workers: {rounds} rounds");
    assert!(rounds > 10);
}
