//! Waiting on a context: the `done()` future on `futures`' executor and on
//! tokio, waiter bookkeeping, `run`, async `sleep`, `blocking_sleep`, `wait`, `wait_timeout`,
//! and deadlines that wake async waiters with no runtime timer at all.

mod common;

use std::sync::Arc;
use std::task::Poll;
use std::thread;
use std::time::Duration;

use common::{channel_waker, poll_with, HOUR, PATIENCE};
use ctxkit::{Context, Error};
use futures::executor::block_on;

/// Cancels `cancel` from another thread after a short pause.
fn cancel_soon(cancel: ctxkit::CancelHandle) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        cancel.cancel();
    })
}

// ===== done() with futures::executor =====

#[test]
fn done_completes_on_futures_block_on() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let canceler = cancel_soon(cancel);
    assert_eq!(block_on(ctx.done()), Error::Canceled);
    canceler.join().unwrap();
    // A done context's future is ready at once, as often as asked.
    assert_eq!(block_on(ctx.done()), Error::Canceled);

    let ctx = Context::background().with_timeout(Duration::from_millis(10));
    assert_eq!(block_on(ctx.done()), Error::DeadlineExceeded);
}

/// A first poll must be pending unless the deadline has really passed: on a loaded machine the
/// poll may come after it, which is no bug (but then no waker was registered, so there is no
/// wake-up to check). Returns whether it was pending.
fn pending_unless_past_deadline(ctx: &Context, first_poll: Poll<Error>) -> bool {
    if let Poll::Ready(error) = first_poll {
        let deadline = ctx.deadline().unwrap();
        assert!(
            std::time::Instant::now() >= deadline,
            "done before its deadline: {ctx:?}"
        );
        assert_eq!(error, Error::DeadlineExceeded);
        return false;
    }
    true
}

#[test]
fn a_deadline_wakes_an_async_waiter_with_no_runtime() {
    // No executor, no runtime timer: only our waker, which the ctxkit-timer thread must call.
    let ctx = Context::background().with_timeout(Duration::from_millis(20));
    let (waker, woken) = channel_waker();
    let mut done = ctx.done();
    if pending_unless_past_deadline(&ctx, poll_with(&mut done, &waker)) {
        woken
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("nobody woke the task at the deadline: {ctx:?} {done:?}"));
        assert_eq!(
            poll_with(&mut done, &waker),
            Poll::Ready(Error::DeadlineExceeded)
        );
    }

    // Also for a child that inherits its deadline from its parent.
    let parent = Context::background().with_timeout(Duration::from_millis(20));
    let child = parent.with_cancel();
    let (waker, woken) = channel_waker();
    let mut done = child.done();
    if pending_unless_past_deadline(&child, poll_with(&mut done, &waker)) {
        woken
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("inherited deadline never woke the task: {child:?}"));
        assert_eq!(
            poll_with(&mut done, &waker),
            Poll::Ready(Error::DeadlineExceeded)
        );
    }
}

#[test]
fn a_cancel_wakes_an_async_waiter() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let (waker, woken) = channel_waker();
    let mut done = ctx.done();
    assert_eq!(poll_with(&mut done, &waker), Poll::Pending);
    cancel.cancel();
    woken
        .recv_timeout(PATIENCE)
        .expect("cancel did not wake the task");
    assert_eq!(poll_with(&mut done, &waker), Poll::Ready(Error::Canceled));
}

#[test]
fn repolling_with_a_new_waker_wakes_the_new_one() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let (first, first_rx) = channel_waker();
    let (second, second_rx) = channel_waker();
    let mut done = ctx.done();
    assert!(poll_with(&mut done, &first).is_pending());
    assert!(poll_with(&mut done, &second).is_pending());
    assert_eq!(ctx.__waiter_count(), 1, "a re-poll added a second waiter");
    cancel.cancel();
    second_rx
        .recv_timeout(PATIENCE)
        .expect("the latest waker was not woken");
    assert!(first_rx.try_recv().is_err(), "a stale waker was woken");
}

#[test]
fn dropping_a_pending_done_removes_its_waiter() {
    let ctx = Context::background().with_cancel();
    let waker = futures::task::noop_waker();
    let mut done = ctx.done();
    assert_eq!(ctx.__waiter_count(), 0, "done() registers only when polled");
    assert!(poll_with(&mut done, &waker).is_pending());
    assert_eq!(ctx.__waiter_count(), 1);
    drop(done);
    assert_eq!(ctx.__waiter_count(), 0, "a dropped Done left its waiter");
    // select!-style loops that create and drop futures do not grow the list.
    for _ in 0..1000 {
        let mut done = ctx.done();
        assert!(poll_with(&mut done, &waker).is_pending());
    }
    assert_eq!(ctx.__waiter_count(), 0);
    // The same through a child with a deadline (which arms the timer).
    let child = ctx.with_timeout(HOUR);
    let mut done = child.done();
    assert!(poll_with(&mut done, &waker).is_pending());
    assert_eq!(child.__waiter_count(), 1);
    drop(done);
    assert_eq!(child.__waiter_count(), 0);
}

#[test]
fn a_blocking_wait_leaves_no_waiter_behind() {
    let ctx = Context::background().with_cancel();
    assert_eq!(ctx.wait_timeout(Duration::from_millis(5)), None);
    assert_eq!(ctx.__waiter_count(), 0, "a timed-out wait left its waiter");
}

// ===== done() on tokio =====

#[tokio::test]
async fn done_on_a_current_thread_runtime() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let waiter = tokio::spawn({
        let ctx = ctx.clone();
        async move { ctx.done().await }
    });
    tokio::task::yield_now().await;
    cancel.cancel();
    let got = tokio::time::timeout(PATIENCE, waiter)
        .await
        .expect("done() hung")
        .unwrap();
    assert_eq!(got, Error::Canceled);

    let ctx = Context::background().with_timeout(Duration::from_millis(10));
    let got = tokio::time::timeout(PATIENCE, ctx.done()).await;
    assert_eq!(got, Ok(Error::DeadlineExceeded), "{ctx:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_on_a_multi_thread_runtime() {
    let (root, cancel) = Context::background().with_cancel().into_parts();
    let waiters: Vec<_> = (0..8)
        .map(|i| {
            let (ctx, handle) = root.with_timeout(HOUR).into_parts();
            tokio::spawn(async move {
                let _handle = handle;
                (i, ctx.done().await)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    cancel.cancel();
    for waiter in waiters {
        let (i, got) = tokio::time::timeout(PATIENCE, waiter)
            .await
            .expect("a waiter hung")
            .unwrap();
        assert_eq!(got, Error::Canceled, "waiter {i}");
    }
}

#[tokio::test]
async fn done_in_select() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    // The other branch wins; the dropped Done leaves nothing behind.
    tokio::select! {
        _ = ctx.done() => panic!("not canceled yet"),
        _ = tokio::time::sleep(Duration::from_millis(5)) => {}
    }
    assert_eq!(ctx.__waiter_count(), 0);
    cancel.cancel();
    tokio::select! {
        e = ctx.done() => assert_eq!(e, Error::Canceled),
        _ = tokio::time::sleep(PATIENCE) => panic!("done() lost the race to a 10 s sleep"),
    }
}

// ===== run() =====

#[test]
fn run_returns_the_work_or_the_error() {
    assert_eq!(block_on(Context::background().run(async { 42 })), Ok(42));

    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let canceler = cancel_soon(cancel);
    let got = block_on(ctx.run(std::future::pending::<()>()));
    assert_eq!(got, Err(Error::Canceled));
    canceler.join().unwrap();

    // When both are ready, the context wins.
    assert_eq!(block_on(ctx.run(async { 42 })), Err(Error::Canceled));

    let ctx = Context::background().with_timeout(Duration::from_millis(10));
    assert_eq!(
        block_on(ctx.run(std::future::pending::<()>())),
        Err(Error::DeadlineExceeded)
    );
}

#[tokio::test]
async fn run_drops_the_work_when_the_context_is_done() {
    struct Flag(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ctx = Context::background().with_timeout(Duration::from_millis(10));
    let flag = Flag(dropped.clone());
    let work = async move {
        let _flag = flag;
        tokio::time::sleep(HOUR).await;
    };
    let got = tokio::time::timeout(PATIENCE, ctx.run(work))
        .await
        .expect("run() hung");
    assert_eq!(got, Err(Error::DeadlineExceeded));
    assert!(
        dropped.load(std::sync::atomic::Ordering::SeqCst),
        "the work was not dropped"
    );
}

// ===== sleep(), blocking_sleep() =====

#[test]
fn async_sleep_without_a_runtime() {
    let root = Context::background();
    assert_eq!(block_on(root.sleep(Duration::from_millis(5))), Ok(()));

    let (ctx, cancel) = root.with_cancel().into_parts();
    let canceler = cancel_soon(cancel);
    assert_eq!(block_on(ctx.sleep(HOUR)), Err(Error::Canceled));
    canceler.join().unwrap();
    assert_eq!(block_on(ctx.sleep(Duration::MAX)), Err(Error::Canceled));

    let ctx = root.with_timeout(Duration::from_millis(10));
    assert_eq!(block_on(ctx.sleep(HOUR)), Err(Error::DeadlineExceeded));

    let ctx = root.with_timeout(HOUR);
    assert_eq!(block_on(ctx.sleep(Duration::from_millis(5))), Ok(()));
    assert_eq!(
        ctx.__child_count(),
        0,
        "sleep() left its timer child linked"
    );
}

#[tokio::test]
async fn async_sleep_on_tokio() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    assert_eq!(ctx.sleep(Duration::from_millis(5)).await, Ok(()));
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        cancel.cancel();
    });
    let got = tokio::time::timeout(PATIENCE, ctx.sleep(HOUR)).await;
    assert_eq!(got, Ok(Err(Error::Canceled)));
}

#[test]
fn blocking_sleep() {
    let root = Context::background();
    assert_eq!(root.blocking_sleep(Duration::from_millis(5)), Ok(()));

    let (ctx, cancel) = root.with_cancel().into_parts();
    let canceler = cancel_soon(cancel);
    assert_eq!(ctx.blocking_sleep(HOUR), Err(Error::Canceled));
    canceler.join().unwrap();

    let ctx = root.with_timeout(Duration::from_millis(10));
    assert_eq!(ctx.blocking_sleep(HOUR), Err(Error::DeadlineExceeded));
    let ctx = root.with_timeout(HOUR);
    assert_eq!(ctx.blocking_sleep(Duration::from_millis(5)), Ok(()));
}

// ===== wait(), wait_timeout() =====

#[test]
fn wait_returns_the_error_once_done() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let ctx = ctx.clone();
            thread::spawn(move || ctx.wait())
        })
        .collect();
    thread::sleep(Duration::from_millis(10));
    cancel.cancel();
    for w in waiters {
        assert_eq!(w.join().unwrap(), Error::Canceled);
    }
    assert_eq!(ctx.wait(), Error::Canceled);

    let ctx = Context::background().with_timeout(Duration::from_millis(10));
    assert_eq!(ctx.wait(), Error::DeadlineExceeded);
}

#[test]
fn wait_timeout_returns_none_on_timeout_and_the_error_when_done() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    assert_eq!(ctx.wait_timeout(Duration::from_millis(5)), None);
    assert_eq!(ctx.wait_timeout(Duration::ZERO), None);
    let canceler = cancel_soon(cancel);
    assert_eq!(ctx.wait_timeout(PATIENCE), Some(Error::Canceled), "{ctx:?}");
    canceler.join().unwrap();

    assert_eq!(
        Context::background().wait_timeout(Duration::from_millis(5)),
        None
    );
    assert_eq!(Context::todo().wait_timeout(Duration::ZERO), None);

    // A deadline inside the timeout ends the wait.
    let ctx = Context::background().with_timeout(Duration::from_millis(10));
    assert_eq!(ctx.wait_timeout(PATIENCE), Some(Error::DeadlineExceeded));
}

#[test]
fn a_thread_waiting_on_a_child_wakes_when_an_ancestor_is_canceled() {
    let (root, cancel) = Context::background().with_cancel().into_parts();
    let mid = root.with_timeout(HOUR);
    let leaf = mid.with_cancel();
    let waiter = thread::spawn(move || leaf.wait_timeout(PATIENCE));
    thread::sleep(Duration::from_millis(10));
    cancel.cancel();
    assert_eq!(waiter.join().unwrap(), Some(Error::Canceled));
}
