//! `ticker.accuracy` on the peers: tokio's `interval` (in a task) and crossbeam's `tick` (on a
//! thread), with the same receiver-side method as ctxkit's tickers.

use std::time::{Duration, Instant};

use super::peer;
use crate::harness::{progress, runtime, Cfg};
use crate::rate::{emit_ticker, ticker_figures};

/// Runs `ticker.accuracy` on the peers.
pub(crate) fn run(cfg: &Cfg) {
    if !cfg.want(&["ticker.accuracy"]) {
        return;
    }
    let runs = cfg.pick(7, 3);
    let ticks = cfg.pick(1000usize, 200);
    let period = Duration::from_millis(1);

    let implementation = peer!("tokio", "PEER_VERSION_TOKIO");
    progress(&format!("ticker.accuracy ({implementation})"));
    let rt = runtime();
    let figures: Vec<_> = (0..runs)
        .map(|_| {
            let stamps = rt
                .block_on(rt.spawn(async move {
                    let mut stamps = Vec::with_capacity(ticks + 1);
                    let mut interval = tokio::time::interval(period);
                    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                    interval.tick().await; // the first tick completes at once
                    stamps.push(Instant::now());
                    for _ in 0..ticks {
                        interval.tick().await;
                        stamps.push(Instant::now());
                    }
                    stamps
                }))
                .expect("the bench task panicked");
            ticker_figures(&stamps)
        })
        .collect();
    crate::rate::emit_ticker(
        implementation,
        &figures,
        ticks,
        "tokio::time::interval(1 ms) with MissedTickBehavior::Skip, tick().await in a task on a 2-worker multi-thread runtime (tokio's timer has 1 ms resolution); the first, immediate tick is not counted",
    );

    let implementation = peer!("crossbeam-channel", "PEER_VERSION_CROSSBEAM_CHANNEL");
    progress(&format!("ticker.accuracy ({implementation})"));
    let figures: Vec<_> = (0..runs)
        .map(|_| {
            let mut stamps = Vec::with_capacity(ticks + 1);
            let ticker = crossbeam_channel::tick(period);
            stamps.push(Instant::now());
            for _ in 0..ticks {
                ticker.recv().expect("a tick channel never closes");
                stamps.push(Instant::now());
            }
            ticker_figures(&stamps)
        })
        .collect();
    emit_ticker(
        &format!("{implementation}/tick"),
        &figures,
        ticks,
        "crossbeam_channel::tick(1 ms), recv() on a plain thread (the channel's own timed wait)",
    );
}
