//! Support for the `http_*` tests: real hyper and axum servers on 127.0.0.1, hyper-util's
//! legacy client, raw TCP connections for clients that hang up, and bounded waits.
//!
//! Every wait is bounded by [`WAIT`] and panics with what it was waiting for: a broken
//! behaviour fails the test in seconds instead of hanging it.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use ctxkit::Context;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower::{BoxError, Service, ServiceExt};

/// The bound on every wait for something that must happen: generous for a loaded machine, and
/// only ever reached when the behaviour under test is broken.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// The timeout header [`ctxkit_tower::ServerLayer`] reads and [`ctxkit_tower::ClientLayer`]
/// writes by default.
pub(crate) const TIMEOUT: &str = "x-request-timeout-ms";

/// Awaits `future`, failing the test if it takes longer than [`WAIT`].
pub(crate) async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(WAIT, future).await {
        Ok(output) => output,
        Err(_) => panic!("waited {WAIT:?} for {what}, in vain"),
    }
}

/// A server on 127.0.0.1 that stops (its accept loop and connections are aborted) when
/// dropped.
#[derive(Debug)]
pub(crate) struct Server {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// The URL of `path` on this server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves a tower service with hyper (hyper-util's auto connection builder: HTTP/1.1 here, as
/// the client speaks it), one task per connection.
pub(crate) async fn serve<S, B>(service: S) -> Server
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the listener's address");
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = service.clone();
            let hyper_service = hyper::service::service_fn(move |request: Request<Incoming>| {
                service.clone().oneshot(request)
            });
            connections.spawn(async move {
                // A client that hangs up ends its connection with an error: expected here.
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), hyper_service)
                    .await;
            });
        }
    });
    Server { addr, task }
}

/// Serves an axum router with `axum::serve`.
pub(crate) async fn serve_axum(router: axum::Router) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the listener's address");
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.expect("axum::serve");
    });
    Server { addr, task }
}

/// The HTTP client of the tests: hyper-util's legacy client over plain TCP.
pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A new client (a pool of its own).
pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A GET request for `url` with `headers` (names and raw values).
pub(crate) fn get(url: &str, headers: &[(&str, &[u8])]) -> Request<Full<Bytes>> {
    let mut builder = Request::get(url);
    for &(name, value) in headers {
        let value = http::HeaderValue::from_bytes(value).expect("a header value hyper can send");
        builder = builder.header(name, value);
    }
    builder.body(Full::default()).expect("a valid request")
}

/// Sends `request` through `client` (any tower client: hyper's, or one wrapped in layers) and
/// reads the whole answer.
pub(crate) async fn fetch<C, B>(client: C, request: Request<Full<Bytes>>) -> (StatusCode, String)
where
    C: Service<Request<Full<Bytes>>, Response = Response<B>>,
    C::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let uri = request.uri().clone();
    let response = within(&format!("the answer to {uri}"), client.oneshot(request))
        .await
        .unwrap_or_else(|error| panic!("calling {uri}: {error:?}"));
    let status = response.status();
    let body = within(
        &format!("the body from {uri}"),
        response.into_body().collect(),
    )
    .await
    .unwrap_or_else(|error| panic!("reading the body from {uri}: {error:?}"))
    .to_bytes();
    let text = String::from_utf8(body.to_vec()).expect("a UTF-8 body");
    (status, text)
}

/// A `text/plain` 200 response.
pub(crate) fn text(body: impl Into<String>) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from(body.into())))
}

/// The whole milliseconds left before `ctx`'s deadline, `None` without one.
pub(crate) fn millis_left(ctx: &Context) -> Option<u64> {
    ctx.deadline().map(|deadline| {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_millis();
        u64::try_from(left).expect("a test deadline fits in u64 milliseconds")
    })
}

/// Now plus `offset_ms` (negative: in the past) as milliseconds since the Unix epoch.
pub(crate) fn unix_millis_from_now(offset_ms: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis();
    let now = i64::try_from(now).expect("milliseconds since 1970 fit in i64");
    (now + offset_ms).to_string()
}

/// Opens a raw connection to `addr` and writes a GET of `path` with `headers` (whole
/// `name: value` lines), then returns the connection: drop it to hang up.
pub(crate) async fn raw_get(addr: SocketAddr, path: &str, headers: &[&str]) -> TcpStream {
    let mut stream = within("a connection", TcpStream::connect(addr))
        .await
        .expect("connect to the server");
    let mut head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .expect("write the request");
    stream
}

/// Reads from `stream` until what was read contains `needle`; returns all of it.
pub(crate) async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    within(&format!("{needle:?} from the server"), async {
        loop {
            let n = stream.read(&mut buf).await.expect("read from the server");
            assert!(
                n > 0,
                "the server closed the connection before sending {needle:?}; got {:?}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&seen).contains(needle) {
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&seen).into_owned()
}
