//! [`CancelContext`]: a derived context and the power to cancel it, in one value.
//!
//! Go hands back two values (`ctx, cancel := context.WithTimeout(...)`) and asks for
//! `defer cancel()`; a Rust tuple of the two made `let (ctx, _) = ...` cancel at once without a
//! word. Here the context *is* the owner: it derefs to [`Context`], clones into plain
//! `Context`s, and cancels when it is dropped. There is no second value to lose.
//!
//! No locking here: canceling delegates to `tree`, as [`CancelHandle`] does.

use std::error::Error as StdError;
use std::fmt;
use std::ops::Deref;

use crate::context::error::Error;
use crate::context::error::Reason;
use crate::context::handle::CancelHandle;
use crate::context::tree::{self, Completion};
use crate::context::Context;
use crate::sync::Arc;

/// A child context that owns its cancellation: returned by [`Context::with_cancel`],
/// [`with_timeout`](Context::with_timeout), [`with_deadline`](Context::with_deadline) and
/// their `_cause` forms.
///
/// It derefs to [`Context`], so everything a context does works on it (`ctx.is_done()`,
/// `ctx.done().await`, `fetch(&ctx)` for a `fn fetch(ctx: &Context)`), and it **cancels the
/// context when it is dropped**, so the work it was made for cannot outlive it. Cancel earlier
/// with [`cancel`](CancelContext::cancel) or [`cancel_with`](CancelContext::cancel_with).
///
/// * `ctx.clone()` gives a plain [`Context`]: hand clones to threads and tasks; they see the
///   cancel but cannot cancel, and dropping them cancels nothing. (Through a reference, as in
///   `for ctx in &contexts`, `.clone()` would copy the reference: write `ctx.context().clone()`.
///   The compiler warns about that one with `noop_method_call`.)
/// * To give the canceling power itself to another thread or task (Go's `cancel` passed to a
///   goroutine), split the value with [`into_parts`](CancelContext::into_parts).
/// * To keep the context alive past this value without canceling it, call
///   [`disarm`](CancelContext::disarm): it returns the plain context.
///
/// # Coming from Go
///
/// | Go | ctxkit |
/// |---|---|
/// | `ctx, cancel := context.WithTimeout(parent, d)`; `defer cancel()` | `let ctx = parent.with_timeout(d);` |
/// | `cancel()` | `ctx.cancel()` (or let `ctx` go out of scope) |
/// | `ctx, cancel := context.WithCancelCause(parent)`; `cancel(err)` | `let ctx = parent.with_cancel_cause();` `ctx.cancel_with(err)` |
/// | `go func() { ...; cancel() }()` | `let (ctx, cancel) = parent.with_cancel().into_parts();` then move `cancel` |
///
/// Go's `vet` warns when a `cancel` is lost; here there is nothing to lose: the Go habit
/// `let (ctx, _) = parent.with_timeout(d);` does not compile.
///
/// ```compile_fail
/// # use std::time::Duration;
/// let (ctx, _) = ctxkit::Context::background().with_timeout(Duration::from_secs(1));
/// //  ^^^^^^^^ expected `CancelContext`, found a tuple: write `let ctx = ...`
/// ```
///
/// The one way left to cancel early by mistake is to drop this value early: a
/// `CancelContext` moved into a closure or thread cancels when that closure ends. Move a clone
/// instead.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ctxkit::{Context, Error};
///
/// fn fetch(ctx: &Context) -> Result<&'static str, Error> {
///     ctx.check()?;
///     Ok("Flaming June")
/// }
///
/// let root = Context::background();
/// let ctx = root.with_timeout(Duration::from_secs(5)); // one value: the context and its owner
/// assert_eq!(fetch(&ctx), Ok("Flaming June"));
///
/// let worker = {
///     let ctx = ctx.clone(); // a plain Context for the thread
///     std::thread::spawn(move || ctx.wait())
/// };
/// drop(ctx); // cancels, as `defer cancel()` would at the end of the function
/// assert_eq!(worker.join().unwrap(), Error::Canceled);
/// ```
///
/// Handing the canceling power to another thread:
///
/// ```
/// use ctxkit::{Context, Error};
///
/// let (ctx, cancel) = Context::background().with_cancel().into_parts();
/// std::thread::spawn(move || cancel.cancel()).join().unwrap();
/// assert_eq!(ctx.err(), Some(Error::Canceled));
/// ```
#[must_use = "dropping a CancelContext cancels it at once; bind it: `let ctx = parent.with_cancel();`"]
pub struct CancelContext {
    /// The child; its node is `Some` (made by `Context::child`) until `disarm` takes the
    /// context out and leaves `background()`. Canceled on drop.
    ctx: Context,
}

impl CancelContext {
    /// Wraps a context just made with a node of its own.
    #[inline]
    pub(crate) fn new(ctx: Context) -> CancelContext {
        debug_assert!(ctx.node.is_some(), "a CancelContext owns a node");
        CancelContext { ctx }
    }

    /// The context itself (what `*ctx` and `&ctx` deref to).
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = ctxkit::Context::background().with_cancel();
    /// let plain: &ctxkit::Context = ctx.context();
    /// assert!(!plain.is_done());
    /// ```
    #[inline]
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Cancels the context (and its whole subtree) with [`Error::Canceled`] and no reason. Does
    /// nothing if it is already done. When it returns, every descendant reports done.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{Context, Error};
    ///
    /// let ctx = Context::background().with_cancel();
    /// let child = ctx.with_cancel();
    /// ctx.cancel();
    /// assert_eq!(child.err(), Some(Error::Canceled));
    /// ```
    #[inline]
    pub fn cancel(&self) {
        if let Some(node) = &self.ctx.node {
            tree::cancel(node, Completion::With(Error::Canceled, None));
        }
    }

    /// Cancels the context with [`Error::Canceled`] and `reason` as its
    /// [`Cause`](crate::Cause). Does nothing if it is already done: the first reason stays.
    ///
    /// `reason` is any error, or a `&str`/`String`.
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = ctxkit::Context::background().with_cancel_cause();
    /// ctx.cancel_with("client went away");
    /// ctx.cancel_with("too late: the first reason stays");
    /// assert_eq!(ctx.cause().unwrap().to_string(), "client went away");
    /// ```
    pub fn cancel_with<E>(&self, reason: E)
    where
        E: Into<Box<dyn StdError + Send + Sync + 'static>>,
    {
        if let Some(node) = &self.ctx.node {
            let reason: Reason = Arc::from(reason.into());
            tree::cancel(node, Completion::With(Error::Canceled, Some(reason)));
        }
    }

    /// Splits into the plain context and a [`CancelHandle`] that cancels it (on
    /// [`cancel`](CancelHandle::cancel) or when dropped): for handing the power to cancel to
    /// another thread or task.
    ///
    /// Bind the handle to a named variable: `let (ctx, _) = ...into_parts();` drops it, and so
    /// cancels the context, at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::{Context, Error};
    ///
    /// let (ctx, cancel) = Context::background().with_cancel().into_parts();
    /// let watchdog = std::thread::spawn(move || {
    ///     std::thread::sleep(Duration::from_millis(5));
    ///     cancel.cancel(); // or just let `cancel` drop
    /// });
    /// assert_eq!(ctx.wait(), Error::Canceled);
    /// watchdog.join().unwrap();
    /// ```
    #[inline]
    pub fn into_parts(self) -> (Context, CancelHandle) {
        let ctx = self.disarm();
        let node = ctx.node.clone().expect("a CancelContext owns a node");
        (ctx, CancelHandle::new(node))
    }

    /// Lets go of the canceling power without canceling: returns the plain context.
    ///
    /// The context then stays alive until its parent is done or its deadline passes, or, if
    /// neither can happen, until every clone of it is dropped (it is then unlinked from its
    /// parent, so nothing is pinned).
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = ctxkit::Context::background().with_cancel().disarm();
    /// assert!(!ctx.is_done());
    /// ```
    #[inline]
    pub fn disarm(mut self) -> Context {
        // What is left behind is `background()`: no node, so the drop cancels nothing.
        std::mem::take(&mut self.ctx)
    }
}

impl Deref for CancelContext {
    type Target = Context;

    #[inline]
    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl AsRef<Context> for CancelContext {
    #[inline]
    fn as_ref(&self) -> &Context {
        &self.ctx
    }
}

impl Drop for CancelContext {
    /// Cancels the context (Go's `defer cancel()`).
    #[inline]
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for CancelContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CancelContext").field(&self.ctx).finish()
    }
}
