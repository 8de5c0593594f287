//! The "Wut" of 12.8: which worker takes which job is not fixed. The chapter's pool (3 workers
//! squaring 1..7, `queue(0)` as its unbuffered channels) is run many times, and the example
//! prints how often each worker squared 1, and how the 7 jobs were split among the three (the
//! busiest worker's count first). Then the same with every job taking 20 ms, where the split
//! settles near 3/2/2, as the chapter says.
//!
//! The counts change from run to run, and from machine to machine; on a busy machine one
//! outcome may take (nearly) every run. A sample:
//!
//! ```text
//! cargo run --example worker_order
//! 200 runs of 3 workers squaring 1..7, instant jobs:
//! worker that squared 1:
//!   worker 1: 185 runs
//!   worker 2: 15 runs
//! split of the 7 jobs (busiest worker first):
//!   7/0/0: 71 runs
//!   6/1/0: 59 runs
//!   4/3/0: 42 runs
//!   3/3/1: 19 runs
//!   5/2/0: 4 runs
//!   3/2/2: 3 runs
//!   4/2/1: 2 runs
//! 10 runs of 3 workers squaring 1..7, jobs of 20 ms:
//! worker that squared 1:
//!   worker 1: 8 runs
//!   worker 2: 2 runs
//! split of the 7 jobs (busiest worker first):
//!   3/2/2: 10 runs
//! ```
//!
//! Workers are numbered in the order the pool starts them, and it starts them as jobs arrive:
//! with instant jobs the first worker often finishes a job before the next one is even
//! started, so it takes most of them (here all seven in a third of the runs). That is the
//! chapter's "one eager worker may grab five of the seven jobs". With jobs of 20 ms every
//! worker is busy when the next job comes, and the split is 3/2/2 (sorting is still needed:
//! which worker gets three varies).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

use ctxkit::pool::{self, Pool};
use ctxkit::Context;

const NUM_WORKERS: usize = 3;
const JOBS: u64 = 7;

/// What one run of the pool did: the worker that squared 1, and each worker's job count,
/// largest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The number of the worker that squared 1.
    pub first: usize,
    /// How many jobs each worker ran, largest first (`NUM_WORKERS` counts summing to 7).
    pub split: Vec<usize>,
}

/// Runs the chapter's pool once; each job takes `job_time` (zero: instant).
fn run_once(job_time: Duration) -> Outcome {
    let ctx = Context::background();
    let mut first = 0;
    let mut per_worker = vec![0; NUM_WORKERS];
    for result in Pool::new(NUM_WORKERS)
        .queue(0)
        .map(&ctx, 1..=JOBS, move |_ctx, n| {
            if !job_time.is_zero() {
                std::thread::sleep(job_time);
            }
            let id = pool::worker_id().expect("a pool's job knows its worker");
            (id, n, n * n)
        })
    {
        let (id, n, _square) = result.expect("squaring never panics");
        if n == 1 {
            first = id;
        }
        per_worker[id - 1] += 1;
    }
    per_worker.sort_unstable_by(|a, b| b.cmp(a));
    Outcome {
        first,
        split: per_worker,
    }
}

/// "1 run", "2 runs".
fn runs_text(count: usize) -> String {
    if count == 1 {
        "1 run".to_owned()
    } else {
        format!("{count} runs")
    }
}

/// Runs the pool `runs` times and prints the two distributions; returns each run's outcome.
fn series(
    out: &mut dyn Write,
    runs: usize,
    job_time: Duration,
    label: &str,
) -> io::Result<Vec<Outcome>> {
    let outcomes: Vec<Outcome> = (0..runs).map(|_| run_once(job_time)).collect();
    writeln!(
        out,
        "{runs} runs of {NUM_WORKERS} workers squaring 1..{JOBS}, {label}:"
    )?;
    let mut firsts: BTreeMap<usize, usize> = BTreeMap::new();
    let mut splits: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
    for outcome in &outcomes {
        *firsts.entry(outcome.first).or_default() += 1;
        *splits.entry(outcome.split.clone()).or_default() += 1;
    }
    writeln!(out, "worker that squared 1:")?;
    for (worker, count) in &firsts {
        writeln!(out, "  worker {worker}: {}", runs_text(*count))?;
    }
    writeln!(out, "split of the {JOBS} jobs (busiest worker first):")?;
    // Most frequent first; ties by the split, busiest first.
    let mut splits: Vec<(Vec<usize>, usize)> = splits.into_iter().collect();
    splits.sort_by(|(a, m), (b, n)| n.cmp(m).then_with(|| b.cmp(a)));
    for (split, count) in splits {
        let split: Vec<String> = split.iter().map(usize::to_string).collect();
        writeln!(out, "  {}: {}", split.join("/"), runs_text(count))?;
    }
    Ok(outcomes)
}

/// Runs `instant_runs` runs of instant jobs, then `slow_runs` runs of jobs of `job_time`,
/// printing each series' distributions; returns the outcomes of both.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run_with(
    out: &mut dyn Write,
    instant_runs: usize,
    slow_runs: usize,
    job_time: Duration,
) -> io::Result<(Vec<Outcome>, Vec<Outcome>)> {
    let instant = series(out, instant_runs, Duration::ZERO, "instant jobs")?;
    let label = format!("jobs of {} ms", job_time.as_millis());
    let slow = series(out, slow_runs, job_time, &label)?;
    Ok((instant, slow))
}

/// The example: 200 runs of instant jobs, 10 runs of 20 ms jobs.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<(Vec<Outcome>, Vec<Outcome>)> {
    run_with(out, 200, 10, Duration::from_millis(20))
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock()).map(|_| ())
}
