//! The registry of precise sleeps (`sleep.rs`): who sleeps until when, so that at most one of
//! them covers its last margin actively, and only while no other sleep is due near it; and so
//! that tasks due close together are woken together, by one timer entry.
//!
//! A precise sleep (a limiter wait, a ticker tick) alone sleeps until a margin before its
//! instant and covers the margin actively (a thread spins, a task yields to its executor),
//! because an OS or timer-thread wake-up comes 50–200 µs late. That costs one margin of CPU
//! per sleep. With many sleeps pending and their instants close together (20,000 waits on a
//! limiter at 20,000/s), every one of them in its margin spun at once: both cores busy for the
//! whole second. And without spinning, each still cost a timer entry, a timer-thread wake-up
//! and an executor wake-up of its own.
//!
//! # The rules
//!
//! Every precise sleep registers here (its instant, and a task its waker) when it starts and
//! leaves when it ends, however it ends ([`Entry`] leaves on drop). At registration:
//!
//! * **Isolated** (no other registered sleep due within [`DENSE`] of its instant): it sleeps
//!   to its margin, then spins if the one **spinner** slot is free ([`Entry::try_spin`], which
//!   also checks again that it is still isolated); else it sleeps to its instant. One sleep
//!   alone (the usual limiter loop, a ticker) keeps its few-microsecond precision.
//! * **A task with another sleep due within [`BATCH`]**: it joins the **slot** ending at its
//!   instant rounded up to [`BATCH`] ([`slot_of`]), and arms nothing of its own. The registry
//!   keeps one timer entry per slot that has members ([`SlotAlarm`], armed by the slot's first
//!   member, under the registry's lock); when the timer thread fires it, at the slot's end, it
//!   **sweeps**: it wakes every registered task whose instant has passed, in order of instant.
//!   So a slot costs one timer entry and one timer-thread wake-up however many tasks it holds,
//!   a member costs no timer entry, and a task returns at most [`BATCH`] plus a timer
//!   wake-up (about 80 µs) after its instant (half of that at the median), never before it. The sweep runs on the timer
//!   thread, which depends on no task: a member that leaves early (its context was canceled,
//!   its future dropped) delays and loses nobody.
//! * **Any other** (a thread among others, a task with others near but none within
//!   [`BATCH`] (none while [`BATCH`] is at least [`DENSE`]), a task whose slot's entry could
//!   not be armed): it sleeps until its instant (a timed park or an alarm of its own on the
//!   timer thread wakes it about 80 µs late), spending no CPU meanwhile.
//!
//! A spinner sweeps too, on each round (one atomic load unless some task is due). No other
//! sleep sweeps when it returns: each has a wake-up of its own, and a sweep per return would
//! cost a lock round trip and an early executor wake-up per task.
//!
//! # Invariants
//!
//! 1. Every registered sleep has exactly one entry in `entries`, keyed by (instant, id) with an
//!    id unique to the registry, from [`Sleepers::register`] until its [`Entry`] is dropped.
//! 2. `spinner` names at most one entry, a registered, isolated one: it is set only by
//!    [`Entry::try_spin`] and cleared when that entry leaves. Hence at most one sleep covers a
//!    margin at any time.
//! 3. Every sleep has a wake-up that needs no other sleep to run: an isolated or lone task's
//!    alarm (at its margin or its instant), a thread's timed park, a spinner's own yields, and
//!    for a slot's member the slot's timer entry (invariant 6). A sweep only ever makes a
//!    wake-up earlier.
//! 4. A sweep wakes an entry's waker only once the entry's instant has passed, and takes it out,
//!    so it wakes it at most once; a swept task is due, so it returns when polled.
//! 5. `earliest` is at most the instant of every entry holding a waker (a lower bound, so the
//!    sweep's lock-free check never misses one), `u64::MAX` when there is none.
//! 6. `slots` has a record for slot `s` iff some entry of slot `s` (`Slot::slot == Some(s)`)
//!    holds a waker (is not swept yet); its `members` counts those entries, and its `key`
//!    names a timer entry armed at `s` that sweeps this registry. A member's waker is taken
//!    out (by a sweep or by its leaving) only with its record's count decremented under the
//!    same lock; the last one removes the record and disarms its entry. A slot's entry that
//!    fires finds every member of its slot due (the timer fires at or after `s`, and a member
//!    is due at or before `s`), even a member that joined a newer record of the same slot.
//!
//! # Lock order
//!
//! The registry's lock is taken with no other ctxkit lock held (sleeps arm their own alarms
//! and wait on their contexts outside it; the timer thread fires a slot's entry with no timer
//! lock held). Under it, the timer's locks may be taken (a slot's entry is armed and disarmed
//! under it; the timer's locks are leaves for that purpose, `timer.rs`): so registry, then
//! timer. Wakers are woken, and replaced ones dropped, after it is released (the executor's
//! code runs there).
//!
//! Who touches what: `entries`, `spinner` and `slots` only under the lock, by the sleeps
//! themselves (register, keep the waker current, take the spinner slot, leave) and by sweeps
//! (a slot's entry on the timer thread, a spinner, a returning task); `earliest` is written
//! under the lock and read without it by sweeps.
//!
//! Lock traffic: a task takes the lock to register and to leave, and to replace its waker if
//! the executor gave it another; a sweep takes it only when some task is due. At 20,000 sleeps
//! a second, in about 950 slots, that is about 41,000 short critical sections a second (a
//! B-tree insert or remove each), far from contention on two cores.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::task::Waker;

use crate::sync::{self, AtomicU64, Mutex, Ordering};
use crate::time;
use crate::timer::{self, Expire};

/// How close two sleeps' instants must be for neither to spin, in nanoseconds: with another
/// sleep due within this of its own, a sleep does not spin. At 1 ms, a lone schedule (a
/// limiter loop, a ticker: the next sleep registers after the last one left) spins for each
/// instant whatever its rate, as before; many sleeps pending at once, as soon as they are due
/// less than 1 ms apart, spin for none.
pub(crate) const DENSE: u64 = 1_000_000;

/// The grid that the wake-ups of tasks due close together are aligned to, in nanoseconds
/// (2^20, about 1.05 ms): a task with another due within this wakes at the end of its *slot*,
/// its instant rounded up to the next multiple of this ([`slot_of`]). It bounds the
/// timer-thread wake-ups that dense sleeps cost to about 950 a second, and the lateness they
/// add to about a millisecond, as tokio's timer (which rounds up to 1 ms ticks).
///
/// It is the timer's tick (`timer::TICK_NANOS`) on purpose, and defined as it: a bucket of the
/// timer's wheel holds one tick, and the timer thread sleeps to the earliest instant due in the
/// next occupied one, so the entries of slots aligned on the ticks cost it one wake-up per slot.
/// (With 1 ms slots, misaligned with the 1.05 ms ticks, the thread woke about twice per slot,
/// when it still slept to a tick's start before each entry's exact instant.) Measured at 20,000
/// waits a second on 2 tokio workers, against tokio tasks sleeping to the same instants in the
/// same run: 500 µs slots with a leader task that swept its slot and a backstop alarm per
/// follower cost about 3.1 × tokio's CPU; one timer entry per slot that sweeps on the timer
/// thread, 500 µs slots: about 3 ×, 1 ms: about 2 ×, 2^20 ns: about 1.6 ×, with a median
/// lateness of about 600 µs (tokio's: about 1,080 µs).
pub(crate) const BATCH: u64 = crate::timer::TICK_NANOS;

/// The end of the slot of a task due at `due`: `due` rounded up to a multiple of [`BATCH`].
pub(crate) fn slot_of(due: u64) -> u64 {
    due.div_ceil(BATCH).saturating_mul(BATCH)
}

/// An entry's key: (instant, id).
type Key = (u64, u64);

/// A registry: the process's one ([`global`]), or a test's own.
pub(crate) struct Sleepers {
    state: Mutex<State>,
    /// Invariant 5.
    earliest: AtomicU64,
}

struct State {
    /// Invariant 1.
    entries: BTreeMap<Key, Slot>,
    /// The next entry's id.
    next_id: u64,
    /// Invariant 2.
    spinner: Option<Key>,
    /// Invariant 6: each slot with members not swept yet, by the slot's end.
    slots: BTreeMap<u64, Members>,
}

/// What the registry keeps of a sleep.
struct Slot {
    /// The waker of a task not swept yet; `None` for a thread, or for a task once swept.
    waker: Option<Waker>,
    /// The end of its slot, for a slot's member.
    slot: Option<u64>,
}

/// A slot's record (invariant 6).
struct Members {
    /// Its entries holding a waker.
    count: usize,
    /// Its timer entry, armed at the slot's end.
    key: timer::Key,
}

/// The timer entry of a slot: when it fires, it sweeps the registry.
pub(crate) struct SlotAlarm {
    sleepers: &'static Sleepers,
    /// The slot's end: the sweep wakes at least every task due by then.
    slot: u64,
}

impl Expire for SlotAlarm {
    fn expire(self: Arc<Self>) {
        // The timer fires at or after the slot's end, so every member is due (invariant 6);
        // the clock's reading covers the members of later slots due by now too. (Under loom,
        // which fires every entry at once, the slot's end stands for the clock.)
        let now = time::now().max(self.slot);
        // Under the lock, with no lock-free look first: the member that armed this entry may
        // not have published its instant in `earliest` yet (it does so under the lock).
        self.sleepers.sweep_locked(now, NOBODY);
    }

    fn at(&self) -> u64 {
        // Armed at the slot's end (`Sleepers::register`).
        self.slot
    }
}

/// What a sleep learns when it registers: how it is to wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// No other sleep is due within [`DENSE`]: sleep to the margin, then try to spin.
    Isolated,
    /// A member of the slot ending at the given instant: the slot's timer entry wakes it then
    /// (a sweep), and it needs no alarm of its own.
    Member(u64),
    /// Among others, but a thread, or a task with no other sleep due within [`BATCH`] of it
    /// (nothing to share a wake-up with): sleep to its instant.
    Own,
}

/// A sweeper that is no entry.
const NOBODY: Key = (0, u64::MAX);

sync::lazy_static! {
    static ref SLEEPERS: Sleepers = Sleepers::empty();
}

/// The process's registry, which every precise sleep uses.
pub(crate) fn global() -> &'static Sleepers {
    &SLEEPERS
}

impl Sleepers {
    fn empty() -> Sleepers {
        Sleepers {
            state: Mutex::new(State {
                entries: BTreeMap::new(),
                next_id: 0,
                spinner: None,
                slots: BTreeMap::new(),
            }),
            earliest: AtomicU64::new(u64::MAX),
        }
    }

    /// An empty registry (tests and models use their own, leaked).
    #[cfg(test)]
    pub(crate) fn new() -> Sleepers {
        Sleepers::empty()
    }

    /// Registers a sleep until `due` (encoded by `time`); a task gives its waker, for sweeps.
    /// Says how the sleep is to wake: isolated, it may spin; a task with another due within
    /// [`BATCH`] joins its slot (whose timer entry the first member arms, here); any other
    /// sleeps to its instant.
    pub(crate) fn register(&'static self, due: u64, waker: Option<&Waker>) -> (Entry, Plan) {
        let mut state = self.state.lock();
        let key = (due, state.next_id);
        state.next_id += 1;
        let nearest = state.nearest(key);
        let plan = match waker {
            _ if nearest >= DENSE => Plan::Isolated,
            Some(_) if nearest < BATCH && state.join(self, slot_of(due)) => {
                Plan::Member(slot_of(due))
            }
            _ => Plan::Own,
        };
        let slot = match plan {
            Plan::Member(slot) => Some(slot),
            _ => None,
        };
        state.entries.insert(
            key,
            Slot {
                waker: waker.cloned(),
                slot,
            },
        );
        if waker.is_some() && due < self.earliest.load(Ordering::Relaxed) {
            self.earliest.store(due, Ordering::Release);
        }
        drop(state);
        let entry = Entry {
            sleepers: self,
            key,
            waker: waker.cloned(),
            spinning: false,
        };
        (entry, plan)
    }

    /// Wakes every registered task whose instant is at or before `now` (once each, invariant
    /// 4), except `except` (the sweeper, whose waker is only taken out). One atomic load unless
    /// some task is due.
    fn sweep(&self, now: u64, except: Key) {
        if self.earliest.load(Ordering::Acquire) > now {
            return;
        }
        self.sweep_locked(now, except);
    }

    /// [`sweep`](Sleepers::sweep) without the lock-free look at `earliest` first.
    fn sweep_locked(&self, now: u64, except: Key) {
        let mut due: Vec<Waker> = Vec::new();
        {
            let mut state = self.state.lock();
            let state = &mut *state;
            for (&key, entry) in state.entries.range_mut(..(now.saturating_add(1), 0)) {
                if let Some(waker) = entry.waker.take() {
                    if let Some(slot) = entry.slot {
                        leave_slot(&mut state.slots, slot);
                    }
                    if key != except {
                        due.push(waker);
                    }
                }
            }
            // Every entry due by `now` holds no waker any more: the bound is found after them.
            self.earliest.store(
                state.earliest_waker_after(now.saturating_add(1)),
                Ordering::Release,
            );
        }
        // In order of instant, with no lock held.
        for waker in due {
            waker.wake();
        }
    }

    /// Number of registered sleeps (tests).
    #[cfg(test)]
    pub(crate) fn registered(&self) -> usize {
        self.state.lock().entries.len()
    }

    /// Number of slots with a record, hence a timer entry (tests).
    #[cfg(test)]
    pub(crate) fn armed_slots(&self) -> usize {
        self.state.lock().slots.len()
    }

    /// The sweep's lower bound, `earliest` (tests).
    #[cfg(test)]
    pub(crate) fn earliest_bound(&self) -> u64 {
        self.earliest.load(Ordering::SeqCst)
    }

    /// Whether some sleep holds the spinner slot (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn has_spinner(&self) -> bool {
        self.state.lock().spinner.is_some()
    }
}

/// Takes one member out of `slot`'s record; the last one removes it and disarms its entry
/// (invariant 6; a disarm after the entry fired removes nothing).
fn leave_slot(slots: &mut BTreeMap<u64, Members>, slot: u64) {
    if let std::collections::btree_map::Entry::Occupied(mut record) = slots.entry(slot) {
        record.get_mut().count -= 1;
        if record.get().count == 0 {
            timer::disarm(record.remove().key);
        }
    }
}

impl State {
    /// How far the instant of the entry nearest to `key` (not registered yet) is from `key`'s,
    /// `u64::MAX` if there is none.
    fn nearest(&self, key: Key) -> u64 {
        let (due, _) = key;
        let before = self.entries.range(..key).next_back();
        let after = self
            .entries
            .range((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded))
            .next();
        let before = before.map_or(u64::MAX, |(&(at, _), _)| due - at);
        let after = after.map_or(u64::MAX, |(&(at, _), _)| at - due);
        before.min(after)
    }

    /// Whether no other entry than `key` is due within [`DENSE`] of `key`'s instant.
    fn isolated(&self, key: Key) -> bool {
        self.nearest(key) >= DENSE
    }

    /// The instant of the first entry holding a waker (invariant 5), `u64::MAX` if none.
    fn earliest_waker(&self) -> u64 {
        self.earliest_waker_after(0)
    }

    /// The instant of the first entry due at or after `from` holding a waker, `u64::MAX` if
    /// none.
    fn earliest_waker_after(&self, from: u64) -> u64 {
        self.entries
            .range((from, 0)..)
            .find(|(_, slot)| slot.waker.is_some())
            .map_or(u64::MAX, |(&(at, _), _)| at)
    }

    /// Counts a new member into `slot`, arming the slot's timer entry if it is the first
    /// (invariant 6). False, joining nothing, if the timer thread could not be started.
    fn join(&mut self, sleepers: &'static Sleepers, slot: u64) -> bool {
        if let Some(record) = self.slots.get_mut(&slot) {
            record.count += 1;
            return true;
        }
        let alarm = Arc::new(SlotAlarm { sleepers, slot });
        match timer::arm(slot, alarm) {
            Some(key) => {
                self.slots.insert(slot, Members { count: 1, key });
                true
            }
            None => false,
        }
    }
}

/// A registered sleep: its entry in the registry, removed when this is dropped.
pub(crate) struct Entry {
    /// The registry it is in.
    sleepers: &'static Sleepers,
    key: Key,
    /// A copy of the waker in the entry (a task's), to see without the lock whether the entry
    /// must be updated.
    waker: Option<Waker>,
    /// Whether this sleep holds the spinner slot.
    spinning: bool,
}

impl Entry {
    /// The instant it was registered with (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn due(&self) -> u64 {
        self.key.0
    }

    /// Keeps the entry's waker the task's current one (locks only when it changed). A task
    /// calls it on each poll while asleep.
    pub(crate) fn set_waker(&mut self, waker: &Waker) {
        if self
            .waker
            .as_ref()
            .is_some_and(|kept| kept.will_wake(waker))
        {
            return;
        }
        self.waker = Some(waker.clone());
        let sleepers = self.sleepers;
        let old = {
            let mut state = sleepers.state.lock();
            let old = match state.entries.get_mut(&self.key) {
                // A swept task is due: it is woken already, and returns when polled.
                Some(slot) if slot.waker.is_some() => slot.waker.replace(waker.clone()),
                _ => None,
            };
            if self.key.0 < sleepers.earliest.load(Ordering::Relaxed) {
                sleepers.earliest.store(self.key.0, Ordering::Release);
            }
            old
        };
        // A replaced waker is the executor's code: dropped with no lock held.
        drop(old);
    }

    /// Takes the spinner slot if it is free and this sleep is isolated: then the caller covers
    /// its margin actively (and sweeps). Otherwise the caller sleeps on to its instant.
    pub(crate) fn try_spin(&mut self) -> bool {
        if self.spinning {
            return true;
        }
        let mut state = self.sleepers.state.lock();
        if state.spinner.is_none() && state.isolated(self.key) {
            state.spinner = Some(self.key);
            self.spinning = true;
        }
        self.spinning
    }

    /// Wakes every other registered task whose instant is at or before `now`: a spinner on
    /// each round, any task when it returns. One atomic load unless some task is due.
    pub(crate) fn sweep(&self, now: u64) {
        self.sleepers.sweep(now, self.key);
    }

    /// Whether this sleep holds the spinner slot (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn is_spinning(&self) -> bool {
        self.spinning
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let sleepers = self.sleepers;
        let removed = {
            let mut state = sleepers.state.lock();
            let removed = state.entries.remove(&self.key);
            if state.spinner == Some(self.key) {
                state.spinner = None;
            }
            if let Some(Slot {
                waker: Some(_),
                slot: Some(slot),
            }) = &removed
            {
                // A member not swept: its slot counts one fewer (invariant 6).
                leave_slot(&mut state.slots, *slot);
            }
            // Keeps the bound tight (so spinners do not lock for nothing), invariant 5 kept.
            // An entry swept already (or a thread's) held no waker, so was no bound: a swept
            // slot's members leave without a look at the others.
            let held_waker = removed.as_ref().is_some_and(|entry| entry.waker.is_some());
            if held_waker && self.key.0 <= sleepers.earliest.load(Ordering::Relaxed) {
                sleepers
                    .earliest
                    .store(state.earliest_waker(), Ordering::Release);
            }
            removed
        };
        // The entry's waker is the executor's code: dropped with no lock held.
        drop(removed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::test_waker::counter;

    /// A registry of the test's own (the process's is shared with the other tests).
    fn registry() -> &'static Sleepers {
        Box::leak(Box::new(Sleepers::new()))
    }

    /// An instant on the slots' grid, an hour from now: the slots' timer entries armed near it
    /// do not fire while the tests run.
    fn at() -> u64 {
        static AT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        *AT.get_or_init(|| slot_of(time::now() + 3_600_000_000_000))
    }

    #[test]
    fn a_lone_sleep_is_isolated_and_takes_the_slot() {
        let sleepers = registry();
        let (mut entry, plan) = sleepers.register(at(), None);
        assert_eq!(plan, Plan::Isolated);
        assert!(entry.try_spin());
        assert!(entry.is_spinning());
        assert!(entry.try_spin(), "keeps it");
        assert!(sleepers.has_spinner());
        drop(entry);
        assert!(!sleepers.has_spinner(), "freed on drop");
        assert_eq!(sleepers.registered(), 0, "left on drop");
    }

    #[test]
    fn sleeps_due_close_together_do_not_spin() {
        let sleepers = registry();
        let (mut first, plan) = sleepers.register(at(), None);
        assert_eq!(plan, Plan::Isolated);
        let (mut second, plan) = sleepers.register(at() + DENSE / 2, None);
        assert_eq!(plan, Plan::Own, "the first is due within DENSE");
        let (_third, plan) = sleepers.register(at() - DENSE / 4, None);
        assert_eq!(plan, Plan::Own, "the first is due within DENSE, after it");
        assert!(!first.try_spin(), "no longer isolated");
        assert!(!second.try_spin());
        assert!(!sleepers.has_spinner());
    }

    #[test]
    fn a_sleep_is_isolated_again_once_its_neighbours_left() {
        let sleepers = registry();
        let (mut first, _) = sleepers.register(at(), None);
        let (second, _) = sleepers.register(at(), None);
        assert!(!first.try_spin(), "same instant");
        drop(second);
        assert!(first.try_spin());
    }

    #[test]
    fn sleeps_dense_apart_are_isolated() {
        let sleepers = registry();
        let (_first, _) = sleepers.register(at(), None);
        let (mut second, plan) = sleepers.register(at() + DENSE, None);
        assert_eq!(plan, Plan::Isolated);
        let (_third, plan) = sleepers.register(at() - DENSE, None);
        assert_eq!(plan, Plan::Isolated);
        assert!(second.try_spin(), "isolated");
    }

    #[test]
    fn at_most_one_spinner() {
        let sleepers = registry();
        // Far apart, so each is isolated: the slot alone keeps the second from spinning.
        let (mut first, _) = sleepers.register(at(), None);
        let (mut second, _) = sleepers.register(at() + 10 * DENSE, None);
        assert!(first.try_spin());
        assert!(!second.try_spin(), "one slot");
        drop(first);
        assert!(second.try_spin(), "the slot was freed");
    }

    #[test]
    fn a_sweep_wakes_due_tasks_once_and_in_order() {
        let sleepers = registry();
        let (early, early_waker) = counter();
        let (late, late_waker) = counter();
        let (_thread, _) = sleepers.register(at() - 5, None);
        let (_e, _) = sleepers.register(at(), Some(&early_waker));
        let (_l, _) = sleepers.register(at() + 10, Some(&late_waker));
        sleepers.sweep(at() - 1, NOBODY);
        assert_eq!(early.0.load(Ordering::SeqCst), 0, "not due yet");
        sleepers.sweep(at(), NOBODY);
        assert_eq!(early.0.load(Ordering::SeqCst), 1, "due");
        assert_eq!(late.0.load(Ordering::SeqCst), 0, "not due yet");
        sleepers.sweep(at() + 5, NOBODY);
        assert_eq!(early.0.load(Ordering::SeqCst), 1, "woken once");
        sleepers.sweep(at() + 10, NOBODY);
        assert_eq!(late.0.load(Ordering::SeqCst), 1);
        assert_eq!(sleepers.earliest_bound(), u64::MAX);
        assert_eq!(sleepers.armed_slots(), 0, "every member swept");
    }

    #[test]
    fn a_dropped_entry_leaves_and_is_never_woken() {
        let sleepers = registry();
        let (count, waker) = counter();
        let (entry, _) = sleepers.register(at(), Some(&waker));
        assert_eq!(sleepers.registered(), 1);
        drop(entry);
        assert_eq!(sleepers.registered(), 0);
        assert_eq!(sleepers.earliest_bound(), u64::MAX, "bound reset");
        sleepers.sweep(at() + 1, NOBODY);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "left before its instant");
    }

    #[test]
    fn set_waker_replaces_the_woken_task() {
        let sleepers = registry();
        let (old, old_waker) = counter();
        let (new, new_waker) = counter();
        let (mut entry, _) = sleepers.register(at(), Some(&old_waker));
        entry.set_waker(&new_waker);
        sleepers.sweep(at(), NOBODY);
        assert_eq!(old.0.load(Ordering::SeqCst), 0);
        assert_eq!(new.0.load(Ordering::SeqCst), 1);
        assert_eq!(entry.due(), at());
    }

    #[test]
    fn slots_end_on_the_grid_never_before_the_instant() {
        assert_eq!(slot_of(at() + 1), at() + BATCH);
        assert_eq!(slot_of(at() + BATCH - 1), at() + BATCH);
        assert_eq!(slot_of(at()), at(), "on the grid already");
        assert_eq!(slot_of(u64::MAX - 1), u64::MAX, "saturates");
    }

    #[test]
    fn tasks_due_close_together_share_one_timer_entry_per_slot() {
        let sleepers = registry();
        let (_, waker) = counter();
        let (_lone, plan) = sleepers.register(at() + 1, Some(&waker));
        assert_eq!(plan, Plan::Isolated, "alone");
        let (first, plan) = sleepers.register(at() + 2, Some(&waker));
        assert_eq!(plan, Plan::Member(at() + BATCH));
        let (second, plan) = sleepers.register(at() + 3, Some(&waker));
        assert_eq!(plan, Plan::Member(at() + BATCH));
        assert_eq!(sleepers.armed_slots(), 1, "one entry for both");
        // A thread in the next slot, so that the next task is not isolated.
        let (_thread, _) = sleepers.register(at() + BATCH, None);
        let (next, plan) = sleepers.register(at() + BATCH + 1, Some(&waker));
        assert_eq!(plan, Plan::Member(at() + 2 * BATCH), "a slot of its own");
        assert_eq!(sleepers.armed_slots(), 2);
        drop(first);
        assert_eq!(sleepers.armed_slots(), 2, "the slot keeps a member");
        drop(second);
        assert_eq!(sleepers.armed_slots(), 1, "the last member disarmed it");
        drop(next);
        assert_eq!(sleepers.armed_slots(), 0);
    }

    #[test]
    fn a_sweep_of_a_slot_wakes_its_members_not_the_next_slot() {
        let sleepers = registry();
        let (first, first_waker) = counter();
        let (second, second_waker) = counter();
        let (later, later_waker) = counter();
        let (_thread, _) = sleepers.register(at() + 1, None);
        let (_f1, plan) = sleepers.register(at() + 3, Some(&first_waker));
        assert!(matches!(plan, Plan::Member(_)));
        let (_f2, _) = sleepers.register(at() + BATCH, Some(&second_waker));
        let (_l, _) = sleepers.register(at() + BATCH + 1, Some(&later_waker));
        assert_eq!(sleepers.armed_slots(), 2);
        // What the slot's timer entry does when it fires.
        Arc::new(SlotAlarm {
            sleepers,
            slot: at() + BATCH,
        })
        .expire();
        assert_eq!(first.0.load(Ordering::SeqCst), 1);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            later.0.load(Ordering::SeqCst),
            0,
            "the next slot's, not due"
        );
        assert_eq!(sleepers.armed_slots(), 1, "the swept slot's record is gone");
    }

    #[test]
    fn a_thread_among_tasks_joins_no_slot() {
        let sleepers = registry();
        let (_, waker) = counter();
        let (_task, _) = sleepers.register(at() + 2, Some(&waker));
        let (_thread, plan) = sleepers.register(at() + 3, None);
        assert_eq!(plan, Plan::Own);
        assert_eq!(sleepers.armed_slots(), 0);
    }

    #[test]
    fn a_thread_entry_gives_the_bound_nothing() {
        let sleepers = registry();
        let (_thread, _) = sleepers.register(at(), None);
        assert_eq!(sleepers.earliest_bound(), u64::MAX);
    }

    #[test]
    fn the_timer_wakes_a_slots_members_with_nobody_else_running() {
        let sleepers = registry();
        let (lone, lone_waker) = counter();
        let (member, member_waker) = counter();
        let due = time::encode(Instant::now() + Duration::from_millis(2)).expect("encodable");
        // The first is alone (it would spin, but nobody polls it), the second is a member.
        let (_lone, plan) = sleepers.register(due, Some(&lone_waker));
        assert_eq!(plan, Plan::Isolated);
        let (_member, plan) = sleepers.register(due + 10, Some(&member_waker));
        assert!(matches!(plan, Plan::Member(_)));
        let watchdog = Instant::now() + Duration::from_secs(20);
        while member.0.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < watchdog, "watchdog: the slot never fired");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(time::now() >= due + 10, "not before its instant");
        assert_eq!(lone.0.load(Ordering::SeqCst), 1, "due too: swept with it");
        assert_eq!(member.0.load(Ordering::SeqCst), 1, "once");
        assert_eq!(sleepers.armed_slots(), 0);
    }
}
