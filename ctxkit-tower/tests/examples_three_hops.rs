//! The `three_hops` example's output, checked. The example is compiled in as a module and run
//! against a buffer, with its servers on loopback as always, but with times five times the
//! example's (a 2 s budget, 500 ms margins, a hang-up at 750 ms): a machine would have to
//! stall for half a second to change the story. The budgets each hop prints depend on the
//! machine's speed; they are matched by range.

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; main is unused"
)]
#[path = "../examples/three_hops.rs"]
mod three_hops;

use std::time::Duration;

use three_hops::{Mode, Timings};

/// The example's times, five times over; the store's work is far longer than any budget.
const WIDE: Timings = Timings {
    budget: Duration::from_millis(2000),
    margin: Duration::from_millis(500),
    work: Duration::from_secs(10),
    hang_up_at: Duration::from_millis(750),
};

fn output(mode: Mode, timings: Timings) -> String {
    let mut buf = Vec::new();
    three_hops::run_with(&mut buf, mode, timings).expect("the servers start on loopback");
    String::from_utf8(buf).expect("examples print UTF-8")
}

/// The output with each `budget N ms` replaced by `budget _ ms`, and the hops' budgets.
fn mask_budgets(out: &str) -> (String, Vec<(String, u64)>) {
    let mut budgets = Vec::new();
    let mut masked = String::new();
    for line in out.lines() {
        let budget = line
            .split_once(": [req-2026] budget ")
            .and_then(|(hop, rest)| Some((hop, rest.strip_suffix(" ms")?.parse::<u64>().ok()?)));
        match budget {
            Some((hop, millis)) => {
                budgets.push((hop.to_owned(), millis));
                masked.push_str(&format!("{hop}: [req-2026] budget _ ms\n"));
            }
            None => {
                masked.push_str(line);
                masked.push('\n');
            }
        }
    }
    (masked, budgets)
}

/// Each hop got the client's budget less one margin per hop before it, less whatever the
/// machine took (under a margin), rounded up to a multiple of 50 ms.
fn assert_budgets(budgets: &[(String, u64)], out: &str) {
    let hops: Vec<&str> = budgets.iter().map(|(hop, _)| hop.as_str()).collect();
    assert_eq!(hops, ["gateway", "service", "store"], "{out}");
    let budget = WIDE.budget.as_millis() as u64;
    let margin = WIDE.margin.as_millis() as u64;
    for (before, (hop, millis)) in (0u64..).zip(budgets) {
        let millis = *millis;
        let most = budget - before * margin;
        assert!(
            millis % 50 == 0 && millis <= most && millis > most - margin,
            "{hop}'s budget {millis} ms: expected a multiple of 50 in ({}, {most}]\n{out}",
            most - margin
        );
    }
}

#[test]
fn the_store_runs_out_of_time_first_and_the_gateway_says_so() {
    let out = output(Mode::Wait, WIDE);
    let (masked, budgets) = mask_budgets(&out);
    assert_eq!(
        masked,
        "client: [req-2026] GET /lyrics/Gouryella with a 2000 ms budget\n\
         gateway: [req-2026] budget _ ms\n\
         gateway: [req-2026] \"store\" aborted: context deadline exceeded\n\
         service: [req-2026] budget _ ms\n\
         service: [req-2026] the store answered 504 Gateway Timeout: context deadline exceeded\n\
         store: [req-2026] budget _ ms\n\
         store: [req-2026] stopped: context deadline exceeded\n\
         client: [req-2026] 504 Gateway Timeout: \"store\" aborted: context deadline exceeded\n"
    );
    assert_budgets(&budgets, &out);
}

#[test]
fn a_hang_up_stops_every_hop_with_client_gone() {
    let out = output(Mode::HangUp, WIDE);
    let (masked, budgets) = mask_budgets(&out);
    let gone = "stopped: context canceled: the client went away before the response was sent";
    assert_eq!(
        masked,
        format!(
            "client: [req-2026] GET /lyrics/Gouryella with a 2000 ms budget\n\
             gateway: [req-2026] budget _ ms\n\
             gateway: [req-2026] {gone}\n\
             service: [req-2026] budget _ ms\n\
             service: [req-2026] {gone}\n\
             store: [req-2026] budget _ ms\n\
             store: [req-2026] {gone}\n\
             client: [req-2026] gave up: context canceled: the user hung up at 750 ms\n"
        )
    );
    assert_budgets(&budgets, &out);
}

#[test]
fn a_quick_store_answers_through_every_hop() {
    let quick = Timings {
        work: Duration::from_millis(10),
        ..WIDE
    };
    let out = output(Mode::Wait, quick);
    let (masked, budgets) = mask_budgets(&out);
    assert_eq!(
        masked,
        "client: [req-2026] GET /lyrics/Gouryella with a 2000 ms budget\n\
         gateway: [req-2026] budget _ ms\n\
         gateway: [req-2026] got the lyrics\n\
         service: [req-2026] budget _ ms\n\
         service: [req-2026] got the lyrics\n\
         store: [req-2026] budget _ ms\n\
         store: [req-2026] found the lyrics\n\
         client: [req-2026] 200 OK: I can't keep loving you the way I do\n"
    );
    assert_budgets(&budgets, &out);
}

#[test]
fn the_flags() {
    let parse = |args: &[&str]| three_hops::parse_args(args.iter().map(|&arg| arg.to_owned()));
    assert_eq!(parse(&[]), Ok(Mode::Wait));
    assert_eq!(parse(&["hangup"]), Ok(Mode::HangUp));
    assert!(parse(&["--hangup"]).is_err());
    assert!(parse(&["hangup", "hangup"]).is_err());
}
