//! Sending requests to one registry: the shared client, the in-flight cap and
//! pacing, authentication, redirects, and retries.
//!
//! Layers, from the inside out:
//! - [`Transport::execute`]: one logical request. Waits for an in-flight
//!   permit and the registry's pace ([`super::pacer`]), attaches `Authorization` for
//!   the request's scopes, follows redirects for GET/HEAD by hand, and answers
//!   one 401 by re-authenticating and sending again.
//! - [`Transport::send`]: `execute` again on 429/500/502/503/504 and
//!   connection errors, with exponential backoff and jitter, honouring
//!   `Retry-After`, until a deadline or an attempt limit; a 429 to an
//!   adaptive pacer is retried at the pacer's pace instead (no sooner than
//!   its `Retry-After`), bounded by the deadline. 404 and other client
//!   errors are answers, never retried.
//!
//! Redirects are followed here rather than by reqwest so that the rule is
//! explicit and tested: `Authorization` goes only to the registry's own origin
//! (scheme, host, port). Once a redirect leaves that origin (blob downloads
//! often go to object storage with a signed URL), no later hop gets it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, LOCATION, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};
use tokio::sync::OnceCell;
use url::Url;

use super::auth::{parse_challenges, AuthMode, Authenticator, RealmPolicy, Reauth, Scopes};
use super::body::{paced, Pace};
use super::credentials::CredentialStore;
use super::options::ResolvedOptions;
use super::pacer::{Class, Pacer};
use super::retry::{reqwest_error, retry_after};
use super::tls;
use crate::oci::verify::{Expect, VerifyingStream};
use crate::registry::retry::{with_retries, Failed, RetryClock};
use crate::registry::{
    error_chain, is_retryable_status, BlobOpener, ErrorCode, RegistryError, SafeUrl,
};
use crate::text::printable_cut;

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;
/// How much of an error body is read for its message.
const ERROR_BODY_LIMIT: usize = 16 << 10;

// ---------------------------------------------------------------- client

/// Build the reqwest client for one TLS configuration. Redirects are off:
/// [`Transport::execute`] follows them itself.
pub(crate) fn build_client(opts: &ResolvedOptions) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("promoter/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(opts.connect_timeout)
        .read_timeout(opts.read_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true);
    if opts.insecure {
        builder = builder.tls_danger_accept_invalid_certs(true);
    } else if let Some(path) = &opts.ca_file {
        // Our own TLS configuration: the system's roots plus ca_file's, and
        // a self-signed server certificate named there accepted as itself.
        let config = tls::with_ca_file(path, &read_pem(path)?, client_identity(opts)?)?;
        return builder
            .tls_backend_preconfigured(config)
            .build()
            .map_err(|e| RegistryError::Config {
                what: "HTTP client".to_string(),
                message: error_chain(&e),
            });
    }
    match (&opts.client_cert, &opts.client_key) {
        (Some(cert), Some(key)) => {
            let mut pem = read_pem(cert)?;
            pem.push(b'\n');
            pem.extend(read_pem(key)?);
            let identity =
                reqwest::Identity::from_pem(&pem).map_err(|_| RegistryError::Config {
                    what: cert.display().to_string(),
                    message: "client certificate and key are not a usable PEM pair".to_string(),
                })?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => {
            return Err(RegistryError::Config {
                what: "registry options".to_string(),
                message: "client_cert and client_key go together".to_string(),
            })
        }
    }
    builder.build().map_err(|e| RegistryError::Config {
        what: "HTTP client".to_string(),
        message: error_chain(&e),
    })
}

/// The client certificate and key (PEM) of the options, for mutual TLS.
fn client_identity(opts: &ResolvedOptions) -> Result<Option<tls::ClientIdentity>, RegistryError> {
    match (&opts.client_cert, &opts.client_key) {
        (Some(cert), Some(key)) => Ok(Some(tls::ClientIdentity {
            cert: read_pem(cert)?,
            key: read_pem(key)?,
        })),
        (None, None) => Ok(None),
        _ => Err(RegistryError::Config {
            what: "registry options".to_string(),
            message: "client_cert and client_key go together".to_string(),
        }),
    }
}

/// A PEM file of the registry options (CA bundle, certificate, key).
fn read_pem(path: &std::path::Path) -> Result<Vec<u8>, RegistryError> {
    crate::local_file::read_capped(path, 16 << 20).map_err(|e| match e {
        crate::local_file::ReadError::Io(source) => RegistryError::Io {
            path: path.display().to_string(),
            source,
        },
        other => RegistryError::Config {
            what: path.display().to_string(),
            message: other.to_string(),
        },
    })
}

// ---------------------------------------------------------------- requests

/// A request body that can be produced again for every attempt.
#[derive(Clone)]
pub(crate) enum Body {
    Empty,
    Bytes(Bytes),
    /// A blob: `open` (re)opens its bytes, exactly `size` of them.
    Stream {
        open: BlobOpener,
        size: u64,
    },
}

/// One request to the registry, described so that it can be sent again.
#[derive(Clone)]
pub(crate) struct Req {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Body,
    pub scopes: Scopes,
    /// Follow redirects (GET and HEAD only).
    pub follow_redirects: bool,
    /// Retry transient failures. Off for requests whose repetition is not
    /// safe on its own (a PATCH, the PUT closing an upload session): their
    /// callers restart the whole sequence instead.
    pub retry: bool,
}

impl Req {
    pub(crate) fn new(method: Method, url: Url, scopes: Scopes) -> Req {
        let idempotent = matches!(
            method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE
        );
        Req {
            follow_redirects: matches!(method, Method::GET | Method::HEAD),
            retry: idempotent || method == Method::POST,
            method,
            url,
            headers: HeaderMap::new(),
            body: Body::Empty,
            scopes,
        }
    }
    pub(crate) fn header(mut self, name: HeaderName, value: impl AsRef<str>) -> Req {
        if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
            self.headers.append(name, v);
        }
        self
    }
    pub(crate) fn body(mut self, body: Body) -> Req {
        self.body = body;
        self
    }
    pub(crate) fn no_retry(mut self) -> Req {
        self.retry = false;
        self
    }
}

/// Everything needed to talk to one registry endpoint.
pub(crate) struct Transport {
    /// `host[:port]` as the user names it, for messages and credentials.
    pub host: String,
    /// `scheme://api-host[:port]/`.
    pub base: Url,
    pub opts: ResolvedOptions,
    client: reqwest::Client,
    /// The in-flight limit and request rates of this registry: learnt
    /// from its answers, its own (one slow region never holds another).
    pub(crate) pacer: Pacer,
    pub auth: Authenticator,
    pinged: OnceCell<()>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("host", &self.host)
            .field("base", &SafeUrl::new(&self.base))
            .finish_non_exhaustive()
    }
}

/// Same scheme, host and port: the only places our credentials may go.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

impl Transport {
    pub(crate) fn new(
        host: &str,
        api_host: &str,
        opts: ResolvedOptions,
        client: reqwest::Client,
        credentials: Arc<CredentialStore>,
    ) -> Result<Transport, RegistryError> {
        let scheme = if opts.plain_http { "http" } else { "https" };
        let base =
            Url::parse(&format!("{scheme}://{api_host}/")).map_err(|e| RegistryError::Config {
                what: host.to_string(),
                message: format!("not a usable registry host: {e}"),
            })?;
        let pacer = Pacer::new(&opts);
        let realms = RealmPolicy {
            plain_http: opts.plain_http,
            extra_hosts: opts.token_realms.clone(),
            request_timeout: opts.request_timeout,
        };
        Ok(Transport {
            host: host.to_string(),
            base,
            pacer,
            client,
            opts,
            auth: Authenticator::new(host.to_string(), credentials, realms),
            pinged: OnceCell::new(),
        })
    }

    /// `base` joined with `path` (which starts with `/v2/`).
    pub(crate) fn url(&self, path_and_query: &str) -> Result<Url, RegistryError> {
        self.base
            .join(path_and_query)
            .map_err(|e| RegistryError::Internal {
                what: format!("{}{}", self.host, SafeUrl::from_text(path_and_query)),
                message: format!("not a valid URL: {e}"),
            })
    }

    /// The pace every body to or from this registry is held to.
    pub(crate) fn pace(&self) -> Pace {
        Pace {
            min_bytes_per_second: self.opts.min_bytes_per_second,
            window: self.opts.pace_window,
        }
    }

    /// How long a request may wait for its answer's headers.
    fn request_timeout(&self) -> Duration {
        self.opts.request_timeout
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.opts.retry_deadline
    }

    /// The `/v2/` ping, once per registry: learn the auth scheme.
    async fn ensure_pinged(&self) -> Result<(), RegistryError> {
        self.pinged
            .get_or_try_init(|| async {
                let url = self.url("/v2/")?;
                let mut req = Req::new(Method::GET, url, Scopes::none());
                req.follow_redirects = false;
                let response = self.send_raw(&req, None, None).await?;
                match response.status() {
                    StatusCode::UNAUTHORIZED => {
                        let challenges = challenges_of(response.headers());
                        let mode = AuthMode::from_challenges(&challenges).ok_or_else(|| {
                            RegistryError::Unsupported {
                                registry: self.host.clone(),
                                operation: "its authentication scheme".to_string(),
                            }
                        })?;
                        self.auth.set_mode(mode);
                    }
                    s if is_retryable_status(s.as_u16()) => {
                        return Err(self.status_error(&req.method, response, &req.scopes).await)
                    }
                    // 2xx, or a registry answering 404 at /v2/ while serving
                    // the API: start anonymous and learn the scheme from the
                    // first 401 if one comes.
                    _ => self.auth.set_mode(AuthMode::Anonymous),
                }
                drain(response).await;
                Ok(())
            })
            .await
            .map(|_| ())
    }

    /// Send `req` with retries (see the module docs). Retryable failures
    /// that outlast the deadline become errors; every other response,
    /// whatever its status, is returned for the caller to read.
    pub(crate) async fn send(&self, req: &Req) -> Result<Response, RegistryError> {
        self.send_until(req, self.deadline()).await
    }

    /// [`Transport::send`] with an explicit deadline, for a sequence of
    /// requests sharing one retry budget.
    pub(crate) async fn send_until(
        &self,
        req: &Req,
        deadline: Instant,
    ) -> Result<Response, RegistryError> {
        let clock = RetryClock::new(deadline, self.opts.max_attempts);
        let what = || format!("{} {}", req.method, SafeUrl::new(&req.url));
        // A 429's retry goes no sooner than its Retry-After, and then at
        // the pacer's next slot: one wait, not one after the other.
        let not_before = Mutex::new(None);
        with_retries(
            clock,
            &what,
            |err| req.retry && err.is_retryable(),
            || async {
                let after = *not_before.lock().unwrap();
                let response = self.execute(req, deadline, after).await?;
                let status = response.status().as_u16();
                if !is_retryable_status(status) {
                    return Ok(response);
                }
                let retry_after = retry_after(response.headers());
                let paced = status == 429 && self.pacer.adaptive();
                if paced {
                    *not_before.lock().unwrap() = retry_after.map(|wait| Instant::now() + wait);
                }
                Err(Failed {
                    error: self.status_error(&req.method, response, &req.scopes).await,
                    retry_after,
                    paced,
                })
            },
        )
        .await
    }

    /// What `error` is to an operation started over (an upload sequence):
    /// a 429 without `Retry-After` is retried at the pacer's pace (which the
    /// 429 just cut), with no backoff of the driver's own on top.
    pub(crate) fn retry_failure(&self, error: RegistryError) -> Failed {
        let mut failed = Failed::from(error);
        failed.paced = matches!(failed.error, RegistryError::RateLimited { .. })
            && failed.retry_after.is_none()
            && self.pacer.adaptive();
        failed
    }

    /// One logical request: permit, pace (no sooner than `not_before`),
    /// auth (with one re-auth on 401), redirects. No retries.
    pub(crate) async fn execute(
        &self,
        req: &Req,
        deadline: Instant,
        not_before: Option<Instant>,
    ) -> Result<Response, RegistryError> {
        self.ensure_pinged().await?;
        let mut reauthed = false;
        loop {
            let auth = self
                .auth
                .header(&self.client, &req.scopes, deadline, self.opts.max_attempts)
                .await?;
            let response = self.send_raw(req, auth.as_ref(), not_before).await?;
            if response.status() == StatusCode::UNAUTHORIZED
                && !reauthed
                && same_origin(response.url(), &self.base)
            {
                let challenges = challenges_of(response.headers());
                if self
                    .auth
                    .on_unauthorized(&req.scopes, &challenges, auth.is_some())
                    .await?
                    == Reauth::Retry
                {
                    drain(response).await;
                    reauthed = true;
                    continue;
                }
            }
            return Ok(response);
        }
    }

    /// Send under the in-flight cap and at the pacer's pace (no sooner than
    /// `not_before`), following redirects for GET/HEAD; the pacer hears
    /// the answer.
    async fn send_raw(
        &self,
        req: &Req,
        auth: Option<&HeaderValue>,
        not_before: Option<Instant>,
    ) -> Result<Response, RegistryError> {
        // Held until the response headers arrive (for an upload, that is
        // after its body went out). Not held while a caller reads a blob body:
        // a copy reading from and writing to the same registry would
        // otherwise deadlock with every permit held by its downloads.
        let admitted = self
            .pacer
            .admit(Class::of(&req.method), not_before)
            .await
            .ok_or_else(|| RegistryError::Internal {
                what: self.host.clone(),
                message: "transport closed".to_string(),
            })?;
        let response = self.follow(req, auth).await?;
        let throttled_for = response.headers().contains_key(RETRY_AFTER);
        let bodiless = matches!(req.body, Body::Empty);
        self.pacer.answered(
            &admitted,
            response.status().as_u16(),
            throttled_for,
            bodiless,
        );
        Ok(response)
    }

    /// `req` sent, and its redirects followed (GET/HEAD only).
    async fn follow(
        &self,
        req: &Req,
        auth: Option<&HeaderValue>,
    ) -> Result<Response, RegistryError> {
        let mut url = req.url.clone();
        let mut left_origin = false;
        let mut hops = 0;
        loop {
            // Once a redirect has left our origin, no later hop gets our
            // credentials, even one that comes back.
            left_origin |= !same_origin(&url, &self.base);
            let response = self
                .send_hop(req, &url, auth.filter(|_| !left_origin))
                .await?;
            match redirect_target(req, &response, &url, hops)? {
                Some(next) => {
                    tracing::trace!(from = %SafeUrl::new(&url), to = %SafeUrl::new(&next), "redirect");
                    url = next;
                    hops += 1;
                }
                None => return Ok(response),
            }
        }
    }

    /// `req` sent once to `url` (the request's own, or a redirect's), with
    /// `auth` if given, within the time its body may take.
    async fn send_hop(
        &self,
        req: &Req,
        url: &Url,
        auth: Option<&HeaderValue>,
    ) -> Result<Response, RegistryError> {
        let shown = SafeUrl::new(url);
        let method_name = req.method.as_str();
        let mut builder = self
            .client
            .request(req.method.clone(), url.clone())
            .headers(req.headers.clone());
        if let Some(auth) = auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        let source_failure: Arc<Mutex<Option<RegistryError>>> = Arc::default();
        let (builder, body_size) = with_body(builder, &req.body, &shown, &source_failure).await?;
        let allowed = self.pace().allowance(self.request_timeout(), body_size);
        let sent = tokio::time::timeout(allowed, builder.send()).await;
        let Ok(sent) = sent else {
            return Err(RegistryError::Transport {
                method: method_name.to_string(),
                url: shown,
                message: format!(
                    "no answer within {} s (request_timeout_secs, plus the time the \
                     body takes at min_bytes_per_second)",
                    allowed.as_secs()
                ),
                retryable: true,
            });
        };
        sent.map_err(|e| {
            // If our own body source failed, that is the real cause.
            match source_failure.lock().unwrap().take() {
                Some(source) => source,
                None => reqwest_error(method_name, &shown, e),
            }
        })
    }

    /// The error a non-success response stands for. Reads a bounded part of
    /// the body for the registry's own error code and message.
    pub(crate) async fn status_error(
        &self,
        method: &Method,
        response: Response,
        scopes: &Scopes,
    ) -> RegistryError {
        let status = response.status();
        let url = SafeUrl::new(response.url());
        let headers = response.headers().clone();
        let (code, detail) = read_error_detail(response).await;
        match status {
            StatusCode::UNAUTHORIZED => self.auth.name_the_source(RegistryError::Unauthorized {
                registry: self.host.clone(),
                scope: scopes.to_string(),
                credentials: None,
            }),
            StatusCode::FORBIDDEN => RegistryError::Denied {
                registry: self.host.clone(),
                scope: scopes.to_string(),
            },
            StatusCode::TOO_MANY_REQUESTS => RegistryError::RateLimited {
                registry: self.host.clone(),
                retry_after_secs: retry_after(&headers).map(|d| d.as_secs()),
            },
            _ => RegistryError::Status {
                method: method.to_string(),
                detail: plain_to_https_hint(status, &url, detail, &self.host),
                url,
                status: status.as_u16(),
                code,
            },
        }
    }
}

/// Go's TLS server answers plain HTTP with a 400 ("Client sent an HTTP
/// request to an HTTPS server", in the body, so a HEAD never sees it): a
/// 400 to plain HTTP says what to change, whichever request met it.
fn plain_to_https_hint(
    status: StatusCode,
    url: &SafeUrl,
    detail: Option<String>,
    host: &str,
) -> Option<String> {
    let fix = format!(
        "plain HTTP is the default only on loopback hosts: set `plain_http: false` for {host} in \
         --registry-config (with `ca_file` for its certificate)"
    );
    match detail {
        Some(d) if d.contains("HTTP request to an HTTPS server") => {
            Some(format!("{d}: this registry speaks HTTPS; {fix}"))
        }
        None if status == StatusCode::BAD_REQUEST && url.is_plain_http() => Some(format!(
            "if this registry speaks HTTPS (a TLS server answers plain HTTP so), {fix}"
        )),
        other => other,
    }
}

/// Read and drop a small body so the connection goes back to the pool
/// (held to the default pace: a trickled body is let go, not waited for).
pub(crate) async fn drain(response: Response) {
    let mut stream = std::pin::pin!(paced(response, Pace::default(), "drain"));
    let mut read = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        read += chunk.len();
        if read > 64 << 10 {
            break; // not worth it: let the connection go
        }
    }
}

/// `builder` with `body` attached, and the body's size. A streamed body
/// is counted on the way out (more or fewer bytes than declared would leave
/// the registry with a short body or a hang), and a failure of its source
/// is kept in `source_failure` for the caller to report.
async fn with_body(
    builder: reqwest::RequestBuilder,
    body: &Body,
    shown: &SafeUrl,
    source_failure: &Arc<Mutex<Option<RegistryError>>>,
) -> Result<(reqwest::RequestBuilder, u64), RegistryError> {
    Ok(match body {
        Body::Empty => (builder, 0),
        Body::Bytes(bytes) => (builder.body(bytes.clone()), bytes.len() as u64),
        Body::Stream { open, size } => {
            let stream = open().await?;
            let counted = KeepFailure {
                inner: VerifyingStream::new(stream, Expect::Size(*size), shown.to_string()),
                failure: source_failure.clone(),
            };
            let builder = builder
                .header(CONTENT_LENGTH, size.to_string())
                .body(reqwest::Body::wrap_stream(counted));
            (builder, *size)
        }
    })
}

/// Where a redirect `response` to `req` (sent to `url`, after `hops`
/// redirects) says to go next; `None` when it is no redirect to follow
/// (not one, or `req` does not follow them).
fn redirect_target(
    req: &Req,
    response: &Response,
    url: &Url,
    hops: usize,
) -> Result<Option<Url>, RegistryError> {
    let status = response.status();
    let redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
    if !(redirect && req.follow_redirects && matches!(req.method, Method::GET | Method::HEAD)) {
        return Ok(None);
    }
    let refused = |detail: String| RegistryError::Status {
        method: req.method.as_str().to_string(),
        url: SafeUrl::new(url),
        status: status.as_u16(),
        code: None,
        detail: Some(detail),
    };
    if hops >= MAX_REDIRECTS {
        return Err(refused(format!("more than {MAX_REDIRECTS} redirects")));
    }
    let next = response
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| url.join(l).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    match next {
        Some(next) => Ok(Some(next)),
        None => Err(refused("redirect without a usable Location".to_string())),
    }
}

fn challenges_of(headers: &HeaderMap) -> Vec<super::auth::Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .collect()
}

/// The first OCI error code of an error body, and `CODE: message` for the
/// reader (else the start of a text body).
async fn read_error_detail(response: Response) -> (Option<ErrorCode>, Option<String>) {
    let mut body = Vec::new();
    let mut stream = std::pin::pin!(paced(response, Pace::default(), "error"));
    while let Some(Ok(chunk)) = stream.next().await {
        let room = ERROR_BODY_LIMIT - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= ERROR_BODY_LIMIT {
            break;
        }
    }
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<OneError>,
    }
    #[derive(serde::Deserialize)]
    struct OneError {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let clip = |s: &str| printable_cut(s.trim(), crate::limits::QUOTED_TEXT_CHARS);
    if let Ok(parsed) = serde_json::from_slice::<Errors>(&body) {
        let code = parsed
            .errors
            .iter()
            .find(|e| !e.code.is_empty())
            .map(|e| ErrorCode::parse(&e.code));
        let parts: Vec<String> = parsed
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .collect();
        if !parts.is_empty() {
            return (code, Some(clip(&parts.join("; "))));
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    // Only short plain-text answers are worth quoting; HTML pages are not.
    (
        None,
        (!text.is_empty() && !text.starts_with('<')).then(|| clip(text)),
    )
}

/// An upload body for reqwest, which wants `io::Error`s: keeps the real
/// [`RegistryError`] of a failing source (or a wrong size) so the caller can
/// report it instead of reqwest's wrapper.
struct KeepFailure {
    inner: VerifyingStream<crate::registry::BlobStream, RegistryError>,
    failure: Arc<Mutex<Option<RegistryError>>>,
}

impl Stream for KeepFailure {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        Pin::new(&mut this.inner).poll_next(cx).map(|item| {
            item.map(|r| {
                r.map_err(|err| {
                    let message = err.to_string();
                    *this.failure.lock().unwrap() = Some(err);
                    std::io::Error::other(message)
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let a = Url::parse("https://r.example/v2/").unwrap();
        assert!(same_origin(
            &a,
            &Url::parse("https://r.example:443/x?y").unwrap()
        ));
        assert!(!same_origin(&a, &Url::parse("http://r.example/").unwrap()));
        assert!(!same_origin(
            &a,
            &Url::parse("https://s3.example/").unwrap()
        ));
        assert!(!same_origin(
            &a,
            &Url::parse("https://r.example:8443/").unwrap()
        ));
    }
}
