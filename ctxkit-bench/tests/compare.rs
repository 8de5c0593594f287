//! `ctxkit-bench compare`: runs this binary (`--peers`) and the Go runner in rounds as child
//! processes and prints one markdown table. Quick, on cheap workloads; Go is either left out
//! or stood in for by small scripts, so these tests do not need Go.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn compare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctxkit-bench"))
        .arg("compare")
        .args(args)
        .output()
        .expect("the runner starts")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8")
}

/// The table row of `workload` and `imp`, split into trimmed cells.
fn row(table: &str, workload: &str, imp: &str) -> Vec<String> {
    table
        .lines()
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.len() > 2 && cells[0] == workload && cells[1] == imp)
        .unwrap_or_else(|| panic!("no row {workload} | {imp} in\n{table}"))
}

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctxkit-compare-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A stand-in Go runner: a bash script with `body`.
fn go_runner(dir: &Path, body: &str) -> String {
    let path = dir.join("run.sh");
    std::fs::write(&path, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn rust_rows_alone_with_no_go() {
    let output = compare(&[
        "--quick",
        "--rounds",
        "1",
        "--no-go",
        "--only",
        "ctx.cancel_child,rate.allow",
    ]);
    let table = stdout(&output);
    assert!(
        table.contains(
            "| workload | impl | metric | median | spread (rounds) | vs Go | vs best peer |"
        ),
        "{table}"
    );
    for (workload, imp) in [
        ("ctx.cancel_child", "ctxkit"),
        ("rate.allow", "ctxkit"),
        ("rate.allow_contended_2", "ctxkit"),
    ] {
        let cells = row(&table, workload, imp);
        assert!(cells[3].parse::<f64>().is_ok(), "a median: {cells:?}");
        assert!(cells[4].ends_with("(1/1)"), "one round: {cells:?}");
        assert_eq!(cells[5], "", "no Go: {cells:?}");
        assert!(
            cells[6].split(' ').next().unwrap().parse::<f64>().is_ok(),
            "a ratio to the best peer: {cells:?}"
        );
    }
    let peers: Vec<&str> = table
        .lines()
        .filter(|l| {
            l.starts_with("| ctx.cancel_child | tokio-util-")
                || l.starts_with("| rate.allow | governor-")
        })
        .collect();
    assert!(peers.len() >= 2, "the peers' rows: {table}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("no Go rows"), "{stderr}");
}

#[test]
fn go_rows_alternating_rounds_and_raw_lines() {
    let dir = scratch("go");
    let runner = go_runner(
        &dir,
        r#"echo "go runner $*" >&2
echo '{"workload":"ctx.cancel_child","impl":"go1.19","metric":"ns_per_op","value":1000000.0,"min":1.0,"max":2000000.0,"runs":7,"note":"stand-in"}'"#,
    );
    let raw = dir.join("raw.jsonl");
    let output = compare(&[
        "--quick",
        "--only",
        "ctx.cancel_child",
        "--go-runner",
        &runner,
        "--raw",
        raw.to_str().unwrap(),
    ]);
    let table = stdout(&output);
    let go = row(&table, "ctx.cancel_child", "go1.19");
    assert_eq!(go[3], "1000000", "{go:?}");
    assert_eq!(go[4], "1000000–1000000 (2/2)", "{go:?}");
    let ctxkit = row(&table, "ctx.cancel_child", "ctxkit");
    assert!(ctxkit[5].ends_with(" (go1.19)"), "{ctxkit:?}");
    let ratio: f64 = ctxkit[5].split(' ').next().unwrap().parse().unwrap();
    assert!(ratio > 0.0 && ratio < 1.0, "{ctxkit:?}");
    // Round 1 runs Rust first, round 2 Go first; the Go runner got -quick and the prefix.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let at = |s: &str| stderr.find(s).unwrap_or_else(|| panic!("{s} in {stderr}"));
    assert!(at("round 1/2: ctxkit") < at("round 1/2: Go"));
    assert!(at("round 2/2: Go") < at("round 2/2: ctxkit"));
    assert!(
        stderr.contains("go runner -quick -only ctx.cancel_child"),
        "{stderr}"
    );
    let raw = std::fs::read_to_string(&raw).unwrap();
    let rounds: Vec<(String, u64)> = raw
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["impl"].as_str().unwrap().to_owned(),
                v["round"].as_u64().unwrap(),
            )
        })
        .collect();
    for round in [1, 2] {
        assert!(rounds.contains(&("go1.19".to_owned(), round)), "{raw}");
        assert!(rounds.contains(&("ctxkit".to_owned(), round)), "{raw}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn go_not_installed_is_said_once_and_the_rust_rows_stay() {
    let dir = scratch("no-go");
    let runner = go_runner(&dir, "exit 127");
    let output = compare(&[
        "--quick",
        "--only",
        "ctx.cancel_child",
        "--go-runner",
        &runner,
    ]);
    let table = stdout(&output);
    row(&table, "ctx.cancel_child", "ctxkit");
    assert!(table.contains("no Go rows"), "{table}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let hint = "apt-get install -y golang-go golang-golang-x-sync-dev golang-golang-x-time-dev";
    assert_eq!(stderr.matches(hint).count(), 1, "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_line_or_a_failed_child_is_an_error() {
    let dir = scratch("bad");
    for (body, says) in [
        ("echo 'building...'", "not a benchmark line"),
        ("exit 1", "failed"),
    ] {
        let runner = go_runner(&dir, body);
        let output = compare(&[
            "--quick",
            "--rounds",
            "1",
            "--only",
            "ctx.cancel_child",
            "--go-runner",
            &runner,
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("compare: error:") && stderr.contains(says),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let output = compare(&["--rounds", "none"]);
    assert_eq!(output.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_prefix_that_matches_nothing_or_charts_without_scale_is_refused() {
    let output = compare(&[
        "--quick",
        "--rounds",
        "1",
        "--no-go",
        "--only",
        "no.such.workload",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no workload matches --only no.such.workload"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "no table for nothing");

    let output = compare(&["--quick", "--charts", "charts-here"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("add --scale"));
    assert!(!Path::new("charts-here").exists());

    let output = compare(&["--help"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("usage: ctxkit-bench compare"));
}

#[test]
fn a_prefix_one_runner_lacks_leaves_the_others_rows() {
    let dir = scratch("prefix-only-in-rust");
    // A Go runner that, like the real one, exits 3 when -only matches none of its workloads.
    let runner = go_runner(
        &dir,
        "echo 'bench/go: no workload matches -only' >&2\nexit 3\n",
    );
    let table = stdout(&compare(&[
        "--quick",
        "--rounds",
        "1",
        "--only",
        "ctx.cancel_child",
        "--go-runner",
        &runner,
    ]));
    assert_eq!(row(&table, "ctx.cancel_child", "ctxkit")[2], "ns_per_op");
}
