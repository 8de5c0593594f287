//! axum 0.8 behind `axum::serve` on 127.0.0.1: the `RequestContext` extractor with and
//! without `ServerLayer`, a `BudgetLayer` on one route, and a client hanging up.

#![cfg(feature = "axum")]

#[allow(dead_code, reason = "each test file uses part of the shared module")]
#[path = "common/http.rs"]
mod http_common;

use std::time::Duration;

use axum::routing::get as route_get;
use axum::Router;
use ctxkit::{Cause, Context};
use ctxkit_tower::{
    BudgetLayer, ClientGone, DeadlineSource, MissingContext, RequestContext, RequestDeadline,
    ServerLayer,
};
use http::StatusCode;
use tokio::sync::mpsc;

use http_common::{client, fetch, get, millis_left, raw_get, serve_axum, within, TIMEOUT};

/// Answers with the milliseconds the request's context has left (`no deadline` without one).
async fn time_left(RequestContext(ctx): RequestContext) -> String {
    match millis_left(&ctx) {
        Some(left) => left.to_string(),
        None => "no deadline".to_owned(),
    }
}

#[tokio::test]
async fn extractor_reads_the_context_the_server_layer_set() {
    let root = Context::background().with_cancel();
    let app = Router::new()
        .route("/left", route_get(time_left))
        .layer(ServerLayer::new(&root));
    let server = serve_axum(app).await;

    let (status, body) = fetch(client(), get(&server.url("/left"), &[(TIMEOUT, b"400")])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let left: u64 = body
        .parse()
        .unwrap_or_else(|_| panic!("a deadline, got {body:?}"));
    assert!(left > 200 && left <= 400, "{left} ms left of 400");

    let (status, body) = fetch(client(), get(&server.url("/left"), &[])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "no deadline");

    // The layer answers for axum too: expired on arrival.
    let (status, _) = fetch(client(), get(&server.url("/left"), &[(TIMEOUT, b"0")])).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn extractor_without_the_server_layer_is_rejected_with_500() {
    let app = Router::new().route("/left", route_get(time_left));
    let server = serve_axum(app).await;

    let (status, body) = fetch(client(), get(&server.url("/left"), &[(TIMEOUT, b"400")])).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, MissingContext.to_string());
    assert!(body.contains("ServerLayer"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_layer_tightens_one_route_and_names_itself_when_it_fires() {
    const BUDGET: Duration = Duration::from_millis(300);
    let (cause_tx, mut causes) = mpsc::unbounded_channel::<Option<Cause>>();
    let app = Router::new()
        .route(
            "/tight",
            route_get(move |RequestContext(ctx): RequestContext| {
                let cause_tx = cause_tx.clone();
                async move {
                    let left = millis_left(&ctx).expect("a deadline");
                    // Waits for the route's budget to pass.
                    ctx.done().await;
                    cause_tx.send(ctx.cause()).expect("the test listens");
                    left.to_string()
                }
            }),
        )
        .route_layer(BudgetLayer::new(BUDGET))
        .route("/loose", route_get(time_left))
        .layer(ServerLayer::new(&Context::background()));
    let server = serve_axum(app).await;

    // The caller allows 5 s; the route allows 300 ms.
    let (status, body) = fetch(client(), get(&server.url("/tight"), &[(TIMEOUT, b"5000")])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let left: u64 = body
        .parse()
        .unwrap_or_else(|_| panic!("a number, got {body:?}"));
    assert!(
        left > 0 && left <= 300,
        "{left} ms left on the 300 ms route"
    );
    let cause = within("the route's budget to pass", causes.recv())
        .await
        .expect("a cause")
        .expect("a done context");
    assert!(cause.is_deadline_exceeded(), "{cause:?}");
    assert_eq!(
        cause.downcast_ref::<RequestDeadline>(),
        Some(&RequestDeadline {
            source: DeadlineSource::Budget,
            budget: BUDGET
        }),
        "{cause:?}"
    );

    // The other route keeps the caller's deadline.
    let (status, body) = fetch(client(), get(&server.url("/loose"), &[(TIMEOUT, b"5000")])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let left: u64 = body
        .parse()
        .unwrap_or_else(|_| panic!("a number, got {body:?}"));
    assert!(
        left > 1_000 && left <= 5_000,
        "{left} ms left on the untouched route"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_hanging_up_cancels_an_axum_handler() {
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let (cause_tx, mut causes) = mpsc::unbounded_channel::<Option<Cause>>();
    let app = Router::new()
        .route(
            "/work",
            route_get(move |RequestContext(ctx): RequestContext| {
                let (started_tx, cause_tx) = (started_tx.clone(), cause_tx.clone());
                async move {
                    tokio::spawn({
                        let ctx = ctx.clone();
                        async move {
                            ctx.done().await;
                            let _ = cause_tx.send(ctx.cause());
                        }
                    });
                    started_tx.send(()).expect("the test listens");
                    std::future::pending::<String>().await
                }
            }),
        )
        .layer(ServerLayer::new(&Context::background()));
    let server = serve_axum(app).await;

    let connection = raw_get(server.addr, "/work", &[]).await;
    within("the handler to start", started.recv()).await;
    drop(connection);
    let cause = within("the spawned task to see the cancellation", causes.recv())
        .await
        .expect("a cause")
        .expect("a done context");
    assert_eq!(
        cause.downcast_ref::<ClientGone>(),
        Some(&ClientGone::BeforeResponse),
        "{cause:?}"
    );
}
