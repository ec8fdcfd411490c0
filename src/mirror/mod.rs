//! Mirroring by tag, the declarative way: an intent (tags chosen by
//! selectors, see [`crate::manifest::intent`]) is resolved against the
//! source into an ordinary, digest-pinned CIP manifest that is reviewed and
//! promoted like any other.

pub mod import;
pub mod kubernetes;
pub mod pin;
pub mod select;

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::manifest::Manifest;
use crate::registry::Registries;

/// Which side of a promotion [`references`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Where images are read from.
    Source,
    /// Where they are written to.
    Target,
}

/// Every fully qualified reference the manifests read (`Source`) or write
/// (`Target`): `registry/path/image:tag@digest`, and
/// `registry/path/image@digest` for a digest promoted without tags. Sorted,
/// without repeats; offline.
pub fn references(manifests: &[Manifest], side: Side) -> Vec<String> {
    let mut out = BTreeSet::new();
    for manifest in manifests {
        let registries: Vec<_> = match side {
            Side::Source => vec![&manifest.source.name],
            Side::Target => manifest.destinations.iter().map(|d| &d.name).collect(),
        };
        for registry in registries {
            for image in &manifest.images {
                let repo = registry.repository(&image.name);
                for entry in &image.digests {
                    if entry.tags.is_empty() {
                        out.insert(format!("{repo}@{}", entry.digest));
                    }
                    for tag in &entry.tags {
                        out.insert(format!("{repo}:{}@{}", tag.tag, entry.digest));
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

/// An image whose source has versions newer than any it pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outdated {
    /// The source repository.
    pub source: String,
    /// The newest version the manifests pin.
    pub pinned: String,
    /// Newer release versions in the source, oldest first.
    pub newer: Vec<String>,
}

/// For each image whose pinned tags include a version, the newer release
/// versions its source lists (pre-releases left out); images without a
/// versioned tag are left out. The second list says what could not be read.
pub async fn outdated(
    manifests: &[Manifest],
    registries: &Registries,
) -> (Vec<Outdated>, Vec<String>) {
    let mut work = Vec::new();
    for manifest in manifests {
        for image in &manifest.images {
            let pinned = image
                .digests
                .iter()
                .flat_map(|d| &d.tags)
                .filter_map(|t| select::version_of(t.tag.as_str()).map(|v| (v, t.tag.to_string())))
                .filter(|(v, _)| v.pre.is_empty())
                .max();
            if let Some(pinned) = pinned {
                work.push((manifest.source.name.repository(&image.name), pinned));
            }
        }
    }
    let results: Vec<Result<Option<Outdated>, String>> = stream::iter(work)
        .map(|(repo, (version, shown))| async move {
            let registry = registries.get(repo.endpoint());
            let tags = registry
                .list_tags(&repo)
                .await
                .map_err(|e| format!("{repo}: {e}"))?;
            let mut newer: Vec<(semver::Version, String)> = tags
                .into_iter()
                .filter_map(|t| select::version_of(&t).map(|v| (v, t)))
                .filter(|(v, _)| v.pre.is_empty() && *v > version)
                .collect();
            newer.sort();
            newer.dedup_by(|a, b| a.0 == b.0);
            Ok((!newer.is_empty()).then(|| Outdated {
                source: repo.to_string(),
                pinned: shown,
                newer: newer.into_iter().map(|(_, t)| t).collect(),
            }))
        })
        .buffer_unordered(crate::limits::INVENTORY_READS)
        .collect()
        .await;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok(Some(o)) => found.push(o),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    found.sort_by(|a, b| a.source.cmp(&b.source));
    errors.sort();
    (found, errors)
}
