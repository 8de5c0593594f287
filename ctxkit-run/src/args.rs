//! The command line: clap's view of it ([`Args`]), the checks clap cannot make, and the
//! [`Config`] and job lines the run is made of.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::input::Source;
use crate::spec::{self, Halt, Step};

/// A parallel command runner built on ctxkit: GNU parallel's `:::` inputs, output grouping,
/// timeouts, halt policies and termination sequences.
#[derive(Debug, Parser)]
#[command(
    name = "ctxrun",
    version,
    after_help = "Each job runs as `sh -c LINE` (or, when the line needs no shell, the program \
                  directly) in its own process group. Replacement strings: {} all \
                  arguments, {1} {2}... by ::: list, {.} without extension, {/} basename, {//} \
                  directory, {/.} basename without extension, {#} job number; arguments are \
                  single-quoted for sh; with none in the command, the arguments are appended. \
                  Jobs get CTXRUN_SEQ and, under a timeout or deadline, CTXRUN_DEADLINE_MS \
                  (milliseconds left).\n\n\
                  Exit status: 0 all jobs succeeded; 1-101 the number of failed jobs (capped); \
                  under a tripped --halt ...,fail=1 the failing job's exit value, under fail=P% \
                  the percentage of jobs that failed; 2 usage error; 130/143 interrupted by \
                  SIGINT/SIGTERM; 255 ctxrun's own error."
)]
pub(crate) struct Args {
    /// Run at most N jobs at once (default: the CPUs ctxkit::procs::max_procs() finds).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,

    /// Print the jobs' output in input order.
    #[arg(short = 'k', long = "keep-order")]
    keep_order: bool,

    /// Do not buffer: the jobs write straight to ctxrun's stdout and stderr (for jobs that
    /// never end; lines of different jobs may mix).
    #[arg(short = 'u', long = "ungroup", conflicts_with = "keep_order")]
    ungroup: bool,

    /// Each job's time limit (500ms, 2s, 1m; a bare number is seconds).
    #[arg(long, value_name = "D", value_parser = spec::parse_duration)]
    timeout: Option<Duration>,

    /// The whole run's time limit.
    #[arg(long, value_name = "D", value_parser = spec::parse_duration)]
    deadline: Option<Duration>,

    /// When to stop early: never, soon or now, with ,fail=N or ,fail=P%.
    #[arg(long, visible_alias = "halt-on-error", value_name = "POLICY", default_value = "never", value_parser = spec::parse_halt)]
    halt: Halt,

    /// How a job is ended: signal, milliseconds, signal, ...
    #[arg(long, value_name = "SEQ", default_value = "TERM,200,KILL,25", value_parser = spec::parse_termseq)]
    termseq: spec::Termseq,

    /// Start a job at most every D (e.g. 100ms).
    #[arg(long, value_name = "D", value_parser = spec::parse_duration)]
    delay: Option<Duration>,

    /// Start at most R jobs a second, minute or hour (10/s, 30/m, 100/h).
    #[arg(long, value_name = "R", value_parser = spec::parse_rate)]
    rate: Option<f64>,

    /// Share the --rate (and --delay) with every ctxrun using the same Redis and key
    /// (redis://HOST:PORT/).
    #[arg(long, value_name = "URL", value_parser = parse_redis_url)]
    rate_redis: Option<String>,

    /// The name of the shared limit on Redis.
    #[arg(
        long,
        value_name = "KEY",
        default_value = "ctxrun",
        requires = "rate_redis",
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    rate_key: String,

    /// Log each job (each attempt) to FILE, in GNU parallel's tab-separated format.
    #[arg(long, value_name = "FILE")]
    joblog: Option<PathBuf>,

    /// Skip the jobs the --joblog FILE of an earlier run of the same command lists.
    #[arg(long, requires = "joblog", conflicts_with = "resume_failed")]
    resume: bool,

    /// Skip the jobs the --joblog FILE lists as succeeded; run the failed ones and the rest.
    #[arg(long, requires = "joblog")]
    resume_failed: bool,

    /// Run a failing job up to N times in all (0 and 1: once).
    #[arg(long, value_name = "N", default_value_t = 1)]
    retries: usize,

    /// The wait before the first retry, doubled before each next one (up to 30s); 0 for none.
    #[arg(long, value_name = "D", default_value = "100ms", value_parser = spec::parse_duration_or_zero)]
    retry_delay: Duration,

    /// Show progress on stderr: a bar with the ETA on a terminal, a line each tenth otherwise.
    #[arg(long)]
    bar: bool,

    /// The command, then optionally `:::` and arguments (several `:::` lists: their cross
    /// product). Without `:::`, one argument per line of stdin.
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<String>,
}

/// Checks a Redis URL's form (reaching it is the pacer's business).
fn parse_redis_url(text: &str) -> Result<String, String> {
    redis::Client::open(text)
        .map(|_| text.to_string())
        .map_err(|err| {
            format!("bad Redis URL {text:?}: {err} (expected e.g. redis://127.0.0.1:6379/)")
        })
}

/// How the run was asked to go: everything but the job lines.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) jobs: usize,
    pub(crate) keep_order: bool,
    pub(crate) ungroup: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) halt: Halt,
    pub(crate) termseq: Arc<Vec<Step>>,
    pub(crate) pace: Option<Pace>,
    pub(crate) joblog: Option<PathBuf>,
    pub(crate) resume: Resume,
    pub(crate) retries: usize,
    pub(crate) retry_delay: Duration,
    pub(crate) bar: bool,
}

/// `--delay` and `--rate`, as one limit on job starts.
#[derive(Debug, Clone)]
pub(crate) struct Pace {
    /// Job starts a second: the stricter of `1/--delay` and `--rate`.
    pub(crate) rate: f64,
    /// `--rate-redis` and `--rate-key`, when the limit is shared.
    pub(crate) redis: Option<(String, String)>,
}

/// Which jobs an earlier run's joblog lets this run skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resume {
    /// Run every job; the joblog is written afresh.
    No,
    /// `--resume`: skip every job the joblog lists.
    All,
    /// `--resume-failed`: skip the jobs the joblog lists as succeeded.
    Failed,
}

/// The command words, and the `:::` argument lists if there are any.
type Inputs = (Vec<String>, Option<Vec<Vec<String>>>);

/// The parts of the command line after clap: the command words and the argument lists
/// (moved, not copied: a long `:::` list is held once).
pub(crate) fn split_inputs(command: Vec<String>) -> Result<Inputs, String> {
    let mut words = Vec::new();
    let mut lists: Vec<Vec<String>> = Vec::new();
    for word in command {
        if word == ":::" {
            lists.push(Vec::new());
        } else if let Some(list) = lists.last_mut() {
            list.push(word);
        } else {
            words.push(word);
        }
    }
    if words.iter().all(|w| w.trim().is_empty()) {
        return Err("the command is empty: give a command before :::".into());
    }
    if lists.is_empty() {
        return Ok((words, None));
    }
    if lists.iter().any(Vec::is_empty) {
        return Err("::: must be followed by at least one argument".into());
    }
    lists.iter_mut().for_each(|list| list.shrink_to_fit());
    Ok((words, Some(lists)))
}

impl Args {
    /// The run's configuration, the command words, and where the jobs' arguments come from.
    ///
    /// # Errors
    ///
    /// A usage error's message, for what clap cannot check.
    pub(crate) fn into_run(self) -> Result<(Config, Vec<String>, Source), String> {
        let (words, lists) = split_inputs(self.command)?;
        let source = match lists {
            Some(lists) => Source::lists(lists)?,
            None => Source::stdin(),
        };
        let jobs = self
            .jobs
            .map(|j| j as usize)
            .unwrap_or_else(ctxkit::procs::max_procs)
            .max(1);
        let rate = match (self.delay, self.rate) {
            (None, None) => None,
            (delay, rate) => {
                let from_delay = delay.map(|d| 1.0 / d.as_secs_f64());
                Some(
                    [from_delay, rate]
                        .into_iter()
                        .flatten()
                        .fold(f64::INFINITY, f64::min),
                )
            }
        };
        let pace = match (rate, self.rate_redis) {
            (Some(rate), redis) => Some(Pace {
                rate,
                redis: redis.map(|url| (url, self.rate_key)),
            }),
            (None, Some(_)) => {
                return Err("--rate-redis shares a limit: give it with --rate or --delay".into())
            }
            (None, None) => None,
        };
        let resume = match (self.resume, self.resume_failed) {
            (true, _) => Resume::All,
            (_, true) => Resume::Failed,
            _ => Resume::No,
        };
        let config = Config {
            jobs,
            keep_order: self.keep_order,
            ungroup: self.ungroup,
            timeout: self.timeout,
            deadline: self.deadline,
            halt: self.halt,
            termseq: Arc::new(self.termseq.0),
            pace,
            joblog: self.joblog,
            resume,
            retries: self.retries.max(1),
            retry_delay: self.retry_delay,
            bar: self.bar,
        };
        Ok((config, words, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(Config, Vec<String>, Source), String> {
        let args = Args::try_parse_from(std::iter::once("ctxrun").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        args.into_run()
    }

    #[test]
    fn inputs_are_checked() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(split_inputs(s(&[":::", "a"])).is_err());
        assert!(split_inputs(s(&["echo", ":::"])).is_err());
        assert!(split_inputs(s(&["echo", ":::", "a", ":::"])).is_err());
        assert!(split_inputs(s(&["echo"])).unwrap().1.is_none());
        assert_eq!(
            split_inputs(s(&["echo", ":::", "a", ":::", "b"]))
                .unwrap()
                .1
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn delay_and_rate_make_one_pace_the_stricter() {
        let (c, _, _) = parse(&["--delay", "500ms", "--rate", "10/s", "true", ":::", "a"]).unwrap();
        assert_eq!(c.pace.unwrap().rate, 2.0);
        let (c, _, _) = parse(&["--delay", "10ms", "--rate", "30/m", "true", ":::", "a"]).unwrap();
        assert_eq!(c.pace.unwrap().rate, 0.5);
        let (c, _, _) = parse(&["true", ":::", "a"]).unwrap();
        assert!(c.pace.is_none());
        assert!(parse(&["--rate-redis", "redis://127.0.0.1/", "true", ":::", "a"]).is_err());
        assert!(parse(&["--rate-key", "k", "--rate", "1/s", "true", ":::", "a"]).is_err());
    }

    #[test]
    fn resume_needs_a_joblog_and_ungroup_excludes_keep_order() {
        assert!(parse(&["--resume", "true", ":::", "a"]).is_err());
        assert!(parse(&["--resume-failed", "true", ":::", "a"]).is_err());
        assert!(parse(&[
            "--joblog",
            "x",
            "--resume",
            "--resume-failed",
            "true",
            ":::",
            "a"
        ])
        .is_err());
        let (c, _, _) = parse(&["--joblog", "x", "--resume-failed", "true", ":::", "a"]).unwrap();
        assert_eq!(c.resume, Resume::Failed);
        assert!(parse(&["-u", "-k", "true", ":::", "a"]).is_err());
        assert!(parse(&["--retry-delay", "0", "true", ":::", "a"]).is_ok());
    }
}
