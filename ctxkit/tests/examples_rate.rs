//! The output of the rate-limiting examples, checked. Each example's `run` writes into a
//! buffer; the checks allow for a loaded machine (a line may come late, never early).

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's `main` is not called here"
)]
#[path = "../examples/ticker_throttle.rs"]
mod ticker_throttle;

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's `main` is not called here"
)]
#[path = "../examples/token_bucket.rs"]
mod token_bucket;

/// Splits "<text> at <ms> ms" lines into (text, ms).
fn lines(out: &[u8]) -> Vec<(String, u64)> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .map(|line| {
            let (text, at) = line
                .rsplit_once(" at ")
                .unwrap_or_else(|| panic!("{line:?}"));
            let ms = at.strip_suffix(" ms").unwrap().parse().unwrap();
            (text.to_string(), ms)
        })
        .collect()
}

/// Each line's time is at least the expected one (never early) and not absurdly late.
fn check(got: &[(String, u64)], want: &[(&str, u64)]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((text, ms), (want_text, want_ms)) in got.iter().zip(want) {
        assert_eq!(text, want_text);
        assert!(
            ms >= want_ms,
            "{text:?} at {ms} ms, before {want_ms} ms: {got:?}"
        );
        assert!(
            *ms <= want_ms + 2000,
            "{text:?} at {ms} ms, want about {want_ms}: {got:?}"
        );
    }
}

#[test]
fn ticker_throttle_serves_one_request_per_tick() {
    let mut out = Vec::new();
    ticker_throttle::run(&mut out).unwrap();
    let got = lines(&out);
    check(
        &got,
        &[
            ("serving As It Was", 200),
            ("serving Vampire", 400),
            ("serving Anti-Hero", 600),
            ("serving Houdini", 800),
        ],
    );
}

#[test]
fn token_bucket_bursts_three_then_paces_two() {
    let mut out = Vec::new();
    token_bucket::run(&mut out).unwrap();
    let got = lines(&out);
    check(
        &got,
        &[
            ("request 1", 0),
            ("request 2", 0),
            ("request 3", 0),
            ("request 4", 200),
            ("request 5", 400),
        ],
    );
    assert!(
        got.windows(2).all(|w| w[0].1 <= w[1].1),
        "in order: {got:?}"
    );
}
