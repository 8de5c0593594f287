//! The client side: [`ClientLayer`] carries a request's [`Context`] onto the wire.
//!
//! For each outgoing request that carries a context in its extensions
//! ([`ContextExt::set_context`](crate::ContextExt::set_context)), [`ClientService::call`]:
//!
//! 1. fails at once, without sending, if the context is done, or if what is left of its
//!    deadline after the [margin](ClientLayer::margin) is nothing: the error says
//!    `context deadline exceeded` (or `context canceled`, with the context's reason);
//! 2. writes what is left, minus the margin, as `grpc-timeout` on a gRPC request (keeping an
//!    earlier one already there, such as tonic's `Request::set_timeout`) or the milliseconds
//!    header on HTTP, and the absolute header if one is configured;
//! 3. writes the [`Propagator`]'s values;
//! 4. races the call, and then the response body, against the context: when the context ends
//!    first, the call is dropped (hyper and h2 then reset the stream) and the caller gets the
//!    context's error.
//!
//! A request without a context goes out untouched.
//!
//! Errors are boxed (`tower::BoxError`'s shape), as tower's own timeout layer does. On a gRPC
//! request the context's error is a [`tonic::Status`] (`DEADLINE_EXCEEDED` or `CANCELLED`) so
//! that tonic's client hands it to the caller as is; on HTTP it is a [`CallError`].

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use ctxkit::{Cause, Context, Done, Error};
use http::{HeaderName, Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::propagate::Propagator;
use crate::{is_grpc, wire, TIMEOUT_HEADER};

/// A boxed error, as tower's layers return.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The error of a call the context ended: before it was sent, while waiting for the
/// response, or while reading its body.
///
/// # Examples
///
/// ```
/// use ctxkit::{Context, Error};
/// use ctxkit_tower::CallError;
///
/// let ctx = Context::background().with_cancel();
/// ctx.cancel_with("the user left");
/// let error = CallError::from_context(&ctx).unwrap();
/// assert_eq!(error.error(), Error::Canceled);
/// assert_eq!(error.to_string(), "context canceled: the user left");
/// ```
#[derive(Clone, Debug)]
pub struct CallError {
    error: Error,
    cause: Option<Cause>,
    /// What happened, when the context itself was not done (no `cause`).
    detail: &'static str,
}

impl CallError {
    /// The error of a done context (`None` if it is not done).
    ///
    /// # Examples
    ///
    /// See [`CallError`].
    pub fn from_context(ctx: &Context) -> Option<CallError> {
        ctx.cause().map(|cause| CallError {
            error: cause.error(),
            cause: Some(cause),
            detail: "",
        })
    }

    /// The deadline was too close to send the call: what was left was no more than the margin.
    fn too_late() -> CallError {
        CallError {
            error: Error::DeadlineExceeded,
            cause: None,
            detail: "too little time left to send the call",
        }
    }

    /// The call ended by its deadline: the context's (with its cause, if the context says so
    /// already), or the one sent with the call.
    fn deadline_passed(ctx: &Context) -> CallError {
        CallError::from_context(ctx)
            .filter(|error| error.error.is_deadline_exceeded())
            .unwrap_or(CallError {
                error: Error::DeadlineExceeded,
                cause: None,
                detail: "the call's deadline passed",
            })
    }

    /// `Canceled` or `DeadlineExceeded`.
    ///
    /// # Examples
    ///
    /// See [`CallError`].
    pub fn error(&self) -> Error {
        self.error
    }

    /// The context's cause, with its reason; `None` when the context itself was not done
    /// yet: the call was not sent because no more than the [margin](ClientLayer::margin) was
    /// left, or the budget sent with it (the deadline minus the margin) ran out.
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::Context;
    /// use ctxkit_tower::CallError;
    ///
    /// let ctx = Context::background().with_cancel();
    /// ctx.cancel();
    /// assert!(CallError::from_context(&ctx).unwrap().cause().unwrap().reason().is_none());
    /// ```
    pub fn cause(&self) -> Option<&Cause> {
        self.cause.as_ref()
    }

    /// The gRPC status of this error: `DEADLINE_EXCEEDED` or `CANCELLED`, its message this
    /// error's text.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use ctxkit::Context;
    /// use ctxkit_tower::CallError;
    ///
    /// let ctx = Context::background().with_timeout(Duration::ZERO);
    /// let status = CallError::from_context(&ctx).unwrap().to_status();
    /// assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    /// ```
    pub fn to_status(&self) -> tonic::Status {
        let code = if self.error().is_deadline_exceeded() {
            tonic::Code::DeadlineExceeded
        } else {
            tonic::Code::Cancelled
        };
        let mut status = tonic::Status::new(code, self.to_string());
        status.set_source(Arc::new(self.clone()));
        status
    }

    /// Boxed as the request's protocol wants it: a `tonic::Status` for gRPC.
    fn boxed(self, grpc: bool) -> BoxError {
        if grpc {
            Box::new(self.to_status())
        } else {
            Box::new(self)
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cause.as_ref().and_then(Cause::reason) {
            Some(reason) => write!(f, "{}: {reason}", self.error),
            None if self.cause.is_none() => write!(f, "{}: {}", self.error, self.detail),
            None => write!(f, "{}", self.error),
        }
    }
}

impl StdError for CallError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause
            .as_ref()
            .map(|cause| cause as &(dyn StdError + 'static))
    }
}

struct Settings {
    timeout_header: Option<HeaderName>,
    deadline_header: Option<HeaderName>,
    margin: Duration,
    propagator: Propagator,
}

/// A tower [`Layer`] for clients (a hyper client, a tonic `Channel`, any
/// `Service<http::Request<B>>`) that writes the outgoing request's deadline onto the wire and
/// ends the call when its context ends. See [the module](crate::client) for what it does per
/// request.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Empty;
/// use tower::{service_fn, Layer, ServiceExt};
/// use ctxkit::Context;
/// use ctxkit_tower::{ClientLayer, ContextExt};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// // Stands in for a hyper client: answers with the budget it was sent, in a header.
/// let transport = service_fn(|request: Request<()>| async move {
///     let mut response = Response::new(Empty::<Bytes>::new());
///     if let Some(sent) = request.headers().get("x-request-timeout-ms") {
///         response.headers_mut().insert("x-budget-seen", sent.clone());
///     }
///     Ok::<_, Infallible>(response)
/// });
/// let client = ClientLayer::new().margin(Duration::from_millis(5)).layer(transport);
///
/// let ctx = Context::background().with_timeout(Duration::from_millis(400));
/// let mut request = Request::new(());
/// request.set_context(ctx.context().clone());
/// let response = client.clone().oneshot(request).await.unwrap();
/// let seen: u64 = response.headers()["x-budget-seen"].to_str().unwrap().parse().unwrap();
/// assert!(seen <= 395);
///
/// ctx.cancel(); // a done context: the call fails at once, unsent
/// let mut request = Request::new(());
/// request.set_context(ctx.context().clone());
/// let error = client.oneshot(request).await.unwrap_err();
/// assert_eq!(error.to_string(), "context canceled");
/// # });
/// ```
#[derive(Clone)]
pub struct ClientLayer {
    settings: Arc<Settings>,
}

impl Default for ClientLayer {
    fn default() -> ClientLayer {
        ClientLayer::new()
    }
}

impl ClientLayer {
    /// A layer writing `grpc-timeout` (gRPC) or `x-request-timeout-ms` (HTTP), with no margin
    /// and no values.
    ///
    /// # Examples
    ///
    /// See [`ClientLayer`].
    pub fn new() -> ClientLayer {
        ClientLayer {
            settings: Arc::new(Settings {
                timeout_header: Some(HeaderName::from_static(TIMEOUT_HEADER)),
                deadline_header: None,
                margin: Duration::ZERO,
                propagator: Propagator::new(),
            }),
        }
    }

    fn settings_mut(&mut self) -> &mut Settings {
        Arc::get_mut(&mut self.settings).expect("settings are changed before the layer is cloned")
    }

    /// Writes HTTP requests' remaining milliseconds under `header` instead of
    /// `x-request-timeout-ms`; `None` writes none.
    ///
    /// # Panics
    ///
    /// If called on a clone of a layer (configure first, then clone): a programmer error.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::HeaderName;
    /// use ctxkit_tower::ClientLayer;
    ///
    /// let layer = ClientLayer::new().timeout_header(Some(HeaderName::from_static("x-timeout-ms")));
    /// ```
    #[must_use]
    pub fn timeout_header(mut self, header: Option<HeaderName>) -> ClientLayer {
        self.settings_mut().timeout_header = header;
        self
    }

    /// Also writes the deadline as milliseconds since the Unix epoch under `header` on HTTP
    /// requests (off by default; only as good as the two hosts' clocks agree).
    ///
    /// # Panics
    ///
    /// If called on a clone of a layer: a programmer error.
    ///
    /// # Examples
    ///
    /// ```
    /// use http::HeaderName;
    /// use ctxkit_tower::ClientLayer;
    ///
    /// let layer = ClientLayer::new().deadline_header(Some(HeaderName::from_static("x-request-deadline-unix-ms")));
    /// ```
    #[must_use]
    pub fn deadline_header(mut self, header: Option<HeaderName>) -> ClientLayer {
        self.settings_mut().deadline_header = header;
        self
    }

    /// Keeps `margin` of the budget for this side: the callee is told the time left minus
    /// `margin` (time for the answer to travel back and be used), and a call with no more than
    /// `margin` left fails at once.
    ///
    /// # Panics
    ///
    /// If called on a clone of a layer: a programmer error.
    ///
    /// # Examples
    ///
    /// See [`ClientLayer`].
    #[must_use]
    pub fn margin(mut self, margin: Duration) -> ClientLayer {
        self.settings_mut().margin = margin;
        self
    }

    /// Writes the values `propagator` lists from each request's context into its headers.
    ///
    /// # Panics
    ///
    /// If called on a clone of a layer: a programmer error.
    ///
    /// # Examples
    ///
    /// See [`Propagator`].
    #[must_use]
    pub fn propagator(mut self, propagator: Propagator) -> ClientLayer {
        self.settings_mut().propagator = propagator;
        self
    }
}

impl fmt::Debug for ClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &*self.settings;
        f.debug_struct("ClientLayer")
            .field("timeout_header", &settings.timeout_header)
            .field("deadline_header", &settings.deadline_header)
            .field("margin", &settings.margin)
            .field("propagator", &settings.propagator)
            .finish()
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> ClientService<S> {
        ClientService {
            inner,
            settings: Arc::clone(&self.settings),
        }
    }
}

/// The service made by [`ClientLayer`]; see there.
#[derive(Clone)]
pub struct ClientService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S: fmt::Debug> fmt::Debug for ClientService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientService")
            .field("inner", &self.inner)
            .field(
                "layer",
                &ClientLayer {
                    settings: Arc::clone(&self.settings),
                },
            )
            .finish()
    }
}

impl Settings {
    /// Writes the deadline and the values into `request`; the error of a call that must not
    /// be sent.
    fn prepare<B>(
        &self,
        request: &mut Request<B>,
        ctx: &Context,
        grpc: bool,
    ) -> Result<Option<Instant>, CallError> {
        if let Some(error) = CallError::from_context(ctx) {
            return Err(error);
        }
        let mut sent = None;
        if let Some(deadline) = ctx.deadline() {
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            let to_send = left.saturating_sub(self.margin);
            let headers = request.headers_mut();
            // Nothing to give the callee: zero, or under the header's 1 ms resolution.
            let too_late = if grpc {
                let header = HeaderName::from_static("grpc-timeout");
                let earlier = headers
                    .get(&header)
                    .and_then(|value| wire::parse_grpc_timeout(value).ok())
                    .filter(|&already| already <= to_send);
                if earlier.is_none() {
                    headers.insert(header, wire::format_grpc_timeout(to_send));
                }
                sent = now.checked_add(earlier.unwrap_or(to_send));
                to_send.is_zero()
            } else {
                if let Some(header) = &self.timeout_header {
                    headers.insert(header.clone(), wire::format_millis(to_send));
                }
                if let Some(header) = &self.deadline_header {
                    let at = SystemTime::now() + to_send;
                    headers.insert(header.clone(), wire::format_unix_millis(at));
                }
                to_send < Duration::from_millis(1)
            };
            if too_late {
                return Err(CallError::too_late());
            }
        }
        self.propagator.inject(ctx, request.headers_mut());
        Ok(sent)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ClientService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ClientBody<ResBody>>;
    type Error = BoxError;
    type Future = ClientFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let Some(ctx) = request.extensions().get::<Context>().cloned() else {
            return ClientFuture {
                state: CallState::Calling {
                    future: self.inner.call(request),
                    done: None,
                    ctx: None,
                    grpc: false,
                    sent: None,
                },
            };
        };
        let grpc = is_grpc(request.headers());
        match self.settings.prepare(&mut request, &ctx, grpc) {
            Err(error) => ClientFuture {
                state: CallState::Failed {
                    error: Some(error.boxed(grpc)),
                },
            },
            Ok(sent) => ClientFuture {
                state: CallState::Calling {
                    future: self.inner.call(request),
                    done: Some(ctx.done()),
                    ctx: Some(ctx),
                    grpc,
                    sent,
                },
            },
        }
    }
}

pin_project! {
    /// The response future of a [`ClientService`]: the call, raced against its context.
    pub struct ClientFuture<F> {
        #[pin]
        state: CallState<F>,
    }
}

pin_project! {
    #[project = CallStateProjection]
    enum CallState<F> {
        Failed { error: Option<BoxError> },
        Calling {
            #[pin]
            future: F,
            done: Option<Done>,
            ctx: Option<Context>,
            grpc: bool,
            // On a gRPC call, the deadline the callee was told.
            sent: Option<Instant>,
        },
    }
}

impl<F> fmt::Debug for ClientFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            CallState::Failed { .. } => "failed",
            CallState::Calling { .. } => "calling",
        };
        f.debug_struct("ClientFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, B, E> Future for ClientFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<Response<ClientBody<B>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        match state.as_mut().project() {
            CallStateProjection::Failed { error } => Poll::Ready(Err(error
                .take()
                .expect("a ClientFuture polled after it completed"))),
            CallStateProjection::Calling {
                future,
                done,
                ctx,
                grpc,
                sent,
            } => {
                if let Some(done_future) = done.as_mut() {
                    if Pin::new(done_future).poll(cx).is_ready() {
                        let ctx = ctx.as_ref().expect("a context with its done future");
                        let error = CallError::from_context(ctx).expect("the context is done");
                        let error = error.boxed(*grpc);
                        // Drop the call now (its stream is reset), not when this future is.
                        state.set(CallState::Failed { error: None });
                        return Poll::Ready(Err(error));
                    }
                }
                let result = ready!(future.poll(cx)).map_err(Into::into);
                if let (true, Some(ctx)) = (*grpc, ctx.as_ref()) {
                    if ended_by_deadline(ctx, *sent, &result) {
                        return Poll::Ready(Err(CallError::deadline_passed(ctx).boxed(true)));
                    }
                }
                match result {
                    Err(error) => Poll::Ready(Err(error)),
                    Ok(response) => {
                        let (done, ctx, grpc) = (done.take(), ctx.take(), *grpc);
                        Poll::Ready(Ok(response.map(|body| ClientBody {
                            body,
                            done,
                            ctx,
                            grpc,
                        })))
                    }
                }
            }
        }
    }
}

/// Whether a gRPC call that ended with `result` ended by a deadline, whatever its transport
/// calls it:
///
/// * the context's deadline has passed by the clock (its timer may not have run yet);
/// * tonic's channel gave up at the `grpc-timeout` it was sent with (`TimeoutExpired`, which
///   tonic reports as `CANCELLED` "Timeout expired");
/// * the callee answered `CANCELLED` once the deadline it was told had passed (a tonic server
///   enforcing `grpc-timeout` itself answers so).
///
/// The context wins a tie: a reply that arrives after its deadline is the deadline's error, as
/// in grpc-go.
fn ended_by_deadline<B>(
    ctx: &Context,
    sent: Option<Instant>,
    result: &Result<Response<B>, BoxError>,
) -> bool {
    let now = Instant::now();
    if ctx.deadline().is_some_and(|deadline| deadline <= now) {
        return true;
    }
    match result {
        Err(error) => timeout_expired(&**error),
        Ok(response) => {
            sent.is_some_and(|sent| sent <= now)
                && response
                    .headers()
                    .get("grpc-status")
                    .is_some_and(|status| status.as_bytes() == b"1")
        }
    }
}

/// Whether `error`, or an error in its chain of sources, is tonic's `TimeoutExpired`.
fn timeout_expired(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<tonic::TimeoutExpired>() {
            return true;
        }
        next = error.source();
    }
    false
}

pin_project! {
    /// A response body read under the call's context: once the context ends, reading fails
    /// with its error (and the body is dropped with the response, which resets the stream).
    pub struct ClientBody<B> {
        #[pin]
        body: B,
        done: Option<Done>,
        ctx: Option<Context>,
        grpc: bool,
    }
}

impl<B> fmt::Debug for ClientBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBody")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

impl<B> Body for ClientBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Some(done) = this.done.as_mut() {
            if Pin::new(done).poll(cx).is_ready() {
                *this.done = None;
                let ctx = this.ctx.as_ref().expect("a context with its done future");
                let error = CallError::from_context(ctx).expect("the context is done");
                return Poll::Ready(Some(Err(error.boxed(*this.grpc))));
            }
        }
        this.body.poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
