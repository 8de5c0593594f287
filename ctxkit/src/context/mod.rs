//! [`Context`]: cancellation, deadlines and request-scoped values that propagate down a tree
//! of work, for threads and async code alike.
//!
//! # Coming from Go
//!
//! Mirrors Go's standard `context` package; the table, name by name, is on [`Context`], and
//! the cancel forms are on [`CancelContext`]. Differences on purpose:
//!
//! * A derived context and its cancel are one value, a [`CancelContext`] that cancels when
//!   dropped: there is no `cancel` func to keep, forget or lose with `ctx, _ :=`.
//! * A value's key is its Rust type ([`with_value(v)`](Context::with_value),
//!   [`value::<T>()`](Context::value)): no `any` keys to collide, no type assertion on the way
//!   out.
//! * Waiting has a form for each kind of caller instead of one channel: a poll
//!   ([`check`](Context::check), [`is_done`](Context::is_done)), a future
//!   ([`done`](Context::done), [`run`](Context::run), [`sleep`](Context::sleep)) and a blocking
//!   call ([`wait`](Context::wait), [`blocking_sleep`](Context::blocking_sleep)).
//! * [`Error`] is a `Copy` enum with Go's two texts, compared with `==` where Go uses
//!   `errors.Is`; the reason passed to a cancel is the [`Cause`].
//! * A deadline arms no timer until somebody waits for it, and a child nobody holds is unlinked
//!   from its parent.
//!
//! # Cooperative cancellation
//!
//! Canceling a [`Context`] stops nothing by force: it marks the context (and its children)
//! done, and the work stops where it looks: `ctx.check()?` between steps, or a context-aware
//! wait ([`wait`](Context::wait), [`blocking_sleep`](Context::blocking_sleep),
//! [`sleep`](Context::sleep), [`done`](Context::done)). It then returns an ordinary error and
//! runs its own cleanup, as Go code does on `<-ctx.Done()`. Beside the two other ways to stop
//! work a Go or Java programmer may know:
//!
//! * **Java's `Thread.interrupt()`** (and `Future.cancel(true)`) sets a flag on one thread.
//!   Only calls that look at it (`sleep`, `wait`, `BlockingQueue.take`) throw
//!   `InterruptedException`; a CPU loop, a classic `java.io` read or a third-party library that
//!   never looks runs on, and a `catch` that ignores the exception clears the flag for everyone
//!   above it. A context is the same request, made explicit: the signature
//!   `fn f(ctx: &Context, ...)` says whether a call can be canceled (a call that takes no
//!   context cannot be, visibly); it travels with the work to any thread or task, not one
//!   thread; children are canceled with their parent; and a done context stays done, so an
//!   error dropped by one library does not hide the cancel from the next check.
//! * **Dropping a Rust future** ([`run`](Context::run) does it when the context wins, as does
//!   `select!` or a timeout combinator) stops it from outside at whatever `.await` it is
//!   suspended on. It needs no cooperation, but the code after that await never runs: the
//!   only cleanup is destructors, which cannot await or report anything, and every await must
//!   leave the state consistent (cancel safety). Use it around work that is safe to abandon;
//!   pass the context into work that must stop at a point of its own choosing.
//!
//! `examples/cancel_styles.rs` runs the three side by side. `examples/ctx_first.rs` shows the
//! context passed first on every call, the trap of a request's context kept in a struct, and
//! the exception: a long-lived object that owns a context for its own lifetime (12.4 of the
//! chapter).
//!
//! # Implementation details
//!
//! A `Context` is two pointers: its nearest cancelable node (`tree.rs`, where every lock and
//! atomic lives) and its innermost value layer (`values.rs`, immutable). `with_cancel` and the
//! deadline constructors add a node; `with_value` adds a layer; `without_cancel` drops the node
//! pointer and keeps the layers. Waiting (`wait.rs`) registers in the node; deadlines are lazy
//! and, when somebody must be woken at one, watched by the one `ctxkit-timer` thread
//! (`timer.rs`). `after_func.rs` hands callbacks to the after-function pool (`blocking/`).

mod after_func;
mod cancel_context;
mod children;
pub(crate) mod deferred;
mod error;
mod futures;
mod handle;
mod sites;
pub(crate) mod tree;
mod values;
mod wait;
mod waiters;

#[cfg(all(test, loom))]
mod tests;

use std::any::Any;
use std::error::Error as StdError;
use std::fmt;
use std::future::IntoFuture;
use std::time::{Duration, Instant};

pub use after_func::AfterFunc;
pub use cancel_context::CancelContext;
pub use error::{Cause, Error};
pub use futures::{Run, Sleep};
pub use handle::CancelHandle;
pub use wait::Done;

use crate::sync::Arc;
use crate::time::{self, NO_DEADLINE};
use error::Reason;
use tree::{NewNode, Node};
use values::ValueNode;

/// Carries cancellation, a deadline and request-scoped values across API boundaries, threads
/// and tasks.
///
/// Contexts form a tree. [`background`](Context::background) is a root that is never done;
/// [`with_cancel`](Context::with_cancel), [`with_deadline`](Context::with_deadline) and
/// [`with_timeout`](Context::with_timeout) derive a child that owns its cancellation (a
/// [`CancelContext`]: it derefs to `Context` and cancels when dropped);
/// [`with_value`](Context::with_value) derives a child carrying one more value. A child is done
/// when its parent is, never the other way round, and once done it stays done with the same
/// [`Error`] and [`Cause`].
///
/// The same context is polled in loops ([`is_done`](Context::is_done),
/// [`check`](Context::check)), awaited in async code ([`done`](Context::done),
/// [`run`](Context::run), [`sleep`](Context::sleep)) and blocked on from plain threads
/// ([`wait`](Context::wait), [`wait_timeout`](Context::wait_timeout)). No async runtime is
/// needed for any of it.
///
/// `Context` is `Clone + Send + Sync + 'static`; a clone copies two pointers. Pass it by
/// reference as the first parameter (`ctx: &Context`), as Go passes `ctx context.Context`.
///
/// # Coming from Go
///
/// | Go | ctxkit |
/// |---|---|
/// | `context.Background()`, `context.TODO()` | [`Context::background`], [`Context::todo`] |
/// | `ctx, cancel := context.WithCancel(parent)` | `let ctx = parent.with_cancel();` (a [`CancelContext`]) |
/// | `WithDeadline`, `WithTimeout` | [`with_deadline`](Context::with_deadline), [`with_timeout`](Context::with_timeout) |
/// | `WithCancelCause`, `WithDeadlineCause`, `WithTimeoutCause` | [`with_cancel_cause`](Context::with_cancel_cause), [`with_deadline_cause`](Context::with_deadline_cause), [`with_timeout_cause`](Context::with_timeout_cause) |
/// | `cancel()`, `defer cancel()` | `ctx.cancel()`; dropping the [`CancelContext`] cancels |
/// | passing `cancel` to another goroutine | [`into_parts()`](CancelContext::into_parts) gives a [`CancelHandle`] |
/// | `WithValue(ctx, key, v)`, `ctx.Value(key)` | [`with_value(v)`](Context::with_value), [`value::<T>()`](Context::value) |
/// | `ctx.Done()` | [`done()`](Context::done) (a future), [`wait()`](Context::wait) (blocking), [`is_done()`](Context::is_done) (a poll) |
/// | `ctx.Err()`, `context.Cause(ctx)` | [`err()`](Context::err), [`cause()`](Context::cause) |
/// | `ctx.Deadline()` | [`deadline()`](Context::deadline) |
/// | `context.AfterFunc(ctx, f)` | [`after_func(f)`](Context::after_func) |
/// | `context.WithoutCancel(ctx)` | [`without_cancel()`](Context::without_cancel) |
///
/// Differences on purpose: values are keyed by their Rust type, so a private type is a private
/// key and string keys cannot collide; a derived context cancels when its owner drops it, so
/// there is no `cancel` to forget (and none to lose with `ctx, _ :=`); a deadline arms no
/// timer until somebody waits for it.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ctxkit::{Context, Error};
///
/// #[derive(Debug, PartialEq)]
/// struct RequestId(&'static str);
///
/// let ctx = Context::background().with_value(RequestId("req-2026"));
/// let ctx = ctx.with_timeout(Duration::from_millis(20)); // canceled when `ctx` drops
///
/// assert_eq!(ctx.value::<RequestId>(), Some(&RequestId("req-2026")));
/// assert_eq!(ctx.wait(), Error::DeadlineExceeded);
/// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
/// ```
#[derive(Clone)]
pub struct Context {
    /// The nearest cancelable node; `None` for a context that is never done.
    node: Option<Arc<Node>>,
    /// The innermost value layer.
    values: Option<Arc<ValueNode>>,
}

/// The marker layer that tells `todo()` apart from `background()`.
struct TodoMarker;

crate::sync::lazy_static! {
    /// The one marker layer every `todo()` shares.
    static ref TODO: Arc<ValueNode> = Arc::new(ValueNode::new(None, TodoMarker));
}

fn todo_layer() -> &'static Arc<ValueNode> {
    &TODO
}

fn to_reason<E>(reason: E) -> Reason
where
    E: Into<Box<dyn StdError + Send + Sync + 'static>>,
{
    Arc::from(reason.into())
}

impl Context {
    // ===== roots =====

    /// The root of every context tree: never done, no deadline, no values.
    ///
    /// Use it in `main`, at the top of servers and in tests. It costs nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = ctxkit::Context::background();
    /// assert!(!ctx.is_done());
    /// assert_eq!(ctx.deadline(), None);
    /// ```
    pub fn background() -> Context {
        Context {
            node: None,
            values: None,
        }
    }

    /// Like [`background`](Context::background), but says "a real context should be passed
    /// here; I have not plumbed it yet". Its `Debug` output says `todo`, so it is easy to find.
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = ctxkit::Context::todo();
    /// assert!(!ctx.is_done());
    /// assert_eq!(format!("{ctx:?}"), "Context::todo()");
    /// ```
    pub fn todo() -> Context {
        Context {
            node: None,
            values: Some(todo_layer().clone()),
        }
    }

    // ===== derived contexts =====

    #[inline]
    #[track_caller]
    fn child(&self, new: NewNode) -> CancelContext {
        let node = tree::new_child(self.node.as_ref(), new);
        sites::record(&node, std::panic::Location::caller());
        CancelContext::new(Context {
            node: Some(node),
            values: self.values.clone(),
        })
    }

    /// A child that is canceled when it is canceled or dropped (it is a [`CancelContext`]), or
    /// when `self` is done.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::Context;
    ///
    /// let parent = Context::background().with_cancel();
    /// let child = parent.with_cancel();
    /// parent.cancel();
    /// assert!(child.is_done());
    /// ```
    #[must_use = "dropping the CancelContext cancels it at once; bind it: `let ctx = ...`"]
    #[inline]
    #[track_caller]
    pub fn with_cancel(&self) -> CancelContext {
        self.child(NewNode {
            deadline: NO_DEADLINE,
            deadline_cause: None,
            now: None,
        })
    }

    /// The same as [`with_cancel`](Context::with_cancel), named after Go's `WithCancelCause`:
    /// cancel it with a reason through [`CancelContext::cancel_with`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background().with_cancel_cause();
    /// ctx.cancel_with("shutting down");
    /// assert_eq!(ctx.err().unwrap().to_string(), "context canceled");
    /// assert_eq!(ctx.cause().unwrap().to_string(), "shutting down");
    /// ```
    #[must_use = "dropping the CancelContext cancels it at once; bind it: `let ctx = ...`"]
    #[track_caller]
    pub fn with_cancel_cause(&self) -> CancelContext {
        self.with_cancel()
    }

    /// A child that is done at `deadline` with [`Error::DeadlineExceeded`], or earlier if
    /// canceled or if `self` is done.
    ///
    /// The child's deadline is the earlier of `deadline` and the parent's. A deadline already
    /// past is not an error: the child is born done. No timer is armed until somebody waits
    /// for the child asynchronously or registers an after-function.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::{Context, Error};
    ///
    /// let ctx = Context::background().with_deadline(Instant::now() - Duration::from_secs(1));
    /// assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    /// ```
    #[must_use = "dropping the CancelContext cancels it at once; bind it: `let ctx = ...`"]
    #[track_caller]
    pub fn with_deadline(&self, deadline: Instant) -> CancelContext {
        self.with_deadline_reason(deadline, None)
    }

    /// Like [`with_deadline`](Context::with_deadline); when the deadline passes, the context's
    /// [`Cause`] carries `reason`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background().with_deadline_cause(Instant::now(), "quota window closed");
    /// let cause = ctx.cause().unwrap();
    /// assert!(cause.is_deadline_exceeded());
    /// assert_eq!(cause.to_string(), "quota window closed");
    /// ```
    #[must_use = "dropping the CancelContext cancels it at once; bind it: `let ctx = ...`"]
    #[track_caller]
    pub fn with_deadline_cause<E>(&self, deadline: Instant, reason: E) -> CancelContext
    where
        E: Into<Box<dyn StdError + Send + Sync + 'static>>,
    {
        self.with_deadline_reason(deadline, Some(to_reason(reason)))
    }

    #[track_caller]
    fn with_deadline_reason(&self, deadline: Instant, reason: Option<Reason>) -> CancelContext {
        self.child(NewNode {
            deadline: time::encode(deadline).unwrap_or(NO_DEADLINE),
            deadline_cause: reason,
            now: None,
        })
    }

    /// A child whose deadline is `timeout` from now (see [`with_deadline`](Context::with_deadline)).
    ///
    /// A timeout too large to represent (`Duration::MAX`) means no deadline; it never
    /// overflows or panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background().with_timeout(Duration::from_secs(30));
    /// assert!(ctx.deadline().is_some());
    /// let forever = Context::background().with_timeout(Duration::MAX);
    /// assert_eq!(forever.deadline(), None);
    /// ```
    #[must_use = "dropping the CancelContext cancels it at once; bind it: `let ctx = ...`"]
    #[track_caller]
    pub fn with_timeout(&self, timeout: Duration) -> CancelContext {
        self.with_timeout_reason(timeout, None)
    }

    /// Like [`with_timeout`](Context::with_timeout); when the time is up, the context's
    /// [`Cause`] carries `reason`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background().with_timeout_cause(Duration::ZERO, "lookup took too long");
    /// assert_eq!(ctx.cause().unwrap().to_string(), "lookup took too long");
    /// ```
    #[must_use = "dropping the CancelContext cancels it at once; bind it: `let ctx = ...`"]
    #[track_caller]
    pub fn with_timeout_cause<E>(&self, timeout: Duration, reason: E) -> CancelContext
    where
        E: Into<Box<dyn StdError + Send + Sync + 'static>>,
    {
        self.with_timeout_reason(timeout, Some(to_reason(reason)))
    }

    #[track_caller]
    fn with_timeout_reason(&self, timeout: Duration, reason: Option<Reason>) -> CancelContext {
        let now = time::now();
        // Invariant 2 of `time`: a deadline that does not fit is no deadline.
        let deadline = u64::try_from(timeout.as_nanos())
            .ok()
            .and_then(|timeout| now.checked_add(timeout))
            .filter(|&deadline| deadline != u64::MAX)
            .unwrap_or(NO_DEADLINE);
        self.child(NewNode {
            deadline,
            deadline_cause: reason,
            now: Some(now),
        })
    }

    /// A child carrying `value`, found by [`value::<T>()`](Context::value) on it and on every
    /// context derived from it. A value of a type already present shadows the outer one.
    ///
    /// Values are keyed by their type: define a small type per kind of value (a newtype like
    /// `struct TraceId(String)`), and keep it private to keep the key private. Use values for
    /// request-scoped data (trace ids, the authenticated user), not for optional parameters.
    ///
    /// The key is the value's exact type, so the type you store is the type you ask for:
    /// `with_value("ana")` stores a `&'static str`, and `value::<String>()` on it is `None`
    /// (as is `value::<u64>()` after `with_value(7)`, which stores an `i32`). A newtype per kind
    /// of value avoids both surprises:
    ///
    /// ```
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background().with_value("ana");
    /// assert_eq!(ctx.value::<String>(), None); // stored a &str, asked for a String
    /// assert_eq!(ctx.value::<&str>(), Some(&"ana"));
    ///
    /// struct UserName(String);
    /// let ctx = ctx.with_value(UserName("ana".into()));
    /// assert_eq!(ctx.value::<UserName>().unwrap().0, "ana");
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::Context;
    ///
    /// struct User(&'static str);
    ///
    /// let ctx = Context::background().with_value(User("ana"));
    /// let inner = ctx.with_value(User("beto"));
    /// assert_eq!(inner.value::<User>().unwrap().0, "beto");
    /// assert_eq!(ctx.value::<User>().unwrap().0, "ana");
    /// ```
    #[must_use = "with_value returns a new context and leaves self unchanged"]
    pub fn with_value<T: Any + Send + Sync>(&self, value: T) -> Context {
        Context {
            node: self.node.clone(),
            values: Some(Arc::new(ValueNode::new(self.values.clone(), value))),
        }
    }

    /// A child that keeps `self`'s values but is never done and has no deadline, whatever
    /// happens to `self`: for work that must finish even when the request that started it is
    /// canceled (writing an audit log, say).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::Context;
    ///
    /// struct TraceId(u64);
    ///
    /// let ctx = Context::background().with_value(TraceId(7)).with_cancel();
    /// let detached = ctx.without_cancel();
    /// ctx.cancel();
    /// assert!(ctx.is_done());
    /// assert!(!detached.is_done());
    /// assert_eq!(detached.value::<TraceId>().unwrap().0, 7);
    /// ```
    #[must_use = "without_cancel returns a new context and leaves self unchanged"]
    pub fn without_cancel(&self) -> Context {
        Context {
            node: None,
            values: self.values.clone(),
        }
    }

    // ===== reading =====

    /// The innermost value of type `T`, if any layer holds one.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::Context;
    ///
    /// struct TraceId(&'static str);
    /// struct Other;
    ///
    /// let ctx = Context::background().with_value(TraceId("abc-123"));
    /// assert_eq!(ctx.value::<TraceId>().map(|t| t.0), Some("abc-123"));
    /// assert!(ctx.value::<Other>().is_none());
    /// ```
    ///
    /// # Coming from Go: no string keys
    ///
    /// The third modification of the chapter's "Try It" looks the request id up under a plain
    /// string, `ctx.Value("req")`. That cannot be written here: `value` takes no key, its key is
    /// the type `T`.
    ///
    /// ```compile_fail,E0061
    /// let ctx = ctxkit::Context::background();
    /// let id = ctx.value("req"); // error[E0061]: this method takes 0 arguments
    /// ```
    ///
    /// Storing under a string key cannot be written either:
    ///
    /// ```compile_fail,E0061
    /// let ctx = ctxkit::Context::background().with_value("req", "req-2026");
    /// // error[E0061]: this method takes 1 argument but 2 arguments were supplied
    /// ```
    ///
    /// In Go both compile. `ctx.Value("req")` returns `nil` when the id was stored under the
    /// chapter's `reqIDKey{}` (the key's type matters, not only its text), and when two
    /// packages both store under the string `"req"`, the inner value silently shadows the
    /// outer one for every reader, whichever package it came from. Only a linter (staticcheck's
    /// SA1029) flags the built-in key type; the compiler and `go vet` do not. Here a private
    /// type is a private key, so a collision needs the type itself. Storing a bare `&str` or
    /// `String` is still possible (any module can name those types, so it can shadow too):
    /// wrap it in a type of your own.
    #[inline]
    pub fn value<T: Any + Send + Sync>(&self) -> Option<&T> {
        ValueNode::lookup::<T>(self.values.as_deref())
    }

    /// The deadline, if the context or an ancestor has one: the earliest of them. Successive
    /// calls return the same value.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use ctxkit::Context;
    ///
    /// let at = Instant::now() + Duration::from_secs(60);
    /// let ctx = Context::background().with_deadline(at);
    /// let child = ctx.with_timeout(Duration::from_secs(3600));
    /// assert_eq!(child.deadline(), Some(at));
    /// ```
    pub fn deadline(&self) -> Option<Instant> {
        let node = self.node.as_deref()?;
        (node.deadline() != NO_DEADLINE).then(|| time::decode(node.deadline()))
    }

    /// Why the context is done, or `None` while it is not. Once `Some`, always the same.
    ///
    /// Takes no lock: one atomic load (plus, for a context with a deadline, one load per
    /// ancestor up to the one that set it and a clock read while no timer watches it).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{Context, Error};
    ///
    /// let ctx = Context::background().with_cancel();
    /// assert_eq!(ctx.err(), None);
    /// ctx.cancel();
    /// assert_eq!(ctx.err(), Some(Error::Canceled));
    /// ```
    #[inline]
    pub fn err(&self) -> Option<Error> {
        self.node.as_deref().and_then(tree::err)
    }

    /// Why the context is done, with the reason given: the reason passed to
    /// [`CancelContext::cancel_with`] or a `_cause` constructor, else the error itself. `None`
    /// while the context is not done. Once `Some`, always the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{Context, Error};
    ///
    /// let ctx = Context::background().with_cancel();
    /// ctx.cancel();
    /// let cause = ctx.cause().unwrap();
    /// assert_eq!(cause.error(), Error::Canceled);
    /// assert_eq!(cause.to_string(), "context canceled");
    /// ```
    pub fn cause(&self) -> Option<Cause> {
        self.node.as_deref().and_then(tree::cause)
    }

    /// Whether the context is done. Never blocks and takes no lock (see [`err`](Context::err)).
    ///
    /// # Examples
    ///
    /// ```
    /// let ctx = ctxkit::Context::background().with_cancel();
    /// let observer = ctx.clone(); // a plain Context: sees the cancel, cannot cancel
    /// assert!(!observer.is_done());
    /// drop(ctx);
    /// assert!(observer.is_done());
    /// ```
    #[inline]
    pub fn is_done(&self) -> bool {
        self.node.as_deref().is_some_and(tree::is_done)
    }

    /// `Err` with the context's error once it is done, for `?` inside loops.
    ///
    /// # Errors
    ///
    /// [`Error::Canceled`] or [`Error::DeadlineExceeded`] once the context is done.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{Context, Error};
    ///
    /// fn process(ctx: &Context, items: &[u32]) -> Result<u32, Error> {
    ///     let mut sum = 0;
    ///     for item in items {
    ///         ctx.check()?;
    ///         sum += item;
    ///     }
    ///     Ok(sum)
    /// }
    ///
    /// let ctx = Context::background().with_cancel();
    /// assert_eq!(process(&ctx, &[1, 2, 3]), Ok(6));
    /// ctx.cancel();
    /// assert_eq!(process(&ctx, &[1, 2, 3]), Err(Error::Canceled));
    /// ```
    #[inline]
    pub fn check(&self) -> Result<(), Error> {
        match self.err() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    // ===== waiting =====

    /// A future that completes with the context's error once it is done.
    ///
    /// The future owns a reference to the context, so it can be moved into a spawned task.
    /// On a context that can never be done it never completes.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use std::time::Duration;
    /// use ctxkit::{Context, Error};
    ///
    /// let ctx = Context::background().with_timeout(Duration::from_millis(10));
    /// assert_eq!(ctx.done().await, Error::DeadlineExceeded);
    /// # });
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: see [`Done`].
    pub fn done(&self) -> Done {
        Done::new(self.node.clone())
    }

    /// Blocks the current thread until the context is done; returns its error.
    ///
    /// # Blocking
    ///
    /// Parks the thread. A context that can never be done (`background`, `without_cancel`)
    /// blocks forever, as `<-ctx.Done()` does in Go. Do not call it inside async code; await
    /// [`done`](Context::done) there.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{Context, Error};
    ///
    /// let ctx = Context::background().with_cancel();
    /// let worker = std::thread::spawn({
    ///     let ctx = ctx.clone();
    ///     move || ctx.wait()
    /// });
    /// ctx.cancel();
    /// assert_eq!(worker.join().unwrap(), Error::Canceled);
    /// ```
    pub fn wait(&self) -> Error {
        loop {
            if let Some(error) = wait::block_until(self.node.as_ref(), None) {
                return error;
            }
        }
    }

    /// Blocks the current thread until the context is done (its error) or `ready()` is true
    /// (`None`). `ready` runs before the first park and after every unpark, with no lock of the
    /// context held; whoever makes it true must unpark this thread. For blocking waits of the
    /// patterns above (a group's spawn waiting for a free slot).
    pub(crate) fn block_until_or(&self, ready: impl FnMut() -> bool) -> Option<Error> {
        match wait::block_until_or(self.node.as_ref(), None, ready) {
            wait::Blocked::Done(error) => Some(error),
            wait::Blocked::Ready | wait::Blocked::TimedOut => None,
        }
    }

    /// Blocks the current thread until the context is done or `timeout` has passed; returns the
    /// context's error, or `None` on timeout.
    ///
    /// # Blocking
    ///
    /// Parks the thread for at most about `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background().with_cancel();
    /// assert_eq!(ctx.wait_timeout(Duration::from_millis(5)), None);
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Error> {
        let limit = Instant::now().checked_add(timeout);
        match limit {
            Some(limit) => wait::block_until(self.node.as_ref(), Some(limit)),
            None => Some(self.wait()),
        }
    }

    /// Runs `work` until it finishes or the context is done, whichever comes first.
    ///
    /// If the context is done first, `work` is dropped and its error returned. If both are
    /// ready at the same poll, the context wins: no work is reported done after the context.
    ///
    /// The returned [`Run`] owns a reference to the context (it does not borrow `self`), so it
    /// is `'static` whenever `work` is: it can be moved into a task or returned from a tower
    /// service as it is.
    ///
    /// # Errors
    ///
    /// The context's [`Error`] if it is done before `work` finishes.
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `work` is: dropping the returned future drops `work`.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use std::time::Duration;
    /// use ctxkit::{Context, Error};
    ///
    /// let ctx = Context::background().with_timeout(Duration::from_millis(10));
    /// let slow = async { std::future::pending::<()>().await };
    /// assert_eq!(ctx.run(slow).await, Err(Error::DeadlineExceeded));
    /// assert_eq!(Context::background().run(async { 42 }).await, Ok(42));
    /// # });
    /// ```
    pub fn run<F: IntoFuture>(&self, work: F) -> Run<F::IntoFuture> {
        Run::new(self.done(), work.into_future())
    }

    /// Sleeps for `duration`, or until the context is done, whichever comes first.
    ///
    /// Needs no async runtime: the wake-up comes from the `ctxkit-timer` thread.
    ///
    /// The returned [`Sleep`] owns what it needs (it does not borrow `self`): it is `'static`.
    ///
    /// # Errors
    ///
    /// The context's [`Error`] if it is done before `duration` has passed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Examples
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// use std::time::Duration;
    /// use ctxkit::{Context, Error};
    ///
    /// let root = Context::background();
    /// assert_eq!(root.sleep(Duration::from_millis(1)).await, Ok(()));
    /// let ctx = root.with_cancel();
    /// ctx.cancel();
    /// assert_eq!(ctx.sleep(Duration::from_secs(3600)).await, Err(Error::Canceled));
    /// # });
    /// ```
    pub fn sleep(&self, duration: Duration) -> Sleep {
        Sleep::new(self.clone(), self.with_timeout(duration))
    }

    /// Blocks the current thread for `duration`, or until the context is done, whichever comes
    /// first.
    ///
    /// # Errors
    ///
    /// The context's [`Error`] if it is done before `duration` has passed.
    ///
    /// # Blocking
    ///
    /// Parks the thread for at most about `duration`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::{Context, Error};
    ///
    /// let ctx = Context::background().with_timeout(Duration::from_millis(5));
    /// assert_eq!(ctx.blocking_sleep(Duration::from_secs(3600)), Err(Error::DeadlineExceeded));
    /// ```
    pub fn blocking_sleep(&self, duration: Duration) -> Result<(), Error> {
        match self.wait_timeout(duration) {
            Some(error) => Err(error),
            None => self.check(),
        }
    }

    /// Runs `f` on a thread of the after-function pool once the context is done (at once, if
    /// it already is).
    ///
    /// `f` runs at most once. [`AfterFunc::stop`] unregisters it. A context that can never be
    /// done never runs it. `f` never runs on the thread that canceled the context, so a slow or
    /// blocking `f` cannot hold up a cancel: the cancel only hands `f` to the pool, whose
    /// reusable `ctxkit-after-func` threads grow while all are busy (a blocked `f` never holds
    /// up another) and exit when idle.
    ///
    /// A function that mostly waits (for a timer, for I/O) holds one of those threads while it
    /// waits; on a tokio runtime, `Context::after_func_async` (feature `tokio`) runs it as a
    /// task instead, as Go runs it on a goroutine: 10,000 functions each waiting 1 ms finish
    /// in about 7 ms that way, against about 33 ms on the pool (`ctx.after_func_10k`).
    ///
    /// # Panics
    ///
    /// Never for bad input. Only if the OS refuses to start the pool's dispatcher thread, both
    /// at registration and when the context is done, does `f` run on the completing thread,
    /// after a message on standard error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use ctxkit::Context;
    ///
    /// let ctx = Context::background().with_cancel();
    /// let (tx, rx) = mpsc::channel();
    /// let after = ctx.after_func(move || tx.send(std::thread::current().name().map(String::from)).unwrap());
    /// drop(ctx);
    /// assert_eq!(rx.recv().unwrap().as_deref(), Some("ctxkit-after-func"));
    /// assert!(!after.stop(), "already started");
    /// ```
    #[track_caller]
    pub fn after_func<F>(&self, f: F) -> AfterFunc
    where
        F: FnOnce() + Send + 'static,
    {
        AfterFunc::register(self.node.as_ref(), Box::new(f))
    }

    /// Runs `future` as a tokio task, on the runtime current at this call, once the context is
    /// done (at once, if it already is): the async form of [`after_func`](Context::after_func),
    /// for cleanup that awaits (close a connection, flush, notify a peer) without holding a
    /// thread while it waits, as a goroutine does in Go.
    ///
    /// `future` runs at most once, and [`AfterFunc::stop`] keeps its meaning: true iff that call
    /// prevented the run. The task is spawned now, on a context that can be done, and waits,
    /// holding the future, until the context is done (then it runs it) or the registration is
    /// stopped or dropped with a context that was never done (then it ends, dropping the future
    /// unpolled): a pending registration costs a parked task, with the future in it (about
    /// 830 bytes for a small future). A context that can never be done spawns nothing. The cancel that
    /// completes the context wakes no task itself: it hands each one to the after-function
    /// pool's dispatcher thread, which wakes it (no worker thread is used). The task is
    /// detached: its panic is reported by the panic hook and goes no further, as with a dropped
    /// `JoinHandle` of `tokio::spawn`. If the runtime shuts down before the context is done,
    /// the future is dropped with its task, unpolled, and nothing panics.
    ///
    /// It takes the future itself, not a function returning one (Go's `AfterFunc(ctx, f)` takes
    /// `f`): write `ctx.after_func_async(async move { ... })`.
    ///
    /// The runtime is captured at registration (`tokio::runtime::Handle::current`), not looked
    /// up when the context is done: a context is often canceled from a plain thread, or by the
    /// deadline timer's thread, where no runtime is current.
    ///
    /// Leak checks ([`leak`](crate::leak)) see the function from its hand-off until its task
    /// ends, as a unit (`ctxkit-after-func-async`) carrying the scope where it was registered;
    /// a registration whose context is not done yet is no leak (its waiting task is counted as
    /// tracked, reported by nobody).
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime, as `tokio::spawn` does: there is no runtime to
    /// capture. Outside one, enter one first (`let _guard = handle.enter();`). The check is made
    /// at this call, even on a context that can never be done, so a misuse shows at once, not
    /// only on the day the context is canceled.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::Context;
    /// use tokio::sync::oneshot;
    ///
    /// let rt = tokio::runtime::Builder::new_multi_thread()
    ///     .worker_threads(1)
    ///     .build()
    ///     .unwrap();
    /// rt.block_on(async {
    ///     let ctx = Context::background().with_cancel();
    ///     let (tx, rx) = oneshot::channel();
    ///     let after = ctx.after_func_async(async move {
    ///         tokio::task::yield_now().await; // awaits, holding no thread
    ///         tx.send("closed").unwrap();
    ///     });
    ///     ctx.cancel();
    ///     assert_eq!(rx.await.unwrap(), "closed");
    ///     assert!(!after.stop(), "already spawned");
    /// });
    /// ```
    #[cfg(feature = "tokio")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    #[track_caller]
    pub fn after_func_async<F>(&self, future: F) -> AfterFunc
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        AfterFunc::register_async(self.node.as_ref(), future)
    }

    // ===== introspection for tests =====

    /// [`err`](Context::err) as if the clock read `now`: drives the lazy deadline decision on a
    /// made-up instant (tests only). A `now` past a deadline that no timer watches records it,
    /// as a real clock read would; an earlier `now` changes nothing.
    #[doc(hidden)]
    pub fn __err_at(&self, now: Instant) -> Option<Error> {
        let node = self.node.as_deref()?;
        tree::err_at(node, time::encode(now).unwrap_or(u64::MAX))
    }

    /// Number of cancelable children linked under this context's node (tests only).
    #[doc(hidden)]
    pub fn __child_count(&self) -> usize {
        self.node.as_deref().map_or(0, tree::child_count)
    }

    /// Number of waiters registered on this context's node (tests only).
    #[doc(hidden)]
    pub fn __waiter_count(&self) -> usize {
        self.node.as_deref().map_or(0, tree::waiter_count)
    }
}

impl Default for Context {
    /// [`Context::background`].
    fn default() -> Context {
        Context::background()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let is_todo = self
            .values
            .as_ref()
            .is_some_and(|v| Arc::ptr_eq(v, todo_layer()));
        match (&self.node, &self.values) {
            (None, None) => f.write_str("Context::background()"),
            (None, Some(_)) if is_todo => f.write_str("Context::todo()"),
            _ => {
                let mut names = ValueNode::type_names(self.values.as_deref());
                if names.last() == Some(&std::any::type_name::<TodoMarker>()) {
                    names.pop();
                }
                f.debug_struct("Context")
                    .field("err", &self.err())
                    .field("deadline", &self.deadline())
                    .field("values", &names)
                    .finish()
            }
        }
    }
}

/// Number of cancelable nodes alive in the process, in debug builds (`None` in release).
///
/// For tests of the "nothing is pinned" promise; run such a test in its own process, since
/// other tests create nodes too.
#[doc(hidden)]
pub fn __live_nodes() -> Option<usize> {
    tree::live_nodes()
}

/// Number of deadlines the timer thread watches (tests only).
#[doc(hidden)]
pub fn __armed_timers() -> usize {
    crate::timer::armed_count()
}
