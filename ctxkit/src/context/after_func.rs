//! `after_func`: run a function on its own thread once a context is done.
//!
//! # Invariants
//!
//! 1. `state` goes from `PENDING` to `STARTED` (the completion won) or to `STOPPED` (`stop` won),
//!    once; whoever moves it decides whether the function runs.
//! 2. The function runs at most once, on a thread of its own (`ctxkit-after-func`), never on the
//!    thread that canceled the context.

use std::fmt;

use crate::context::tree::{self, Node, Registered};
use crate::context::waiters::Waiter;
use crate::sync::{Arc, AtomicU8, Mutex, Ordering};

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const STOPPED: u8 = 2;

/// Name of the threads that run after-functions.
pub(crate) const THREAD_NAME: &str = "ctxkit-after-func";

type Callback = Box<dyn FnOnce() + Send + 'static>;

/// What the context's waiter list and the [`AfterFunc`] handle share.
pub(crate) struct AfterFuncShared {
    /// Invariant 1.
    state: AtomicU8,
    /// Taken by the one start.
    callback: Mutex<Option<Callback>>,
}

impl AfterFuncShared {
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
        if let Err((error, callback)) = crate::spawn::try_spawn_named(THREAD_NAME, callback) {
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
}

/// A function registered with [`Context::after_func`](crate::Context::after_func), to run on its
/// own thread once the context is done.
///
/// Dropping the handle does not unregister the function; call [`stop`](AfterFunc::stop) for that.
///
/// # Coming from Go
///
/// `context.AfterFunc` returns a `stop func() bool`; this is that function, as a value.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use ctxkit::Context;
///
/// let ctx = Context::background().with_cancel();
/// let (tx, rx) = mpsc::channel();
/// let _after = ctx.after_func(move || tx.send("cleaned up").unwrap());
/// ctx.cancel();
/// assert_eq!(rx.recv().unwrap(), "cleaned up");
/// ```
pub struct AfterFunc {
    node: Option<Arc<Node>>,
    key: Option<u32>,
    shared: Arc<AfterFuncShared>,
}

impl AfterFunc {
    pub(crate) fn register(node: Option<&Arc<Node>>, callback: Callback) -> AfterFunc {
        let shared = Arc::new(AfterFuncShared {
            state: AtomicU8::new(PENDING),
            callback: Mutex::new(Some(callback)),
        });
        let mut key = None;
        if let Some(node) = node {
            match tree::register(node, Waiter::AfterFunc(shared.clone()), true) {
                Registered::Waiting(k) => key = Some(k),
                // Already done: as Go, start it at once on its own thread.
                Registered::Done(_) => shared.start(),
            }
        }
        AfterFunc {
            node: node.cloned(),
            key,
            shared,
        }
    }

    /// Unregisters the function. Returns true if this call stopped it from running; false if it
    /// has already been started (the context is done) or was already stopped.
    ///
    /// `stop` does not wait for a started function to finish.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background().with_cancel();
    /// let after = ctx.after_func(|| unreachable!("stopped before the cancel"));
    /// assert!(after.stop());
    /// assert!(!after.stop(), "only the first stop stops it");
    /// ctx.cancel();
    /// ```
    pub fn stop(&self) -> bool {
        let stopped = self
            .shared
            .state
            .compare_exchange(PENDING, STOPPED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if stopped {
            self.shared.callback.lock().take();
            if let (Some(node), Some(key)) = (&self.node, self.key) {
                tree::deregister(node, key);
            }
        }
        stopped
    }
}

impl fmt::Debug for AfterFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.shared.state.load(Ordering::Acquire) {
            PENDING => "pending",
            STARTED => "started",
            _ => "stopped",
        };
        f.debug_struct("AfterFunc").field("state", &state).finish()
    }
}
