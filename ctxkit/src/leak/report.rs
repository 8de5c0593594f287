//! [`Report`] and [`Leak`]: what a leak check found. Plain data, no locking.

use std::fmt;
use std::panic::Location;
use std::time::Duration;

/// One unit of work that outlived its scope.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Leak {
    /// A thread or task ctxkit started (a group's, a pool's, an after-function's, or one of
    /// [`tracked`](crate::tracked)'s) inside the scope, attributed exactly.
    Tracked {
        /// `"thread"` or `"task"`.
        kind: &'static str,
        /// Its name (a thread's OS name).
        name: &'static str,
        /// Where it was started (the `#[track_caller]` site of the call that started it).
        spawned_at: &'static Location<'static>,
        /// How long it has been running.
        age: Duration,
        /// The context it waits on (where that context was made, its deadline, whether it is
        /// done), and whether it waits now (`false`: the context it last waited on, in a loop
        /// that waits and wakes).
        waiting_on: Option<(String, bool)>,
    },
    /// A thread ctxkit did not start (`std::thread::spawn`, a library's), which started while
    /// the scope was open and still runs. The OS knows no spawn site.
    Thread {
        /// The kernel's thread id.
        tid: u64,
        /// Its name as the kernel keeps it (at most 15 bytes).
        name: String,
        /// How long it has been running, if the OS said.
        age: Option<Duration>,
    },
    /// Tokio tasks ctxkit did not start, alive on the scope's runtime at its end beyond those
    /// alive when it began. Tokio names no task, so only the count is known.
    Tasks {
        /// How many.
        count: usize,
    },
}

/// What a leak check found: the leaks it is sure of, and those it cannot attribute to this
/// scope with certainty (they are listed, and do not fail the check).
///
/// Its `Display` is the report a failed check panics with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub(crate) scope_at: &'static Location<'static>,
    pub(crate) waited: Duration,
    pub(crate) leaks: Vec<Leak>,
    pub(crate) uncertain: Vec<Leak>,
    pub(crate) uncertain_why: Option<&'static str>,
    /// A hint for the reader, when the check itself may be the cause.
    pub(crate) hint: Option<&'static str>,
}

impl Report {
    /// The leaks attributed to the scope with certainty; the check fails if there are any.
    pub fn leaks(&self) -> &[Leak] {
        &self.leaks
    }

    /// Work that may have leaked from this scope but that the check cannot attribute to it
    /// with certainty (another test may have started it); it does not fail the check.
    pub fn uncertain(&self) -> &[Leak] {
        &self.uncertain
    }

    /// True if nothing was attributed with certainty.
    pub fn is_clean(&self) -> bool {
        self.leaks.is_empty()
    }
}

fn write_leak(f: &mut fmt::Formatter<'_>, number: usize, leak: &Leak) -> fmt::Result {
    match leak {
        Leak::Tracked {
            kind,
            name,
            spawned_at,
            age,
            waiting_on,
        } => {
            writeln!(
                f,
                "leak {number}: {kind} \"{name}\", started through ctxkit"
            )?;
            writeln!(f, "    spawned at: {spawned_at}")?;
            writeln!(f, "    running for: {age:.1?}")?;
            match waiting_on {
                Some((what, true)) => writeln!(f, "    waiting on: {what}"),
                Some((what, false)) => {
                    writeln!(f, "    last waited on: {what} (not waiting at this look)")
                }
                None => writeln!(
                    f,
                    "    waiting on: nothing ctxkit knows (running, or blocked elsewhere)"
                ),
            }
        }
        Leak::Thread { tid, name, age } => {
            writeln!(
                f,
                "leak {number}: thread \"{name}\" (OS thread id {tid}), not started through ctxkit"
            )?;
            if let Some(age) = age {
                writeln!(f, "    running for: {age:.1?}")?;
            }
            writeln!(
                f,
                "    spawned at: unknown (start it with ctxkit::tracked::thread to know)"
            )
        }
        Leak::Tasks { count } => {
            writeln!(f, "leak {number}: {count} tokio task(s) on this scope's runtime, not started through ctxkit")?;
            writeln!(f, "    spawned at: unknown (tokio names no task; start it with ctxkit::tracked::task to know)")
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.leaks.is_empty() {
            writeln!(
                f,
                "ctxkit::leak: no leak from the scope opened at {}",
                self.scope_at
            )?;
        } else {
            writeln!(
                f,
                "ctxkit::leak: {} leak(s) from the scope opened at {} (still running after {:.0?} of retries):",
                self.leaks.len(),
                self.scope_at,
                self.waited
            )?;
            for (number, leak) in self.leaks.iter().enumerate() {
                write_leak(f, number + 1, leak)?;
            }
        }
        if let (Some(hint), false) = (self.hint, self.leaks.is_empty()) {
            writeln!(f, "hint: {hint}")?;
        }
        if !self.uncertain.is_empty() {
            writeln!(
                f,
                "not attributed with certainty ({}), not counted:",
                self.uncertain_why
                    .unwrap_or("other tests may have started them")
            )?;
            for (number, leak) in self.uncertain.iter().enumerate() {
                write_leak(f, number + 1, leak)?;
            }
        }
        Ok(())
    }
}
