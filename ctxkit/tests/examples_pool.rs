//! The worker pool examples' output: `worker_pool` (12.8) and `pool_calculation` (the "Calculation"
//! exercise of 12.12).

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
