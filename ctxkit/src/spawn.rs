//! The one place ctxkit starts a thread.
//!
//! Every thread the library starts (the `ctxkit-timer` thread, after-function threads) goes
//! through [`try_spawn_named`], which records its name, the place in ctxkit that started it and
//! when, for as long as it runs. That record is what a leak report can name; nothing else in
//! the crate calls `std::thread::spawn`.
//!
//! # Invariants
//!
//! 1. A thread is in `LIVE` from just before it starts running until its closure has returned
//!    or unwound (a drop guard removes it).
//! 2. `LIVE`'s lock is a leaf: nothing is taken under it, and no user code runs under it.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// What is known about one thread ctxkit started.
#[derive(Clone, Debug)]
#[allow(dead_code, reason = "read by a leak report; tests read `name`")]
pub(crate) struct ThreadInfo {
    /// The thread's name.
    pub(crate) name: &'static str,
    /// Where in ctxkit it was started.
    pub(crate) spawned_at: &'static Location<'static>,
    /// When it was started.
    pub(crate) started: Instant,
}

static LIVE: Mutex<Option<HashMap<u64, ThreadInfo>>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

struct Registration(u64);

impl Drop for Registration {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(map) = live.as_mut() {
            map.remove(&self.0);
        }
    }
}

/// Starts a named thread running `f` and records it while it runs.
///
/// # Errors
///
/// The OS's error if it refuses to create a thread; `f` is handed back so the caller can decide
/// what to do with it.
#[track_caller]
pub(crate) fn try_spawn_named<F>(
    name: &'static str,
    f: F,
) -> Result<(), (std::io::Error, Option<F>)>
where
    F: FnOnce() + Send + 'static,
{
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let info = ThreadInfo {
        name,
        spawned_at: Location::caller(),
        started: Instant::now(),
    };
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(id, info);
    let registration = Registration(id);
    // The closure travels in a slot so that it can be handed back if the spawn fails.
    let slot = std::sync::Arc::new(Mutex::new(Some(f)));
    let thread_slot = slot.clone();
    let spawned = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _registration = registration;
            let f = thread_slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(f) = f {
                f();
            }
        });
    match spawned {
        Ok(_detached) => Ok(()),
        Err(error) => {
            let f = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            Err((error, f))
        }
    }
}

/// The threads ctxkit has started that are still running.
#[allow(dead_code, reason = "read by the leak checker and tests")]
pub(crate) fn live_threads() -> Vec<ThreadInfo> {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(|map| map.values().cloned().collect())
        .unwrap_or_default()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn records_a_thread_while_it_runs() {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let spawned = try_spawn_named("ctxkit-test-spawn", move || {
            started_tx.send(()).unwrap();
            let _ = finish_rx.recv();
        });
        assert!(spawned.is_ok());
        started_rx.recv().unwrap();
        assert!(live_threads().iter().any(|t| t.name == "ctxkit-test-spawn"));
        drop(finish_tx);
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while live_threads().iter().any(|t| t.name == "ctxkit-test-spawn") {
            assert!(Instant::now() < deadline, "the thread never deregistered");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
