//! Test support: a real registry that records every call, in order, so that
//! unit tests can assert which requests a component made.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;

use super::layout::LayoutRegistry;
use super::{BlobPut, BlobStream, BlobUpload, Descriptor, RawManifest, Registry, RegistryError};
use crate::reference::{Digest, ManifestRef, Repository};

/// A real layout registry that records every call, in order.
pub struct Recording {
    inner: LayoutRegistry,
    calls: Mutex<Vec<String>>,
    /// Blob digests whose upload fails (to test failure isolation).
    pub fail_blobs: BTreeSet<Digest>,
    /// Behave like a registry without the referrers API: list only what the
    /// `<alg>-<hex>` tag index names.
    pub tag_schema_only: bool,
}

impl Recording {
    /// A recording registry over the `oci:` tree at `root`.
    pub fn new(root: &Path) -> Recording {
        Recording {
            inner: LayoutRegistry::new(root),
            calls: Mutex::new(Vec::new()),
            fail_blobs: BTreeSet::new(),
            tag_schema_only: false,
        }
    }
    fn record(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }
    /// Every call so far, in order, as `kind repo argument`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl Registry for Recording {
    fn endpoint(&self) -> crate::reference::Endpoint {
        self.inner.endpoint()
    }
    async fn list_repositories(&self, prefix: &str) -> Result<Vec<Repository>, RegistryError> {
        self.record(format!("list {prefix}"));
        self.inner.list_repositories(prefix).await
    }
    async fn list_tags(&self, repo: &Repository) -> Result<Vec<String>, RegistryError> {
        self.record(format!("tags {}", repo.path()));
        self.inner.list_tags(repo).await
    }
    async fn head_manifest(
        &self,
        repo: &Repository,
        r: &ManifestRef,
    ) -> Result<Option<Descriptor>, RegistryError> {
        self.record(format!("head-manifest {} {r}", repo.path()));
        self.inner.head_manifest(repo, r).await
    }
    async fn get_manifest(
        &self,
        repo: &Repository,
        r: &ManifestRef,
    ) -> Result<Option<RawManifest>, RegistryError> {
        self.record(format!("get-manifest {} {r}", repo.path()));
        self.inner.get_manifest(repo, r).await
    }
    async fn put_manifest(
        &self,
        repo: &Repository,
        r: &ManifestRef,
        m: &RawManifest,
    ) -> Result<(), RegistryError> {
        self.record(format!("put-manifest {} {r}", repo.path()));
        self.inner.put_manifest(repo, r, m).await
    }
    async fn blob_exists(
        &self,
        repo: &Repository,
        d: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        self.record(format!("head-blob {} {d}", repo.path()));
        self.inner.blob_exists(repo, d).await
    }
    async fn get_blob(&self, repo: &Repository, d: &Digest) -> Result<BlobStream, RegistryError> {
        self.record(format!("get-blob {} {d}", repo.path()));
        self.inner.get_blob(repo, d).await
    }
    async fn put_blob(
        &self,
        repo: &Repository,
        upload: &BlobUpload,
    ) -> Result<BlobPut, RegistryError> {
        self.record(format!("put-blob {} {}", repo.path(), upload.digest));
        if self.fail_blobs.contains(&upload.digest) {
            return Err(RegistryError::Status {
                method: "PUT".into(),
                url: "test".into(),
                status: 500,
                code: None,
                detail: None,
            });
        }
        self.inner.put_blob(repo, upload).await
    }
    async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        self.record(format!("referrers {} {subject}", repo.path()));
        let found = self.inner.referrers(repo, subject).await?;
        if !self.tag_schema_only {
            return Ok(found);
        }
        let tag = crate::oci::attachment_tag(subject, None);
        let Some(index) = self
            .inner
            .get_manifest(repo, &ManifestRef::Tag(tag))
            .await?
        else {
            return Ok(Vec::new());
        };
        let listed: BTreeSet<Digest> = crate::oci::references(&index, "referrers index")?
            .manifests
            .into_iter()
            .map(|d| d.digest)
            .collect();
        Ok(found
            .into_iter()
            .filter(|d| listed.contains(&d.digest))
            .collect())
    }
}
