//! `ctxkit-bench compare`: runs ctxkit with its Rust peers (this binary, `--peers`) and the Go
//! runner (`bench/go/run.sh`) back to back, in alternating rounds, and prints one markdown
//! table: per workload (and `n`, for the scale series) and implementation, the median over
//! rounds of each process's median, the spread of those per-round medians, and ctxkit's cost
//! against Go's best and the best Rust peer's.
//!
//! ```text
//! ctxkit-bench compare [--rounds N] [--quick] [--only P[,P]] [--scale] [--no-go]
//!                      [--go-runner PATH] [--charts DIR] [--raw FILE]
//! ```
//!
//! The children's stderr (their progress) goes to ours; their stdout is nothing but the JSON
//! lines of `WORKLOADS.md`. If Go is not installed (the runner is missing or exits 127), the
//! table has the Rust rows alone.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::chart;

/// The packages the Go runner builds against (Debian's).
const GO_INSTALL_HINT: &str =
    "apt-get install -y golang-go golang-golang-x-sync-dev golang-golang-x-time-dev";

const USAGE: &str = "usage: ctxkit-bench compare [--rounds N] [--quick] [--only P[,P]] [--scale] \
                     [--no-go] [--go-runner PATH] [--charts DIR] [--raw FILE]";

// ===== command line =====

/// What `compare` was asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Opts {
    pub(crate) rounds: usize,
    pub(crate) quick: bool,
    pub(crate) only: Vec<String>,
    pub(crate) scale: bool,
    pub(crate) no_go: bool,
    pub(crate) go_runner: PathBuf,
    pub(crate) charts: Option<PathBuf>,
    pub(crate) raw: Option<PathBuf>,
}

impl Opts {
    /// Parses the arguments after `compare`.
    pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Opts, String> {
        let mut rounds = None;
        let mut opts = Opts {
            rounds: 0,
            quick: false,
            only: Vec::new(),
            scale: false,
            no_go: false,
            go_runner: Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/go/run.sh"),
            charts: None,
            raw: None,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value =
                |flag: &str| args.next().ok_or(format!("{flag} needs a value; {USAGE}"));
            match arg.as_str() {
                "--rounds" => {
                    let text = value("--rounds")?;
                    match text.parse::<usize>() {
                        Ok(n) if n > 0 => rounds = Some(n),
                        _ => {
                            return Err(format!("--rounds takes a positive integer, not {text:?}"))
                        }
                    }
                }
                "--quick" | "-quick" => opts.quick = true,
                "--scale" | "-scale" => opts.scale = true,
                "--no-go" => opts.no_go = true,
                "--only" | "-only" => opts.only.extend(
                    value("--only")?
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(String::from),
                ),
                "--go-runner" => opts.go_runner = PathBuf::from(value("--go-runner")?),
                "--charts" => opts.charts = Some(PathBuf::from(value("--charts")?)),
                "--raw" => opts.raw = Some(PathBuf::from(value("--raw")?)),
                "--help" | "-h" => return Err(USAGE.into()),
                other => return Err(format!("unknown argument {other:?}; {USAGE}")),
            }
        }
        opts.rounds = rounds.unwrap_or(if opts.quick { 2 } else { 3 });
        Ok(opts)
    }

    /// The arguments of this binary's child run (ctxkit and the peers).
    fn rust_args(&self) -> Vec<String> {
        let mut args = vec!["--peers".to_owned()];
        if self.quick {
            args.push("--quick".into());
        }
        if !self.only.is_empty() {
            args.push("--only".into());
            args.push(self.only.join(","));
        }
        if self.scale {
            args.push("--scale".into());
        }
        args
    }

    /// The argument lists of the Go runner's calls in one round: one call per `--only` prefix
    /// (a runner that takes a single prefix and one that takes a list give the same lines
    /// that way), a prefix that another prefix already covers left out so no line comes twice.
    fn go_calls(&self) -> Vec<Vec<String>> {
        let mut base = Vec::new();
        if self.quick {
            base.push("-quick".to_owned());
        }
        if self.scale {
            base.push("-scale".to_owned());
        }
        let prefixes: Vec<&String> = self
            .only
            .iter()
            .enumerate()
            .filter(|&(i, p)| {
                !self
                    .only
                    .iter()
                    .enumerate()
                    .any(|(j, q)| j != i && p.starts_with(q.as_str()) && (p != q || j < i))
            })
            .map(|(_, p)| p)
            .collect();
        if prefixes.is_empty() {
            return vec![base];
        }
        prefixes
            .into_iter()
            .map(|p| {
                let mut args = base.clone();
                args.push("-only".into());
                args.push(p.clone());
                args
            })
            .collect()
    }
}

// ===== lines =====

/// One JSON line of a runner.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub(crate) workload: String,
    pub(crate) imp: String,
    /// The scale series' x.
    pub(crate) n: Option<u64>,
    pub(crate) metric: String,
    /// `None` for `"value":null` (a workload the implementation cannot express).
    pub(crate) value: Option<f64>,
    /// The line as printed.
    pub(crate) text: String,
}

impl Line {
    /// Parses one line of a runner's stdout.
    pub(crate) fn parse(text: &str) -> Result<Line, String> {
        let object: Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON ({e}): {text}"))?;
        let Some(object) = object.as_object() else {
            return Err(format!("not a JSON object: {text}"));
        };
        let string = |key: &str| {
            object
                .get(key)
                .and_then(Value::as_str)
                .map(String::from)
                .ok_or(format!("no string {key:?}: {text}"))
        };
        let value = match object.get("value") {
            Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .filter(|v| v.is_finite())
                    .ok_or(format!("\"value\" is neither a number nor null: {text}"))?,
            ),
            None => return Err(format!("no \"value\": {text}")),
        };
        let n = match object.get("n") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or(format!("\"n\" is not a non-negative integer: {text}"))?,
            ),
        };
        Ok(Line {
            workload: string("workload")?,
            imp: string("impl")?,
            n,
            metric: string("metric")?,
            value,
            text: text.trim().to_owned(),
        })
    }
}

/// Parses a runner's whole stdout (blank lines skipped); `who` names the runner in errors.
fn parse_output(who: &str, stdout: &[u8]) -> Result<Vec<Line>, String> {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            Line::parse(l)
                .map_err(|e| format!("{who} printed a line that is not a benchmark line: {e}"))
        })
        .collect()
}

// ===== children =====

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
    if !output.status.success() {
        return Err(format!("{who} failed ({})", output.status));
    }
    parse_output(&who, &output.stdout)
}

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
        if !output.status.success() {
            return Err(format!("{who} failed ({})", output.status));
        }
        lines.extend(parse_output(&who, &output.stdout)?);
    }
    Ok(GoOutcome::Lines(lines))
}

/// Runs every round; every line with its round (1-based), and whether Go was measured.
fn collect(opts: &Opts) -> Result<(Vec<(usize, Line)>, bool), String> {
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

// ===== aggregation =====

/// Who an implementation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Ctxkit,
    Go,
    Peer,
}

/// ctxkit's lines start with `ctxkit`; Go's with `go` and a version (`go1.19`,
/// `go1.19-buffered`; not `governor`); every other implementation is a Rust peer.
pub(crate) fn kind(imp: &str) -> Kind {
    if imp.starts_with("ctxkit") {
        Kind::Ctxkit
    } else if imp
        .strip_prefix("go")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    {
        Kind::Go
    } else {
        Kind::Peer
    }
}

/// What a value costs, lower better: the value for lower-is-better metrics, 1/value for
/// throughput, |value| for a signed error; `None` for a metric this table does not know.
pub(crate) fn cost(metric: &str, value: f64) -> Option<f64> {
    match metric {
        "mops_per_s" => Some(1.0 / value),
        "error_pct" => Some(value.abs()),
        "ns_per_op" | "ms" | "us" | "bytes" | "ns_per_task" | "ns_per_job" | "ns_per_child"
        | "bytes_per_task" | "cpu_pct" => Some(value),
        _ => None,
    }
}

/// The median (the mean of the middle two for an even count).
fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    })
}

/// A comparison of a ctxkit row with another implementation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ratio {
    /// ctxkit's cost / the other's cost: below 1, ctxkit is better.
    pub(crate) ratio: f64,
    /// The implementation compared with.
    pub(crate) against: String,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) workload: String,
    pub(crate) n: Option<u64>,
    pub(crate) imp: String,
    pub(crate) metric: String,
    /// Each round's median (rounds that printed null left out).
    pub(crate) per_round: Vec<f64>,
    /// The median of `per_round`; `None` if no round had a value.
    pub(crate) median: Option<f64>,
    pub(crate) vs_go: Option<Ratio>,
    pub(crate) vs_peer: Option<Ratio>,
}

impl Row {
    fn cost(&self) -> Option<f64> {
        self.median.and_then(|m| cost(&self.metric, m))
    }

    fn spread(&self) -> Option<(f64, f64)> {
        let min = self.per_round.iter().copied().reduce(f64::min)?;
        let max = self.per_round.iter().copied().reduce(f64::max)?;
        Some((min, max))
    }
}

/// The rows of the table, grouped by workload (in the order first seen), then `n` (ascending),
/// then ctxkit's forms, Go's, the peers' (each in the order first seen).
pub(crate) fn aggregate(lines: &[(usize, Line)]) -> Vec<Row> {
    /// (workload, n, impl, metric).
    type Key<'a> = (&'a str, Option<u64>, &'a str, &'a str);
    let mut workloads: Vec<&str> = Vec::new();
    let mut keys: Vec<Key<'_>> = Vec::new();
    let mut values: HashMap<Key<'_>, Vec<(usize, f64)>> = HashMap::new();
    for (round, line) in lines {
        if !workloads.contains(&line.workload.as_str()) {
            workloads.push(&line.workload);
        }
        let key = (
            line.workload.as_str(),
            line.n,
            line.imp.as_str(),
            line.metric.as_str(),
        );
        let entry = values.entry(key).or_insert_with(|| {
            keys.push(key);
            Vec::new()
        });
        if let Some(v) = line.value {
            entry.push((*round, v));
        }
    }
    let first_seen = |key: &Key<'_>| keys.iter().position(|k| k == key);
    let mut order = keys.clone();
    order.sort_by_key(|key| {
        (
            workloads.iter().position(|w| *w == key.0),
            key.1,
            kind(key.2),
            first_seen(key),
        )
    });
    let mut rows: Vec<Row> = order
        .into_iter()
        .map(|key| {
            // Each round's figure: the process's median, or the median of a round's repeats.
            let mut rounds: Vec<usize> = values[&key].iter().map(|(r, _)| *r).collect();
            rounds.sort_unstable();
            rounds.dedup();
            let per_round: Vec<f64> = rounds
                .iter()
                .filter_map(|r| {
                    let in_round: Vec<f64> = values[&key]
                        .iter()
                        .filter(|(q, _)| q == r)
                        .map(|(_, v)| *v)
                        .collect();
                    median(&in_round)
                })
                .collect();
            Row {
                workload: key.0.to_owned(),
                n: key.1,
                imp: key.2.to_owned(),
                metric: key.3.to_owned(),
                median: median(&per_round),
                per_round,
                vs_go: None,
                vs_peer: None,
            }
        })
        .collect();
    // The ratios: against the cheapest Go row and the cheapest peer row of the same workload,
    // n and metric.
    let best = |rows: &[Row], of: &Row, k: Kind| -> Option<(f64, String)> {
        rows.iter()
            .filter(|r| {
                r.workload == of.workload
                    && r.n == of.n
                    && r.metric == of.metric
                    && kind(&r.imp) == k
            })
            .filter_map(|r| {
                r.cost()
                    .filter(|c| c.is_finite() && *c > 0.0)
                    .map(|c| (c, r.imp.clone()))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
    };
    let ratios: Vec<(Option<Ratio>, Option<Ratio>)> = rows
        .iter()
        .map(|row| {
            if kind(&row.imp) != Kind::Ctxkit {
                return (None, None);
            }
            let Some(own) = row.cost().filter(|c| c.is_finite()) else {
                return (None, None);
            };
            let against = |k| {
                best(&rows, row, k).map(|(c, imp)| Ratio {
                    ratio: own / c,
                    against: imp,
                })
            };
            (against(Kind::Go), against(Kind::Peer))
        })
        .collect();
    for (row, (go, peer)) in rows.iter_mut().zip(ratios) {
        row.vs_go = go;
        row.vs_peer = peer;
    }
    rows
}

// ===== output =====

/// A figure with about three significant digits.
pub(crate) fn fmt_value(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = x.abs().log10().floor() as i32;
    let decimals = (2 - digits).clamp(0, 6) as usize;
    format!("{x:.decimals$}")
}

/// A table cell: a `|` escaped so it does not end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn fmt_ratio(ratio: &Option<Ratio>) -> String {
    match ratio {
        // Two decimals, or three significant digits below 0.1 (so that no ratio reads 0.00).
        Some(r) if r.ratio.abs() >= 0.1 => format!("{:.2} ({})", r.ratio, r.against),
        Some(r) => format!("{} ({})", fmt_value(r.ratio), r.against),
        None => String::new(),
    }
}

/// The markdown table, with its legend.
pub(crate) fn table(rows: &[Row], rounds: usize) -> String {
    let with_n = rows.iter().any(|r| r.n.is_some());
    let mut out = String::new();
    let n_head = if with_n { " n |" } else { "" };
    let n_rule = if with_n { "---:|" } else { "" };
    let _ = writeln!(
        out,
        "| workload |{n_head} impl | metric | median | spread (rounds) | vs Go | vs best peer |"
    );
    let _ = writeln!(out, "|---|{n_rule}---|---|---:|---|---|---|");
    for row in rows {
        let n = match (with_n, row.n) {
            (false, _) => String::new(),
            (true, Some(n)) => format!(" {n} |"),
            (true, None) => " |".to_owned(),
        };
        let (median, spread) = match (row.median, row.spread()) {
            (Some(m), Some((lo, hi))) => (
                fmt_value(m),
                format!(
                    "{}–{} ({}/{rounds})",
                    fmt_value(lo),
                    fmt_value(hi),
                    row.per_round.len()
                ),
            ),
            _ => ("n/a".to_owned(), String::new()),
        };
        let _ = writeln!(
            out,
            "| {} |{n} {} | {} | {median} | {spread} | {} | {} |",
            cell(&row.workload),
            cell(&row.imp),
            cell(&row.metric),
            cell(&fmt_ratio(&row.vs_go)),
            cell(&fmt_ratio(&row.vs_peer))
        );
    }
    out.push_str(
        "\n*median*: the median over rounds of each process's median (the line's `value`). \
         *spread*: the lowest and highest of those per-round medians, and how many of the rounds \
         measured it. *vs Go*, *vs best peer* (ctxkit rows only): ctxkit's cost / the other's cost \
         for the same workload and metric, against the Go implementation and the Rust peer (neither \
         ctxkit nor Go) with the lowest median cost, named in parentheses; the cost is the value \
         for lower-is-better metrics, 1/value for `mops_per_s`, |value| for `error_pct`, so below 1 \
         means ctxkit is better. *n/a*: the implementation cannot express the workload (its note \
         is in the `--raw` lines). Figures from one machine compare only within one run.\n",
    );
    out
}

/// The points of one scale series and metric: per implementation, (n, median) in n order.
pub(crate) struct Series {
    pub(crate) workload: String,
    pub(crate) metric: String,
    pub(crate) lines: Vec<(String, Vec<(u64, f64)>)>,
    /// (impl, n) of the points an implementation printed without a value.
    pub(crate) absent: Vec<(String, u64)>,
}

/// The scale series among the rows (the rows that have an `n`).
pub(crate) fn series(rows: &[Row]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for row in rows {
        let Some(n) = row.n else {
            continue;
        };
        let index = match out
            .iter()
            .position(|s| s.workload == row.workload && s.metric == row.metric)
        {
            Some(i) => i,
            None => {
                out.push(Series {
                    workload: row.workload.clone(),
                    metric: row.metric.clone(),
                    lines: Vec::new(),
                    absent: Vec::new(),
                });
                out.len() - 1
            }
        };
        let Some(m) = row.median else {
            out[index].absent.push((row.imp.clone(), n));
            continue;
        };
        let lines = &mut out[index].lines;
        match lines.iter_mut().find(|(imp, _)| *imp == row.imp) {
            Some((_, points)) => points.push((n, m)),
            None => lines.push((row.imp.clone(), vec![(n, m)])),
        }
    }
    for s in &mut out {
        s.lines.sort_by_key(|(imp, _)| kind(imp));
        for (_, points) in &mut s.lines {
            points.sort_by_key(|p| p.0);
        }
    }
    out
}

impl Series {
    /// The implementation of kind `k` with the lowest cost over the series' points: at each n
    /// its cost relative to the cheapest of that kind there, the median of those over its
    /// points (fair to a form that skips a point); ties go to the one with more points.
    pub(crate) fn best_of(&self, k: Kind) -> Option<&str> {
        let candidates: Vec<&(String, Vec<(u64, f64)>)> = self
            .lines
            .iter()
            .filter(|(imp, _)| kind(imp) == k)
            .collect();
        let c = |v: f64| cost(&self.metric, v).unwrap_or(v);
        let cheapest_at = |n: u64| {
            candidates
                .iter()
                .filter_map(|(_, points)| points.iter().find(|p| p.0 == n).map(|p| c(p.1)))
                .reduce(f64::min)
        };
        candidates
            .iter()
            .filter_map(|(imp, points)| {
                let relative: Vec<f64> = points
                    .iter()
                    .filter_map(|&(n, v)| cheapest_at(n).map(|best| c(v) / best))
                    .collect();
                median(&relative).map(|score| (score, points.len(), imp.as_str()))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, _, imp)| imp)
    }

    /// The lines a chart draws: every ctxkit form, Go's best, the best peer.
    pub(crate) fn charted(&self) -> Vec<&(String, Vec<(u64, f64)>)> {
        let go = self.best_of(Kind::Go);
        let peer = self.best_of(Kind::Peer);
        self.lines
            .iter()
            .filter(|(imp, _)| {
                kind(imp) == Kind::Ctxkit || Some(imp.as_str()) == go || Some(imp.as_str()) == peer
            })
            .collect()
    }

    /// The file name stem: `scale_cancel_fanout` for `scale.cancel_fanout`.
    fn stem(&self, metric_too: bool) -> String {
        let name = self
            .workload
            .strip_prefix("scale.")
            .unwrap_or(&self.workload);
        let clean = |s: &str| {
            s.chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        };
        if metric_too {
            format!("scale_{}_{}", clean(name), clean(&self.metric))
        } else {
            format!("scale_{}", clean(name))
        }
    }
}

/// `scale.md`: per series a markdown table, one row per implementation, one column per n.
pub(crate) fn scale_markdown(all: &[Series]) -> String {
    let mut out = String::from("# Scale series\n\nMedians over rounds; one column per n.\n");
    for s in all {
        let mut ns: Vec<u64> = s
            .lines
            .iter()
            .flat_map(|(_, p)| p.iter().map(|p| p.0))
            .chain(s.absent.iter().map(|a| a.1))
            .collect();
        ns.sort_unstable();
        ns.dedup();
        let _ = writeln!(out, "\n## {} ({})\n", s.workload, s.metric);
        let _ = writeln!(
            out,
            "| impl |{}",
            ns.iter().map(|n| format!(" {n} |")).collect::<String>()
        );
        let _ = writeln!(out, "|---|{}", "---:|".repeat(ns.len()));
        let mut imps: Vec<&str> = s.lines.iter().map(|(imp, _)| imp.as_str()).collect();
        for (imp, _) in &s.absent {
            if !imps.contains(&imp.as_str()) {
                imps.push(imp);
            }
        }
        imps.sort_by_key(|imp| kind(imp));
        for imp in imps {
            let points = s.lines.iter().find(|(i, _)| i == imp).map(|(_, p)| p);
            let cells: String = ns
                .iter()
                .map(
                    |n| match points.and_then(|p| p.iter().find(|p| p.0 == *n)) {
                        Some(p) => format!(" {} |", fmt_value(p.1)),
                        None if s.absent.contains(&(imp.to_owned(), *n)) => " n/a |".to_owned(),
                        None => " |".to_owned(),
                    },
                )
                .collect();
            let _ = writeln!(out, "| {} |{cells}", cell(imp));
        }
    }
    out
}

/// Writes `DIR/scale_<series>.svg` for each series and `DIR/scale.md`; the files written.
pub(crate) fn write_charts(dir: &Path, rows: &[Row]) -> Result<Vec<PathBuf>, String> {
    let all = series(rows);
    if all.is_empty() {
        eprintln!("[compare] --charts: no scale lines (they come with --scale); nothing drawn");
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for s in &all {
        let several_metrics = all.iter().filter(|o| o.workload == s.workload).count() > 1;
        let path = dir.join(format!("{}.svg", s.stem(several_metrics)));
        let lines: Vec<chart::ChartLine> = s
            .charted()
            .into_iter()
            .map(|(imp, points)| chart::ChartLine {
                label: imp.clone(),
                points: points.iter().map(|&(n, v)| (n as f64, v)).collect(),
            })
            .collect();
        if lines.is_empty() {
            eprintln!("[compare] {}: no values to draw", s.workload);
            continue;
        }
        let title = format!("{} ({}), median over rounds", s.workload, s.metric);
        let better = match s.metric.as_str() {
            "mops_per_s" => "higher is better",
            "error_pct" => "nearer 0 is better",
            _ => "lower is better",
        };
        let y_desc = format!("{} ({better})", s.metric);
        chart::svg(&path, &title, &y_desc, &lines)?;
        written.push(path);
    }
    let md = dir.join("scale.md");
    std::fs::write(&md, scale_markdown(&all))
        .map_err(|e| format!("cannot write {}: {e}", md.display()))?;
    written.push(md);
    Ok(written)
}

/// Writes every line collected, each with an added `"round"` field.
fn write_raw(path: &Path, lines: &[(usize, Line)]) -> Result<(), String> {
    let mut out = String::new();
    for (round, line) in lines {
        let body = line.text.trim_end().strip_suffix('}').unwrap_or(&line.text);
        let sep = if body.trim_end().ends_with('{') {
            ""
        } else {
            ","
        };
        let _ = writeln!(out, "{body}{sep}\"round\":{round}}}");
    }
    std::fs::write(path, out).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `compare` itself; the process's exit code.
pub(crate) fn main(args: impl IntoIterator<Item = String>) -> i32 {
    let opts = match Opts::parse(args) {
        Ok(opts) => opts,
        Err(message) => {
            eprintln!("{message}");
            return 2;
        }
    };
    match run(&opts) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("ctxkit-bench compare: error: {message}");
            1
        }
    }
}

fn run(opts: &Opts) -> Result<(), String> {
    let (lines, go_measured) = collect(opts)?;
    if let Some(path) = &opts.raw {
        write_raw(path, &lines)?;
    }
    let rows = aggregate(&lines);
    let mut out = format!(
        "ctxkit-bench compare: {} round{}{}{}, {}.\n\n",
        opts.rounds,
        if opts.rounds == 1 { "" } else { "s" },
        if opts.quick { ", quick" } else { "" },
        if opts.scale { ", scale series" } else { "" },
        if go_measured {
            "ctxkit, its Rust peers and Go"
        } else if opts.no_go {
            "ctxkit and its Rust peers (--no-go)"
        } else {
            "ctxkit and its Rust peers (no Go rows: the Go runner is missing or Go is not installed)"
        }
    );
    out.push_str(&table(&rows, opts.rounds));
    print!("{out}");
    if let Some(dir) = &opts.charts {
        for path in write_charts(dir, &rows)? {
            eprintln!("[compare] wrote {}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line as a runner prints it.
    fn text(workload: &str, imp: &str, n: Option<u64>, metric: &str, value: Option<f64>) -> String {
        let n = n.map(|n| format!("\"n\":{n},")).unwrap_or_default();
        let value = value.map_or("null".to_owned(), |v| v.to_string());
        format!(
            "{{\"workload\":\"{workload}\",\"impl\":\"{imp}\",{n}\"metric\":\"{metric}\",\
             \"value\":{value},\"min\":null,\"max\":null,\"runs\":7,\"note\":\"x\"}}"
        )
    }

    fn line(workload: &str, imp: &str, n: Option<u64>, metric: &str, value: Option<f64>) -> Line {
        Line::parse(&text(workload, imp, n, metric, value)).unwrap()
    }

    /// `(round, workload, impl, metric, value)` as lines.
    fn lines(spec: &[(usize, &str, &str, &str, f64)]) -> Vec<(usize, Line)> {
        spec.iter()
            .map(|&(round, w, imp, metric, v)| (round, line(w, imp, None, metric, Some(v))))
            .collect()
    }

    fn row<'a>(rows: &'a [Row], workload: &str, imp: &str) -> &'a Row {
        rows.iter()
            .find(|r| r.workload == workload && r.imp == imp)
            .unwrap_or_else(|| panic!("no row {workload} {imp} in {rows:#?}"))
    }

    /// A fresh scratch directory for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ctxkit-compare-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A shell script at `dir/name` with `body`.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
        path
    }

    #[test]
    fn parses_regular_scale_and_null_lines() {
        let l = line("ctx.cancel_child", "go1.19", None, "ns_per_op", Some(212.5));
        assert_eq!((l.n, l.value), (None, Some(212.5)));
        let l = line(
            "scale.cancel_fanout",
            "ctxkit/thread",
            Some(100000),
            "ns_per_child",
            None,
        );
        assert_eq!((l.n, l.value), (Some(100000), None));
        for bad in [
            "not json",
            "[1,2]",
            r#"{"workload":"w","metric":"ms","value":1}"#,
            r#"{"workload":"w","impl":"i","metric":"ms","value":"fast"}"#,
            r#"{"workload":"w","impl":"i","metric":"ms"}"#,
            r#"{"workload":"w","impl":"i","n":1.5,"metric":"ms","value":1}"#,
            r#"{"workload":"w","impl":"i","n":-3,"metric":"ms","value":1}"#,
        ] {
            assert!(Line::parse(bad).is_err(), "{bad}");
        }
        let err = parse_output("the Go runner", b"{\"a\":1}\n").unwrap_err();
        assert!(
            err.contains("the Go runner") && err.contains("not a benchmark line"),
            "{err}"
        );
        assert_eq!(parse_output("x", b"\n  \n").unwrap(), vec![]);
    }

    #[test]
    fn options() {
        let parse = |args: &[&str]| Opts::parse(args.iter().map(|a| a.to_string()));
        let opts = parse(&[]).unwrap();
        assert_eq!(opts.rounds, 3);
        assert!(opts.go_runner.ends_with("bench/go/run.sh"));
        assert_eq!(parse(&["--quick"]).unwrap().rounds, 2);
        assert_eq!(parse(&["--quick", "--rounds", "5"]).unwrap().rounds, 5);
        assert!(parse(&["--rounds", "0"]).is_err());
        assert!(parse(&["--rounds"]).is_err());
        assert!(parse(&["--frobnicate"]).is_err());
        let opts = parse(&["--only", "ctx,rate.allow", "--scale", "--quick"]).unwrap();
        assert_eq!(
            opts.rust_args(),
            ["--peers", "--quick", "--only", "ctx,rate.allow", "--scale"]
        );
        assert_eq!(
            opts.go_calls(),
            [
                vec!["-quick", "-scale", "-only", "ctx"],
                vec!["-quick", "-scale", "-only", "rate.allow"]
            ]
        );
        // A prefix that another covers (or a repeat) is not run twice.
        let opts = parse(&["--only", "rate.allow,ctx.cancel,rate,ctx.cancel"]).unwrap();
        assert_eq!(
            opts.go_calls(),
            [vec!["-only", "ctx.cancel"], vec!["-only", "rate"]]
        );
        assert_eq!(parse(&[]).unwrap().go_calls(), [Vec::<String>::new()]);
    }

    #[test]
    fn kinds() {
        assert_eq!(kind("ctxkit"), Kind::Ctxkit);
        assert_eq!(kind("ctxkit/async"), Kind::Ctxkit);
        assert_eq!(kind("go1.19"), Kind::Go);
        assert_eq!(kind("go1.19-x/time/rate"), Kind::Go);
        assert_eq!(kind("governor-0.10.4"), Kind::Peer);
        assert_eq!(kind("tokio-util-0.7.20"), Kind::Peer);
    }

    #[test]
    fn median_over_rounds_and_spread() {
        let rows = aggregate(&lines(&[
            (1, "ctx.cancel_child", "ctxkit", "ns_per_op", 10.0),
            (2, "ctx.cancel_child", "ctxkit", "ns_per_op", 30.0),
            (3, "ctx.cancel_child", "ctxkit", "ns_per_op", 20.0),
            (1, "ctx.cancel_child", "go1.19", "ns_per_op", 100.0),
            (2, "ctx.cancel_child", "go1.19", "ns_per_op", 200.0),
        ]));
        let ctxkit = row(&rows, "ctx.cancel_child", "ctxkit");
        assert_eq!(ctxkit.median, Some(20.0));
        assert_eq!(ctxkit.spread(), Some((10.0, 30.0)));
        assert_eq!(ctxkit.per_round.len(), 3);
        let go = row(&rows, "ctx.cancel_child", "go1.19");
        assert_eq!(
            go.median,
            Some(150.0),
            "an even count: the mean of the middle two"
        );
        assert_eq!(go.per_round.len(), 2);
        let table = table(&rows, 3);
        assert!(table.contains("| ctx.cancel_child | ctxkit | ns_per_op | 20.0 | 10.0–30.0 (3/3) | 0.13 (go1.19) |  |"), "{table}");
        assert!(
            table.contains("| ctx.cancel_child | go1.19 | ns_per_op | 150 | 100–200 (2/3) |  |  |"),
            "{table}"
        );
        assert!(!table.contains("| n |"), "no n column without scale lines");
    }

    #[test]
    fn ratios_lower_and_higher_is_better() {
        let rows = aggregate(&lines(&[
            (1, "rate.allow", "ctxkit", "ns_per_op", 50.0),
            (1, "rate.allow", "go1.19-x/time/rate", "ns_per_op", 100.0),
            (1, "rate.allow", "go1.19-other", "ns_per_op", 80.0),
            (1, "rate.allow", "governor-0.10.4", "ns_per_op", 10.0),
            (
                1,
                "rate.allow",
                "governor-0.10.4/std-instant",
                "ns_per_op",
                40.0,
            ),
            (1, "rate.allow_contended_2", "ctxkit", "mops_per_s", 20.0),
            (
                1,
                "rate.allow_contended_2",
                "go1.19-x/time/rate",
                "mops_per_s",
                10.0,
            ),
            (
                1,
                "rate.allow_contended_2",
                "governor-0.10.4",
                "mops_per_s",
                80.0,
            ),
            (
                1,
                "rate.allow_contended_2",
                "governor-0.10.4/std-instant",
                "mops_per_s",
                25.0,
            ),
            (1, "rate.wait_accuracy", "ctxkit", "error_pct", -2.0),
            (
                1,
                "rate.wait_accuracy",
                "go1.19-x/time/rate",
                "error_pct",
                4.0,
            ),
            (
                1,
                "rate.wait_accuracy",
                "governor-0.10.4",
                "error_pct",
                -1.0,
            ),
            (
                1,
                "rate.wait_accuracy",
                "governor-0.10.4/std-instant",
                "error_pct",
                3.0,
            ),
        ]));
        let r = row(&rows, "rate.allow", "ctxkit");
        let go = r.vs_go.as_ref().unwrap();
        assert_eq!(
            (go.ratio, go.against.as_str()),
            (50.0 / 80.0, "go1.19-other")
        );
        let peer = r.vs_peer.as_ref().unwrap();
        assert_eq!(
            (peer.ratio, peer.against.as_str()),
            (5.0, "governor-0.10.4")
        );
        // Throughput: the cost is 1/value, so the best peer is the fastest one.
        let r = row(&rows, "rate.allow_contended_2", "ctxkit");
        assert_eq!(r.vs_go.as_ref().unwrap().ratio, 0.5);
        let peer = r.vs_peer.as_ref().unwrap();
        assert_eq!(
            (peer.ratio, peer.against.as_str()),
            (4.0, "governor-0.10.4")
        );
        // A signed error: the cost is its size.
        let r = row(&rows, "rate.wait_accuracy", "ctxkit");
        assert_eq!(r.vs_go.as_ref().unwrap().ratio, 0.5);
        assert_eq!(r.vs_peer.as_ref().unwrap().ratio, 2.0);
        // Only ctxkit's rows have ratios.
        assert!(rows
            .iter()
            .filter(|r| kind(&r.imp) != Kind::Ctxkit)
            .all(|r| r.vs_go.is_none() && r.vs_peer.is_none()));
        // ctxkit first in each group, then Go, then the peers.
        let order: Vec<&str> = rows
            .iter()
            .filter(|r| r.workload == "rate.allow")
            .map(|r| r.imp.as_str())
            .collect();
        assert_eq!(
            order,
            [
                "ctxkit",
                "go1.19-x/time/rate",
                "go1.19-other",
                "governor-0.10.4",
                "governor-0.10.4/std-instant"
            ]
        );
    }

    #[test]
    fn without_go_and_with_null_lines() {
        let mut all = lines(&[
            (1, "ctx.cancel_child", "ctxkit", "ns_per_op", 50.0),
            (
                1,
                "ctx.cancel_child",
                "tokio-util-0.7.20",
                "ns_per_op",
                25.0,
            ),
        ]);
        all.push((
            1,
            line("ctx.value_d1", "tokio-util-0.7.20", None, "ns_per_op", None),
        ));
        all.push((
            2,
            line("ctx.value_d1", "tokio-util-0.7.20", None, "ns_per_op", None),
        ));
        all.push((
            1,
            line("ctx.value_d1", "ctxkit", None, "ns_per_op", Some(3.0)),
        ));
        let rows = aggregate(&all);
        let r = row(&rows, "ctx.cancel_child", "ctxkit");
        assert_eq!(r.vs_go, None);
        assert_eq!(r.vs_peer.as_ref().unwrap().ratio, 2.0);
        let null = row(&rows, "ctx.value_d1", "tokio-util-0.7.20");
        assert_eq!(null.median, None);
        assert_eq!(row(&rows, "ctx.value_d1", "ctxkit").vs_peer, None);
        let table = table(&rows, 2);
        assert!(
            table.contains("| ctx.value_d1 | tokio-util-0.7.20 | ns_per_op | n/a |  |  |  |"),
            "{table}"
        );
        assert!(table.contains("| ctx.cancel_child | ctxkit | ns_per_op | 50.0 | 50.0–50.0 (1/2) |  | 2.00 (tokio-util-0.7.20) |"), "{table}");
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

    #[test]
    fn raw_lines_carry_their_round() {
        let dir = scratch("raw");
        let path = dir.join("raw.jsonl");
        let all = lines(&[
            (1, "rate.allow", "ctxkit", "ns_per_op", 50.0),
            (2, "rate.allow", "ctxkit", "ns_per_op", 52.0),
        ]);
        write_raw(&path, &all).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let rounds: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["round"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(rounds, [1, 2]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Two rounds of a synthetic `scale.cancel_fanout`.
    fn scale_lines() -> Vec<(usize, Line)> {
        let mut all = Vec::new();
        for round in 1..=2 {
            let r = round as f64;
            for n in [1000u64, 10_000, 100_000] {
                let x = n as f64;
                for (imp, v) in [
                    ("ctxkit/thread", 40.0 + r),
                    ("ctxkit/async", 60.0 + r),
                    ("go1.19", 150.0 + x / 10_000.0),
                    ("go1.19-slow", 300.0),
                    ("tokio-util-0.7.20", 90.0 + r),
                    ("slow-peer-1.0", 900.0),
                ] {
                    all.push((
                        round,
                        line("scale.cancel_fanout", imp, Some(n), "ns_per_child", Some(v)),
                    ));
                }
            }
            // A form that cannot do the largest point prints no value there.
            all.push((
                round,
                line(
                    "scale.cancel_fanout",
                    "ctxkit/thread",
                    Some(1_000_000),
                    "ns_per_child",
                    None,
                ),
            ));
        }
        all
    }

    #[test]
    fn scale_rows_and_best_of_a_series() {
        let rows = aggregate(&scale_lines());
        let ns: Vec<Option<u64>> = rows
            .iter()
            .filter(|r| r.imp == "ctxkit/thread")
            .map(|r| r.n)
            .collect();
        assert_eq!(
            ns,
            [Some(1000), Some(10_000), Some(100_000), Some(1_000_000)]
        );
        let thread = rows
            .iter()
            .find(|r| r.imp == "ctxkit/thread" && r.n == Some(10_000))
            .unwrap();
        assert_eq!(thread.median, Some(41.5));
        assert_eq!(thread.vs_go.as_ref().unwrap().against, "go1.19");
        let table = table(&rows, 2);
        assert!(table.starts_with("| workload | n | impl |"), "{table}");
        assert!(
            table.contains("| scale.cancel_fanout | 10000 | ctxkit/thread | ns_per_child | 41.5 |"),
            "{table}"
        );
        assert!(
            table
                .contains("| scale.cancel_fanout | 1000000 | ctxkit/thread | ns_per_child | n/a |"),
            "{table}"
        );
        let all = series(&rows);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].best_of(Kind::Go), Some("go1.19"));
        assert_eq!(all[0].best_of(Kind::Peer), Some("tokio-util-0.7.20"));
        let charted: Vec<&str> = all[0]
            .charted()
            .iter()
            .map(|(imp, _)| imp.as_str())
            .collect();
        assert_eq!(
            charted,
            [
                "ctxkit/thread",
                "ctxkit/async",
                "go1.19",
                "tokio-util-0.7.20"
            ]
        );
        // Throughput: the best is the highest.
        let mops: Vec<(usize, Line)> = [("a-1", 5.0), ("b-1", 9.0), ("go1.19", 3.0)]
            .iter()
            .flat_map(|&(imp, v)| {
                [1u64, 2].map(|n| {
                    (
                        1,
                        line(
                            "scale.limiter_threads",
                            imp,
                            Some(n),
                            "mops_per_s",
                            Some(v * n as f64),
                        ),
                    )
                })
            })
            .collect();
        let s = series(&aggregate(&mops));
        assert_eq!(s[0].best_of(Kind::Peer), Some("b-1"));
        assert_eq!(s[0].best_of(Kind::Ctxkit), None);
    }

    #[test]
    fn charts_and_scale_tables() {
        let dir = scratch("charts");
        let rows = aggregate(&scale_lines());
        let written = write_charts(&dir, &rows).unwrap();
        let svg_path = dir.join("scale_cancel_fanout.svg");
        assert_eq!(written, [svg_path.clone(), dir.join("scale.md")]);
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        for name in [
            "ctxkit/thread",
            "ctxkit/async",
            "go1.19",
            "tokio-util-0.7.20",
            "ns_per_child",
            "scale.cancel_fanout",
        ] {
            assert!(svg.contains(name), "{name} in the chart");
        }
        assert!(
            !svg.contains("slow-peer-1.0") && !svg.contains("go1.19-slow"),
            "only the best are drawn"
        );
        let md = std::fs::read_to_string(dir.join("scale.md")).unwrap();
        assert!(md.contains("## scale.cancel_fanout (ns_per_child)"), "{md}");
        assert!(
            md.contains("| impl | 1000 | 10000 | 100000 | 1000000 |"),
            "{md}"
        );
        assert!(
            md.contains("| ctxkit/thread | 41.5 | 41.5 | 41.5 | n/a |"),
            "{md}"
        );
        assert!(md.contains("| slow-peer-1.0 | 900 | 900 | 900 | |"), "{md}");
        // Nothing to draw without scale lines.
        let regular = aggregate(&lines(&[(1, "rate.allow", "ctxkit", "ns_per_op", 50.0)]));
        assert_eq!(
            write_charts(&dir.join("none"), &regular).unwrap(),
            Vec::<PathBuf>::new()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn chart_of_a_single_point_and_a_linear_axis() {
        let dir = scratch("chart-one");
        let path = dir.join("one.svg");
        let lines = [chart::ChartLine {
            label: "ctxkit/thread".into(),
            points: vec![(4.0, 12.0)],
        }];
        chart::svg(&path, "one point", "mops_per_s", &lines).unwrap();
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("ctxkit/thread"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn figures() {
        let ratio = |ratio: f64| {
            fmt_ratio(&Some(Ratio {
                ratio,
                against: "go1.19".into(),
            }))
        };
        assert_eq!(ratio(0.5), "0.50 (go1.19)");
        assert_eq!(ratio(12.345), "12.35 (go1.19)");
        assert_eq!(ratio(0.000517), "0.000517 (go1.19)");
        assert_eq!(fmt_value(212.46), "212");
        assert_eq!(fmt_value(21.246), "21.2");
        assert_eq!(fmt_value(2.1246), "2.12");
        assert_eq!(fmt_value(0.0021246), "0.00212");
        assert_eq!(fmt_value(0.0), "0");
        assert_eq!(fmt_value(-3.5), "-3.50");
    }
}
