//! Deadlines on the wire: reading and writing the headers that carry them.
//!
//! A deadline crosses the wire as a *duration*, the time the caller has left, never as a
//! clock reading: two hosts' clocks disagree, and a duration measured from the moment a
//! request is read needs no agreement. Each side turns it into an [`Instant`] of its own
//! clock at once. The one absolute form (a Unix time in milliseconds, [`parse_unix_millis`])
//! is there for callers that can only send that; it is as good as the two clocks' agreement.
//!
//! * `grpc-timeout` (gRPC's own header): 1 to 8 ASCII digits and a unit, `H` hours, `M`
//!   minutes, `S` seconds, `m` milliseconds, `u` microseconds, `n` nanoseconds.
//!   [`format_grpc_timeout`] picks the finest unit that fits in 8 digits and rounds up, as
//!   grpc-go does, so a written budget is never shorter than the one meant.
//! * the HTTP header (its name is configurable): the remaining milliseconds as 1 to 18 ASCII
//!   digits, no sign, no fraction.
//!
//! Everything here is a pure function of its input: no clock is read, so every case is a unit
//! test. Nothing panics on any input; a value too large for an `Instant` is a deadline too far
//! to matter (`None` from [`deadline_after`]), not an error.

use std::error::Error as StdError;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

/// The longest value `grpc-timeout` allows: 8 digits.
const GRPC_TIMEOUT_DIGITS: usize = 8;
/// The longest value the milliseconds headers accept: 18 digits always fit in a `u64`.
const MILLIS_DIGITS: usize = 18;

/// What is wrong with a deadline header's value.
///
/// # Examples
///
/// ```
/// use http::HeaderValue;
/// use ctxkit_tower::wire::{parse_grpc_timeout, Malformed};
///
/// let err = parse_grpc_timeout(&HeaderValue::from_static("5x")).unwrap_err();
/// assert_eq!(err, Malformed::BadUnit);
/// assert_eq!(err.to_string(), "unknown unit (not one of H M S m u n)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Malformed {
    /// The value is empty (or, for `grpc-timeout`, a unit alone).
    Empty,
    /// More digits than the header allows (8 for `grpc-timeout`, 18 for milliseconds).
    TooManyDigits,
    /// A character that is not an ASCII digit where the number is: a sign (`-5`), a
    /// fraction (`1.5`), a space, a letter.
    NotDigits,
    /// `grpc-timeout`'s last character is not one of `H M S m u n`.
    BadUnit,
    /// The value is not visible ASCII (an `http::HeaderValue` may hold other bytes).
    NotAscii,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformed::Empty => "empty value",
            Malformed::TooManyDigits => "too many digits",
            Malformed::NotDigits => "not an unsigned whole number",
            Malformed::BadUnit => "unknown unit (not one of H M S m u n)",
            Malformed::NotAscii => "not ASCII",
        })
    }
}

impl StdError for Malformed {}

/// Reads a run of ASCII digits of at most `max_digits` as a `u64`.
fn parse_digits(digits: &[u8], max_digits: usize) -> Result<u64, Malformed> {
    if digits.is_empty() {
        return Err(Malformed::Empty);
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(Malformed::NotDigits);
    }
    if digits.len() > max_digits {
        return Err(Malformed::TooManyDigits);
    }
    // At most 18 digits: no overflow.
    Ok(digits
        .iter()
        .fold(0u64, |n, digit| n * 10 + u64::from(digit - b'0')))
}

/// Parses a `grpc-timeout` value (`"400m"`, `"3S"`, `"1H"`) into the time left.
///
/// # Errors
///
/// [`Malformed`] says what is wrong: an empty value or a unit alone, more than 8 digits, a
/// sign or other non-digit, an unknown unit, bytes that are not ASCII.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use http::HeaderValue;
/// use ctxkit_tower::wire::{parse_grpc_timeout, Malformed};
///
/// assert_eq!(parse_grpc_timeout(&HeaderValue::from_static("400m")), Ok(Duration::from_millis(400)));
/// assert_eq!(parse_grpc_timeout(&HeaderValue::from_static("2H")), Ok(Duration::from_secs(7200)));
/// assert_eq!(parse_grpc_timeout(&HeaderValue::from_static("-1S")), Err(Malformed::NotDigits));
/// assert_eq!(parse_grpc_timeout(&HeaderValue::from_static("123456789n")), Err(Malformed::TooManyDigits));
/// ```
pub fn parse_grpc_timeout(value: &HeaderValue) -> Result<Duration, Malformed> {
    let bytes = value.as_bytes();
    if !bytes.is_ascii() {
        return Err(Malformed::NotAscii);
    }
    let Some((&unit, digits)) = bytes.split_last() else {
        return Err(Malformed::Empty);
    };
    let to_duration: fn(u64) -> Duration = match unit {
        b'H' => |n| Duration::from_secs(n * 3600),
        b'M' => |n| Duration::from_secs(n * 60),
        b'S' => Duration::from_secs,
        b'm' => Duration::from_millis,
        b'u' => Duration::from_micros,
        b'n' => Duration::from_nanos,
        _ => return Err(Malformed::BadUnit),
    };
    // 8 digits of hours is 3.6e11 s: no overflow in the multiplications above.
    parse_digits(digits, GRPC_TIMEOUT_DIGITS).map(to_duration)
}

/// Writes `time_left` as a `grpc-timeout` value: the finest unit whose value fits in 8
/// digits, rounded up. A zero duration is `"0n"`; beyond 99,999,999 hours, the maximum.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ctxkit_tower::wire::format_grpc_timeout;
///
/// assert_eq!(format_grpc_timeout(Duration::from_millis(400)), "400000u");
/// assert_eq!(format_grpc_timeout(Duration::from_nanos(1_500)), "1500n");
/// assert_eq!(format_grpc_timeout(Duration::from_secs(3600 * 24 * 365)), "31536000S");
/// assert_eq!(format_grpc_timeout(Duration::from_secs(3600 * 24 * 365 * 10)), "5256000M");
/// assert_eq!(format_grpc_timeout(Duration::ZERO), "0n");
/// ```
pub fn format_grpc_timeout(time_left: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = time_left.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let (value, unit) = units
        .iter()
        .map(|&(size, unit)| (nanos.div_ceil(size), unit))
        .find(|&(value, _)| value <= MAX)
        .unwrap_or((MAX, 'H'));
    HeaderValue::try_from(format!("{value}{unit}")).expect("digits and a letter are a valid header")
}

/// Parses a milliseconds header (`"400"`): the time left.
///
/// # Errors
///
/// [`Malformed`]: an empty value, more than 18 digits, a sign, a fraction or any other
/// non-digit, bytes that are not ASCII.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use http::HeaderValue;
/// use ctxkit_tower::wire::{parse_millis, Malformed};
///
/// assert_eq!(parse_millis(&HeaderValue::from_static("400")), Ok(Duration::from_millis(400)));
/// assert_eq!(parse_millis(&HeaderValue::from_static("1.5")), Err(Malformed::NotDigits));
/// assert_eq!(parse_millis(&HeaderValue::from_static("")), Err(Malformed::Empty));
/// ```
pub fn parse_millis(value: &HeaderValue) -> Result<Duration, Malformed> {
    let bytes = value.as_bytes();
    if !bytes.is_ascii() {
        return Err(Malformed::NotAscii);
    }
    parse_digits(bytes.trim_ascii(), MILLIS_DIGITS).map(Duration::from_millis)
}

/// Writes `time_left` as a milliseconds header value, rounded down (a caller never claims
/// time it does not have).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use ctxkit_tower::wire::format_millis;
///
/// assert_eq!(format_millis(Duration::from_micros(399_999)), "399");
/// ```
pub fn format_millis(time_left: Duration) -> HeaderValue {
    HeaderValue::from(u64::try_from(time_left.as_millis()).unwrap_or(u64::MAX))
}

/// Parses an absolute deadline header: milliseconds since the Unix epoch.
///
/// # Errors
///
/// As [`parse_millis`].
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use http::HeaderValue;
/// use ctxkit_tower::wire::parse_unix_millis;
///
/// let at = parse_unix_millis(&HeaderValue::from_static("1700000000000")).unwrap();
/// assert_eq!(at, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// ```
pub fn parse_unix_millis(value: &HeaderValue) -> Result<SystemTime, Malformed> {
    let since_epoch = parse_millis(value)?;
    // 18 digits of milliseconds is 3.2e7 years: past what `SystemTime` holds on some targets.
    Ok(UNIX_EPOCH
        .checked_add(since_epoch)
        .unwrap_or(UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX))))
}

/// Writes an absolute deadline as milliseconds since the Unix epoch (0 for a time before it).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use ctxkit_tower::wire::format_unix_millis;
///
/// assert_eq!(format_unix_millis(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)), "1700000000123");
/// ```
pub fn format_unix_millis(at: SystemTime) -> HeaderValue {
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    format_millis(since_epoch)
}

/// The instant `time_left` after `now`, or `None` when that is past what an [`Instant`] can
/// hold (a deadline so far away that it is no deadline).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use ctxkit_tower::wire::deadline_after;
///
/// let now = Instant::now();
/// assert_eq!(deadline_after(now, Duration::from_millis(400)), Some(now + Duration::from_millis(400)));
/// assert_eq!(deadline_after(now, Duration::MAX), None);
/// ```
pub fn deadline_after(now: Instant, time_left: Duration) -> Option<Instant> {
    now.checked_add(time_left)
}

/// The local instant of an absolute deadline read off the wire: `now` plus how far `at` is
/// past `wall_now` (the same moment on the wall clock), or `now` itself when `at` has passed.
/// `None` when it is too far to hold.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant, SystemTime};
/// use ctxkit_tower::wire::deadline_at;
///
/// let (now, wall_now) = (Instant::now(), SystemTime::now());
/// let at = wall_now + Duration::from_millis(250);
/// assert_eq!(deadline_at(now, wall_now, at), Some(now + Duration::from_millis(250)));
/// assert_eq!(deadline_at(now, wall_now, wall_now - Duration::from_secs(1)), Some(now));
/// ```
pub fn deadline_at(now: Instant, wall_now: SystemTime, at: SystemTime) -> Option<Instant> {
    let time_left = at.duration_since(wall_now).unwrap_or(Duration::ZERO);
    deadline_after(now, time_left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &'static str) -> HeaderValue {
        HeaderValue::from_static(text)
    }

    #[test]
    fn grpc_timeout_units() {
        for (text, want) in [
            ("1H", Duration::from_secs(3600)),
            ("2M", Duration::from_secs(120)),
            ("3S", Duration::from_secs(3)),
            ("4m", Duration::from_millis(4)),
            ("5u", Duration::from_micros(5)),
            ("6n", Duration::from_nanos(6)),
            ("0m", Duration::ZERO),
            ("00000007S", Duration::from_secs(7)),
            ("99999999H", Duration::from_secs(99_999_999 * 3600)),
        ] {
            assert_eq!(parse_grpc_timeout(&value(text)), Ok(want), "{text}");
        }
    }

    #[test]
    fn grpc_timeout_malformed() {
        for (text, want) in [
            ("", Malformed::Empty),
            ("S", Malformed::Empty),
            ("100", Malformed::BadUnit),
            ("10s", Malformed::BadUnit),
            ("10ms", Malformed::BadUnit),
            ("-1S", Malformed::NotDigits),
            ("+1S", Malformed::NotDigits),
            ("1.5S", Malformed::NotDigits),
            (" 1S", Malformed::NotDigits),
            ("123456789S", Malformed::TooManyDigits),
            ("99999999999999999999999H", Malformed::TooManyDigits),
        ] {
            assert_eq!(parse_grpc_timeout(&value(text)), Err(want), "{text:?}");
        }
        let latin1 = HeaderValue::from_bytes(b"1\xe9S").unwrap();
        assert_eq!(parse_grpc_timeout(&latin1), Err(Malformed::NotAscii));
    }

    #[test]
    fn grpc_timeout_format_picks_the_finest_unit_and_rounds_up() {
        for (duration, want) in [
            (Duration::ZERO, "0n"),
            (Duration::from_nanos(99_999_999), "99999999n"),
            (Duration::from_nanos(100_000_000), "100000u"),
            (Duration::from_nanos(100_000_001), "100001u"),
            (Duration::from_secs(99_999), "99999000m"),
            (Duration::from_secs(100_000), "100000S"),
            (Duration::from_secs(99_999_999 * 3600), "99999999H"),
            (Duration::MAX, "99999999H"),
        ] {
            assert_eq!(format_grpc_timeout(duration), want, "{duration:?}");
        }
    }

    #[test]
    fn millis_malformed() {
        for (text, want) in [
            ("", Malformed::Empty),
            ("  ", Malformed::Empty),
            ("-5", Malformed::NotDigits),
            ("5ms", Malformed::NotDigits),
            ("0x10", Malformed::NotDigits),
            ("1234567890123456789", Malformed::TooManyDigits),
        ] {
            assert_eq!(parse_millis(&value(text)), Err(want), "{text:?}");
        }
        assert_eq!(parse_millis(&value(" 12 ")), Ok(Duration::from_millis(12)));
        assert_eq!(
            parse_millis(&value("999999999999999999")),
            Ok(Duration::from_millis(999_999_999_999_999_999))
        );
    }

    #[test]
    fn far_deadlines_are_none_not_a_panic() {
        let now = Instant::now();
        let far = parse_millis(&value("999999999999999999")).unwrap();
        // Whether it fits depends on the platform's Instant; it must not panic either way.
        let _ = deadline_after(now, far);
        assert_eq!(deadline_after(now, Duration::MAX), None);
        let at = parse_unix_millis(&value("999999999999999999")).unwrap();
        let _ = deadline_at(now, SystemTime::now(), at);
    }

    proptest::proptest! {
        #[test]
        fn grpc_timeout_round_trips_never_shorter(nanos in 0u64..u64::MAX) {
            let duration = Duration::from_nanos(nanos);
            let written = format_grpc_timeout(duration);
            let read = parse_grpc_timeout(&written).unwrap();
            proptest::prop_assert!(read >= duration);
            // Less than one unit of rounding, and the unit is at most a 100,000th of the value.
            proptest::prop_assert!(read - duration <= duration / 100_000 + Duration::from_nanos(1));
        }

        #[test]
        fn any_bytes_parse_without_panic(bytes in proptest::collection::vec(0x20u8..0x7f, 0..24)) {
            let value = HeaderValue::from_bytes(&bytes).unwrap();
            let _ = parse_grpc_timeout(&value);
            let _ = parse_millis(&value);
            let _ = parse_unix_millis(&value);
        }
    }
}
