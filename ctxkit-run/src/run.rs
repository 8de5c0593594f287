//! Argument handling, the run, its jobs and the printer.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use clap::Parser;
use ctxkit::{Context, Group};
use rustix::process::{kill_process_group, test_kill_process_group, Pid};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::spec::{self, Halt, Step, When};

/// Exit code for an error of ctxrun itself.
const EXIT_INTERNAL: u8 = 255;

/// A parallel command runner built on ctxkit: GNU parallel's `:::` inputs, output grouping,
/// timeouts, halt policies and termination sequences.
#[derive(Debug, Parser)]
#[command(
    name = "ctxrun",
    version,
    after_help = "Each job runs as `sh -c LINE` in its own process group; arguments are single-quoted \
                  for sh. Jobs get CTXRUN_SEQ and, under a timeout or deadline, CTXRUN_DEADLINE_MS.\n\n\
                  Exit status: 0 all jobs succeeded; 1-101 the number of failed jobs (capped); \
                  2 usage error; 130/143 interrupted by SIGINT/SIGTERM; 255 ctxrun's own error."
)]
struct Args {
    /// Run at most N jobs at once (default: the CPUs ctxkit::procs::max_procs() finds).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,

    /// Print the jobs' output in input order.
    #[arg(short = 'k', long = "keep-order")]
    keep_order: bool,

    /// Each job's time limit (500ms, 2s, 1m; a bare number is seconds).
    #[arg(long, value_name = "D", value_parser = spec::parse_duration)]
    timeout: Option<Duration>,

    /// The whole run's time limit.
    #[arg(long, value_name = "D", value_parser = spec::parse_duration)]
    deadline: Option<Duration>,

    /// When to stop early: never, soon or now, with ,fail=N or ,fail=P%.
    #[arg(long, value_name = "POLICY", default_value = "never", value_parser = spec::parse_halt)]
    halt: Halt,

    /// How a job is ended: signal, milliseconds, signal, ...
    #[arg(long, value_name = "SEQ", default_value = "TERM,200,KILL,25", value_parser = spec::parse_termseq)]
    termseq: spec::Termseq,

    /// Log each job (each attempt) to FILE, in GNU parallel's tab-separated format.
    #[arg(long, value_name = "FILE")]
    joblog: Option<PathBuf>,

    /// Run a failing job up to N times in all (0 and 1: once).
    #[arg(long, value_name = "N", default_value_t = 1)]
    retries: usize,

    /// The command, then optionally `:::` and arguments (several `:::` lists: their cross
    /// product). Without `:::`, one argument per line of stdin.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// The command words, and the `:::` argument lists if there are any.
type Inputs = (Vec<String>, Option<Vec<Vec<String>>>);

/// The parts of the command line after clap: the command words and the argument lists.
fn split_inputs(command: &[String]) -> Result<Inputs, String> {
    let mut parts = command.split(|w| w == ":::");
    let words: Vec<String> = parts.next().unwrap_or_default().to_vec();
    if words.iter().all(|w| w.trim().is_empty()) {
        return Err("the command is empty: give a command before :::".into());
    }
    let lists: Vec<Vec<String>> = parts.map(<[String]>::to_vec).collect();
    if lists.is_empty() {
        return Ok((words, None));
    }
    if lists.iter().any(Vec::is_empty) {
        return Err("::: must be followed by at least one argument".into());
    }
    Ok((words, Some(lists)))
}

/// The cross product of the lists, the first list varying slowest.
fn cross(lists: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new()];
    for list in lists {
        out = out
            .into_iter()
            .flat_map(|prefix: Vec<String>| {
                list.iter().map(move |a| {
                    let mut next = prefix.clone();
                    next.push(a.clone());
                    next
                })
            })
            .collect();
    }
    out
}

pub(crate) fn main() -> ExitCode {
    let args = Args::parse();
    let (words, lists) = match split_inputs(&args.command) {
        Ok(parts) => parts,
        Err(msg) => {
            let mut cmd = <Args as clap::CommandFactory>::command();
            cmd.error(clap::error::ErrorKind::ValueValidation, msg)
                .exit();
        }
    };
    let inputs = match lists {
        Some(lists) => cross(&lists),
        None => {
            let mut lines = Vec::new();
            for line in std::io::stdin().lock().lines() {
                match line {
                    Ok(line) => lines.push(vec![line]),
                    Err(err) => {
                        eprintln!("ctxrun: cannot read stdin: {err}");
                        return ExitCode::from(EXIT_INTERNAL);
                    }
                }
            }
            lines
        }
    };
    let lines: Vec<String> = inputs.iter().map(|a| spec::render(&words, a)).collect();
    let jobs = args
        .jobs
        .map(|j| j as usize)
        .unwrap_or_else(ctxkit::procs::max_procs)
        .max(1);
    let config = Config {
        jobs,
        keep_order: args.keep_order,
        timeout: args.timeout,
        deadline: args.deadline,
        halt: args.halt,
        termseq: Arc::new(args.termseq.0),
        joblog: args.joblog,
        retries: args.retries.max(1),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("ctxrun: cannot start the runtime: {err}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    let code = runtime.block_on(run(config, lines));
    // The jobs have all been waited for; nothing is left on the runtime worth waiting for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}

#[derive(Debug)]
struct Config {
    jobs: usize,
    keep_order: bool,
    timeout: Option<Duration>,
    deadline: Option<Duration>,
    halt: Halt,
    termseq: Arc<Vec<Step>>,
    joblog: Option<PathBuf>,
    retries: usize,
}

/// The `--joblog` file: GNU parallel's tab-separated format, one line per attempt, in order of
/// completion, written (and flushed) as each attempt ends.
#[derive(Debug)]
struct JobLog {
    file: Mutex<std::fs::File>,
}

impl JobLog {
    fn create(path: &Path) -> std::io::Result<JobLog> {
        let mut file = std::fs::File::create(path)?;
        file.write_all(
            b"Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n",
        )?;
        Ok(JobLog {
            file: Mutex::new(file),
        })
    }

    fn record(&self, seq: usize, line: &str, attempt: &Attempt) {
        let start = attempt
            .start
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        // A command is one line of the log: its newlines and tabs are written as spaces.
        let command: String = line
            .chars()
            .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
            .collect();
        let row = format!(
            "{seq}\t:\t{start:.3}\t{:10.3}\t0\t0\t{}\t{}\t{command}\n",
            attempt.runtime.as_secs_f64(),
            attempt.exitval,
            attempt.signal,
        );
        if let Ok(mut file) = self.file.lock() {
            let _ = file.write_all(row.as_bytes());
            let _ = file.flush();
        }
    }
}

/// What the run's tasks share.
#[derive(Debug, Default)]
struct Shared {
    failed: AtomicUsize,
    stop_starting: AtomicBool,
    signal: AtomicI32,
}

/// A finished (or skipped) job's output, for the printer.
#[derive(Debug)]
struct Output {
    seq: usize,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// The group's error: the job that tripped `--halt now`.
#[derive(Debug)]
struct Halted;

impl std::fmt::Display for Halted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("halted: --halt now tripped")
    }
}

impl std::error::Error for Halted {}

impl From<ctxkit::Error> for Halted {
    fn from(_: ctxkit::Error) -> Self {
        Halted
    }
}

async fn run(config: Config, lines: Vec<String>) -> u8 {
    let total = lines.len();
    let run_ctx = match config.deadline {
        Some(d) => Context::background().with_timeout(d),
        None => Context::background().with_cancel(),
    };
    let (run_ctx, run_cancel) = run_ctx.into_parts();
    let shared = Arc::new(Shared::default());

    // The handlers are installed before any job starts, so a signal can never find ctxrun
    // with its default action (dying) while jobs run.
    use tokio::signal::unix::{signal, SignalKind};
    let (mut int, mut term) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(int), Ok(term)) => (int, term),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("ctxrun: cannot handle SIGINT and SIGTERM: {err}");
            return EXIT_INTERNAL;
        }
    };
    let signals = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let signo = tokio::select! {
                _ = int.recv() => 2,
                _ = term.recv() => 15,
            };
            shared.signal.store(signo, Ordering::SeqCst);
            run_cancel.cancel();
        })
    };

    let (tx, rx) = mpsc::unbounded_channel::<Output>();
    let printer = tokio::task::spawn_blocking({
        let keep_order = config.keep_order;
        move || print(rx, keep_order)
    });

    let joblog = match &config.joblog {
        Some(path) => match JobLog::create(path) {
            Ok(log) => Some(Arc::new(log)),
            Err(err) => {
                eprintln!("ctxrun: cannot write the joblog {}: {err}", path.display());
                return EXIT_INTERNAL;
            }
        },
        None => None,
    };
    let (mut group, group_ctx) = Group::<(), Halted>::with_context(&run_ctx);
    group.set_limit(config.jobs);
    let ran: Arc<Vec<AtomicBool>> = Arc::new((0..total).map(|_| AtomicBool::new(false)).collect());
    for (index, line) in lines.into_iter().enumerate() {
        if shared.stop_starting.load(Ordering::SeqCst) || group_ctx.is_done() {
            break;
        }
        let seq = index + 1;
        let tx = tx.clone();
        let shared = shared.clone();
        let termseq = config.termseq.clone();
        let timeout = config.timeout;
        let halt = config.halt;
        let ran = ran.clone();
        let joblog = joblog.clone();
        let retries = config.retries;
        group
            .spawn(move |ctx| async move {
                // The slot may have come free because a job tripped the halt, or after the
                // group was canceled: then this job does not start.
                if shared.stop_starting.load(Ordering::SeqCst) || ctx.is_done() {
                    return Ok(());
                }
                ran[index].store(true, Ordering::SeqCst);
                // Each attempt gets a fresh job context (and so a fresh --timeout); a retry
                // starts only while the group's context is live.
                let mut attempt_no = 1;
                let attempt = loop {
                    let job_ctx = match timeout {
                        Some(t) => ctx.with_timeout(t),
                        None => ctx.with_cancel(),
                    };
                    let attempt = run_job(&job_ctx, seq, &line, &termseq).await;
                    if let Some(log) = &joblog {
                        log.record(seq, &line, &attempt);
                    }
                    if attempt.ok || attempt_no >= retries || ctx.is_done() {
                        break attempt;
                    }
                    attempt_no += 1;
                };
                let ok = attempt.ok;
                let _ = tx.send(Output {
                    seq,
                    stdout: attempt.stdout,
                    stderr: attempt.stderr,
                });
                if ok {
                    return Ok(());
                }
                let failed = shared.failed.fetch_add(1, Ordering::SeqCst) + 1;
                if halt.tripped(failed, total) {
                    shared.stop_starting.store(true, Ordering::SeqCst);
                    if halt.when == When::Now {
                        return Err(Halted); // the errgroup cancels every other job
                    }
                }
                Ok(())
            })
            .await;
        // A spawn that gave up (the group's context done while waiting for a slot) started
        // nothing; the loop's check above sees that at the next turn.
    }
    let _ = group.wait().await;
    // The jobs that never started: marked empty for `-k`'s order, and counted.
    let halted = shared.stop_starting.load(Ordering::SeqCst);
    let mut unstarted = 0;
    for (index, ran) in ran.iter().enumerate() {
        if !ran.load(Ordering::SeqCst) {
            unstarted += 1;
            let _ = tx.send(Output {
                seq: index + 1,
                stdout: Vec::new(),
                stderr: Vec::new(),
            });
        }
    }
    drop(tx);
    let _ = printer.await;
    signals.abort();

    let signo = shared.signal.load(Ordering::SeqCst);
    if signo != 0 {
        return 128 + signo as u8;
    }
    let mut failed = shared.failed.load(Ordering::SeqCst);
    if !halted && run_ctx.is_done() {
        failed += unstarted;
    }
    failed.min(101) as u8
}

/// Writes each job's output whole; with `keep_order`, in sequence order.
fn print(mut rx: mpsc::UnboundedReceiver<Output>, keep_order: bool) {
    let mut pending = BTreeMap::new();
    let mut next = 1;
    let write = |o: &Output| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&o.stdout);
        let _ = out.flush();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&o.stderr);
        let _ = err.flush();
    };
    while let Some(o) = rx.blocking_recv() {
        if !keep_order {
            write(&o);
            continue;
        }
        pending.insert(o.seq, o);
        while let Some(o) = pending.remove(&next) {
            write(&o);
            next += 1;
        }
    }
    for o in pending.values() {
        write(o);
    }
}

/// How one attempt at a job ended.
#[derive(Debug)]
struct Attempt {
    ok: bool,
    /// The exit code; -1 when the shell was killed by a signal or could not be started.
    exitval: i32,
    /// The signal that killed the shell, or 0.
    signal: i32,
    /// When it started (for the joblog), and how long it ran.
    start: SystemTime,
    runtime: Duration,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Attempt {
    fn from_status(status: Option<std::process::ExitStatus>) -> (bool, i32, i32) {
        match status {
            Some(st) => (
                st.success(),
                st.code().unwrap_or(-1),
                st.signal().unwrap_or(0),
            ),
            None => (false, -1, 0),
        }
    }
}

/// Runs one attempt at a job to its end under `ctx`.
async fn run_job(ctx: &Context, seq: usize, line: &str, termseq: &[Step]) -> Attempt {
    let start = SystemTime::now();
    let began = Instant::now();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(line)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("CTXRUN_SEQ", seq.to_string());
    if let Some(deadline) = ctx.deadline() {
        let left = deadline.saturating_duration_since(Instant::now());
        cmd.env("CTXRUN_DEADLINE_MS", left.as_millis().to_string());
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) => {
            let msg = format!("ctxrun: job {seq}: cannot start sh: {err}\n");
            return Attempt {
                ok: false,
                exitval: -1,
                signal: 0,
                start,
                runtime: began.elapsed(),
                stdout: Vec::new(),
                stderr: msg.into_bytes(),
            };
        }
    };
    let pgid = child.id().and_then(|id| Pid::from_raw(id as i32));
    let stdout = child.stdout.take().map(|mut r| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf).await;
            buf
        })
    });
    let stderr = child.stderr.take().map(|mut r| {
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf).await;
            buf
        })
    });

    let exited = tokio::select! {
        status = child.wait() => Some(status.ok()),
        _ = ctx.done() => None,
    };
    let canceled = exited.is_none();
    let status = match exited {
        Some(status) => {
            // The shell is gone; whatever it left in its group gets the termseq too.
            if let Some(pgid) = pgid {
                if test_kill_process_group(pgid).is_ok() {
                    terminate(pgid, termseq, None).await;
                }
            }
            status
        }
        None => {
            if let Some(pgid) = pgid {
                terminate(pgid, termseq, Some(&mut child)).await;
            }
            child.wait().await.ok()
        }
    };
    let runtime = began.elapsed();
    let (ok, exitval, signal) = Attempt::from_status(status);
    let out = match stdout {
        Some(h) => h.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let mut err = match stderr {
        Some(h) => h.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let ok = ok && !canceled;
    if canceled {
        let why = match ctx.err() {
            Some(e) if e.is_deadline_exceeded() => "timed out",
            _ => "canceled",
        };
        err.extend_from_slice(format!("ctxrun: job {seq} {why}: {line}\n").as_bytes());
    }
    Attempt {
        ok,
        exitval,
        signal,
        start,
        runtime,
        stdout: out,
        stderr: err,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_product_first_list_slowest() {
        let l = vec![
            vec!["a".to_string(), "b".to_string()],
            vec!["1".to_string(), "2".to_string()],
        ];
        let got: Vec<String> = cross(&l).into_iter().map(|v| v.join("")).collect();
        assert_eq!(got, ["a1", "a2", "b1", "b2"]);
    }

    #[test]
    fn inputs_are_checked() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(split_inputs(&s(&[":::", "a"])).is_err());
        assert!(split_inputs(&s(&["echo", ":::"])).is_err());
        assert!(split_inputs(&s(&["echo", ":::", "a", ":::"])).is_err());
        assert!(split_inputs(&s(&["echo"])).unwrap().1.is_none());
        assert_eq!(
            split_inputs(&s(&["echo", ":::", "a", ":::", "b"]))
                .unwrap()
                .1
                .unwrap()
                .len(),
            2
        );
    }
}
