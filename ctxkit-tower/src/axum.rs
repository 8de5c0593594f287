//! The axum extractor (feature `axum`).

use std::fmt;

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use ctxkit::Context;
use http::request::Parts;
use http::StatusCode;

/// An axum extractor for the request's [`Context`], as [`ServerLayer`](crate::ServerLayer)
/// set it. It derefs to the context.
///
/// # Examples
///
/// ```
/// use axum::{routing::get, Router};
/// use ctxkit::Context;
/// use ctxkit_tower::{RequestContext, ServerLayer};
///
/// async fn search(RequestContext(ctx): RequestContext) -> String {
///     match ctx.run(async { "Flaming June" }).await {
///         Ok(title) => title.to_owned(),
///         Err(error) => error.to_string(),
///     }
/// }
///
/// let app: Router = Router::new()
///     .route("/search", get(search))
///     .layer(ServerLayer::new(&Context::background()));
/// ```
#[derive(Clone, Debug)]
pub struct RequestContext(pub Context);

impl std::ops::Deref for RequestContext {
    type Target = Context;

    fn deref(&self) -> &Context {
        &self.0
    }
}

/// The rejection of [`RequestContext`] when no [`ServerLayer`](crate::ServerLayer) is
/// installed around the route: HTTP 500, saying so.
#[derive(Clone, Copy, Debug, Default)]
pub struct MissingContext;

impl fmt::Display for MissingContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "no request context: ctxkit_tower::ServerLayer is not installed around this route",
        )
    }
}

impl std::error::Error for MissingContext {}

impl IntoResponse for MissingContext {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = MissingContext;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, MissingContext> {
        parts
            .extensions
            .get::<Context>()
            .cloned()
            .map(RequestContext)
            .ok_or(MissingContext)
    }
}
