//! The `gomaxprocs` example's output, checked on the real machine and on a made-up cgroup tree.

use std::fs;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's main() is not used here"
)]
#[path = "../examples/gomaxprocs.rs"]
mod gomaxprocs;

fn output(procs: &ctxkit::procs::Procs) -> String {
    let mut out = Vec::new();
    gomaxprocs::run(&mut out, procs).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn prints_the_number_and_where_it_came_from() {
    let procs = ctxkit::procs::current();
    let out = output(&procs);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("GOMAXPROCS: {}", ctxkit::procs::max_procs())
    );
    assert!(lines[1].starts_with("from: the "), "{out}");
    assert!(
        lines[2].starts_with(&format!("max_procs {} (", procs.count())),
        "{out}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_container_quota_is_named() {
    let root = std::env::temp_dir().join(format!("ctxkit-example-procs-{}", std::process::id()));
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    write("proc/self/cgroup", "0::/app\n");
    write(
        "proc/self/mountinfo",
        "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
    );
    write("proc/self/status", "Cpus_allowed_list:\t0-31\n");
    write("sys/devices/system/cpu/online", "0-31\n");
    write("sys/fs/cgroup/app/cpu.max", "200000 100000\n");
    let out = output(&ctxkit::procs::detect(&root, None));
    fs::remove_dir_all(&root).unwrap();
    // The chapter's trap: 2 vCPUs on a 32-core host must give 2, not 32.
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("GOMAXPROCS: 2"));
    assert_eq!(
        lines.next(),
        Some("from: the cgroup CPU quota (rounded up)")
    );
    let last = lines.next().unwrap();
    assert!(
        last.starts_with("max_procs 2 (cgroup v2 quota 2.00 CPUs in "),
        "{out}"
    );
    assert!(
        last.ends_with("cpu.max, rounded up; affinity 32; 32 logical CPUs)"),
        "{out}"
    );
}
