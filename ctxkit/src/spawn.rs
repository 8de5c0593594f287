//! The one place ctxkit starts work: threads (detached or scoped) and tokio tasks.
//!
//! Every *unit* the library starts goes through this module: the `ctxkit-timer` thread, the
//! after-function pool's shared threads (`ctxkit-after-func` workers and their
//! `ctxkit-after-dispatch`; each function they run is a unit of its own, a [`PooledUnit`]), the
//! scoped `ctxkit-group` threads of `group::scope` and of the
//! blocking joins, and the worker tasks of the async `Group` (feature `tokio`). Nothing else in
//! the crate calls `std::thread::spawn`, `thread::Builder` or `tokio::spawn`. Each unit is
//! started with an [`Origin`]: its name (one of the constants below) and the `#[track_caller]`
//! site that started it; its start time and kind are added here. A registry holds that record
//! for as long as the unit runs ([`live_and_dormant`]): what a leak report can name.
//!
//! # Scope tags
//!
//! A unit also carries a [`ScopeTag`]: an opaque id that whatever it starts inherits. The code
//! that starts a unit has a current tag ([`ScopeTag::current`]); the new unit records it, and
//! it becomes the current tag of the code the unit runs: a thread's for its whole life (a
//! thread-local set when it starts), a task's for each of its polls (looked up in the registry
//! by tokio's id of the running task; a tagged task's future is also wrapped to set its tag
//! around each poll, an untagged one's is not, so it costs nothing more to poll). So a tag set
//! around a test (with [`ScopeTag::enter`] on its thread) follows the work the test starts,
//! across threads and tasks, however deep; the leak checker uses it to tell its test's units
//! from a parallel test's.
//!
//! # Cost
//!
//! A unit costs one registration (a lock, a slab insert, and an allocation for its record);
//! when it ends, it costs one reference-count decrement (no lock). Tags cost nothing until one
//! is first entered in the process: until then [`ScopeTag::current`] is one relaxed load, and
//! an untagged task's future is wrapped only to hold its record (a first version polled every
//! task through a wrapper that set a thread-local around each poll; it made an async group's
//! worker task a third larger, and `group.first_error_cancel`, which wakes a thousand of them
//! at once, measurably slower). The async `Group` reuses its worker
//! tasks, so the registration is paid per worker, not per group task.
//!
//! # Invariants
//!
//! 1. A thread is in the registry (its record held by the registry and by the thread's
//!    registration) from before it can start running until its body has returned or unwound:
//!    the registration, a guard that the body owns, then lets go of the record (at once if the
//!    thread could not be started). A task is in it from before `spawn_task` returns until
//!    tokio has finished it (its future completed, or was dropped): the future holds the
//!    record's second reference, which tokio drops with the future. An ended unit's record
//!    is not reported, and is reclaimed by a later registration, under the lock; what the
//!    unit itself held (a thread's stack, a task's tokio cell) is freed when it ends.
//!    A [`PooledUnit`] (work that borrows a shared thread) is reported from its `begin` until
//!    its `run` returns or unwinds, as the thread's current unit.
//! 2. A unit's tag is the current tag of the code that started it, fixed when it is started.
//!    The current tag is, inside a task this module started and recorded, that task's tag
//!    (whatever the polling thread's is); elsewhere, the thread's (a thread this module started
//!    holds its tag from its start; [`ScopeTag::enter`] sets another until its guard drops; a
//!    tagged task sets its tag as its thread's during each of its polls, which covers a poll
//!    on another thread before `spawn_task` has recorded it). So what a unit starts inherits
//!    its tag. (Left out: an untagged task spawned from one thread onto a current-thread
//!    runtime whose thread has entered a tag, polled there before it is recorded, sees that
//!    tag.)
//! 3. The registry's lock is a leaf: nothing is locked under it, and no user code runs under it
//!    (a record is plain data: names, a location, an instant, a tag, and a weak reference to
//!    what the unit waits on, described only after the lock is released; a thread's own record
//!    has leaf locks of its own for that reference and, on a shared thread, for the unit it runs
//!    now ([`PooledUnit`]), taken under the registry's when they are read).
//! 4. What a unit waits on is recorded only while tags are in use (a leak check has started in
//!    the process): a ctxkit thread sets it in its own record for a blocking wait on a
//!    context, a ctxkit task in its registry entry when a context's `Done` returns `Pending`.
//!    A wait that ends with the context done clears it; one that ends otherwise (a timeout, a
//!    `select!` that took another branch) keeps the context as what the unit last waited on,
//!    which is what a leak report wants to show for a unit that waits in a loop. Otherwise
//!    `note_waiting` is one relaxed load.
//! 5. A *gated* task (`spawn_gated_task`, feature `tokio`: an async after-function's, spawned
//!    at its registration) is recorded as any task is, from its spawn, but is *dormant* while
//!    its gate is not open: alive (never reclaimed) yet not among the units
//!    [`live_and_dormant`] reports, only counted by it (a leak check counts it among the
//!    tracked tasks of its runtime, reported by nobody). Its gate's state moves once, from
//!    waiting to open or shut, by its one `Trigger`; the store happens before the task is
//!    woken, so a task that runs its future is reported from before it does. The record reads
//!    the state with one load: the gate lives in the record.
//!
//! # Lock order
//!
//! One lock, the registry's, a leaf (invariant 3): it may be taken under any other lock (the
//! timer starts its thread under its own lock). A gate's waker lock is a leaf too, taken by
//! its task's poll and by its trigger, under no other lock of this module; a waker is woken
//! after it is released.

use std::cell::Cell;
use std::num::NonZeroU64;
use std::panic::Location;
use std::time::Instant;

use crate::sync::{self, Arc, Mutex};
#[cfg(feature = "tokio")]
use crate::sync::{AtomicU8, Ordering};

/// Name of the one timer thread (`timer.rs`).
pub(crate) const TIMER_THREAD: &str = "ctxkit-timer";
/// Name of the threads that run after-functions (`blocking/`'s workers), and of each
/// after-function's own unit while it runs on one (`PooledUnit`).
pub(crate) const AFTER_FUNC_THREAD: &str = "ctxkit-after-func";
/// Name of the thread that hands queued after-functions to the pool's workers and starts them
/// (`blocking/`).
pub(crate) const AFTER_FUNC_DISPATCHER: &str = "ctxkit-after-dispatch";
/// Name of the scoped threads of `group::scope` and of the blocking joins.
pub(crate) const GROUP_THREAD: &str = "ctxkit-group";
/// Name of the async `Group`'s worker tasks (a task has no OS name; this is the registry's).
#[cfg(feature = "tokio")]
pub(crate) const GROUP_TASK: &str = "ctxkit-group-worker";
/// Name of the worker threads of a pool's thread form (`pool/`).
pub(crate) const POOL_THREAD: &str = "ctxkit-pool";
/// Name of the worker tasks of a pool's async form (`pool/`).
#[cfg(feature = "tokio")]
pub(crate) const POOL_TASK: &str = "ctxkit-pool-worker";

/// Who starts a unit: its name and the site that started it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    name: &'static str,
    site: &'static Location<'static>,
}

impl Origin {
    /// A unit named `name`, started from the caller's site: through every `#[track_caller]`
    /// function above, so a public `#[track_caller]` entry point records the user's call.
    #[track_caller]
    pub(crate) fn here(name: &'static str) -> Origin {
        Origin {
            name,
            site: Location::caller(),
        }
    }

    /// The site that started the unit.
    pub(crate) fn site(&self) -> &'static Location<'static> {
        self.site
    }
}

// ===== scope tags =====

/// An opaque id that the units started under it inherit (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ScopeTag(NonZeroU64);

thread_local! {
    /// The current thread's tag (invariant 2).
    static CURRENT: Cell<Option<ScopeTag>> = const { Cell::new(None) };
}

/// Set (for good) when a tag is first entered: until then no thread has a tag and no unit
/// carries one, so [`ScopeTag::current`] is `None` without looking. Relaxed is enough: a unit
/// started after the store happens after it (starting a thread, and tokio's queue, order the
/// start after the spawner's earlier writes), and a thread sees its own stores. std's atomic,
/// as tags are not part of any model.
static ENTERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether tags are in use (a leak check has started in this process): then units record what
/// they wait on, and contexts where they were made.
pub(crate) fn tracking() -> bool {
    entered()
}

fn entered() -> bool {
    ENTERED.load(std::sync::atomic::Ordering::Relaxed)
}

impl ScopeTag {
    /// A new tag nested in the current one (if any): what a unit started under the new tag
    /// starts is inside both (`is_within`).
    pub(crate) fn nested() -> ScopeTag {
        let parent = ScopeTag::current();
        let tag = ScopeTag::new();
        if let Some(parent) = parent {
            TAG_PARENTS.lock().push((tag, parent));
        }
        tag
    }

    /// Whether `self` is `scope` or nested in it, however deep.
    pub(crate) fn is_within(self, scope: ScopeTag) -> bool {
        let parents = TAG_PARENTS.lock();
        let mut tag = self;
        loop {
            if tag == scope {
                return true;
            }
            match parents.iter().rev().find(|(child, _)| *child == tag) {
                Some((_, parent)) => tag = *parent,
                None => return false,
            }
        }
    }

    /// A tag no other call returns.
    pub(crate) fn new() -> ScopeTag {
        // std's atomic, not the loom facade's: a `static` needs a `const` constructor, and tags
        // are not part of any model.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Zero would take 2^64 tags to reach.
        ScopeTag(NonZeroU64::new(id).unwrap_or(NonZeroU64::MAX))
    }

    /// The current tag, which a unit started now would inherit (invariant 2).
    pub(crate) fn current() -> Option<ScopeTag> {
        if !entered() {
            return None;
        }
        #[cfg(feature = "tokio")]
        if let Some(tag) = tokio::task::try_id().and_then(task_tag) {
            return tag;
        }
        CURRENT.with(Cell::get)
    }

    /// Makes `self` the current thread's tag until the guard is dropped (then the previous one
    /// is restored).
    pub(crate) fn enter(self) -> Entered {
        ENTERED.store(true, std::sync::atomic::Ordering::Relaxed);
        enter(Some(self))
    }
}

sync::lazy_static! {
    /// Each nested tag with the tag it was made under (a guard inside a guard); a few entries
    /// per test binary, never removed, since a unit may outlive its scope.
    static ref TAG_PARENTS: Mutex<Vec<(ScopeTag, ScopeTag)>> = Mutex::new(Vec::new());
}

/// Restores the previous tag when dropped (invariant 2).
#[must_use = "the tag is current only until the guard is dropped"]
#[derive(Debug)]
pub(crate) struct Entered(Option<ScopeTag>);

fn enter(tag: Option<ScopeTag>) -> Entered {
    Entered(CURRENT.with(|current| current.replace(tag)))
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.0));
    }
}

// ===== the registry =====

/// What kind of unit a record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A detached thread (`try_spawn_named`).
    Thread,
    /// A thread of a `std::thread::scope` (`try_spawn_scoped`), joined by its scope.
    ScopedThread,
    /// A thread of ctxkit's own, shared by the whole process (`try_spawn_shared`: the
    /// after-function pool's workers and its dispatcher). Untagged, and never a leak by itself,
    /// as the timer is not; what it runs for somebody is a unit of its own ([`PooledUnit`]).
    Shared,
    /// A tokio task (`spawn_task`).
    #[cfg_attr(
        not(feature = "tokio"),
        allow(dead_code, reason = "tasks need the tokio feature")
    )]
    Task,
}

/// What is known about one unit ctxkit started and that still runs.
#[derive(Clone, Debug)]
pub(crate) struct UnitInfo {
    /// Thread or task.
    pub(crate) kind: Kind,
    /// The unit's name (a thread's OS name too).
    pub(crate) name: &'static str,
    /// The site that started it ([`Origin::here`]).
    pub(crate) spawned_at: &'static Location<'static>,
    /// When it was started.
    pub(crate) started: Instant,
    /// The tag it inherited (invariant 2).
    pub(crate) tag: Option<ScopeTag>,
    /// What it waits on, described, and whether it waits now (else it is what it last waited
    /// on), if it said so (only while tags are in use: invariant 4); filled in by
    /// [`live_and_dormant`].
    pub(crate) waiting: Option<(String, bool)>,
    /// A thread's OS id, if it started while tags were in use; filled in by
    /// [`live_and_dormant`].
    pub(crate) os_id: Option<u64>,
}

/// What the registry keeps of a unit: fixed when it starts (the rest of a [`UnitInfo`] is read
/// when [`live_and_dormant`] asks). Small on purpose: one is allocated per unit.
#[derive(Clone, Debug)]
struct Known {
    kind: Kind,
    name: &'static str,
    spawned_at: &'static Location<'static>,
    started: Instant,
    tag: Option<ScopeTag>,
}

/// Something a unit can wait on (a context), described for a leak report.
pub(crate) trait Waitable: Send + Sync {
    /// One line: what it is, where it was made, its deadline, whether it is done.
    fn describe(&self) -> String;
}

/// What a unit waits on (or last waited on), if it said so (invariant 4): the target, and
/// whether it is waiting now.
type Waiting = Option<(std::sync::Weak<dyn Waitable>, bool)>;

/// How a unit's wait changed (invariant 4).
pub(crate) enum WaitNote {
    /// It waits on this now.
    On(std::sync::Weak<dyn Waitable>),
    /// Its wait ended without the target being done (a timeout, another event): the target is
    /// kept as what it last waited on.
    Paused,
    /// Its wait ended because the target is done: nothing to report.
    Over,
}

/// A thread's record: what is known, what it waits on (its own thread writes it), its OS
/// thread id (0: unknown; written by the thread itself when it starts, if tracking), and, for a
/// [`Kind::Shared`] thread, the unit it runs for somebody now ([`PooledUnit`]).
struct ThreadUnit {
    info: Known,
    waiting: Mutex<Waiting>,
    os_id: std::sync::atomic::AtomicU64,
    /// The work a shared thread runs now, as a unit of its own; `None` while it idles (and
    /// always for other threads). Written by the thread itself; a leaf lock, read under the
    /// registry's (invariant 3).
    job: Mutex<Option<Known>>,
}

/// One entry of the registry: a unit's record and how to tell whether it still runs.
enum Record {
    /// A thread's record: the thread runs while its [`Registration`] holds the second
    /// reference.
    Thread(Arc<ThreadUnit>),
    /// A task's record, its tokio id and what it waits on (invariant 4). The task runs while
    /// its future holds the second reference to the record: tokio drops the future when it
    /// completes, is aborted, or its runtime shuts down. (Not an `AbortHandle`: that would
    /// keep the task's whole tokio cell, hundreds of bytes, allocated until the record is
    /// reclaimed, which after a group of a million tasks could be long after they ended.)
    #[cfg(feature = "tokio")]
    Task(Arc<TaskKnown>, tokio::task::Id, Waiting),
}

/// What the registry keeps of a task: its [`Known`], and, for a gated task
/// ([`spawn_gated_task`]), its gate.
#[cfg(feature = "tokio")]
struct TaskKnown {
    info: Known,
    gate: Option<Gate>,
}

#[cfg(feature = "tokio")]
impl TaskKnown {
    /// Whether it is a gated task whose gate has not opened (invariant 5).
    fn dormant(&self) -> bool {
        self.gate
            .as_ref()
            .is_some_and(|gate| gate.state.load(Ordering::Acquire) != OPEN)
    }
}

/// A gated task's gate (invariant 5): `state` moves once, from `WAITING` to `OPEN` or `SHUT`,
/// by its one [`Trigger`]; `waker` is the task's, stored by its poll while `WAITING`.
#[cfg(feature = "tokio")]
struct Gate {
    state: AtomicU8,
    waker: Mutex<Option<std::task::Waker>>,
}

/// The task waits.
#[cfg(feature = "tokio")]
const WAITING: u8 = 0;
/// The task runs its future.
#[cfg(feature = "tokio")]
const OPEN: u8 = 1;
/// The task ends, its future dropped unpolled.
#[cfg(feature = "tokio")]
const SHUT: u8 = 2;

impl Record {
    /// Whether the unit has not ended: its record may not be reclaimed (invariant 1).
    fn alive(&self) -> bool {
        match self {
            Record::Thread(unit) => Arc::strong_count(unit) > 1,
            #[cfg(feature = "tokio")]
            Record::Task(info, _, _) => Arc::strong_count(info) > 1,
        }
    }

    /// Whether it is a gated task whose gate has not opened (invariant 5).
    fn dormant(&self) -> bool {
        match self {
            Record::Thread(_) => false,
            #[cfg(feature = "tokio")]
            Record::Task(info, _, _) => info.dormant(),
        }
    }

    fn info(&self) -> &Known {
        match self {
            Record::Thread(unit) => &unit.info,
            #[cfg(feature = "tokio")]
            Record::Task(info, _, _) => &info.info,
        }
    }

    fn os_id(&self) -> Option<u64> {
        match self {
            Record::Thread(unit) => {
                Some(unit.os_id.load(std::sync::atomic::Ordering::Relaxed)).filter(|&id| id != 0)
            }
            #[cfg(feature = "tokio")]
            Record::Task(..) => None,
        }
    }

    /// The unit a shared thread runs now, if any.
    fn job(&self) -> Option<Known> {
        match self {
            Record::Thread(unit) => unit.job.lock().clone(),
            #[cfg(feature = "tokio")]
            Record::Task(..) => None,
        }
    }

    fn waiting(&self) -> Waiting {
        match self {
            Record::Thread(unit) => unit.waiting.lock().clone(),
            #[cfg(feature = "tokio")]
            Record::Task(_, _, waiting) => waiting.clone(),
        }
    }
}

/// The units that run: a slab of records. A unit ends without taking the registry's lock (a
/// reference-count decrement for a thread, nothing of ours for a task: the
/// `group.first_error_cancel` workload ends a thousand worker tasks at once); a later
/// registration reclaims the records of the units that have ended.
#[derive(Default)]
struct Registry {
    /// By key: the record of a unit that runs, or that ran and is not reclaimed yet; `None` for
    /// a reclaimed entry.
    units: Vec<Option<Record>>,
    /// Reclaimed keys.
    free: Vec<usize>,
    /// `units.len()` less the free keys after the last sweep: the next sweep waits until the
    /// slab has doubled, so sweeping is amortized O(1) per registration.
    swept_at: usize,
    /// The key of each task's record, by tokio's id: a running task's tag and wait note are
    /// found without a scan.
    #[cfg(feature = "tokio")]
    tasks: std::collections::HashMap<tokio::task::Id, usize, IdHasher>,
}

impl Registry {
    /// Adds `record`, reclaiming first (once the slab has doubled since the last sweep) the
    /// records of the units that have ended; returns them, to be dropped after the lock is
    /// released (a task's last handle may drop its output: invariant 3).
    fn insert(&mut self, record: Record) -> Vec<Record> {
        let mut ended = Vec::new();
        if self.free.is_empty() && self.units.len() >= (2 * self.swept_at).max(64) {
            for (key, entry) in self.units.iter_mut().enumerate() {
                if entry.as_ref().is_some_and(|record| !record.alive()) {
                    #[cfg(feature = "tokio")]
                    if let Some(Record::Task(_, id, _)) = entry {
                        self.tasks.remove(id);
                    }
                    ended.extend(entry.take());
                    self.free.push(key);
                }
            }
            self.swept_at = self.units.len() - self.free.len();
        }
        let key = self.free.pop().unwrap_or(self.units.len());
        #[cfg(feature = "tokio")]
        if let Record::Task(_, id, _) = &record {
            self.tasks.insert(*id, key);
        }
        if key == self.units.len() {
            self.units.push(Some(record));
        } else {
            self.units[key] = Some(record);
        }
        ended
    }

    /// The record of task `id`, if this module started it and it is not reclaimed.
    #[cfg(feature = "tokio")]
    fn task(&mut self, id: tokio::task::Id) -> Option<&mut Record> {
        let key = *self.tasks.get(&id)?;
        self.units.get_mut(key)?.as_mut()
    }
}

/// Hashes tokio's task ids for the registry's map: an id is a counter the runtime hands out,
/// not a key anyone chooses, so one multiply spreads it well enough, where the standard
/// library's keyed hash (made to resist chosen keys) cost about 300 instructions per worker
/// task started and ended.
#[cfg(feature = "tokio")]
#[derive(Clone, Copy, Debug, Default)]
struct IdHasher;

#[cfg(feature = "tokio")]
impl std::hash::BuildHasher for IdHasher {
    type Hasher = IdHash;

    fn build_hasher(&self) -> IdHash {
        IdHash(0)
    }
}

/// The state of one [`IdHasher`] hash.
#[cfg(feature = "tokio")]
#[derive(Debug)]
struct IdHash(u64);

#[cfg(feature = "tokio")]
impl std::hash::Hasher for IdHash {
    fn write(&mut self, bytes: &[u8]) {
        // Not reached for an id (it writes one u64); kept correct for any input.
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        // Fibonacci hashing: the golden ratio's odd 64-bit multiplier.
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        // The map takes its bucket from the low bits and a tag from the high ones: fold the
        // well-mixed high half into the low one.
        self.0 ^ (self.0 >> 32)
    }
}

sync::lazy_static! {
    /// Invariants 1 and 3.
    static ref REGISTRY: Mutex<Registry> = Mutex::new(Registry::default());
}

/// The tag of the running task `id` if this module started it (`Some(None)` for an untagged
/// one), `None` for a task of somebody else's (invariant 2).
#[cfg(feature = "tokio")]
fn task_tag(id: tokio::task::Id) -> Option<Option<ScopeTag>> {
    match REGISTRY.lock().task(id) {
        Some(Record::Task(info, _, _)) => Some(info.info.tag),
        _ => None,
    }
}

/// Records `record` (invariant 1).
fn register(record: Record) {
    let ended = REGISTRY.lock().insert(record);
    drop(ended); // invariant 3: after the lock is released
}

/// What is known about a unit being started: its kind, its origin, now, and its tag.
fn unit_info(kind: Kind, origin: Origin, tag: Option<ScopeTag>) -> Known {
    Known {
        kind,
        name: origin.name,
        spawned_at: origin.site,
        started: Instant::now(),
        tag,
    }
}

/// The calling thread's OS id, where the OS names it (Linux: `/proc/thread-self`).
pub(crate) fn os_thread_id() -> Option<u64> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}

#[cfg(feature = "tokio")]
pin_project_lite::pin_project! {
    /// A task's future as spawned: it holds the task's record, so the task runs (invariant 1)
    /// until tokio drops it, and a tagged task's future is polled with its tag as its
    /// thread's, so that even a poll before its record is in the registry (on another thread,
    /// at once) finds it (invariant 2). An untagged task is polled as it is: inside it, its
    /// record says `None`. (A struct, not an `async` block: a block that awaits a future it
    /// captured keeps room for it twice.)
    struct Unit<F> {
        #[pin]
        future: F,
        record: Arc<TaskKnown>,
        tag: Option<ScopeTag>,
    }
}

#[cfg(feature = "tokio")]
impl<F: std::future::Future> std::future::Future for Unit<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        match *this.tag {
            None => this.future.poll(cx),
            Some(tag) => {
                let _tag = enter(Some(tag));
                this.future.poll(cx)
            }
        }
    }
}

thread_local! {
    /// The record of the unit this thread is, if ctxkit started it (weakly: the registration
    /// alone keeps the record "running", invariant 1).
    static THIS_UNIT: std::cell::RefCell<std::sync::Weak<ThreadUnit>> =
        const { std::cell::RefCell::new(std::sync::Weak::new()) };
}

/// A thread's hold on its record; dropping it ends the record's life (invariant 1).
struct Registration(Arc<ThreadUnit>);

impl Registration {
    fn new(kind: Kind, origin: Origin, tag: Option<ScopeTag>) -> Registration {
        let unit = Arc::new(ThreadUnit {
            info: unit_info(kind, origin, tag),
            waiting: Mutex::new(None),
            os_id: std::sync::atomic::AtomicU64::new(0),
            job: Mutex::new(None),
        });
        register(Record::Thread(unit.clone()));
        Registration(unit)
    }

    /// Makes this the running thread's record (called first thing on the new thread).
    fn enter(&self) {
        THIS_UNIT.with(|this| *this.borrow_mut() = Arc::downgrade(&self.0));
        if entered() {
            let id = os_thread_id().unwrap_or(0);
            self.0.os_id.store(id, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Registration").field(&self.0.info).finish()
    }
}

/// Records how the calling unit's wait changed, if ctxkit started it and tags are in use
/// (invariant 4); otherwise does nothing, at the cost of one relaxed load.
pub(crate) fn note_waiting(note: WaitNote) {
    if !entered() {
        return;
    }
    let apply = |waiting: &mut Waiting| match note {
        WaitNote::On(target) => waiting.replace((target, true)),
        WaitNote::Paused => {
            if let Some((_, now)) = waiting {
                *now = false;
            }
            None
        }
        WaitNote::Over => waiting.take(),
    };
    #[cfg(feature = "tokio")]
    if let Some(id) = tokio::task::try_id() {
        let mut registry = REGISTRY.lock();
        if let Some(Record::Task(_, _, waiting)) = registry.task(id) {
            let old = apply(waiting);
            drop(registry);
            drop(old);
        }
        return;
    }
    if let Some(unit) = THIS_UNIT.with(|this| this.borrow().upgrade()) {
        let old = apply(&mut unit.waiting.lock());
        drop(old);
    }
}

/// The units ctxkit has started that still run (invariant 1).
#[cfg(all(test, not(loom)))]
pub(crate) fn live_units() -> Vec<UnitInfo> {
    live_and_dormant().0
}

/// The units ctxkit has started that still run (invariant 1; the tests' `live_units` returns
/// just these), and how many dormant tasks are alive (invariant 5), read at one instant: a leak
/// check counts the latter as tracked tasks of the runtime, reported by nobody.
pub(crate) fn live_and_dormant() -> (Vec<UnitInfo>, usize) {
    let (units, dormant): (Vec<(UnitInfo, Waiting)>, usize) = {
        let registry = REGISTRY.lock();
        let mut dormant = 0;
        let units = registry
            .units
            .iter()
            .flatten()
            .filter(|record| {
                if !record.alive() {
                    return false;
                }
                let asleep = record.dormant();
                dormant += usize::from(asleep);
                !asleep
            })
            .flat_map(|record| {
                let os_id = record.os_id();
                let info = |known: &Known| UnitInfo {
                    kind: known.kind,
                    name: known.name,
                    spawned_at: known.spawned_at,
                    started: known.started,
                    tag: known.tag,
                    waiting: None,
                    os_id,
                };
                // A shared thread's wait is its current work's, if any.
                let job = record.job().map(|job| (info(&job), record.waiting()));
                let own_waiting = if job.is_some() {
                    None
                } else {
                    record.waiting()
                };
                std::iter::once((info(record.info()), own_waiting)).chain(job)
            })
            .collect();
        (units, dormant)
    };
    // Invariant 3: described after the registry's lock is released (a context takes its own).
    let units = units
        .into_iter()
        .map(|(mut info, waiting)| {
            info.waiting = waiting
                .and_then(|(target, now)| target.upgrade().map(|target| (target.describe(), now)));
            info
        })
        .collect();
    (units, dormant)
}

// ===== threads =====

/// Starts a thread running `f`, named and recorded as `origin` says. Its handle may be
/// dropped (a detached thread) or joined: a joined thread has left the registry (invariant 1).
///
/// # Errors
///
/// The OS's error if it refuses to create a thread; `f` is handed back so the caller can decide
/// what to do with it.
pub(crate) fn try_spawn_named<F>(
    origin: Origin,
    f: F,
) -> Result<std::thread::JoinHandle<()>, (std::io::Error, Option<F>)>
where
    F: FnOnce() + Send + 'static,
{
    let tag = ScopeTag::current();
    let registration = Registration::new(Kind::Thread, origin, tag);
    // The closure travels in a slot so that it can be handed back if the spawn fails.
    let slot = Arc::new(Mutex::new(Some(f)));
    let thread_slot = slot.clone();
    let spawned = std::thread::Builder::new()
        .name(origin.name.to_owned())
        .spawn(move || {
            let _registration = registration;
            _registration.enter();
            let _tag = tag.map(ScopeTag::enter);
            let f = thread_slot.lock().take();
            if let Some(f) = f {
                f();
            }
        });
    match spawned {
        Ok(handle) => Ok(handle),
        Err(error) => {
            // The closure, and the registration with it, were dropped: invariant 1.
            let f = slot.lock().take();
            Err((error, f))
        }
    }
}

/// Starts a thread of ctxkit's own that the whole process shares (a [`Kind::Shared`] unit),
/// running `f`, named as `origin` says. Unlike [`try_spawn_named`] it inherits no tag: it is
/// nobody's work, whoever happens to start it. What it runs on somebody's behalf it runs as a
/// [`PooledUnit`], with that work's own tag.
///
/// # Errors
///
/// The OS's error if it refuses to create a thread; `f` has been dropped.
pub(crate) fn try_spawn_shared<F>(origin: Origin, f: F) -> std::io::Result<()>
where
    F: FnOnce() + Send + 'static,
{
    let registration = Registration::new(Kind::Shared, origin, None);
    std::thread::Builder::new()
        .name(origin.name.to_owned())
        .spawn(move || {
            let _registration = registration;
            _registration.enter();
            let _untagged = enter(None);
            f();
        })
        .map(drop)
}

/// A piece of work that runs on a shared thread (a [`Kind::Shared`] one) as a unit of its
/// own, with its own origin, start and tag: from [`begin`](PooledUnit::begin) until
/// [`run`](PooledUnit::run) returns or unwinds, or the value is dropped (invariant 1, for a
/// unit that borrows a thread). On a shared thread it is written into the thread's own record
/// (no registry lock, no allocation: a pool runs thousands of them); on any other thread
/// (a loom model's) it is registered as a record of its own.
#[derive(Debug)]
pub(crate) struct PooledUnit {
    /// Where it is recorded.
    home: Home,
    tag: Option<ScopeTag>,
}

enum Home {
    /// In the `job` of the calling shared thread's record.
    Shared(Arc<ThreadUnit>),
    /// A record of its own, made this thread's while it runs.
    Own(Registration),
}

impl std::fmt::Debug for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Home::Shared(thread) => f.debug_tuple("Shared").field(&thread.info).finish(),
            Home::Own(registration) => f.debug_tuple("Own").field(registration).finish(),
        }
    }
}

impl PooledUnit {
    /// Records, now, that the calling thread runs work started by `origin` with `tag` (the
    /// tag current where the work was made, which need not be the caller's). It is recorded
    /// when this returns, so a caller that took the work from a list under its lock and calls
    /// this before releasing it has the work always listed or recorded.
    pub(crate) fn begin(origin: Origin, tag: Option<ScopeTag>) -> PooledUnit {
        let thread = THIS_UNIT
            .with(|this| this.borrow().upgrade())
            .filter(|thread| thread.info.kind == Kind::Shared);
        let home = match thread {
            Some(thread) => {
                if entered() && thread.os_id.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                    // Read once per shared thread (a file read).
                    let id = os_thread_id().unwrap_or(0);
                    thread.os_id.store(id, std::sync::atomic::Ordering::Relaxed);
                }
                let known = unit_info(Kind::Thread, origin, tag);
                let old = thread.job.lock().replace(known);
                debug_assert!(old.is_none(), "a shared thread runs one unit at a time");
                Home::Shared(thread)
            }
            None => Home::Own(Registration::new(Kind::Thread, origin, tag)),
        };
        PooledUnit { home, tag }
    }

    /// Runs `f` on the calling thread (the one that called `begin`) as this unit: what it waits
    /// on is noted as this unit's (invariant 4), its tag is the thread's current one (what it
    /// starts inherits it, invariant 2); afterwards, even if `f` unwinds, the thread is its own
    /// again and the unit has ended.
    pub(crate) fn run<T>(self, f: impl FnOnce() -> T) -> T {
        /// Ends the unit (fields drop in order: the tag first).
        struct End {
            _tag: Entered,
            home: Home,
            /// The thread's own record, put back for a unit with a record of its own.
            previous: std::sync::Weak<ThreadUnit>,
        }
        impl Drop for End {
            fn drop(&mut self) {
                match &self.home {
                    Home::Shared(thread) => {
                        let old = thread.waiting.lock().take();
                        thread.job.lock().take();
                        drop(old);
                    }
                    Home::Own(_) => {
                        let previous = std::mem::take(&mut self.previous);
                        THIS_UNIT.with(|this| *this.borrow_mut() = previous);
                    }
                }
            }
        }
        let previous = match &self.home {
            Home::Shared(_) => std::sync::Weak::new(),
            Home::Own(registration) => {
                THIS_UNIT.with(|this| this.replace(Arc::downgrade(&registration.0)))
            }
        };
        let _end = End {
            _tag: enter(self.tag),
            home: self.home,
            previous,
        };
        f()
    }
}

/// Starts a thread running `f` and returning its value, named and recorded as `origin` says
/// (the public `tracked::thread`).
///
/// # Errors
///
/// The OS's error if it refuses to create a thread; `f` has been dropped.
pub(crate) fn try_spawn_thread<F, T>(
    origin: Origin,
    f: F,
) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let tag = ScopeTag::current();
    let registration = Registration::new(Kind::Thread, origin, tag);
    std::thread::Builder::new()
        .name(origin.name.to_owned())
        .spawn(move || {
            let _registration = registration;
            _registration.enter();
            let _tag = tag.map(ScopeTag::enter);
            f()
        })
}

/// Starts a thread of `scope` running `f`, named and recorded as `origin` says.
///
/// # Errors
///
/// The OS's error if it refuses to create a thread; `f` has been dropped.
pub(crate) fn try_spawn_scoped<'scope, F, T>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    origin: Origin,
    f: F,
) -> std::io::Result<std::thread::ScopedJoinHandle<'scope, T>>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    let tag = ScopeTag::current();
    let registration = Registration::new(Kind::ScopedThread, origin, tag);
    std::thread::Builder::new()
        .name(origin.name.to_owned())
        .spawn_scoped(scope, move || {
            let _registration = registration;
            _registration.enter();
            let _tag = tag.map(ScopeTag::enter);
            f()
        })
}

// ===== tasks =====

/// Starts `task` on `runtime`, recorded as `origin` says until it completes or is dropped,
/// with the tag of the code that starts it (invariants 1 and 2).
///
/// An untagged task (always, until a tag is first entered in the process) is spawned as it is:
/// a wrapper around each poll made an async group's worker task a third larger, which cost
/// `group.first_error_cancel` (a thousand of them woken at once) measurably.
#[cfg(feature = "tokio")]
pub(crate) fn spawn_task<F>(
    runtime: &tokio::runtime::Handle,
    origin: Origin,
    task: F,
) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tag = ScopeTag::current();
    let info = Arc::new(TaskKnown {
        info: unit_info(Kind::Task, origin, tag),
        gate: None,
    });
    spawn_recorded(runtime, info, tag, task)
}

/// Spawns `task` on `runtime` as the unit `info` under `tag`, and records it.
#[cfg(feature = "tokio")]
fn spawn_recorded<F>(
    runtime: &tokio::runtime::Handle,
    info: Arc<TaskKnown>,
    tag: Option<ScopeTag>,
    task: F,
) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = runtime.spawn(Unit {
        future: task,
        record: info.clone(),
        tag,
    });
    // Invariant 1: recorded before this returns; a task that already ended is recorded as
    // ended.
    register(Record::Task(info, handle.id(), None));
    handle
}

/// Spawns `task` on `runtime` as [`spawn_task`] does, behind a gate: the task waits until the
/// returned [`Trigger`] opens it (then runs `task`), or is dropped unopened (then it ends,
/// dropping `task` unpolled). Recorded at once, with the current tag, but reported by a leak
/// check only once its gate has opened (invariant 5); until then it counts only in
/// [`live_and_dormant`]'s second figure. For an async after-function, spawned at its
/// registration: nobody's leak until its context is done.
#[cfg(feature = "tokio")]
pub(crate) fn spawn_gated_task<F>(
    runtime: &tokio::runtime::Handle,
    origin: Origin,
    task: F,
) -> Trigger
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let tag = ScopeTag::current();
    let (gated, trigger, info) = gated(origin, tag, task);
    // Detached: its output is `()`, a panic is the hook's to report (as `tokio::spawn`).
    drop(spawn_recorded(runtime, info, tag, gated));
    trigger
}

/// A gated task's future, its trigger and its record (not registered yet).
#[cfg(feature = "tokio")]
fn gated<F>(origin: Origin, tag: Option<ScopeTag>, task: F) -> (Gated<F>, Trigger, Arc<TaskKnown>) {
    let info = Arc::new(TaskKnown {
        info: unit_info(Kind::Task, origin, tag),
        gate: Some(Gate {
            state: AtomicU8::new(WAITING),
            waker: Mutex::new(None),
        }),
    });
    let trigger = Trigger(Arc::downgrade(&info));
    let gated = Gated {
        record: info.clone(),
        open: false,
        future: task,
    };
    (gated, trigger, info)
}

/// The one right to settle a gated task's gate ([`spawn_gated_task`]): [`open`](Self::open)
/// lets the task run its future; dropped unopened, it tells the task to end. Weak, so a task
/// that has ended (its runtime shut down) is reclaimed whether or not it is ever settled.
#[cfg(feature = "tokio")]
pub(crate) struct Trigger(std::sync::Weak<TaskKnown>);

#[cfg(feature = "tokio")]
impl Trigger {
    /// Opens the gate: a leak check reports the task from now until it ends (invariant 5),
    /// and the task is woken to run its future. Does not block; runs no user code.
    pub(crate) fn open(mut self) {
        self.settle(OPEN);
    }

    /// Settles the gate (once: it empties `self`) and wakes the task.
    fn settle(&mut self, to: u8) {
        let weak = std::mem::take(&mut self.0);
        let Some(record) = weak.upgrade() else {
            return; // the task has ended
        };
        let Some(gate) = &record.gate else {
            return;
        };
        gate.state.store(to, Ordering::Release);
        // Taken under the lock the task stores it under after reading `WAITING`: either the
        // task read `WAITING` and stored its waker before this take, or its read, under the
        // lock, comes after the store above.
        let waker = gate.waker.lock().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[cfg(feature = "tokio")]
impl Drop for Trigger {
    fn drop(&mut self) {
        // Unopened (`open` empties it): the task ends.
        self.settle(SHUT);
    }
}

#[cfg(feature = "tokio")]
impl std::fmt::Debug for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Trigger")
    }
}

#[cfg(feature = "tokio")]
pin_project_lite::pin_project! {
    /// A gated task's future: its gate, then `future` (see [`spawn_gated_task`]).
    struct Gated<F> {
        record: Arc<TaskKnown>,
        open: bool,
        #[pin]
        future: F,
    }
}

#[cfg(feature = "tokio")]
impl<F: std::future::Future<Output = ()>> std::future::Future for Gated<F> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let this = self.project();
        if !*this.open {
            if let Some(gate) = &this.record.gate {
                let mut waker = gate.waker.lock();
                match gate.state.load(Ordering::Acquire) {
                    WAITING => {
                        match &mut *waker {
                            Some(w) if w.will_wake(cx.waker()) => {}
                            slot => *slot = Some(cx.waker().clone()),
                        }
                        return std::task::Poll::Pending;
                    }
                    // Shut: tokio drops the future, unpolled, as the task ends.
                    SHUT => return std::task::Poll::Ready(()),
                    _ => {}
                }
            }
            *this.open = true;
        }
        this.future.poll(cx)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Waits (bounded) until no live unit satisfies `f`.
    fn until_gone(f: impl Fn(&UnitInfo) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while live_units().iter().any(&f) {
            assert!(Instant::now() < deadline, "a unit never deregistered");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn records_a_thread_while_it_runs() {
        let (started_tx, started_rx) = mpsc::channel();
        let (finish_tx, finish_rx) = mpsc::channel::<()>();
        let origin = Origin::here("ctxkit-test-spawn");
        let spawned = try_spawn_named(origin, move || {
            started_tx.send(()).unwrap();
            let _ = finish_rx.recv();
        });
        assert!(spawned.is_ok());
        started_rx.recv().unwrap();
        let mine: Vec<_> = live_units()
            .into_iter()
            .filter(|u| u.name == "ctxkit-test-spawn")
            .collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].kind, Kind::Thread);
        assert_eq!(mine[0].spawned_at.file(), file!());
        drop(finish_tx);
        until_gone(|u| u.name == "ctxkit-test-spawn");
    }

    #[test]
    fn a_pooled_unit_is_recorded_while_it_runs_with_its_own_tag_and_site() {
        let tag = ScopeTag::new();
        let origin = Origin::here("ctxkit-test-pooled");
        let mine = |kind: Kind| {
            live_units()
                .into_iter()
                .filter(|u| u.name == "ctxkit-test-pooled" && u.kind == kind)
                .map(|u| (u.tag, u.spawned_at.line()))
                .collect::<Vec<_>>()
        };
        // On a shared thread: in the thread's own record, only while it runs.
        let (tx, rx) = mpsc::channel();
        try_spawn_shared(Origin::here("ctxkit-test-pooled"), move || {
            let unit = PooledUnit::begin(origin, Some(tag));
            let seen = unit.run(|| (ScopeTag::current(), mine(Kind::Thread)));
            tx.send((seen, mine(Kind::Thread), ScopeTag::current()))
                .unwrap();
        })
        .unwrap();
        let ((inside, while_running), after, tag_after) =
            rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(inside, Some(tag), "the unit's tag is current while it runs");
        assert_eq!(while_running, [(Some(tag), origin.site().line())]);
        assert_eq!(after, [], "the unit ended with its run");
        assert_eq!(tag_after, None, "a shared thread is untagged again");

        // On any other thread: a record of its own.
        let unit = PooledUnit::begin(origin, Some(tag));
        assert_eq!(mine(Kind::Thread), [(Some(tag), origin.site().line())]);
        unit.run(|| ());
        assert_eq!(mine(Kind::Thread), []);
        until_gone(|u| u.name == "ctxkit-test-pooled");
    }

    #[test]
    fn ended_units_are_reclaimed_so_the_registry_stays_bounded() {
        let origin = Origin::here("ctxkit-test-reclaim");
        for _ in 0..20 {
            let batch: Vec<_> = (0..1_000)
                .map(|_| Registration::new(Kind::Thread, origin, None))
                .collect();
            assert!(
                live_units()
                    .iter()
                    .filter(|u| u.name == "ctxkit-test-reclaim")
                    .count()
                    >= 1_000
            );
            drop(batch);
            assert!(!live_units().iter().any(|u| u.name == "ctxkit-test-reclaim"));
        }
        // 20,000 units went through; the slab holds about twice the most that ran at once
        // (plus whatever tests running beside this one hold).
        let len = REGISTRY.lock().units.len();
        assert!(len < 5_000, "the slab grew to {len} entries");
    }

    #[test]
    fn records_a_scoped_thread_until_it_returns() {
        std::thread::scope(|s| {
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let handle = try_spawn_scoped(s, Origin::here("ctxkit-test-scoped"), move || {
                let _ = go_rx.recv();
                std::thread::current().name().map(str::to_owned)
            })
            .unwrap();
            let mine = live_units()
                .into_iter()
                .filter(|u| u.name == "ctxkit-test-scoped")
                .map(|u| u.kind)
                .collect::<Vec<_>>();
            assert_eq!(mine, [Kind::ScopedThread]);
            drop(go_tx);
            assert_eq!(
                handle.join().unwrap().as_deref(),
                Some("ctxkit-test-scoped")
            );
        });
        // The guard went with the closure, before `join` returned.
        assert!(!live_units().iter().any(|u| u.name == "ctxkit-test-scoped"));
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn records_a_task_until_its_future_completes_or_is_dropped() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let done = spawn_task(rt.handle(), Origin::here("ctxkit-test-task"), async move {
            let _ = go_rx.await;
        });
        let count = || {
            live_units()
                .iter()
                .filter(|u| u.name == "ctxkit-test-task" && u.kind == Kind::Task)
                .count()
        };
        assert_eq!(count(), 1);
        go_tx.send(()).unwrap();
        rt.block_on(done).unwrap();
        assert_eq!(count(), 0, "removed when the future completed");

        // A task that never completes: removed when the runtime drops it.
        let (_never_tx, never_rx) = tokio::sync::oneshot::channel::<()>();
        drop(spawn_task(
            rt.handle(),
            Origin::here("ctxkit-test-task"),
            async move {
                let _ = never_rx.await;
            },
        ));
        assert_eq!(count(), 1);
        drop(rt);
        assert_eq!(count(), 0, "removed when the runtime dropped the future");
    }

    /// An untagged task polled by a thread that has entered a tag (a current-thread runtime's
    /// `block_on`) keeps its own tag, `None`: it is not wrapped, its record says so.
    #[cfg(feature = "tokio")]
    #[test]
    fn an_untagged_task_stays_untagged_on_a_thread_that_has_a_tag() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let task = spawn_task(
            rt.handle(),
            Origin::here("ctxkit-test-ambient"),
            async move {
                tx.send(ScopeTag::current()).unwrap();
            },
        );
        let tag = ScopeTag::new();
        let _entered = tag.enter();
        assert_eq!(ScopeTag::current(), Some(tag), "this thread's");
        rt.block_on(task).unwrap();
        assert_eq!(
            rx.recv().unwrap(),
            None,
            "the task's, not the polling thread's"
        );
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn a_unit_started_from_a_tagged_unit_carries_its_tag_across_threads_and_tasks() {
        let tag = ScopeTag::new();
        assert_ne!(tag, ScopeTag::new());
        assert_eq!(ScopeTag::current(), None);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        let (seen_tx, seen_rx) = mpsc::channel::<(&'static str, Option<ScopeTag>)>();
        {
            let _entered = tag.enter();
            assert_eq!(ScopeTag::current(), Some(tag));
            // thread -> task -> thread -> scoped thread, and task -> task: each reports the
            // tag it runs with.
            let seen = seen_tx.clone();
            try_spawn_named(Origin::here("ctxkit-test-tag"), move || {
                seen.send(("thread", ScopeTag::current())).unwrap();
                let inner = handle.clone();
                let seen_task = seen.clone();
                let task = spawn_task(&handle, Origin::here("ctxkit-test-tag"), async move {
                    seen_task.send(("task", ScopeTag::current())).unwrap();
                    tokio::task::yield_now().await; // a second poll: still tagged
                    seen_task
                        .send(("task, polled again", ScopeTag::current()))
                        .unwrap();
                    let seen_inner = seen_task.clone();
                    let nested = spawn_task(&inner, Origin::here("ctxkit-test-tag"), async move {
                        seen_inner
                            .send(("task in a task", ScopeTag::current()))
                            .unwrap();
                    });
                    let _ = nested.await;
                    let seen_thread = seen_task.clone();
                    try_spawn_named(Origin::here("ctxkit-test-tag"), move || {
                        seen_thread
                            .send(("thread from a task", ScopeTag::current()))
                            .unwrap();
                        std::thread::scope(|s| {
                            try_spawn_scoped(s, Origin::here("ctxkit-test-tag"), || {
                                seen_thread
                                    .send(("scoped thread", ScopeTag::current()))
                                    .unwrap();
                            })
                            .unwrap();
                        });
                    })
                    .map_err(|(e, _)| e)
                    .unwrap();
                });
                drop(task);
            })
            .map_err(|(e, _)| e)
            .unwrap();
        }
        assert_eq!(
            ScopeTag::current(),
            None,
            "the guard restored the previous tag"
        );
        drop(seen_tx);
        let seen: Vec<_> = (0..6)
            .map(|_| {
                seen_rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("a unit never reported")
            })
            .collect();
        assert_eq!(seen.len(), 6, "{seen:?}");
        for (what, got) in &seen {
            assert_eq!(*got, Some(tag), "{what}");
        }

        // A unit started with no tag current runs untagged, and the runtime's worker threads
        // (which polled tagged tasks) kept no tag outside those polls.
        let (tx, rx) = mpsc::channel();
        drop(spawn_task(
            rt.handle(),
            Origin::here("ctxkit-test-tag"),
            async move {
                tx.send(ScopeTag::current()).unwrap();
            },
        ));
        assert_eq!(rx.recv().unwrap(), None);
        until_gone(|u| u.name == "ctxkit-test-tag");
    }
}

#[cfg(all(test, loom, feature = "tokio"))]
mod loom_gate {
    //! loom models of a gated task's gate (invariant 5): its trigger's opening, or its drop,
    //! racing the task's poll. A lost wake-up shows as a model that never finishes (loom
    //! reports the spin as a livelock); a run too many or too few, as a failed count.

    use std::future::Future;
    use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
    use std::task::{Context, Poll, Wake, Waker};

    use super::{gated, Origin};
    use crate::sync::{Arc, AtomicBool, Ordering};

    /// A waker that raises a flag.
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Polls a gated task until it completes, racing its trigger opened (`open`) or dropped on
    /// another thread; returns how many times its future ran.
    fn race(open: bool) -> usize {
        let runs = Arc::new(StdAtomicUsize::new(0));
        let counted = runs.clone();
        let (task, trigger, record) = gated(Origin::here("ctxkit-test-gated"), None, async move {
            counted.fetch_add(1, StdOrdering::SeqCst);
        });
        let settler = loom::thread::spawn(move || {
            if open {
                trigger.open();
            } else {
                drop(trigger);
            }
        });
        let flag = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let mut task = Box::pin(task);
        loop {
            flag.0.store(false, Ordering::SeqCst);
            if task.as_mut().poll(&mut cx) == Poll::Ready(()) {
                break;
            }
            // Pending: the trigger has not settled, so it will, and wake us.
            while !flag.0.load(Ordering::SeqCst) {
                loom::thread::yield_now();
            }
        }
        settler.join().unwrap();
        assert_eq!(!record.dormant(), open, "reported iff opened");
        runs.load(StdOrdering::SeqCst)
    }

    #[test]
    fn loom_a_gate_opened_racing_its_task_runs_the_future_once() {
        loom::model(|| assert_eq!(race(true), 1));
    }

    #[test]
    fn loom_a_gate_shut_racing_its_task_ends_it_unrun() {
        loom::model(|| assert_eq!(race(false), 0));
    }
}
