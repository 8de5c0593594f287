//! The chapter's "Calculation" exercise (12.12): a worker pool with 3 workers is fed 7 tasks of
//! exactly 100 ms each. How long does it take?
//!
//! Three workers run at most three tasks at once, so the 7 tasks need ceil(7 / 3) = 3 rounds:
//! 3 tasks, then 3, then the last one alone. Each round takes 100 ms, so the pool takes
//! 300 ms, however the tasks are spread. The program prints that reasoning, then runs it: the
//! measured time is at least 300 ms (three rounds cannot overlap on three workers) and a little
//! more on a real machine.
//!
//! ```text
//! cargo run --example pool_calculation
//! 7 tasks of 100 ms on 3 workers: 3 rounds (3 + 3 + 1 tasks) = 300 ms in theory
//! measured: 301 ms (at least 300 ms)
//! ```

use std::io::{self, Write};
use std::time::{Duration, Instant};

use ctxkit::pool::Pool;
use ctxkit::Context;

/// How many tasks the pool is fed.
pub const TASKS: u32 = 7;
/// How many workers it has.
pub const WORKERS: usize = 3;
/// How long each task takes.
pub const TASK_TIME: Duration = Duration::from_millis(100);

/// Runs the tasks on the pool; returns the measured time after printing it and the theory.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<Duration> {
    let workers = u32::try_from(WORKERS).expect("a small number");
    let rounds = TASKS.div_ceil(workers);
    let per_round: Vec<String> = (0..rounds)
        .map(|round| (TASKS - round * workers).min(workers).to_string())
        .collect();
    writeln!(
        out,
        "{TASKS} tasks of {} ms on {WORKERS} workers: {rounds} rounds ({} tasks) = {} ms in theory",
        TASK_TIME.as_millis(),
        per_round.join(" + "),
        (TASK_TIME * rounds).as_millis()
    )?;

    let ctx = Context::background();
    let started = Instant::now();
    let done = Pool::new(WORKERS)
        .map(&ctx, 0..TASKS, |_ctx, _task| std::thread::sleep(TASK_TIME))
        .filter(Result::is_ok)
        .count();
    let took = started.elapsed();
    assert_eq!(done, TASKS as usize, "every task ran");
    writeln!(
        out,
        "measured: {} ms (at least {} ms)",
        took.as_millis(),
        (TASK_TIME * rounds).as_millis()
    )?;
    Ok(took)
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock()).map(drop)
}
