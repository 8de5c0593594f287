//! Trait hygiene (STYLE #14): the public context types are `Send + Sync` (and `Unpin` where a
//! value is polled or held across awaits), `Context` is `'static`, and the futures the context
//! API returns can move to another thread.

use std::time::Duration;

use ctxkit::{AfterFunc, CancelContext, CancelHandle, Cause, Context, Done, Error};

fn send_sync<T: Send + Sync>() {}
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
fn the_api_futures_are_send() {
    let ctx = Context::background().with_cancel();
    let sleep = ctx.sleep(Duration::from_millis(1));
    send_value(&sleep);
    let run = ctx.run(async { 1 });
    send_value(&run);
    let done = ctx.done();
    send_value(&done);
    drop((sleep, run, done));
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
