//! Redis slow (paused with SIGSTOP) or down (killed, then restarted on the same port) under
//! each fallback policy: nothing panics, every decision says its path, the fallback's
//! decisions follow the policy, and decisions return to Redis once it is back.

mod support;

use std::time::{Duration, Instant};

use ctxkit::Context;
use ctxkit_redis::{Decision, Error, Fallback, Path, RedisLimiter, Unavailable};
use support::RedisServer;

const RATE: f64 = 100.0;
const BURST: u32 = 10;

async fn limiter(server: &RedisServer, fallback: Fallback, cooldown: Duration) -> RedisLimiter {
    RedisLimiter::builder(server.manager().await, "outage:", RATE, BURST)
        .timeout(Duration::from_millis(50))
        .cooldown(cooldown)
        .fallback(fallback)
        .build()
        .unwrap()
}

/// Calls `allow_n(2)` until one is decided on Redis (panics after 30 s); returns the
/// decisions made on the way.
async fn until_redis(limiter: &RedisLimiter, key: &str) -> Vec<Decision> {
    let ctx = Context::background();
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let d = limiter.allow_n(&ctx, key, 2).await.unwrap();
        if d.path == Path::Redis {
            return seen;
        }
        seen.push(d);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "decisions never returned to Redis: {:?}",
            seen.last()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The policy's path.
fn path_of(fallback: Fallback) -> Path {
    match fallback {
        Fallback::FailOpen => Path::FailOpen,
        Fallback::FailClosed => Path::FailClosed,
        Fallback::Local { .. } => Path::Local,
    }
}

/// Kills Redis while a background task keeps deciding, checks the decisions made while it is
/// down, restarts it, and checks that decisions come from Redis again.
async fn kill_and_restart(fallback: Fallback) {
    let mut server = RedisServer::start();
    let limiter = limiter(&server, fallback, Duration::from_millis(100)).await;
    let ctx = Context::background();
    let want = path_of(fallback);

    // Up: Redis decides.
    for _ in 0..5 {
        let d = limiter.allow(&ctx, "k").await.unwrap();
        assert_eq!((d.path, d.unavailable), (Path::Redis, None));
    }

    // A task that decides all along, through the kill and the restart: nothing may panic.
    let background = {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            let ctx = Context::background();
            let started = Instant::now();
            let mut paths = Vec::new();
            while started.elapsed() < Duration::from_millis(1500) {
                let d = limiter.allow(&ctx, "busy").await.unwrap();
                assert!(
                    d.path == Path::Redis || d.path == path_of(fallback),
                    "{d:?}"
                );
                assert_eq!(d.unavailable.is_some(), d.path != Path::Redis, "{d:?}");
                paths.push(d.path);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            paths
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    server.kill();
    let down_since = Instant::now();
    let mut granted = 0u32;
    let mut causes = Vec::new();
    while down_since.elapsed() < Duration::from_millis(600) {
        let d = limiter.allow_n(&ctx, "k", 2).await.unwrap();
        assert_eq!(d.path, want, "Redis is down: {d:?}");
        assert_eq!(d.redis_time, None);
        causes.push(d.unavailable.expect("a fallback says why"));
        match fallback {
            Fallback::FailOpen => {
                assert_eq!((d.allowed, d.retry_after), (2, None));
            }
            Fallback::FailClosed => {
                assert_eq!(d.allowed, 0);
                assert_eq!(d.retry_after, Some(Duration::from_millis(20)));
            }
            Fallback::Local { .. } => {}
        }
        granted += d.allowed;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let down_for = down_since.elapsed().as_secs_f64();
    assert!(
        causes.contains(&Unavailable::Connection) || causes.contains(&Unavailable::Timeout),
        "{causes:?}"
    );
    assert!(
        causes.contains(&Unavailable::Skipped),
        "the cooldown skips Redis: {causes:?}"
    );
    if let Fallback::Local { share } = fallback {
        // The local bucket: burst 10 · share (at least 1), rate 100 · share.
        let local_burst = (f64::from(BURST) * share).floor().max(1.0);
        let bound = local_burst + RATE * share * down_for + 1.0;
        assert!(f64::from(granted) <= bound, "{granted} > {bound}");
        assert!(granted >= 2, "the local bucket grants its burst at least");
    }

    // Waits on the fallback.
    match fallback {
        Fallback::FailOpen => {
            let d = limiter.wait_n(&ctx, "k", 3).await.unwrap();
            assert_eq!((d.allowed, d.path), (3, Path::FailOpen));
        }
        Fallback::FailClosed => {
            let err = limiter.wait_n(&ctx, "k", 3).await.unwrap_err();
            assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
            assert!(err
                .to_string()
                .contains("the fallback cannot serve this wait"));
        }
        Fallback::Local { .. } => {
            let d = limiter.wait_n(&ctx, "k", 1).await.unwrap();
            assert_eq!((d.allowed, d.path), (1, Path::Local));
            assert!(
                limiter.wait_n(&ctx, "k", BURST).await.is_err(),
                "above the local burst"
            );
        }
    }

    // Back up: decisions return to Redis (the manager reconnects), and stay there.
    server.restart();
    until_redis(&limiter, "k").await;
    for _ in 0..5 {
        let d = limiter.allow(&ctx, "again").await.unwrap();
        assert_eq!(d.path, Path::Redis, "{d:?}");
    }
    let paths = background.await.expect("the deciding task did not panic");
    assert!(paths.contains(&want), "the task saw the outage: {paths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_fail_open() {
    kill_and_restart(Fallback::FailOpen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_fail_closed() {
    kill_and_restart(Fallback::FailClosed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_local() {
    kill_and_restart(Fallback::Local { share: 0.5 }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_redis_times_out_to_the_fallback() {
    let server = RedisServer::start();
    // A long cooldown: the call after the timeout is surely within it.
    let cooldown = Duration::from_secs(1);
    let limiter = limiter(&server, Fallback::Local { share: 1.0 }, cooldown).await;
    let ctx = Context::background();
    assert_eq!(limiter.allow(&ctx, "s").await.unwrap().path, Path::Redis);

    server.pause();
    let started = Instant::now();
    let d = limiter.allow(&ctx, "s").await.unwrap();
    assert_eq!(
        (d.path, d.unavailable),
        (Path::Local, Some(Unavailable::Timeout))
    );
    assert!(d.is_allowed(), "the local bucket is full");
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "waited for the timeout"
    );
    // Within the cooldown: not tried at all.
    let d = limiter.allow(&ctx, "s").await.unwrap();
    assert_eq!(d.unavailable, Some(Unavailable::Skipped));

    // A context shorter than the timeout ends the call: its error, not the fallback.
    tokio::time::sleep(cooldown + Duration::from_millis(50)).await; // past the cooldown
    let short = ctx.with_timeout(Duration::from_millis(10));
    let err = limiter.allow(&short, "s").await.unwrap_err();
    assert_eq!(err, Error::Context(ctxkit::Error::DeadlineExceeded));

    server.resume();
    until_redis(&limiter, "s").await;
}

#[tokio::test]
async fn an_error_reply_takes_the_fallback_without_a_cooldown() {
    let server = RedisServer::start();
    let limiter = limiter(&server, Fallback::FailOpen, Duration::from_millis(100)).await;
    let mut conn = server.manager().await;
    // A key that holds something else than a bucket.
    let _: () = redis::cmd("SET")
        .arg("outage:bad")
        .arg("not a number")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ctx = Context::background();
    let d = limiter.allow(&ctx, "bad").await.unwrap();
    assert_eq!(
        (d.path, d.unavailable),
        (Path::FailOpen, Some(Unavailable::Server))
    );
    // Other keys still go to Redis: an error reply is about its key, not the server.
    let d = limiter.allow(&ctx, "good").await.unwrap();
    assert_eq!(d.path, Path::Redis);
}
