//! `rate.*` on the peers: governor's direct rate limiter, and its keyed one for the
//! `rate.keyed_*` workloads, with its default clock (a TSC-based `quanta` clock, read without a
//! system call) and with std's `Instant` (ctxkit's one time base), on separate lines.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock, MonotonicClock, ReasonablyRealtime};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use super::peer;
use crate::harness::{contended_2, emit, ns_per_op, progress, runtime, stats, Cfg};
use crate::rate::{
    emit_wait, emit_waiters, keyed_one_thread, keyed_two_threads, keyed_two_threads_note,
    wait_figures, waiters_runs, Due, WaitFigures, KEYED_1, KEYED_2, KEYED_METHOD, WAITERS,
    WAITERS_CPU,
};

/// A direct (not keyed) governor limiter on clock `C`.
pub(crate) type Governor<C> =
    RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The governor line's `impl`: the crate and its version, and the clock if not the default.
pub(crate) fn implementation(clock: &str) -> String {
    let governor = peer!("governor", "PEER_VERSION_GOVERNOR");
    if clock.is_empty() {
        governor.to_owned()
    } else {
        format!("{governor}/{clock}")
    }
}

/// Always has tokens: 1e9 a second with a burst of 1e9, as ctxkit's and the Go runner's limiters.
pub(crate) fn big<C: Clock + Default>() -> Governor<C> {
    let rate = NonZeroU32::new(1_000_000_000).expect("non-zero");
    RateLimiter::direct_with_clock(Quota::per_second(rate), C::default())
}

/// A keyed governor limiter on clock `C`: a `DashMap` of states with std's `RandomState`.
pub(crate) type KeyedGovernor<C> =
    RateLimiter<u64, DashMapStateStore<u64>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One clock's `rate.keyed_*` lines, on limiters `make` gives (`constructor` names it).
fn keyed<C>(cfg: &Cfg, clock: &str, constructor: &str, make: impl Fn() -> KeyedGovernor<C>)
where
    C: Clock + Sync,
{
    let implementation = implementation(clock);
    let what = format!("{constructor} (Quota::per_second(1e9), burst 1e9; a DashMap with std's RandomState) check_key(&key)");
    if cfg.want(&[KEYED_1]) {
        progress(&format!("{KEYED_1} ({implementation})"));
        let limiter = make();
        let samples = keyed_one_thread(cfg, |key| limiter.check_key(&key).is_ok());
        emit(
            KEYED_1,
            &implementation,
            "ns_per_op",
            Some(stats(&samples)),
            &format!("{what} on one thread; {KEYED_METHOD}"),
        );
    }
    if cfg.want(&[KEYED_2]) {
        progress(&format!("{KEYED_2} ({implementation})"));
        let limiter = make();
        let (samples, per_second) = keyed_two_threads(cfg, |key| limiter.check_key(&key).is_ok());
        emit(
            KEYED_2,
            &implementation,
            "ns_per_op",
            Some(stats(&samples)),
            &keyed_two_threads_note(cfg, &what, &per_second),
        );
    }
}

/// One clock's lines.
fn measure<C>(cfg: &Cfg, clock: &str, clock_note: &str)
where
    C: Clock + ReasonablyRealtime + Default + Send + Sync + 'static,
{
    let implementation = implementation(clock);
    if cfg.want(&["rate.allow"]) {
        progress(&format!("rate.allow ({implementation})"));
        let limiter: Governor<C> = big();
        let samples = ns_per_op(cfg.micro_target(), cfg.micro_runs(), |n| {
            let mut ok = 0usize;
            for _ in 0..n {
                ok += usize::from(black_box(&limiter).check().is_ok());
            }
            assert_eq!(ok, n, "the limiter always has tokens");
        });
        emit(
            "rate.allow",
            &implementation,
            "ns_per_op",
            Some(stats(&samples)),
            &format!("RateLimiter::direct_with_clock(Quota::per_second(1e9), {clock_note}).check() on one thread (burst 1e9)"),
        );
    }
    if cfg.want(&["rate.allow_contended_2"]) {
        progress(&format!("rate.allow_contended_2 ({implementation})"));
        let duration = Duration::from_millis(cfg.pick(500, 150));
        let limiter: Arc<Governor<C>> = Arc::new(big());
        let op = || assert!(limiter.check().is_ok(), "the limiter always has tokens");
        contended_2(duration / 10, op);
        let samples: Vec<f64> = (0..7)
            .map(|_| {
                let (n, secs) = contended_2(duration, op);
                n as f64 / secs / 1e6
            })
            .collect();
        emit(
            "rate.allow_contended_2",
            &implementation,
            "mops_per_s",
            Some(stats(&samples)),
            &format!("Arc<governor limiter, {clock_note}> shared by 2 threads calling check(), {} ms per batch; total", duration.as_millis()),
        );
    }
    if cfg.want(&["rate.wait_accuracy", "rate.wait_lateness_p99"]) {
        progress(&format!("rate.wait_* ({implementation})"));
        let waits = cfg.pick(2000usize, 300);
        let runs = cfg.pick(7, 3);
        let rt = runtime();
        let figures: Vec<WaitFigures> = (0..runs)
            .map(|_| {
                let calls = rt
                    .block_on(rt.spawn(async move {
                        let per_second = NonZeroU32::new(1000).expect("non-zero");
                        let one = NonZeroU32::new(1).expect("non-zero");
                        let quota = Quota::per_second(per_second).allow_burst(one);
                        let limiter: Governor<C> =
                            RateLimiter::direct_with_clock(quota, C::default());
                        let mut calls = Vec::with_capacity(waits);
                        for _ in 0..waits {
                            let call = Instant::now();
                            limiter.until_ready().await;
                            calls.push((call, Instant::now()));
                        }
                        calls
                    }))
                    .expect("the bench task panicked");
                wait_figures(&calls)
            })
            .collect();
        emit_wait(
            &implementation,
            &figures,
            waits,
            &format!("governor Quota::per_second(1000).allow_burst(1) ({clock_note}), sequential until_ready().await in a task on a 2-worker multi-thread runtime (it sleeps with tokio's timer, 1 ms resolution)"),
        );
    }
}

/// Runs the selected `rate.*` workloads on the peers.
pub(crate) fn run(cfg: &Cfg) {
    waiters_cpu(cfg);
    measure::<DefaultClock>(
        cfg,
        "",
        "its default clock: quanta's TSC clock, no system call per read",
    );
    measure::<MonotonicClock>(
        cfg,
        "std-instant",
        "MonotonicClock: std's Instant, as ctxkit",
    );
    let quota = || Quota::per_second(NonZeroU32::new(1_000_000_000).expect("non-zero"));
    keyed::<DefaultClock>(
        cfg,
        "",
        "RateLimiter::keyed (its default clock: quanta's TSC clock)",
        || RateLimiter::keyed(quota()),
    );
    keyed::<MonotonicClock>(
        cfg,
        "std-instant",
        "RateLimiter::dashmap_with_clock(.., MonotonicClock: std's Instant, as ctxkit)",
        || RateLimiter::dashmap_with_clock(quota(), MonotonicClock),
    );
}

/// `rate.waiters_cpu_20k` on the peers: tokio tasks sleeping to the limiter's instants, and
/// governor's `until_ready` (default clock).
fn waiters_cpu(cfg: &Cfg) {
    if !cfg.want(&[WAITERS_CPU]) {
        return;
    }
    let tokio = peer!("tokio", "PEER_VERSION_TOKIO");
    progress(&format!("{WAITERS_CPU} ({tokio}/sleep_until)"));
    let spacing = Duration::from_secs(1) / WAITERS as u32;
    let runs = waiters_runs(cfg, Due::FromStart(spacing), || {
        move |i, start| {
            let due = tokio::time::Instant::from_std(start + spacing * i as u32);
            tokio::time::sleep_until(due)
        }
    });
    emit_waiters(
        cfg,
        &format!("{tokio}/sleep_until"),
        &runs,
        Due::FromStart(spacing),
        "no limiter: tokio::time::sleep_until(start + i * 50 us).await, the instant a limiter at 20,000/s would give wait i (the runtime's timer wheel, 1 ms resolution)",
    );

    let implementation = implementation("");
    progress(&format!("{WAITERS_CPU} ({implementation})"));
    let due = Due::FromFirst(spacing);
    let runs = waiters_runs(cfg, due, || {
        let per_second = NonZeroU32::new(WAITERS as u32).expect("non-zero");
        let one = NonZeroU32::new(1).expect("non-zero");
        let limiter: Arc<Governor<DefaultClock>> = Arc::new(RateLimiter::direct(
            Quota::per_second(per_second).allow_burst(one),
        ));
        move |_, _| {
            let limiter = limiter.clone();
            async move {
                limiter.until_ready().await;
            }
        }
    });
    emit_waiters(
        cfg,
        &implementation,
        &runs,
        due,
        "limiter.until_ready().await once on one Arc<governor limiter> (Quota::per_second(20000).allow_burst(1), its default clock; no reservation: a waiter that finds no token sleeps on futures-timer's thread until the earliest instant one could be there, then checks again, without jitter)",
    );
}
