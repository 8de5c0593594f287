//! [`BudgetLayer`]: one route's own time budget, under whatever the request already has.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::Duration;

use ctxkit::Context;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::cause::{DeadlineSource, RequestDeadline};
use crate::guard::Guard;
use crate::server::ServerBody;

/// A tower [`Layer`] for one route (axum's `route_layer`, one tonic service): the request's
/// context becomes a child with `budget` more at most, so the earliest of the caller's
/// deadline, the server's budget and this one wins. Its reason, when it is the one that
/// passes, is a [`RequestDeadline`] with [`DeadlineSource::Budget`].
///
/// A request without a context (no [`ServerLayer`](crate::ServerLayer) outside) gets one
/// from [`Context::background`]. Like the server layer's, the child ends with the response's
/// body, and is canceled with [`ClientGone`](crate::ClientGone) if the request is dropped.
///
/// # Examples
///
/// ```
/// use std::convert::Infallible;
/// use std::time::{Duration, Instant};
/// use http::{Request, Response};
/// use http_body_util::Empty;
/// use tower::{service_fn, Layer, ServiceExt};
/// use ctxkit::Context;
/// use ctxkit_tower::{BudgetLayer, ContextExt};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let route = BudgetLayer::new(Duration::from_millis(50)).layer(service_fn(|request: Request<()>| async move {
///     let ctx = request.context().unwrap().clone();
///     assert!(ctx.deadline().unwrap() <= Instant::now() + Duration::from_millis(50));
///     Ok::<_, Infallible>(Response::new(Empty::<bytes::Bytes>::new()))
/// }));
/// let mut request = Request::new(());
/// request.set_context(Context::background()); // as a ServerLayer would
/// assert_eq!(route.oneshot(request).await.unwrap().status(), 200);
/// # });
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BudgetLayer {
    budget: Duration,
}

impl BudgetLayer {
    /// A layer giving each request `budget` at most.
    ///
    /// # Examples
    ///
    /// See [`BudgetLayer`].
    pub fn new(budget: Duration) -> BudgetLayer {
        BudgetLayer { budget }
    }
}

impl<S> Layer<S> for BudgetLayer {
    type Service = BudgetService<S>;

    fn layer(&self, inner: S) -> BudgetService<S> {
        BudgetService {
            inner,
            budget: self.budget,
        }
    }
}

/// The service made by [`BudgetLayer`]; see there.
#[derive(Clone, Debug)]
pub struct BudgetService<S> {
    inner: S,
    budget: Duration,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BudgetService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: http_body::Body,
{
    type Response = Response<ServerBody<ResBody>>;
    type Error = S::Error;
    type Future = BudgetFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let parent = request
            .extensions()
            .get::<Context>()
            .cloned()
            .unwrap_or_default();
        let reason = RequestDeadline {
            source: DeadlineSource::Budget,
            budget: self.budget,
        };
        let ctx = parent.with_timeout_cause(self.budget, reason);
        request.extensions_mut().insert(ctx.context().clone());
        let guard = Guard::new(ctx, request.method() == http::Method::HEAD);
        BudgetFuture {
            future: self.inner.call(request),
            guard: Some(guard),
        }
    }
}

pin_project! {
    /// The response future of a [`BudgetService`].
    pub struct BudgetFuture<F> {
        // Before the future: a dropped handler finds its context already canceled.
        guard: Option<Guard>,
        #[pin]
        future: F,
    }
}

impl<F> fmt::Debug for BudgetFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetFuture")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for BudgetFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: http_body::Body,
{
    type Output = Result<Response<ServerBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        let guard = this
            .guard
            .take()
            .expect("a BudgetFuture polled after it completed");
        Poll::Ready(crate::server::complete(result, guard))
    }
}
