//! The printer: one blocking task that writes each finished job's output whole (GNU parallel's
//! grouping), in order of completion or, with `-k`, in input order, and keeps `--bar`'s
//! progress.
//!
//! Only the printer writes job output and progress, so neither is ever interleaved with the
//! other (under `--ungroup` the jobs write for themselves, and only progress is the printer's).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

/// A job's output, for the printer.
#[derive(Debug)]
pub(crate) struct Output {
    /// The job's number, 1-based.
    pub(crate) seq: usize,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    /// Whether the job ran (a job that never started is sent too, empty, so `-k` can go past
    /// it, but is not progress).
    pub(crate) ran: bool,
}

impl Output {
    /// The empty output of job `seq`, which did not run.
    pub(crate) fn empty(seq: usize) -> Output {
        Output {
            seq,
            stdout: Vec::new(),
            stderr: Vec::new(),
            ran: false,
        }
    }
}

/// `--bar`: how progress is shown.
#[derive(Debug)]
pub(crate) enum Progress {
    /// No `--bar`.
    Off,
    /// On a terminal: indicatif's bar, redrawn in place, with the ETA.
    Bar(ProgressBar),
    /// Elsewhere (a log, a pipe): a line each time another tenth of the jobs is done.
    Lines {
        total: usize,
        done: usize,
        /// The next tenth to report, 1 to 10.
        next_tenth: usize,
        start: Instant,
    },
}

impl Progress {
    /// Progress over `total` jobs, shown if `enabled`.
    pub(crate) fn new(enabled: bool, total: usize) -> Progress {
        if !enabled || total == 0 {
            return Progress::Off;
        }
        if !std::io::stderr().is_terminal() {
            return Progress::Lines {
                total,
                done: 0,
                next_tenth: 1,
                start: Instant::now(),
            };
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{wide_bar} {pos}/{len} jobs {percent}% ETA {eta}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress::Bar(bar)
    }

    /// Runs `write` without tearing the bar.
    fn suspend(&self, write: impl FnOnce()) {
        match self {
            Progress::Bar(bar) => bar.suspend(write),
            _ => write(),
        }
    }

    /// One more job done.
    fn tick(&mut self) {
        match self {
            Progress::Off => {}
            Progress::Bar(bar) => bar.inc(1),
            Progress::Lines {
                total,
                done,
                next_tenth,
                start,
            } => {
                *done += 1;
                if *done * 10 < *next_tenth * *total {
                    return;
                }
                while *next_tenth <= 10 && *done * 10 >= *next_tenth * *total {
                    *next_tenth += 1;
                }
                let left = start.elapsed().as_secs_f64() * (*total - *done) as f64 / *done as f64;
                eprintln!(
                    "ctxrun: {}% ({done}/{total} jobs) done, ETA {left:.0}s",
                    *done * 100 / *total
                );
            }
        }
    }

    fn finish(self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}

/// Writes each job's output whole; with `keep_order`, in sequence order. Ends when every
/// sender is gone.
pub(crate) fn print(
    mut rx: mpsc::UnboundedReceiver<Output>,
    keep_order: bool,
    mut progress: Progress,
) {
    let mut pending = BTreeMap::new();
    let mut next = 1;
    let write = |o: &Output| {
        if o.stdout.is_empty() && o.stderr.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&o.stdout);
        let _ = out.flush();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(&o.stderr);
        let _ = err.flush();
    };
    while let Some(o) = rx.blocking_recv() {
        if o.ran {
            progress.tick();
        }
        if !keep_order {
            progress.suspend(|| write(&o));
            continue;
        }
        pending.insert(o.seq, o);
        while let Some(o) = pending.remove(&next) {
            progress.suspend(|| write(&o));
            next += 1;
        }
    }
    for o in pending.values() {
        progress.suspend(|| write(o));
    }
    progress.finish();
}
