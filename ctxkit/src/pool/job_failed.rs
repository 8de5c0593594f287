//! [`JobFailed`]: what a pool reports for a job that panicked or was aborted. Plain data, no
//! locking.

use std::error::Error as StdError;
use std::fmt;

/// A job of a pool did not complete: it panicked (its worker caught the panic, reported it as
/// this job's failure, and went on with the next job), or, in an async pool, its tokio runtime
/// shut down while it ran ([`is_aborted`](JobFailed::is_aborted)).
///
/// Its text is `ctxkit::pool: job <index> panicked: <message>` (or `... aborted: its tokio
/// runtime shut down before it finished`), where `index` counts the jobs from 0 in the order
/// they entered the pool (the input's order for a map, the order of accepted submissions for
/// [`Workers`](super::Workers)).
///
/// # Examples
///
/// ```
/// use ctxkit::pool::Pool;
/// use ctxkit::Context;
///
/// let results: Vec<_> = Pool::new(2)
///     .map_ordered(&Context::background(), 1..=3, |_ctx, n: u32| {
///         if n == 2 {
///             panic!("two is not allowed");
///         }
///         n * 10
///     })
///     .collect();
/// assert_eq!(results[0], Ok(10));
/// let failed = results[1].as_ref().unwrap_err();
/// assert!(failed.is_panic());
/// assert_eq!(failed.index(), 1);
/// assert_eq!(failed.message(), "two is not allowed");
/// assert_eq!(failed.to_string(), "ctxkit::pool: job 1 panicked: two is not allowed");
/// assert_eq!(results[2], Ok(30));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobFailed {
    index: u64,
    message: String,
    aborted: bool,
}

/// The message of an aborted job.
const ABORTED: &str = "its tokio runtime shut down before it finished";

impl JobFailed {
    /// Job `index` panicked with `message`.
    pub(crate) fn panicked(index: u64, message: String) -> JobFailed {
        JobFailed {
            index,
            message,
            aborted: false,
        }
    }

    /// Job `index`'s future was dropped before it completed (its worker task was).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code, reason = "async pools only"))]
    pub(crate) fn aborted(index: u64) -> JobFailed {
        JobFailed {
            index,
            message: ABORTED.to_owned(),
            aborted: true,
        }
    }

    /// True if the job panicked.
    ///
    /// # Examples
    ///
    /// See [`JobFailed`].
    pub fn is_panic(&self) -> bool {
        !self.aborted
    }

    /// True if the job was aborted: an async pool's job whose tokio runtime shut down while it
    /// ran.
    ///
    /// # Examples
    ///
    /// See [`JobFailed`].
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// The job's number: jobs are counted from 0 in the order they entered the pool.
    ///
    /// # Examples
    ///
    /// See [`JobFailed`].
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The panic's message (`"Box<dyn Any>"` when the payload was neither `&str` nor `String`),
    /// or why the job was aborted.
    ///
    /// # Examples
    ///
    /// See [`JobFailed`].
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for JobFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.aborted { "aborted" } else { "panicked" };
        write!(
            f,
            "ctxkit::pool: job {} {what}: {}",
            self.index, self.message
        )
    }
}

impl StdError for JobFailed {}
