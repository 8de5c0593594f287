//! The table of `compare`: the lines aggregated per workload, `n` and implementation (the
//! median over rounds and its spread), ctxkit's ratios against Go's best and the best peer,
//! and the markdown table with its legend.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::line::Line;

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
        "mops_per_s" | "ops_per_s" => Some(1.0 / value),
        "error_pct" => Some(value.abs()),
        "ns_per_op" | "ms" | "us" | "bytes" | "ns_per_task" | "ns_per_job" | "ns_per_child"
        | "bytes_per_task" | "cpu_pct" => Some(value),
        _ => None,
    }
}

/// The median (the mean of the middle two for an even count).
pub(super) fn median(values: &[f64]) -> Option<f64> {
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
pub(super) fn cell(text: &str) -> String {
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
         for lower-is-better metrics, 1/value for `mops_per_s` and `ops_per_s`, |value| for `error_pct`, so below 1 \
         means ctxkit is better. *n/a*: the implementation cannot express the workload (its note \
         is in the `--raw` lines). Figures from one machine compare only within one run.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::fixtures::{line, lines};

    fn row<'a>(rows: &'a [Row], workload: &str, imp: &str) -> &'a Row {
        rows.iter()
            .find(|r| r.workload == workload && r.imp == imp)
            .unwrap_or_else(|| panic!("no row {workload} {imp} in {rows:#?}"))
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
