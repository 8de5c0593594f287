//! The leak examples' output: `stream_hits_leak` (12.6), `loop_no_exit` (the trap "a loop with
//! no exit path" of 12.6) and `fetch_data_leak` (the "Where is the bug?" exercise of 12.12).

use std::time::Duration;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's main() is not used here"
)]
#[path = "../examples/stream_hits_leak.rs"]
mod stream_hits_leak;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's main() is not used here"
)]
#[path = "../examples/fetch_data_leak.rs"]
mod fetch_data_leak;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's main() is not used here"
)]
#[path = "../examples/loop_no_exit.rs"]
mod loop_no_exit;

/// The lines of `text` from the one starting with `from` (exclusive) to the one starting with
/// `to` (exclusive), or to the end.
fn section<'a>(text: &'a str, from: &str, to: Option<&str>) -> Vec<&'a str> {
    text.lines()
        .skip_while(|line| !line.starts_with(from))
        .skip(1)
        .take_while(|line| to.is_none_or(|to| !line.starts_with(to)))
        .collect()
}

#[test]
fn stream_hits_leaks_twice_then_passes() {
    let mut out = Vec::new();
    stream_hits_leak::run(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    // (Included with `#[path]`, the example's file reads `ctxkit/tests/../examples/...`.)
    let example = "examples/stream_hits_leak.rs:";

    // 1. Blocked in a send: reported with its name and spawn site, waiting on no context.
    let first = section(&out, "1. ", Some("(read"));
    assert!(
        first[0].starts_with("ctxkit::leak: 1 leak(s) from the scope opened at "),
        "{out}"
    );
    assert!(first[0].contains(example), "{out}");
    assert_eq!(
        first[1],
        "leak 1: thread \"stream-hits\", started through ctxkit"
    );
    assert!(
        first[2].starts_with("    spawned at: ") && first[2].contains(example),
        "{out}"
    );
    assert!(first[3].starts_with("    running for: "), "{out}");
    assert_eq!(
        first[4],
        "    waiting on: nothing ctxkit knows (running, or blocked elsewhere)"
    );

    // 2. Waits on a context nobody cancels: the report names it and where it was made.
    let second = section(&out, "2. ", Some("3. "));
    assert!(second[0].starts_with("ctxkit::leak: 1 leak(s)"), "{out}");
    assert!(
        second[2].starts_with("    spawned at: ") && second[2].contains(example),
        "{out}"
    );
    let waiting = second[4];
    assert!(
        waiting.starts_with("    waiting on: a context made at ")
            || waiting.starts_with("    last waited on: a context made at "),
        "{out}"
    );
    assert!(waiting.contains(example), "{out}");
    assert!(waiting.contains("no deadline, not done"), "{out}");

    // 3. Fixed: nothing left.
    let third = section(&out, "3. ", None);
    assert_eq!(third.len(), 1, "{out}");
    assert!(
        third[0].starts_with("ctxkit::leak: no leak from the scope opened at "),
        "{out}"
    );
}

#[test]
fn fetch_data_outlives_its_caller_until_it_watches_the_context() {
    let mut out = Vec::new();
    fetch_data_leak::run(
        &mut out,
        Duration::from_millis(600),
        Duration::from_millis(60),
    )
    .unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "faithful port: timed out", "{out}");
    assert!(lines[1].starts_with("ctxkit::leak: 1 leak(s)"), "{out}");
    assert_eq!(
        lines[2],
        "leak 1: thread \"fetch-data\", started through ctxkit"
    );
    assert!(lines[3].starts_with("    spawned at: "), "{out}");
    assert!(lines[3].contains("examples/fetch_data_leak.rs:"), "{out}");
    let fixed = lines.iter().position(|line| *line == "fixed: timed out");
    let fixed = fixed.unwrap_or_else(|| panic!("{out}"));
    assert!(lines[fixed + 1].starts_with("ctxkit::leak: no leak from the scope opened at "));
    assert_eq!(lines.len(), fixed + 2, "{out}");
}

#[test]
fn loop_no_exit_is_caught_then_fixed() {
    let mut out = Vec::new();
    let (leaky_plays, fixed_plays) = loop_no_exit::run(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    // The line that starts the leaky loop, found in the example's source.
    let source = include_str!("../examples/loop_no_exit.rs");
    let line = source
        .lines()
        .position(|line| line.contains("tracked::thread(\"plays-forever\""))
        .expect("the example starts the leaky loop")
        + 1;
    let expected = format!(
        "1. a loop with no exit path:\n\
         the caller gave up: context deadline exceeded\n\
         leak check: 1 leak(s)\n\
         leak 1: thread \"plays-forever\", spawned at loop_no_exit.rs:{line}\n\
         waiting on: no context (the loop never looks at one)\n\
         2. fixed, the loop returns when its context is done:\n\
         the caller gave up: context deadline exceeded\n\
         leak check: no leak\n"
    );
    assert_eq!(out, expected);
    // Both loops ran: each counts a play before it first waits.
    assert!(
        leaky_plays >= 1 && fixed_plays >= 1,
        "{leaky_plays} {fixed_plays}"
    );
}
