//! [`worker_id`]: which worker of a pool runs the calling job. A thread-local, set by a thread
//! worker for its whole life and by a worker task around each poll of its job's future.

use std::cell::Cell;

thread_local! {
    /// The number of the worker whose job runs on this thread now, if any.
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The number (from 1, in the order the pool started its workers) of the pool worker running
/// the calling job, or `None` outside a pool's job. For logs and for the chapter's
/// "worker 2 squared 3 = 9"; the pool's scheduling never depends on it.
///
/// # Examples
///
/// ```
/// use ctxkit::pool::{self, Pool};
/// use ctxkit::Context;
///
/// let ids: Vec<usize> = Pool::new(3)
///     .map(&Context::background(), 1..=7, |_ctx, _n: u32| pool::worker_id().unwrap())
///     .map(Result::unwrap)
///     .collect();
/// assert!(ids.iter().all(|id| (1..=3).contains(id)));
/// assert_eq!(pool::worker_id(), None); // not a pool's job
/// ```
pub fn worker_id() -> Option<usize> {
    CURRENT.with(Cell::get)
}

/// Makes `id` the current worker's number until the guard is dropped (the previous one is
/// restored).
pub(crate) fn enter(id: usize) -> Entered {
    Entered(CURRENT.with(|current| current.replace(Some(id))))
}

/// Restores the previous worker number when dropped.
#[must_use = "the number is current only until the guard is dropped"]
pub(crate) struct Entered(Option<usize>);

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.0));
    }
}
