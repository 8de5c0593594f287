//! Where a node's children live once it has more than one at a time: [`Shards`], four slabs of
//! weak references, each behind its own lock on its own cache line, and the encoding of a
//! child's place in them (its `slot`).
//!
//! This file stores and finds; it decides nothing. *When* a child may be linked into a shard,
//! and what a completed parent means for it, is the tree's business (`tree.rs`, invariants 3, 7
//! and 9); the functions here are called with those rules already applied. The storage is
//! generic over the child type so that it needs nothing from the tree.
//!
//! # Invariants
//!
//! 1. A `Shard`'s `entries[i]` is a live child's `Weak` iff `i` is not on `free`; `live`
//!    counts those entries. Indices are below `1 << INDEX_BITS`.
//! 2. `Shards::used` bit `i` set means shard `i` may hold children; bits are only set (by the
//!    tree, under the parent's lock) and read, never cleared here.
//!
//! # Memory
//!
//! A slab that empties out forgets its entries but keeps its room (the capacity of `entries`
//! and `free`: at most 24 bytes per child of its peak, usually 12 to 18), until the parent is
//! completed or dropped, when the shards are emptied for good. A parent whose children come and
//! go in waves (a server's root context and its requests) then links and unlinks without
//! allocating once it has seen its peak, as Go's `children` map keeps its buckets. Giving the
//! room back at each emptying made every wave grow the vectors again, one reallocation per
//! doubling, and a large free or reallocation also makes the system's allocator consolidate its
//! small free chunks (BENCHMARKS.md, "The emptied child slab keeps its room").
//!
//! A parent keeps the sum of its four slabs' peaks: its largest number of children at once when
//! the same threads link them from wave to wave, and at most four times that when the linking
//! threads change (each new thread takes the next shard).
//!
//! # Lock order
//!
//! A shard's lock is a leaf: nothing is locked under it. The tree takes it with no node lock
//! held (see "Lock order" in `tree.rs`).

use crate::sync::{AtomicU8, Mutex, MutexGuard, Ordering, Weak};

/// Number of child shards per parent.
pub(crate) const SHARDS: usize = 4;

/// Bits of a slot that hold the index; the shard is above them.
const INDEX_BITS: u32 = 29;

/// The "shard" number of a parent's inline place (`Inner::first_child` in `tree.rs`).
pub(crate) const INLINE: usize = SHARDS;

/// A slot: where a child is linked in its parent.
pub(crate) type Slot = u32;

/// The slot of a child that is in no place of its parent.
pub(crate) const UNLINKED: Slot = u32::MAX;

/// The slot of a child in its parent's inline place.
pub(crate) const INLINE_SLOT: Slot = (INLINE as u32) << INDEX_BITS;

#[inline]
pub(crate) fn encode_slot(shard: usize, index: u32) -> Slot {
    debug_assert!(index < 1 << INDEX_BITS);
    ((shard as u32) << INDEX_BITS) | index
}

/// The shard (or [`INLINE`]) and the index of a linked slot.
#[inline]
pub(crate) fn decode_slot(slot: Slot) -> (usize, u32) {
    (
        (slot >> INDEX_BITS) as usize,
        slot & ((1 << INDEX_BITS) - 1),
    )
}

/// The shard this thread links children into: threads take shards in turn.
#[inline]
pub(crate) fn shard_index() -> usize {
    #[cfg(not(loom))]
    {
        use crate::sync::AtomicUsize;
        use std::cell::Cell;
        crate::sync::lazy_static! {
            static ref NEXT: AtomicUsize = AtomicUsize::new(0);
        }
        thread_local! {
            static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        SHARD.with(|shard| {
            if shard.get() == usize::MAX {
                shard.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            shard.get()
        })
    }
    #[cfg(loom)]
    {
        0
    }
}

/// The child shards of one parent.
pub(crate) struct Shards<T> {
    /// Invariant 2.
    used: AtomicU8,
    shards: [Padded<Mutex<Shard<T>>>; SHARDS],
}

/// Keeps each shard on a cache line of its own.
#[repr(align(64))]
struct Padded<T>(T);

/// A slab of weak references to linked children (invariant 1).
pub(crate) struct Shard<T> {
    entries: Vec<Weak<T>>,
    free: Vec<u32>,
    live: u32,
}

impl<T> Default for Shard<T> {
    fn default() -> Self {
        Shard {
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<T> Default for Shards<T> {
    fn default() -> Self {
        Shards {
            used: AtomicU8::new(0),
            shards: std::array::from_fn(|_| Padded(Mutex::new(Shard::default()))),
        }
    }
}

impl<T> Shards<T> {
    /// The `used` bits (invariant 2).
    #[inline]
    pub(crate) fn used(&self) -> u8 {
        self.used.load(Ordering::Acquire)
    }

    /// Sets shard `shard`'s `used` bit; the caller holds the parent's lock (tree invariant 7).
    #[inline]
    pub(crate) fn mark_used(&self, shard: usize) {
        self.used.fetch_or(1 << shard, Ordering::Release);
    }

    /// Locks shard `shard`.
    #[inline]
    pub(crate) fn lock(&self, shard: usize) -> MutexGuard<'_, Shard<T>> {
        self.shards[shard].0.lock()
    }

    /// Empties the shards named by `used` and returns their entries (dead ones included).
    pub(crate) fn take(&self, used: u8) -> Vec<Weak<T>> {
        let mut children: Vec<Weak<T>> = Vec::new();
        for (shard, slab) in self.shards.iter().enumerate() {
            if used & (1 << shard) != 0 {
                let mut slab = slab.0.lock();
                if slab.live != 0 {
                    // Usually one shard holds them all: take its storage as it is.
                    if children.is_empty() {
                        children = std::mem::take(&mut slab.entries);
                    } else {
                        children.append(&mut slab.entries);
                    }
                }
                *slab = Shard::default();
            }
        }
        children
    }

    /// Children linked in all shards (tests and `Debug`).
    pub(crate) fn live(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.0.lock().live as usize)
            .sum()
    }
}

impl<T> Shard<T> {
    /// Stores `child` and returns its index (invariant 1).
    ///
    /// # Panics
    ///
    /// Past `1 << INDEX_BITS` (500 million) children in one shard: no program gets there.
    #[inline]
    pub(crate) fn insert(&mut self, child: Weak<T>) -> u32 {
        let index = match self.free.pop() {
            Some(index) => {
                self.entries[index as usize] = child;
                index
            }
            None => {
                self.entries.push(child);
                u32::try_from(self.entries.len() - 1)
                    .ok()
                    .filter(|&index| index < 1 << INDEX_BITS)
                    .expect("ctxkit: more than 500 million children of one context")
            }
        };
        self.live += 1;
        index
    }

    /// Forgets the child at `index` if it is the one at address `me` (invariant 1). An emptied
    /// slab forgets its entries and keeps its room (see "Memory" above): it grows only to the
    /// peak of children linked at once.
    pub(crate) fn remove(&mut self, index: u32, me: *const T) {
        let Some(entry) = self.entries.get_mut(index as usize) else {
            return;
        };
        debug_assert!(
            std::ptr::eq(entry.as_ptr(), me),
            "a child's slot names another child"
        );
        if !std::ptr::eq(entry.as_ptr(), me) {
            return;
        }
        *entry = Weak::new();
        self.free.push(index);
        self.live -= 1;
        if self.live == 0 {
            self.entries.clear();
            self.free.clear();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn slots_round_trip() {
        for shard in 0..=INLINE {
            for index in [0, 1, 12345, (1 << INDEX_BITS) - 1] {
                assert_eq!(decode_slot(encode_slot(shard, index)), (shard, index));
            }
        }
        assert_eq!(decode_slot(INLINE_SLOT), (INLINE, 0));
        assert_ne!(INLINE_SLOT, UNLINKED);
    }

    #[test]
    fn a_slab_reuses_freed_indices_and_forgets_when_empty() {
        let children: Vec<Arc<u32>> = (0..3).map(Arc::new).collect();
        let mut slab = Shard::default();
        let indices: Vec<u32> = children
            .iter()
            .map(|c| slab.insert(Arc::downgrade(c)))
            .collect();
        assert_eq!(indices, [0, 1, 2]);
        slab.remove(1, Arc::as_ptr(&children[1]));
        assert_eq!(slab.live, 2);
        assert_eq!(
            slab.insert(Arc::downgrade(&children[1])),
            1,
            "index 1 reused"
        );
        for (i, child) in children.iter().enumerate() {
            slab.remove(i as u32, Arc::as_ptr(child));
        }
        assert_eq!(slab.live, 0);
        assert!(slab.entries.is_empty() && slab.free.is_empty());
    }

    #[test]
    fn an_emptied_slab_keeps_its_room_for_the_next_wave() {
        let children: Vec<Arc<u32>> = (0..1000).map(Arc::new).collect();
        let mut slab = Shard::default();
        let mut room = None;
        for wave in 0..3 {
            let indices: Vec<u32> = children
                .iter()
                .map(|c| slab.insert(Arc::downgrade(c)))
                .collect();
            assert_eq!(indices, (0..1000).collect::<Vec<u32>>(), "wave {wave}");
            let storage = (slab.entries.as_ptr(), slab.entries.capacity());
            // Unlinked in another order than linked, as requests end.
            for (i, child) in children.iter().enumerate().rev() {
                slab.remove(i as u32, Arc::as_ptr(child));
            }
            assert_eq!(slab.live, 0);
            assert!(slab.entries.is_empty() && slab.free.is_empty());
            assert!(
                slab.entries.capacity() >= 1000,
                "wave {wave} gave the room back"
            );
            assert!(
                slab.free.capacity() >= 1000,
                "the free list keeps its room too"
            );
            match room {
                None => room = Some(storage),
                Some(first) => assert_eq!(storage, first, "wave {wave} grew the slab again"),
            }
        }
    }

    #[test]
    fn take_empties_only_the_used_shards() {
        let children: Vec<Arc<u32>> = (0..4).map(Arc::new).collect();
        let shards = Shards::default();
        for (shard, child) in children.iter().enumerate() {
            shards.mark_used(shard);
            shards.lock(shard).insert(Arc::downgrade(child));
        }
        assert_eq!(shards.live(), 4);
        let taken = shards.take(0b0101);
        assert_eq!(taken.len(), 2);
        assert_eq!(shards.live(), 2, "shards 1 and 3 untouched");
        assert_eq!(shards.used(), 0b1111, "bits are never cleared here");
    }
}
