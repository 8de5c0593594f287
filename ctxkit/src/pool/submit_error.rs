//! What a long-lived pool's `submit` returns when it does not take a job, and what its
//! `shutdown` returns. Plain data, no locking.

use std::error::Error as StdError;
use std::fmt;

use super::job_failed::JobFailed;
use crate::context::Error;

/// Why a submission was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitErrorKind {
    /// The queue was full (`try_submit`, or a `submit` whose wait ended).
    Full,
    /// The pool is shutting down, or its context is done: it takes no job any more.
    Closed,
    /// The context passed to `submit` was done before the queue had room.
    Context(Error),
    /// No worker was running and the OS refused to start one.
    NoWorker,
}

/// A submission the pool did not take: the job comes back, untouched, with the reason.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use ctxkit::pool::{Pool, SubmitErrorKind};
/// use ctxkit::Context;
///
/// let ctx = Context::background();
/// let (release, held) = mpsc::channel::<()>();
/// let held = std::sync::Mutex::new(held);
/// // One worker, no queue: a job is taken only by a free worker.
/// let workers = Pool::new(1).queue(0).start(&ctx, move |_ctx, _job: &str| {
///     let _ = held.lock().unwrap().recv();
/// });
/// workers.try_submit("first").unwrap(); // the worker takes it and blocks
/// let refused = workers.try_submit("second").unwrap_err();
/// assert_eq!(refused.kind(), SubmitErrorKind::Full);
/// assert_eq!(refused.to_string(), "ctxkit::pool: the queue is full");
/// assert_eq!(refused.into_job(), "second"); // nothing is lost
/// drop(release); // lets the first job return
/// let report = workers.shutdown(&ctx);
/// assert!(report.unrun.is_empty());
/// ```
pub struct SubmitError<J> {
    job: J,
    kind: SubmitErrorKind,
    /// The OS's error text, for [`SubmitErrorKind::NoWorker`].
    detail: Option<String>,
}

impl<J> SubmitError<J> {
    pub(crate) fn new(job: J, kind: SubmitErrorKind) -> Self {
        SubmitError {
            job,
            kind,
            detail: None,
        }
    }

    pub(crate) fn no_worker(job: J, error: &std::io::Error) -> Self {
        SubmitError {
            job,
            kind: SubmitErrorKind::NoWorker,
            detail: Some(error.to_string()),
        }
    }

    /// Why the job was refused.
    pub fn kind(&self) -> SubmitErrorKind {
        self.kind
    }

    /// The refused job.
    pub fn job(&self) -> &J {
        &self.job
    }

    /// Takes the refused job back.
    pub fn into_job(self) -> J {
        self.job
    }
}

impl<J> fmt::Debug for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitError")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .finish_non_exhaustive()
    }
}

impl<J> fmt::Display for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SubmitErrorKind::Full => f.write_str("ctxkit::pool: the queue is full"),
            SubmitErrorKind::Closed => {
                f.write_str("ctxkit::pool: the pool is shut down or its context is done")
            }
            SubmitErrorKind::Context(error) => fmt::Display::fmt(&error, f),
            SubmitErrorKind::NoWorker => write!(
                f,
                "ctxkit::pool: could not start a worker: {}",
                self.detail.as_deref().unwrap_or("the OS refused")
            ),
        }
    }
}

impl<J> StdError for SubmitError<J> {}

/// What a long-lived pool's `shutdown` returns: the jobs it accepted but never started, and the
/// panics of the jobs that ran.
///
/// # Examples
///
/// ```
/// use ctxkit::pool::Pool;
/// use ctxkit::Context;
///
/// let ctx = Context::background();
/// let workers = Pool::new(2).start(&ctx, |_ctx, n: u32| assert!(n != 3, "three"));
/// for n in 0..5 {
///     workers.submit(&ctx, n).unwrap();
/// }
/// let report = workers.shutdown(&ctx); // background: waits for every queued job
/// assert!(report.unrun.is_empty());
/// assert_eq!(report.failed.len(), 1);
/// assert_eq!(report.failed[0].message(), "three");
/// ```
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport<J> {
    /// The accepted jobs that never started, in the order they were accepted.
    pub unrun: Vec<J>,
    /// The panics of jobs that ran, in the order they were reported.
    pub failed: Vec<JobFailed>,
}
