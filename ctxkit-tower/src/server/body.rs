//! [`ServerBody`]: the response body of a served request, holding the request's context until
//! its last frame.

use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::guard::Guard;

pin_project! {
    /// The body of a response from a [`ServerService`](crate::ServerService): the handler's
    /// own body, which ends the request's context after its last frame (or, dropped before
    /// that, cancels it with [`ClientGone::DuringResponse`](crate::ClientGone)), or a short
    /// answer the layer gave itself (an expired or malformed deadline, a server shutting
    /// down).
    ///
    /// # Examples
    ///
    /// ```
    /// use http_body::Body;
    /// use ctxkit_tower::ServerBody;
    ///
    /// let body: ServerBody<http_body_util::Empty<bytes::Bytes>> = ServerBody::default();
    /// assert!(body.is_end_stream());
    /// ```
    pub struct ServerBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProjection]
    enum Inner<B> {
        // The handler's body and the guard of the request's context.
        Handler {
            #[pin]
            body: B,
            guard: Guard,
            // The bytes still to send of a body of known length: a server stops polling a
            // body once it has sent that many (HTTP/1.1 with `content-length`).
            remaining: Option<u64>,
        },
        // An answer of the layer's own: at most one chunk of text.
        Answer { text: Option<Bytes> },
    }
}

impl<B: Body> ServerBody<B> {
    /// Wraps the handler's body; a body that is already complete, or that the server will not
    /// send (`bodiless`: the answer to a `HEAD`, a 1xx, 204 or 304), ends the context now.
    pub(crate) fn handler(body: B, mut guard: Guard, bodiless: bool) -> ServerBody<B> {
        guard.responding();
        let remaining = body.size_hint().exact();
        if bodiless || body.is_end_stream() || remaining == Some(0) {
            guard.finish();
        }
        ServerBody {
            inner: Inner::Handler {
                body,
                guard,
                remaining,
            },
        }
    }
}

impl<B> ServerBody<B> {
    /// Drops a body that was never handed to the server: its request's context is canceled
    /// with [`ClientGone::BeforeResponse`](crate::ClientGone::BeforeResponse).
    pub(crate) fn unsent(self) {
        if let Inner::Handler { mut guard, .. } = self.inner {
            guard.unsent();
        }
    }

    /// An answer with `text` as its body (empty for none).
    pub(crate) fn answer(text: String) -> ServerBody<B> {
        ServerBody {
            inner: Inner::Answer {
                text: (!text.is_empty()).then(|| Bytes::from(text)),
            },
        }
    }
}

impl<B> Default for ServerBody<B> {
    /// An empty answer (what a gRPC status needs: its status travels in headers).
    fn default() -> ServerBody<B> {
        ServerBody {
            inner: Inner::Answer { text: None },
        }
    }
}

impl<B> std::fmt::Debug for ServerBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Handler { guard, .. } => f
                .debug_struct("ServerBody::Handler")
                .field("guard", guard)
                .finish_non_exhaustive(),
            Inner::Answer { text } => f
                .debug_struct("ServerBody::Answer")
                .field("text", text)
                .finish(),
        }
    }
}

impl<B: Body<Data = Bytes>> Body for ServerBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().inner.project() {
            InnerProjection::Handler {
                mut body,
                guard,
                remaining,
            } => {
                let frame = body.as_mut().poll_frame(cx);
                match &frame {
                    // The last frame (a server may stop polling once `is_end_stream` says
                    // so, or once a body of known length is all sent), the end, or a failed
                    // body: the response is over either way.
                    Poll::Ready(Some(Ok(frame))) => {
                        if let (Some(left), Some(data)) = (remaining.as_mut(), frame.data_ref()) {
                            *left = left.saturating_sub(data.len() as u64);
                        }
                        if body.is_end_stream() || *remaining == Some(0) {
                            guard.finish();
                        }
                    }
                    Poll::Ready(None | Some(Err(_))) => guard.finish(),
                    Poll::Pending => {}
                }
                frame
            }
            InnerProjection::Answer { text } => {
                Poll::Ready(text.take().map(|text| Ok(Frame::data(text))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Handler { body, .. } => body.is_end_stream(),
            Inner::Answer { text } => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Handler { body, .. } => body.size_hint(),
            Inner::Answer { text } => {
                SizeHint::with_exact(text.as_ref().map_or(0, |text| text.len() as u64))
            }
        }
    }
}
