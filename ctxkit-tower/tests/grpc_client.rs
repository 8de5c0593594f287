//! The client layer on a tonic channel, against a real tonic server on 127.0.0.1: a call
//! whose context is done is never sent; the deadline on the wire is the earliest of the
//! context's and the request's own timeout; a call in flight ends with its context; chosen
//! values cross typed.

#[allow(dead_code, reason = "each test binary uses a part of the harness")]
#[path = "common/grpc.rs"]
mod grpc;

use std::time::{Duration, Instant};

use ctxkit::Context;
use ctxkit_tower::{ClientGone, ClientLayer, Propagator, ServerLayer, WireValue};
use grpc::{echo, events, hang, note, notes, request_with, within, TestServer};
use http::HeaderValue;
use tower::Layer;

/// Makes a plain call (no context) on `client` and checks it is served: the server has
/// then read every request sent on that connection before it.
async fn a_plain_call_is_served<T>(client: T)
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let answer = within(
        "a plain call",
        notes::call(client, "Echo", tonic::Request::new(note("plain"))),
    )
    .await;
    assert_eq!(answer.expect("a plain call is served"), note("plain"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_context_is_canceled_fails_without_being_sent() {
    let (seen, mut handled) = events();
    let server = TestServer::start(ServerLayer::new(&Context::background()), echo(seen)).await;
    let client = server.client().await;

    let ctx = Context::background().with_cancel_cause();
    ctx.cancel_with("the user pressed stop");
    let status = within(
        "the canceled call to fail",
        notes::call(client.clone(), "Echo", request_with(&ctx, note("hello"))),
    )
    .await
    .expect_err("a canceled context's call fails");
    assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
    assert_eq!(
        status.message(),
        "context canceled: the user pressed stop",
        "{status:?}"
    );

    a_plain_call_is_served(client).await;
    assert_eq!(
        server.arrivals(),
        1,
        "only the plain call reached the server"
    );
    assert_eq!(
        handled.next("the plain call's handler").await.method,
        "Echo"
    );
    assert!(handled.try_next().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_with_no_time_left_fails_as_deadline_exceeded_without_being_sent() {
    let (seen, _handled) = events();
    let server = TestServer::start(ServerLayer::new(&Context::background()), echo(seen)).await;
    let channel = server.channel().await;

    // The deadline has passed.
    let ctx = Context::background().with_timeout(Duration::ZERO);
    let status = within(
        "the expired call to fail",
        notes::call(
            ClientLayer::new().layer(channel.clone()),
            "Echo",
            request_with(&ctx, note("hello")),
        ),
    )
    .await
    .expect_err("an expired context's call fails");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");

    // Time is left, but no more than the client's margin.
    let ctx = Context::background().with_timeout(Duration::from_secs(2));
    let client = ClientLayer::new()
        .margin(Duration::from_secs(10))
        .layer(channel.clone());
    let status = within(
        "the call within the margin to fail",
        notes::call(client, "Echo", request_with(&ctx, note("hello"))),
    )
    .await
    .expect_err("a call with less time than the margin fails");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("too little time left"),
        "{status:?}"
    );
    assert!(!ctx.is_done(), "the context itself is not done");

    a_plain_call_is_served(channel).await;
    assert_eq!(
        server.arrivals(),
        1,
        "only the plain call reached the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_earliest_of_set_timeout_and_the_contexts_deadline_goes_on_the_wire() {
    let (seen, mut handled) = events();
    let server = TestServer::start(ServerLayer::new(&Context::background()), echo(seen)).await;
    let client = server.client().await;

    // The request's own timeout is the earlier: it is kept as it is.
    let ctx = Context::background().with_timeout(Duration::from_secs(30));
    let mut request = request_with(&ctx, note("short"));
    request.set_timeout(Duration::from_secs(1));
    within(
        "the call with the shorter set_timeout",
        notes::call(client.clone(), "Echo", request),
    )
    .await
    .expect("served");
    let seen = handled.next("the handler").await;
    assert_eq!(
        seen.grpc_timeout(),
        Duration::from_secs(1),
        "the earlier set_timeout was kept"
    );
    let deadline = seen
        .ctx
        .deadline()
        .expect("the handler's context has a deadline");
    assert!(
        deadline <= Instant::now() + Duration::from_secs(1),
        "the handler's context ends by the earlier timeout, not the context's 30 s"
    );

    // The context's deadline is the earlier: it replaces the request's timeout.
    let ctx = Context::background().with_timeout(Duration::from_secs(2));
    let mut request = request_with(&ctx, note("long"));
    request.set_timeout(Duration::from_secs(60));
    within(
        "the call with the longer set_timeout",
        notes::call(client.clone(), "Echo", request),
    )
    .await
    .expect("served");
    let seen = handled.next("the handler").await;
    let sent = seen.grpc_timeout();
    assert!(
        Duration::ZERO < sent && sent <= Duration::from_secs(2),
        "the context's deadline replaced the later set_timeout: {sent:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_ends_with_its_context_as_cancelled_with_the_reason() {
    let (started, mut handler_started) = events();
    let (ended, mut call_ended) = events();
    let server = TestServer::start(
        ServerLayer::new(&Context::background()),
        hang(started, ended),
    )
    .await;

    let ctx = Context::background().with_cancel_cause();
    let call = tokio::spawn(notes::call(
        server.client().await,
        "Hang",
        request_with(&ctx, note("wait for me")),
    ));
    handler_started.next("the handler to start").await;
    ctx.cancel_with("the user pressed stop");

    let status = within("the canceled call to end", call)
        .await
        .expect("the call's task did not panic")
        .expect_err("the call's context was canceled");
    assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
    assert!(
        status.message().contains("the user pressed stop"),
        "the status gives the reason: {status:?}"
    );

    let ended = call_ended
        .next("the server's side of the call to end")
        .await;
    assert_eq!(
        ended.cause.downcast_ref::<ClientGone>(),
        Some(&ClientGone::BeforeResponse),
        "the call was dropped, and the server saw its client go: {:?}",
        ended.cause
    );
}

/// A request id, sent across as a header.
#[derive(Clone, Debug, PartialEq)]
struct RequestId(u64);

impl WireValue for RequestId {
    const HEADER: &'static str = "x-request-id";

    fn encode(&self) -> Option<HeaderValue> {
        Some(HeaderValue::from(self.0))
    }

    fn decode(value: &HeaderValue) -> Option<Self> {
        value.to_str().ok()?.parse().ok().map(RequestId)
    }
}

/// A value the propagators below do not list: it stays in the process.
#[derive(Clone, Debug, PartialEq)]
struct Secret(String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_propagated_value_arrives_typed_in_the_handlers_context() {
    let propagator = Propagator::new().value::<RequestId>();
    let (seen, mut handled) = events();
    let layer = ServerLayer::new(&Context::background()).propagator(propagator.clone());
    let server = TestServer::start(layer, echo(seen)).await;
    let client = ClientLayer::new()
        .propagator(propagator)
        .layer(server.channel().await);

    let ctx = Context::background()
        .with_value(RequestId(42))
        .with_value(Secret("hunter2".to_owned()));
    within(
        "the call",
        notes::call(client, "Echo", request_with(&ctx, note("hello"))),
    )
    .await
    .expect("served");

    let seen = handled.next("the handler").await;
    assert_eq!(
        seen.ctx.value::<RequestId>(),
        Some(&RequestId(42)),
        "the request id crossed, typed"
    );
    assert_eq!(
        seen.ctx.value::<Secret>(),
        None,
        "a value not listed stays behind"
    );
    assert_eq!(seen.ctx.deadline(), None, "no deadline was sent");
}
