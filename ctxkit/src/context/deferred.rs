//! [`Deferred`]: a function to hand to the after-function pool at most once, unless stopped
//! first. What an after-function is, seen from the waiter list: `waiters.rs` holds one and
//! starts it when the context completes; the public `AfterFunc` handle (`after_func.rs`) stops
//! it. It knows nothing of the tree.
//!
//! # Invariants
//!
//! 1. `state` goes from `PENDING` to `STARTED` ([`Deferred::start`] won) or to `STOPPED`
//!    ([`Deferred::stop`] won), once; whoever moves it decides whether the function runs.
//! 2. The function runs at most once, on a worker of the after-function pool (`blocking/`),
//!    never on the thread that called `start` (the one completing the context): `start` only
//!    hands it off. The one exception: the OS refused the pool's dispatcher thread, both when the
//!    function was registered and at the hand-off; then it runs on that thread, late rather
//!    than never, after a message on standard error.
//! 3. `origin` and `tag` are fixed at registration: the function's unit, queued or running,
//!    carries the registration's site and scope tag, whoever completes the context (a leak
//!    check blames the test that registered it).

use crate::blocking::{self, Job};
use crate::spawn::{Origin, ScopeTag};
use crate::sync::{AtomicU8, Mutex, Ordering};

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const STOPPED: u8 = 2;

/// The function.
pub(crate) type Callback = blocking::Callback;

/// A function to start once, or never (see the module docs).
pub(crate) struct Deferred {
    /// Invariant 1.
    state: AtomicU8,
    /// Taken by the one start, or dropped by the one stop.
    callback: Mutex<Option<Callback>>,
    /// Where it was registered (invariant 3).
    origin: Origin,
    /// The scope tag current at its registration (invariant 3).
    tag: Option<ScopeTag>,
}

impl Deferred {
    /// `callback`, registered at `origin`, under the tag current now.
    pub(crate) fn new(callback: Callback, origin: Origin) -> Deferred {
        Deferred {
            state: AtomicU8::new(PENDING),
            callback: Mutex::new(Some(callback)),
            origin,
            tag: ScopeTag::current(),
        }
    }

    /// Hands the function to the pool, unless `stop` got there first (invariants 1, 2).
    pub(crate) fn start(&self) {
        if self
            .state
            .compare_exchange(PENDING, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let Some(callback) = self.callback.lock().take() else {
            return;
        };
        if let Err(job) = blocking::hand_off(Job::new(callback, self.origin, self.tag)) {
            // Invariant 2's exception: running it late on this thread is the only way left to
            // keep the promise that it runs; say so.
            eprintln!(
                "ctxkit: no thread could be started for an after-function; running it inline"
            );
            (job.into_callback())();
        }
    }

    /// Stops the function from ever running; true if this call did (invariant 1). The
    /// function is dropped on this thread.
    pub(crate) fn stop(&self) -> bool {
        let stopped = self
            .state
            .compare_exchange(PENDING, STOPPED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if stopped {
            let callback = self.callback.lock().take();
            drop(callback); // user data: dropped after the lock is released
        }
        stopped
    }

    /// "pending", "started" or "stopped", for `Debug`.
    pub(crate) fn state_name(&self) -> &'static str {
        match self.state.load(Ordering::Acquire) {
            PENDING => "pending",
            STARTED => "started",
            _ => "stopped",
        }
    }
}
