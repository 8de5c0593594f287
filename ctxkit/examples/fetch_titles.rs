//! Section 12.5 of the chapter: fetch three song titles concurrently with a group, print them
//! in order, or the first error (which cancels the other fetches).
//!
//! ```text
//! cargo run --example fetch_titles
//! Gouryella
//! Flaming June
//! Saltwater
//! ```
//!
//! Go's version keeps a `results` slice that each goroutine writes its own index of; here the
//! group returns the results in spawn order, and a failing fetch cancels the others through
//! the group's context.
//!
//! To see the error path, make fetch 1 fail (fetch 2, still sleeping, is canceled):
//!
//! ```text
//! cargo run --example fetch_titles -- fail 1
//! error: fetch 1: service unavailable
//! ```

use std::error::Error as StdError;
use std::io::Write;
use std::time::Duration;

use ctxkit::{Context, Group};

type BoxError = Box<dyn StdError + Send + Sync>;

const TITLES: [&str; 3] = ["Gouryella", "Flaming June", "Saltwater"];

/// Simulates fetching a song title: takes `(id + 1) * unit`, unless the context is done first.
/// The fetch numbered `fail` fails instead of returning its title.
async fn fetch_title(
    ctx: &Context,
    id: usize,
    unit: Duration,
    fail: Option<usize>,
) -> Result<String, BoxError> {
    ctx.sleep(unit * (id as u32 + 1)).await?; // `context canceled` if a sibling failed first
    if fail == Some(id) {
        return Err(format!("fetch {id}: service unavailable").into());
    }
    Ok(TITLES[id % TITLES.len()].to_string())
}

/// Fetches the three titles concurrently and writes them to `out` in order, or `error: ...`.
/// `unit` is the chapter's 100 ms; `fail` makes one fetch fail.
pub fn run(out: &mut dyn Write, unit: Duration, fail: Option<usize>) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    runtime.block_on(async {
        let (mut g, _ctx) = Group::with_context(&Context::background());
        for id in 0..3 {
            g.spawn(move |ctx| async move { fetch_title(&ctx, id, unit, fail).await })
                .await;
        }
        match g.wait().await {
            Ok(titles) => {
                for title in titles {
                    writeln!(out, "{title}")?;
                }
            }
            Err(err) => writeln!(out, "error: {err}")?,
        }
        Ok(())
    })
}

fn main() -> std::io::Result<()> {
    // `cargo run --example fetch_titles -- fail 1` shows the error path.
    let fail = std::env::args()
        .skip_while(|a| a != "fail")
        .nth(1)
        .and_then(|n| n.parse().ok());
    run(
        &mut std::io::stdout().lock(),
        Duration::from_millis(100),
        fail,
    )
}
