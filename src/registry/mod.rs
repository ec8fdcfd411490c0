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

use crate::reference::{Digest, Endpoint, ManifestRef, Repository};

mod cache;
mod error;
pub mod layout;
mod open;
mod read_back;
#[cfg(test)]
pub mod recording;
pub mod remote;
pub mod retry;
mod safe_url;

pub use cache::ManifestCache;
pub use error::{error_chain, is_retryable_status, ErrorCode, RegistryError};
pub use open::{open_all, OpenOptions, Registries};
pub use read_back::{read_blob_back, ReadBack};
pub use safe_url::SafeUrl;
// What the CLI configures of the HTTP registries, named without `remote`:
// the callers set options, the transport behind them stays the registry's.
pub use remote::credentials::{Credential, Secret};
pub use remote::{RegistryOptions, RemoteOptions};
// What a registry's pacer did, for the report.
pub use remote::{InFlightReport, PacingReport, RateReport};

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

/// One registry endpoint: an OCI Distribution server or an `oci:` tree.
#[async_trait]
pub trait Registry: Send + Sync {
    /// The endpoint this registry serves.
    fn endpoint(&self) -> Endpoint;

    /// What this registry's pacer did so far (requests, 429s, cuts, time
    /// waited); `None` for a backend that is not paced (`oci:` trees).
    fn pacing(&self) -> Option<PacingReport> {
        None
    }

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
