//! The chapter's "write a program" exercise: `fan_out_fetch(ctx, songs)` fetches every song
//! title concurrently with a group; each fetch takes a random 50 to 150 ms, and the whole
//! operation runs under a 300 ms deadline. It prints all results in order, or the cancellation
//! error.
//!
//! ```text
//! cargo run --example fan_out_fetch -- 42          # seed 42: all results, in order
//! cargo run --example fan_out_fetch -- 42 40       # seed 42, a 40 ms deadline: the error
//! ```
//!
//! The randomness is a seeded xorshift generator, so a run is reproducible and a test can drive
//! both outcomes (see `tests/examples_group.rs`).

use std::io::Write;
use std::time::Duration;

use ctxkit::{Context, Error, Group};

/// xorshift64 (Marsaglia 2003): enough randomness for simulated latencies, no dependency.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (0 is replaced: xorshift needs a nonzero state).
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A duration in `[min, max]`, to the millisecond.
    pub fn between(&mut self, min: Duration, max: Duration) -> Duration {
        let (lo, hi) = (min.as_millis() as u64, max.as_millis() as u64);
        Duration::from_millis(lo + self.next_u64() % (hi - lo + 1))
    }
}

/// The exercise's parameters.
#[derive(Debug, Clone)]
pub struct Config {
    /// Seeds the fetch latencies.
    pub seed: u64,
    /// Shortest simulated fetch (the exercise: 50 ms).
    pub min: Duration,
    /// Longest simulated fetch (the exercise: 150 ms).
    pub max: Duration,
    /// The deadline of the whole operation (the exercise: 300 ms).
    pub deadline: Duration,
}

impl Config {
    /// The exercise's numbers, with `seed`.
    pub fn exercise(seed: u64) -> Self {
        Config {
            seed,
            min: Duration::from_millis(50),
            max: Duration::from_millis(150),
            deadline: Duration::from_millis(300),
        }
    }
}

/// The songs the exercise fetches.
pub const SONGS: [&str; 5] = [
    "Gouryella",
    "Flaming June",
    "Saltwater",
    "Teardrop",
    "Windowlicker",
];

/// Fetches every song's title concurrently; each fetch sleeps its latency unless `ctx` is done
/// first. All titles in order, or the first error (the context's, when its deadline passes).
pub async fn fan_out_fetch(
    ctx: &Context,
    songs: &[&str],
    latencies: &[Duration],
) -> Result<Vec<String>, Error> {
    let (mut g, _group_ctx) = Group::with_context(ctx);
    for (song, &latency) in songs.iter().zip(latencies) {
        let song = song.to_string();
        g.spawn(move |ctx| async move {
            ctx.sleep(latency).await?; // the simulated fetch, cut short by the deadline
            Ok(format!("{song} ({} ms)", latency.as_millis()))
        })
        .await;
    }
    g.wait().await
}

/// Runs the exercise with `config`, writing the results or the error to `out`.
pub fn run(out: &mut dyn Write, config: &Config) -> std::io::Result<()> {
    let mut rng = XorShift::new(config.seed);
    let latencies: Vec<Duration> = SONGS
        .iter()
        .map(|_| rng.between(config.min, config.max))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    runtime.block_on(async {
        let ctx = Context::background().with_timeout(config.deadline);
        match fan_out_fetch(&ctx, &SONGS, &latencies).await {
            Ok(titles) => {
                for (i, title) in titles.iter().enumerate() {
                    writeln!(out, "{}. {title}", i + 1)?;
                }
            }
            Err(err) => writeln!(out, "error: {err}")?,
        }
        Ok(())
    })
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let seed = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut config = Config::exercise(seed);
    if let Some(ms) = args.next().and_then(|s| s.parse().ok()) {
        config.deadline = Duration::from_millis(ms);
    }
    eprintln!("seed {seed}, deadline {} ms", config.deadline.as_millis());
    run(&mut std::io::stdout().lock(), &config)
}
