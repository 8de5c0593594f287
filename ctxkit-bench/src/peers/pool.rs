//! `pool.*` on the peers: the chapter's pool built from crossbeam channels and from std's
//! `mpsc` (buffered as Go's buffered channels, and unbuffered: zero-capacity rendezvous), and
//! rayon's parallel iterator, which splits index ranges instead of handing items over.

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use super::peer;
use crate::harness::{emit, progress, stats, Cfg};
use crate::pool::{pool_batches, JOBS};

/// The Go pattern with OS threads: a producer thread sends 0..n into a bounded(`capacity`)
/// jobs channel, `workers` threads square them into a bounded(`capacity`) results channel, the
/// calling thread sums. Thread spawns and joins included.
pub(crate) fn crossbeam_pool(n: u64, workers: usize, capacity: usize) -> u64 {
    let (jobs, job) = crossbeam_channel::bounded::<u64>(capacity);
    let (results, result) = crossbeam_channel::bounded::<u64>(capacity);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (job, results) = (job.clone(), results.clone());
            scope.spawn(move || {
                for x in job {
                    if results.send(x * x).is_err() {
                        return;
                    }
                }
            });
        }
        drop((job, results));
        scope.spawn(move || {
            for x in 0..black_box(n) {
                if jobs.send(x).is_err() {
                    return;
                }
            }
        });
        result.iter().fold(0u64, u64::wrapping_add)
    })
}

/// The same with std's `sync_channel`; the jobs receiver is shared behind a mutex (it is not
/// `Clone`), as the Rust book's thread pool does.
fn std_pool(n: u64, workers: usize, capacity: usize) -> u64 {
    let (jobs, job) = std::sync::mpsc::sync_channel::<u64>(capacity);
    let job = Arc::new(Mutex::new(job));
    let (results, result) = std::sync::mpsc::sync_channel::<u64>(capacity);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (job, results) = (job.clone(), results.clone());
            scope.spawn(move || loop {
                let next = job.lock().map(|receiver| receiver.recv());
                match next {
                    Ok(Ok(x)) => {
                        if results.send(x * x).is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            });
        }
        drop(results);
        scope.spawn(move || {
            for x in 0..black_box(n) {
                if jobs.send(x).is_err() {
                    return;
                }
            }
        });
        result.iter().fold(0u64, u64::wrapping_add)
    })
}

/// Runs the selected `pool.*` workloads on the peers.
pub(crate) fn run(cfg: &Cfg) {
    let runs = cfg.pick(7, 3);
    // A rendezvous between OS threads is a park and an unpark (tens of microseconds here):
    // the unbuffered forms run fewer jobs than the buffered ones (the Go runner's run all
    // 1,000,000); the figure is still per job.
    let rendezvous_jobs: u64 = cfg.pick(50_000, 10_000);
    for (workload, workers) in [("pool.squares_1m_w2", 2usize), ("pool.squares_1m_w3", 3)] {
        if !cfg.want(&[workload]) {
            continue;
        }
        progress(&format!("{workload} (peers)"));
        for (capacity, suffix) in [(1024usize, "-buffered"), (0, "")] {
            let (jobs, what) = if capacity == 0 {
                (
                    rendezvous_jobs,
                    format!(
                        "unbuffered (zero-capacity rendezvous), {rendezvous_jobs} jobs per run"
                    ),
                )
            } else {
                (JOBS, format!("buffered({capacity})"))
            };
            let samples = pool_batches(runs, jobs, |n| crossbeam_pool(n, workers, capacity));
            emit(
                workload,
                &format!("{}{suffix}", peer!("crossbeam-channel", "PEER_VERSION_CROSSBEAM_CHANNEL")),
                "ns_per_job",
                Some(stats(&samples)),
                &format!("the chapter's pool with OS threads: producer thread -> bounded jobs channel -> {workers} worker threads -> bounded results channel -> this thread sums; channels {what}; thread spawns included"),
            );
            let samples = pool_batches(runs, jobs, |n| std_pool(n, workers, capacity));
            emit(
                workload,
                &format!("std-mpsc{suffix}"),
                "ns_per_job",
                Some(stats(&samples)),
                &format!("the same with std::sync::mpsc::sync_channel, the jobs receiver shared as Arc<Mutex<Receiver>> (not Clone); channels {what}; thread spawns included"),
            );
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .expect("a rayon pool");
        // A Vec built outside the timing: over a bare range LLVM folds the sum of squares.
        let input: Vec<u64> = (0..JOBS).collect();
        let samples = pool_batches(runs, JOBS, |n| {
            pool.install(|| {
                use rayon::prelude::*;
                let slice = black_box(&input[..usize::try_from(n).expect("fits")]);
                slice
                    .par_iter()
                    .map(|&x| x * x)
                    .reduce(|| 0, u64::wrapping_add)
            })
        });
        emit(
            workload,
            peer!("rayon", "PEER_VERSION_RAYON"),
            "ns_per_job",
            Some(stats(&samples)),
            &format!("ThreadPoolBuilder::num_threads({workers}) (built once), install(|| input.par_iter().map(|&x| x*x).reduce(..)) over a pre-built Vec: work-stealing over index ranges, no hand-off per item; not the chapter's shape, but what a Rust user would write for this job"),
        );
    }
}
