//! The Lua script (`gcra.lua`) and its reply, and the arithmetic limits that keep every number
//! the script handles an exact integer.
//!
//! # Invariants
//!
//! * One key per call (`KEYS[1]`), so the script runs on the node of that key's slot in a
//!   Redis Cluster, and never touches another key.
//! * Every argument is an integer of at most [`MAX_SPAN_US`] (2^50 µs, about 35 years), and
//!   Redis's clock is about 2^50.6 µs past the Unix epoch today, so every sum the script forms
//!   (`now + tau`, `zero + n · interval`, `now + max_wait`) stays below 2^53, where Lua's
//!   doubles hold integers exactly: the script never rounds an instant.
//! * The reply is eight integers (see `gcra.lua`); [`Reply::parse`] checks their ranges, so a
//!   reply from anything else (another script under the same SHA, a proxy) is an error, not
//!   a wrong decision.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The script, hashed once per process; `redis::Script` sends `EVALSHA` and, on `NOSCRIPT`
/// (a restarted server, a `SCRIPT FLUSH`, a failover to a replica that never saw it), loads it
/// with `SCRIPT LOAD` and sends the `EVALSHA` again.
pub(crate) static GCRA: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("gcra.lua")));

/// The longest span the script is given: an interval, a bucket's size as time
/// (`burst · interval`) and a wait's `max_wait` are each at most this (2^50 µs, about 35.7
/// years), so no sum the script forms reaches 2^53 (see the module docs).
pub(crate) const MAX_SPAN_US: u64 = 1 << 50;

/// What the script is asked to do (`ARGV[1]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `allow_n`: all `n` tokens, or none.
    AllOrNothing = 0,
    /// `allow_at_most`: what is there, up to `n`.
    AtMost = 1,
    /// `wait_n`: all `n` tokens if they come within `max_wait`, as a reservation.
    Reserve = 2,
    /// A canceled wait: the reservation goes back if nothing was taken after it.
    GiveBack = 3,
    /// `allow_n` with leases: all `n` tokens or none, and with them up to `batch` more.
    Lease = 4,
}

/// The script's reply, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) granted: u32,
    pub(crate) remaining: u32,
    pub(crate) retry_after_us: Option<u64>,
    pub(crate) reset_after_us: u64,
    pub(crate) delay_us: u64,
    pub(crate) prev: u64,
    pub(crate) end: u64,
    pub(crate) now_us: u64,
}

impl Reply {
    /// Checks the eight integers of a reply; `None` if any is out of its range (`granted`
    /// above `max_granted`, `remaining` above `burst`, a negative count).
    pub(crate) fn parse(raw: [i64; 8], max_granted: u32, burst: u32) -> Option<Reply> {
        let [granted, remaining, retry, reset, delay, prev, end, now] = raw;
        let granted = u32::try_from(granted).ok().filter(|&g| g <= max_granted)?;
        let remaining = u32::try_from(remaining).ok().filter(|&r| r <= burst)?;
        let retry_after_us = match retry {
            -1 => None,
            r => Some(u64::try_from(r).ok()?),
        };
        Some(Reply {
            granted,
            remaining,
            retry_after_us,
            reset_after_us: u64::try_from(reset).ok()?,
            delay_us: u64::try_from(delay).ok()?,
            prev: u64::try_from(prev).ok()?,
            end: u64::try_from(end).ok()?,
            now_us: u64::try_from(now).ok()?,
        })
    }

    /// Redis's clock when the script ran.
    pub(crate) fn redis_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.now_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_checks_ranges() {
        let ok = [2, 3, -1, 500, 0, 10, 20, 1_700_000_000_000_000];
        let reply = Reply::parse(ok, 2, 5).unwrap();
        assert_eq!(reply.granted, 2);
        assert_eq!(reply.retry_after_us, None);
        assert_eq!(
            reply.redis_time(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        let mut more_than_asked = ok;
        more_than_asked[0] = 3;
        assert_eq!(Reply::parse(more_than_asked, 2, 5), None);
        let mut above_burst = ok;
        above_burst[1] = 6;
        assert_eq!(Reply::parse(above_burst, 2, 5), None);
        let mut negative = ok;
        negative[3] = -5;
        assert_eq!(Reply::parse(negative, 2, 5), None);
        let mut retry = ok;
        retry[2] = 250;
        assert_eq!(Reply::parse(retry, 2, 5).unwrap().retry_after_us, Some(250));
    }

    #[test]
    fn the_script_names_one_key_only() {
        let code = include_str!("gcra.lua");
        assert!(!code.contains("KEYS[2]"));
        assert!(code.contains("redis.call('TIME')"));
    }
}
