//! index.json: the model of its entries (tags as `ref.name` annotations,
//! untagged entries keeping digests reachable), reading it, replacing it
//! under its lock, and what it reaches (the children of the indexes it
//! names).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::write::replace_file;
use super::{blob_path, invalid, LayoutRegistry, INDEX_JSON, REF_NAME};
use crate::oci::{media_type, Descriptor, GraphWalk, RawManifest};
use crate::reference::{Digest, Repository, Tag};
use crate::registry::RegistryError;

/// One `manifests` entry of index.json. Unknown fields (platform, other
/// annotations…) are kept as they are when the file is rewritten: which is
/// why this is not oci-spec's model, which drops them (CONTRIBUTING, "Where
/// oci-spec is used, and where not").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct IndexEntry {
    #[serde(rename = "mediaType")]
    pub(super) media_type: String,
    pub(super) digest: Digest,
    pub(super) size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub(super) extra: serde_json::Map<String, serde_json::Value>,
}

impl IndexEntry {
    pub(super) fn new(manifest: &RawManifest, tag: Option<&Tag>) -> IndexEntry {
        IndexEntry {
            media_type: manifest.media_type.clone(),
            digest: manifest.digest.clone(),
            size: manifest.bytes.len() as u64,
            annotations: tag.map(|t| BTreeMap::from([(REF_NAME.to_string(), t.to_string())])),
            extra: serde_json::Map::new(),
        }
    }

    pub(super) fn ref_name(&self) -> Option<&str> {
        self.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
    }

    pub(super) fn descriptor(&self) -> Descriptor {
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
pub(super) struct IndexFile {
    #[serde(rename = "schemaVersion")]
    pub(super) schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub(super) media_type: Option<String>,
    #[serde(default)]
    pub(super) manifests: Vec<IndexEntry>,
    #[serde(flatten)]
    pub(super) extra: serde_json::Map<String, serde_json::Value>,
    /// The digest of the bytes this was read from (not part of the file).
    #[serde(skip)]
    pub(super) fingerprint: Option<Digest>,
}

impl IndexFile {
    pub(super) fn empty() -> IndexFile {
        IndexFile {
            schema_version: oci_spec::image::SCHEMA_VERSION,
            media_type: Some(media_type::OCI_INDEX.to_string()),
            manifests: Vec::new(),
            extra: serde_json::Map::new(),
            fingerprint: None,
        }
    }

    /// The entry a tag names. Foreign tools may leave duplicates; the last
    /// one is the most recently written.
    pub(super) fn tagged(&self, tag: &str) -> Option<&IndexEntry> {
        self.manifests
            .iter()
            .rev()
            .find(|e| e.ref_name() == Some(tag))
    }

    /// Record `manifest` as reachable by digest. Nothing to do when any
    /// entry already names the digest. Returns whether anything changed.
    pub(super) fn add_untagged(&mut self, manifest: &RawManifest) -> bool {
        if self.manifests.iter().any(|e| e.digest == manifest.digest) {
            return false;
        }
        self.manifests.push(IndexEntry::new(manifest, None));
        true
    }

    /// Point `tag` at `manifest`. A digest the tag leaves behind keeps an
    /// untagged entry when nothing else names it, so no content becomes
    /// unreachable; an untagged entry for the new digest becomes redundant.
    pub(super) fn set_tag(&mut self, tag: &Tag, manifest: &RawManifest) -> bool {
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

/// The digest of an index.json, and the index children reachable from it.
pub(super) type ReachableChildren = (Digest, Arc<std::collections::BTreeSet<Digest>>);

impl LayoutRegistry {
    pub(super) async fn read_index(&self, dir: &Path) -> Result<Option<IndexFile>, RegistryError> {
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

    /// Replace index.json with `update` applied, under the per-repository
    /// lock. Only written when `update` changed something.
    pub(super) async fn update_index(
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
        replace_file(dir, INDEX_JSON, bytes).await
    }

    /// Whether `digest` is a child (at any depth) of an index that
    /// index.json names.
    pub(super) async fn is_indexed_child(
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
    /// walked once, breadth first, within the bound of [`GraphWalk`].
    async fn index_children(
        &self,
        repo: &Repository,
        dir: &Path,
        index: &IndexFile,
    ) -> Result<std::collections::BTreeSet<Digest>, RegistryError> {
        let mut children = std::collections::BTreeSet::new();
        let roots = index
            .manifests
            .iter()
            .filter(|e| media_type::is_index(&e.media_type))
            .map(|e| (e.digest.clone(), e.media_type.clone()));
        let mut walk = GraphWalk::new(repo, roots);
        while let Some(node) = walk.next() {
            let node = node?;
            let path = blob_path(dir, &node.digest);
            let Some(size) = self.tree.size(&path).await? else {
                continue;
            };
            let Some(bytes) = self
                .read_manifest_bytes(repo, &path, &node.digest, size)
                .await?
            else {
                continue;
            };
            let manifest = RawManifest {
                bytes,
                media_type: node.data.clone(),
                digest: node.digest.clone(),
            };
            let Ok(refs) = crate::oci::references(&manifest, &self.what(repo, &node.digest)) else {
                continue;
            };
            let indexes = refs
                .manifests
                .iter()
                .filter(|c| media_type::is_index(&c.media_type))
                .map(|c| (c.digest.clone(), c.media_type.clone()));
            walk.descend(&node, indexes);
            children.extend(refs.manifests.into_iter().map(|c| c.digest));
        }
        Ok(children)
    }
}
