//! A deadline and a cancel racing to end one context, on two threads. Whichever the tree
//! decides came first, it decides once: the error and the reason of `cause()` always come from
//! the same side, `err()` agrees with them, and a reader that saw one side keeps seeing it.
//!
//! Each test counts which side won and fails if its bounded loop saw only one: a race test that
//! never lands on both sides of the race checks half of it. One test races the real clock (the
//! cancel lands a few hundred ns before or after the deadline); the other reads the lazy deadline
//! decision at a made-up instant past the deadline (`Context::__err_at`) while the cancel lands,
//! so which side wins depends on the two threads only, not on the clock. They run one at a time:
//! each keeps both cores spinning.
//!
//! A cancel that comes after a deadline nobody saw pass (no race: the deadline was first) is in
//! `context_tree.rs`, with the other lazily expired deadlines.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use common::{HOUR, PATIENCE};
use ctxkit::{Cause, Context, Error};

/// Both tests spin on both cores: one at a time, so each gets the machine it expects.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Tells a helper thread to stop when the test ends, also when it ends by a failed assertion
/// (else the helper would spin until the process exits).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Whether `cause` is one side's, whole: the cancel's error with its reason, or the deadline's
/// error with its reason. Also checks that `ctx.err()` agrees.
fn from_one_side(ctx: &Context, cause: &Cause) -> bool {
    ctx.err() == Some(cause.error())
        && matches!(
            (cause.error(), cause.to_string().as_str()),
            (Error::Canceled, "cancel-reason") | (Error::DeadlineExceeded, "deadline-reason")
        )
}

/// Which sides won, as `[canceled, deadline exceeded]`.
fn count(split: &mut [usize; 2], error: Error) {
    match error {
        Error::Canceled => split[0] += 1,
        Error::DeadlineExceeded => split[1] += 1,
    }
}

/// A cancel racing a reader's deadline check on an owner no timer watches (the reader reads the
/// real clock): the error and the reason always come from the same side, and over the run both
/// sides win at least once.
#[test]
fn a_cancel_racing_a_deadline_reader_never_mixes_error_and_reason() {
    /// The run lasts at least this long, and longer only while one side has never won...
    const RUN_FOR: Duration = Duration::from_secs(2);
    /// ...but never longer than this.
    const GIVE_UP: Duration = Duration::from_secs(10);
    let _serial = one_at_a_time();
    let slot: Arc<Mutex<Option<Context>>> = Arc::new(Mutex::new(None));
    let generation = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    let reader = {
        let (slot, generation, stop) = (slot.clone(), generation.clone(), stop.clone());
        thread::spawn(move || {
            let mut seen = 0;
            while !stop.load(Ordering::Relaxed) {
                let g = generation.load(Ordering::Acquire);
                if g == seen {
                    std::hint::spin_loop();
                    continue;
                }
                seen = g;
                let ctx = slot.lock().unwrap().clone();
                if let Some(ctx) = ctx {
                    while ctx.err().is_none() {}
                }
            }
        })
    };
    let mut mixed = 0;
    let mut split = [0usize; 2];
    let start = Instant::now();
    let mut i: u64 = 0;
    while mixed == 0
        && start.elapsed() < GIVE_UP
        && (start.elapsed() < RUN_FOR || split.contains(&0))
    {
        i += 1;
        let (ctx, cancel) = Context::background()
            .with_timeout_cause(Duration::from_micros(30), "deadline-reason")
            .into_parts();
        let deadline = ctx.deadline().unwrap();
        *slot.lock().unwrap() = Some(ctx.clone());
        generation.fetch_add(1, Ordering::Release);
        // Cancel around the deadline, a few hundred ns either side.
        let jitter = Duration::from_nanos((i * 37) % 600);
        let at = if i % 2 == 0 {
            deadline - jitter
        } else {
            deadline + jitter
        };
        while Instant::now() < at {}
        cancel.cancel_with("cancel-reason");
        let cause = ctx.cause().unwrap();
        count(&mut split, cause.error());
        if !from_one_side(&ctx, &cause) {
            eprintln!("iteration {i}: mixed cause {cause:?}, err {:?}", ctx.err());
            mixed += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    eprintln!("{i} iterations, canceled/deadline = {split:?}");
    assert_eq!(mixed, 0);
    assert!(
        !split.contains(&0),
        "in {i} iterations ({:?}) only one side ever won: canceled/deadline = {split:?}",
        start.elapsed()
    );
}

/// The same race with no clock in it: the deadline is an hour away, and a second thread reads
/// the lazy deadline decision at an instant past it (`__err_at`) just as the cancel lands. Each
/// round both threads get ready, then one acts and the other acts once it sees the first begin:
/// by turns the read and the cancel get the head start (the read, a few tens of ns of work,
/// then wins; the cancel, which does more before it decides, is followed by the read after a
/// delay that sweeps across its decision). So each side wins in some rounds whatever the
/// scheduler does, on one core as on two, and on two cores many rounds land inside the cancel's
/// work. The error and the reason always come from one side, the reader's answer is the
/// context's final error, and both sides win.
#[test]
fn a_cancel_racing_a_lazy_deadline_decision_never_mixes_error_and_reason() {
    const ROUNDS: usize = 2_000;
    let _serial = one_at_a_time();
    let slot: Arc<Mutex<Option<Context>>> = Arc::new(Mutex::new(None));
    // The round whose context is in the slot; the last round the reader is ready for; the last
    // round in which the side with the head start has begun to act.
    let (generation, ready, acting) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(stop.clone());
    let (answers, answered) = mpsc::channel();
    let reader = {
        let (slot, generation, ready, acting, stop) = (
            slot.clone(),
            generation.clone(),
            ready.clone(),
            acting.clone(),
            stop.clone(),
        );
        thread::spawn(move || {
            for g in 1.. {
                let stopped = || stop.load(Ordering::Relaxed);
                if !spin_until(|| generation.load(Ordering::Acquire) == g, stopped) {
                    return;
                }
                let ctx = slot.lock().unwrap().clone().unwrap();
                let past_the_deadline = ctx.deadline().unwrap() + Duration::from_secs(1);
                ready.store(g, Ordering::Release);
                if cancel_first(g) {
                    if !spin_until(|| acting.load(Ordering::Acquire) == g, stopped) {
                        return;
                    }
                    // Across the rounds, from at once to well after the cancel's decision.
                    let until = Instant::now() + read_delay(g);
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                } else {
                    acting.store(g, Ordering::Release);
                }
                if answers.send(ctx.__err_at(past_the_deadline)).is_err() {
                    return;
                }
            }
        })
    };
    let mut split = [0usize; 2];
    // Rounds in which the side without the head start won: the two really overlapped.
    let mut overtaken = 0;
    for g in 1..=ROUNDS {
        let (ctx, cancel) = Context::background()
            .with_timeout_cause(HOUR, "deadline-reason")
            .into_parts();
        *slot.lock().unwrap() = Some(ctx.clone());
        generation.store(g, Ordering::Release);
        let started = Instant::now();
        let stuck = || {
            assert!(
                started.elapsed() < PATIENCE,
                "round {g}: the reader is stuck"
            );
            false
        };
        spin_until(|| ready.load(Ordering::Acquire) == g, stuck);
        if cancel_first(g) {
            acting.store(g, Ordering::Release);
        } else {
            spin_until(|| acting.load(Ordering::Acquire) == g, stuck);
        }
        cancel.cancel_with("cancel-reason");
        let seen = answered
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("round {g}: the reader never answered"));
        let cause = ctx.cause().unwrap();
        count(&mut split, cause.error());
        if cancel_first(g) != (cause.error() == Error::Canceled) {
            overtaken += 1;
        }
        assert!(
            from_one_side(&ctx, &cause),
            "round {g}: mixed cause {cause:?}, err {:?}",
            ctx.err()
        );
        assert_eq!(
            seen,
            Some(cause.error()),
            "round {g}: the reader saw another outcome than the final one: {cause:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    eprintln!("{ROUNDS} rounds, canceled/deadline = {split:?}, {overtaken} won by the side without the head start");
    assert!(
        !split.contains(&0),
        "in {ROUNDS} rounds only one side ever won: canceled/deadline = {split:?}"
    );
}

/// Whether the cancel gets the head start in round `g` (else the deadline read does).
fn cancel_first(g: usize) -> bool {
    g % 2 == 0
}

/// How long after the cancel began the read comes in round `g` when the cancel has the head
/// start: 0 to 1.26 µs in steps of 20 ns, which spans the cancel's decision (a cancel with a
/// reason takes about 0.1 µs in a release build, 0.6 µs in a debug one).
fn read_delay(g: usize) -> Duration {
    Duration::from_nanos(((g / 2 * 37) % 64) as u64 * 20)
}

/// Spins until `done()` holds (then true) or `give_up()` does (then false; asked now and then).
/// Yields now and then too, so that a thread it waits for on the same core gets to run.
fn spin_until(mut done: impl FnMut() -> bool, mut give_up: impl FnMut() -> bool) -> bool {
    let mut spins = 0u32;
    while !done() {
        spins = spins.wrapping_add(1);
        if spins % 1024 == 0 {
            if give_up() {
                return false;
            }
            thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    true
}

/// A deadline that passed before anybody waited is the context's state at once, for the first
/// waiter and for `err()` after it: arming the timer on that first registration must not hide
/// it until the timer thread runs.
#[test]
fn a_deadline_passed_before_the_first_wait_is_reported_by_that_wait_and_after_it() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for _ in 0..20 {
        let ctx = Context::background().with_timeout(Duration::from_millis(1));
        thread::sleep(Duration::from_millis(3));
        // Ready work loses to a context that is done by the clock.
        let result = runtime.block_on(ctx.run(async { 1 }));
        assert_eq!(result, Err(Error::DeadlineExceeded));
        assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    }
}
