//! The small languages of ctxrun's options: durations, `--halt` policies, `--termseq`
//! sequences, and the command template with its `{}` replacement strings.

use std::time::Duration;

use rustix::process::Signal;

/// Parses a duration: a non-negative number followed by `ms`, `s`, `m` or `h`; a bare number is
/// seconds (GNU parallel's `--timeout 5`). `500ms`, `2s`, `1.5s`, `1m`. Zero is refused: a job
/// (or a run) with no time at all is a mistake, not a policy.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "bad duration {text:?}: the unit must be ms, s, m or h (e.g. 500ms, 2s, 1m)"
            ))
        }
    };
    let value: f64 = number.parse().map_err(|_| {
        format!("bad duration {text:?}: expected a number and a unit, e.g. 500ms, 2s, 1m")
    })?;
    let seconds = value * scale;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 1e9 {
        return Err(format!("bad duration {text:?}: it must be above zero"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// As [`parse_duration`], but `0` (with or without a unit) is allowed: "none".
pub(crate) fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    let number = text
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if !number.is_empty() && number.bytes().all(|b| b == b'0' || b == b'.') && number.contains('0')
    {
        // Still check the unit.
        return parse_duration(&text.trim().replacen(number, "1", 1)).map(|_| Duration::ZERO);
    }
    parse_duration(text)
}

/// When a run stops early, as GNU parallel's `--halt WHEN,fail=N` / `fail=P%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// Never: every job runs, whatever fails.
    Never,
    /// Start no more jobs; let the running ones finish.
    Soon,
    /// Start no more jobs and cancel the running ones (their process groups get the termseq).
    Now,
}

/// The threshold of a halt policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Threshold {
    /// Halt once this many jobs failed.
    Count(usize),
    /// Halt once this percentage of all the run's jobs failed.
    Percent(u32),
}

/// A `--halt` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Halt {
    pub(crate) when: When,
    pub(crate) threshold: Threshold,
}

impl Halt {
    /// Whether `failed` failures out of `total` jobs trip the policy.
    pub(crate) fn tripped(&self, failed: usize, total: usize) -> bool {
        if self.when == When::Never || failed == 0 {
            return false;
        }
        match self.threshold {
            Threshold::Count(n) => failed >= n,
            Threshold::Percent(p) => failed * 100 >= p as usize * total,
        }
    }
}

/// Parses `never`, `soon`, `now`, optionally followed by `,fail=N` or `,fail=P%`
/// (`soon` and `now` alone mean `fail=1`).
pub(crate) fn parse_halt(text: &str) -> Result<Halt, String> {
    let bad = |why: &str| {
        format!("bad --halt {text:?}: {why} (expected never, soon or now, optionally with ,fail=N or ,fail=P%, e.g. now,fail=1)")
    };
    let (when, rest) = match text.split_once(',') {
        Some((w, r)) => (w, Some(r)),
        None => (text, None),
    };
    let when = match when {
        "never" => When::Never,
        "soon" => When::Soon,
        "now" => When::Now,
        _ => return Err(bad("unknown policy")),
    };
    let threshold = match rest {
        None => Threshold::Count(1),
        Some(rest) => {
            let value = rest
                .strip_prefix("fail=")
                .ok_or_else(|| bad("only fail= is supported after the comma"))?;
            if let Some(p) = value.strip_suffix('%') {
                let p: u32 = p
                    .parse()
                    .map_err(|_| bad("the percentage is not a number"))?;
                if p == 0 || p > 100 {
                    return Err(bad("the percentage must be 1 to 100"));
                }
                Threshold::Percent(p)
            } else {
                let n: usize = value
                    .parse()
                    .map_err(|_| bad("the count is not a number"))?;
                if n == 0 {
                    return Err(bad("the count must be at least 1"));
                }
                Threshold::Count(n)
            }
        }
    };
    Ok(Halt { when, threshold })
}

/// Parses a rate of job starts: `R/s`, `R/m` or `R/h` (a bare number is per second), e.g.
/// `10/s`, `30/m`, `0.5/s`. The rate must be above zero and finite.
pub(crate) fn parse_rate(text: &str) -> Result<f64, String> {
    let bad = |why: &str| format!("bad --rate {text:?}: {why} (expected e.g. 10/s, 30/m, 100/h)");
    let text = text.trim();
    let (number, per) = match text.split_once('/') {
        Some((n, unit)) => {
            let per = match unit.trim() {
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad("the unit must be s, m or h")),
            };
            (n.trim(), per)
        }
        None => (text, 1.0),
    };
    if !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad("the count is not a number"));
    }
    let count: f64 = number
        .parse()
        .map_err(|_| bad("the count is not a number"))?;
    let rate = count / per;
    if !rate.is_finite() || rate <= 0.0 || rate > 1e9 {
        return Err(bad("the rate must be above zero"));
    }
    Ok(rate)
}

/// One step of a termination sequence: send `signal` to the job's process group, then give it
/// `wait` to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Step {
    pub(crate) signal: Signal,
    pub(crate) wait: Duration,
}

/// A termination sequence: the steps, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Termseq(pub(crate) Vec<Step>);

/// Parses GNU parallel's `--termseq` form: `SIGNAL,MS,SIGNAL,MS,...`; the last wait may be left
/// out (0). Signals by name, with or without `SIG`: TERM, KILL, INT, HUP, QUIT, USR1, USR2,
/// ALRM, CONT.
pub(crate) fn parse_termseq(text: &str) -> Result<Termseq, String> {
    let bad =
        |why: String| format!("bad --termseq {text:?}: {why} (expected e.g. TERM,200,KILL,25)");
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let mut steps = Vec::new();
    for pair in parts.chunks(2) {
        let name = pair[0];
        let signal = signal_by_name(name).ok_or_else(|| bad(format!("unknown signal {name:?}")))?;
        let wait = match pair.get(1) {
            Some(ms) => Duration::from_millis(
                ms.parse()
                    .map_err(|_| bad(format!("{ms:?} is not a number of milliseconds")))?,
            ),
            None => Duration::ZERO,
        };
        steps.push(Step { signal, wait });
    }
    Ok(Termseq(steps))
}

fn signal_by_name(name: &str) -> Option<Signal> {
    let name = name.strip_prefix("SIG").unwrap_or(name);
    Some(match name {
        "TERM" => Signal::TERM,
        "KILL" => Signal::KILL,
        "INT" => Signal::INT,
        "HUP" => Signal::HUP,
        "QUIT" => Signal::QUIT,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        "ALRM" => Signal::ALARM,
        "CONT" => Signal::CONT,
        _ => return None,
    })
}

/// Quotes `arg` for `sh` as one word: single quotes, with each `'` written `'\''`. Arguments are
/// data, never shell code.
pub(crate) fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return arg.to_string();
    }
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// GNU parallel's path replacement strings, applied to one argument before it is quoted:
/// `.` drops the extension, `/` keeps the basename, `//` keeps the directory, `/.` keeps the
/// basename without its extension.
fn transform(kind: &str, arg: &str) -> Option<String> {
    let base = |a: &str| a.rsplit('/').next().unwrap_or(a).to_string();
    let no_ext = |a: &str| match a.rfind('.') {
        Some(dot) if dot > a.rfind('/').map_or(0, |s| s + 1) => a[..dot].to_string(),
        _ => a.to_string(),
    };
    Some(match kind {
        "" => arg.to_string(),
        "." => no_ext(arg),
        "/" => base(arg),
        "//" => match arg.rfind('/') {
            Some(0) => "/".to_string(),
            Some(slash) => arg[..slash].to_string(),
            None => ".".to_string(),
        },
        "/." => no_ext(&base(arg)),
        _ => return None,
    })
}

/// Builds job `seq`'s shell command line from the command words and the job's arguments (one
/// per `:::` list). The words are joined with spaces and read by `sh -c`, so they may hold
/// pipes and redirections. The replacement strings, GNU parallel's:
///
/// * `{}`: all the arguments (each quoted, joined by spaces); `{1}`, `{2}`...: the argument of
///   the first, second... list;
/// * `{.}`, `{/}`, `{//}`, `{/.}` (and `{1.}`, `{2/}`...): the same with the extension
///   dropped, the basename, the directory, the basename without extension;
/// * `{#}`: the job's number.
///
/// With no replacement string anywhere, the quoted arguments are appended. Anything else in
/// braces (`{print $1}`, `{%}`) is left as it is.
pub(crate) fn render(words: &[String], args: &[String], seq: usize) -> String {
    let line = words.join(" ");
    let mut out = String::with_capacity(line.len() + 16);
    let mut replaced = false;
    let mut rest = line.as_str();
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let inner = after.find('}').map(|c| &after[..c]);
        let value = inner.and_then(|inner| {
            if inner == "#" {
                return Some(seq.to_string());
            }
            let digits = inner.bytes().take_while(u8::is_ascii_digit).count();
            let (index, kind) = inner.split_at(digits);
            let picked: Vec<&String> = if index.is_empty() {
                args.iter().collect()
            } else {
                let i: usize = index.parse().ok()?;
                vec![args.get(i.checked_sub(1)?)?]
            };
            let parts: Option<Vec<String>> = picked
                .iter()
                .map(|a| transform(kind, a).map(|t| shell_quote(&t)))
                .collect();
            parts.map(|p| p.join(" "))
        });
        match (inner, value) {
            (Some(inner), Some(value)) => {
                out.push_str(&value);
                replaced = true;
                rest = &after[inner.len() + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    if !replaced && !args.is_empty() {
        let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        out.push(' ');
        out.push_str(&quoted.join(" "));
    }
    out
}

/// The words of `line` when `sh -c line` would only search the PATH for its first word and
/// run it with the rest as arguments, so running that program directly does the same, one
/// `exec` cheaper; `None` when the shell has anything more to do.
///
/// The line qualifies when every word is plain (letters, digits, `-_./=:,+@%`) or
/// single-quoted (the quoting [`shell_quote`] writes, without an embedded `'`), and the first
/// word is not an assignment (`A=1`) nor one of dash's builtins or keywords (whose behaviour
/// may differ from the program of the same name: dash's `echo` reads backslash escapes,
/// coreutils' does not). Anything else (`$`, globs, pipes, redirections, `;`, backslashes,
/// `~`, braces, newlines) needs the shell.
pub(crate) fn direct_argv(line: &str) -> Option<Vec<String>> {
    const SHELL_WORDS: &[&str] = &[
        ".", ":", "[", "alias", "bg", "break", "cd", "chdir", "command", "continue", "echo",
        "eval", "exec", "exit", "export", "false", "fc", "fg", "getopts", "hash", "jobs", "kill",
        "local", "printf", "pwd", "read", "readonly", "return", "set", "shift", "test", "times",
        "trap", "true", "type", "ulimit", "umask", "unalias", "unset", "wait", "if", "then",
        "else", "elif", "fi", "case", "esac", "for", "while", "until", "do", "done", "in", "!",
        "{", "}", "function", "select", "time", "source",
    ];
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in line.chars() {
        if quoted {
            if c == '\'' {
                quoted = false;
            } else {
                word.push(c);
            }
        } else if c == '\'' {
            quoted = true;
            in_word = true;
        } else if c == ' ' {
            if in_word {
                words.push(std::mem::take(&mut word));
                in_word = false;
            }
        } else if c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c) {
            word.push(c);
            in_word = true;
        } else {
            return None;
        }
    }
    if quoted {
        return None;
    }
    if in_word {
        words.push(word);
    }
    let first = words.first()?;
    if first.is_empty() || first.contains('=') || SHELL_WORDS.contains(&first.as_str()) {
        return None;
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "abc", "5x", "0s", "-1s", "1..2s", "ms"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_duration_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("0.0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("2s"), Ok(Duration::from_secs(2)));
        for bad in ["0x", "", "-0", "."] {
            assert!(parse_duration_or_zero(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn halts() {
        let h = parse_halt("now,fail=1").unwrap();
        assert_eq!(
            h,
            Halt {
                when: When::Now,
                threshold: Threshold::Count(1)
            }
        );
        assert_eq!(
            parse_halt("soon,fail=20%").unwrap().threshold,
            Threshold::Percent(20)
        );
        assert_eq!(parse_halt("never").unwrap().when, When::Never);
        for bad in [
            "",
            "later",
            "now,fail=",
            "now,fail=0",
            "now,ok=1",
            "now,fail=200%",
            "now,fail=x",
        ] {
            assert!(parse_halt(bad).is_err(), "{bad:?}");
        }
        assert!(parse_halt("now,fail=2").unwrap().tripped(2, 10));
        assert!(!parse_halt("now,fail=2").unwrap().tripped(1, 10));
        assert!(parse_halt("now,fail=50%").unwrap().tripped(2, 4));
        assert!(!parse_halt("never").unwrap().tripped(9, 9));
    }

    #[test]
    fn direct_when_the_shell_has_nothing_to_do() {
        let d = |l: &str| direct_argv(l);
        let v = |w: &[&str]| Some(w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(d("sleep 0.01"), v(&["sleep", "0.01"]));
        assert_eq!(d("gzip -k 'a b.log'"), v(&["gzip", "-k", "a b.log"]));
        assert_eq!(d("./run.sh ''  x"), v(&["./run.sh", "", "x"]));
        assert_eq!(d("cmd 'a'b'c'"), v(&["cmd", "abc"]));
        for shell in [
            "echo a",
            "true 1",
            "cd /tmp",
            "A=1 cmd",
            "cmd $HOME",
            "cmd *.log",
            "cmd > out",
            "a | b",
            "a; b",
            r"cmd 'it'\''s'",
            "cmd ~/x",
            "cmd 'open",
            "cmd {x}",
            "",
            "   ",
            "''",
            "cmd\targ",
        ] {
            assert_eq!(d(shell), None, "{shell:?}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10/s"), Ok(10.0));
        assert_eq!(parse_rate("30/m"), Ok(0.5));
        assert_eq!(parse_rate("3600/h"), Ok(1.0));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["", "x/s", "10/d", "0/s", "-1/s", "/s", "1e999/s", "nan"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn termseqs() {
        let s = parse_termseq("TERM,200,KILL,25").unwrap().0;
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].signal, Signal::TERM);
        assert_eq!(s[1].wait, Duration::from_millis(25));
        assert_eq!(
            parse_termseq("SIGINT,10,KILL").unwrap().0[1].wait,
            Duration::ZERO
        );
        for bad in ["", "FOO,1", "TERM,x", "TERM,,KILL"] {
            assert!(parse_termseq(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn templates() {
        let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let a = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(render(&w(&["echo"]), &a(&["x"]), 1), "echo x");
        assert_eq!(
            render(&w(&["echo", "<{}>"]), &a(&["a b"]), 1),
            "echo <'a b'>"
        );
        assert_eq!(
            render(&w(&["echo", "{2}-{1}"]), &a(&["a", "b"]), 1),
            "echo b-a"
        );
        assert_eq!(
            render(&w(&["echo", "{}"]), &a(&["it's"]), 1),
            r"echo 'it'\''s'"
        );
        assert_eq!(render(&w(&["echo", "{x}"]), &a(&["1"]), 1), "echo {x} 1");
        assert_eq!(render(&w(&["echo", "{9}"]), &a(&["1"]), 1), "echo {9} 1");
        let r = |words: &[&str], args: &[&str]| render(&w(words), &a(args), 7);
        assert_eq!(
            r(&["convert {} {.}.png"], &["d/a.b.jpg"]),
            "convert d/a.b.jpg d/a.b.png"
        );
        assert_eq!(r(&["echo {/} {//} {/.}"], &["/x/y.tar"]), "echo y.tar /x y");
        assert_eq!(r(&["echo {//} {.}"], &["plain"]), "echo . plain");
        assert_eq!(r(&["echo {.}"], &["dir.d/file"]), "echo dir.d/file");
        assert_eq!(r(&["echo {2.}-{1/}"], &["a/b", "c.txt"]), "echo c-b");
        assert_eq!(r(&["echo {#}: {}"], &["x"]), "echo 7: x");
        assert_eq!(r(&["awk '{print $1}'"], &["f"]), "awk '{print $1}' f");
        assert_eq!(r(&["echo {%}"], &["f"]), "echo {%} f");
        assert_eq!(r(&["echo {.}"], &["it's.x"]), r"echo 'it'\''s'");
    }
}
