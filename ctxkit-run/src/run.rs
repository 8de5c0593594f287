//! The run: its context, the errgroup that runs the jobs, the halt policy, the signals, and the
//! exit status. See the crate docs ("Design") for which ctxkit piece does what.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ctxkit::{Context, Group};
use tokio::sync::{mpsc, Notify};

use crate::args::{Args, Config, Resume};
use crate::input::Source;
use crate::job::{self, Ended, How};
use crate::joblog::{self, JobLog};
use crate::output::{self, Output, Progress};
use crate::pace::Pacer;
use crate::spec::{self, Threshold, When};

/// Exit code for a usage error.
const EXIT_USAGE: u8 = 2;
/// Exit code for an error of ctxrun itself.
const EXIT_INTERNAL: u8 = 255;
/// The longest wait between two attempts at a job.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

pub(crate) fn main() -> ExitCode {
    let args = Args::parse();
    let (config, words, source) = match args.into_run() {
        Ok(run) => run,
        Err(msg) => {
            let mut cmd = <Args as clap::CommandFactory>::command();
            cmd.error(clap::error::ErrorKind::ValueValidation, msg)
                .exit();
        }
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
    let code = runtime.block_on(run(config, words, source));
    // The jobs have all been waited for; nothing is left on the runtime worth waiting for.
    runtime.shutdown_timeout(Duration::from_millis(100));
    ExitCode::from(code)
}

/// What the run's tasks share.
#[derive(Debug, Default)]
struct Shared {
    /// Jobs that failed (their last attempt), not counting those a halt ended.
    failed: AtomicUsize,
    /// Set when the halt policy tripped: no job starts after it.
    halted: AtomicBool,
    /// The exit value of the job that tripped the halt.
    trip_exitval: AtomicI32,
    /// Set when a job's turn under `--delay`/`--rate` would come after the run's deadline:
    /// no job starts after it, and the unstarted ones count as failed.
    out_of_time: AtomicBool,
    /// Jobs that got a slot.
    spawned: AtomicUsize,
    /// Jobs that got a slot but did not start (a halt, a signal, the deadline).
    not_started: AtomicUsize,
    /// The signal ctxrun got (2 or 15), or 0.
    signal: AtomicI32,
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

/// A usage error found once the run has its inputs (a joblog from another run): printed as
/// clap prints its own.
fn usage_error(msg: String) -> u8 {
    eprintln!("error: {msg}");
    EXIT_USAGE
}

/// Opens the joblog, if there is one.
fn open_joblog(path: Option<&Path>, resume: Resume) -> Result<Option<Arc<JobLog>>, u8> {
    let Some(path) = path else {
        return Ok(None);
    };
    match JobLog::open(path, resume != Resume::No) {
        Ok(log) => Ok(Some(Arc::new(log))),
        Err(err) => {
            eprintln!("ctxrun: cannot write the joblog {}: {err}", path.display());
            Err(EXIT_INTERNAL)
        }
    }
}

async fn run(config: Config, words: Vec<String>, mut source: Source) -> u8 {
    // Every job is read first only when the run needs their number (the bar's ETA, a
    // percentage to halt at) or must check them against a joblog before running any.
    let percent =
        config.halt.when != When::Never && matches!(config.halt.threshold, Threshold::Percent(_));
    let mut skip = Vec::new();
    let mut to_run = 0;
    if config.bar || percent || config.resume != Resume::No {
        let all = match source.collect().await {
            Ok(all) => all,
            Err(msg) => {
                eprintln!("ctxrun: {msg}");
                return EXIT_INTERNAL;
            }
        };
        if let (Some(path), Resume::All | Resume::Failed) = (&config.joblog, config.resume) {
            let lines: Vec<String> = all
                .iter()
                .enumerate()
                .map(|(i, a)| spec::render(&words, a, i + 1))
                .collect();
            skip = match joblog::skipped(path, config.resume, &lines) {
                Ok(skip) => skip,
                Err(msg) => return usage_error(msg),
            };
        }
        to_run = all.len() - skip.iter().filter(|s| **s).count();
        source = Source::Collected(all.into_iter());
    }
    let joblog = match open_joblog(config.joblog.as_deref(), config.resume) {
        Ok(log) => log,
        Err(code) => return code,
    };
    let pacer = match &config.pace {
        Some(pace) => match Pacer::new(pace).await {
            Ok(pacer) => Some(Arc::new(pacer)),
            Err(msg) => {
                eprintln!("ctxrun: {msg}");
                return EXIT_INTERNAL;
            }
        },
        None => None,
    };

    let run_ctx = match config.deadline {
        Some(d) => Context::background().with_timeout(d),
        None => Context::background().with_cancel(),
    };
    let (run_ctx, run_cancel) = run_ctx.into_parts();
    let shared = Arc::new(Shared::default());
    let signaled = Arc::new(Notify::new());

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
        let signaled = signaled.clone();
        tokio::spawn(async move {
            let signo = tokio::select! {
                _ = int.recv() => 2,
                _ = term.recv() => 15,
            };
            shared.signal.store(signo, Ordering::SeqCst);
            run_cancel.cancel();
            signaled.notify_one();
        })
    };

    let (tx, rx) = mpsc::unbounded_channel::<Output>();
    let printer = tokio::task::spawn_blocking({
        let keep_order = config.keep_order;
        let progress = Progress::new(config.bar, to_run);
        move || output::print(rx, keep_order, progress)
    });

    let (mut group, group_ctx) = Group::<(), Halted>::with_context(&run_ctx);
    group.set_limit(config.jobs);
    let mut seq = 0;
    let mut spawns = 0;
    let mut input_error = None;
    loop {
        if shared.halted.load(Ordering::SeqCst)
            || shared.out_of_time.load(Ordering::SeqCst)
            || group_ctx.is_done()
        {
            break;
        }
        let args = match source.next().await {
            None => break,
            Some(Ok(args)) => args,
            Some(Err(msg)) => {
                input_error = Some(msg);
                break;
            }
        };
        seq += 1;
        if skip.get(seq - 1) == Some(&true) {
            // Done by an earlier run: nothing to print, but `-k` must go past it.
            let _ = tx.send(Output::empty(seq));
            continue;
        }
        let line = spec::render(&words, &args, seq);
        let tx = tx.clone();
        let shared = shared.clone();
        let termseq = config.termseq.clone();
        let (timeout, halt, ungroup) = (config.timeout, config.halt, config.ungroup);
        let (retries, retry_delay) = (config.retries, config.retry_delay);
        let joblog = joblog.clone();
        let pacer = pacer.clone();
        spawns += 1;
        group
            .spawn(move |ctx| {
                // Called only when the job gets its slot (a spawn that gives up never is), in
                // input order.
                shared.spawned.fetch_add(1, Ordering::SeqCst);
                let ticket = pacer.as_ref().map(|p| p.ticket());
                async move {
                    // The slot may have come free because a job tripped the halt, or after the
                    // group was canceled: then this job does not start.
                    let mut go = !shared.halted.load(Ordering::SeqCst) && !ctx.is_done();
                    // --delay / --rate: the job's turn, once it has its slot.
                    if let (Some(pacer), Some(ticket)) = (&pacer, ticket) {
                        if !go {
                            pacer.pass(&ctx, ticket).await;
                        } else if !pacer.wait(&ctx, ticket).await && !ctx.is_done() {
                            // Its turn would come after the run's deadline.
                            shared.out_of_time.store(true, Ordering::SeqCst);
                        }
                        go = go
                            && !ctx.is_done()
                            && !shared.halted.load(Ordering::SeqCst)
                            && !shared.out_of_time.load(Ordering::SeqCst);
                    }
                    if !go {
                        shared.not_started.fetch_add(1, Ordering::SeqCst);
                        let _ = tx.send(Output::empty(seq));
                        return Ok(());
                    }
                    let how = How {
                        termseq: &termseq,
                        ungroup,
                    };
                    // Each attempt gets a fresh job context (and so a fresh --timeout); a retry
                    // starts only while the group's context is live, after a growing pause.
                    let mut attempt_no = 1;
                    let attempt = loop {
                        let job_ctx = match timeout {
                            Some(t) => ctx.with_timeout(t),
                            None => ctx.with_cancel(),
                        };
                        let attempt = job::run(&job_ctx, seq, &line, how).await;
                        drop(job_ctx);
                        if let Some(log) = &joblog {
                            log.record(seq, &line, &attempt.row);
                        }
                        if attempt.ok || attempt_no >= retries || ctx.is_done() {
                            break attempt;
                        }
                        let pause = retry_delay
                            .saturating_mul(1 << (attempt_no - 1).min(20))
                            .min(MAX_RETRY_DELAY);
                        if !pause.is_zero() && ctx.sleep(pause).await.is_err() {
                            break attempt;
                        }
                        attempt_no += 1;
                    };
                    let _ = tx.send(Output {
                        seq,
                        stdout: attempt.stdout,
                        stderr: attempt.stderr,
                        ran: true,
                    });
                    if attempt.ok {
                        return Ok(());
                    }
                    // A job that a halt ended is not a failure of its own (GNU parallel's count).
                    if attempt.ended == Some(Ended::Canceled)
                        && shared.halted.load(Ordering::SeqCst)
                    {
                        return Ok(());
                    }
                    let failed = shared.failed.fetch_add(1, Ordering::SeqCst) + 1;
                    if halt.tripped(failed, to_run) && !shared.halted.swap(true, Ordering::SeqCst) {
                        shared
                            .trip_exitval
                            .store(attempt.row.exitval, Ordering::SeqCst);
                        if halt.when == When::Now {
                            return Err(Halted); // the errgroup cancels every other job
                        }
                    }
                    Ok(())
                }
            })
            .await;
        // A spawn that gave up (the group's context done while waiting for a slot) started
        // nothing; the loop's check above sees that at the next turn.
    }
    let _ = group.wait().await;
    drop(tx);
    let _ = printer.await;

    let halted = shared.halted.load(Ordering::SeqCst);
    let out_of_time = !halted && (run_ctx.is_done() || shared.out_of_time.load(Ordering::SeqCst));
    let mut failed = shared.failed.load(Ordering::SeqCst);
    if out_of_time && shared.signal.load(Ordering::SeqCst) == 0 && input_error.is_none() {
        // The jobs the deadline kept from starting count as failed: those that had a slot
        // and the rest of the input (stdin read to its end, unless a signal comes).
        failed += shared.not_started.load(Ordering::SeqCst);
        failed += spawns - shared.spawned.load(Ordering::SeqCst);
        tokio::select! {
            rest = source.count_rest() => failed += rest,
            _ = signaled.notified() => {}
        }
    }
    signals.abort();

    let signo = shared.signal.load(Ordering::SeqCst);
    if signo != 0 {
        return 128 + signo as u8;
    }
    if let Some(msg) = input_error {
        eprintln!("ctxrun: {msg}");
        return EXIT_INTERNAL;
    }
    exit_status(
        &config,
        halted,
        failed,
        to_run,
        shared.trip_exitval.load(Ordering::SeqCst),
    )
}

/// The exit status, GNU parallel's: the number of failed jobs, capped at 101; under a tripped
/// `--halt ...,fail=1`, the failing job's exit value; under `fail=P%`, the percentage of the
/// run's jobs that failed.
fn exit_status(
    config: &Config,
    halted: bool,
    failed: usize,
    total: usize,
    trip_exitval: i32,
) -> u8 {
    if failed == 0 {
        return 0;
    }
    if halted {
        match config.halt.threshold {
            Threshold::Count(1) if (1..=255).contains(&trip_exitval) => {
                return trip_exitval as u8;
            }
            Threshold::Percent(_) if total > 0 => {
                return (failed * 100 / total).clamp(1, 100) as u8;
            }
            _ => {}
        }
    }
    failed.min(101) as u8
}
