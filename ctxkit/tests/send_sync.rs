//! Trait hygiene, checked at compile time: every public type can move to and be shared with
//! other threads (`Send + Sync`) and is `Unpin` where it is a plain value (so it can be held
//! across awaits and polled without pinning); `Context` and the context's futures are
//! `'static`; and the futures the API returns (`done`, `run`, `sleep`, a group's `wait`, a
//! limiter's `wait`, a ticker's `tick`) are `Send`, so they can run on a multi-thread runtime.
//!
//! `group::Scope` is the exception on purpose: it is `Send` but not `Sync`, since only the
//! closure that `group::scope` runs, on the caller's thread, spawns through it; its tasks get a
//! `Context`, which is `Sync`.

use std::time::Duration;

use ctxkit::context::{Run, Sleep};
use ctxkit::group::{Scope, TaskFailed};
use ctxkit::rate::{ConfigError, Limiter, MissedTickBehavior, Reservation, Ticker, WaitError};
use ctxkit::{AfterFunc, CancelContext, CancelHandle, Cause, Context, Done, Error};

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}
fn unpin<T: Unpin>() {}
fn static_<T: 'static>() {}
fn clone_<T: Clone>() {}
fn send_value<T: Send>(_: &T) {}

#[test]
fn public_types_are_send_sync_unpin() {
    send_sync::<Context>();
    send_sync::<CancelContext>();
    send_sync::<CancelHandle>();
    send_sync::<Done>();
    send_sync::<AfterFunc>();
    send_sync::<Error>();
    send_sync::<Cause>();

    unpin::<Context>();
    unpin::<CancelContext>();
    unpin::<CancelHandle>();
    unpin::<Done>();
    unpin::<AfterFunc>();
    unpin::<Error>();
    unpin::<Cause>();

    static_::<Context>();
    static_::<CancelContext>();
    static_::<Done>();
    static_::<Cause>();
    clone_::<Context>();
    clone_::<Cause>();
}

#[test]
fn the_context_futures_are_send_sync_unpin() {
    // `Run` is as `Send`, `Sync` and `Unpin` as the work it wraps.
    type Work = std::future::Ready<u8>;
    send_sync::<Run<Work>>();
    unpin::<Run<Work>>();
    static_::<Run<Work>>();
    send_sync::<Sleep>();
    unpin::<Sleep>();
    static_::<Sleep>();
}

#[test]
fn group_types_are_send_sync_unpin() {
    #[cfg(feature = "tokio")]
    {
        send_sync::<ctxkit::Group<u32, Error>>();
        unpin::<ctxkit::Group<u32, Error>>();
    }
    send_sync::<TaskFailed>();
    unpin::<TaskFailed>();
    static_::<TaskFailed>();
    clone_::<TaskFailed>();
    // Not `Sync`: see the module docs.
    send::<Scope<'static, 'static, u32, Error>>();
}

#[test]
fn rate_types_are_send_sync_unpin() {
    send_sync::<Limiter>();
    unpin::<Limiter>();
    send_sync::<Reservation<'static>>();
    unpin::<Reservation<'static>>();
    send_sync::<Ticker>();
    unpin::<Ticker>();
    send_sync::<MissedTickBehavior>();
    unpin::<MissedTickBehavior>();
    send_sync::<WaitError>();
    unpin::<WaitError>();
    static_::<WaitError>();
    send_sync::<ConfigError>();
    unpin::<ConfigError>();
    static_::<ConfigError>();
}

#[test]
fn the_api_futures_are_send() {
    let ctx = Context::background().with_cancel();
    let sleep = ctx.sleep(Duration::from_millis(1));
    send_value(&sleep);
    let run = ctx.run(async { 1 });
    send_value(&run);
    let done = ctx.done();
    send_value(&done);
    drop((sleep, run, done));

    // Made, never polled: no runtime needed.
    #[cfg(feature = "tokio")]
    {
        let mut g = ctxkit::Group::<u32, Error>::new();
        let wait = g.wait();
        send_value(&wait);
        drop(wait);
        let wait_all = g.wait_all();
        send_value(&wait_all);
        drop(wait_all);
    }

    let lim = Limiter::new(1.0, 1).unwrap();
    let wait = lim.wait(&ctx);
    send_value(&wait);
    drop(wait);
    let wait_n = lim.wait_n(&ctx, 1);
    send_value(&wait_n);
    drop(wait_n);

    let mut ticker = Ticker::new(Duration::from_secs(1)).unwrap();
    let tick = ticker.tick();
    send_value(&tick);
    drop(tick);
}

#[test]
fn the_context_futures_own_what_they_need() {
    // 'static: they can be returned from a tower service or moved into a task without the
    // context they came from.
    fn static_future<F: std::future::Future + Send + 'static>(_: &F) {}
    let run = {
        let ctx = Context::background().with_cancel();
        ctx.run(async { 1 })
    };
    static_future(&run);
    let sleep = {
        let ctx = Context::background().with_cancel();
        ctx.sleep(Duration::from_millis(1))
    };
    static_future(&sleep);
    drop((run, sleep));
}

#[test]
fn the_limiter_types_are_send_sync_and_the_owned_wait_is_static() {
    use std::sync::Arc;

    use ctxkit::rate::{Limiter, OwnedReservation, OwnedWait, Reservation, WaitError};

    fn static_future<F: std::future::Future + Send + Unpin + 'static>(_: &F) {}

    send_sync::<Limiter>();
    send_sync::<Reservation<'static>>();
    send_sync::<OwnedReservation>();
    send_sync::<OwnedWait>();
    send_sync::<WaitError>();
    unpin::<OwnedWait>();
    static_::<OwnedReservation>();
    // Built from an `Arc<Limiter>` and a context that both go out of scope.
    let wait = {
        let limiter = Arc::new(Limiter::new(10.0, 1).unwrap());
        let ctx = Context::background().with_cancel();
        limiter.wait_owned(ctx.clone())
    };
    static_future(&wait);
    drop(wait);
}

#[test]
fn the_pool_types_are_send_sync() {
    use ctxkit::pool::{JobFailed, Map, Pool, ShutdownReport, SubmitError, Workers};

    send_sync::<Pool>();
    send_sync::<JobFailed>();
    send_sync::<SubmitError<String>>();
    send_sync::<ShutdownReport<String>>();
    // Shared among submitting threads (`&Workers` or `Arc<Workers>`).
    send_sync::<Workers<String>>();
    // A map moves to another thread with its input (it is its consumer's, so `Send` only).
    send::<Map<std::vec::IntoIter<u32>, u64>>();
    unpin::<Map<std::vec::IntoIter<u32>, u64>>();
    static_::<Workers<String>>();
    clone_::<JobFailed>();
}

#[cfg(feature = "tokio")]
#[test]
fn the_async_pool_types_and_futures_are_send() {
    use ctxkit::pool::{AsyncWorkers, MapStream, Pool};

    send_sync::<AsyncWorkers<String>>();
    type Input = futures::stream::Iter<std::vec::IntoIter<u32>>;
    send::<MapStream<Input, u64>>();
    unpin::<MapStream<Input, u64>>();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let ctx = Context::background();
    let workers = Pool::new(1).start_async(&ctx, |_ctx, _job: u32| async {});
    send_value(&workers.submit(&ctx, 1));
    send_value(&workers.shutdown(&ctx));
    let mut map = Pool::new(1).map_stream(
        &ctx,
        futures::stream::iter(vec![1u32]),
        |_ctx, n| async move { n },
    );
    send_value(&map.next());
}
