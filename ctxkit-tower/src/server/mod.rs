//! The server side: [`ServerLayer`] gives each request a [`Context`].
//!
//! For each request, [`ServerService::call`]:
//!
//! 1. reads the caller's deadline: `grpc-timeout` on a gRPC request (content type
//!    `application/grpc...`), the milliseconds header otherwise, and the absolute header if one
//!    is configured; a malformed value is answered at once (HTTP 400, gRPC `INVALID_ARGUMENT`)
//!    or ignored, as [`OnMalformed`] says;
//! 2. takes the earliest of that deadline and the server's budget, and derives the request's
//!    context from the root with it ([`Context::with_deadline_cause`], the reason a
//!    [`RequestDeadline`] naming the winner); no deadline at all derives a plain cancelable
//!    child;
//! 3. answers at once, without calling the handler, when the root is done (HTTP 503, gRPC
//!    `UNAVAILABLE`) or the deadline has already passed (HTTP 504 by default, gRPC
//!    `DEADLINE_EXCEEDED`);
//! 4. adds the [`Propagator`]'s values, puts the context in the request's extensions and calls
//!    the inner service;
//! 5. if the deadline passes before the handler answers, answers for it (HTTP 504 by default,
//!    gRPC `DEADLINE_EXCEEDED` with the reason in its message) and drops the handler's future.
//!    A tonic server's own `grpc-timeout` timer races this one and answers `CANCELLED`; this
//!    layer's check runs first in the same poll (it reads the clock rather than waiting for a
//!    timer), so callers see `DEADLINE_EXCEEDED`, as grpc-go sends. A canceled root (shutdown)
//!    does not cut the handler: it sees its context canceled and answers as it sees fit.
//!
//! The request's [`CancelContext`] lives in a guard owned by the response future, then by the
//! response body ([`ServerBody`]): the context ends when the body's last frame is out, and is
//! canceled with [`ClientGone`](crate::ClientGone) as its reason if the server drops either first (hyper drops
//! them when the client goes away). A detached request ([`ServerLayer::detach_when`]) runs its
//! handler in a task of its own, so a dropped response future leaves it running.
//!
//! The layer holds no lock: the configuration is shared read-only (`Arc`), and each request's
//! state is its own.

mod body;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime};

use ctxkit::{CancelContext, Context, Done};
use http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub use body::ServerBody;

use crate::cause::{DeadlineSource, RequestDeadline};
use crate::guard::Guard;
use crate::propagate::Propagator;
use crate::wire::{self, Malformed};
use crate::{is_grpc, TIMEOUT_HEADER};

/// What the server layer does with a deadline header it cannot read.
///
/// # Examples
///
/// ```
/// use ctxkit::Context;
/// use ctxkit_tower::{OnMalformed, ServerLayer};
///
/// let layer = ServerLayer::new(&Context::background()).on_malformed(OnMalformed::Ignore);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnMalformed {
    /// Answer at once without calling the handler: HTTP 400, gRPC `INVALID_ARGUMENT`, with a
    /// message naming the header and the problem. The default: a caller that sends a
    /// deadline means it, and a deadline silently dropped would let its call run unbounded.
    /// (grpc-go answers `INTERNAL` here; tonic ignores the header.)
    #[default]
    Reject,
    /// Act as if the header were absent.
    Ignore,
}

type DetachPredicate = dyn Fn(&http::request::Parts) -> bool + Send + Sync;

/// The layer's settings, shared by every clone of the layer and its services.
struct Settings {
    root: Context,
    timeout_header: Option<HeaderName>,
    deadline_header: Option<HeaderName>,
    budget: Option<Duration>,
    expired_status: StatusCode,
    on_malformed: OnMalformed,
    detach: Option<Box<DetachPredicate>>,
    propagator: Propagator,
}

/// A tower [`Layer`] that gives each request a [`Context`]: derived from a server root (so
/// canceling the root, on graceful shutdown, cancels every request), bounded by the earliest
/// of the caller's deadline and the server's budget, canceled when the client goes away, and
/// put in the request's extensions for the handler.
///
/// Handlers read it with `request.extensions().get::<Context>()`, the
/// [`ContextExt`](crate::ContextExt) helpers, or, in axum, the `RequestContext` extractor
/// (feature `axum`).
///
/// # Examples
///
/// A hyper-style service, called directly (as a server would):
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Layer, ServiceExt};
/// use ctxkit::Context;
/// use ctxkit_tower::ServerLayer;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let server = Context::background().with_cancel(); // canceled on shutdown
/// let layer = ServerLayer::new(&server).budget(Duration::from_secs(10));
/// let service = layer.layer(service_fn(|request: Request<()>| async move {
///     let ctx = request.extensions().get::<Context>().expect("the layer put it there");
///     let left = ctx.deadline().unwrap().saturating_duration_since(std::time::Instant::now());
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("{} ms left", left.as_millis() / 100 * 100)))))
/// }));
///
/// let request = Request::builder().header("x-request-timeout-ms", "400").body(()).unwrap();
/// let response = service.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), 200);
/// # });
/// ```
///
/// # Graceful shutdown
///
/// Cancel the root when shutdown starts: requests in flight see their contexts canceled (with
/// the root's reason), requests arriving after are answered 503 / `UNAVAILABLE`. A server's
/// shutdown signal is a `Future<Output = ()>`; [`Context::done`] resolves to the context's
/// error, so wrap it:
///
/// ```
/// use ctxkit::Context;
/// use ctxkit_tower::ServerLayer;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let root = Context::background().with_cancel_cause();
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let shutdown = root.done();
/// let server = tonic::transport::Server::builder()
///     .layer(ServerLayer::new(&root))
///     .add_routes(tonic::service::Routes::default())
///     .serve_with_incoming_shutdown(
///         tonic::transport::server::TcpIncoming::from(listener),
///         async move {
///             shutdown.await; // the root's error: ignore it
///         },
///     );
/// let server = tokio::spawn(server);
/// root.cancel_with("SIGTERM"); // every request's context is canceled, reason "SIGTERM"
/// server.await.unwrap().unwrap();
/// # });
/// ```
#[derive(Clone)]
pub struct ServerLayer {
    settings: Arc<Settings>,
}

impl ServerLayer {
    /// A layer deriving each request's context from `root`, reading the caller's deadline
    /// from `grpc-timeout` (gRPC) or `x-request-timeout-ms` (HTTP), with no budget of its own,
    /// HTTP 504 for an expired request, and malformed deadlines rejected.
    ///
    /// `root` is borrowed: the layer keeps a plain clone, and the owner (a [`CancelContext`]
    /// you cancel on shutdown) stays yours. Pass `&root`.
    ///
    /// # Examples
    ///
    /// See [`ServerLayer`].
    pub fn new(root: &Context) -> ServerLayer {
        ServerLayer {
            settings: Arc::new(Settings {
                root: root.clone(),
                timeout_header: Some(HeaderName::from_static(TIMEOUT_HEADER)),
                deadline_header: None,
                budget: None,
                expired_status: StatusCode::GATEWAY_TIMEOUT,
                on_malformed: OnMalformed::Reject,
                detach: None,
                propagator: Propagator::new(),
            }),
        }
    }

    fn settings_mut(&mut self) -> &mut Settings {
        Arc::get_mut(&mut self.settings).expect("settings are changed before the layer is cloned")
    }

    /// Reads HTTP requests' remaining milliseconds from `header` instead of
    /// `x-request-timeout-ms`; `None` reads none.
    ///
    /// # Panics
    ///
    /// If called on a clone of a layer (configure first, then clone): a programmer error.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ctxkit::Context;
    /// use http::HeaderName;
    /// use ctxkit_tower::ServerLayer;
    ///
    /// let layer = ServerLayer::new(&Context::background())
    ///     .timeout_header(Some(HeaderName::from_static("x-envoy-expected-rq-timeout-ms")));
    /// ```
    #[must_use]
    pub fn timeout_header(mut self, header: Option<HeaderName>) -> ServerLayer {
        self.settings_mut().timeout_header = header;
        self
    }

    /// Also reads an absolute deadline, milliseconds since the Unix epoch, from `header` on
    /// HTTP requests (off by default). It is only as good as the agreement of the two hosts'
    /// clocks; the earliest of it and the milliseconds header wins.
    ///
    /// # Panics
    ///
    /// If called on a clone of a layer: a programmer error.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ctxkit::Context;
    /// use http::HeaderName;
    /// use ctxkit_tower::ServerLayer;
    ///
    /// let layer = ServerLayer::new(&Context::background())
    ///     .deadline_header(Some(HeaderName::from_static("x-request-deadline-unix-ms")));
    /// ```
    #[must_use]
    pub fn deadline_header(mut self, header: Option<HeaderName>) -> ServerLayer {
        self.settings_mut().deadline_header = header;
        self
    }

    /// Bounds every request by `budget` from the moment it is read, whatever the caller
    /// allows. For one route's own budget, use [`BudgetLayer`](crate::BudgetLayer) on it.
    ///
    /// # Panics
    ///
    /// If called on a clone of a layer: a programmer error.
    ///
    /// # Examples
    ///
    /// See [`ServerLayer`].
    #[must_use]
    pub fn budget(mut self, budget: Duration) -> ServerLayer {
        self.settings_mut().budget = Some(budget);
        self
    }

    /// The HTTP status for a request whose deadline passed before it arrived (504 by
    /// default). gRPC requests get `DEADLINE_EXCEEDED` whatever this says.
    ///
    /// # Panics
    ///
    /// If called on a clone of a layer: a programmer error.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ctxkit::Context;
    /// use http::StatusCode;
    /// use ctxkit_tower::ServerLayer;
    ///
    /// let layer = ServerLayer::new(&Context::background()).expired_status(StatusCode::REQUEST_TIMEOUT);
    /// ```
    #[must_use]
    pub fn expired_status(mut self, status: StatusCode) -> ServerLayer {
        self.settings_mut().expired_status = status;
        self
    }

    /// What to do with a deadline header that cannot be read ([`OnMalformed::Reject`] by
    /// default).
    ///
    /// # Panics
    ///
    /// If called on a clone of a layer: a programmer error.
    ///
    /// # Examples
    ///
    /// See [`OnMalformed`].
    #[must_use]
    pub fn on_malformed(mut self, on_malformed: OnMalformed) -> ServerLayer {
        self.settings_mut().on_malformed = on_malformed;
        self
    }

    /// Runs the requests `predicate` picks *detached*: their handler runs to completion in a
    /// task of its own even if the client goes away (Dropshot's `DetachFromClient`), and their
    /// context is not canceled for it (its deadline and the root still apply).
    ///
    /// Detaching needs a tokio runtime on the calling thread (hyper and tonic servers run on
    /// one); without one, the request runs attached.
    ///
    /// # Panics
    ///
    /// If called on a clone of a layer: a programmer error.
    ///
    /// # Examples
    ///
    /// ```
    /// # use ctxkit::Context;
    /// use ctxkit_tower::ServerLayer;
    ///
    /// let layer = ServerLayer::new(&Context::background())
    ///     .detach_when(|request| request.uri.path().starts_with("/payments/"));
    /// ```
    #[must_use]
    pub fn detach_when<P>(mut self, predicate: P) -> ServerLayer
    where
        P: Fn(&http::request::Parts) -> bool + Send + Sync + 'static,
    {
        self.settings_mut().detach = Some(Box::new(predicate));
        self
    }

    /// Reads the values `propagator` lists from each request's headers into its context.
    ///
    /// # Panics
    ///
    /// If called on a clone of a layer: a programmer error.
    ///
    /// # Examples
    ///
    /// See [`Propagator`].
    #[must_use]
    pub fn propagator(mut self, propagator: Propagator) -> ServerLayer {
        self.settings_mut().propagator = propagator;
        self
    }
}

impl fmt::Debug for ServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &*self.settings;
        f.debug_struct("ServerLayer")
            .field("root", &settings.root)
            .field("timeout_header", &settings.timeout_header)
            .field("deadline_header", &settings.deadline_header)
            .field("budget", &settings.budget)
            .field("expired_status", &settings.expired_status)
            .field("on_malformed", &settings.on_malformed)
            .field("detach", &settings.detach.is_some())
            .field("propagator", &settings.propagator)
            .finish()
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;

    fn layer(&self, inner: S) -> ServerService<S> {
        ServerService {
            inner,
            settings: Arc::clone(&self.settings),
        }
    }
}

/// The service made by [`ServerLayer`]; see there.
#[derive(Clone)]
pub struct ServerService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S: fmt::Debug> fmt::Debug for ServerService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerService")
            .field("inner", &self.inner)
            .field(
                "layer",
                &ServerLayer {
                    settings: Arc::clone(&self.settings),
                },
            )
            .finish()
    }
}

/// The caller's deadline, as read from the headers.
enum Incoming {
    None,
    Deadline(Instant, RequestDeadline),
    Malformed(&'static str, HeaderName, Malformed),
}

/// The earlier of two optional limits.
fn earliest(
    a: Option<(Instant, RequestDeadline)>,
    b: Option<(Instant, RequestDeadline)>,
) -> Option<(Instant, RequestDeadline)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
        (a, b) => a.or(b),
    }
}

impl Settings {
    /// Reads the caller's deadline from `headers`; a value too far to hold is no deadline.
    fn incoming(&self, headers: &HeaderMap, grpc: bool, now: Instant) -> Incoming {
        let relative =
            |header: &HeaderName, source, parse: fn(&_) -> Result<Duration, _>| match headers
                .get(header)
                .map(parse)
            {
                None => Ok(None),
                Some(Ok(budget)) => Ok(wire::deadline_after(now, budget)
                    .map(|at| (at, RequestDeadline { source, budget }))),
                Some(Err(problem)) => Err((header.clone(), problem)),
            };
        let read = if grpc {
            relative(
                &HeaderName::from_static("grpc-timeout"),
                DeadlineSource::GrpcTimeout,
                wire::parse_grpc_timeout,
            )
        } else {
            let from_timeout = match &self.timeout_header {
                Some(header) => relative(header, DeadlineSource::TimeoutHeader, wire::parse_millis),
                None => Ok(None),
            };
            let from_deadline = match &self.deadline_header {
                Some(header) => match headers.get(header).map(wire::parse_unix_millis) {
                    None => Ok(None),
                    Some(Ok(at)) => {
                        let wall_now = SystemTime::now();
                        let budget = at.duration_since(wall_now).unwrap_or(Duration::ZERO);
                        Ok(wire::deadline_at(now, wall_now, at).map(|at| {
                            let source = DeadlineSource::DeadlineHeader;
                            (at, RequestDeadline { source, budget })
                        }))
                    }
                    Some(Err(problem)) => Err((header.clone(), problem)),
                },
                None => Ok(None),
            };
            from_timeout.and_then(|a| from_deadline.map(|b| earliest(a, b)))
        };
        match read {
            Ok(None) => Incoming::None,
            Ok(Some((at, reason))) => Incoming::Deadline(at, reason),
            Err((header, problem)) if self.on_malformed == OnMalformed::Reject => {
                Incoming::Malformed("malformed deadline header", header, problem)
            }
            Err(_) => Incoming::None,
        }
    }
}

/// An answer of the layer's own, in the request's protocol.
fn answer_with<B>(
    grpc: bool,
    status: StatusCode,
    code: tonic::Code,
    message: String,
) -> Response<ServerBody<B>> {
    if grpc {
        tonic::Status::new(code, message).into_http()
    } else {
        let mut response = Response::new(ServerBody::answer(message));
        *response.status_mut() = status;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ServerService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: http_body::Body + Send + 'static,
{
    type Response = Response<ServerBody<ResBody>>;
    type Error = S::Error;
    type Future = ServerFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let settings = &*self.settings;
        let now = Instant::now();
        let grpc = is_grpc(request.headers());
        let incoming = match settings.incoming(request.headers(), grpc, now) {
            Incoming::Malformed(what, header, problem) => {
                let message = format!("{what}: {header}: {problem}");
                let response = answer_with(
                    grpc,
                    StatusCode::BAD_REQUEST,
                    tonic::Code::InvalidArgument,
                    message,
                );
                return ServerFuture::answered(response);
            }
            Incoming::None => None,
            Incoming::Deadline(at, reason) => Some((at, reason)),
        };
        if settings.root.is_done() {
            let message = "the server is shutting down".to_owned();
            let response = answer_with(
                grpc,
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
                message,
            );
            return ServerFuture::answered(response);
        }
        let budget = settings.budget.and_then(|budget| {
            let reason = RequestDeadline {
                source: DeadlineSource::Budget,
                budget,
            };
            wire::deadline_after(now, budget).map(|at| (at, reason))
        });
        let expiry = earliest(incoming, budget);
        let ctx: CancelContext = match expiry {
            Some((deadline, reason)) => {
                if deadline <= now {
                    let message = format!(
                        "context deadline exceeded before the request was served: {reason}"
                    );
                    let response = answer_with(
                        grpc,
                        settings.expired_status,
                        tonic::Code::DeadlineExceeded,
                        message,
                    );
                    return ServerFuture::answered(response);
                }
                settings.root.with_deadline_cause(deadline, reason)
            }
            None => settings.root.with_cancel_cause(),
        };
        let handler_ctx = settings
            .propagator
            .extract(request.headers(), ctx.context().clone());
        request.extensions_mut().insert(handler_ctx);
        let guard = Guard::new(ctx, request.method() == http::Method::HEAD);

        // Taking the request apart (its head moved twice) and asking for the runtime (an `Arc`
        // clone, shared by every worker of a multi-thread runtime) only for a detaching layer.
        let detach = match &settings.detach {
            Some(predicate) => {
                let (parts, body) = request.into_parts();
                let detach = predicate(&parts);
                request = Request::from_parts(parts, body);
                detach
            }
            None => false,
        };
        let future = self.inner.call(request);
        if detach {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                return ServerFuture::detached(&runtime, future, guard, grpc);
            }
        }
        ServerFuture::running(future, guard, expiry, grpc, settings.expired_status)
    }
}

pin_project! {
    /// The response future of a [`ServerService`]. Dropped before it completes, it cancels the
    /// request's context with [`ClientGone::BeforeResponse`](crate::ClientGone::BeforeResponse) (unless the request is detached).
    pub struct ServerFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

type Answer<B, E> = Result<Response<ServerBody<B>>, E>;

pin_project! {
    #[project = StateProjection]
    enum State<F, B, E> {
        // Answered by the layer itself; taken when polled.
        // Boxed: a rare state, kept out of the size of the common one (the future is moved by
        // the server's machinery).
        Answered { response: Option<Box<Response<ServerBody<B>>>> },
        // The handler's future, and the guard of the request's context; `done` (made at the
        // first `Pending` of a handler whose context has a deadline, so a handler that answers
        // at once costs no waiter) wakes this future when the context ends.
        Running {
            // Before the future: fields drop in order, so a dropped handler (and its `Drop`
            // code) finds its context already canceled with `ClientGone`.
            guard: Option<Guard>,
            #[pin]
            future: F,
            done: Option<Done>,
            // Whether `done` is (still) to be watched: the context has a deadline and has not
            // ended yet.
            watching: bool,
            // The deadline and its reason, checked against the clock on every poll: the
            // context's own timer may run a little after the task is woken.
            expiry: Option<(Instant, RequestDeadline)>,
            grpc: bool,
            expired_status: StatusCode,
        },
        // A detached handler's task (which owns the guard).
        // The answer comes through `answer`; the task's handle is kept for its panic.
        Detached {
            #[pin]
            answer: tokio::sync::oneshot::Receiver<Answer<B, E>>,
            #[pin]
            task: tokio::task::JoinHandle<()>,
            grpc: bool,
        },
    }
}

impl<F, B, E> ServerFuture<F, B, E> {
    fn answered(response: Response<ServerBody<B>>) -> Self {
        ServerFuture {
            state: State::Answered {
                response: Some(Box::new(response)),
            },
        }
    }

    fn running(
        future: F,
        guard: Guard,
        expiry: Option<(Instant, RequestDeadline)>,
        grpc: bool,
        expired_status: StatusCode,
    ) -> Self {
        ServerFuture {
            state: State::Running {
                guard: Some(guard),
                future,
                done: None,
                // Only a context with a deadline can end by itself: without one, no waiter.
                watching: expiry.is_some(),
                expiry,
                grpc,
                expired_status,
            },
        }
    }
}

/// Whether a server sends no body with this response: the answer to a `HEAD` request, or a
/// status that has none (1xx, 204, 304). Servers drop such a body unpolled.
fn bodiless(head: bool, status: StatusCode) -> bool {
    head || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// The handler's result with the guard handed to the body (or finished on an error).
pub(crate) fn complete<B: http_body::Body, E>(
    result: Result<Response<B>, E>,
    mut guard: Guard,
) -> Answer<B, E> {
    match result {
        Ok(response) => {
            let bodiless = bodiless(guard.head(), response.status());
            Ok(response.map(|body| ServerBody::handler(body, guard, bodiless)))
        }
        Err(error) => {
            guard.finish();
            Err(error)
        }
    }
}

impl<F, B, E> ServerFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    E: Send + 'static,
{
    fn detached(runtime: &tokio::runtime::Handle, future: F, guard: Guard, grpc: bool) -> Self {
        let (send, answer) = tokio::sync::oneshot::channel();
        let task = runtime.spawn(async move {
            let done = complete(future.await, guard);
            if let Err(Ok(unsent)) = send.send(done) {
                // Nobody waits for the answer: the client left before any of it was sent.
                unsent.into_body().unsent();
            }
        });
        ServerFuture {
            state: State::Detached { answer, task, grpc },
        }
    }
}

impl<F, B, E> Future for ServerFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Answer<B, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProjection::Answered { response } => Poll::Ready(Ok(*response
                .take()
                .expect("a ServerFuture polled after it completed"))),
            StateProjection::Running {
                guard,
                future,
                done,
                watching,
                expiry,
                grpc,
                expired_status,
            } => {
                if let Poll::Ready(result) = future.poll(cx) {
                    let guard = guard
                        .take()
                        .expect("a ServerFuture polled after it completed");
                    return Poll::Ready(complete(result, guard));
                }
                // The handler is not done. Register for the context's end, then ask the clock
                // whether the deadline has passed: the context's timer may fire a little after
                // another timer (tonic's, for `grpc-timeout`) has woken this task.
                if *watching {
                    let live = guard
                        .as_ref()
                        .expect("a ServerFuture polled after it completed");
                    let waiting = done.get_or_insert_with(|| live.context().done());
                    if Pin::new(waiting).poll(cx).is_ready() {
                        *done = None;
                        *watching = false;
                    }
                }
                let Some((deadline, reason)) = *expiry else {
                    return Poll::Pending;
                };
                let live = guard
                    .as_ref()
                    .expect("a ServerFuture polled after it completed");
                let expired = match live.context().cause() {
                    Some(cause) => cause.is_deadline_exceeded(),
                    None => Instant::now() >= deadline,
                };
                if !expired {
                    // Not yet, or canceled (shutdown): the handler decides what to answer.
                    return Poll::Pending;
                }
                // The caller's time is up: answer for the handler, as gRPC says
                // (`DEADLINE_EXCEEDED`), and drop it. Its context ends by its deadline.
                guard.take().expect("checked above").expire();
                Poll::Ready(Ok(answer_with(
                    *grpc,
                    *expired_status,
                    tonic::Code::DeadlineExceeded,
                    format!("context deadline exceeded: {reason}"),
                )))
            }
            StateProjection::Detached { answer, task, grpc } => {
                if let Ok(done) = ready!(answer.poll(cx)) {
                    return Poll::Ready(done);
                }
                // The task ended without answering: it panicked, or the runtime is shutting
                // down under it.
                match ready!(task.poll(cx)) {
                    Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                    _ => Poll::Ready(Ok(answer_with(
                        *grpc,
                        StatusCode::SERVICE_UNAVAILABLE,
                        tonic::Code::Unavailable,
                        "the server is shutting down".to_owned(),
                    ))),
                }
            }
        }
    }
}

impl<F, B, E> fmt::Debug for ServerFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Answered { .. } => "answered",
            State::Running { .. } => "running",
            State::Detached { .. } => "detached",
        };
        f.debug_struct("ServerFuture")
            .field("state", &state)
            .finish()
    }
}
