//! Behaviour of `Ticker` on the real clock. The schedule's arithmetic is tested on a fake
//! clock beside the code; here, bounds are generous (a loaded 2-core runner).

mod common;

use std::time::{Duration, Instant};

use ctxkit::rate::{MissedTickBehavior, Ticker};
use ctxkit::{Context, Error};

const MS: Duration = Duration::from_millis(1);

#[test]
fn ticker_is_send_and_sync() {
    let _leaks = common::no_leaks();
    fn check<T: Send + Sync>() {}
    check::<Ticker>();
    check::<MissedTickBehavior>();
}

#[test]
fn blocking_ticks_come_one_period_apart_the_first_after_one_period() {
    let _leaks = common::no_leaks();
    let start = Instant::now();
    let mut ticker = Ticker::new(20 * MS).unwrap();
    let mut ticks = Vec::new();
    for _ in 0..4 {
        ticks.push(ticker.blocking_tick());
        assert!(
            Instant::now() >= *ticks.last().unwrap(),
            "returned before its tick"
        );
    }
    assert!(ticks[0] - start >= 20 * MS);
    for pair in ticks.windows(2) {
        // A receiver held up for a whole period skips the ticks it missed (the default).
        let gap = pair[1] - pair[0];
        assert!(gap >= 20 * MS, "one period at least");
        assert_eq!(
            gap.as_nanos() % (20 * MS).as_nanos(),
            0,
            "scheduled on the grid"
        );
    }
    assert!(start.elapsed() >= 80 * MS);
    assert!(start.elapsed() < 5000 * MS);
}

#[test]
fn async_ticks_without_a_runtime_and_on_tokio() {
    let _leaks = common::no_leaks();
    let start = Instant::now();
    futures::executor::block_on(async {
        let mut ticker = Ticker::new(10 * MS).unwrap();
        for _ in 0..3 {
            let tick = ticker.tick().await;
            assert!(Instant::now() >= tick);
        }
    });
    assert!(start.elapsed() >= 30 * MS);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    rt.block_on(async {
        tokio::spawn(async {
            let mut ticker = Ticker::new(10 * MS).unwrap();
            for _ in 0..3 {
                ticker.tick().await;
            }
        })
        .await
        .unwrap();
    });
    assert!(start.elapsed() >= 30 * MS);
}

#[test]
fn a_slow_receiver_gets_one_tick_at_once_then_the_grid() {
    let _leaks = common::no_leaks();
    let mut ticker = Ticker::new(10 * MS).unwrap();
    let first_due = ticker.next_tick().unwrap();
    std::thread::sleep(45 * MS);
    let before = Instant::now();
    assert_eq!(
        ticker.blocking_tick(),
        first_due,
        "the pending tick, at once"
    );
    assert!(before.elapsed() < 1000 * MS, "at once");
    let next = ticker.next_tick().unwrap();
    assert!(next > before, "missed ticks were dropped");
    assert_eq!(
        (next - first_due).as_nanos() % (10 * MS).as_nanos(),
        0,
        "still on the grid"
    );
}

#[test]
fn burst_catches_up_and_delay_restarts() {
    let _leaks = common::no_leaks();
    let mut ticker = Ticker::new(10 * MS).unwrap();
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    std::thread::sleep(35 * MS);
    let a = ticker.blocking_tick();
    let b = ticker.blocking_tick();
    let c = ticker.blocking_tick();
    assert_eq!((b - a, c - b), (10 * MS, 10 * MS));

    let mut ticker = Ticker::new(10 * MS).unwrap();
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    std::thread::sleep(35 * MS);
    let before = Instant::now();
    ticker.blocking_tick();
    let next = ticker.next_tick().unwrap();
    assert!(next >= before + 10 * MS, "a period after the late tick");
}

#[test]
fn reset_restarts_the_schedule() {
    let _leaks = common::no_leaks();
    let mut ticker = Ticker::new(Duration::from_secs(3600)).unwrap();
    let start = Instant::now();
    ticker.reset(5 * MS).unwrap();
    ticker.blocking_tick();
    assert!(start.elapsed() >= 5 * MS);
    assert!(start.elapsed() < Duration::from_secs(60));
    assert!(ticker.reset(Duration::ZERO).is_err());
    assert_eq!(ticker.period(), 5 * MS, "unchanged after an error");
}

#[test]
fn dropping_a_tick_future_loses_no_tick() {
    let _leaks = common::no_leaks();
    let mut ticker = Ticker::new(50 * MS).unwrap();
    let due = ticker.next_tick().unwrap();
    let ctx = Context::background().with_timeout(MS);
    let result = futures::executor::block_on(ctx.run(ticker.tick()));
    assert_eq!(result, Err(Error::DeadlineExceeded));
    assert_eq!(futures::executor::block_on(ticker.tick()), due);
}

#[test]
fn bad_periods_are_errors() {
    let _leaks = common::no_leaks();
    assert_eq!(
        Ticker::new(Duration::ZERO).unwrap_err().to_string(),
        "ctxkit::rate: ticker period is zero"
    );
    assert!(Ticker::new(Duration::MAX).is_err());
}

#[test]
fn debug_shows_the_schedule() {
    let _leaks = common::no_leaks();
    let ticker = Ticker::new(Duration::from_secs(1)).unwrap();
    let text = format!("{ticker:?}");
    assert!(
        text.starts_with("Ticker { period: 1s, next_tick_in: Some("),
        "{text}"
    );
}
