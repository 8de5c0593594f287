//! `Error` and `Cause`: Go's exact texts, the two kinds easy to tell apart, the
//! traits `Error` promises, and `cause()` being the reason given, else the error itself.

use std::error::Error as StdError;
use std::fmt;
use std::hash::Hash;

use ctxkit::{Cause, Context, Error};

fn assert_error_traits<T: Copy + Eq + Hash + StdError + Send + Sync + 'static>() {}

#[test]
fn error_is_copy_eq_and_a_std_error() {
    assert_error_traits::<Error>();
    let e = Error::Canceled;
    let copy = e;
    assert_eq!(e, copy, "still usable after a copy");
    assert_ne!(Error::Canceled, Error::DeadlineExceeded);
    let boxed: Box<dyn StdError + Send + Sync> = Box::new(Error::DeadlineExceeded);
    assert_eq!(boxed.to_string(), "context deadline exceeded");
    assert!(boxed.source().is_none());
}

#[test]
fn error_texts_are_gos() {
    assert_eq!(Error::Canceled.to_string(), "context canceled");
    assert_eq!(
        Error::DeadlineExceeded.to_string(),
        "context deadline exceeded"
    );
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    cancel.cancel();
    assert_eq!(ctx.err().unwrap().to_string(), "context canceled");
    assert_eq!(ctx.cause().unwrap().to_string(), "context canceled");
    let ctx = Context::background().with_timeout(std::time::Duration::ZERO);
    assert_eq!(ctx.err().unwrap().to_string(), "context deadline exceeded");
    assert_eq!(
        ctx.cause().unwrap().to_string(),
        "context deadline exceeded"
    );
}

#[test]
fn the_two_kinds_are_easy_to_tell_apart() {
    assert!(Error::Canceled.is_canceled());
    assert!(!Error::Canceled.is_deadline_exceeded());
    assert!(Error::DeadlineExceeded.is_deadline_exceeded());
    assert!(!Error::DeadlineExceeded.is_canceled());
    assert!(Error::DeadlineExceeded.is_timeout());
    let describe = |e: Error| match e {
        Error::Canceled => "caller gave up",
        Error::DeadlineExceeded => "ran out of time",
    };
    assert_eq!(describe(Error::Canceled), "caller gave up");
    assert_eq!(describe(Error::DeadlineExceeded), "ran out of time");
}

#[derive(Debug)]
struct Shutdown {
    source: std::io::Error,
}

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("server shutting down")
    }
}

impl StdError for Shutdown {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

#[test]
fn cause_is_the_reason_given() {
    let (ctx, cancel) = Context::background().with_cancel_cause().into_parts();
    assert!(ctx.cause().is_none(), "a live context has no cause");
    cancel.cancel_with(Shutdown {
        source: std::io::Error::other("SIGTERM"),
    });
    let cause: Cause = ctx.cause().unwrap();
    assert_eq!(cause.error(), Error::Canceled);
    assert!(cause.is_canceled());
    assert!(!cause.is_deadline_exceeded());
    assert_eq!(cause.to_string(), "server shutting down");
    assert_eq!(cause.reason().unwrap().to_string(), "server shutting down");
    assert!(cause.downcast_ref::<Shutdown>().is_some());
    assert!(cause.downcast_ref::<std::io::Error>().is_none());
    // source() is the reason's own source, so walking the chain prints each text once.
    assert_eq!(cause.source().unwrap().to_string(), "SIGTERM");
    assert_eq!(cause, Error::Canceled);
    assert_eq!(Error::from(cause.clone()), Error::Canceled);
    // The error itself stays Go's.
    assert_eq!(ctx.err().unwrap().to_string(), "context canceled");

    // Strings work as reasons too.
    let (ctx, cancel) = Context::background().with_cancel_cause().into_parts();
    cancel.cancel_with(String::from("client went away"));
    assert_eq!(ctx.cause().unwrap().to_string(), "client went away");
}

#[test]
fn cause_without_a_reason_is_the_error_itself() {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    cancel.cancel();
    let cause = ctx.cause().unwrap();
    assert!(cause.reason().is_none());
    assert_eq!(cause.error(), Error::Canceled);
    assert_eq!(cause.to_string(), "context canceled");
    assert!(cause.source().is_none());

    let ctx = Context::background().with_deadline(std::time::Instant::now());
    let cause = ctx.cause().unwrap();
    assert!(cause.reason().is_none());
    assert_eq!(cause.error(), Error::DeadlineExceeded);
    assert_eq!(cause.to_string(), "context deadline exceeded");
}

#[test]
fn a_deadline_cause_carries_the_deadline_kind() {
    let ctx =
        Context::background().with_deadline_cause(std::time::Instant::now(), "quota window closed");
    let cause = ctx.cause().unwrap();
    assert!(cause.is_deadline_exceeded());
    assert_eq!(cause.to_string(), "quota window closed");
    assert_eq!(ctx.err(), Some(Error::DeadlineExceeded));
    // Canceled before the deadline: canceled, and the deadline's reason is not used.
    let ctx =
        Context::background().with_timeout_cause(std::time::Duration::from_secs(3600), "too slow");
    ctx.cancel();
    let cause = ctx.cause().unwrap();
    assert_eq!(cause.error(), Error::Canceled);
    assert_eq!(cause.to_string(), "context canceled");
}

#[test]
fn check_returns_the_error_for_question_mark() {
    fn work(ctx: &Context, n: usize) -> Result<usize, Error> {
        let mut done = 0;
        for _ in 0..n {
            ctx.check()?;
            done += 1;
        }
        Ok(done)
    }
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    assert_eq!(work(&ctx, 3), Ok(3));
    cancel.cancel();
    assert_eq!(work(&ctx, 3), Err(Error::Canceled));
    assert_eq!(Context::background().check(), Ok(()));
}

#[test]
fn io_error_can_be_a_group_error_type() {
    // `From<Error> for io::Error` lets io-based tasks use `io::Error` as the group's error type;
    // a task that never starts (the parent is done) reports the context's error through it.
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    cancel.cancel();
    let result: Result<Vec<u32>, std::io::Error> = ctxkit::group::scope(&ctx, |s| {
        s.spawn(|_| Ok(1));
    });
    let err = result.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Other);
    assert_eq!(err.to_string(), "context canceled");
    let timed_out: std::io::Error = Error::DeadlineExceeded.into();
    assert_eq!(timed_out.kind(), std::io::ErrorKind::TimedOut);
}
