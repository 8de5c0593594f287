//! The registry of precise sleeps (`sleep.rs`): who sleeps until when, so that at most one of
//! them covers its last margin actively, and only while no other sleep is due near it; and so
//! that tasks due close together are woken together.
//!
//! A precise sleep (a limiter wait, a ticker tick) alone sleeps until a margin before its
//! instant and covers the margin actively (a thread spins, a task yields to its executor),
//! because an OS or timer-thread wake-up comes 50–200 µs late. That costs one margin of CPU
//! per sleep. With many sleeps pending and their instants close together (20,000 waits on a
//! limiter at 20,000/s), every one of them in its margin spun at once: both cores busy for the
//! whole second. And without spinning, each still cost a timer-thread wake-up and an executor
//! wake-up of its own, two context switches each.
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
//! * **A task with another sleep due within [`BATCH`]**: it belongs to the **slot** ending at
//!   its instant rounded up to [`BATCH`] ([`slot_of`]). The first task registered in a slot **leads** it: its timer alarm
//!   is at the slot's end, and when it returns it **sweeps**: it wakes every registered task
//!   whose instant has passed, from the executor's thread, in order of instant. The others
//!   **follow**: their own alarm (the *backstop*) is at the slot's end plus [`BACKSTOP`], and
//!   is disarmed unused when the leader's sweep wakes them first. So a slot costs one
//!   timer-thread wake-up and one executor wake-up, however many tasks it holds, and a task
//!   returns at most [`BATCH`] plus a timer wake-up (about 80 µs) after its instant, never
//!   before it.
//! * **Any other** (a thread among others, a task with others near but none within
//!   [`BATCH`]): it sleeps until its instant (a timed park or the timer thread wakes it about
//!   80 µs late), spending no CPU meanwhile.
//!
//! A leader that leaves before its slot ends (its context was canceled, its future dropped)
//! **hands the lead over** to a follower of the slot not swept yet, and wakes it; that one
//! then arms the slot's wake-up in place of its backstop. A spinner sweeps too, on each round.
//!
//! # Invariants
//!
//! 1. Every registered sleep has exactly one entry in `entries`, keyed by (instant, id) with an
//!    id unique to the registry, from [`Sleepers::register`] until its [`Entry`] is dropped.
//! 2. `spinner` names at most one entry, a registered, isolated one: it is set only by
//!    [`Entry::try_spin`] and cleared when that entry leaves. Hence at most one sleep covers a
//!    margin at any time.
//! 3. Every sleep keeps a wake-up of its own (an isolated or leading task's alarm at its margin,
//!    instant or slot's end, a follower's backstop, a thread's timed park, a spinner's own
//!    yields), so a sweep or a hand-over only ever makes a wake-up earlier: a leader or spinner
//!    that is descheduled, blocked, dropped or canceled delays the others by at most
//!    [`BACKSTOP`], and loses nobody.
//! 4. A sweep wakes an entry's waker only once the entry's instant has passed, and takes it out,
//!    so it wakes it at most once; a swept task is due, so it returns when polled.
//! 5. `earliest` is at most the instant of every entry holding a waker (a lower bound, so the
//!    sweep's lock-free check never misses one), `u64::MAX` when there is none.
//! 6. `leaders` maps a slot's end to a registered entry of that slot (`Slot::slot`), and each
//!    slot that has a registered follower not swept yet has a leader: a leader leaving either
//!    hands over to such a follower or removes the slot's lead when there is none.
//!
//! # Lock order
//!
//! The registry's lock is a leaf: taken with no other ctxkit lock held (sleeps arm their timer
//! alarms and wait on their contexts outside it), and nothing is taken under it. Wakers are
//! woken, and replaced ones dropped, after it is released (the executor's code runs there).
//!
//! Who touches what: `entries`, `spinner` and `leaders` only under the lock, by the sleeps
//! themselves (register, keep the waker current, take the spinner slot, ask whether they lead,
//! leave and hand over) and by sweeps; `earliest` is written under the lock and read without
//! it by sweeps.
//!
//! Lock traffic: a task takes the lock to register and to leave, plus once per hand-over it
//! receives and once per sweep that finds a task due; a spinner's rounds and a follower's
//! return take it only when some task is due. At 20,000 sleeps a second that is about
//! 50,000 short critical sections a second (a B-tree insert or remove each), far from
//! contention on two cores.

use std::collections::BTreeMap;
use std::task::Waker;

use crate::sync::{self, AtomicU64, Mutex, Ordering};

/// How close two sleeps' instants must be for neither to spin, in nanoseconds: with another
/// sleep due within this of its own, a sleep does not spin. At 1 ms, a lone schedule (a
/// limiter loop, a ticker: the next sleep registers after the last one left) spins for each
/// instant whatever its rate, as before; many sleeps pending at once, as soon as they are due
/// less than 1 ms apart, spin for none.
pub(crate) const DENSE: u64 = 1_000_000;

/// The grid that the wake-ups of tasks due close together are aligned to, in nanoseconds:
/// a task with another due within this wakes at the end of its *slot*, its instant rounded up
/// to the next multiple of this ([`slot_of`]). It bounds the timer-thread wake-ups that dense
/// sleeps cost to 2,000 a second, each about two context switches. Measured at 20,000 waits a
/// second on 2 tokio workers, the process alone at real-time priority: 500 µs slots cost 37 %
/// of a core (182 % with every task spinning its margin; tokio sleeps to the same instants:
/// 14 %), with a median lateness of 250 µs (tokio's: 1,050 µs); 1 ms slots cost 26 %, with
/// 500 µs. Most of what is left is the executor's own wake-ups and each task's registration
/// and alarm, not the slots.
pub(crate) const BATCH: u64 = 500_000;

/// How long after its slot a follower's own wake-up comes, in nanoseconds (invariant 3): it
/// bounds the lateness if the slot's leader cannot run (its executor is blocked), and is
/// disarmed unused otherwise.
pub(crate) const BACKSTOP: u64 = 1_000_000;

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
    /// Invariant 6: the leader of each slot that has one, by the slot's end.
    leaders: BTreeMap<u64, Key>,
}

/// What the registry keeps of a sleep.
struct Slot {
    /// The waker of a task not swept yet; `None` for a thread, or for a task once swept.
    waker: Option<Waker>,
    /// The end of its slot, for a task that does not spin (a leader or a follower).
    slot: Option<u64>,
}

/// What a sleep learns when it registers: how it is to wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// No other sleep is due within [`DENSE`]: sleep to the margin, then try to spin.
    Isolated,
    /// The leader of its slot: wake at the slot's end (given), then sweep.
    Leader(u64),
    /// A follower in a slot: a leader's sweep wakes it; its own wake-up is at the slot's end
    /// plus [`BACKSTOP`] (given).
    Follower(u64),
    /// Among others, but a thread, or a task with no other sleep due within [`BATCH`] of it
    /// (nothing to share a wake-up with): sleep to its instant.
    Own,
}

sync::lazy_static! {
    static ref SLEEPERS: Sleepers = Sleepers {
        state: Mutex::new(State {
            entries: BTreeMap::new(),
            next_id: 0,
            spinner: None,
            leaders: BTreeMap::new(),
        }),
        earliest: AtomicU64::new(u64::MAX),
    };
}

/// The process's registry, which every precise sleep uses.
pub(crate) fn global() -> &'static Sleepers {
    &SLEEPERS
}

impl Sleepers {
    /// An empty registry (tests and models use their own, leaked).
    #[cfg(test)]
    pub(crate) fn new() -> Sleepers {
        Sleepers {
            state: Mutex::new(State {
                entries: BTreeMap::new(),
                next_id: 0,
                spinner: None,
                leaders: BTreeMap::new(),
            }),
            earliest: AtomicU64::new(u64::MAX),
        }
    }

    /// Registers a sleep until `due` (encoded by `time`); a task gives its waker, for sweeps.
    /// Says how the sleep is to wake: isolated, it may spin; a task with another due within
    /// [`BATCH`] leads or follows its slot; any other sleeps to its instant.
    pub(crate) fn register(&'static self, due: u64, waker: Option<&Waker>) -> (Entry, Plan) {
        let mut state = self.state.lock();
        let key = (due, state.next_id);
        state.next_id += 1;
        // Inserted with no slot first, to measure the distance to the others.
        state.entries.insert(
            key,
            Slot {
                waker: waker.cloned(),
                slot: None,
            },
        );
        let nearest = state.nearest(key);
        let plan = match waker {
            _ if nearest >= DENSE => Plan::Isolated,
            None => Plan::Own,
            Some(_) if nearest >= BATCH => Plan::Own,
            Some(_) => {
                let slot = slot_of(due);
                if let Some(entry) = state.entries.get_mut(&key) {
                    entry.slot = Some(slot);
                }
                match state.leaders.entry(slot) {
                    std::collections::btree_map::Entry::Vacant(vacant) => {
                        vacant.insert(key);
                        Plan::Leader(slot)
                    }
                    std::collections::btree_map::Entry::Occupied(_) => {
                        Plan::Follower(slot.saturating_add(BACKSTOP))
                    }
                }
            }
        };
        if waker.is_some() && due < self.earliest.load(Ordering::Relaxed) {
            self.earliest.store(due, Ordering::Release);
        }
        drop(state);
        let entry = Entry {
            sleepers: self,
            key,
            waker: waker.cloned(),
            spinning: false,
            leader: matches!(plan, Plan::Leader(_)),
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
        let mut due: Vec<Waker> = Vec::new();
        {
            let mut state = self.state.lock();
            for (&key, slot) in state.entries.range_mut(..(now.saturating_add(1), 0)) {
                if let Some(waker) = slot.waker.take() {
                    if key != except {
                        due.push(waker);
                    }
                }
            }
            self.earliest
                .store(state.earliest_waker(), Ordering::Release);
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

impl State {
    /// How far the instant of the entry nearest to `key` (other than `key`) is from `key`'s,
    /// `u64::MAX` if there is no other entry.
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
        self.entries
            .iter()
            .find(|(_, slot)| slot.waker.is_some())
            .map_or(u64::MAX, |(&(at, _), _)| at)
    }

    /// Hands the lead of `slot` from `key` (leaving) to a follower of the slot not swept yet,
    /// whose waker is returned (to wake, after the lock: it then arms the slot's wake-up), or
    /// ends the slot's lead if there is none (invariant 6).
    fn hand_over(&mut self, slot: u64, key: Key) -> Option<Waker> {
        if self.leaders.get(&slot) != Some(&key) {
            return None;
        }
        let first = (slot.saturating_sub(BATCH).saturating_add(1), 0);
        let successor = self
            .entries
            .range(first..=(slot, u64::MAX))
            .find(|(&other, entry)| {
                other != key && entry.slot == Some(slot) && entry.waker.is_some()
            })
            .map(|(&other, entry)| (other, entry.waker.clone()));
        match successor {
            Some((other, waker)) => {
                self.leaders.insert(slot, other);
                waker
            }
            None => {
                self.leaders.remove(&slot);
                None
            }
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
    /// Whether this sleep was known to lead its slot (it stays so until it leaves).
    leader: bool,
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

    /// Whether this task now leads its slot (a leader that left handed the lead to it): then it
    /// arms the slot's wake-up in place of its backstop. Locks unless it is known to lead.
    pub(crate) fn leads(&mut self) -> bool {
        if !self.leader {
            let state = self.sleepers.state.lock();
            let slot = state.entries.get(&self.key).and_then(|entry| entry.slot);
            self.leader = slot.is_some_and(|slot| state.leaders.get(&slot) == Some(&self.key));
        }
        self.leader
    }

    /// Wakes every other registered task whose instant is at or before `now`: a spinner on
    /// each round, a leader (or any task) when it returns. One atomic load unless some task is
    /// due.
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
        let (removed, successor) = {
            let mut state = sleepers.state.lock();
            let removed = state.entries.remove(&self.key);
            if state.spinner == Some(self.key) {
                state.spinner = None;
            }
            let successor = match removed.as_ref().and_then(|entry| entry.slot) {
                Some(slot) => state.hand_over(slot, self.key),
                None => None,
            };
            // Keeps the bound tight (so spinners do not lock for nothing), invariant 5 kept.
            if self.key.0 <= sleepers.earliest.load(Ordering::Relaxed) {
                sleepers
                    .earliest
                    .store(state.earliest_waker(), Ordering::Release);
            }
            (removed, successor)
        };
        // The executor's code, with no lock held: the new leader (if any) is woken, so that
        // it arms the slot's wake-up; the entry's waker is dropped.
        if let Some(waker) = successor {
            waker.wake();
        }
        drop(removed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_waker::counter;

    /// A registry of the test's own (the process's is shared with the other tests).
    fn registry() -> &'static Sleepers {
        Box::leak(Box::new(Sleepers::new()))
    }

    const AT: u64 = 5_000_000_000;

    /// A sweeper that is no entry.
    const NOBODY: Key = (0, u64::MAX);

    #[test]
    fn a_lone_sleep_is_isolated_and_takes_the_slot() {
        let sleepers = registry();
        let (mut entry, plan) = sleepers.register(AT, None);
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
        let (mut first, plan) = sleepers.register(AT, None);
        assert_eq!(plan, Plan::Isolated);
        let (mut second, plan) = sleepers.register(AT + DENSE / 2, None);
        assert_eq!(plan, Plan::Own, "the first is due within DENSE");
        let (_third, plan) = sleepers.register(AT - DENSE / 4, None);
        assert_eq!(plan, Plan::Own, "the first is due within DENSE, after it");
        assert!(!first.try_spin(), "no longer isolated");
        assert!(!second.try_spin());
        assert!(!sleepers.has_spinner());
    }

    #[test]
    fn a_sleep_is_isolated_again_once_its_neighbours_left() {
        let sleepers = registry();
        let (mut first, _) = sleepers.register(AT, None);
        let (second, _) = sleepers.register(AT, None);
        assert!(!first.try_spin(), "same instant");
        drop(second);
        assert!(first.try_spin());
    }

    #[test]
    fn sleeps_dense_apart_are_isolated() {
        let sleepers = registry();
        let (_first, _) = sleepers.register(AT, None);
        let (mut second, plan) = sleepers.register(AT + DENSE, None);
        assert_eq!(plan, Plan::Isolated);
        let (_third, plan) = sleepers.register(AT - DENSE, None);
        assert_eq!(plan, Plan::Isolated);
        assert!(second.try_spin(), "isolated");
    }

    #[test]
    fn at_most_one_spinner() {
        let sleepers = registry();
        // Far apart, so each is isolated: the slot alone keeps the second from spinning.
        let (mut first, _) = sleepers.register(AT, None);
        let (mut second, _) = sleepers.register(AT + 10 * DENSE, None);
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
        let (_thread, _) = sleepers.register(AT - 5, None);
        let (_e, _) = sleepers.register(AT, Some(&early_waker));
        let (_l, _) = sleepers.register(AT + 10, Some(&late_waker));
        sleepers.sweep(AT - 1, NOBODY);
        assert_eq!(early.0.load(Ordering::SeqCst), 0, "not due yet");
        sleepers.sweep(AT, NOBODY);
        assert_eq!(early.0.load(Ordering::SeqCst), 1, "due");
        assert_eq!(late.0.load(Ordering::SeqCst), 0, "not due yet");
        sleepers.sweep(AT + 5, NOBODY);
        assert_eq!(early.0.load(Ordering::SeqCst), 1, "woken once");
        sleepers.sweep(AT + 10, NOBODY);
        assert_eq!(late.0.load(Ordering::SeqCst), 1);
        assert_eq!(sleepers.earliest_bound(), u64::MAX);
    }

    #[test]
    fn a_dropped_entry_leaves_and_is_never_woken() {
        let sleepers = registry();
        let (count, waker) = counter();
        let (entry, _) = sleepers.register(AT, Some(&waker));
        assert_eq!(sleepers.registered(), 1);
        drop(entry);
        assert_eq!(sleepers.registered(), 0);
        assert_eq!(sleepers.earliest_bound(), u64::MAX, "bound reset");
        sleepers.sweep(AT + 1, NOBODY);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "left before its instant");
    }

    #[test]
    fn set_waker_replaces_the_woken_task() {
        let sleepers = registry();
        let (old, old_waker) = counter();
        let (new, new_waker) = counter();
        let (mut entry, _) = sleepers.register(AT, Some(&old_waker));
        entry.set_waker(&new_waker);
        sleepers.sweep(AT, NOBODY);
        assert_eq!(old.0.load(Ordering::SeqCst), 0);
        assert_eq!(new.0.load(Ordering::SeqCst), 1);
        assert_eq!(entry.due(), AT);
    }

    #[test]
    fn slots_end_on_the_grid_never_before_the_instant() {
        assert_eq!(slot_of(AT + 1), AT + BATCH);
        assert_eq!(slot_of(AT + BATCH - 1), AT + BATCH);
        assert_eq!(slot_of(AT), AT, "on the grid already");
        assert_eq!(slot_of(u64::MAX - 1), u64::MAX, "saturates");
    }

    #[test]
    fn the_first_task_of_a_slot_leads_the_others_follow() {
        let sleepers = registry();
        let (_, waker) = counter();
        let (_lone, plan) = sleepers.register(AT + 1, Some(&waker));
        assert_eq!(plan, Plan::Isolated, "alone");
        let (leader, plan) = sleepers.register(AT + 2, Some(&waker));
        assert_eq!(plan, Plan::Leader(AT + BATCH));
        let (mut follower, plan) = sleepers.register(AT + 3, Some(&waker));
        assert_eq!(plan, Plan::Follower(AT + BATCH + BACKSTOP));
        let (_next, plan) = sleepers.register(AT + BATCH + 1, Some(&waker));
        assert_eq!(plan, Plan::Leader(AT + 2 * BATCH), "a slot of its own");
        assert!(leader.leader);
        assert!(!follower.leads());
    }

    #[test]
    fn a_leader_leaving_early_hands_the_lead_to_a_follower_and_wakes_it() {
        let sleepers = registry();
        let (_, other) = counter();
        let (count, waker) = counter();
        let (_first, _) = sleepers.register(AT + 1, None);
        let (leader, plan) = sleepers.register(AT + 2, Some(&other));
        assert!(matches!(plan, Plan::Leader(_)));
        let (mut follower, plan) = sleepers.register(AT + 3, Some(&waker));
        assert!(matches!(plan, Plan::Follower(_)));
        drop(leader);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken to arm the slot");
        assert!(follower.leads());
        drop(follower);
        assert!(
            sleepers.state.lock().leaders.is_empty(),
            "no lead is left behind"
        );
    }

    #[test]
    fn a_leader_sweeps_its_slot_when_it_returns() {
        let sleepers = registry();
        let (own, own_waker) = counter();
        let (first, first_waker) = counter();
        let (second, second_waker) = counter();
        let (later, later_waker) = counter();
        let (_first, _) = sleepers.register(AT + 1, None);
        let (leader, plan) = sleepers.register(AT + 2, Some(&own_waker));
        assert!(matches!(plan, Plan::Leader(_)));
        let (_f1, _) = sleepers.register(AT + 3, Some(&first_waker));
        let (_f2, _) = sleepers.register(AT + BATCH, Some(&second_waker));
        let (_l, _) = sleepers.register(AT + BATCH + 1, Some(&later_waker));
        // Woken at its slot's end, the leader returns and sweeps.
        leader.sweep(AT + BATCH);
        drop(leader);
        assert_eq!(
            own.0.load(Ordering::SeqCst),
            0,
            "not woken by its own sweep"
        );
        assert_eq!(first.0.load(Ordering::SeqCst), 1);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            later.0.load(Ordering::SeqCst),
            0,
            "the next slot's, not due"
        );
        let leaders = sleepers.state.lock().leaders.clone();
        assert_eq!(
            leaders.keys().copied().collect::<Vec<_>>(),
            vec![AT + 2 * BATCH],
            "the swept slot's lead ended with its leader"
        );
    }

    #[test]
    fn a_thread_among_tasks_neither_leads_nor_is_swept() {
        let sleepers = registry();
        let (_, waker) = counter();
        let (_task, _) = sleepers.register(AT + 2, Some(&waker));
        let (_thread, plan) = sleepers.register(AT + 3, None);
        assert_eq!(plan, Plan::Own);
        assert!(sleepers.state.lock().leaders.len() <= 1);
    }

    #[test]
    fn a_thread_entry_gives_the_bound_nothing() {
        let sleepers = registry();
        let (_thread, _) = sleepers.register(AT, None);
        assert_eq!(sleepers.earliest_bound(), u64::MAX);
    }
}
