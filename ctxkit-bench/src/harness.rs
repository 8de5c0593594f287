//! What every workload file shares: the command line, batch timing, statistics, the JSON line
//! format (one object per line: `workload`, `impl`, `metric`, `value` the median of the runs,
//! `min`, `max`, `runs`, an optional `note`; the Go runner in `bench/go` prints the same), a
//! counting allocator and the "other processes" check.
//!
//! Batch counts are the Go runner's (`bench/go`: the same workloads on Go's own packages), and
//! the peers (`--peers`, `peers/`: the Rust crates users would pick instead) run on this
//! harness too, so lines compare directly:
//! micro benchmarks are calibrated to ~50 ms batches (10 ms with `--quick`), 11 batches (7);
//! 100k/10k tree workloads 9 batches (7).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

// ===== command line =====

/// The runner's usage line (`compare` has its own).
pub(crate) const USAGE: &str = "usage: ctxkit-bench [--quick] [--peers] [--scale] [--in-leak-scope] [--only PREFIX[,PREFIX...]]\n       ctxkit-bench compare --help";

/// What to run.
#[derive(Debug)]
pub(crate) struct Cfg {
    /// `--quick`: about 15 s in all, smaller batches.
    pub(crate) quick: bool,
    /// `--only PREFIX` (repeatable, or comma-separated): workloads whose name starts with one.
    pub(crate) only: Vec<String>,
    /// `--in-leak-scope`: run everything inside a leak check's scope (what tracking costs).
    pub(crate) in_leak_scope: bool,
    /// `--peers`: also measure the Rust peers (`peers/`).
    pub(crate) peers: bool,
    /// `--scale`: print the scale series (`scale.rs`) instead of the regular workloads.
    pub(crate) scale: bool,
    /// `--scale-bytes-run FORM N` (internal): one run of `scale.group_bytes` in this fresh
    /// process, started by the runner itself (`scale.rs`).
    pub(crate) bytes_run: Option<(String, usize)>,
}

impl Cfg {
    pub(crate) fn from_args() -> Result<Cfg, String> {
        let mut cfg = Cfg {
            quick: false,
            only: Vec::new(),
            in_leak_scope: false,
            peers: false,
            scale: false,
            bytes_run: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" | "-quick" => cfg.quick = true,
                "--in-leak-scope" => cfg.in_leak_scope = true,
                "--peers" | "-peers" => cfg.peers = true,
                "--scale" | "-scale" => cfg.scale = true,
                "--scale-bytes-run" => {
                    let form = args.next().ok_or("--scale-bytes-run needs FORM N")?;
                    let n = args.next().ok_or("--scale-bytes-run needs FORM N")?;
                    let n = n.parse().map_err(|e| format!("--scale-bytes-run N: {e}"))?;
                    cfg.scale = true;
                    cfg.bytes_run = Some((form, n));
                }
                "--only" | "-only" => {
                    let prefixes = args.next().ok_or("--only needs a PREFIX")?;
                    cfg.only.extend(
                        prefixes
                            .split(',')
                            .filter(|p| !p.is_empty())
                            .map(String::from),
                    );
                }
                "--help" | "-h" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}; {USAGE}")),
            }
        }
        Ok(cfg)
    }

    /// Whether any of `workloads` is selected.
    pub(crate) fn want(&self, workloads: &[&str]) -> bool {
        self.only.is_empty()
            || workloads
                .iter()
                .any(|w| self.only.iter().any(|p| w.starts_with(p.as_str())))
    }

    /// `full` normally, `quick` with `--quick`.
    pub(crate) fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// Runs in a micro benchmark.
    pub(crate) fn micro_runs(&self) -> usize {
        self.pick(11, 7)
    }

    /// Target length of one micro batch.
    pub(crate) fn micro_target(&self) -> Duration {
        Duration::from_millis(self.pick(50, 10))
    }

    /// Runs of a 100k/10k tree workload.
    pub(crate) fn heavy_runs(&self) -> usize {
        self.pick(9, 7)
    }

    /// Runs of a point of the scale series at `n`: 7 up to 100,000, 3 above (3 with `--quick`).
    pub(crate) fn scale_runs(&self, n: usize) -> usize {
        if n > 100_000 {
            3
        } else {
            self.pick(7, 3)
        }
    }
}

// ===== statistics =====

/// The figures of one JSON line.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stats {
    pub(crate) value: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) runs: usize,
}

/// Median, min and max of batch figures.
pub(crate) fn stats(samples: &[f64]) -> Stats {
    assert!(!samples.is_empty(), "no samples");
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let value = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Stats {
        value,
        min: sorted[0],
        max: sorted[n - 1],
        runs: n,
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of unsorted samples.
pub(crate) fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ===== output =====

fn number(x: f64) -> String {
    if !x.is_finite() {
        "null".into()
    } else if x.abs() >= 1.0 || x == 0.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.5}")
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How many JSON lines this process has printed.
static LINES_PRINTED: AtomicU64 = AtomicU64::new(0);

/// Whether this process has printed any JSON line (an `--only` that matched nothing has not).
pub(crate) fn printed_any() -> bool {
    LINES_PRINTED.load(Ordering::Relaxed) > 0
}

/// Whether a selected workload printed nothing because the machine lacks what it needs (said
/// on stderr): an `--only` that selects only such workloads is not an `--only` that matches
/// nothing.
static SKIPPED: AtomicBool = AtomicBool::new(false);

/// Records that a selected workload was skipped (after saying why on stderr).
pub(crate) fn note_skipped() {
    SKIPPED.store(true, Ordering::Relaxed);
}

/// Whether a selected workload was skipped.
pub(crate) fn skipped_any() -> bool {
    SKIPPED.load(Ordering::Relaxed)
}

/// Prints one JSON line on stdout. `stats: None` prints `"value":null` (with a note saying why).
pub(crate) fn emit(
    workload: &str,
    implementation: &str,
    metric: &str,
    stats: Option<Stats>,
    note: &str,
) {
    write_line(workload, implementation, None, metric, stats, note);
}

/// Prints one line of the scale series: as [`emit`], with the integer field `n` (the point's
/// x) right after `impl`.
pub(crate) fn emit_n(
    workload: &str,
    implementation: &str,
    n: usize,
    metric: &str,
    stats: Option<Stats>,
    note: &str,
) {
    write_line(workload, implementation, Some(n), metric, stats, note);
}

fn write_line(
    workload: &str,
    implementation: &str,
    n: Option<usize>,
    metric: &str,
    stats: Option<Stats>,
    note: &str,
) {
    let mut line = format!(
        "{{\"workload\":{},\"impl\":{},",
        json_string(workload),
        json_string(implementation),
    );
    if let Some(n) = n {
        line.push_str(&format!("\"n\":{n},"));
    }
    line.push_str(&format!("\"metric\":{},", json_string(metric)));
    match stats {
        Some(s) => line.push_str(&format!(
            "\"value\":{},\"min\":{},\"max\":{},\"runs\":{}",
            number(s.value),
            number(s.min),
            number(s.max),
            s.runs
        )),
        None => line.push_str("\"value\":null,\"min\":null,\"max\":null,\"runs\":0"),
    }
    if !note.is_empty() {
        line.push_str(&format!(",\"note\":{}", json_string(note)));
    }
    line.push('}');
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    LINES_PRINTED.fetch_add(1, Ordering::Relaxed);
}

/// Progress on stderr.
pub(crate) fn progress(message: &str) {
    eprintln!("[ctxkit-bench] {message}");
}

// ===== timing =====

/// Runs `f` once as a warm-up, then `runs` times; returns each run's figure.
pub(crate) fn batches(runs: usize, mut f: impl FnMut() -> f64) -> Vec<f64> {
    black_box(f());
    (0..runs).map(|_| f()).collect()
}

/// Calibrates `n` so that `op(n)` takes about `target`, warms up, then times `runs` batches;
/// returns ns per op for each batch.
pub(crate) fn ns_per_op(target: Duration, runs: usize, mut op: impl FnMut(usize)) -> Vec<f64> {
    let n = calibrate(target, &mut op);
    op(n);
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            op(n);
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect()
}

/// The `n` for which `op(n)` takes about `target`: tries n = 100, 1000, ... until a run takes
/// at least a twentieth of `target`, then scales n to `target` (at least 1).
pub(crate) fn calibrate(target: Duration, op: &mut impl FnMut(usize)) -> usize {
    let mut n = 100usize;
    loop {
        let start = Instant::now();
        op(n);
        let took = start.elapsed();
        if took >= target / 20 || n >= 1 << 30 {
            n = ((n as f64) * target.as_secs_f64() / took.as_secs_f64().max(1e-9)) as usize;
            break;
        }
        n *= 10;
    }
    n.max(1)
}

/// Two threads run `op` until `duration` has passed; returns (operations, seconds).
pub(crate) fn contended_2(duration: Duration, op: impl Fn() + Sync) -> (u64, f64) {
    contended(2, duration, op)
}

/// `threads` threads run `op` until `duration` has passed; returns (operations, seconds).
pub(crate) fn contended(threads: usize, duration: Duration, op: impl Fn() + Sync) -> (u64, f64) {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads + 1);
    let total = AtomicU64::new(0);
    let mut start = None;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        op();
                    }
                    n += 256;
                }
                total.fetch_add(n, Ordering::Relaxed);
            });
        }
        barrier.wait();
        start = Some(Instant::now());
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
    let seconds = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    (total.into_inner(), seconds)
}

/// Keeps the CPU busy for `duration`.
pub(crate) fn spin(duration: Duration) {
    let start = Instant::now();
    while start.elapsed() < duration {
        std::hint::spin_loop();
    }
}

/// A 2-worker multi-thread tokio runtime (what `#[tokio::main]` gives on this machine).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ===== heap accounting =====

/// Puts the process's allocator in the steady state of a program that has run a while, before
/// anything is measured, so that every implementation measured in this process meets the same
/// heap whatever ran before it.
///
/// glibc's malloc gives the free memory at the top of its heap back to the OS whenever more
/// than its trim threshold is free (128 KiB at start), and raises that threshold only when a
/// large `mmap`ed block is freed. Depending on what ran earlier in the process, a workload that
/// builds and drops a tree of 100,000 nodes (about 10 MB) either found its memory kept from the
/// batch before or paid a page fault per 4 KiB page in every batch: `ctx.build_flat_100k`
/// measured 8 ms for ctxkit, whose batches each faulted 2,400 pages in, and 2 ms for
/// tokio-util, whose batches, later in the same process, faulted none (counted with
/// `perf stat -e page-faults` and `strace -c`). Freeing one 16 MiB block sets the threshold to
/// 32 MiB for the rest of the process, as a long-running program's heap would have it (Go's
/// runtime keeps its heap too). With another allocator this costs one allocation.
pub(crate) fn settle_allocator() {
    let block: Vec<u8> = Vec::with_capacity(16 << 20);
    drop(black_box(block));
}

/// Counts live heap bytes while `COUNTING` is on (timed code pays one relaxed load).
pub(crate) struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
static ALLOCATIONS: AtomicIsize = AtomicIsize::new(0);

#[allow(
    unsafe_code,
    reason = "a GlobalAlloc impl is unsafe by definition; the bench binary only"
)]
// SAFETY: every method forwards to `System` with the caller's arguments unchanged; the counters
// are plain atomics and never affect the pointers returned.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` with heap counting on; returns its result, the net bytes it left allocated and the
/// number of allocations it made. Keep other threads quiet meanwhile.
pub(crate) fn count_heap<T>(f: impl FnOnce() -> T) -> (T, isize, isize) {
    let counting = HeapCount::start();
    let out = f();
    let (bytes, allocations) = counting.stop();
    (out, bytes, allocations)
}

/// Heap counting from `start` to `stop`, for what [`count_heap`] cannot wrap in a closure
/// (async code: the allocations of every thread count, the runtime's workers included).
#[derive(Debug)]
pub(crate) struct HeapCount {
    bytes_before: isize,
    allocations_before: isize,
}

impl HeapCount {
    /// Turns counting on.
    pub(crate) fn start() -> HeapCount {
        COUNTING.store(true, Ordering::SeqCst);
        HeapCount {
            bytes_before: LIVE_BYTES.load(Ordering::SeqCst),
            allocations_before: ALLOCATIONS.load(Ordering::SeqCst),
        }
    }

    /// The net bytes left allocated since `start` and the allocations made, so far.
    pub(crate) fn now(&self) -> (isize, isize) {
        (
            LIVE_BYTES.load(Ordering::SeqCst) - self.bytes_before,
            ALLOCATIONS.load(Ordering::SeqCst) - self.allocations_before,
        )
    }

    /// Turns counting off; the net bytes left allocated since `start` and the allocations made.
    pub(crate) fn stop(self) -> (isize, isize) {
        let counted = self.now();
        COUNTING.store(false, Ordering::SeqCst);
        counted
    }
}

// ===== other processes' CPU use =====

fn system_ticks() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut fields = stat.lines().next()?.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let (mut busy, mut total) = (0.0, 0.0);
    for (i, field) in fields.enumerate() {
        let v: f64 = field.parse().ok()?;
        total += v;
        if i != 3 && i != 4 {
            busy += v;
        }
    }
    Some((busy, total))
}

/// This process's CPU ticks, with those of its children that have been waited for (the
/// `redis-server` of `rate_redis.rs`, the fresh processes of `--scale`'s `scale.group_bytes`):
/// what they used is the runner's own doing, not another process's.
fn own_ticks() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime, cstime (fields 14-17 of proc(5)).
    (11..=14).map(|i| fields.get(i)?.parse::<f64>().ok()).sum()
}

/// Measures the share of CPU time other processes used since `start`.
#[derive(Debug)]
pub(crate) struct OthersLoad(Option<(f64, f64, f64)>);

impl OthersLoad {
    pub(crate) fn start() -> OthersLoad {
        OthersLoad(system_ticks().zip(own_ticks()).map(|((b, t), o)| (b, t, o)))
    }

    /// Prints the share on stderr, with a warning above 5 %.
    pub(crate) fn report(&self, when: &str) {
        let Some((b0, t0, o0)) = self.0 else { return };
        let (Some((b1, t1)), Some(o1)) = (system_ticks(), own_ticks()) else {
            return;
        };
        if t1 <= t0 {
            return;
        }
        let share = (((b1 - b0) - (o1 - o0)).max(0.0)) / (t1 - t0);
        eprintln!(
            "# {when}: other processes used {:.0}% of the CPUs",
            share * 100.0
        );
        if share > 0.05 {
            eprintln!("# WARNING ({when}): timings are perturbed; rerun on a quiet machine");
        }
    }
}

/// Runs `run` once to warm up (its figure dropped), then `runs` times; the figures, in order.
/// Async, so that every run happens inside one task (see `group.rs`).
pub(crate) async fn after_warm_up<Fut>(runs: usize, mut run: impl FnMut() -> Fut) -> Vec<f64>
where
    Fut: std::future::Future<Output = f64>,
{
    run().await;
    let mut figures = Vec::with_capacity(runs);
    for _ in 0..runs {
        figures.push(run().await);
    }
    figures
}

/// Wake-latency trials: a tenth of `trials` to warm up, then `runs` batches of `trials`.
pub(crate) fn trial_batches(
    runs: usize,
    trials: usize,
    mut trial: impl FnMut() -> f64,
) -> Vec<Vec<f64>> {
    for _ in 0..trials / 10 {
        trial();
    }
    (0..runs)
        .map(|_| (0..trials).map(|_| trial()).collect())
        .collect()
}
