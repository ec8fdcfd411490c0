//! The run's manifest cache: what one registry read, the next stage need
//! not read again.

use crate::oci::RawManifest;
use crate::reference::{Digest, Repository};

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
