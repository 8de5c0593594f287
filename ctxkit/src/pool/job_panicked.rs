//! [`JobPanicked`]: what a pool reports for a job that panicked. Plain data, no locking.

use std::error::Error as StdError;
use std::fmt;

/// A job of a pool panicked: its worker caught the panic, reported it as this job's failure,
/// and went on with the next job.
///
/// Its text is `ctxkit::pool: job <index> panicked: <message>`, where `index` counts the jobs
/// from 0 in the order they entered the pool (the input's order for a map, the order of
/// accepted submissions for [`Workers`](super::Workers)).
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
/// assert_eq!(failed.index(), 1);
/// assert_eq!(failed.message(), "two is not allowed");
/// assert_eq!(failed.to_string(), "ctxkit::pool: job 1 panicked: two is not allowed");
/// assert_eq!(results[2], Ok(30));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobPanicked {
    index: u64,
    message: String,
}

impl JobPanicked {
    pub(crate) fn new(index: u64, message: String) -> JobPanicked {
        JobPanicked { index, message }
    }

    /// The job's number: jobs are counted from 0 in the order they entered the pool.
    ///
    /// # Examples
    ///
    /// See [`JobPanicked`].
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The panic's message (`"Box<dyn Any>"` when the payload was neither `&str` nor `String`).
    ///
    /// # Examples
    ///
    /// See [`JobPanicked`].
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for JobPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ctxkit::pool: job {} panicked: {}",
            self.index, self.message
        )
    }
}

impl StdError for JobPanicked {}
