//! The child processes of `compare`: this binary with `--peers` (ctxkit and the Rust peers)
//! and the Go runner, run in alternating rounds; their lines, each with its round.

use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Stdio};

use super::line::{parse_output, Line};
use super::Opts;

/// The packages the Go runner builds against (Debian's).
const GO_INSTALL_HINT: &str =
    "apt-get install -y golang-go golang-golang-x-sync-dev golang-golang-x-time-dev";

/// Runs one child to the end, its stderr on ours; its stdout.
fn run_child(mut command: Command) -> Result<std::process::Output, std::io::Error> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
}

/// Runs this binary with `--peers` (ctxkit and the Rust peers); its lines.
fn run_rust(opts: &Opts) -> Result<Vec<Line>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let args = opts.rust_args();
    let who = format!("the Rust runner ({} {})", exe.display(), args.join(" "));
    let mut command = Command::new(&exe);
    command.args(&args);
    let output = run_child(command).map_err(|e| format!("cannot start {who}: {e}"))?;
    if output.status.code() == Some(NOTHING_SELECTED) {
        return Ok(Vec::new()); // `--only` matched none of its workloads
    }
    if !output.status.success() {
        return Err(format!("{who} failed ({})", output.status));
    }
    parse_output(&who, &output.stdout)
}

/// The exit status of a runner (ours and the Go one) whose `--only` matched no workload: not a
/// failure here, since a prefix may name workloads that only one of them has.
pub(crate) const NOTHING_SELECTED: i32 = 3;

/// What the Go runner gave in one round.
#[derive(Debug, PartialEq)]
pub(crate) enum GoOutcome {
    Lines(Vec<Line>),
    /// The runner is not there, or exited 127 (Go or its packages not installed).
    Missing(String),
}

/// Runs the Go runner at `runner` once per call of `opts.go_calls()`; its lines.
pub(crate) fn run_go(runner: &Path, opts: &Opts) -> Result<GoOutcome, String> {
    if !runner.exists() {
        return Ok(GoOutcome::Missing(format!(
            "the Go runner {} is not there",
            runner.display()
        )));
    }
    let mut lines = Vec::new();
    for args in opts.go_calls() {
        let who = format!("the Go runner ({} {})", runner.display(), args.join(" "));
        // A script runs through bash, so that a lost executable bit does not matter.
        let mut command = if runner.extension().is_some_and(|e| e == "sh") {
            let mut c = Command::new("bash");
            c.arg(runner);
            c
        } else {
            Command::new(runner)
        };
        command.args(&args);
        let output = match run_child(command) {
            Ok(output) => output,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Ok(GoOutcome::Missing(format!("cannot start {who}: {e}")))
            }
            Err(e) => return Err(format!("cannot start {who}: {e}")),
        };
        if output.status.code() == Some(127) {
            return Ok(GoOutcome::Missing(format!("{who} exited 127")));
        }
        if output.status.code() == Some(NOTHING_SELECTED) {
            continue;
        }
        if !output.status.success() {
            return Err(format!("{who} failed ({})", output.status));
        }
        lines.extend(parse_output(&who, &output.stdout)?);
    }
    Ok(GoOutcome::Lines(lines))
}

/// Runs every round; every line with its round (1-based), and whether Go was measured.
pub(super) fn collect(opts: &Opts) -> Result<(Vec<(usize, Line)>, bool), String> {
    let mut all = Vec::new();
    let mut go = !opts.no_go;
    let mut go_measured = false;
    for round in 1..=opts.rounds {
        // Odd rounds: Rust first; even rounds: Go first.
        let order = if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        for is_go in order {
            if !is_go {
                eprintln!(
                    "[compare] round {round}/{}: ctxkit and the Rust peers",
                    opts.rounds
                );
                all.extend(run_rust(opts)?.into_iter().map(|l| (round, l)));
            } else if go {
                eprintln!("[compare] round {round}/{}: Go", opts.rounds);
                match run_go(&opts.go_runner, opts)? {
                    GoOutcome::Lines(lines) => {
                        go_measured = true;
                        all.extend(lines.into_iter().map(|l| (round, l)));
                    }
                    GoOutcome::Missing(why) => {
                        eprintln!(
                            "[compare] no Go rows: {why} (Go not installed?); comparing the Rust \
                             rows alone. To include Go, install it first (as root): \
                             {GO_INSTALL_HINT}"
                        );
                        go = false;
                    }
                }
            }
        }
    }
    Ok((all, go_measured))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::compare::fixtures::{scratch, text};

    /// A shell script at `dir/name` with `body`.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
        path
    }

    #[test]
    fn go_missing_failing_or_printing_lines() {
        let dir = scratch("go-runner");
        let opts = Opts::parse(["--quick".to_owned()]).unwrap();
        let missing = dir.join("no-such-run.sh");
        assert!(matches!(run_go(&missing, &opts), Ok(GoOutcome::Missing(_))));
        let no_go = script(&dir, "no-go.sh", "exit 127");
        assert!(matches!(run_go(&no_go, &opts), Ok(GoOutcome::Missing(_))));
        let good = script(
            &dir,
            "good.sh",
            &format!(
                "[ \"$1\" = -quick ] || exit 3\necho '{}'",
                text("ctx.cancel_child", "go1.19", None, "ns_per_op", Some(200.0))
            ),
        );
        let Ok(GoOutcome::Lines(got)) = run_go(&good, &opts) else {
            panic!("lines expected");
        };
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].imp, "go1.19");
        let failing = script(&dir, "failing.sh", "exit 1");
        let err = run_go(&failing, &opts).unwrap_err();
        assert!(err.contains("failed"), "{err}");
        let garbage = script(&dir, "garbage.sh", "echo 'go: building...'");
        let err = run_go(&garbage, &opts).unwrap_err();
        assert!(err.contains("not a benchmark line"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
