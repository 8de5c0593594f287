//! The reasons ctxkit-tower gives when it ends a request's context: read them with
//! [`Context::cause`](ctxkit::Context::cause) and [`Cause::downcast_ref`](ctxkit::Cause::downcast_ref).

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// Where a request's deadline came from: the reason of a request context whose deadline
/// passed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ctxkit_tower::{DeadlineSource, RequestDeadline};
///
/// let reason = RequestDeadline { source: DeadlineSource::GrpcTimeout, budget: Duration::from_millis(400) };
/// assert_eq!(reason.to_string(), "the caller's deadline passed (grpc-timeout, 400 ms)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestDeadline {
    /// Which limit was the earliest.
    pub source: DeadlineSource,
    /// The time it allowed, from the moment the request was read.
    pub budget: Duration,
}

/// Which of the limits on a request came first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeadlineSource {
    /// The caller's `grpc-timeout` header.
    GrpcTimeout,
    /// The caller's milliseconds header.
    TimeoutHeader,
    /// The caller's absolute deadline header.
    DeadlineHeader,
    /// The server's own budget for the request or route.
    Budget,
}

impl fmt::Display for RequestDeadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.budget.as_millis();
        match self.source {
            DeadlineSource::GrpcTimeout => {
                write!(
                    f,
                    "the caller's deadline passed (grpc-timeout, {millis} ms)"
                )
            }
            DeadlineSource::TimeoutHeader => {
                write!(
                    f,
                    "the caller's deadline passed (timeout header, {millis} ms)"
                )
            }
            DeadlineSource::DeadlineHeader => {
                write!(
                    f,
                    "the caller's deadline passed (deadline header, {millis} ms)"
                )
            }
            DeadlineSource::Budget => write!(f, "the server's budget passed ({millis} ms)"),
        }
    }
}

impl StdError for RequestDeadline {}

/// The reason of a request context canceled because the server dropped the request before
/// its response was complete: the client hung up, reset the stream, or the connection
/// broke.
///
/// # Examples
///
/// ```
/// use ctxkit_tower::ClientGone;
///
/// assert_eq!(
///     ClientGone::BeforeResponse.to_string(),
///     "the client went away before the response was sent"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientGone {
    /// While the handler ran: no response had been sent.
    BeforeResponse,
    /// While the response's body was being sent.
    DuringResponse,
}

impl fmt::Display for ClientGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientGone::BeforeResponse => "the client went away before the response was sent",
            ClientGone::DuringResponse => "the client went away while the response was sent",
        })
    }
}

impl StdError for ClientGone {}
