//! The error types a new user reaches for work as a group's `E` without any glue: `String`,
//! `std::io::Error`, `Box<dyn Error + Send + Sync>` (and `ctxkit::Error`, used everywhere
//! else). Each must carry a task's own error, and the context's error for a task that never
//! started (the reason for the `E: From<ctxkit::Error>` bound).

mod common;

use std::io;

use ctxkit::{group, Context, Error};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A parent that is already done: every task spawned under it is skipped.
fn done_parent() -> Context {
    let (ctx, cancel) = Context::background().with_cancel().into_parts();
    cancel.cancel();
    ctx
}

#[test]
fn string_errors_in_a_scope() {
    let _leaks = common::no_leaks();
    let r = group::scope::<u32, String, _>(&Context::background(), |s| {
        s.spawn(|_| Ok(1));
        s.spawn(|ctx| {
            ctx.check()?; // converts through `From<ctxkit::Error> for String`
            Err("lyrics: not found".to_string())
        });
    });
    assert_eq!(r, Err("lyrics: not found".to_string()));

    let skipped: Result<Vec<u32>, String> = group::scope(&done_parent(), |s| {
        s.spawn(|_| Ok(1));
    });
    assert_eq!(skipped, Err("context canceled".to_string()));
}

#[test]
fn io_errors_in_a_scope() {
    let _leaks = common::no_leaks();
    let r: Result<Vec<usize>, io::Error> = group::scope(&Context::background(), |s| {
        s.spawn(|_| Err(io::Error::new(io::ErrorKind::NotFound, "track.flac")));
    });
    let err = r.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert_eq!(err.to_string(), "track.flac");

    let skipped: Result<Vec<usize>, io::Error> = group::scope(&done_parent(), |s| {
        s.spawn(|_| Ok(1));
    });
    assert_eq!(skipped.unwrap_err().to_string(), "context canceled");
}

#[test]
fn boxed_errors_in_a_scope() {
    let _leaks = common::no_leaks();
    let r: Result<Vec<u8>, BoxError> = group::scope(&Context::background(), |s| {
        s.spawn(|_| Err("no route to host".into()));
    });
    assert_eq!(r.unwrap_err().to_string(), "no route to host");

    let skipped: Result<Vec<u8>, BoxError> = group::scope(&done_parent(), |s| {
        s.spawn(|_| Ok(1));
    });
    let err = skipped.unwrap_err();
    assert_eq!(err.downcast_ref::<Error>(), Some(&Error::Canceled));
}

#[test]
fn string_converts_from_the_context_error_with_gos_text() {
    let _leaks = common::no_leaks();
    assert_eq!(String::from(Error::Canceled), "context canceled");
    let text: String = Error::DeadlineExceeded.into();
    assert_eq!(text, "context deadline exceeded");
}

#[cfg(feature = "tokio")]
mod async_group {
    use super::*;
    use ctxkit::Group;

    #[tokio::test]
    async fn string_errors_in_a_group() {
        common::no_leaks_async(async {
            let (mut g, ctx) = Group::<u32, String>::with_context(&Context::background());
            g.spawn(|_ctx| async { Ok(1) }).await;
            g.spawn(|ctx| async move {
                ctx.check()?;
                Err("lyrics: not found".to_string())
            })
            .await;
            assert_eq!(g.wait().await, Err("lyrics: not found".to_string()));
            assert_eq!(ctx.cause().unwrap().to_string(), "lyrics: not found");

            let (mut g, _ctx) = Group::<u32, String>::with_context(&done_parent());
            g.spawn(|_ctx| async { Ok(1) }).await;
            assert_eq!(g.wait().await, Err("context canceled".to_string()));
        })
        .await
    }

    #[tokio::test]
    async fn io_errors_in_a_group() {
        common::no_leaks_async(async {
            let mut g = Group::<usize, io::Error>::new();
            g.spawn(|_ctx| async { Err(io::Error::new(io::ErrorKind::NotFound, "track.flac")) })
                .await;
            let err = g.wait().await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);

            let (mut g, _ctx) = Group::<usize, io::Error>::with_context(&done_parent());
            g.spawn(|_ctx| async { Ok(1) }).await;
            assert_eq!(g.wait().await.unwrap_err().to_string(), "context canceled");
        })
        .await
    }

    #[tokio::test]
    async fn boxed_errors_in_a_group() {
        common::no_leaks_async(async {
            let mut g = Group::<u8, BoxError>::new();
            g.spawn(|_ctx| async { Err("no route to host".into()) })
                .await;
            assert_eq!(g.wait().await.unwrap_err().to_string(), "no route to host");

            let (mut g, _ctx) = Group::<u8, BoxError>::with_context(&done_parent());
            g.spawn(|_ctx| async { Ok(1) }).await;
            let err = g.wait().await.unwrap_err();
            assert_eq!(err.downcast_ref::<Error>(), Some(&Error::Canceled));
        })
        .await
    }
}
