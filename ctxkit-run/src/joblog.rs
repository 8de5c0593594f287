//! `--joblog FILE`: GNU parallel's tab-separated log of each attempt, and `--resume` /
//! `--resume-failed`, which read it back to skip what an earlier run of the same command did.
//!
//! The file is one header line, then one row per attempt, appended (and flushed) as each
//! attempt ends, so a run killed half-way leaves a log of what finished. Rows are written under
//! the log's mutex, whole, so concurrent jobs never interleave a row.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::args::Resume;

/// The header line, GNU parallel's columns.
const HEADER: &str = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand";

/// One attempt's row.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// When the attempt started.
    pub(crate) start: SystemTime,
    /// How long it ran.
    pub(crate) runtime: Duration,
    /// The shell's exit code; -1 when a signal killed it or it could not start.
    pub(crate) exitval: i32,
    /// The signal that killed it, or 0.
    pub(crate) signal: i32,
}

/// The open log.
#[derive(Debug)]
pub(crate) struct JobLog {
    file: Mutex<std::fs::File>,
}

/// A command as one log field: its newlines and tabs written as spaces.
fn one_line(command: &str) -> String {
    command
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect()
}

impl JobLog {
    /// Opens the log: afresh (truncated, with its header), or, when resuming, for appending
    /// to what is there (the header written only if the file is new or empty).
    ///
    /// # Errors
    ///
    /// The file cannot be created or opened.
    pub(crate) fn open(path: &Path, append: bool) -> std::io::Result<JobLog> {
        let mut file = if append {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?
        } else {
            std::fs::File::create(path)?
        };
        if file.metadata()?.len() == 0 {
            file.write_all(HEADER.as_bytes())?;
            file.write_all(b"\n")?;
        }
        Ok(JobLog {
            file: Mutex::new(file),
        })
    }

    /// Appends one attempt's row. A failed write is ignored (the log is a record, not the
    /// run's result).
    pub(crate) fn record(&self, seq: usize, command: &str, row: &Row) {
        let start = row
            .start
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let line = format!(
            "{seq}\t:\t{start:.3}\t{:10.3}\t0\t0\t{}\t{}\t{}\n",
            row.runtime.as_secs_f64(),
            row.exitval,
            row.signal,
            one_line(command),
        );
        if let Ok(mut file) = self.file.lock() {
            let _ = file.write_all(line.as_bytes());
            let _ = file.flush();
        }
    }
}

/// Which jobs (0-based indices into `lines`) an earlier run's log at `path` lets this run skip
/// under `resume`. A job's outcome is its last row (retries log one row per attempt). A missing
/// or empty file skips nothing.
///
/// # Errors
///
/// A message, when the file is not a joblog, or was written by another command: a row whose
/// job number this run does not have, or whose command differs from this run's job of that
/// number.
pub(crate) fn skipped(path: &Path, resume: Resume, lines: &[String]) -> Result<Vec<bool>, String> {
    let mut skip = vec![false; lines.len()];
    if resume == Resume::No {
        return Ok(skip);
    }
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(skip),
        Err(err) => return Err(format!("cannot read the joblog {}: {err}", path.display())),
    };
    let name = path.display();
    let mut rows = text.lines();
    match rows.next() {
        None => return Ok(skip),
        Some(header) if header == HEADER => {}
        Some(_) => {
            return Err(format!(
                "{name} is not a joblog: its first line is not GNU parallel's header \
                 (Seq, Host, Starttime, JobRuntime, Send, Receive, Exitval, Signal, Command)"
            ))
        }
    }
    // The last row of each job, in file order.
    let mut last: HashMap<usize, bool> = HashMap::new();
    for (number, row) in rows.enumerate() {
        let at = number + 2;
        if row.is_empty() {
            continue;
        }
        let fields: Vec<&str> = row.splitn(9, '\t').collect();
        let bad = |why: &str| format!("{name} line {at} is not a joblog row: {why}");
        if fields.len() != 9 {
            return Err(bad("it does not have 9 tab-separated columns"));
        }
        let seq: usize = fields[0]
            .trim()
            .parse()
            .map_err(|_| bad("its Seq is not a job number"))?;
        let exitval: i64 = fields[6]
            .trim()
            .parse()
            .map_err(|_| bad("its Exitval is not a number"))?;
        let signal: i64 = fields[7]
            .trim()
            .parse()
            .map_err(|_| bad("its Signal is not a number"))?;
        let Some(this) = seq.checked_sub(1).and_then(|i| lines.get(i)) else {
            return Err(format!(
                "the joblog {name} is from another run: it lists job {seq}, and this run has {} jobs",
                lines.len()
            ));
        };
        if fields[8] != one_line(this) {
            return Err(format!(
                "the joblog {name} is from another run: its job {seq} is `{}`, this run's is `{}`",
                fields[8],
                one_line(this)
            ));
        }
        last.insert(seq, exitval == 0 && signal == 0);
    }
    for (seq, ok) in last {
        skip[seq - 1] = match resume {
            Resume::All => true,
            Resume::Failed => ok,
            Resume::No => false,
        };
    }
    Ok(skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("ctxrun-joblog-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn resume_reads_the_last_row_of_each_job() {
        let log = format!(
            "{HEADER}\n1\t:\t1.0\t0.1\t0\t0\t0\t0\techo a\n2\t:\t1.0\t0.1\t0\t0\t1\t0\techo b\n\
             3\t:\t1.0\t0.1\t0\t0\t1\t0\techo c\n3\t:\t1.0\t0.1\t0\t0\t0\t0\techo c\n\
             2\t:\t1.0\t0.1\t0\t0\t-1\t15\techo b\n"
        );
        let path = write("last", &log);
        let l = lines(&["echo a", "echo b", "echo c", "echo d"]);
        assert_eq!(
            skipped(&path, Resume::All, &l).unwrap(),
            [true, true, true, false]
        );
        assert_eq!(
            skipped(&path, Resume::Failed, &l).unwrap(),
            [true, false, true, false]
        );
        assert_eq!(skipped(&path, Resume::No, &l).unwrap(), [false; 4]);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn another_runs_log_is_refused() {
        let path = write(
            "other",
            &format!("{HEADER}\n1\t:\t1.0\t0.1\t0\t0\t0\t0\techo x\n"),
        );
        let err = skipped(&path, Resume::All, &lines(&["echo a"])).unwrap_err();
        assert!(err.contains("another run"), "{err}");
        let path2 = write(
            "more",
            &format!("{HEADER}\n5\t:\t1.0\t0.1\t0\t0\t0\t0\techo x\n"),
        );
        let err = skipped(&path2, Resume::All, &lines(&["echo a"])).unwrap_err();
        assert!(err.contains("lists job 5"), "{err}");
        let path3 = write("garbage", "hello\nworld\n");
        assert!(skipped(&path3, Resume::All, &lines(&["echo a"]))
            .unwrap_err()
            .contains("not a joblog"));
        let path4 = write("short", &format!("{HEADER}\n1\t:\t1\n"));
        assert!(skipped(&path4, Resume::All, &lines(&["echo a"]))
            .unwrap_err()
            .contains("9 tab-separated"));
        for p in [path, path2, path3, path4] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn a_missing_or_empty_log_skips_nothing() {
        let missing = std::env::temp_dir().join("ctxrun-joblog-surely-missing");
        assert_eq!(
            skipped(&missing, Resume::All, &lines(&["a"])).unwrap(),
            [false]
        );
        let empty = write("empty", "");
        assert_eq!(
            skipped(&empty, Resume::Failed, &lines(&["a"])).unwrap(),
            [false]
        );
        let _ = std::fs::remove_file(empty);
    }
}
