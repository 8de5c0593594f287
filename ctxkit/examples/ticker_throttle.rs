//! Section 12.9's throttle: serve at most one request every 200 ms by waiting for a tick
//! before each one.
//!
//! Go's version makes a `time.NewTicker(200 * time.Millisecond)`, `defer`s its `Stop`, and
//! receives from `limiter.C` before each request. Here the ticker is a [`Ticker`]; it stops
//! when dropped, so there is nothing to defer.
//!
//! ```text
//! $ cargo run --example ticker_throttle
//! serving As It Was at 200 ms
//! serving Vampire at 400 ms
//! serving Anti-Hero at 600 ms
//! serving Houdini at 800 ms
//! ```
//!
//! Times are since the start, rounded down to 100 ms (a tick never comes early).

use std::io::Write;
use std::time::{Duration, Instant};

use ctxkit::rate::Ticker;

/// Serves the four requests, one per tick, writing one line per request to `out`.
pub fn run(out: &mut dyn Write) -> Result<(), Box<dyn std::error::Error>> {
    let requests = ["As It Was", "Vampire", "Anti-Hero", "Houdini"];
    let start = Instant::now();
    let mut limiter = Ticker::new(Duration::from_millis(200))?;
    for request in requests {
        limiter.blocking_tick(); // wait for the next tick before proceeding
        let at = start.elapsed().as_millis() / 100 * 100;
        writeln!(out, "serving {request} at {at} ms")?;
    }
    Ok(())
} // the ticker is dropped, and so stopped, here

fn main() {
    if let Err(err) = run(&mut std::io::stdout()) {
        eprintln!("ticker_throttle: {err}");
        std::process::exit(1);
    }
}
