//! The leak checker on the main thread, where no other test can run meanwhile: threads and
//! tokio tasks ctxkit did not start are reported with certainty, the timer thread never is, and
//! `verify_none` (Go's `VerifyTestMain`) ends the binary. A test binary of its own, with
//! `harness = false`: its `main` runs the checks one after another.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::Duration;

use ctxkit::leak::{self, Guard, Leak, Options};

fn quick() -> Options {
    Options::new().retry_for(Duration::from_millis(50))
}

fn a_plain_thread_is_reported_with_its_name() {
    let guard = Guard::with_options(quick());
    let (stop, stopped) = mpsc::channel::<()>();
    let (running, is_running) = mpsc::channel();
    let plain = std::thread::Builder::new()
        .name("plain-producer".into())
        .spawn(move || {
            running.send(()).unwrap(); // it has named itself by now
            let _ = stopped.recv();
        })
        .unwrap();
    is_running.recv().unwrap();
    let report = guard.report();
    assert_eq!(report.leaks().len(), 1, "{report}");
    let Leak::Thread { name, age, .. } = &report.leaks()[0] else {
        panic!("{report}")
    };
    assert_eq!(name, "plain-producer");
    assert!(age.is_some(), "{report}");
    assert!(
        report.to_string().contains("thread \"plain-producer\""),
        "{report}"
    );
    guard.disarm();
    drop(stop);
    plain.join().unwrap();
    // Joined: nothing left.
    leak::check_with(quick(), || {});
}

#[cfg(feature = "tokio")]
fn an_untracked_tokio_task_is_counted_on_its_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let report = runtime.block_on(async {
        let guard = Guard::with_options(quick());
        let task = tokio::spawn(async move {
            let _ = stopped.await;
        });
        let report = guard.report();
        guard.disarm();
        let _ = stop.send(());
        task.await.unwrap();
        report
    });
    assert_eq!(report.leaks(), [Leak::Tasks { count: 1 }], "{report}");
    // The same with check_async: a task that ends before the scope's end is no leak.
    runtime.block_on(leak::check_async_with(quick(), async {
        tokio::spawn(async {}).await.unwrap();
    }));
}

#[cfg(feature = "tokio")]
fn the_timer_thread_is_never_reported() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    leak::check_with(quick(), || {
        // An async sleep on a context starts the timer thread (once per process).
        runtime.block_on(async {
            let ctx = ctxkit::Context::background();
            ctx.sleep(Duration::from_millis(1)).await.unwrap();
        });
    });
}

fn verify_none_catches_what_runs_at_the_end() {
    let (stop, stopped) = mpsc::channel::<()>();
    let (running, is_running) = mpsc::channel();
    let plain = std::thread::Builder::new()
        .name("left-running".into())
        .spawn(move || {
            running.send(()).unwrap();
            let _ = stopped.recv();
        })
        .unwrap();
    is_running.recv().unwrap();
    // The expected panic's message is checked below; keep it off the output.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let failed = catch_unwind(AssertUnwindSafe(|| leak::verify_none_with(quick())));
    std::panic::set_hook(hook);
    let payload = failed.expect_err("a thread still runs");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("thread \"left-running\""), "{message}");
    drop(stop);
    plain.join().unwrap();
}

/// Run first, before any scope has turned tracking on, so the thread's OS id is not on record:
/// the thread is still reported once, as ctxkit's, not a second time as an unknown OS thread.
fn a_tracked_thread_started_before_any_check_is_reported_once() {
    let (stop, stopped) = mpsc::channel::<()>();
    let (running, is_running) = mpsc::channel();
    let tracked = ctxkit::tracked::thread("tracked-early", move || {
        running.send(()).unwrap();
        let _ = stopped.recv();
    })
    .unwrap();
    is_running.recv().unwrap();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let failed = catch_unwind(AssertUnwindSafe(|| leak::verify_none_with(quick())));
    std::panic::set_hook(hook);
    let message = failed
        .expect_err("a thread still runs")
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("1 leak(s)"), "{message}");
    assert!(
        message.contains("thread \"tracked-early\", started through ctxkit"),
        "{message}"
    );
    assert!(!message.contains("leak 2"), "reported twice: {message}");
    drop(stop);
    tracked.join().unwrap();
}

/// Whether an OS thread of this process is named `name` (as the kernel keeps it: 15 bytes).
fn os_thread_named(name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return true; // not Linux: nothing to look at
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim_end() == name)
    })
}

/// The after-function pool: a function that still runs at the end is a leak; the pool's own
/// threads (its dispatcher, and a worker that idles a few seconds before it exits) never are.
fn an_after_function_that_runs_is_reported_and_the_idle_pool_is_not() {
    let (gate, open) = ctxkit::Context::background().with_cancel().into_parts();
    let (started, has_started) = mpsc::channel();
    let (finished, has_finished) = mpsc::channel();
    let ctx = ctxkit::Context::background().with_cancel();
    let _after = ctx.after_func(move || {
        started.send(()).unwrap();
        gate.wait();
        finished.send(()).unwrap();
    });
    ctx.cancel();
    has_started.recv().unwrap();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let failed = catch_unwind(AssertUnwindSafe(|| leak::verify_none_with(quick())));
    std::panic::set_hook(hook);
    let message = failed
        .expect_err("the after-function still runs")
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("1 leak(s)"), "{message}");
    assert!(
        message.contains("thread \"ctxkit-after-func\", started through ctxkit"),
        "{message}"
    );
    assert!(message.contains("waiting on: a context"), "{message}");
    open.cancel();
    has_finished.recv().unwrap();
    // Its worker idles now (for seconds): no leak.
    leak::verify_none_with(quick());
    assert!(
        os_thread_named("ctxkit-after-fu"),
        "the idle worker is still there"
    );
}

/// The checks that need tokio (none without the feature).
fn tokio_checks() -> Vec<(&'static str, fn())> {
    #[cfg(feature = "tokio")]
    return vec![
        (
            "an_untracked_tokio_task_is_counted_on_its_runtime",
            an_untracked_tokio_task_is_counted_on_its_runtime,
        ),
        (
            "the_timer_thread_is_never_reported",
            the_timer_thread_is_never_reported,
        ),
    ];
    #[cfg(not(feature = "tokio"))]
    Vec::new()
}

fn main() {
    let mut checks: Vec<(&'static str, fn())> = vec![
        (
            "a_tracked_thread_started_before_any_check_is_reported_once",
            a_tracked_thread_started_before_any_check_is_reported_once,
        ),
        (
            "a_plain_thread_is_reported_with_its_name",
            a_plain_thread_is_reported_with_its_name,
        ),
        (
            "verify_none_catches_what_runs_at_the_end",
            verify_none_catches_what_runs_at_the_end,
        ),
        (
            "an_after_function_that_runs_is_reported_and_the_idle_pool_is_not",
            an_after_function_that_runs_is_reported_and_the_idle_pool_is_not,
        ),
    ];
    checks.extend(tokio_checks());
    for (name, check) in checks {
        check();
        println!("test {name} ... ok");
    }
    // Go's VerifyTestMain: nothing but this thread (and ctxkit's timer) runs at the end.
    leak::verify_none();
    println!("test verify_none ... ok");
}
