//! A runner's JSON lines (`WORKLOADS.md`): parsing one line and a runner's whole stdout,
//! and writing the collected lines back with their round (`--raw`).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

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
pub(super) fn parse_output(who: &str, stdout: &[u8]) -> Result<Vec<Line>, String> {
    let text = String::from_utf8_lossy(stdout);
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            Line::parse(l)
                .map_err(|e| format!("{who} printed a line that is not a benchmark line: {e}"))
        })
        .collect()
}

/// Writes every line collected, each with an added `"round"` field.
pub(super) fn write_raw(path: &Path, lines: &[(usize, Line)]) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::fixtures::{line, lines, scratch};

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
}
