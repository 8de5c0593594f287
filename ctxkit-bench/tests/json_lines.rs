//! The runner's output is the benchmark JSON lines: one object per line with `workload`,
//! `impl`, `metric`, `value` (a number, or null with a note saying why), `min`, `max`, `runs`
//! and a `note`; ctxkit's lines and, with `--peers`, the peers' lines, each naming its crate's
//! version. With `--scale`, the scale series instead: the same fields and an integer `n`
//! right after `impl`.

use std::process::Command;

use serde_json::Value;

/// Runs the runner (quick, on a few cheap workloads) and parses every line of its output.
fn lines(args: &[&str]) -> Vec<Value> {
    run(&[
        &[
            "--quick",
            "--only",
            "ctx.cancel_child,rate.allow,pool.squares_1m_w2",
        ],
        args,
    ]
    .concat())
}

/// Runs the runner with `args` and parses every line of its output.
fn run(args: &[&str]) -> Vec<Value> {
    raw(args).iter().map(|line| parse(line)).collect()
}

/// Runs the runner with `args`; its output's lines.
fn raw(args: &[&str]) -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_ctxkit-bench"))
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
        .map(String::from)
        .collect()
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
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
        assert!(line.get("n").is_none(), "no n on a regular line: {line}");
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

/// The scale lines of a quick `--scale` run on the two cheapest series (value depth, limiter
/// threads), with `extra` arguments: checked as every line, with a positive integer `n` as
/// the third key; and nothing but `scale.*` lines.
fn scale_lines(extra: &[&str]) -> Vec<Value> {
    let args = [
        &[
            "--quick",
            "--scale",
            "--only",
            "scale.value_depth,scale.limiter_threads",
        ],
        extra,
    ]
    .concat();
    let mut lines = Vec::new();
    for raw in raw(&args) {
        let line = parse(&raw);
        check_line(&line);
        assert!(
            line["workload"].as_str().unwrap().starts_with("scale."),
            "{line}"
        );
        assert!(
            line["n"].as_u64().is_some_and(|n| n > 0),
            "a positive integer n in {line}"
        );
        assert!(
            raw.find("\"impl\":") < raw.find(",\"n\":")
                && raw.find(",\"n\":") < raw.find("\"metric\":"),
            "n right after impl in {raw}"
        );
        lines.push(line);
    }
    lines
}

/// The `n` of the lines of `workload` by `implementation`, in order.
fn points(lines: &[Value], workload: &str, implementation: &str) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l["workload"] == workload && l["impl"] == implementation)
        .map(|l| l["n"].as_u64().unwrap())
        .collect()
}

#[test]
fn scale_series_alone() {
    let lines = scale_lines(&[]);
    for line in &lines {
        assert!(
            line["impl"].as_str().unwrap().starts_with("ctxkit"),
            "{line}"
        );
    }
    let depths: Vec<u64> = (0..=10).map(|i| 1 << i).collect();
    assert_eq!(points(&lines, "scale.value_depth", "ctxkit"), depths);
    assert_eq!(
        points(&lines, "scale.limiter_threads", "ctxkit"),
        [1, 2, 3, 4]
    );
    assert_eq!(lines.len(), depths.len() + 4, "no other lines");
}

#[test]
fn scale_series_with_the_peers() {
    let lines = scale_lines(&["--peers"]);
    let depths: Vec<u64> = (0..=10).map(|i| 1 << i).collect();
    assert_eq!(points(&lines, "scale.value_depth", "ctxkit"), depths);
    let value_impls: Vec<&str> = lines
        .iter()
        .filter(|l| l["workload"] == "scale.value_depth")
        .map(|l| l["impl"].as_str().unwrap())
        .collect();
    assert!(
        value_impls.iter().all(|i| *i == "ctxkit"),
        "value_depth has no peer: {value_impls:?}"
    );
    let limiter_impls: Vec<&str> = lines
        .iter()
        .filter(|l| l["workload"] == "scale.limiter_threads")
        .map(|l| l["impl"].as_str().unwrap())
        .collect();
    let governor = limiter_impls
        .iter()
        .find(|i| i.starts_with("governor-0.") && !i.contains('/'))
        .expect("a governor line");
    for implementation in [
        "ctxkit".to_owned(),
        (*governor).to_owned(),
        format!("{governor}/std-instant"),
    ] {
        assert_eq!(
            points(&lines, "scale.limiter_threads", &implementation),
            [1, 2, 3, 4],
            "{implementation}"
        );
    }
    assert!(
        !limiter_impls.iter().any(|name| name.contains("unknown")),
        "versions from the lockfile: {limiter_impls:?}"
    );
}

#[test]
fn an_only_that_matches_nothing_says_so_and_exits_3() {
    let output = Command::new(env!("CARGO_BIN_EXE_ctxkit-bench"))
        .args(["--quick", "--only", "no.such.workload"])
        .output()
        .expect("the runner starts");
    assert_eq!(output.status.code(), Some(3));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no workload matches --only"));
}

/// `--only tower.`: each tower workload prints its baseline (`none`) beside ctxkit-tower's
/// forms, and an `_added` line per form; nothing else.
#[test]
fn tower_lines_pair_each_layer_with_its_baseline() {
    let lines = run(&["--quick", "--only", "tower."]);
    let forms = |workload: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l["workload"] == workload)
            .map(|l| l["impl"].as_str().unwrap().to_owned())
            .collect()
    };
    for line in &lines {
        assert!(
            line["workload"].as_str().unwrap().starts_with("tower."),
            "{line}"
        );
        if line["value"].is_null() {
            // Only the two-CPU workloads, on a machine that gives the process one CPU.
            assert!(
                line["workload"]
                    .as_str()
                    .unwrap()
                    .starts_with("tower.hello_2cpu_"),
                "{line}"
            );
            assert!(line["note"].is_string(), "{line}");
        } else {
            check_line(line);
        }
    }
    assert_eq!(
        forms("tower.server_layer_cpu"),
        ["none", "ctxkit-tower/server"]
    );
    assert_eq!(forms("tower.server_layer_added"), ["ctxkit-tower/server"]);
    assert_eq!(
        forms("tower.client_layer_cpu"),
        ["none", "ctxkit-tower/client"]
    );
    assert_eq!(forms("tower.client_layer_added"), ["ctxkit-tower/client"]);
    let all = [
        "none",
        "ctxkit-tower/server",
        "ctxkit-tower/client",
        "ctxkit-tower/client+server",
    ];
    for prefix in ["tower.hello", "tower.hello_2cpu"] {
        for what in ["latency", "latency_p99", "cpu"] {
            assert_eq!(forms(&format!("{prefix}_{what}")), all, "{prefix}_{what}");
        }
        for what in ["latency_added", "cpu_added"] {
            assert_eq!(
                forms(&format!("{prefix}_{what}")),
                all[1..],
                "{prefix}_{what}"
            );
        }
    }
    assert_eq!(lines.len(), 6 + 2 * (3 * 4 + 2 * 3), "no other lines");
}

/// The `impl`s of `workload`'s lines, in order.
fn impls<'a>(lines: &'a [Value], workload: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|l| l["workload"] == workload)
        .map(|l| l["impl"].as_str().unwrap())
        .collect()
}

/// Whether `name` is an executable file on the PATH.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// `rate.keyed_*`: ctxkit's KeyedLimiter and governor's keyed limiter on both clocks, from one
/// thread and from two; `rate.redis_allow*`: ctxkit-redis's two forms, each with its
/// decisions a second and its p50 and p99 latencies, where `redis-server` is installed (else
/// no line).
#[test]
fn keyed_and_redis_lines() {
    let lines = run(&["--quick", "--peers", "--only", "rate.keyed,rate.redis"]);
    for line in &lines {
        check_line(line);
    }
    for workload in [
        "rate.keyed_allow_1k_keys",
        "rate.keyed_allow_1k_keys_2threads",
    ] {
        let names = impls(&lines, workload);
        assert_eq!(names.len(), 3, "{workload}: {names:?}");
        assert_eq!(names[0], "ctxkit", "{workload}: {names:?}");
        assert!(names[1].starts_with("governor-0.") && !names[1].contains('/'));
        assert_eq!(names[2], format!("{}/std-instant", names[1]));
    }
    let redis_forms: &[&str] = if on_path("redis-server") {
        &["ctxkit-redis/2clients", "ctxkit-redis/64tasks"]
    } else {
        &[]
    };
    for (workload, metric) in [
        ("rate.redis_allow", "ops_per_s"),
        ("rate.redis_allow_p50", "us"),
        ("rate.redis_allow_p99", "us"),
    ] {
        assert_eq!(impls(&lines, workload), redis_forms, "{workload}");
        for line in lines.iter().filter(|l| l["workload"] == workload) {
            assert_eq!(line["metric"], metric, "{line}");
        }
    }
    assert_eq!(lines.len(), 6 + 3 * redis_forms.len(), "no other lines");
}

/// Without `redis-server` on the PATH, `rate.redis_allow` prints no line, says why in one line
/// on stderr, and the run succeeds.
#[test]
fn redis_allow_without_redis_server_prints_nothing_and_succeeds() {
    let output = Command::new(env!("CARGO_BIN_EXE_ctxkit-bench"))
        .args(["--quick", "--only", "rate.redis"])
        .env("PATH", "")
        .output()
        .expect("the runner starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(output.stdout.is_empty());
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("rate.redis_allow skipped"))
            .count(),
        1,
        "{stderr}"
    );
}

/// `ctx.after_func_10k` is two workloads, one line each per implementation: ctxkit's two
/// (`after_func`, and `after_func_async` as `ctxkit/after_func_async`) and, with `--peers`,
/// the two forms of tokio-util's token.
#[test]
fn after_func_prints_two_workloads_per_implementation() {
    let lines = run(&["--quick", "--peers", "--only", "ctx.after_func_10k"]);
    for line in &lines {
        check_line(line);
    }
    for workload in [
        "ctx.after_func_10k_cancel_return",
        "ctx.after_func_10k_all_ran",
    ] {
        let names = impls(&lines, workload);
        assert_eq!(names.len(), 4, "{workload}: {names:?}");
        assert_eq!(names[0], "ctxkit", "{workload}: {names:?}");
        assert_eq!(names[1], "ctxkit/after_func_async", "{workload}: {names:?}");
        for suffix in ["/spawn_blocking", "/async-sleep"] {
            assert!(
                names
                    .iter()
                    .any(|n| n.starts_with("tokio-util-0.") && n.ends_with(suffix)),
                "{workload}: {suffix} in {names:?}"
            );
        }
    }
    assert_eq!(lines.len(), 8, "no other lines");
}

/// `ctx.timeout_awaited_100k` has ctxkit's line and, with `--peers`, tokio's `timeout` and the
/// same request stitched from a tokio-util child token and tokio's `timeout` (each form's
/// request must win its race: the runner fails if one timed out or was cancelled).
#[test]
fn timeout_awaited_prints_ctxkit_tokio_and_the_stitched_request() {
    let lines = run(&["--quick", "--peers", "--only", "ctx.timeout_awaited"]);
    for line in &lines {
        check_line(line);
    }
    let names = impls(&lines, "ctx.timeout_awaited_100k");
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(names[0], "ctxkit", "{names:?}");
    assert!(names[1].starts_with("tokio-1."), "{names:?}");
    assert!(
        names[2].starts_with("tokio-util-0.") && names[2].ends_with("+tokio-timeout"),
        "{names:?}"
    );
    assert_eq!(lines.len(), 3, "no other lines");
}

/// A `--scale-bytes-run` child (what `scale.group_bytes` and `scale.deadline_bytes` start)
/// prints its two figures and exits 0, though it prints no JSON line.
#[test]
fn a_bytes_run_child_prints_its_figures_and_succeeds() {
    for form in [
        "deadline/bare",
        "deadline/ctxkit",
        "deadline/tokio",
        "deadline/stitched",
        "joinset",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_ctxkit-bench"))
            .args(["--scale-bytes-run", form, "1000"])
            .output()
            .expect("the runner starts");
        assert!(
            output.status.success(),
            "{form}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).expect("UTF-8");
        let figures: Vec<f64> = text
            .split_whitespace()
            .map(|f| f.parse().expect("a number"))
            .collect();
        assert_eq!(figures.len(), 2, "{form}: {text:?}");
        assert!(figures[0] > 0.0 && figures[1] > 0.0, "{form}: {text:?}");
    }
}
