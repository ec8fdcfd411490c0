//! Inventory: what the registries hold, read through the [`Registry`] trait,
//! for exactly the repositories, tags and digests the manifests name.
//!
//! Request economy: one HEAD per wanted tag; one HEAD per wanted digest that
//! no wanted tag already shows present; and the source only for digests that
//! must be copied. When the destination has everything, the source gets no
//! request at all.
//!
//! When every wanted tag of a repository is absent, the repository may not
//! exist at all. The registry's repository list (read once per destination
//! path, only when this first happens) tells: a repository it lacks needs no
//! digest HEADs now, and no blob HEADs when copying. A stale list can only
//! make us upload something that was there, never skip a write or move a tag:
//! tags are always read one by one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::stream::{self, StreamExt};
use tokio::sync::OnceCell;

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

/// The repository lists of destination paths, each read at most once per
/// run and only when needed. `None`: the registry would not list (no
/// catalog permission or API), so nothing can be concluded from it.
#[derive(Default)]
pub struct RepositoryLists {
    lists: Mutex<Listings>,
}

/// A registry path's repositories, or `None` when the registry would not list them.
type Listing = Option<BTreeSet<String>>;
/// One listing per (endpoint, path prefix), filled at most once.
type Listings = HashMap<(String, String), Arc<OnceCell<Listing>>>;

impl RepositoryLists {
    /// Whether the registry lists `want`'s repository: `None` when unknown.
    async fn lists(&self, registry: &dyn Registry, want: &RepoWant) -> Option<bool> {
        let prefix = want.registry.prefix.clone();
        let cell = {
            let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
            lists
                .entry((want.repo.endpoint.clone(), prefix.clone()))
                .or_default()
                .clone()
        };
        let list = cell
            .get_or_init(|| async move {
                match registry.list_repositories(&prefix).await {
                    Ok(repos) => Some(repos.into_iter().collect()),
                    Err(err) => {
                        tracing::debug!("cannot list repositories of {}: {err}", want.registry);
                        None
                    }
                }
            })
            .await;
        list.as_ref()
            .map(|repos| repos.contains(&want.repo.repository))
    }
}

/// Read one destination repository for `want`.
async fn read_destination(
    want: &RepoWant,
    registries: &Registries,
    lists: &RepositoryLists,
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
        repository_absent: false,
    };
    let all_tags_absent = state.tags.values().all(|t| *t == Observed::Absent);
    if all_tags_absent && lists.lists(registry, want).await == Some(false) {
        state.repository_absent = true;
        for digest in want.digests.keys() {
            state.digests.insert(digest.clone(), Observed::Absent);
        }
        return state;
    }
    // A digest needs its own read only when no wanted tag shows it present.
    let shown: Vec<Digest> = state.tagged_digests().cloned().collect();
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

/// Reads inventories, sharing what one run learns (repository lists)
/// across calls: a run may read everything at once, or repository by
/// repository as it pipelines planning into copying.
pub struct Reader<'a> {
    registries: &'a Registries,
    lists: RepositoryLists,
    concurrency: usize,
}

impl<'a> Reader<'a> {
    pub fn new(registries: &'a Registries, concurrency: usize) -> Reader<'a> {
        Reader {
            registries,
            lists: RepositoryLists::default(),
            concurrency: concurrency.max(1),
        }
    }

    /// The inventory for `wants`: destinations first, then only the source
    /// digests the plan will need.
    pub async fn take(&self, wants: &[RepoWant]) -> Inventory {
        let registries = self.registries;
        let lists = &self.lists;
        let per_repo = (self.concurrency / 4).max(1);
        let destinations: BTreeMap<RepoKey, DestState> = stream::iter(wants)
            .map(|want| async move {
                let state = read_destination(want, registries, lists, per_repo).await;
                (want.repo.clone(), state)
            })
            .buffer_unordered(self.concurrency)
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
            .buffer_unordered(self.concurrency)
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
}

/// Take the inventory for `wants` in one go.
pub async fn take(wants: &[RepoWant], registries: &Registries, concurrency: usize) -> Inventory {
    Reader::new(registries, concurrency).take(wants).await
}
