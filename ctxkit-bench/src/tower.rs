//! `tower.*` workloads: what ctxkit-tower's layers add to a hello-world request, against the
//! same service without them (the target: the layer adds at most 2 % to a hello-world
//! request's latency on loopback, and at most 1 us of CPU per request).
//!
//! * `tower.server_layer_cpu` and `tower.client_layer_cpu`, in process (no network, no I/O):
//!   a hello-world `tower::service_fn` returning `Response<Full<Bytes>>`, called N times on a
//!   current-thread tokio runtime (`ready`, `call`, the future awaited, the body drained), bare
//!   (`none`) and behind the layer (`ctxkit-tower/server`, `ctxkit-tower/client`); ns per
//!   request, and heap allocations per request in the note. The server's requests carry
//!   `x-request-timeout-ms: 400` in both forms; the client's layered requests carry a context
//!   with a deadline (set with `set_context`, counted as part of the layer's cost), the bare
//!   ones none.
//! * `tower.hello_latency`, `tower.hello_latency_p99` and `tower.hello_cpu`, over loopback: a
//!   hyper 1 HTTP/1.1 server (hyper's own `http1` connection, the service adapted with
//!   hyper-util's `TowerToHyperService`) on 127.0.0.1, on a thread of its own running a
//!   current-thread tokio runtime, and a keep-alive hyper `http1` client on the runner's thread
//!   on another current-thread runtime, sending one GET after another. Current-thread runtimes:
//!   no work stealing, one thread a side, like a client and a server process. Four forms, each
//!   on its own connection: neither layer (`none`), `ServerLayer` on the server, `ClientLayer`
//!   on the client, both. Per batch: the p50 and p99 of the requests' latencies (from building
//!   the request to its body drained), and the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`:
//!   both sides and any thread the layers wake) over the batch divided by its requests.
//!
//!   Both threads are pinned to one CPU, so every hand-over is a context switch there. Left to
//!   the scheduler they land either on one CPU (about 20 us a request on the 2-vCPU VM of
//!   `BENCHMARKS.md`) or on two (about 65 us, most of it waking a halted vCPU), process by
//!   process: a bimodal figure. `tower.hello_2cpu_*` measures the same with the two threads
//!   pinned to two CPUs.
//!
//! Each layered form is measured beside its baseline in the same rounds (one batch of each per
//! round, the order rotated every round), and each `*_added` line is the median over rounds of
//! the per-round difference from `none` (paired, so drift between rounds cancels):
//! `tower.server_layer_added` and `tower.client_layer_added` in ns per request,
//! `tower.hello_latency_added` in % of `none`'s p50, `tower.hello_cpu_added` in us per request
//! (and the same for `tower.hello_2cpu_*`).

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::Future;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::{pin, Pin};
use std::task::{Context as TaskContext, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ::tower::{service_fn, Layer, Service, ServiceExt};
use bytes::{Buf, Bytes};
use ctxkit::Context;
use ctxkit_tower::{ClientLayer, ClientService, ContextExt, ServerLayer, TIMEOUT_HEADER};
use http::header::{HeaderName, HeaderValue, HOST};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{calibrate, count_heap, emit, percentile, progress, stats, Cfg};

/// The body of every answer.
const HELLO: &[u8] = b"Hello, World!";

/// The remaining milliseconds a caller with 400 ms left sends (the crate's own example).
const BUDGET_MS: &str = "400";

/// Runs the selected `tower.*` workloads.
pub(crate) fn run(cfg: &Cfg) {
    server_layer_cpu(cfg);
    client_layer_cpu(cfg);
    hello_loopback(cfg);
}

/// The hello-world handler: a constant body, whatever the request.
async fn hello<B>(_request: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(HELLO))))
}

fn timeout_header() -> HeaderName {
    HeaderName::from_static(TIMEOUT_HEADER)
}

/// Reads `body` to its end; the bytes of its data frames.
async fn drain<B>(body: B) -> usize
where
    B: Body,
    B::Data: Buf,
    B::Error: Debug,
{
    let mut body = pin!(body);
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("a hello body does not fail").into_data() {
            bytes += data.remaining();
        }
    }
    bytes
}

/// Calls `service` `n` times with a request as a caller with 400 ms left sends it, each
/// answer's body drained.
async fn serve_n<S, B>(service: &mut S, n: usize)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: Debug,
    B: Body,
    B::Data: Buf,
    B::Error: Debug,
{
    for _ in 0..n {
        let mut request = Request::new(());
        request
            .headers_mut()
            .insert(timeout_header(), HeaderValue::from_static(BUDGET_MS));
        let response = service
            .ready()
            .await
            .expect("always ready")
            .call(request)
            .await
            .expect("hello never fails");
        black_box(drain(response.into_body()).await);
    }
}

/// Calls `client` `n` times, each request carrying `ctx` if given, each answer's body drained.
async fn call_n<S, B>(client: &mut S, n: usize, ctx: Option<&Context>)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: Debug,
    B: Body,
    B::Data: Buf,
    B::Error: Debug,
{
    for _ in 0..n {
        let mut request = Request::new(());
        if let Some(ctx) = ctx {
            request.set_context(ctx.clone());
        }
        let response = client
            .ready()
            .await
            .expect("always ready")
            .call(request)
            .await
            .expect("the call is sent");
        black_box(drain(response.into_body()).await);
    }
}

/// Calibrates each of `ops` (`op(n)` does n requests) to a micro batch, warms each up, then
/// runs `cfg.micro_runs()` rounds of one batch of each, the baseline first in even rounds and
/// second in odd ones; each op's ns per request, one figure per round.
fn paired(cfg: &Cfg, mut ops: [&mut dyn FnMut(usize); 2]) -> [Vec<f64>; 2] {
    let target = cfg.micro_target();
    let counts = [
        calibrate(target, &mut ops[0]),
        calibrate(target, &mut ops[1]),
    ];
    for (op, &n) in ops.iter_mut().zip(&counts) {
        op(n);
    }
    let mut figures = [Vec::new(), Vec::new()];
    for round in 0..cfg.micro_runs() {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let start = Instant::now();
            ops[i](counts[i]);
            figures[i].push(start.elapsed().as_nanos() as f64 / counts[i] as f64);
        }
    }
    figures
}

/// Requests whose heap allocations are counted, after the timed rounds.
const COUNTED: usize = 1000;

/// Heap allocations per request of `op(COUNTED)` (`op(n)` does n requests).
fn allocations_per_request(op: impl FnOnce(usize)) -> f64 {
    let ((), _bytes, allocations) = count_heap(|| op(COUNTED));
    allocations as f64 / COUNTED as f64
}

/// The per-round differences `with - without`.
fn differences(without: &[f64], with: &[f64]) -> Vec<f64> {
    with.iter().zip(without).map(|(w, b)| w - b).collect()
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Emits a baseline, its layered form and the paired difference of an in-process workload.
fn emit_in_process(
    workload: &str,
    added: &str,
    form: &str,
    [none, with]: [Vec<f64>; 2],
    [allocations_none, allocations_with]: [f64; 2],
    what: &str,
) {
    let (base, layered) = (stats(&none), stats(&with));
    let diff = stats(&differences(&none, &with));
    let method = format!("one request after another on a current-thread tokio runtime (block_on): ready().await, call(request).await, the response body drained frame by frame; batches calibrated as the micro benchmarks', the bare and layered batches alternating in each round; heap allocations per request (counted over {COUNTED} more requests): bare {allocations_none:.1}, layered {allocations_with:.1}");
    emit(
        workload,
        "none",
        "ns_per_op",
        Some(base),
        &format!("{what}, bare; {method}"),
    );
    emit(
        workload,
        form,
        "ns_per_op",
        Some(layered),
        &format!(
            "{what}, behind the layer; {method}; added (median of per-round differences): {:.0} ns per request, {:.2}x the bare call",
            diff.value,
            layered.value / base.value
        ),
    );
    emit(
        added,
        form,
        "ns_per_op",
        Some(diff),
        &format!("{workload}: per round, the layered batch's ns per request minus the bare batch's of the same round; median, min and max over rounds"),
    );
}

fn server_layer_cpu(cfg: &Cfg) {
    if !cfg.want(&["tower.server_layer_cpu", "tower.server_layer_added"]) {
        return;
    }
    progress("tower.server_layer_cpu");
    let rt = current_thread_runtime();
    let root = Context::background().with_cancel();
    let mut bare = service_fn(hello::<()>);
    let mut layered = ServerLayer::new(&root).layer(service_fn(hello::<()>));
    let figures = paired(
        cfg,
        [&mut |n| rt.block_on(serve_n(&mut bare, n)), &mut |n| {
            rt.block_on(serve_n(&mut layered, n))
        }],
    );
    let allocations = [
        allocations_per_request(|n| rt.block_on(serve_n(&mut bare, n))),
        allocations_per_request(|n| rt.block_on(serve_n(&mut layered, n))),
    ];
    emit_in_process(
        "tower.server_layer_cpu",
        "tower.server_layer_added",
        "ctxkit-tower/server",
        figures,
        allocations,
        "in process, no network: a hello-world tower::service_fn answering Response<Full<Bytes>> (13 bytes) to a Request<()> carrying x-request-timeout-ms: 400; ServerLayer::new(root) with its defaults (the request's context: a child of the root with the caller's deadline, canceled when the body's last frame is out)",
    );
}

fn client_layer_cpu(cfg: &Cfg) {
    if !cfg.want(&["tower.client_layer_cpu", "tower.client_layer_added"]) {
        return;
    }
    progress("tower.client_layer_cpu");
    let rt = current_thread_runtime();
    let ctx = Context::background().with_timeout(Duration::from_secs(3600));
    let mut bare = service_fn(hello::<()>);
    let mut layered = ClientLayer::new().layer(service_fn(hello::<()>));
    let figures = paired(
        cfg,
        [&mut |n| rt.block_on(call_n(&mut bare, n, None)), &mut |n| {
            rt.block_on(call_n(&mut layered, n, Some(ctx.context())))
        }],
    );
    let allocations = [
        allocations_per_request(|n| rt.block_on(call_n(&mut bare, n, None))),
        allocations_per_request(|n| rt.block_on(call_n(&mut layered, n, Some(ctx.context())))),
    ];
    emit_in_process(
        "tower.client_layer_cpu",
        "tower.client_layer_added",
        "ctxkit-tower/client",
        figures,
        allocations,
        "in process, no network: a trivial transport (a tower::service_fn answering Response<Full<Bytes>>) called with a Request<()>; bare: no context; layered: ClientLayer::new() with its defaults, each request given a clone of one long-lived context with a 1 h deadline (set_context: one extension insert, counted as the layer's cost), which the layer writes as x-request-timeout-ms and races the call and the body against",
    );
}

// ===== hyper over loopback =====

/// The hello-world servers: one without the layer, one with it, on one thread of their own
/// running a current-thread tokio runtime; stopped on drop.
struct Servers {
    plain: SocketAddr,
    layered: SocketAddr,
    /// Whether the server's thread was pinned to the CPU asked for.
    pinned: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Servers {
    /// Starts the servers' thread, pinned to `cpu` if given.
    fn start(cpu: Option<usize>) -> Servers {
        let (addresses, started) = std::sync::mpsc::channel();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tower-hello-server".into())
            .spawn(move || {
                let pinned = cpu.is_some_and(|cpu| affinity::set(&[cpu]));
                current_thread_runtime().block_on(async move {
                    let bind = || TcpListener::bind((Ipv4Addr::LOCALHOST, 0));
                    let plain = bind().await.expect("bind 127.0.0.1:0");
                    let layered = bind().await.expect("bind 127.0.0.1:0");
                    let address = |l: &TcpListener| l.local_addr().expect("a bound address");
                    addresses
                        .send((address(&plain), address(&layered), pinned))
                        .expect("the runner waits for the addresses");
                    let root = Context::background().with_cancel(); // the server's root
                    let plain_service = service_fn(hello::<Incoming>);
                    let layered_service =
                        ServerLayer::new(&root).layer(service_fn(hello::<Incoming>));
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            accepted = plain.accept() => serve(accepted, plain_service),
                            accepted = layered.accept() => serve(accepted, layered_service.clone()),
                        }
                    }
                    root.cancel();
                });
            })
            .expect("spawn the server thread");
        let (plain, layered, pinned) = started.recv().expect("the server thread starts");
        Servers {
            plain,
            layered,
            pinned,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves one accepted connection (HTTP/1.1, keep-alive) with `service` in a task.
fn serve<S, B>(accepted: std::io::Result<(TcpStream, SocketAddr)>, service: S)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Ok((stream, _)) = accepted else { return };
    let _ = stream.set_nodelay(true);
    tokio::spawn(async move {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .await;
    });
}

/// One keep-alive HTTP/1.1 client connection as a tower service (the transport under the
/// client layer, and the bare client itself).
struct Connection(hyper::client::conn::http1::SendRequest<Empty<Bytes>>);

type Answer = Result<Response<Incoming>, hyper::Error>;

impl Service<Request<Empty<Bytes>>> for Connection {
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Empty<Bytes>>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}

/// Opens a connection to `address`; its task runs on the current runtime.
async fn connect(address: SocketAddr) -> Connection {
    let stream = TcpStream::connect(address).await.expect("connect");
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Connection(sender)
}

/// A client form: bare (sending the 400 ms header itself) or behind the client layer (the
/// request carrying a context, which the layer writes as the header).
enum Client {
    Bare(Connection),
    Layered(ClientService<Connection>, Context),
}

impl Client {
    /// One GET / to its end; the body's bytes.
    async fn get(&mut self) -> usize {
        let mut request = Request::new(Empty::new());
        request
            .headers_mut()
            .insert(HOST, HeaderValue::from_static("127.0.0.1"));
        match self {
            Client::Bare(connection) => {
                request
                    .headers_mut()
                    .insert(timeout_header(), HeaderValue::from_static(BUDGET_MS));
                let response = connection
                    .ready()
                    .await
                    .expect("the connection is open")
                    .call(request)
                    .await
                    .expect("hello answers");
                drain(response.into_body()).await
            }
            Client::Layered(client, ctx) => {
                request.set_context(ctx.clone());
                let response = client
                    .ready()
                    .await
                    .expect("the connection is open")
                    .call(request)
                    .await
                    .expect("hello answers");
                drain(response.into_body()).await
            }
        }
    }
}

/// The figures of one batch of requests on one form.
#[derive(Clone, Copy, Debug)]
struct Batch {
    /// Latency percentiles, us.
    p50: f64,
    p99: f64,
    /// Process CPU time per request, us.
    cpu: f64,
}

/// The process's CPU time so far (every thread).
pub(crate) fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

async fn batch(client: &mut Client, requests: usize) -> Batch {
    let mut latencies = Vec::with_capacity(requests);
    let cpu_before = process_cpu();
    for _ in 0..requests {
        let start = Instant::now();
        let bytes = client.get().await;
        latencies.push(start.elapsed().as_nanos() as f64 / 1e3);
        assert_eq!(bytes, HELLO.len(), "the whole body");
    }
    let cpu = (process_cpu() - cpu_before).as_nanos() as f64 / 1e3 / requests as f64;
    Batch {
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        cpu,
    }
}

/// The forms of the loopback workloads: (impl, client layer, server layer); `none` first.
const FORMS: [(&str, bool, bool); 4] = [
    ("none", false, false),
    ("ctxkit-tower/server", false, true),
    ("ctxkit-tower/client", true, false),
    ("ctxkit-tower/client+server", true, true),
];

/// Where the loopback workloads' two threads (the client's, the server's) run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// Both pinned to one CPU: every hand-over is a context switch on that CPU.
    SameCpu,
    /// Pinned to two different CPUs: every hand-over wakes the other CPU.
    TwoCpus,
}

impl Placement {
    /// The workloads' names start with this.
    fn prefix(self) -> &'static str {
        match self {
            Placement::SameCpu => "tower.hello",
            Placement::TwoCpus => "tower.hello_2cpu",
        }
    }

    /// The workloads' names: latency p50, p99, CPU, latency added, CPU added.
    fn names(self) -> [String; 5] {
        [
            "latency",
            "latency_p99",
            "cpu",
            "latency_added",
            "cpu_added",
        ]
        .map(|what| format!("{}_{what}", self.prefix()))
    }
}

/// CPU affinity of the calling thread (Linux; elsewhere nothing is pinned).
#[cfg(target_os = "linux")]
mod affinity {
    use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

    /// The CPUs the calling thread may run on, in order.
    pub(super) fn allowed() -> Vec<usize> {
        sched_getaffinity(None)
            .map(|set| {
                (0..CpuSet::MAX_CPU)
                    .filter(|&cpu| set.is_set(cpu))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Lets the calling thread run on `cpus` only; whether that worked.
    pub(super) fn set(cpus: &[usize]) -> bool {
        let mut set = CpuSet::new();
        for &cpu in cpus {
            set.set(cpu);
        }
        sched_setaffinity(None, &set).is_ok()
    }
}

#[cfg(not(target_os = "linux"))]
mod affinity {
    pub(super) fn allowed() -> Vec<usize> {
        Vec::new()
    }

    pub(super) fn set(_cpus: &[usize]) -> bool {
        false
    }
}

fn hello_loopback(cfg: &Cfg) {
    for placement in [Placement::SameCpu, Placement::TwoCpus] {
        let names = placement.names();
        if cfg.want(&names.each_ref().map(String::as_str)) {
            loopback(cfg, placement, &names);
        }
    }
}

fn loopback(cfg: &Cfg, placement: Placement, names: &[String; 5]) {
    let [latency, latency_p99, cpu_name, latency_added, cpu_added] = names;
    progress(&format!("{}_* (hyper over loopback)", placement.prefix()));
    let allowed = affinity::allowed();
    let (client_cpu, server_cpu) = match (placement, allowed.as_slice()) {
        (_, []) => (None, None),
        (Placement::SameCpu, [.., last]) => (Some(*last), Some(*last)),
        (Placement::TwoCpus, [first, .., last]) => (Some(*last), Some(*first)),
        (Placement::TwoCpus, [_]) => {
            for (name, metric, first) in [
                (latency, "us", 0),
                (latency_p99, "us", 0),
                (cpu_name, "us", 0),
                (latency_added, "pct", 1),
                (cpu_added, "us", 1),
            ] {
                for (form, _, _) in &FORMS[first..] {
                    emit(
                        name,
                        form,
                        metric,
                        None,
                        "needs two CPUs; this process may run on one",
                    );
                }
            }
            return;
        }
    };
    let client_pinned = client_cpu.is_some_and(|cpu| affinity::set(&[cpu]));
    let requests = cfg.pick(4000, 300);
    let runs = cfg.micro_runs();
    let servers = Servers::start(server_cpu);
    let rounds: Vec<[Batch; 4]> = current_thread_runtime().block_on(async {
        let client_ctx = Context::background().with_timeout(Duration::from_secs(3600));
        let mut clients = Vec::new();
        for (_, client_layer, server_layer) in FORMS {
            let address = if server_layer {
                servers.layered
            } else {
                servers.plain
            };
            let connection = connect(address).await;
            clients.push(if client_layer {
                Client::Layered(
                    ClientLayer::new().layer(connection),
                    client_ctx.context().clone(),
                )
            } else {
                Client::Bare(connection)
            });
        }
        for client in &mut clients {
            batch(client, requests / 10).await; // warm-up
        }
        let mut rounds = Vec::with_capacity(runs);
        for round in 0..runs {
            let mut figures = [None; 4];
            for k in 0..FORMS.len() {
                let i = (round + k) % FORMS.len();
                figures[i] = Some(batch(&mut clients[i], requests).await);
            }
            rounds.push(figures.map(|f| f.expect("every form measured")));
        }
        rounds
    });
    let server_pinned = servers.pinned;
    drop(servers);
    if client_pinned {
        affinity::set(&allowed); // as before, for the workloads that follow
    }

    let threads = match (placement, client_pinned && server_pinned) {
        (Placement::SameCpu, true) => format!(
            "the client's and the server's threads both pinned to CPU {}",
            client_cpu.unwrap_or_default()
        ),
        (Placement::TwoCpus, true) => format!(
            "the client's thread pinned to CPU {}, the server's to CPU {}",
            client_cpu.unwrap_or_default(),
            server_cpu.unwrap_or_default()
        ),
        (_, false) => {
            "the threads could not be pinned: where they ran is the scheduler's choice".to_owned()
        }
    };
    let column = |i: usize, f: fn(&Batch) -> f64| -> Vec<f64> {
        rounds.iter().map(|round| f(&round[i])).collect()
    };
    let method = format!(
        "hyper 1 HTTP/1.1 over 127.0.0.1: the server (http1::Builder::serve_connection, TowerToHyperService around a tower::service_fn answering Response<Full<Bytes>> of 13 bytes) on a thread of its own running a current-thread tokio runtime; the client (hyper::client::conn::http1, one keep-alive connection per form, TCP_NODELAY on both ends) on the runner's thread on another current-thread runtime, sending GET / one after another; {threads}; {requests} requests per batch, one batch per form per round (order rotated), after a warm-up of {} per form",
        requests / 10
    );
    let describe = |client_layer: bool, server_layer: bool| {
        let client = if client_layer {
            "client: ClientLayer::new() with a context of a 1 h deadline on each request (it writes x-request-timeout-ms)"
        } else {
            "client: bare, writing x-request-timeout-ms: 400 itself"
        };
        let server = if server_layer {
            "server: ServerLayer::new(root) with its defaults"
        } else {
            "server: bare"
        };
        format!("{client}; {server}")
    };
    let base_p50 = stats(&column(0, |b| b.p50)).value;
    let base_cpu = stats(&column(0, |b| b.cpu)).value;
    for (i, &(form, client_layer, server_layer)) in FORMS.iter().enumerate() {
        let forms = describe(client_layer, server_layer);
        let p50 = stats(&column(i, |b| b.p50));
        let cpu = stats(&column(i, |b| b.cpu));
        let versus = if i == 0 {
            String::new()
        } else {
            format!(
                "; {:.3}x none's median ({:+.2} us)",
                p50.value / base_p50,
                p50.value - base_p50
            )
        };
        emit(
            latency,
            form,
            "us",
            Some(p50),
            &format!("{forms}; {method}; the p50 of a batch's request latencies (request built to body drained), median over rounds{versus}"),
        );
        emit(
            latency_p99,
            form,
            "us",
            Some(stats(&column(i, |b| b.p99))),
            &format!(
                "{forms}; {method}; the p99 of a batch's request latencies, median over rounds"
            ),
        );
        let versus = if i == 0 {
            String::new()
        } else {
            format!("; {:+.2} us against none's median", cpu.value - base_cpu)
        };
        emit(
            cpu_name,
            form,
            "us",
            Some(cpu),
            &format!("{forms}; {method}; the process's CPU time over a batch (CLOCK_PROCESS_CPUTIME_ID: client, server and any other thread) divided by its requests, median over rounds{versus}"),
        );
    }
    for (i, &(form, client_layer, server_layer)) in FORMS.iter().enumerate().skip(1) {
        let forms = describe(client_layer, server_layer);
        let added: Vec<f64> = rounds
            .iter()
            .map(|round| (round[i].p50 / round[0].p50 - 1.0) * 100.0)
            .collect();
        emit(
            latency_added,
            form,
            "pct",
            Some(stats(&added)),
            &format!("{forms}; per round, (this form's p50 / none's p50 of the same round - 1) * 100; median, min and max over rounds; method as {latency}"),
        );
        let added: Vec<f64> = rounds
            .iter()
            .map(|round| round[i].cpu - round[0].cpu)
            .collect();
        emit(
            cpu_added,
            form,
            "us",
            Some(stats(&added)),
            &format!("{forms}; per round, this form's process CPU us per request minus none's of the same round; median, min and max over rounds; method as {cpu_name}"),
        );
    }
}
