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

use std::fmt;
use std::task::Waker;

use crate::context::after_func::AfterFuncShared;
use crate::sync::{Arc, Thread};

/// One party waiting for a context to be done.
pub(crate) enum Waiter {
    /// An async task: woken with `wake`.
    Task(Waker),
    /// A blocked thread: woken with `unpark`.
    Thread(Thread),
    /// A function registered with `after_func`: started on its own thread.
    AfterFunc(Arc<AfterFuncShared>),
}

impl Waiter {
    /// Tells the waiter its context is done. Runs no user code on this thread.
    pub(crate) fn notify(self) {
        match self {
            Waiter::Task(waker) => waker.wake(),
            Waiter::Thread(thread) => thread.unpark(),
            Waiter::AfterFunc(shared) => shared.start(),
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

/// A slab of waiters (see the module docs).
pub(crate) struct Waiters {
    slots: Vec<Slot>,
    /// Head of the free list of vacant slots (invariant 1), or `NONE`.
    free: u32,
    /// Number of occupied slots (invariant 2).
    occupied: u32,
}

impl Waiters {
    pub(crate) const fn new() -> Self {
        Waiters {
            slots: Vec::new(),
            free: NONE,
            occupied: 0,
        }
    }

    /// Adds a waiter; returns its key.
    pub(crate) fn insert(&mut self, waiter: Waiter) -> u32 {
        self.occupied += 1;
        if self.free != NONE {
            let key = self.free;
            let slot = &mut self.slots[key as usize];
            if let Slot::Vacant { next_free } = *slot {
                self.free = next_free;
            }
            *slot = Slot::Occupied(waiter);
            return key;
        }
        if self.slots.capacity() == 0 {
            // Most contexts are waited on by one party: do not reserve four slots for it.
            self.slots.reserve_exact(1);
        }
        let key = u32::try_from(self.slots.len())
            .expect("ctxkit: more than 4 billion waiters on one context");
        self.slots.push(Slot::Occupied(waiter));
        key
    }

    /// The waiter under `key`, if it is still there.
    pub(crate) fn get_mut(&mut self, key: u32) -> Option<&mut Waiter> {
        match self.slots.get_mut(key as usize) {
            Some(Slot::Occupied(waiter)) => Some(waiter),
            _ => None,
        }
    }

    /// Removes and returns the waiter under `key`, if it is still there.
    pub(crate) fn remove(&mut self, key: u32) -> Option<Waiter> {
        let slot = self.slots.get_mut(key as usize)?;
        if !matches!(slot, Slot::Occupied(_)) {
            return None;
        }
        let old = std::mem::replace(
            slot,
            Slot::Vacant {
                next_free: self.free,
            },
        );
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
        let slots = std::mem::take(&mut self.slots);
        *self = Waiters::new();
        Taken(slots)
    }

    /// Number of waiters.
    pub(crate) fn len(&self) -> usize {
        self.occupied as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.occupied == 0
    }
}

/// Waiters taken out of a list by [`Waiters::take_all`], to notify once no lock is held.
pub(crate) struct Taken(Vec<Slot>);

impl Taken {
    /// An empty set.
    pub(crate) const fn none() -> Taken {
        Taken(Vec::new())
    }

    /// Notifies every waiter (see [`Waiter::notify`]).
    pub(crate) fn notify_all(self) {
        for slot in self.0 {
            if let Slot::Occupied(waiter) = slot {
                waiter.notify();
            }
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
        assert_eq!(list.slots.capacity(), 0, "storage released when empty");
    }

    #[test]
    fn take_all_returns_only_occupied() {
        let mut list = Waiters::new();
        let keys: Vec<u32> = (0..5).map(|_| list.insert(thread_waiter())).collect();
        list.remove(keys[1]);
        list.remove(keys[3]);
        let taken = list.take_all();
        assert_eq!(
            taken
                .0
                .iter()
                .filter(|s| matches!(s, Slot::Occupied(_)))
                .count(),
            3
        );
        assert!(list.is_empty());
        assert!(list.get_mut(keys[0]).is_none());
    }
}
