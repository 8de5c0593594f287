//! [`CancelHandle`]: the power to cancel a context, split from it to be handed elsewhere.

use std::error::Error as StdError;
use std::fmt;

use crate::context::error::{Error, Reason};
use crate::context::tree::{self, Completion, Node};
use crate::sync::Arc;

/// Cancels the context it came with: explicitly with [`cancel`](CancelHandle::cancel) or
/// [`cancel_with`](CancelHandle::cancel_with), or implicitly when it is dropped.
///
/// Made by [`CancelContext::into_parts`](crate::CancelContext::into_parts), for handing the power
/// to cancel to another thread or task. Most code never needs one: a
/// [`CancelContext`](crate::CancelContext) cancels by itself.
///
/// Canceling a context cancels its whole subtree; when the call returns, every descendant
/// already reports done. The first cancel wins: later calls, and the drop, change nothing.
///
/// # Coming from Go
///
/// This is Go's `CancelFunc` (and `CancelCauseFunc`) as a value of its own, with Go's "always
/// `defer cancel()`" built in: the context is canceled when the handle goes out of scope, so
/// forgetting to cancel cannot pin the context, its timer or its parent. Keep the handle alive
/// as long as the work should run: `let (ctx, _) = parent.with_cancel().into_parts();` drops it
/// at once and so returns a canceled context. [`disarm`](CancelHandle::disarm) lets go without
/// canceling.
///
/// # Examples
///
/// ```
/// use ctxkit::Context;
///
/// let (ctx, cancel) = Context::background().with_cancel().into_parts();
/// let worker = std::thread::spawn(move || {
///     // … decide that the work is no longer needed …
///     drop(cancel); // or cancel.cancel()
/// });
/// worker.join().unwrap();
/// assert!(ctx.is_done());
/// ```
#[must_use = "dropping a CancelHandle cancels its context at once; bind it to a named variable"]
pub struct CancelHandle {
    node: Option<Arc<Node>>,
}

impl CancelHandle {
    #[inline]
    pub(crate) fn new(node: Arc<Node>) -> CancelHandle {
        CancelHandle { node: Some(node) }
    }

    /// Cancels the context with [`Error::Canceled`] and no reason. Does nothing if it is already
    /// done.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{Context, Error};
    ///
    /// let (ctx, cancel) = Context::background().with_cancel().into_parts();
    /// let child = ctx.with_cancel();
    /// cancel.cancel();
    /// assert_eq!(child.err(), Some(Error::Canceled));
    /// ```
    #[inline]
    pub fn cancel(&self) {
        if let Some(node) = &self.node {
            tree::cancel(node, Completion::With(Error::Canceled, None));
        }
    }

    /// Cancels the context with [`Error::Canceled`] and `reason` as its [`Cause`]. Does nothing
    /// if it is already done: the first cancel's reason stays.
    ///
    /// `reason` is any error, or a `&str`/`String`.
    ///
    /// [`Cause`]: crate::Cause
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::Context;
    ///
    /// let (ctx, cancel) = Context::background().with_cancel_cause().into_parts();
    /// cancel.cancel_with("client went away");
    /// cancel.cancel_with("too late: the first reason stays");
    /// assert_eq!(ctx.cause().unwrap().to_string(), "client went away");
    /// ```
    pub fn cancel_with<E>(&self, reason: E)
    where
        E: Into<Box<dyn StdError + Send + Sync + 'static>>,
    {
        if let Some(node) = &self.node {
            let reason: Reason = Arc::from(reason.into());
            tree::cancel(node, Completion::With(Error::Canceled, Some(reason)));
        }
    }

    /// Lets go of the handle without canceling the context.
    ///
    /// The context then stays alive until its parent is done or its deadline passes, or, if
    /// neither can happen, until every clone of it is dropped (it is then unlinked from its
    /// parent, so nothing is pinned).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::Context;
    ///
    /// let (ctx, cancel) = Context::background().with_cancel().into_parts();
    /// cancel.disarm();
    /// assert!(!ctx.is_done());
    /// ```
    pub fn disarm(mut self) {
        self.node = None;
    }

    /// Whether the context is done (for any reason).
    ///
    /// # Examples
    ///
    /// ```
    /// let (_ctx, cancel) = ctxkit::Context::background().with_cancel().into_parts();
    /// assert!(!cancel.is_done());
    /// cancel.cancel();
    /// assert!(cancel.is_done());
    /// ```
    pub fn is_done(&self) -> bool {
        self.node.as_deref().is_some_and(tree::is_done)
    }
}

impl Drop for CancelHandle {
    #[inline]
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle")
            .field("is_done", &self.is_done())
            .finish()
    }
}
