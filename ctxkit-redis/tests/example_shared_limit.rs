//! The `shared_limit` example's output, checked: the example is compiled in as a module and
//! run against a buffer, with its own `redis-server`. Admissions depend on the machine's
//! speed, so they are checked against the limit's bounds, not exact figures.

#[allow(
    dead_code,
    unreachable_pub,
    reason = "an example compiled as a module; main is unused"
)]
#[path = "../examples/shared_limit.rs"]
mod shared_limit;

use shared_limit::{Mode, Row, BURST, CLIENTS, RATE};

async fn output(mode: Mode) -> (String, Vec<Row>) {
    let mut buf = Vec::new();
    let rows = shared_limit::run_with(&mut buf, mode).await.unwrap();
    (String::from_utf8(buf).expect("UTF-8"), rows)
}

fn paths(row: &Row) -> Vec<&str> {
    row.paths.iter().map(String::as_str).collect()
}

/// The table's shape: the header, one line per second, the closing total.
fn assert_table(out: &str, seconds: usize) {
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("3 clients share the key \"shared\" on one Redis (127.0.0.1:"),
        "{out}"
    );
    let header = lines
        .iter()
        .position(|line| *line == "second | client-1 client-2 client-3 | total | paths")
        .unwrap_or_else(|| panic!("no table header:\n{out}"));
    assert_eq!(lines.len(), header + seconds + 2, "{out}");
    for (i, line) in lines[header + 1..=header + seconds].iter().enumerate() {
        assert!(
            line.trim_start().starts_with(&format!("{} |", i + 1)),
            "{out}"
        );
    }
    assert!(lines.last().unwrap().starts_with("total "), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_share_the_limit() {
    let (out, rows) = output(Mode::Shared).await;
    assert_table(&out, 2);
    assert!(
        out.contains("the limit is 25 (burst 5 + 10/s × 2 s)"),
        "{out}"
    );
    for row in &rows {
        assert_eq!(paths(row), ["redis"], "{out}");
        assert_eq!(row.per_client.len(), CLIENTS);
        assert_eq!(row.total, row.per_client.iter().sum::<u32>());
    }
    // By Redis's clock no window of t admits more than burst + rate · t; the seconds here
    // are the clients' clocks, a round trip off: one token of slack.
    assert!(rows[0].total >= BURST, "the burst at least:\n{out}");
    assert!(rows[0].total <= BURST + RATE + 1, "{out}");
    let total: u32 = rows.iter().map(|row| row.total).sum();
    assert!(total <= BURST + 2 * RATE + 1, "{out}");
    assert!(total >= BURST + RATE, "about the limit (loosely):\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_fallback_takes_over_while_redis_is_down() {
    let (out, rows) = output(Mode::Outage).await;
    assert_table(&out, 4);
    assert!(
        out.contains("Redis is killed at 1 s and restarted at 2 s"),
        "{out}"
    );
    assert_eq!(paths(&rows[0]), ["redis"], "up in the first second:\n{out}");
    assert!(
        paths(&rows[1]).contains(&"local"),
        "down in the second:\n{out}"
    );
    assert_eq!(paths(&rows[3]), ["redis"], "back by the fourth:\n{out}");
    // Down, each client admits at most its local bucket: burst 1 and 10/3 a second, plus
    // whatever Redis granted in the moment before the kill.
    assert!(rows[1].total <= BURST + RATE + CLIENTS as u32 * 5, "{out}");
}
