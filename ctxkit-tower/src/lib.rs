//! ctxkit's [`Context`](ctxkit::Context) across services: deadlines, cancellation and chosen
//! values carried over HTTP and gRPC by tower layers.
//!
//! The chapter's context carries a deadline down one process. A real request crosses
//! services: a gateway with 400 ms left calls a service that calls a store. This crate carries
//! the context over each hop, both ways a Go service does it with gRPC, for any tower server
//! or client (hyper, axum, tonic):
//!
//! * [`ServerLayer`]: each request gets a [`Context`](ctxkit::Context) in its extensions,
//!   derived from a server root (cancel the root on graceful shutdown and every request's
//!   context is canceled), bounded by the earliest of the caller's deadline (`grpc-timeout`,
//!   or an HTTP header of remaining milliseconds) and the server's budget. A request already
//!   out of time is answered at once without calling the handler (gRPC `DEADLINE_EXCEEDED`,
//!   HTTP 504). When the server drops the request because the client went away, the context
//!   is canceled with [`ClientGone`] as its reason, so work the handler started (a group, a
//!   pool, a thread) stops too; [`ServerLayer::detach_when`] lets chosen routes run to the end
//!   instead.
//! * [`BudgetLayer`]: one route's own budget.
//! * [`ClientLayer`]: an outgoing request's context (set with [`ContextExt::set_context`])
//!   goes on the wire as what is left of its deadline, minus a margin; a call with nothing
//!   left fails at once with `context deadline exceeded`, and a call in flight is dropped
//!   (its stream reset) when the context ends.
//! * [`Propagator`]: values you choose (a request id) cross too, typed on both sides.
//! * `RequestContext` (feature `axum`): the axum extractor.
//!
//! Deadlines travel as durations (no clock agreement needed between hosts) and are kept as
//! `Instant`s locally; see [`wire`].
//!
//! # Coming from Go
//!
//! | Go | ctxkit-tower |
//! |---|---|
//! | `r.Context()` in a `net/http` handler (canceled when the client's connection closes or `ServeHTTP` returns) | `request.context()` ([`ContextExt`]), or `RequestContext` in axum; canceled when the client goes away or the response's body is complete |
//! | grpc-go's server reading `grpc-timeout` into the handler's `ctx` | [`ServerLayer`] on a tonic server; an expired call gets `DEADLINE_EXCEEDED` (tonic alone answers `CANCELLED`) |
//! | grpc-go's client writing `ctx`'s deadline as `grpc-timeout` on every call | [`ClientLayer`] on a tonic `Channel` |
//! | `http.NewRequestWithContext(ctx, ...)` | `request.set_context(ctx)` and a [`ClientLayer`] on the client |
//! | `srv.Shutdown(ctx)` / `BaseContext` returning a server-wide context | the root context given to [`ServerLayer::new`]: cancel it when shutdown starts |
//! | gRPC metadata / OpenTelemetry propagators | [`Propagator`] with [`WireValue`] types |
//!
//! # Examples
//!
//! A server's handler sees the caller's budget; its client call carries what is left:
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, BoxError, Layer, ServiceExt};
//! use ctxkit::Context;
//! use ctxkit_tower::{ClientLayer, ContextExt, ServerLayer};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // The next hop, standing in for a hyper client: answers with the budget it was sent.
//! let next_hop = ClientLayer::new().layer(service_fn(|request: Request<()>| async move {
//!     let sent = request.headers()["x-request-timeout-ms"].to_str()?.to_owned();
//!     Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(sent))))
//! }));
//!
//! // A handler that calls the next hop under the request's context.
//! async fn handle<S>(next_hop: S, request: Request<()>) -> Result<Response<Full<Bytes>>, BoxError>
//! where
//!     S: tower::Service<Request<()>, Response = Response<ctxkit_tower::ClientBody<Full<Bytes>>>, Error = BoxError>,
//! {
//!     let mut call = Request::new(());
//!     call.set_context(request.context().unwrap().clone());
//!     let answer = match next_hop.oneshot(call).await {
//!         Ok(response) => response.into_body().collect().await?.to_bytes(),
//!         Err(error) => return Err(error),
//!     };
//!     let sent: u64 = std::str::from_utf8(&answer)?.parse()?;
//!     Ok(Response::new(Full::new(Bytes::from(format!("the next hop got {} ms", sent / 100 * 100)))))
//! }
//!
//! let server = Context::background().with_cancel(); // cancel on shutdown
//! let service = ServerLayer::new(&server)
//!     .layer(service_fn(move |request| handle(next_hop.clone(), request)));
//!
//! // A caller with 400 ms left.
//! let request = Request::builder().header("x-request-timeout-ms", "400").body(()).unwrap();
//! let response = service.clone().oneshot(request).await.unwrap();
//! let text = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(text, "the next hop got 300 ms"); // 399 ms or a little less, rounded down to 100
//!
//! // A caller already out of time: answered at once, the handler not called.
//! let request = Request::builder().header("x-request-timeout-ms", "0").body(()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 504);
//! # });
//! ```

pub mod client;
pub mod wire;

#[cfg(feature = "axum")]
mod axum;
mod budget;
mod cause;
mod ext;
mod guard;
mod propagate;
mod server;

#[cfg(feature = "axum")]
pub use axum::{MissingContext, RequestContext};
pub use budget::{BudgetFuture, BudgetLayer, BudgetService};
pub use cause::{ClientGone, DeadlineSource, RequestDeadline};
pub use client::{BoxError, CallError, ClientBody, ClientFuture, ClientLayer, ClientService};
pub use ext::ContextExt;
pub use propagate::{Propagator, WireValue};
pub use server::{OnMalformed, ServerBody, ServerFuture, ServerLayer, ServerService};

/// The default HTTP header of the remaining milliseconds, read by [`ServerLayer`] and written
/// by [`ClientLayer`].
pub const TIMEOUT_HEADER: &str = "x-request-timeout-ms";

/// Whether a request is gRPC: its content type is `application/grpc` or `application/grpc+...`.
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}
