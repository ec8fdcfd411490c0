//! Inventory: what the registries hold, read through the [`Registry`] trait,
//! for exactly the repositories, tags and digests the manifests name.
//!
//! Request economy: one HEAD per wanted tag; one HEAD per wanted digest that
//! no wanted tag already shows present; and the source only for digests that
//! must be copied. When the destination has everything, the source gets no
//! request at all.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};

use crate::plan::{self, DestState, Inventory, Observed, RepoKey, RepoWant};
use crate::reference::{Digest, ManifestRef};
use crate::registry::{Registries, Registry};

/// How many reads run at once across all registries. Per-registry caps in
/// the transport still apply below this.
pub const DEFAULT_READ_CONCURRENCY: usize = 32;

async fn head(registry: &dyn Registry, repo: &str, reference: ManifestRef) -> Observed<Digest> {
    match registry.head_manifest(repo, &reference).await {
        Ok(Some(descriptor)) => Observed::Present(descriptor.digest),
        Ok(None) => Observed::Absent,
        Err(err) => Observed::Unknown(err.to_string()),
    }
}

async fn head_digest(registry: &dyn Registry, repo: &str, digest: &Digest) -> Observed<()> {
    match head(registry, repo, ManifestRef::Digest(digest.clone())).await {
        Observed::Present(_) => Observed::Present(()),
        Observed::Absent => Observed::Absent,
        Observed::Unknown(reason) => Observed::Unknown(reason),
    }
}

/// Read one destination repository for `want`.
async fn read_destination(
    want: &RepoWant,
    registries: &Registries,
    concurrency: usize,
) -> DestState {
    let registry = match registries.get(&want.repo.endpoint) {
        Ok(registry) => registry.as_ref(),
        Err(err) => {
            let reason = err.to_string();
            let mut state = DestState::default();
            for (digest, d) in &want.digests {
                state
                    .digests
                    .insert(digest.clone(), Observed::Unknown(reason.clone()));
                for tag in d.tags.keys() {
                    state
                        .tags
                        .insert(tag.clone(), Observed::Unknown(reason.clone()));
                }
            }
            return state;
        }
    };
    let repo = want.repo.repository.as_str();
    let (tags, _) = plan::destination_reads(want);
    let tag_states: Vec<_> = stream::iter(tags)
        .map(|tag| async move {
            (
                tag.clone(),
                head(registry, repo, ManifestRef::Tag(tag.clone())).await,
            )
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut state = DestState {
        tags: tag_states.into_iter().collect(),
        digests: BTreeMap::new(),
    };
    // A digest needs its own read only when no wanted tag shows it present.
    let shown: Vec<Digest> = state
        .tags
        .values()
        .filter_map(|o| match o {
            Observed::Present(d) => Some(d.clone()),
            _ => None,
        })
        .collect();
    let unread: Vec<&Digest> = want.digests.keys().filter(|d| !shown.contains(d)).collect();
    let digest_states: Vec<_> = stream::iter(unread)
        .map(|digest| async move { (digest.clone(), head_digest(registry, repo, digest).await) })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    state.digests.extend(digest_states);
    for digest in shown {
        state.digests.insert(digest, Observed::Present(()));
    }
    state
}

/// Take the inventory for `wants`: destinations first, then only the source
/// digests the plan will need.
pub async fn take(wants: &[RepoWant], registries: &Registries, concurrency: usize) -> Inventory {
    let per_repo = (concurrency / 4).max(1);
    let destinations: BTreeMap<RepoKey, DestState> = stream::iter(wants)
        .map(|want| async move {
            (
                want.repo.clone(),
                read_destination(want, registries, per_repo).await,
            )
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut inventory = Inventory {
        destinations,
        sources: BTreeMap::new(),
    };
    let reads = plan::source_reads(wants, &inventory);
    let source_states: Vec<(RepoKey, Digest, Observed<()>)> = stream::iter(reads)
        .map(|(repo, digest)| async move {
            let observed = match registries.get(&repo.endpoint) {
                Ok(registry) => head_digest(registry.as_ref(), &repo.repository, &digest).await,
                Err(err) => Observed::Unknown(err.to_string()),
            };
            (repo, digest, observed)
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for (repo, digest, observed) in source_states {
        inventory
            .sources
            .entry(repo)
            .or_default()
            .insert(digest, observed);
    }
    inventory
}
