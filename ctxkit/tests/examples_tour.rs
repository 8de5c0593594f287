//! The tour's output (`examples/tour.rs`), checked: every section of the chapter in order, and
//! each step's key lines, the same ones the examples' own tests check (exact where the output
//! is; by pattern for the machine's GOMAXPROCS, the rate limiters' times and "Try It", whose
//! chapter timings leave margins of 50 to 100 ms).

#![cfg(feature = "tokio")]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

// The tour includes the examples it runs with `#[path]`s relative to its own directory, which
// resolve the same way when the tour itself is included from here.
#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; its main is unused"
)]
#[path = "../examples/tour.rs"]
mod tour;

/// The chapter's sections the tour walks, in order.
const HEADERS: [&str; 10] = [
    "12.2 Cancellation, Deadlines, and Timeouts",
    "12.2.1 Checking Cancellation Inside a Loop",
    "12.3 context.WithValue",
    "12.4 Context as First Parameter",
    "12.5 errgroup — Fan-Out with Error Collection",
    "12.6 Goroutine Leak Detection",
    "12.7 GOMAXPROCS",
    "12.8 Worker Pool",
    "12.9 Rate Limiting",
    "12.10 Try It",
];

/// One step of the tour: its explanation lines, and its programs as (command, output lines).
#[derive(Debug, Default)]
struct Step<'a> {
    why: Vec<&'a str>,
    programs: Vec<(&'a str, Vec<&'a str>)>,
}

/// Splits the tour's output into its steps, by header (a line underlined with dashes).
fn steps(out: &str) -> Vec<(&str, Step<'_>)> {
    let lines: Vec<&str> = out.lines().collect();
    let mut steps: Vec<(&str, Step<'_>)> = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let line = lines[at];
        let underline = lines.get(at + 1).copied().unwrap_or("");
        if !underline.is_empty()
            && underline.chars().all(|c| c == '-')
            && underline.chars().count() == line.chars().count()
        {
            steps.push((line, Step::default()));
            at += 2;
            continue;
        }
        if let Some((_, step)) = steps.last_mut() {
            if let Some(command) = line.strip_prefix("  $ ") {
                step.programs.push((command, Vec::new()));
            } else if let Some(output) = line.strip_prefix("    ") {
                let (_, program) = step.programs.last_mut().expect("output under a command");
                program.push(output);
            } else if line.is_empty() {
                // between steps, and before the closing line
            } else if step.programs.is_empty() {
                step.why.push(line);
            }
        }
        at += 1;
    }
    steps
}

fn joined(lines: &[&str]) -> String {
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// "<text> at <ms> ms" lines, each no earlier than wanted and not absurdly late.
fn check_times(got: &[&str], want: &[(&str, u64)]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (line, (want_text, want_ms)) in got.iter().zip(want) {
        let (text, at) = line
            .rsplit_once(" at ")
            .unwrap_or_else(|| panic!("{line:?}"));
        let ms: u64 = at.strip_suffix(" ms").unwrap().parse().unwrap();
        assert_eq!(text, *want_text);
        assert!(ms >= *want_ms, "{line:?}, before {want_ms} ms: {got:?}");
        assert!(
            ms <= want_ms + 2000,
            "{line:?}, want about {want_ms} ms: {got:?}"
        );
    }
}

#[test]
fn the_tour_walks_the_chapter_in_order() {
    let start = Instant::now();
    let mut out = Vec::new();
    tour::run(&mut out).unwrap();
    let took = start.elapsed();
    let out = String::from_utf8(out).unwrap();

    let steps = steps(&out);
    let headers: Vec<&str> = steps.iter().map(|(header, _)| *header).collect();
    assert_eq!(headers, HEADERS, "{out}");
    for (header, step) in &steps {
        assert!(
            (1..=2).contains(&step.why.len()),
            "{header}: one or two lines of why: {step:?}"
        );
        assert!(!step.programs.is_empty(), "{header}: {step:?}");
        for (command, output) in &step.programs {
            assert!(command.starts_with("cargo run --example "), "{command}");
            assert!(!output.is_empty(), "{header}: {command} printed nothing");
        }
    }
    let program = |section: usize, index: usize, command: &str| -> &[&str] {
        let (header, step) = &steps[section];
        let (got, output) = &step.programs[index];
        assert_eq!(*got, command, "{header}");
        output
    };

    // 12.2: the chapter's program, a 2 s timeout over a 3 s call.
    assert_eq!(
        joined(program(0, 0, "cargo run --example fetch_lyrics")),
        "timed out: context deadline exceeded\n"
    );

    // 12.2.1
    assert_eq!(
        joined(program(1, 0, "cargo run --example process_tracks")),
        "processing: As It Was\n\
         processing: Vampire\n\
         processing: Anti-Hero\n\
         all tracks processed\n\
         processing: As It Was\n\
         processing: Vampire\n\
         stopped early: context canceled\n"
    );

    // 12.3
    assert_eq!(
        joined(program(2, 0, "cargo run --example request_meta")),
        "requestmeta trace id: abc-123\n\
         billing trace id: xyz-999\n\
         no collision: two private types are two keys\n\
         bare String value: xyz-999 (shadowed: never store std types directly)\n"
    );

    // 12.4
    assert_eq!(
        joined(program(3, 0, "cargo run --example ctx_first")),
        "== the context first: fn search_songs(ctx: &Context, query: &str) ==\n\
         search_songs(&ctx, \"June\"): [\"Flaming June\"]\n\
         search_songs(&canceled, \"June\"): context canceled\n\
         == the trap: a client that stored the context of the request that built it ==\n\
         request 1 (live): \"Flaming June\": ok\n\
         request 2 (its caller gave up): \"Saltwater\": ok  \
         <- WRONG: the request is done (context canceled), yet the call ran\n\
         request 1 ends: its context is canceled\n\
         request 3 (live): \"Windowlicker\": context canceled  \
         <- WRONG: the request is live, yet the call was canceled\n\
         == the fix: each call takes its context first ==\n\
         request 1 (live): \"Flaming June\": ok\n\
         request 2 (its caller gave up): \"Saltwater\": context canceled (caller gave up)\n\
         request 1 ends: its context is canceled\n\
         request 3 (live): \"Windowlicker\": ok\n\
         == the exception: a long-lived server owns a context for its own lifetime ==\n\
         server started: its context lives until shutdown; its cache refresher runs under it\n\
         request 1 (live): \"Flaming June\": ok\n\
         request 2 (its caller gave up): \"Saltwater\": context canceled (caller gave up)\n\
         server shutting down: its context is canceled\n\
         cache refresher stopped: server shut down\n\
         request 3 (after shutdown): \"Windowlicker\": context canceled (server shut down)\n"
    );

    // 12.5: in spawn order whatever the timing; then the first error.
    assert_eq!(
        joined(program(4, 0, "cargo run --example fetch_titles")),
        "Gouryella\nFlaming June\nSaltwater\n"
    );
    assert_eq!(
        joined(program(4, 1, "cargo run --example fetch_titles -- fail 1")),
        "error: fetch 1: service unavailable\n"
    );

    // 12.6: the line that starts the leaky loop, found in the example's source.
    let source = include_str!("../examples/loop_no_exit.rs");
    let line = source
        .lines()
        .position(|line| line.contains("tracked::thread(\"plays-forever\""))
        .expect("the example starts the leaky loop")
        + 1;
    assert_eq!(
        joined(program(5, 0, "cargo run --example loop_no_exit")),
        format!(
            "1. a loop with no exit path:\n\
             the caller gave up: context deadline exceeded\n\
             leak check: 1 leak(s)\n\
             leak 1: thread \"plays-forever\", spawned at loop_no_exit.rs:{line}\n\
             waiting on: no context (the loop never looks at one)\n\
             2. fixed, the loop returns when its context is done:\n\
             the caller gave up: context deadline exceeded\n\
             leak check: no leak\n"
        )
    );

    // 12.7: this machine's number.
    let procs = ctxkit::procs::current();
    let lines = program(6, 0, "cargo run --example gomaxprocs");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(
        lines[0],
        format!("GOMAXPROCS: {}", ctxkit::procs::max_procs())
    );
    assert!(lines[1].starts_with("from: the "), "{lines:?}");
    assert!(
        lines[2].starts_with(&format!("max_procs {} (", procs.count())),
        "{lines:?}"
    );

    // 12.8: sorted; which worker squared which number varies.
    let lines = program(7, 0, "cargo run --example worker_pool");
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "sorted: {lines:?}");
    let mut squared = BTreeSet::new();
    for line in lines {
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

    // 12.9: never early, not absurdly late.
    check_times(
        program(8, 0, "cargo run --example ticker_throttle"),
        &[
            ("serving As It Was", 200),
            ("serving Vampire", 400),
            ("serving Anti-Hero", 600),
            ("serving Houdini", 800),
        ],
    );
    check_times(
        program(8, 1, "cargo run --example token_bucket"),
        &[
            ("request 1", 0),
            ("request 2", 0),
            ("request 3", 0),
            ("request 4", 200),
            ("request 5", 400),
        ],
    );

    // 12.10, with the chapter's timings: on an idle machine exactly two tracks play and the
    // third is aborted; a machine loaded by 100 ms may abort the second instead (and the loop
    // stops on the deadline). Either way: the tracks in order, played ones first, and the last
    // line the deadline's abort.
    let lines = program(9, 0, "cargo run --example try_it");
    let tracks = ["As It Was", "Vampire", "Anti-Hero"];
    assert!((1..=3).contains(&lines.len()), "{lines:?}");
    for (i, (line, track)) in lines.iter().zip(tracks).enumerate() {
        let want = if i + 1 == lines.len() {
            format!("[req-2026] \"{track}\" aborted: context deadline exceeded")
        } else {
            format!("[req-2026] played \"{track}\"")
        };
        assert_eq!(*line, want, "{lines:?}");
    }

    // The closing line, and the whole tour well under the generous bound (it takes about 5 s).
    assert!(
        out.lines()
            .any(|line| line.starts_with("tour done in ") && line.contains(" s. ")),
        "{out}"
    );
    assert!(took < Duration::from_secs(30), "the tour took {took:?}");
}
