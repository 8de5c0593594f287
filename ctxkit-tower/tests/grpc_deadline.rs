//! Deadlines over gRPC, on real tonic servers on 127.0.0.1: what a caller has left reaches
//! each hop's handler as its context's deadline, less each client's margin; a call already out
//! of time, or with a `grpc-timeout` that cannot be read, is answered by the server layer
//! without calling the handler.

#[allow(dead_code, reason = "each test binary uses a part of the harness")]
#[path = "common/grpc.rs"]
mod grpc;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ctxkit::Context;
use ctxkit_tower::{
    ClientGone, ClientLayer, ClientService, DeadlineSource, OnMalformed, RequestDeadline,
    ServerLayer,
};
use grpc::{
    echo, events, hang, note, notes, request_with, within, Handled, Note, Seen, TestServer,
};
use tonic::transport::Channel;
use tower::Layer;

/// A handler that calls `next` (the next hop, through a client layer) with the request's
/// context and the same method, and answers with its answer, or fails with its status as is.
fn forward(
    seen: tokio::sync::mpsc::UnboundedSender<Seen>,
    next: ClientService<Channel>,
) -> impl Fn(String, tonic::Request<Note>) -> Handled + Clone + Send + Sync + 'static {
    move |method, request| {
        let here = Seen::of(&method, &request);
        let ctx = here.ctx.clone();
        let _ = seen.send(here);
        let next = next.clone();
        Box::pin(async move {
            let text = format!("{} via A", request.get_ref().text);
            let answer = notes::call(next, &method, request_with(&ctx, note(&text))).await?;
            Ok(tonic::Response::new(answer))
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hops_each_callee_gets_what_is_left_less_the_margin() {
    const MARGIN: Duration = Duration::from_secs(1);
    const BUDGET: Duration = Duration::from_secs(4);

    let (seen, mut at_b) = events();
    let b = TestServer::start(ServerLayer::new(&Context::background()), echo(seen)).await;
    let to_b = ClientLayer::new().margin(MARGIN).layer(b.channel().await);
    let (seen, mut at_a) = events();
    let a = TestServer::start(
        ServerLayer::new(&Context::background()),
        forward(seen, to_b),
    )
    .await;

    let ctx = Context::background().with_timeout(BUDGET);
    let call = notes::call(a.client().await, "Echo", request_with(&ctx, note("hello")));
    let answer = within("the answer through A and B", call)
        .await
        .expect("the call through two hops succeeds");
    assert_eq!(answer.text, "hello via A", "B echoed what A sent");

    let at_a = at_a.next("A's handler").await;
    let at_b = at_b.next("B's handler").await;
    let (to_a, to_b) = (at_a.grpc_timeout(), at_b.grpc_timeout());
    assert!(
        Duration::ZERO < to_a && to_a <= BUDGET,
        "A was sent what the client had left (no margin on that client): {to_a:?} of {BUDGET:?}"
    );
    assert!(to_b > Duration::ZERO, "B was sent some time: {to_b:?}");
    assert!(
        to_b + MARGIN <= to_a,
        "B was sent at most what A had left less A's margin of {MARGIN:?}: A {to_a:?}, B {to_b:?}"
    );
    assert!(
        to_b + MARGIN + Duration::from_secs(1) > to_a,
        "B was sent what A had left less the margin, not much less: A {to_a:?}, B {to_b:?}"
    );

    let (deadline_a, deadline_b) = (at_a.ctx.deadline(), at_b.ctx.deadline());
    let (deadline_a, deadline_b) = (
        deadline_a.expect("A's context has the caller's deadline"),
        deadline_b.expect("B's context has A's deadline"),
    );
    assert!(
        deadline_b < deadline_a,
        "B's context ends before A's, so A has time to answer"
    );
    assert!(
        deadline_a <= ctx.deadline().expect("the client's deadline") + Duration::from_secs(1),
        "A's deadline is the client's, moved only by the time the request took to arrive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_at_the_second_hop_reaches_the_client_as_deadline_exceeded() {
    // The client has 3 s; A keeps 2.5 s of it, so B gets about 0.5 s and hangs until its
    // deadline: the failure comes back long before the client's own deadline.
    const BUDGET: Duration = Duration::from_secs(3);
    const MARGIN: Duration = Duration::from_millis(2500);

    let (started, mut at_b) = events();
    let (ended, mut b_ended) = events();
    let b = TestServer::start(
        ServerLayer::new(&Context::background()),
        hang(started, ended),
    )
    .await;
    let to_b = ClientLayer::new().margin(MARGIN).layer(b.channel().await);
    let (seen, mut at_a) = events();
    let a = TestServer::start(
        ServerLayer::new(&Context::background()),
        forward(seen, to_b),
    )
    .await;

    let ctx = Context::background().with_timeout(BUDGET);
    let call = notes::call(a.client().await, "Hang", request_with(&ctx, note("hello")));
    let status = within("the failure through A", call)
        .await
        .expect_err("B's deadline passes before it answers");
    assert!(
        ctx.deadline()
            .is_some_and(|deadline| deadline > Instant::now()),
        "the failure came back before the client's own deadline: it is B's expiry ({status:?})"
    );

    let at_a = at_a.next("A's handler").await;
    let at_b = at_b.next("B's handler").await;
    assert!(
        at_b.grpc_timeout() + MARGIN <= at_a.grpc_timeout(),
        "B had the shorter budget"
    );
    let b_ended = b_ended.next("B's context to end").await;
    // Its own deadline, or A's call reset when A's side of the call gave up first.
    let cause = &b_ended.cause;
    assert!(
        cause.is_deadline_exceeded() || cause.downcast_ref::<ClientGone>().is_some(),
        "B's context ended at its deadline (or when A gave up on the call): {:?}",
        b_ended.cause
    );
    assert_eq!(
        status.code(),
        tonic::Code::DeadlineExceeded,
        "the client sees the deadline, not a cancellation: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_clients_deadline_is_deadline_exceeded() {
    let (started, mut handler_started) = events();
    let (ended, mut call_ended) = events();
    let server = TestServer::start(
        ServerLayer::new(&Context::background()),
        hang(started, ended),
    )
    .await;

    let ctx = Context::background().with_timeout(Duration::from_millis(300));
    let call = notes::call(
        server.client().await,
        "Hang",
        request_with(&ctx, note("hello")),
    );
    let status = within("the call to time out", call)
        .await
        .expect_err("the handler never answers in time");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(
        ctx.deadline()
            .is_some_and(|deadline| deadline <= Instant::now()),
        "the client's own deadline passed"
    );

    let seen = handler_started.next("the handler").await;
    assert!(
        seen.grpc_timeout() <= Duration::from_millis(300),
        "{:?}",
        seen.grpc_timeout_header
    );
    // The server's side ends too: at its deadline, or when the client's call was dropped.
    let cause = call_ended.next("the server's side to end").await.cause;
    assert!(
        cause.is_deadline_exceeded() || cause.downcast_ref::<ClientGone>().is_some(),
        "{cause:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_budget_bounds_a_grpc_call_when_it_is_the_earliest() {
    const BUDGET: Duration = Duration::from_millis(300);

    let (started, mut handler_started) = events();
    let (ended, mut call_ended) = events();
    let layer = ServerLayer::new(&Context::background()).budget(BUDGET);
    let server = TestServer::start(layer, hang(started, ended)).await;

    // The caller allows 30 s; the server's budget is the earliest.
    let ctx = Context::background().with_timeout(Duration::from_secs(30));
    let call = notes::call(
        server.client().await,
        "Hang",
        request_with(&ctx, note("hello")),
    );
    let status = within("the call to end at the server's budget", call)
        .await
        .expect_err("the handler answers with its context's error");

    let seen = handler_started.next("the handler").await;
    assert!(
        seen.grpc_timeout() > Duration::from_secs(20),
        "the caller sent its own deadline: {:?}",
        seen.grpc_timeout_header
    );
    let deadline = seen
        .ctx
        .deadline()
        .expect("the handler's context has a deadline");
    assert!(
        deadline <= Instant::now() + BUDGET,
        "the handler's context ends by the server's budget"
    );
    let cause = call_ended.next("the handler's context to end").await.cause;
    assert!(cause.is_deadline_exceeded(), "{cause:?}");
    assert_eq!(
        cause.downcast_ref::<RequestDeadline>(),
        Some(&RequestDeadline {
            source: DeadlineSource::Budget,
            budget: BUDGET
        }),
        "the reason names the budget"
    );
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("budget"),
        "the handler's answer gives the reason: {status:?}"
    );
    assert!(!ctx.is_done(), "the caller's own deadline is far off");
}

/// A handler counting its calls, and reporting what it saw.
fn counted(
    calls: &Arc<AtomicUsize>,
    seen: tokio::sync::mpsc::UnboundedSender<Seen>,
) -> impl Fn(String, tonic::Request<Note>) -> Handled + Clone + Send + Sync + 'static {
    let calls = Arc::clone(calls);
    let echo = echo(seen);
    move |method, request| {
        calls.fetch_add(1, Ordering::SeqCst);
        echo(method, request)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_expired_on_arrival_is_deadline_exceeded_without_the_handler() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (seen, mut handled) = events();
    let server = TestServer::start(
        ServerLayer::new(&Context::background()),
        counted(&calls, seen),
    )
    .await;

    let answer = grpc::raw_call(server.addr, "Echo", Some("0n"), &note("too late")).await;
    assert_eq!(answer.http_status, 200, "{answer:?}");
    assert_eq!(
        answer.grpc_status,
        Some(tonic::Code::DeadlineExceeded as i32),
        "{answer:?}"
    );
    assert!(
        answer.trailers_only,
        "answered at once, without a body: {answer:?}"
    );
    let message = answer.grpc_message.unwrap_or_default();
    assert!(
        message.contains("deadline exceeded"),
        "the message says why: {message:?}"
    );
    assert_eq!(server.arrivals(), 1, "the request reached the server");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the handler was not called"
    );

    // The same request with time left is served: the raw request itself is fine.
    let answer = grpc::raw_call(server.addr, "Echo", Some("5S"), &note("in time")).await;
    assert_eq!(answer.grpc_status, Some(0), "{answer:?}");
    assert_eq!(answer.note, Some(note("in time")), "{answer:?}");
    let seen = handled.next("the handler of the call in time").await;
    assert!(seen.ctx.deadline().is_some(), "it has a deadline");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// `grpc-timeout` values that do not follow the gRPC spec (1 to 8 digits and one of the units
/// H M S m u n).
const MALFORMED: [&str; 7] = ["", "S", "10", "10s", "-1S", "123456789S", "1.5S"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_grpc_timeout_is_rejected_as_invalid_argument_by_default() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (seen, _handled) = events();
    let server = TestServer::start(
        ServerLayer::new(&Context::background()),
        counted(&calls, seen),
    )
    .await;

    for value in MALFORMED {
        let answer = grpc::raw_call(server.addr, "Echo", Some(value), &note("hello")).await;
        assert_eq!(
            answer.grpc_status,
            Some(tonic::Code::InvalidArgument as i32),
            "grpc-timeout {value:?}: {answer:?}"
        );
        assert!(
            answer.trailers_only,
            "grpc-timeout {value:?}: answered at once: {answer:?}"
        );
        let message = answer.grpc_message.unwrap_or_default();
        assert!(
            message.contains("grpc-timeout"),
            "grpc-timeout {value:?}: the message names the header: {message:?}"
        );
    }
    assert_eq!(server.arrivals(), MALFORMED.len(), "every request arrived");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the handler was never called"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_grpc_timeout_is_no_deadline_when_ignored() {
    let calls = Arc::new(AtomicUsize::new(0));
    let (seen, mut handled) = events();
    let layer = ServerLayer::new(&Context::background()).on_malformed(OnMalformed::Ignore);
    let server = TestServer::start(layer, counted(&calls, seen)).await;

    for value in MALFORMED {
        let answer = grpc::raw_call(server.addr, "Echo", Some(value), &note(value)).await;
        assert_eq!(
            answer.grpc_status,
            Some(0),
            "grpc-timeout {value:?}: {answer:?}"
        );
        assert_eq!(
            answer.note,
            Some(note(value)),
            "grpc-timeout {value:?}: {answer:?}"
        );
        let seen = handled.next("the handler").await;
        assert_eq!(
            seen.grpc_timeout_header
                .as_ref()
                .map(|header| header.as_bytes()),
            Some(value.as_bytes()),
            "the handler got the request as sent"
        );
        assert_eq!(
            seen.ctx.deadline(),
            None,
            "grpc-timeout {value:?}: the handler's context has no deadline"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), MALFORMED.len());
}
