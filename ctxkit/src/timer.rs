//! The one timer thread, `ctxkit-timer`: calls [`Expire::expire`] on each armed entry once its
//! instant has passed.
//!
//! The timer knows nothing of contexts: an entry is "something to expire at instant t". The
//! cancel tree (`context/tree.rs`) arms an entry for a node's deadline only when somebody must
//! be *notified* when it passes (an async task awaiting `done()`, `run()` or `sleep()`, or an
//! after-function; see "Deadlines are lazy" there); a node's expiry completes it. A thread
//! blocked in `wait()` parks with a timeout instead and needs no timer. An [`Alarm`] (the
//! precise sleeps of `rate/sleep.rs`) is an entry that wakes one task, with no context node.
//!
//! The thread is started (through `spawn`) by the first arming, is named `ctxkit-timer`, and
//! then lives as long as the process, asleep on a condition variable while it has nothing to do.
//! It needs no async runtime: expiring a context wakes tasks with their `Waker`s and threads
//! with `unpark`.
//!
//! # Shards and wheels
//!
//! Entries live in [`SHARDS`] shards, each behind its own lock. A thread arms into the shard it
//! was given on first use (threads take shards in turn), so two threads arming at once take
//! different locks; a disarm goes to the shard its [`Key`] names, wherever it runs. Arming and
//! disarming are O(1) and take no lock shared by all threads: the shard's lock, and a read of
//! one atomic (`Timer::next_wake`) that is written only by the timer thread, when it goes to
//! sleep, and by an arming that must wake it.
//!
//! A shard is a *timing wheel*: a slab of entries (a [`Key`] is an index and a generation in
//! it) and [`SLOTS`] buckets, one per tick of 2^20 ns (about 1.05 ms), in a ring; an entry due
//! at tick `t` is referred to from bucket `t % SLOTS` by its index (a tick before the shard's
//! cursor goes to the cursor's bucket). A disarm takes the target out of its entry (it is
//! dropped at once, so a disarmed deadline pins nothing) and leaves the entry *dead*, its
//! reference in the bucket stale; a dead entry is freed, and reused, when its reference is
//! dropped: when its bucket is visited, or all at once when the dead outnumber the armed
//! (amortized O(1) per disarm). Keeping the dead entry until then is what lets a reference be a
//! bare index (no generation): it can never name a reused entry. A bucket may hold entries of
//! later turns of the ring; they stay until their turn.
//!
//! Per armed deadline the wheel keeps a 16-byte slab entry (a [`Target`] is one pointer) and a
//! 4-byte reference, in vectors grown by a quarter at a time: about 21 bytes, against 37 with a
//! `dyn` entry, a generation in every reference and vectors that double
//! (`scale.deadline_bytes`).
//!
//! The tick only chooses buckets: an entry fires when the clock has reached its exact instant,
//! not at the end of its tick. The thread sleeps until the earliest of: the exact instant of
//! the earliest entry in each shard's current bucket, and, for each shard's next non-empty
//! bucket (an occupancy bitmap finds it), the exact instant of its earliest entry due in that
//! tick, or the start of that tick when the bucket holds more than [`LOOK_AHEAD`] references or
//! only entries of later turns; so an entry fires as soon after its instant as the OS wakes the
//! thread, as with one sorted map, and one not on a tick's boundary costs the thread one
//! wake-up, not two (one at its tick's start to find it not due yet). A deadline more than one turn of the
//! ring ahead (about 4.3 s) costs one look per turn. With nothing armed the thread sleeps for
//! ever, or for one turn if anything was armed (and disarmed) since it last looked, so that a
//! stream of short-lived deadlines (armed, then disarmed by a cancel) does not wake it on
//! every arming.
//!
//! Under `--cfg loom` the timer's state is built inside each model (`sync::lazy_static!`) and no
//! thread is started: arming and disarming keep the entries, which is what the models check
//! (`context/tests/loom_timer.rs`); nothing expires them.
//!
//! # Invariants
//!
//! 1. Every armed entry is in its shard's slab, under the [`Key`] [`arm`] returned, until its
//!    owner disarms it or the thread takes it out as due (then expires it); a slab entry's
//!    generation changes whenever its target is taken out, so a key is not valid again until
//!    its entry has been reused 2^28 - 1 times (the generations a [`Key`] has room for; the
//!    tree disarms a fired entry's key in the completion that its expiry runs, long before),
//!    and a disarm after the entry fired removes nothing. (For the tree: every armed, not yet
//!    completed deadline owner, `ARMED` in `tree.rs`.)
//! 2. Every armed or dead entry is referred to exactly once, from the bucket of its tick (or
//!    of the cursor it was armed at, if that was later), and that bucket's bit in `occupied` is
//!    set; a free entry is referred to from no bucket, and is on the free list once. A bucket
//!    holds only references to armed entries due at or after the cursor's tick, or to dead
//!    ones; `live` and `dead` count them.
//! 3. `cursor` only grows; every entry with an instant before the start of the cursor's tick
//!    has been taken out (the thread visits every bucket from the old cursor to the new one,
//!    or all of them, with the clock's reading, before it moves the cursor).
//! 4. The thread sleeps no later than `next_wake`, which it stores before it looks at the
//!    shards one last time (under `Timer::sleep`); an arming earlier than `next_wake` takes
//!    `Timer::sleep` and wakes it. So an arming that the last look missed sees the new
//!    `next_wake` (the shard's lock orders them) and wakes the thread if it must.
//!
//! # Lock order
//!
//! A shard's lock is a leaf: it may be taken under a caller's lock (the tree arms under a
//! node's lock), and nothing is taken under it. `Timer::sleep` is taken with no shard lock held
//! by an arming (after its shard's lock is released) and, by the thread, before shard locks
//! (its last look): so sleep, then a shard. Entries leave a shard under its lock but are
//! expired, and dropped, after it is released, so `expire` may take any lock (and arm).

use std::task::{Poll, Waker};

use crate::context::tree::Node;
use crate::rate::sleepers::SlotAlarm;
use crate::spawn::{self, Origin};
use crate::sync::{self, Arc, AtomicBool, AtomicU64, Condvar, Mutex, Ordering};
use crate::time;

/// Something the timer thread expires once its instant has passed.
pub(crate) trait Expire: Send + Sync {
    /// Called once, on the timer thread, with no timer lock held.
    fn expire(self: Arc<Self>);

    /// The instant it is armed for (encoded by `time`): the `deadline` given to [`arm`], and
    /// never changed. Read under a shard's lock (so it takes no lock), by the wheel, which
    /// keeps no copy: eight bytes less per armed entry.
    fn at(&self) -> u64;
}

/// Number of shards (each its own lock and wheel).
const SHARDS: usize = if cfg!(loom) { 1 } else { 16 };
/// A tick is 2^TICK_SHIFT nanoseconds (about 1.05 ms).
const TICK_SHIFT: u32 = 20;
/// The length of a tick in nanoseconds: the grid the limiter's slots are aligned to
/// (`rate/sleepers.rs`, `BATCH`), so that a slot's end is a tick's start.
pub(crate) const TICK_NANOS: u64 = 1 << TICK_SHIFT;
/// The most references of the next occupied bucket the thread looks at to sleep to its
/// earliest exact instant rather than to its tick's start (`Wheel::next_due`): a bound on the
/// work done under a shard's lock before each sleep.
const LOOK_AHEAD: usize = 64;
/// Buckets per wheel: one turn is `SLOTS` ticks (about 4.3 s).
const SLOTS: usize = if cfg!(loom) { 64 } else { 4096 };
/// Words of the occupancy bitmap.
const WORDS: usize = SLOTS / 64;
/// "No entry" in the free list.
const NONE: u32 = u32::MAX;

/// Names an armed entry, for [`disarm`]: its shard, its slab index and the generation it was
/// armed with (invariant 1). Eight bytes, and `Option<Key>` too (a node keeps one inline): the
/// shard is the low [`SHARD_BITS`] bits of `tag`, the generation (never zero) the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Key {
    index: u32,
    tag: std::num::NonZeroU32,
}

/// Bits of a [`Key`]'s tag that name the shard.
const SHARD_BITS: u32 = 4;
const _: () = assert!(SHARDS <= 1 << SHARD_BITS);
/// Generations run from 1 to `GENERATIONS - 1`, then start again at 1 (zero is never one, so a
/// key's tag is never zero).
const GENERATIONS: u32 = 1 << (32 - SHARD_BITS);

impl Key {
    fn new(shard: usize, index: u32, generation: u32) -> Key {
        debug_assert!(shard < SHARDS && generation != 0 && generation < GENERATIONS);
        let tag = (generation << SHARD_BITS) | shard as u32;
        Key {
            index,
            tag: std::num::NonZeroU32::new(tag).unwrap_or(std::num::NonZeroU32::MIN),
        }
    }

    fn shard(self) -> usize {
        (self.tag.get() & ((1 << SHARD_BITS) - 1)) as usize
    }

    fn generation(self) -> u32 {
        self.tag.get() >> SHARD_BITS
    }
}

/// The generation after `generation` (see [`GENERATIONS`]).
fn next_generation(generation: u32) -> u32 {
    if generation + 1 >= GENERATIONS {
        1
    } else {
        generation + 1
    }
}

/// What can be armed, and what the thread expires: one variant per kind of entry, each a
/// single pointer. A `dyn Expire` would be two, and a slab entry (below) then 24 bytes instead
/// of 16; those eight bytes are paid by every armed deadline (`scale.deadline_bytes`).
pub(crate) enum Target {
    /// A context node's deadline (`context/tree.rs`).
    Context(Arc<Node>),
    /// One task's precise sleep ([`Alarm`]).
    Alarm(Arc<AlarmEntry>),
    /// The end of a limiter's slot of sleepers (`rate/sleepers.rs`).
    Slot(Arc<SlotAlarm>),
    /// The wheel's tests.
    #[cfg(all(test, not(loom)))]
    Probe(Arc<tests::Probe>),
}

/// `$body` with `$value` bound to the `Arc` of any variant of `$target` (a `Target` or a
/// reference to one).
macro_rules! each_target {
    ($target:expr, $value:ident => $body:expr) => {
        match $target {
            Target::Context($value) => $body,
            Target::Alarm($value) => $body,
            Target::Slot($value) => $body,
            #[cfg(all(test, not(loom)))]
            Target::Probe($value) => $body,
        }
    };
}

impl Target {
    /// The instant it is armed for ([`Expire::at`]).
    fn at(&self) -> u64 {
        each_target!(self, value => value.at())
    }

    /// Expires it ([`Expire::expire`]).
    fn expire(self) {
        each_target!(self, value => value.expire())
    }
}

impl From<Arc<Node>> for Target {
    fn from(value: Arc<Node>) -> Target {
        Target::Context(value)
    }
}

impl From<Arc<AlarmEntry>> for Target {
    fn from(value: Arc<AlarmEntry>) -> Target {
        Target::Alarm(value)
    }
}

impl From<Arc<SlotAlarm>> for Target {
    fn from(value: Arc<SlotAlarm>) -> Target {
        Target::Slot(value)
    }
}

/// `$armed` with `$value` bound to the `Arc` of an armed variant of `$entry` (an `Entry` or a
/// reference to one), else `$otherwise`: the one list of `Entry`'s armed variants, beside
/// [`each_target`]'s of `Target`'s.
macro_rules! each_armed {
    ($entry:expr, $value:ident => $armed:expr, $otherwise:expr) => {
        match $entry {
            Entry::Free { .. } | Entry::Dead { .. } => $otherwise,
            Entry::Context { value: $value, .. } => $armed,
            Entry::Alarm { value: $value, .. } => $armed,
            Entry::Slot { value: $value, .. } => $armed,
            #[cfg(all(test, not(loom)))]
            Entry::Probe { value: $value, .. } => $armed,
        }
    };
}

/// One slab entry of a wheel: 16 bytes (the tag, the generation, and a pointer or the next
/// free index). Its `generation` changes whenever an armed target is taken out (invariant 1),
/// within 1 .. `GENERATIONS`.
enum Entry {
    /// On the free list, with no bucket reference; `next` is the next free entry or `NONE`.
    Free { generation: u32, next: u32 },
    /// Disarmed: its target is gone but its bucket reference is still there (invariant 2); it
    /// is freed when that reference is dropped.
    Dead { generation: u32 },
    /// Armed with a [`Target::Context`].
    Context { generation: u32, value: Arc<Node> },
    /// Armed with a [`Target::Alarm`].
    Alarm {
        generation: u32,
        value: Arc<AlarmEntry>,
    },
    /// Armed with a [`Target::Slot`].
    Slot {
        generation: u32,
        value: Arc<SlotAlarm>,
    },
    /// Armed with a [`Target::Probe`].
    #[cfg(all(test, not(loom)))]
    Probe {
        generation: u32,
        value: Arc<tests::Probe>,
    },
}

impl Entry {
    /// An entry armed with `target`.
    fn armed(generation: u32, target: Target) -> Entry {
        match target {
            Target::Context(value) => Entry::Context { generation, value },
            Target::Alarm(value) => Entry::Alarm { generation, value },
            Target::Slot(value) => Entry::Slot { generation, value },
            #[cfg(all(test, not(loom)))]
            Target::Probe(value) => Entry::Probe { generation, value },
        }
    }

    fn generation(&self) -> u32 {
        match *self {
            Entry::Free { generation, .. }
            | Entry::Dead { generation }
            | Entry::Context { generation, .. }
            | Entry::Alarm { generation, .. }
            | Entry::Slot { generation, .. } => generation,
            #[cfg(all(test, not(loom)))]
            Entry::Probe { generation, .. } => generation,
        }
    }

    /// The instant of an armed entry; `None` for a free or dead one.
    fn at(&self) -> Option<u64> {
        each_armed!(self, value => Some(value.at()), None)
    }

    fn is_armed(&self) -> bool {
        !matches!(self, Entry::Free { .. } | Entry::Dead { .. })
    }

    /// Puts `then` in its place and returns the target it was armed with, if it was.
    fn replace(&mut self, then: Entry) -> Option<Target> {
        each_armed!(std::mem::replace(self, then), value => Some(value.into()), None)
    }
}

/// One shard: a slab and a ring of buckets (see the module docs).
struct Wheel {
    entries: Vec<Entry>,
    /// Head of the free list of `entries`, or `NONE`.
    free: u32,
    /// Armed entries.
    live: usize,
    /// Dead entries: each one's bucket reference is stale (invariant 2).
    dead: usize,
    /// `SLOTS` buckets of entry indices, allocated on the first arming.
    buckets: Vec<Vec<u32>>,
    /// Bit `s` set iff bucket `s` may be non-empty (invariant 2).
    occupied: [u64; WORDS],
    /// The tick the thread has not finished with (invariant 3).
    cursor: u64,
    /// Something was armed here since the thread last looked (see `run`).
    armed_lately: bool,
}

struct Timer {
    shards: [Mutex<Wheel>; SHARDS],
    /// Whether the thread has been started; guards its start and its sleep (invariant 4).
    sleep: Mutex<bool>,
    /// Wakes the thread when an earlier deadline is armed.
    wake: Condvar,
    /// Invariant 4: the latest instant the thread will sleep to; 0 until it runs.
    next_wake: AtomicU64,
    /// Set once the thread is started: the arming's fast path.
    started: AtomicBool,
}

sync::lazy_static! {
    static ref TIMER: Timer = Timer {
        shards: std::array::from_fn(|_| Mutex::new(Wheel::new())),
        sleep: Mutex::new(false),
        wake: Condvar::new(),
        next_wake: AtomicU64::new(0),
        started: AtomicBool::new(false),
    };
}

fn timer() -> &'static Timer {
    &TIMER
}

/// The shard this thread arms into: threads take shards in turn.
fn my_shard() -> usize {
    #[cfg(not(loom))]
    {
        use std::cell::Cell;
        use std::sync::atomic::AtomicUsize;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        // A thread whose thread-locals are being destroyed (an arming from a destructor) uses
        // shard 0.
        SHARD
            .try_with(|shard| {
                if shard.get() == usize::MAX {
                    shard.set(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % SHARDS);
                }
                shard.get()
            })
            .unwrap_or(0)
    }
    #[cfg(loom)]
    {
        0
    }
}

fn slot_of(tick: u64) -> usize {
    (tick % SLOTS as u64) as usize
}

/// Appends `item` to a slab or a bucket, growing it by a quarter when it is full rather than
/// doubling it (still amortized O(1)): spare room is memory that the armed entries pay for
/// (`scale.deadline_bytes`), at most a fifth of an entry or reference each after a growth,
/// against up to a whole one for doubling.
fn push_growing<T>(items: &mut Vec<T>, item: T) {
    if items.len() == items.capacity() {
        items.reserve_exact((items.len() / 4).max(8));
    }
    items.push(item);
}

impl Wheel {
    fn new() -> Wheel {
        Wheel {
            entries: Vec::new(),
            free: NONE,
            live: 0,
            dead: 0,
            buckets: Vec::new(),
            occupied: [0; WORDS],
            cursor: 0,
            armed_lately: false,
        }
    }

    /// Allocates the buckets, with the cursor at `now`'s tick (invariant 3: nothing is armed
    /// yet, so any cursor up to now is right).
    fn start(&mut self, now: u64) {
        self.buckets = (0..SLOTS).map(|_| Vec::new()).collect();
        self.cursor = now >> TICK_SHIFT;
    }

    /// Whether `key` names an armed entry (what [`remove`](Wheel::remove) would take).
    fn holds(&self, key: Key) -> bool {
        self.entries
            .get(key.index as usize)
            .is_some_and(|entry| entry.is_armed() && entry.generation() == key.generation())
    }

    /// Arms an entry with `value`, due at `at` (which is `value.at()`); returns its index and
    /// generation.
    fn insert(&mut self, at: u64, value: Target) -> (u32, u32) {
        debug_assert_eq!(value.at(), at, "an entry is armed for its own instant");
        if self.buckets.is_empty() {
            self.start(time::now());
        }
        let reused = match self.entries.get(self.free as usize) {
            Some(&Entry::Free { generation, next }) => Some((self.free, generation, next)),
            _ => None,
        };
        let (index, generation) = match reused {
            Some((index, generation, next)) => {
                self.free = next;
                self.entries[index as usize] = Entry::armed(generation, value);
                (index, generation)
            }
            None => {
                debug_assert_eq!(self.free, NONE, "the free list names a free entry");
                let index = u32::try_from(self.entries.len())
                    .ok()
                    .filter(|&index| index != NONE)
                    .expect("ctxkit: more than 4 billion deadlines armed on one timer shard");
                push_growing(&mut self.entries, Entry::armed(1, value));
                (index, 1)
            }
        };
        // Invariant 2: an instant before the cursor's tick goes to the cursor's bucket.
        let slot = slot_of((at >> TICK_SHIFT).max(self.cursor));
        push_growing(&mut self.buckets[slot], index);
        self.occupied[slot / 64] |= 1 << (slot % 64);
        self.live += 1;
        self.armed_lately = true;
        (index, generation)
    }

    /// The instant of the entry at `index`; `u64::MAX` if it is not armed.
    fn due_at(&self, index: u32) -> u64 {
        self.entries[index as usize].at().unwrap_or(u64::MAX)
    }

    /// Takes the target out of the armed entry at `index` (invariant 1: a new generation).
    /// With `reference_kept` the entry turns dead, its bucket reference left behind; without,
    /// the caller drops that reference and the entry is freed.
    fn take(&mut self, index: u32, reference_kept: bool) -> Option<Target> {
        let entry = &mut self.entries[index as usize];
        if !entry.is_armed() {
            return None;
        }
        let generation = next_generation(entry.generation());
        let target = if reference_kept {
            self.dead += 1;
            entry.replace(Entry::Dead { generation })
        } else {
            let next = self.free;
            self.free = index;
            entry.replace(Entry::Free { generation, next })
        };
        self.live -= 1;
        target
    }

    /// Disarms the entry `key` names, if it is still armed; it turns dead until its bucket
    /// reference is dropped (invariant 2).
    fn remove(&mut self, key: Key) -> Option<Target> {
        if !self.holds(key) {
            return None;
        }
        let target = self.take(key.index, true);
        if self.dead > 2 * self.live + SLOTS {
            self.compact();
        }
        target
    }

    /// For a bucket reference to `index`: true if its entry is armed (the reference stays);
    /// false if it is dead, which frees the entry (the caller drops the reference).
    fn keep(&mut self, index: u32) -> bool {
        let entry = &mut self.entries[index as usize];
        match *entry {
            Entry::Dead { generation } => {
                *entry = Entry::Free {
                    generation,
                    next: self.free,
                };
                self.free = index;
                self.dead -= 1;
                false
            }
            Entry::Free { .. } => {
                debug_assert!(false, "a bucket refers to a free entry");
                false
            }
            _ => true,
        }
    }

    /// Frees every dead entry and drops its reference (amortized over the disarms that made
    /// them).
    fn compact(&mut self) {
        for slot in 0..SLOTS {
            if self.occupied[slot / 64] & (1 << (slot % 64)) == 0 {
                continue;
            }
            let mut bucket = std::mem::take(&mut self.buckets[slot]);
            bucket.retain(|&index| self.keep(index));
            if bucket.is_empty() {
                self.occupied[slot / 64] &= !(1 << (slot % 64));
            }
            self.buckets[slot] = bucket;
        }
        debug_assert_eq!(self.dead, 0, "every dead entry has a reference");
    }

    /// Takes out of bucket `slot` every entry due by `now` into `due`, and frees its dead
    /// entries.
    fn visit(&mut self, slot: usize, now: u64, due: &mut Vec<Target>) {
        if self.occupied[slot / 64] & (1 << (slot % 64)) == 0 {
            return;
        }
        let mut bucket = std::mem::take(&mut self.buckets[slot]);
        bucket.retain(|&index| {
            if !self.keep(index) {
                return false;
            }
            if self.due_at(index) > now {
                return true;
            }
            due.extend(self.take(index, false));
            false
        });
        if bucket.is_empty() {
            self.occupied[slot / 64] &= !(1 << (slot % 64));
        }
        self.buckets[slot] = bucket;
    }

    /// Takes out every entry due by `now` and moves the cursor to `now`'s tick (invariant 3).
    fn advance(&mut self, now: u64, due: &mut Vec<Target>) {
        let now_tick = now >> TICK_SHIFT;
        if self.buckets.is_empty() {
            return;
        }
        if self.live == 0 && self.dead == 0 {
            self.cursor = self.cursor.max(now_tick);
            return;
        }
        // The buckets from the cursor's to now's, each once: the cursor's bucket may hold
        // entries due later in its tick, so it is visited again next time.
        let ticks = (now_tick.saturating_sub(self.cursor) + 1).min(SLOTS as u64);
        for tick in self.cursor..self.cursor + ticks {
            self.visit(slot_of(tick), now, due);
        }
        // Every bucket up to now's tick was visited (all of them, if the cursor was a turn or
        // more behind): the cursor may move there.
        self.cursor = self.cursor.max(now_tick);
    }

    /// The instant the thread must wake for this shard (encoded), or `u64::MAX`.
    fn next_due(&self) -> u64 {
        if self.live == 0 {
            return u64::MAX;
        }
        // The cursor's bucket: the exact earliest instant in it (any turn).
        let current = slot_of(self.cursor);
        let mut next = self.live_instants(current).min().unwrap_or(u64::MAX);
        // The next bucket that may hold anything: the exact earliest instant due in its tick
        // of this turn, when the bucket is small enough to look at; else the start of its
        // tick. Sleeping to the tick's start first would wake the thread twice for an entry
        // not on a tick boundary (a deadline, an alarm), once to find it not due yet.
        if let Some(distance) = self.next_occupied_after(current) {
            let tick = self.cursor + distance as u64;
            next = next.min(self.earliest_in_tick(tick));
        }
        next
    }

    /// The earliest instant of a live entry of `tick`'s bucket due within `tick` (not a later
    /// turn), if the bucket holds at most [`LOOK_AHEAD`] references and has one; else the
    /// start of `tick`, which is never later than any entry of that bucket.
    fn earliest_in_tick(&self, tick: u64) -> u64 {
        let start = tick << TICK_SHIFT;
        if self.buckets[slot_of(tick)].len() > LOOK_AHEAD {
            return start;
        }
        self.live_instants(slot_of(tick))
            .filter(|&at| at >> TICK_SHIFT == tick)
            .min()
            .unwrap_or(start)
    }

    /// The instants of the armed entries bucket `slot` refers to (any turn).
    fn live_instants(&self, slot: usize) -> impl Iterator<Item = u64> + '_ {
        self.buckets[slot]
            .iter()
            .filter_map(|&index| self.entries[index as usize].at())
    }

    /// The distance (1 ..= SLOTS - 1) from bucket `from` to the next bucket whose bit is set.
    fn next_occupied_after(&self, from: usize) -> Option<usize> {
        let mut distance = 1;
        while distance < SLOTS {
            let slot = (from + distance) % SLOTS;
            let word = self.occupied[slot / 64] >> (slot % 64);
            if word != 0 {
                let found = distance + word.trailing_zeros() as usize;
                return (found < SLOTS).then_some(found);
            }
            distance += 64 - slot % 64;
        }
        None
    }
}

/// Starts the timer thread; false if the OS refused (said on stderr). Under loom no thread is
/// started (see the module docs).
fn start_thread() -> bool {
    if cfg!(loom) {
        return true;
    }
    let name = spawn::TIMER_THREAD;
    match spawn::try_spawn_named(Origin::here(name), run) {
        Ok(_detached) => true,
        Err((error, _)) => {
            eprintln!("ctxkit: could not start the {name} thread ({error}); deadlines will wake async waiters only when they are polled again");
            false
        }
    }
}

/// Makes sure the thread runs; false if it could not be started.
fn ensure_started(timer: &Timer) -> bool {
    if timer.started.load(Ordering::Acquire) {
        return true;
    }
    let mut started = timer.sleep.lock();
    if !*started {
        // The registry's lock is taken under the timer's sleep lock: cannot deadlock, it is a
        // leaf (`spawn.rs`, invariant 3).
        if !start_thread() {
            return false;
        }
        *started = true;
        timer.started.store(true, Ordering::Release);
    }
    true
}

/// Expires `entry` at `deadline` (encoded by `time`), until [`disarm`]ed with the returned key.
/// Returns `None`, watching nothing, if the timer thread could not be started (the OS refused a
/// thread); the next arming tries again.
pub(crate) fn arm(deadline: u64, entry: impl Into<Target>) -> Option<Key> {
    let timer = timer();
    if !ensure_started(timer) {
        return None;
    }
    let shard = my_shard();
    let (index, generation) = timer.shards[shard].lock().insert(deadline, entry.into());
    // Invariant 4: after the entry is in (the shard's lock released), wake the thread if it
    // would sleep past it.
    if deadline < timer.next_wake.load(Ordering::SeqCst) {
        let _sleep = timer.sleep.lock();
        timer.wake.notify_one();
    }
    Some(Key::new(shard, index, generation))
}

/// Stops watching the entry `key` names (done before its deadline). Removes nothing if it has
/// fired already.
pub(crate) fn disarm(key: Key) {
    let removed = timer().shards[key.shard()].lock().remove(key);
    // Dropped after the lock is released: the lock is a leaf.
    drop(removed);
}

/// Under loom, where no thread runs: does what the thread does when every armed instant has
/// passed (takes every entry out, then expires each with no lock held), so a model can race
/// an expiry against arming and canceling.
#[cfg(loom)]
pub(crate) fn expire_all_for_model() {
    let mut due = Vec::new();
    for shard in &timer().shards {
        shard.lock().advance(u64::MAX - 1, &mut due);
    }
    for entry in due {
        entry.expire();
    }
}

/// Number of armed deadlines (tests).
pub(crate) fn armed_count() -> usize {
    timer().shards.iter().map(|shard| shard.lock().live).sum()
}

/// The thread's loop.
fn run() {
    let timer = timer();
    let mut due: Vec<Target> = Vec::new();
    loop {
        let now = time::now();
        for shard in &timer.shards {
            shard.lock().advance(now, &mut due);
        }
        if !due.is_empty() {
            for entry in due.drain(..) {
                entry.expire();
            }
            continue;
        }
        let sleep = timer.sleep.lock();
        // Invariant 4: before the last look, "asleep for ever", so that an arming the look
        // misses wakes us (it waits for this lock, which the wait below releases).
        timer.next_wake.store(u64::MAX, Ordering::SeqCst);
        let mut next = u64::MAX;
        let mut armed_lately = false;
        for shard in &timer.shards {
            let mut wheel = shard.lock();
            next = next.min(wheel.next_due());
            armed_lately |= std::mem::take(&mut wheel.armed_lately);
        }
        let now = time::now();
        if next <= now {
            continue;
        }
        if next == u64::MAX && armed_lately {
            // Nothing armed, but deadlines come and go (armed and disarmed before they fire):
            // sleep one turn rather than for ever, so that the next armings need not wake us
            // (an arming wakes the thread only when it is earlier than `next_wake`). Once a
            // whole turn passes with no arming, the thread sleeps for ever.
            next = now.saturating_add((SLOTS as u64) << TICK_SHIFT);
        }
        timer.next_wake.store(next, Ordering::SeqCst);
        drop(if next == u64::MAX {
            timer.wake.wait(sleep)
        } else {
            timer.wake.wait_timeout(sleep, time::until(next, now))
        });
    }
}

// ===== Alarm: wake one task at an instant =====

/// A timer entry that wakes one task at an instant: the async counterpart of a timed park,
/// for a sleep that needs no context node (`rate/sleep.rs`). Armed by its first
/// [`poll`](Alarm::poll), disarmed when dropped.
pub(crate) struct Alarm {
    /// When it goes off (encoded by `time`).
    at: u64,
    /// The entry in the timer and its key, once armed (invariant 1: armed until it fires or is
    /// disarmed).
    entry: Option<(Arc<AlarmEntry>, Key)>,
}

/// What the timer thread holds for an [`Alarm`].
pub(crate) struct AlarmEntry {
    /// The alarm's instant (encoded by `time`).
    at: u64,
    /// Set by the timer thread when it fires, with the waker taken out, under this leaf lock
    /// (nothing else is taken under it); the waker is woken after it is released.
    state: crate::sync::Mutex<AlarmState>,
}

struct AlarmState {
    /// Set once, by `expire`; never cleared.
    fired: bool,
    /// The task to wake, kept up to date by `Alarm::poll`; taken by `expire`.
    waker: Option<Waker>,
}

impl Expire for AlarmEntry {
    fn at(&self) -> u64 {
        self.at
    }

    fn expire(self: Arc<Self>) {
        let waker = {
            let mut state = self.state.lock();
            state.fired = true;
            state.waker.take()
        };
        // The waker is the executor's code: woken with no lock held.
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Alarm {
    /// An alarm at `at` (encoded by `time`), not armed yet.
    pub(crate) fn new(at: u64) -> Alarm {
        Alarm { at, entry: None }
    }

    /// Ready once the alarm has gone off; otherwise arms it (the first call) or updates the
    /// task it wakes, and is pending. Also ready, at once, if the timer thread could not be
    /// started: the caller then gets no wake-up and must poll on its own.
    pub(crate) fn poll(&mut self, waker: &Waker) -> Poll<()> {
        let Some((entry, _)) = &self.entry else {
            let entry = Arc::new(AlarmEntry {
                at: self.at,
                state: crate::sync::Mutex::new(AlarmState {
                    fired: false,
                    waker: Some(waker.clone()),
                }),
            });
            let Some(key) = arm(self.at, entry.clone()) else {
                return Poll::Ready(());
            };
            self.entry = Some((entry, key));
            return Poll::Pending;
        };
        let mut state = entry.state.lock();
        if state.fired {
            return Poll::Ready(());
        }
        let old = match &mut state.waker {
            Some(current) if current.will_wake(waker) => None,
            slot => slot.replace(waker.clone()),
        };
        drop(state);
        // A replaced waker is the executor's code: dropped with no lock held.
        drop(old);
        Poll::Pending
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        if let Some((entry, key)) = self.entry.take() {
            let fired = entry.state.lock().fired;
            if !fired {
                // Invariant 1: the entry leaves the timer with its owner. If it fires
                // meanwhile, the timer took it out already and this removes nothing.
                disarm(key);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
impl Alarm {
    /// A weak handle on its timer entry, once armed (tests): it can be upgraded while anybody,
    /// the timer included, still holds the entry.
    pub(crate) fn entry(&self) -> Option<std::sync::Weak<dyn Expire>> {
        self.entry.as_ref().map(|(entry, _)| {
            let entry: Arc<dyn Expire> = entry.clone();
            Arc::downgrade(&entry)
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A key names its shard and generation exactly, in eight bytes with its `Option`; the
    /// generations skip zero when they wrap.
    #[test]
    fn a_key_packs_shard_and_generation() {
        assert_eq!(std::mem::size_of::<Option<Key>>(), 8);
        for (shard, generation) in [(0, 1), (SHARDS - 1, GENERATIONS - 1), (3, 12_345)] {
            let key = Key::new(shard, 77, generation);
            assert_eq!(
                (key.shard(), key.index, key.generation()),
                (shard, 77, generation)
            );
        }
        assert_eq!(next_generation(GENERATIONS - 1), 1);
        assert_eq!(next_generation(1), 2);
    }
    use std::sync::atomic::AtomicUsize;

    /// An entry that counts its expiries and knows its instant.
    pub(crate) struct Probe {
        at: u64,
        fired: AtomicUsize,
    }

    impl From<Arc<Probe>> for Target {
        fn from(value: Arc<Probe>) -> Target {
            Target::Probe(value)
        }
    }

    impl Expire for Probe {
        fn at(&self) -> u64 {
            self.at
        }

        fn expire(self: Arc<Self>) {
            self.fired.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    const MS: u64 = 1_000_000;
    /// A fake "now" far from zero, not on a tick boundary.
    const T0: u64 = 1_000_000 * (1 << TICK_SHIFT) + 12_345;

    #[derive(Clone, Debug)]
    enum Op {
        /// Arm at now + this many nanoseconds (may be in the past: negative).
        Arm(i64),
        /// Disarm the n-th live entry (modulo their number).
        Disarm(usize),
        /// Move the fake clock on by this many nanoseconds and advance the wheel.
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            // Up to three turns ahead, and a little in the past.
            4 => (-(2 * MS as i64)..(3 * SLOTS as i64) << TICK_SHIFT).prop_map(Op::Arm),
            // Mostly nearby, sometimes the far future, sometimes exactly on a tick.
            2 => (0usize..64).prop_map(Op::Disarm),
            3 => prop_oneof![
                0u64..2 * MS,
                Just(1u64 << TICK_SHIFT),
                0u64..(2 * SLOTS as u64) << TICK_SHIFT,
            ]
            .prop_map(Op::Advance),
        ]
    }

    /// The fake clock's wheel: every entry fires exactly once, in the first advance whose
    /// `now` reaches its instant (never early, never late on the fake clock); a disarmed entry
    /// never fires; `next_due` is never later than the earliest live instant; the slab and the
    /// counts agree.
    fn check(ops: &[Op]) {
        let mut wheel = Wheel::new();
        let mut now = T0;
        wheel.start(now);
        let mut live: Vec<(Key, Arc<Probe>)> = Vec::new();
        let mut gone: Vec<Arc<Probe>> = Vec::new();
        let mut due = Vec::new();
        for op in ops {
            match *op {
                Op::Arm(offset) => {
                    let at = now.saturating_add_signed(offset).max(1);
                    let probe = Arc::new(Probe {
                        at,
                        fired: AtomicUsize::new(0),
                    });
                    let (index, generation) = wheel.insert(at, probe.clone().into());
                    let key = Key::new(0, index, generation);
                    live.push((key, probe));
                }
                Op::Disarm(n) if !live.is_empty() => {
                    let (key, probe) = live.remove(n % live.len());
                    assert!(wheel.remove(key).is_some(), "a live entry was not found");
                    assert!(wheel.remove(key).is_none(), "a key was valid twice");
                    gone.push(probe);
                }
                Op::Disarm(_) => {}
                Op::Advance(step) => {
                    now += step;
                    wheel.advance(now, &mut due);
                    for entry in due.drain(..) {
                        entry.expire();
                    }
                    live.retain(|(key, probe)| {
                        let fired = probe.fired.load(std::sync::atomic::Ordering::SeqCst);
                        if probe.at <= now {
                            assert_eq!(fired, 1, "due at {} by {now}, fired {fired}", probe.at);
                            // Firing freed the entry: the key is no longer valid.
                            assert!(!wheel.holds(*key));
                            false
                        } else {
                            assert_eq!(fired, 0, "fired early: due at {}, now {now}", probe.at);
                            true
                        }
                    });
                }
            }
            assert_eq!(wheel.live, live.len());
            audit(&wheel);
            if let Some(earliest) = live.iter().map(|(_, p)| p.at).min() {
                assert!(
                    wheel.next_due() <= earliest.max(now),
                    "would sleep past a due entry"
                );
            } else {
                assert_eq!(wheel.next_due(), u64::MAX);
            }
        }
        for probe in gone {
            assert_eq!(probe.fired.load(std::sync::atomic::Ordering::SeqCst), 0);
            // The wheel dropped its reference when the entry was disarmed.
            assert_eq!(
                Arc::strong_count(&probe),
                1,
                "a disarmed entry is still held"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(if cfg!(debug_assertions) { 64 } else { 512 }))]
        #[test]
        fn entries_fire_once_on_time_and_disarmed_ones_never(ops in proptest::collection::vec(op(), 1..200)) {
            check(&ops);
        }
    }

    #[test]
    fn stale_references_are_compacted() {
        let mut wheel = Wheel::new();
        wheel.start(T0);
        let probe = Arc::new(Probe {
            at: T0 + 10 * MS,
            fired: AtomicUsize::new(0),
        });
        for _ in 0..10 * SLOTS {
            let (index, generation) = wheel.insert(probe.at, probe.clone().into());
            wheel.remove(Key::new(0, index, generation));
        }
        let references: usize = wheel.buckets.iter().map(Vec::len).sum();
        assert!(
            references <= SLOTS + 1,
            "{references} stale references kept"
        );
        assert!(wheel.dead <= SLOTS + 1);
        assert!(
            wheel.entries.len() <= SLOTS + 2,
            "dead entries are freed and reused: {} entries",
            wheel.entries.len()
        );
        audit(&wheel);
    }

    /// Invariants 1 and 2 on the slab and the buckets: every armed or dead entry has exactly
    /// one reference, in the bucket of its tick or later (an entry armed before the cursor),
    /// a free entry none and is on the free list once; the counts and bits agree.
    fn audit(wheel: &Wheel) {
        let mut references = vec![0usize; wheel.entries.len()];
        for (slot, bucket) in wheel.buckets.iter().enumerate() {
            if !bucket.is_empty() {
                assert_ne!(wheel.occupied[slot / 64] & (1 << (slot % 64)), 0);
            }
            for &index in bucket {
                references[index as usize] += 1;
                if let Some(at) = wheel.entries[index as usize].at() {
                    let tick = (at >> TICK_SHIFT).max(wheel.cursor);
                    assert!(
                        slot_of(tick) == slot || at >> TICK_SHIFT < wheel.cursor,
                        "an entry in the wrong bucket"
                    );
                }
            }
        }
        let mut free = vec![false; wheel.entries.len()];
        let mut next = wheel.free;
        while next != NONE {
            assert!(!free[next as usize], "the free list loops");
            free[next as usize] = true;
            match wheel.entries[next as usize] {
                Entry::Free { next: after, .. } => next = after,
                _ => panic!("the free list names an entry in use"),
            }
        }
        let (mut live, mut dead) = (0, 0);
        for (index, entry) in wheel.entries.iter().enumerate() {
            match entry {
                Entry::Free { .. } => {
                    assert_eq!(references[index], 0, "a free entry has a reference");
                    assert!(free[index], "a free entry is not on the free list");
                }
                Entry::Dead { .. } => {
                    dead += 1;
                    assert_eq!(references[index], 1, "a dead entry's references");
                }
                _ => {
                    live += 1;
                    assert_eq!(references[index], 1, "an armed entry's references");
                }
            }
            assert!((1..GENERATIONS).contains(&entry.generation()));
        }
        assert_eq!((wheel.live, wheel.dead), (live, dead));
    }

    /// Many disarms among many armed entries, past the compaction's threshold more than once:
    /// the slab and buckets stay consistent, dead entries are reused, and exactly the armed
    /// entries fire, once each.
    #[test]
    fn compaction_among_armed_entries_keeps_them_and_frees_the_dead() {
        let mut wheel = Wheel::new();
        wheel.start(T0);
        let mut armed: Vec<(Key, Arc<Probe>)> = Vec::new();
        let mut disarmed = Vec::new();
        for round in 0..6 * SLOTS as u64 {
            let probe = Arc::new(Probe {
                at: T0 + ((round % (2 * SLOTS as u64)) << TICK_SHIFT) + round % 977,
                fired: AtomicUsize::new(0),
            });
            let (index, generation) = wheel.insert(probe.at, probe.clone().into());
            armed.push((Key::new(0, index, generation), probe));
            // Five of every six are disarmed, oldest and newest alike: the dead soon outnumber
            // twice the armed by a turn of buckets, so compaction runs, more than once.
            if round % 6 != 0 {
                let (key, probe) = armed.swap_remove((round as usize * 7919) % armed.len());
                assert!(wheel.remove(key).is_some());
                disarmed.push(probe);
            }
        }
        audit(&wheel);
        assert!(
            wheel.dead <= 2 * wheel.live + SLOTS,
            "compacted: {}",
            wheel.dead
        );
        assert!(
            wheel.entries.len() <= 3 * armed.len() + SLOTS + 1,
            "dead entries are reused: {} entries for {} armed",
            wheel.entries.len(),
            armed.len()
        );
        let mut due = Vec::new();
        wheel.advance(T0 + ((3 * SLOTS as u64) << TICK_SHIFT), &mut due);
        for target in due.drain(..) {
            target.expire();
        }
        audit(&wheel);
        for (_, probe) in &armed {
            assert_eq!(probe.fired.load(std::sync::atomic::Ordering::SeqCst), 1);
        }
        for probe in &disarmed {
            assert_eq!(probe.fired.load(std::sync::atomic::Ordering::SeqCst), 0);
            assert_eq!(
                Arc::strong_count(probe),
                1,
                "a disarmed entry is still held"
            );
        }
        assert_eq!((wheel.live, wheel.dead), (0, 0));
    }

    #[test]
    fn a_slab_entry_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
    }

    #[test]
    fn the_thread_sleeps_to_the_exact_instant_of_a_later_bucket_when_it_is_small() {
        let probe = |at: u64| {
            Arc::new(Probe {
                at,
                fired: AtomicUsize::new(0),
            })
        };
        let mut wheel = Wheel::new();
        wheel.start(T0);
        let tick = (T0 >> TICK_SHIFT) + 5;
        let start = tick << TICK_SHIFT;
        // Mid-tick, and an entry a turn later in the same bucket: the exact instant of this
        // turn's, not the tick's start (one wake-up, not two).
        let (mid, later) = (
            probe(start + 1_000),
            probe(start + ((SLOTS as u64) << TICK_SHIFT)),
        );
        wheel.insert(mid.at, mid.clone().into());
        wheel.insert(later.at, later.clone().into());
        assert_eq!(wheel.next_due(), start + 1_000);
        // Only a later turn's entry there: the tick's start (an entry of a bucket beyond it
        // may be due before that one).
        let mut other = Wheel::new();
        other.start(T0);
        other.insert(later.at, later.clone().into());
        assert_eq!(other.next_due(), start);
        // A bucket too full to look at: the tick's start.
        let crowd: Vec<_> = (0..=LOOK_AHEAD as u64)
            .map(|i| probe(start + 2_000 + i))
            .collect();
        for entry in &crowd {
            wheel.insert(entry.at, entry.clone().into());
        }
        assert_eq!(wheel.next_due(), start);
    }

    #[test]
    fn a_wheel_a_long_way_behind_visits_every_bucket_once() {
        let mut wheel = Wheel::new();
        wheel.start(T0);
        let probes: Vec<_> = (0..3 * SLOTS as u64)
            .step_by(7)
            .map(|tick| {
                let probe = Arc::new(Probe {
                    at: T0 + (tick << TICK_SHIFT),
                    fired: AtomicUsize::new(0),
                });
                wheel.insert(probe.at, probe.clone().into());
                probe
            })
            .collect();
        let mut due = Vec::new();
        let now = T0 + ((10 * SLOTS as u64) << TICK_SHIFT);
        wheel.advance(now, &mut due);
        assert_eq!(due.len(), probes.len());
        assert_eq!(wheel.live, 0);
        assert_eq!(wheel.next_due(), u64::MAX);
    }
}
