//! Leased local batches (`Builder::lease`) against a real `redis-server`: fewer round trips,
//! leases that expire, and the looser bound `burst + rate · (t + lifetime)` with several
//! clients on one key.

mod support;

use std::time::{Duration, Instant};

use ctxkit::Context;
use ctxkit_redis::{Path, RedisLimiter};
use redis::aio::ConnectionManager;
use support::RedisServer;

async fn leased(
    server: &RedisServer,
    rate: f64,
    burst: u32,
    batch: u32,
    life: Duration,
) -> RedisLimiter {
    RedisLimiter::builder(server.manager().await, "lease:", rate, burst)
        .timeout(Duration::from_secs(2))
        .lease(batch, life)
        .build()
        .unwrap()
}

async fn evalshas(conn: &mut ConnectionManager) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

#[tokio::test]
async fn leases_cut_round_trips() {
    let server = RedisServer::start();
    let limiter = leased(&server, 1000.0, 100, 10, Duration::from_secs(5)).await;
    let mut conn = server.manager().await;
    let ctx = Context::background();

    let first = limiter.allow(&ctx, "hot").await.unwrap();
    assert_eq!((first.allowed, first.path), (1, Path::Redis));
    assert_eq!(first.remaining, 99, "Redis's 89 and the lease's 10");
    let next = limiter.allow(&ctx, "hot").await.unwrap();
    assert_eq!((next.allowed, next.path), (1, Path::Lease));
    assert_eq!(
        (next.remaining, next.redis_time, next.unavailable),
        (9, None, None)
    );
    assert!(next.reset_after > Duration::ZERO && next.retry_after.is_none());
    let two = limiter.allow_n(&ctx, "hot", 2).await.unwrap();
    assert_eq!((two.allowed, two.path, two.remaining), (2, Path::Lease, 7));

    let before = evalshas(&mut conn).await;
    let mut leased = 0;
    for _ in 0..44 {
        let d = limiter.allow(&ctx, "hot").await.unwrap();
        assert!(d.is_allowed(), "{d:?}");
        leased += usize::from(d.path == Path::Lease);
    }
    let round_trips = evalshas(&mut conn).await - before;
    assert!(round_trips <= 6, "44 decisions, {round_trips} round trips");
    assert_eq!(leased as u64 + round_trips, 44);

    // allow_at_most and wait_n always ask Redis.
    let d = limiter.allow_at_most(&ctx, "hot", 2).await.unwrap();
    assert_eq!(d.path, Path::Redis);
    let d = limiter.wait(&ctx, "hot").await.unwrap();
    assert_eq!(d.path, Path::Redis);
}

#[tokio::test]
async fn a_lease_expires_after_its_lifetime() {
    let server = RedisServer::start();
    let limiter = leased(&server, 100.0, 10, 5, Duration::from_millis(50)).await;
    let ctx = Context::background();
    assert_eq!(limiter.allow(&ctx, "e").await.unwrap().path, Path::Redis);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let d = limiter.allow(&ctx, "e").await.unwrap();
    assert_eq!(d.path, Path::Redis, "the lease expired: {d:?}");
    // A request larger than the lease holds goes to Redis too.
    let d = limiter.allow_n(&ctx, "e", 6).await.unwrap();
    assert_eq!(d.path, Path::Redis, "{d:?}");
}

#[tokio::test]
async fn bad_lease_options_are_errors() {
    let client = redis::Client::open("redis://127.0.0.1:1/").unwrap();
    let conn = ConnectionManager::new_lazy_with_config(client, Default::default()).unwrap();
    let build = |batch, life| {
        RedisLimiter::builder(conn.clone(), "x:", 10, 5)
            .lease(batch, life)
            .build()
            .map(drop)
            .map_err(|e| e.to_string())
    };
    let second = Duration::from_secs(1);
    assert_eq!(
        build(0, second).unwrap_err(),
        "ctxkit-redis: lease batch 0 is not in 1..=burst (5)"
    );
    assert_eq!(
        build(6, second).unwrap_err(),
        "ctxkit-redis: lease batch 6 is not in 1..=burst (5)"
    );
    assert_eq!(
        build(5, Duration::ZERO).unwrap_err(),
        "ctxkit-redis: the lease lifetime is zero"
    );
    assert!(build(5, second).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_clients_stay_within_burst_plus_rate_over_t_plus_lifetime() {
    let server = RedisServer::start();
    let (rate, burst, lifetime) = (50.0, 10u32, Duration::from_millis(100));
    let start = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let limiter = leased(&server, rate, burst, 3, lifetime).await;
        clients.push(tokio::spawn(async move {
            let ctx = Context::background();
            let mut grants = Vec::new(); // (µs since start at admission, tokens)
            let mut max_rtt = Duration::ZERO;
            while start.elapsed() < Duration::from_millis(1200) {
                let sent = Instant::now();
                let d = limiter.allow(&ctx, "shared").await.unwrap();
                let back = Instant::now();
                assert!(d.path == Path::Redis || d.path == Path::Lease, "{d:?}");
                if d.path == Path::Redis {
                    max_rtt = max_rtt.max(back - sent);
                }
                if d.allowed > 0 {
                    grants.push(((back - start).as_micros() as u64, u64::from(d.allowed)));
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (grants, max_rtt)
        }));
    }
    let mut grants = Vec::new();
    let mut max_rtt = Duration::ZERO;
    for client in clients {
        let (g, rtt) = client.await.unwrap();
        grants.extend(g);
        max_rtt = max_rtt.max(rtt);
    }
    grants.sort_unstable();
    // A token admitted at r was taken on Redis at s with r - s <= max(lifetime, a round trip).
    let slack = (lifetime + max_rtt).as_micros() as u64;
    let interval = (1e6 / rate) as u64;
    for i in 0..grants.len() {
        let mut tokens = 0;
        for j in i..grants.len() {
            tokens += grants[j].1;
            let length = grants[j].0 - grants[i].0;
            assert!(
                tokens * interval <= u64::from(burst) * interval + length + slack,
                "{tokens} tokens in {length} µs: above burst + rate · (t + lifetime)"
            );
        }
    }
    let total: u64 = grants.iter().map(|g| g.1).sum();
    assert!(total >= u64::from(burst), "{total}");
}
