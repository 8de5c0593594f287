//! One attempt at a job: `sh -c LINE` in a process group of its own, awaited against the job's
//! context, and the `--termseq` that ends the group when the context is done first (or when
//! the shell leaves processes behind).
//!
//! Invariant: a job's process group is signaled only while ctxrun has not reaped the group's
//! leader, or right after, while members remain. A process group id cannot be reused while the
//! group has a member, so the signals never reach a stranger (except a process that left the
//! group with `setsid`, which ctxrun does not follow).

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use ctxkit::Context;
use rustix::process::{kill_process_group, test_kill_process_group, Pid};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

use crate::joblog::Row;
use crate::spec::{self, Step};

/// Why the job's context ended it, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Its `--timeout` or the run's `--deadline`.
    TimedOut,
    /// A halt or a signal to ctxrun.
    Canceled,
}

/// How one attempt at a job ended.
#[derive(Debug)]
pub(crate) struct Attempt {
    /// It ran to the end and exited 0.
    pub(crate) ok: bool,
    /// The joblog's view of it.
    pub(crate) row: Row,
    /// Set when its context ended it.
    pub(crate) ended: Option<Ended>,
    /// Its output, unless `--ungroup` sent it straight through.
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
}

/// What every attempt needs besides its context and line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct How<'a> {
    pub(crate) termseq: &'a [Step],
    /// `--ungroup`: the job writes to ctxrun's own stdout and stderr.
    pub(crate) ungroup: bool,
}

/// Reads one of the job's pipes to its end (polled beside the wait for the process, in the
/// job's own task: no task of its own, no extra wake-up to hand its bytes over).
async fn read_all<R>(reader: Option<R>) -> Vec<u8>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut buf = Vec::new();
    if let Some(mut r) = reader {
        let _ = r.read_to_end(&mut buf).await;
    }
    buf
}

/// `execve`'s "not an executable format" (a script without `#!`).
const ENOEXEC: i32 = 8;

/// The command for `program` and `args` (with `extra` arguments before them), in a process
/// group of its own, stdin `/dev/null`, its output piped (or inherited under `--ungroup`), and
/// the job's variables.
fn command(
    program: &[impl AsRef<std::ffi::OsStr>],
    extra: &[&str],
    ctx: &Context,
    seq: usize,
    how: How<'_>,
) -> Command {
    let mut cmd = Command::new(&program[0]);
    cmd.args(extra).args(&program[1..]);
    let (out, err) = if how.ungroup {
        (Stdio::inherit(), Stdio::inherit())
    } else {
        (Stdio::piped(), Stdio::piped())
    };
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env("CTXRUN_SEQ", seq.to_string());
    if let Some(deadline) = ctx.deadline() {
        let left = deadline.saturating_duration_since(Instant::now());
        cmd.env("CTXRUN_DEADLINE_MS", left.as_millis().to_string());
    }
    cmd
}

/// Runs one attempt at job `seq` to its end under `ctx`: the program itself when the line
/// needs no shell ([`spec::direct_argv`]), else `sh -c LINE`.
pub(crate) async fn run(ctx: &Context, seq: usize, line: &str, how: How<'_>) -> Attempt {
    let start = SystemTime::now();
    let began = Instant::now();
    let direct = spec::direct_argv(line);
    let spawned = match &direct {
        Some(argv) => match command(argv, &[], ctx, seq, how).spawn() {
            // A file without a `#!` line: `sh` runs it as a script; so does ctxrun.
            Err(error) if error.raw_os_error() == Some(ENOEXEC) => {
                command(&["sh"], &["-c", line], ctx, seq, how).spawn()
            }
            other => other,
        },
        None => command(&["sh"], &["-c", line], ctx, seq, how).spawn(),
    };
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            // What `sh` would have answered for a program it cannot run.
            let (exitval, message) = match (&direct, error.kind()) {
                (Some(argv), std::io::ErrorKind::NotFound) => {
                    (127, format!("ctxrun: job {seq}: {}: not found\n", argv[0]))
                }
                (Some(argv), std::io::ErrorKind::PermissionDenied) => (
                    126,
                    format!("ctxrun: job {seq}: {}: permission denied\n", argv[0]),
                ),
                (Some(argv), _) => (
                    -1,
                    format!("ctxrun: job {seq}: cannot start {}: {error}\n", argv[0]),
                ),
                (None, _) => (-1, format!("ctxrun: job {seq}: cannot start sh: {error}\n")),
            };
            if how.ungroup {
                eprint!("{message}");
            }
            return Attempt {
                ok: false,
                row: Row {
                    start,
                    runtime: began.elapsed(),
                    exitval,
                    signal: 0,
                },
                ended: None,
                stdout: Vec::new(),
                stderr: if how.ungroup {
                    Vec::new()
                } else {
                    message.into_bytes()
                },
            };
        }
    };
    let pgid = child.id().and_then(|id| Pid::from_raw(id as i32));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    // The process and its pipes, all polled by this task: the pipes are read while it runs (a
    // full pipe would stop it), and to their end after it exits.
    let waiting = async {
        let exited = tokio::select! {
            status = child.wait() => Some(status.ok()),
            _ = ctx.done() => None,
        };
        let status = match exited {
            Some(status) => {
                // The shell is gone; whatever it left in its group gets the termseq too.
                if let Some(pgid) = pgid {
                    if test_kill_process_group(pgid).is_ok() {
                        terminate(pgid, how.termseq, None).await;
                    }
                }
                status
            }
            None => {
                if let Some(pgid) = pgid {
                    terminate(pgid, how.termseq, Some(&mut child)).await;
                }
                child.wait().await.ok()
            }
        };
        (exited.is_some(), status, began.elapsed())
    };
    let ((exited, status, runtime), stdout, mut stderr) =
        tokio::join!(waiting, read_all(stdout), read_all(stderr));
    let ended = match exited {
        true => None,
        false => Some(match ctx.err() {
            Some(e) if e.is_deadline_exceeded() => Ended::TimedOut,
            _ => Ended::Canceled,
        }),
    };
    let (exit_ok, exitval, signal) = match status {
        Some(st) => (
            st.success(),
            st.code().unwrap_or(-1),
            st.signal().unwrap_or(0),
        ),
        None => (false, -1, 0),
    };
    if let Some(ended) = ended {
        let why = match ended {
            Ended::TimedOut => "timed out",
            Ended::Canceled => "canceled",
        };
        let message = format!("ctxrun: job {seq} {why}: {line}\n");
        if how.ungroup {
            eprint!("{message}");
        } else {
            stderr.extend_from_slice(message.as_bytes());
        }
    }
    Attempt {
        ok: exit_ok && ended.is_none(),
        row: Row {
            start,
            runtime,
            exitval,
            signal,
        },
        ended,
        stdout,
        stderr,
    }
}

/// Sends the termseq to the process group `pgid`, each signal followed by up to its wait for
/// the group to be gone (and `child`, the group's leader, to have exited).
async fn terminate(pgid: Pid, termseq: &[Step], mut child: Option<&mut Child>) {
    for step in termseq {
        if kill_process_group(pgid, step.signal).is_err() {
            return; // no member left
        }
        let until = Instant::now() + step.wait;
        loop {
            let leader_gone = match child.as_deref_mut() {
                Some(c) => !matches!(c.try_wait(), Ok(None)),
                None => true,
            };
            if leader_gone && test_kill_process_group(pgid).is_err() {
                return;
            }
            if Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
