//! The output of `release_on_drop` (12.2's "call cancel right away", 12.9's `time.Tick` tip),
//! checked. The example installs a counting global allocator, which counts every thread, so this
//! test binary holds this one check only and runs it from its own `main` (`harness = false`):
//! another test beside it would move the counts, and so did the test harness's own main thread,
//! whose bookkeeping of the running test could land inside a measured phase on a loaded machine
//! ("held: 1 KiB" where 0 was right, seen twice in about 30 runs under parallel builds).

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's `main` is not called here"
)]
#[path = "../examples/release_on_drop.rs"]
mod release_on_drop;

/// The number after `prefix` in `line`, up to the next space.
fn number_after(line: &str, prefix: &str) -> usize {
    let rest = line
        .split_once(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} in {line:?}"))
        .1;
    rest.split(' ').next().unwrap().parse().unwrap()
}

fn main() {
    the_trap_holds_every_request_and_the_habit_none();
    println!("examples_release: the_trap_holds_every_request_and_the_habit_none ... ok");
}

fn the_trap_holds_every_request_and_the_habit_none() {
    let mut out = Vec::new();
    release_on_drop::run(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 7, "{out}");
    assert_eq!(lines[0], "12.2 trap: call cancel right away");

    assert!(
        lines[1].starts_with(
            "the trap, cancel handles kept to call later: 10000 requests served, held: "
        ),
        "{out}"
    );
    // Every request's context is still linked: at least a pointer's worth each, and no more
    // than a few cache lines (a leak of something else would be far larger).
    let per_request = number_after(lines[1], "(about ");
    assert!((16..=1024).contains(&per_request), "{out}");
    assert!(
        number_after(lines[1], "held: ") * 1024 >= 16 * 10_000 - 1024,
        "{out}"
    );

    // No request's context is left: only the root's room for its peak of children (a slot
    // each, at most 24 bytes with the vectors' doubling), which the next phase reuses.
    assert!(
        lines[2].starts_with("after the kept handles are dropped: held: ")
            && lines[2].ends_with(" B each, reused)"),
        "{out}"
    );
    let room_per_child = number_after(lines[2], "children, about ");
    assert!(room_per_child <= 24, "{out}");
    assert!(
        number_after(lines[2], "held: ") * 1024 <= 24 * 10_000,
        "{out}"
    );
    assert_eq!(
        lines[3],
        "ctxkit's habit, one value dropped with the request: 10000 requests served, held: 0 KiB"
    );
    // The root's room goes with the root.
    assert_eq!(lines[4], "after the server context is dropped: held: 0 KiB");
    assert_eq!(lines[5], "12.9 tip: time.Tick");
    assert_eq!(
        lines[6],
        format!(
            "100000 tickers made and dropped in a loop: heap allocated: 0 B (a Ticker is {} bytes of plain data)",
            std::mem::size_of::<ctxkit::rate::Ticker>()
        )
    );
}
