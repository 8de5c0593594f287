//! loom models of the registry of precise sleeps (`sleepers.rs`): a slot's member leaving
//! while the slot's timer entry fires (invariants 3, 4 and 6: the other members are woken
//! once, the record and its entry go), the last member leaving while a new one joins the same
//! slot and the entry fires (no wake-up lost: the new member's slot always has an armed entry
//! or has woken it), and a sweep racing a due task's departure and a new registration
//! (invariants 4, 5 and 6).
//!
//! Run: `RUSTFLAGS="--cfg loom -C debug_assertions" LOOM_MAX_PREEMPTIONS=3
//! CARGO_TARGET_DIR=target/loom cargo test -p ctxkit --lib --release loom`
//!
//! Each model uses a registry of its own (built inside the model, so its lock and its atomic
//! are loom's), wakers that count their wake-ups, and the model's own timer, which starts no
//! thread: `timer::expire_all_for_model` fires every armed entry, as the timer thread does
//! once their instants have passed.

use std::sync::atomic::Ordering as StdOrdering;

use loom::thread;

use crate::rate::sleepers::{Plan, Sleepers, BATCH};
use crate::test_waker::counter;
use crate::timer;

fn registry() -> &'static Sleepers {
    Box::leak(Box::new(Sleepers::new()))
}

/// An instant on the slots' grid.
const AT: u64 = 5_000 * BATCH;

/// A member of a slot leaves (its context was canceled) while the slot's timer entry fires.
/// The other member is woken exactly once, whatever the order; the leaving one at most once;
/// and the slot's record is gone with no entry left armed.
#[test]
fn loom_member_leaves_vs_slot_fires() {
    loom::model(|| {
        let sleepers = registry();
        let (leaving_count, leaving_waker) = counter();
        let (staying_count, staying_waker) = counter();
        // A sleep before them, so that they are among others (not isolated).
        let (_thread, _) = sleepers.register(AT + 1, None);
        let (leaving, plan) = sleepers.register(AT + 2, Some(&leaving_waker));
        assert_eq!(plan, Plan::Member(AT + BATCH));
        let (staying, plan) = sleepers.register(AT + 3, Some(&staying_waker));
        assert_eq!(plan, Plan::Member(AT + BATCH));
        assert_eq!(timer::armed_count(), 1, "one entry for the slot");

        let left = thread::spawn(move || drop(leaving));
        timer::expire_all_for_model();
        left.join().unwrap();

        assert_eq!(staying_count.0.load(StdOrdering::SeqCst), 1, "woken once");
        assert!(leaving_count.0.load(StdOrdering::SeqCst) <= 1);
        assert_eq!(sleepers.armed_slots(), 0, "the slot's record is gone");
        assert_eq!(timer::armed_count(), 0, "and its entry");
        drop(staying);
        assert_eq!(sleepers.registered(), 1, "the thread's entry is left");
        assert_eq!(sleepers.earliest_bound(), u64::MAX);
    });
}

/// The only member of a slot leaves (so its record disarms the slot's entry) while a new task
/// joins the same slot (maybe arming a new entry) and the timer fires what is armed. In every
/// order, the new member is woken exactly once once the timer has fired whatever is armed:
/// it is never left in a slot with no entry.
#[test]
fn loom_last_member_leaves_vs_join_vs_fire() {
    loom::model(|| {
        let sleepers = registry();
        let (_, leaving_waker) = counter();
        let (joining_count, joining_waker) = counter();
        let (_thread, _) = sleepers.register(AT + 1, None);
        let (leaving, plan) = sleepers.register(AT + 2, Some(&leaving_waker));
        assert_eq!(plan, Plan::Member(AT + BATCH));

        let left = thread::spawn(move || drop(leaving));
        let joined = thread::spawn(move || {
            let (entry, plan) = sleepers.register(AT + 3, Some(&joining_waker));
            assert_eq!(plan, Plan::Member(AT + BATCH), "the thread is near");
            entry
        });
        timer::expire_all_for_model();
        left.join().unwrap();
        let joining = joined.join().unwrap();

        let woken = joining_count.0.load(StdOrdering::SeqCst);
        assert!(woken <= 1, "woken at most once");
        if woken == 0 {
            assert_eq!(
                sleepers.armed_slots(),
                1,
                "not woken: its slot has a record"
            );
        }
        // The timer thread fires whatever is still armed.
        timer::expire_all_for_model();
        assert_eq!(
            joining_count.0.load(StdOrdering::SeqCst),
            1,
            "the new member was woken exactly once"
        );
        assert_eq!(sleepers.armed_slots(), 0);
        assert_eq!(timer::armed_count(), 0);
        drop(joining);
    });
}

/// A spinner sweeps while a due task (a member of a slot) leaves and a new task registers in
/// that slot. The due task is woken at most once, the new one (not due) not by the sweep; the
/// slot keeps a record while the new one is in it, and the sweep's lower bound still covers
/// every waker left in the registry. The slot's entry then wakes the new one.
#[test]
fn loom_sweep_vs_leave_vs_register() {
    loom::model(|| {
        let sleepers = registry();
        let (_, spinner_waker) = counter();
        let (due_count, due_waker) = counter();
        let (later_count, later_waker) = counter();
        let (spinner, _) = sleepers.register(AT + 10, Some(&spinner_waker));
        let (due, plan) = sleepers.register(AT + 5, Some(&due_waker));
        assert_eq!(plan, Plan::Member(AT + BATCH));

        let leaving = thread::spawn(move || drop(due));
        let registering = thread::spawn(move || {
            let (entry, plan) = sleepers.register(AT + 20, Some(&later_waker));
            assert_eq!(plan, Plan::Member(AT + BATCH), "the spinner is near");
            entry
        });
        spinner.sweep(AT + 10);
        leaving.join().unwrap();
        let later = registering.join().unwrap();

        assert!(
            due_count.0.load(StdOrdering::SeqCst) <= 1,
            "woken at most once"
        );
        assert_eq!(later_count.0.load(StdOrdering::SeqCst), 0, "not due");
        assert_eq!(sleepers.armed_slots(), 1, "the later task's slot");
        assert!(
            sleepers.earliest_bound() <= AT + 20,
            "the bound covers the later task"
        );
        timer::expire_all_for_model();
        assert_eq!(later_count.0.load(StdOrdering::SeqCst), 1, "the slot fired");
        drop(later);
        drop(spinner);
        assert_eq!(sleepers.registered(), 0, "everybody left");
        assert_eq!(sleepers.earliest_bound(), u64::MAX);
        assert_eq!(timer::armed_count(), 0);
    });
}
