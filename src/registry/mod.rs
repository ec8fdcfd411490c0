//! The only way the rest of the program touches images: the [`Registry`]
//! trait, with an OCI Distribution implementation over HTTP ([`remote`]) and
//! an OCI image-layout directory implementation ([`layout`]).
//!
//! Every call addresses a [`Repository`]: an endpoint and a path checked
//! once, where it was made ([`crate::reference::RegistryName::repository`],
//! or [`Repository::parse`] for names a listing returns).
//!
//! Existence is three-valued on purpose: `Ok(Some(_))` present, `Ok(None)`
//! absent (a 404), `Err(_)` unknown. An error is never read as "absent".

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::Stream;

use crate::oci::ContentError;
use crate::reference::{Digest, Endpoint, ManifestRef, Repository};

pub mod layout;
#[cfg(test)]
pub mod recording;
pub mod remote;

// The content types live on the ground floor; these names are kept for the
// library's users (tests, examples).
pub use crate::oci::{media_type, Descriptor, RawManifest};

/// A stream of blob bytes. Streams returned by [`Registry::get_blob`] verify the
/// digest as they go (through [`crate::oci::verify::VerifyingStream`]) and end with [`RegistryError::BadContent`] instead of
/// the last chunk when the content is wrong.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;

/// Opens (or re-opens, for a retry) the bytes of a blob being uploaded.
/// Re-openable bodies are what makes a blob upload safe to retry.
pub type BlobOpener =
    Arc<dyn Fn() -> BoxFuture<'static, Result<BlobStream, RegistryError>> + Send + Sync>;

/// A blob to write: its identity, its size, and where its bytes come from.
#[derive(Clone)]
pub struct BlobUpload {
    /// The digest the blob's bytes must hash to.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// A repository on the same endpoint that holds the blob: try a
    /// cross-repository mount first, and fall back to uploading.
    pub mount_from: Option<Repository>,
    /// Opens the bytes to stream when there is no mount, or it failed.
    pub open: BlobOpener,
}

impl fmt::Debug for BlobUpload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobUpload")
            .field("digest", &self.digest)
            .field("size", &self.size)
            .field("mount_from", &self.mount_from)
            .finish_non_exhaustive()
    }
}

/// How a blob reached its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPut {
    /// Mounted from another repository: no bytes moved.
    Mounted,
    /// The bytes were streamed.
    Uploaded,
}

/// A registry error, typed so that callers can branch (retry, report, give up).
/// Display texts never contain credentials or URL query strings.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry wants authentication (HTTP 401) and we have no
    /// credentials it accepts.
    #[error("{registry}: {}", unauthorized_text(registry, scope, credentials))]
    Unauthorized {
        /// The registry's `host[:port]`.
        registry: String,
        /// The access that was asked for (`repository:<path>:pull`...).
        scope: String,
        /// Where the credentials sent came from (a file, a helper); `None`
        /// when there were none to send.
        credentials: Option<String>,
    },
    /// The credentials were accepted but do not grant this access (HTTP 403).
    #[error("{registry}: access denied to {scope}")]
    Denied {
        /// The registry's `host[:port]`.
        registry: String,
        /// The access that was refused.
        scope: String,
    },
    /// The registry asks us to slow down (HTTP 429).
    #[error("{registry}: rate limited (HTTP 429){}", retry_after_text(*retry_after_secs))]
    RateLimited {
        /// The registry's `host[:port]`.
        registry: String,
        /// Its `Retry-After`, in seconds; `None` when it sent none.
        retry_after_secs: Option<u64>,
    },
    /// Bytes that do not match their digest or size (a passing fault or a
    /// corrupt store: retried, then reported).
    #[error(transparent)]
    BadContent(ContentError),
    /// The registry answered with an error status after every retry.
    #[error("{method} {url}: HTTP {status}{}", detail_text(detail))]
    Status {
        /// The HTTP method of the request.
        method: String,
        /// Redacted: no query string, no user info.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The first OCI error code of the body, when it had one.
        code: Option<ErrorCode>,
        /// The registry's own words (its error codes and messages, clipped),
        /// or ours; `None` when the body said nothing useful.
        detail: Option<String>,
    },
    /// Nothing listens where the registry should be: the connection was
    /// refused. Retried briefly ([`crate::limits::REFUSED_ATTEMPTS`]), not
    /// for the whole retry deadline: a registry that is down stays down.
    #[error("{method} {url}: connection refused: is the registry running there, and are the host and port right? ({message})")]
    Refused {
        /// The HTTP method of the request.
        method: String,
        /// Redacted: no query string, no user info.
        url: String,
        /// The operating system's words.
        message: String,
    },
    /// The request got no HTTP answer: the connection failed, timed out or
    /// the answer stalled.
    #[error("{method} {url}: {message}")]
    Transport {
        /// The HTTP method of the request.
        method: String,
        /// Redacted: no query string, no user info.
        url: String,
        /// What went wrong, for people.
        message: String,
        /// Connection-level failures (reset, refused, timed out) are retryable.
        retryable: bool,
    },
    /// A local file or `oci:` tree could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The registry or `oci:` tree answered something the protocol or the
    /// layout format does not allow (bad JSON, a missing header, a body past
    /// its cap, a corrupt `index.json`): not retried, the source is at fault.
    #[error("{what}: {message}")]
    Protocol {
        /// What was being read (a URL, a manifest, a file of the tree).
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// The user's configuration cannot work (a CA file that is no PEM, a
    /// client certificate without its key, a host that is no URL).
    #[error("{what}: {message}")]
    Config {
        /// The setting, file or host at fault.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// Content the plan relies on is gone since it was read.
    #[error("{what}: {message}")]
    Vanished {
        /// What was looked for again.
        what: String,
        /// Why it could not be had.
        message: String,
    },
    /// A bound on what others send was reached: a size, depth or count
    /// from [`crate::limits`]. The message names the limit; the source is at
    /// fault (or, where the bound is a setting, says which one to raise).
    #[error("{what}: {message}")]
    Limit {
        /// What was being read (a URL, a file, an image).
        what: String,
        /// Which limit was reached.
        message: String,
    },
    /// The registry accepted a write but does not hold it when read back
    /// (`--verify-writes`).
    #[error("{what}: {message}")]
    NotStored {
        /// The manifest or blob that was written.
        what: String,
        /// What the read-back found instead.
        message: String,
    },
    /// A bug of ours, reported instead of a panic.
    #[error("{what}: internal error: {message}")]
    Internal {
        /// Where it happened (an endpoint, a request, a destination).
        what: String,
        /// What went wrong.
        message: String,
    },
    /// The registry does not offer something we need (the catalog API, an
    /// authentication scheme we speak).
    #[error("{registry}: {operation} is not supported by this registry")]
    Unsupported {
        /// The registry's `host[:port]`.
        registry: String,
        /// What it does not support, for people.
        operation: String,
    },
    /// Credentials could not be read or used: an unreadable auth file, a
    /// failing credential helper, a secret that cannot go in a header. The
    /// message never contains the secret.
    #[error("{0}")]
    Credentials(String),
}

impl From<ContentError> for RegistryError {
    fn from(e: ContentError) -> RegistryError {
        match e {
            ContentError::Malformed { what, message } => RegistryError::Protocol { what, message },
            mismatch => RegistryError::BadContent(mismatch),
        }
    }
}

/// The error codes of the OCI distribution spec (and Docker's additions
/// registries send), as a registry's error body names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN`: the repository does not hold the blob.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID`: the upload was rejected.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN`: the upload session is gone or never existed.
    BlobUploadUnknown,
    /// `DIGEST_INVALID`: the uploaded bytes do not match the digest given.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN`: a manifest names a blob the repository lacks.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID`: the registry rejected the manifest.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN`: no such manifest (or tag).
    ManifestUnknown,
    /// `NAME_INVALID`: the repository name is not allowed.
    NameInvalid,
    /// `NAME_UNKNOWN`: no such repository.
    NameUnknown,
    /// `SIZE_INVALID`: the content does not have the size given.
    SizeInvalid,
    /// `UNAUTHORIZED`: authentication required.
    Unauthorized,
    /// `DENIED`: access refused.
    Denied,
    /// `UNSUPPORTED`: the operation is not supported.
    Unsupported,
    /// `TOOMANYREQUESTS`: rate limited.
    TooManyRequests,
    /// A code outside the spec, kept as sent.
    Other(String),
}

impl ErrorCode {
    /// The code for `code` as a registry spells it (`BLOB_UNKNOWN`...);
    /// never fails, an unknown code is kept as [`ErrorCode::Other`].
    pub fn parse(code: &str) -> ErrorCode {
        match code {
            "BLOB_UNKNOWN" => ErrorCode::BlobUnknown,
            "BLOB_UPLOAD_INVALID" => ErrorCode::BlobUploadInvalid,
            "BLOB_UPLOAD_UNKNOWN" => ErrorCode::BlobUploadUnknown,
            "DIGEST_INVALID" => ErrorCode::DigestInvalid,
            "MANIFEST_BLOB_UNKNOWN" => ErrorCode::ManifestBlobUnknown,
            "MANIFEST_INVALID" => ErrorCode::ManifestInvalid,
            "MANIFEST_UNKNOWN" => ErrorCode::ManifestUnknown,
            "NAME_INVALID" => ErrorCode::NameInvalid,
            "NAME_UNKNOWN" => ErrorCode::NameUnknown,
            "SIZE_INVALID" => ErrorCode::SizeInvalid,
            "UNAUTHORIZED" => ErrorCode::Unauthorized,
            "DENIED" => ErrorCode::Denied,
            "UNSUPPORTED" => ErrorCode::Unsupported,
            "TOOMANYREQUESTS" => ErrorCode::TooManyRequests,
            other => ErrorCode::Other(other.to_string()),
        }
    }

    /// Whether the code says that something is absent.
    pub fn is_unknown(&self) -> bool {
        matches!(
            self,
            ErrorCode::BlobUnknown
                | ErrorCode::BlobUploadUnknown
                | ErrorCode::ManifestBlobUnknown
                | ErrorCode::ManifestUnknown
                | ErrorCode::NameUnknown
        )
    }
}

/// Refused credentials and missing ones are told apart: the fix differs.
fn unauthorized_text(registry: &str, scope: &str, credentials: &Option<String>) -> String {
    match credentials {
        Some(source) => format!(
            "the registry refused the credentials from {source} for {scope} (a wrong user or password, or an expired token? log in again: docker login {registry})"
        ),
        None => format!(
            "authentication required for {scope}, and there are no credentials for {registry} (log in: docker login {registry}, or give --auth-file)"
        ),
    }
}

fn retry_after_text(secs: Option<u64>) -> String {
    secs.map(|s| format!(", retry after {s}s"))
        .unwrap_or_default()
}

fn detail_text(detail: &Option<String>) -> String {
    detail
        .as_ref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default()
}

/// The one check every walk of a manifest graph (an image, its index
/// children, theirs...) makes before reading a node: the node is `depth`
/// indexes below the root and the `count`th distinct manifest of the walk.
pub fn check_graph(what: &str, depth: usize, count: usize) -> Result<(), RegistryError> {
    use crate::limits::{GRAPH_MANIFESTS, INDEX_DEPTH};
    let message = if depth > INDEX_DEPTH {
        format!("indexes nest more than {INDEX_DEPTH} levels deep")
    } else if count > GRAPH_MANIFESTS {
        format!("the image references more than {GRAPH_MANIFESTS} manifests")
    } else {
        return Ok(());
    };
    Err(RegistryError::Limit {
        what: what.to_string(),
        message: format!("{message}; not walking further (a bound against hostile sources)"),
    })
}

/// Statuses a registry sends for passing trouble: rate limits and
/// overloaded or restarting servers.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

impl RegistryError {
    /// Whether doing the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::RateLimited { .. } => true,
            RegistryError::Status { status, .. } => is_retryable_status(*status),
            RegistryError::Transport { retryable, .. } => *retryable,
            RegistryError::Refused { .. } => true,
            // A corrupted transfer may be a passing fault; the retry verifies again.
            RegistryError::BadContent(_) => true,
            _ => false,
        }
    }
}

/// One registry endpoint: an OCI Distribution server or an `oci:` tree.
#[async_trait]
pub trait Registry: Send + Sync {
    /// The endpoint this registry serves.
    fn endpoint(&self) -> Endpoint;

    /// For messages: the endpoint's name (never with credentials).
    fn display_name(&self) -> String {
        self.endpoint().to_string()
    }

    /// The repository `path` on this registry, checked against the name
    /// grammar (for tools and tests that name repositories by hand).
    fn repository(&self, path: &str) -> Result<Repository, crate::reference::NameError> {
        Repository::parse(&self.endpoint(), path)
    }

    /// Every repository whose path is `prefix` or lies under `prefix/`
    /// (all repositories for an empty prefix), sorted.
    async fn list_repositories(&self, prefix: &str) -> Result<Vec<Repository>, RegistryError>;

    /// Every tag of `repo`, sorted. A repository that does not exist has no tags.
    async fn list_tags(&self, repo: &Repository) -> Result<Vec<String>, RegistryError>;

    /// Every tag of `repo` with its digest, and every digest it holds, in
    /// one listing, where the registry offers that (Google's `tags/list`
    /// extension: its `manifest` map); `None` where it does not, and the
    /// caller reads tag by tag.
    async fn list_digests(&self, repo: &Repository) -> Result<Option<TagListing>, RegistryError> {
        let _ = repo;
        Ok(None)
    }

    /// Digest, media type and size of a manifest, without its body.
    async fn head_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<Descriptor>, RegistryError>;

    /// A manifest's exact bytes and media type. When `reference` is a digest,
    /// the bytes are verified against it.
    async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<RawManifest>, RegistryError>;

    /// Store `manifest` exactly as given, addressed by `reference` (its digest,
    /// or a tag to point at it).
    async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        manifest: &RawManifest,
    ) -> Result<(), RegistryError>;

    /// The size of a blob if `repo` has it.
    async fn blob_exists(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError>;

    /// A blob's bytes, verified against `digest` while streaming.
    async fn get_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<BlobStream, RegistryError>;

    /// Store a blob: mount it when `upload.mount_from` is set and the endpoint
    /// can, otherwise stream it from `upload.open`.
    async fn put_blob(
        &self,
        repo: &Repository,
        upload: &BlobUpload,
    ) -> Result<BlobPut, RegistryError>;

    /// Manifests that declare `subject` as their subject: the OCI 1.1 referrers
    /// API where offered, else the `sha256-<hex>` tag schema, keeping only
    /// entries that really refer to `subject`.
    async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError>;

    /// [`Registry::referrers`], for a caller that has just listed `tags` of
    /// `repo`: where the answer can only come from the tag schema and
    /// `tags` lacks its tag, there are none, and no request is sent.
    async fn referrers_given_tags(
        &self,
        repo: &Repository,
        subject: &Digest,
        tags: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        let _ = tags;
        self.referrers(repo, subject).await
    }
}

/// What one listing told of a repository: each tag's digest, and every
/// digest it holds (tagged or not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagListing {
    /// Each tag, and the digest it points at.
    pub tags: std::collections::BTreeMap<crate::reference::Tag, Digest>,
    /// Every digest the repository holds.
    pub digests: std::collections::BTreeSet<Digest>,
}

/// Manifests already read from a source this run, by repository and
/// digest: the inventory reads attachments to check them, and the executor
/// copies them without reading them again.
#[derive(Debug, Default)]
pub struct ManifestCache(
    std::sync::Mutex<std::collections::HashMap<(Repository, Digest), RawManifest>>,
);

impl ManifestCache {
    /// The manifest `digest` of `repo`, if it was read.
    pub fn get(&self, repo: &Repository, digest: &Digest) -> Option<RawManifest> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(repo.clone(), digest.clone())).cloned()
    }

    /// Remember `manifest`, read from `repo`.
    pub fn insert(&self, repo: &Repository, manifest: &RawManifest) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert((repo.clone(), manifest.digest.clone()), manifest.clone());
    }
}

/// The registries one run talks to, by endpoint.
#[derive(Clone, Default)]
pub struct Registries {
    by_endpoint: std::collections::BTreeMap<Endpoint, Arc<dyn Registry>>,
}

impl Registries {
    /// Serve `endpoint` with `registry`.
    pub fn insert(&mut self, endpoint: &Endpoint, registry: Arc<dyn Registry>) {
        self.by_endpoint.insert(endpoint.clone(), registry);
    }

    /// Whether `endpoint` has a registry.
    pub fn contains(&self, endpoint: &Endpoint) -> bool {
        self.by_endpoint.contains_key(endpoint)
    }

    /// The registry for `endpoint`. Every endpoint a plan mentions is opened
    /// before planning ([`open_all`]), so there is always one to hand out: an
    /// endpoint nobody opened (a bug) gets a registry that fails each call
    /// with an internal error, which fails only the edges that touch it.
    pub fn get(&self, endpoint: &Endpoint) -> Arc<dyn Registry> {
        match self.by_endpoint.get(endpoint) {
            Some(registry) => registry.clone(),
            None => Arc::new(Unopened(endpoint.clone())),
        }
    }
}

/// The stand-in [`Registries::get`] hands out for an endpoint that was never
/// opened.
struct Unopened(Endpoint);

impl Unopened {
    fn error(&self) -> RegistryError {
        RegistryError::Internal {
            what: self.0.to_string(),
            message: "registry was not opened for this run".to_string(),
        }
    }
}

#[async_trait]
impl Registry for Unopened {
    fn endpoint(&self) -> Endpoint {
        self.0.clone()
    }
    async fn list_repositories(&self, _: &str) -> Result<Vec<Repository>, RegistryError> {
        Err(self.error())
    }
    async fn list_tags(&self, _: &Repository) -> Result<Vec<String>, RegistryError> {
        Err(self.error())
    }
    async fn head_manifest(
        &self,
        _: &Repository,
        _: &ManifestRef,
    ) -> Result<Option<Descriptor>, RegistryError> {
        Err(self.error())
    }
    async fn get_manifest(
        &self,
        _: &Repository,
        _: &ManifestRef,
    ) -> Result<Option<RawManifest>, RegistryError> {
        Err(self.error())
    }
    async fn put_manifest(
        &self,
        _: &Repository,
        _: &ManifestRef,
        _: &RawManifest,
    ) -> Result<(), RegistryError> {
        Err(self.error())
    }
    async fn blob_exists(&self, _: &Repository, _: &Digest) -> Result<Option<u64>, RegistryError> {
        Err(self.error())
    }
    async fn get_blob(&self, _: &Repository, _: &Digest) -> Result<BlobStream, RegistryError> {
        Err(self.error())
    }
    async fn put_blob(&self, _: &Repository, _: &BlobUpload) -> Result<BlobPut, RegistryError> {
        Err(self.error())
    }
    async fn referrers(
        &self,
        _: &Repository,
        _: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        Err(self.error())
    }
}

/// How to open the registries of a run.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Settings for the HTTP registries: defaults, and overrides per host.
    pub remote: remote::options::RemoteOptions,
    /// An explicit credentials file, consulted first.
    pub auth_file: Option<std::path::PathBuf>,
}

/// Open every registry `names` mention, one per endpoint. Nothing is sent
/// over the network here; credentials files are read (not helpers run).
pub fn open_all<'a>(
    names: impl IntoIterator<Item = &'a crate::reference::RegistryName>,
    options: &OpenOptions,
) -> Result<Registries, RegistryError> {
    let mut registries = Registries::default();
    let mut remotes = None;
    for name in names {
        if registries.contains(&name.endpoint) {
            continue;
        }
        let registry: Arc<dyn Registry> = match &name.endpoint {
            Endpoint::Layout { root } => Arc::new(layout::LayoutRegistry::new(root)),
            Endpoint::Http { .. } => {
                if remotes.is_none() {
                    let credentials = remote::credentials::CredentialStore::discover(
                        options.auth_file.as_deref(),
                    )?;
                    remotes = Some(remote::Remotes::new(options.remote.clone(), credentials));
                }
                let remotes = remotes.as_ref().expect("set just above");
                remotes.registry(&name.endpoint)?
            }
        };
        registries.insert(&name.endpoint, registry);
    }
    Ok(registries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_error_codes_are_typed_and_others_kept_as_sent() {
        assert_eq!(ErrorCode::parse("BLOB_UNKNOWN"), ErrorCode::BlobUnknown);
        assert_eq!(ErrorCode::parse("DENIED"), ErrorCode::Denied);
        assert_eq!(
            ErrorCode::parse("TOOMANYREQUESTS"),
            ErrorCode::TooManyRequests
        );
        assert_eq!(
            ErrorCode::parse("QUOTA_EXCEEDED"),
            ErrorCode::Other("QUOTA_EXCEEDED".to_string())
        );
        assert!(ErrorCode::ManifestUnknown.is_unknown());
        assert!(!ErrorCode::Denied.is_unknown());
    }

    #[test]
    fn only_passing_faults_are_retryable() {
        let mismatch = RegistryError::from(ContentError::DigestMismatch {
            what: "b".into(),
            expected: Digest::sha256_of(b"a"),
            actual: Digest::sha256_of(b"b"),
        });
        assert!(mismatch.is_retryable());
        let malformed = RegistryError::from(ContentError::Malformed {
            what: "m".into(),
            message: "not JSON".into(),
        });
        assert!(matches!(malformed, RegistryError::Protocol { .. }));
        assert!(!malformed.is_retryable());
        let config = RegistryError::Config {
            what: "ca.pem".into(),
            message: "not a PEM CA bundle".into(),
        };
        assert!(!config.is_retryable());
    }
}
