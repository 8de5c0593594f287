//! The chapter's "Think about it" (12.12): how does cancelling with a context differ from Java's
//! thread interruption? Three ways to stop work, side by side.
//!
//! Prints
//!
//! ```text
//! (a) cooperative: a loop that checks its context between tracks
//!   encoded "As It Was"
//!   the caller cancels while "Vampire" is being encoded
//!   encoded "Vampire"
//!   stopped at a safe point: context canceled
//!   cleanup (ordinary code, may still do I/O): kept 2 finished tracks, removed the partial playlist
//! (b) dropping a future: ctx.run(upload) when the caller cancels mid-way
//!   upload "Flaming June": sent the first half
//!   the caller cancels while the upload awaits the second half
//!   destructor: removed the temporary copy of "Flaming June"
//!   ctx.run(upload) returned: context canceled
//!   never printed: the upload's code after that await (second half, commit, its own error handling)
//! (c) Java's Thread.interrupt() in ctxkit terms: a flag only some calls look at
//!   legacy_encode("Anti-Hero") takes no context: ran steps 1, 2, 3 though the context was canceled
//!   the caller sees the cancel only when the call returns: context canceled
//!   a library that drops the error returned normally; the context is still done: context canceled
//! ```
//!
//! What it shows:
//!
//! * **(a) Cooperative cancellation** (Go's `context.Context`, ctxkit's [`Context`]). Cancel
//!   only *asks*. The work looks at its context where it chooses (`ctx.check()?` between
//!   tracks, or a context-aware wait such as `ctx.blocking_sleep`), so it never stops half-way
//!   through a track, and it answers with an ordinary error value, after which ordinary code
//!   cleans up: it can log, write, even make one more call (under a fresh context).
//! * **(b) Dropping a future** (`ctx.run(fut)`, `select!`, a timeout combinator). The future
//!   is stopped from outside at whatever `.await` it is suspended on: the code after that await
//!   never runs, and the only cleanup is its destructors (synchronous: they cannot await, and
//!   return nothing). Every await is a possible stopping point, so async code must leave its
//!   state consistent at each one ("cancel safety"). It is the strongest of the three: it
//!   needs no cooperation from the future at all.
//! * **(c) Java's interruption.** `Thread.interrupt()` sets a flag on a thread. Calls that know
//!   the flag (`Thread.sleep`, `Object.wait`, `BlockingQueue.take`, interruptible channels)
//!   throw `InterruptedException` when they see it; everything else (a CPU loop, classic
//!   `java.io` reads, a third-party library that never looks) runs on, and a `catch` that
//!   ignores the exception clears the flag, so callers above never learn of it. In ctxkit terms
//!   that is a call that takes no context: nothing stops it, and the caller sees the cancel
//!   only when it returns. The differences a context makes: the signature says whether a call
//!   can be canceled (`fn f(ctx: &Context, ...)`); the signal travels with the work to any
//!   thread or task instead of belonging to one thread; children are canceled with their
//!   parent; and a canceled context stays canceled, so an error dropped by one library does
//!   not hide the cancel from the next check.
//!
//! The output does not depend on timing: every cancel is sequenced by a channel handshake.
//!
//! Run it with `cargo run --example cancel_styles`.

use std::io::{self, Write};
use std::sync::{mpsc, Mutex};
use std::thread;
use std::time::Duration;

use ctxkit::{Context, Error};
use futures::executor::block_on;

// ===== (a) cooperative =====

/// Encodes `tracks` in order, checking `ctx` before each one (the safe points). `encode` is the
/// work for one track; it does not look at the context, so a track is never left half-done.
///
/// # Errors
///
/// The context's error at the first safe point after it is done; the tracks finished before
/// it are in `done`.
fn encode_playlist(
    ctx: &Context,
    tracks: &[&'static str],
    done: &mut Vec<&'static str>,
    encode: &mut dyn FnMut(&'static str),
) -> Result<(), Error> {
    for &track in tracks {
        ctx.check()?; // the safe point: between two tracks
        encode(track);
        done.push(track);
    }
    Ok(())
}

fn cooperative(log: &mut Vec<String>) {
    let tracks = ["As It Was", "Vampire", "Anti-Hero"];
    let shared = Mutex::new(Vec::new());
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    // The worker says which track it starts and waits for a go-ahead, which stands for the time
    // the encoding takes; the caller cancels during "Vampire".
    let (started_tx, started_rx) = mpsc::channel::<&str>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::scope(|s| {
        let shared = &shared;
        s.spawn(move || {
            let mut done = Vec::new();
            let result = encode_playlist(&ctx, &tracks, &mut done, &mut |track| {
                let _ = started_tx.send(track);
                let _ = go_rx.recv(); // encoding...
                push(shared, format!("  encoded {track:?}"));
            });
            drop(started_tx);
            if let Err(err) = result {
                push(shared, format!("  stopped at a safe point: {err}"));
                // The cleanup is ordinary code, run by the work itself.
                push(
                    shared,
                    format!(
                        "  cleanup (ordinary code, may still do I/O): kept {} finished tracks, \
                         removed the partial playlist",
                        done.len()
                    ),
                );
            }
        });
        for track in started_rx {
            if track == "Vampire" {
                push(
                    shared,
                    format!("  the caller cancels while {track:?} is being encoded"),
                );
                cancel.cancel();
            }
            let _ = go_tx.send(());
        }
    });
    log.extend(shared.into_inner().unwrap_or_else(|e| e.into_inner()));
}

// ===== (b) dropping a future =====

/// A temporary copy that its destructor removes: the only cleanup a dropped future gets.
struct TempCopy<'a> {
    track: &'static str,
    log: &'a Mutex<Vec<String>>,
}

impl Drop for TempCopy<'_> {
    fn drop(&mut self) {
        push(
            self.log,
            format!(
                "  destructor: removed the temporary copy of {:?}",
                self.track
            ),
        );
    }
}

fn push(log: &Mutex<Vec<String>>, line: String) {
    log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
}

/// An upload that knows nothing of the caller's context: two halves and a commit.
async fn upload(track: &'static str, log: &Mutex<Vec<String>>, halfway: mpsc::Sender<()>) {
    let _temp = TempCopy { track, log };
    push(log, format!("  upload {track:?}: sent the first half"));
    let _ = halfway.send(());
    // The second half takes an hour on this network.
    let _ = Context::background().sleep(Duration::from_secs(3600)).await;
    // Never reached when the future is dropped at the await above:
    push(log, format!("  upload {track:?}: sent the second half"));
    push(log, format!("  upload {track:?}: committed"));
}

fn dropped_future(log: &mut Vec<String>) {
    let shared = Mutex::new(Vec::new());
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    let (halfway_tx, halfway_rx) = mpsc::channel();
    thread::scope(|s| {
        let shared = &shared;
        s.spawn(move || {
            if halfway_rx.recv().is_ok() {
                push(
                    shared,
                    "  the caller cancels while the upload awaits the second half".to_owned(),
                );
                cancel.cancel();
            }
        });
        let result = block_on(ctx.run(upload("Flaming June", shared, halfway_tx)));
        let line = match result {
            Ok(()) => "  ctx.run(upload) returned: the upload finished".to_owned(),
            Err(err) => format!("  ctx.run(upload) returned: {err}"),
        };
        push(shared, line);
    });
    log.extend(shared.into_inner().unwrap_or_else(|e| e.into_inner()));
    if !log
        .iter()
        .any(|l| l.contains("sent the second half") || l.contains("committed"))
    {
        log.push(
            "  never printed: the upload's code after that await (second half, commit, its own \
             error handling)"
                .to_owned(),
        );
    }
}

// ===== (c) Java's interruption, in ctxkit terms =====

/// A library call that takes no context, like a Java library that never looks at the
/// interrupt flag: nothing can stop it from outside.
fn legacy_encode(_track: &str) -> Vec<u32> {
    (1..=3).collect() // three steps, always
}

/// A library that takes the context but drops the error, like Java's
/// `catch (InterruptedException e) {}`.
fn swallowing_library(ctx: &Context) {
    let _ = ctx.blocking_sleep(Duration::from_secs(3600)); // returns at once: ctx is done
}

fn java_like(log: &mut Vec<String>) {
    let ctx = Context::background().with_cancel();
    ctx.cancel(); // Java: thread.interrupt()
    let steps: Vec<String> = legacy_encode("Anti-Hero")
        .iter()
        .map(u32::to_string)
        .collect();
    log.push(format!(
        "  legacy_encode(\"Anti-Hero\") takes no context: ran steps {} though the context was \
         canceled",
        steps.join(", ")
    ));
    if let Err(err) = ctx.check() {
        log.push(format!(
            "  the caller sees the cancel only when the call returns: {err}"
        ));
    }
    swallowing_library(&ctx);
    // Java's catch clears the interrupt flag; nothing un-cancels a context.
    if let Err(err) = ctx.check() {
        log.push(format!(
            "  a library that drops the error returned normally; the context is still done: {err}"
        ));
    }
}

/// The program.
///
/// # Errors
///
/// Only errors writing to `out`.
pub fn run(out: &mut dyn Write) -> io::Result<()> {
    let mut log = Vec::new();
    log.push("(a) cooperative: a loop that checks its context between tracks".to_owned());
    cooperative(&mut log);
    log.push("(b) dropping a future: ctx.run(upload) when the caller cancels mid-way".to_owned());
    dropped_future(&mut log);
    log.push(
        "(c) Java's Thread.interrupt() in ctxkit terms: a flag only some calls look at".to_owned(),
    );
    java_like(&mut log);
    for line in log {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn main() -> io::Result<()> {
    run(&mut io::stdout().lock())
}
