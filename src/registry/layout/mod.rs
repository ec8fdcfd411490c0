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
//! - a blob is streamed into `blobs/<alg>/.tmp-<hex>`, hashed on the way,
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
//! Temp names are fixed per target (`.tmp-<name>`), so a leftover from a crash
//! is ignored by every read (readers only open exact names) and overwritten by
//! the next write of the same target. Within one process, writers of the same
//! target take an async lock, so concurrent tag writes to one repository never
//! lose an update. Several processes writing one tree at once are not
//! supported (as with other layout tools).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

mod files;

use super::{BlobPut, BlobStream, BlobUpload, Registry, RegistryError};
use crate::oci::verify::{Expect, VerifyingStream};
use crate::oci::ContentError;
use crate::oci::{self, media_type, Descriptor, RawManifest};
use crate::reference::{Digest, ImageName, ManifestRef, Repository, Tag};

const OCI_LAYOUT_FILE: &str = "oci-layout";
const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const INDEX_JSON: &str = "index.json";
const BLOBS_DIR: &str = "blobs";
const TEMP_PREFIX: &str = ".tmp-";
/// Names inside a layout directory: never a component of an image path.
const RESERVED_NAMES: [&str; 3] = crate::reference::LAYOUT_FILE_NAMES;
/// The annotation that names a tag in index.json.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Manifests above this are not read as manifests: see
/// [`crate::limits::MANIFEST_BYTES`], the same limit the remote side has.
const MAX_MANIFEST_BYTES: u64 = crate::limits::MANIFEST_BYTES as u64;
/// Read buffer for blob streams: bounded memory whatever the blob size.
const STREAM_BUFFER: usize = 64 * 1024;
/// Symlinked directories are followed inside the root; this bounds the depth
/// of the walk whatever the links do.
const MAX_WALK_DEPTH: usize = 64;

// ---------------------------------------------------------------- index.json

/// One `manifests` entry of index.json. Unknown fields (platform, other
/// annotations…) are kept as they are when the file is rewritten.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexEntry {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

impl IndexEntry {
    fn new(manifest: &RawManifest, tag: Option<&Tag>) -> IndexEntry {
        IndexEntry {
            media_type: manifest.media_type.clone(),
            digest: manifest.digest.clone(),
            size: manifest.bytes.len() as u64,
            annotations: tag.map(|t| BTreeMap::from([(REF_NAME.to_string(), t.to_string())])),
            extra: serde_json::Map::new(),
        }
    }

    fn ref_name(&self) -> Option<&str> {
        self.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
    }

    fn descriptor(&self) -> Descriptor {
        Descriptor {
            digest: self.digest.clone(),
            media_type: self.media_type.clone(),
            size: self.size,
            artifact_type: None,
            foreign: false,
        }
    }

    /// The same entry without its tag (what remains when a tag moves away).
    fn untagged(mut self) -> IndexEntry {
        if let Some(annotations) = &mut self.annotations {
            annotations.remove(REF_NAME);
            if annotations.is_empty() {
                self.annotations = None;
            }
        }
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexFile {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<IndexEntry>,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
    /// The digest of the bytes this was read from (not part of the file).
    #[serde(skip)]
    fingerprint: Option<Digest>,
}

impl IndexFile {
    fn empty() -> IndexFile {
        IndexFile {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.to_string()),
            manifests: Vec::new(),
            extra: serde_json::Map::new(),
            fingerprint: None,
        }
    }

    /// The entry a tag names. Foreign tools may leave duplicates; the last
    /// one is the most recently written.
    fn tagged(&self, tag: &str) -> Option<&IndexEntry> {
        self.manifests
            .iter()
            .rev()
            .find(|e| e.ref_name() == Some(tag))
    }

    /// Record `manifest` as reachable by digest. Nothing to do when any
    /// entry already names the digest. Returns whether anything changed.
    fn add_untagged(&mut self, manifest: &RawManifest) -> bool {
        if self.manifests.iter().any(|e| e.digest == manifest.digest) {
            return false;
        }
        self.manifests.push(IndexEntry::new(manifest, None));
        true
    }

    /// Point `tag` at `manifest`. A digest the tag leaves behind keeps an
    /// untagged entry when nothing else names it, so no content becomes
    /// unreachable; an untagged entry for the new digest becomes redundant.
    fn set_tag(&mut self, tag: &Tag, manifest: &RawManifest) -> bool {
        let tag_entries = self
            .manifests
            .iter()
            .filter(|e| e.ref_name() == Some(tag.as_str()))
            .count();
        let redundant_untagged = self
            .manifests
            .iter()
            .any(|e| e.digest == manifest.digest && e.ref_name().is_none());
        if tag_entries == 1
            && !redundant_untagged
            && self.tagged(tag.as_str()).map(|e| &e.digest) == Some(&manifest.digest)
        {
            return false;
        }
        let (left, kept): (Vec<IndexEntry>, Vec<IndexEntry>) = std::mem::take(&mut self.manifests)
            .into_iter()
            .partition(|e| e.ref_name() == Some(tag.as_str()));
        self.manifests = kept
            .into_iter()
            .filter(|e| !(e.digest == manifest.digest && e.ref_name().is_none()))
            .collect();
        for old in left {
            if old.digest != manifest.digest
                && !self.manifests.iter().any(|e| e.digest == old.digest)
            {
                self.manifests.push(old.untagged());
            }
        }
        self.manifests.push(IndexEntry::new(manifest, Some(tag)));
        true
    }
}

// ---------------------------------------------------------------- locks

/// Async locks keyed by path: one writer per target file within a process.
/// Entries are dropped when nobody holds or waits for them.
#[derive(Default)]
struct PathLocks(std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>);

struct PathGuard<'a> {
    locks: &'a PathLocks,
    key: PathBuf,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl PathLocks {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>> {
        // A panic while holding this short critical section cannot leave the
        // map inconsistent, so a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn lock(&self, key: &Path) -> PathGuard<'_> {
        let mutex = self.map().entry(key.to_path_buf()).or_default().clone();
        let guard = mutex.lock_owned().await;
        PathGuard {
            locks: self,
            key: key.to_path_buf(),
            guard: Some(guard),
        }
    }
}

impl Drop for PathGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.map();
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}

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
}

/// The digest of an index.json, and the index children reachable from it.
type ReachableChildren = (Digest, Arc<std::collections::BTreeSet<Digest>>);

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

    async fn read_index(&self, dir: &Path) -> Result<Option<IndexFile>, RegistryError> {
        let path = dir.join(INDEX_JSON);
        let Some(bytes) = self
            .tree
            .read_capped(&path, crate::limits::INDEX_JSON_BYTES, INDEX_JSON)
            .await?
        else {
            return Ok(None);
        };
        let mut index: IndexFile = serde_json::from_slice(&bytes).map_err(|e| {
            invalid(
                path.display().to_string(),
                format!("not a valid OCI index: {e}"),
            )
        })?;
        index.fingerprint = Some(Digest::sha256_of(&bytes));
        Ok(Some(index))
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

    /// Whether `digest` is a child (at any depth) of an index that
    /// index.json names.
    async fn is_indexed_child(
        &self,
        repo: &Repository,
        dir: &Path,
        index: Option<&IndexFile>,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let Some(index) = index else {
            return Ok(false);
        };
        let cached = index.fingerprint.as_ref().and_then(|fingerprint| {
            let children = self.children.lock().unwrap_or_else(|p| p.into_inner());
            children
                .get(dir)
                .filter(|(seen, _)| seen == fingerprint)
                .map(|(_, set)| set.clone())
        });
        let children = match cached {
            Some(children) => children,
            None => {
                let children = Arc::new(self.index_children(repo, dir, index).await?);
                if let Some(fingerprint) = &index.fingerprint {
                    self.children
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(dir.to_path_buf(), (fingerprint.clone(), children.clone()));
                }
                children
            }
        };
        Ok(children.contains(digest))
    }

    /// Every manifest reachable as a child of the indexes `index` names,
    /// walked once, breadth first, within the bounds of
    /// [`crate::registry::check_graph`].
    async fn index_children(
        &self,
        repo: &Repository,
        dir: &Path,
        index: &IndexFile,
    ) -> Result<std::collections::BTreeSet<Digest>, RegistryError> {
        let mut children = std::collections::BTreeSet::new();
        let mut pending: std::collections::VecDeque<(Digest, String, usize)> = index
            .manifests
            .iter()
            .filter(|e| media_type::is_index(&e.media_type))
            .map(|e| (e.digest.clone(), e.media_type.clone(), 0))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        while let Some((parent, media_type, depth)) = pending.pop_front() {
            if !seen.insert(parent.clone()) {
                continue;
            }
            crate::registry::check_graph(&self.what(repo, &parent), depth, seen.len())?;
            let path = blob_path(dir, &parent);
            let Some(size) = self.tree.size(&path).await? else {
                continue;
            };
            let Some(bytes) = self.read_manifest_bytes(repo, &path, &parent, size).await? else {
                continue;
            };
            let manifest = RawManifest {
                bytes,
                media_type,
                digest: parent.clone(),
            };
            let Ok(refs) = crate::oci::references(&manifest, &self.what(repo, &parent)) else {
                continue;
            };
            for child in refs.manifests {
                if media_type::is_index(&child.media_type) {
                    pending.push_back((child.digest.clone(), child.media_type, depth + 1));
                }
                children.insert(child.digest);
            }
        }
        Ok(children)
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

    /// Create the layout's skeleton (directory, `oci-layout`) if missing.
    async fn ensure_layout(&self, dir: &Path) -> Result<(), RegistryError> {
        let marker = dir.join(OCI_LAYOUT_FILE);
        if tokio::fs::metadata(&marker).await.is_ok() {
            return Ok(());
        }
        let _guard = self.locks.lock(&marker).await;
        self.tree.create_dir_inside(dir)?;
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            write_atomically(&dir, OCI_LAYOUT_FILE, OCI_LAYOUT_CONTENT)
        })
        .await
        .map_err(|e| join_error(&marker, e))?
    }

    /// Stream `body` into the blob `digest` of the layout at `dir`, verifying
    /// size and digest before it becomes visible. An existing blob is kept.
    async fn write_blob(
        &self,
        dir: &Path,
        digest: &Digest,
        size: u64,
        body: BlobStream,
        what: &str,
    ) -> Result<(), RegistryError> {
        let target = blob_path(dir, digest);
        let _guard = self.locks.lock(&target).await;
        if self.tree.size(&target).await?.is_some() {
            return Ok(());
        }
        let parent = blob_dir(dir, digest);
        self.tree.create_dir_inside(&parent)?;
        let temp = parent.join(format!("{TEMP_PREFIX}{}", digest.hex()));
        let result = stream_to_file(&temp, digest, size, body, what).await;
        let result = match result {
            Ok(()) => rename_durably(&temp, &target).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            // Best effort: a leftover is harmless (ignored, overwritten later).
            let _ = tokio::fs::remove_file(&temp).await;
        }
        result
    }

    /// Replace index.json with `update` applied, under the per-repository
    /// lock. Only written when `update` changed something.
    async fn update_index(
        &self,
        dir: &Path,
        update: impl FnOnce(&mut IndexFile) -> bool,
    ) -> Result<(), RegistryError> {
        let path = dir.join(INDEX_JSON);
        let _guard = self.locks.lock(&path).await;
        let mut index = self.read_index(dir).await?.unwrap_or_else(IndexFile::empty);
        if !update(&mut index) {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&index)
            .map_err(|e| invalid(path.display().to_string(), e.to_string()))?;
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || write_atomically(&dir, INDEX_JSON, &bytes))
            .await
            .map_err(|e| join_error(&path, e))?
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

    /// Manifest `digest` of `repo`, with the subject it declares, if any.
    async fn subject_of(
        &self,
        repo: &Repository,
        dir: &Path,
        digest: &Digest,
    ) -> Result<Option<(Digest, Descriptor)>, RegistryError> {
        let Some(desc) = self
            .resolve(repo, dir, &ManifestRef::Digest(digest.clone()))
            .await?
        else {
            return Ok(None);
        };
        let path = blob_path(dir, digest);
        let Some(bytes) = self
            .read_manifest_bytes(repo, &path, digest, desc.size)
            .await?
        else {
            return Ok(None);
        };
        let manifest = RawManifest {
            bytes,
            media_type: desc.media_type.clone(),
            digest: digest.clone(),
        };
        // Something that isn't a readable manifest refers to nothing.
        let Ok(refs) = crate::oci::references(&manifest, &self.what(repo, digest)) else {
            return Ok(None);
        };
        let Some(subject) = refs.subject.clone() else {
            return Ok(None);
        };
        Ok(Some((
            subject,
            Descriptor {
                artifact_type: refs.effective_artifact_type(),
                ..desc
            },
        )))
    }

    /// The referrers among index.json's own entries, by subject: every
    /// entry read once per version of index.json, however many subjects
    /// are asked about.
    async fn entry_referrers(
        &self,
        repo: &Repository,
        dir: &Path,
        index: &IndexFile,
    ) -> Result<Arc<ReferrersBySubject>, RegistryError> {
        if let Some(fingerprint) = &index.fingerprint {
            let cached = self.referrers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((seen, map)) = cached.get(dir) {
                if seen == fingerprint {
                    return Ok(map.clone());
                }
            }
        }
        let mut entries: Vec<&Digest> = index.manifests.iter().map(|e| &e.digest).collect();
        entries.sort();
        entries.dedup();
        let mut map = ReferrersBySubject::new();
        for digest in entries {
            if let Some((subject, desc)) = self.subject_of(repo, dir, digest).await? {
                if &subject != digest {
                    map.entry(subject).or_default().push(desc);
                }
            }
        }
        let map = Arc::new(map);
        if let Some(fingerprint) = &index.fingerprint {
            self.referrers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(dir.to_path_buf(), (fingerprint.clone(), map.clone()));
        }
        Ok(map)
    }
}

/// Referrers by the subject they name.
type ReferrersBySubject = HashMap<Digest, Vec<Descriptor>>;

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
        let dir = self.repo_dir(repo)?;
        let Some(index) = self.read_index(&dir).await? else {
            return Ok(Vec::new());
        };
        // Every manifest index.json names that declares `subject` (referrers
        // pushed by digest have an untagged entry), plus what the
        // `sha256-<hex>` tag schema lists, each checked to really name it.
        let mut found: BTreeMap<Digest, Descriptor> = self
            .entry_referrers(repo, &dir, &index)
            .await?
            .get(subject)
            .into_iter()
            .flatten()
            .map(|d| (d.digest.clone(), d.clone()))
            .collect();
        let fallback_tag = crate::oci::attachment_tag(subject, None);
        if let Some(entry) = index.tagged(fallback_tag.as_str()) {
            let listed = self
                .get_manifest(repo, &ManifestRef::Digest(entry.digest.clone()))
                .await?;
            if let Some(listed) = listed {
                let what = self.what(repo, &fallback_tag);
                let refs = crate::oci::references(&listed, &what)?;
                if refs.manifests.len() > crate::limits::REFERRERS_PER_IMAGE {
                    return Err(RegistryError::Limit {
                        what,
                        message: format!(
                            "the referrers index lists more than {} manifests",
                            crate::limits::REFERRERS_PER_IMAGE
                        ),
                    });
                }
                for listed in refs.manifests {
                    if found.contains_key(&listed.digest) || &listed.digest == subject {
                        continue;
                    }
                    if let Some((named, desc)) = self.subject_of(repo, &dir, &listed.digest).await?
                    {
                        if &named == subject {
                            found.insert(listed.digest, desc);
                        }
                    }
                }
            }
        }
        Ok(found.into_values().collect())
    }
}

impl LayoutRegistry {
    /// Hard-link `source` to `target`. `Ok(false)` when links are not
    /// possible here, so that the caller copies instead.
    async fn link_blob(
        &self,
        dir: &Path,
        source: &Path,
        target: &Path,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let _guard = self.locks.lock(target).await;
        let parent = blob_dir(dir, digest);
        self.tree.create_dir_inside(&parent)?;
        // A link appears atomically, complete: no temp file needed.
        match tokio::fs::hard_link(source, target).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(true),
            Err(_) => return Ok(false),
        }
        sync_dir_async(&parent).await?;
        Ok(true)
    }
}

// ---------------------------------------------------------------- files

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

/// Write `body` to `temp` (created anew, see [`files::create_temp`]),
/// checking that it is exactly `size` bytes hashing to `digest`, and fsync it.
async fn stream_to_file(
    temp: &Path,
    digest: &Digest,
    size: u64,
    body: BlobStream,
    what: &str,
) -> Result<(), RegistryError> {
    let mut file = tokio::fs::File::from_std(files::create_temp(temp)?);
    // The verifier stops a body longer than announced at once, and holds
    // back the last chunk of a wrong one: the file is never complete and
    // wrong, and the caller removes it on any error.
    let mut body: VerifyingStream<_, RegistryError> = VerifyingStream::new(
        body,
        Expect::Digest(digest.clone(), Some(size)),
        what.to_string(),
    );
    while let Some(chunk) = body.next().await {
        file.write_all(&chunk?)
            .await
            .map_err(|e| io_error(temp, e))?;
    }
    file.sync_all().await.map_err(|e| io_error(temp, e))?;
    Ok(())
}

async fn rename_durably(temp: &Path, target: &Path) -> Result<(), RegistryError> {
    tokio::fs::rename(temp, target)
        .await
        .map_err(|e| io_error(target, e))?;
    match target.parent() {
        Some(parent) => sync_dir_async(parent).await,
        None => Ok(()),
    }
}

async fn sync_dir_async(dir: &Path) -> Result<(), RegistryError> {
    let owned = dir.to_path_buf();
    tokio::task::spawn_blocking(move || sync_dir(&owned))
        .await
        .map_err(|e| join_error(dir, e))?
}

/// Make a rename in `dir` durable. Directories can only be fsynced on Unix;
/// elsewhere the rename itself is what we have.
fn sync_dir(dir: &Path) -> Result<(), RegistryError> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Replace `dir/name` with `bytes`: temp file, fsync, rename, fsync dir.
/// Callers hold the lock for `dir/name`, so the fixed temp name is theirs.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), RegistryError> {
    use std::io::Write;
    let temp = dir.join(format!("{TEMP_PREFIX}{name}"));
    let target = dir.join(name);
    let result = (|| {
        let mut file = files::create_temp(&temp)?;
        file.write_all(bytes).map_err(|e| io_error(&temp, e))?;
        file.sync_all().map_err(|e| io_error(&temp, e))?;
        std::fs::rename(&temp, &target).map_err(|e| io_error(&target, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Every repository at or below `start` (whose repository path is `prefix`),
/// sorted. Symlinked directories are followed only while they resolve inside
/// the root and not to one of their own ancestors (no escape, no loop).
fn walk_repositories(
    root: &Path,
    start: &Path,
    prefix: &str,
) -> Result<Vec<String>, RegistryError> {
    let canonical_root = match std::fs::canonicalize(root) {
        Ok(p) => p,
        Err(e) if is_absent(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io_error(root, e)),
    };
    // The directories between the root and `start` count as ancestors too:
    // a link from below `start` back up to them is a loop as well.
    let mut ancestors = Vec::new();
    let mut dir = root.to_path_buf();
    for component in prefix.split('/').filter(|c| !c.is_empty()) {
        match std::fs::canonicalize(&dir) {
            Ok(p) => ancestors.push(p),
            Err(e) if is_absent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&dir, e)),
        }
        dir.push(component);
    }
    let mut found = Vec::new();
    walk_dir(&canonical_root, start, prefix, &mut ancestors, &mut found)?;
    found.sort();
    Ok(found)
}

fn walk_dir(
    canonical_root: &Path,
    dir: &Path,
    name: &str,
    ancestors: &mut Vec<PathBuf>,
    found: &mut Vec<String>,
) -> Result<(), RegistryError> {
    let canonical = match std::fs::canonicalize(dir) {
        Ok(p) => p,
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(io_error(dir, e)),
    };
    if !canonical.starts_with(canonical_root)
        || ancestors.contains(&canonical)
        || ancestors.len() >= MAX_WALK_DEPTH
    {
        return Ok(());
    }
    let is_repo =
        !name.is_empty() && dir.join(OCI_LAYOUT_FILE).is_file() && dir.join(INDEX_JSON).is_file();
    if is_repo {
        found.push(name.to_string());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_absent(&e) => return Ok(()),
        Err(e) => return Err(io_error(dir, e)),
    };
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let Ok(file_name) = entry.file_name().into_string() else {
            continue; // not UTF-8: cannot be part of a repository name
        };
        // A layout's own files are never part of a repository name (and its
        // blob store is big).
        if RESERVED_NAMES.contains(&file_name.as_str()) {
            continue;
        }
        let child_name = if name.is_empty() {
            file_name
        } else {
            format!("{name}/{file_name}")
        };
        // Temp files, hidden directories and anything else that cannot be a
        // repository path are skipped, with everything below them.
        if ImageName::parse(&child_name).is_err() {
            continue;
        }
        let path = entry.path();
        let file_type = entry.file_type().map_err(|e| io_error(&path, e))?;
        let is_dir = file_type.is_dir() || (file_type.is_symlink() && path.is_dir());
        if is_dir {
            children.push((child_name, path));
        }
    }
    children.sort();
    ancestors.push(canonical);
    for (child_name, path) in children {
        walk_dir(canonical_root, &path, &child_name, ancestors, found)?;
    }
    ancestors.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    /// Repository `path` in a test tree (backends use only the path).
    fn paths(repos: Vec<Repository>) -> Vec<String> {
        repos.iter().map(|r| r.path().to_string()).collect()
    }

    fn r(path: &str) -> Repository {
        Repository::parse(
            &crate::reference::Endpoint::Layout {
                root: "test".into(),
            },
            path,
        )
        .unwrap()
    }

    fn manifest_for(config: &[u8], layer: &[u8]) -> RawManifest {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": Digest::sha256_of(config).as_str(),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": Digest::sha256_of(layer).as_str(),
                "size": layer.len(),
            }],
        });
        RawManifest::new(serde_json::to_vec(&body).unwrap(), media_type::OCI_MANIFEST)
    }

    fn upload(bytes: &'static [u8]) -> BlobUpload {
        upload_claiming(bytes, Digest::sha256_of(bytes))
    }

    fn upload_claiming(bytes: &'static [u8], digest: Digest) -> BlobUpload {
        BlobUpload {
            digest,
            size: bytes.len() as u64,
            mount_from: None,
            open: Arc::new(move || {
                async move {
                    let s: BlobStream = Box::pin(futures::stream::once(futures::future::ready(
                        Ok(Bytes::from_static(bytes)),
                    )));
                    Ok(s)
                }
                .boxed()
            }),
        }
    }

    fn tag(t: &str) -> ManifestRef {
        ManifestRef::Tag(Tag::parse(t).unwrap())
    }

    fn entries(dir: &Path) -> Vec<(String, Option<String>)> {
        let index: IndexFile =
            serde_json::from_slice(&std::fs::read(dir.join(INDEX_JSON)).unwrap()).unwrap();
        index
            .manifests
            .iter()
            .map(|e| (e.digest.to_string(), e.ref_name().map(str::to_string)))
            .collect()
    }

    #[tokio::test]
    async fn index_json_never_names_a_manifest_whose_blobs_are_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::new(tmp.path());
        let m = manifest_for(b"{}", b"layer");
        reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
        // The layer is missing: the manifest is refused, nothing is recorded.
        let err = reg
            .put_manifest(&r("app"), &tag("v1"), &m)
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Protocol { .. }), "{err}");
        assert!(!tmp.path().join("app").join(INDEX_JSON).exists());
        assert!(!blob_path(&tmp.path().join("app"), &m.digest).exists());
        assert_eq!(
            reg.head_manifest(&r("app"), &tag("v1")).await.unwrap(),
            None
        );

        reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
        reg.put_manifest(&r("app"), &tag("v1"), &m).await.unwrap();
        let dir = tmp.path().join("app");
        for (digest, _) in entries(&dir) {
            let d = Digest::parse(&digest).unwrap();
            assert!(blob_path(&dir, &d).is_file());
        }
        assert_eq!(reg.list_tags(&r("app")).await.unwrap(), vec!["v1"]);
    }

    #[tokio::test]
    async fn a_wrong_upload_leaves_no_blob_and_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::new(tmp.path());
        let claimed = Digest::sha256_of(b"the real thing");
        let err = reg
            .put_blob(
                &r("app"),
                &upload_claiming(b"something else", claimed.clone()),
            )
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            RegistryError::BadContent(ContentError::SizeMismatch { .. })
                | RegistryError::BadContent(ContentError::DigestMismatch { .. })
        ));
        let err = reg
            .put_blob(
                &r("app"),
                &upload_claiming(b"same length ok", Digest::sha256_of(b"same-length-ok")),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::BadContent(ContentError::DigestMismatch { .. })
            ),
            "{err}"
        );
        let sha = tmp.path().join("app/blobs/sha256");
        let left: Vec<_> = std::fs::read_dir(&sha).unwrap().collect();
        assert!(left.is_empty(), "left behind: {left:?}");
        assert_eq!(reg.blob_exists(&r("app"), &claimed).await.unwrap(), None);
    }

    #[tokio::test]
    async fn leftover_temp_files_are_ignored_then_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::new(tmp.path());
        let dir = tmp.path().join("app");
        let config = Digest::sha256_of(b"{}");
        // What a crash mid-write leaves: partial temp files and no index.json.
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join(OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT).unwrap();
        let blob_temp = dir.join(format!("blobs/sha256/{TEMP_PREFIX}{}", config.hex()));
        std::fs::write(&blob_temp, b"{partial").unwrap();
        let index_temp = dir.join(format!("{TEMP_PREFIX}{INDEX_JSON}"));
        std::fs::write(&index_temp, b"{\"schemaVersion\":2,\"manifests\":[{\"trunc").unwrap();

        assert_eq!(reg.blob_exists(&r("app"), &config).await.unwrap(), None);
        assert!(reg.list_tags(&r("app")).await.unwrap().is_empty());
        assert!(paths(reg.list_repositories("").await.unwrap()).is_empty());

        reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
        reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
        let m = manifest_for(b"{}", b"layer");
        reg.put_manifest(&r("app"), &tag("v1"), &m).await.unwrap();
        assert!(!blob_temp.exists() && !index_temp.exists());
        assert_eq!(reg.blob_exists(&r("app"), &config).await.unwrap(), Some(2));
        assert_eq!(paths(reg.list_repositories("").await.unwrap()), vec!["app"]);
    }

    #[tokio::test]
    async fn concurrent_tag_writes_to_one_repository_are_all_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = Arc::new(LayoutRegistry::new(tmp.path()));
        reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
        reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
        let m = manifest_for(b"{}", b"layer");
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let reg = reg.clone();
                let m = m.clone();
                tokio::spawn(async move {
                    reg.put_manifest(&r("app"), &tag(&format!("t{i:02}")), &m)
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let expected: Vec<String> = (0..32).map(|i| format!("t{i:02}")).collect();
        assert_eq!(reg.list_tags(&r("app")).await.unwrap(), expected);
    }

    #[tokio::test]
    async fn a_moved_tag_keeps_the_old_digest_reachable_and_untagged_entries_stay_minimal() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::new(tmp.path());
        let dir = tmp.path().join("app");
        for b in [&b"{}"[..], b"one", b"two"] {
            let bytes: &'static [u8] = Box::leak(b.to_vec().into_boxed_slice());
            reg.put_blob(&r("app"), &upload(bytes)).await.unwrap();
        }
        let one = manifest_for(b"{}", b"one");
        let two = manifest_for(b"{}", b"two");
        reg.put_manifest(&r("app"), &ManifestRef::Digest(one.digest.clone()), &one)
            .await
            .unwrap();
        assert_eq!(entries(&dir), vec![(one.digest.to_string(), None)]);
        reg.put_manifest(&r("app"), &tag("v1"), &one).await.unwrap();
        assert_eq!(
            entries(&dir),
            vec![(one.digest.to_string(), Some("v1".into()))]
        );
        reg.put_manifest(&r("app"), &tag("v1"), &two).await.unwrap();
        assert_eq!(
            entries(&dir),
            vec![
                (one.digest.to_string(), None),
                (two.digest.to_string(), Some("v1".into()))
            ]
        );
        // Putting the same again changes nothing.
        let before = std::fs::read(dir.join(INDEX_JSON)).unwrap();
        reg.put_manifest(&r("app"), &tag("v1"), &two).await.unwrap();
        reg.put_manifest(&r("app"), &ManifestRef::Digest(one.digest.clone()), &one)
            .await
            .unwrap();
        assert_eq!(std::fs::read(dir.join(INDEX_JSON)).unwrap(), before);
    }

    #[tokio::test]
    async fn a_manifest_too_big_to_read_back_is_never_written() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::new(tmp.path());
        let padding = "x".repeat(MAX_MANIFEST_BYTES as usize);
        let big = RawManifest::new(
            format!(r#"{{"schemaVersion":2,"manifests":[],"annotations":{{"p":"{padding}"}}}}"#),
            media_type::OCI_INDEX,
        );
        let err = reg
            .put_manifest(&r("app"), &tag("v1"), &big)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
        assert!(!tmp.path().join("app").exists(), "nothing was written");
    }

    #[tokio::test]
    async fn a_corrupt_index_is_an_error_and_is_not_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::new(tmp.path());
        let dir = tmp.path().join("app");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT).unwrap();
        std::fs::write(dir.join(INDEX_JSON), b"{not json").unwrap();
        reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
        reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
        let m = manifest_for(b"{}", b"layer");
        let err = reg
            .put_manifest(&r("app"), &tag("v1"), &m)
            .await
            .unwrap_err();
        assert!(matches!(err, RegistryError::Protocol { .. }), "{err}");
        assert!(
            reg.list_tags(&r("app")).await.is_err(),
            "unknown is not empty"
        );
        assert_eq!(std::fs::read(dir.join(INDEX_JSON)).unwrap(), b"{not json");
    }

    #[tokio::test]
    async fn a_manifest_blob_without_its_index_entry_is_absent_until_put_again() {
        // The state a crash between a by-digest put's blob and its
        // index.json entry leaves behind.
        let tmp = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::new(tmp.path());
        reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
        reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
        let m = manifest_for(b"{}", b"layer");
        let bytes: &'static [u8] = Box::leak(m.bytes.to_vec().into_boxed_slice());
        reg.put_blob(&r("app"), &upload(bytes)).await.unwrap();
        let by_digest = ManifestRef::Digest(m.digest.clone());
        assert_eq!(
            reg.head_manifest(&r("app"), &by_digest).await.unwrap(),
            None
        );
        assert_eq!(reg.get_manifest(&r("app"), &by_digest).await.unwrap(), None);

        // Putting it again records it: reachable, and found.
        reg.put_manifest(&r("app"), &by_digest, &m).await.unwrap();
        let dir = tmp.path().join("app");
        assert!(entries(&dir).contains(&(m.digest.to_string(), None)));
        assert!(reg
            .head_manifest(&r("app"), &by_digest)
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn children_of_a_named_index_are_found_without_entries_of_their_own() {
        // As other tools write layouts: children are blobs only.
        let tmp = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::new(tmp.path());
        reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
        reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
        let child = manifest_for(b"{}", b"layer");
        let child_bytes: &'static [u8] = Box::leak(child.bytes.to_vec().into_boxed_slice());
        reg.put_blob(&r("app"), &upload(child_bytes)).await.unwrap();
        let inner = RawManifest::new(
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_INDEX,
                "manifests": [{
                    "mediaType": media_type::OCI_MANIFEST,
                    "digest": child.digest.as_str(),
                    "size": child.bytes.len(),
                }],
            }))
            .unwrap(),
            media_type::OCI_INDEX,
        );
        let inner_bytes: &'static [u8] = Box::leak(inner.bytes.to_vec().into_boxed_slice());
        reg.put_blob(&r("app"), &upload(inner_bytes)).await.unwrap();
        let outer = RawManifest::new(
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": media_type::OCI_INDEX,
                "manifests": [{
                    "mediaType": media_type::OCI_INDEX,
                    "digest": inner.digest.as_str(),
                    "size": inner.bytes.len(),
                }],
            }))
            .unwrap(),
            media_type::OCI_INDEX,
        );
        reg.put_manifest(&r("app"), &tag("1.0"), &outer)
            .await
            .unwrap();
        let dir = tmp.path().join("app");
        assert_eq!(entries(&dir).len(), 1, "{:?}", entries(&dir));
        for (m, media_type) in [
            (&inner, media_type::OCI_INDEX),
            (&child, media_type::OCI_MANIFEST),
        ] {
            let found = reg
                .head_manifest(&r("app"), &ManifestRef::Digest(m.digest.clone()))
                .await
                .unwrap()
                .expect("a child of the tagged index");
            assert_eq!(found.media_type, media_type);
        }
    }

    #[tokio::test]
    async fn a_tag_naming_a_missing_blob_is_an_error_not_absent() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::new(tmp.path());
        reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
        reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
        let m = manifest_for(b"{}", b"layer");
        reg.put_manifest(&r("app"), &tag("v1"), &m).await.unwrap();
        std::fs::remove_file(blob_path(&tmp.path().join("app"), &m.digest)).unwrap();
        assert!(reg.head_manifest(&r("app"), &tag("v1")).await.is_err());
        // By digest, the manifest simply is not there.
        let by_digest = ManifestRef::Digest(m.digest.clone());
        assert_eq!(
            reg.head_manifest(&r("app"), &by_digest).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn a_corrupted_blob_stream_ends_in_a_digest_mismatch_without_its_last_chunk() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::new(tmp.path());
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        let digest = Digest::sha256_of(bytes);
        reg.put_blob(&r("app"), &upload(bytes)).await.unwrap();
        let path = blob_path(&tmp.path().join("app"), &digest);
        let mut damaged = bytes.to_vec();
        damaged[100] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        let mut stream = reg.get_blob(&r("app"), &digest).await.unwrap();
        let mut received = 0usize;
        let mut error = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => received += chunk.len(),
                Err(e) => error = Some(e),
            }
        }
        assert!(matches!(
            error,
            Some(RegistryError::BadContent(
                ContentError::DigestMismatch { .. }
            ))
        ));
        assert!(received < bytes.len());
    }

    #[tokio::test]
    async fn repository_names_cannot_escape_the_root_or_enter_a_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = LayoutRegistry::new(tmp.path().join("root"));
        for bad in ["../x", "/abs", "a/../../b", ""] {
            assert!(reg.repository(bad).is_err(), "{bad:?}");
        }
        // Valid names, but a layout's own files: an image there would live
        // inside another image's blob store or replace its index.
        for reserved in [
            "app/blobs/sha256",
            "blobs",
            "app/index.json",
            "x/oci-layout/y",
        ] {
            let err = reg.list_tags(&r(reserved)).await.unwrap_err();
            assert!(
                err.to_string().contains("names a layout's own files"),
                "{err}"
            );
            let err = reg.put_blob(&r(reserved), &upload(b"x")).await.unwrap_err();
            assert!(matches!(err, RegistryError::Config { .. }), "{err}");
        }
        assert!(!tmp.path().join("root").exists(), "nothing was written");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_walk_skips_symlinks_out_of_the_root_and_loops() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside/evil");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join(OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT).unwrap();
        std::fs::write(
            outside.join(INDEX_JSON),
            br#"{"schemaVersion":2,"manifests":[]}"#,
        )
        .unwrap();
        let repo = root.join("a/b");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join(OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT).unwrap();
        std::fs::write(
            repo.join(INDEX_JSON),
            br#"{"schemaVersion":2,"manifests":[]}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), root.join("out")).unwrap();
        std::os::unix::fs::symlink(&root, root.join("a/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("a/b"), root.join("alias")).unwrap();
        let reg = LayoutRegistry::new(&root);
        assert_eq!(
            paths(reg.list_repositories("").await.unwrap()),
            vec!["a/b", "alias"]
        );
        assert_eq!(
            paths(reg.list_repositories("a").await.unwrap()),
            vec!["a/b"]
        );
        assert!(paths(reg.list_repositories("nope").await.unwrap()).is_empty());
    }
}
