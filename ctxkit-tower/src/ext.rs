//! [`ContextExt`]: the request's context, read and written through its extensions.

use ctxkit::Context;

/// Reads and sets the [`Context`] a request carries in its extensions, on the request types
/// of `http` and `tonic`.
///
/// On the server, [`ServerLayer`](crate::ServerLayer) sets it; a handler reads it. On the
/// client, set it on the outgoing request for [`ClientLayer`](crate::ClientLayer) to carry.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ctxkit::Context;
/// use ctxkit_tower::ContextExt;
///
/// let ctx = Context::background().with_timeout(Duration::from_secs(1));
/// let mut request = tonic::Request::new("Flaming June");
/// request.set_context(ctx.context().clone());
/// assert_eq!(request.context().unwrap().deadline(), ctx.deadline());
/// ```
pub trait ContextExt {
    /// The request's context, if one was set.
    fn context(&self) -> Option<&Context>;

    /// Sets the request's context (replacing one already there).
    fn set_context(&mut self, ctx: Context);
}

impl<B> ContextExt for http::Request<B> {
    fn context(&self) -> Option<&Context> {
        self.extensions().get::<Context>()
    }

    fn set_context(&mut self, ctx: Context) {
        self.extensions_mut().insert(ctx);
    }
}

impl ContextExt for http::request::Parts {
    fn context(&self) -> Option<&Context> {
        self.extensions.get::<Context>()
    }

    fn set_context(&mut self, ctx: Context) {
        self.extensions.insert(ctx);
    }
}

impl<T> ContextExt for tonic::Request<T> {
    fn context(&self) -> Option<&Context> {
        self.extensions().get::<Context>()
    }

    fn set_context(&mut self, ctx: Context) {
        self.extensions_mut().insert(ctx);
    }
}
