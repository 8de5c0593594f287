//! Test fixtures of `compare`'s unit tests: runner lines as text and parsed, and scratch
//! directories.

use std::path::PathBuf;

use super::line::Line;

/// A line as a runner prints it.
pub(crate) fn text(
    workload: &str,
    imp: &str,
    n: Option<u64>,
    metric: &str,
    value: Option<f64>,
) -> String {
    let n = n.map(|n| format!("\"n\":{n},")).unwrap_or_default();
    let value = value.map_or("null".to_owned(), |v| v.to_string());
    format!(
        "{{\"workload\":\"{workload}\",\"impl\":\"{imp}\",{n}\"metric\":\"{metric}\",\
         \"value\":{value},\"min\":null,\"max\":null,\"runs\":7,\"note\":\"x\"}}"
    )
}

/// A line as a runner prints it, parsed.
pub(crate) fn line(
    workload: &str,
    imp: &str,
    n: Option<u64>,
    metric: &str,
    value: Option<f64>,
) -> Line {
    Line::parse(&text(workload, imp, n, metric, value)).unwrap()
}

/// `(round, workload, impl, metric, value)` as lines.
pub(crate) fn lines(spec: &[(usize, &str, &str, &str, f64)]) -> Vec<(usize, Line)> {
    spec.iter()
        .map(|&(round, w, imp, metric, v)| (round, line(w, imp, None, metric, Some(v))))
        .collect()
}

/// A fresh scratch directory for one test.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ctxkit-compare-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
