//! The one timer thread, `ctxkit-timer`, that completes contexts at their deadlines.
//!
//! Creating a context with a deadline arms nothing (see "Deadlines are lazy" in `tree.rs`). The
//! timer is armed for a deadline only when somebody must be *notified* when it passes: an async
//! task awaiting `done()`, `run()` or `sleep()`, or an after-function. A thread blocked in
//! `wait()` parks with a timeout instead and needs no timer.
//!
//! The thread is started by the first arming, is named `ctxkit-timer`, and then lives as long as
//! the process, asleep on a condition variable while it has nothing to do. It needs no async
//! runtime: it completes the context, and the completion wakes tasks with their `Waker`s and
//! threads with `unpark`.
//!
//! # Invariants
//!
//! 1. Every armed, not yet completed owner (`ARMED` in `tree.rs`) is in `entries`, keyed by
//!    (deadline, node address), until its completion removes it or the thread takes it out as due
//!    (then completes it); the address is unique while the entry holds the node alive.
//! 2. The thread sleeps until the earliest key, or indefinitely when there is none; an arming
//!    with an earlier deadline wakes it.
//!
//! # Lock order
//!
//! The timer's lock is a leaf: it is taken under a node's lock (arming), and nothing is taken
//! under it. Nodes leave the map under the lock but are completed, and dropped, after it is
//! released.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};

use crate::context::clock;
use crate::context::tree::{self, Completion, Node};
use crate::sync::Arc;

/// Name of the timer thread, as the leak checker and debuggers see it.
pub(crate) const THREAD_NAME: &str = "ctxkit-timer";

struct Timer {
    /// Guards the entries and whether the thread runs.
    state: Mutex<State>,
    /// Wakes the thread when an earlier deadline is armed.
    wake: Condvar,
}

struct State {
    /// Invariant 1.
    entries: BTreeMap<(u64, usize), Arc<Node>>,
    /// Whether the thread has been started.
    started: bool,
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<Timer> = OnceLock::new();
    TIMER.get_or_init(|| Timer {
        state: Mutex::new(State {
            entries: BTreeMap::new(),
            started: false,
        }),
        wake: Condvar::new(),
    })
}

/// Watches `node`'s deadline; the caller holds the node's lock and sets `ARMED` with it.
/// Returns false, watching nothing, if the timer thread could not be started (the OS refused a
/// thread); the next arming tries again.
pub(crate) fn arm(deadline: u64, node: Arc<Node>) -> bool {
    let timer = timer();
    let mut state = timer.state.lock().unwrap_or_else(PoisonError::into_inner);
    if !state.started {
        if let Err((error, _)) = crate::spawn::try_spawn_named(THREAD_NAME, run) {
            eprintln!("ctxkit: could not start the {THREAD_NAME} thread ({error}); deadlines will wake async waiters only when they are polled again");
            return false;
        }
        state.started = true;
    }
    let earliest = state.entries.keys().next().map(|&(at, _)| at);
    let key = (deadline, Arc::as_ptr(&node) as usize);
    state.entries.insert(key, node);
    if earliest.is_none_or(|at| deadline < at) {
        timer.wake.notify_one();
    }
    true
}

/// Stops watching the node at `address`, completed before its deadline.
pub(crate) fn disarm(deadline: u64, address: *const Node) {
    let removed = {
        let mut state = timer().state.lock().unwrap_or_else(PoisonError::into_inner);
        state.entries.remove(&(deadline, address as usize))
    };
    // Dropped after the lock is released: the lock is a leaf.
    drop(removed);
}

/// Number of armed deadlines (tests).
pub(crate) fn armed_count() -> usize {
    timer()
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entries
        .len()
}

/// The thread's loop.
fn run() {
    let timer = timer();
    let mut due: Vec<Arc<Node>> = Vec::new();
    let mut state = timer.state.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let now = clock::now();
        while let Some(entry) = state.entries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
        if !due.is_empty() {
            drop(state);
            for node in due.drain(..) {
                tree::cancel(&node, Completion::Expire);
            }
            state = timer.state.lock().unwrap_or_else(PoisonError::into_inner);
            continue;
        }
        state = match state.entries.keys().next() {
            Some(&(at, _)) => {
                timer
                    .wake
                    .wait_timeout(state, clock::until(at, now))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => timer
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}
