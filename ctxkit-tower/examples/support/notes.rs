//! A small gRPC service on tonic, written by hand (no `.proto` file, no code generation, no
//! `protoc`): one message type, [`Note`], and unary methods at `/ctxkit.demo.Notes/<Method>`,
//! all answered by one handler function. The examples and tests of ctxkit-tower use it as a
//! real gRPC server and client on loopback.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::Status;

/// The one message: some text and a number of milliseconds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Note {
    /// Free text.
    #[prost(string, tag = "1")]
    pub text: String,
    /// A duration, in milliseconds.
    #[prost(uint64, tag = "2")]
    pub millis: u64,
}

/// The gRPC service's name.
pub const SERVICE: &str = "ctxkit.demo.Notes";

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The server: every unary method of [`SERVICE`] goes to `handler(method, request)`.
#[derive(Clone, Debug)]
pub struct NotesServer<H> {
    handler: H,
}

impl<H> NotesServer<H> {
    /// A server answering with `handler`.
    pub fn new(handler: H) -> Self {
        NotesServer { handler }
    }
}

impl<H> NamedService for NotesServer<H> {
    const NAME: &'static str = SERVICE;
}

impl<H, F, B> tower_service::Service<http::Request<B>> for NotesServer<H>
where
    H: Fn(String, tonic::Request<Note>) -> F + Clone + Send + 'static,
    F: Future<Output = Result<tonic::Response<Note>, Status>> + Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_owned();
        let handler = self.handler.clone();
        Box::pin(async move {
            let unary = tower::service_fn(move |note| handler(method.clone(), note));
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(unary, request).await)
        })
    }
}

/// Calls `method` of [`SERVICE`] over `channel` (a tonic `Channel`, with layers or not).
///
/// # Errors
///
/// The call's status: the server's answer, or the channel's error as tonic maps it.
pub async fn call<T>(channel: T, method: &str, note: tonic::Request<Note>) -> Result<Note, Status>
where
    T: tonic::client::GrpcService<Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|error| Status::from_error(error.into()))?;
    let path = PathAndQuery::try_from(format!("/{SERVICE}/{method}"))
        .map_err(|error| Status::invalid_argument(error.to_string()))?;
    let codec = tonic_prost::ProstCodec::default();
    Ok(grpc.unary(note, path, codec).await?.into_inner())
}
