//! The registry of precise sleeps (`sleep.rs`): who sleeps until when, so that at most one of
//! them covers its last margin actively, and only while no other sleep is due near it.
//!
//! A precise sleep (a limiter wait, a ticker tick) sleeps until a margin before its instant and
//! covers the margin actively (a thread spins, a task yields to its executor), because an OS or
//! timer-thread wake-up comes 50–200 µs late. Alone, that costs one margin of CPU per sleep.
//! With many sleeps pending and their instants close together (20,000 waits on a limiter at
//! 20,000/s), every one of them in its margin spun at once: both cores busy for the whole second.
//!
//! # The rule
//!
//! Every precise sleep registers here (its instant, and for a task its waker) when it starts and
//! leaves when it ends, however it ends ([`Entry`] leaves on drop). A sleep may cover its margin
//! actively (*spin*) only if it is **isolated**, no other registered sleep being due within
//! [`DENSE`] of its instant, and if the one **spinner** slot is free. Otherwise it sleeps on,
//! to its instant itself (the timer thread for a task, a timed park for a thread), spending no
//! CPU, and returns as late as that wake-up: tens of microseconds (`sleep.rs` has the figures),
//! against Go's and tokio's millisecond. So:
//!
//! * one sleep alone (the usual limiter loop, a ticker) keeps its few-microsecond precision;
//! * many sleeps due close together never spin; each wakes on its own wake-up, so the CPU goes
//!   to waking them, not to covering margins;
//! * at most one sleep spins at any time, for at most one margin per [`DENSE`] window of
//!   instants.
//!
//! While it spins, a sleep also **sweeps**: it wakes every registered task whose instant has
//! passed (a task registered during the spin, due before the spinner) at once, instead of at its
//! own, later wake-up. A sweep only ever makes a wake-up earlier, never takes one's place.
//!
//! # Invariants
//!
//! 1. Every registered sleep has exactly one entry in `entries`, keyed by (instant, id) with an
//!    id unique in the process, from [`Entry::register`] until its [`Entry`] is dropped.
//! 2. `spinner` names at most one entry, a registered one: it is set only by
//!    [`Entry::try_spin`] (when free and the entry is isolated) and cleared when that entry
//!    leaves.
//! 3. Every sleep keeps a wake-up of its own for its instant (its timer alarm, a timed park, or
//!    its own spin), so nobody depends on the registry to be woken: a spinner descheduled by the
//!    OS, dropped or canceled delays nobody else beyond their own wake-up, and no entry's
//!    departure has to hand anything over.
//! 4. A sweep wakes a waker only once its entry's instant has passed, and takes it out of the
//!    entry, so it wakes it at most once (the task puts it back if it is polled and still
//!    early, which it cannot be).
//! 5. `earliest` is at most the instant of every entry holding a waker (a lower bound, so the
//!    spinner's lock-free check never misses one), `u64::MAX` when there is none.
//!
//! # Lock order
//!
//! The registry's lock is a leaf: taken with no other ctxkit lock held (sleeps arm their timer
//! alarms and wait on their contexts outside it), and nothing is taken under it. Wakers are
//! woken, and replaced ones dropped, after it is released (the executor's code runs there).
//!
//! Who touches what: `entries` and `spinner` only under the lock, by the sleeps themselves
//! (register, keep the waker current, take the slot, leave) and by sweeps; `earliest` is
//! written under the lock and read without it by spinners.

use std::collections::BTreeMap;
use std::task::Waker;

use crate::sync::{self, AtomicU64, Mutex, Ordering};

/// How close two sleeps' instants must be for neither to spin, in nanoseconds: with another
/// sleep due within this of its own, a sleep waits for its own wake-up. At 1 ms, a single
/// 1 kHz schedule (a limiter loop, a ticker) still spins for each instant; anything denser
/// spins for none of them, and spinning costs at most one margin per millisecond.
pub(crate) const DENSE: u64 = 1_000_000;

/// The grid that the wake-ups of tasks due close together are aligned to, in nanoseconds
/// ([`wake_at`]).
pub(crate) const BATCH: u64 = 100_000;

/// The instant a task that does not spin asks the timer thread to wake it at, given how far
/// the nearest other sleep's instant is: its own, or, when another sleep is due within
/// [`BATCH`] of it, its own rounded up to the next multiple of [`BATCH`]. Sleeps due close
/// together then share one timer-thread pass and, mostly, one executor wake-up, instead of
/// one each (at 20,000 sleeps a second, the timer thread's and the executor's wake-ups were
/// most of the CPU); each returns at most [`BATCH`] later for it, never earlier.
pub(crate) fn wake_at(due: u64, nearest: u64) -> u64 {
    if nearest >= BATCH {
        return due;
    }
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
    /// Invariant 1. The value is the waker of a task not swept yet; `None` for a thread, or
    /// for a task once swept.
    entries: BTreeMap<Key, Option<Waker>>,
    /// The next entry's id.
    next_id: u64,
    /// Invariant 2.
    spinner: Option<Key>,
}

sync::lazy_static! {
    static ref SLEEPERS: Sleepers = Sleepers {
        state: Mutex::new(State {
            entries: BTreeMap::new(),
            next_id: 0,
            spinner: None,
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
            }),
            earliest: AtomicU64::new(u64::MAX),
        }
    }

    /// Registers a sleep until `due` (encoded by `time`); a task gives its waker, for sweeps.
    /// Also says how far the nearest other sleep's instant is (`u64::MAX`: none): the sleep is
    /// isolated if that is at least [`DENSE`].
    pub(crate) fn register(&'static self, due: u64, waker: Option<&Waker>) -> (Entry, u64) {
        let mut state = self.state.lock();
        let key = (due, state.next_id);
        state.next_id += 1;
        state.entries.insert(key, waker.cloned());
        if waker.is_some() && due < self.earliest.load(Ordering::Relaxed) {
            self.earliest.store(due, Ordering::Release);
        }
        let nearest = state.nearest(key);
        drop(state);
        let entry = Entry {
            sleepers: self,
            key,
            waker: waker.cloned(),
            spinning: false,
        };
        (entry, nearest)
    }

    /// Wakes every registered task whose instant is at or before `now` (once each, invariant
    /// 4). Called by the spinner on each round: one atomic load unless some task is due.
    pub(crate) fn sweep(&self, now: u64) {
        if self.earliest.load(Ordering::Acquire) > now {
            return;
        }
        let mut due: Vec<Waker> = Vec::new();
        {
            let mut state = self.state.lock();
            for (_, slot) in state.entries.range_mut(..(now.saturating_add(1), 0)) {
                if let Some(waker) = slot.take() {
                    due.push(waker);
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

    /// Whether some sleep holds the spinner slot (tests).
    #[cfg(test)]
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
            .find(|(_, waker)| waker.is_some())
            .map_or(u64::MAX, |(&(at, _), _)| at)
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
    #[cfg(test)]
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
                Some(slot) => slot.replace(waker.clone()),
                None => None,
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

    /// Whether this sleep holds the spinner slot (tests).
    #[cfg(test)]
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
            // Keeps the bound tight (so spinners do not lock for nothing), invariant 5 kept.
            if self.key.0 <= sleepers.earliest.load(Ordering::Relaxed) {
                sleepers
                    .earliest
                    .store(state.earliest_waker(), Ordering::Release);
            }
            removed
        };
        // The waker is the executor's code: dropped with no lock held.
        drop(removed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;
    use std::task::Wake;

    use crate::sync::AtomicUsize;

    use super::*;

    /// Counts its wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        (count, waker)
    }

    /// A registry of the test's own (the process's is shared with the other tests).
    fn registry() -> &'static Sleepers {
        Box::leak(Box::new(Sleepers::new()))
    }

    const AT: u64 = 5_000_000_000;

    #[test]
    fn a_lone_sleep_is_isolated_and_takes_the_slot() {
        let sleepers = registry();
        let (mut entry, nearest) = sleepers.register(AT, None);
        assert_eq!(nearest, u64::MAX);
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
        let (mut first, nearest) = sleepers.register(AT, None);
        assert_eq!(nearest, u64::MAX);
        let (mut second, nearest) = sleepers.register(AT + DENSE / 2, None);
        assert_eq!(nearest, DENSE / 2, "the first is due within DENSE");
        let (_third, nearest) = sleepers.register(AT - DENSE / 4, None);
        assert_eq!(
            nearest,
            DENSE / 4,
            "the first is due within DENSE, after it"
        );
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
        let (mut second, nearest) = sleepers.register(AT + DENSE, None);
        assert_eq!(nearest, DENSE);
        let (_third, nearest) = sleepers.register(AT - DENSE, None);
        assert_eq!(nearest, DENSE);
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
        sleepers.sweep(AT - 1);
        assert_eq!(early.0.load(Ordering::SeqCst), 0, "not due yet");
        sleepers.sweep(AT);
        assert_eq!(early.0.load(Ordering::SeqCst), 1, "due");
        assert_eq!(late.0.load(Ordering::SeqCst), 0, "not due yet");
        sleepers.sweep(AT + 5);
        assert_eq!(early.0.load(Ordering::SeqCst), 1, "woken once");
        sleepers.sweep(AT + 10);
        assert_eq!(late.0.load(Ordering::SeqCst), 1);
        assert_eq!(sleepers.earliest.load(Ordering::SeqCst), u64::MAX);
    }

    #[test]
    fn a_dropped_entry_leaves_and_is_never_woken() {
        let sleepers = registry();
        let (count, waker) = counter();
        let (entry, _) = sleepers.register(AT, Some(&waker));
        assert_eq!(sleepers.registered(), 1);
        drop(entry);
        assert_eq!(sleepers.registered(), 0);
        assert_eq!(
            sleepers.earliest.load(Ordering::SeqCst),
            u64::MAX,
            "bound reset"
        );
        sleepers.sweep(AT + 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "left before its instant");
    }

    #[test]
    fn set_waker_replaces_the_woken_task() {
        let sleepers = registry();
        let (old, old_waker) = counter();
        let (new, new_waker) = counter();
        let (mut entry, _) = sleepers.register(AT, Some(&old_waker));
        entry.set_waker(&new_waker);
        sleepers.sweep(AT);
        assert_eq!(old.0.load(Ordering::SeqCst), 0);
        assert_eq!(new.0.load(Ordering::SeqCst), 1);
        assert_eq!(entry.due(), AT);
    }

    #[test]
    fn wake_at_aligns_only_sleeps_due_close_together() {
        assert_eq!(wake_at(AT + 1, u64::MAX), AT + 1, "alone: its own instant");
        assert_eq!(wake_at(AT + 1, BATCH), AT + 1, "nearest a batch away");
        assert_eq!(
            wake_at(AT + 1, BATCH - 1),
            AT + BATCH,
            "rounded up, never earlier"
        );
        assert_eq!(wake_at(AT, 0), AT, "on the grid already");
        assert_eq!(wake_at(u64::MAX - 1, 0), u64::MAX, "saturates");
    }

    #[test]
    fn a_thread_entry_gives_the_bound_nothing() {
        let sleepers = registry();
        let (_thread, _) = sleepers.register(AT, None);
        assert_eq!(sleepers.earliest.load(Ordering::SeqCst), u64::MAX);
    }
}
