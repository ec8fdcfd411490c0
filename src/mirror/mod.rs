//! Mirroring by tag, the declarative way: an intent (tags chosen by
//! selectors, see [`crate::manifest::intent`]) is resolved against the
//! source into an ordinary, digest-pinned CIP manifest that is reviewed and
//! promoted like any other.

mod blang;
pub mod import;
pub mod input;
pub mod job;
pub mod kubernetes;
pub mod lock;
pub mod pin;
pub mod select;
pub mod sync;

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::manifest::intent::Intent;
use crate::manifest::Manifest;
use crate::reference::Repository;
use crate::registry::{Registries, RegistryError};

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
                let repo = match side {
                    Side::Source => registry.repository(&image.name),
                    Side::Target => registry.repository(image.destination_name()),
                };
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

/// Every reference an intent (or a seed tool's file) names exactly, on
/// `side`: `registry/path/image:tag`, with `@digest` where it pins one.
/// Entries that choose by selectors name no tag until pinned; they are
/// returned second, as `source/image` with where they are written.
pub fn intent_references(intent: &Intent, side: Side) -> (Vec<String>, Vec<String>) {
    let mut out = BTreeSet::new();
    let mut unresolved = Vec::new();
    let default_destinations: Vec<_> = intent.destinations.iter().map(|d| d.name.clone()).collect();
    for image in &intent.images {
        let source = image.source.as_ref().unwrap_or(&intent.source.name);
        let registries: Vec<_> = match side {
            Side::Source => vec![source.clone()],
            Side::Target => image
                .destinations
                .clone()
                .unwrap_or_else(|| default_destinations.clone()),
        };
        let s = &image.select;
        let selects = s.semver.is_some()
            || !s.regex.is_empty()
            || !s.exclude.is_empty()
            || s.latest.is_some();
        if selects || (s.tags.is_empty() && s.digests.is_empty()) {
            unresolved.push(format!(
                "{}: {}",
                image.location,
                source.repository(&image.name)
            ));
            continue;
        }
        for registry in registries {
            let repo = registry.repository(&image.name);
            for tag in &s.tags {
                out.insert(format!("{repo}:{}", tag.value));
            }
            for d in &s.digests {
                match &d.value.tag {
                    Some(tag) => out.insert(format!("{repo}:{tag}@{}", d.value.digest)),
                    None => out.insert(format!("{repo}@{}", d.value.digest)),
                };
            }
        }
    }
    (out.into_iter().collect(), unresolved)
}

/// An image whose source has release versions it does not pin, newer than
/// the oldest it pins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outdated {
    /// The source repository.
    pub source: String,
    /// The newest version pinned.
    pub pinned: String,
    /// Release versions in the source, not pinned, newer than the oldest
    /// pinned one; oldest first.
    pub newer: Vec<String>,
}

/// What each source repository pins, from manifests (their tags).
pub fn pinned_in_manifests(manifests: &[Manifest]) -> Vec<(Repository, Vec<String>)> {
    let mut out: BTreeMap<Repository, Vec<String>> = BTreeMap::new();
    for manifest in manifests {
        for image in &manifest.images {
            let tags = out
                .entry(manifest.source.name.repository(&image.name))
                .or_default();
            tags.extend(
                image
                    .digests
                    .iter()
                    .flat_map(|d| &d.tags)
                    .map(|t| t.tag.to_string()),
            );
        }
    }
    out.into_iter().collect()
}

/// What each source repository pins, from an intent or a seed tool's file:
/// its exact tags (Sinker's `check` reads its `.images.yaml` so). Entries
/// that choose by selectors pin nothing yet: `pin` resolves them.
pub fn pinned_in_intent(intent: &Intent) -> Vec<(Repository, Vec<String>)> {
    let mut out: BTreeMap<Repository, Vec<String>> = BTreeMap::new();
    for image in &intent.images {
        let source = image.source.as_ref().unwrap_or(&intent.source.name);
        let tags = out.entry(source.repository(&image.name)).or_default();
        tags.extend(image.select.tags.iter().map(|t| t.value.to_string()));
        tags.extend(
            image
                .select
                .digests
                .iter()
                .filter_map(|d| d.value.tag.as_ref().map(|t| t.to_string())),
        );
    }
    out.into_iter()
        .filter(|(_, tags)| !tags.is_empty())
        .collect()
}

/// A source repository whose tags could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("{repository}: {source}")]
pub struct ListError {
    /// The repository.
    pub repository: Repository,
    /// Why.
    #[source]
    pub source: RegistryError,
}

/// For each repository whose pinned tags include a release version, the
/// release versions its source lists that are not pinned and are newer
/// than the oldest pinned one (pre-releases left out): a missed patch
/// between two pins, as well as what came after the newest. Repositories
/// without a versioned tag are left out. The second list says what could
/// not be read, sorted by what it says.
pub async fn outdated(
    pinned: Vec<(Repository, Vec<String>)>,
    registries: &Registries,
) -> (Vec<Outdated>, Vec<ListError>) {
    let work: Vec<_> = pinned
        .into_iter()
        .filter_map(|(repo, tags)| {
            let versions: BTreeSet<(semver::Version, String)> = tags
                .into_iter()
                .filter_map(|t| select::version_of(&t).map(|v| (v, t)))
                .filter(|(v, _)| v.pre.is_empty())
                .collect();
            (!versions.is_empty()).then_some((repo, versions))
        })
        .collect();
    let results: Vec<Result<Option<Outdated>, ListError>> = stream::iter(work)
        .map(|(repo, versions)| async move {
            let registry = registries.get(repo.endpoint());
            let tags = match registry.list_tags(&repo).await {
                Ok(tags) => tags,
                Err(source) => {
                    return Err(ListError {
                        repository: repo,
                        source,
                    })
                }
            };
            let oldest = &versions.first().expect("not empty").0;
            let newest = versions.last().expect("not empty").1.clone();
            let mut newer: Vec<(semver::Version, String)> = tags
                .into_iter()
                .filter_map(|t| select::version_of(&t).map(|v| (v, t)))
                .filter(|(v, _)| v.pre.is_empty() && v > oldest)
                .filter(|(v, _)| !versions.iter().any(|(p, _)| p == v))
                .collect();
            newer.sort();
            newer.dedup_by(|a, b| a.0 == b.0);
            Ok((!newer.is_empty()).then(|| Outdated {
                source: repo.to_string(),
                pinned: newest,
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
    errors.sort_by_cached_key(ToString::to_string);
    (found, errors)
}
