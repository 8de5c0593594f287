//! The std/loom switch for every lock, atomic and park that ctxkit's concurrent core uses.
//!
//! Under `--cfg loom` (the model-checking job of `.ci/run`) the mutex, condition variable,
//! atomics and thread parking come from [`loom`](https://docs.rs/loom), so the models in
//! `context/tests/loom_tree.rs` explore every interleaving of them. Everywhere else they are
//! std's.
//!
//! `Arc` and `Weak` are always std's: loom's `Arc` has no `Weak`, and the reference counts are
//! std's own well-tested code. loom therefore explores our locks and state words, not the
//! reference counting.
//!
//! # Poisoning
//!
//! ctxkit runs no user callback while it holds one of these locks (after-functions run on their
//! own threads, wakers are woken after the lock is released, replaced wakers and reasons are
//! dropped after it). What can still happen under a lock is a `Waker::clone` or `will_wake` (the
//! executor's code) and the two size `expect`s named in `context/tree.rs`. A poisoned lock holds
//! consistent data in every such case, so [`Mutex::lock`] ignores poisoning rather than turning
//! one panic into many.

pub(crate) use std::sync::{Arc, Weak};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU8, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

#[cfg(loom)]
pub(crate) use loom::thread::{current as current_thread, park, Thread};
#[cfg(not(loom))]
pub(crate) use std::thread::{current as current_thread, park, park_timeout, Thread};

#[cfg(loom)]
pub(crate) use loom::thread::yield_now;
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;

/// loom has no timed park; a model never waits for time to pass, so a plain park stands in.
#[cfg(loom)]
pub(crate) fn park_timeout(_timeout: std::time::Duration) {
    loom::thread::yield_now();
}

/// A value initialized at most once, on first use, then read without a lock.
///
/// std's `OnceLock` normally. loom has no `OnceLock`, so under `--cfg loom` the value is built
/// eagerly at construction (inside the model), which keeps every use of it visible to loom.
#[derive(Debug)]
pub(crate) struct OnceBox<T: Default> {
    #[cfg(not(loom))]
    cell: std::sync::OnceLock<Box<T>>,
    #[cfg(loom)]
    cell: Box<T>,
}

impl<T: Default> OnceBox<T> {
    pub(crate) fn new() -> Self {
        OnceBox {
            #[cfg(not(loom))]
            cell: std::sync::OnceLock::new(),
            #[cfg(loom)]
            cell: Box::default(),
        }
    }

    /// The value, if it has been initialized.
    pub(crate) fn get(&self) -> Option<&T> {
        #[cfg(not(loom))]
        {
            self.cell.get().map(|b| &**b)
        }
        #[cfg(loom)]
        {
            Some(&self.cell)
        }
    }

    /// The value, initialized with `T::default()` on first use.
    pub(crate) fn get_or_init(&self) -> &T {
        #[cfg(not(loom))]
        {
            self.cell.get_or_init(Box::default)
        }
        #[cfg(loom)]
        {
            &self.cell
        }
    }
}

#[cfg(loom)]
use loom::sync as inner;
#[cfg(not(loom))]
use std::sync as inner;

/// A mutex whose `lock` never reports poisoning (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(inner::Mutex<T>);

/// The guard of [`Mutex`].
pub(crate) type MutexGuard<'a, T> = inner::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(inner::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
