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
//!
//! This module: the options and the entry. The rest, one module each: `run.rs` runs the
//! children and collects their lines, `line.rs` parses a runner's lines (and writes them back
//! for `--raw`), `table.rs` aggregates them into the table, `scale.rs` makes the scale
//! series' `scale.md` tables and charts.

mod line;
mod run;
mod scale;
mod table;

#[cfg(test)]
pub(crate) mod fixtures;

use std::path::{Path, PathBuf};

pub(crate) use run::NOTHING_SELECTED;
pub(crate) use table::{fmt_value, kind, Kind};

use line::write_raw;
use run::collect;
use scale::write_charts;
use table::{aggregate, table};

const USAGE: &str = "usage: ctxkit-bench compare [--rounds N] [--quick] [--only P[,P]] [--scale] \
                     [--no-go] [--go-runner PATH] [--charts DIR] [--raw FILE]";

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
                "--help" | "-h" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}; {USAGE}")),
            }
        }
        opts.rounds = rounds.unwrap_or(if opts.quick { 2 } else { 3 });
        if opts.charts.is_some() && !opts.scale {
            return Err(format!(
                "--charts draws the scale series: add --scale; {USAGE}"
            ));
        }
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

/// `compare` itself; the process's exit code.
pub(crate) fn main(args: impl IntoIterator<Item = String>) -> i32 {
    let opts = match Opts::parse(args) {
        Ok(opts) => opts,
        Err(message) if message.is_empty() => {
            println!("{USAGE}"); // --help
            return 0;
        }
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
    if lines.is_empty() {
        return Err(format!(
            "no workload matches --only {}",
            opts.only.join(",")
        ));
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
}
