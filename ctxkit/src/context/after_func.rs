//! [`AfterFunc`]: the handle of a function registered to run on its own thread once a context
//! is done. The function itself, and the one decision between running and stopping it, is a
//! [`Deferred`] (`deferred.rs`); this file registers it with the tree and unregisters it.

use std::fmt;

use crate::context::deferred::{Callback, Deferred};
use crate::context::tree::{self, Node, Registered};
use crate::context::waiters::Waiter;
use crate::sync::Arc;

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
    shared: Arc<Deferred>,
}

impl AfterFunc {
    pub(crate) fn register(node: Option<&Arc<Node>>, callback: Callback) -> AfterFunc {
        let shared = Arc::new(Deferred::new(callback));
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
        let stopped = self.shared.stop();
        if stopped {
            if let (Some(node), Some(key)) = (&self.node, self.key) {
                tree::deregister(node, key);
            }
        }
        stopped
    }
}

impl fmt::Debug for AfterFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfterFunc")
            .field("state", &self.shared.state_name())
            .finish()
    }
}
