//! Runs the real `ctxrun` binary on real processes. Timings are asserted loosely (a loaded
//! 2-core machine): a job cut short must end well before it would have, never "within N ms".

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ctxrun() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ctxrun"))
}

fn run(args: &[&str]) -> Output {
    ctxrun()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ctxrun")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh directory for one test's PID files, removed when dropped.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("ctxrun-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// Whether `pid` is a live process (a zombie waiting for its reaper counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// The PIDs written to the files of `dir`, waiting (boundedly) for `count` of them.
fn pids(dir: &Path, count: usize) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            if let Ok(pid) = text.trim().parse() {
                found.push(pid);
            }
        }
        if found.len() >= count || start.elapsed() > Duration::from_secs(5) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A job that records its shell's PID and a grandchild's (`sleep 30`), then waits for it.
/// `{}` is the job's argument, a tag for the file names.
fn forking_job(dir: &Path) -> String {
    let d = dir.display();
    format!("sleep 30 & echo $! > {d}/child.{{}}; echo $$ > {d}/self.{{}}; wait")
}

fn assert_all_gone(pids: &[u32]) {
    for &pid in pids {
        assert!(
            !alive(pid),
            "process {pid} is still alive after ctxrun returned"
        );
    }
}

// ===== 1. input and output =====

#[test]
fn replaces_braces_and_keeps_order() {
    let o = run(&[
        "-k",
        "-j",
        "3",
        "sleep {}; echo {}",
        ":::",
        "0.4",
        "0.1",
        "0.2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "0.4\n0.1\n0.2\n");
}

#[test]
fn keep_order_streams_each_job_when_its_turn_comes() {
    use std::io::BufRead;
    // Job 1 ends at once, job 2 after 3 s: job 1's line is printed while job 2 still runs.
    let mut child = ctxrun()
        .args([
            "-k",
            "-j",
            "2",
            "sh -c {}",
            ":::",
            "echo first",
            "sleep 3; echo second",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    assert!(
        child.try_wait().unwrap().is_none(),
        "printed only at the end"
    );
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "second\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn appends_the_argument_without_braces_and_quotes_it() {
    let o = run(&["-k", "echo", ":::", "a b", "$HOME", "it's"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "a b\n$HOME\nit's\n");
}

#[test]
fn several_lists_are_a_cross_product() {
    let o = run(&["-k", "echo {1}-{2}", ":::", "a", "b", ":::", "1", "2", "3"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "a-1\na-2\na-3\nb-1\nb-2\nb-3\n");
    let o = run(&["-k", "echo", ":::", "a", ":::", "1", "2"]);
    assert_eq!(stdout(&o), "a 1\na 2\n");
}

#[test]
fn reads_arguments_from_stdin_without_triple_colon() {
    let mut child = ctxrun()
        .args(["-k", "echo", "x{}x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo words\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o), "xonex\nxtwo wordsx\n");
}

#[test]
fn groups_each_jobs_output() {
    // Two jobs interleave their lines in time; each job's output is printed whole.
    let o = run(&["-j", "2", "echo {}1; sleep 0.3; echo {}2", ":::", "a", "b"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out == "a1\na2\nb1\nb2\n" || out == "b1\nb2\na1\na2\n",
        "interleaved: {out:?}"
    );
}

#[test]
fn runs_jobs_in_parallel_up_to_j() {
    // Each job marks itself started, then waits until all four have: only four jobs running
    // at once can pass. Serial jobs would wait for each other until the timeout.
    let dir = scratch("parallel");
    let d = dir.display();
    let job = format!(
        "touch {d}/{{}}; n=0; while [ $(ls {d} | wc -l) -lt 4 ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done; [ $n -lt 600 ]"
    );
    let o = run(&["-j", "4", &job, ":::", "a", "b", "c", "d"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // With -j 2, the first two can never see four started: they give up, and fail.
    let dir2 = scratch("parallel2");
    let d2 = dir2.display();
    let job2 = format!(
        "touch {d2}/{{}}; n=0; while [ $(ls {d2} | wc -l) -lt 4 ] && [ $n -lt 10 ]; do sleep 0.05; n=$((n+1)); done; [ $n -lt 10 ]"
    );
    let o = run(&["-j", "2", &job2, ":::", "a", "b", "c", "d"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "the first two jobs saw only two started"
    );
}

#[test]
fn exit_code_counts_failures_capped_at_101() {
    let o = run(&["sh -c 'exit {}'", ":::", "0", "1", "0", "3"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(run(&["true", ":::", "a", "b"]).status.code(), Some(0));
    let many: Vec<String> = (0..105).map(|i| i.to_string()).collect();
    let mut args = vec!["-j", "8", "false", ":::"];
    args.extend(many.iter().map(String::as_str));
    assert_eq!(run(&args).status.code(), Some(101));
}

// ===== 2. time =====

#[test]
fn timeout_ends_a_job_early() {
    let start = Instant::now();
    let o = run(&["--timeout", "200ms", "sleep", ":::", "30"]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("timed out"), "{}", stderr(&o));
}

#[test]
fn timeout_spares_quick_jobs() {
    let o = run(&["-k", "--timeout", "20s", "echo", ":::", "a", "b"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "a\nb\n");
}

#[test]
fn exports_the_remaining_budget() {
    let o = run(&["--timeout", "5s", "echo $CTXRUN_DEADLINE_MS #", ":::", "x"]);
    let ms: u64 = stdout(&o).trim().parse().expect("a number of milliseconds");
    assert!(ms > 0 && ms <= 5000, "{ms}");
    // The nearer of the job's timeout and the run's deadline.
    let o = run(&[
        "--timeout",
        "60s",
        "--deadline",
        "10s",
        "echo $CTXRUN_DEADLINE_MS #",
        ":::",
        "x",
    ]);
    let ms: u64 = stdout(&o).trim().parse().expect("a number of milliseconds");
    assert!(ms > 0 && ms <= 10_000, "{ms}");
    // No budget, no variable.
    let o = run(&["echo \"[$CTXRUN_DEADLINE_MS]\" #", ":::", "x"]);
    assert_eq!(stdout(&o), "[]\n");
}

#[test]
fn deadline_ends_the_whole_run() {
    let start = Instant::now();
    let o = run(&[
        "-j",
        "1",
        "--deadline",
        "300ms",
        "sleep",
        ":::",
        "30",
        "30",
        "30",
    ]);
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // One job killed, two never started: three failed.
    assert_eq!(o.status.code(), Some(3));
}

// ===== 3. halt =====

#[test]
fn halt_now_cancels_running_jobs() {
    let start = Instant::now();
    let o = run_halt(
        "2",
        "now,fail=1",
        &["sleep 0.5; exit 1", "sleep 30", "echo never"],
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // GNU parallel's status under `fail=1`: the failing job's exit value; the job the halt
    // ended is not a failure of its own.
    assert_eq!(o.status.code(), Some(1));
    assert!(!stdout(&o).contains("never"));
    assert!(
        stderr(&o).contains("canceled: sh -c 'sleep 30'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn halt_soon_lets_running_jobs_finish_and_starts_no_more() {
    let o = run_halt(
        "2",
        "soon,fail=1",
        &[
            "sleep 0.5; exit 1",
            "sleep 1.5; echo finished",
            "echo never",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "finished\n");
}

#[test]
fn halt_thresholds_count_and_percent() {
    // fail=2: the first failure is not enough.
    let o = run_halt(
        "1",
        "soon,fail=2",
        &["exit 1", "echo a", "exit 1", "echo b"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "a\n");
    // 50% of 4 jobs is 2.
    let o = run_halt(
        "1",
        "soon,fail=50%",
        &["exit 1", "echo a", "exit 1", "echo b"],
    );
    assert_eq!(stdout(&o), "a\n");
    // never: everything runs.
    let o = run(&[
        "-j", "1", "-k", "--halt", "never", "sh -c {}", ":::", "exit 1", "echo a", "exit 1",
        "echo b",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "a\nb\n");
}

/// Runs each of `jobs` as `sh -c JOB` under `-j jobs` and `--halt policy`.
fn run_halt(slots: &str, policy: &str, jobs: &[&str]) -> Output {
    let mut args = vec!["-j", slots, "--halt", policy, "sh -c {}", ":::"];
    args.extend(jobs);
    run(&args)
}

#[test]
fn halt_exit_status_is_gnu_parallels() {
    // fail=1: the failing job's own exit value.
    let o = run_halt("2", "now,fail=1", &["sleep 0.3; exit 3", "sleep 30"]);
    assert_eq!(o.status.code(), Some(3));
    // fail=N, N > 1: the number of failed jobs.
    let o = run_halt("1", "soon,fail=2", &["exit 7", "exit 9", "true"]);
    assert_eq!(o.status.code(), Some(2));
    // fail=P%: the percentage of the run's jobs that failed (1 of 4 = 25%).
    let o = run_halt("1", "soon,fail=25%", &["true", "exit 5", "true", "true"]);
    assert_eq!(o.status.code(), Some(25));
}

// ===== 4. nothing left behind =====

#[test]
fn timeout_kills_the_grandchildren() {
    let dir = scratch("timeout");
    let start = Instant::now();
    let o = run(&[
        "-j",
        "2",
        "--timeout",
        "300ms",
        &forking_job(&dir),
        ":::",
        "1",
        "2",
    ]);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(2));
    let pids = pids(&dir, 4);
    assert_eq!(pids.len(), 4, "the jobs wrote their PIDs");
    assert_all_gone(&pids);
}

#[test]
fn halt_now_kills_the_grandchildren() {
    let dir = scratch("halt");
    let job = forking_job(&dir);
    let o = run_halt(
        "2",
        "now,fail=1",
        &["sleep 0.5; exit 1", &job.replace("{}", "x")],
    );
    assert_eq!(o.status.code(), Some(1), "the failing job's exit value");
    let pids = pids(&dir, 2);
    assert_eq!(pids.len(), 2);
    assert_all_gone(&pids);
}

#[test]
fn leftover_background_processes_are_ended() {
    let dir = scratch("leftover");
    let d = dir.display();
    let job = format!("sleep 30 >/dev/null 2>&1 & echo $! > {d}/child.{{}}");
    let start = Instant::now();
    let o = run(&[&job, ":::", "1"]);
    assert!(o.status.success());
    assert!(start.elapsed() < Duration::from_secs(10));
    let pids = pids(&dir, 1);
    assert_eq!(pids.len(), 1);
    assert_all_gone(&pids);
}

#[test]
fn termseq_escalates_to_kill() {
    let dir = scratch("termseq");
    let d = dir.display();
    // The shell and its grandchild ignore TERM; KILL ends them.
    let job =
        format!("trap '' TERM; sleep 30 & echo $! > {d}/child.{{}}; echo $$ > {d}/self.{{}}; wait");
    let start = Instant::now();
    let o = run(&[
        "--timeout",
        "200ms",
        "--termseq",
        "TERM,100,KILL,25",
        &job,
        ":::",
        "1",
    ]);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(1));
    let pids = pids(&dir, 2);
    assert_eq!(pids.len(), 2);
    assert_all_gone(&pids);
}

fn signal_ctxrun(signal: &str, code: i32) {
    let dir = scratch(signal);
    let job = forking_job(&dir);
    let child = ctxrun()
        .args(["-j", "2", &job, ":::", "1", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pids = pids(&dir, 4);
    assert_eq!(pids.len(), 4, "the jobs started");
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let o = child.wait_with_output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
    assert_all_gone(&pids);
}

#[test]
fn sigint_ends_every_job_and_grandchild() {
    signal_ctxrun("INT", 130);
}

#[test]
fn sigterm_ends_every_job_and_grandchild() {
    signal_ctxrun("TERM", 143);
}

// ===== 5. bad input =====

#[test]
fn bad_input_is_a_clear_usage_error() {
    let cases: &[&[&str]] = &[
        &["--bogus", "echo", ":::", "a"],
        &[":::", "a"],
        &["echo", ":::"],
        &["echo", ":::", "a", ":::"],
        &["-j", "0", "echo", ":::", "a"],
        &["-j", "x", "echo", ":::", "a"],
        &["--timeout", "5x", "echo", ":::", "a"],
        &["--timeout", "0s", "echo", ":::", "a"],
        &["--deadline", "soon", "echo", ":::", "a"],
        &["--halt", "later", "echo", ":::", "a"],
        &["--halt", "now,fail=0", "echo", ":::", "a"],
        &["--termseq", "TERM,abc", "echo", ":::", "a"],
        &["--termseq", "NOPE,1", "echo", ":::", "a"],
        &["--rate", "fast", "echo", ":::", "a"],
        &["--delay", "0", "echo", ":::", "a"],
        &["--retry-delay", "x", "echo", ":::", "a"],
        &["--resume", "echo", ":::", "a"],
        &["-u", "-k", "echo", ":::", "a"],
        &["--rate-redis", "redis://127.0.0.1/", "echo", ":::", "a"],
        &[],
    ];
    for args in cases {
        let o = run(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

// ===== 6. joblog and retries =====

#[test]
fn joblog_has_gnu_parallels_columns() {
    let dir = scratch("joblog");
    let log = dir.join("log.tsv");
    let o = run(&[
        "--joblog",
        log.to_str().unwrap(),
        "--timeout",
        "300ms",
        "sh -c {}",
        ":::",
        "true",
        "exit 3",
        "sleep 30",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let text = std::fs::read_to_string(&log).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand")
    );
    let mut rows: Vec<Vec<String>> = lines
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    rows.sort_by_key(|r| r[0].parse::<u32>().unwrap());
    assert_eq!(rows.len(), 3, "{text}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), 9, "{row:?}");
        assert_eq!(row[0], (i + 1).to_string());
        assert!(row[2].parse::<f64>().unwrap() > 1e9, "{row:?}"); // seconds since the epoch
        assert!(row[3].trim().parse::<f64>().unwrap() >= 0.0, "{row:?}");
    }
    assert_eq!((rows[0][6].as_str(), rows[0][7].as_str()), ("0", "0"));
    assert_eq!((rows[1][6].as_str(), rows[1][7].as_str()), ("3", "0"));
    assert_eq!((rows[2][6].as_str(), rows[2][7].as_str()), ("-1", "15")); // TERM ended it
    assert_eq!(rows[1][8], "sh -c 'exit 3'");
}

#[test]
fn retries_rerun_a_failing_job() {
    let dir = scratch("retries");
    let d = dir.display();
    // Always fails: run three times in all, still one failure.
    let o = run(&[
        "--retries",
        "3",
        &format!("echo x >> {d}/always; false #"),
        ":::",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let runs = std::fs::read_to_string(dir.join("always")).unwrap();
    assert_eq!(runs.lines().count(), 3);
    // Fails once, then succeeds: counted as a success, only the last attempt's output printed.
    let job = format!("echo try >> {d}/once; test $(wc -l < {d}/once) -ge 2 && echo done");
    let o = run(&["--retries", "3", &format!("{job} #"), ":::", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "done\n");
    let runs = std::fs::read_to_string(dir.join("once")).unwrap();
    assert_eq!(runs.lines().count(), 2);
}

#[test]
fn its_own_failure_is_255() {
    let o = run(&[
        "--joblog",
        "/nonexistent-dir/ctxrun/log",
        "true",
        ":::",
        "a",
    ]);
    assert_eq!(o.status.code(), Some(255));
    assert!(
        stderr(&o).contains("cannot write the joblog"),
        "{}",
        stderr(&o)
    );
}

// ===== 7. pacing, resume, ungroup, progress =====

/// The jobs' start times (seconds since the epoch, as ctxrun logged them when it started
/// each) from a joblog, by job number.
fn logged_starts(log: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(log).unwrap();
    let mut rows: Vec<(usize, f64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    rows.into_iter().map(|r| r.1).collect()
}

/// Checks that `starts` (by job number) are in order and paced at `interval_ms`: the limiter
/// gives job i the instant first + i * interval or later, so the span from the first start
/// only grows under load. (Consecutive gaps are not checked: a late first wake shortens the
/// next gap, as with any token bucket.)
fn assert_paced(starts: &[f64], interval_ms: f64) {
    for (i, pair) in starts.windows(2).enumerate() {
        assert!(
            pair[0] <= pair[1],
            "job {} started before job {}: {starts:?}",
            i + 2,
            i + 1
        );
    }
    for (i, start) in starts.iter().enumerate() {
        let span = (start - starts[0]) * 1000.0;
        // Slack for the first start's own lateness (its task preempted between its turn and
        // its clock read shortens every later span), a third of the pace: an unpaced run
        // (all four at once) still fails.
        assert!(
            span >= i as f64 * interval_ms - interval_ms / 3.0,
            "job {} started {span} ms after the first: {starts:?}",
            i + 1
        );
    }
}

/// Runs four `true` jobs under `-j 4` and the pace `flag value`; their logged start times.
fn paced_starts(flag: &str, value: &str) -> Vec<f64> {
    let dir = scratch(&format!("pace{}", flag.replace('-', "")));
    let log = dir.join("log");
    let mut args = vec!["-j", "4", flag, value, "--joblog", log.to_str().unwrap()];
    args.extend(["true", ":::", "a", "b", "c", "d"]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    logged_starts(&log)
}

#[test]
fn delay_spaces_the_job_starts() {
    let starts = paced_starts("--delay", "150ms");
    assert_eq!(starts.len(), 4);
    assert_paced(&starts, 150.0);
}

#[test]
fn rate_limits_the_job_starts() {
    let starts = paced_starts("--rate", "5/s");
    assert_eq!(starts.len(), 4);
    assert_paced(&starts, 200.0);
}

#[test]
fn a_deadline_stops_a_paced_run_at_once() {
    // At 1 a minute, the second job's turn is after the deadline: it is not started, and the
    // run does not sleep until its deadline for nothing.
    let start = Instant::now();
    let o = run(&[
        "--rate",
        "1/m",
        "--deadline",
        "20s",
        "true",
        ":::",
        "a",
        "b",
    ]);
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "the unstarted job counts as failed"
    );
}

#[test]
fn retries_back_off() {
    let dir = scratch("backoff");
    let log = dir.join("log");
    let o = run(&[
        "--retries",
        "3",
        "--retry-delay",
        "200ms",
        "--joblog",
        log.to_str().unwrap(),
        "false",
        ":::",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(1));
    // Three attempts of job 1, each logged when it started.
    let starts = logged_starts(&log);
    assert_eq!(starts.len(), 3);
    let first = (starts[1] - starts[0]) * 1000.0;
    let second = (starts[2] - starts[1]) * 1000.0;
    assert!(first >= 195.0, "first pause {first} ms");
    assert!(second >= 395.0, "second pause {second} ms (doubled)");
}

#[test]
fn a_halt_under_a_pace_ends_the_run() {
    // The jobs waiting for their turn when the halt trips give their turn up: none is left
    // waiting for a turn that never comes.
    let o = run(&[
        "-j",
        "3",
        "--delay",
        "100ms",
        "--halt",
        "soon,fail=1",
        "sh -c {}",
        ":::",
        "exit 1",
        "echo b",
        "echo c",
        "echo d",
        "echo e",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let o = run(&[
        "-j",
        "3",
        "--delay",
        "100ms",
        "--halt",
        "now,fail=1",
        "sh -c {}",
        ":::",
        "echo a",
        "exit 2",
        "sleep 30",
        "echo d",
        "echo e",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o), "a\n");
}

#[test]
fn resume_and_resume_failed_skip_what_an_earlier_run_did() {
    let dir = scratch("resume");
    let log = dir.join("log");
    let log = log.to_str().unwrap();
    let marks = dir.join("marks");
    std::fs::create_dir(&marks).unwrap();
    let m = marks.display();
    // Job "fail" fails the first time it runs, then succeeds.
    let job = format!(
        "echo {{}} >> {m}/ran; if [ {{}} = fail ] && [ ! -e {m}/failed-once ]; then touch {m}/failed-once; exit 4; fi; echo {{}}"
    );
    let inputs = ["a", "fail", "b"];
    let mut args = vec!["-k", "--joblog", log, job.as_str(), ":::"];
    args.extend(inputs);
    let o = run(&args);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "a\nb\n");
    // --resume: every job is in the log; nothing runs again.
    let mut resume = vec!["--resume"];
    resume.extend(&args);
    let o = run(&resume);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    // --resume-failed: only the failed job runs again, and now succeeds.
    let mut failed = vec!["--resume-failed"];
    failed.extend(&args);
    let o = run(&failed);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "fail\n");
    let ran = std::fs::read_to_string(marks.join("ran")).unwrap();
    assert_eq!(ran.lines().filter(|l| *l == "fail").count(), 2);
    assert_eq!(ran.lines().count(), 4);
    // The log kept every run's rows under one header.
    let text = std::fs::read_to_string(log).unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with("Seq\t")).count(), 1);
    assert_eq!(text.lines().count(), 1 + 3 + 1);
    // --resume-failed again: everything succeeded at last.
    let o = run(&failed);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "");
}

#[test]
fn a_joblog_from_another_run_is_refused_and_kept() {
    let dir = scratch("otherlog");
    let log = dir.join("log");
    let log = log.to_str().unwrap();
    assert!(run(&["--joblog", log, "echo", ":::", "a", "b"])
        .status
        .success());
    let before = std::fs::read_to_string(log).unwrap();
    for args in [
        &["--joblog", log, "--resume", "echo", ":::", "x", "y"][..],
        &["--joblog", log, "--resume-failed", "echo", ":::", "a"][..],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains("from another run"), "{}", stderr(&o));
        assert!(o.stdout.is_empty());
    }
    // Not a joblog at all.
    let junk = dir.join("junk");
    std::fs::write(&junk, "hello\n").unwrap();
    let o = run(&[
        "--joblog",
        junk.to_str().unwrap(),
        "--resume",
        "echo",
        ":::",
        "a",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a joblog"), "{}", stderr(&o));
    // Neither file was touched.
    assert_eq!(std::fs::read_to_string(log).unwrap(), before);
    assert_eq!(std::fs::read_to_string(&junk).unwrap(), "hello\n");
}

#[test]
fn ungroup_streams_the_output_of_a_job_that_never_ends() {
    use std::io::{BufRead, BufReader};
    let mut child = ctxrun()
        .args(["-u", "echo started; sleep 30 #", ":::", "x"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The line arrives while the job (and ctxrun) still runs.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    assert!(child.try_wait().unwrap().is_none(), "ctxrun ended already");
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
}

#[test]
fn bar_reports_progress_by_tenths_off_a_terminal() {
    let inputs: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    let mut args = vec!["--bar", "-k", "echo"];
    args.push(":::");
    args.extend(inputs.iter().map(String::as_str));
    let o = run(&args);
    assert!(o.status.success());
    let expected: String = inputs.iter().map(|i| format!("{i}\n")).collect();
    assert_eq!(stdout(&o), expected, "progress never goes to stdout");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("% (")).collect();
    assert_eq!(lines.len(), 10, "{err}");
    assert!(
        lines[9].starts_with("ctxrun: 100% (20/20 jobs) done"),
        "{err}"
    );
}

#[path = "../../ctxkit-redis/tests/support/mod.rs"]
mod redis_support;

#[test]
fn rate_redis_shares_one_rate_between_runners() {
    let server = redis_support::RedisServer::start();
    let url = server.url();
    let dir = scratch("redisrate");
    let key = format!("test-{}", std::process::id());
    // Two runners, three jobs each, one shared 4/s; each logs when it started its jobs.
    let spawn = |tag: &str| {
        let log = dir.join(format!("log-{tag}"));
        let out = ctxrun()
            .args(["--rate", "4/s", "--rate-redis", &url, "--rate-key", &key])
            .arg("--joblog")
            .arg(&log)
            .args(["true", ":::", "1", "2", "3"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out, logged_starts(&log))
    };
    let ((a, starts_a), (b, starts_b)) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("a"));
        let b = s.spawn(|| spawn("b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let mut starts: Vec<f64> = starts_a.into_iter().chain(starts_b).collect();
    starts.sort_by(f64::total_cmp);
    assert_eq!(starts.len(), 6);
    // Six starts at 4/s, burst 1, shared: paced as one run (each runner alone would have
    // taken 500 ms for its three).
    assert_paced(&starts, 250.0);
}

#[test]
fn rate_redis_that_cannot_be_reached_is_a_clear_error() {
    let o = run(&[
        "--rate",
        "1/s",
        "--rate-redis",
        "redis://127.0.0.1:1/",
        "true",
        ":::",
        "a",
    ]);
    assert_eq!(o.status.code(), Some(255));
    assert!(stderr(&o).contains("cannot reach Redis"), "{}", stderr(&o));
    let o = run(&[
        "--rate",
        "1/s",
        "--rate-redis",
        "not a url",
        "true",
        ":::",
        "a",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad Redis URL"), "{}", stderr(&o));
}

#[test]
fn stdin_jobs_start_before_the_input_ends() {
    use std::io::{BufRead, BufReader, Write};
    let mut child = ctxrun()
        .args(["-k", "echo"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let mut output = BufReader::new(child.stdout.take().unwrap());
    // The first job runs, and is printed, while stdin is still open.
    writeln!(input, "first").unwrap();
    let mut line = String::new();
    output.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    writeln!(input, "second").unwrap();
    drop(input);
    line.clear();
    output.read_line(&mut line).unwrap();
    assert_eq!(line, "second\n");
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_deadline_counts_the_unread_stdin_jobs_as_failed() {
    use std::io::Write;
    let mut child = ctxrun()
        .args(["-j", "1", "--deadline", "300ms", "sleep"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"30\n30\n30\n30\n").unwrap();
    drop(input);
    // One killed, three never started.
    assert_eq!(child.wait().unwrap().code(), Some(4));
}

#[test]
fn a_line_without_shell_syntax_runs_as_sh_would_run_it() {
    let dir = scratch("direct");
    let log = dir.join("log");
    // A program that is not there: sh's 127, and a message.
    let o = run(&[
        "--joblog",
        log.to_str().unwrap(),
        "ctxrun-no-such-program",
        ":::",
        "a",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("ctxrun-no-such-program: not found"),
        "{}",
        stderr(&o)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().nth(1).unwrap().split('\t').nth(6), Some("127"));
    // A script without `#!`: run by sh, as sh would.
    let script = dir.join("plain-script");
    std::fs::write(&script, "echo from the script \"$1\"\n").unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let o = run(&[script.to_str().unwrap(), ":::", "x y"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from the script x y\n");
    // Arguments reach the program verbatim, and the job's variables are set.
    let o = run(&["-k", "basename", ":::", "/x/it is", "a$b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "it is\na$b\n");
    let o = run(&["-k", "printenv", ":::", "CTXRUN_SEQ"]);
    assert_eq!(stdout(&o), "1\n");
    // `echo` stays the shell's (its backslash escapes), though /bin/echo exists.
    let o = run(&["echo", ":::", r"a\tb"]);
    assert_eq!(stdout(&o), "a\tb\n");
}
