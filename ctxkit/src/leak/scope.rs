//! A leak check's scope: what it remembers when it opens, what it looks at when it closes.
//!
//! # How work is attributed
//!
//! * Work started through ctxkit carries the scope tag of the code that started it
//!   (`spawn.rs`), inherited across threads and tasks; a scope opens a tag nested in the
//!   current one and makes it current (on its thread, or around each poll of its future). So
//!   the check finds exactly the units started inside it, however deep, and never a
//!   neighbour's: certain.
//! * Threads ctxkit did not start are seen only as the OS lists them: those that started while
//!   the scope was open (not in its opening snapshot) and still run. Nothing says which test
//!   started them, so they are certain only when no other test can have run meanwhile: on the
//!   main thread, or with one test thread (`--test-threads=1`, `RUST_TEST_THREADS=1`), or for
//!   [`verify_none`](super::verify_none). Otherwise they are listed as uncertain, and do not
//!   fail the check.
//! * Tokio tasks ctxkit did not start are counted on the runtime current when the scope opens:
//!   those alive at the end beyond those alive at the opening. Certain when the runtime had no
//!   task at the opening (a `#[tokio::test]`'s own runtime); else uncertain.
//!
//! ctxkit's own process-wide threads (`ctxkit-timer`, and the after-function pool's workers and
//! dispatcher, idle or busy) are never reported. An after-function is reported instead, as a unit
//! of its own, from its hand-off (queued: "waiting on: a free ctxkit-after-func thread") until
//! it returns (running on a worker), under the tag current where `after_func` was called.

use std::collections::BTreeSet;
use std::panic::Location;
use std::time::{Duration, Instant};

use super::options::Options;
use super::os_threads;
use super::report::{Leak, Report};
use crate::spawn::{self, Kind, ScopeTag};

/// The longest pause between two looks.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// What a scope remembers from its opening.
#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) tag: ScopeTag,
    pub(crate) opened_at: &'static Location<'static>,
    pub(crate) options: Options,
    /// The OS's threads at the opening (`None`: the OS does not list them).
    threads_before: Option<BTreeSet<u64>>,
    /// The thread that opened the scope (never its own leak).
    opener: Option<u64>,
    /// The runtime current at the opening and its live tasks then.
    #[cfg(feature = "tokio")]
    runtime: Option<(tokio::runtime::Handle, usize)>,
    /// Whether every leak is certain (the end of a test binary).
    whole_process: bool,
}

impl Scope {
    /// Opens a scope nested in the current one (the caller makes its tag current).
    pub(crate) fn open(opened_at: &'static Location<'static>, options: Options) -> Scope {
        let tag = ScopeTag::nested();
        Scope {
            tag,
            opened_at,
            options,
            threads_before: os_threads::thread_ids(),
            opener: os_threads::current_thread_id(),
            #[cfg(feature = "tokio")]
            runtime: tokio::runtime::Handle::try_current().ok().map(|handle| {
                let alive = handle.metrics().num_alive_tasks();
                (handle, alive)
            }),
            whole_process: false,
        }
    }

    /// The scope of the whole process: everything that runs now but the caller's thread and
    /// ctxkit's timer is a leak, with certainty.
    pub(crate) fn whole_process(opened_at: &'static Location<'static>, options: Options) -> Scope {
        Scope {
            tag: ScopeTag::new(),
            opened_at,
            options,
            threads_before: Some(BTreeSet::new()),
            opener: os_threads::current_thread_id(),
            #[cfg(feature = "tokio")]
            runtime: None,
            whole_process: true,
        }
    }

    /// Looks once: the leaks it is sure of, and the uncertain ones.
    fn look(&self) -> (Vec<Leak>, Vec<Leak>) {
        let mut certain = Vec::new();
        let mut uncertain = Vec::new();
        // The after-functions still queued first, then the registry: a function leaves the
        // queue for the registry under the pool's lock (`blocking/`, invariant 1), so in this
        // order none is missed (one that moves meanwhile is seen twice, in a report only).
        let mut units = crate::blocking::queued_units();
        let (live, dormant) = spawn::live_and_dormant();
        units.extend(live);
        // Tracked units: by tag, certain. ctxkit's shared threads (the timer, the
        // after-function pool's workers and dispatcher) are nobody's work: never reported; what
        // a pool worker runs is a unit of its own.
        for unit in &units {
            if unit.name == spawn::TIMER_THREAD || unit.kind == Kind::Shared {
                continue;
            }
            let ours = self.whole_process || unit.tag.is_some_and(|tag| tag.is_within(self.tag));
            if !ours
                || self.options.ignores_name(unit.name)
                || self.options.ignores_site(unit.spawned_at)
            {
                continue;
            }
            certain.push(Leak::Tracked {
                kind: match unit.kind {
                    Kind::Task => "task",
                    Kind::Thread | Kind::ScopedThread | Kind::Shared => "thread",
                },
                name: unit.name,
                spawned_at: unit.spawned_at,
                age: unit.started.elapsed(),
                waiting_on: unit.waiting.clone(),
            });
        }
        // Other threads: new since the opening, not tracked, not the opener.
        if let (Some(before), Some(now)) = (&self.threads_before, os_threads::thread_ids()) {
            let tracked: BTreeSet<u64> = units.iter().filter_map(|unit| unit.os_id).collect();
            // Threads ctxkit started while no leak check was open have no OS id on record
            // (reading it costs a file read per thread): they are matched to OS threads by
            // name, one OS thread per record, so none is reported twice.
            let mut unmatched: Vec<&str> = units
                .iter()
                .filter(|unit| unit.kind != Kind::Task && unit.os_id.is_none())
                .map(|unit| os_threads::os_name(unit.name))
                .collect();
            let sure = self.whole_process || alone();
            for tid in now.difference(before) {
                if Some(*tid) == self.opener || tracked.contains(tid) {
                    continue;
                }
                let Some(thread) = os_threads::describe(*tid) else {
                    continue; // exited meanwhile
                };
                if thread.name.starts_with("ctxkit-") || self.options.ignores_name(&thread.name) {
                    // ctxkit's own (started before tracking, or another scope's: by tag).
                    continue;
                }
                if let Some(at) = unmatched.iter().position(|name| *name == thread.name) {
                    unmatched.swap_remove(at); // reported above, as ctxkit's record
                    continue;
                }
                if self.whole_process && is_main_thread(*tid) {
                    continue;
                }
                let leak = Leak::Thread {
                    tid: thread.tid,
                    name: thread.name,
                    age: thread.age,
                };
                if sure {
                    certain.push(leak);
                } else {
                    uncertain.push(leak);
                }
            }
        }
        #[cfg(feature = "tokio")]
        if let Some((handle, before)) = &self.runtime {
            // A dormant task (`spawn`'s invariant 5: an async after-function whose context is
            // not done) is alive in its runtime, tracked, and nobody's leak.
            let tracked_tasks =
                units.iter().filter(|unit| unit.kind == Kind::Task).count() + dormant;
            let alive = handle.metrics().num_alive_tasks();
            // The tracked tasks alive now (of any scope) are reported above or are not ours;
            // whatever else is beyond the opening's count is untracked.
            let untracked = alive.saturating_sub(*before).saturating_sub(tracked_tasks);
            if untracked > 0 {
                let leak = Leak::Tasks { count: untracked };
                if *before == 0 {
                    certain.push(leak);
                } else {
                    uncertain.push(leak);
                }
            }
        }
        #[cfg(not(feature = "tokio"))]
        let _ = dormant; // only tasks are dormant
        (certain, uncertain)
    }

    /// Looks once; `started` is when the first look was made.
    pub(crate) fn look_report(&self, started: Instant) -> Report {
        let (leaks, uncertain) = self.look();
        let uncertain_why = (!uncertain.is_empty()).then_some(
            "other tests run in parallel in this process and may have started them; \
             run with --test-threads=1 to be sure",
        );
        Report {
            scope_at: self.opened_at,
            waited: started.elapsed(),
            leaks,
            uncertain,
            uncertain_why,
            hint: None,
        }
    }

    /// Looks until nothing certain is left or the retry time is spent, pausing the calling
    /// thread between looks; the report of the last look.
    pub(crate) fn report(&self) -> Report {
        let mut retry = Retry::new(&self.options);
        loop {
            let mut report = self.look_report(retry.started);
            match retry.next_pause() {
                Some(pause) if !report.is_clean() => std::thread::sleep(pause),
                _ => {
                    if blocks_a_current_thread_runtime() {
                        report.hint = Some(
                            "this check blocked the thread of a current-thread tokio runtime, \
                             so that runtime could not finish the tasks that were ending; in \
                             async code use leak::check_async",
                        );
                    }
                    return report;
                }
            }
        }
    }
}

/// The pauses between looks: 1 ms, doubling up to [`MAX_PAUSE`], until the retry time is spent.
#[derive(Debug)]
pub(crate) struct Retry {
    pub(crate) started: Instant,
    next: Duration,
    total: Duration,
}

impl Retry {
    pub(crate) fn new(options: &Options) -> Retry {
        Retry {
            started: Instant::now(),
            next: Duration::from_millis(1),
            total: options.retry_for,
        }
    }

    /// The next pause, or `None` once the retry time is spent.
    pub(crate) fn next_pause(&mut self) -> Option<Duration> {
        let waited = self.started.elapsed();
        if waited >= self.total {
            return None;
        }
        let pause = self.next.min(self.total - waited);
        self.next = (self.next * 2).min(MAX_PAUSE);
        Some(pause)
    }
}

/// Whether the calling thread runs a current-thread tokio runtime (inside `block_on`).
fn blocks_a_current_thread_runtime() -> bool {
    #[cfg(feature = "tokio")]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread;
    }
    false
}

/// Whether no other test can run in this process meanwhile: the caller is the main thread
/// (libtest runs tests on threads of their own when it runs several at once), or one test
/// thread was asked for.
fn alone() -> bool {
    if std::thread::current().name() == Some("main") {
        return true;
    }
    if std::env::var("RUST_TEST_THREADS").is_ok_and(|threads| threads.trim() == "1") {
        return true;
    }
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|arg| arg == "--test-threads=1")
        || args
            .windows(2)
            .any(|pair| pair[0] == "--test-threads" && pair[1] == "1")
}

/// Whether `tid` is the process's main thread (its id is the process id).
fn is_main_thread(tid: u64) -> bool {
    u64::from(std::process::id()) == tid
}
