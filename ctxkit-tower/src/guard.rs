//! [`Guard`]: owns a request's [`CancelContext`] and ends it the right way.
//!
//! A request's context ends when its response is complete (Go's `ServeHTTP` returning), or,
//! if the server drops the request first, with [`ClientGone`] as its reason. The guard moves
//! from the service's future into the response body, so "complete" means the last byte of the
//! body, not the handler's return.

use ctxkit::CancelContext;

use crate::cause::ClientGone;

/// Cancels its context plainly on [`finish`](Guard::finish), with [`ClientGone`] when dropped
/// unfinished.
#[derive(Debug)]
pub(crate) struct Guard {
    ctx: Option<CancelContext>,
    phase: ClientGone,
    /// The request is a `HEAD`: its response's body is never sent.
    head: bool,
}

impl Guard {
    pub(crate) fn new(ctx: CancelContext, head: bool) -> Guard {
        Guard {
            ctx: Some(ctx),
            phase: ClientGone::BeforeResponse,
            head,
        }
    }

    /// Whether the request is a `HEAD`.
    pub(crate) fn head(&self) -> bool {
        self.head
    }

    /// The request's context (still there until `finish` or drop).
    pub(crate) fn context(&self) -> &ctxkit::Context {
        self.ctx
            .as_ref()
            .expect("a guard's context lives until it is finished")
            .context()
    }

    /// The response's head is out; from now on a drop is during the body.
    pub(crate) fn responding(&mut self) {
        self.phase = ClientGone::DuringResponse;
    }

    /// The response was never sent after all: a drop is before the response again.
    pub(crate) fn unsent(&mut self) {
        self.phase = ClientGone::BeforeResponse;
    }

    /// The deadline has passed (by the clock) and the layer answered for the handler: let the
    /// context end by its deadline, so whatever still waits on it sees `DeadlineExceeded` and
    /// the deadline's reason, not a plain cancel.
    pub(crate) fn expire(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            drop(ctx.disarm());
        }
    }

    /// The response is complete: cancel without a reason (the request is over).
    pub(crate) fn finish(&mut self) {
        drop(self.ctx.take());
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.take() {
            ctx.cancel_with(self.phase);
        }
    }
}
