//! The cancel tree: every lock and atomic of the context core lives here, as free functions
//! over `&Arc<Node>`, so the public `Context` file holds no locking code.
//!
//! A [`Node`] exists for every cancelable context (`with_cancel`, `with_deadline`, ...). Value
//! layers and `without_cancel` add no node: a `Context` is a pair of pointers, its nearest node
//! and its nearest value layer (see `values.rs`).
//!
//! # The state word
//!
//! `Node::state` packs what readers need into one atomic, so [`is_done`] and [`err`] never lock:
//! the done kind ([`CANCELED`] or [`DEADLINE`], never changed once set), whether the node has a
//! deadline ([`HAS_DEADLINE`]) and set it itself ([`OWNS_DEADLINE`]), both fixed at creation,
//! and whether the timer thread watches the deadline ([`ARMED`]).
//!
//! # Deadlines are lazy
//!
//! Creating a context with a deadline arms no timer. A node's *effective* deadline is the
//! earlier of its own and its parent's; the node *owns* it when its own is strictly earlier,
//! and otherwise *inherits* it. Until the node is completed:
//!
//! * an owner that no timer watches is done when the clock says so (one clock read);
//! * an inheriting node, or an owner that the timer watches, is done when its parent is.
//!
//! So a child never reports done before the ancestor whose deadline it shares, and a timer is
//! armed (on the owner) only when somebody waits asynchronously or registers an after-function.
//! Whatever a reader has seen lazily, the completion that follows records the same: see
//! [`complete`], which looks at the lazy state first ("materializes" it).
//!
//! # Invariants
//!
//! 1. The done bits of `state` are set once, under the node's `inner` lock, by [`complete`];
//!    `inner.cause` holds the final reason from then on and never changes.
//! 2. Before the node is done, `inner.cause` holds the reason to give if the node's *own*
//!    deadline expires (the `_cause` constructors), and `None` otherwise.
//! 3. A node is in its parent's `children` slab, at index `slot`, iff it was linked there and
//!    neither it unlinked itself nor the parent was completed. `slot` is read and written only
//!    under the parent's `inner` lock. Once a parent is done it links no more children and its
//!    slab stays empty.
//! 4. `ARMED` is set under the node's lock, together with the insertion of the timer entry, and
//!    only on an owner that is not done. The timer entry holds a strong reference, so an armed
//!    node lives until it fires or the completion removes the entry.
//! 5. A completion takes the waiters and children out under the lock and notifies them after
//!    releasing it; no user code runs on the completing thread (after-functions get their own
//!    thread, see `after_func.rs`).
//! 6. When [`cancel`] returns, every descendant reports done: the completion walks the subtree
//!    synchronously, with an explicit stack (a 10,000-deep chain does not overflow it).
//!
//! # Lock order
//!
//! A thread may hold a node's `inner` and then take an *ancestor's* `inner` (to read the
//! ancestor's cause when materializing a lazy state), and may hold a node's `inner` and then take
//! the timer's lock (arming). Nothing takes a descendant's lock while holding a node's lock:
//! a completion releases the parent before it completes the children. The timer's lock is a
//! leaf: nothing else is taken under it. Ancestry is a partial order, so these rules cannot form
//! a cycle.

use std::fmt;

use crate::context::clock::{self, NO_DEADLINE};
use crate::context::error::{Cause, Error, Reason};
use crate::context::timer;
use crate::context::waiters::{Waiter, Waiters};
use crate::sync::{Arc, AtomicU32, Mutex, MutexGuard, Ordering, Weak};

// ===== state word =====

/// Done bits: completed as canceled.
pub(crate) const CANCELED: u32 = 0b00001;
/// Done bits: completed because a deadline passed.
pub(crate) const DEADLINE: u32 = 0b00010;
/// Mask of the done bits.
const DONE_MASK: u32 = CANCELED | DEADLINE;
/// The node has an effective deadline (`Node::deadline != NO_DEADLINE`). Fixed at creation.
const HAS_DEADLINE: u32 = 0b00100;
/// The effective deadline is the node's own (strictly earlier than its parent's). Fixed at
/// creation.
const OWNS_DEADLINE: u32 = 0b01000;
/// The timer thread watches this owner's deadline (invariant 4).
const ARMED: u32 = 0b10000;

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

/// `slot` value of a node that is not in its parent's slab.
const UNLINKED: u32 = u32::MAX;

// ===== Node =====

/// One cancelable context. See the module docs for the invariants.
pub(crate) struct Node {
    /// Done bits and flags; see the constants above.
    state: AtomicU32,
    /// Index in the parent's children slab, or `UNLINKED`; only under the parent's lock
    /// (invariant 3).
    slot: AtomicU32,
    /// Effective deadline, encoded by `clock`; `NO_DEADLINE` if none. Never changes.
    deadline: u64,
    /// The nearest cancelable ancestor. Never changes.
    parent: Option<Arc<Node>>,
    /// Guards the fields below it.
    inner: Mutex<Inner>,
}

struct Inner {
    /// Before done: the own-deadline reason (invariant 2); after: the final reason (1).
    cause: Option<Reason>,
    /// Tasks, threads and after-functions to notify on completion.
    waiters: Waiters,
    /// Linked children; allocated on the first link.
    children: Option<Box<Children>>,
}

/// A slab of weak references to linked children (invariant 3).
#[derive(Default)]
struct Children {
    entries: Vec<Weak<Node>>,
    free: Vec<u32>,
    live: u32,
}

#[cfg(debug_assertions)]
static LIVE_NODES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Number of nodes alive in this process (debug builds only).
pub(crate) fn live_nodes() -> Option<usize> {
    #[cfg(debug_assertions)]
    {
        Some(LIVE_NODES.load(std::sync::atomic::Ordering::SeqCst))
    }
    #[cfg(not(debug_assertions))]
    {
        None
    }
}

impl Node {
    fn new(state: u32, deadline: u64, parent: Option<Arc<Node>>, cause: Option<Reason>) -> Node {
        #[cfg(debug_assertions)]
        LIVE_NODES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Node {
            state: AtomicU32::new(state),
            slot: AtomicU32::new(UNLINKED),
            deadline,
            parent,
            inner: Mutex::new(Inner {
                cause,
                waiters: Waiters::new(),
                children: None,
            }),
        }
    }

    /// The effective deadline, encoded (`NO_DEADLINE` if none).
    pub(crate) fn deadline(&self) -> u64 {
        self.deadline
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock()
    }
}

impl Node {
    /// Leaves the parent (see `Drop`) and hands the parent reference back.
    fn detach(&mut self) -> Option<Arc<Node>> {
        let parent = self.parent.take()?;
        let me: *const Node = self;
        unlink_from(&parent, &self.slot, me);
        Some(parent)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        LIVE_NODES.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        // Every handle is gone: leave the parent's slab so it pins nothing (invariant 3). Then
        // release the ancestors this node alone kept alive, iteratively: a recursive drop of a
        // 10,000-deep chain would overflow a thread's stack.
        let mut next = self.detach();
        while let Some(parent) = next {
            match Arc::try_unwrap(parent) {
                Ok(mut node) => next = node.detach(),
                Err(_) => break,
            }
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
    let owns = new.deadline != NO_DEADLINE && (parent_deadline == NO_DEADLINE || new.deadline < parent_deadline);
    let (deadline, state, cause) = if owns {
        // Invariant 2: only an owner keeps a pending deadline reason.
        (new.deadline, HAS_DEADLINE | OWNS_DEADLINE, new.deadline_cause)
    } else if parent_deadline != NO_DEADLINE {
        (parent_deadline, HAS_DEADLINE, None)
    } else {
        (NO_DEADLINE, 0, None)
    };
    let expired = owns && deadline <= new.now.unwrap_or_else(clock::now);
    let node = Arc::new(Node::new(state, deadline, parent.cloned(), cause));
    let Some(parent) = parent else {
        if expired {
            node.state.fetch_or(DEADLINE, Ordering::Release);
        }
        return node;
    };
    let mut parent_inner = parent.lock();
    if let Some(error) = done_kind(parent.state.load(Ordering::Acquire)) {
        // Invariant 1: the parent's cause is final.
        let reason = parent_inner.cause.clone();
        drop(parent_inner);
        // The child is not shared yet: its lock is free.
        node.lock().cause = reason;
        node.state.fetch_or(done_bits(error), Ordering::Release);
    } else if expired {
        drop(parent_inner);
        node.state.fetch_or(DEADLINE, Ordering::Release);
    } else {
        let children = parent_inner.children.get_or_insert_with(Default::default);
        let weak = Arc::downgrade(&node);
        let slot = match children.free.pop() {
            Some(slot) => {
                children.entries[slot as usize] = weak;
                slot
            }
            None => {
                children.entries.push(weak);
                u32::try_from(children.entries.len() - 1)
                    .expect("ctxkit: more than 4 billion children of one context")
            }
        };
        children.live += 1;
        // Invariant 3: under the parent's lock.
        node.slot.store(slot, Ordering::Relaxed);
    }
    node
}

/// Removes the node whose `slot` field is `slot` and whose address is `me` from `parent`'s
/// slab, if it is still there (invariant 3).
fn unlink_from(parent: &Node, slot: &AtomicU32, me: *const Node) {
    // A done parent has emptied its slab for good: nothing to do, and no lock needed.
    if parent.state.load(Ordering::Acquire) & DONE_MASK != 0 {
        return;
    }
    let mut inner = parent.lock();
    // Invariant 3: `slot` is only touched under this lock.
    let index = slot.swap(UNLINKED, Ordering::Relaxed);
    if index == UNLINKED || parent.state.load(Ordering::Relaxed) & DONE_MASK != 0 {
        return;
    }
    let Some(children) = inner.children.as_mut() else {
        return;
    };
    let entry = &mut children.entries[index as usize];
    debug_assert!(std::ptr::eq(entry.as_ptr(), me), "a child's slot names another child");
    if std::ptr::eq(entry.as_ptr(), me) {
        *entry = Weak::new();
        children.free.push(index);
        children.live -= 1;
        if children.live == 0 {
            // Nothing grows without bound: an emptied slab gives its memory back.
            inner.children = None;
        }
    }
}

// ===== reading =====

/// True once the node is done, counting a deadline that has passed but that nobody has
/// completed yet. Never locks.
pub(crate) fn is_done(node: &Node) -> bool {
    err(node).is_some()
}

/// Why the node is done, if it is. Never locks: one atomic load per node from here to the
/// ancestor whose deadline this node shares, plus one clock read if no timer watches it.
pub(crate) fn err(node: &Node) -> Option<Error> {
    let mut node = node;
    loop {
        let state = node.state.load(Ordering::Acquire);
        if let Some(error) = done_kind(state) {
            return Some(error);
        }
        match lazy_step(node, state) {
            Lazy::NotDone => return None,
            Lazy::Expired => return Some(Error::DeadlineExceeded),
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
fn lazy_step(node: &Node, state: u32) -> Lazy<'_> {
    if state & HAS_DEADLINE == 0 {
        return Lazy::NotDone;
    }
    if state & (OWNS_DEADLINE | ARMED) == OWNS_DEADLINE {
        return if clock::now() >= node.deadline {
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
        let state = node.state.load(Ordering::Acquire);
        if let Some(error) = done_kind(state) {
            // Invariant 1: the reason is final once the done bits are visible.
            return Some(Cause::new(error, node.lock().cause.clone()));
        }
        match lazy_step(node, state) {
            Lazy::NotDone => return None,
            Lazy::Expired => {
                let inner = node.lock();
                let state = node.state.load(Ordering::Acquire);
                // Either way the reason is in `cause`: the final one (1) or the pending one (2).
                let error = done_kind(state).unwrap_or(Error::DeadlineExceeded);
                return Some(Cause::new(error, inner.cause.clone()));
            }
            Lazy::AskParent(parent) => node = parent,
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
/// was already done (the first completion wins; later ones change nothing).
pub(crate) fn cancel(node: &Arc<Node>, completion: Completion) -> bool {
    let Some(done) = complete(node, completion) else {
        return false;
    };
    if let Some(parent) = &node.parent {
        unlink_from(parent, &node.slot, Arc::as_ptr(node));
    }
    // Invariant 6: walk the subtree before returning, without recursion.
    let mut stack: Vec<(Vec<Weak<Node>>, Error, Option<Reason>)> = Vec::new();
    if let Some(children) = done.children {
        stack.push((children.entries, done.error, done.reason));
    }
    while let Some((children, error, reason)) = stack.pop() {
        for child in children {
            // A child whose every handle is gone is being dropped: nothing to notify.
            let Some(child) = child.upgrade() else { continue };
            if let Some(done) = complete(&child, Completion::With(error, reason.clone())) {
                if let Some(grandchildren) = done.children {
                    stack.push((grandchildren.entries, done.error, done.reason));
                }
            }
        }
    }
    true
}

/// What [`complete`] recorded and took out.
struct Done {
    error: Error,
    reason: Option<Reason>,
    children: Option<Box<Children>>,
}

/// Sets the done bits of one node (invariant 1), notifies its waiters and hands back its
/// children. `None` if it was already done.
fn complete(node: &Node, completion: Completion) -> Option<Done> {
    let mut inner = node.lock();
    let state = node.state.load(Ordering::Acquire);
    if state & DONE_MASK != 0 {
        return None;
    }
    // Record what a reader may already have seen (see "Deadlines are lazy"). Reading an
    // ancestor's cause locks it, which the lock order allows.
    let seen = match lazy_step(node, state) {
        Lazy::NotDone => None,
        Lazy::Expired => Some((Error::DeadlineExceeded, inner.cause.clone())),
        Lazy::AskParent(parent) => cause(parent).map(|c| (c.error(), c.reason_arc().cloned())),
    };
    let (error, reason) = match (seen, completion) {
        (Some(seen), _) => seen,
        // Invariant 2: the pending reason of the node's own deadline.
        (None, Completion::Expire) => (Error::DeadlineExceeded, inner.cause.clone()),
        (None, Completion::With(error, reason)) => (error, reason),
    };
    inner.cause = reason.clone();
    node.state.fetch_or(done_bits(error), Ordering::Release);
    let waiters: Vec<Waiter> = if inner.waiters.is_empty() {
        Vec::new()
    } else {
        inner.waiters.take_all().collect()
    };
    let children = inner.children.take();
    drop(inner);
    if state & ARMED != 0 {
        timer::disarm(node.deadline, node as *const Node);
    }
    // Invariant 5: notify with no lock held.
    for waiter in waiters {
        waiter.notify();
    }
    Some(Done {
        error,
        reason,
        children,
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

/// Adds `waiter` to the node (or replaces the one under `key`), unless the node is done.
///
/// With `arm`, makes sure the timer watches the deadline this node shares, so that the waiter
/// is notified when it passes (async waiters and after-functions need that; a blocked thread
/// parks with a timeout instead).
pub(crate) fn register(node: &Arc<Node>, waiter: Waiter, key: Option<u32>, arm: bool) -> Registered {
    let mut inner = node.lock();
    let state = node.state.load(Ordering::Acquire);
    if let Some(error) = done_kind(state) {
        return Registered::Done(error);
    }
    match lazy_step(node, state) {
        Lazy::NotDone => {}
        Lazy::Expired => {
            drop(inner);
            cancel(node, Completion::Expire);
            return Registered::Done(err(node).unwrap_or(Error::DeadlineExceeded));
        }
        Lazy::AskParent(parent) => {
            if let Some(error) = err(parent) {
                return Registered::Done(error);
            }
        }
    }
    let key = match key.and_then(|key| inner.waiters.get_mut(key).map(|slot| (key, slot))) {
        Some((key, slot)) => {
            *slot = waiter;
            key
        }
        None => inner.waiters.insert(waiter),
    };
    drop(inner);
    if arm && state & HAS_DEADLINE != 0 {
        arm_owner(node);
    }
    Registered::Waiting(key)
}

/// Updates the waker of a registered task, cloning only if it would wake a different task.
/// Returns false if the entry is gone (the node completed and took it).
pub(crate) fn refresh_waker(node: &Node, key: u32, waker: &std::task::Waker) -> bool {
    let mut inner = node.lock();
    match inner.waiters.get_mut(key) {
        Some(Waiter::Task(current)) => {
            if !current.will_wake(waker) {
                *current = waker.clone();
            }
            true
        }
        _ => false,
    }
}

/// Removes the waiter under `key`, if the node still holds it. Returns it.
pub(crate) fn deregister(node: &Node, key: u32) -> Option<Waiter> {
    if node.state.load(Ordering::Acquire) & DONE_MASK != 0 {
        // Invariant 5: a completion took the whole list.
        return None;
    }
    node.lock().waiters.remove(key)
}

/// Arms the timer on the ancestor-or-self that owns `node`'s deadline, or completes it at once
/// if that deadline has already passed.
fn arm_owner(node: &Arc<Node>) {
    let mut owner = node;
    while owner.state.load(Ordering::Acquire) & OWNS_DEADLINE == 0 {
        match &owner.parent {
            Some(parent) => owner = parent,
            None => return,
        }
    }
    let inner = owner.lock();
    let state = owner.state.load(Ordering::Acquire);
    if state & (DONE_MASK | ARMED) != 0 {
        return;
    }
    if clock::now() >= owner.deadline {
        drop(inner);
        cancel(owner, Completion::Expire);
        return;
    }
    // Invariant 4: the entry goes in under the node's lock, with the flag.
    timer::arm(owner.deadline, owner.clone());
    owner.state.fetch_or(ARMED, Ordering::Release);
    drop(inner);
}

// ===== introspection =====

/// Number of children linked under `node` (tests and `Debug`).
pub(crate) fn child_count(node: &Node) -> usize {
    node.lock().children.as_ref().map_or(0, |c| c.live as usize)
}

/// Number of waiters registered on `node` (tests and `Debug`).
pub(crate) fn waiter_count(node: &Node) -> usize {
    node.lock().waiters.len()
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("err", &err(self))
            .field("deadline", &(self.deadline != NO_DEADLINE).then(|| clock::decode(self.deadline)))
            .finish_non_exhaustive()
    }
}
