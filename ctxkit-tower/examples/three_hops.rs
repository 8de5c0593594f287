//! One request across three real servers on loopback, its deadline and its cancellation
//! carried over every hop by ctxkit-tower's layers.
//!
//! ```text
//! client --HTTP--> gateway (axum) --gRPC--> service (tonic) --HTTP--> store (hyper)
//! ```
//!
//! Each server listens on `127.0.0.1:0` with a [`ServerLayer`] around it; each call out goes
//! through a [`ClientLayer`]: a hyper client to the gateway, a tonic `Channel` from the gateway
//! to the service, a hyper client from the service to the store. A [`Propagator`] with one
//! [`WireValue`], the request id, sends `req-2026` along, so every hop prints the same id.
//!
//! The client calls the gateway under `with_timeout(400 ms)`: its [`ClientLayer`] writes
//! `x-request-timeout-ms: 399` (what is left, rounded down). The gateway and the service each
//! keep a 100 ms margin when they call on (`ClientLayer::margin`), so each hop gets about
//! 100 ms less than the one before and gives up first, with time left for its answer to travel
//! back. The store's work takes 1 s (`ctx.sleep`), far more than anybody has.
//!
//! Each hop prints the budget it got: its context's deadline minus the time it starts,
//! rounded *up* to a multiple of 50 ms (it is always a hair under what the caller sent, so on
//! a machine that is not stalled for 50 ms it prints exactly that). Each hop's lines are kept
//! apart and printed hop by hop once the run is over, so the output does not depend on how
//! the threads interleave.
//!
//! Run it with `cargo run -p ctxkit-tower --example three_hops --all-features`
//! (`--features axum` is enough). It prints
//!
//! ```text
//! client: [req-2026] GET /lyrics/Gouryella with a 400 ms budget
//! gateway: [req-2026] budget 400 ms
//! gateway: [req-2026] "store" aborted: context deadline exceeded
//! service: [req-2026] budget 300 ms
//! service: [req-2026] the store answered 504 Gateway Timeout: context deadline exceeded
//! store: [req-2026] budget 200 ms
//! store: [req-2026] stopped: context deadline exceeded
//! client: [req-2026] 504 Gateway Timeout: "store" aborted: context deadline exceeded
//! ```
//!
//! The store's deadline passes first, at about 200 ms; its 504 travels back up as a gRPC
//! `DEADLINE_EXCEEDED` and then a 504 again, and the client has its answer with some 200 ms of
//! its own budget to spare.
//!
//! With `-- hangup` (`cargo run -p ctxkit-tower --example three_hops --all-features -- hangup`)
//! the client hangs up at 150 ms instead (and not before the store has started, should the
//! machine be that slow): it cancels its call's context, so its [`ClientLayer`] drops the call
//! and hyper closes the connection. It prints
//!
//! ```text
//! client: [req-2026] GET /lyrics/Gouryella with a 400 ms budget
//! gateway: [req-2026] budget 400 ms
//! gateway: [req-2026] stopped: context canceled: the client went away before the response was sent
//! service: [req-2026] budget 300 ms
//! service: [req-2026] stopped: context canceled: the client went away before the response was sent
//! store: [req-2026] budget 200 ms
//! store: [req-2026] stopped: context canceled: the client went away before the response was sent
//! client: [req-2026] gave up: context canceled: the user hung up at 150 ms
//! ```
//!
//! The cancel cascades down, one hop at a time: the gateway's server drops the request, so
//! its [`ServerLayer`] cancels the request's context with [`ClientGone`] as the reason; the
//! gateway's call to the service, made under that context, is dropped (its HTTP/2 stream
//! reset); the service's server drops that request, and so on to the store. The reason the
//! client gave ("the user hung up") stays in the client: what crosses a hop is the deadline
//! and the values a [`Propagator`] lists, and what the next hop learns is only that its
//! client went away.
//!
//! What else it shows:
//!
//! * Each handler runs its work in a task of its own and awaits it. When a server drops a
//!   request, the handler's future is dropped at its `.await` and can print nothing more; the
//!   work in the task goes on until it sees its context canceled, then says why it stopped
//!   ([`Context::cause`], [`Cause::downcast_ref`] for [`ClientGone`]). The same holds for work
//!   handed to a group, a pool or a thread.
//! * Each server has a root context (`with_cancel`); once the client is done and every hop's
//!   work has ended, the roots are canceled and the servers awaited: axum's and tonic's
//!   graceful shutdowns, and a hand-written accept loop for the store.
//! * A deadline's cause is a [`RequestDeadline`](ctxkit_tower::RequestDeadline) saying where
//!   the deadline came from (the caller's header, with its milliseconds); the lines print only
//!   the error, to stay the same from run to run.
//!
//! `tests/examples_three_hops.rs` runs both, and a store quick enough to answer, with every
//! time five times the example's.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::{Future, IntoFuture};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use ctxkit::{Cause, Context};
use ctxkit_tower::{
    BoxError, CallError, ClientGone, ClientLayer, ClientService, ContextExt, Propagator,
    RequestContext, ServerLayer, WireValue,
};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower::{Layer, ServiceExt};

#[allow(dead_code, unreachable_pub, reason = "shared support module")]
#[path = "support/notes.rs"]
mod notes;

use notes::{Note, NotesServer};

/// The request id: the one value that crosses the hops.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RequestId(String);

impl WireValue for RequestId {
    const HEADER: &'static str = "x-request-id";

    fn encode(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.0).ok()
    }

    fn decode(value: &HeaderValue) -> Option<Self> {
        value.to_str().ok().map(|id| RequestId(id.to_owned()))
    }
}

/// What each layer, client and server, carries besides the deadline.
fn propagator() -> Propagator {
    Propagator::new().value::<RequestId>()
}

const REQUEST_ID: &str = "req-2026";
const SONG: &str = "Gouryella";
const LYRICS: &str = "I can't keep loving you the way I do";

/// How the client's call ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The client waits for the answer, within its budget (the default).
    Wait,
    /// The client hangs up part of the way (`hangup`).
    HangUp,
}

/// Reads the arguments after the program's name: none, or `hangup`.
///
/// # Errors
///
/// A message for the user: any other argument.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Mode, String> {
    let mut mode = Mode::Wait;
    for arg in args {
        match arg.as_str() {
            "hangup" if mode == Mode::Wait => mode = Mode::HangUp,
            _ => {
                return Err(format!(
                    "unknown argument {arg:?} (expected nothing or hangup)"
                ))
            }
        }
    }
    Ok(mode)
}

/// The run's times.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    /// The client's budget: the timeout of its call's context.
    pub budget: Duration,
    /// What the gateway and the service each keep for themselves when they call the next hop.
    pub margin: Duration,
    /// How long the store's work takes.
    pub work: Duration,
    /// When the client hangs up, in [`Mode::HangUp`] (and not before the store has started).
    pub hang_up_at: Duration,
}

/// The example's times: 400 ms, 100 ms margins, a 1 s store, a hang-up at 150 ms.
pub const TIMINGS: Timings = Timings {
    budget: Duration::from_millis(400),
    margin: Duration::from_millis(100),
    work: Duration::from_secs(1),
    hang_up_at: Duration::from_millis(150),
};

/// One hop's lines, kept apart from the others': the lines of one hop come in order, but
/// two hops' lines may come in either order.
#[derive(Debug)]
struct Hop {
    name: &'static str,
    lines: Mutex<Vec<String>>,
}

impl Hop {
    fn new(name: &'static str) -> Hop {
        Hop {
            name,
            lines: Mutex::new(Vec::new()),
        }
    }

    /// Adds a line, tagged with the hop's name and the request id in `ctx`.
    fn say(&self, ctx: &Context, line: impl Display) {
        let id = ctx.value::<RequestId>().map_or("no id", |id| id.0.as_str());
        let line = format!("{}: [{id}] {line}", self.name);
        self.lines.lock().expect("no panic while saying").push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("no panic while saying").clone()
    }

    /// Says the budget `ctx` has from now: its deadline, rounded up to a multiple of 50 ms.
    fn say_budget(&self, ctx: &Context) {
        match ctx.deadline() {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let rounded = left.as_micros().div_ceil(50_000) * 50;
                self.say(ctx, format_args!("budget {rounded} ms"));
            }
            None => self.say(ctx, "no deadline"),
        }
    }

    /// Says why `ctx` is done, and returns its error's text.
    fn say_stopped(&self, ctx: &Context) -> String {
        let cause = ctx.cause().expect("called once the context is done");
        self.say(ctx, format_args!("stopped: {}", describe(&cause)));
        cause.error().to_string()
    }
}

/// A cause's text: the error, and the reason when the client went away. (A deadline's reason,
/// a [`RequestDeadline`](ctxkit_tower::RequestDeadline), carries the exact milliseconds the
/// caller sent: left out.)
fn describe(cause: &Cause) -> String {
    match cause.downcast_ref::<ClientGone>() {
        Some(gone) => format!("{}: {gone}", cause.error()),
        None => cause.error().to_string(),
    }
}

/// The work running in tasks of its own, counted, so the run can wait for all of it to end.
#[derive(Clone, Debug)]
struct Work {
    running: watch::Sender<usize>,
}

/// Counts one task's work as over when dropped (also if it panics).
struct Running(watch::Sender<usize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_modify(|running| *running -= 1);
    }
}

impl Work {
    fn new() -> Work {
        Work {
            running: watch::Sender::new(0),
        }
    }

    /// Runs `work` in a task of its own and waits for it. Dropped at its `.await`, the caller
    /// stops waiting; the task runs on.
    async fn run<F>(&self, work: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.running.send_modify(|running| *running += 1);
        let running = Running(self.running.clone());
        let task = tokio::spawn(async move {
            let _running = running;
            work.await
        });
        match task.await {
            Ok(output) => output,
            // Tasks are not aborted, and the runtime outlives the servers: only a panic.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    /// Waits until no work is running.
    async fn all_ended(&self) {
        let mut running = self.running.subscribe();
        let _ = running.wait_for(|running| *running == 0).await;
    }
}

/// What the servers' handlers share: each hop's lines, the work in flight, and a signal that
/// the store has started (the client does not hang up before).
#[derive(Debug)]
struct Shared {
    gateway: Hop,
    service: Hop,
    store: Hop,
    work: Work,
    store_started: Notify,
    timings: Timings,
}

// ===== the store: a hyper server =====

/// The store's handler: the work, in a task of its own.
async fn store_handler(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let Some(ctx) = request.context().cloned() else {
        let mut response = Response::new(Full::from("no request context"));
        *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return Ok(response);
    };
    let work = shared.work.clone();
    Ok(work.run(store_work(ctx, shared)).await)
}

/// Looks the lyrics up: `timings.work` of it, unless the context ends first.
async fn store_work(ctx: Context, shared: Arc<Shared>) -> Response<Full<Bytes>> {
    let hop = &shared.store;
    hop.say_budget(&ctx);
    shared.store_started.notify_one();
    match ctx.sleep(shared.timings.work).await {
        Ok(()) => {
            hop.say(&ctx, "found the lyrics");
            Response::new(Full::from(LYRICS))
        }
        Err(error) => {
            let text = hop.say_stopped(&ctx);
            let mut response = Response::new(Full::from(text));
            *response.status_mut() = if error.is_deadline_exceeded() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            response
        }
    }
}

/// Serves HTTP/1 on `listener` with `service` until `shutdown` is done, then shuts each
/// connection down gracefully and waits for all of them.
async fn serve_hyper<S, B>(listener: TcpListener, service: S, shutdown: Context)
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.done() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let service = service.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let service =
                hyper::service::service_fn(move |request| service.clone().oneshot(request));
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = shutdown.done() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

// ===== the service: a tonic server =====

/// An HTTP client under a [`ClientLayer`].
type HttpClient = ClientService<Client<HttpConnector, Empty<Bytes>>>;

fn http_client(margin: Duration) -> HttpClient {
    let client = Client::builder(TokioExecutor::new()).build_http();
    ClientLayer::new()
        .margin(margin)
        .propagator(propagator())
        .layer(client)
}

/// The service's state: what its handler needs.
#[derive(Debug)]
struct Service {
    shared: Arc<Shared>,
    store: HttpClient,
    store_addr: SocketAddr,
}

/// The service's handler, for every method: the work, in a task of its own.
async fn service_handler(
    service: Arc<Service>,
    request: tonic::Request<Note>,
) -> Result<tonic::Response<Note>, tonic::Status> {
    let ctx = request
        .context()
        .cloned()
        .ok_or_else(|| tonic::Status::internal("no request context"))?;
    let song = request.into_inner().text;
    let work = service.shared.work.clone();
    work.run(service_work(ctx, service, song)).await
}

/// Asks the store for the song's lyrics.
async fn service_work(
    ctx: Context,
    service: Arc<Service>,
    song: String,
) -> Result<tonic::Response<Note>, tonic::Status> {
    let hop = &service.shared.service;
    hop.say_budget(&ctx);
    let mut request = Request::get(format!("http://{}/lyrics/{song}", service.store_addr))
        .body(Empty::new())
        .expect("a valid request");
    request.set_context(ctx.clone());
    let answer = async {
        let response = service.store.clone().oneshot(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, String::from_utf8_lossy(&body).into_owned()))
    };
    match answer.await {
        Ok((status, text)) if status.is_success() => {
            hop.say(&ctx, "got the lyrics");
            Ok(tonic::Response::new(Note { text, millis: 0 }))
        }
        Ok((status, text)) => {
            // The store's own answer, or the one its ServerLayer gave for it when its deadline
            // passed first; the layer's adds the deadline's source and budget after a colon,
            // kept out of the printed line so it reads the same every run.
            let text = text.split(": ").next().unwrap_or_default().to_owned();
            hop.say(&ctx, format_args!("the store answered {status}: {text}"));
            let message = format!("\"store\" aborted: {text}");
            Err(if status == StatusCode::GATEWAY_TIMEOUT {
                tonic::Status::deadline_exceeded(message)
            } else {
                tonic::Status::unavailable(message)
            })
        }
        Err(_) if ctx.is_done() => {
            hop.say_stopped(&ctx);
            let error = CallError::from_context(&ctx).expect("the context is done");
            Err(error.to_status())
        }
        Err(error) => {
            hop.say(&ctx, format_args!("the store call failed: {error}"));
            Err(tonic::Status::unavailable(format!(
                "the store call failed: {error}"
            )))
        }
    }
}

// ===== the gateway: an axum server =====

/// A tonic channel under a [`ClientLayer`].
type GrpcClient = ClientService<tonic::transport::Channel>;

/// The gateway's state: what its handler needs.
#[derive(Debug)]
struct Gateway {
    shared: Arc<Shared>,
    service: GrpcClient,
}

/// `GET /lyrics/{song}`: the work, in a task of its own.
async fn lyrics(
    State(gateway): State<Arc<Gateway>>,
    axum::extract::Path(song): axum::extract::Path<String>,
    RequestContext(ctx): RequestContext,
) -> (StatusCode, String) {
    let work = gateway.shared.work.clone();
    work.run(gateway_work(ctx, gateway, song)).await
}

/// Asks the service for the song's lyrics.
async fn gateway_work(ctx: Context, gateway: Arc<Gateway>, song: String) -> (StatusCode, String) {
    let hop = &gateway.shared.gateway;
    hop.say_budget(&ctx);
    let mut request = tonic::Request::new(Note {
        text: song,
        millis: 0,
    });
    request.set_context(ctx.clone());
    match notes::call(gateway.service.clone(), "Lyrics", request).await {
        Ok(note) => {
            hop.say(&ctx, "got the lyrics");
            (StatusCode::OK, note.text)
        }
        Err(_) if ctx.is_done() => {
            let text = hop.say_stopped(&ctx);
            (StatusCode::SERVICE_UNAVAILABLE, text)
        }
        Err(status) if status.code() == tonic::Code::DeadlineExceeded => {
            hop.say(&ctx, status.message()); // "store" aborted: context deadline exceeded
            (StatusCode::GATEWAY_TIMEOUT, status.message().to_owned())
        }
        Err(status) => {
            hop.say(&ctx, format_args!("the service failed: {status}"));
            (StatusCode::BAD_GATEWAY, status.message().to_owned())
        }
    }
}

// ===== the client =====

/// Calls the gateway with the request id and `timings.budget`; returns the line saying how the
/// call ended.
async fn call_gateway(shared: &Shared, gateway_addr: SocketAddr, mode: Mode) -> String {
    let timings = shared.timings;
    let client = http_client(Duration::ZERO);
    let ctx = Context::background()
        .with_value(RequestId(REQUEST_ID.to_owned()))
        .with_timeout(timings.budget);
    // The call's own context: canceled by the hang-up, if any.
    let (call_ctx, hang_up) = ctx.with_cancel().into_parts();
    let mut request = Request::get(format!("http://{gateway_addr}/lyrics/{SONG}"))
        .body(Empty::new())
        .expect("a valid request");
    request.set_context(call_ctx.clone());
    let call = async {
        let response = client.oneshot(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, String::from_utf8_lossy(&body).into_owned()))
    };
    let hang_up_later = async {
        if mode == Mode::HangUp {
            // At `hang_up_at`, and not before the store has started: on a slow machine the
            // request may need a while to get there.
            tokio::join!(
                tokio::time::sleep(timings.hang_up_at),
                shared.store_started.notified()
            );
            let at = timings.hang_up_at.as_millis();
            hang_up.cancel_with(format!("the user hung up at {at} ms"));
        }
        std::future::pending::<Infallible>().await
    };
    let answer = tokio::select! {
        answer = call => answer,
        never = hang_up_later => match never {},
    };
    match answer {
        Ok((status, text)) => format!("client: [{REQUEST_ID}] {status}: {text}"),
        Err(error) => format!("client: [{REQUEST_ID}] gave up: {error}"),
    }
}

// ===== the run =====

/// Starts the three servers, makes the client's call, waits for every hop's work to end,
/// shuts the servers down and prints each hop's lines.
async fn three_hops(out: &mut dyn Write, mode: Mode, timings: Timings) -> io::Result<()> {
    let shared = Arc::new(Shared {
        gateway: Hop::new("gateway"),
        service: Hop::new("service"),
        store: Hop::new("store"),
        work: Work::new(),
        store_started: Notify::new(),
        timings,
    });

    // The store.
    let store_root = Context::background().with_cancel();
    let store_listener = TcpListener::bind("127.0.0.1:0").await?;
    let store_addr = store_listener.local_addr()?;
    let store_service = ServerLayer::new(&store_root)
        .propagator(propagator())
        .layer(tower::service_fn({
            let shared = Arc::clone(&shared);
            move |request| store_handler(Arc::clone(&shared), request)
        }));
    let store_server = tokio::spawn(serve_hyper(
        store_listener,
        store_service,
        store_root.context().clone(),
    ));

    // The service.
    let service_root = Context::background().with_cancel();
    let service_listener = TcpListener::bind("127.0.0.1:0").await?;
    let service_addr = service_listener.local_addr()?;
    let service = Arc::new(Service {
        shared: Arc::clone(&shared),
        store: http_client(timings.margin),
        store_addr,
    });
    let service_server = tonic::transport::Server::builder()
        .layer(ServerLayer::new(&service_root).propagator(propagator()))
        .add_service(NotesServer::new(move |_method, request| {
            service_handler(Arc::clone(&service), request)
        }))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(service_listener),
            {
                let shutdown = service_root.done();
                async move {
                    shutdown.await;
                }
            },
        );
    let service_server = tokio::spawn(service_server);

    // The gateway.
    let gateway_root = Context::background().with_cancel();
    let gateway_listener = TcpListener::bind("127.0.0.1:0").await?;
    let gateway_addr = gateway_listener.local_addr()?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{service_addr}"))
        .map_err(io::Error::other)?
        .connect()
        .await
        .map_err(io::Error::other)?;
    let gateway = Arc::new(Gateway {
        shared: Arc::clone(&shared),
        service: ClientLayer::new()
            .margin(timings.margin)
            .propagator(propagator())
            .layer(channel),
    });
    let app = Router::new()
        .route("/lyrics/{song}", get(lyrics))
        .with_state(gateway)
        .layer(ServerLayer::new(&gateway_root).propagator(propagator()));
    let gateway_server = tokio::spawn(
        axum::serve(gateway_listener, app)
            .with_graceful_shutdown({
                let shutdown = gateway_root.done();
                async move {
                    shutdown.await;
                }
            })
            .into_future(),
    );

    // The client's call, then every hop's work to its end.
    let sent = format!(
        "client: [{REQUEST_ID}] GET /lyrics/{SONG} with a {} ms budget",
        timings.budget.as_millis()
    );
    let outcome = call_gateway(&shared, gateway_addr, mode).await;
    let ended = tokio::time::timeout(Duration::from_secs(2), shared.work.all_ended()).await;

    // Shutdown, in the order of the calls: each root canceled, each server awaited.
    gateway_root.cancel();
    gateway_server.await.map_err(io::Error::other)??;
    service_root.cancel();
    service_server
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)?;
    store_root.cancel();
    store_server.await.map_err(io::Error::other)?;

    writeln!(out, "{sent}")?;
    for hop in [&shared.gateway, &shared.service, &shared.store] {
        for line in hop.lines() {
            writeln!(out, "{line}")?;
        }
    }
    writeln!(out, "{outcome}")?;
    if ended.is_err() {
        writeln!(out, "some work was still running 2 s after the call ended")?;
    }
    Ok(())
}

/// The example with its times as parameters.
///
/// # Errors
///
/// Errors writing to `out`, and a server that cannot start.
pub fn run_with(out: &mut dyn Write, mode: Mode, timings: Timings) -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(three_hops(out, mode, timings))
}

/// The example: a 400 ms budget, 100 ms margins, a 1 s store.
///
/// # Errors
///
/// Errors writing to `out`, and a server that cannot start.
pub fn run(out: &mut dyn Write, mode: Mode) -> io::Result<()> {
    run_with(out, mode, TIMINGS)
}

fn main() -> ExitCode {
    let mode = match parse_args(std::env::args().skip(1)) {
        Ok(mode) => mode,
        Err(message) => {
            eprintln!("three_hops: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&mut io::stdout().lock(), mode) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("three_hops: {err}");
            ExitCode::FAILURE
        }
    }
}
