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

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::stream::{self, StreamExt};

mod attachments;

use crate::once_map::OnceMap;
use crate::plan::{self, DestState, Inventory, Observed, RepoWant, Repository};
use crate::reference::{Digest, Endpoint, ManifestRef};
use crate::registry::{Registries, Registry, RegistryError};

/// How many reads run at once across all registries (see [`crate::limits`]).
pub const DEFAULT_READ_CONCURRENCY: usize = crate::limits::INVENTORY_READS;

async fn head(
    registry: &dyn Registry,
    repo: &Repository,
    reference: ManifestRef,
) -> Observed<Digest> {
    match registry.head_manifest(repo, &reference).await {
        Ok(Some(descriptor)) => Observed::Present(descriptor.digest),
        Ok(None) => Observed::Absent,
        Err(err) => Observed::Unknown(err.to_string()),
    }
}

async fn head_digest(registry: &dyn Registry, repo: &Repository, digest: &Digest) -> Observed<()> {
    match head(registry, repo, ManifestRef::Digest(digest.clone())).await {
        Observed::Present(_) => Observed::Present(()),
        Observed::Absent => Observed::Absent,
        Observed::Unknown(reason) => Observed::Unknown(reason),
    }
}

/// Read `digest` of `repo` whole into `cache` (already there: not read).
async fn get_digest(
    registry: &dyn Registry,
    repo: &Repository,
    digest: &Digest,
    cache: &crate::registry::ManifestCache,
) -> Observed<()> {
    if cache.get(repo, digest).is_some() {
        return Observed::Present(());
    }
    match registry
        .get_manifest(repo, &ManifestRef::Digest(digest.clone()))
        .await
    {
        Ok(Some(manifest)) => {
            cache.insert(repo, &manifest);
            Observed::Present(())
        }
        Ok(None) => Observed::Absent,
        // The registry holds something under the digest but sent bytes we
        // refuse (too large, malformed, not matching): that is the copy's
        // failure, typed, as the executor's own read reports it.
        Err(
            RegistryError::Limit { .. }
            | RegistryError::BadContent(_)
            | RegistryError::Protocol { .. },
        ) => Observed::Present(()),
        Err(err) => Observed::Unknown(err.to_string()),
    }
}

/// The repository lists of destination paths, each read at most once per
/// run and only when needed. `None`: the registry would not list (no
/// catalog permission or API), so nothing can be concluded from it.
#[derive(Default)]
pub struct RepositoryLists {
    /// One listing per (endpoint, path prefix), filled at most once.
    lists: OnceMap<(Endpoint, String), Listing>,
}

/// A registry path's repositories, or `None` when the registry would not list them.
type Listing = Option<Arc<BTreeSet<String>>>;

impl RepositoryLists {
    /// Whether the registry lists `want`'s repository: `None` when unknown.
    async fn lists(&self, registry: &dyn Registry, want: &RepoWant) -> Option<bool> {
        let prefix = want.registry.prefix.clone();
        let key = (want.repo.endpoint().clone(), prefix.clone());
        let list = self
            .lists
            .get_or_compute(key, || async move {
                match registry.list_repositories(&prefix).await {
                    Ok(repos) => Some(Arc::new(
                        repos.iter().map(|r| r.path().to_string()).collect(),
                    )),
                    Err(err) => {
                        tracing::debug!("cannot list repositories of {}: {err}", want.registry);
                        None
                    }
                }
            })
            .await;
        list.as_ref().map(|repos| repos.contains(want.repo.path()))
    }
}

/// What `want` needs to know of its repository, from one listing of every
/// tag with its digest: nothing else is read.
fn state_from_listing(want: &RepoWant, listing: &crate::registry::TagListing) -> DestState {
    let (tags, digests) = plan::destination_reads(want);
    let mut state = DestState {
        repository_absent: listing.tags.is_empty() && listing.digests.is_empty(),
        ..DestState::default()
    };
    for tag in tags {
        let observed = match listing.tags.get(tag) {
            Some(digest) => Observed::Present(digest.clone()),
            None => Observed::Absent,
        };
        state.tags.insert(tag.clone(), observed);
    }
    for digest in digests {
        let observed = if listing.digests.contains(digest) {
            Observed::Present(())
        } else {
            Observed::Absent
        };
        state.digests.insert(digest.clone(), observed);
    }
    state
}

/// Read one destination repository for `want`.
async fn read_destination(
    want: &RepoWant,
    registries: &Registries,
    lists: &RepositoryLists,
    concurrency: usize,
) -> DestState {
    let registry = registries.get(want.repo.endpoint());
    let registry = registry.as_ref();
    let repo = &want.repo;
    // One listing with every digest, where the registry offers one.
    match registry.list_digests(repo).await {
        Ok(Some(listing)) => return state_from_listing(want, &listing),
        Ok(None) => {}
        Err(err) => {
            tracing::debug!("{repo}: the digest listing failed ({err}); reading tags one by one")
        }
    }
    // A repository the catalog does not list is new: nothing in it is
    // asked about. (A catalog that lags behind a push is the same race as
    // a tag written between this read and the copy.)
    if lists.lists(registry, want).await == Some(false) {
        let (tags, _) = plan::destination_reads(want);
        return DestState {
            tags: tags
                .into_iter()
                .map(|t| (t.clone(), Observed::Absent))
                .collect(),
            digests: want
                .digests
                .keys()
                .map(|d| (d.clone(), Observed::Absent))
                .collect(),
            repository_absent: true,
            ..DestState::default()
        };
    }
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
        ..DestState::default()
    };
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
    /// Set when attachments are promoted too.
    attachments: Option<attachments::AttachmentReads>,
    /// Where source manifests read are kept for the executor: with one, a
    /// digest to copy is read whole (GET) instead of asked about (HEAD),
    /// and the executor does not read it again.
    manifests: Option<Arc<crate::registry::ManifestCache>>,
    /// What a check of the destinations' graphs found damaged (`verify
    /// --repair`), recorded in each destination's state as it is read.
    damaged: Arc<plan::Damaged>,
}

/// How attachments are read.
#[derive(Debug, Clone, Default)]
pub struct AttachmentOptions {
    /// Artifact types admitted as attachments besides signatures,
    /// attestations and SBOMs (`--attachment-type`).
    pub extra_types: Vec<String>,
    /// Where the source manifests read are kept for the executor.
    pub manifests: Arc<crate::registry::ManifestCache>,
}

impl<'a> Reader<'a> {
    /// A reader over `registries`. `concurrency` bounds how many reads run
    /// at once (at least one; see [`DEFAULT_READ_CONCURRENCY`]).
    pub fn new(registries: &'a Registries, concurrency: usize) -> Reader<'a> {
        Reader {
            registries,
            lists: RepositoryLists::default(),
            concurrency: concurrency.max(1),
            attachments: None,
            manifests: None,
            damaged: Arc::default(),
        }
    }

    /// Keep the source manifests of digests to copy in `manifests`, for the
    /// executor: one GET instead of a HEAD now and a GET later.
    pub fn with_manifest_cache(
        mut self,
        manifests: Arc<crate::registry::ManifestCache>,
    ) -> Reader<'a> {
        self.manifests = Some(manifests);
        self
    }

    /// Record `damaged` in the destinations' states: those digests are
    /// planned from it, not from their tags, and their sources are read.
    pub fn with_damaged(mut self, damaged: Arc<plan::Damaged>) -> Reader<'a> {
        self.damaged = damaged;
        self
    }

    /// Read the attachments of promoted digests too: in their sources, and
    /// what each destination already holds of them.
    pub fn with_attachments(mut self, options: AttachmentOptions) -> Reader<'a> {
        self.attachments = Some(attachments::AttachmentReads::new(
            options.extra_types,
            options.manifests,
        ));
        self
    }

    /// The inventory for `wants`: destinations first, then only the source
    /// digests the plan will need.
    pub async fn take(&self, wants: &[RepoWant]) -> Inventory {
        let registries = self.registries;
        let lists = &self.lists;
        let per_repo = (self.concurrency / 4).max(1);
        let damaged = &self.damaged;
        let destinations: BTreeMap<Repository, DestState> = stream::iter(wants)
            .map(|want| async move {
                let mut state = read_destination(want, registries, lists, per_repo).await;
                if let Some(found) = damaged.get(&want.repo) {
                    state.damaged = found.clone();
                }
                (want.repo.clone(), state)
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let mut inventory = Inventory {
            destinations,
            ..Inventory::default()
        };
        let reads = plan::source_reads(wants, &inventory);
        let cache = self.manifests.as_deref();
        let source_states: Vec<(Repository, Digest, Observed<()>)> = stream::iter(reads)
            .map(|(repo, digest)| async move {
                let registry = registries.get(repo.endpoint());
                let observed = match cache {
                    Some(cache) => get_digest(registry.as_ref(), &repo, &digest, cache).await,
                    None => head_digest(registry.as_ref(), &repo, &digest).await,
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
        if let Some(reads) = &self.attachments {
            self.take_attachments(reads, wants, &mut inventory).await;
        }
        inventory
    }

    /// The attachments of every digest that is or will be in its
    /// destination, in its source and in the destination.
    async fn take_attachments(
        &self,
        reads: &attachments::AttachmentReads,
        wants: &[RepoWant],
        inventory: &mut Inventory,
    ) {
        let registries = self.registries;
        let empty = DestState::default();
        // (want, subject, source repository) for every subject to read.
        let mut subjects = Vec::new();
        for (i, want) in wants.iter().enumerate() {
            let state = inventory.destinations.get(&want.repo).unwrap_or(&empty);
            for (digest, d) in &want.digests {
                if let Some(source) = plan::attachment_source(d, digest, state, inventory) {
                    subjects.push((i, digest.clone(), source.repo.clone()));
                }
            }
        }
        let sources: BTreeSet<(Repository, Digest)> = subjects
            .iter()
            .map(|(_, digest, repo)| (repo.clone(), digest.clone()))
            .collect();
        let read: Vec<(Repository, Digest, Observed<Vec<plan::Attachment>>)> =
            stream::iter(sources)
                .map(|(repo, digest)| async move {
                    let observed = reads.of(registries, &repo, &digest).await;
                    (repo, digest, observed)
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
        for (repo, digest, observed) in read {
            inventory
                .attachments
                .entry(repo)
                .or_default()
                .insert(digest, observed);
        }
        let attachments = &inventory.attachments;
        let per_want: Vec<(usize, DestState)> = stream::iter(wants.iter().enumerate())
            .map(|(i, want)| {
                let mut state = inventory
                    .destinations
                    .get(&want.repo)
                    .cloned()
                    .unwrap_or_default();
                let mine: Vec<&(usize, Digest, Repository)> =
                    subjects.iter().filter(|(j, _, _)| *j == i).collect();
                async move {
                    let registry = registries.get(want.repo.endpoint());
                    for (_, digest, source) in mine {
                        let found = attachments.get(source).and_then(|by| by.get(digest));
                        if let Some(Observed::Present(list)) = found {
                            attachments::read_destination(
                                registry.as_ref(),
                                &want.repo,
                                source,
                                &reads.manifests,
                                list,
                                &mut state,
                            )
                            .await;
                        }
                    }
                    (i, state)
                }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (i, state) in per_want {
            inventory.destinations.insert(wants[i].repo.clone(), state);
        }
        inventory.attachments_skipped = reads.take_skipped();
    }
}

/// Take the inventory for `wants` in one go.
pub async fn take(wants: &[RepoWant], registries: &Registries, concurrency: usize) -> Inventory {
    Reader::new(registries, concurrency).take(wants).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::diag::Location;
    use crate::plan::{DigestWant, SourceRef};
    use crate::reference::{ImageName, RegistryName, Tag};
    use crate::registry::recording::Recording;
    use crate::registry::{media_type, RawManifest};

    /// Source and destination `oci:` registries that record their calls; the
    /// source holds one manifest (by digest and tag `1.0`).
    struct World {
        _dir: tempfile::TempDir,
        src: Arc<Recording>,
        dst: Arc<Recording>,
        registries: Registries,
        want: RepoWant,
        manifest: RawManifest,
    }

    async fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let (src_root, dst_root) = (dir.path().join("src"), dir.path().join("dst"));
        let src = Arc::new(Recording::new(&src_root));
        let dst = Arc::new(Recording::new(&dst_root));
        let src_name = RegistryName::parse(&format!("oci:{}", src_root.display())).unwrap();
        let dst_name = RegistryName::parse(&format!("oci:{}/prod", dst_root.display())).unwrap();
        let mut registries = Registries::default();
        registries.insert(&src_name.endpoint, src.clone());
        registries.insert(&dst_name.endpoint, dst.clone());
        // A manifest with no blobs is enough for existence questions.
        let manifest = RawManifest::new(
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
                media_type::OCI_INDEX
            ),
            media_type::OCI_INDEX,
        );
        let image = ImageName::parse("app").unwrap();
        let location = Location::file_only(Arc::from(Path::new("m.yaml")));
        let want = RepoWant {
            movable: Default::default(),
            registry: dst_name.clone(),
            repo: dst_name.repository(&image),
            digests: BTreeMap::from([(
                manifest.digest.clone(),
                DigestWant {
                    tags: BTreeMap::from([(Tag::parse("1.0").unwrap(), location.clone())]),
                    sources: BTreeSet::from([SourceRef {
                        registry: src_name.clone(),
                        repo: src_name.repository(&image),
                    }]),
                    location,
                },
            )]),
            image,
        };
        src.put_manifest(
            &src.repository("app").unwrap(),
            &ManifestRef::Digest(manifest.digest.clone()),
            &manifest,
        )
        .await
        .unwrap();
        World {
            _dir: dir,
            src,
            dst,
            registries,
            want,
            manifest,
        }
    }

    #[tokio::test]
    async fn a_destination_that_has_everything_costs_one_head_per_tag_and_no_source_read() {
        // Besides one repository listing per destination path and run.
        let w = world().await;
        // The destination already has the manifest under its wanted tag.
        let repo = w.want.repo.clone();
        w.dst
            .put_manifest(
                &repo,
                &ManifestRef::Tag(Tag::parse("1.0").unwrap()),
                &w.manifest,
            )
            .await
            .unwrap();
        let before = w.dst.calls().len();
        let inventory = take(std::slice::from_ref(&w.want), &w.registries, 4).await;
        let calls = w.dst.calls()[before..].to_vec();
        assert_eq!(
            calls,
            vec![
                format!("list {}", w.want.registry.prefix),
                format!("head-manifest {} 1.0", repo.path())
            ]
        );
        assert!(
            w.src.calls().iter().all(|c| c.starts_with("put")),
            "{:?}",
            w.src.calls()
        );
        let state = &inventory.destinations[&w.want.repo];
        assert_eq!(
            state.tags.values().next(),
            Some(&Observed::Present(w.manifest.digest.clone()))
        );
    }

    #[tokio::test]
    async fn a_repository_missing_from_the_listing_needs_no_digest_reads() {
        let w = world().await;
        let inventory = take(std::slice::from_ref(&w.want), &w.registries, 4).await;
        let state = &inventory.destinations[&w.want.repo];
        assert!(state.repository_absent);
        assert_eq!(state.digests[&w.manifest.digest], Observed::Absent);
        let calls = w.dst.calls();
        assert_eq!(
            calls.iter().filter(|c| c.starts_with("list")).count(),
            1,
            "{calls:?}"
        );
        assert!(
            !calls.iter().any(|c| c.contains(w.manifest.digest.as_str())),
            "{calls:?}"
        );
        // The source is asked about the digest that must be copied, once.
        let source = &inventory.sources.values().next().unwrap()[&w.manifest.digest];
        assert_eq!(source, &Observed::Present(()));
    }

    #[tokio::test]
    async fn an_existing_repository_is_asked_about_each_digest() {
        let w = world().await;
        // Something else lives in the repository, so it exists, but not our tag.
        let other = RawManifest::new(
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[],"x":1}}"#,
                media_type::OCI_INDEX
            ),
            media_type::OCI_INDEX,
        );
        let repo = w.want.repo.clone();
        w.dst
            .put_manifest(
                &repo,
                &ManifestRef::Tag(Tag::parse("other").unwrap()),
                &other,
            )
            .await
            .unwrap();
        let inventory = take(std::slice::from_ref(&w.want), &w.registries, 4).await;
        let state = &inventory.destinations[&w.want.repo];
        assert!(!state.repository_absent);
        assert_eq!(state.digests[&w.manifest.digest], Observed::Absent);
        assert!(w.dst.calls().contains(&format!(
            "head-manifest {} {}",
            repo.path(),
            w.manifest.digest
        )));
    }
}
