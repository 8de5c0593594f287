//! loom models of the registry of precise sleeps (`sleepers.rs`): a leader handing its slot
//! over while the follower is being polled (invariants 3 and 6: the hand-over's wake-up is
//! never lost), and a sweep racing a due task's departure and a new registration
//! (invariants 4 and 5).
//!
//! Run: `RUSTFLAGS="--cfg loom -C debug_assertions" LOOM_MAX_PREEMPTIONS=3
//! CARGO_TARGET_DIR=target/loom cargo test -p ctxkit --lib --release loom`
//!
//! Each model uses a registry of its own (built inside the model, so its lock and its atomic
//! are loom's), and wakers that count their wake-ups.

use std::sync::atomic::Ordering as StdOrdering;

use loom::thread;

use crate::rate::sleepers::{Plan, Sleepers, BATCH};
use crate::test_waker::counter;

fn registry() -> &'static Sleepers {
    Box::leak(Box::new(Sleepers::new()))
}

const AT: u64 = 5_000_000_000;

/// A leader leaves (its context was canceled) while its follower is polled (it keeps its
/// waker current, then asks whether it leads). Whatever the order, the follower either sees
/// that it leads, or the hand-over woke the waker it left in the registry, so it is polled
/// again and sees it then: the slot never goes without a leader's wake-up.
#[test]
fn loom_hand_over_vs_follower_poll() {
    loom::model(|| {
        let sleepers = registry();
        let (_, leader_waker) = counter();
        let (first_count, first_waker) = counter();
        let (second_count, second_waker) = counter();
        // A sleep before them, so that they are among others (not isolated).
        let (_thread, _) = sleepers.register(AT + 1, None);
        let (leader, plan) = sleepers.register(AT + 2, Some(&leader_waker));
        assert_eq!(plan, Plan::Leader(AT + BATCH));
        let (mut follower, plan) = sleepers.register(AT + 3, Some(&first_waker));
        assert!(matches!(plan, Plan::Follower(_)));

        let leaving = thread::spawn(move || drop(leader));
        // The follower's poll, on a task whose waker changed since it registered.
        follower.set_waker(&second_waker);
        let saw_lead = follower.leads();
        leaving.join().unwrap();

        assert!(follower.leads(), "the lead was handed over");
        let woken =
            first_count.0.load(StdOrdering::SeqCst) + second_count.0.load(StdOrdering::SeqCst);
        assert!(woken <= 1, "handed over once");
        assert!(
            saw_lead || second_count.0.load(StdOrdering::SeqCst) == 1,
            "the follower missed the lead and its current waker was not woken"
        );
    });
}

/// A spinner sweeps while a due task (the leader of a slot) leaves and a new task registers in
/// that slot. The due task is woken at most once, the new one (not due) by nothing but a
/// hand-over, the slot keeps a leader, and the sweep's lower bound still covers every waker
/// left in the registry.
#[test]
fn loom_sweep_vs_leave_vs_register() {
    loom::model(|| {
        let sleepers = registry();
        let (_, spinner_waker) = counter();
        let (due_count, due_waker) = counter();
        let (later_count, later_waker) = counter();
        let (spinner, _) = sleepers.register(AT + 10, Some(&spinner_waker));
        let (due, _) = sleepers.register(AT + 5, Some(&due_waker));

        let leaving = thread::spawn(move || drop(due));
        let registering = thread::spawn(move || {
            let (entry, _) = sleepers.register(AT + 20, Some(&later_waker));
            entry
        });
        spinner.sweep(AT + 10);
        leaving.join().unwrap();
        let mut later = registering.join().unwrap();

        assert!(
            due_count.0.load(StdOrdering::SeqCst) <= 1,
            "woken at most once"
        );
        // The due task led the slot that the later one joins: the later one leads it in the
        // end, from the start (it came after the due one left) or by the hand-over, whose
        // wake-up is then its only one (it is not due, so no sweep woke it).
        assert!(later.leads(), "the slot has a leader");
        assert!(
            later_count.0.load(StdOrdering::SeqCst) <= 1,
            "not due: woken by nothing but the hand-over"
        );
        assert!(
            sleepers.earliest_bound() <= AT + 20,
            "the bound covers the later task"
        );
        drop(later);
        drop(spinner);
        assert_eq!(sleepers.registered(), 0, "everybody left");
        assert_eq!(sleepers.earliest_bound(), u64::MAX);
    });
}
