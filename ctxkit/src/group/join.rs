//! Typed joins of a fixed number of calls: [`join2`] … [`join6`] (async) and
//! [`blocking_join2`] … [`blocking_join6`] (threads). See the [module docs](super#which-one)
//! for when to use them rather than a group.
//!
//! # Implementation details
//!
//! The async joins poll every future inside the caller's task: one [`poll_fn`] polls, in
//! argument order, each future that has not finished, pinned in the join's own frame with
//! [`pin!`] inside an `Option` (set to `None` once it has finished, so it is never polled
//! again and its resources go at once). No allocation per future, no task, no `unsafe`; a
//! panic in a future unwinds through the join's poll to the caller, and the join's frame drops
//! the rest.
//!
//! The blocking joins run on `std::thread::scope`: every closure but the last on a scoped thread
//! (named `ctxkit-group`, as [`scope`](fn@super::scope)'s), the last on the caller's thread, so
//! `blocking_join2` starts one thread. They do not reuse [`scope`](fn@super::scope): a scope skips
//! tasks once its context is done and reports them as `E::from(ctxkit::Error)`, which a join
//! cannot do (its `E` need not convert from [`Error`](crate::Error)), and a scope boxes each
//! task and queues it behind a lock, which a fixed set of closures does not need.
//!
//! # Invariants
//!
//! 1. (Blocking joins.) `Blocking::first` is set once, from `NONE` to the index of the first
//!    closure to fail (error or panic), by a compare-exchange; only that closure cancels the
//!    context, after setting it, so the cause names the first failure in time and the error
//!    returned is that closure's. A closure that has not started when `first` is set is not
//!    called (it is *skipped*); so a skipped closure implies a failure, whose error or panic is
//!    what the join returns or resumes.
//! 2. (Blocking joins.) Every thread started is joined before the join reads the outcomes
//!    (`std::thread::scope` guarantees it). Every way out of the thread scope first cancels the
//!    context or finds it canceled: a failure cancels it (invariant 1), a closure that panics
//!    is caught, and a thread that cannot be started cancels it before panicking; so siblings
//!    that wait for the context end, and the scope's joins return.
//!
//! # Lock order
//!
//! No locks: one atomic (`Blocking::first`), and the threads' own join handles carry the
//! outcomes back.

use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::task::Poll;
use std::thread::{Scope as ThreadScope, ScopedJoinHandle};

use super::slots::{panic_message, Panic};
use super::task_failed::TaskFailed;
use crate::context::{CancelContext, Context};
use crate::spawn::{self, Origin};
use crate::sync::{AtomicUsize, Ordering};

// ===== async joins =====

/// Defines one async join: `$name` over the listed `(closure, future slot, output slot: value
/// type, closure type, future type)` names.
macro_rules! async_join {
    (
        $(#[$doc:meta])*
        $name:ident($($f:ident $fut:ident $out:ident: $T:ident $F:ident $Fut:ident),+)
    ) => {
        $(#[$doc])*
        pub async fn $name<$($T,)+ E, $($F, $Fut,)+>(
            parent: &Context,
            $($f: $F,)+
        ) -> Result<($($T,)+), E>
        where
            E: fmt::Display,
            $(
                $F: FnOnce(Context) -> $Fut,
                $Fut: Future<Output = Result<$T, E>>,
            )+
        {
            let ctx = parent.with_cancel_cause();
            // Every closure is called now, each with the shared child context.
            $(let mut $fut = pin!(Some($f(ctx.clone())));)+
            $(let mut $out = None;)+
            let joined = poll_fn(|cx| {
                $(
                    if let Some(running) = $fut.as_mut().as_pin_mut() {
                        match running.poll(cx) {
                            Poll::Ready(Ok(value)) => {
                                $out = Some(value);
                                $fut.set(None); // finished: dropped now, never polled again
                            }
                            Poll::Ready(Err(error)) => {
                                return Poll::Ready(Err(error));
                            }
                            Poll::Pending => {}
                        }
                    }
                )+
                match ($($out.take(),)+) {
                    ($(Some($out),)+) => Poll::Ready(Ok(($($out,)+))),
                    not_yet => {
                        ($($out,)+) = not_yet;
                        Poll::Pending
                    }
                }
            })
            .await;
            if let Err(error) = &joined {
                // The first error cancels the siblings' context, then they are dropped at once.
                ctx.cancel_with(TaskFailed::error(error.to_string()));
                $($fut.set(None);)+
            }
            ctx.cancel();
            joined
        }
    };
}

async_join! {
    /// Runs two async calls concurrently and returns both results, or the first error; the
    /// first error cancels the other.
    ///
    /// Each closure gets a child context of `parent` (one child, shared by all the calls) and
    /// returns the future to run. The futures run *inside the caller's task*, polled in turn by
    /// the join (as `futures::join!` does): no tokio, no `'static`, no `Send` needed, so they may
    /// borrow local data, and the join works under any executor. Every closure is called, even
    /// if `parent` is already done: each call sees its context done and decides.
    ///
    /// When every call succeeds, their values come back as a tuple in argument order, each with
    /// its own type. When one fails, the join cancels the shared context with a
    /// [`TaskFailed`] cause (its text is the error's), drops the other futures at once (that is
    /// async cancellation, as `tokio::try_join!` does: they stop at the `.await` where they
    /// were, without running further), and returns the error. The context is canceled when the
    /// join returns, either way.
    ///
    /// Use a join for a fixed set of differently typed calls; a [`Group`] or
    /// [`scope`](fn@super::scope) for a number of same-typed tasks known only at run time. For
    /// blocking calls on threads, [`blocking_join2`].
    ///
    /// # Coming from Go
    ///
    /// An errgroup with two `g.Go` calls that each write their own variable, then `g.Wait()`:
    /// here the variables are the tuple `join2` returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{group, Context, Error};
    ///
    /// struct User { name: String }
    ///
    /// async fn user(ctx: &Context, id: u32) -> Result<User, Error> {
    ///     ctx.check()?;
    ///     Ok(User { name: format!("user-{id}") })
    /// }
    ///
    /// async fn playlist_count(ctx: &Context, owner: &str) -> Result<usize, Error> {
    ///     ctx.check()?;
    ///     Ok(owner.len())
    /// }
    ///
    /// let name = String::from("beto");
    /// let owner = name.as_str(); // a borrow of local data, moved into the second call
    /// let parent = Context::background();
    /// let (user, count) = futures::executor::block_on(group::join2(
    ///     &parent,
    ///     |ctx| async move { user(&ctx, 7).await },
    ///     |ctx| async move { playlist_count(&ctx, owner).await },
    /// ))?;
    /// assert_eq!(user.name, "user-7");
    /// assert_eq!(count, 4);
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The first error a call returned (the first in the order the join polled them, when
    /// several are ready in the same poll).
    ///
    /// # Panics
    ///
    /// If a future panics, the panic unwinds through the join to its caller (the futures are
    /// polled inline); the other futures are dropped, and the context canceled, as the join's
    /// frame unwinds.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the join's future drops every call's future where it stands
    /// and cancels their context; values already produced are lost.
    ///
    #[cfg_attr(feature = "tokio", doc = "[`Group`]: crate::Group")]
    #[cfg_attr(not(feature = "tokio"), doc = "[`Group`]: crate::group")]
    join2(a fut_a out_a: A FA FutA, b fut_b out_b: B FB FutB)
}

async_join! {
    /// As [`join2`], for three calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{group, Context, Error};
    ///
    /// let parent = Context::background();
    /// let r = futures::executor::block_on(group::join3(
    ///     &parent,
    ///     |_ctx| async { Ok::<_, Error>(1u8) },
    ///     |_ctx| async { Ok("two") },
    ///     |_ctx| async { Ok(3.0f64) },
    /// ));
    /// assert_eq!(r, Ok((1, "two", 3.0)));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`join2`].
    ///
    /// # Panics
    ///
    /// As [`join2`].
    ///
    /// # Cancel safety
    ///
    /// As [`join2`].
    join3(a fut_a out_a: A FA FutA, b fut_b out_b: B FB FutB, c fut_c out_c: C FC FutC)
}

async_join! {
    /// As [`join2`], for four calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{group, Context, Error};
    ///
    /// let parent = Context::background();
    /// let r = futures::executor::block_on(group::join4(
    ///     &parent,
    ///     |_ctx| async { Ok::<_, Error>(1) },
    ///     |_ctx| async { Ok('b') },
    ///     |ctx| async move { ctx.check().map(|()| "c") },
    ///     |_ctx| async { Err::<(), _>(Error::DeadlineExceeded) },
    /// ));
    /// assert_eq!(r, Err(Error::DeadlineExceeded));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`join2`].
    ///
    /// # Panics
    ///
    /// As [`join2`].
    ///
    /// # Cancel safety
    ///
    /// As [`join2`].
    join4(
        a fut_a out_a: A FA FutA,
        b fut_b out_b: B FB FutB,
        c fut_c out_c: C FC FutC,
        d fut_d out_d: D FD FutD
    )
}

async_join! {
    /// As [`join2`], for five calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{group, Context, Error};
    ///
    /// let parent = Context::background();
    /// let r = futures::executor::block_on(group::join5(
    ///     &parent,
    ///     |_ctx| async { Ok::<_, Error>(1) },
    ///     |_ctx| async { Ok(2u64) },
    ///     |_ctx| async { Ok("3") },
    ///     |_ctx| async { Ok(vec![4]) },
    ///     |_ctx| async { Ok(Some(5)) },
    /// ));
    /// assert_eq!(r, Ok((1, 2, "3", vec![4], Some(5))));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`join2`].
    ///
    /// # Panics
    ///
    /// As [`join2`].
    ///
    /// # Cancel safety
    ///
    /// As [`join2`].
    join5(
        a fut_a out_a: A FA FutA,
        b fut_b out_b: B FB FutB,
        c fut_c out_c: C FC FutC,
        d fut_d out_d: D FD FutD,
        g fut_g out_g: G FG FutG
    )
}

async_join! {
    /// As [`join2`], for six calls.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{group, Context, Error};
    ///
    /// let parent = Context::background();
    /// let r = futures::executor::block_on(group::join6(
    ///     &parent,
    ///     |_ctx| async { Ok::<_, Error>(1) },
    ///     |_ctx| async { Ok(2) },
    ///     |_ctx| async { Ok(3) },
    ///     |_ctx| async { Ok(4) },
    ///     |_ctx| async { Ok(5) },
    ///     |_ctx| async { Ok("six") },
    /// ));
    /// assert_eq!(r, Ok((1, 2, 3, 4, 5, "six")));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`join2`].
    ///
    /// # Panics
    ///
    /// As [`join2`].
    ///
    /// # Cancel safety
    ///
    /// As [`join2`].
    join6(
        a fut_a out_a: A FA FutA,
        b fut_b out_b: B FB FutB,
        c fut_c out_c: C FC FutC,
        d fut_d out_d: D FD FutD,
        g fut_g out_g: G FG FutG,
        h fut_h out_h: H FH FutH
    )
}

// ===== blocking joins =====

/// No closure has failed yet (invariant 1).
const NONE: usize = usize::MAX;

/// How one closure of a blocking join ended.
enum Ran<T, E> {
    /// It returned a value.
    Value(T),
    /// It returned an error.
    Error(E),
    /// It panicked.
    Panicked(Panic),
    /// It was not called: a sibling had failed first (invariant 1).
    Skipped,
}

/// What the closures of a blocking join share.
struct Blocking {
    /// The child of `parent` every closure gets (a clone each); canceled by the first failure
    /// (invariant 1), and when the join returns.
    ctx: CancelContext,
    /// The index of the first closure to fail, or `NONE`; set once (invariant 1).
    first: AtomicUsize,
}

impl Blocking {
    #[track_caller]
    fn new(parent: &Context) -> Self {
        Blocking {
            ctx: parent.with_cancel_cause(),
            first: AtomicUsize::new(NONE),
        }
    }

    /// Invariant 1: true for the first closure to fail (it then cancels the context), or if
    /// `index` already was it.
    fn claim(&self, index: usize) -> bool {
        match self
            .first
            .compare_exchange(NONE, index, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(first) => first == index,
        }
    }

    /// Runs closure `index` unless a sibling has failed (invariant 1); catches its panic.
    fn run<T, E: fmt::Display>(
        &self,
        index: usize,
        f: impl FnOnce(Context) -> Result<T, E>,
    ) -> Ran<T, E> {
        let ran = catch_unwind(AssertUnwindSafe(|| {
            if self.first.load(Ordering::Acquire) != NONE {
                drop(f);
                return Ran::Skipped;
            }
            match f(self.ctx.clone()) {
                Ok(value) => Ran::Value(value),
                Err(error) => {
                    if self.claim(index) {
                        self.ctx.cancel_with(TaskFailed::error(error.to_string()));
                    }
                    Ran::Error(error)
                }
            }
        }));
        ran.unwrap_or_else(|payload| {
            // Also when the error's text panicked after the claim: the context must end.
            if self.claim(index) {
                self.ctx
                    .cancel_with(TaskFailed::panic(panic_message(&*payload)));
            }
            Ran::Panicked(payload)
        })
    }

    /// Starts closure `index` on a scoped thread of its own (invariant 2).
    fn start<'scope, T, E, F>(
        &'scope self,
        threads: &'scope ThreadScope<'scope, '_>,
        index: usize,
        f: F,
    ) -> ScopedJoinHandle<'scope, Ran<T, E>>
    where
        T: Send + 'scope,
        E: fmt::Display + Send + 'scope,
        F: FnOnce(Context) -> Result<T, E> + Send + 'scope,
    {
        let origin = Origin::here(spawn::GROUP_THREAD);
        spawn::try_spawn_scoped(threads, origin, move || self.run(index, f)).unwrap_or_else(
            |error| {
                // Invariant 2: the closures already started end before the scope's joins.
                self.ctx.cancel();
                panic!("ctxkit::group: failed to start a thread: {error}")
            },
        )
    }
}

/// Joins a closure's thread (invariant 2); a panic that escaped it counts as its panic.
fn joined<T, E>(handle: ScopedJoinHandle<'_, Ran<T, E>>) -> Ran<T, E> {
    handle.join().unwrap_or_else(Ran::Panicked)
}

/// Keeps closure `index`'s value, or its error if it was the first failure (invariant 1), or
/// its panic (the first failure's, else the first in argument order).
fn settle<T, E>(
    ran: Ran<T, E>,
    index: usize,
    first: usize,
    error: &mut Option<E>,
    panic: &mut Option<Panic>,
) -> Option<T> {
    match ran {
        Ran::Value(value) => Some(value),
        Ran::Error(e) => {
            if index == first {
                *error = Some(e);
            }
            None
        }
        Ran::Panicked(payload) => {
            if panic.is_none() || index == first {
                *panic = Some(payload);
            }
            None
        }
        Ran::Skipped => None,
    }
}

/// Defines one blocking join: every closure but the last on a scoped thread, the last on the
/// caller's.
macro_rules! blocking_join {
    (
        $(#[$doc:meta])*
        $name:ident($($f:ident $idx:literal: $T:ident $F:ident),+; $lf:ident $lidx:literal: $LT:ident $LF:ident)
    ) => {
        $(#[$doc])*
        #[track_caller]
        pub fn $name<$($T,)+ $LT, E, $($F,)+ $LF>(
            parent: &Context,
            $($f: $F,)+
            $lf: $LF,
        ) -> Result<($($T,)+ $LT), E>
        where
            E: Send + fmt::Display,
            $(
                $F: FnOnce(Context) -> Result<$T, E> + Send,
                $T: Send,
            )+
            $LF: FnOnce(Context) -> Result<$LT, E> + Send,
            $LT: Send,
        {
            let join = Blocking::new(parent);
            let ($($f,)+ $lf) = std::thread::scope(|threads| {
                $(let $f = join.start(threads, $idx, $f);)+
                let $lf = join.run($lidx, $lf);
                ($(joined($f),)+ $lf)
            });
            join.ctx.cancel();
            let first = join.first.load(Ordering::Acquire);
            let (mut error, mut panic) = (None, None);
            $(let $f = settle($f, $idx, first, &mut error, &mut panic);)+
            let $lf = settle($lf, $lidx, first, &mut error, &mut panic);
            if let Some(payload) = panic {
                resume_unwind(payload);
            }
            if let Some(error) = error {
                return Err(error);
            }
            match ($($f,)+ $lf) {
                ($(Some($f),)+ Some($lf)) => Ok(($($f,)+ $lf)),
                // Invariant 1: a closure without a value failed or was skipped after a failure.
                _ => unreachable!("ctxkit::group: a join closure has no value and none failed"),
            }
        }
    };
}

blocking_join! {
    /// Runs two blocking calls concurrently, on threads, and returns both results, or the first
    /// error; the first error cancels the other.
    ///
    /// The blocking counterpart of [`join2`]. Each closure gets a child context of `parent`
    /// (one child, shared by all the calls). The first closure runs on a scoped thread (named
    /// `ctxkit-group`), the last on the calling thread; closures may borrow local data. Every
    /// closure is called, even if `parent` is already done (each sees its context done and
    /// decides), except that a closure that has not started when a sibling fails is not called.
    ///
    /// When every call succeeds, their values come back as a tuple in argument order, each with
    /// its own type. When one fails, the join cancels the shared context with a
    /// [`TaskFailed`] cause (its text is the error's); the others should watch it
    /// (`ctx.check()?`, `ctx.blocking_sleep(d)?`, `ctx.wait()`) and return, as a thread cannot
    /// be stopped from outside. The join returns the first error once every call has ended.
    /// The context is canceled when the join returns, either way.
    ///
    /// Use a join for a fixed set of differently typed calls; [`scope`](fn@super::scope) for a
    /// number of same-typed tasks known only at run time.
    ///
    /// # Coming from Go
    ///
    /// An errgroup with two `g.Go` calls that each write their own variable, then `g.Wait()`:
    /// here the variables are the tuple `blocking_join2` returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::{group, Context, Error};
    ///
    /// let words = ["flaming", "june"]; // borrowed by both calls
    /// let (total, longest) = group::blocking_join2(
    ///     &Context::background(),
    ///     |ctx| {
    ///         ctx.blocking_sleep(Duration::from_millis(1))?;
    ///         Ok::<_, Error>(words.iter().map(|w| w.len()).sum::<usize>())
    ///     },
    ///     |ctx| {
    ///         ctx.check()?;
    ///         Ok(words.iter().max_by_key(|w| w.len()).copied())
    ///     },
    /// )?;
    /// assert_eq!((total, longest), (11, Some("flaming")));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The first error a call returned, in time.
    ///
    /// # Panics
    ///
    /// If a call panics, the context is canceled as for an error, and once every call has ended
    /// the panic is resumed here with its payload (a panic wins over errors; which one, if
    /// several calls panic, is unspecified). Also if the OS refuses to start a thread.
    ///
    /// # Blocking
    ///
    /// Blocks the calling thread until every call has ended. Do not call it from async code;
    /// use [`join2`] there.
    blocking_join2(a 0: A FA; b 1: B FB)
}

blocking_join! {
    /// As [`blocking_join2`], for three calls (two extra threads).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{group, Context, Error};
    ///
    /// let r = group::blocking_join3(
    ///     &Context::background(),
    ///     |_ctx| Ok::<_, Error>(1u8),
    ///     |_ctx| Ok("two"),
    ///     |ctx| ctx.check().map(|()| 3.0f64),
    /// );
    /// assert_eq!(r, Ok((1, "two", 3.0)));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`blocking_join2`].
    ///
    /// # Panics
    ///
    /// As [`blocking_join2`].
    ///
    /// # Blocking
    ///
    /// As [`blocking_join2`].
    blocking_join3(a 0: A FA, b 1: B FB; c 2: C FC)
}

blocking_join! {
    /// As [`blocking_join2`], for four calls (three extra threads).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{group, Context, Error};
    ///
    /// let r = group::blocking_join4(
    ///     &Context::background(),
    ///     |_ctx| Ok::<_, Error>(1),
    ///     |_ctx| Ok('b'),
    ///     |ctx| {
    ///         ctx.wait(); // until the last call fails
    ///         Err::<u8, _>(Error::Canceled)
    ///     },
    ///     |_ctx| Err::<(), _>(Error::DeadlineExceeded),
    /// );
    /// assert_eq!(r, Err(Error::DeadlineExceeded));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`blocking_join2`].
    ///
    /// # Panics
    ///
    /// As [`blocking_join2`].
    ///
    /// # Blocking
    ///
    /// As [`blocking_join2`].
    blocking_join4(a 0: A FA, b 1: B FB, c 2: C FC; d 3: D FD)
}

blocking_join! {
    /// As [`blocking_join2`], for five calls (four extra threads).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{group, Context, Error};
    ///
    /// let r = group::blocking_join5(
    ///     &Context::background(),
    ///     |_ctx| Ok::<_, Error>(1),
    ///     |_ctx| Ok(2u64),
    ///     |_ctx| Ok("3"),
    ///     |_ctx| Ok(vec![4]),
    ///     |_ctx| Ok(Some(5)),
    /// );
    /// assert_eq!(r, Ok((1, 2, "3", vec![4], Some(5))));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`blocking_join2`].
    ///
    /// # Panics
    ///
    /// As [`blocking_join2`].
    ///
    /// # Blocking
    ///
    /// As [`blocking_join2`].
    blocking_join5(a 0: A FA, b 1: B FB, c 2: C FC, d 3: D FD; g 4: G FG)
}

blocking_join! {
    /// As [`blocking_join2`], for six calls (five extra threads).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::{group, Context, Error};
    ///
    /// let r = group::blocking_join6(
    ///     &Context::background(),
    ///     |_ctx| Ok::<_, Error>(1),
    ///     |_ctx| Ok(2),
    ///     |_ctx| Ok(3),
    ///     |_ctx| Ok(4),
    ///     |_ctx| Ok(5),
    ///     |_ctx| Ok("six"),
    /// );
    /// assert_eq!(r, Ok((1, 2, 3, 4, 5, "six")));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`blocking_join2`].
    ///
    /// # Panics
    ///
    /// As [`blocking_join2`].
    ///
    /// # Blocking
    ///
    /// As [`blocking_join2`].
    blocking_join6(a 0: A FA, b 1: B FB, c 2: C FC, d 3: D FD, g 4: G FG; h 5: H FH)
}

#[cfg(test)]
mod tests {
    //! The blocking joins' bookkeeping (invariant 1), driven by hand: which closure is first,
    //! and that one not started after a failure is never called.

    use super::*;
    use crate::context::Error;

    #[test]
    fn the_first_failure_claims_and_cancels_once() {
        let join = Blocking::new(&Context::background());
        let ran = join.run(1, |_ctx| Err::<(), _>(Error::DeadlineExceeded));
        assert!(matches!(ran, Ran::Error(Error::DeadlineExceeded)));
        assert_eq!(join.first.load(Ordering::Acquire), 1);
        let cause = join.ctx.cause().unwrap();
        assert_eq!(cause.to_string(), "context deadline exceeded");
        assert!(cause.downcast_ref::<TaskFailed>().is_some());
        // A later failure claims nothing.
        assert!(!join.claim(0));
        assert!(join.claim(1), "the first keeps its claim");
    }

    #[test]
    fn a_closure_not_started_before_a_failure_is_not_called() {
        let join = Blocking::new(&Context::background());
        assert!(join.claim(0));
        let mut called = false;
        let ran = join.run(1, |_ctx| {
            called = true;
            Ok::<_, Error>(1)
        });
        assert!(matches!(ran, Ran::Skipped));
        assert!(!called);
    }

    #[test]
    fn a_panic_claims_and_names_itself() {
        let join = Blocking::new(&Context::background());
        let ran = join.run(0, |_ctx| -> Result<(), Error> { panic!("exploded") });
        assert!(matches!(ran, Ran::Panicked(_)));
        let cause = join.ctx.cause().unwrap();
        let failed = cause.downcast_ref::<TaskFailed>().unwrap();
        assert!(failed.is_panic());
        assert_eq!(failed.message(), "exploded");
    }

    #[test]
    fn settle_keeps_the_first_error_and_prefers_the_first_panic() {
        let (mut error, mut panic) = (None, None);
        let first = 1;
        assert_eq!(
            settle(Ran::Value(5), 0, first, &mut error, &mut panic),
            Some(5)
        );
        assert_eq!(
            settle::<u8, _>(Ran::Error("later"), 2, first, &mut error, &mut panic),
            None
        );
        assert_eq!(
            settle::<u8, _>(Ran::Error("first"), 1, first, &mut error, &mut panic),
            None
        );
        assert_eq!(error, Some("first"));
        let boxed = |text: &'static str| -> Panic { Box::new(text) };
        settle::<u8, &str>(Ran::Panicked(boxed("a")), 0, 3, &mut error, &mut panic);
        settle::<u8, &str>(Ran::Panicked(boxed("b")), 3, 3, &mut error, &mut panic);
        settle::<u8, &str>(Ran::Panicked(boxed("c")), 4, 3, &mut error, &mut panic);
        assert_eq!(panic_message(&*panic.unwrap()), "b");
    }
}
