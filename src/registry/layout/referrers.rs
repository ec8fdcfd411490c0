//! Referrers in a tree: the manifests index.json names that declare a
//! subject (read once per version of index.json), and what the
//! `sha256-<hex>` tag schema lists, each checked to really name it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use super::index::IndexFile;
use super::{blob_path, LayoutRegistry};
use crate::oci::{Descriptor, RawManifest};
use crate::reference::{Digest, ManifestRef, Repository};
use crate::registry::{Registry, RegistryError};

/// Referrers by the subject they name.
pub(super) type ReferrersBySubject = HashMap<Digest, Vec<Descriptor>>;

impl LayoutRegistry {
    /// [`Registry::referrers`].
    pub(super) async fn referrers_of(
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
