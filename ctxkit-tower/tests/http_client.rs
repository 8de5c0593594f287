//! `ClientLayer` on hyper-util's legacy client against real hyper servers on 127.0.0.1: a
//! deadline carried over two hops with a margin, calls that must not be sent, a call aborted
//! by its context, and typed values carried by a `Propagator`.

#[allow(dead_code, reason = "each test file uses part of the shared module")]
#[path = "common/http.rs"]
mod http_common;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ctxkit::{Cause, Context, Error};
use ctxkit_tower::{
    CallError, ClientGone, ClientLayer, ContextExt, Propagator, ServerLayer, WireValue,
};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::mpsc;
use tower::{service_fn, Layer, ServiceExt};

use http_common::{client, fetch, get, millis_left, serve, text, within, HttpClient, TIMEOUT};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Parses a space-separated list of numbers.
fn numbers(body: &str) -> Vec<u64> {
    body.split(' ')
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("numbers, got {body:?}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_crosses_two_hops_minus_the_margin() {
    const MARGIN: u64 = 100;
    let root = Context::background().with_cancel();

    // Hop B: answers with the header it received and the time its context has left.
    let hop_b = serve(ServerLayer::new(&root).layer(service_fn(
        |request: Request<Incoming>| async move {
            let header = request.headers()[TIMEOUT].to_str().unwrap().to_owned();
            let left = millis_left(request.context().unwrap()).expect("a deadline at hop B");
            Ok::<_, Infallible>(text(format!("{header} {left}")))
        },
    )))
    .await;

    // Hop A: calls B under its request's context, through a client with a margin.
    let to_b = ClientLayer::new()
        .margin(Duration::from_millis(MARGIN))
        .layer(client());
    let url_b = hop_b.url("/b");
    let hop_a = serve(ServerLayer::new(&root).layer(service_fn(
        move |request: Request<Incoming>| {
            let (to_b, url_b) = (to_b.clone(), url_b.clone());
            async move {
                let ctx = request.context().cloned().expect("the layer's context");
                let left_a = millis_left(&ctx).expect("a deadline at hop A");
                let mut call = get(&url_b, &[]);
                call.set_context(ctx);
                let response = to_b.oneshot(call).await.expect("the call to hop B");
                let body = response.into_body().collect().await.expect("hop B's body");
                let answer = String::from_utf8(body.to_bytes().to_vec()).unwrap();
                Ok::<_, Infallible>(text(format!("{left_a} {answer}")))
            }
        },
    )))
    .await;

    // The caller: 400 ms, carried by a ClientLayer too.
    let ctx = Context::background().with_timeout(Duration::from_millis(400));
    let mut request = get(&hop_a.url("/a"), &[]);
    request.set_context(ctx.context().clone());
    let (status, body) = fetch(ClientLayer::new().layer(client()), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let [left_a, header_b, left_b] = numbers(&body)[..] else {
        panic!("three numbers, got {body:?}");
    };
    assert!(
        left_a > 200 && left_a <= 400,
        "hop A had {left_a} ms of the caller's 400"
    );
    assert!(header_b > 0, "hop B was sent {header_b} ms");
    assert!(
        header_b + MARGIN <= left_a,
        "hop B was sent {header_b} ms when hop A had {left_a} ms before calling: the {MARGIN} ms margin is not off"
    );
    assert!(
        left_b > 0 && left_b <= header_b,
        "hop B had {left_b} ms of the {header_b} it was sent"
    );
}

/// A server counting the requests that reach it, whatever they carry.
async fn counting_server(calls: Arc<AtomicUsize>) -> http_common::Server {
    serve(service_fn(move |_: Request<Incoming>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(text("reached")) }
    }))
    .await
}

#[tokio::test]
async fn canceled_context_fails_at_once_without_sending() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = counting_server(calls.clone()).await;
    let http = ClientLayer::new().layer(client());

    // The layer passes a call with a live context (the server is reachable).
    let live = Context::background().with_cancel();
    let mut request = get(&server.url("/"), &[]);
    request.set_context(live.context().clone());
    let (status, _) = fetch(http.clone(), request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let ctx = Context::background().with_cancel_cause();
    ctx.cancel_with("the user left");
    let mut request = get(&server.url("/"), &[]);
    request.set_context(ctx.context().clone());
    let error = within("the canceled call's error", http.oneshot(request))
        .await
        .expect_err("a call under a canceled context");
    assert_eq!(error.to_string(), "context canceled: the user left");
    let call_error = error.downcast_ref::<CallError>().expect("a CallError");
    assert_eq!(call_error.error(), Error::Canceled);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the canceled call reached the server"
    );
}

#[tokio::test]
async fn margin_larger_than_what_is_left_fails_at_once_without_sending() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = counting_server(calls.clone()).await;
    let http = ClientLayer::new()
        .margin(Duration::from_secs(5))
        .layer(client());

    let ctx = Context::background().with_timeout(Duration::from_secs(2));
    let mut request = get(&server.url("/"), &[]);
    request.set_context(ctx.context().clone());
    let started = Instant::now();
    let error = within("the call's error", http.oneshot(request))
        .await
        .expect_err("2 s left is under the 5 s margin");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the call waited {:?}",
        started.elapsed()
    );
    assert_eq!(
        error.to_string(),
        "context deadline exceeded: too little time left to send the call"
    );
    let call_error = error.downcast_ref::<CallError>().expect("a CallError");
    assert_eq!(call_error.error(), Error::DeadlineExceeded);
    assert!(
        call_error.cause().is_none(),
        "the context itself is not done"
    );
    assert!(!ctx.is_done());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the call reached the server"
    );
}

/// A server whose request contexts end only when the response completes or the client goes
/// away (it does not read the timeout header). `/slow` works for 30 s and reports its
/// context's cause; `/quick` answers at once.
async fn slow_server() -> (http_common::Server, mpsc::UnboundedReceiver<Option<Cause>>) {
    let (cause_tx, causes) = mpsc::unbounded_channel::<Option<Cause>>();
    let server = serve(
        ServerLayer::new(&Context::background())
            .timeout_header(None)
            .layer(service_fn(move |request: Request<Incoming>| {
                let ctx = request.context().cloned().expect("the layer's context");
                let cause_tx = cause_tx.clone();
                let quick = request.uri().path() == "/quick";
                async move {
                    if quick {
                        return Ok::<_, Infallible>(text("quick"));
                    }
                    tokio::spawn({
                        let ctx = ctx.clone();
                        async move {
                            ctx.done().await;
                            let _ = cause_tx.send(ctx.cause());
                        }
                    });
                    // Work far longer than the caller's deadline.
                    let _ = ctx.sleep(Duration::from_secs(30)).await;
                    Ok(text("too late"))
                }
            })),
    )
    .await;
    (server, causes)
}

/// Calls `server`'s `/slow` through `http` with a 300 ms context; checks the call is aborted
/// with the context's error and the server sees its client go.
async fn call_is_aborted_by_its_deadline(
    http: HttpClient,
    server: &http_common::Server,
    causes: &mut mpsc::UnboundedReceiver<Option<Cause>>,
) {
    let started = Instant::now();
    let ctx = Context::background().with_timeout(Duration::from_millis(300));
    let mut request = get(&server.url("/slow"), &[]);
    request.set_context(ctx.context().clone());
    let error = within(
        "the call to be aborted",
        ClientLayer::new().layer(http).oneshot(request),
    )
    .await
    .expect_err("the server answers after the deadline");
    assert!(
        error.to_string().starts_with("context deadline exceeded"),
        "{error}"
    );
    let call_error = error.downcast_ref::<CallError>().expect("a CallError");
    assert_eq!(call_error.error(), Error::DeadlineExceeded);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "aborted after {:?}, before the 300 ms deadline",
        started.elapsed()
    );

    let cause = within("the server to see its client go", causes.recv())
        .await
        .expect("a cause")
        .expect("a done context");
    assert_eq!(
        cause.downcast_ref::<ClientGone>(),
        Some(&ClientGone::BeforeResponse),
        "{cause:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_aborts_the_call_in_flight_and_the_server_sees_its_client_go() {
    let (server, mut causes) = slow_server().await;
    call_is_aborted_by_its_deadline(client(), &server, &mut causes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_aborts_an_http2_call_and_the_server_sees_its_stream_reset() {
    let (server, mut causes) = slow_server().await;
    let http2: HttpClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    call_is_aborted_by_its_deadline(http2.clone(), &server, &mut causes).await;

    // Only the call's stream was reset: the same client goes on serving calls.
    let ctx = Context::background().with_timeout(Duration::from_secs(3));
    let mut request = get(&server.url("/quick"), &[]);
    request.set_context(ctx.context().clone());
    let (status, body) = fetch(ClientLayer::new().layer(http2), request).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "quick"));
}

/// A response body that sends one chunk, then nothing, ever.
struct StalledBody(Option<Bytes>);

impl http_body::Body for StalledBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        match self.get_mut().0.take() {
            Some(chunk) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(chunk)))),
            None => std::task::Poll::Pending,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_aborts_reading_the_body_and_the_server_sees_its_client_go() {
    let (ctx_tx, mut server_ctx) = mpsc::unbounded_channel::<Context>();
    let server = serve(
        ServerLayer::new(&Context::background())
            .timeout_header(None)
            .layer(service_fn(move |request: Request<Incoming>| {
                let ctx = request.context().cloned().expect("the layer's context");
                ctx_tx.send(ctx).expect("the test listens");
                async {
                    Ok::<_, Infallible>(Response::new(StalledBody(Some(Bytes::from("first")))))
                }
            })),
    )
    .await;

    let ctx = Context::background().with_timeout(Duration::from_millis(300));
    let mut request = get(&server.url("/stalls"), &[]);
    request.set_context(ctx.context().clone());
    let response = within(
        "the head",
        ClientLayer::new().layer(client()).oneshot(request),
    )
    .await
    .expect("the head comes at once");
    let mut body = response.into_body();
    let first = within("the first chunk", body.frame())
        .await
        .expect("a frame")
        .expect("a good frame");
    assert_eq!(first.into_data().expect("data"), "first");
    let error = within("the body to fail with the deadline", body.frame())
        .await
        .expect("an error, not the end")
        .expect_err("the body stalls past the deadline");
    assert!(
        error.to_string().starts_with("context deadline exceeded"),
        "{error}"
    );
    drop(body);

    let server_ctx = server_ctx.recv().await.expect("the server's context");
    within("the server to see its client go", server_ctx.done()).await;
    let cause = server_ctx.cause().expect("done");
    assert_eq!(
        cause.downcast_ref::<ClientGone>(),
        Some(&ClientGone::DuringResponse),
        "{cause:?}"
    );
}

#[tokio::test]
async fn absolute_deadline_header_crosses_a_hop() {
    const DEADLINE: &str = "x-request-deadline-unix-ms";
    let header = || Some(http::HeaderName::from_static(DEADLINE));
    let server = serve(
        ServerLayer::new(&Context::background())
            .timeout_header(None)
            .deadline_header(header())
            .layer(service_fn(|request: Request<Incoming>| async move {
                let sent_relative = request.headers().contains_key(TIMEOUT);
                let left = millis_left(request.context().unwrap());
                Ok::<_, Infallible>(text(format!("{sent_relative} {left:?}")))
            })),
    )
    .await;
    let http = ClientLayer::new()
        .timeout_header(None)
        .deadline_header(header())
        .layer(client());
    let ctx = Context::background().with_timeout(Duration::from_secs(2));
    let mut request = get(&server.url("/"), &[]);
    request.set_context(ctx.context().clone());
    let (status, body) = fetch(http, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let left: u64 = body
        .strip_prefix("false Some(")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no relative header and a deadline, got {body:?}"));
    assert!(left > 1_000 && left <= 2_000, "{left} ms left of 2000");
}

/// A request id that crosses the wire in `x-request-id`.
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

#[tokio::test]
async fn propagated_value_arrives_typed_and_an_undecodable_one_is_dropped() {
    let propagator = Propagator::new().value::<RequestId>();
    let server = serve(
        ServerLayer::new(&Context::background())
            .propagator(propagator.clone())
            .layer(service_fn(|request: Request<Incoming>| async move {
                let ctx = request.context().expect("the layer's context");
                let seen = format!("{:?}", ctx.value::<RequestId>());
                Ok::<Response<Full<Bytes>>, Infallible>(text(seen))
            })),
    )
    .await;

    let http = ClientLayer::new().propagator(propagator).layer(client());
    let ctx = Context::background().with_value(RequestId(4711));
    let mut request = get(&server.url("/"), &[]);
    request.set_context(ctx);
    let (status, body) = fetch(http.clone(), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "Some(RequestId(4711))");

    // A context without the value sends none.
    let mut request = get(&server.url("/"), &[]);
    request.set_context(Context::background());
    let (status, body) = fetch(http, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "None");

    // A header that does not decode is left out, not an error.
    let (status, body) = fetch(
        client(),
        get(&server.url("/"), &[("x-request-id", b"not-a-number")]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "None");
}
