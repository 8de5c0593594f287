//! The harness of the `grpc_*` tests: real tonic servers on 127.0.0.1 (the hand-written
//! `Notes` service of the examples behind a [`ServerLayer`]), tonic channels to them, a raw
//! HTTP/2 client for requests tonic's own client will not send, and bounded waits.
//!
//! Include it with `#[path = "common/grpc.rs"] mod grpc;`; it brings the `notes` module with it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use ctxkit::{CancelContext, Cause, Context};
use ctxkit_tower::{CallError, ClientLayer, ClientService, ServerLayer};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::mpsc;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tower::Layer;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the examples' support module, shared as it is"
)]
#[path = "../../examples/support/notes.rs"]
pub(crate) mod notes;

pub(crate) use notes::{Note, NotesServer};

/// The longest any test waits for something to happen before it fails, saying what it
/// waited for. Generous: a loaded two-core machine must never hit it.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// Awaits `future` for at most [`WAIT`]; panics naming `what` if it takes longer.
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("gave up after {WAIT:?} waiting for {what}"),
    }
}

/// A note with some text.
pub(crate) fn note(text: &str) -> Note {
    Note {
        text: text.to_owned(),
        millis: 0,
    }
}

/// Events a handler (or work it started) reports to the test.
#[derive(Debug)]
pub(crate) struct Events<T> {
    receiver: mpsc::UnboundedReceiver<T>,
}

/// A channel for a handler to report events on, and its receiving end for the test.
pub(crate) fn events<T>() -> (mpsc::UnboundedSender<T>, Events<T>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    (sender, Events { receiver })
}

impl<T> Events<T> {
    /// The next event, waited for at most [`WAIT`]; panics naming `what` otherwise.
    pub(crate) async fn next(&mut self, what: &str) -> T {
        within(what, self.receiver.recv())
            .await
            .unwrap_or_else(|| panic!("every sender was dropped before {what}"))
    }

    /// An event already reported, if any (no waiting).
    pub(crate) fn try_next(&mut self) -> Option<T> {
        self.receiver.try_recv().ok()
    }
}

/// What a handler saw of one request.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// The method called.
    pub(crate) method: String,
    /// The request's context, as the server layer made it.
    pub(crate) ctx: Context,
    /// The `grpc-timeout` header as it arrived.
    pub(crate) grpc_timeout_header: Option<HeaderValue>,
}

impl Seen {
    /// What a handler sees of `request`; panics if the request has no context.
    pub(crate) fn of(method: &str, request: &tonic::Request<Note>) -> Seen {
        let ctx = request
            .extensions()
            .get::<Context>()
            .cloned()
            .expect("the server layer put a Context in the request's extensions");
        let grpc_timeout_header = request.metadata().get("grpc-timeout").map(|value| {
            HeaderValue::from_bytes(value.as_encoded_bytes())
                .expect("a metadata value is a header value")
        });
        Seen {
            method: method.to_owned(),
            ctx,
            grpc_timeout_header,
        }
    }

    /// The `grpc-timeout` the request arrived with, read; panics if there was none or it
    /// does not parse.
    pub(crate) fn grpc_timeout(&self) -> Duration {
        let value = self
            .grpc_timeout_header
            .as_ref()
            .unwrap_or_else(|| panic!("{} arrived without a grpc-timeout", self.method));
        ctxkit_tower::wire::parse_grpc_timeout(value)
            .unwrap_or_else(|problem| panic!("grpc-timeout {value:?}: {problem}"))
    }
}

/// How a request's context ended, as work started by its handler saw it.
#[derive(Clone, Debug)]
pub(crate) struct Ended {
    /// The method called.
    pub(crate) method: String,
    /// Why the request's context is done.
    pub(crate) cause: Cause,
}

/// What the handlers below return.
pub(crate) type Handled = notes::BoxFuture<Result<tonic::Response<Note>, tonic::Status>>;

/// A handler that reports what it saw and answers with the request's own note.
pub(crate) fn echo(
    seen: mpsc::UnboundedSender<Seen>,
) -> impl Fn(String, tonic::Request<Note>) -> Handled + Clone + Send + Sync + 'static {
    move |method, request| {
        let _ = seen.send(Seen::of(&method, &request));
        let answer = request.into_inner();
        Box::pin(async move { Ok(tonic::Response::new(answer)) })
    }
}

/// A handler that reports what it saw, starts work (a task of its own, which outlives the
/// handler) that waits for the request's context to end and reports how, and waits for the
/// context itself: its answer is the context's error as a status (`CallError::to_status`).
pub(crate) fn hang(
    started: mpsc::UnboundedSender<Seen>,
    ended: mpsc::UnboundedSender<Ended>,
) -> impl Fn(String, tonic::Request<Note>) -> Handled + Clone + Send + Sync + 'static {
    move |method, request| {
        let here = Seen::of(&method, &request);
        let ctx = here.ctx.clone();
        let _ = started.send(here);
        tokio::spawn(watch(ctx.clone(), method, ended.clone()));
        Box::pin(async move {
            ctx.done().await;
            let error = CallError::from_context(&ctx).expect("a done context has an error");
            Err(error.to_status())
        })
    }
}

/// Work that waits for `ctx` to end and reports how.
pub(crate) async fn watch(ctx: Context, method: String, ended: mpsc::UnboundedSender<Ended>) {
    ctx.done().await;
    let cause = ctx.cause().expect("a done context has a cause");
    let _ = ended.send(Ended { method, cause });
}

/// A tonic server on 127.0.0.1 with the `Notes` service behind a [`ServerLayer`], and a
/// counter of the requests that reached it (counted outside the layer, so a request the layer
/// answered itself counts too). Dropping it starts a graceful shutdown.
#[derive(Debug)]
pub(crate) struct TestServer {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    arrivals: Arc<AtomicUsize>,
    _stop: Option<CancelContext>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl TestServer {
    /// Serves `handler` behind `layer` until the server is dropped.
    pub(crate) async fn start<H, F>(layer: ServerLayer, handler: H) -> TestServer
    where
        H: Fn(String, tonic::Request<Note>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Result<tonic::Response<Note>, tonic::Status>> + Send + 'static,
    {
        let stop = Context::background().with_cancel();
        let shutdown = stop.done();
        let mut server = TestServer::start_until(layer, handler, async move {
            shutdown.await;
        })
        .await;
        server._stop = Some(stop);
        server
    }

    /// Serves `handler` behind `layer` until `shutdown` completes (then shuts down
    /// gracefully: no new connections, in-flight calls finish).
    pub(crate) async fn start_until<H, F, S>(
        layer: ServerLayer,
        handler: H,
        shutdown: S,
    ) -> TestServer
    where
        H: Fn(String, tonic::Request<Note>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Result<tonic::Response<Note>, tonic::Status>> + Send + 'static,
        S: Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().expect("the listener's address");
        let arrivals = Arc::new(AtomicUsize::new(0));
        let count = {
            let arrivals = Arc::clone(&arrivals);
            tower::layer::layer_fn(move |inner| {
                let arrivals = Arc::clone(&arrivals);
                tower::util::MapRequest::new(inner, move |request: http::Request<_>| {
                    arrivals.fetch_add(1, Ordering::SeqCst);
                    request
                })
            })
        };
        let server = tonic::transport::Server::builder()
            .layer(count)
            .layer(layer)
            .add_service(NotesServer::new(handler))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown);
        TestServer {
            addr,
            arrivals,
            _stop: None,
            task: tokio::spawn(server),
        }
    }

    /// How many requests reached the server so far.
    pub(crate) fn arrivals(&self) -> usize {
        self.arrivals.load(Ordering::SeqCst)
    }

    /// A tonic channel to the server, connected.
    pub(crate) async fn channel(&self) -> Channel {
        connect(self.addr).await
    }

    /// A tonic channel to the server behind a default [`ClientLayer`].
    pub(crate) async fn client(&self) -> ClientService<Channel> {
        ClientLayer::new().layer(self.channel().await)
    }

    /// Waits (at most [`WAIT`]) for the server to stop on its own, and returns how it ended.
    pub(crate) async fn stopped(self) -> Result<(), tonic::transport::Error> {
        within("the server to stop", self.task)
            .await
            .expect("the server's task did not panic")
    }
}

/// A tonic channel to `addr`, connected.
pub(crate) async fn connect(addr: SocketAddr) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("a valid URI");
    within("a connection to the server", endpoint.connect())
        .await
        .expect("connecting to the test server")
}

/// A tonic request carrying `ctx`, for a [`ClientLayer`] to send.
pub(crate) fn request_with(ctx: &Context, note: Note) -> tonic::Request<Note> {
    let mut request = tonic::Request::new(note);
    ctxkit_tower::ContextExt::set_context(&mut request, ctx.clone());
    request
}

/// The answer to a raw gRPC request.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    /// The HTTP status (200 for any gRPC answer).
    pub(crate) http_status: StatusCode,
    /// `grpc-status`, from the headers (a trailers-only answer) or the trailers.
    pub(crate) grpc_status: Option<i32>,
    /// `grpc-message`, percent-decoded.
    pub(crate) grpc_message: Option<String>,
    /// Whether `grpc-status` came in the response's headers: the server answered without a
    /// body (as the layer does when it answers itself).
    pub(crate) trailers_only: bool,
    /// The message in the answer's body, if there is one.
    pub(crate) note: Option<Note>,
}

/// Sends one unary gRPC request for `method` of the `Notes` service to `addr` over a fresh
/// HTTP/2 connection made with hyper, not tonic (whose client would act on `grpc-timeout`
/// itself, or refuse what it does not like), with `grpc_timeout` as that header's value if
/// given.
pub(crate) async fn raw_call(
    addr: SocketAddr,
    method: &str,
    grpc_timeout: Option<&str>,
    message: &Note,
) -> RawAnswer {
    within(
        &format!("a raw answer to {method} with grpc-timeout {grpc_timeout:?}"),
        async {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .expect("connecting to the test server");
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .expect("an HTTP/2 handshake");
            tokio::spawn(connection);

            let mut request = Request::builder()
                .method("POST")
                .uri(format!("http://{addr}/{}/{method}", notes::SERVICE))
                .header("content-type", "application/grpc")
                .header("te", "trailers");
            if let Some(value) = grpc_timeout {
                request = request.header("grpc-timeout", value);
            }
            let request = request
                .body(Full::new(grpc_frame(message)))
                .expect("a valid request");
            let response = sender
                .send_request(request)
                .await
                .expect("an HTTP/2 response");

            let http_status = response.status();
            let headers = response.headers().clone();
            let collected = response
                .into_body()
                .collect()
                .await
                .expect("the response's body");
            let trailers = collected.trailers().cloned().unwrap_or_default();
            let body = collected.to_bytes();

            let trailers_only = headers.contains_key("grpc-status");
            let status_from = if trailers_only { &headers } else { &trailers };
            RawAnswer {
                http_status,
                grpc_status: grpc_status(status_from),
                grpc_message: status_from
                    .get("grpc-message")
                    .map(|value| percent_decode(value.as_bytes())),
                trailers_only,
                note: decode_frame(body),
            }
        },
    )
    .await
}

/// `message` as one gRPC frame: a zero byte (not compressed), its length (4 bytes, big
/// endian), its protobuf encoding.
fn grpc_frame(message: &Note) -> Bytes {
    let encoded = prost::Message::encode_to_vec(message);
    let mut frame = BytesMut::with_capacity(5 + encoded.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(encoded.len()).expect("a small message"));
    frame.put_slice(&encoded);
    frame.freeze()
}

/// The message of the first gRPC frame in `body`, if there is one.
fn decode_frame(mut body: Bytes) -> Option<Note> {
    if body.len() < 5 {
        return None;
    }
    let _compressed = body.get_u8();
    let length = body.get_u32() as usize;
    let message = body.get(..length)?;
    Some(prost::Message::decode(message).expect("a Note in the answer's frame"))
}

fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    let value = headers.get("grpc-status")?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| panic!("grpc-status is not a number: {value:?}")),
    )
}

/// Undoes the percent-encoding of a `grpc-message`.
fn percent_decode(bytes: &[u8]) -> String {
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&byte, tail)) = rest.split_first() {
        let escaped = (byte == b'%')
            .then(|| tail.get(..2))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(value) => {
                decoded.push(value);
                rest = &tail[2..];
            }
            None => {
                decoded.push(byte);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}
