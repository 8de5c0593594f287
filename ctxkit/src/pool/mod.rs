//! Worker pools: a fixed number of workers running jobs from a bounded queue, with
//! back-pressure, cancellation through a [`Context`](crate::Context), and a graceful shutdown.
//!
//! A [`Pool`] is a size (how many workers, default [`max_procs`](crate::procs::max_procs)) and a
//! queue bound. It runs jobs in two shapes, each in a thread form and an async form (feature
//! `tokio`) that mean the same thing:
//!
//! | shape | threads | async (tokio) |
//! |---|---|---|
//! | one-shot: apply a function to every item of an input, get the results | [`Pool::map`] / [`Pool::map_ordered`] → [`Map`], an iterator | [`Pool::map_stream`] / [`Pool::map_stream_ordered`] → [`MapStream`], a stream |
//! | long-lived: start workers, submit jobs over time, shut down | [`Pool::start`] → [`Workers`] | [`Pool::start_async`] → [`AsyncWorkers`] |
//!
//! # The chapter's rules, kept by construction
//!
//! * **The input is pulled lazily.** A map pulls its input only as the bound leaves room: at
//!   most `queue + workers` jobs and results exist at once, so a million-job input never sits in
//!   memory, and a consumer that reads results slowly holds the workers back instead of growing
//!   a buffer.
//! * **Results end after the last worker, by ownership.** The results iterator (stream) ends
//!   once the input is exhausted and every job has delivered its result: there is no results
//!   channel to close, so it can be closed neither twice nor never.
//!
//!   The chapter's trap "do not close `results` from inside a worker" (with N workers it is
//!   closed N times, and the second close panics) cannot be written: a job is an `Fn` closure
//!   shared by every worker, so it cannot give away (close) anything it captures, and the
//!   results are not a channel of the caller's but the map's iterator. A job returns its
//!   result; the pool delivers it.
//!
//!   ```compile_fail,E0507
//!   use std::sync::mpsc;
//!   use ctxkit::pool::Pool;
//!   use ctxkit::Context;
//!
//!   let (results, _received) = mpsc::channel::<u64>();
//!   let map = Pool::new(3).map(&Context::background(), 1..=7u64, move |_ctx, n| {
//!       results.send(n * n).unwrap();
//!       drop(results); // error[E0507]: cannot move out of `results`, a captured variable in an `Fn` closure
//!   });
//!   ```
//!
//!   The `closing_results` example runs the safe pattern, and the Go pattern's channel version
//!   in Rust, where each worker's sender closes nothing but itself.
//! * **Every job sees the pool's context**, one derived from the context passed in; once it is
//!   done, queued jobs never start (Go's channel pattern starts them anyway: go#61611). A map
//!   then ends after the jobs that were running; the jobs pulled but never run are available
//!   from [`Map::into_unrun`], and the rest of the input was never pulled. A long-lived pool
//!   returns its unrun jobs from `shutdown`.
//! * **A panicking job is that job's failure.** The worker catches it, reports [`JobFailed`]
//!   (a map's item is `Result<T, JobFailed>`), and goes on with the next job.
//! * **Workers never outlive their pool.** Dropping a [`Map`] or [`Workers`] cancels the pool's
//!   context and *joins* the worker threads (so the drop waits for the jobs that are running to
//!   return; jobs that watch their context return at once). Dropping a [`MapStream`] or
//!   [`AsyncWorkers`] cancels the context and *aborts* the worker tasks (a drop cannot await):
//!   each task is dropped at its next `.await`.
//!
//! # Sizes
//!
//! `Pool::new(0)` means the default size, [`max_procs`](crate::procs::max_procs)(), as rayon's
//! `num_threads(0)` does. A queue bound of 0 is a rendezvous, as an unbuffered Go channel: a
//! submitted job is accepted only when a worker is free to take it, and a map keeps at most one
//! job per worker in flight.
//!
//! # Speed
//!
//! Jobs and results cross between the consumer and the workers in batches (one lock round trip
//! per batch, not per job); a worker doubles its batch while batches take under
//! 50 µs and halves it when they take long, so cheap jobs are handed over a
//! thousand at a time and slow ones one at a time. Workers are started as jobs arrive, up to
//! the pool's size, and a map whose input is a slice or a range is not split by index ranges
//! (as rayon does): every item is handed over, as in Go's pattern.
//!
//! # Coming from Go
//!
//! | Go (the chapter's 12.8) | ctxkit |
//! |---|---|
//! | `jobs := make(chan int, 100)`, `results := make(chan int, 100)`, `for w := 1; w <= 3; w++ { go worker(w, jobs, results) }`, a feeder goroutine, `wg.Wait(); close(results)` | `for r in Pool::new(3).queue(100).map(&ctx, inputs, \|ctx, job\| ...)` |
//! | results in completion order | [`Pool::map`] |
//! | results in input order (a slice indexed by job) | [`Pool::map_ordered`] |
//! | a long-lived pool fed over time | [`Pool::start`]: `submit`, `try_submit`, `shutdown` |
//! | `runtime.GOMAXPROCS(0)` workers | `Pool::new(0)` or `Pool::default()` |
//!
//! There is no Go package to mirror: the chapter builds its pool from channels, goroutines and
//! a `sync.WaitGroup`. What differs on purpose is listed above, under "The chapter's rules,
//! kept by construction"; above all, a job that panics is that job's [`JobFailed`], where a
//! panicking goroutine ends the whole Go program.
//!
//! # Examples
//!
//! The chapter's pool: 3 workers square 1..=7.
//!
//! ```
//! use ctxkit::pool::Pool;
//! use ctxkit::Context;
//!
//! let ctx = Context::background();
//! let mut squares: Vec<u64> = Pool::new(3)
//!     .map(&ctx, 1..=7u64, |_ctx, n| n * n)
//!     .map(|result| result.expect("no job panics"))
//!     .collect();
//! squares.sort();
//! assert_eq!(squares, [1, 4, 9, 16, 25, 36, 49]);
//! ```
//!
// Without the `tokio` feature there are no async pools: their links go to this page.
#![cfg_attr(
    not(feature = "tokio"),
    doc = "[`Pool::map_stream`]: self\n[`Pool::map_stream_ordered`]: self\n[`MapStream`]: self",
    doc = "[`Pool::start_async`]: self\n[`AsyncWorkers`]: self"
)]

#[cfg(feature = "tokio")]
mod async_workers;
mod consumer;
mod job_failed;
mod map;
mod map_core;
#[cfg(feature = "tokio")]
mod map_stream;
mod submit_error;
mod worker_id;
mod workers;
mod workers_core;

#[cfg(feature = "tokio")]
pub use async_workers::AsyncWorkers;
pub use job_failed::JobFailed;
pub use map::Map;
#[cfg(feature = "tokio")]
pub use map_stream::MapStream;
pub use submit_error::{ShutdownReport, SubmitError, SubmitErrorKind};
pub use worker_id::worker_id;
pub use workers::Workers;

#[cfg(all(test, loom))]
mod tests;

use crate::procs;

/// The queue bound of [`Pool::new`]: how many jobs wait for a worker (a map also keeps up to
/// this many results waiting for the consumer).
pub const DEFAULT_QUEUE: usize = 1024;

/// A worker pool's shape: how many workers, how many jobs may wait for one. Cheap to copy; the
/// workers exist only while a [`Map`] or [`Workers`] made from it does.
///
/// # Examples
///
/// ```
/// use ctxkit::pool::Pool;
///
/// let pool = Pool::new(3).queue(100);
/// assert_eq!(pool.workers(), 3);
/// assert_eq!(pool.queue_bound(), 100);
///
/// let default = Pool::default(); // max_procs() workers
/// assert_eq!(default.workers(), ctxkit::procs::max_procs());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    workers: usize,
    queue: usize,
}

impl Pool {
    /// A pool of `workers` workers (0: [`max_procs`](crate::procs::max_procs)()) with a queue
    /// bound of [`DEFAULT_QUEUE`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::pool::Pool;
    ///
    /// assert_eq!(Pool::new(4).workers(), 4);
    /// assert_eq!(Pool::new(0).workers(), ctxkit::procs::max_procs());
    /// ```
    pub fn new(workers: usize) -> Pool {
        let workers = if workers == 0 {
            procs::max_procs()
        } else {
            workers
        };
        Pool {
            workers,
            queue: DEFAULT_QUEUE,
        }
    }

    /// The same pool with a queue bound of `bound` jobs (0: a rendezvous, see the module docs).
    ///
    /// # Examples
    ///
    /// ```
    /// use ctxkit::pool::Pool;
    ///
    /// assert_eq!(Pool::new(2).queue(0).queue_bound(), 0);
    /// ```
    #[must_use = "queue returns a new Pool; it does not change this one"]
    pub fn queue(self, bound: usize) -> Pool {
        Pool {
            queue: bound,
            ..self
        }
    }

    /// How many workers the pool runs.
    ///
    /// # Examples
    ///
    /// See [`Pool`].
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// How many jobs may wait for a worker.
    ///
    /// # Examples
    ///
    /// See [`Pool`].
    pub fn queue_bound(&self) -> usize {
        self.queue
    }

    /// A map's in-flight bound: queued jobs, running jobs and undelivered results together.
    fn in_flight_bound(&self) -> usize {
        self.queue.saturating_add(self.workers)
    }
}

impl Default for Pool {
    /// [`Pool::new(0)`](Pool::new): [`max_procs`](crate::procs::max_procs)() workers.
    fn default() -> Pool {
        Pool::new(0)
    }
}
