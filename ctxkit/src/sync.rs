//! The std/loom switch for every lock, condition variable, atomic and park that ctxkit's
//! concurrent code uses, and the one place a lock's poisoning is ignored.
//!
//! Under `--cfg loom` (the model-checking job of `.ci/run`) the mutex, condition variable,
//! atomics, thread parking and process-wide values come from [`loom`](https://docs.rs/loom), so
//! the models (`context/tests/`, `group/tests/`) explore every interleaving of them. Everywhere
//! else they are std's. Nothing outside this file and `spawn.rs` names std's locks, condition
//! variables or atomics.
//!
//! `Arc` and `Weak` are always std's: loom's `Arc` has no `Weak`, and the reference counts are
//! std's own well-tested code. loom therefore explores our locks and state words, not the
//! reference counting.
//!
//! # Poisoning
//!
//! ctxkit runs no user callback while it holds one of these locks (after-functions run on the
//! after-function pool's threads, wakers are woken after the lock is released, replaced wakers and reasons are
//! dropped after it, a group's tasks run and are dropped outside its lock). What can still
//! happen under a lock is a `Waker::clone` or `will_wake` (the executor's code) and the two size
//! `expect`s named in `context/tree.rs`. A poisoned lock holds consistent data in every such
//! case, so [`Mutex::lock`] and the waits of [`Condvar`] ignore poisoning rather than turning one
//! panic into many. They are the only poison-ignoring helpers in the crate.

pub(crate) use std::sync::{Arc, Weak};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};

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
/// `once_cell::race::OnceBox` normally: one pointer (std's `OnceLock<Box<T>>` is two words, and
/// this sits in every context node). Two threads that initialize it at once may each build a
/// value; one is kept and the other dropped, so `T::default()` must have no side effects (the
/// tree initializes it under the node's lock anyway). loom has no such cell; under `--cfg loom`
/// the value is built eagerly at construction (inside the model), which keeps every use of it
/// visible to loom.
#[derive(Debug)]
pub(crate) struct OnceBox<T: Default> {
    #[cfg(not(loom))]
    cell: once_cell::race::OnceBox<T>,
    #[cfg(loom)]
    cell: Box<T>,
}

impl<T: Default> OnceBox<T> {
    pub(crate) fn new() -> Self {
        OnceBox {
            #[cfg(not(loom))]
            cell: once_cell::race::OnceBox::new(),
            #[cfg(loom)]
            cell: Box::default(),
        }
    }

    /// The value, if it has been initialized.
    pub(crate) fn get(&self) -> Option<&T> {
        #[cfg(not(loom))]
        {
            self.cell.get()
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

/// A condition variable to use with [`Mutex`]; its waits ignore poisoning (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Condvar(inner::Condvar);

impl Condvar {
    pub(crate) fn new() -> Self {
        Condvar(inner::Condvar::new())
    }

    /// Releases `guard`'s lock and blocks until notified (or spuriously woken); locks again.
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0
            .wait(guard)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// As [`wait`](Condvar::wait), for at most `timeout`.
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: std::time::Duration,
    ) -> MutexGuard<'a, T> {
        match self.0.wait_timeout(guard, timeout) {
            Ok((guard, _)) => guard,
            Err(poisoned) => poisoned.into_inner().0,
        }
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    #[allow(dead_code, reason = "kept beside notify_one for the coming pool")]
    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

/// Declares a process-wide value built on first use: `static ref NAME: Type = init;`, read
/// through `Deref`.
///
/// A `static` [`LazyLock`](std::sync::LazyLock) normally. Under `--cfg loom` it is
/// `loom::lazy_static!`: each model execution builds its own value, inside the model (so the
/// locks it holds are loom's and start fresh), and drops it at the end. Such a value must then
/// be used only inside models.
macro_rules! lazy_static {
    ($(#[$attr:meta])* static ref $name:ident: $ty:ty = $init:expr;) => {
        #[cfg(not(loom))]
        $(#[$attr])*
        static $name: std::sync::LazyLock<$ty> = std::sync::LazyLock::new(|| $init);
        #[cfg(loom)]
        loom::lazy_static! {
            $(#[$attr])*
            static ref $name: $ty = $init;
        }
    };
}
pub(crate) use lazy_static;

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

// ===== park tokens =====
//
// How a parked party is woken, for the worker schedulers of `group` and `pool`: a task's
// `Waker`, or a parked `Thread`. Kept here because both forms of both patterns share it.

/// How a parked worker or waiter is woken: a task's [`Waker`](std::task::Waker), or a parked
/// [`Thread`].
pub(crate) trait Unpark: Clone {
    /// Wakes whoever registered this token.
    fn unpark(self);
    /// Whether `self` and `other` wake the same party (then a registered token is kept).
    fn is_same(&self, other: &Self) -> bool;
}

/// Stores `token` in `slot` unless the one there already wakes the same party (a clone only
/// when the party changed: a task polled again keeps its waker).
pub(crate) fn remember<P: Unpark>(slot: &mut Option<P>, token: &P) {
    if !slot.as_ref().is_some_and(|kept| kept.is_same(token)) {
        *slot = Some(token.clone());
    }
}

impl Unpark for std::task::Waker {
    fn unpark(self) {
        self.wake();
    }

    fn is_same(&self, other: &Self) -> bool {
        self.will_wake(other)
    }
}

impl Unpark for Thread {
    fn unpark(self) {
        Thread::unpark(&self);
    }

    fn is_same(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

/// A park token for unit tests of the pure cores: a name. The cores only store and return
/// tokens; tests check which ones come back.
#[cfg(all(test, not(loom)))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NamedToken(pub(crate) u32);

#[cfg(all(test, not(loom)))]
impl Unpark for NamedToken {
    fn unpark(self) {}

    fn is_same(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
