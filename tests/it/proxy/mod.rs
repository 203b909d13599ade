//! An AWS realism proxy in front of moto. moto answers at once and forgives wrong orders: NATs
//! are available and deleted at once, Cloud Map operations succeed at once, ECS services never
//! run (or drain), deleting a subnet or a namespace still in use is accepted, a force-deleted
//! secret name is free at once, and some ECS service fields are dropped. This proxy puts back
//! what real AWS does — latency, pending states, dependency errors, seeded faults, the dropped
//! fields — and logs every call, so tests and benchmarks see AWS's behaviour, not moto's.
//! What AWS does only sometimes is off unless a test asks for it: NAT gateways that end `failed`,
//! new IAM roles that ECS does not accept yet.
//!
//! Point the binary at it with `AWS_ENDPOINT_URL`:
//! `stack.run(&["apply", ...], &[("AWS_ENDPOINT_URL", proxy.endpoint())])`.
//!
//! It runs on its own thread and tokio runtime, so it keeps answering whether the test is async
//! or blocks on a subprocess. Dropping it stops it.

pub mod config;
pub mod model;
mod wire;
mod world;

use std::collections::HashMap;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::oneshot;

pub use config::{Config, Fault};
use wire::{AwsError, Op};
use world::World;

/// One AWS call that went through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The signing name: `ec2`, `iam`, `ecs`, `servicediscovery`, `secretsmanager`, `logs`...
    pub service: String,
    pub operation: String,
    /// The access key id that signed it (empty for an unsigned call).
    pub access_key: String,
    /// The `prefect-ecs:address` tag the call carries (a create's), if any.
    pub address: Option<String>,
    /// What moto answered, when the call reached it (a lost answer included).
    pub moto_status: Option<u16>,
    /// When the request reached the proxy and when its answer left (or the connection dropped).
    pub start: Instant,
    pub end: Instant,
    /// None when the proxy dropped the connection.
    pub status: Option<u16>,
    pub injected: Option<Injected>,
    /// The request as sent: path, query and body (lossily UTF-8), for tests that look for a
    /// value that must never be sent.
    pub request: RequestText,
}

/// A request's text. Its `Debug` shows only its length: a call log printed in a failure
/// message must not print the secrets a CreateSecret or PutSecretValue carried.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RequestText(pub String);

impl std::fmt::Debug for RequestText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({} bytes)", self.0.len())
    }
}

/// What the proxy answered instead of moto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injected {
    /// A random fault from the configuration.
    Fault(Fault),
    /// An error AWS gives in this situation and moto does not, by its code.
    Refused(&'static str),
    /// A create sent again with a client token already answered: AWS's first answer again.
    Replayed,
}

struct Shared {
    upstream: String,
    config: Config,
    client: Client<HttpConnector, Full<Bytes>>,
    world: Mutex<World>,
    log: Mutex<Vec<Call>>,
    /// Held while moto answers an ECS DescribeServices. moto decides whether the answer shows
    /// tags (`include=TAGS`) by setting a class-wide switch, so two at once, one with and one
    /// without, can strip the tags from the other's answer; AWS answers each as asked.
    describe_services: tokio::sync::Mutex<()>,
    /// Calls forwarded to moto whose answer has not come back yet, whether or not their client
    /// still waits for it.
    forwarding: std::sync::atomic::AtomicUsize,
    /// AWS's idempotency: the answer to each create that carried a client token, by service,
    /// operation and token. The same call again gets the same answer, as from AWS; moto would
    /// make a second resource.
    tokens: Mutex<HashMap<String, (StatusCode, hyper::HeaderMap, Bytes)>>,
}

pub struct Proxy {
    endpoint: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (moto's endpoint, `http://host:port`) on a free loopback port.
    pub fn start(upstream: &str, config: Config) -> Proxy {
        // Bound here, not on the proxy's thread, so the endpoint answers as soon as this returns.
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking socket");
        let endpoint = format!("http://{}", listener.local_addr().expect("local address"));
        let world = World::new(&config);
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            world: Mutex::new(world),
            log: Mutex::new(Vec::new()),
            describe_services: tokio::sync::Mutex::new(()),
            forwarding: Default::default(),
            tokens: Default::default(),
            config,
        });
        let (stop, stopped) = oneshot::channel();
        let serving = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("aws-proxy".into())
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime")
                    .block_on(serve(listener, serving, stopped));
            })
            .expect("spawn the proxy thread");
        Proxy {
            endpoint,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL` or an SDK client's `endpoint_url`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Every finished call so far, in the order they started.
    pub fn calls(&self) -> Vec<Call> {
        let mut calls = self.shared.log.lock().expect("call log").clone();
        calls.sort_by_key(|c| c.start);
        calls
    }

    /// Wait until moto has answered every call forwarded so far. AWS acts on a call the
    /// moment it arrives, also when its client is killed right after; moto may take a while
    /// under load, and a test that goes on at once could see that call land after its next
    /// step (a killed run's lock appearing after `force-unlock`).
    pub fn wait_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self
            .shared
            .forwarding
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
        {
            assert!(Instant::now() < deadline, "moto did not answer within 60 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn reset_log(&self) {
        self.shared.log.lock().expect("call log").clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // Err: the serving loop is already gone, which is what we want.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
            && !std::thread::panicking()
        {
            panic!("the proxy thread panicked");
        }
    }
}

/// The longest chain of calls where each starts after the previous one ended: how many round
/// trips a run needs at least, whatever the latency (calls made in parallel count once).
pub fn round_trip_depth(calls: &[Call]) -> usize {
    let mut by_end: Vec<&Call> = calls.iter().collect();
    by_end.sort_by_key(|c| c.end);
    // depth[i]: the longest chain ending with by_end[i].
    let mut depth: Vec<usize> = Vec::with_capacity(by_end.len());
    for (i, call) in by_end.iter().enumerate() {
        let before = (0..i)
            .filter(|&j| by_end[j].end <= call.start)
            .map(|j| depth[j])
            .max()
            .unwrap_or(0);
        depth.push(before + 1);
    }
    depth.into_iter().max().unwrap_or(0)
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stopped: oneshot::Receiver<()>) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                // A connection that failed before it was accepted: the client will retry.
                Err(_) => continue,
            },
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(Arc::clone(&shared), req));
            // A connection ends in error when the client goes away or a Reset fault drops it.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Returned by the service to make hyper drop the connection without an answer.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the proxy")
    }
}

impl std::error::Error for Dropped {}

/// Logs its call when dropped, so a call is logged however it ends: answered, dropped by a
/// fault, or abandoned by a client that stopped waiting (hyper then drops the handler).
struct Record {
    shared: Arc<Shared>,
    service: String,
    operation: String,
    access_key: String,
    address: Option<String>,
    moto_status: Option<u16>,
    start: Instant,
    status: Option<u16>,
    injected: Option<Injected>,
    request: String,
}

impl Drop for Record {
    fn drop(&mut self) {
        let call = Call {
            service: std::mem::take(&mut self.service),
            operation: std::mem::take(&mut self.operation),
            access_key: std::mem::take(&mut self.access_key),
            address: self.address.take(),
            moto_status: self.moto_status,
            start: self.start,
            end: Instant::now(),
            status: self.status,
            injected: self.injected.take(),
            request: RequestText(std::mem::take(&mut self.request)),
        };
        // A poisoned log means a test already failed; losing this entry changes nothing.
        if let Ok(mut log) = self.shared.log.lock() {
            log.push(call);
        }
    }
}

/// What to do with one call, decided when it arrives.
struct Plan {
    latency: Duration,
    fault: Option<Fault>,
}

impl Shared {
    fn plan(&self, op: &Op) -> Plan {
        let config = &self.config;
        let mut world = self.world.lock().expect("proxy state");
        let key = format!("{}:{}", op.service, op.operation);
        let span = config
            .operation_latency
            .iter()
            .find(|(pattern, _)| config::names(pattern, &op.service, &op.operation))
            .map_or(config.timings.call, |(_, span)| *span);
        let latency = world.dice.span(&format!("latency/{key}"), span);
        let fault = config.faults.as_ref().and_then(|f| {
            let eligible = op.protocol.is_some()
                && (f.operations.is_empty()
                    || f.operations
                        .iter()
                        .any(|p| config::names(p, &op.service, &op.operation)));
            if !eligible || world.dice.unit(&format!("fault/{key}")) >= f.probability {
                return None;
            }
            let pick = world.dice.unit(&format!("fault-kind/{key}"));
            Some(f.kinds[((pick * f.kinds.len() as f64) as usize).min(f.kinds.len() - 1)])
        });
        Plan { latency, fault }
    }

    /// Sends the request on to moto; a moto that cannot be reached answers 502.
    async fn forward(
        &self,
        parts: &hyper::http::request::Parts,
        body: Bytes,
    ) -> (StatusCode, hyper::HeaderMap, Bytes) {
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = Request::builder()
            .method(parts.method.clone())
            .uri(format!("{}{path}", self.upstream))
            .body(Full::new(body))
            .expect("a request to moto");
        for (name, value) in &parts.headers {
            // Hop-by-hop headers are the proxy's own business; no compression, so the proxy
            // can read and rewrite every answer.
            let skip = [
                header::CONNECTION,
                header::TRANSFER_ENCODING,
                header::CONTENT_LENGTH,
                header::ACCEPT_ENCODING,
            ];
            if !skip.contains(name) {
                request.headers_mut().append(name, value.clone());
            }
        }
        let failed = |e: &dyn std::fmt::Display| {
            let body = format!("the test proxy cannot reach moto at {}: {e}", self.upstream);
            (
                StatusCode::BAD_GATEWAY,
                hyper::HeaderMap::new(),
                body.into(),
            )
        };
        let response = match self.client.request(request).await {
            Ok(r) => r,
            Err(e) => return failed(&e),
        };
        let (parts, body) = response.into_parts();
        match body.collect().await {
            Ok(body) => (parts.status, parts.headers, body.to_bytes()),
            Err(e) => failed(&e),
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();

    // moto's own API (reset, state dump) is the test's back door, never part of the experiment.
    if parts.uri.path().starts_with("/moto-api") {
        let (status, headers, body) = shared.forward(&parts, body).await;
        return Ok(respond(status, &headers, body));
    }

    let mut op = Op::identify(&parts.headers, &body);
    if op.protocol.is_none() && parts.uri.path().starts_with("/api/") {
        // An unsigned call under /api: the Prefect API, when a proxy stands in front of a
        // Prefect server (the benchmark's). Only latency and the log apply to it.
        op.service = "prefect".into();
        op.operation = wire::prefect_operation(&parts.method, parts.uri.path());
    }
    let mut record = Record {
        shared: Arc::clone(&shared),
        service: op.service.clone(),
        operation: op.operation.clone(),
        access_key: op.access_key.clone(),
        address: op.address_tag(),
        moto_status: None,
        start: Instant::now(),
        status: None,
        injected: None,
        request: format!("{} {}", parts.uri, String::from_utf8_lossy(&body)),
    };
    let plan = shared.plan(&op);
    // A call is answered `latency` after it arrived, and AWS acts on it then; moto's own time
    // is hidden inside that latency (as AWS's service time is part of its round trip). moto
    // answers one call at a time on the machine's cores: that queue is no part of the
    // experiment, and AWS answers a wave of calls in parallel.
    let arrived = tokio::time::Instant::now();
    let answer_at = arrived + plan.latency;
    let acts_at = arrived.into_std() + plan.latency;

    if let Some(fault) = plan.fault {
        tokio::time::sleep_until(answer_at).await;
        record.injected = Some(Injected::Fault(fault));
        let protocol = op
            .protocol
            .expect("faults are drawn only for known protocols");
        let error = match fault {
            Fault::Reset => return Err(Dropped),
            Fault::Throttle => Some(AwsError::throttling(protocol)),
            Fault::InternalError => Some(AwsError::internal(protocol)),
            Fault::Unavailable => Some(AwsError::unavailable(protocol)),
            Fault::Slow(_) | Fault::Lost => None,
        };
        if let Some(error) = error {
            record.status = Some(error.status);
            return Ok(error_response(&error, protocol));
        }
    }
    let refusal = shared
        .world
        .lock()
        .expect("proxy state")
        .refuse(&op, acts_at);
    if let (Some(error), Some(protocol)) = (refusal, op.protocol) {
        tokio::time::sleep_until(answer_at).await;
        record.status = Some(error.status);
        record.injected = Some(Injected::Refused(error.code));
        return Ok(error_response(&error, protocol));
    }

    if op.service == "ec2" {
        let free = shared
            .world
            .lock()
            .expect("proxy state")
            .addresses_to_free(acts_at);
        for ip in free {
            // The call's own signed headers get moto's attention (account, region); moto checks
            // no signature. Should it refuse, the tool's next CreateNatGateway shows moto's error.
            let disassociate =
                format!("Action=DisassociateAddress&Version=2016-11-15&PublicIp={ip}");
            shared.forward(&parts, disassociate.into()).await;
        }
    }
    let token_key = op
        .client_token()
        .map(|t| format!("{}:{}:{t}", op.service, op.operation));
    let remembered = token_key
        .as_ref()
        .and_then(|k| shared.tokens.lock().expect("tokens").get(k).cloned());
    if let Some((status, headers, body)) = remembered {
        tokio::time::sleep_until(answer_at).await;
        record.status = Some(status.as_u16());
        record.injected = Some(Injected::Replayed);
        return Ok(respond(status, &headers, body));
    }
    // Forwarded and observed in a task of its own: a client killed mid-call (a crash test)
    // must not leave moto changed and the proxy's world not knowing it.
    let world = Arc::clone(&shared);
    let forwarded = op.clone();
    shared
        .forwarding
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let (status, headers, body) = tokio::spawn(async move {
        let one_at_a_time = forwarded.service == "ecs" && forwarded.operation == "DescribeServices";
        let _serialized = if one_at_a_time {
            Some(world.describe_services.lock().await)
        } else {
            None
        };
        let (status, headers, body) = world.forward(&parts, body).await;
        let body = world.world.lock().expect("proxy state").observe(
            &forwarded,
            acts_at.max(Instant::now()),
            status.as_u16(),
            body.to_vec(),
        );
        world
            .forwarding
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        (status, headers, body)
    })
    .await
    .expect("the forwarding task does not panic");
    if let Some(key) = token_key.filter(|_| status.is_success()) {
        let answer = (status, headers.clone(), Bytes::from(body.clone()));
        shared.tokens.lock().expect("tokens").insert(key, answer);
    }
    tokio::time::sleep_until(answer_at).await;
    record.moto_status = Some(status.as_u16());
    if let Some(Fault::Slow(delay)) = plan.fault {
        tokio::time::sleep(delay).await;
    }
    if plan.fault == Some(Fault::Lost) {
        return Err(Dropped);
    }
    record.status = Some(status.as_u16());
    Ok(respond(status, &headers, body.into()))
}

/// moto's answer with the proxy's body: the length is the rewritten body's, never chunked.
fn respond(status: StatusCode, headers: &hyper::HeaderMap, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    for (name, value) in headers {
        let skip = [
            header::CONNECTION,
            header::TRANSFER_ENCODING,
            header::CONTENT_LENGTH,
        ];
        if !skip.contains(name) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    *response.body_mut() = Full::new(body);
    response
}

fn error_response(error: &AwsError, protocol: wire::Protocol) -> Response<Full<Bytes>> {
    let (body, content_type) = error.render(protocol);
    let mut headers = hyper::HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let status = StatusCode::from_u16(error.status).expect("an HTTP status");
    respond(status, &headers, body.into())
}
