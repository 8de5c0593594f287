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
//! # Quoting
//!
//! The command words are joined with spaces and handed to `sh -c`, so they are shell code: a
//! pipe or a redirection must be quoted for your shell to reach ctxrun
//! (`ctxrun 'echo {} | tr a-z A-Z' ::: x`). The arguments are data: each is single-quoted for
//! `sh` before it replaces `{}` (all the job's arguments, space-separated), `{1}`, `{2}`... (the
//! argument from the first, second... `:::` list); with no replacement string in the command,
//! the quoted arguments are appended. So `ctxrun echo ::: 'a b' '$HOME'` prints `a b` and
//! `$HOME` verbatim. Do not quote `{}` yourself: `'{}'` in the command would put the quoted
//! argument inside a second pair of quotes.
//!
//! # Options
//!
//! * `-j N`: at most N jobs at once (default `ctxkit::procs::max_procs()`, which honours the
//!   cgroup CPU quota and `CTXKIT_MAXPROCS`). `-j 0` is refused.
//! * `-k`: print the jobs' output in input order; a finished job is printed as soon as every
//!   earlier job has been. Without `-k`, in order of completion. Either way a job's stdout and
//!   stderr are buffered and printed whole when it ends (GNU parallel's grouping).
//! * `--timeout D`: each job's time limit. `--deadline D`: the whole run's. Durations: `500ms`,
//!   `2s`, `1.5s`, `1m`, `1h`; a bare number is seconds.
//! * `--halt never|soon|now[,fail=N|,fail=P%]`: when to stop early. `fail=N`: once N jobs
//!   failed; `fail=P%`: once P% of all the run's jobs failed; `soon` or `now` alone means
//!   `fail=1`; `never` (the default) runs everything. Once tripped, `soon` starts no more jobs
//!   and lets the running ones finish; `now` also ends the running ones (see "Design").
//! * `--termseq SIG,MS,SIG,MS...`: how a job is ended (default `TERM,200,KILL,25`).
//! * `--joblog FILE`: one line per attempt, in order of completion, in GNU parallel's
//!   tab-separated columns `Seq Host Starttime JobRuntime Send Receive Exitval Signal Command`:
//!   Host is `:` (this machine), Starttime seconds since the epoch, JobRuntime seconds (both
//!   with milliseconds), Send and Receive 0 (no transfers), Exitval the shell's exit code or -1
//!   when a signal killed it (or it could not start), Signal that signal or 0.
//! * `--retries N`: run a failing job up to N times in all, each attempt with a fresh
//!   `--timeout`; only the last attempt's output is printed, and a job counts as failed only
//!   if its last attempt failed. No retry once the run is halted, past its deadline, or
//!   signaled.
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
//!   count as failed too; jobs that a `--halt` kept from starting do not (as GNU parallel).
//! * `2`: a usage error (an unknown flag, an empty command, `:::` with nothing after it, `-j 0`,
//!   a bad duration, `--halt` or `--termseq`): the message is on stderr.
//! * `130` / `143`: ctxrun got SIGINT / SIGTERM; its running jobs were ended first.
//! * `255`: ctxrun itself failed (e.g. stdin could not be read).
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
//! * Each **job's context** is a child of the group context: `with_timeout(--timeout)`, or
//!   `with_cancel`. So a job ends when its own timeout passes, when the group is canceled
//!   (halt now), when the run's deadline passes, or when ctxrun gets a signal: all four are one
//!   event, "the job's context is done".
//!
//! How a job's context maps to its process group's signals: each job is `sh -c LINE` started
//! with `process_group(0)`, so the shell and everything it starts share a process group whose
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

mod run;
mod spec;

use std::process::ExitCode;

fn main() -> ExitCode {
    run::main()
}
