//! Section 12.4 of the chapter: the context as the first parameter, the trap of a context stored
//! in a struct, and the one exception the chapter allows (a long-lived object).
//!
//! Prints
//!
//! ```text
//! == the context first: fn search_songs(ctx: &Context, query: &str) ==
//! search_songs(&ctx, "June"): ["Flaming June"]
//! search_songs(&canceled, "June"): context canceled
//! == the trap: a client that stored the context of the request that built it ==
//! request 1 (live): "Flaming June": ok
//! request 2 (its caller gave up): "Saltwater": ok  <- WRONG: the request is done (context canceled), yet the call ran
//! request 1 ends: its context is canceled
//! request 3 (live): "Windowlicker": context canceled  <- WRONG: the request is live, yet the call was canceled
//! == the fix: each call takes its context first ==
//! request 1 (live): "Flaming June": ok
//! request 2 (its caller gave up): "Saltwater": context canceled (caller gave up)
//! request 1 ends: its context is canceled
//! request 3 (live): "Windowlicker": ok
//! == the exception: a long-lived server owns a context for its own lifetime ==
//! server started: its context lives until shutdown; its cache refresher runs under it
//! request 1 (live): "Flaming June": ok
//! request 2 (its caller gave up): "Saltwater": context canceled (caller gave up)
//! server shutting down: its context is canceled
//! cache refresher stopped: server shut down
//! request 3 (after shutdown): "Windowlicker": context canceled (server shut down)
//! ```
//!
//! What it shows:
//!
//! * **Context first.** Go's convention `func SearchSongs(ctx context.Context, query string)` is
//!   `fn search_songs(ctx: &Context, query: &str)` here: by reference, first, named `ctx`. The
//!   signature tells the reader the call can be canceled, timed out and carries request values.
//! * **The trap.** `StaleClient` keeps the context it was built with and uses it for every
//!   later call. Request 2's caller gives up, but the call runs anyway (it watches request 1's
//!   context); request 1 ends, and request 3, perfectly live, fails with `context canceled`
//!   that belongs to somebody else. Each `WRONG` line is computed: the outcome of the call
//!   disagrees with the context of the request that made it.
//!
//!   Rust catches half of this trap: a struct that *borrows* the context
//!   (`struct Client<'a> { ctx: &'a Context }`) cannot outlive the request, so the compiler
//!   refuses the later call. But a `Context` is `Clone + 'static` (it must be, to cross threads
//!   and tasks), so a struct can keep a clone, and then the trap is exactly Go's.
//! * **The fix.** `Client` keeps only what outlives a request (here, nothing) and takes the
//!   context first in every method: each call answers to its own request.
//! * **The exception.** A long-lived object, like Go's `http.Server`, may own a context for its
//!   *own* lifetime: `Server` holds one, runs its background work (a cache refresher) under it,
//!   derives each request's context from it (Go's `BaseContext`) and cancels it on shutdown.
//!   Its methods still take the per-call context first; the stored one is never used for a
//!   request's call.
//!
//! Everything is deterministic: no call depends on timing (a canceled context fails at once; a
//! live one waits 1 ms of simulated network).
//!
//! Run it with `cargo run --example ctx_first`.

use std::io::{self, Write};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ctxkit::{CancelContext, Context, Error};

const CATALOG: [&str; 4] = ["Flaming June", "Saltwater", "Windowlicker", "Gouryella"];

/// Go's `func SearchSongs(ctx context.Context, query string) ([]Song, error)`: the context
/// first, by reference.
///
/// # Errors
///
/// The context's error if it is done before the search ends.
pub fn search_songs(ctx: &Context, query: &str) -> Result<Vec<&'static str>, Error> {
    let mut found = Vec::new();
    for song in CATALOG {
        ctx.check()?; // every step of the search sees the caller's cancel
        if song.contains(query) {
            found.push(song);
        }
    }
    Ok(found)
}

/// A simulated lyrics service: 1 ms of network, unless the context is done first.
fn lyrics_api(ctx: &Context, song: &str) -> Result<String, Error> {
    ctx.blocking_sleep(Duration::from_millis(1))?;
    Ok(format!("lyrics of {song:?}"))
}

/// THE TRAP: a client that keeps the context it was built with (Go's
/// `type Client struct { ctx context.Context }`), and uses it for every later call.
#[derive(Debug)]
pub struct StaleClient {
    ctx: Context,
}

impl StaleClient {
    /// Builds the client inside a request, keeping that request's context.
    pub fn new(ctx: &Context) -> StaleClient {
        StaleClient { ctx: ctx.clone() }
    }

    /// Fetches lyrics under the *stored* context, whichever request is calling.
    ///
    /// # Errors
    ///
    /// The stored context's error, if it is done.
    pub fn lyrics(&self, song: &str) -> Result<String, Error> {
        lyrics_api(&self.ctx, song)
    }
}

/// The fix: the client keeps what outlives a request (a connection pool, a base URL; here
/// nothing), and every method takes the caller's context first.
#[derive(Debug)]
pub struct Client;

impl Client {
    /// Fetches lyrics under the caller's context.
    ///
    /// # Errors
    ///
    /// The caller's context's error, if it is done.
    pub fn lyrics(&self, ctx: &Context, song: &str) -> Result<String, Error> {
        lyrics_api(ctx, song)
    }
}

/// The exception: a long-lived object that owns a context for its own lifetime.
#[derive(Debug)]
pub struct Server {
    /// The server's lifetime: canceled (with a reason) on shutdown, or when the server drops.
    life: CancelContext,
    /// The background work the server runs under `life`; returns why it stopped.
    refresher: Option<JoinHandle<String>>,
}

impl Server {
    /// Starts the server under `parent` (Go's `BaseContext`), with a cache refresher that runs
    /// until the server's context is done.
    pub fn start(parent: &Context) -> Server {
        let life = parent.with_cancel_cause();
        let refresher = {
            let ctx = life.clone(); // a plain Context: sees the shutdown, cannot cause it
            thread::spawn(move || loop {
                // Refresh every 10 ms; the wait ends at once when the server shuts down.
                if ctx.blocking_sleep(Duration::from_millis(10)).is_err() {
                    return ctx
                        .cause()
                        .map_or_else(String::new, |cause| cause.to_string());
                }
            })
        };
        Server {
            life,
            refresher: Some(refresher),
        }
    }

    /// A new request's context: a child of the server's, so a shutdown reaches every request.
    pub fn request(&self) -> CancelContext {
        self.life.with_cancel_cause()
    }

    /// Serves one call under the caller's context, first as always; the server's own context is
    /// not used here.
    ///
    /// # Errors
    ///
    /// The caller's context's error, if it is done.
    pub fn lyrics(&self, ctx: &Context, song: &str) -> Result<String, Error> {
        lyrics_api(ctx, song)
    }

    /// Cancels the server's context and waits for its background work; returns why the
    /// refresher stopped (the cause of the cancel).
    pub fn shutdown(&mut self) -> Option<String> {
        self.life.cancel_with("server shut down");
        self.refresher.take().and_then(|r| r.join().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Prints a call's outcome, and `WRONG` when it disagrees with the calling request's context.
fn report(
    out: &mut dyn Write,
    request: &str,
    ctx: &Context,
    song: &str,
    result: Result<String, Error>,
) -> io::Result<()> {
    let outcome = match &result {
        Ok(_) => "ok".to_owned(),
        Err(err) => match ctx.cause().filter(|c| c.reason().is_some()) {
            Some(cause) => format!("{err} ({cause})"),
            None => err.to_string(),
        },
    };
    let verdict = match (&result, ctx.err()) {
        (Ok(_), Some(err)) => format!("  <- WRONG: the request is done ({err}), yet the call ran"),
        (Err(_), None) => "  <- WRONG: the request is live, yet the call was canceled".to_owned(),
        _ => String::new(),
    };
    writeln!(out, "{request}: {song:?}: {outcome}{verdict}")
}

/// A request whose caller has already given up.
fn given_up(ctx: CancelContext) -> CancelContext {
    ctx.cancel_with("caller gave up");
    ctx
}

/// The program.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    let root = Context::background();

    writeln!(
        out,
        "== the context first: fn search_songs(ctx: &Context, query: &str) =="
    )?;
    let ctx = root.with_cancel();
    match search_songs(&ctx, "June") {
        Ok(found) => writeln!(out, "search_songs(&ctx, \"June\"): {found:?}")?,
        Err(err) => writeln!(out, "search_songs(&ctx, \"June\"): {err}")?,
    }
    let canceled = root.with_cancel();
    canceled.cancel();
    match search_songs(&canceled, "June") {
        Ok(found) => writeln!(out, "search_songs(&canceled, \"June\"): {found:?}")?,
        Err(err) => writeln!(out, "search_songs(&canceled, \"June\"): {err}")?,
    }

    writeln!(
        out,
        "== the trap: a client that stored the context of the request that built it =="
    )?;
    {
        // Request 1 (a long one: a streaming session, say) builds the client, which is then
        // kept and shared, as a cached client would be.
        let request1 = root.with_cancel_cause();
        let client = StaleClient::new(&request1);
        let r = client.lyrics("Flaming June");
        report(out, "request 1 (live)", &request1, "Flaming June", r)?;

        // Request 2 comes while request 1 still runs; its caller has already given up.
        let request2 = given_up(root.with_cancel_cause());
        let r = client.lyrics("Saltwater");
        report(
            out,
            "request 2 (its caller gave up)",
            &request2,
            "Saltwater",
            r,
        )?;

        drop(request1); // Go's `defer cancel()` at the end of request 1's handler
        writeln!(out, "request 1 ends: its context is canceled")?;

        // Request 3 is live, but the client still answers to request 1.
        let request3 = root.with_cancel_cause();
        let r = client.lyrics("Windowlicker");
        report(out, "request 3 (live)", &request3, "Windowlicker", r)?;
    }

    writeln!(out, "== the fix: each call takes its context first ==")?;
    {
        let client = Client;
        let request1 = root.with_cancel_cause();
        let r = client.lyrics(&request1, "Flaming June");
        report(out, "request 1 (live)", &request1, "Flaming June", r)?;

        let request2 = given_up(root.with_cancel_cause());
        let r = client.lyrics(&request2, "Saltwater");
        report(
            out,
            "request 2 (its caller gave up)",
            &request2,
            "Saltwater",
            r,
        )?;

        drop(request1);
        writeln!(out, "request 1 ends: its context is canceled")?;

        let request3 = root.with_cancel_cause();
        let r = client.lyrics(&request3, "Windowlicker");
        report(out, "request 3 (live)", &request3, "Windowlicker", r)?;
    }

    writeln!(
        out,
        "== the exception: a long-lived server owns a context for its own lifetime =="
    )?;
    {
        let mut server = Server::start(&root);
        writeln!(
            out,
            "server started: its context lives until shutdown; its cache refresher runs under it"
        )?;
        let request1 = server.request();
        let r = server.lyrics(&request1, "Flaming June");
        report(out, "request 1 (live)", &request1, "Flaming June", r)?;
        drop(request1);

        let request2 = given_up(server.request());
        let r = server.lyrics(&request2, "Saltwater");
        report(
            out,
            "request 2 (its caller gave up)",
            &request2,
            "Saltwater",
            r,
        )?;

        writeln!(out, "server shutting down: its context is canceled")?;
        let why = server.shutdown().unwrap_or_default();
        writeln!(out, "cache refresher stopped: {why}")?;

        let request3 = server.request();
        let r = server.lyrics(&request3, "Windowlicker");
        report(
            out,
            "request 3 (after shutdown)",
            &request3,
            "Windowlicker",
            r,
        )?;
    }
    Ok(())
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
