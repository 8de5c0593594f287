//! [`AfterFunc`]: the handle of a function registered to run on a thread of the after-function
//! pool (`blocking/`) once a context is done, or of a future registered to run then as a task
//! on the tokio runtime current at its registration (`after_func_async`). The function itself,
//! and the one decision between running and stopping it, is a [`Deferred`] (`deferred.rs`);
//! this file registers it with the tree and unregisters it, and makes sure the pool's
//! dispatcher runs before any cancel needs it.
//!
//! An async one's task is spawned here, at its registration, *gated*
//! (`spawn::spawn_gated_task`): it polls once, stores its waker and waits, holding the future.
//! Its `Deferred`'s work is the gate's trigger: started, it opens the gate (on the pool's
//! dispatcher: a cancel only hands it off, as it does the blocking ones) and the task runs the
//! future; dropped unstarted (a stop, or the registration dropped with a context that was
//! never done), it shuts the gate and the task ends, dropping the future unpolled. A context
//! that can never be done spawns nothing: its registration only holds the future.
//!
//! What a pending registration costs: the task's tokio cell (with the future in it), its
//! record in `spawn`'s registry, and the `Deferred`; measured on a fresh heap, about 830
//! bytes with a small future, against about 340 when the future waited, boxed, to be spawned
//! at the hand-off (`ctx.after_func_10k`'s future: a 1 ms tokio sleep).

use std::fmt;

use crate::blocking::{Callback, Work};
use crate::context::deferred::Deferred;
use crate::context::tree::{self, Node, Registered};
use crate::context::waiters::Waiter;
use crate::spawn::{self, Origin};
use crate::sync::Arc;

/// A function registered with [`Context::after_func`](crate::Context::after_func), to run once
/// the context is done, on a thread of ctxkit's after-function pool (`ctxkit-after-func`); or a
/// future registered with `Context::after_func_async` (feature `tokio`), to run then as a task
/// on the runtime current at its registration.
///
/// The cancel that completes the context only hands the function to the pool: it starts no
/// thread and runs no user code. The pool runs each function on a thread that runs nothing
/// else meanwhile, reuses threads that have become free, and starts one more whenever every
/// one of them is busy (a function that blocks never holds up another); idle threads exit
/// after a few seconds.
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
    /// Registers `callback` to run on the pool once the context of `node` is done.
    #[track_caller]
    pub(crate) fn register(node: Option<&Arc<Node>>, callback: Callback) -> AfterFunc {
        AfterFunc::register_work(
            node,
            Work::Run(callback),
            Origin::here(spawn::AFTER_FUNC_THREAD),
        )
    }

    /// Registers `future` to run, once the context of `node` is done, as a task on the
    /// runtime current now: spawned now, dormant, behind a gate that the context's completion
    /// opens (see "Async after-functions" in the module docs).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (see `Context::after_func_async`).
    #[cfg(feature = "tokio")]
    #[track_caller]
    pub(crate) fn register_async<F>(node: Option<&Arc<Node>>, future: F) -> AfterFunc
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            panic!(
                "Context::after_func_async called outside a tokio runtime: call it from a \
                 runtime's task, or inside the guard of `Handle::enter`"
            );
        };
        let origin = Origin::here(crate::blocking::AFTER_FUNC_TASK);
        let work = match node {
            Some(_) => {
                // Generic, so the future travels unboxed into the task's cell.
                let trigger = spawn::spawn_gated_task(&runtime, origin, future);
                let open: crate::blocking::Spawner = Box::new(move |_| trigger.open());
                Work::Spawn(open)
            }
            // Never done: nothing to spawn, ever; the future is only held, for a stop (or
            // the handle's drop) to drop.
            None => {
                let hold: crate::blocking::Spawner = Box::new(move |_| drop(future));
                Work::Spawn(hold)
            }
        };
        AfterFunc::register_work(node, work, origin)
    }

    fn register_work(node: Option<&Arc<Node>>, work: Work, origin: Origin) -> AfterFunc {
        let shared = Arc::new(Deferred::new(work, origin));
        let mut key = None;
        if let Some(node) = node {
            // The pool's dispatcher runs before the context can hand the function off, so the
            // hand-off starts no thread (`blocking/`). A refusal was said; the hand-off tries
            // again.
            crate::blocking::prepare();
            match tree::register(node, Waiter::AfterFunc(shared.clone()), true) {
                Registered::Waiting(k) => key = Some(k),
                // Already done: as Go, start it at once (on the pool; an async one's gate is
                // opened here).
                Registered::Done(_) => shared.start_at_registration(),
            }
        }
        AfterFunc {
            node: node.cloned(),
            key,
            shared,
        }
    }

    /// Unregisters the function. Returns true if this call stopped it from running; false if it
    /// has already been started (the context is done) or was already stopped. For an async
    /// one, "started" means handed off to be run: a future whose runtime shut down before the
    /// context was done was dropped unrun (with its task), and `stop` still reports false once
    /// the context is done. A stop that prevents the run ends the registration's waiting task,
    /// which drops the future on its runtime.
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
        match (&self.node, self.key) {
            // Registered on the context's list: the stop wins iff it takes the registration off
            // that list before a completion takes the whole list (both under the node's lock).
            // A completion that took it has started it: the pool's dispatcher will take its
            // work, and no stop may win from then on, even before the dispatcher gets to it.
            (Some(node), Some(key)) => match tree::deregister(node, key) {
                Some(waiter) => {
                    let stopped = self.shared.stop();
                    debug_assert!(stopped, "only a completion starts a listed registration");
                    drop(waiter);
                    stopped
                }
                None => false,
            },
            // A context that can never be done, or one done at the registration (started then):
            // the `Deferred`'s state decides.
            _ => self.shared.stop(),
        }
    }
}

impl fmt::Debug for AfterFunc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut state = self.shared.state_name();
        // Once the context is done, the completion has taken (or, while a concurrent cancel
        // is still walking down to this context, is about to take) the registration, and the
        // pool's dispatcher will start it: said as "started" from then on, as `stop()` (false)
        // would, not "pending" until the dispatcher gets to it.
        if state == "pending" && self.node.as_deref().is_some_and(tree::is_done) {
            state = "started";
        }
        f.debug_struct("AfterFunc").field("state", &state).finish()
    }
}
