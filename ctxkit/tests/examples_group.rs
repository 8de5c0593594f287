//! The group examples' output, checked: `examples/fetch_titles.rs` and
//! `examples/fan_out_fetch.rs`, compiled in as modules (no nested cargo).

#![cfg(feature = "tokio")]

use std::time::Duration;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's main() and helpers are not all used here"
)]
#[path = "../examples/fetch_titles.rs"]
mod fetch_titles;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's main() and helpers are not all used here"
)]
#[path = "../examples/fan_out_fetch.rs"]
mod fan_out_fetch;

fn output(run: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    run(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn fetch_titles_prints_the_titles_in_order() {
    // Fetch i takes (i + 1) * unit, so they finish in order; the output would be in spawn order
    // whatever the timing.
    let out = output(|o| fetch_titles::run(o, Duration::from_millis(10), None));
    assert_eq!(out, "Gouryella\nFlaming June\nSaltwater\n");
}

#[test]
fn fetch_titles_prints_the_first_error() {
    // Fetch 0 fails after one unit; fetches 1 and 2 are still sleeping and are canceled.
    let out = output(|o| fetch_titles::run(o, Duration::from_millis(20), Some(0)));
    assert_eq!(out, "error: fetch 0: service unavailable\n");
}

#[test]
fn fan_out_fetch_prints_all_results_in_order() {
    let config = fan_out_fetch::Config::exercise(42);
    // The latencies the seed gives, computed the way `run` does.
    let mut rng = fan_out_fetch::XorShift::new(42);
    let want: String = fan_out_fetch::SONGS
        .iter()
        .enumerate()
        .map(|(i, song)| {
            let latency = rng.between(config.min, config.max);
            assert!((50..=150).contains(&latency.as_millis()));
            format!("{}. {song} ({} ms)\n", i + 1, latency.as_millis())
        })
        .collect();
    let out = output(|o| fan_out_fetch::run(o, &config));
    assert_eq!(out, want);
}

#[test]
fn fan_out_fetch_prints_the_deadline_error() {
    // A deadline shorter than the shortest fetch: every seed gives the error.
    for seed in [1, 7, 42] {
        let mut config = fan_out_fetch::Config::exercise(seed);
        config.deadline = Duration::from_millis(10);
        let out = output(|o| fan_out_fetch::run(o, &config));
        assert_eq!(out, "error: context deadline exceeded\n", "seed {seed}");
    }
}

#[test]
fn the_generator_is_seedable() {
    let a: Vec<u64> = {
        let mut r = fan_out_fetch::XorShift::new(9);
        (0..4).map(|_| r.next_u64()).collect()
    };
    let b: Vec<u64> = {
        let mut r = fan_out_fetch::XorShift::new(9);
        (0..4).map(|_| r.next_u64()).collect()
    };
    assert_eq!(a, b);
    assert_ne!(a, {
        let mut r = fan_out_fetch::XorShift::new(10);
        (0..4).map(|_| r.next_u64()).collect::<Vec<_>>()
    });
}
