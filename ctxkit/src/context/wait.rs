//! Waiting for a context: the futures for async code ([`Done`], [`Run`], [`Sleep`], each owning
//! what it needs, so each is `'static` and can be returned from a tower service or moved into a
//! task) and the blocking waits for threads.
//!
//! Both register a waiter in the node (`waiters.rs`) under its lock and re-check the state after
//! registering, so a cancel that races with the registration is never missed: either the
//! registration sees the done bits, or the completion sees the waiter (`tree.rs`, invariant 5).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;

use crate::context::cancel_context::CancelContext;
use crate::context::error::Error;
use crate::context::tree::{self, Node, Registered};
use crate::context::waiters::Waiter;
use crate::context::Context;
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
}

impl Future for Done {
    type Output = Error;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Error> {
        let this = self.get_mut();
        let Some(node) = &this.node else {
            return Poll::Pending;
        };
        loop {
            if let Some(error) = tree::err(node) {
                return Poll::Ready(error);
            }
            match this.key {
                Some(key) => {
                    if tree::refresh_waker(node, key, cx.waker()) {
                        return Poll::Pending;
                    }
                    // Our entry is gone: the node completed meanwhile. Look again.
                    this.key = None;
                }
                None => match tree::register(node, Waiter::Task(cx.waker().clone()), true) {
                    Registered::Waiting(key) => {
                        this.key = Some(key);
                        return Poll::Pending;
                    }
                    Registered::Done(error) => return Poll::Ready(error),
                },
            }
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        if let (Some(node), Some(key)) = (&self.node, self.key) {
            tree::deregister(node, key);
        }
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

pin_project! {
    /// The future of [`Context::run`]: `work`, raced against the context.
    ///
    /// It owns a reference to the context, so it is `'static` whenever `work` is.
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `work` is: dropping it drops `work`.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use ctxkit::{Context, Error};
    ///
    /// let ctx = Context::background().with_cancel();
    /// let run: ctxkit::context::Run<_> = ctx.run(async { 7 });
    /// assert_eq!(run.await, Ok(7));
    /// # });
    /// ```
    #[must_use = "futures do nothing unless awaited"]
    pub struct Run<F> {
        done: Done,
        #[pin]
        work: F,
    }
}

impl<F> Run<F> {
    pub(crate) fn new(done: Done, work: F) -> Run<F> {
        Run { done, work }
    }
}

impl<F: Future> Future for Run<F> {
    type Output = Result<F::Output, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The context first: no work is reported done after the context.
        if let Poll::Ready(error) = Pin::new(this.done).poll(cx) {
            return Poll::Ready(Err(error));
        }
        this.work.poll(cx).map(Ok)
    }
}

impl<F> fmt::Debug for Run<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run").field("done", &self.done).finish()
    }
}

/// The future of [`Context::sleep`]: a timeout of its own under the context, awaited.
///
/// It owns its context, so it is `'static`.
///
/// # Cancel safety
///
/// Cancel safe: dropping it cancels its own timeout and nothing else.
///
/// # Examples
///
/// ```
/// # futures::executor::block_on(async {
/// use std::time::Duration;
///
/// let sleep: ctxkit::context::Sleep = ctxkit::Context::background().sleep(Duration::from_millis(1));
/// assert_eq!(sleep.await, Ok(()));
/// # });
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    /// The context slept under; checked once the timer's child is done.
    parent: Context,
    /// A child of `parent` with the sleep's timeout; dropping the sleep cancels it.
    timer: CancelContext,
    /// `timer`'s done future.
    done: Done,
}

impl Sleep {
    pub(crate) fn new(parent: Context, timer: CancelContext) -> Sleep {
        let done = timer.done();
        Sleep {
            parent,
            timer,
            done,
        }
    }
}

impl Future for Sleep {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.done).poll(cx) {
            Poll::Pending => Poll::Pending,
            // The timer's child is done: by its own timeout (then the parent is fine), or
            // because the parent is done (then the parent says why).
            Poll::Ready(_) => Poll::Ready(self.parent.check()),
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("until", &self.timer.deadline())
            .field("parent", &self.parent)
            .finish()
    }
}

/// Blocks the current thread until `node` is done or `limit` passes; `None` on the latter.
///
/// The thread parks; a completion unparks it. With a deadline it parks with a timeout, so it
/// needs no timer thread: when it wakes past the deadline, the lazy check reports the context
/// done.
pub(crate) fn block_until(node: Option<&Arc<Node>>, limit: Option<Instant>) -> Option<Error> {
    let limit = limit.map(|at| time::encode(at).unwrap_or(u64::MAX));
    let Some(node) = node else {
        // Never done: sleep out the limit, or forever.
        loop {
            match limit {
                Some(limit) => {
                    let now = time::now();
                    if now >= limit {
                        return None;
                    }
                    sync::park_timeout(time::until(limit, now));
                }
                None => sync::park(),
            }
        }
    };
    if let Some(error) = tree::err(node) {
        return Some(error);
    }
    let key = match tree::register(node, Waiter::Thread(sync::current_thread()), false) {
        Registered::Waiting(key) => key,
        Registered::Done(error) => return Some(error),
    };
    let deadline = node.deadline();
    loop {
        if let Some(error) = tree::err(node) {
            tree::deregister(node, key);
            return Some(error);
        }
        if limit.is_none() && deadline == NO_DEADLINE {
            // Nothing to time: only a completion wakes us (spurious unparks loop back here).
            sync::park();
            continue;
        }
        let now = time::now();
        if limit.is_some_and(|limit| now >= limit) {
            tree::deregister(node, key);
            return None;
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
