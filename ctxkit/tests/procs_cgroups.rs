//! `procs::detect` on made-up `/proc` and `/sys` trees: cgroup v1 and v2, no quota, fractional
//! and nested quotas (the tightest ancestor wins), affinity, a container whose cgroup mount has
//! a root of its own, and malformed files (a stated fallback, never a panic and never zero).

#![cfg(target_os = "linux")]

use std::fs;
use std::path::{Path, PathBuf};

use ctxkit::procs::{detect, CgroupVersion, Source};

/// A temporary fake root, removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str) -> Tree {
        let root = std::env::temp_dir().join(format!(
            "ctxkit-procs-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        Tree(root)
    }

    fn write(&self, path: &str, text: &str) -> &Tree {
        let path = self.0.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        self
    }

    /// A machine with `cpus` CPUs online and all of them allowed.
    fn machine(&self, cpus: usize) -> &Tree {
        self.write(
            "sys/devices/system/cpu/online",
            &format!("0-{}\n", cpus - 1),
        )
        .write(
            "proc/self/status",
            &format!("Name:\tt\nCpus_allowed_list:\t0-{}\n", cpus - 1),
        )
    }

    fn v2(&self, cgroup: &str) -> &Tree {
        self.write("proc/self/cgroup", &format!("0::{cgroup}\n"))
            .write(
                "proc/self/mountinfo",
                "24 1 0:22 / / rw - ext4 /dev/root rw\n\
             30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
            )
    }

    fn v1(&self, cgroup: &str) -> &Tree {
        self.write(
            "proc/self/cgroup",
            &format!("4:memory:{cgroup}\n2:cpu,cpuacct:{cgroup}\n0::/\n"),
        )
        .write(
            "proc/self/mountinfo",
            "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
             32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
             35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
             41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n",
        )
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn v2_fractional_quota_rounds_up() {
    let tree = Tree::new("v2-fraction");
    tree.machine(8)
        .v2("/app")
        .write("sys/fs/cgroup/app/cpu.max", "250000 100000\n");
    let procs = detect(tree.path(), None);
    assert_eq!(procs.count(), 3, "{procs}");
    assert_eq!(procs.source(), Source::Quota);
    let quota = procs.quota().unwrap();
    assert_eq!((quota.cpus(), quota.version()), (2.5, CgroupVersion::V2));
    assert!(procs.to_string().contains("quota 2.50 CPUs"), "{procs}");
}

#[test]
fn a_quota_under_one_cpu_gives_one() {
    let tree = Tree::new("v2-small");
    tree.machine(4)
        .v2("/app")
        .write("sys/fs/cgroup/app/cpu.max", "10000 100000\n");
    let procs = detect(tree.path(), None);
    assert_eq!(
        (procs.count(), procs.source()),
        (1, Source::Quota),
        "{procs}"
    );
}

#[test]
fn v2_without_a_limit_uses_the_cpus() {
    let tree = Tree::new("v2-max");
    tree.machine(6)
        .v2("/app")
        .write("sys/fs/cgroup/app/cpu.max", "max 100000\n");
    let procs = detect(tree.path(), None);
    assert_eq!(
        (procs.count(), procs.source()),
        (6, Source::LogicalCpus),
        "{procs}"
    );
    assert!(procs.quota().is_none());
}

#[test]
fn a_tighter_ancestor_quota_wins() {
    // The process's own cgroup allows 4 CPUs, its parent 1.5: Go would say 4 (go#81180).
    let tree = Tree::new("v2-nested");
    tree.machine(8)
        .v2("/kubepods/pod1/app")
        .write("sys/fs/cgroup/kubepods/cpu.max", "max 100000\n")
        .write("sys/fs/cgroup/kubepods/pod1/cpu.max", "150000 100000\n")
        .write("sys/fs/cgroup/kubepods/pod1/app/cpu.max", "400000 100000\n");
    let procs = detect(tree.path(), None);
    assert_eq!(procs.count(), 2, "{procs}");
    assert!(procs
        .quota()
        .unwrap()
        .file()
        .ends_with("kubepods/pod1/cpu.max"));
}

#[test]
fn v1_quota_and_period() {
    let tree = Tree::new("v1");
    tree.machine(8)
        .v1("/docker/abc")
        .write(
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us",
            "300000\n",
        )
        .write(
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us",
            "100000\n",
        )
        .write("sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_quota_us", "-1\n")
        .write(
            "sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_period_us",
            "100000\n",
        );
    let procs = detect(tree.path(), None);
    assert_eq!(
        (procs.count(), procs.source()),
        (3, Source::Quota),
        "{procs}"
    );
    assert_eq!(procs.quota().unwrap().version(), CgroupVersion::V1);
}

#[test]
fn v1_unlimited() {
    let tree = Tree::new("v1-unlimited");
    tree.machine(2)
        .v1("/")
        .write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
        .write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    let procs = detect(tree.path(), None);
    assert_eq!(
        (procs.count(), procs.source()),
        (2, Source::LogicalCpus),
        "{procs}"
    );
}

#[test]
fn the_affinity_mask_bounds_it() {
    let tree = Tree::new("affinity");
    tree.machine(16)
        .write("proc/self/status", "Cpus_allowed_list:\t0-1,8\n")
        .v2("/app")
        .write("sys/fs/cgroup/app/cpu.max", "800000 100000\n");
    let procs = detect(tree.path(), None);
    assert_eq!(
        (procs.count(), procs.source(), procs.affinity()),
        (3, Source::Affinity, Some(3)),
        "{procs}"
    );
}

#[test]
fn a_container_whose_cgroup_mount_has_its_own_root() {
    // Inside a cgroup namespace-less container: the mount's root is the container's cgroup.
    let tree = Tree::new("mount-root");
    tree.machine(8)
        .write("proc/self/cgroup", "0::/system.slice/ctr.scope\n")
        .write(
            "proc/self/mountinfo",
            "30 24 0:26 /system.slice/ctr.scope /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n",
        )
        .write("sys/fs/cgroup/cpu.max", "200000 100000\n");
    let procs = detect(tree.path(), None);
    assert_eq!(
        (procs.count(), procs.source()),
        (2, Source::Quota),
        "{procs}"
    );
}

#[test]
fn malformed_files_are_reported_and_skipped() {
    let tree = Tree::new("malformed");
    tree.machine(4)
        .v2("/app/inner")
        .write("sys/fs/cgroup/app/cpu.max", "150000 100000\n")
        .write("sys/fs/cgroup/app/inner/cpu.max", "lots 100000\n");
    let procs = detect(tree.path(), None);
    // The malformed level is ignored; the parent's quota still applies.
    assert_eq!(
        (procs.count(), procs.source()),
        (2, Source::Quota),
        "{procs}"
    );
    assert_eq!(procs.problems().len(), 1, "{procs}");
    assert!(procs.problems()[0].contains("inner/cpu.max"), "{procs}");

    let tree = Tree::new("malformed-cpus");
    tree.write("sys/devices/system/cpu/online", "zero\n")
        .write("proc/self/status", "Cpus_allowed_list:\tnone\n");
    let procs = detect(tree.path(), Some("not a number"));
    assert!(procs.count() >= 1, "{procs}");
    assert_eq!(procs.problems().len(), 3, "{procs}");
}

#[test]
fn an_empty_root_still_answers() {
    let tree = Tree::new("empty");
    let procs = detect(tree.path(), None);
    assert!(procs.count() >= 1, "{procs}");
    assert!(procs.quota().is_none());
    assert_eq!(detect(tree.path(), Some("5")).count(), 5);
}
