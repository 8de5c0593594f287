//! The one timer thread, `ctxkit-timer`: calls [`Expire::expire`] on each armed entry once its
//! instant has passed.
//!
//! The timer knows nothing of contexts: an entry is "something to expire at instant t". The
//! cancel tree (`context/tree.rs`) arms an entry for a node's deadline only when somebody must
//! be *notified* when it passes (an async task awaiting `done()`, `run()` or `sleep()`, or an
//! after-function; see "Deadlines are lazy" there); a node's expiry completes it. A thread
//! blocked in `wait()` parks with a timeout instead and needs no timer. An [`Alarm`] (the
//! precise sleeps of `rate/sleep.rs`) is an entry that wakes one task, with no context node.
//!
//! The thread is started (through `spawn`) by the first arming, is named `ctxkit-timer`, and
//! then lives as long as the process, asleep on a condition variable while it has nothing to do.
//! It needs no async runtime: expiring a context wakes tasks with their `Waker`s and threads
//! with `unpark`.
//!
//! Under `--cfg loom` the timer's state is built inside each model (`sync::lazy_static!`) and no
//! thread is started: arming and disarming keep the entries, which is what the models check
//! (`context/tests/loom_timer.rs`); nothing expires them.
//!
//! # Invariants
//!
//! 1. Every armed entry is in `entries`, keyed by (instant, address), until its owner disarms it
//!    or the thread takes it out as due (then expires it); the address is unique while the entry
//!    holds its value alive. (For the tree: every armed, not yet completed deadline owner,
//!    `ARMED` in `tree.rs`.)
//! 2. The thread sleeps until the earliest key, or indefinitely when there is none; an arming
//!    with an earlier deadline wakes it.
//!
//! # Lock order
//!
//! The timer's lock is a leaf: it may be taken under a caller's lock (the tree arms under a
//! node's lock), and nothing is taken under it. Entries leave the map under the lock but are
//! expired, and dropped, after it is released, so `expire` may take any lock.

use std::collections::BTreeMap;
use std::task::{Poll, Waker};

use crate::spawn::{self, Origin};
use crate::sync::{self, Arc, Condvar, Mutex};
use crate::time;

/// Something the timer thread expires once its instant has passed.
pub(crate) trait Expire: Send + Sync {
    /// Called once, on the timer thread, with no timer lock held.
    fn expire(self: Arc<Self>);
}

/// The key part that tells entries with the same instant apart: the value's address.
pub(crate) fn address<T>(value: &T) -> usize {
    value as *const T as usize
}

struct Timer {
    /// Guards the entries and whether the thread runs.
    state: Mutex<State>,
    /// Wakes the thread when an earlier deadline is armed.
    wake: Condvar,
}

struct State {
    /// Invariant 1.
    entries: BTreeMap<(u64, usize), Arc<dyn Expire>>,
    /// Whether the thread has been started.
    started: bool,
}

sync::lazy_static! {
    static ref TIMER: Timer = Timer {
        state: Mutex::new(State {
            entries: BTreeMap::new(),
            started: false,
        }),
        wake: Condvar::new(),
    };
}

fn timer() -> &'static Timer {
    &TIMER
}

/// Starts the timer thread; false if the OS refused (said on stderr). Under loom no thread is
/// started (see the module docs).
fn start_thread() -> bool {
    if cfg!(loom) {
        return true;
    }
    let name = spawn::TIMER_THREAD;
    match spawn::try_spawn_named(Origin::here(name), run) {
        Ok(_detached) => true,
        Err((error, _)) => {
            eprintln!("ctxkit: could not start the {name} thread ({error}); deadlines will wake async waiters only when they are polled again");
            false
        }
    }
}

/// Expires `entry` at `deadline` (encoded by `time`), until [`disarm`]ed with the same deadline
/// and [`address`]. Returns false, watching nothing, if the timer thread could not be started
/// (the OS refused a thread); the next arming tries again.
pub(crate) fn arm<T: Expire + 'static>(deadline: u64, entry: Arc<T>) -> bool {
    let timer = timer();
    let mut state = timer.state.lock();
    if !state.started {
        // The registry's lock is taken under the timer's: cannot deadlock, it is a leaf
        // (`spawn.rs`, invariant 3).
        if !start_thread() {
            return false;
        }
        state.started = true;
    }
    let earliest = state.entries.keys().next().map(|&(at, _)| at);
    let key = (deadline, address(&*entry));
    state.entries.insert(key, entry);
    if earliest.is_none_or(|at| deadline < at) {
        timer.wake.notify_one();
    }
    true
}

/// Stops watching the entry armed at `deadline` with `address` (done before its deadline).
pub(crate) fn disarm(deadline: u64, address: usize) {
    let removed = {
        let mut state = timer().state.lock();
        state.entries.remove(&(deadline, address))
    };
    // Dropped after the lock is released: the lock is a leaf.
    drop(removed);
}

/// Number of armed deadlines (tests).
pub(crate) fn armed_count() -> usize {
    timer().state.lock().entries.len()
}

/// The thread's loop.
fn run() {
    let timer = timer();
    let mut due: Vec<Arc<dyn Expire>> = Vec::new();
    let mut state = timer.state.lock();
    loop {
        let now = time::now();
        while let Some(entry) = state.entries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        if !due.is_empty() {
            drop(state);
            for entry in due.drain(..) {
                entry.expire();
            }
            state = timer.state.lock();
            continue;
        }
        state = match state.entries.keys().next() {
            Some(&(at, _)) => timer.wake.wait_timeout(state, time::until(at, now)),
            None => timer.wake.wait(state),
        };
    }
}

// ===== Alarm: wake one task at an instant =====

/// A timer entry that wakes one task at an instant: the async counterpart of a timed park,
/// for a sleep that needs no context node (`rate/sleep.rs`). Armed by its first
/// [`poll`](Alarm::poll), disarmed when dropped.
pub(crate) struct Alarm {
    /// When it goes off (encoded by `time`): its key in the timer, with the entry's address.
    at: u64,
    /// The entry in the timer, once armed (invariant 1: armed until it fires or is disarmed).
    entry: Option<Arc<AlarmEntry>>,
}

/// What the timer thread holds for an [`Alarm`].
struct AlarmEntry {
    /// Set by the timer thread when it fires, with the waker taken out, under this leaf lock
    /// (nothing else is taken under it); the waker is woken after it is released.
    state: crate::sync::Mutex<AlarmState>,
}

struct AlarmState {
    /// Set once, by `expire`; never cleared.
    fired: bool,
    /// The task to wake, kept up to date by `Alarm::poll`; taken by `expire`.
    waker: Option<Waker>,
}

impl Expire for AlarmEntry {
    fn expire(self: Arc<Self>) {
        let waker = {
            let mut state = self.state.lock();
            state.fired = true;
            state.waker.take()
        };
        // The waker is the executor's code: woken with no lock held.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Alarm {
    /// An alarm at `at` (encoded by `time`), not armed yet.
    pub(crate) fn new(at: u64) -> Alarm {
        Alarm { at, entry: None }
    }

    /// Ready once the alarm has gone off; otherwise arms it (the first call) or updates the
    /// task it wakes, and is pending. Also ready, at once, if the timer thread could not be
    /// started: the caller then gets no wake-up and must poll on its own.
    pub(crate) fn poll(&mut self, waker: &Waker) -> Poll<()> {
        let Some(entry) = &self.entry else {
            let entry = Arc::new(AlarmEntry {
                state: crate::sync::Mutex::new(AlarmState {
                    fired: false,
                    waker: Some(waker.clone()),
                }),
            });
            if !arm(self.at, entry.clone()) {
                return Poll::Ready(());
            }
            self.entry = Some(entry);
            return Poll::Pending;
        };
        let mut state = entry.state.lock();
        if state.fired {
            return Poll::Ready(());
        }
        let old = match &mut state.waker {
            Some(current) if current.will_wake(waker) => None,
            slot => slot.replace(waker.clone()),
        };
        drop(state);
        // A replaced waker is the executor's code: dropped with no lock held.
        drop(old);
        Poll::Pending
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some(entry) = self.entry.take() {
            let fired = entry.state.lock().fired;
            if !fired {
                // Invariant 1: the entry leaves the timer with its owner. If it fires
                // meanwhile, the timer took it out already and this removes nothing.
                disarm(self.at, address(&*entry));
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
impl Alarm {
    /// A weak handle on its timer entry, once armed (tests): it can be upgraded while anybody,
    /// the timer included, still holds the entry.
    pub(crate) fn entry(&self) -> Option<std::sync::Weak<dyn Expire>> {
        self.entry.as_ref().map(|entry| {
            let entry: Arc<dyn Expire> = entry.clone();
            Arc::downgrade(&entry)
        })
    }
}
