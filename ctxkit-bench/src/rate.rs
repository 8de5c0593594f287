//! `rate.*` and `ticker.*` workloads (issue 4), measured as the Go runner (`bench/go`) and the
//! peers (`--peers`, `peers/rate.rs`, `peers/ticker.rs`) measure them: each method is in its
//! line's note, and the wait and ticker figures are defined at `wait_figures` and
//! `ticker_figures` below.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ctxkit::rate::{KeyedLimiter, Limiter, Ticker};
use ctxkit::Context;

use crate::harness::{contended_2, emit, ns_per_op, percentile, progress, runtime, stats, Cfg};
use crate::tower::process_cpu;

/// Runs the selected `rate.*` and `ticker.*` workloads.
pub(crate) fn run(cfg: &Cfg) {
    allow(cfg);
    allow_contended(cfg);
    keyed(cfg);
    wait(cfg);
    waiters_cpu(cfg);
    ticker(cfg);
    crate::rate_redis::run(cfg);
}

/// Always has tokens: 1e9 a second with a burst of 1e9 (real token arithmetic, not the
/// unlimited fast path), as the Go runner's and the peers' limiters.
pub(crate) fn big_limiter() -> Limiter {
    Limiter::new(1e9, 1_000_000_000).expect("valid limiter")
}

fn allow(cfg: &Cfg) {
    if !cfg.want(&["rate.allow"]) {
        return;
    }
    progress("rate.allow");
    let lim = big_limiter();
    let s = ns_per_op(cfg.micro_target(), cfg.micro_runs(), |n| {
        let mut ok = 0usize;
        for _ in 0..n {
            ok += usize::from(black_box(&lim).allow());
        }
        assert_eq!(ok, n, "the limiter always has tokens");
    });
    emit(
        "rate.allow",
        "ctxkit",
        "ns_per_op",
        Some(stats(&s)),
        "Limiter::new(1e9, 1e9).allow() on one thread: GCRA, Instant::now() plus one AtomicU64 compare-exchange under a sequence-locked configuration",
    );
}

fn allow_contended(cfg: &Cfg) {
    if !cfg.want(&["rate.allow_contended_2"]) {
        return;
    }
    progress("rate.allow_contended_2");
    let dur = Duration::from_millis(cfg.pick(500, 150));
    let lim = Arc::new(big_limiter());
    let op = || assert!(lim.allow(), "the limiter always has tokens");
    contended_2(dur / 10, op);
    let s: Vec<f64> = (0..7)
        .map(|_| {
            let (n, secs) = contended_2(dur, op);
            n as f64 / secs / 1e6
        })
        .collect();
    emit(
        "rate.allow_contended_2",
        "ctxkit",
        "mops_per_s",
        Some(stats(&s)),
        &format!(
            "Arc<Limiter::new(1e9, 1e9)> shared by 2 threads calling allow(), {} ms per batch; total",
            dur.as_millis()
        ),
    );
}

/// `rate.keyed_allow_1k_keys`: ns per keyed decision on one thread.
pub(crate) const KEYED_1: &str = "rate.keyed_allow_1k_keys";
/// `rate.keyed_allow_1k_keys_2threads`: the same from 2 threads at once, on one limiter.
pub(crate) const KEYED_2: &str = "rate.keyed_allow_1k_keys_2threads";

/// The keys of the keyed workloads: `0..KEYS` as `u64`, round-robin.
pub(crate) const KEYS: u64 = 1_000;

/// What every keyed line's note says about the method (after the implementation's own words).
pub(crate) const KEYED_METHOD: &str = "1,000 u64 keys round-robin, every key made before timing (one pass, then the harness's warm-up), so the steady state of existing keys is timed (no insertion, no prune); 1e9/s with a burst of 1e9 per key: a key is used again only 1,000 calls later, by when its bucket has refilled to full, so every call is allowed from a full bucket (the refilling regime) with the real token arithmetic";

/// The next key after `key`, round-robin over `0..KEYS`.
fn next_key(key: u64) -> u64 {
    if key + 1 == KEYS {
        0
    } else {
        key + 1
    }
}

/// `rate.keyed_allow_1k_keys`: ns per `allow(key)` on one thread, keys round-robin, after one
/// pass that makes every key.
pub(crate) fn keyed_one_thread(cfg: &Cfg, allow: impl Fn(u64) -> bool) -> Vec<f64> {
    for key in 0..KEYS {
        assert!(allow(key), "a new key's bucket is full");
    }
    ns_per_op(cfg.micro_target(), cfg.micro_runs(), |n| {
        let (mut key, mut ok) = (0u64, 0usize);
        for _ in 0..n {
            ok += usize::from(allow(black_box(key)));
            key = next_key(key);
        }
        assert_eq!(ok, n, "the keyed limiter always has tokens");
    })
}

/// Length of one batch of `rate.keyed_allow_1k_keys_2threads`.
pub(crate) fn keyed_two_threads_batch(cfg: &Cfg) -> Duration {
    Duration::from_millis(cfg.pick(200, 30))
}

/// `rate.keyed_allow_1k_keys_2threads`: 2 threads call `allow(key)` on the same keys at once,
/// each round-robin over all of them, the second starting halfway (so they rarely meet on one
/// key), for [`keyed_two_threads_batch`] per batch; per batch, ns per call on each thread
/// (2 x the batch's wall time / the calls of both; equal to the one-thread figure if the
/// threads do not slow each other). Also returns the batches' total decisions a second.
pub(crate) fn keyed_two_threads(
    cfg: &Cfg,
    allow: impl Fn(u64) -> bool + Sync,
) -> (Vec<f64>, Vec<f64>) {
    const THREADS: u64 = 2;
    for key in 0..KEYS {
        assert!(allow(key), "a new key's bucket is full");
    }
    let batch = |duration: Duration| -> (f64, f64) {
        let stop = AtomicBool::new(false);
        let barrier = Barrier::new(THREADS as usize + 1);
        let calls = AtomicU64::new(0);
        let mut start = None;
        std::thread::scope(|s| {
            for thread in 0..THREADS {
                let (allow, stop, barrier, calls) = (&allow, &stop, &barrier, &calls);
                s.spawn(move || {
                    let mut key = thread * KEYS / THREADS;
                    let (mut n, mut ok) = (0u64, 0u64);
                    barrier.wait();
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..KEYS {
                            ok += u64::from(allow(black_box(key)));
                            key = next_key(key);
                        }
                        n += KEYS;
                    }
                    assert_eq!(ok, n, "the keyed limiter always has tokens");
                    calls.fetch_add(n, Ordering::Relaxed);
                });
            }
            barrier.wait();
            start = Some(Instant::now());
            std::thread::sleep(duration);
            stop.store(true, Ordering::Relaxed);
        });
        let seconds = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
        let calls = calls.into_inner() as f64;
        (THREADS as f64 * seconds * 1e9 / calls, calls / seconds)
    };
    let duration = keyed_two_threads_batch(cfg);
    batch(duration / 5); // warm-up
    (0..cfg.micro_runs()).map(|_| batch(duration)).unzip()
}

/// The note of a keyed two-thread line: `what`, the method, and the median total rate.
pub(crate) fn keyed_two_threads_note(cfg: &Cfg, what: &str, per_second: &[f64]) -> String {
    format!(
        "{what}, shared by 2 threads each calling it over all 1,000 keys (the second starting at key 500), {} ms per batch; ns per call on each thread (2 x wall time / calls of both; total median {:.1} M decisions/s); {KEYED_METHOD}",
        keyed_two_threads_batch(cfg).as_millis(),
        stats(per_second).value / 1e6
    )
}

fn keyed(cfg: &Cfg) {
    let make = || KeyedLimiter::<u64>::new(1e9, 1_000_000_000).expect("valid limiter");
    let what = "KeyedLimiter::<u64>::new(1e9, 1e9) (std RandomState) allow(&key)";
    if cfg.want(&[KEYED_1]) {
        progress(KEYED_1);
        let limiter = make();
        let samples = keyed_one_thread(cfg, |key| limiter.allow(&key));
        emit(
            KEYED_1,
            "ctxkit",
            "ns_per_op",
            Some(stats(&samples)),
            &format!("{what} on one thread; {KEYED_METHOD}"),
        );
    }
    if cfg.want(&[KEYED_2]) {
        progress(KEYED_2);
        let limiter = make();
        let (samples, per_second) = keyed_two_threads(cfg, |key| limiter.allow(&key));
        emit(
            KEYED_2,
            "ctxkit",
            "ns_per_op",
            Some(stats(&samples)),
            &keyed_two_threads_note(cfg, what, &per_second),
        );
    }
}

/// The figures of one run of sequential waits at 1,000/s, burst 1.
pub(crate) struct WaitFigures {
    err_pct: f64,
    p99: f64,
    p50: f64,
    max: f64,
}

/// From (call, return) instants of sequential waits at 1,000/s: the schedule is
/// s_0 = call_0, s_i = max(call_i, s_(i-1) + 1 ms); lateness = return_i - s_i.
pub(crate) fn wait_figures(calls: &[(Instant, Instant)]) -> WaitFigures {
    let n = calls.len();
    let span = calls[n - 1].1.duration_since(calls[0].1).as_secs_f64();
    let achieved = (n - 1) as f64 / span;
    let mut due = calls[0].0;
    let mut late = Vec::with_capacity(n);
    for (i, &(call, ret)) in calls.iter().enumerate() {
        if i > 0 {
            due = (due + Duration::from_millis(1)).max(call);
        }
        late.push(ret.saturating_duration_since(due).as_secs_f64() * 1e6);
    }
    WaitFigures {
        err_pct: 100.0 * (achieved / 1000.0 - 1.0),
        p99: percentile(&late, 99.0),
        p50: percentile(&late, 50.0),
        max: late.iter().copied().fold(0.0, f64::max),
    }
}

pub(crate) fn emit_wait(implementation: &str, figs: &[WaitFigures], waits: usize, note: &str) {
    let median = |f: fn(&WaitFigures) -> f64| stats(&figs.iter().map(f).collect::<Vec<_>>()).value;
    emit(
        "rate.wait_accuracy",
        implementation,
        "error_pct",
        Some(stats(&figs.iter().map(|f| f.err_pct).collect::<Vec<_>>())),
        &format!("{note}; {waits} waits per run; signed: (achieved/1000 - 1) * 100, achieved = (waits-1)/(last return - first return)"),
    );
    emit(
        "rate.wait_lateness_p99",
        implementation,
        "us",
        Some(stats(&figs.iter().map(|f| f.p99).collect::<Vec<_>>())),
        &format!(
            "{note}; {waits} waits per run; lateness against s_i = max(call_i, s_(i-1) + 1 ms); medians over runs: p50 {:.1} us, max {:.1} us",
            median(|f| f.p50),
            median(|f| f.max)
        ),
    );
}

fn wait(cfg: &Cfg) {
    if !cfg.want(&["rate.wait_accuracy", "rate.wait_lateness_p99"]) {
        return;
    }
    let waits = cfg.pick(2000usize, 300);
    let runs = cfg.pick(7, 3);
    let limiter = || Limiter::new(1000.0, 1).expect("valid limiter");

    progress("rate.wait_* ctxkit/thread");
    let figs: Vec<WaitFigures> = (0..runs)
        .map(|_| {
            let lim = limiter();
            let ctx = Context::background();
            let mut calls = Vec::with_capacity(waits);
            for _ in 0..waits {
                let call = Instant::now();
                lim.blocking_wait(&ctx).expect("no deadline");
                calls.push((call, Instant::now()));
            }
            wait_figures(&calls)
        })
        .collect();
    emit_wait(
        "ctxkit/thread",
        &figs,
        waits,
        "Limiter::new(1000, 1), sequential blocking_wait(&background) on a plain thread (parks until 150 us before the token, then spins)",
    );

    progress("rate.wait_* ctxkit/async");
    let rt = runtime();
    let figs: Vec<WaitFigures> = (0..runs)
        .map(|_| {
            let calls = rt
                .block_on(rt.spawn(async move {
                    let lim = limiter();
                    let ctx = Context::background();
                    let mut calls = Vec::with_capacity(waits);
                    for _ in 0..waits {
                        let call = Instant::now();
                        lim.wait(&ctx).await.expect("no deadline");
                        calls.push((call, Instant::now()));
                    }
                    calls
                }))
                .expect("task");
            wait_figures(&calls)
        })
        .collect();
    emit_wait(
        "ctxkit/async",
        &figs,
        waits,
        "Limiter::new(1000, 1), sequential wait(&background).await in a task on a 2-worker multi-thread runtime (sleeps on the ctxkit-timer thread until 300 us before the token, then yields to the executor)",
    );
}

// ===== many waiters at once =====

/// `rate.waiters_cpu_20k`.
pub(crate) const WAITERS_CPU: &str = "rate.waiters_cpu_20k";
/// Waiters of `rate.waiters_cpu_20k`, and the limiter's rate (per second, burst 1): the last
/// wait is due about 1 s after the first.
pub(crate) const WAITERS: usize = 20_000;
/// How long a run may take before it is given up (a thundering herd may take far longer than
/// the 1 s the schedule needs): its figure is then the CPU share until that moment. 10 s (3 s
/// with `--quick`).
pub(crate) fn waiters_cap(cfg: &Cfg) -> Duration {
    Duration::from_secs(cfg.pick(10, 3))
}

/// One run of a waiters workload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitersRun {
    /// Process CPU time / wall time, in percent of one CPU.
    pub(crate) cpu_pct: f64,
    /// Wall time from the first spawn until the last wait returned (or the cap), ms.
    pub(crate) wall_ms: f64,
    /// Waits that had returned by then.
    pub(crate) returned: usize,
    /// Median and p99 lateness of the waits, µs, when all returned (see [`Due`]), and the p99
    /// of the waits due after the first 0.1 s (once every task is spawned and registered).
    pub(crate) lateness: Option<(f64, f64, f64)>,
}

/// When wait `k` (in order of return) of a waiters run is due, to measure its lateness.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Due {
    /// At `start + k * spacing` (a sleep to a known instant).
    FromStart(Duration),
    /// At `first + k * spacing`, `first` being when the first wait returned: a limiter's first
    /// wait takes the burst's token at once, and wait `k` is due `k` intervals after it. (It
    /// leaves out the first wait's own latency, a fraction of a microsecond.)
    FromFirst(Duration),
}

/// Median and p99 of the lateness of sorted return times (ns after `start`), in µs, and the
/// p99 of those due after the first 0.1 s.
fn lateness(returns: &mut [u64], due: Due) -> (f64, f64, f64) {
    returns.sort_unstable();
    let (origin, spacing) = match due {
        Due::FromStart(spacing) => (0, spacing),
        Due::FromFirst(spacing) => (returns[0], spacing),
    };
    let spacing = spacing.as_nanos() as u64;
    let late: Vec<f64> = returns
        .iter()
        .enumerate()
        .map(|(k, &at)| (at as f64 - (origin + k as u64 * spacing) as f64) / 1e3)
        .collect();
    let steady = (Duration::from_millis(100).as_nanos() as u64 / spacing.max(1)) as usize;
    let steady_p99 = match late.get(steady..) {
        Some(rest) if !rest.is_empty() => percentile(rest, 99.0),
        _ => f64::NAN,
    };
    (percentile(&late, 50.0), percentile(&late, 99.0), steady_p99)
}

/// One run: a fresh 2-worker runtime; a driver task reads the process CPU clock and the time
/// `start`, spawns `n` tasks, task i awaiting `wait(i, start)` once, and waits (a `Notify`)
/// until the last has returned, or `cap` has passed; then reads both clocks again. The runtime
/// is dropped afterwards (with any task still waiting).
pub(crate) fn waiters_run<M, F>(n: usize, cap: Duration, due: Due, wait: M) -> WaitersRun
where
    M: Fn(usize, Instant) -> F + Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = runtime();
    let run = rt.block_on(rt.spawn(async move {
        let returned = Arc::new(AtomicUsize::new(0));
        let all = Arc::new(tokio::sync::Notify::new());
        let returns: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let cpu0 = process_cpu();
        let start = Instant::now();
        for i in 0..n {
            let (waiting, returned, all) = (wait(i, start), returned.clone(), all.clone());
            let returns = returns.clone();
            tokio::spawn(async move {
                waiting.await;
                let at = start.elapsed().as_nanos() as u64;
                returns[i].store(at, Ordering::Relaxed);
                if returned.fetch_add(1, Ordering::AcqRel) + 1 == n {
                    all.notify_one();
                }
            });
        }
        let _ = tokio::time::timeout(cap, all.notified()).await;
        let wall = start.elapsed();
        let cpu = process_cpu() - cpu0;
        let returned = returned.load(Ordering::Acquire);
        WaitersRun {
            cpu_pct: 100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            wall_ms: wall.as_secs_f64() * 1e3,
            returned,
            lateness: (returned == n).then(|| {
                let mut returns: Vec<u64> = returns
                    .iter()
                    .map(|at| at.load(Ordering::Relaxed))
                    .collect();
                lateness(&mut returns, due)
            }),
        }
    }));
    rt.shutdown_background();
    run.expect("the driver task")
}

/// A warm-up run of a tenth of the waiters, then 7 runs (3 with `--quick`) of `WAITERS`.
pub(crate) fn waiters_runs<M, F>(cfg: &Cfg, due: Due, wait: impl Fn() -> M) -> Vec<WaitersRun>
where
    M: Fn(usize, Instant) -> F + Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let cap = waiters_cap(cfg);
    waiters_run(WAITERS / 10, cap, due, wait());
    (0..cfg.pick(7, 3))
        .map(|_| waiters_run(WAITERS, cap, due, wait()))
        .collect()
}

/// Prints the line of `implementation` from its runs; `how` says how a task waits.
pub(crate) fn emit_waiters(
    cfg: &Cfg,
    implementation: &str,
    runs: &[WaitersRun],
    due: Due,
    how: &str,
) {
    let cpu: Vec<f64> = runs.iter().map(|r| r.cpu_pct).collect();
    let wall = stats(&runs.iter().map(|r| r.wall_ms).collect::<Vec<_>>()).value;
    let unfinished = runs.iter().filter(|r| r.returned < WAITERS).count();
    let cap = if unfinished == 0 {
        String::new()
    } else {
        let returned = stats(&runs.iter().map(|r| r.returned as f64).collect::<Vec<_>>()).value;
        format!("; {unfinished} of {} runs had not finished after the {} s cap (median {returned:.0} of 20,000 waits returned): their figure is the CPU share until the cap", runs.len(), waiters_cap(cfg).as_secs())
    };
    let late: Vec<(f64, f64, f64)> = runs.iter().filter_map(|r| r.lateness).collect();
    let late = if late.is_empty() {
        String::new()
    } else {
        let median = stats(&late.iter().map(|l| l.0).collect::<Vec<_>>()).value;
        let p99 = stats(&late.iter().map(|l| l.1).collect::<Vec<_>>()).value;
        let steady = stats(&late.iter().map(|l| l.2).collect::<Vec<_>>()).value;
        format!("; lateness (the k-th return against the k-th instant of the schedule, {how_late}), medians over runs: median {median:.0} us, p99 {p99:.0} us, p99 of the waits due after the first 0.1 s {steady:.0} us", how_late = match due {
            Due::FromStart(_) => "start + k * 50 us",
            Due::FromFirst(_) => "the first return + k * 50 us",
        })
    };
    emit(
        WAITERS_CPU,
        implementation,
        "cpu_pct",
        Some(stats(&cpu)),
        &format!("20,000 tasks spawned at once by a driver task on a fresh 2-worker multi-thread runtime, each: {how}; process CPU time (clock_gettime(CLOCK_PROCESS_CPUTIME_ID): every thread, user + system) / wall time from the first spawn until the last wait returned, in percent of one CPU; median wall {wall:.0} ms{cap}{late}; one warm-up run of 2,000 waiters first"),
    );
}

fn waiters_cpu(cfg: &Cfg) {
    if !cfg.want(&[WAITERS_CPU]) {
        return;
    }
    progress(&format!("{WAITERS_CPU} ctxkit"));
    let due = Due::FromFirst(Duration::from_secs(1) / WAITERS as u32);
    let runs = waiters_runs(cfg, due, || {
        let limiter = Arc::new(Limiter::new(WAITERS as f64, 1).expect("valid limiter"));
        move |_, _| {
            let limiter = limiter.clone();
            async move {
                limiter
                    .wait(&Context::background())
                    .await
                    .expect("no deadline");
            }
        }
    });
    emit_waiters(
        cfg,
        "ctxkit",
        &runs,
        due,
        "limiter.wait(&Context::background()).await once on one Arc<Limiter::new(20000, 1)> (each reserves its instant, then sleeps in the 500 us slot of the sleep registry that its instant falls in: one ctxkit-timer entry per slot wakes the slot's waiters at its end)",
    );
}

/// Mean |interval - 1 ms| (us), max interval (us) and ticks per second, from receiver-side
/// timestamps whose first is the ticker's creation.
pub(crate) fn ticker_figures(stamps: &[Instant]) -> (f64, f64, f64) {
    let intervals: Vec<f64> = stamps
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_secs_f64() * 1e6)
        .collect();
    let mad = intervals.iter().map(|x| (x - 1000.0).abs()).sum::<f64>() / intervals.len() as f64;
    let max = intervals.iter().copied().fold(0.0, f64::max);
    let per_s = intervals.len() as f64
        / stamps[stamps.len() - 1]
            .duration_since(stamps[0])
            .as_secs_f64();
    (mad, max, per_s)
}

pub(crate) fn emit_ticker(
    implementation: &str,
    figs: &[(f64, f64, f64)],
    ticks: usize,
    note: &str,
) {
    let col = |i: usize| figs.iter().map(|f| [f.0, f.1, f.2][i]).collect::<Vec<_>>();
    emit(
        "ticker.accuracy",
        implementation,
        "us",
        Some(stats(&col(0))),
        &format!(
            "{note}; {ticks} ticks per run, receiver-side timestamps, the first at creation; mean |interval - 1 ms|; medians over runs: {:.0} ticks per second, max interval {:.1} us",
            stats(&col(2)).value,
            stats(&col(1)).value
        ),
    );
}

fn ticker(cfg: &Cfg) {
    if !cfg.want(&["ticker.accuracy"]) {
        return;
    }
    let runs = cfg.pick(7, 3);
    let ticks = cfg.pick(1000usize, 200);
    let period = Duration::from_millis(1);

    progress("ticker.accuracy ctxkit/thread");
    let figs: Vec<_> = (0..runs)
        .map(|_| {
            let mut stamps = Vec::with_capacity(ticks + 1);
            let mut ticker = Ticker::new(period).expect("valid period");
            stamps.push(Instant::now());
            for _ in 0..ticks {
                ticker.blocking_tick();
                stamps.push(Instant::now());
            }
            ticker_figures(&stamps)
        })
        .collect();
    emit_ticker(
        "ctxkit/thread",
        &figs,
        ticks,
        "Ticker::new(1 ms), blocking_tick() on a plain thread (parks until 150 us before the tick, then spins); MissedTickBehavior::Skip",
    );

    progress("ticker.accuracy ctxkit/async");
    let rt = runtime();
    let figs: Vec<_> = (0..runs)
        .map(|_| {
            let stamps = rt
                .block_on(rt.spawn(async move {
                    let mut stamps = Vec::with_capacity(ticks + 1);
                    let mut ticker = Ticker::new(period).expect("valid period");
                    stamps.push(Instant::now());
                    for _ in 0..ticks {
                        ticker.tick().await;
                        stamps.push(Instant::now());
                    }
                    stamps
                }))
                .expect("task");
            ticker_figures(&stamps)
        })
        .collect();
    emit_ticker(
        "ctxkit/async",
        &figs,
        ticks,
        "Ticker::new(1 ms), tick().await in a task on a 2-worker multi-thread runtime (sleeps on the ctxkit-timer thread until 300 us before the tick, then yields to the executor); MissedTickBehavior::Skip",
    );
}
