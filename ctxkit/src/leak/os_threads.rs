//! The process's threads as the OS lists them (Linux: `/proc/self/task`), for the threads ctxkit
//! did not start. Reads files only; no state, no locks.

use std::collections::BTreeSet;
use std::time::Duration;

/// One OS thread of this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OsThread {
    /// The kernel's thread id.
    pub(crate) tid: u64,
    /// Its name as the kernel keeps it (at most 15 bytes: longer names are cut).
    pub(crate) name: String,
    /// How long it has lived, if the kernel said.
    pub(crate) age: Option<Duration>,
}

/// The ids of the process's threads now; `None` where the OS does not list them (not Linux, or
/// `/proc` not mounted).
pub(crate) fn thread_ids() -> Option<BTreeSet<u64>> {
    let entries = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        entries
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect(),
    )
}

pub(crate) use crate::spawn::os_thread_id as current_thread_id;

/// `name` as the kernel keeps a thread's name: its first 15 bytes (cut at a character
/// boundary; the names ctxkit's callers give are short and ASCII as a rule).
pub(crate) fn os_name(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// What the OS says about thread `tid` of this process; `None` if it has exited.
pub(crate) fn describe(tid: u64) -> Option<OsThread> {
    let dir = format!("/proc/self/task/{tid}");
    let name = std::fs::read_to_string(format!("{dir}/comm")).ok()?;
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok();
    Some(OsThread {
        tid,
        name: name.trim_end().to_owned(),
        age: stat.as_deref().and_then(age_from_stat),
    })
}

/// A thread's age from its `stat` line (field 22: start time in clock ticks after boot) and the
/// system's uptime. Clock ticks are taken as 100 a second, the value on every Linux port.
fn age_from_stat(stat: &str) -> Option<Duration> {
    // The name (field 2) is in parentheses and may hold spaces: count fields after its end.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let start_ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let uptime_secs: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let started_secs = start_ticks as f64 / 100.0;
    Some(Duration::from_secs_f64(
        (uptime_secs - started_secs).max(0.0),
    ))
}

#[cfg(all(test, not(loom), target_os = "linux"))]
mod tests {
    #[test]
    fn os_names_are_cut_at_15_bytes() {
        assert_eq!(super::os_name("waiter"), "waiter");
        assert_eq!(super::os_name("a-very-long-thread-name"), "a-very-long-thr");
        assert_eq!(super::os_name("ééééééééé"), "ééééééé"); // 14 bytes, not half a character
    }

    use super::*;

    #[test]
    fn lists_and_names_a_thread_it_can_see() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("os-threads-test".into())
            .spawn(move || {
                tx.send(current_thread_id()).unwrap();
                let _ = stopped.recv();
            })
            .unwrap();
        let tid = rx.recv().unwrap().expect("Linux names the thread's id");
        assert!(thread_ids().unwrap().contains(&tid));
        let thread = describe(tid).unwrap();
        assert_eq!(thread.name, "os-threads-test");
        assert!(thread.age.unwrap() < Duration::from_secs(3600));
        drop(stop);
        handle.join().unwrap();
        assert!(!thread_ids().unwrap().contains(&tid));
        assert_eq!(describe(tid), None);
    }

    #[test]
    fn reads_the_start_time_after_a_name_with_spaces_and_parentheses() {
        let stat = "77 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 0 100 200";
        // Field 22 is "0" here: started at boot, so as old as the uptime.
        let age = age_from_stat(stat).unwrap();
        assert!(age > Duration::ZERO);
    }
}
