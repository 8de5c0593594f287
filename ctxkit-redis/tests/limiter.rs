//! `RedisLimiter` against a real `redis-server` (one per test, on a free port of 127.0.0.1):
//! the GCRA bound with concurrent clients, all-or-nothing and partial grants, the decision's
//! figures, key expiry, NOSCRIPT recovery, waits under contexts, and bad input.
//!
//! Timing assertions are one-sided and loose (a loaded 2-core machine): a wait is never
//! early, a refusal is "at once" when it returns well before the time it would have waited.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use ctxkit::Context;
use ctxkit_redis::{Decision, Error, Fallback, Path, RedisLimiter};
use redis::aio::ConnectionManager;
use support::RedisServer;

const SECOND: Duration = Duration::from_secs(1);

async fn limiter(server: &RedisServer, rate: f64, burst: u32) -> RedisLimiter {
    RedisLimiter::builder(server.manager().await, "test:", rate, burst)
        .timeout(Duration::from_secs(2)) // a loaded machine must not fall back here
        .build()
        .unwrap()
}

async fn get(conn: &mut ConnectionManager, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query_async(conn).await.unwrap()
}

/// The key's value once it differs from `from` (panics after 5 s).
async fn changed(conn: &mut ConnectionManager, key: &str, from: &Option<String>) -> Option<String> {
    let started = Instant::now();
    loop {
        let now = get(conn, key).await;
        if now != *from {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{key} never changed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `calls=N` of one command's line in `INFO commandstats` (0 if never called).
async fn calls(conn: &mut ConnectionManager, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

fn micros_since_epoch(d: &Decision) -> u64 {
    d.redis_time
        .expect("a Redis decision has Redis's time")
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_never_exceed_burst_plus_rate() {
    let server = RedisServer::start();
    let (rate, burst) = (50.0, 10u32);
    let run_for = Duration::from_millis(1200);
    let mut clients = Vec::new();
    for client in 0..4u32 {
        // Each client has its own connection, as separate processes would.
        let limiter = limiter(&server, rate, burst).await;
        clients.push(tokio::spawn(async move {
            let ctx = Context::background();
            let started = Instant::now();
            let mut grants = Vec::new();
            let mut round = client;
            while started.elapsed() < run_for {
                round += 1;
                let d = match round % 3 {
                    0 => limiter.allow_n(&ctx, "shared", 1).await.unwrap(),
                    1 => limiter.allow_n(&ctx, "shared", 2).await.unwrap(),
                    _ => limiter.allow_at_most(&ctx, "shared", 3).await.unwrap(),
                };
                assert_eq!(d.path, Path::Redis, "{d:?}");
                assert!(d.allowed <= d.requested && d.remaining <= burst, "{d:?}");
                if d.allowed > 0 {
                    grants.push((micros_since_epoch(&d), u64::from(d.allowed)));
                }
            }
            grants
        }));
    }
    let mut grants = Vec::new();
    for client in clients {
        grants.extend(client.await.unwrap());
    }
    grants.sort_unstable();
    // Every window [t_i, t_j] between two grants' Redis times: tokens · T <= burst · T + length.
    let interval = (1e6 / rate) as u64;
    let total: u64 = grants.iter().map(|g| g.1).sum();
    for i in 0..grants.len() {
        let mut tokens = 0;
        for j in i..grants.len() {
            tokens += grants[j].1;
            let length = grants[j].0 - grants[i].0;
            assert!(
                tokens * interval <= u64::from(burst) * interval + length,
                "{tokens} tokens in {length} µs between grants {i} and {j}: above burst + rate · t"
            );
        }
    }
    // And the clients, together, got close to the limit (loosely: a stalled machine).
    let span = (grants.last().unwrap().0 - grants[0].0) as f64 / 1e6;
    assert!(
        total as f64 >= f64::from(burst) + rate * span * 0.5,
        "only {total} tokens in {span} s"
    );
}

#[tokio::test]
async fn allow_n_is_all_or_nothing_with_retry_and_reset() {
    let server = RedisServer::start();
    let limiter = limiter(&server, 1.0, 5).await; // 1 a second, bursts of 5
    let ctx = Context::background();

    let d = limiter.allow_n(&ctx, "fresh", 2).await.unwrap();
    assert_eq!((d.requested, d.allowed, d.remaining), (2, 2, 3));
    assert_eq!(d.retry_after, None);
    assert_eq!(d.reset_after, 2 * SECOND, "two tokens to earn back");
    assert_eq!(d.delay, Duration::ZERO);
    assert_eq!((d.path, d.unavailable), (Path::Redis, None));
    assert!(d.is_allowed());

    let d = limiter.allow_n(&ctx, "k", 5).await.unwrap();
    assert_eq!((d.allowed, d.remaining, d.retry_after), (5, 0, None));
    assert!(
        d.reset_after <= 5 * SECOND && d.reset_after > 4 * SECOND,
        "{d:?}"
    );

    let d = limiter.allow_n(&ctx, "k", 2).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (0, 0), "all or nothing");
    assert!(!d.is_allowed());
    let retry = d
        .retry_after
        .expect("refused: when the 2 tokens would be there");
    assert!(retry <= 2 * SECOND && retry > SECOND, "{retry:?}");
    assert!(
        d.reset_after > retry,
        "full again later than 2 tokens: {d:?}"
    );

    // Asking for nothing takes nothing and is allowed.
    let d = limiter.allow_n(&ctx, "k", 0).await.unwrap();
    assert!(d.is_allowed() && d.retry_after.is_none());
}

#[tokio::test]
async fn allow_at_most_grants_what_is_there() {
    let server = RedisServer::start();
    let limiter = limiter(&server, 1.0, 5).await;
    let ctx = Context::background();

    let d = limiter.allow_at_most(&ctx, "k", 3).await.unwrap();
    assert_eq!((d.allowed, d.remaining, d.retry_after), (3, 2, None));
    assert_eq!(d.reset_after, 3 * SECOND);

    let d = limiter.allow_at_most(&ctx, "k", 3).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (2, 0), "the two left");
    let retry = d.retry_after.expect("one token missing");
    assert!(retry <= SECOND && retry > SECOND / 2, "{retry:?}");

    let d = limiter.allow_at_most(&ctx, "k", 3).await.unwrap();
    assert_eq!((d.allowed, d.remaining), (0, 0));
    let retry = d.retry_after.expect("three tokens missing");
    assert!(retry <= 3 * SECOND && retry > 2 * SECOND, "{retry:?}");
}

#[tokio::test]
async fn keys_expire_when_the_bucket_is_full_again() {
    let server = RedisServer::start();
    let limiter = limiter(&server, 10.0, 5).await; // a token every 100 ms
    let mut conn = server.manager().await;
    let ctx = Context::background();
    assert_eq!(limiter.redis_key("exp"), "test:exp");

    limiter.allow_n(&ctx, "exp", 2).await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg("test:exp")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        (1..=200).contains(&pttl),
        "full again in 200 ms: PTTL {pttl}"
    );
    let zero: u64 = get(&mut conn, "test:exp").await.unwrap().parse().unwrap();
    assert!(
        zero > 1_600_000_000_000_000,
        "microseconds since the epoch: {zero}"
    );

    // A refusal writes nothing.
    let d = limiter.allow_n(&ctx, "exp", 5).await.unwrap();
    assert_eq!(d.allowed, 0);
    let after: u64 = get(&mut conn, "test:exp").await.unwrap().parse().unwrap();
    assert_eq!(after, zero);

    tokio::time::sleep(Duration::from_millis(400)).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg("test:exp")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0, "a full bucket's key is gone");
    let d = limiter.allow_n(&ctx, "exp", 5).await.unwrap();
    assert_eq!(d.allowed, 5, "and a missing key is a full bucket");
}

#[tokio::test]
async fn noscript_after_script_flush_loads_the_script_again() {
    let server = RedisServer::start();
    let limiter = limiter(&server, 100.0, 10).await;
    let mut conn = server.manager().await;
    let ctx = Context::background();

    let d = limiter.allow(&ctx, "ns").await.unwrap();
    assert_eq!(d.path, Path::Redis);
    let loads = calls(&mut conn, "script|load").await;
    let evalshas = calls(&mut conn, "evalsha").await;
    assert_eq!(loads, 1, "loaded once, on the first NOSCRIPT");

    // One round trip per decision: one EVALSHA each, no load.
    for _ in 0..5 {
        limiter.allow(&ctx, "ns").await.unwrap();
    }
    assert_eq!(calls(&mut conn, "evalsha").await, evalshas + 5);
    assert_eq!(calls(&mut conn, "script|load").await, loads);

    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let d = limiter.allow(&ctx, "ns").await.unwrap();
    assert_eq!(
        d.path,
        Path::Redis,
        "NOSCRIPT is answered by loading, not by the fallback"
    );
    assert!(d.is_allowed());
    assert_eq!(calls(&mut conn, "script|load").await, loads + 1);
    let d = limiter.allow(&ctx, "ns").await.unwrap();
    assert_eq!(d.path, Path::Redis);
    assert_eq!(calls(&mut conn, "script|load").await, loads + 1);
}

#[tokio::test]
async fn a_done_context_fails_at_once_without_a_redis_call() {
    let server = RedisServer::start();
    let limiter = limiter(&server, 10.0, 5).await;
    let mut conn = server.manager().await;
    limiter
        .allow(&Context::background(), "warm-up")
        .await
        .unwrap();
    let before = calls(&mut conn, "evalsha").await;

    let canceled = Context::background().with_cancel();
    canceled.cancel();
    let expired = Context::background().with_deadline(Instant::now());
    for ctx in [&*canceled, &*expired] {
        let want = ctx.err().unwrap();
        assert_eq!(
            limiter.allow(ctx, "done").await.unwrap_err(),
            Error::Context(want)
        );
        assert_eq!(
            limiter.allow_at_most(ctx, "done", 2).await.unwrap_err(),
            want
        );
        assert_eq!(limiter.wait_n(ctx, "done", 1).await.unwrap_err(), want);
        assert_eq!(limiter.reset(ctx, "done").await.unwrap_err(), want);
    }
    assert!(limiter
        .allow(&canceled, "done")
        .await
        .unwrap_err()
        .is_canceled());
    assert!(limiter
        .allow(&expired, "done")
        .await
        .unwrap_err()
        .is_deadline_exceeded());
    assert_eq!(
        calls(&mut conn, "evalsha").await,
        before,
        "no call reached Redis"
    );
    assert_eq!(get(&mut conn, "test:done").await, None);
}

#[tokio::test]
async fn wait_fails_at_once_when_the_deadline_comes_first() {
    let server = RedisServer::start();
    let limiter = limiter(&server, 0.5, 1).await; // a token every 2 s
    let mut conn = server.manager().await;
    let ctx = Context::background();
    limiter.wait(&ctx, "w").await.unwrap(); // the burst
    let state = get(&mut conn, "test:w").await;

    let short = ctx.with_timeout(Duration::from_millis(1500));
    let started = Instant::now();
    let err = limiter.wait(&short, "w").await.unwrap_err();
    assert_eq!(err, Error::WouldExceedDeadline { n: 1 });
    assert!(err.is_deadline_exceeded() && err.is_timeout());
    assert_eq!(err, ctxkit::Error::DeadlineExceeded);
    assert_eq!(
        err.to_string(),
        "ctxkit-redis: wait_n(n=1) would exceed the context's deadline"
    );
    assert!(
        started.elapsed() < Duration::from_millis(750),
        "at once, not at the deadline: {:?}",
        started.elapsed()
    );
    assert!(!short.is_done());
    assert_eq!(get(&mut conn, "test:w").await, state, "nothing taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_sleep_until_their_tokens_time() {
    let server = RedisServer::start();
    let interval = Duration::from_millis(50); // 20 a second, bursts of 1
    let ctx = Context::background();

    let limiter = limiter(&server, 20.0, 1).await;
    let started = Instant::now();
    let mut delays = Vec::new();
    for _ in 0..5 {
        let d = limiter.wait(&ctx, "seq").await.unwrap();
        assert_eq!((d.allowed, d.path, d.retry_after), (1, Path::Redis, None));
        delays.push(d.delay);
    }
    assert!(started.elapsed() >= 4 * interval, "{:?}", started.elapsed());
    assert_eq!(delays[0], Duration::ZERO, "the burst's token is there");
    assert!(
        delays[1..].iter().all(|d| *d > Duration::ZERO),
        "{delays:?}"
    );

    // Three clients, three waits each, on one key: nine tokens take eight intervals.
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let limiter = self::limiter(&server, 20.0, 1).await;
        clients.push(tokio::spawn(async move {
            let ctx = Context::background();
            for _ in 0..3 {
                limiter.wait(&ctx, "shared").await.unwrap();
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    assert!(started.elapsed() >= 8 * interval, "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_wait_gives_its_tokens_back() {
    let server = RedisServer::start();
    let limiter = limiter(&server, 1.0, 1).await; // a token a second
    let mut conn = server.manager().await;
    let background = Context::background();
    limiter.allow(&background, "gb").await.unwrap();
    let before = get(&mut conn, "test:gb").await;

    // Canceled while it sleeps: the error, and the reservation is back.
    let ctx = Arc::new(background.with_cancel());
    let canceler = {
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            ctx.cancel();
        })
    };
    let err = limiter.wait(&ctx, "gb").await.unwrap_err();
    canceler.await.unwrap();
    assert_eq!(err, Error::Context(ctxkit::Error::Canceled));
    assert_eq!(get(&mut conn, "test:gb").await, before, "given back");

    // Dropped while it sleeps: given back by a spawned task.
    let dropped =
        tokio::time::timeout(Duration::from_millis(150), limiter.wait(&background, "gb")).await;
    assert!(dropped.is_err(), "still sleeping when dropped");
    let started = Instant::now();
    while get(&mut conn, "test:gb").await != before {
        assert!(
            started.elapsed() < 5 * SECOND,
            "the dropped wait's tokens never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Two waits queued: the first one canceled gives nothing back (a take stands after it);
    // the second, the top, goes back, and only itself.
    let first = background.with_cancel();
    let second = background.with_cancel();
    let (l1, l2) = (limiter.clone(), limiter.clone());
    let (c1, c2) = (first.context().clone(), second.context().clone());
    let w1 = tokio::spawn(async move { l1.wait(&c1, "gb").await });
    let after_first = changed(&mut conn, "test:gb", &before).await; // the first wait reserved
    let w2 = tokio::spawn(async move { l2.wait(&c2, "gb").await });
    let after_second = changed(&mut conn, "test:gb", &after_first).await;
    first.cancel();
    assert!(w1.await.unwrap().unwrap_err().is_canceled());
    assert_eq!(
        get(&mut conn, "test:gb").await,
        after_second,
        "not the top: kept"
    );
    second.cancel();
    assert!(w2.await.unwrap().unwrap_err().is_canceled());
    assert_eq!(
        get(&mut conn, "test:gb").await,
        after_first,
        "the top: back to the first's end"
    );
}

#[tokio::test]
async fn bad_input_is_an_error_with_no_redis_call() {
    // No server: every error here comes before any round trip.
    let client = redis::Client::open("redis://127.0.0.1:1/").unwrap();
    let conn = ConnectionManager::new_lazy_with_config(client, Default::default()).unwrap();
    let build = |rate: f64, burst: u32| RedisLimiter::new(conn.clone(), "x:", rate, burst);

    for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = build(rate, 5).unwrap_err();
        assert!(
            err.to_string().contains("is not a positive finite number"),
            "{rate}: {err}"
        );
    }
    assert_eq!(
        build(2e6, 5).unwrap_err().to_string(),
        "ctxkit-redis: rate 2000000 per second is above 1000000 (one token a microsecond)"
    );
    assert_eq!(
        build(10.0, 0).unwrap_err().to_string(),
        "ctxkit-redis: burst 0 would never allow an event"
    );
    assert!(build(1e-9, 1_000_000)
        .unwrap_err()
        .to_string()
        .contains("to fill"));
    assert!(build(1e6, u32::MAX).is_ok());
    let zero_timeout = RedisLimiter::builder(conn.clone(), "x:", 1, 1)
        .timeout(Duration::ZERO)
        .build();
    assert_eq!(
        zero_timeout.unwrap_err().to_string(),
        "ctxkit-redis: the Redis timeout is zero"
    );
    for share in [0.0, -0.5, 1.5, f64::NAN] {
        let err = RedisLimiter::builder(conn.clone(), "x:", 1, 1)
            .fallback(Fallback::Local { share })
            .build()
            .unwrap_err();
        assert!(
            err.to_string().contains("is not in (0, 1]"),
            "{share}: {err}"
        );
    }

    let limiter = build(10.0, 3).unwrap();
    assert_eq!(limiter.interval(), Duration::from_millis(100));
    let ctx = Context::background();
    assert_eq!(limiter.allow(&ctx, "").await.unwrap_err(), Error::EmptyKey);
    assert_eq!(limiter.wait(&ctx, "").await.unwrap_err(), Error::EmptyKey);
    assert_eq!(limiter.reset(&ctx, "").await.unwrap_err(), Error::EmptyKey);
    let above = Error::ExceedsBurst { n: 4, burst: 3 };
    assert_eq!(limiter.allow_n(&ctx, "k", 4).await.unwrap_err(), above);
    assert_eq!(
        limiter.allow_at_most(&ctx, "k", 4).await.unwrap_err(),
        above
    );
    assert_eq!(limiter.wait_n(&ctx, "k", 4).await.unwrap_err(), above);
    assert_eq!(
        above.to_string(),
        "ctxkit-redis: n=4 exceeds the limiter's burst 3: it can never be granted"
    );
    assert_eq!(above.context_error(), None);
    // Bad input is reported before a done context, as ctxkit's Limiter does.
    let canceled = ctx.with_cancel();
    canceled.cancel();
    assert_eq!(limiter.allow_n(&canceled, "k", 4).await.unwrap_err(), above);
}

#[tokio::test]
async fn reset_deletes_the_bucket() {
    let server = RedisServer::start();
    let limiter = limiter(&server, 1.0, 2).await;
    let ctx = Context::background();
    assert!(limiter.allow_n(&ctx, "r", 2).await.unwrap().is_allowed());
    assert_eq!(limiter.allow(&ctx, "r").await.unwrap().allowed, 0);
    limiter.reset(&ctx, "r").await.unwrap();
    assert!(limiter.allow_n(&ctx, "r", 2).await.unwrap().is_allowed());
}

#[tokio::test]
async fn retry_after_and_reset_after_mean_what_they_say() {
    let server = RedisServer::start();
    let limiter = limiter(&server, 10.0, 4).await; // a token every 100 ms, bursts of 4
    let ctx = Context::background();
    assert!(limiter.allow_n(&ctx, "hdr", 4).await.unwrap().is_allowed());

    // Retry-After: retrying the same request after it succeeds (nobody else takes).
    let refused = limiter.allow_n(&ctx, "hdr", 2).await.unwrap();
    assert_eq!(refused.allowed, 0);
    let retry = refused.retry_after.unwrap();
    assert!(retry <= Duration::from_millis(200), "{retry:?}");
    tokio::time::sleep(retry).await;
    let d = limiter.allow_n(&ctx, "hdr", 2).await.unwrap();
    assert!(d.is_allowed(), "retried after retry_after: {d:?}");

    // Reset: after it the bucket is full, which is long after the first token is back.
    assert!(d.reset_after > Duration::from_millis(200), "{d:?}");
    tokio::time::sleep(d.reset_after).await;
    let d = limiter.allow_at_most(&ctx, "hdr", 4).await.unwrap();
    assert_eq!(
        (d.allowed, d.remaining),
        (4, 0),
        "full after reset_after: {d:?}"
    );
}
