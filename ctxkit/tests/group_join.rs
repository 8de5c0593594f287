//! The typed joins: `group::join2..6` (async, polled inside the caller's task, no runtime) and
//! `group::blocking_join2..6` (threads). Results come back in argument order with their own
//! types; the first error cancels the siblings' context with a `TaskFailed` cause and is the
//! one returned; closures may borrow; panics reach the caller; the context is canceled once the
//! join returns.
//!
//! The async joins run under `futures::executor::block_on`: no tokio runtime anywhere here.

mod common;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::Mutex;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use common::panic_message as message;
use ctxkit::group::{self, TaskFailed};
use ctxkit::{Context, Error};
use futures::executor::block_on;

#[derive(Debug, Clone, PartialEq)]
enum AppError {
    NotFound(&'static str),
    Ctx(Error),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::NotFound(what) => write!(f, "{what}: not found"),
            AppError::Ctx(e) => e.fmt(f),
        }
    }
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Ctx(e)
    }
}

/// Returns `Pending` `n` times (waking itself each time), then `Ready`.
struct YieldN(usize);

impl Future for YieldN {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Sets its flag when dropped: shows a future was dropped.
struct DropFlag<'a>(&'a Mutex<bool>);

impl Drop for DropFlag<'_> {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = true;
    }
}

/// The `TaskFailed` a context was canceled with.
fn task_failed(ctx: &Context) -> TaskFailed {
    let cause = ctx.cause().expect("the context is canceled");
    cause
        .downcast_ref::<TaskFailed>()
        .unwrap_or_else(|| panic!("the cause is a TaskFailed, got {cause:?}"))
        .clone()
}

// ===== async =====

#[test]
fn async_results_come_in_argument_order_with_their_own_types() {
    let _leaks = common::no_leaks();
    let parent = Context::background();
    // The first call finishes last: it waits for the second to send.
    let (tx, rx) = futures::channel::oneshot::channel::<u8>();
    let r = block_on(group::join2(
        &parent,
        |_ctx| async move { rx.await.map_err(|_| AppError::NotFound("sender")) },
        |_ctx| async move {
            YieldN(3).await;
            tx.send(7).unwrap();
            Ok::<_, AppError>("second")
        },
    ));
    assert_eq!(r, Ok((7u8, "second")));

    let r = block_on(group::join6(
        &parent,
        |_ctx| async {
            YieldN(5).await;
            Ok::<_, Error>(1u8)
        },
        |_ctx| async {
            YieldN(4).await;
            Ok('b')
        },
        |_ctx| async {
            YieldN(3).await;
            Ok("c")
        },
        |_ctx| async { Ok(vec![4u16]) },
        |_ctx| async { Ok(5.5f32) },
        |_ctx| async { Ok(String::from("f")) },
    ));
    assert_eq!(r, Ok((1, 'b', "c", vec![4], 5.5, "f".to_string())));

    let r = block_on(group::join3(
        &parent,
        |_ctx| async { Ok::<_, Error>(1) },
        |_ctx| async { Ok(()) },
        |_ctx| async { Ok([3; 2]) },
    ));
    assert_eq!(r, Ok((1, (), [3, 3])));
    let r = block_on(group::join4(
        &parent,
        |_ctx| async { Ok::<_, Error>(1) },
        |_ctx| async { Ok(2) },
        |_ctx| async { Ok(3) },
        |_ctx| async { Ok(4) },
    ));
    assert_eq!(r, Ok((1, 2, 3, 4)));
    let r = block_on(group::join5(
        &parent,
        |_ctx| async { Ok::<_, Error>(1) },
        |_ctx| async { Ok(2) },
        |_ctx| async { Ok(3) },
        |_ctx| async { Ok(4) },
        |_ctx| async { Ok(5) },
    ));
    assert_eq!(r, Ok((1, 2, 3, 4, 5)));
}

#[test]
fn async_first_error_cancels_and_drops_the_siblings() {
    let _leaks = common::no_leaks();
    let parent = Context::background();
    let seen = Mutex::new(None::<Context>);
    let dropped = Mutex::new(false);
    let (seen_ref, dropped_ref) = (&seen, &dropped);
    let r = block_on(group::join3(
        &parent,
        |ctx| async move {
            let _flag = DropFlag(dropped_ref);
            *seen_ref.lock().unwrap() = Some(ctx.clone());
            ctx.done().await; // only the cancel could end it, and the drop comes first
            Ok::<u32, AppError>(0)
        },
        |_ctx| async {
            YieldN(2).await; // the sibling is parked on its context by now
            Err::<(), _>(AppError::NotFound("playlist"))
        },
        |_ctx| async { Ok("done early") },
    ));
    assert_eq!(r, Err(AppError::NotFound("playlist")));
    assert!(
        *dropped.lock().unwrap(),
        "the blocked sibling's future was dropped"
    );
    let ctx = seen.into_inner().unwrap().expect("the sibling ran");
    assert_eq!(ctx.err(), Some(Error::Canceled));
    let failed = task_failed(&ctx);
    assert!(!failed.is_panic() && !failed.is_aborted());
    assert_eq!(failed.to_string(), "playlist: not found");
    assert!(!parent.is_done(), "the parent is not canceled by the join");
}

#[test]
fn async_the_error_returned_is_the_first_one() {
    let _leaks = common::no_leaks();
    let parent = Context::background();
    // The second call fails first; the first would fail later, as the cancel reaches it.
    let r = block_on(group::join2(
        &parent,
        |ctx| async move {
            YieldN(1).await;
            ctx.check()?;
            Err::<(), _>(AppError::NotFound("first argument, second in time"))
        },
        |_ctx| async { Err::<(), _>(AppError::NotFound("second argument, first in time")) },
    ));
    assert_eq!(r, Err(AppError::NotFound("second argument, first in time")));
}

#[test]
fn async_calls_may_borrow_local_data() {
    let _leaks = common::no_leaks();
    let parent = Context::background();
    let titles = ["Gouryella".to_string(), "Saltwater".to_string()];
    let mut log = Vec::new();
    let r = block_on(group::join2(
        &parent,
        |_ctx| async { Ok::<_, Error>(titles.iter().map(String::len).sum::<usize>()) },
        |_ctx| async {
            log.push("second ran"); // a mutable borrow of a local
            Ok(titles.first().map(String::as_str))
        },
    ));
    assert_eq!(r, Ok((18, Some("Gouryella"))));
    assert_eq!(log, ["second ran"]);
}

#[test]
fn async_joins_need_no_runtime() {
    let _leaks = common::no_leaks();
    let parent = Context::background();
    let r = block_on(group::join2(
        &parent,
        |ctx| async move {
            ctx.sleep(Duration::from_millis(1)).await?; // the context's own timer, no tokio
            Ok::<_, Error>(tokio::runtime::Handle::try_current().is_err())
        },
        |_ctx| async { Ok(std::thread::current().id()) },
    ));
    let (no_runtime, thread) = r.unwrap();
    assert!(no_runtime, "polled without a tokio runtime");
    assert_eq!(
        thread,
        std::thread::current().id(),
        "polled inside the caller's task"
    );
}

#[test]
fn async_the_context_is_canceled_after_the_join_returns() {
    let _leaks = common::no_leaks();
    let parent = Context::background();
    let seen = Mutex::new(None::<Context>);
    let r = block_on(group::join2(
        &parent,
        |ctx| async {
            *seen.lock().unwrap() = Some(ctx);
            Ok::<_, Error>(1)
        },
        |ctx| async move { ctx.check().map(|()| 2) },
    ));
    assert_eq!(r, Ok((1, 2)));
    let ctx = seen.into_inner().unwrap().unwrap();
    assert_eq!(ctx.err(), Some(Error::Canceled));
    assert!(
        ctx.cause().unwrap().reason().is_none(),
        "success: a plain cancel, no TaskFailed"
    );
    assert!(!parent.is_done());
}

#[test]
fn async_a_done_parent_still_calls_every_closure() {
    let _leaks = common::no_leaks();
    let (parent, cancel) = Context::background().with_cancel().into_parts();
    cancel.cancel();
    let calls = Mutex::new(0);
    let r = block_on(group::join2(
        &parent,
        |ctx| {
            *calls.lock().unwrap() += 1;
            async move { ctx.check().map(|()| 1) }
        },
        |ctx| {
            *calls.lock().unwrap() += 1;
            async move { ctx.check().map(|()| 2) }
        },
    ));
    assert_eq!(r, Err(Error::Canceled));
    assert_eq!(*calls.lock().unwrap(), 2);
}

#[test]
fn async_a_panic_reaches_the_caller() {
    let _leaks = common::no_leaks();
    let parent = Context::background();
    let seen = Mutex::new(None::<Context>);
    let seen_ref = &seen;
    let r = catch_unwind(AssertUnwindSafe(|| {
        block_on(group::join2(
            &parent,
            |ctx| async move {
                *seen_ref.lock().unwrap() = Some(ctx.clone());
                ctx.done().await;
                Ok::<_, Error>(())
            },
            |_ctx| async {
                YieldN(1).await;
                if true {
                    panic!("async call exploded");
                }
                Ok(())
            },
        ))
    }));
    assert_eq!(message(&*r.expect_err("resumed")), "async call exploded");
    let ctx = seen.into_inner().unwrap().unwrap();
    assert!(
        ctx.is_done(),
        "the join's frame canceled the context as it unwound"
    );
}

#[test]
fn async_join_futures_are_send_when_their_calls_are() {
    let _leaks = common::no_leaks();
    fn send<T: Send>(_: &T) {}
    let parent = Context::background();
    let join = group::join2(
        &parent,
        |ctx| async move { ctx.check().map(|()| 1) },
        |_ctx| async { Ok::<_, Error>("two") },
    );
    send(&join);
    assert_eq!(block_on(join), Ok((1, "two")));
}

// ===== blocking =====

#[test]
fn blocking_results_come_in_argument_order_with_their_own_types() {
    let _leaks = common::no_leaks();
    let parent = Context::background();
    // The first call finishes last: it waits for the last to send.
    let (tx, rx) = mpsc::channel::<u8>();
    let r = group::blocking_join3(
        &parent,
        move |_ctx| {
            rx.recv_timeout(Duration::from_secs(10))
                .map_err(|_| AppError::NotFound("value"))
        },
        |_ctx| Ok(String::from("middle")),
        move |_ctx| {
            tx.send(9).unwrap();
            Ok(3.5f64)
        },
    );
    assert_eq!(r, Ok((9u8, "middle".to_string(), 3.5)));

    let r = group::blocking_join2(&parent, |_| Ok::<_, Error>(1), |_| Ok('2'));
    assert_eq!(r, Ok((1, '2')));
    let r = group::blocking_join4(
        &parent,
        |_| Ok::<_, Error>(1),
        |_| Ok(2u8),
        |_| Ok("3"),
        |_| Ok([4]),
    );
    assert_eq!(r, Ok((1, 2, "3", [4])));
    let r = group::blocking_join5(
        &parent,
        |_| Ok::<_, Error>(1),
        |_| Ok(2),
        |_| Ok(3),
        |_| Ok(4),
        |_| Ok(Some(5)),
    );
    assert_eq!(r, Ok((1, 2, 3, 4, Some(5))));
    let r = group::blocking_join6(
        &parent,
        |_| Ok::<_, Error>(1),
        |_| Ok(2),
        |_| Ok(3),
        |_| Ok(4),
        |_| Ok(5),
        |_| Ok(vec![6]),
    );
    assert_eq!(r, Ok((1, 2, 3, 4, 5, vec![6])));
}

#[test]
fn blocking_first_error_cancels_the_siblings() {
    let _leaks = common::no_leaks();
    let parent = Context::background();
    let (started, started_rx) = mpsc::channel::<()>();
    let seen = Mutex::new(None::<TaskFailed>);
    let r = group::blocking_join3(
        &parent,
        |ctx| {
            started.send(()).unwrap();
            let err = ctx.wait(); // ends only because a sibling fails
            *seen.lock().unwrap() = Some(task_failed(&ctx));
            Err::<u32, _>(AppError::from(err))
        },
        |ctx| {
            // Blocked in a sleep the cancel cuts short (an hour otherwise).
            ctx.blocking_sleep(Duration::from_secs(3600))?;
            Ok("slept")
        },
        move |_ctx| {
            started_rx.recv().unwrap(); // the first sibling waits on the context by now
            Err::<(), _>(AppError::NotFound("album"))
        },
    );
    // The first error, not the siblings' later context errors.
    assert_eq!(r, Err(AppError::NotFound("album")));
    let failed = seen
        .into_inner()
        .unwrap()
        .expect("the sibling saw the cancel");
    assert!(!failed.is_panic());
    assert_eq!(failed.to_string(), "album: not found");
    assert!(!parent.is_done());
}

#[test]
fn blocking_calls_may_borrow_local_data() {
    let _leaks = common::no_leaks();
    let parent = Context::background();
    let songs = ["Flaming June", "Teardrop"];
    let mut counted = 0;
    let r = group::blocking_join2(
        &parent,
        |_ctx| {
            counted = songs.len(); // a mutable borrow of a local, on another thread
            Ok::<_, Error>(songs[0].len())
        },
        |_ctx| Ok(songs.join(", ")),
    );
    assert_eq!(r, Ok((12, "Flaming June, Teardrop".to_string())));
    assert_eq!(counted, 2);
}

#[test]
fn blocking_panics_reach_the_caller_after_the_siblings_end() {
    let _leaks = common::no_leaks();
    for panicking_last in [false, true] {
        let parent = Context::background();
        let ended = Mutex::new(false);
        // A call not started when a sibling fails is not called: let the sibling start first.
        let (started, started_rx) = mpsc::channel::<()>();
        let boom = move |_ctx: Context| -> Result<(), Error> {
            started_rx.recv().unwrap();
            panic!("boom {}", 7)
        };
        let waits = |ctx: Context| -> Result<(), Error> {
            started.send(()).unwrap();
            let err = ctx.wait(); // would block forever without the cancel the panic makes
            assert!(task_failed(&ctx).is_panic());
            *ended.lock().unwrap() = true;
            Err(err)
        };
        let r = catch_unwind(AssertUnwindSafe(|| {
            if panicking_last {
                group::blocking_join2(&parent, waits, boom) // the panic on the caller's thread
            } else {
                group::blocking_join2(&parent, boom, waits)
            }
        }));
        let payload = r.expect_err("the panic reaches the caller");
        assert_eq!(message(&*payload), "boom 7", "last: {panicking_last}");
        assert!(
            *ended.lock().unwrap(),
            "the sibling ended before the join returned (last: {panicking_last})"
        );
    }
}

#[test]
fn blocking_the_context_is_canceled_after_the_join_returns() {
    let _leaks = common::no_leaks();
    let parent = Context::background();
    let seen = Mutex::new(Vec::new());
    let r = group::blocking_join2(
        &parent,
        |ctx| {
            seen.lock().unwrap().push(ctx);
            Ok::<_, Error>(1)
        },
        |ctx| {
            seen.lock().unwrap().push(ctx);
            Ok(2)
        },
    );
    assert_eq!(r, Ok((1, 2)));
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 2);
    for ctx in &seen {
        assert_eq!(ctx.err(), Some(Error::Canceled));
        assert!(ctx.cause().unwrap().reason().is_none());
    }
    assert!(!parent.is_done());
}

#[test]
fn blocking_a_canceled_parent_ends_the_join() {
    let _leaks = common::no_leaks();
    let (parent, cancel) = Context::background().with_cancel().into_parts();
    let (started, started_rx) = mpsc::channel::<()>();
    let r = std::thread::scope(|s| {
        s.spawn(move || {
            started_rx.recv().unwrap();
            started_rx.recv().unwrap();
            cancel.cancel();
        });
        group::blocking_join2(
            &parent,
            |ctx| {
                started.send(()).unwrap();
                Err::<(), _>(ctx.wait())
            },
            |ctx| {
                started.send(()).unwrap();
                Err::<(), _>(ctx.wait())
            },
        )
    });
    assert_eq!(r, Err(Error::Canceled));
}
