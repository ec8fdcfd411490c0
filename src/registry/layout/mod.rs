//! `oci:PATH` trees of OCI image layouts.
//!
//! Repository `foo/bar` lives in `PATH/foo/bar/`: an `oci-layout` marker, an
//! `index.json`, and `blobs/<alg>/<hex>`. Manifests are blobs too. Tags are
//! `org.opencontainers.image.ref.name` annotations on index.json entries, one
//! entry per (digest, tag); a manifest put by digest only is kept reachable by
//! an entry without that annotation (so that promote-by-digest works and
//! layout tools don't collect it).
//!
//! Crash safety, the order every write follows:
//! - a blob is streamed into `blobs/<alg>/.tmp-<hex>.<random>`, hashed on the way,
//!   fsynced, verified, then renamed into place (and the directory fsynced):
//!   a blob path either does not exist or holds verified content;
//! - a manifest is only accepted once every blob or child manifest it
//!   references exists, and index.json names it only after its own blob is
//!   in place;
//! - index.json is replaced atomically (temp file, fsync, rename, fsync dir);
//! - by digest, only what index.json reaches is a manifest of the layout (an
//!   entry, or a child of an index with one): a manifest blob left without
//!   its entry by a crash reads as absent, so the next put records it.
//!
//! Temp names are the target's with a random suffix (`.tmp-<name>.<random>`),
//! so no two writers share one, and every read ignores them (readers only
//! open exact names). A temp file is held under an exclusive lock (flock)
//! from its creation until it is renamed into place; the first write of a
//! run to a layout sweeps away the `.tmp-*` files no writer holds, which
//! is what a SIGKILL (that skips the drop guards) leaves. Within one
//! process, writers of the same target take an async lock, so concurrent
//! tag writes to one repository never lose an update. Several processes
//! writing one tree at once are not supported (as with other layout tools),
//! but the sweep never removes another process's file being written.
//!
//! Where each part lives: `index` (index.json's model, read and replaced,
//! and what it reaches), `write` (the durable writes, in the order above),
//! `walk` (the repositories of a tree), `referrers`, and `files` (the checks
//! every file operation goes through). The [`Registry`] impl is here.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

mod files;
mod index;
mod referrers;
#[cfg(test)]
mod tests;
mod walk;
mod write;

use self::index::{IndexEntry, ReachableChildren};
use self::referrers::ReferrersBySubject;
use self::walk::walk_repositories;
use self::write::PathLocks;
use super::{BlobPut, BlobStream, BlobUpload, Registry, RegistryError};
use crate::oci::verify::{Expect, VerifyingStream};
use crate::oci::ContentError;
use crate::oci::{self, media_type, Descriptor, RawManifest};
use crate::reference::{Digest, ManifestRef, Repository, Tag};

const OCI_LAYOUT_FILE: &str = "oci-layout";
const INDEX_JSON: &str = "index.json";
const BLOBS_DIR: &str = "blobs";
/// Names inside a layout directory: never a component of an image path.
const RESERVED_NAMES: [&str; 3] = crate::reference::LAYOUT_FILE_NAMES;
/// The annotation that names a tag in index.json.
pub const REF_NAME: &str = oci_spec::image::ANNOTATION_REF_NAME;
/// Manifests above this are not read as manifests: see
/// [`crate::limits::MANIFEST_BYTES`], the same limit the remote side has.
const MAX_MANIFEST_BYTES: u64 = crate::limits::MANIFEST_BYTES as u64;
/// Read buffer for blob streams: bounded memory whatever the blob size.
const STREAM_BUFFER: usize = 64 * 1024;

// ---------------------------------------------------------------- errors

fn io_error(path: &Path, source: io::Error) -> RegistryError {
    RegistryError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The tree holds what the OCI image-layout format does not allow.
fn invalid(what: impl Into<String>, message: impl Into<String>) -> RegistryError {
    RegistryError::Protocol {
        what: what.into(),
        message: message.into(),
    }
}

fn join_error(path: &Path, e: tokio::task::JoinError) -> RegistryError {
    io_error(path, io::Error::other(e.to_string()))
}

// ---------------------------------------------------------------- the registry

/// A tree of OCI image layouts under one root directory.
pub struct LayoutRegistry {
    root: PathBuf,
    /// Every file operation goes through here (see [`files`]).
    tree: files::Tree,
    locks: PathLocks,
    /// Per repository directory: the manifests reachable as index children,
    /// for the index.json they were computed from (by its digest), so that
    /// reading N children walks the graph once, not N times.
    children: std::sync::Mutex<HashMap<PathBuf, ReachableChildren>>,
    /// Per repository directory: index.json's entries by the subject they
    /// name, for the index.json they were computed from.
    referrers: std::sync::Mutex<HashMap<PathBuf, (Digest, Arc<ReferrersBySubject>)>>,
    /// The repository directories this run has written to, each swept of
    /// a killed writer's temp files the first time.
    swept: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
}

impl LayoutRegistry {
    /// A registry over the layouts under `root`. Nothing is touched until the
    /// first call; a missing root is an empty registry, created on first write.
    pub fn new(root: impl Into<PathBuf>) -> LayoutRegistry {
        let root = root.into();
        LayoutRegistry {
            tree: files::Tree::new(root.clone()),
            root,
            locks: PathLocks::default(),
            children: std::sync::Mutex::new(HashMap::new()),
            referrers: std::sync::Mutex::new(HashMap::new()),
            swept: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// The directory this registry serves, as given to [`LayoutRegistry::new`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `repo`. Its path passed the name grammar where it
    /// was made (which keeps `..` and absolute paths out of the tree); the
    /// names a layout uses for itself are refused as components, so that no
    /// image can live inside another one's blob store or shadow its files.
    fn repo_dir(&self, repo: &Repository) -> Result<PathBuf, RegistryError> {
        if let Some(reserved) = repo.components().find(|c| RESERVED_NAMES.contains(c)) {
            return Err(RegistryError::Config {
                what: repo.to_string(),
                message: format!(
                    "{reserved:?} names a layout's own files; an image in an oci: tree \
                     cannot have it as a path component (rename the image)"
                ),
            });
        }
        Ok(repo
            .components()
            .fold(self.root.clone(), |dir, c| dir.join(c)))
    }

    fn what(&self, repo: &Repository, reference: impl std::fmt::Display) -> String {
        format!("{repo}@{reference}")
    }

    /// Resolve `reference` to a descriptor, or `None` when absent.
    async fn resolve(
        &self,
        repo: &Repository,
        dir: &Path,
        reference: &ManifestRef,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let index = self.read_index(dir).await?;
        match reference {
            ManifestRef::Tag(tag) => {
                let Some(entry) = index.as_ref().and_then(|i| i.tagged(tag.as_str())) else {
                    return Ok(None);
                };
                // A tag naming missing content means a damaged layout: that is
                // an error (unknown), never "absent".
                let path = blob_path(dir, &entry.digest);
                match self.tree.size(&path).await? {
                    Some(size) if size == entry.size => Ok(Some(entry.descriptor())),
                    Some(size) => Err(invalid(
                        self.what(repo, tag),
                        format!(
                            "index.json says {} bytes, {} holds {size}",
                            entry.size,
                            path.display()
                        ),
                    )),
                    None => Err(invalid(
                        self.what(repo, tag),
                        format!(
                            "index.json names {} but {} is missing",
                            entry.digest,
                            path.display()
                        ),
                    )),
                }
            }
            ManifestRef::Digest(digest) => {
                let path = blob_path(dir, digest);
                let Some(size) = self.tree.size(&path).await? else {
                    return Ok(None);
                };
                if let Some(entry) = index
                    .as_ref()
                    .and_then(|i| i.manifests.iter().find(|e| &e.digest == digest))
                {
                    return Ok(Some(Descriptor {
                        size,
                        ..entry.descriptor()
                    }));
                }
                // Not in index.json: a manifest only if it is the child of an
                // index that index.json names (other tools keep children as
                // blobs only). Anything else is unreachable: the leftover of a
                // put interrupted between the blob and its index.json entry,
                // which a layout GC may collect. Reporting it absent makes the
                // next promotion put it again, which adds the entry.
                if !self
                    .is_indexed_child(repo, dir, index.as_ref(), digest)
                    .await?
                {
                    return Ok(None);
                }
                // The manifest's own mediaType says what it is. A blob that
                // isn't a manifest is no manifest by that digest.
                let Some(bytes) = self.read_manifest_bytes(repo, &path, digest, size).await? else {
                    return Ok(None);
                };
                Ok(media_type::sniff(&bytes).map(|media_type| Descriptor {
                    digest: digest.clone(),
                    media_type,
                    size,
                    artifact_type: None,
                    foreign: false,
                }))
            }
        }
    }

    /// The verified bytes of a manifest blob; `None` when the blob is too big
    /// to be a manifest or has vanished since it was looked at.
    async fn read_manifest_bytes(
        &self,
        repo: &Repository,
        path: &Path,
        digest: &Digest,
        size: u64,
    ) -> Result<Option<Bytes>, RegistryError> {
        if size > MAX_MANIFEST_BYTES {
            return Ok(None);
        }
        let Some(bytes) = self
            .tree
            .read_capped(path, MAX_MANIFEST_BYTES, "manifest")
            .await?
        else {
            return Ok(None);
        };
        oci::check_bytes(&self.what(repo, digest), digest, &bytes)?;
        Ok(Some(bytes))
    }

    /// Refuse a manifest whose blobs or child manifests are not all in `dir`:
    /// a layout (like a registry) never holds a manifest naming missing content.
    async fn check_references(
        &self,
        repo: &Repository,
        dir: &Path,
        manifest: &RawManifest,
    ) -> Result<(), RegistryError> {
        let what = self.what(repo, &manifest.digest);
        let known = media_type::ACCEPTED.contains(&manifest.media_type.as_str());
        let refs = match crate::oci::references(manifest, &what) {
            Ok(refs) => refs,
            // Types we don't know are stored as they are, like a registry does.
            Err(_) if !known => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for r in refs.manifests.iter().chain(refs.blobs.iter()) {
            if r.foreign {
                continue;
            }
            if self.tree.size(&blob_path(dir, &r.digest)).await?.is_none() {
                return Err(invalid(
                    what,
                    format!(
                        "references {} ({}), which {repo} does not hold",
                        r.digest, r.media_type
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Registry for LayoutRegistry {
    fn endpoint(&self) -> crate::reference::Endpoint {
        crate::reference::Endpoint::Layout {
            root: self.root.display().to_string(),
        }
    }

    async fn list_repositories(&self, prefix: &str) -> Result<Vec<Repository>, RegistryError> {
        let prefix = prefix.trim_matches('/').to_string();
        let start = if prefix.is_empty() {
            self.root.clone()
        } else {
            let prefix_repo = Repository::parse(&self.endpoint(), &prefix).map_err(|e| {
                invalid(
                    format!("{}: repository {prefix:?}", self.display_name()),
                    e.message,
                )
            })?;
            self.repo_dir(&prefix_repo)?
        };
        let root = self.root.clone();
        let names = tokio::task::spawn_blocking(move || walk_repositories(&root, &start, &prefix))
            .await
            .map_err(|e| join_error(&self.root, e))??;
        let endpoint = self.endpoint();
        // The walk only keeps names that parse.
        Ok(names
            .iter()
            .filter_map(|name| Repository::parse(&endpoint, name).ok())
            .collect())
    }

    async fn list_tags(&self, repo: &Repository) -> Result<Vec<String>, RegistryError> {
        let dir = self.repo_dir(repo)?;
        let Some(index) = self.read_index(&dir).await? else {
            return Ok(Vec::new());
        };
        // ref.name may hold a full reference when other tools wrote the
        // layout; only names that are tags can be addressed as tags.
        let mut tags: Vec<String> = index
            .manifests
            .iter()
            .filter_map(IndexEntry::ref_name)
            .filter(|name| Tag::parse(name).is_ok())
            .map(str::to_string)
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    async fn head_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let dir = self.repo_dir(repo)?;
        self.resolve(repo, &dir, reference).await
    }

    async fn get_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<Option<RawManifest>, RegistryError> {
        let dir = self.repo_dir(repo)?;
        let Some(desc) = self.resolve(repo, &dir, reference).await? else {
            return Ok(None);
        };
        let path = blob_path(&dir, &desc.digest);
        if desc.size > MAX_MANIFEST_BYTES {
            return Err(invalid(
                self.what(repo, reference),
                format!(
                    "manifest of {} bytes exceeds the {MAX_MANIFEST_BYTES}-byte limit",
                    desc.size
                ),
            ));
        }
        // Verified against the digest asked for, or the one the tag names.
        let Some(bytes) = self
            .read_manifest_bytes(repo, &path, &desc.digest, desc.size)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(RawManifest {
            bytes,
            media_type: desc.media_type,
            digest: desc.digest,
        }))
    }

    async fn put_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        manifest: &RawManifest,
    ) -> Result<(), RegistryError> {
        let dir = self.repo_dir(repo)?;
        let what = self.what(repo, reference);
        // Never write what get_manifest would refuse to read back.
        if manifest.bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(invalid(
                what,
                format!(
                    "manifest of {} bytes exceeds the {MAX_MANIFEST_BYTES}-byte limit",
                    manifest.bytes.len()
                ),
            ));
        }
        oci::check_bytes(&what, &manifest.digest, &manifest.bytes)?;
        if let ManifestRef::Digest(d) = reference {
            if d != &manifest.digest {
                return Err(RegistryError::BadContent(ContentError::DigestMismatch {
                    what,
                    expected: d.clone(),
                    actual: manifest.digest.clone(),
                }));
            }
        }
        self.check_references(repo, &dir, manifest).await?;
        self.ensure_layout(&dir).await?;
        // The manifest's blob first: index.json must never name missing content.
        let body: BlobStream =
            Box::pin(futures::stream::once(futures::future::ready(Ok(manifest
                .bytes
                .clone()))));
        self.write_blob(
            &dir,
            &manifest.digest,
            manifest.bytes.len() as u64,
            body,
            &what,
        )
        .await?;
        match reference {
            ManifestRef::Digest(_) => self.update_index(&dir, |i| i.add_untagged(manifest)).await,
            ManifestRef::Tag(tag) => self.update_index(&dir, |i| i.set_tag(tag, manifest)).await,
        }
    }

    async fn blob_exists(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let dir = self.repo_dir(repo)?;
        self.tree.size(&blob_path(&dir, digest)).await
    }

    async fn get_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<BlobStream, RegistryError> {
        let dir = self.repo_dir(repo)?;
        let path = blob_path(&dir, digest);
        let Some((file, _)) = self.tree.open(&path).await? else {
            return Err(io_error(&path, io::Error::from(io::ErrorKind::NotFound)));
        };
        let error_path = path.clone();
        let raw: BlobStream = Box::pin(
            tokio_util::io::ReaderStream::with_capacity(file, STREAM_BUFFER)
                .map(move |r| r.map_err(|e| io_error(&error_path, e))),
        );
        Ok(Box::pin(VerifyingStream::new(
            raw,
            Expect::Digest(digest.clone(), None),
            self.what(repo, digest),
        )))
    }

    async fn put_blob(
        &self,
        repo: &Repository,
        upload: &BlobUpload,
    ) -> Result<BlobPut, RegistryError> {
        let dir = self.repo_dir(repo)?;
        let target = blob_path(&dir, &upload.digest);
        let what = self.what(repo, &upload.digest);
        if let Some(size) = self.tree.size(&target).await? {
            if size != upload.size {
                return Err(RegistryError::BadContent(ContentError::SizeMismatch {
                    what,
                    expected: upload.size,
                    actual: size,
                }));
            }
            // Left as is: nothing had to move.
            return Ok(if upload.mount_from.is_some() {
                BlobPut::Mounted
            } else {
                BlobPut::Uploaded
            });
        }
        self.ensure_layout(&dir).await?;
        if let Some(from) = &upload.mount_from {
            let source = blob_path(&self.repo_dir(from)?, &upload.digest);
            // Best effort, as a registry mount: a source without the blob
            // falls back to the upload below.
            if self.tree.size(&source).await? == Some(upload.size) {
                if self
                    .link_blob(&dir, &source, &target, &upload.digest)
                    .await?
                {
                    return Ok(BlobPut::Mounted);
                }
                // No hard links here (another file system…): copy, verified.
                let Some((file, _)) = self.tree.open(&source).await? else {
                    return Err(io_error(&source, io::Error::from(io::ErrorKind::NotFound)));
                };
                let error_path = source.clone();
                let body: BlobStream = Box::pin(
                    tokio_util::io::ReaderStream::with_capacity(file, STREAM_BUFFER)
                        .map(move |r| r.map_err(|e| io_error(&error_path, e))),
                );
                self.write_blob(&dir, &upload.digest, upload.size, body, &what)
                    .await?;
                return Ok(BlobPut::Mounted);
            }
        }
        let body = (upload.open)().await?;
        self.write_blob(&dir, &upload.digest, upload.size, body, &what)
            .await?;
        Ok(BlobPut::Uploaded)
    }

    async fn referrers(
        &self,
        repo: &Repository,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        self.referrers_of(repo, subject).await
    }
}

fn blob_dir(repo_dir: &Path, digest: &Digest) -> PathBuf {
    repo_dir.join(BLOBS_DIR).join(digest.algorithm().as_str())
}

fn blob_path(repo_dir: &Path, digest: &Digest) -> PathBuf {
    blob_dir(repo_dir, digest).join(digest.hex())
}

/// `NotFound`, or a path component that is a file (`ENOTDIR`): both mean
/// "there is nothing there".
fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory
}
