//! A first end-to-end check on real tonic servers on loopback.

#[allow(dead_code, unreachable_pub, reason = "shared support module")]
#[path = "../examples/support/notes.rs"]
mod notes;

use std::time::{Duration, Instant};

use ctxkit::Context;
use ctxkit_tower::{ClientLayer, ContextExt, ServerLayer};
use notes::{Note, NotesServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_deadline_reaches_the_handler_and_expiry_is_deadline_exceeded() {
    let root = Context::background().with_cancel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder()
        .layer(ServerLayer::new(&root))
        .add_service(NotesServer::new(
            |method: String, request: tonic::Request<Note>| async move {
                let ctx = request.context().cloned().expect("the layer's context");
                let left = ctx.deadline().map_or(0, |d| {
                    d.saturating_duration_since(Instant::now()).as_millis() as u64
                });
                if method == "Slow" {
                    // As a Go handler returns `ctx.Err()`: the deadline as the call's status.
                    if let Err(error) = ctx
                        .sleep(Duration::from_millis(request.get_ref().millis))
                        .await
                    {
                        return Err(tonic::Status::deadline_exceeded(error.to_string()));
                    }
                    return Ok(tonic::Response::new(Note {
                        text: "slept".to_owned(),
                        millis: left,
                    }));
                }
                Ok(tonic::Response::new(Note {
                    text: method,
                    millis: left,
                }))
            },
        ))
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), {
            let shutdown = root.done();
            async move {
                shutdown.await;
            }
        });
    let server = tokio::spawn(server);

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = tower::ServiceBuilder::new()
        .layer(ClientLayer::new())
        .service(channel);

    let ctx = Context::background().with_timeout(Duration::from_millis(400));
    let mut request = tonic::Request::new(Note {
        text: String::new(),
        millis: 0,
    });
    request.set_context(ctx.context().clone());
    let answer = notes::call(client.clone(), "Fast", request).await.unwrap();
    assert!(answer.millis > 200 && answer.millis <= 400, "{answer:?}");

    let ctx = Context::background().with_timeout(Duration::from_millis(100));
    let mut request = tonic::Request::new(Note {
        text: String::new(),
        millis: 5000,
    });
    request.set_context(ctx.context().clone());
    let status = notes::call(client.clone(), "Slow", request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");

    // With a margin, tonic's channel times the call out on the budget it sent (before the
    // context's own deadline): still DEADLINE_EXCEEDED, not tonic's CANCELLED.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = tower::ServiceBuilder::new()
        .layer(ClientLayer::new().margin(Duration::from_millis(50)))
        .service(channel);
    let ctx = Context::background().with_timeout(Duration::from_millis(150));
    let mut request = tonic::Request::new(Note {
        text: String::new(),
        millis: 5000,
    });
    request.set_context(ctx.context().clone());
    let status = notes::call(client, "Slow", request).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");

    root.cancel();
    server.await.unwrap().unwrap();
}
