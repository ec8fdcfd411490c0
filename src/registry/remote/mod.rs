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
//!
//! One file per protocol operation, as go-containerregistry's
//! `pkg/v1/remote` has it: `manifests`, `blobs`, `uploads`, `listings`,
//! `referrers`; this module holds the registry handle and the factory.

pub mod auth;
mod blobs;
mod body;
pub mod credentials;
mod listings;
mod manifests;
pub mod options;
mod pacer;
mod referrers;
pub mod retry;
mod tls;
pub(crate) mod transport;
mod uploads;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU8};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::Response;
use url::Url;

pub use auth::Scopes;
pub use credentials::{Credential, CredentialStore, Secret};
pub use listings::next_link;
pub use options::{RegistryOptions, RemoteOptions, ResolvedOptions};
pub use pacer::{InFlightReport, PacingReport, RateReport};

use self::referrers::REFERRERS_UNKNOWN;
use self::transport::{Req, Transport};
use crate::oci::ContentError;
use crate::reference::{Digest, Endpoint, ManifestRef, Repository};
use crate::registry::{
    BlobPut, BlobStream, BlobUpload, Descriptor, RawManifest, Registry, RegistryError, TagListing,
};

// What a registry says it holds (`Docker-Content-Digest`) is read for
// manifests and checked after manifest and blob PUTs alike: it lives here,
// beside the other helpers every operation file shares.

/// Largest manifest accepted: see [`crate::limits::MANIFEST_BYTES`].
pub const MANIFEST_LIMIT: usize = crate::limits::MANIFEST_BYTES;
/// Attempts at reading a manifest, or at one blob upload, whose bytes keep
/// coming back wrong: a passing fault is worth a fresh read or two, a
/// source that keeps sending bad bytes is broken.
const MAX_BAD_CONTENT_ATTEMPTS: u32 = 3;

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

    /// What the registry says it stored (`Docker-Content-Digest`) must be
    /// what was sent, when it names the same algorithm.
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
}

#[async_trait]
impl Registry for RemoteRegistry {
    fn endpoint(&self) -> Endpoint {
        Endpoint::Http {
            host: self.t.host.clone(),
        }
    }

    fn pacing(&self) -> Option<PacingReport> {
        Some(self.t.pacer.report(&self.t.host))
    }

    async fn list_repositories(&self, prefix: &str) -> Result<Vec<Repository>, RegistryError> {
        self.catalog(prefix).await
    }

    async fn list_tags(&self, repo: &Repository) -> Result<Vec<String>, RegistryError> {
        self.tags(repo).await
    }

    async fn list_digests(&self, repo: &Repository) -> Result<Option<TagListing>, RegistryError> {
        self.tags_with_digests(repo).await
    }

    async fn head_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<Descriptor>, RegistryError> {
        self.manifest_head(repo, reference).await
    }

    async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<RawManifest>, RegistryError> {
        self.manifest_get(repo, reference).await
    }

    async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        manifest: &RawManifest,
    ) -> Result<(), RegistryError> {
        self.manifest_put(repo, reference, manifest).await
    }

    async fn blob_exists(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        self.blob_head(repo, digest).await
    }

    async fn get_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<BlobStream, RegistryError> {
        self.blob_get(repo, digest).await
    }

    async fn put_blob(
        &self,
        repo: &Repository,
        upload: &BlobUpload,
    ) -> Result<BlobPut, RegistryError> {
        self.blob_put(repo, upload).await
    }

    async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        self.referrers_of(repo, subject).await
    }

    async fn referrers_given_tags(
        &self,
        repo: &Repository,
        subject: &Digest,
        tags: &BTreeSet<String>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        self.referrers_of_listed(repo, subject, tags).await
    }
}

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// The digest the registry says it holds (`Docker-Content-Digest`).
fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get(DOCKER_CONTENT_DIGEST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v.trim()).ok())
}
