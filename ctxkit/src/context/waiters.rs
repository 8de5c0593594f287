//! The list of parties waiting for one context to be done: async tasks, parked threads and
//! after-functions.
//!
//! A slab: each waiter gets a `u32` key that stays valid until that waiter removes itself or
//! the list is taken by the cancel that completes the node. A `Done` future that is polled
//! again replaces its waker in place; one that is dropped early removes its entry in O(1), so
//! `select!` loops that create and drop `done()` futures do not grow the list.
//!
//! # Invariants
//!
//! 1. Every `Vacant` slot is on the free list exactly once; `free` is its head.
//! 2. `occupied` counts the `Occupied` slots; when it falls to zero the storage is released.
//! 3. The list is guarded by its node's `inner` mutex (see `tree.rs`); nothing here locks.
//!
//! A node keeps one task's waker outside any list, inline (`tree.rs`, `Inner::waker`: the
//! awaited request allocates no list); this list holds the others, and [`Taken`] carries that
//! inline one along with them to the completion's notifications.

use std::fmt;
use std::task::Waker;

use crate::context::deferred::Deferred;
use crate::sync::{Arc, Thread};

/// One party waiting for a context to be done.
pub(crate) enum Waiter {
    /// An async task: woken with `wake`.
    Task(Waker),
    /// A blocked thread: woken with `unpark`.
    Thread(Thread),
    /// A function registered with `after_func`: handed to the after-function pool.
    AfterFunc(Arc<Deferred>),
}

impl Waiter {
    /// Tells the waiter its context is done: wakes a task, unparks a thread, and adds an
    /// after-function to `started`, the batch the completion hands to the pool untouched
    /// ([`Taken::notify_all`]). Runs no user code on this thread.
    fn notify(self, started: &mut Vec<Arc<Deferred>>) {
        match self {
            Waiter::Task(waker) => waker.wake(),
            Waiter::Thread(thread) => thread.unpark(),
            // Not touched here: the pool's dispatcher takes its job (`Deferred::take_job_at`).
            Waiter::AfterFunc(shared) => started.push(shared),
        }
    }
}

impl fmt::Debug for Waiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiter::Task(_) => f.write_str("Task"),
            Waiter::Thread(_) => f.write_str("Thread"),
            Waiter::AfterFunc(_) => f.write_str("AfterFunc"),
        }
    }
}

const NONE: u32 = u32::MAX;

enum Slot {
    Occupied(Waiter),
    Vacant { next_free: u32 },
}

/// A slab of waiters (see the module docs). Key 0 lives inline in `first`, so the common case,
/// one waiter, allocates nothing beyond the node's extras; keys from 1 live in `rest`.
pub(crate) struct Waiters {
    /// Slot 0.
    first: Slot,
    /// Slots 1, 2, ...
    rest: Vec<Slot>,
    /// Head of the free list of vacant slots (invariant 1), or `NONE`.
    free: u32,
    /// Number of occupied slots (invariant 2).
    occupied: u32,
}

impl Waiters {
    pub(crate) const fn new() -> Self {
        Waiters {
            // Invariant 1: slot 0 starts vacant, alone on the free list.
            first: Slot::Vacant { next_free: NONE },
            rest: Vec::new(),
            free: 0,
            occupied: 0,
        }
    }

    fn slot(&mut self, key: u32) -> Option<&mut Slot> {
        match key {
            0 => Some(&mut self.first),
            _ => self.rest.get_mut(key as usize - 1),
        }
    }

    /// Adds a waiter; returns its key.
    pub(crate) fn insert(&mut self, waiter: Waiter) -> u32 {
        self.occupied += 1;
        if self.free != NONE {
            let key = self.free;
            if let Some(slot) = self.slot(key) {
                let next_free = match *slot {
                    Slot::Vacant { next_free } => next_free,
                    Slot::Occupied(_) => NONE,
                };
                *slot = Slot::Occupied(waiter);
                self.free = next_free;
                return key;
            }
        }
        let key = u32::try_from(self.rest.len() + 1)
            .ok()
            .filter(|&key| key != NONE)
            .expect("ctxkit: more than 4 billion waiters on one context");
        self.rest.push(Slot::Occupied(waiter));
        key
    }

    /// The waiter under `key`, if it is still there.
    pub(crate) fn get_mut(&mut self, key: u32) -> Option<&mut Waiter> {
        match self.slot(key) {
            Some(Slot::Occupied(waiter)) => Some(waiter),
            _ => None,
        }
    }

    /// Removes and returns the waiter under `key`, if it is still there.
    pub(crate) fn remove(&mut self, key: u32) -> Option<Waiter> {
        let free = self.free;
        let slot = self.slot(key)?;
        if !matches!(slot, Slot::Occupied(_)) {
            return None;
        }
        let old = std::mem::replace(slot, Slot::Vacant { next_free: free });
        self.free = key;
        self.occupied -= 1;
        if self.occupied == 0 {
            // Invariant 2: nobody waits; give the storage back.
            *self = Waiters::new();
        }
        match old {
            Slot::Occupied(waiter) => Some(waiter),
            Slot::Vacant { .. } => None,
        }
    }

    /// Takes every waiter out, leaving the list empty. The storage moves with them, so taking
    /// allocates nothing.
    pub(crate) fn take_all(&mut self) -> Taken {
        let first = std::mem::replace(&mut self.first, Slot::Vacant { next_free: NONE });
        let rest = std::mem::take(&mut self.rest);
        self.free = 0;
        self.occupied = 0;
        Taken(None, first, rest)
    }

    /// Number of waiters.
    pub(crate) fn len(&self) -> usize {
        self.occupied as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.occupied == 0
    }
}

/// Waiters taken out of a list by [`Waiters::take_all`] (and the node's inline waiter, if any:
/// [`Taken::with_inline`]), to notify once no lock is held.
pub(crate) struct Taken(Option<Waiter>, Slot, Vec<Slot>);

impl Taken {
    /// An empty set.
    pub(crate) const fn none() -> Taken {
        Taken(None, Slot::Vacant { next_free: NONE }, Vec::new())
    }

    /// This set with `inline` (the node's own waiter place, outside any list) notified first.
    pub(crate) fn with_inline(self, inline: Option<Waiter>) -> Taken {
        debug_assert!(self.0.is_none(), "one inline waiter per set");
        Taken(inline, self.1, self.2)
    }

    /// Notifies every waiter (see [`Waiter::notify`]); the after-functions are handed to the
    /// pool together, after the walk, untouched, under one take of its intake's lock (10,000
    /// of them on one context would otherwise take it 10,000 times, against its dispatcher,
    /// and visit 10,000 registrations' memory on the canceling thread). They are started from
    /// here on: their `stop` lost when the completion took this list (`after_func.rs`).
    pub(crate) fn notify_all(self) {
        let Taken(inline, first, rest) = self;
        let mut started = Vec::new();
        if let Some(waiter) = inline {
            waiter.notify(&mut started);
        }
        if let Slot::Occupied(waiter) = first {
            waiter.notify(&mut started);
        }
        for slot in rest {
            if let Slot::Occupied(waiter) = slot {
                waiter.notify(&mut started);
            }
        }
        if !started.is_empty() {
            crate::context::deferred::hand_off_started(started);
        }
    }
}

impl Default for Waiters {
    fn default() -> Self {
        Waiters::new()
    }
}

impl fmt::Debug for Waiters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiters").field("len", &self.len()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn thread_waiter() -> Waiter {
        Waiter::Thread(std::thread::current())
    }

    #[test]
    fn keys_are_reused_and_storage_released() {
        let mut list = Waiters::new();
        let a = list.insert(thread_waiter());
        let b = list.insert(thread_waiter());
        assert_eq!(list.len(), 2);
        assert!(list.remove(a).is_some());
        assert!(list.remove(a).is_none(), "a key is removed once");
        let c = list.insert(thread_waiter());
        assert_eq!(c, a, "the vacant slot is reused");
        assert!(list.remove(b).is_some());
        assert!(list.remove(c).is_some());
        assert!(list.is_empty());
        assert_eq!(list.rest.capacity(), 0, "storage released when empty");
    }

    #[test]
    fn take_all_returns_only_occupied() {
        let mut list = Waiters::new();
        let keys: Vec<u32> = (0..5).map(|_| list.insert(thread_waiter())).collect();
        list.remove(keys[1]);
        list.remove(keys[3]);
        let taken = list.take_all();
        let occupied = std::iter::once(&taken.1)
            .chain(&taken.2)
            .filter(|s| matches!(s, Slot::Occupied(_)))
            .count();
        assert_eq!(occupied, 3);
        assert!(list.is_empty());
        assert!(list.get_mut(keys[0]).is_none());
    }
}
