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

// ===== Rate section: the limiter's sequence lock, and the one spin-then-yield back-off =====
//
// Added for `rate/limiter.rs` (its configuration's sequence lock, modeled in
// `rate/tests/loom_limiter.rs`) and shared with `context/tree.rs` (`wait_walked`). Kept
// together at the end of the file so that it can change without touching the sections above.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU64};

/// How a thread waits for another that is a few instructions from done and holds nothing the
/// waiter needs to give up: a sequence-lock writer (`rate/limiter.rs`), a cancel's subtree walk
/// (`context/tree.rs`, `wait_walked`). The one copy of spin-then-yield in the crate.
///
/// The first [`Backoff::SPINS`] rounds spin with a pause hint (the common case: the other
/// thread is running on another core and finishes in nanoseconds); every later round yields
/// the time slice (the other thread was preempted, and spinning would only delay it on a
/// loaded core). Under loom every round yields: a model must see each spin as a yield, or it
/// cannot tell a spin loop from a livelock.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    /// Rounds spun so far; stops counting at [`Backoff::SPINS`].
    spins: u32,
}

impl Backoff {
    /// Rounds spun before the first yield.
    pub(crate) const SPINS: u32 = 64;

    pub(crate) const fn new() -> Backoff {
        Backoff { spins: 0 }
    }

    /// Waits one round: a pause hint while spinning, then a yield of the time slice.
    #[inline]
    pub(crate) fn snooze(&mut self) {
        if cfg!(not(loom)) && self.spins < Backoff::SPINS {
            self.spins += 1;
            std::hint::spin_loop();
        } else {
            yield_now();
        }
    }
}
