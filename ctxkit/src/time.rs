//! Deadlines as one `u64`: nanoseconds since a process-wide base instant.
//!
//! A node keeps its deadline in eight bytes instead of an `Option<Instant>`'s sixteen, and
//! comparing "now" with it is one integer compare. The base is taken once, a century before the
//! first use, so every instant a program can meet encodes exactly and `deadline()` gives back
//! the very `Instant` it was given.
//!
//! # Invariants
//!
//! 1. [`NO_DEADLINE`] (zero) means "none"; every real deadline encodes as at least 1.
//! 2. An instant more than about 480 years after the base does not fit; [`encode`] reports it
//!    as `None`, which callers treat as "no deadline" (such a deadline can never be reached).
//! 3. The encoding is monotonic: `a <= b` implies `encode(a) <= encode(b)`.

use std::time::{Duration, Instant};

use crate::sync;

/// The encoded "no deadline".
pub(crate) const NO_DEADLINE: u64 = 0;

sync::lazy_static! {
    /// The base every instant is counted from: taken on first use.
    static ref BASE: Instant = {
        let now = Instant::now();
        // A century back where the platform's clock can go there, less where it cannot.
        [100 * 365 * 86_400, 86_400, 1]
            .iter()
            .find_map(|&secs| now.checked_sub(Duration::from_secs(secs)))
            .unwrap_or(now)
    };
}

#[inline]
fn base() -> Instant {
    *BASE
}

/// Whole seconds after the base from which an instant no longer encodes (invariant 2): below
/// it, `seconds * 1e9 + subsec_nanos` fits in a `u64` with room to spare.
const MAX_SECONDS: u64 = u64::MAX / 1_000_000_000;

/// Encodes `instant`; `None` when it is too far in the future to matter (invariant 2).
///
/// On every clock read of a limiter and every deadline made, so it stays in `u64` arithmetic
/// (no `u128` product as `Duration::as_nanos` would make).
#[inline]
pub(crate) fn encode(instant: Instant) -> Option<u64> {
    let since = instant.saturating_duration_since(base());
    let seconds = since.as_secs();
    if seconds >= MAX_SECONDS {
        return None;
    }
    // Cannot overflow: `seconds < MAX_SECONDS`. Invariant 1: an instant at or before the base
    // is "long past", not "none".
    Some((seconds * 1_000_000_000 + u64::from(since.subsec_nanos())).max(1))
}

/// Decodes a value made by [`encode`].
pub(crate) fn decode(ticks: u64) -> Instant {
    debug_assert_ne!(ticks, NO_DEADLINE);
    base() + Duration::from_nanos(ticks)
}

/// The current time, encoded.
#[inline]
pub(crate) fn now() -> u64 {
    encode(Instant::now()).unwrap_or(u64::MAX)
}

/// How long from `now` until `deadline`, both encoded; zero once it has passed.
pub(crate) fn until(deadline: u64, now: u64) -> Duration {
    Duration::from_nanos(deadline.saturating_sub(now))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn round_trips_exactly() {
        let now = Instant::now();
        for offset in [0u64, 1, 999, 1_000_000_007, 3_600_000_000_000] {
            let instant = now + Duration::from_nanos(offset);
            assert_eq!(decode(encode(instant).unwrap()), instant);
        }
    }

    #[test]
    fn is_monotonic_and_never_zero() {
        let a = Instant::now();
        let b = a + Duration::from_millis(1);
        assert!(encode(a).unwrap() < encode(b).unwrap());
        assert!(encode(a).unwrap() >= 1);
    }

    #[test]
    fn far_instants_do_not_encode() {
        let now = Instant::now();
        let far = now.checked_add(Duration::from_secs(600 * 365 * 86_400));
        if let Some(far) = far {
            assert_eq!(encode(far), None);
        }
        assert!(encode(now + Duration::from_secs(3600)).is_some());
    }

    #[test]
    fn the_last_encodable_second_round_trips_and_the_next_does_not_encode() {
        let last = base() + Duration::new(MAX_SECONDS - 1, 999_999_999);
        assert_eq!(decode(encode(last).unwrap()), last);
        assert_eq!(encode(base() + Duration::from_secs(MAX_SECONDS)), None);
        assert_eq!(
            encode(base()),
            Some(1),
            "the base itself is long past, not none"
        );
    }

    #[test]
    fn until_saturates() {
        assert_eq!(until(10, 20), Duration::ZERO);
        assert_eq!(until(20, 10), Duration::from_nanos(10));
    }
}
