//! Rate limiting: a token-bucket [`Limiter`] and a [`Ticker`], exact on a fake clock and
//! precise on a real one.
//!
//! Which to use:
//!
//! * [`Ticker`] if a loop should run at most once per period and never in bursts (the chapter's
//!   `time.NewTicker` throttle);
//! * [`Limiter`] if callers may burst up to a number of events and then settle to a rate, from
//!   many threads or tasks at once (Go's `golang.org/x/time/rate`).
//!
//! Neither starts a thread. A limiter computes its tokens from the time of each call (no refill
//! thread, so an idle limiter costs nothing), and a ticker computes its next tick from a fixed
//! schedule `start + k · period`.
//!
//! # Coming from Go
//!
//! | Go (the chapter's 12.9, and `golang.org/x/time/rate`) | ctxkit |
//! |---|---|
//! | `t := time.NewTicker(d)`; `defer t.Stop()` | [`let mut t = Ticker::new(d)?;`](Ticker::new); dropping it stops it |
//! | `<-t.C` | [`t.blocking_tick()`](Ticker::blocking_tick) (a thread), [`t.tick().await`](Ticker::tick) (async) |
//! | `time.Tick(d)` | a [`Ticker`] too: it holds no timer, so there is nothing to leak |
//! | a buffered channel of `burst` tokens, refilled by a goroutine on a ticker | [`Limiter::new(per_second, burst)?`](Limiter::new), then [`blocking_wait(&ctx)`](Limiter::blocking_wait) or [`wait(&ctx).await`](Limiter::wait) per operation |
//! | `rate.NewLimiter(r, b)`: `Allow`, `Reserve`, `Wait(ctx)` | [`Limiter`]: [`allow`](Limiter::allow), [`reserve`](Limiter::reserve), [`wait(&ctx)`](Limiter::wait) (the full table is on [`Limiter`]) |
//!
//! Differences on purpose, from the chapter's channels: nothing runs in the background (the
//! chapter's refill goroutine never ends: `Stop` does not close the ticker's channel); a wait
//! watches a [`Context`](crate::Context), and gives up at once when the context's deadline
//! would pass before its token comes; a ticker lets you choose what a late receiver gets
//! ([`MissedTickBehavior`]; Go's behaviour is the default); and every decision has a form that
//! takes the time as a parameter (below). The differences from `x/time/rate` are listed on
//! [`Limiter`].
//!
//! # Time is a parameter
//!
//! Every decision has an `_at(now)` form that takes the time as an argument
//! ([`Limiter::allow_n_at`], [`Limiter::reserve_n_at`], [`Limiter::tokens_at`],
//! [`Ticker::tick_at`], …). The forms without `_at` call them with [`Instant::now`]. Tests drive
//! the `_at` forms with made-up instants and need no sleeping.
//!
//! # Implementation details
//!
//! The limiter is GCRA, the generic cell rate algorithm (ATM Forum TM 4.1; what `governor`
//! does), which is a token bucket written as one instant: the time `zero` at which the bucket
//! would hold no tokens. At time `now`, with `T` the interval between tokens and `burst · T` the
//! bucket's size in time,
//!
//! ```text
//! tokens(now) = min(burst, (now - zero) / T)        (negative while reservations are queued)
//! take n:     zero' = max(zero, now - burst · T) + n · T,  ready at zero'
//! ```
//!
//! The decisions are pure functions in `gcra.rs` (state, time, configuration, `n` in; new
//! state, time to act out), apart from where the state is kept, so a limiter keyed by client
//! or one whose state lives in a shared store can make exactly the same decisions.
//! `limiter.rs` keeps `zero` in one `AtomicU64` (nanoseconds on the crate's clock), so
//! `allow()` is one load and one compare-exchange. Go's `x/time/rate` (`rate.go`, v0.5) keeps
//! the same model as a float token count under a mutex; the semantics here follow it case by
//! case (`tests/go_rate.rs`), except where the docs of each method say otherwise.
//!
//! A cancel undoes a take: while a canceled reservation is the last take standing, `zero` goes
//! back to where the reservation found it, and a canceled reservation with takes still
//! standing after it waits (in a small list locked only by cancels and setters) until those
//! are canceled too. `gcra.rs` argues why this never admits more than `burst + rate · t`.
//!
//! Precise waiting (`sleep.rs`): a wait due alone sleeps until shortly before its time, then
//! spins (a thread) or yields to the executor (a task) for the rest, because an OS or
//! timer-thread sleep wakes 50–100 µs late. A task sleeps on the `ctxkit-timer` thread
//! directly, with no context node of its own. Waits are scheduled on absolute instants, so a
//! late wake-up never delays the next one. Every wait registers in one process-wide registry
//! (`sleepers.rs`): only a wait with no other due within 1 ms of it spins, at most one at a
//! time; many waits due close together spin for none, and tasks due within about a
//! millisecond of one another share one timer entry per slot of 2^20 ns, which wakes the
//! slot's tasks from the timer thread at its end: 20,000 waits a second cost about 1.6 × the
//! CPU of tokio tasks sleeping to the same instants, and each returns within about a
//! millisecond of its instant (about 600 µs at the median; tokio's timer: about 1 ms).

mod error;
mod gcra;
mod keyed;
mod limiter;
mod sleep;
pub(crate) mod sleepers;
mod ticker;

pub use error::{ConfigError, WaitError};
pub use keyed::KeyedLimiter;
pub use limiter::{Limiter, OwnedReservation, OwnedWait, Reservation};
pub use ticker::{MissedTickBehavior, Ticker};

#[cfg(all(test, loom))]
mod tests;

#[cfg(doc)]
use std::time::Instant;
