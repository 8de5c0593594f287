//! How many threads of parallelism this process should use: Go's `GOMAXPROCS`, the way Go 1.25
//! sets it, plus the ancestor quotas Go ignores.
//!
//! [`max_procs`] is the number; [`current`] says where it came from, printable for logs. The
//! decision is, in order:
//!
//! 1. the environment variable `CTXKIT_MAXPROCS` ([`ENV_VAR`]), if it is a positive integer: it
//!    is the answer, as `GOMAXPROCS=n` is in Go (not bounded by anything below);
//! 2. otherwise (Linux) the smallest of: the cgroup CPU quota (cgroup v2 `cpu.max`, or v1
//!    `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded up and at least 1, taking the
//!    *tightest* quota of the process's cgroup and every ancestor up to the mount (Go reads only
//!    the process's own cgroup: go#81180); the CPUs the affinity mask allows
//!    (`Cpus_allowed_list` of `/proc/self/status`); the logical CPUs online;
//! 3. not on Linux: the logical CPU count (`std::thread::available_parallelism`).
//!
//! Nothing here panics or returns zero: a malformed override or cgroup file is recorded as a
//! [`Procs::problems`] entry saying what was ignored, and the decision goes on without it. The
//! number is computed once and cached; [`refresh`] recomputes it (say, after the container's
//! quota changed). [`detect`] is the decision itself, reading from any filesystem root, so tests
//! run it on made-up cgroup trees.
//!
//! # Coming from Go
//!
//! | Go (the chapter's 12.7) | ctxkit |
//! |---|---|
//! | `runtime.GOMAXPROCS(0)` | [`max_procs()`](max_procs); [`current()`](current) says where the number came from |
//! | `GOMAXPROCS=4 ./server` | `CTXKIT_MAXPROCS=4 ./server` ([`ENV_VAR`]) |
//! | `runtime.GOMAXPROCS(4)` | none: pass the number to what runs the work ([`Pool::new(4)`](crate::pool::Pool::new), a group's `set_limit(4)`) |
//! | `import _ "go.uber.org/automaxprocs"` (Go 1.24 and older) | nothing to import: the quota is read by default |
//! | Go 1.25 updating GOMAXPROCS when the quota changes | [`refresh()`](refresh), when you choose |
//!
//! Differences on purpose: the number is advice, not a scheduler setting (a Rust process has no
//! runtime whose threads ctxkit could resize), and it is the default size of a
//! [`Pool`](crate::pool::Pool); the variable has a name of its own, so a `GOMAXPROCS` meant for
//! Go programs in the same environment does not change it; the quotas of ancestor cgroups count
//! too; and the number changes only when [`refresh`] is called, never on its own.
//!
//! # Invariants
//!
//! 1. `Procs::count` is at least 1.
//! 2. The cache holds the last [`refresh`] (or the first [`current`]); its lock is a leaf, held
//!    only to copy a `Procs` in or out, never while reading files.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// The environment variable that overrides the detected parallelism: a positive integer.
pub const ENV_VAR: &str = "CTXKIT_MAXPROCS";

/// Where [`Procs::count`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The `CTXKIT_MAXPROCS` environment variable.
    Override,
    /// A cgroup CPU quota (see [`Procs::quota`]).
    Quota,
    /// The CPU affinity mask (see [`Procs::affinity`]).
    Affinity,
    /// The logical CPUs online (see [`Procs::logical_cpus`]).
    LogicalCpus,
    /// Not Linux: the logical CPU count as the standard library reports it; no quota or
    /// affinity was looked at.
    NotLinux,
}

/// Which cgroup interface a quota was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// cgroup v1: `cpu.cfs_quota_us` and `cpu.cfs_period_us`.
    V1,
    /// cgroup v2: `cpu.max`.
    V2,
}

/// The tightest cgroup CPU quota found.
#[derive(Clone, Debug, PartialEq)]
pub struct Quota {
    cpus: f64,
    file: PathBuf,
    version: CgroupVersion,
}

impl Quota {
    /// The quota in CPUs (quota / period), before rounding: `1.5` for `150000 100000`.
    ///
    /// # Examples
    ///
    /// See [`detect`].
    pub fn cpus(&self) -> f64 {
        self.cpus
    }

    /// The file that set it (in the process's cgroup or an ancestor), under the root given to
    /// [`detect`].
    ///
    /// # Examples
    ///
    /// See [`detect`].
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// v1 or v2.
    ///
    /// # Examples
    ///
    /// See [`detect`].
    pub fn version(&self) -> CgroupVersion {
        self.version
    }
}

/// The parallelism this process should use, and where the number came from.
///
/// Its `Display` is one line for logs, e.g.
/// `max_procs 2 (cgroup v2 quota 1.50 CPUs in /sys/fs/cgroup/app/cpu.max, rounded up; affinity 4; 8 logical CPUs)`.
///
/// # Examples
///
/// ```
/// let procs = ctxkit::procs::current();
/// assert!(procs.count() >= 1);
/// println!("{procs}"); // where the number came from
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Procs {
    /// Invariant 1.
    count: usize,
    source: Source,
    logical_cpus: usize,
    affinity: Option<usize>,
    quota: Option<Quota>,
    problems: Vec<String>,
}

impl Procs {
    /// The number of threads of parallelism to use: at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ctxkit::procs::current().count() >= 1);
    /// ```
    pub fn count(&self) -> usize {
        self.count
    }

    /// Where [`count`](Procs::count) came from.
    ///
    /// # Examples
    ///
    /// See [`detect`].
    pub fn source(&self) -> Source {
        self.source
    }

    /// The logical CPUs online.
    ///
    /// # Examples
    ///
    /// See [`detect`].
    pub fn logical_cpus(&self) -> usize {
        self.logical_cpus
    }

    /// How many CPUs the affinity mask allows, if it could be read (Linux).
    ///
    /// # Examples
    ///
    /// See [`detect`].
    pub fn affinity(&self) -> Option<usize> {
        self.affinity
    }

    /// The tightest cgroup CPU quota, if there is one (Linux).
    ///
    /// # Examples
    ///
    /// See [`detect`].
    pub fn quota(&self) -> Option<&Quota> {
        self.quota.as_ref()
    }

    /// What could not be read or parsed, and what was done instead (empty when all went well).
    ///
    /// # Examples
    ///
    /// ```
    /// let procs = ctxkit::procs::detect("/", Some("zero please"));
    /// assert!(procs.count() >= 1);
    /// assert!(procs.problems()[0].contains("CTXKIT_MAXPROCS"));
    /// ```
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl fmt::Display for Procs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "max_procs {} (", self.count)?;
        match self.source {
            Source::Override => write!(f, "{ENV_VAR}; ")?,
            Source::NotLinux => f.write_str("not Linux: no quota or affinity read; ")?,
            _ => {}
        }
        if let Some(quota) = &self.quota {
            let version = match quota.version {
                CgroupVersion::V1 => "v1",
                CgroupVersion::V2 => "v2",
            };
            write!(
                f,
                "cgroup {version} quota {:.2} CPUs in {}, rounded up; ",
                quota.cpus,
                quota.file.display()
            )?;
        }
        if let Some(affinity) = self.affinity {
            write!(f, "affinity {affinity}; ")?;
        }
        write!(f, "{} logical CPUs)", self.logical_cpus)?;
        for problem in &self.problems {
            write!(f, "; {problem}")?;
        }
        Ok(())
    }
}

/// The parallelism this process should use (see the module docs): at least 1.
///
/// Computed on the first call and cached; [`refresh`] recomputes it.
///
/// # Examples
///
/// ```
/// let workers = ctxkit::procs::max_procs();
/// assert!(workers >= 1);
/// ```
pub fn max_procs() -> usize {
    current().count()
}

/// The cached decision with where it came from (computed on the first call).
///
/// # Examples
///
/// ```
/// let procs = ctxkit::procs::current();
/// assert_eq!(procs.count(), ctxkit::procs::max_procs());
/// ```
pub fn current() -> Procs {
    if let Some(procs) = cache::get() {
        return procs;
    }
    refresh()
}

/// Recomputes the decision from the environment and the filesystem, caches it and returns it.
///
/// # Examples
///
/// ```
/// let procs = ctxkit::procs::refresh();
/// assert_eq!(procs, ctxkit::procs::current());
/// ```
pub fn refresh() -> Procs {
    let override_value = std::env::var_os(ENV_VAR);
    let override_value = override_value.as_ref().map(|v| v.to_string_lossy());
    let procs = detect("/", override_value.as_deref());
    cache::set(procs.clone());
    procs
}

/// The decision itself, reading `/proc` and `/sys` under `root` (`"/"` for the real ones) and
/// taking the override's value as a parameter (`None`: not set). Nothing is cached.
///
/// # Examples
///
/// A made-up cgroup v2 tree with a quota of 1.5 CPUs on a 4-CPU machine:
///
/// ```
/// use std::fs;
/// use ctxkit::procs::{self, CgroupVersion, Source};
///
/// let root = std::env::temp_dir().join(format!("ctxkit-procs-doc-{}", std::process::id()));
/// let write = |path: &str, text: &str| {
///     let path = root.join(path);
///     fs::create_dir_all(path.parent().unwrap()).unwrap();
///     fs::write(path, text).unwrap();
/// };
/// write("proc/self/cgroup", "0::/app\n");
/// write(
///     "proc/self/mountinfo",
///     "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n",
/// );
/// write("proc/self/status", "Name:\tapp\nCpus_allowed_list:\t0-3\n");
/// write("sys/devices/system/cpu/online", "0-3\n");
/// write("sys/fs/cgroup/app/cpu.max", "150000 100000\n");
///
/// let found = procs::detect(&root, None);
/// assert_eq!(found.count(), 2); // 1.5 rounded up
/// assert_eq!(found.source(), Source::Quota);
/// assert_eq!(found.quota().unwrap().cpus(), 1.5);
/// assert_eq!(found.quota().unwrap().version(), CgroupVersion::V2);
/// assert!(found.quota().unwrap().file().ends_with("sys/fs/cgroup/app/cpu.max"));
/// assert_eq!((found.affinity(), found.logical_cpus()), (Some(4), 4));
/// assert!(found.problems().is_empty());
///
/// // The override wins.
/// assert_eq!(procs::detect(&root, Some("3")).count(), 3);
/// assert_eq!(procs::detect(&root, Some("3")).source(), Source::Override);
/// # fs::remove_dir_all(&root).unwrap();
/// ```
pub fn detect(root: impl AsRef<Path>, override_value: Option<&str>) -> Procs {
    let mut problems = Vec::new();
    let overridden = override_value.and_then(|value| match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Some(n),
        _ => {
            problems.push(format!(
                "{ENV_VAR}={value:?} is not a positive integer: ignored"
            ));
            None
        }
    });
    let mut procs = platform::detect(root.as_ref(), &mut problems);
    procs.problems = problems;
    if let Some(n) = overridden {
        procs.count = n;
        procs.source = Source::Override;
    }
    procs
}

/// The number of CPUs in a Linux CPU list such as `0-3,8,10-11`; `None` if malformed.
fn count_cpu_list(list: &str) -> Option<usize> {
    let list = list.trim();
    if list.is_empty() {
        return None;
    }
    let mut count = 0usize;
    for part in list.split(',') {
        let part = part.trim();
        match part.split_once('-') {
            Some((first, last)) => {
                let first: usize = first.parse().ok()?;
                let last: usize = last.parse().ok()?;
                count = count.checked_add(last.checked_sub(first)? + 1)?;
            }
            None => {
                part.parse::<usize>().ok()?;
                count = count.checked_add(1)?;
            }
        }
    }
    (count > 0).then_some(count)
}

#[cfg(target_os = "linux")]
mod platform {
    use super::*;

    /// A cgroup hierarchy that has the CPU controller: where it is mounted and where the
    /// process is in it.
    struct Hierarchy {
        version: CgroupVersion,
        /// The mount point, under `root`.
        mount: PathBuf,
        /// The process's cgroup directory, under `root`, inside `mount`.
        dir: PathBuf,
    }

    pub(super) fn detect(root: &Path, problems: &mut Vec<String>) -> Procs {
        let logical = read(root, "sys/devices/system/cpu/online", problems)
            .and_then(|text| {
                let count = count_cpu_list(&text);
                if count.is_none() {
                    problems.push(format!(
                        "{}: not a CPU list: ignored",
                        root.join("sys/devices/system/cpu/online").display()
                    ));
                }
                count
            })
            .unwrap_or_else(available_parallelism);
        let affinity = read(root, "proc/self/status", problems).and_then(|status| {
            let list = status
                .lines()
                .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?;
            let count = count_cpu_list(list);
            if count.is_none() {
                problems.push(format!(
                    "{}: Cpus_allowed_list {:?} is not a CPU list: ignored",
                    root.join("proc/self/status").display(),
                    list.trim()
                ));
            }
            count
        });
        let quota = hierarchy(root, problems).and_then(|h| tightest_quota(&h, problems));

        // The smallest bound wins. The affinity is named only if it excludes some CPUs; a
        // quota that ties is named, since it is a limit someone set.
        let mut count = logical;
        let mut source = Source::LogicalCpus;
        if let Some(affinity) = affinity.filter(|&a| a < count) {
            count = affinity;
            source = Source::Affinity;
        }
        if let Some(quota) = &quota {
            let rounded = (quota.cpus.ceil() as usize).max(1);
            if rounded <= count {
                count = rounded;
                source = Source::Quota;
            }
        }
        Procs {
            count: count.max(1),
            source,
            logical_cpus: logical,
            affinity,
            quota,
            problems: Vec::new(),
        }
    }

    fn available_parallelism() -> usize {
        std::thread::available_parallelism().map_or(1, usize::from)
    }

    /// Reads `root/relative`; a missing file is no problem (`None`), another error is noted.
    fn read(root: &Path, relative: &str, problems: &mut Vec<String>) -> Option<String> {
        let path = root.join(relative);
        match fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                problems.push(format!("{}: {error}: ignored", path.display()));
                None
            }
        }
    }

    /// `root` joined with an absolute path from `/proc` (which names paths of the real root).
    fn under(root: &Path, absolute: &str) -> PathBuf {
        root.join(absolute.trim_start_matches('/'))
    }

    /// Finds the hierarchy with the CPU controller (v1 if a v1 `cpu` controller is mounted,
    /// else v2) and the process's directory in it.
    fn hierarchy(root: &Path, problems: &mut Vec<String>) -> Option<Hierarchy> {
        let cgroups = read(root, "proc/self/cgroup", problems)?;
        let mountinfo = read(root, "proc/self/mountinfo", problems)?;
        // mountinfo: id parent dev root mountpoint options [optional...] - fstype source super
        let mounts: Vec<(&str, &str, &str, &str)> = mountinfo
            .lines()
            .filter_map(|line| {
                let (before, after) = line.split_once(" - ")?;
                let fields: Vec<&str> = before.split_whitespace().collect();
                let mut after = after.split_whitespace();
                let fstype = after.next()?;
                let _source = after.next();
                let options = after.next().unwrap_or("");
                Some((*fields.get(3)?, *fields.get(4)?, fstype, options))
            })
            .collect();
        // v1: "N:cpu,cpuacct:/path"; v2: "0::/path".
        let mut v2_path = None;
        for line in cgroups.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                v2_path = Some(path);
            } else if controllers.split(',').any(|c| c == "cpu") {
                let mount = mounts.iter().find(|(_, _, fstype, options)| {
                    *fstype == "cgroup" && options.split(',').any(|o| o == "cpu")
                });
                if let Some(&(mount_root, mount_point, _, _)) = mount {
                    return locate(
                        root,
                        CgroupVersion::V1,
                        mount_root,
                        mount_point,
                        path,
                        problems,
                    );
                }
            }
        }
        let path = v2_path?;
        let &(mount_root, mount_point, _, _) = mounts
            .iter()
            .find(|(_, _, fstype, _)| *fstype == "cgroup2")?;
        locate(
            root,
            CgroupVersion::V2,
            mount_root,
            mount_point,
            path,
            problems,
        )
    }

    /// The process's directory: the mount point plus its cgroup path below the mount's root.
    fn locate(
        root: &Path,
        version: CgroupVersion,
        mount_root: &str,
        mount_point: &str,
        path: &str,
        problems: &mut Vec<String>,
    ) -> Option<Hierarchy> {
        let below = if mount_root == "/" {
            Some(path)
        } else {
            path.strip_prefix(mount_root)
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let Some(below) = below else {
            problems.push(format!(
                "cgroup path {path:?} is outside its mount's root {mount_root:?}: no quota read"
            ));
            return None;
        };
        let mount = under(root, mount_point);
        Some(Hierarchy {
            version,
            dir: mount.join(below.trim_start_matches('/')),
            mount,
        })
    }

    /// The tightest quota of the process's cgroup and its ancestors up to the mount.
    fn tightest_quota(hierarchy: &Hierarchy, problems: &mut Vec<String>) -> Option<Quota> {
        let mut tightest: Option<Quota> = None;
        let mut dir = hierarchy.dir.as_path();
        loop {
            let found = match hierarchy.version {
                CgroupVersion::V2 => v2_quota(dir, problems),
                CgroupVersion::V1 => v1_quota(dir, problems),
            };
            if let Some(quota) = found {
                if tightest.as_ref().is_none_or(|t| quota.cpus < t.cpus) {
                    tightest = Some(quota);
                }
            }
            // Terminates: each turn goes one directory up, and stops at the mount point (or
            // the filesystem root, if the directory was not below it).
            if dir == hierarchy.mount {
                break;
            }
            match dir.parent() {
                Some(parent) if parent.starts_with(&hierarchy.mount) => dir = parent,
                _ => break,
            }
        }
        tightest
    }

    /// `cpu.max`: `max PERIOD` (no limit) or `QUOTA PERIOD`, in microseconds.
    fn v2_quota(dir: &Path, problems: &mut Vec<String>) -> Option<Quota> {
        let file = dir.join("cpu.max");
        let text = fs::read_to_string(&file).ok()?;
        let mut fields = text.split_whitespace();
        let (quota, period) = (fields.next()?, fields.next().unwrap_or("100000"));
        if quota == "max" {
            return None;
        }
        ratio(quota, period, &file, problems).map(|cpus| Quota {
            cpus,
            file,
            version: CgroupVersion::V2,
        })
    }

    /// `cpu.cfs_quota_us` (`-1`: no limit) over `cpu.cfs_period_us`.
    fn v1_quota(dir: &Path, problems: &mut Vec<String>) -> Option<Quota> {
        let file = dir.join("cpu.cfs_quota_us");
        let quota = fs::read_to_string(&file).ok()?;
        let quota = quota.trim();
        if quota == "-1" {
            return None;
        }
        let period = fs::read_to_string(dir.join("cpu.cfs_period_us")).ok();
        let Some(period) = period else {
            problems.push(format!(
                "{}: a quota without cpu.cfs_period_us beside it: ignored",
                file.display()
            ));
            return None;
        };
        ratio(quota, period.trim(), &file, problems).map(|cpus| Quota {
            cpus,
            file,
            version: CgroupVersion::V1,
        })
    }

    /// `quota / period` for two positive integers, else a problem and `None`.
    fn ratio(quota: &str, period: &str, file: &Path, problems: &mut Vec<String>) -> Option<f64> {
        match (quota.parse::<u64>(), period.parse::<u64>()) {
            (Ok(quota), Ok(period)) if quota > 0 && period > 0 => {
                Some(quota as f64 / period as f64)
            }
            _ => {
                problems.push(format!(
                    "{}: quota {quota:?} over period {period:?} is not two positive integers: ignored",
                    file.display()
                ));
                None
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use super::*;

    pub(super) fn detect(_root: &Path, _problems: &mut Vec<String>) -> Procs {
        let count = std::thread::available_parallelism().map_or(1, usize::from);
        Procs {
            count,
            source: Source::NotLinux,
            logical_cpus: count,
            affinity: None,
            quota: None,
            problems: Vec::new(),
        }
    }
}

/// The cached decision (invariant 2).
mod cache {
    use super::Procs;
    use crate::sync::{self, Mutex};

    sync::lazy_static! {
        static ref CACHE: Mutex<Option<Procs>> = Mutex::new(None);
    }

    pub(super) fn get() -> Option<Procs> {
        CACHE.lock().clone()
    }

    pub(super) fn set(procs: Procs) {
        *CACHE.lock() = Some(procs);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-3"), Some(4));
        assert_eq!(count_cpu_list("0-3,8,10-11\n"), Some(7));
        assert_eq!(count_cpu_list("5"), Some(1));
        for bad in ["", "3-1", "a", "0-", "1,,2", "-"] {
            assert_eq!(count_cpu_list(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_override_is_ignored_with_a_problem() {
        for bad in ["0", "-2", "two", "", "1.5"] {
            let procs = detect("/nonexistent-root-for-ctxkit-tests", Some(bad));
            assert!(procs.count() >= 1, "{bad:?}");
            assert_ne!(procs.source(), Source::Override, "{bad:?}");
            assert!(procs.problems()[0].contains(ENV_VAR), "{bad:?}: {procs:?}");
        }
        let procs = detect("/nonexistent-root-for-ctxkit-tests", Some(" 7 "));
        assert_eq!((procs.count(), procs.source()), (7, Source::Override));
    }

    #[test]
    fn the_real_machine_gives_a_sane_answer() {
        let procs = detect("/", None);
        assert!(procs.count() >= 1);
        assert!(procs.count() <= procs.logical_cpus().max(1), "{procs}");
        assert!(procs.problems().is_empty(), "{procs}");
    }
}
