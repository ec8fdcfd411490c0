//! OCI Distribution over HTTP: [`RemoteRegistry`] implements [`Registry`].
//!
//! Construction goes through [`Remotes`], which keeps one reqwest client per
//! TLS configuration for the whole process (so connections are pooled and
//! reused across registries and tasks) and one [`RemoteRegistry`] per
//! endpoint (so the in-flight cap, pacing and token cache are per registry):
//!
//! ```no_run
//! # async fn demo() -> Result<(), promoter::registry::RegistryError> {
//! use promoter::reference::RegistryName;
//! use promoter::registry::remote::{CredentialStore, RemoteOptions, Remotes};
//! let remotes = Remotes::new(RemoteOptions::default(), CredentialStore::discover(None)?);
//! let name = RegistryName::parse("registry.example/prod").unwrap();
//! let registry = remotes.registry(&name.endpoint)?;
//! # Ok(()) }
//! ```
//!
//! Request economy: a blob upload is two requests (POST, then one streaming
//! PUT); a mount is one; an existence check is one HEAD. See `transport`
//! for retries, auth and redirects.

pub mod auth;
mod body;
pub mod credentials;
pub mod options;
pub mod redact;
pub mod retry;
mod tls;
pub(crate) mod transport;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::header::{
    HeaderMap, ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LINK, LOCATION,
};
use reqwest::{Method, Response, StatusCode};
use url::Url;

pub use auth::Scopes;
pub use credentials::{Credential, CredentialStore, Secret};
pub use options::{RegistryOptions, RemoteOptions, ResolvedOptions};

use self::body::read_capped;
use self::transport::{drain, Body, Req, Transport};
use crate::oci::verify::{Expect, VerifyingStream};
use crate::oci::ContentError;
use crate::oci::{self, attachment_tag};
use crate::reference::{Digest, Endpoint, ManifestRef, Repository};
use crate::registry::retry::{with_retries, RetryClock};
use crate::registry::{
    media_type, BlobPut, BlobStream, BlobUpload, Descriptor, RawManifest, Registry, RegistryError,
    SafeUrl, TagListing,
};

/// Largest manifest accepted: see [`crate::limits::MANIFEST_BYTES`].
pub const MANIFEST_LIMIT: usize = crate::limits::MANIFEST_BYTES;
/// Most pages followed in one listing: a loop guard.
const MAX_PAGES: usize = crate::limits::LISTING_PAGES;

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

// ---------------------------------------------------------------- factory

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    ca_file: Option<std::path::PathBuf>,
    client_cert: Option<std::path::PathBuf>,
    client_key: Option<std::path::PathBuf>,
    connect_timeout: Duration,
    read_timeout: Duration,
    insecure: bool,
}

impl ClientKey {
    fn of(opts: &ResolvedOptions) -> ClientKey {
        ClientKey {
            ca_file: opts.ca_file.clone(),
            client_cert: opts.client_cert.clone(),
            client_key: opts.client_key.clone(),
            connect_timeout: opts.connect_timeout,
            read_timeout: opts.read_timeout,
            insecure: opts.insecure,
        }
    }
}

/// Hands out [`RemoteRegistry`] handles: one per endpoint, sharing one HTTP
/// client per TLS configuration. Make one per process.
pub struct Remotes {
    options: RemoteOptions,
    credentials: Arc<CredentialStore>,
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
    registries: Mutex<HashMap<String, Arc<RemoteRegistry>>>,
}

impl std::fmt::Debug for Remotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remotes")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Remotes {
    /// Handles that all use `options` and `credentials`. Clients are built
    /// when an endpoint is first asked for; nothing is sent until a request.
    pub fn new(options: RemoteOptions, credentials: CredentialStore) -> Remotes {
        Remotes {
            options,
            credentials: Arc::new(credentials),
            clients: Mutex::new(HashMap::new()),
            registries: Mutex::new(HashMap::new()),
        }
    }

    /// The registry behind an HTTP endpoint (an `oci:` endpoint is refused:
    /// that is the layout backend's).
    pub fn registry(&self, endpoint: &Endpoint) -> Result<Arc<RemoteRegistry>, RegistryError> {
        let Endpoint::Http { host } = endpoint else {
            return Err(RegistryError::Internal {
                what: endpoint.to_string(),
                message: "not an HTTP registry".to_string(),
            });
        };
        if let Some(existing) = self.registries.lock().unwrap().get(host) {
            return Ok(existing.clone());
        }
        let opts = self.options.for_host(host);
        if opts.insecure && !opts.plain_http {
            tracing::warn!(
                registry = %host,
                "TLS certificates are not verified (insecure: true): anyone on the path can read and change what is copied"
            );
        }
        let client = {
            let mut clients = self.clients.lock().unwrap();
            let key = ClientKey::of(&opts);
            match clients.get(&key) {
                Some(c) => c.clone(),
                None => {
                    let c = transport::build_client(&opts)?;
                    clients.insert(key, c.clone());
                    c
                }
            }
        };
        let api_host = connect_host(endpoint, &opts)?;
        let registry = Arc::new(RemoteRegistry::with_client(
            host,
            &api_host,
            opts,
            client,
            self.credentials.clone(),
        )?);
        Ok(self
            .registries
            .lock()
            .unwrap()
            .entry(host.clone())
            .or_insert(registry)
            .clone())
    }
}

/// The `host[:port]` requests go to: the `endpoint` option (a mirror),
/// or the registry's API host.
fn connect_host(endpoint: &Endpoint, options: &ResolvedOptions) -> Result<String, RegistryError> {
    match &options.endpoint {
        Some(other) => match crate::reference::RegistryName::parse(other) {
            Ok(name) if name.prefix.is_empty() && matches!(name.endpoint, Endpoint::Http { .. }) => {
                Ok(name.endpoint.api_host().unwrap_or(other).to_string())
            }
            _ => Err(RegistryError::Config {
                what: format!("the `endpoint` option of {endpoint}"),
                message: "is not a host[:port]: write it as registry-mirror.example:5000, without scheme or path".to_string(),
            }),
        },
        None => Ok(endpoint.api_host().unwrap_or_default().to_string()),
    }
}

// ---------------------------------------------------------------- registry

const REFERRERS_UNKNOWN: u8 = 0;
const REFERRERS_SUPPORTED: u8 = 1;
const REFERRERS_UNSUPPORTED: u8 = 2;

/// One OCI Distribution endpoint.
#[derive(Debug)]
pub struct RemoteRegistry {
    t: Transport,
    /// Set once the registry refused a monolithic PUT: upload in chunks.
    chunked: AtomicBool,
    referrers_api: AtomicU8,
    /// Held while the first caller learns whether the API is there.
    referrers_probe: tokio::sync::Mutex<()>,
}

impl RemoteRegistry {
    /// A registry with a client of its own. Prefer [`Remotes::registry`] in
    /// the program, which shares clients; this suits tests and tools.
    /// `host` is `host[:port]` as in [`Endpoint::Http`].
    pub fn new(
        host: &str,
        options: ResolvedOptions,
        credentials: Arc<CredentialStore>,
    ) -> Result<RemoteRegistry, RegistryError> {
        let endpoint = Endpoint::Http {
            host: host.to_string(),
        };
        let api_host = connect_host(&endpoint, &options)?;
        let client = transport::build_client(&options)?;
        RemoteRegistry::with_client(host, &api_host, options, client, credentials)
    }

    fn with_client(
        host: &str,
        api_host: &str,
        options: ResolvedOptions,
        client: reqwest::Client,
        credentials: Arc<CredentialStore>,
    ) -> Result<RemoteRegistry, RegistryError> {
        Ok(RemoteRegistry {
            chunked: AtomicBool::new(options.chunked_upload),
            t: Transport::new(host, api_host, options, client, credentials)?,
            referrers_api: AtomicU8::new(REFERRERS_UNKNOWN),
            referrers_probe: tokio::sync::Mutex::new(()),
        })
    }

    /// `host[:port]`.
    pub fn host(&self) -> &str {
        &self.t.host
    }

    /// `http(s)://api-host[:port]/`.
    pub fn base_url(&self) -> &Url {
        &self.t.base
    }

    /// The options in force for this host, every field resolved.
    pub fn options(&self) -> &ResolvedOptions {
        &self.t.opts
    }

    fn what(&self, repo: &Repository, item: impl std::fmt::Display) -> String {
        format!("{repo}@{item}")
    }

    /// `/v2/<repository>/<rest>`: repositories passed the name grammar where
    /// they were made, so they are safe as a URL path as they are.
    fn repo_url(&self, repo: &Repository, rest: &str) -> Result<Url, RegistryError> {
        self.t.url(&format!("/v2/{}/{rest}", repo.path()))
    }

    async fn error(&self, req: &Req, response: Response) -> RegistryError {
        self.t
            .status_error(&req.method, response, &req.scopes)
            .await
    }

    /// Every item of a paginated listing: follow `Link: <…>; rel="next"`
    /// from `first`, collecting `field` of each page. `Ok(None)` when the
    /// first page is a 404. With `until`, stop as soon as a page ends past
    /// it: catalogs are sorted, so nothing later can match.
    async fn paginate(
        &self,
        first: Url,
        scopes: Scopes,
        field: &'static str,
        until: Option<&str>,
    ) -> Result<Option<Vec<String>>, RegistryError> {
        self.paginate_with(first, scopes, field, until, &mut |_| {})
            .await
    }

    /// [`RemoteRegistry::paginate`], showing each page's whole JSON to
    /// `each_page` too (for fields beside the names, such as Google's
    /// `manifest` map).
    async fn paginate_with(
        &self,
        first: Url,
        scopes: Scopes,
        field: &'static str,
        until: Option<&str>,
        each_page: &mut (dyn FnMut(&serde_json::Value) + Send),
    ) -> Result<Option<Vec<String>>, RegistryError> {
        let mut out = Vec::new();
        let mut url = first;
        let mut seen = HashSet::new();
        let mut read_total = 0usize;
        for page in 0..MAX_PAGES {
            let req = Req::new(Method::GET, url.clone(), scopes.clone())
                .header(ACCEPT, "application/json");
            let response = self.t.send(&req).await?;
            if response.status() == StatusCode::NOT_FOUND && page == 0 {
                drain(response).await;
                return Ok(None);
            }
            if !response.status().is_success() {
                return Err(self.error(&req, response).await);
            }
            let next = next_link(response.headers());
            let body = read_capped(
                response,
                crate::limits::LISTING_PAGE_BYTES,
                req.method.as_str(),
                self.t.pace(),
            )
            .await?;
            read_total += body.len();
            if read_total > crate::limits::LISTING_BYTES {
                return Err(RegistryError::Limit {
                    what: SafeUrl::new(&url).to_string(),
                    message: format!(
                        "listing pages add up to more than {} bytes; refusing to read more",
                        crate::limits::LISTING_BYTES
                    ),
                });
            }
            let value: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                    what: SafeUrl::new(&url).to_string(),
                    message: format!("not a JSON listing: {e}"),
                })?;
            if let Some(items) = value.get(field).and_then(|v| v.as_array()) {
                out.extend(items.iter().filter_map(|v| v.as_str()).map(str::to_string));
            }
            each_page(&value);
            if out.len() > crate::limits::LISTED_NAMES {
                return Err(RegistryError::Limit {
                    what: SafeUrl::new(&url).to_string(),
                    message: format!(
                        "listing returns more than {} names; refusing to hold more",
                        crate::limits::LISTED_NAMES
                    ),
                });
            }
            let past_range =
                until.is_some_and(|until| out.last().is_some_and(|last| last.as_str() > until));
            let Some(next) = next.filter(|_| !past_range) else {
                return Ok(Some(out));
            };
            let next = url.join(&next).map_err(|e| RegistryError::Protocol {
                what: SafeUrl::new(&url).to_string(),
                message: format!("bad Link header: {e}"),
            })?;
            if !transport::same_origin(&next, &url) {
                // Our credentials go only to the registry itself.
                return Err(RegistryError::Protocol {
                    what: SafeUrl::new(&url).to_string(),
                    message: format!("Link to another host ({})", SafeUrl::new(&next)),
                });
            }
            if !seen.insert(next.as_str().to_string()) {
                return Err(RegistryError::Protocol {
                    what: SafeUrl::new(&url).to_string(),
                    message: "Link pagination loops".to_string(),
                });
            }
            url = next;
        }
        Err(RegistryError::Limit {
            what: SafeUrl::new(&url).to_string(),
            message: format!("more than {MAX_PAGES} pages; refusing to read more"),
        })
    }

    fn manifest_req(
        &self,
        method: Method,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Req, RegistryError> {
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        Ok(Req::new(method, url, Scopes::pull(repo.path())).header(ACCEPT, accept_manifests()))
    }

    /// One attempt at the whole upload sequence: mount or POST, then PUT (or
    /// PATCHes and a PUT). `mount_from` is cleared once a mount failed, so a
    /// retry goes straight to uploading.
    async fn put_blob_once(
        &self,
        repo: &Repository,
        upload: &BlobUpload,
        mount_from: &mut Option<Repository>,
        deadline: Instant,
    ) -> Result<BlobPut, RegistryError> {
        let mut session = None;
        if let Some(from) = mount_from.clone() {
            let mut url = self.repo_url(repo, "blobs/uploads/")?;
            url.query_pairs_mut()
                .append_pair("mount", upload.digest.as_str())
                .append_pair("from", from.path());
            // One token for both repositories, or the mount cannot work.
            let scopes =
                Scopes::push(repo.path()).with(&format!("repository:{}", from.path()), &["pull"]);
            let req = Req::new(Method::POST, url, scopes);
            match self.t.send_until(&req, deadline).await {
                Ok(response) if response.status() == StatusCode::CREATED => {
                    drain(response).await;
                    return Ok(BlobPut::Mounted);
                }
                Ok(response) if response.status() == StatusCode::ACCEPTED => {
                    // The source lacked the blob: the registry opened an
                    // ordinary upload session instead. Use it; no second POST.
                    session = Some(self.session_location(&req, response).await?);
                }
                Ok(response) => {
                    tracing::debug!(
                        registry = %self.t.host, repo = %repo, from = %from,
                        status = response.status().as_u16(), "mount refused; uploading"
                    );
                    drain(response).await;
                    *mount_from = None;
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    tracing::debug!(registry = %self.t.host, repo = %repo, error = %e, "mount failed; uploading");
                    *mount_from = None;
                }
            }
        }
        let session = match session {
            Some(s) => s,
            None => {
                let url = self.repo_url(repo, "blobs/uploads/")?;
                let req = Req::new(Method::POST, url, Scopes::push(repo.path()))
                    .header(CONTENT_LENGTH, "0");
                let response = self.t.send_until(&req, deadline).await?;
                if response.status() != StatusCode::ACCEPTED {
                    return Err(self.error(&req, response).await);
                }
                self.session_location(&req, response).await?
            }
        };
        if self.chunked.load(Ordering::Relaxed) {
            return self.upload_chunked(repo, upload, session, deadline).await;
        }
        let mut url = session;
        url.query_pairs_mut()
            .append_pair("digest", upload.digest.as_str());
        let req = Req::new(Method::PUT, url, Scopes::push(repo.path()))
            .header(CONTENT_TYPE, media_type::OCTET_STREAM)
            .body(Body::Stream {
                open: upload.open.clone(),
                size: upload.size,
            })
            // The session may hold part of a failed body: the caller starts over.
            .no_retry();
        let response = self.t.send_until(&req, deadline).await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => {
                self.check_stored_digest(repo, &upload.digest, response.headers())?;
                drain(response).await;
                Ok(BlobPut::Uploaded)
            }
            StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::LENGTH_REQUIRED
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::NOT_IMPLEMENTED => {
                // This registry wants chunks. Remember, and start over.
                tracing::info!(registry = %self.t.host, status = response.status().as_u16(),
                    "monolithic blob upload refused; switching to chunked uploads");
                drain(response).await;
                self.chunked.store(true, Ordering::Relaxed);
                Box::pin(self.put_blob_once(repo, upload, &mut None, deadline)).await
            }
            _ => Err(self.error(&req, response).await),
        }
    }

    async fn upload_chunked(
        &self,
        repo: &Repository,
        upload: &BlobUpload,
        session: Url,
        deadline: Instant,
    ) -> Result<BlobPut, RegistryError> {
        let chunk_size = self.t.opts.chunk_size as usize;
        let mut source = (upload.open)().await?;
        let mut url = session;
        let mut offset: u64 = 0;
        let mut buffer = BytesMut::new();
        let mut ended = false;
        loop {
            while !ended && buffer.len() < chunk_size {
                match source.next().await {
                    Some(chunk) => buffer.extend_from_slice(&chunk?),
                    None => ended = true,
                }
            }
            let take = buffer.len().min(chunk_size);
            if take == 0 {
                break;
            }
            let chunk: Bytes = buffer.split_to(take).freeze();
            let end = offset + chunk.len() as u64;
            if end > upload.size {
                return Err(RegistryError::BadContent(ContentError::SizeMismatch {
                    what: self.what(repo, &upload.digest),
                    expected: upload.size,
                    actual: end,
                }));
            }
            let req = Req::new(Method::PATCH, url.clone(), Scopes::push(repo.path()))
                .header(CONTENT_TYPE, media_type::OCTET_STREAM)
                .header(CONTENT_RANGE, format!("{offset}-{}", end - 1))
                .header(CONTENT_LENGTH, chunk.len().to_string())
                .body(Body::Bytes(chunk))
                .no_retry();
            let response = self.t.send_until(&req, deadline).await?;
            if response.status() != StatusCode::ACCEPTED {
                return Err(self.error(&req, response).await);
            }
            url = self.session_location(&req, response).await?;
            offset = end;
        }
        if offset != upload.size {
            return Err(RegistryError::BadContent(ContentError::SizeMismatch {
                what: self.what(repo, &upload.digest),
                expected: upload.size,
                actual: offset,
            }));
        }
        url.query_pairs_mut()
            .append_pair("digest", upload.digest.as_str());
        let req = Req::new(Method::PUT, url, Scopes::push(repo.path()))
            .header(CONTENT_TYPE, media_type::OCTET_STREAM)
            .header(CONTENT_LENGTH, "0")
            .no_retry();
        let response = self.t.send_until(&req, deadline).await?;
        if !response.status().is_success() {
            return Err(self.error(&req, response).await);
        }
        self.check_stored_digest(repo, &upload.digest, response.headers())?;
        drain(response).await;
        Ok(BlobPut::Uploaded)
    }

    /// The upload session URL from a 202's `Location`, resolved against the
    /// request (registries answer relative or absolute).
    async fn session_location(&self, req: &Req, response: Response) -> Result<Url, RegistryError> {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| req.url.join(l).ok());
        drain(response).await;
        location.ok_or_else(|| RegistryError::Protocol {
            what: SafeUrl::new(&req.url).to_string(),
            message: "upload answer has no usable Location".to_string(),
        })
    }

    fn check_stored_digest(
        &self,
        repo: &Repository,
        expected: &Digest,
        headers: &HeaderMap,
    ) -> Result<(), RegistryError> {
        match header_digest(headers) {
            Some(stored) if stored.algorithm() == expected.algorithm() && stored != *expected => {
                Err(RegistryError::BadContent(ContentError::DigestMismatch {
                    what: format!("{} stored", self.what(repo, expected)),
                    expected: expected.clone(),
                    actual: stored,
                }))
            }
            _ => Ok(()),
        }
    }

    /// Referrers through the OCI 1.1 API, `Ok(None)` when the registry does
    /// not offer it. Whether it does is learnt once: the first caller asks
    /// while the others wait, so a run probes a registry without the API
    /// with one request, not one per image.
    async fn referrers_through_api(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        if self.referrers_api.load(Ordering::Relaxed) == REFERRERS_UNKNOWN {
            let _probing = self.referrers_probe.lock().await;
            if self.referrers_api.load(Ordering::Relaxed) == REFERRERS_UNKNOWN {
                let answer = self.referrers_api(repo, subject).await?;
                let learnt = if answer.is_some() {
                    REFERRERS_SUPPORTED
                } else {
                    REFERRERS_UNSUPPORTED
                };
                self.referrers_api.store(learnt, Ordering::Relaxed);
                return Ok(answer);
            }
        }
        if self.referrers_api.load(Ordering::Relaxed) == REFERRERS_UNSUPPORTED {
            return Ok(None);
        }
        self.referrers_api(repo, subject).await
    }

    /// Referrers through the OCI 1.1 API. `Ok(None)` when the registry does
    /// not offer it.
    async fn referrers_api(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let mut url = self.repo_url(repo, &format!("referrers/{subject}"))?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        loop {
            let req = Req::new(Method::GET, url.clone(), Scopes::pull(repo.path()))
                .header(ACCEPT, media_type::OCI_INDEX);
            let response = self.t.send(&req).await?;
            let status = response.status();
            // A registry offering the API never answers 404 (spec: it
            // answers an empty index), so a 404 means "no such API".
            if status == StatusCode::NOT_FOUND && out.is_empty() {
                drain(response).await;
                return Ok(None);
            }
            if !status.is_success() {
                return Err(self.error(&req, response).await);
            }
            let next = next_link(response.headers());
            let body =
                read_capped(response, MANIFEST_LIMIT, req.method.as_str(), self.t.pace()).await?;
            let index = RawManifest::new(body, media_type::OCI_INDEX);
            let what = self.what(repo, format!("referrers of {subject}"));
            out.extend(oci::references(&index, &what)?.manifests);
            if out.len() > crate::limits::REFERRERS_PER_IMAGE {
                return Err(RegistryError::Limit {
                    what,
                    message: format!(
                        "more than {} referrers; refusing to read more",
                        crate::limits::REFERRERS_PER_IMAGE
                    ),
                });
            }
            match next.and_then(|n| url.join(&n).ok()) {
                // Our credentials go only to the registry itself: a Link
                // to another scheme, host or port ends the listing.
                Some(n) if transport::same_origin(&n, &url) && seen.insert(n.to_string()) => {
                    url = n
                }
                _ => return Ok(Some(out)),
            }
        }
    }

    /// Referrers through the `<alg>-<hex>` tag schema, keeping only
    /// manifests whose `subject` really is `subject`.
    async fn referrers_by_tag(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let tag = attachment_tag(subject, None);
        let what = self.what(repo, &tag);
        let Some(index) = self.get_manifest(repo, &ManifestRef::Tag(tag)).await? else {
            return Ok(Vec::new());
        };
        let listed = oci::references(&index, &what)?.manifests;
        if listed.len() > crate::limits::REFERRERS_PER_IMAGE {
            return Err(RegistryError::Limit {
                what,
                message: format!(
                    "the referrers index lists more than {} manifests; refusing to read them",
                    crate::limits::REFERRERS_PER_IMAGE
                ),
            });
        }
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for descriptor in listed {
            if !seen.insert(descriptor.digest.clone()) {
                continue;
            }
            let Some(manifest) = self
                .get_manifest(repo, &ManifestRef::Digest(descriptor.digest.clone()))
                .await?
            else {
                continue; // listed but gone: not a referrer we can copy
            };
            let Ok(refs) = oci::references(&manifest, &what) else {
                continue;
            };
            if refs.subject.as_ref() != Some(subject) {
                tracing::debug!(registry = %self.t.host, repo = %repo, referrer = %descriptor.digest,
                    "referrers tag lists a manifest whose subject is not this digest; skipped");
                continue;
            }
            out.push(Descriptor {
                artifact_type: descriptor
                    .artifact_type
                    .or_else(|| refs.effective_artifact_type()),
                media_type: manifest.media_type,
                size: manifest.bytes.len() as u64,
                digest: descriptor.digest,
                foreign: false,
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl Registry for RemoteRegistry {
    fn endpoint(&self) -> Endpoint {
        Endpoint::Http {
            host: self.t.host.clone(),
        }
    }

    async fn list_repositories(&self, prefix: &str) -> Result<Vec<Repository>, RegistryError> {
        let prefix = prefix.trim_matches('/');
        let mut url = self.t.url("/v2/_catalog")?;
        url.query_pairs_mut()
            .append_pair("n", &self.t.opts.page_size.to_string());
        // Catalogs are sorted: start just before the prefix and stop after
        // its last possible name, instead of reading the whole registry.
        let until = (!prefix.is_empty()).then(|| format!("{prefix}/~"));
        if let Some(last) = catalog_start(prefix) {
            url.query_pairs_mut().append_pair("last", &last);
        }
        // A 404 here means no catalog API (Docker Hub, some clouds), not an
        // empty registry: say so rather than answer "no repositories".
        let all = self
            .paginate(url, Scopes::catalog(), "repositories", until.as_deref())
            .await?
            .ok_or_else(|| RegistryError::Unsupported {
                registry: self.t.host.clone(),
                operation: "listing repositories (_catalog)".to_string(),
            })?;
        let mut repos: Vec<String> = all
            .into_iter()
            .filter(|r| {
                prefix.is_empty()
                    || r == prefix
                    || r.strip_prefix(prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .collect();
        repos.sort();
        repos.dedup();
        let endpoint = self.endpoint();
        // A name outside the distribution grammar can be neither addressed
        // nor safely printed: it is left out, and said so.
        Ok(repos
            .into_iter()
            .filter_map(|name| match Repository::parse(&endpoint, &name) {
                Ok(repo) => Some(repo),
                Err(e) => {
                    tracing::warn!(registry = %self.t.host, name = %redact::printable(&name),
                        "catalog lists a name that is no repository path ({}); skipped", e.message);
                    None
                }
            })
            .collect())
    }

    async fn list_tags(&self, repo: &Repository) -> Result<Vec<String>, RegistryError> {
        let mut url = self.repo_url(repo, "tags/list")?;
        url.query_pairs_mut()
            .append_pair("n", &self.t.opts.page_size.to_string());
        let mut tags = self
            .paginate(url, Scopes::pull(repo.path()), "tags", None)
            .await?
            .unwrap_or_default();
        // A name outside the tag grammar can be neither addressed nor
        // safely printed: it is left out, and said so.
        tags.retain(|tag| {
            let valid = crate::reference::Tag::parse(tag).is_ok();
            if !valid {
                tracing::warn!(repo = %repo, tag = %redact::printable(tag),
                    "the registry lists a tag outside the tag grammar; skipped");
            }
            valid
        });
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    async fn list_digests(&self, repo: &Repository) -> Result<Option<TagListing>, RegistryError> {
        if !self.t.opts.google_listing {
            return Ok(None);
        }
        let mut url = self.repo_url(repo, "tags/list")?;
        url.query_pairs_mut()
            .append_pair("n", &self.t.opts.page_size.to_string());
        let mut listing = TagListing::default();
        let mut extended = false;
        let mut read_map = |page: &serde_json::Value| {
            let Some(map) = page.get("manifest").and_then(|m| m.as_object()) else {
                return;
            };
            extended = true;
            for (digest, entry) in map {
                let Ok(digest) = Digest::parse(digest) else {
                    continue;
                };
                for tag in entry
                    .get("tag")
                    .and_then(|t| t.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str())
                    .filter_map(|t| crate::reference::Tag::parse(t).ok())
                {
                    listing.tags.insert(tag, digest.clone());
                }
                listing.digests.insert(digest);
            }
        };
        let found = self
            .paginate_with(url, Scopes::pull(repo.path()), "tags", None, &mut read_map)
            .await?;
        match found {
            // No such repository: it holds nothing.
            None => Ok(Some(TagListing::default())),
            Some(_) if extended => Ok(Some(listing)),
            Some(_) => {
                tracing::debug!(registry = %self.t.host,
                    "tags/list carries no digests (google_listing is on): reading tags one by one");
                Ok(None)
            }
        }
    }

    async fn head_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let req = self.manifest_req(Method::HEAD, repo, reference)?;
        let response = self.t.send(&req).await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            _ => return Err(self.error(&req, response).await),
        }
        let headers = response.headers();
        let digest = header_digest(headers).or(match reference {
            ManifestRef::Digest(d) => Some(d.clone()),
            ManifestRef::Tag(_) => None,
        });
        let media = content_type(headers).filter(|m| !is_generic_type(m));
        let size = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let (Some(digest), Some(media_type), Some(size)) = (digest, media, size) {
            if let ManifestRef::Digest(asked) = reference {
                if *asked != digest {
                    return Err(RegistryError::BadContent(ContentError::DigestMismatch {
                        what: self.what(repo, asked),
                        expected: asked.clone(),
                        actual: digest,
                    }));
                }
            }
            return Ok(Some(Descriptor {
                digest,
                media_type,
                size,
                artifact_type: None,
                foreign: false,
            }));
        }
        // The registry left something out of its HEAD answer: a GET tells all.
        Ok(self
            .get_manifest(repo, reference)
            .await?
            .map(|m| Descriptor {
                size: m.bytes.len() as u64,
                digest: m.digest,
                media_type: m.media_type,
                artifact_type: None,
                foreign: false,
            }))
    }

    async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<RawManifest>, RegistryError> {
        // The transport retries what happens before the body arrives; a body
        // cut short, reset or corrupted on the way is worth a fresh read or
        // two as well (a passing fault), but no more (a broken registry).
        let deadline = Instant::now() + self.t.opts.retry_deadline;
        let clock = RetryClock::new(deadline, MAX_BAD_CONTENT_ATTEMPTS);
        let what = || format!("reading {} again", self.what(repo, reference));
        with_retries(
            clock,
            &what,
            |e| {
                matches!(
                    e,
                    RegistryError::BadContent(_)
                        | RegistryError::Transport {
                            retryable: true,
                            ..
                        }
                )
            },
            || async { Ok(self.get_manifest_once(repo, reference).await?) },
        )
        .await
    }
    async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        manifest: &RawManifest,
    ) -> Result<(), RegistryError> {
        if let ManifestRef::Digest(d) = reference {
            let actual = Digest::of(d.algorithm(), &manifest.bytes);
            if actual != *d {
                return Err(RegistryError::BadContent(ContentError::DigestMismatch {
                    what: self.what(repo, d),
                    expected: d.clone(),
                    actual,
                }));
            }
        }
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        let req = Req::new(Method::PUT, url, Scopes::push(repo.path()))
            .header(CONTENT_TYPE, &manifest.media_type)
            .body(Body::Bytes(manifest.bytes.clone()));
        let response = self.t.send(&req).await?;
        if !response.status().is_success() {
            return Err(self.error(&req, response).await);
        }
        self.check_stored_digest(repo, &manifest.digest, response.headers())?;
        drain(response).await;
        Ok(())
    }

    async fn blob_exists(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?;
        let req = Req::new(Method::HEAD, url, Scopes::pull(repo.path()));
        let response = self.t.send(&req).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let size = response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| RegistryError::Protocol {
                        what: self.what(repo, digest),
                        message: "blob HEAD answer has no Content-Length".to_string(),
                    })?;
                Ok(Some(size))
            }
            _ => Err(self.error(&req, response).await),
        }
    }

    async fn get_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<BlobStream, RegistryError> {
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?;
        let req = Req::new(Method::GET, url, Scopes::pull(repo.path()));
        let response = self.t.send(&req).await?;
        if response.status() != StatusCode::OK {
            return Err(self.error(&req, response).await);
        }
        let size = response.content_length();
        let what = self.what(repo, digest);
        let bytes = body::paced(response, self.t.pace(), "GET");
        Ok(Box::pin(VerifyingStream::new(
            bytes,
            Expect::Digest(digest.clone(), size),
            what,
        )))
    }

    async fn put_blob(
        &self,
        repo: &Repository,
        upload: &BlobUpload,
    ) -> Result<BlobPut, RegistryError> {
        let mount_from = upload.mount_from.clone().filter(|from| from != repo);
        let deadline = Instant::now() + self.t.opts.retry_deadline;
        let clock = RetryClock::new(deadline, self.t.opts.max_attempts);
        // Wrong or short content from the upload's source is worth a fresh
        // read or two (a passing network fault), not a retry until the
        // deadline: a source that keeps sending bad bytes is broken.
        let mut bad_content = 0;
        let mount_from = std::sync::Mutex::new(mount_from);
        let what = || format!("uploading {}", self.what(repo, &upload.digest));
        with_retries(
            clock,
            &what,
            |e| {
                if matches!(e, RegistryError::BadContent(_)) {
                    bad_content += 1;
                    return bad_content < MAX_BAD_CONTENT_ATTEMPTS;
                }
                e.is_retryable()
            },
            || async {
                // One attempt at a time: the lock is never contended.
                let mut from = mount_from.lock().unwrap().clone();
                let result = self.put_blob_once(repo, upload, &mut from, deadline).await;
                *mount_from.lock().unwrap() = from;
                Ok(result?)
            },
        )
        .await
    }

    async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        match self.referrers_through_api(repo, subject).await? {
            Some(found) => Ok(found),
            None => self.referrers_by_tag(repo, subject).await,
        }
    }

    async fn referrers_given_tags(
        &self,
        repo: &Repository,
        subject: &Digest,
        tags: &BTreeSet<String>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        match self.referrers_through_api(repo, subject).await? {
            Some(found) => Ok(found),
            // Without the API the tag schema is all there is, and the
            // listing already says whether its tag exists.
            None if tags.contains(attachment_tag(subject, None).as_str()) => {
                self.referrers_by_tag(repo, subject).await
            }
            None => Ok(Vec::new()),
        }
    }
}

// ---------------------------------------------------------------- helpers

/// The `Accept` header for manifests: every type we understand.
fn accept_manifests() -> String {
    media_type::ACCEPTED.join(", ")
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let bare = raw.split(';').next().unwrap_or(raw).trim();
    (!bare.is_empty()).then(|| bare.to_string())
}

fn is_generic_type(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/json" | "text/plain" | "application/octet-stream"
    )
}

fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get(DOCKER_CONTENT_DIGEST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v.trim()).ok())
}

/// Attempts of one blob upload whose source keeps producing wrong content.
const MAX_BAD_CONTENT_ATTEMPTS: u32 = 3;

/// A `last=` value that sorts just before `prefix` and after every name that
/// sorts before it: the prefix with its last character decremented, then
/// '~' (greater than every character a repository name can hold).
fn catalog_start(prefix: &str) -> Option<String> {
    let mut bytes = prefix.as_bytes().to_vec();
    let last = bytes.pop()?;
    bytes.push(last.checked_sub(1)?);
    bytes.push(b'~');
    String::from_utf8(bytes).ok()
}

/// The `rel="next"` target of a `Link` header, if any.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK) {
        let Ok(text) = value.to_str() else { continue };
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('>') else { break };
            let target = &after[..close];
            let params_end = after[close..].find('<').map_or(after.len(), |i| close + i);
            let params = &after[close + 1..params_end];
            let is_next = params.split(';').any(|p| {
                let p = p.trim().trim_end_matches(',').trim();
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("rel")
                        && v.trim()
                            .trim_matches('"')
                            .split_ascii_whitespace()
                            .any(|r| r.eq_ignore_ascii_case("next"))
                })
            });
            if is_next {
                return Some(target.to_string());
            }
            rest = &after[params_end..];
        }
    }
    None
}

impl RemoteRegistry {
    /// One GET of a manifest, verified against what was asked.
    async fn get_manifest_once(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<RawManifest>, RegistryError> {
        let req = self.manifest_req(Method::GET, repo, reference)?;
        let response = self.t.send(&req).await?;
        match response.status() {
            StatusCode::NOT_FOUND => {
                drain(response).await;
                return Ok(None);
            }
            s if s.is_success() => {}
            _ => return Err(self.error(&req, response).await),
        }
        let claimed = header_digest(response.headers());
        let header_type = content_type(response.headers()).filter(|m| !is_generic_type(m));
        let bytes =
            read_capped(response, MANIFEST_LIMIT, req.method.as_str(), self.t.pace()).await?;
        let digest = match reference {
            ManifestRef::Digest(asked) => {
                oci::check_bytes(&self.what(repo, asked), asked, &bytes)?;
                asked.clone()
            }
            ManifestRef::Tag(tag) => match claimed {
                // The registry says which digest the tag points at: the
                // bytes must match it.
                Some(claimed) => {
                    oci::check_bytes(&self.what(repo, tag), &claimed, &bytes)?;
                    claimed
                }
                None => Digest::sha256_of(&bytes),
            },
        };
        // Without a usable Content-Type the body must say what it is: bytes
        // that are no manifest are never stored as one.
        let media_type = match header_type.or_else(|| media_type::sniff(&bytes)) {
            Some(m) => m,
            None => {
                return Err(RegistryError::Protocol {
                    what: self.what(repo, reference),
                    message: "the registry sent no manifest media type and the body declares none"
                        .to_string(),
                })
            }
        };
        Ok(Some(RawManifest {
            bytes,
            media_type,
            digest,
        }))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn catalog_listing_starts_just_before_the_prefix() {
        assert_eq!(super::catalog_start("prod").as_deref(), Some("proc~"));
        assert_eq!(super::catalog_start("a/b0").as_deref(), Some("a/b/~"));
        assert_eq!(super::catalog_start(""), None);
        // Every name under the prefix sorts after the start, and the names
        // just before it do not.
        let start = super::catalog_start("prod").unwrap();
        for under in ["prod", "prod/a", "prod-x", "prod/zzz"] {
            assert!(under > start.as_str(), "{under}");
        }
        for before in ["proc", "proc/zzz", "procz"] {
            assert!(before < start.as_str(), "{before}");
        }
    }

    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn link_headers_yield_the_next_page() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static(r#"</v2/_catalog?last=b&n=2>; rel="next""#),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/_catalog?last=b&n=2"));
        h.insert(
            LINK,
            HeaderValue::from_static(
                r#"<https://x/prev>; rel="prev", <https://x/next?a=1,2>; rel=next"#,
            ),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://x/next?a=1,2"));
        h.insert(
            LINK,
            HeaderValue::from_static(r#"<https://x/a>; rel="first""#),
        );
        assert_eq!(next_link(&h), None);
        for junk in ["<", ">", "<<>>", "<a>; rel", "rel=next"] {
            h.insert(LINK, HeaderValue::from_static(junk));
            let _ = next_link(&h);
        }
    }
}
