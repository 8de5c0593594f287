//! `ctxrun`: a parallel command runner, like GNU parallel or `xargs -P`, built on ctxkit.
//!
//! ```text
//! ctxrun [OPTIONS] COMMAND... ::: ARG... [::: ARG...]...
//! printf '%s\n' a b c | ctxrun [OPTIONS] COMMAND...
//! ```
//!
//! Each argument (or each combination, one from each `:::` list: their cross product, the first
//! list varying slowest) makes one job. With no `:::`, each line of stdin is one argument.
//!
//! # Quoting and replacement strings
//!
//! The command words are joined with spaces and handed to `sh -c`, so they are shell code: a
//! pipe or a redirection must be quoted for your shell to reach ctxrun
//! (`ctxrun 'echo {} | tr a-z A-Z' ::: x`). The arguments are data: each is single-quoted for
//! `sh` before it replaces a replacement string, GNU parallel's:
//!
//! * `{}`: all the job's arguments, space-separated; `{1}`, `{2}`...: the argument from the
//!   first, second... `:::` list;
//! * `{.}`: without its extension (`d/a.jpg` → `d/a`); `{/}`: its basename (`a.jpg`); `{//}`:
//!   its directory (`d`); `{/.}`: its basename without extension (`a`); also by list, `{1.}`,
//!   `{2/}`...;
//! * `{#}`: the job's number (1-based).
//!
//! When the finished line has nothing for the shell to do (plain words and quoted arguments:
//! no `$`, glob, pipe, redirection, `;`, `~` or backslash, and a first word that is a program,
//! not an assignment nor one of `sh`'s builtins or keywords such as `echo`, `cd` or `true`),
//! ctxrun runs the program itself, as `sh` would have, one `exec` cheaper; a program that is
//! not found gives `sh`'s status 127, and a script without `#!` is run by `sh`.
//!
//! With no replacement string in the command, the quoted arguments are appended. Anything
//! else in braces is left as it is (`awk '{print $1}'`; GNU parallel's `{%}` and `{= =}` are
//! not supported). So `ctxrun echo ::: 'a b' '$HOME'` prints `a b` and `$HOME` verbatim. Do
//! not quote `{}` yourself: `'{}'` in the command would put the quoted argument inside a
//! second pair of quotes.
//!
//! # Options
//!
//! * `-j N`: at most N jobs at once (default `ctxkit::procs::max_procs()`, which honours the
//!   cgroup CPU quota and `CTXKIT_MAXPROCS`). `-j 0` is refused.
//! * `-k`: print the jobs' output in input order; a finished job is printed as soon as every
//!   earlier job has been. Without `-k`, in order of completion. Either way a job's stdout and
//!   stderr are buffered and printed whole when it ends (GNU parallel's grouping).
//! * `-u` / `--ungroup`: no buffering: the jobs write straight to ctxrun's stdout and stderr,
//!   as they go (for jobs that never end, or whose output is watched live). Lines of jobs
//!   running at once may mix; not with `-k`.
//! * `--timeout D`: each job's time limit. `--deadline D`: the whole run's. Durations: `500ms`,
//!   `2s`, `1.5s`, `1m`, `1h`; a bare number is seconds.
//! * `--halt never|soon|now[,fail=N|,fail=P%]`: when to stop early. `fail=N`: once N jobs
//!   failed; `fail=P%`: once P% of all the run's jobs failed; `soon` or `now` alone means
//!   `fail=1`; `never` (the default) runs everything. Once tripped, `soon` starts no more jobs
//!   and lets the running ones finish; `now` also ends the running ones (see "Design"), and
//!   the jobs it ends are not counted as failed.
//! * `--termseq SIG,MS,SIG,MS...`: how a job is ended (default `TERM,200,KILL,25`).
//! * `--delay D`: start a job at most every D. `--rate R/s` (or `/m`, `/h`): at most R job
//!   starts a second (minute, hour), evenly spaced (bursts of 1). With both, the stricter
//!   wins. A job waits for its turn once it has its `-j` slot, so starts are never closer
//!   than the pace. A turn that would come after the run's `--deadline` is not waited for:
//!   the job, and the rest, do not start.
//! * `--rate-redis URL` (with `--rate-key KEY`, default `ctxrun`): the pace is kept on Redis
//!   (ctxkit-redis's GCRA limiter), shared by every ctxrun, on any machine, that uses the
//!   same Redis and key: together they start at most `--rate` jobs. If Redis cannot be
//!   reached at the start, ctxrun exits with 255; if it stops answering during the run, no
//!   job starts until it answers again (a warning says so): the shared rate is never exceeded.
//! * `--joblog FILE`: one line per attempt, in order of completion, in GNU parallel's
//!   tab-separated columns `Seq Host Starttime JobRuntime Send Receive Exitval Signal Command`:
//!   Host is `:` (this machine), Starttime seconds since the epoch, JobRuntime seconds (both
//!   with milliseconds), Send and Receive 0 (no transfers), Exitval the shell's exit code or -1
//!   when a signal killed it (or it could not start), Signal that signal or 0.
//! * `--resume` (with `--joblog FILE`): skip every job the log of an earlier run of the same
//!   command and inputs lists; `--resume-failed`: skip only those whose last attempt there
//!   succeeded (Exitval and Signal 0), and run the failed ones and the rest. The log is then
//!   appended to. Before any job runs, each row is checked against this run's job of that
//!   number: a log from another run (another command, other inputs), or a file that is not a
//!   joblog, is a usage error, and the file is left as it was.
//! * `--retries N`: run a failing job up to N times in all, each attempt with a fresh
//!   `--timeout`, after a pause of `--retry-delay` (default 100ms; `0` for none) doubled at
//!   each retry, up to 30 s; only the last attempt's output is printed, and a job counts as
//!   failed only if its last attempt failed. No retry once the run is halted, past its
//!   deadline, or signaled.
//! * `--bar`: progress on stderr. On a terminal, a bar (indicatif) with jobs done, the
//!   percentage and the ETA, kept below the jobs' output; elsewhere (a log file, CI), a line
//!   each time another tenth of the jobs is done: `ctxrun: 30% (3/10 jobs) done, ETA 7s`.
//!
//! # Input
//!
//! The `:::` combinations are made one at a time, and stdin is read a bounded number of
//! lines (1,024) ahead of the jobs, so a job starts before the input ends and the run's memory
//! does not grow with the number of jobs. Only `--bar`, `fail=P%` and `--resume` need the
//! number of jobs first: with them, ctxrun reads all its input before the first job.
//!
//! A job's stdin is `/dev/null`. A job ended by its context gets a line on stderr, after its
//! own output: `ctxrun: job N timed out: LINE` (its timeout or the run's deadline) or
//! `ctxrun: job N canceled: LINE` (a halt or a signal).
//!
//! Each job gets `CTXRUN_DEADLINE_MS`, the milliseconds left of its budget when it starts (the
//! nearer of its `--timeout` and the run's `--deadline`), when there is one, to pass on to what
//! it calls (as ctxkit-tower's deadline header does between services), and `CTXRUN_SEQ`, its
//! 1-based number.
//!
//! # Exit status
//!
//! * `0`: every job ran and succeeded.
//! * `1` to `101`: that many jobs failed (exited non-zero, were killed, timed out, or could not
//!   be started), capped at 101, as GNU parallel. Jobs that a `--deadline` kept from starting
//!   count as failed too (with stdin input, ctxrun reads the rest of stdin to count them);
//!   jobs that a `--halt` kept from starting, or that `--halt now` ended, do not (as GNU
//!   parallel). Jobs skipped by `--resume` are not this run's.
//! * Under a tripped `--halt ...,fail=1`: the failing job's own exit value (or the count, if a
//!   signal or a timeout ended it); under a tripped `fail=P%`: the percentage of the run's
//!   jobs that failed. Both as GNU parallel 20221122 does.
//! * `2`: a usage error (an unknown flag, an empty command, `:::` with nothing after it, `-j 0`,
//!   a bad duration, rate, Redis URL, `--halt` or `--termseq`, `--resume` without a joblog or
//!   with another run's): the message is on stderr, and nothing has run.
//! * `130` / `143`: ctxrun got SIGINT / SIGTERM; its running jobs were ended first.
//! * `255`: ctxrun itself failed (stdin could not be read, the joblog could not be written,
//!   Redis could not be reached).
//!
//! # Design
//!
//! Why tokio rather than threads and ctxkit's thread pool: a job spends its life waiting (for
//! its process, for its pipes, for a deadline, for a signal to ctxrun), and a job's wait has to
//! end on whichever of "the process exited" and "the job's context is done" comes first. On
//! tokio that is one `select!` over the child's `wait()` and `ctx.done()`; on threads it would
//! be a polling loop or a thread per pipe and per child. Signals to ctxrun arrive through
//! `tokio::signal` on the same runtime.
//!
//! Which ctxkit pieces run what:
//!
//! * The **run's context** is `Context::background()`, with `--deadline` as its deadline
//!   (`with_timeout`), else `with_cancel`. Its cancel handle is held by the signal task:
//!   SIGINT or SIGTERM cancels it.
//! * An errgroup, **`ctxkit::Group::with_context(&run)`**, with `set_limit(-j)`, runs the jobs:
//!   the spawning loop's `g.spawn(...).await` waits for a free slot, as Go's `g.Go` under
//!   `SetLimit`. Its context is the **group context**, a child of the run's.
//! * **`--halt now`** is the errgroup's own meaning: the job whose failure trips the threshold
//!   returns `Err`, the group cancels the group context, and every running job is ended.
//!   **`--halt soon`** only raises a flag that the spawning loop reads before each spawn.
//! * **`--delay` and `--rate`** are one `ctxkit::rate::Limiter` (burst 1), or a
//!   `ctxkit_redis::RedisLimiter` with `--rate-redis`: a job that has its slot waits on it
//!   with the group context, so a halt, a signal or the deadline ends the wait, and a turn
//!   past the deadline fails at once (Go's `Limiter.Wait` rule).
//! * **Retries** pause with `ctx.sleep` on the group context, so a halt or a signal ends the
//!   pause too.
//! * Each **job's context** is a child of the group context: `with_timeout(--timeout)`, or
//!   `with_cancel`. So a job ends when its own timeout passes, when the group is canceled
//!   (halt now), when the run's deadline passes, or when ctxrun gets a signal: all four are one
//!   event, "the job's context is done".
//!
//! How a job's context maps to its process group's signals: each job is `sh -c LINE` (or the
//! program itself, which then plays the shell's part below) started with `process_group(0)`, so the shell and everything it starts share a process group whose
//! id is the shell's pid. When the job's context is done before the shell exits, the group gets
//! the `--termseq`: signal 1 to the whole group (`kill(-pgid, sig)`, via rustix), then up to MS
//! for the shell to exit and the group to empty, then the next signal, and so on; then ctxrun
//! waits for the shell. When the shell exits by itself, anything it left in its group (a
//! background grandchild) gets the same termseq.
//!
//! Invariants:
//!
//! * A job's process group is signaled only while ctxrun has not reaped the group's leader, or
//!   right after, while members remain: a process group id cannot be reused while the group
//!   has a member, so the signals never reach a stranger (except a process that left the group
//!   with `setsid`, which ctxrun does not follow).
//! * When ctxrun exits, every job it started has been waited for, and every process left in a
//!   job's group has been through the termseq: nothing it started (grandchildren included) is
//!   left running, provided the termseq ends with `KILL` (the default does).
//! * Output is never interleaved: each job's output is written whole, by one printer task.
//! * A job is started only while the run and group contexts are live and no halt was tripped:
//!   the check is made when the job gets its slot, not when the spawning loop asked for one.
//! * SIGINT and SIGTERM handlers are installed before the first job starts.
//!
//! Limits: a process that leaves its job's group (`setsid`, or a new process group of its own)
//! is not followed, and if it keeps the job's stdout or stderr open, ctxrun waits for it to
//! close them. SIGKILL to ctxrun cannot be caught: its jobs are then left running. After the
//! first SIGINT or SIGTERM, further ones are ignored while the jobs are being ended (the
//! termseq bounds that time).

#![forbid(unsafe_code)]

mod args;
mod input;
mod job;
mod joblog;
mod output;
mod pace;
mod run;
mod spec;

use std::process::ExitCode;

fn main() -> ExitCode {
    run::main()
}
