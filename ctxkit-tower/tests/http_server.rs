//! `ServerLayer` on real hyper servers on 127.0.0.1: requests already out of time, malformed
//! deadline headers, clients that hang up (before the response and during its body), detached
//! routes, and shutdown through the root context.

#[allow(dead_code, reason = "each test file uses part of the shared module")]
#[path = "common/http.rs"]
mod http_common;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use ctxkit::{Cause, Context};
use ctxkit_tower::{ClientGone, ContextExt, OnMalformed, ServerLayer};
use http::{HeaderName, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tower::{service_fn, Layer, Service};

use http_common::{
    client, fetch, get, millis_left, raw_get, read_until, serve, text, unix_millis_from_now,
    within, TIMEOUT,
};

/// A handler that counts its calls and answers with the milliseconds its context has left
/// (`no deadline` without one).
fn counting_handler(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
       + Send
       + 'static {
    service_fn(move |request: Request<Incoming>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let ctx = request.context().cloned();
        async move {
            let ctx = ctx.expect("the layer puts a context in the extensions");
            Ok::<_, Infallible>(text(match millis_left(&ctx) {
                Some(left) => left.to_string(),
                None => "no deadline".to_owned(),
            }))
        }
    })
}

#[tokio::test]
async fn expired_on_arrival_is_answered_without_calling_the_handler() {
    let root = Context::background().with_cancel();
    let calls = Arc::new(AtomicUsize::new(0));
    let server = serve(ServerLayer::new(&root).layer(counting_handler(calls.clone()))).await;

    let (status, body) = fetch(client(), get(&server.url("/"), &[(TIMEOUT, b"0")])).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(body.starts_with("context deadline exceeded"), "{body}");
    assert!(
        body.contains("timeout header"),
        "the reason names the source: {body}"
    );

    // The same server still serves a caller with time left.
    let (status, body) = fetch(client(), get(&server.url("/"), &[(TIMEOUT, b"3000")])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the caller with time left reached the handler"
    );

    // A custom status for the expired case.
    let custom_calls = Arc::new(AtomicUsize::new(0));
    let custom = serve(
        ServerLayer::new(&root)
            .expired_status(StatusCode::REQUEST_TIMEOUT)
            .layer(counting_handler(custom_calls.clone())),
    )
    .await;
    let (status, body) = fetch(client(), get(&custom.url("/"), &[(TIMEOUT, b"0")])).await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    assert!(body.starts_with("context deadline exceeded"), "{body}");
    assert_eq!(
        custom_calls.load(Ordering::SeqCst),
        0,
        "the handler was called"
    );

    // A server budget of nothing expires every request too, naming the budget.
    let budget_calls = Arc::new(AtomicUsize::new(0));
    let no_budget = serve(
        ServerLayer::new(&root)
            .budget(Duration::ZERO)
            .layer(counting_handler(budget_calls.clone())),
    )
    .await;
    let (status, body) = fetch(client(), get(&no_budget.url("/"), &[])).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(body.contains("budget"), "{body}");
    assert_eq!(
        budget_calls.load(Ordering::SeqCst),
        0,
        "the handler was called"
    );
}

/// Each malformed value of the milliseconds header, and what `wire::Malformed` says of it.
const MALFORMED: &[(&[u8], &str)] = &[
    (b"", "empty value"),
    (b"-5", "not an unsigned whole number"),
    (b"1.5", "not an unsigned whole number"),
    (b"abc", "not an unsigned whole number"),
    (b"12345678901234567890", "too many digits"),
    (b"\xff\xfe", "not ASCII"),
    (b"4\xe9", "not ASCII"),
];

#[tokio::test]
async fn malformed_timeout_header_is_rejected_naming_the_header() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server =
        serve(ServerLayer::new(&Context::background()).layer(counting_handler(calls.clone())))
            .await;
    for &(value, problem) in MALFORMED {
        let shown = String::from_utf8_lossy(value);
        let (status, body) = fetch(client(), get(&server.url("/"), &[(TIMEOUT, value)])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "value {shown:?}: {body}");
        assert!(
            body.contains(TIMEOUT),
            "value {shown:?}: the message names the header: {body}"
        );
        assert!(
            body.contains(problem),
            "value {shown:?}: expected {problem:?} in {body:?}"
        );
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "a malformed request reached the handler"
    );
}

#[tokio::test]
async fn malformed_timeout_header_is_ignored_when_configured() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = serve(
        ServerLayer::new(&Context::background())
            .on_malformed(OnMalformed::Ignore)
            .layer(counting_handler(calls.clone())),
    )
    .await;
    for &(value, _) in MALFORMED {
        let shown = String::from_utf8_lossy(value);
        let (status, body) = fetch(client(), get(&server.url("/"), &[(TIMEOUT, value)])).await;
        assert_eq!(status, StatusCode::OK, "value {shown:?}: {body}");
        assert_eq!(body, "no deadline", "value {shown:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), MALFORMED.len());
}

#[tokio::test]
async fn absolute_deadline_header_past_future_and_malformed() {
    const DEADLINE: &str = "x-request-deadline-unix-ms";
    let calls = Arc::new(AtomicUsize::new(0));
    let server = serve(
        ServerLayer::new(&Context::background())
            .deadline_header(Some(HeaderName::from_static(DEADLINE)))
            .layer(counting_handler(calls.clone())),
    )
    .await;

    // In the past: expired on arrival.
    let past = unix_millis_from_now(-10_000);
    let (status, body) = fetch(
        client(),
        get(&server.url("/"), &[(DEADLINE, past.as_bytes())]),
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(
        body.contains("deadline header"),
        "the reason names the source: {body}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Two seconds ahead: the handler's context has a deadline about that far.
    let future = unix_millis_from_now(2_000);
    let (status, body) = fetch(
        client(),
        get(&server.url("/"), &[(DEADLINE, future.as_bytes())]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let left: u64 = body
        .parse()
        .unwrap_or_else(|_| panic!("a deadline, got {body:?}"));
    assert!(left > 1_000 && left <= 2_000, "{left} ms left of 2000");

    // With the milliseconds header too, the earlier of the two wins.
    let (status, body) = fetch(
        client(),
        get(
            &server.url("/"),
            &[(DEADLINE, future.as_bytes()), (TIMEOUT, b"300")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let left: u64 = body
        .parse()
        .unwrap_or_else(|_| panic!("a deadline, got {body:?}"));
    assert!(left <= 300, "{left} ms left: the 300 ms header should win");

    // Malformed: rejected, naming this header.
    let (status, body) = fetch(client(), get(&server.url("/"), &[(DEADLINE, b"soon")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains(DEADLINE), "{body}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// What a handler sends the test: where it came from and its context's cause.
type Report = (&'static str, Option<Cause>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_hanging_up_cancels_the_work_the_handler_spawned() {
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let (report_tx, mut reports) = mpsc::unbounded_channel::<Report>();
    let handler = service_fn(move |request: Request<Incoming>| {
        let ctx = request.context().cloned().expect("the layer's context");
        let (started_tx, report_tx) = (started_tx.clone(), report_tx.clone());
        async move {
            // A task and a thread that outlive the handler unless its context stops them.
            tokio::spawn({
                let (ctx, report_tx) = (ctx.clone(), report_tx.clone());
                async move {
                    ctx.done().await;
                    let _ = report_tx.send(("task", ctx.cause()));
                }
            });
            std::thread::spawn({
                let ctx = ctx.clone();
                move || {
                    ctx.wait_timeout(Duration::from_secs(10));
                    let _ = report_tx.send(("thread", ctx.cause()));
                }
            });
            started_tx.send(()).expect("the test listens");
            // Never answers: only the client going away ends this request.
            std::future::pending::<Result<Response<Full<Bytes>>, Infallible>>().await
        }
    });
    let server = serve(ServerLayer::new(&Context::background()).layer(handler)).await;

    let connection = raw_get(server.addr, "/work", &["x-request-timeout-ms: 60000"]).await;
    within("the handler to start", started.recv()).await;
    drop(connection);

    for _ in 0..2 {
        let (who, cause) = within("the spawned work to see the cancellation", reports.recv())
            .await
            .expect("a report");
        let cause = cause.unwrap_or_else(|| panic!("{who}: woke with its context not done"));
        assert!(cause.is_canceled(), "{who}: {cause:?}");
        assert_eq!(
            cause.downcast_ref::<ClientGone>(),
            Some(&ClientGone::BeforeResponse),
            "{who}: {cause:?}"
        );
    }
}

pin_project_lite::pin_project! {
    /// Wraps a service's future; tells, when dropped, whether it had completed.
    struct Watched<F> {
        #[pin]
        future: F,
        completed: bool,
        dropped: Option<mpsc::UnboundedSender<bool>>,
    }

    impl<F> PinnedDrop for Watched<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(dropped) = this.dropped.take() {
                let _ = dropped.send(*this.completed);
            }
        }
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.future.poll(cx));
        *this.completed = true;
        Poll::Ready(output)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_route_runs_to_completion_after_the_client_hangs_up() {
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let (go_tx, go) = tokio::sync::watch::channel(false);
    let (finished_tx, mut finished) =
        mpsc::unbounded_channel::<(bool, Result<(), ctxkit::Error>)>();
    let (ctx_tx, mut handler_ctx) = mpsc::unbounded_channel::<Context>();
    let handler = service_fn(move |request: Request<Incoming>| {
        let ctx = request.context().cloned().expect("the layer's context");
        let (started_tx, finished_tx, ctx_tx) =
            (started_tx.clone(), finished_tx.clone(), ctx_tx.clone());
        let mut go = go.clone();
        async move {
            ctx_tx.send(ctx.clone()).expect("the test listens");
            started_tx.send(()).expect("the test listens");
            // Waits until the test has seen the server drop the request.
            go.wait_for(|&go| go).await.expect("the test lives");
            let done_after_hang_up = ctx.is_done();
            // More work under the context, as a handler would do.
            let slept = ctx.sleep(Duration::from_millis(20)).await;
            finished_tx
                .send((done_after_hang_up, slept))
                .expect("the test listens");
            Ok::<_, Infallible>(text("done"))
        }
    });
    let layered = ServerLayer::new(&Context::background())
        .detach_when(|request| request.uri.path().starts_with("/detached/"))
        .layer(handler);
    // Outside the layer, watch hyper drop the request's future.
    let (dropped_tx, mut dropped) = mpsc::unbounded_channel::<bool>();
    let watched = service_fn(move |request: Request<Incoming>| Watched {
        future: layered.clone().call(request),
        completed: false,
        dropped: Some(dropped_tx.clone()),
    });
    let server = serve(watched).await;

    let connection = raw_get(server.addr, "/detached/payment", &[]).await;
    within("the handler to start", started.recv()).await;
    let ctx = handler_ctx.recv().await.expect("the handler's context");
    drop(connection);
    let completed = within("hyper to drop the request", dropped.recv())
        .await
        .expect("a drop");
    assert!(
        !completed,
        "the response future completed before the client hung up"
    );
    assert!(
        !ctx.is_done(),
        "the detached request's context ended with its client: {:?}",
        ctx.cause()
    );

    go_tx.send(true).expect("the handler waits");
    let (done_after_hang_up, slept) = within("the detached handler to finish", finished.recv())
        .await
        .expect("a report");
    assert!(
        !done_after_hang_up,
        "the context was done when the handler went on"
    );
    assert_eq!(
        slept,
        Ok(()),
        "the handler's work under its context was cut short"
    );

    // The request is over once its handler has answered (nobody reads the answer), and its
    // reason says the client left before any of the answer was sent.
    within("the finished request's context to end", ctx.done()).await;
    let cause = ctx.cause().expect("a done context has a cause");
    assert_eq!(
        cause.downcast_ref::<ClientGone>(),
        Some(&ClientGone::BeforeResponse),
        "{cause}"
    );
}

/// The reason the tests give for a shutdown.
#[derive(Debug)]
struct ShuttingDown;

impl std::fmt::Display for ShuttingDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the server is going down for maintenance")
    }
}

impl std::error::Error for ShuttingDown {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_the_root_cancels_every_request_in_flight() {
    let root = Context::background().with_cancel_cause();
    let calls = Arc::new(AtomicUsize::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let (cause_tx, mut causes) = mpsc::unbounded_channel::<Option<Cause>>();
    let handler = service_fn({
        let calls = calls.clone();
        move |request: Request<Incoming>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let ctx = request.context().cloned().expect("the layer's context");
            let (started_tx, cause_tx) = (started_tx.clone(), cause_tx.clone());
            async move {
                started_tx.send(()).expect("the test listens");
                ctx.done().await;
                let cause = ctx.cause();
                cause_tx.send(cause.clone()).expect("the test listens");
                Ok::<_, Infallible>(text(format!(
                    "stopped: {}",
                    cause.map(|c| c.to_string()).unwrap_or_default()
                )))
            }
        }
    });
    let server = serve(ServerLayer::new(&root).layer(handler)).await;

    let first = tokio::spawn(fetch(
        client(),
        get(&server.url("/a"), &[(TIMEOUT, b"60000")]),
    ));
    let second = tokio::spawn(fetch(client(), get(&server.url("/b"), &[])));
    for _ in 0..2 {
        within("both requests to be in flight", started.recv()).await;
    }

    root.cancel_with(ShuttingDown);
    for _ in 0..2 {
        let cause = within("the handlers to see the shutdown", causes.recv())
            .await
            .expect("a cause")
            .expect("a done context has a cause");
        assert!(cause.is_canceled(), "{cause:?}");
        assert!(cause.downcast_ref::<ShuttingDown>().is_some(), "{cause:?}");
    }
    for answer in [first, second] {
        let (status, body) = answer.await.expect("the client task");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "stopped: the server is going down for maintenance");
    }

    // After the shutdown started: answered 503 at once, the handler not called.
    let (status, body) = fetch(client(), get(&server.url("/late"), &[])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body, "the server is shutting down");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A response body whose chunks the test sends, one at a time.
struct ChannelBody(mpsc::UnboundedReceiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// A server whose handler answers with a [`ChannelBody`] at once, handing the test the
/// request's context and the body's sender.
async fn streaming_server() -> (
    http_common::Server,
    mpsc::UnboundedReceiver<(Context, mpsc::UnboundedSender<Bytes>)>,
) {
    let (handed_tx, handed) = mpsc::unbounded_channel();
    let handler = service_fn(move |request: Request<Incoming>| {
        let ctx = request.context().cloned().expect("the layer's context");
        let (chunks_tx, chunks) = mpsc::unbounded_channel();
        handed_tx.send((ctx, chunks_tx)).expect("the test listens");
        async move { Ok::<_, Infallible>(Response::new(ChannelBody(chunks))) }
    });
    let server = serve(ServerLayer::new(&Context::background()).layer(handler)).await;
    (server, handed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_body_keeps_the_context_alive_until_its_end() {
    let (server, mut handed) = streaming_server().await;
    let response = within(
        "the response head",
        client().request(get(&server.url("/stream"), &[])),
    )
    .await
    .expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let (ctx, chunks) = handed.recv().await.expect("the handler's context");
    let mut body = response.into_body();

    for chunk in ["one", "two"] {
        chunks.send(Bytes::from(chunk)).expect("the body reads");
        let frame = within("a chunk", body.frame())
            .await
            .expect("a frame")
            .expect("a good frame");
        assert_eq!(frame.into_data().expect("data"), chunk);
        assert!(
            !ctx.is_done(),
            "the context ended while its body was being sent: {:?}",
            ctx.cause()
        );
    }

    drop(chunks); // the body's end
    assert!(
        within("the body's end", body.frame()).await.is_none(),
        "more frames after the end"
    );
    within("the context to end with its body", ctx.done()).await;
    let cause = ctx.cause().expect("done");
    assert!(cause.is_canceled(), "{cause:?}");
    assert!(
        cause.reason().is_none(),
        "a complete response ends the context without a reason: {cause:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_hanging_up_mid_body_cancels_with_during_response() {
    let (server, mut handed) = streaming_server().await;
    let mut connection = raw_get(server.addr, "/stream", &[]).await;
    let (ctx, chunks) = within("the handler", handed.recv())
        .await
        .expect("the handler's context");
    chunks
        .send(Bytes::from("first-chunk"))
        .expect("the body reads");
    let seen = read_until(&mut connection, "first-chunk").await;
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        !ctx.is_done(),
        "the context ended mid-body: {:?}",
        ctx.cause()
    );

    drop(connection);
    within("the context to end when the client hangs up", ctx.done()).await;
    let cause = ctx.cause().expect("done");
    assert_eq!(
        cause.downcast_ref::<ClientGone>(),
        Some(&ClientGone::DuringResponse),
        "{cause:?}"
    );
    drop(chunks);
}

/// A streamed body of known length (as a file sent with its `content-length`): its chunks,
/// its exact size, and no word of its end until polled past the last chunk.
struct SizedBody {
    chunks: std::collections::VecDeque<Bytes>,
    len: u64,
}

impl SizedBody {
    fn new(chunks: &[&'static str]) -> SizedBody {
        SizedBody {
            chunks: chunks.iter().map(|&chunk| Bytes::from(chunk)).collect(),
            len: chunks.iter().map(|chunk| chunk.len() as u64).sum(),
        }
    }
}

impl http_body::Body for SizedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(
            self.get_mut()
                .chunks
                .pop_front()
                .map(|chunk| Ok(Frame::data(chunk))),
        )
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.len)
    }
}

/// A server answering every request with `body()`, handing the test each request's context.
async fn answering_server<B, F>(body: F) -> (http_common::Server, mpsc::UnboundedReceiver<Context>)
where
    F: Fn() -> B + Clone + Send + Sync + 'static,
    B: http_body::Body<Data = Bytes, Error = Infallible> + Send + 'static,
{
    let (ctx_tx, contexts) = mpsc::unbounded_channel();
    let handler = service_fn(move |request: Request<Incoming>| {
        ctx_tx
            .send(request.context().cloned().expect("the layer's context"))
            .expect("the test listens");
        let body = body();
        async move { Ok::<_, Infallible>(Response::new(body)) }
    });
    let server = serve(ServerLayer::new(&Context::background()).layer(handler)).await;
    (server, contexts)
}

/// Waits for `ctx` to end and checks it ended as a completed request: canceled without a
/// reason, not with `ClientGone`.
async fn assert_completed(ctx: &Context, what: &str) {
    within(&format!("the context of {what} to end"), ctx.done()).await;
    let cause = ctx.cause().expect("done");
    assert!(
        cause.downcast_ref::<ClientGone>().is_none() && cause.reason().is_none(),
        "{what}: the client got the whole response, yet the context's cause is {cause:?}"
    );
}

#[tokio::test]
async fn head_request_ends_the_context_as_complete() {
    let (server, mut contexts) =
        answering_server(|| Full::new(Bytes::from("a body HEAD omits"))).await;
    let http = client();

    // A GET: the body is sent and polled to its end.
    let (status, body) = fetch(http.clone(), get(&server.url("/"), &[])).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "a body HEAD omits")
    );
    let ctx = contexts.recv().await.expect("the GET's context");
    assert_completed(&ctx, "a GET").await;

    // A HEAD, on the same kept-alive connection: hyper sends the head only.
    let mut head = get(&server.url("/"), &[]);
    *head.method_mut() = http::Method::HEAD;
    let (status, body) = fetch(http, head).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    let ctx = contexts.recv().await.expect("the HEAD's context");
    assert_completed(&ctx, "a HEAD").await;
}

#[tokio::test]
async fn body_of_known_length_ends_the_context_as_complete() {
    let (server, mut contexts) = answering_server(|| SizedBody::new(&["sized ", "body"])).await;
    let http = client();
    let (status, body) = fetch(http, get(&server.url("/"), &[])).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "sized body"));
    let ctx = contexts.recv().await.expect("the request's context");
    assert_completed(&ctx, "a body of known length").await;
}
