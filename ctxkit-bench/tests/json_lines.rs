//! The runner's output is the benchmark JSON lines: one object per line with `workload`,
//! `impl`, `metric`, `value` (a number, or null with a note saying why), `min`, `max`, `runs`
//! and a `note`; ctxkit's lines and, with `--peers`, the peers' lines, each naming its crate's
//! version.

use std::process::Command;

use serde_json::Value;

/// Runs the runner (quick, on a few cheap workloads) and parses every line of its output.
fn lines(args: &[&str]) -> Vec<Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_ctxkit-bench"))
        .args([
            "--quick",
            "--only",
            "ctx.cancel_child,rate.allow,pool.squares_1m_w2",
        ])
        .args(args)
        .output()
        .expect("the runner starts");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

fn check_line(line: &Value) {
    let object = line
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {line}"));
    for key in ["workload", "impl", "metric", "note"] {
        assert!(
            object.get(key).is_some_and(Value::is_string),
            "{key} in {line}"
        );
    }
    assert!(object["value"].is_number(), "a measured value in {line}");
    assert!(object["min"].as_f64() <= object["value"].as_f64(), "{line}");
    assert!(object["value"].as_f64() <= object["max"].as_f64(), "{line}");
    assert!(
        object["runs"].as_u64().is_some_and(|runs| runs > 0),
        "{line}"
    );
}

#[test]
fn ctxkit_lines_alone() {
    let lines = lines(&[]);
    assert!(!lines.is_empty());
    for line in &lines {
        check_line(line);
        assert!(
            line["impl"].as_str().unwrap().starts_with("ctxkit"),
            "{line}"
        );
    }
    let workloads: Vec<&str> = lines
        .iter()
        .map(|l| l["workload"].as_str().unwrap())
        .collect();
    for workload in ["ctx.cancel_child", "rate.allow", "pool.squares_1m_w2"] {
        assert!(workloads.contains(&workload), "{workload} in {workloads:?}");
    }
}

#[test]
fn with_the_peers_each_line_names_its_crate_and_version() {
    let lines = lines(&["--peers"]);
    let peers: Vec<&Value> = lines
        .iter()
        .filter(|l| !l["impl"].as_str().unwrap().starts_with("ctxkit"))
        .collect();
    for line in &lines {
        check_line(line);
    }
    let names: Vec<&str> = peers.iter().map(|l| l["impl"].as_str().unwrap()).collect();
    for expected in [
        "tokio-util-0.",
        "governor-0.",
        "governor-0.10.4/std-instant",
        "crossbeam-channel-0.",
        "rayon-1.",
    ] {
        assert!(
            names
                .iter()
                .any(|name| name.starts_with(expected) || name.contains(expected)),
            "{expected} in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|name| name.contains("unknown")),
        "versions from the lockfile: {names:?}"
    );
}
