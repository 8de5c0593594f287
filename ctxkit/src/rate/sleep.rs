//! Precise sleeping until an absolute instant, for limiter waits and ticker ticks.
//!
//! An OS sleep (`park_timeout`) wakes about 50–100 µs late (Linux's default timer slack is
//! 50 µs), and so does an async sleep on the `ctxkit-timer` thread. A limiter or ticker that
//! slept that way would be late on every event. So a sleep due alone sleeps until a margin
//! before the due instant and covers the margin actively: a thread spins (with a pause hint), a
//! task yields to its executor (it wakes itself and returns `Pending`, so other tasks run
//! meanwhile). Both check the context while covering the margin.
//!
//! Covering margins costs CPU: one margin per sleep. So every sleep registers in
//! `sleepers.rs` (which has the rules and their invariants), and covers its margin only if no
//! other sleep is due within a millisecond of its instant (it is *isolated*) and no other sleep
//! is covering one (at most one spinner in the process). Among others, a thread parks until
//! its instant; a task joins the *slot* (about a millisecond: 2^20 ns) its instant falls in and
//! arms nothing of its own: the registry keeps one entry per slot on the timer thread, which at
//! the slot's end wakes every task that is due, so a slot costs one timer entry and one
//! timer-thread wake-up however many tasks it holds. A spinner also wakes the tasks that come
//! due while it spins. Precision: a lone sleep returns a few microseconds late (p99 under
//! 10 µs on a quiet machine); among others, as late as a timed park (about 80 µs at the
//! median), or, for tasks sharing slots, up to the slot's end plus a timer-thread wake-up
//! (median about 600 µs at 20,000 waits a second), against about a millisecond for tokio's
//! timer and for Go. The slot's width trades CPU for that lateness (`sleepers.rs`, `BATCH`).
//!
//! A task sleeps on the timer thread directly: [`SleepUntil`] arms a `timer::Alarm` (an entry
//! that wakes the task's waker, disarmed on drop) and awaits the context's [`Done`] beside it,
//! so it wakes at the margin (or its instant) or at once when the context is done, and costs
//! no context node (a `Context::sleep` would build a child with a timeout
//! per wait).
//!
//! The margins (150 µs for a thread, 300 µs for a task; measured here: a parked thread wakes
//! 76 µs late at the median and 112 µs at p99, a timer-thread wake-up 80 µs and 185 µs) trade
//! CPU for punctuality: each isolated sleep costs up to one margin of busy CPU, so a lone loop
//! of 1,000 waits a second spins a thread about 15 % of a core, or keeps a worker about 30 %
//! busy. They are not configurable (yet).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use super::sleepers::{self, Entry, Plan};
use crate::context::{Context, Done, Error};
use crate::time;
use crate::timer::Alarm;

/// How long before the due instant an isolated thread stops sleeping and starts spinning.
const THREAD_MARGIN: Duration = Duration::from_micros(150);

/// How long before the due instant an isolated task stops sleeping on the timer thread and
/// starts yielding to its executor, in nanoseconds.
const TASK_MARGIN: u64 = 300_000;

/// Blocks until `due`, or until `ctx` is done (its error).
pub(crate) fn blocking_sleep_until(ctx: &Context, due: Instant) -> Result<(), Error> {
    ctx.check()?;
    if Instant::now() >= due {
        return Ok(());
    }
    let sleepers = sleepers::global();
    // Leaves the registry on every way out (`?`, return, unwind).
    let (mut entry, plan) = sleepers.register(time::encode(due).unwrap_or(u64::MAX), None);
    let mut may_spin = plan == Plan::Isolated;
    // Terminates: the clock passes `due`, or `ctx` is done.
    loop {
        ctx.check()?;
        let now = Instant::now();
        if now >= due {
            return Ok(());
        }
        let left = due - now;
        if may_spin && left > THREAD_MARGIN {
            ctx.blocking_sleep(left - THREAD_MARGIN)?;
        } else if may_spin && entry.try_spin() {
            // Spinning against the clock, not waiting for another thread: no yield here,
            // which could hand the core away past `due` (unlike `sync::Backoff`).
            for _ in 0..16 {
                std::hint::spin_loop();
            }
            entry.sweep(time::now());
        } else {
            // Not isolated (or another sleep spins): sleep to the instant itself.
            may_spin = false;
            ctx.blocking_sleep(left)?;
        }
    }
}

/// Where a task's sleep is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not polled yet: not registered, no alarm.
    New,
    /// Isolated: asleep on its alarm until the margin, then tries to spin.
    ToMargin,
    /// Asleep on its alarm at its own instant.
    Own,
    /// A member of a slot: asleep, with no alarm, until the slot's timer entry sweeps it.
    Member,
    /// Holds the spinner slot: yields to its executor until the instant, sweeping.
    Spinning,
}

/// A future that completes at `due` with `Ok(())`, or earlier with the context's error once
/// it is done. Cancel safe (dropping it disarms its alarm, leaves the registry and drops its
/// waiter); needs no runtime. Owns what it needs, so it is `'static`.
pub(crate) struct SleepUntil {
    /// Checked without a lock on every poll.
    ctx: Context,
    /// Registers the task with the context while it sleeps on the timer, so a cancel wakes
    /// it at once.
    done: Done,
    /// Wakes the task [`TASK_MARGIN`] before `due` (while it may spin), or at `due` (see
    /// [`Phase`]); never armed for a slot's member.
    alarm: Alarm,
    /// The instant to return at (encoded by `time`).
    due: u64,
    /// Its entry in the registry of sleeps, from the first poll until it returns.
    entry: Option<Entry>,
    phase: Phase,
}

impl SleepUntil {
    /// Sleeps under `ctx` until `due`.
    pub(crate) fn new(ctx: Context, due: Instant) -> SleepUntil {
        let due = time::encode(due).unwrap_or(u64::MAX);
        SleepUntil {
            done: ctx.done(),
            ctx,
            alarm: Alarm::new(due),
            due,
            entry: None,
            phase: Phase::New,
        }
    }

    /// Ends the sleep: leaves the registry.
    fn finish<T>(&mut self, output: T) -> Poll<T> {
        self.entry = None;
        self.phase = Phase::Own;
        Poll::Ready(output)
    }
}

impl Future for SleepUntil {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(error) = this.ctx.err() {
            return this.finish(Err(error));
        }
        let now = time::now();
        if now >= this.due {
            if let (Phase::Spinning, Some(entry)) = (this.phase, &this.entry) {
                // Those that came due with it go too. (Any other sleep's return wakes nobody:
                // every sleep has a wake-up of its own, and a sweep per return would cost a
                // lock and an executor wake-up per task.)
                entry.sweep(now);
            }
            return this.finish(Ok(()));
        }
        if this.phase == Phase::New {
            let (entry, plan) = sleepers::global().register(this.due, Some(cx.waker()));
            this.entry = Some(entry);
            this.phase = match plan {
                Plan::Isolated => {
                    if this.due - now > TASK_MARGIN {
                        this.alarm = Alarm::new(this.due - TASK_MARGIN);
                    }
                    Phase::ToMargin
                }
                Plan::Member(_) => Phase::Member,
                Plan::Own => Phase::Own,
            };
        }
        // Terminates: a second round only after `ToMargin` became `Own`.
        loop {
            let Some(entry) = this.entry.as_mut() else {
                // Only after `finish`, and a finished sleep is not polled again; stay ready.
                return Poll::Ready(Ok(()));
            };
            match this.phase {
                Phase::New => unreachable!("registered above"),
                Phase::Spinning => break,
                Phase::ToMargin | Phase::Own | Phase::Member => {
                    entry.set_waker(cx.waker());
                    // Sleep on the timer thread, waking at once if the context is done first.
                    if let Poll::Ready(error) = Pin::new(&mut this.done).poll(cx) {
                        return this.finish(Err(error));
                    }
                    if this.phase == Phase::Member {
                        // The slot's timer entry wakes it (a sweep, only once it is due).
                        return Poll::Pending;
                    }
                    if this.phase == Phase::ToMargin && this.due - now <= TASK_MARGIN {
                        if entry.try_spin() {
                            this.phase = Phase::Spinning;
                            break;
                        }
                        // Among others now (or another sleep spins): sleep to the instant.
                        this.phase = Phase::Own;
                        this.alarm = Alarm::new(this.due);
                        continue;
                    }
                    if this.alarm.poll(cx.waker()).is_pending() {
                        return Poll::Pending;
                    }
                    // The alarm went off after the clock was read above (the next poll reads
                    // it again), or no timer thread could be started: cover the rest by
                    // yielding.
                    break;
                }
            }
        }
        // The margin: yield to the executor, checking the clock and the context each time,
        // and waking whoever came due meanwhile.
        if let (Phase::Spinning, Some(entry)) = (this.phase, &this.entry) {
            entry.sweep(now);
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl fmt::Debug for SleepUntil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SleepUntil")
            .field("in", &time::until(self.due, time::now()))
            .field("phase", &self.phase)
            .field("ctx", &self.ctx)
            .finish()
    }
}

/// Sleeps until `due`, or until `ctx` is done (its error). Cancel safe; needs no runtime.
pub(crate) fn sleep_until(ctx: &Context, due: Instant) -> SleepUntil {
    SleepUntil::new(ctx.clone(), due)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::sync::Ordering;

    use super::*;

    #[test]
    fn blocking_returns_at_or_after_due() {
        let ctx = Context::background();
        let due = Instant::now() + Duration::from_millis(2);
        blocking_sleep_until(&ctx, due).unwrap();
        assert!(Instant::now() >= due);
    }

    #[test]
    fn blocking_returns_the_context_error() {
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        cancel.cancel();
        let due = Instant::now() + Duration::from_secs(3600);
        assert_eq!(blocking_sleep_until(&ctx, due), Err(Error::Canceled));
    }

    #[test]
    fn async_returns_at_or_after_due() {
        let ctx = Context::background();
        let due = Instant::now() + Duration::from_millis(2);
        futures::executor::block_on(sleep_until(&ctx, due)).unwrap();
        assert!(Instant::now() >= due);
    }

    #[test]
    fn async_sleep_is_woken_by_a_cancel_without_a_context_node() {
        let (ctx, cancel) = Context::background().with_cancel().into_parts();
        let (count, waker) = crate::test_waker::counter();
        let mut cx = TaskContext::from_waker(&waker);
        let mut sleep = sleep_until(&ctx, Instant::now() + Duration::from_secs(3600));
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        assert_eq!(
            ctx.__child_count(),
            0,
            "sleeps on the timer, not on a child"
        );
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "asleep: nothing woke it");
        cancel.cancel();
        assert!(count.0.load(Ordering::SeqCst) >= 1, "the cancel woke it");
        assert_eq!(
            Pin::new(&mut sleep).poll(&mut cx),
            Poll::Ready(Err(Error::Canceled))
        );
    }

    #[test]
    fn async_sleep_is_woken_by_its_alarm_then_yields_to_due() {
        let ctx = Context::background();
        let (count, waker) = crate::test_waker::counter();
        let mut cx = TaskContext::from_waker(&waker);
        let due = Instant::now() + Duration::from_millis(5);
        let mut sleep = sleep_until(&ctx, due);
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        // Wait (under a watchdog) for the timer thread to wake the task.
        let watchdog = Instant::now() + Duration::from_secs(20);
        while count.0.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < watchdog, "watchdog: the alarm never fired");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Then it returns only at `due`, polled as an executor would after each wake-up.
        while Pin::new(&mut sleep).poll(&mut cx).is_pending() {
            assert!(Instant::now() < watchdog, "watchdog: never ready");
        }
        assert!(Instant::now() >= due);
    }

    #[test]
    fn tasks_due_close_together_arm_no_alarm_and_are_woken_by_their_slot() {
        let ctx = Context::background();
        let (first_count, first_waker) = crate::test_waker::counter();
        let (count, waker) = crate::test_waker::counter();
        let due = Instant::now() + Duration::from_millis(3);
        let mut first = sleep_until(&ctx, due);
        let mut second = sleep_until(&ctx, due + Duration::from_micros(10));
        assert!(Pin::new(&mut first)
            .poll(&mut TaskContext::from_waker(&first_waker))
            .is_pending());
        let mut cx = TaskContext::from_waker(&waker);
        assert!(Pin::new(&mut second).poll(&mut cx).is_pending());
        assert_eq!(
            second.phase,
            Phase::Member,
            "another is due within the slot"
        );
        assert!(second.alarm.entry().is_none(), "a member arms no alarm");
        // Nobody polls the first: the slot's timer entry wakes the second on its own.
        let watchdog = Instant::now() + Duration::from_secs(20);
        while count.0.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < watchdog, "watchdog: the slot never fired");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(Pin::new(&mut second).poll(&mut cx), Poll::Ready(Ok(())));
        assert!(Instant::now() >= due + Duration::from_micros(10));
        // The first, isolated when it registered, had its own alarm at its margin; the slot's
        // sweep woke it too, being due.
        assert!(first_count.0.load(Ordering::SeqCst) >= 1);
        drop(first);
    }

    #[test]
    fn a_dropped_sleep_leaves_no_timer_entry() {
        let ctx = Context::background();
        let (_, waker) = crate::test_waker::counter();
        let mut cx = TaskContext::from_waker(&waker);
        let mut sleep = sleep_until(&ctx, Instant::now() + Duration::from_secs(3600));
        assert!(
            sleep.alarm.entry().is_none(),
            "not armed before its first poll"
        );
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
        let entry = sleep.alarm.entry().expect("armed by the first poll");
        drop(sleep);
        // Had the timer kept the entry, it would still be alive an hour before its instant.
        assert!(entry.upgrade().is_none(), "disarmed on drop");
    }
}
