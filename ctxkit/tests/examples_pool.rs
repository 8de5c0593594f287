//! The worker pool examples' output: `worker_pool` (12.8), `closing_results` (its trap),
//! `worker_order` (its "Wut") and `pool_calculation` (the "Calculation" exercise of 12.12).

use std::collections::BTreeSet;
use std::time::Duration;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's main() is not used here"
)]
#[path = "../examples/worker_pool.rs"]
mod worker_pool;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's main() is not used here"
)]
#[path = "../examples/pool_calculation.rs"]
mod pool_calculation;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's main() is not used here"
)]
#[path = "../examples/closing_results.rs"]
mod closing_results;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's main() is not used here"
)]
#[path = "../examples/worker_order.rs"]
mod worker_order;

#[test]
fn worker_pool_squares_one_to_seven_on_three_workers_sorted() {
    let mut out = Vec::new();
    worker_pool::run(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted, "printed sorted");
    let mut squared = BTreeSet::new();
    for line in &lines {
        // "worker {id} squared {n} = {n*n}"
        let words: Vec<&str> = line.split(' ').collect();
        assert_eq!(words.len(), 6, "{line}");
        assert_eq!((words[0], words[2], words[4]), ("worker", "squared", "="));
        let id: usize = words[1].parse().unwrap();
        assert!((1..=3).contains(&id), "a worker of three: {line}");
        let n: u64 = words[3].parse().unwrap();
        assert_eq!(words[5].parse::<u64>().unwrap(), n * n, "{line}");
        assert!(squared.insert(n), "each job once: {line}");
    }
    assert_eq!(squared, (1..=7).collect());
}

#[test]
fn pool_calculation_takes_at_least_three_rounds() {
    let mut out = Vec::new();
    let took = pool_calculation::run(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "7 tasks of 100 ms on 3 workers: 3 rounds (3 + 3 + 1 tasks) = 300 ms in theory"
    );
    // Only the lower bound: a loaded machine may take longer, never shorter.
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert_eq!(
        lines[1],
        format!("measured: {} ms (at least 300 ms)", took.as_millis())
    );
}

#[test]
fn closing_results_needs_no_close() {
    let mut out = Vec::new();
    closing_results::run(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        "1. the pool: a job returns its result; there is no channel to close\n\
         squares: [1, 4, 9, 16, 25, 36, 49]\n\
         the results ended after the last job: 7 results\n\
         2. channels: each worker owns a sender and drops it when it returns\n\
         squares: [1, 4, 9, 16, 25, 36, 49]\n\
         the loop ended when the last of 3 senders was dropped: 7 results\n\
         3. the forgotten close: main keeps a sender of its own\n\
         received 7 results, then nothing: the 8th receive was still waiting after 300 ms\n\
         (Go stops such a program with \"fatal error: all goroutines are asleep - deadlock!\";\n\
         in Rust this loop would wait forever: drop main's sender before reading)\n"
    );
}

/// `"  <what>: <n> run(s)"` as `(what, n)`.
fn count_line(line: &str) -> (&str, usize) {
    let (what, count) = line
        .strip_prefix("  ")
        .and_then(|line| line.rsplit_once(": "))
        .unwrap_or_else(|| panic!("a count line: {line:?}"));
    let count = count
        .strip_suffix(" runs")
        .or_else(|| count.strip_suffix(" run"))
        .unwrap_or_else(|| panic!("a count of runs: {line:?}"));
    (what, count.parse().unwrap())
}

/// Checks one series' printed distributions from `lines[0]` on (its heading); returns the
/// number of lines it took.
fn check_series(lines: &[&str], runs: usize, label: &str) -> usize {
    assert_eq!(
        lines[0],
        format!("{runs} runs of 3 workers squaring 1..7, {label}:")
    );
    assert_eq!(lines[1], "worker that squared 1:");
    let mut at = 2;
    let mut total = 0;
    let mut workers = Vec::new();
    while lines[at].starts_with("  ") {
        let (what, count) = count_line(lines[at]);
        let worker: usize = what.strip_prefix("worker ").unwrap().parse().unwrap();
        assert!((1..=3).contains(&worker), "{}", lines[at]);
        assert!(count > 0, "only workers that did: {}", lines[at]);
        workers.push(worker);
        total += count;
        at += 1;
    }
    assert_eq!(total, runs, "every run counted once");
    assert!(
        workers.windows(2).all(|w| w[0] < w[1]),
        "by worker: {workers:?}"
    );
    assert_eq!(lines[at], "split of the 7 jobs (busiest worker first):");
    at += 1;
    let mut total = 0;
    let mut last_count = usize::MAX;
    while at < lines.len() && lines[at].starts_with("  ") {
        let (split, count) = count_line(lines[at]);
        let split: Vec<usize> = split.split('/').map(|n| n.parse().unwrap()).collect();
        assert_eq!(split.len(), 3, "{}", lines[at]);
        assert_eq!(split.iter().sum::<usize>(), 7, "{}", lines[at]);
        assert!(split.windows(2).all(|w| w[0] >= w[1]), "{}", lines[at]);
        assert!(
            count > 0 && count <= last_count,
            "most frequent first: {}",
            lines[at]
        );
        last_count = count;
        total += count;
        at += 1;
    }
    assert_eq!(total, runs, "every run counted once");
    at
}

#[test]
fn worker_order_prints_the_distributions_over_every_run() {
    let mut out = Vec::new();
    let (instant, slow) = worker_order::run(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    let first = check_series(&lines, 200, "instant jobs");
    let second = check_series(&lines[first..], 10, "jobs of 20 ms");
    assert_eq!(first + second, lines.len(), "{out}");
    // The outcomes returned agree with what was printed (the invariants, not the counts: one
    // outcome may take every run on a loaded machine).
    assert_eq!((instant.len(), slow.len()), (200, 10));
    for outcome in instant.iter().chain(&slow) {
        assert!((1..=3).contains(&outcome.first), "{outcome:?}");
        assert_eq!(outcome.split.len(), 3, "{outcome:?}");
        assert_eq!(outcome.split.iter().sum::<usize>(), 7, "{outcome:?}");
        assert!(
            outcome.split[0] >= 3,
            "the busiest ran at least 7/3: {outcome:?}"
        );
    }
}
