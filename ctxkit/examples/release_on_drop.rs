//! Two habits of the chapter that Go asks you to remember and ctxkit does on drop, measured on
//! the heap:
//!
//! 1. **12.2's trap, "call cancel right away"**: "do not store the cancel function and call it
//!    lazily ... the runtime cannot release resources associated with the context until the
//!    parent is cancelled". A server with a long-lived root context serves 10,000 requests,
//!    each with a 30 s timeout derived from the root. Written as the trap (the cancel handles
//!    kept in a list, to be called later, which [`CancelContext::into_parts`] lets you write on
//!    purpose), the root holds every request's context until the handles go; written as
//!    ctxkit's habit (`let ctx = server.with_timeout(..)`, one value, dropped at the end of the
//!    request), nothing is held. Go's `ctx, _ := context.WithTimeout(..)` (cancel thrown away)
//!    does not compile here (see [`CancelContext`]). Once the kept handles are dropped, what
//!    stays is the root's room for its peak of linked children (a slot each, at most 24 bytes),
//!    which later requests reuse without allocating, as Go's `children` map keeps its buckets;
//!    it goes when the root is canceled or dropped.
//! 2. **12.9's `time.Tick` and its Tip**: before Go 1.23 every `time.Tick` leaked its ticker
//!    (no `Stop`, never collected); since 1.23 the collector reclaims it, and `NewTicker` plus
//!    `defer t.Stop()` is still the habit that releases the timer at once. A ctxkit [`Ticker`]
//!    is plain data (its schedule): no timer, no thread, no heap. Making 100,000 of them in a
//!    loop, the shape that leaked in old Go, allocates nothing, and dropping one is all the
//!    stopping there is.
//!
//! The figures come from a counting allocator wrapped around the system's (this example's
//! `#[global_allocator]`): "held" is the heap still in use after a phase, "allocated" what a
//! phase asked for in total.
//!
//! ```text
//! $ cargo run --example release_on_drop
//! 12.2 trap: call cancel right away
//! the trap, cancel handles kept to call later: 10000 requests served, held: 1065 KiB (about 109 B a request)
//! after the kept handles are dropped: held: 192 KiB (the root's room for 10000 children, about 19 B each, reused)
//! ctxkit's habit, one value dropped with the request: 10000 requests served, held: 0 KiB
//! after the server context is dropped: held: 0 KiB
//! 12.9 tip: time.Tick
//! 100000 tickers made and dropped in a loop: heap allocated: 0 B (a Ticker is 40 bytes of plain data)
//! ```
//!
//! The bytes a request holds depend on the platform and the version; the test checks that the
//! trap holds some for every request, that no more than the root's room is left once the
//! handles are dropped, and that the habit holds nothing.
//!
//! [`CancelContext::into_parts`]: ctxkit::CancelContext::into_parts
//! [`CancelContext`]: ctxkit::CancelContext
//! [`Ticker`]: ctxkit::rate::Ticker

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ctxkit::rate::Ticker;
use ctxkit::{CancelHandle, Context};

/// The system allocator, counting the bytes in use and the bytes ever asked for.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

#[allow(
    unsafe_code,
    reason = "a GlobalAlloc impl is unsafe by definition; this example's allocator only"
)]
// SAFETY: every call is forwarded to `System` unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above, that is from `System`, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static HEAP: Counting = Counting;

/// Requests each server phase serves.
const REQUESTS: usize = 10_000;
/// Tickers the `time.Tick` phase makes.
const TICKERS: usize = 100_000;
/// Each request's timeout: long enough that no deadline passes during the run, so whatever is
/// released is released by cancel, not by expiry.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The request handler: uses its context as any handler would.
fn handle(ctx: &Context, request: usize) -> usize {
    if ctx.is_done() {
        0
    } else {
        request % 7
    }
}

/// Heap bytes in use now.
fn in_use() -> usize {
    IN_USE.load(Ordering::Relaxed)
}

/// What a phase left in use, from `before`; growth only (a phase may also free a little that
/// an earlier one left).
fn held_since(before: usize) -> usize {
    in_use().saturating_sub(before)
}

/// Writes both parts to `out`.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    let server = Context::background().with_cancel(); // lives as long as the server
                                                      // Warm-up: the first context and the first output line allocate what stays for the
                                                      // life of the process; count from after them.
    let _ = handle(&server.with_timeout(REQUEST_TIMEOUT), 0);
    writeln!(out, "12.2 trap: call cancel right away")?;

    // The trap: the canceling power split off and kept for later, as Go's stored `cancel`.
    let before = in_use();
    let server_before = before;
    let mut kept: Vec<CancelHandle> = Vec::with_capacity(REQUESTS);
    let list_bytes = REQUESTS * std::mem::size_of::<CancelHandle>();
    let mut served = 0;
    for request in 0..REQUESTS {
        let (ctx, cancel) = server.with_timeout(REQUEST_TIMEOUT).into_parts();
        served += usize::from(handle(&ctx, request) < 7);
        kept.push(cancel); // "call it later"
    }
    let held = held_since(before).saturating_sub(list_bytes); // the list itself is not the context's
    writeln!(
        out,
        "the trap, cancel handles kept to call later: {served} requests served, held: {} KiB (about {} B a request)",
        held / 1024,
        held / REQUESTS
    )?;
    drop(kept); // the lazy cancels, at last
    let room = held_since(before);
    writeln!(
        out,
        "after the kept handles are dropped: held: {} KiB (the root's room for {REQUESTS} children, about {} B each, reused)",
        room / 1024,
        room / REQUESTS
    )?;

    // The habit: one value, canceled when the request's scope ends. Counted from after the
    // trap, so the root's room, which these requests reuse, is not counted again.
    let before = in_use();
    let mut served = 0;
    for request in 0..REQUESTS {
        let ctx = server.with_timeout(REQUEST_TIMEOUT);
        served += usize::from(handle(&ctx, request) < 7);
    } // each `ctx` is dropped, and so canceled and unlinked from `server`, here
    writeln!(
        out,
        "ctxkit's habit, one value dropped with the request: {served} requests served, held: {} KiB",
        held_since(before) / 1024
    )?;
    drop(server); // canceled: its room for children goes with it
    writeln!(
        out,
        "after the server context is dropped: held: {} KiB",
        held_since(server_before) / 1024
    )?;

    writeln!(out, "12.9 tip: time.Tick")?;
    let allocated_before = ALLOCATED.load(Ordering::Relaxed);
    let mut due = 0;
    for _ in 0..TICKERS {
        // Go before 1.23: `case <-time.Tick(time.Second):` in a loop leaked one ticker a turn.
        let ticker = Ticker::new(Duration::from_secs(1)).expect("a non-zero period");
        due += usize::from(ticker.next_tick().is_some());
    } // each ticker is dropped here: there is nothing else to stop
    let allocated = ALLOCATED.load(Ordering::Relaxed) - allocated_before;
    writeln!(
        out,
        "{due} tickers made and dropped in a loop: heap allocated: {allocated} B (a Ticker is {} bytes of plain data)",
        std::mem::size_of::<Ticker>()
    )?;
    Ok(())
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
