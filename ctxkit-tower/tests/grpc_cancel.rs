//! Cancellation over gRPC, on real tonic servers on 127.0.0.1: a client that drops its call
//! cancels the handler's context (and the work it started) with `ClientGone`, unless the
//! route is detached; canceling the server's root cancels every call in flight.

#[allow(dead_code, reason = "each test binary uses a part of the harness")]
#[path = "common/grpc.rs"]
mod grpc;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use ctxkit::Context;
use ctxkit_tower::{ClientGone, ServerLayer};
use grpc::{events, hang, note, notes, watch, Ended, Handled, Note, Seen, TestServer};

/// The reason the tests below give for a shutdown.
#[derive(Debug)]
struct Shutdown;

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the server is going down for maintenance")
    }
}

impl std::error::Error for Shutdown {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_drops_its_call_cancels_the_handlers_work_with_client_gone() {
    let (started, mut handler_started) = events();
    let (ended, mut work_ended) = events();
    let server = TestServer::start(
        ServerLayer::new(&Context::background()),
        hang(started, ended),
    )
    .await;

    let call = tokio::spawn(notes::call(
        server.channel().await,
        "Work",
        tonic::Request::new(note("long work")),
    ));
    let seen = handler_started.next("the handler to start").await;
    assert!(!seen.ctx.is_done(), "the call is in flight");

    call.abort(); // drops the call's future: the HTTP/2 stream is reset
    let ended = work_ended
        .next("the handler's work to see the request's context end")
        .await;
    assert_eq!(ended.method, "Work");
    assert!(ended.cause.is_canceled(), "{:?}", ended.cause);
    assert_eq!(
        ended.cause.downcast_ref::<ClientGone>(),
        Some(&ClientGone::BeforeResponse),
        "the reason says the client went away: {:?}",
        ended.cause
    );
    assert!(call.await.unwrap_err().is_cancelled());
}

/// What a handler of the detach test reports when it finishes.
#[derive(Debug)]
struct Finished {
    /// Whether the request's context was done when the handler was let go on.
    done_when_released: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_call_runs_to_completion_after_the_client_drops_it() {
    let (started, mut handlers_started) = events::<Seen>();
    let (ended, mut attached_ended) = events::<Ended>();
    let (finished, mut detached_finished) = events::<Finished>();
    let release = Arc::new(tokio::sync::Notify::new());
    let handler = {
        let release = Arc::clone(&release);
        move |method: String, request: tonic::Request<Note>| -> Handled {
            let here = Seen::of(&method, &request);
            let ctx = here.ctx.clone();
            let _ = started.send(here);
            if method != "Detached" {
                tokio::spawn(watch(ctx.clone(), method, ended.clone()));
                return Box::pin(async move {
                    ctx.done().await;
                    Err(tonic::Status::cancelled("the request's context ended"))
                });
            }
            let (release, finished) = (Arc::clone(&release), finished.clone());
            Box::pin(async move {
                // Goes on only when the test says so, whatever happens to the client.
                release.notified().await;
                let done_when_released = ctx.is_done();
                let _ = finished.send(Finished { done_when_released });
                Ok(tonic::Response::new(note("finished")))
            })
        }
    };
    let layer = ServerLayer::new(&Context::background())
        .detach_when(|request| request.uri.path().ends_with("/Detached"));
    let server = TestServer::start(layer, handler).await;
    let channel = server.channel().await;

    // The detached call, dropped by its client once its handler runs.
    let call = tokio::spawn(notes::call(
        channel.clone(),
        "Detached",
        tonic::Request::new(note("pay")),
    ));
    let seen = handlers_started.next("the detached handler to start").await;
    assert_eq!(seen.method, "Detached");
    call.abort();

    // Then an attached call on the same connection, dropped the same way: once its handler
    // has seen the client go, the server has had the detached call's reset, sent before.
    let call = tokio::spawn(notes::call(
        channel.clone(),
        "Attached",
        tonic::Request::new(note("look")),
    ));
    let seen = handlers_started.next("the attached handler to start").await;
    assert_eq!(seen.method, "Attached");
    call.abort();
    let ended = attached_ended
        .next("the attached call's context to end")
        .await;
    assert_eq!(
        ended.cause.downcast_ref::<ClientGone>(),
        Some(&ClientGone::BeforeResponse),
        "the attached call was canceled when its client left: {:?}",
        ended.cause
    );

    release.notify_one();
    let finished = detached_finished
        .next("the detached handler to finish")
        .await;
    assert!(
        !finished.done_when_released,
        "the detached call's context was not canceled when its client left"
    );
}

/// Two calls in flight on the server, each waiting for its context: what their handlers saw
/// when the root was canceled, and what their clients got.
async fn two_calls_through_a_root_cancel(
    server: &TestServer,
    root: &ctxkit::CancelContext,
    started: &mut grpc::Events<Seen>,
    ended: &mut grpc::Events<Ended>,
) -> Vec<Result<Note, tonic::Status>> {
    let channel = server.channel().await;
    let calls: Vec<_> = ["One", "Two"]
        .into_iter()
        .map(|method| {
            let request = tonic::Request::new(note(method));
            tokio::spawn(notes::call(channel.clone(), method, request))
        })
        .collect();
    for _ in 0..2 {
        started.next("both handlers to start").await;
    }

    root.cancel_with(Shutdown);
    let mut causes = BTreeMap::new();
    for _ in 0..2 {
        let ended = ended.next("both calls' contexts to end").await;
        causes.insert(ended.method, ended.cause);
    }
    assert_eq!(causes.len(), 2, "{causes:?}");
    for (method, cause) in &causes {
        assert!(cause.is_canceled(), "{method}: {cause:?}");
        assert!(
            cause.downcast_ref::<Shutdown>().is_some(),
            "{method}: the handler sees the shutdown's reason: {cause:?}"
        );
    }

    let mut answers = Vec::new();
    for call in calls {
        let answer = grpc::within("the call's answer", call).await;
        answers.push(answer.expect("the call's task did not panic"));
    }
    answers
}

/// The answers of the handlers of [`two_calls_through_a_root_cancel`]: the context's error, as
/// a status.
fn assert_canceled_by_the_shutdown(answers: &[Result<Note, tonic::Status>]) {
    for answer in answers {
        let status = answer.as_ref().expect_err("the handler failed the call");
        assert_eq!(status.code(), tonic::Code::Cancelled, "{status:?}");
        assert!(
            status.message().contains(&Shutdown.to_string()),
            "the handler's answer gives the shutdown's reason: {status:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_canceled_for_shutdown_cancels_calls_in_flight_and_refuses_new_ones() {
    let root = Context::background().with_cancel_cause();
    let (started, mut handlers_started) = events();
    let (ended, mut calls_ended) = events();
    let server = TestServer::start(ServerLayer::new(&root), hang(started, ended)).await;

    let answers =
        two_calls_through_a_root_cancel(&server, &root, &mut handlers_started, &mut calls_ended)
            .await;
    assert_canceled_by_the_shutdown(&answers);

    // The server still listens (its shutdown is not tied to the root here): the layer answers.
    let status = grpc::within(
        "a call after the shutdown started",
        notes::call(
            server.channel().await,
            "Late",
            tonic::Request::new(note("late")),
        ),
    )
    .await
    .expect_err("the server is shutting down");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    assert_eq!(server.arrivals(), 3, "the late call reached the server");
    assert!(
        handlers_started.try_next().is_none(),
        "the late call's handler was not called"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopping_with_its_root_answers_the_calls_in_flight_then_stops() {
    let root = Context::background().with_cancel_cause();
    let (started, mut handlers_started) = events();
    let (ended, mut calls_ended) = events();
    let shutdown = root.done();
    let server =
        TestServer::start_until(ServerLayer::new(&root), hang(started, ended), async move {
            shutdown.await;
        })
        .await;
    let addr = server.addr;
    let channel = server.channel().await;

    let answers =
        two_calls_through_a_root_cancel(&server, &root, &mut handlers_started, &mut calls_ended)
            .await;
    assert_canceled_by_the_shutdown(&answers);
    server
        .stopped()
        .await
        .expect("the server stopped without an error");

    // Nothing listens any more: a call on a channel opened before fails in the transport
    // (unavailable, or canceled when it raced the connection's close), and a new connection
    // is refused.
    let status = grpc::within(
        "a call after the server stopped",
        notes::call(channel, "Late", tonic::Request::new(note("late"))),
    )
    .await
    .expect_err("the server is gone");
    assert!(
        matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    assert!(
        std::error::Error::source(&status)
            .is_some_and(|source| source.is::<tonic::transport::Error>()),
        "the failure is the transport's, not an answer: {status:?}"
    );
    let refused = grpc::within(
        "a connection attempt",
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("a valid URI")
            .connect(),
    )
    .await;
    assert!(refused.is_err(), "nothing listens on {addr}");
    assert!(handlers_started.try_next().is_none());
}
