//! The futures built on [`Done`] and the public [`Context`]: [`Run`] (work raced against a
//! context) and [`Sleep`] (an interruptible sleep). Each owns what it needs, so each is
//! `'static` and can be moved into a task or returned from a tower service as it is.
//!
//! This file is on the floor of the public types (`mod.rs`, `cancel_context.rs`): it uses
//! `Context` and `CancelContext`, and nothing below uses it. No locking here.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use crate::context::cancel_context::CancelContext;
use crate::context::error::Error;
use crate::context::wait::Done;
use crate::context::Context;
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
        if this.done.is_registered() {
            // Polled again (most often because the work is ready): the context first, read
            // lock-free, then the work; the waiter's entry is touched (its waker refreshed, a
            // lock round trip) only if the work is still pending.
            if let Some(error) = this.done.peek_registered() {
                return Poll::Ready(Err(error));
            }
            if let Poll::Ready(output) = this.work.poll(cx) {
                return Poll::Ready(Ok(output));
            }
            return match Pin::new(this.done).poll(cx) {
                Poll::Ready(error) => Poll::Ready(Err(error)),
                Poll::Pending => Poll::Pending,
            };
        }
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Work that is pending on its first poll and ready on every later one.
    fn ready_on_second_poll() -> impl Future<Output = u32> + Unpin {
        let mut polled = false;
        std::future::poll_fn(move |_| {
            if std::mem::replace(&mut polled, true) {
                Poll::Ready(7)
            } else {
                Poll::Pending
            }
        })
    }

    #[test]
    fn a_registered_run_reports_the_context_before_ready_work() {
        let mut cx = TaskContext::from_waker(Waker::noop());
        let ctx = Context::background().with_cancel();
        let mut run = ctx.run(ready_on_second_poll());
        assert!(Pin::new(&mut run).poll(&mut cx).is_pending());
        ctx.cancel();
        assert_eq!(
            Pin::new(&mut run).poll(&mut cx),
            Poll::Ready(Err(Error::Canceled))
        );
    }

    #[test]
    fn a_registered_run_returns_ready_work_and_leaves_no_waiter() {
        let mut cx = TaskContext::from_waker(Waker::noop());
        let ctx = Context::background().with_cancel();
        let mut run = ctx.run(ready_on_second_poll());
        assert!(Pin::new(&mut run).poll(&mut cx).is_pending());
        assert_eq!(Pin::new(&mut run).poll(&mut cx), Poll::Ready(Ok(7)));
        drop(run);
        let node = ctx.node.as_ref().expect("a node");
        assert_eq!(crate::context::tree::waiter_count(node), 0);
    }

    #[test]
    fn a_registered_run_with_pending_work_refreshes_its_waker() {
        use crate::test_waker::counter;
        use std::sync::atomic::Ordering as StdOrdering;
        let ctx = Context::background().with_cancel();
        let mut run = ctx.run(std::future::pending::<()>());
        let (first, waker) = counter();
        let (second, second_waker) = counter();
        assert!(Pin::new(&mut run)
            .poll(&mut TaskContext::from_waker(&waker))
            .is_pending());
        let waker = second_waker;
        assert!(Pin::new(&mut run)
            .poll(&mut TaskContext::from_waker(&waker))
            .is_pending());
        ctx.cancel();
        assert_eq!(first.0.load(StdOrdering::SeqCst), 0);
        assert_eq!(second.0.load(StdOrdering::SeqCst), 1);
    }
}
