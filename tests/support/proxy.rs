//! A small HTTP proxy on loopback, between a client under test and a real
//! registry. It records every request (for wire-level assertions: which
//! requests, how many, with or without `Authorization`, how many body bytes)
//! and plays scripted faults: canned answers (429 with `Retry-After`, 503,
//! 401 on a mount), delays, a connection reset in the middle of a body, a
//! truncated body, wrong bytes, and a redirect to a second loopback host (a
//! stand-in for object storage, serving from a "signed" URL) that records
//! whether `Authorization` arrived there.
//!
//! ```ignore
//! let proxy = Proxy::start(&registry.host()).await;
//! proxy.add(Rule::new("GET", "/blobs/").times(1).action(Action::status(429).header("Retry-After", "1")));
//! // point the client at proxy.host() …
//! let log = proxy.log();
//! ```
//!
//! A proxy can also stand for a quota ([`Proxy::set_quota`]): a token
//! bucket for every request and one for writes apart, as Artifact
//! Registry's per-region, per-minute quotas, answering 429 (with or
//! without `Retry-After`) to what the buckets do not cover. The benchmark
//! (`examples/bench_workload.rs quota-proxy`) runs the same code.
//!
//! Only plain HTTP upstreams; everything binds to 127.0.0.1; the server tasks
//! are aborted when the `Proxy` is dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::{combinators::BoxBody, BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub type ProxyBody = BoxBody<Bytes, std::io::Error>;
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<ProxyBody>> + Send>>
        + Send
        + Sync,
>;

/// Serve HTTP/1 on `listener` with `handler` until the task is aborted.
/// Which accepted connection a request came on (a request extension set by
/// [`serve_http`]), to prove connection reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnId(pub u64);

pub fn serve_http(listener: TcpListener, handler: Handler) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        let mut next_conn = 0u64;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            next_conn += 1;
            let conn = ConnId(next_conn);
            let handler = handler.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let handler = handler.clone();
                    req.extensions_mut().insert(conn);
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
            // Reap finished connections so the set does not grow forever.
            while connections.try_join_next().is_some() {}
        }
    })
}

pub fn full(body: impl Into<Bytes>) -> ProxyBody {
    http_body_util::Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

fn stream_body<S>(stream: S) -> ProxyBody
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
{
    BodyExt::boxed(StreamBody::new(stream.map(|r| r.map(Frame::data))))
}

/// Which listener answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Forwarded to the registry.
    Upstream,
    /// Answered by the proxy itself (a scripted fault).
    Injected,
    /// The second host (redirect target).
    Sink,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub status: u16,
    /// Whether an `Authorization` header came with it.
    pub authorization: bool,
    pub content_type: Option<String>,
    /// Request body bytes the proxy received.
    pub request_bytes: u64,
    pub target: Target,
    /// When the request arrived.
    pub at: Instant,
    /// The fault applied, if any (its `Debug`).
    pub fault: Option<String>,
    /// The client connection it came on (numbered per listener).
    pub conn: u64,
}

impl Recorded {
    pub fn is(&self, method: &str, path_contains: &str) -> bool {
        self.method == method && self.path.contains(path_contains)
    }
}

/// What a matching rule does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer directly, without asking the registry.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Wait, then forward.
    Delay(Duration),
    /// Forward, then send half the body and break the connection.
    ResetMidBody,
    /// Forward, then send half the body as a clean chunked answer (no
    /// Content-Length): the client sees a complete but short body.
    Truncate,
    /// Forward, with every body byte inverted (same length).
    WrongBytes,
    /// Fetch from the registry, then answer 307 to the sink host with a
    /// signed-looking URL that serves those bytes.
    RedirectToSink,
    /// Answer 307 to a signed-looking sink URL that does not exist (404).
    RedirectToNowhere,
    // ---- a hostile registry: what no well-behaved registry does
    /// Forward, then send the answer's body one byte every `interval`.
    Trickle(Duration),
    /// Answer a listing page (`field`: `tags` or `repositories`) of
    /// `per_page` made-up names with a `Link` to a next page, forever.
    EndlessPages { field: String, per_page: usize },
    /// Answer a write (blob upload steps, manifest PUT) the way a registry
    /// that stored it would, and store nothing.
    Swallow,
    /// Answer `tags/list` as Google's registries do: with a `manifest` map
    /// of every digest to its media type and tags (read from the registry
    /// behind, one HEAD per tag, which the log does not show).
    GoogleListing,
}

impl Action {
    pub fn status(status: u16) -> Action {
        Action::Respond {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }
    /// Set the body of a `Respond` action.
    pub fn with_body(mut self, text: impl Into<String>) -> Action {
        if let Action::Respond { body, .. } = &mut self {
            *body = text.into();
        }
        self
    }
    /// Add a header to a `Respond` action.
    pub fn header(mut self, name: &str, value: &str) -> Action {
        if let Action::Respond { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }
}

/// A scripted fault: requests matching `method` and containing `path` (and
/// `query`, if set; carrying a body or not, if `with_body` is set) get
/// `action`, `times` times (then pass through).
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub with_body: Option<bool>,
    pub times: usize,
    pub action: Action,
}

impl Rule {
    pub fn new(method: &str, path_contains: &str) -> Rule {
        Rule {
            method: method.to_string(),
            path: path_contains.to_string(),
            query: None,
            with_body: None,
            times: 1,
            action: Action::Delay(Duration::ZERO),
        }
    }
    pub fn query(mut self, contains: &str) -> Rule {
        self.query = Some(contains.to_string());
        self
    }
    /// Only requests that carry a body (a `Content-Length` above 0, or a
    /// chunked one): a monolithic upload's PUT, not the empty PUT that
    /// closes a chunked upload.
    pub fn carrying_a_body(mut self) -> Rule {
        self.with_body = Some(true);
        self
    }
    pub fn times(mut self, times: usize) -> Rule {
        self.times = times;
        self
    }
    pub fn always(self) -> Rule {
        self.times(usize::MAX)
    }
    pub fn action(mut self, action: Action) -> Rule {
        self.action = action;
        self
    }
}

/// A quota in front of the registry: a token bucket every request takes a
/// token from, and one writes (POST, PUT, PATCH, DELETE) take a token from
/// as well; a request finding a bucket empty is answered 429 (Artifact
/// Registry's words) without reaching the registry, and takes nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub requests_per_minute: f64,
    pub writes_per_minute: Option<f64>,
    /// Seconds of refill a full bucket holds: the burst it lets through.
    pub burst_secs: f64,
    /// Answer with `Retry-After` (whole seconds until a token, at least 1).
    pub retry_after: bool,
}

impl Quota {
    /// `requests_per_minute` for every request, bursts of one second's
    /// worth, without `Retry-After`.
    pub fn per_minute(requests_per_minute: f64) -> Quota {
        Quota {
            requests_per_minute,
            writes_per_minute: None,
            burst_secs: 1.0,
            retry_after: false,
        }
    }
    pub fn writes_per_minute(mut self, writes: f64) -> Quota {
        self.writes_per_minute = Some(writes);
        self
    }
    pub fn with_retry_after(mut self) -> Quota {
        self.retry_after = true;
        self
    }
}

/// One token bucket.
#[derive(Debug)]
struct Bucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(per_minute: f64, burst_secs: f64) -> Bucket {
        let per_second = per_minute / 60.0;
        let capacity = (per_second * burst_secs).max(1.0);
        Bucket {
            per_second,
            capacity,
            tokens: capacity,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.at = now;
    }

    /// How long until a token: zero when there is one.
    fn wait(&self) -> Duration {
        if self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
    }
}

/// A quota in force, and what it let through.
#[derive(Debug)]
struct QuotaState {
    quota: Quota,
    all: Bucket,
    writes: Option<Bucket>,
}

impl QuotaState {
    fn new(quota: Quota) -> QuotaState {
        QuotaState {
            quota,
            all: Bucket::new(quota.requests_per_minute, quota.burst_secs),
            writes: quota
                .writes_per_minute
                .map(|w| Bucket::new(w, quota.burst_secs)),
        }
    }

    /// Take the tokens `method` needs, or answer how long until they are
    /// there and which quota ran out.
    fn take(&mut self, method: &str) -> Result<(), (Duration, &'static str)> {
        let now = Instant::now();
        self.all.refill(now);
        let mut wait = (self.all.wait(), "Requests");
        let write = !matches!(method, "GET" | "HEAD");
        let mut writes = self.writes.as_mut().filter(|_| write);
        if let Some(w) = writes.as_mut() {
            w.refill(now);
            if w.wait() > wait.0 {
                wait = (w.wait(), "Write requests");
            }
        }
        if !wait.0.is_zero() {
            return Err(wait);
        }
        self.all.tokens -= 1.0;
        if let Some(w) = writes {
            w.tokens -= 1.0;
        }
        Ok(())
    }
}

/// The answer of a quota that ran out (`metric`: which one).
fn quota_exceeded(quota: &Quota, wait: Duration, metric: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({"errors": [{
        "code": "TOOMANYREQUESTS",
        "message": format!("Quota exceeded for quota metric '{metric}' and limit '{metric} per minute per region'"),
    }]});
    let mut response = Response::builder()
        .status(429)
        .header("Content-Type", "application/json");
    if quota.retry_after {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        response = response.header("Retry-After", secs.to_string());
    }
    response.body(full(body.to_string())).unwrap()
}

/// The `fault` of a request the quota answered.
pub const QUOTA_FAULT: &str = "quota";

/// The secret-looking query the sink's URLs carry, for redaction tests.
pub const SINK_SIGNATURE: &str = "X-Signature=sink-signature-s3cr3t";

struct State {
    upstream: String,
    sink_port: u16,
    client: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
    log: Mutex<Vec<Recorded>>,
    parked: Mutex<HashMap<u64, (Bytes, Option<String>)>>,
    next_id: AtomicUsize,
    quota: Mutex<Option<QuotaState>>,
}

/// A recording, fault-injecting proxy in front of one registry.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Proxy {
    /// A proxy to `upstream` (`127.0.0.1:PORT`, plain HTTP).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sink_addr = sink_listener.local_addr().unwrap();
        let state = Arc::new(State {
            upstream: upstream.to_string(),
            sink_port: sink_addr.port(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            rules: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            parked: Mutex::new(HashMap::new()),
            next_id: AtomicUsize::new(1),
            quota: Mutex::new(None),
        });
        let s = state.clone();
        let main: Handler = Arc::new(move |req| {
            let s = s.clone();
            Box::pin(async move { handle(s, req).await })
        });
        let s = state.clone();
        let sink: Handler = Arc::new(move |req| {
            let s = s.clone();
            Box::pin(async move { handle_sink(s, req).await })
        });
        Proxy {
            addr,
            state,
            tasks: vec![serve_http(listener, main), serve_http(sink_listener, sink)],
        }
    }

    /// `127.0.0.1:PORT`: what the client should use as the registry host.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Add a scripted fault; rules are tried in the order added.
    pub fn add(&self, rule: Rule) {
        self.state.rules.lock().unwrap().push(rule);
    }

    /// Put `quota` in front of the registry (`None`: take it away); the
    /// buckets start full. Checked before the rules.
    pub fn set_quota(&self, quota: Option<Quota>) {
        *self.state.quota.lock().unwrap() = quota.map(QuotaState::new);
    }

    /// Requests answered so far, and how many of them the quota answered 429.
    pub fn quota_counts(&self) -> (usize, usize) {
        let log = self.state.log.lock().unwrap();
        let throttled = log
            .iter()
            .filter(|r| r.fault.as_deref() == Some(QUOTA_FAULT))
            .count();
        (log.len(), throttled)
    }

    pub fn clear_rules(&self) {
        self.state.rules.lock().unwrap().clear();
    }

    /// Every request so far, in arrival order of their answers.
    pub fn log(&self) -> Vec<Recorded> {
        let mut log = self.state.log.lock().unwrap().clone();
        log.sort_by_key(|r| r.at);
        log
    }

    pub fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }

    /// Requests with `method` whose path contains `path`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.log()
            .iter()
            .filter(|r| r.is(method, path_contains))
            .count()
    }

    /// Print the log (for failing tests).
    pub fn dump(&self) -> String {
        self.log()
            .iter()
            .map(|r| {
                format!(
                    "{:?} conn={} {} {} -> {} auth={} bytes={} fault={:?}\n",
                    r.target,
                    r.conn,
                    r.method,
                    r.path,
                    r.status,
                    r.authorization,
                    r.request_bytes,
                    r.fault
                )
            })
            .collect()
    }
}

fn take_rule(
    state: &State,
    method: &str,
    path: &str,
    query: &str,
    has_body: bool,
) -> Option<Action> {
    let mut rules = state.rules.lock().unwrap();
    for rule in rules.iter_mut() {
        if rule.times == 0 || rule.method != method || !path.contains(&rule.path) {
            continue;
        }
        if rule.with_body.is_some_and(|wanted| wanted != has_body) {
            continue;
        }
        if let Some(q) = &rule.query {
            if !query.contains(q.as_str()) {
                continue;
            }
        }
        rule.times = rule.times.saturating_sub(1);
        return Some(rule.action.clone());
    }
    None
}

fn conn_of(req: &Request<Incoming>) -> u64 {
    req.extensions().get::<ConnId>().map_or(0, |c| c.0)
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    let at = Instant::now();
    let conn = conn_of(&req);
    let method = req.method().as_str().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let query = req.uri().query().unwrap_or("").to_string();
    let authorization = req.headers().contains_key(hyper::header::AUTHORIZATION);
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let req = match over_quota(&state, req, &method, &path, authorization, at, conn).await {
        Ok(req) => req,
        Err(answer) => return answer,
    };
    let has_body = req.headers().contains_key(hyper::header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|length| length > 0);
    let action = take_rule(&state, &method, req.uri().path(), &query, has_body);
    let record = |status: u16, target: Target, bytes: u64, fault: &Option<Action>| Recorded {
        method: method.clone(),
        path: path.clone(),
        status,
        authorization,
        content_type: content_type.clone(),
        request_bytes: bytes,
        target,
        at,
        fault: fault.as_ref().map(|a| format!("{a:?}")),
        conn,
    };

    if let Some(Action::Respond {
        status,
        headers,
        body,
    }) = &action
    {
        let bytes = read_body(req).await;
        state
            .log
            .lock()
            .unwrap()
            .push(record(*status, Target::Injected, bytes, &action));
        let mut response = Response::builder().status(*status);
        for (name, value) in headers {
            response = response.header(name.as_str(), value.as_str());
        }
        return response.body(full(body.clone())).unwrap();
    }
    if let Some(Action::GoogleListing) = &action {
        let response = google_listing(&state, &path).await;
        let status = response.status().as_u16();
        state
            .log
            .lock()
            .unwrap()
            .push(record(status, Target::Injected, 0, &action));
        return response;
    }
    if let Some(hostile @ (Action::EndlessPages { .. } | Action::Swallow)) = &action {
        let response = answer_hostile(hostile, req).await;
        let status = response.status().as_u16();
        state
            .log
            .lock()
            .unwrap()
            .push(record(status, Target::Injected, 0, &action));
        return response;
    }
    if let Some(Action::RedirectToNowhere) = &action {
        state
            .log
            .lock()
            .unwrap()
            .push(record(307, Target::Injected, 0, &action));
        // Id 0 is never parked.
        return redirect_to_sink(&state, 0);
    }
    if let Some(Action::Delay(wait)) = &action {
        tokio::time::sleep(*wait).await;
    }

    // Forward, keeping Host so the registry's Location headers point back here.
    let counted = Arc::new(AtomicU64::new(0));
    let (parts, body) = req.into_parts();
    let url = format!("http://{}{}", state.upstream, path);
    let mut forward = state.client.request(parts.method.clone(), &url);
    for (name, value) in parts.headers.iter() {
        if is_hop_by_hop(name) {
            continue;
        }
        forward = forward.header(name, value);
    }
    let has_body = parts.headers.contains_key(hyper::header::CONTENT_LENGTH)
        || parts.headers.contains_key(hyper::header::TRANSFER_ENCODING);
    if has_body {
        let c = counted.clone();
        let stream = http_body_util::BodyStream::new(body).filter_map(move |frame| {
            let c = c.clone();
            async move {
                match frame {
                    Ok(f) => f.into_data().ok().map(|d| {
                        c.fetch_add(d.len() as u64, Ordering::Relaxed);
                        Ok::<_, std::io::Error>(d)
                    }),
                    Err(e) => Some(Err(std::io::Error::other(e))),
                }
            }
        });
        forward = forward.body(reqwest::Body::wrap_stream(stream));
    }
    let upstream = match forward.send().await {
        Ok(r) => r,
        Err(e) => {
            state.log.lock().unwrap().push(record(
                502,
                Target::Upstream,
                counted.load(Ordering::Relaxed),
                &action,
            ));
            return Response::builder()
                .status(502)
                .body(full(format!("proxy: upstream failed: {e}")))
                .unwrap();
        }
    };
    let status = upstream.status().as_u16();
    let request_bytes = counted.load(Ordering::Relaxed);

    if matches!(action, Some(Action::RedirectToSink)) && upstream.status().is_success() {
        let content_type = upstream
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = upstream.bytes().await.unwrap_or_default();
        let id = state.next_id.fetch_add(1, Ordering::Relaxed) as u64;
        state
            .parked
            .lock()
            .unwrap()
            .insert(id, (bytes, content_type));
        state
            .log
            .lock()
            .unwrap()
            .push(record(307, Target::Injected, request_bytes, &action));
        return redirect_to_sink(&state, id);
    }

    state
        .log
        .lock()
        .unwrap()
        .push(record(status, Target::Upstream, request_bytes, &action));

    let mut response = Response::builder().status(status);
    let content_length = upstream.content_length();
    for (name, value) in upstream.headers().iter() {
        if is_hop_by_hop(name) {
            continue;
        }
        if matches!(action, Some(Action::Truncate)) && name == hyper::header::CONTENT_LENGTH {
            continue; // chunked instead, so the short body ends cleanly
        }
        response = response.header(name, value);
    }
    let body = upstream
        .bytes_stream()
        .map(|r| r.map_err(std::io::Error::other));
    let body: ProxyBody = match (&action, content_length) {
        (Some(Action::ResetMidBody), Some(len)) if len > 1 => {
            stream_body(cut_after(body, len / 2, true))
        }
        (Some(Action::Truncate), Some(len)) if len > 1 => {
            stream_body(cut_after(body, len / 2, false))
        }
        (Some(Action::WrongBytes), _) => stream_body(
            body.map(|r| r.map(|b| Bytes::from(b.iter().map(|x| !x).collect::<Vec<u8>>()))),
        ),
        (Some(Action::Trickle(interval)), _) => stream_body(trickle(body, *interval)),
        _ => stream_body(body),
    };
    response.body(body).unwrap()
}

/// Read (and count) the request body of a request the proxy answers
/// itself, as a server would: an answer before it leaves the client's
/// upload hanging on the connection.
async fn read_body(req: Request<Incoming>) -> u64 {
    req.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len() as u64)
        .unwrap_or(0)
}

/// `req` when the quota (if any) covers it; else the 429 it gets, logged.
async fn over_quota(
    state: &State,
    req: Request<Incoming>,
    method: &str,
    path: &str,
    authorization: bool,
    at: Instant,
    conn: u64,
) -> Result<Request<Incoming>, Response<ProxyBody>> {
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let quota = state
        .quota
        .lock()
        .unwrap()
        .as_mut()
        .map(|q| (q.quota, q.take(method)));
    let Some((quota, Err((wait, metric)))) = quota else {
        return Ok(req);
    };
    let bytes = read_body(req).await;
    state.log.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: path.to_string(),
        status: 429,
        authorization,
        content_type,
        request_bytes: bytes,
        target: Target::Injected,
        at,
        fault: Some(QUOTA_FAULT.to_string()),
        conn,
    });
    Err(quota_exceeded(&quota, wait, metric))
}

/// `inner`'s bytes, one every `interval`.
fn trickle<S>(
    inner: S,
    interval: Duration,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
{
    inner
        .flat_map(|chunk| {
            let bytes: Vec<Result<Bytes, std::io::Error>> = match chunk {
                Ok(b) => (0..b.len()).map(|i| Ok(b.slice(i..i + 1))).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(bytes)
        })
        .then(move |byte| async move {
            tokio::time::sleep(interval).await;
            byte
        })
}

/// `tags/list` with Google's `manifest` map, built from the registry behind.
async fn google_listing(state: &State, path_and_query: &str) -> Response<ProxyBody> {
    let path = path_and_query.split('?').next().unwrap_or(path_and_query);
    let upstream = format!("http://{}{path}", state.upstream);
    let listed = match state.client.get(&upstream).send().await {
        Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.ok(),
        Ok(r) => {
            return Response::builder()
                .status(r.status().as_u16())
                .body(full(Bytes::new()))
                .unwrap()
        }
        Err(_) => None,
    };
    let Some(listed) = listed else {
        return Response::builder()
            .status(502)
            .body(full(Bytes::new()))
            .unwrap();
    };
    let repo = path
        .trim_start_matches("/v2/")
        .trim_end_matches("/tags/list");
    let mut manifest = serde_json::Map::new();
    for tag in listed["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
    {
        let head = state
            .client
            .head(format!(
                "http://{}/v2/{repo}/manifests/{tag}",
                state.upstream
            ))
            .header("Accept", promoter::oci::media_type::ACCEPTED.join(", "))
            .send()
            .await;
        let Ok(head) = head else { continue };
        let header = |name: &str| {
            head.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (Some(digest), Some(media_type)) =
            (header("docker-content-digest"), header("content-type"))
        else {
            continue;
        };
        let entry = manifest
            .entry(digest)
            .or_insert_with(|| serde_json::json!({ "mediaType": media_type, "tag": [] }));
        entry["tag"].as_array_mut().unwrap().push(tag.into());
    }
    let body = serde_json::json!({
        "child": [],
        "manifest": manifest,
        "name": listed["name"],
        "tags": listed["tags"],
    });
    Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .body(full(body.to_string()))
        .unwrap()
}

/// What a hostile registry answers (see the hostile [`Action`]s).
async fn answer_hostile(action: &Action, req: Request<Incoming>) -> Response<ProxyBody> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    match action {
        Action::EndlessPages { field, per_page } => {
            // Pages are numbered by their `last=` name: p<page>-<index>.
            let page: u64 = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("last=p"))
                .and_then(|rest| rest.split('-').next())
                .and_then(|n| n.parse().ok())
                .map_or(0, |n: u64| n + 1);
            let names: Vec<String> = (0..*per_page)
                .map(|i| format!("p{page:09}-{i:06}"))
                .collect();
            let last = names.last().cloned().unwrap_or_default();
            let body = serde_json::json!({ "name": "endless", field.as_str(): names });
            Response::builder()
                .status(200)
                .header("Content-Type", "application/json")
                .header(
                    "Link",
                    format!("<{path}?n={per_page}&last={last}>; rel=\"next\""),
                )
                .body(full(body.to_string()))
                .unwrap()
        }
        Action::Swallow => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let repo_and_rest = path.trim_start_matches("/v2/");
            if method == hyper::Method::POST && path.ends_with("/blobs/uploads/") {
                let id = format!("swallowed-{}", body.len());
                return Response::builder()
                    .status(202)
                    .header("Location", format!("{path}{id}"))
                    .header("Docker-Upload-UUID", id)
                    .body(full(Bytes::new()))
                    .unwrap();
            }
            if method == hyper::Method::PATCH {
                return Response::builder()
                    .status(202)
                    .header("Location", path.as_str())
                    .body(full(Bytes::new()))
                    .unwrap();
            }
            if method == hyper::Method::PUT && path.contains("/blobs/uploads/") {
                let digest = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("digest="))
                    .unwrap_or("")
                    .replace("%3A", ":");
                return Response::builder()
                    .status(201)
                    .header("Docker-Content-Digest", digest)
                    .body(full(Bytes::new()))
                    .unwrap();
            }
            if method == hyper::Method::PUT && repo_and_rest.contains("/manifests/") {
                let digest = promoter::reference::Digest::sha256_of(&body);
                return Response::builder()
                    .status(201)
                    .header("Docker-Content-Digest", digest.as_str())
                    .body(full(Bytes::new()))
                    .unwrap();
            }
            Response::builder()
                .status(405)
                .body(full(Bytes::new()))
                .unwrap()
        }
        _ => unreachable!("not a hostile action"),
    }
}

/// The first `keep` bytes of `inner`, then an error (`fail`) or a clean end.
fn cut_after<S>(
    inner: S,
    keep: u64,
    fail: bool,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static
where
    S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
{
    futures::stream::unfold(
        (Box::pin(inner), keep, false),
        move |(mut inner, left, finished)| async move {
            if finished {
                return None;
            }
            if left == 0 {
                return if fail {
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "proxy: injected reset",
                        )),
                        (inner, 0, true),
                    ))
                } else {
                    None
                };
            }
            match inner.next().await {
                Some(Ok(chunk)) => {
                    let take = (chunk.len() as u64).min(left);
                    Some((
                        Ok(chunk.slice(..take as usize)),
                        (inner, left - take, false),
                    ))
                }
                Some(Err(e)) => Some((Err(e), (inner, 0, true))),
                None => None,
            }
        },
    )
}

async fn handle_sink(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    let at = Instant::now();
    let conn = conn_of(&req);
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let authorization = req.headers().contains_key(hyper::header::AUTHORIZATION);
    let id: Option<u64> = req
        .uri()
        .path()
        .strip_prefix("/sink/")
        .and_then(|s| s.parse().ok());
    let signed = req.uri().query() == Some(SINK_SIGNATURE);
    let found = id.and_then(|id| state.parked.lock().unwrap().get(&id).cloned());
    let (status, body, content_type) = match (found, signed) {
        (Some((bytes, ct)), true) => (200, bytes, ct),
        (Some(_), false) => (403, Bytes::from_static(b"bad signature"), None),
        (None, _) => (404, Bytes::new(), None),
    };
    state.log.lock().unwrap().push(Recorded {
        method: req.method().as_str().to_string(),
        path,
        status,
        authorization,
        content_type: None,
        request_bytes: 0,
        target: Target::Sink,
        at,
        fault: None,
        conn,
    });
    let mut response = Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("Content-Length", body.len().to_string());
    if let Some(ct) = content_type {
        response = response.header(
            "Content-Type",
            HeaderValue::from_str(&ct)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        );
    }
    if req.method() == hyper::Method::HEAD {
        return response.body(full(Bytes::new())).unwrap();
    }
    response.body(full(body)).unwrap()
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
    )
}

/// A 307 to the sink host with a signed-looking query. Another host name
/// than the registry's (localhost, not 127.0.0.1) and another port: another
/// origin on every count.
fn redirect_to_sink(state: &State, id: u64) -> Response<ProxyBody> {
    let location = format!(
        "http://localhost:{}/sink/{id}?{SINK_SIGNATURE}",
        state.sink_port
    );
    Response::builder()
        .status(307)
        .header("Location", location)
        .body(full(Bytes::new()))
        .unwrap()
}
