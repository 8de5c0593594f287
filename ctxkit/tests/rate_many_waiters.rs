//! Many waits pending at once on one limiter (issue 17, part 6): all return, none before its
//! instant, in order of instant, and those whose context ends leave at once without holding
//! up the others.
//!
//! "None early" is checked twice: with burst 1, the limiter admits at most `1 + rate · t`
//! tokens by `t` after its creation, so the k-th return in time cannot come before
//! `created + k / rate`; and where each waiter's own instant is known (the async tests take
//! the reservations in turn, after a lead), each returns at or after it.
//!
//! Order: waiters due close together are woken together (the timer thread wakes a slot's
//! waiters at its end, in order of instant) and may return in either order when they run on
//! different workers, or when the executor was held up (the waiters of later slots, woken by
//! the timer thread meanwhile, are queued behind). So a waiter must not be overtaken by one due
//! `ORDER_SLACK` or more after it, unless it was itself that late (the machine held it up).
//! Nothing here asserts a lateness.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

mod common;

use ctxkit::rate::Limiter;
use ctxkit::Context;

/// How much later than another a waiter must be due for it never to return first (unless the
/// other was held up as long).
const ORDER_SLACK: Duration = Duration::from_millis(50);

/// Checks returns against the limiter's bound: the k-th return in time, of waits on a limiter
/// at `rate`, burst 1, made at `created`, after `held` tokens were taken, is not early.
fn check_bound(returns: &[Instant], rate: f64, created: Instant, held: usize) {
    let mut by_time = returns.to_vec();
    by_time.sort();
    let period = Duration::from_secs_f64(1.0 / rate);
    for (k, &at) in by_time.iter().enumerate() {
        let earliest = created + period * u32::try_from(held + k).unwrap();
        assert!(
            at >= earliest,
            "return {k} came {:?} before the limiter could admit it",
            earliest - at
        );
    }
}

/// Checks returns `(due, at)` of waits whose own instants are known: none early, and in order
/// of instant (see the module docs).
fn check_own(returns: &[(Instant, Instant)]) {
    for &(due, at) in returns {
        assert!(at >= due, "returned {:?} before its instant", due - at);
    }
    let mut by_time = returns.to_vec();
    by_time.sort_by_key(|&(_, at)| at);
    // For each waiter, the latest instant among those that returned before it.
    let mut latest_due: Option<Instant> = None;
    for &(due, at) in &by_time {
        if let Some(latest) = latest_due {
            let held_up = at.duration_since(due) >= ORDER_SLACK;
            assert!(
                held_up || latest < due + ORDER_SLACK,
                "overtaken by a waiter due {:?} after it, without being held up",
                latest - due
            );
        }
        latest_due = Some(latest_due.map_or(due, |latest| latest.max(due)));
    }
}

/// `waiters` tasks wait on one limiter at `rate`, burst 1, called in turn (on a current-thread
/// runtime, in spawn order; on two workers, nearly so) so the turns are the order of the
/// instants; their returns, checked. The limiter's schedule is pushed `LEAD` ahead first (by
/// reservations held throughout), so that, unless the machine is very slow, every wait is
/// called before the first is due: the order is checked only then (a wait called after its
/// instant returns at once, whatever its turn).
fn async_waiters(runtime: tokio::runtime::Runtime, waiters: usize, rate: f64) {
    const LEAD: Duration = Duration::from_millis(300);
    let created = Instant::now();
    let limiter = Arc::new(Limiter::new(rate, 1).unwrap());
    let held: Vec<_> = (0..(LEAD.as_secs_f64() * rate) as usize)
        .map(|_| limiter.clone().reserve_owned().unwrap())
        .collect();
    let first_due = held.last().unwrap().time_to_act();
    let returns = Arc::new(Mutex::new(Vec::with_capacity(waiters)));
    let last_call = Arc::new(Mutex::new(created));
    runtime.block_on(async {
        let turn = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..waiters)
            .map(|_| {
                let limiter = limiter.clone();
                let returns = returns.clone();
                let turn = turn.clone();
                let last_call = last_call.clone();
                tokio::spawn(async move {
                    let ctx = Context::background();
                    let mut wait = Box::pin(limiter.wait(&ctx));
                    // The first poll of `wait` reserves: take the turn with it, under a lock,
                    // so that the turns are the order of the reservations.
                    let (mine, first) = std::future::poll_fn(|cx| {
                        let mut last = last_call.lock().unwrap();
                        let mine = turn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let first = wait.as_mut().poll(cx);
                        *last = (*last).max(Instant::now());
                        Poll::Ready((mine, first))
                    })
                    .await;
                    match first {
                        Poll::Ready(result) => result.unwrap(),
                        Poll::Pending => wait.await.unwrap(),
                    }
                    returns.lock().unwrap().push((mine, Instant::now()));
                })
            })
            .collect();
        for task in tasks {
            common::bounded(task).await.unwrap();
        }
    });
    let returns = returns.lock().unwrap();
    assert_eq!(returns.len(), waiters, "every wait returned");
    let times: Vec<Instant> = returns.iter().map(|&(_, at)| at).collect();
    check_bound(&times, rate, created, held.len());
    // Margin for the last call's own registration.
    if *last_call.lock().unwrap() + Duration::from_millis(20) < first_due {
        // Every wait was reserved in turn behind the held tokens: turn k is due k + 1 periods
        // after the last held one.
        let period = Duration::from_secs_f64(1.0 / rate);
        let own: Vec<(Instant, Instant)> = returns
            .iter()
            .map(|&(turn, at)| (first_due + period * u32::try_from(turn + 1).unwrap(), at))
            .collect();
        check_own(&own);
    } else {
        eprintln!("the waits were not all called before the first was due: instants unknown");
    }
}

#[test]
fn many_async_waiters_on_one_thread_return_in_order_none_early() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // 20,000 a second: waiters 50 us apart, about twenty to a slot; 2,000 of them, 0.1 s.
    async_waiters(runtime, 2000, 20_000.0);
}

#[test]
fn many_async_waiters_on_two_workers_return_in_order_none_early() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    async_waiters(runtime, 2000, 20_000.0);
    // And sparser: 2,000 a second, 500 us apart: about two to a slot, none spinning.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    async_waiters(runtime, 200, 2_000.0);
}

/// Half of the waiters have their context canceled while they wait: those leave at once with
/// the context's error (and give their tokens back), the others all return in order, none
/// early. The timer thread wakes each slot, whoever of it left, so nobody is stranded.
#[test]
fn canceled_waiters_leave_and_the_others_still_return() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let waiters = 1000;
    let rate = 10_000.0;
    let created = Instant::now();
    let limiter = Arc::new(Limiter::new(rate, 1).unwrap());
    let returns = Arc::new(Mutex::new(Vec::new()));
    let canceled = Arc::new(Mutex::new(0usize));
    runtime.block_on(async {
        let mut cancels = Vec::new();
        let mut kept = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..waiters {
            let (ctx, cancel) = Context::background().with_cancel().into_parts();
            if i % 2 == 0 {
                cancels.push(cancel);
            } else {
                // Not canceled until the end.
                kept.push(cancel);
            }
            let limiter = limiter.clone();
            let returns = returns.clone();
            let canceled = canceled.clone();
            tasks.push(tokio::spawn(async move {
                match limiter.wait(&ctx).await {
                    Ok(()) => returns.lock().unwrap().push((i, Instant::now())),
                    Err(error) => {
                        assert!(error.is_canceled(), "{error}");
                        *canceled.lock().unwrap() += 1;
                    }
                }
            }));
        }
        // Let every wait register, then cancel the even ones.
        tokio::time::sleep(Duration::from_millis(5)).await;
        for cancel in cancels {
            cancel.cancel();
        }
        for task in tasks {
            common::bounded(task).await.unwrap();
        }
        drop(kept);
    });
    let returns = returns.lock().unwrap();
    let canceled = *canceled.lock().unwrap();
    assert_eq!(returns.len() + canceled, waiters, "every wait ended");
    // The instants are not known here: only the limiter's bound is checked.
    let times: Vec<Instant> = returns.iter().map(|&(_, at)| at).collect();
    check_bound(&times, rate, created, 0);
}

/// The thread form: many threads blocked on one limiter at once all return, none early.
#[test]
fn many_blocked_threads_all_return_none_early() {
    let waiters = 64;
    let rate = 4_000.0;
    let created = Instant::now();
    let limiter = Arc::new(Limiter::new(rate, 1).unwrap());
    let returns = common::watchdog("blocked waiters", move || {
        let returns = Arc::new(Mutex::new(Vec::new()));
        std::thread::scope(|scope| {
            for i in 0..waiters {
                let limiter = &limiter;
                let returns = &returns;
                scope.spawn(move || {
                    limiter.blocking_wait(&Context::background()).unwrap();
                    returns.lock().unwrap().push((i, Instant::now()));
                });
            }
        });
        Arc::try_unwrap(returns).unwrap().into_inner().unwrap()
    });
    assert_eq!(returns.len(), waiters);
    let times: Vec<Instant> = returns.iter().map(|&(_, at)| at).collect();
    check_bound(&times, rate, created, 0);
}
