//! Waiting for a context: the [`Done`] future for async code and the blocking waits for threads.
//! (The futures built on `Done` and the public `Context`, `Run` and `Sleep`, are in
//! `futures.rs`, on the floor of the public types.)
//!
//! Both register a waiter in the node (`waiters.rs`) under its lock and re-check the state after
//! registering, so a cancel that races with the registration is never missed: either the
//! registration sees the done bits, or the completion sees the waiter (`tree.rs`, invariant 5).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use crate::context::error::Error;
use crate::context::tree::{self, Node, Registered};
use crate::context::waiters::Waiter;
use crate::spawn;
use crate::sync::{self, Arc};
use crate::time::{self, NO_DEADLINE};

/// A future that completes with the context's [`Error`] once the context is done.
///
/// Made by [`Context::done`](crate::Context::done). It owns a reference to the context, so it is
/// `'static` and can be moved into spawned tasks. On a context that can never be done
/// (`background`, `todo`, `without_cancel`) it never completes.
///
/// # Cancel safety
///
/// Dropping a pending `Done` removes its waiter; nothing is lost, and a new `done()` can be
/// awaited later. It is safe to use in `select!` loops.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// use ctxkit::{Context, Error};
///
/// let ctx = Context::background().with_cancel();
/// let waiter = std::thread::spawn({
///     let ctx = ctx.clone();
///     move || futures::executor::block_on(ctx.done())
/// });
/// ctx.cancel();
/// assert_eq!(waiter.join().unwrap(), Error::Canceled);
/// # });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Done {
    node: Option<Arc<Node>>,
    /// Our entry in the node's waiter list, once registered.
    key: Option<u32>,
}

impl Done {
    pub(crate) fn new(node: Option<Arc<Node>>) -> Done {
        Done { node, key: None }
    }

    /// True once a poll has registered this future's waiter (it stays registered until the
    /// context completes it or the future is dropped).
    pub(crate) fn is_registered(&self) -> bool {
        self.key.is_some()
    }

    /// For a registered `Done`: the context's error if it is done, read as `poll` would read
    /// it (lock-free) but without touching the waiter's entry. A caller that gets `None` and
    /// returns `Pending` must poll this future first, which refreshes the waker.
    pub(crate) fn peek_registered(&self) -> Option<Error> {
        let node = self.node.as_ref().filter(|_| self.key.is_some())?;
        let error = tree::err(node)?;
        note_ended(true);
        Some(error)
    }
}

impl Future for Done {
    type Output = Error;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Error> {
        let this = self.get_mut();
        let Some(node) = &this.node else {
            return Poll::Pending;
        };
        loop {
            match this.key {
                Some(key) => {
                    if let Some(error) = tree::err(node) {
                        note_ended(true);
                        return Poll::Ready(error);
                    }
                    if tree::refresh_waker(node, key, cx.waker()) {
                        return Poll::Pending;
                    }
                    // Our entry is gone: the node completed meanwhile. Look again.
                    this.key = None;
                }
                None => {
                    // Done already as far as the state says: no waker to clone. Otherwise
                    // `register` decides (reading the clock at most once).
                    if let Some(error) = tree::err_recorded(node) {
                        return Poll::Ready(error);
                    }
                    let waiter = Waiter::Task(cx.waker().clone());
                    match tree::register(node, waiter, true) {
                        Registered::Waiting(key) => {
                            this.key = Some(key);
                            note_waiting(Some(node));
                            return Poll::Pending;
                        }
                        Registered::Done(error) => return Poll::Ready(error),
                    }
                }
            }
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if let (Some(node), Some(key)) = (&self.node, self.key) {
            tree::deregister(node, key);
            // The context is read only for the leak checker (`err` may walk to the owner).
            if spawn::tracking() {
                note_ended(tree::err(node).is_some());
            }
        }
    }
}

/// Tells the leak checker that the calling unit waits on `node` (`spawn`'s invariant 4): one
/// relaxed load unless a leak check is in use.
fn note_waiting(node: Option<&Arc<Node>>) {
    if let (true, Some(node)) = (spawn::tracking(), node) {
        let node: Arc<dyn spawn::Waitable> = node.clone();
        spawn::note_waiting(spawn::WaitNote::On(Arc::downgrade(&node)));
    }
}

/// Tells the leak checker that the calling unit's wait ended, with the context done or not.
fn note_ended(done: bool) {
    if spawn::tracking() {
        let note = if done {
            spawn::WaitNote::Over
        } else {
            spawn::WaitNote::Paused
        };
        spawn::note_waiting(note);
    }
}

/// Tells the leak checker when a blocking wait ends, however it ends.
struct Noted<'a>(&'a Node);

impl Drop for Noted<'_> {
    fn drop(&mut self) {
        note_ended(tree::err(self.0).is_some());
    }
}

impl fmt::Debug for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done")
            .field("err", &self.node.as_deref().and_then(tree::err))
            .field("registered", &self.key.is_some())
            .finish()
    }
}

/// Blocks the current thread until `node` is done or `limit` passes; `None` on the latter.
///
/// The thread parks; a completion unparks it. With a deadline it parks with a timeout, so it
/// needs no timer thread: when it wakes past the deadline, the lazy check reports the context
/// done.
pub(crate) fn block_until(node: Option<&Arc<Node>>, limit: Option<Instant>) -> Option<Error> {
    match block_until_or(node, limit, || false) {
        Blocked::Done(error) => Some(error),
        Blocked::TimedOut | Blocked::Ready => None,
    }
}

/// How [`block_until_or`] ended.
pub(crate) enum Blocked {
    /// The context is done.
    Done(Error),
    /// The limit passed.
    TimedOut,
    /// `ready` returned true.
    Ready,
}

/// As [`block_until`], and also returns once `ready()` is true. `ready` is called before the
/// first park and after every unpark (spurious ones included), with no lock of the context
/// held; whoever makes it true must then unpark this thread (`sync::current_thread()`).
pub(crate) fn block_until_or(
    node: Option<&Arc<Node>>,
    limit: Option<Instant>,
    mut ready: impl FnMut() -> bool,
) -> Blocked {
    let limit = limit.map(|at| time::encode(at).unwrap_or(u64::MAX));
    let Some(node) = node else {
        // Never done: sleep out the limit, or forever.
        loop {
            if ready() {
                return Blocked::Ready;
            }
            match limit {
                Some(limit) => {
                    let now = time::now();
                    if now >= limit {
                        return Blocked::TimedOut;
                    }
                    sync::park_timeout(time::until(limit, now));
                }
                None => sync::park(),
            }
        }
    };
    if let Some(error) = tree::err(node) {
        return Blocked::Done(error);
    }
    let key = match tree::register(node, Waiter::Thread(sync::current_thread()), false) {
        Registered::Waiting(key) => key,
        Registered::Done(error) => return Blocked::Done(error),
    };
    note_waiting(Some(node));
    let _noted = Noted(node);
    let deadline = node.deadline();
    loop {
        if let Some(error) = tree::err(node) {
            tree::deregister(node, key);
            return Blocked::Done(error);
        }
        if ready() {
            tree::deregister(node, key);
            return Blocked::Ready;
        }
        if limit.is_none() && deadline == NO_DEADLINE {
            // Nothing to time: only a completion (or whoever makes `ready` true) wakes us
            // (spurious unparks loop back here).
            sync::park();
            continue;
        }
        let now = time::now();
        if limit.is_some_and(|limit| now >= limit) {
            tree::deregister(node, key);
            return Blocked::TimedOut;
        }
        // Wake for the deadline only while it is ahead: past it and not done means the timer
        // watches it and will unpark us.
        let wake_at = [
            limit,
            (deadline != NO_DEADLINE && deadline > now).then_some(deadline),
        ]
        .into_iter()
        .flatten()
        .min();
        match wake_at {
            Some(at) => sync::park_timeout(time::until(at, now)),
            None => sync::park(),
        }
    }
}
