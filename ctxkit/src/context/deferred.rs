//! [`Deferred`]: a function to start on a thread of its own at most once, unless stopped
//! first. What an after-function is, seen from the waiter list: `waiters.rs` holds one and
//! starts it when the context completes; the public `AfterFunc` handle (`after_func.rs`) stops
//! it. It knows nothing of the tree.
//!
//! # Invariants
//!
//! 1. `state` goes from `PENDING` to `STARTED` ([`Deferred::start`] won) or to `STOPPED`
//!    ([`Deferred::stop`] won), once; whoever moves it decides whether the function runs.
//! 2. The function runs at most once, on a thread of its own (`ctxkit-after-func`, started
//!    through `spawn`), never on the thread that called `start` (the one completing the
//!    context), unless the OS refuses a thread.

use crate::spawn::{self, Origin};
use crate::sync::{AtomicU8, Mutex, Ordering};

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const STOPPED: u8 = 2;

/// The function.
pub(crate) type Callback = Box<dyn FnOnce() + Send + 'static>;

/// A function to start once, or never (see the module docs).
pub(crate) struct Deferred {
    /// Invariant 1.
    state: AtomicU8,
    /// Taken by the one start, or dropped by the one stop.
    callback: Mutex<Option<Callback>>,
}

impl Deferred {
    pub(crate) fn new(callback: Callback) -> Deferred {
        Deferred {
            state: AtomicU8::new(PENDING),
            callback: Mutex::new(Some(callback)),
        }
    }

    /// Starts the function on its own thread, unless `stop` got there first.
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
        if let Err((error, callback)) =
            spawn::try_spawn_named(Origin::here(spawn::AFTER_FUNC_THREAD), callback)
        {
            // The OS refused a thread. Running the function late on this thread is the only way
            // left to keep the promise that it runs; say so.
            eprintln!(
                "ctxkit: could not start an after-function thread ({error}); running it inline"
            );
            if let Some(callback) = callback {
                callback();
            }
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
