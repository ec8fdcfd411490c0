//! What the manifests want: one [`RepoWant`] per destination repository,
//! merged across manifests, and the shards that split them.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::diag::Location;
use crate::manifest::Manifest;
use crate::reference::{Digest, ImageName, RegistryName, Repository, Tag};

/// Where a wanted digest can be copied from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceRef {
    /// The source registry as the manifest names it, for display.
    pub registry: RegistryName,
    /// The repository in it that holds the image.
    pub repo: Repository,
}

/// One wanted digest in one destination repository, with its tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestWant {
    /// Tags it must carry, each with the manifest line that asks for it.
    pub tags: BTreeMap<Tag, Location>,
    /// Every source that promotes it here (several manifests may).
    pub sources: BTreeSet<SourceRef>,
    /// The first manifest entry that asks for it.
    pub location: Location,
}

/// Everything the manifests want in one destination repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoWant {
    /// For display: the destination registry and image as the manifest names them.
    pub registry: RegistryName,
    /// For display: the image name, relative to `registry`.
    pub image: ImageName,
    /// The repository itself; wants are merged by this, not by the names.
    pub repo: Repository,
    /// Every wanted digest in it, from all manifests.
    pub digests: BTreeMap<Digest, DigestWant>,
    /// Wanted tags the manifests let move (`follow:`): one pointing at
    /// another digest is moved, not refused.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub movable: BTreeSet<Tag>,
}

/// A tag in `repo` that two manifest entries want on different digests: the
/// loader reports these as errors, so the planner only guards against them.
pub(super) fn conflicting_tags(want: &RepoWant) -> BTreeMap<&Tag, Vec<&Digest>> {
    let mut by_tag: BTreeMap<&Tag, Vec<&Digest>> = BTreeMap::new();
    for (digest, d) in &want.digests {
        for tag in d.tags.keys() {
            by_tag.entry(tag).or_default().push(digest);
        }
    }
    by_tag.retain(|_, digests| digests.len() > 1);
    by_tag
}

/// Merge the manifests into one want per destination repository, sorted by
/// (registry, image). Two manifests that name the same repository differently
/// (`gcr.io/a` + `b/c` and `gcr.io/a/b` + `c`) merge into one.
pub fn wants(manifests: &[Manifest]) -> Vec<RepoWant> {
    let mut by_repo: BTreeMap<Repository, RepoWant> = BTreeMap::new();
    for manifest in manifests {
        for destination in &manifest.destinations {
            for image in &manifest.images {
                let repo = destination.name.repository(image.destination_name());
                let source = SourceRef {
                    registry: manifest.source.name.clone(),
                    repo: manifest.source.name.repository(&image.name),
                };
                let entry = by_repo.entry(repo.clone()).or_insert_with(|| RepoWant {
                    registry: destination.name.clone(),
                    image: image.destination_name().clone(),
                    repo,
                    digests: BTreeMap::new(),
                    movable: BTreeSet::new(),
                });
                for d in &image.digests {
                    let want =
                        entry
                            .digests
                            .entry(d.digest.clone())
                            .or_insert_with(|| DigestWant {
                                tags: BTreeMap::new(),
                                sources: BTreeSet::new(),
                                location: d.location.clone(),
                            });
                    want.sources.insert(source.clone());
                    for t in &d.tags {
                        want.tags
                            .entry(t.tag.clone())
                            .or_insert_with(|| t.location.clone());
                        if crate::manifest::model::follows(&image.follow, t.tag.as_str()) {
                            entry.movable.insert(t.tag.clone());
                        }
                    }
                }
            }
        }
    }
    by_repo.into_values().collect()
}

/// One of `count` disjoint parts of the work, for running a promotion on
/// several machines: `index` in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which part this is, 0-based and below `count`.
    pub index: u32,
    /// How many parts the work is split into; never 0.
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = ShardError;
    /// `INDEX/COUNT`, 0-based: `0/3`, `1/3`, `2/3`.
    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let usage = || ShardError(text.to_string());
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let index: u32 = index.trim().parse().map_err(|_| usage())?;
        let count: u32 = count.trim().parse().map_err(|_| usage())?;
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether this shard owns `repo`. The hash is FNV-1a over the
    /// repository's full name: stable across machines, builds and releases,
    /// unlike the standard library's hasher.
    pub fn owns(&self, repo: &Repository) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let endpoint = repo.endpoint().to_string();
        for byte in endpoint.bytes().chain([b'/']).chain(repo.path().bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash % u64::from(self.count) == u64::from(self.index)
    }
}

/// The wants this shard owns: by (destination registry, image), so that
/// every shard plans and copies whole repositories.
pub fn shard(wants: Vec<RepoWant>, shard: Shard) -> Vec<RepoWant> {
    wants.into_iter().filter(|w| shard.owns(&w.repo)).collect()
}

/// A `--shard` that is not `INDEX/COUNT` with `0 <= INDEX < COUNT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/4)")]
pub struct ShardError(String);
