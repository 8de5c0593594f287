//! The cancel tree: every lock and atomic of the context core lives here, as free functions
//! over `&Arc<Node>`, so the public `Context` file holds no locking code.
//!
//! A [`Node`] exists for every cancelable context (`with_cancel`, `with_deadline`, ...). Value
//! layers and `without_cancel` add no node: a `Context` is a pair of pointers, its nearest node
//! and its innermost value layer (see `values.rs`).
//!
//! # The state word
//!
//! `Node::state` packs what readers need into one atomic, so [`is_done`] and [`err`] never lock:
//! the done kind ([`CANCELED`] or [`DEADLINE`]: set once, never changed), whether the
//! completion has run ([`COMPLETED`]) and finished walking the subtree ([`WALKED`]), whether the
//! node has a deadline ([`HAS_DEADLINE`]) and set it itself ([`OWNS_DEADLINE`]), both fixed at
//! creation, and whether the timer thread watches the deadline ([`ARMED`]).
//!
//! # Deadlines are lazy
//!
//! Creating a context with a deadline arms no timer. A node's *effective* deadline is the
//! earlier of its own and its parent's; the node *owns* it when its own is strictly earlier, and
//! otherwise *inherits* it. Until the node is done:
//!
//! * an owner that no timer watches is done when the clock says so: the reader that first sees
//!   the deadline passed sets the [`DEADLINE`] bits with a compare-and-swap (no lock), so every
//!   later reader agrees with it; and a completion (a cancel) of such an owner after its deadline
//!   records `DeadlineExceeded` too, whether or not anybody looked: the deadline came first;
//! * an inheriting node, or an owner that the timer watches, is done when its parent is (a
//!   watched owner is done at its own deadline when the timer fires; a cancel before that wins,
//!   as it does in Go before the timer fires).
//!
//! So a child never reports done before the ancestor whose deadline it shares, and a timer is
//! armed (on the owner) only when somebody must be woken: an async waiter or an
//! after-function. A done node whose completion has not run yet (only possible for an expired
//! owner nobody waits on asynchronously) is completed by the next cancel, arming or registration
//! that reaches it. The price of laziness: reading a node that inherits its deadline loads the
//! state of each ancestor up to the owner (usually one or two).
//!
//! # Where children live: an inline place, then shards
//!
//! A node's first child goes into an inline place under the node's own lock
//! (`Inner::first_child`), so a chain of contexts, or a parent whose children come and go one
//! at a time, allocates nothing to hold them and completes each link with one lock. As soon as
//! a child is linked while that place is taken, the parent allocates its shards, and every
//! later child goes there, even once the inline place is free again.
//!
//! Children in shards are linked into one of four slabs (`children.rs`), each behind its own
//! lock on its own cache line, chosen per thread. Two threads that create and cancel children of one shared
//! parent (the common request-scoped pattern) then take different locks; only the first link
//! into a shard takes the parent's own lock. A slab keeps its room when its last child
//! leaves (its peak, until the parent is completed or dropped: "Memory" in `children.rs`), so
//! a parent whose children come and go in waves links without allocating.
//!
//! # Layout
//!
//! Every child of a shared parent increments and decrements the parent's `Arc` counts, so under
//! contention the cache line holding them moves between cores all the time. The fields each
//! child reads from its parent (`deadline`, `children`, `state`) come last in [`Node`], which
//! keeps them off that line for most placements of the allocation; measured with two threads
//! creating and canceling children of one parent, putting them first cost a third of the
//! throughput.
//!
//! # Invariants
//!
//! 1. The done bits of `state` are set once: under the node's lock by [`complete`] (or
//!    [`complete_quick`], its form for the common cases, which follows the same rules), or without
//!    it by a reader's compare-and-swap when an unwatched owner's deadline has passed (then to
//!    [`DEADLINE`]). A completion of an unwatched owner decides its error with a
//!    compare-and-swap, so it cannot interleave with such a reader; a watched ([`ARMED`]) owner
//!    has no such reader (a swap that expects the state from before `ARMED` was set fails), so
//!    its completion, under the lock, stores. [`COMPLETED`] is set under the lock, with the done
//!    bits, by the one completion that takes the waiters and children out.
//! 2. `Extra::cause` holds, before completion, the reason to give if the node's own deadline
//!    expires (the `_cause` constructors) and `None` otherwise; the completion replaces it with
//!    the final reason unless the node is done by its own deadline. It never changes after.
//! 3. A node is in its parent's inline place or one of its child shards, at the place `slot`
//!    names, iff it was linked there and neither it unlinked itself nor the parent was
//!    completed. `slot` is written only under that place's lock: the shard's, or for the inline
//!    place the parent's own (or through `&mut` in `Drop`, when nobody else can see the node);
//!    its place never changes once linked, so it may be read before the lock is taken to find
//!    which lock. A completed parent links no more children.
//! 4. `ARMED` is set under the node's lock, together with the insertion of the timer entry
//!    (whose key is kept in `Inner::timer` until the completion takes it out to disarm it),
//!    and only on an owner that is not done. The timer entry holds a strong reference, so an armed
//!    node lives until it fires or its completion removes the entry.
//! 5. A completion takes the waiters and children out under the lock and notifies them after
//!    releasing it; no user code runs on the completing thread (after-functions are handed to
//!    the after-function pool, see `blocking/`). Old wakers and reasons replaced under the lock are dropped
//!    after it is released.
//! 6. When [`cancel`] returns, every descendant reports done. The winning completion walks the
//!    subtree synchronously, with an explicit stack (a 10,000-deep chain does not overflow it),
//!    and sets [`WALKED`] on each node once its whole subtree is done (post-order; at once for a
//!    node that never had children). A node with children leaves its parent, and its own
//!    waiters are told, only after that walk, so a cancel of the parent meanwhile still finds
//!    it. A cancel that loses the race to complete a node, and a walk that finds a child
//!    already completed by another cancel, wait until that node is `WALKED`, unless the walk
//!    they would wait for may be their own thread's (a re-entrant cancel from a waker that a
//!    walk is notifying), which must not wait for itself.
//! 7. A shard's bit in `Shards::used` is set, under the parent's lock, before the first child
//!    is linked into that shard, and only while the parent is not completed; the completion reads
//!    the bits under the same lock and empties exactly those shards. A child linked into a shard
//!    whose bit it saw set is in the shard before the completion empties it, or sees the parent
//!    completed under the shard's lock and is born done.
//! 8. [`NEEDS_LOCK`] is set (under the node's lock) before the node gets anything only the lock
//!    holder may take out: a waiter (inline or in an `Extra`), an `Extra` (a pending reason),
//!    an inline child, a child shard in use, a timer entry. A node without it completes
//!    lock-free, with one compare-and-swap that also requires the bit clear, when the outcome
//!    carries no reason; otherwise completion takes the lock. A
//!    registration that sets the bit sees, in the state before, whether a lock-free completion
//!    came first.
//! 9. `Inner::first_child` is set only under the node's lock, only while no shard bit is set
//!    and the node is not completed; it is cleared under that lock by the child's unlink or
//!    taken by the completion. So a completion, which holds the lock, sees every child: the
//!    inline one, and the shards the bits name (invariant 7).
//!
//! # Lock order
//!
//! 1. A node's lock, then an *ancestor's* lock: a completion that adopts its parent's cause
//!    reads it under the parent's lock (`decide`).
//! 2. A node's lock, then a timer shard's lock: arming (`arm_locked`, from `register` on the
//!    owner itself or through `arm_owner`). A shard's lock is a leaf (`timer.rs`); the
//!    timer's sleep lock, which an arming may take to wake the thread (or start it), is taken
//!    after the shard's is released, and under it only shard locks (and the spawn registry's
//!    leaf lock) are ever taken.
//! 3. A shard's lock is taken with no node lock held, and nothing but the parent's `used` bits
//!    (an atomic) is touched under it: a leaf.
//! 4. A child unlinking itself from its parent's inline place takes the parent's lock with no
//!    lock held.
//! 5. Nothing takes a descendant's lock while holding a node's lock: a completion releases a
//!    node before it completes the children.
//!
//! Ancestry is a partial order and the other locks are leaves, so these rules cannot form a
//! cycle. Each site that takes a second lock cites the rule that allows it.
//!
//! Two `expect`s can fire under a lock, each only past a limit no program reaches (500 million
//! children of one context, 4 billion waiters on one); the locks ignore poisoning.

use std::fmt;
use std::task::Waker;

use crate::context::children::{
    decode_slot, encode_slot, shard_index, Shards, INLINE, INLINE_SLOT, UNLINKED,
};
use crate::context::error::{Cause, Error, Reason};
use crate::context::waiters::{Taken, Waiter, Waiters};
use crate::sync::{Arc, AtomicU32, Backoff, Mutex, MutexGuard, OnceBox, Ordering, Weak};
use crate::time::{self, NO_DEADLINE};
use crate::timer;

// ===== state word =====

/// Done bits: done as canceled.
pub(crate) const CANCELED: u32 = 0b00_0001;
/// Done bits: done because a deadline passed.
pub(crate) const DEADLINE: u32 = 0b00_0010;
/// Mask of the done bits.
const DONE_MASK: u32 = CANCELED | DEADLINE;
/// The completion has run: waiters notified, children completed (invariant 1).
const COMPLETED: u32 = 0b00_0100;
/// The node has an effective deadline (`Node::deadline != NO_DEADLINE`). Fixed at creation.
const HAS_DEADLINE: u32 = 0b00_1000;
/// The effective deadline is the node's own (strictly earlier than its parent's). Fixed at
/// creation.
const OWNS_DEADLINE: u32 = 0b01_0000;
/// The timer thread watches this owner's deadline (invariant 4).
const ARMED: u32 = 0b10_0000;
/// The completion has finished with the whole subtree (invariant 6).
const WALKED: u32 = 0b100_0000;
/// The node must be completed under its lock: it has, or may get, parts only the lock holder
/// may take out: an `Extra` (a reason, waiters), children, or a timer entry (invariant 8).
/// Without it, a completion is one lock-free compare-and-swap.
const NEEDS_LOCK: u32 = 0b1000_0000;

fn done_kind(state: u32) -> Option<Error> {
    match state & DONE_MASK {
        0 => None,
        CANCELED => Some(Error::Canceled),
        _ => Some(Error::DeadlineExceeded),
    }
}

fn done_bits(error: Error) -> u32 {
    match error {
        Error::Canceled => CANCELED,
        Error::DeadlineExceeded => DEADLINE,
    }
}

// ===== Node =====

/// One cancelable context. See the module docs for the invariants.
///
/// The fields are in a fixed order (see "Layout" in the module docs): those that every child
/// reads from its parent come last, away from the `Arc`'s reference counts.
#[repr(C)]
pub(crate) struct Node {
    /// What the lock guards.
    inner: Mutex<Inner>,
    /// The nearest cancelable ancestor. Never changes until `Drop`.
    parent: Option<Arc<Node>>,
    /// Effective deadline, encoded by `time`; `NO_DEADLINE` if none. Never changes.
    deadline: u64,
    /// Child shards, allocated when a child is linked while the inline place is taken
    /// (invariants 3, 7 and 9).
    children: OnceBox<Shards<Node>>,
    /// Shard and index in the parent's shards, or `UNLINKED` (invariant 3).
    slot: AtomicU32,
    /// Done bits and flags; see the constants above.
    state: AtomicU32,
}

/// The parts of a node that only the holder of its lock touches.
///
/// The awaited request (one task waiting on its own deadline) keeps everything here: its
/// waker in `waker` and its timer key in `timer`, so it allocates nothing beyond the node.
struct Inner {
    /// A reason and the second and later waiters; allocated the first time there is one to
    /// keep, so a node that is only created and canceled, or awaited by one waiter, never
    /// allocates it.
    extra: Option<Box<Extra>>,
    /// The inline place for a child (invariant 9): a chain of contexts, or a parent whose
    /// children come and go one at a time, needs no shards.
    first_child: Option<Weak<Node>>,
    /// The inline place for a task's waiter: waiter key 0 (see [`insert_waiter`]). Only a
    /// `Waker`, to keep every node small (a thread or an after-function goes to `Extra`).
    waker: Option<Waker>,
    /// The timer entry watching this owner's deadline, while `ARMED` (invariant 4).
    timer: Option<timer::Key>,
}

/// The parts of a node that only the lock holder touches and that most nodes never need.
#[derive(Default)]
struct Extra {
    /// Invariant 2.
    cause: Option<Reason>,
    /// Tasks, threads and after-functions to notify on completion, beyond the inline one: the
    /// list's key `k` is waiter key `k + 1`.
    waiters: Waiters,
}

#[cfg(all(debug_assertions, not(loom)))]
crate::sync::lazy_static! {
    /// Nodes alive in this process (debug builds; not under loom, where it would only add
    /// interleavings to explore).
    static ref LIVE_NODES: crate::sync::AtomicUsize = crate::sync::AtomicUsize::new(0);
}

/// Number of nodes alive in this process (debug builds only).
pub(crate) fn live_nodes() -> Option<usize> {
    #[cfg(all(debug_assertions, not(loom)))]
    {
        Some(LIVE_NODES.load(Ordering::SeqCst))
    }
    #[cfg(not(all(debug_assertions, not(loom))))]
    {
        None
    }
}

type Guard<'a> = MutexGuard<'a, Inner>;

fn extra<'a>(guard: &'a mut Guard<'_>) -> &'a mut Extra {
    guard.extra.get_or_insert_with(Default::default)
}

/// Adds a waiter under the lock; returns its key: 0 for the inline place, `k + 1` for key `k`
/// of the extra list.
fn insert_waiter(guard: &mut Guard<'_>, waiter: Waiter) -> u32 {
    match waiter {
        Waiter::Task(waker) if guard.waker.is_none() => {
            guard.waker = Some(waker);
            0
        }
        // The list's keys stay below `u32::MAX` (waiters.rs), so this cannot overflow.
        waiter => extra(guard).waiters.insert(waiter) + 1,
    }
}

/// The task's waker under `key` (see [`insert_waiter`]), if it is still there.
fn waker_mut<'a>(guard: &'a mut Guard<'_>, key: u32) -> Option<&'a mut Waker> {
    match key {
        0 => guard.waker.as_mut(),
        _ => match guard.extra.as_mut()?.waiters.get_mut(key - 1)? {
            Waiter::Task(waker) => Some(waker),
            _ => None,
        },
    }
}

/// Takes every waiter out (the inline one and the list), for a completion.
fn take_waiters(guard: &mut Guard<'_>) -> Taken {
    let listed = match guard.extra.as_mut() {
        Some(extra) if !extra.waiters.is_empty() => extra.waiters.take_all(),
        _ => Taken::none(),
    };
    listed.with_inline(guard.waker.take().map(Waiter::Task))
}

/// The reason kept under the lock (invariant 2), if any.
fn kept_reason(guard: &Guard<'_>) -> Option<Reason> {
    guard.extra.as_ref().and_then(|e| e.cause.clone())
}

impl Node {
    fn new(state: u32, deadline: u64, parent: Option<Arc<Node>>, cause: Option<Reason>) -> Node {
        #[cfg(all(debug_assertions, not(loom)))]
        LIVE_NODES.fetch_add(1, Ordering::SeqCst);
        // Invariant 8: a pending reason is a part only the lock holder may take out.
        let state = if cause.is_some() {
            state | NEEDS_LOCK
        } else {
            state
        };
        let extra = cause.map(|cause| {
            Box::new(Extra {
                cause: Some(cause),
                ..Extra::default()
            })
        });
        Node {
            state: AtomicU32::new(state),
            slot: AtomicU32::new(UNLINKED),
            deadline,
            parent,
            inner: Mutex::new(Inner {
                extra,
                first_child: None,
                waker: None,
                timer: None,
            }),
            children: OnceBox::new(),
        }
    }

    /// The effective deadline, encoded (`NO_DEADLINE` if none).
    pub(crate) fn deadline(&self) -> u64 {
        self.deadline
    }

    fn lock(&self) -> Guard<'_> {
        self.inner.lock()
    }

    /// Leaves the parent (see `Drop`) and hands the parent reference back. `me` is the node's
    /// address inside its `Arc`, which the parent's slab entry points at.
    fn detach(&mut self, me: *const Node) -> Option<Arc<Node>> {
        let parent = self.parent.take()?;
        // Invariant 3: through `&mut`, nobody else can see this node (the last `Arc` drop
        // synchronized with every earlier access), so `slot` is exact. A node that unlinked
        // itself when it was canceled skips the parent's lock here.
        if self.slot.load(Ordering::Relaxed) != UNLINKED {
            unlink_from(&parent, &self.slot, me);
        }
        Some(parent)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        #[cfg(all(debug_assertions, not(loom)))]
        LIVE_NODES.fetch_sub(1, Ordering::SeqCst);
        // Every handle is gone: leave the parent's slab so it pins nothing (invariant 3). Then
        // release the ancestors this node alone kept alive, iteratively: a recursive drop of a
        // 10,000-deep chain would overflow a thread's stack. `drop` runs in place, so `self` is
        // the address in the `Arc`; an ancestor moved out of its `Arc` is not, so its address is
        // taken before the move.
        let me: *const Node = self;
        super::sites::forget(me);
        let mut next = self.detach(me);
        while let Some(parent) = next {
            let address = Arc::as_ptr(&parent);
            // One decrement; `Some` only if this was the last strong reference.
            next = Arc::into_inner(parent).and_then(|mut node| node.detach(address));
        }
    }
}

// ===== creation =====

/// What a new node is born with.
pub(crate) struct NewNode {
    /// Its own deadline, encoded, or `NO_DEADLINE`.
    pub(crate) deadline: u64,
    /// The reason to give if its own deadline expires.
    pub(crate) deadline_cause: Option<Reason>,
    /// The time the caller read while computing `deadline`, if it did (saves a clock read).
    pub(crate) now: Option<u64>,
}

/// Creates a node under `parent` (or a new root) and links it there.
///
/// As in Go, a child of a done parent is born done with the parent's error and cause; else a
/// child whose own deadline has already passed is born done with `DeadlineExceeded`. A born-done
/// child is never linked.
pub(crate) fn new_child(parent: Option<&Arc<Node>>, new: NewNode) -> Arc<Node> {
    let parent_deadline = parent.map_or(NO_DEADLINE, |p| p.deadline);
    let owns = new.deadline != NO_DEADLINE
        && (parent_deadline == NO_DEADLINE || new.deadline < parent_deadline);
    let (deadline, state, cause) = if owns {
        // Invariant 2: only an owner keeps a pending deadline reason.
        (
            new.deadline,
            HAS_DEADLINE | OWNS_DEADLINE,
            new.deadline_cause,
        )
    } else if parent_deadline != NO_DEADLINE {
        (parent_deadline, HAS_DEADLINE, None)
    } else {
        (NO_DEADLINE, 0, None)
    };
    let expired = owns && deadline <= new.now.unwrap_or_else(time::now);
    let node = Arc::new(Node::new(state, deadline, parent.cloned(), cause));
    let Some(parent) = parent else {
        if expired {
            born_done(&node, BornDone::PastDeadline);
        }
        return node;
    };
    let shard = shard_index();
    let bit = 1u8 << shard;
    let linked_shards = parent.children.get();
    let used = linked_shards.map_or(0, Shards::used);
    if used & bit == 0 {
        // The inline place (invariant 9) or the first link into this shard (invariant 7) is
        // decided under the parent's lock; and invariant 8: from now on the parent completes
        // under its lock, so a completion cannot run until we release it.
        let mut parent_inner = parent.lock();
        let before = parent.state.fetch_or(NEEDS_LOCK, Ordering::AcqRel);
        if before & COMPLETED != 0 {
            // Invariant 2: the parent's reason is final once it is completed.
            let reason = kept_reason(&parent_inner);
            drop(parent_inner);
            born_done(
                &node,
                BornDone::UnderDoneParent(done_kind(before).unwrap_or(Error::Canceled), reason),
            );
            return node;
        }
        if expired {
            drop(parent_inner);
            born_done(&node, BornDone::PastDeadline);
            return node;
        }
        // The bits only change under this lock, so this read is exact.
        let used = parent.children.get().map_or(0, Shards::used);
        if used == 0 && parent_inner.first_child.is_none() {
            parent_inner.first_child = Some(Arc::downgrade(&node));
            // Invariant 3: the inline place's lock is the parent's.
            node.slot.store(INLINE_SLOT, Ordering::Relaxed);
            return node;
        }
        parent.children.get_or_init().mark_used(shard);
    }
    // Read the parent's fields as few times as possible: under contention each read may cost
    // a cache miss.
    let shards = linked_shards.unwrap_or_else(|| parent.children.get_or_init());
    let mut slab = shards.lock(shard);
    let parent_state = parent.state.load(Ordering::Acquire);
    if parent_state & COMPLETED != 0 {
        drop(slab);
        // Invariant 2: the parent's reason is final once it is completed.
        let reason = kept_reason(&parent.lock());
        born_done(
            &node,
            BornDone::UnderDoneParent(done_kind(parent_state).unwrap_or(Error::Canceled), reason),
        );
    } else if expired {
        drop(slab);
        born_done(&node, BornDone::PastDeadline);
    } else {
        let index = slab.insert(Arc::downgrade(&node));
        // Invariant 3: under the shard's lock.
        node.slot
            .store(encode_slot(shard, index), Ordering::Relaxed);
    }
    node
}

/// Why a new node is born done.
enum BornDone {
    /// Its parent is completed: the parent's error and final reason, as in Go.
    UnderDoneParent(Error, Option<Reason>),
    /// Its own deadline has already passed: `DeadlineExceeded`, with the reason that deadline
    /// carries (already pending in the node, invariant 2).
    PastDeadline,
}

/// Marks a new node, not linked and not shared yet, done at birth.
fn born_done(node: &Node, why: BornDone) {
    let error = match why {
        BornDone::UnderDoneParent(error, reason) => {
            // Not shared yet: its lock is free. The parent's reason replaces any pending reason
            // of the child's own deadline (invariant 2).
            let mut inner = node.lock();
            if reason.is_some() || inner.extra.is_some() {
                extra(&mut inner).cause = reason;
            }
            error
        }
        BornDone::PastDeadline => Error::DeadlineExceeded,
    };
    node.state
        .fetch_or(done_bits(error) | COMPLETED | WALKED, Ordering::Release);
}

/// Removes the node whose `slot` field is `slot` and whose address is `me` from `parent`'s
/// inline place or shards, if it is still there (invariants 3 and 9).
fn unlink_from(parent: &Node, slot: &AtomicU32, me: *const Node) {
    // A completed parent has taken its children out for good: nothing to do, and no lock
    // needed.
    if parent.state.load(Ordering::Acquire) & COMPLETED != 0 {
        return;
    }
    let current = slot.load(Ordering::Relaxed);
    if current == UNLINKED {
        return;
    }
    let (shard, _) = decode_slot(current);
    if shard == INLINE {
        let mut parent_inner = parent.lock();
        // Invariant 3: for the inline place `slot` is only changed under the parent's lock.
        let linked = slot.load(Ordering::Relaxed);
        slot.store(UNLINKED, Ordering::Relaxed);
        if linked == UNLINKED || parent.state.load(Ordering::Acquire) & COMPLETED != 0 {
            return;
        }
        let mine = parent_inner
            .first_child
            .as_ref()
            .is_some_and(|child| std::ptr::eq(child.as_ptr(), me));
        debug_assert!(mine, "a child's slot names another child");
        if mine {
            parent_inner.first_child = None;
        }
        return;
    }
    let Some(shards) = parent.children.get() else {
        return;
    };
    let mut slab = shards.lock(shard);
    // Invariant 3: `slot` is only changed under this lock.
    let linked = slot.load(Ordering::Relaxed);
    slot.store(UNLINKED, Ordering::Relaxed);
    if linked == UNLINKED || parent.state.load(Ordering::Acquire) & COMPLETED != 0 {
        return;
    }
    let (_, index) = decode_slot(linked);
    slab.remove(index, me);
}

// ===== reading =====

/// True once the node is done. Never locks.
#[inline]
pub(crate) fn is_done(node: &Node) -> bool {
    err(node).is_some()
}

/// Why the node is done, if it is. Never locks: one atomic load per node from here to the
/// ancestor whose deadline this node shares, plus one clock read if no timer watches it.
#[inline]
pub(crate) fn err(node: &Node) -> Option<Error> {
    // The common cases inline into the caller: done, or no deadline to look at.
    let state = node.state.load(Ordering::Acquire);
    if let Some(error) = done_kind(state) {
        return Some(error);
    }
    if state & HAS_DEADLINE == 0 {
        return None;
    }
    err_lazy(node, None)
}

/// [`err`] without the lazy part: the done bits of the node's own state (one load, no clock).
/// `None` does not mean "not done".
#[inline]
pub(crate) fn err_recorded(node: &Node) -> Option<Error> {
    done_kind(node.state.load(Ordering::Acquire))
}

/// [`err`] as if the clock read `now` (encoded): the decision on a made-up instant, for tests
/// of the lazy deadlines. A `now` past an unwatched owner's deadline records it, as a real read
/// would (invariant 1).
pub(crate) fn err_at(node: &Node, now: u64) -> Option<Error> {
    let state = node.state.load(Ordering::Acquire);
    match done_kind(state) {
        Some(error) => Some(error),
        None => err_lazy(node, Some(now)),
    }
}

/// [`err`] for a node that has a deadline and is not done yet; `now` is the clock's reading if
/// the caller has one (else the clock is read, once per owner reached).
fn err_lazy(node: &Node, mut now: Option<u64>) -> Option<Error> {
    err_lazy_reading(node, &mut now)
}

/// [`err_lazy`], keeping in `now` the clock's reading if it had to read the clock.
fn err_lazy_reading(node: &Node, now: &mut Option<u64>) -> Option<Error> {
    let mut node = node;
    loop {
        let state = node.state.load(Ordering::Acquire);
        if let Some(error) = done_kind(state) {
            return Some(error);
        }
        match lazy_step(node, state, now) {
            Lazy::NotDone => return None,
            Lazy::Expired => {
                // Invariant 1: record what we saw, so everybody after us agrees. If the CAS
                // fails the state changed (done, or armed): look again.
                if node
                    .state
                    .compare_exchange(state, state | DEADLINE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Some(Error::DeadlineExceeded);
                }
            }
            Lazy::AskParent(parent) => node = parent,
        }
    }
}

enum Lazy<'a> {
    NotDone,
    Expired,
    AskParent(&'a Node),
}

/// The lazy part of a not-yet-done node's state (see the module docs).
fn lazy_step<'a>(node: &'a Node, state: u32, now: &mut Option<u64>) -> Lazy<'a> {
    if state & HAS_DEADLINE == 0 {
        return Lazy::NotDone;
    }
    if state & (OWNS_DEADLINE | ARMED) == OWNS_DEADLINE {
        return if *now.get_or_insert_with(time::now) >= node.deadline {
            Lazy::Expired
        } else {
            Lazy::NotDone
        };
    }
    match &node.parent {
        Some(parent) => Lazy::AskParent(parent),
        None => Lazy::NotDone,
    }
}

/// Why the node is done, with the reason given, if it is done.
pub(crate) fn cause(node: &Node) -> Option<Cause> {
    let mut node = node;
    loop {
        err(node)?;
        let state = node.state.load(Ordering::Acquire);
        match done_kind(state) {
            // Invariant 2: for a node done by its own deadline the field holds that reason
            // whether or not the completion has run; otherwise the final reason.
            Some(error) => {
                let reason = kept_reason(&node.lock());
                return Some(Cause::new(error, reason));
            }
            // Done through an ancestor that has not completed this node yet.
            None => node = node.parent.as_deref()?,
        }
    }
}

// ===== completion =====

/// How a completion was asked for.
pub(crate) enum Completion {
    /// By a caller or a parent: this error and reason.
    With(Error, Option<Reason>),
    /// By the node's own deadline (the timer, or a waiter that saw it pass): the pending reason.
    Expire,
}

/// Completes `node` and its whole subtree; unlinks `node` from its parent. Returns false if it
/// was already completed (the first completion wins; later ones change nothing). Either way,
/// when it returns the whole subtree reports done (invariant 6).
pub(crate) fn cancel(node: &Arc<Node>, completion: Completion) -> bool {
    // Leave the parent before telling the node's waiters: a waiter that wakes and drops its
    // handles finds the node already gone from its parent.
    let leave_parent = || {
        if let Some(parent) = &node.parent {
            unlink_from(parent, &node.slot, Arc::as_ptr(node));
        }
    };
    if let Completion::With(error, None) = completion {
        let mut waiters = Taken::none();
        match complete_quick(node, error, leave_parent, Some(&mut waiters)) {
            Quick::Childless => return true,
            Quick::Children(children) => {
                walk(Frame {
                    node: node.clone(),
                    children,
                    error,
                    reason: None,
                });
                // Invariant 6: leave the parent only once the subtree is done, so a concurrent
                // cancel of the parent still finds this node and waits for its walk.
                leave_parent();
                waiters.notify_all();
                return true;
            }
            Quick::Fallback => {}
        }
    }
    let Some(mut done) = complete(node, completion) else {
        // This cancel runs no walk of its own (see `wait_walked` for one it is nested in).
        wait_walked(node, 0);
        return false;
    };
    let waiters = std::mem::replace(&mut done.waiters, Taken::none());
    if !done.walked {
        walk(Frame::new(node.clone(), done));
    }
    // Invariant 6: as above, the parent is left once the subtree is done.
    leave_parent();
    waiters.notify_all();
    true
}

/// Completes the subtree below `root`, a node just completed with its children taken out
/// (invariant 6).
#[inline(never)]
fn walk(root: Frame) {
    let _walking = Walking::enter();
    // Invariant 6: walk the subtree before returning, depth first without recursion. A frame is
    // a node whose children are being completed; it is popped, and the node marked `WALKED`,
    // once its last child's subtree is done (post-order).
    let mut stack = vec![root];
    while let Some(top) = stack.last_mut() {
        let Some(child) = top.children.next() else {
            if let Some(frame) = stack.pop() {
                frame.node.state.fetch_or(WALKED, Ordering::Release);
            }
            continue;
        };
        // A child whose every handle is gone is being dropped: nothing to notify.
        let Some(child) = child.upgrade() else {
            continue;
        };
        if top.reason.is_none() {
            // The parent was completed first, so the child has no slot to leave.
            match complete_quick(&child, top.error, || (), None) {
                Quick::Childless => continue,
                Quick::Children(children) => {
                    let error = top.error;
                    stack.push(Frame {
                        node: child,
                        children,
                        error,
                        reason: None,
                    });
                    continue;
                }
                Quick::Fallback => {}
            }
        }
        match complete(&child, Completion::With(top.error, top.reason.clone())) {
            Some(mut child_done) => {
                // The parent was completed first, so the child has no slot to leave.
                child_done.notify_waiters();
                if !child_done.walked {
                    stack.push(Frame::new(child, child_done));
                }
            }
            // Another thread's cancel completed the child (before it could leave this node's
            // place) and may still be walking below it: invariant 6 waits for that walk.
            None => wait_walked(&child, 1),
        }
    }
}

/// A node of the subtree walk in [`cancel`] whose children are being completed.
struct Frame {
    node: Arc<Node>,
    /// The children its completion took out, not completed yet.
    children: TakenChildren,
    /// What its completion recorded, which its children get.
    error: Error,
    reason: Option<Reason>,
}

impl Frame {
    fn new(node: Arc<Node>, done: Completed) -> Frame {
        Frame {
            node,
            children: done.children,
            error: done.error,
            reason: done.reason,
        }
    }
}

// How many subtree walks this thread is inside (a waker may cancel re-entrantly). loom runs its
// threads on one OS thread, so the model needs loom's own thread-locals.
#[cfg(not(loom))]
std::thread_local! {
    static WALKING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
#[cfg(loom)]
loom::thread_local! {
    static WALKING: std::cell::Cell<usize> = std::cell::Cell::new(0);
}

/// Marks this thread as walking a subtree while alive.
struct Walking;

impl Walking {
    fn enter() -> Walking {
        WALKING.with(|w| w.set(w.get() + 1));
        Walking
    }
}

impl Drop for Walking {
    fn drop(&mut self) {
        WALKING.with(|w| w.set(w.get() - 1));
    }
}

/// Waits until another thread's completion of `node` has walked the whole subtree
/// (invariant 6). `own` is how many walks of this thread the caller is inside (0 from
/// [`cancel`], 1 from [`walk`]); more than that means the caller was reached from a waker that
/// one of this thread's walks is notifying, and that walk may be the one it would wait for, so
/// it returns at once. Terminates: otherwise the walk it waits for is another thread's, which
/// visits a finite subtree and marks `node` last.
fn wait_walked(node: &Node, own: usize) {
    if node.state.load(Ordering::Acquire) & WALKED != 0 || WALKING.with(|w| w.get()) > own {
        return;
    }
    let mut backoff = Backoff::new();
    while node.state.load(Ordering::Acquire) & WALKED == 0 {
        backoff.snooze();
    }
}

/// The children a completion took out: the inline one, then the shards' entries.
struct TakenChildren {
    first: Option<Weak<Node>>,
    rest: std::vec::IntoIter<Weak<Node>>,
}

impl TakenChildren {
    fn new(first: Option<Weak<Node>>, rest: Vec<Weak<Node>>) -> TakenChildren {
        TakenChildren {
            first,
            rest: rest.into_iter(),
        }
    }

    fn next(&mut self) -> Option<Weak<Node>> {
        self.first.take().or_else(|| self.rest.next())
    }
}

/// What [`complete`] recorded and took out.
struct Completed {
    error: Error,
    reason: Option<Reason>,
    /// The inline child, then the entries of every shard.
    children: TakenChildren,
    /// The node had no children to walk and is already marked `WALKED`.
    walked: bool,
    /// Its waiters, to notify once the node has left its parent (invariant 5).
    waiters: Taken,
}

impl Completed {
    /// Notifies the waiters taken out by the completion; no lock is held.
    fn notify_waiters(&mut self) {
        std::mem::replace(&mut self.waiters, Taken::none()).notify_all();
    }
}

/// The error and reason a completion of `node` records, from its state (not completed) and
/// `pending`, the reason its own deadline carries (invariant 2). See "Deadlines are lazy".
fn decide(
    node: &Node,
    state: u32,
    completion: &Completion,
    pending: Option<Reason>,
) -> (Error, Option<Reason>) {
    match done_kind(state) {
        // A reader saw the node's own deadline pass.
        Some(error) => (error, pending),
        // An inheriting (or watched) node adopts what its parent shows, if anything: a reader
        // may have seen this node done through it. Reading the parent's cause may lock the
        // parent while the caller holds this node's lock: cannot deadlock, lock order 1 (an
        // ancestor's lock under a node's).
        None if state & HAS_DEADLINE != 0 && state & (OWNS_DEADLINE | ARMED) != OWNS_DEADLINE => {
            match node.parent.as_deref().and_then(cause) {
                Some(seen) => (seen.error(), seen.reason_arc().cloned()),
                None => requested(completion, pending),
            }
        }
        // An unwatched owner whose deadline has passed: the deadline came first, whether or not
        // anybody looked (as in Go, where its timer would have fired). One clock read.
        None if state & OWNS_DEADLINE != 0 && time::now() >= node.deadline => {
            (Error::DeadlineExceeded, pending)
        }
        None => requested(completion, pending),
    }
}

/// What the completion asked for.
fn requested(completion: &Completion, pending: Option<Reason>) -> (Error, Option<Reason>) {
    match completion {
        Completion::Expire => (Error::DeadlineExceeded, pending),
        Completion::With(error, reason) => (*error, reason.clone()),
    }
}

/// What [`complete_quick`] did.
enum Quick {
    /// Completed and walked: it had no children.
    Childless,
    /// Completed; these children are still to be completed.
    Children(TakenChildren),
    /// Nothing: the node needs [`complete`] (or is already completed).
    Fallback,
}

/// The common cases of [`complete`] and [`Completed::notify_waiters`] in one, without building a
/// [`Completed`] (moving it costs more than the rest): a node with no deadline completes with
/// `error` and no reason, and a node with nothing behind its lock or an armed owner with what
/// [`decide`] says (if that carries no reason); then it calls `leave_parent`, notifies the waiters (invariant
/// 5: no lock held) and hands back the children. Returns [`Quick::Fallback`], having changed
/// nothing, for any other node, or one that is already done.
///
/// A second copy of [`complete`]'s rules for the cases it covers, kept because sharing the code
/// cost 9 ns a `with_timeout` + cancel (115 -> 124 ns, measured): both must set the same state
/// bits (invariants 1 and 6), take the same waiters and children under the lock (5, 7, 9) and
/// complete lock-free only without `NEEDS_LOCK` (8). A change to one is a change to the other;
/// `tests::both_completion_paths_agree` drives both through the same cases.
#[inline]
fn complete_quick(
    node: &Node,
    error: Error,
    leave_parent: impl FnOnce(),
    deferred: Option<&mut Taken>,
) -> Quick {
    let state = node.state.load(Ordering::Acquire);
    if state & (DONE_MASK | COMPLETED) != 0 {
        return Quick::Fallback;
    }
    if state & NEEDS_LOCK == 0 {
        // Invariant 8: nothing behind the lock; one compare-and-swap, as in `complete`, which
        // also decides for a node with a deadline.
        let error = if state & HAS_DEADLINE == 0 {
            error
        } else {
            match decide(node, state, &Completion::With(error, None), None) {
                (error, None) => error,
                (_, Some(_)) => return Quick::Fallback,
            }
        };
        return match node.state.compare_exchange(
            state,
            state | done_bits(error) | COMPLETED | WALKED,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                leave_parent();
                Quick::Childless
            }
            Err(_) => Quick::Fallback,
        };
    }
    // With the lock: a node with no deadline, or an armed owner (the common awaited request).
    // `ARMED` is never cleared, so the second test holds under the lock too.
    if state & (HAS_DEADLINE | ARMED) == HAS_DEADLINE {
        return Quick::Fallback;
    }
    let mut inner = node.lock();
    let state = node.state.load(Ordering::Acquire);
    if state & (DONE_MASK | COMPLETED) != 0 {
        return Quick::Fallback;
    }
    let error = if state & ARMED == 0 {
        error
    } else {
        // As in `complete`: an armed owner adopts what its parent shows, else `error`; a
        // decision that carries a reason falls back (invariant 2 wants it stored).
        match decide(node, state, &Completion::With(error, None), None) {
            (error, None) => error,
            (_, Some(_)) => return Quick::Fallback,
        }
    };
    let completed = done_bits(error) | COMPLETED;
    // Invariants 7 and 9: with the lock held no child can be linked or taken out.
    let used = node.children.get().map_or(0, Shards::used);
    let first_child = inner.first_child.take();
    let childless = used == 0 && first_child.is_none();
    // As in `complete`: `NEEDS_LOCK` is set and the node owns no deadline or is armed, so
    // nobody else writes the state now. No deadline also means no pending reason (invariant 2)
    // and no timer entry (invariant 4); an armed owner's pending reason, if any, is replaced by
    // none and its entry's key taken out.
    let walked = if childless { WALKED } else { 0 };
    node.state
        .store(state | completed | walked, Ordering::Release);
    let waiters = take_waiters(&mut inner);
    let old_reason = inner.extra.as_mut().and_then(|extra| extra.cause.take());
    let armed = inner.timer.take();
    debug_assert_eq!(armed.is_some(), state & ARMED != 0);
    drop(inner);
    // Invariant 5: a replaced reason is user data; drop it with no lock held.
    drop(old_reason);
    if let Some(key) = armed {
        // If the timer fired (this completion may be its expiry), this removes nothing.
        timer::disarm(key);
    }
    if childless {
        leave_parent();
        waiters.notify_all();
        Quick::Childless
    } else {
        // A node with children leaves its parent and tells its waiters once its subtree is
        // done (invariant 6): the caller does, with the waiters put in `deferred`; a child in a
        // walk has no parent to leave and tells its waiters at once.
        match deferred {
            Some(deferred) => *deferred = waiters,
            None => waiters.notify_all(),
        }
        Quick::Children(TakenChildren::new(first_child, take_shards(node, used)))
    }
}

/// Empties the shards named by `used` of a node whose completion read those bits under its
/// lock (invariant 7) and returns their entries.
fn take_shards(node: &Node, used: u8) -> Vec<Weak<Node>> {
    match node.children.get() {
        Some(shards) if used != 0 => shards.take(used),
        _ => Vec::new(),
    }
}

/// Completes one node: sets its done bits if a reader has not (invariant 1), records the reason
/// (2), takes out its waiters for the caller to notify once no lock is held and the node has
/// left its parent (5), and hands back its children. `None` if it was already completed.
///
/// [`complete_quick`] repeats these rules for its common cases (see there); keep the two in
/// step, and `tests::both_completion_paths_agree` passing.
fn complete(node: &Node, completion: Completion) -> Option<Completed> {
    // Fast path (invariant 8): a node with no parts that only the lock holder may take out
    // completes with one compare-and-swap and no lock, when the outcome carries no reason.
    let mut state = node.state.load(Ordering::Acquire);
    while state & (COMPLETED | NEEDS_LOCK) == 0 {
        let (error, reason) = decide(node, state, &completion, None);
        if reason.is_some() {
            break; // A reason must be stored: that needs the lock.
        }
        let completed = state | done_bits(error) | COMPLETED | WALKED;
        match node
            .state
            .compare_exchange(state, completed, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                // Not armed: a timer entry is a part (invariant 8), so nothing to disarm.
                debug_assert_eq!(state & ARMED, 0);
                return Some(Completed {
                    error,
                    reason: None,
                    children: TakenChildren::new(None, Vec::new()),
                    walked: true,
                    waiters: Taken::none(),
                });
            }
            // A reader recorded a deadline, parts appeared, or another completion won: look
            // again. Terminates: each retry follows a change of the state, and the state
            // changes a bounded number of times (the bits below are only ever set).
            Err(actual) => state = actual,
        }
    }
    if state & COMPLETED != 0 {
        return None;
    }
    let mut inner = node.lock();
    // Invariant 7: the shards in use, read under the lock that marks them (no bit can be set
    // while we hold it). With none, there are no children now or ever: the subtree is walked
    // already, and `WALKED` goes in with the done bits.
    let used = node.children.get().map_or(0, Shards::used);
    // Invariant 9: the inline place only changes under the lock we hold.
    let childless = used == 0 && inner.first_child.is_none();
    let walked = if childless { WALKED } else { 0 };
    let mut state = node.state.load(Ordering::Acquire);
    let (error, reason) = loop {
        if state & COMPLETED != 0 {
            return None;
        }
        let pending = kept_reason(&inner);
        let (error, reason) = decide(node, state, &completion, pending);
        let completed = state | done_bits(error) | COMPLETED | walked;
        if state & NEEDS_LOCK != 0 && state & (OWNS_DEADLINE | ARMED) != OWNS_DEADLINE {
            // Nobody else writes this state now: lock-free completions need `NEEDS_LOCK` clear
            // (invariant 8) and readers compare-and-swap only an unwatched owner's (invariant
            // 1; a reader's swap expecting the state from before `ARMED` fails).
            node.state.store(completed, Ordering::Release);
            break (error, reason);
        }
        // Invariant 1: a reader may set `DEADLINE`, or a lock-free completion win, meanwhile;
        // then decide again from the new state. Terminates as the fast path's loop does.
        match node
            .state
            .compare_exchange(state, completed, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => break (error, reason),
            Err(actual) => state = actual,
        }
    };
    // The decision is made and visible; readers of the cause take this lock, so they see the
    // state and the reason together.
    let mut old_reason = None;
    let first_child = inner.first_child.take();
    let waiters = take_waiters(&mut inner);
    // Invariant 4: the entry's key is kept with `ARMED`, under this lock.
    let armed = inner.timer.take();
    if reason.is_some() || inner.extra.is_some() {
        old_reason = std::mem::replace(&mut extra(&mut inner).cause, reason.clone());
    }
    debug_assert_eq!(armed.is_some(), state & ARMED != 0);
    drop(inner);
    // Invariant 5: a replaced reason is user data; drop it with no lock held.
    drop(old_reason);
    let children = take_shards(node, used);
    if let Some(key) = armed {
        // If the timer fired (this completion may be its expiry), this removes nothing.
        timer::disarm(key);
    }
    // Invariant 5: the caller notifies the waiters, with no lock held.
    Some(Completed {
        error,
        reason,
        children: TakenChildren::new(first_child, children),
        walked: childless,
        waiters,
    })
}

// ===== waiting =====

/// The outcome of [`register`].
pub(crate) enum Registered {
    /// Waiting, under this key.
    Waiting(u32),
    /// Already done: nothing was registered.
    Done(Error),
}

/// Adds `waiter` to the node, unless the node is done.
///
/// With `arm`, makes sure the timer watches the deadline this node shares, so that the waiter
/// is notified when it passes (async waiters and after-functions need that; a blocked thread
/// parks with a timeout instead).
pub(crate) fn register(node: &Arc<Node>, waiter: Waiter, arm: bool) -> Registered {
    // At most one clock read serves the lazy check and the arming below (a reading a little
    // old only arms an entry that the timer then fires at once, instead of completing here).
    let before = node.state.load(Ordering::Acquire);
    if let Some(error) = done_kind(before) {
        return Registered::Done(error);
    }
    let mut now = None;
    if before & HAS_DEADLINE != 0 {
        if let Some(error) = err_lazy_reading(node, &mut now) {
            return Registered::Done(error);
        }
    }
    let mut inner = node.lock();
    // Invariant 8: a waiter is a part; from now on the node completes under its lock. The
    // state before tells whether a lock-free completion got here first.
    let state = node.state.fetch_or(NEEDS_LOCK, Ordering::AcqRel);
    if let Some(error) = done_kind(state) {
        return Registered::Done(error);
    }
    let key = insert_waiter(&mut inner, waiter);
    if !arm || state & HAS_DEADLINE == 0 {
        return Registered::Waiting(key);
    }
    if state & OWNS_DEADLINE != 0 {
        // The node owns its deadline: arm it under the lock already held.
        if arm_locked(node, inner, state, now) {
            cancel(node, Completion::Expire);
        }
    } else {
        drop(inner);
        arm_owner(node, now);
    }
    Registered::Waiting(key)
}

/// Updates the waker of a registered task, cloning only if it would wake a different task.
/// Returns false if the entry is gone (the node completed and took it).
pub(crate) fn refresh_waker(node: &Node, key: u32, waker: &std::task::Waker) -> bool {
    let mut inner = node.lock();
    match waker_mut(&mut inner, key) {
        Some(current) => {
            if !current.will_wake(waker) {
                let old = std::mem::replace(current, waker.clone());
                drop(inner);
                // Invariant 5: the old waker's drop is the executor's code; no lock held.
                drop(old);
            }
            true
        }
        None => false,
    }
}

/// Removes the waiter under `key`, if the node still holds it. Returns it.
pub(crate) fn deregister(node: &Node, key: u32) -> Option<Waiter> {
    if node.state.load(Ordering::Acquire) & COMPLETED != 0 {
        // Invariant 5: the completion took the whole list.
        return None;
    }
    let mut inner = node.lock();
    match key {
        0 => inner.waker.take().map(Waiter::Task),
        _ => inner.extra.as_mut()?.waiters.remove(key - 1),
    }
}

/// The timer thread expires an armed owner by completing it with its deadline (invariant 4).
impl timer::Expire for Node {
    /// Armed only on an owner, for its own deadline (`arm_locked`), which never changes.
    fn at(&self) -> u64 {
        self.deadline
    }

    fn expire(self: Arc<Self>) {
        cancel(&self, Completion::Expire);
    }
}

/// Arms the timer on the ancestor-or-self that owns `node`'s deadline, or completes it at once
/// if that deadline had already passed at `now` (a clock reading, if the caller has one).
fn arm_owner(node: &Arc<Node>, now: Option<u64>) {
    let mut owner = node;
    while owner.state.load(Ordering::Acquire) & OWNS_DEADLINE == 0 {
        match &owner.parent {
            Some(parent) => owner = parent,
            None => return,
        }
    }
    let inner = owner.lock();
    // Invariant 8: the timer entry is a part; a completion that comes after this waits for
    // the lock, so it sees the entry and removes it.
    let state = owner.state.fetch_or(NEEDS_LOCK, Ordering::AcqRel);
    if arm_locked(owner, inner, state, now) {
        cancel(owner, Completion::Expire);
    }
}

/// Arms the timer on `owner`, whose lock is `inner` and whose state (with `NEEDS_LOCK` set
/// under that lock) is `state`, unless it is armed or completed already. Releases the lock.
/// Returns true if the owner's deadline has passed (at `now`, read here if the caller has no
/// reading, or as a reader saw): the caller then completes it, which notifies the new waiter
/// through the subtree.
fn arm_locked(owner: &Arc<Node>, mut inner: Guard<'_>, state: u32, now: Option<u64>) -> bool {
    if state & (COMPLETED | ARMED) != 0 {
        return false;
    }
    if state & DONE_MASK != 0 || now.unwrap_or_else(time::now) >= owner.deadline {
        // Expired (perhaps seen by a reader, perhaps not yet).
        return true;
    }
    // Invariant 4: the entry goes in under the node's lock, with the flag and its key. The
    // timer's locks are taken under the node's: cannot deadlock, lock order 2 (nothing under
    // them takes a node's lock).
    if let Some(key) = timer::arm(owner.deadline, owner.clone()) {
        inner.timer = Some(key);
        owner.state.fetch_or(ARMED, Ordering::Release);
    }
    false
}

// ===== introspection =====

/// Number of children linked under `node` (tests and `Debug`).
pub(crate) fn child_count(node: &Node) -> usize {
    let inline = usize::from(node.lock().first_child.is_some());
    inline + node.children.get().map_or(0, Shards::live)
}

/// Number of waiters registered on `node` (tests and `Debug`).
pub(crate) fn waiter_count(node: &Node) -> usize {
    let inner = node.lock();
    usize::from(inner.waker.is_some()) + inner.extra.as_ref().map_or(0, |e| e.waiters.len())
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("err", &err(self))
            .field(
                "deadline",
                &(self.deadline != NO_DEADLINE).then(|| time::decode(self.deadline)),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn no_deadline() -> NewNode {
        NewNode {
            deadline: NO_DEADLINE,
            deadline_cause: None,
            now: None,
        }
    }

    fn canceled() -> Completion {
        Completion::With(Error::Canceled, None)
    }

    fn is_inline(parent: &Node, child: &Arc<Node>) -> bool {
        parent
            .lock()
            .first_child
            .as_ref()
            .is_some_and(|weak| std::ptr::eq(weak.as_ptr(), Arc::as_ptr(child)))
    }

    #[test]
    fn a_first_child_takes_the_inline_place_and_allocates_no_shards() {
        let parent = new_child(None, no_deadline());
        let child = new_child(Some(&parent), no_deadline());
        assert!(is_inline(&parent, &child));
        assert!(parent.children.get().is_none());
        assert_eq!(child_count(&parent), 1);
        drop(child);
        assert_eq!(child_count(&parent), 0);
        assert!(parent.lock().first_child.is_none());
        // The place is free again: the next child takes it, still without shards.
        let again = new_child(Some(&parent), no_deadline());
        assert!(is_inline(&parent, &again));
        assert!(parent.children.get().is_none());
    }

    #[test]
    fn once_shards_are_in_use_children_go_there_even_with_the_inline_place_free() {
        let parent = new_child(None, no_deadline());
        let first = new_child(Some(&parent), no_deadline());
        let second = new_child(Some(&parent), no_deadline());
        assert!(is_inline(&parent, &first));
        assert!(!is_inline(&parent, &second));
        assert!(parent.children.get().is_some());
        assert_eq!(child_count(&parent), 2);
        drop(first);
        let third = new_child(Some(&parent), no_deadline());
        assert!(!is_inline(&parent, &third));
        assert!(parent.lock().first_child.is_none());
        assert_eq!(child_count(&parent), 2);
        // One cancel completes the children in both places.
        assert!(cancel(&parent, canceled()));
        assert_eq!(err(&second), Some(Error::Canceled));
        assert_eq!(err(&third), Some(Error::Canceled));
        assert_eq!(child_count(&parent), 0);
    }

    #[test]
    fn a_chain_completes_from_its_root_and_every_node_is_walked() {
        let root = new_child(None, no_deadline());
        let mut chain = vec![root.clone()];
        for _ in 0..1_000 {
            let next = new_child(chain.last(), no_deadline());
            chain.push(next);
        }
        assert!(chain.iter().all(|node| node.children.get().is_none()));
        assert!(cancel(&root, canceled()));
        for node in &chain {
            let state = node.state.load(Ordering::Acquire);
            assert_eq!(done_kind(state), Some(Error::Canceled));
            assert_ne!(state & WALKED, 0);
        }
        // A later cancel of any node changes nothing and returns at once.
        assert!(!cancel(
            &chain[500],
            Completion::With(Error::DeadlineExceeded, None)
        ));
        assert_eq!(err(&chain[500]), Some(Error::Canceled));
    }

    #[test]
    fn a_child_of_a_completed_parent_is_born_done_with_its_reason() {
        let parent = new_child(None, no_deadline());
        let reason: Reason = Arc::from(Box::<dyn std::error::Error + Send + Sync>::from("gone"));
        assert!(cancel(
            &parent,
            Completion::With(Error::Canceled, Some(reason))
        ));
        let child = new_child(Some(&parent), no_deadline());
        assert_eq!(err(&child), Some(Error::Canceled));
        assert_eq!(
            cause(&child).map(|c| c.to_string()),
            Some("gone".to_string())
        );
        assert_eq!(child_count(&parent), 0);
    }

    /// The awaited request (one task on an owner of its deadline, armed) keeps its waker and
    /// its timer key inline: no `Extra` is allocated, and the completion wakes the task and
    /// disarms the entry.
    #[test]
    fn an_awaited_owner_keeps_its_waiter_and_timer_key_inline() {
        use crate::test_waker::counter;
        let node = new_child(
            None,
            NewNode {
                deadline: time::now() + 3_600_000_000_000,
                deadline_cause: None,
                now: None,
            },
        );
        let (wakes, waker) = counter();
        let Registered::Waiting(key) = register(&node, Waiter::Task(waker), true) else {
            panic!("not done");
        };
        assert_eq!(key, 0);
        {
            let inner = node.lock();
            assert!(inner.extra.is_none(), "nothing allocated beyond the node");
            assert!(inner.waker.is_some() && inner.timer.is_some());
        }
        assert!(cancel(&node, canceled()));
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        let inner = node.lock();
        assert!(inner.waker.is_none() && inner.timer.is_none());
    }

    /// Waiter keys: 0 is the inline place (a task only), later ones the extra list; a freed
    /// inline place is taken again; a thread goes to the list; refreshing and removing find
    /// each by its key, and the completion notifies everyone left.
    #[test]
    fn the_inline_waiter_place_and_the_list_share_the_keys() {
        use crate::test_waker::counter;
        let node = new_child(None, no_deadline());
        let waiting = |waiter| match register(&node, waiter, false) {
            Registered::Waiting(key) => key,
            Registered::Done(_) => panic!("not done"),
        };
        let (first_wakes, first) = counter();
        let (second_wakes, second) = counter();
        let (third_wakes, third) = counter();
        let a = waiting(Waiter::Task(first.clone()));
        let b = waiting(Waiter::Task(second.clone()));
        let thread = waiting(Waiter::Thread(std::thread::current()));
        assert_eq!(a, 0);
        assert!(b != 0 && thread != 0 && b != thread);
        assert_eq!(waiter_count(&node), 3);
        // Refreshing key 0 and a listed key replaces the right waker.
        assert!(refresh_waker(&node, a, &third));
        assert!(refresh_waker(&node, b, &second));
        assert!(matches!(deregister(&node, thread), Some(Waiter::Thread(_))));
        assert!(matches!(deregister(&node, a), Some(Waiter::Task(_))));
        assert!(deregister(&node, a).is_none(), "a key is removed once");
        // The freed inline place is taken by the next task.
        let c = waiting(Waiter::Task(first));
        assert_eq!(c, 0);
        assert_eq!(waiter_count(&node), 2);
        assert!(cancel(&node, canceled()));
        assert_eq!(first_wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(second_wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            third_wakes.0.load(Ordering::SeqCst),
            0,
            "its entry was refreshed, then removed"
        );
        assert!(
            !refresh_waker(&node, b, &second),
            "the completion took the entries"
        );
        assert_eq!(waiter_count(&node), 0);
    }

    /// `complete` and `complete_quick` (which repeats its rules for speed) give the same result
    /// on every case the quick path takes, and the quick path changes nothing on the others.
    #[test]
    fn both_completion_paths_agree() {
        use crate::sync::Ordering as StdOrdering;
        use crate::test_waker::counter;
        const HOUR: u64 = 3_600_000_000_000;
        // A deadline `nanos_from_now` away; a past one is created as if it were still ahead
        // (the creator's clock read is given), so it passes lazily, after creation.
        let timeout = |nanos_from_now: i64| {
            let now = time::now();
            let deadline = (now as i64 + nanos_from_now) as u64;
            NewNode {
                deadline,
                deadline_cause: None,
                now: Some(now.min(deadline - 1)),
            }
        };
        // name, parent's own deadline (None: no deadline), child's node, waiter, children
        type Case = (&'static str, Option<i64>, fn() -> Option<i64>, bool, usize);
        let cases: [Case; 12] = [
            ("plain", None, || None, false, 0),
            ("a waiter", None, || None, true, 0),
            ("an inline child", None, || None, false, 1),
            ("shard children", None, || None, false, 3),
            ("a child and a waiter", None, || None, true, 1),
            ("inherits a deadline", Some(HOUR as i64), || None, false, 0),
            ("owns a deadline", None, || Some(HOUR as i64), false, 0),
            (
                "owns a deadline, a waiter",
                None,
                || Some(HOUR as i64),
                true,
                0,
            ),
            (
                "owns a deadline, an async waiter (armed)",
                None,
                || Some(HOUR as i64),
                true,
                0,
            ),
            (
                "owns a deadline, armed, with children",
                None,
                || Some(HOUR as i64),
                true,
                2,
            ),
            (
                "owns a deadline that passed",
                None,
                || Some(-1_000),
                false,
                0,
            ),
            (
                "inherits, with children",
                Some(HOUR as i64),
                || None,
                true,
                2,
            ),
        ];
        // The state bits a completion sets, and what it hands out.
        let observe = |quick: bool, case: &Case| -> Option<(u32, usize, usize)> {
            let (name, parent_deadline, own, waiter, children) = *case;
            let parent = new_child(None, parent_deadline.map_or_else(no_deadline, timeout));
            let node = new_child(Some(&parent), own().map_or_else(no_deadline, timeout));
            let (wakes, waker) = counter();
            if waiter {
                let arm = name.contains("armed");
                assert!(matches!(
                    register(&node, Waiter::Task(waker), arm),
                    Registered::Waiting(_)
                ));
                assert_eq!(
                    node.state.load(Ordering::Acquire) & ARMED != 0,
                    arm,
                    "{name}"
                );
            }
            let kept: Vec<_> = (0..children)
                .map(|_| new_child(Some(&node), no_deadline()))
                .collect();
            let before = node.state.load(Ordering::Acquire);
            let handed = if quick {
                let mut deferred = Taken::none();
                match complete_quick(&node, Error::Canceled, || (), Some(&mut deferred)) {
                    Quick::Childless => 0,
                    Quick::Children(mut taken) => {
                        deferred.notify_all();
                        std::iter::from_fn(|| taken.next())
                            .filter(|c| c.upgrade().is_some())
                            .count()
                    }
                    Quick::Fallback => {
                        let after = node.state.load(Ordering::Acquire);
                        assert_eq!(before, after, "{}: fallback changed the state", case.0);
                        assert_eq!(wakes.0.load(StdOrdering::SeqCst), 0, "{}", case.0);
                        return None;
                    }
                }
            } else {
                let mut done = complete(&node, canceled()).expect("not completed yet");
                done.notify_waiters();
                std::iter::from_fn(|| done.children.next())
                    .filter(|c| c.upgrade().is_some())
                    .count()
            };
            let state = node.state.load(Ordering::Acquire) & (DONE_MASK | COMPLETED | WALKED);
            drop(kept);
            Some((state, handed, wakes.0.load(StdOrdering::SeqCst)))
        };
        let mut quick_taken = 0;
        for case in &cases {
            let slow = observe(false, case).unwrap();
            assert_eq!(slow.1, case.4, "{}: children handed back", case.0);
            assert_eq!(slow.2, usize::from(case.3), "{}: waiter woken", case.0);
            if let Some(quick) = observe(true, case) {
                quick_taken += 1;
                assert_eq!(quick, slow, "{}: (state, children, wakes) differ", case.0);
            }
        }
        // The quick path must really have run on the common cases, or this test proves nothing.
        assert!(
            quick_taken >= 9,
            "the quick path took only {quick_taken} cases"
        );
    }
}
