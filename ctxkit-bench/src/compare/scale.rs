//! The scale series in `compare` (the rows that have an `n`): per series and metric each
//! implementation's points, the best Go implementation and the best peer over a series (the
//! lines a chart draws), the `scale.md` tables and the charts of `--charts DIR`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::table::{cell, cost, fmt_value, kind, median, Kind, Row};
use crate::chart;

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
            "mops_per_s" | "ops_per_s" => "higher is better",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::fixtures::{line, lines, scratch};
    use crate::compare::line::Line;
    use crate::compare::table::{aggregate, table};

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
}
