//! Threads and tasks started the way ctxkit starts its own: named, with their spawn site
//! recorded, and inside the current leak check's scope, so that [`leak`](crate::leak) can
//! attribute them exactly and report where they came from. Otherwise they are `std`'s threads
//! and tokio's tasks, handles and all.
//!
//! Use them where `std::thread::spawn` or `tokio::spawn` would start work that must not
//! outlive a request or a test: a leak report then names the line that started it, and the
//! context it waits on.
//!
//! # Coming from Go
//!
//! Both stand where Go writes `go f()`. Differences on purpose: the unit has a name (goroutines
//! have none, so goleak shows a stack), its spawn site is recorded as goleak's "created by" line
//! is, and it returns a handle to join or await, which a goroutine does not have.

use std::io;
use std::thread::JoinHandle;

use crate::spawn::{self, Origin};

/// Starts a thread named `name` running `f`, as `std::thread::Builder::new().name(..).spawn(f)`
/// does, recorded for the leak checker with the caller's site.
///
/// # Errors
///
/// The OS's error if it refuses to create a thread.
///
/// # Examples
///
/// ```
/// let worker = ctxkit::tracked::thread("indexer", || 2 + 2).unwrap();
/// assert_eq!(worker.join().unwrap(), 4);
/// ```
#[track_caller]
pub fn thread<F, T>(name: &'static str, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn::try_spawn_thread(Origin::here(name), f)
}

/// Starts `future` as a task named `name` on the current tokio runtime, as `tokio::spawn`
/// does, recorded for the leak checker with the caller's site.
///
/// # Panics
///
/// Outside a tokio runtime, as `tokio::spawn` does.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let task = ctxkit::tracked::task("fetch-lyrics", async { "la la la" });
/// assert_eq!(task.await.unwrap(), "la la la");
/// # });
/// ```
#[cfg(feature = "tokio")]
#[track_caller]
pub fn task<F>(name: &'static str, future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let origin = Origin::here(name);
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        panic!("ctxkit::tracked::task: must be called from the context of a tokio runtime");
    };
    spawn::spawn_task(&runtime, origin, future)
}
