//! "Pay for what you use" (issue 2, §4): creating, reading and blocking on a context with a
//! deadline arms no timer and starts no thread; the first async waiter arms the one
//! `ctxkit-timer` thread, and canceling or firing disarms it. One test, in its own process,
//! since the armed count and the thread are process-wide.

use std::pin::Pin;
use std::task::Context as TaskContext;
use std::time::{Duration, Instant};

use ctxkit::context::__armed_timers as armed;
use ctxkit::Context;

const PATIENCE: Duration = Duration::from_secs(10);

/// Whether a thread named `name` runs in this process (Linux only; `None` elsewhere).
fn thread_running(name: &str) -> Option<bool> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim_end() == name)
    }))
}

fn poll_once(done: &mut ctxkit::Done) {
    let waker = futures::task::noop_waker();
    let poll = std::future::Future::poll(Pin::new(done), &mut TaskContext::from_waker(&waker));
    assert!(poll.is_pending());
}

#[test]
fn deadlines_arm_the_timer_only_for_async_waiters_and_after_functions() {
    assert_eq!(armed(), 0);
    assert_ne!(
        thread_running("ctxkit-timer"),
        Some(true),
        "timer thread started too early"
    );

    // Creating, reading, child creation and blocking waits arm nothing.
    let (ctx, cancel) = Context::background()
        .with_timeout(Duration::from_secs(3600))
        .into_parts();
    let child = ctx.with_timeout(Duration::from_secs(7200));
    assert!(!ctx.is_done());
    assert_eq!(ctx.err(), None);
    assert!(ctx.deadline().is_some());
    assert_eq!(child.wait_timeout(Duration::from_millis(5)), None);
    let short = Context::background().with_timeout(Duration::from_millis(5));
    assert!(short.wait_timeout(PATIENCE).is_some());
    assert_eq!(armed(), 0, "a timer was armed without an async waiter");
    assert_ne!(
        thread_running("ctxkit-timer"),
        Some(true),
        "timer thread started without need"
    );

    // The first async waiter arms the owner of the deadline (the child inherits the parent's).
    let mut done = child.done();
    poll_once(&mut done);
    assert_eq!(armed(), 1, "{child:?}");
    // The new thread names itself as it starts: give it time.
    let start = Instant::now();
    while thread_running("ctxkit-timer") == Some(false) {
        assert!(
            start.elapsed() < PATIENCE,
            "no ctxkit-timer thread after arming"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // A second waiter on the same deadline arms nothing more.
    let mut done2 = ctx.done();
    poll_once(&mut done2);
    assert_eq!(armed(), 1);
    drop((done, done2));
    // Canceling disarms.
    cancel.cancel();
    assert_eq!(armed(), 0, "cancel left the deadline armed");

    // An after-function arms too; the deadline firing disarms.
    let ctx = Context::background().with_timeout(Duration::from_millis(20));
    let (tx, rx) = std::sync::mpsc::channel();
    let _after = ctx.after_func(move || tx.send(()).unwrap());
    assert!(armed() <= 1);
    rx.recv_timeout(PATIENCE)
        .expect("the deadline never ran the after-function");
    let start = Instant::now();
    while armed() != 0 {
        assert!(
            start.elapsed() < PATIENCE,
            "a fired deadline stayed armed: {}",
            armed()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
