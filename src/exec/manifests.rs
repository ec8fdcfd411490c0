//! Manifests: a digest and everything it references (index children,
//! recursively, and their blobs) copied into a destination repository, the
//! manifest itself written last, as its exact bytes; every walk bounded by
//! the graph limits.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, TryStreamExt};

use crate::oci::{self, GraphStep, GraphWalk};
use crate::plan::{Repository, SourceRef};
use crate::reference::{Digest, ManifestRef};
use crate::registry::{RawManifest, ReadBack, Registry, RegistryError};

use super::{Copier, Dest, ExecError};

impl Copier {
    /// Write `manifest` to `repo` as `reference`; with `verify_writes`,
    /// read it back (a HEAD, or a GET of its bytes) and fail unless the
    /// registry holds exactly it there.
    pub(super) async fn put_manifest(
        &self,
        registry: &dyn Registry,
        repo: &Repository,
        reference: &ManifestRef,
        manifest: &RawManifest,
    ) -> Result<(), RegistryError> {
        registry.put_manifest(repo, reference, manifest).await?;
        let what = || match reference {
            ManifestRef::Tag(tag) => format!("{repo}:{tag}"),
            ManifestRef::Digest(digest) => format!("{repo}@{digest}"),
        };
        let not_stored = |message| RegistryError::NotStored {
            what: what(),
            message,
        };
        let absent = || format!("accepted {}, but absent when read back", manifest.digest);
        match self.options.verify_writes {
            None => Ok(()),
            Some(ReadBack::Head) => match registry.head_manifest(repo, reference).await? {
                Some(d) if d.digest == manifest.digest => Ok(()),
                Some(d) => Err(not_stored(format!(
                    "accepted {}, but holds {} there when read back",
                    manifest.digest, d.digest
                ))),
                None => Err(not_stored(absent())),
            },
            Some(ReadBack::Deep) => match registry.get_manifest(repo, reference).await {
                Ok(Some(stored)) => oci::check_bytes(&what(), &manifest.digest, &stored.bytes)
                    .map_err(|e| not_stored(format!("read back: {e}"))),
                Ok(None) => Err(not_stored(absent())),
                Err(RegistryError::BadContent(e)) => Err(not_stored(format!("read back: {e}"))),
                Err(e) => Err(e),
            },
        }
    }

    /// The source manifest's bytes, read once per run however many
    /// destinations want it.
    pub(super) async fn source_manifest(
        &self,
        source: &SourceRef,
        digest: &Digest,
    ) -> Result<RawManifest, ExecError> {
        if let Some(known) = self.known.get(&source.repo, digest) {
            return Ok(known);
        }
        let key = (source.repo.clone(), digest.clone());
        self.source_manifests
            .get_or_compute(key, || async {
                let registry = self.registry(source.repo.endpoint());
                let what = format!("{}@{digest}", source.repo);
                match registry
                    .get_manifest(&source.repo, &ManifestRef::Digest(digest.clone()))
                    .await
                {
                    Ok(Some(manifest)) => Ok(manifest),
                    Ok(None) => Err(ExecError::new(
                        what.clone(),
                        RegistryError::Vanished {
                            what,
                            message: "vanished from the source after planning".to_string(),
                        },
                    )),
                    Err(err) => Err(ExecError::new(what, err)),
                }
            })
            .await
    }

    /// Copy `digest` and everything it references from `source` into the
    /// destination, writing the manifest itself last, as `put_as`.
    pub(super) fn copy_manifest<'a>(
        &'a self,
        source: &'a SourceRef,
        dest: Dest<'a>,
        digest: &'a Digest,
        put_as: ManifestRef,
    ) -> BoxFuture<'a, Result<RawManifest, ExecError>> {
        async move {
            let walk = GraphWalk::recursive(&source.repo);
            self.copy_manifest_at(source, dest, digest, Some(put_as), walk.root())
                .await
        }
        .boxed()
    }

    /// Everything `digest` references (children and blobs) into the
    /// destination, but not the manifest itself: the caller writes it once
    /// what must precede it (its attachments) is there.
    pub(super) async fn prepare_manifest(
        &self,
        source: &SourceRef,
        dest: Dest<'_>,
        digest: &Digest,
    ) -> Result<RawManifest, ExecError> {
        let walk = GraphWalk::recursive(&source.repo);
        self.copy_manifest_at(source, dest, digest, None, walk.root())
            .await
    }

    /// [`Copier::copy_manifest`] for a manifest at `step` of its walk (not
    /// written when `put_as` is `None`): a source that nests indexes
    /// without end, or lists without end, gets the walk's bound error
    /// instead of a stack overflow or an endless copy. Children are copied
    /// `blob_concurrency` at once, each branch with its own step of the one
    /// walk.
    fn copy_manifest_at<'a>(
        &'a self,
        source: &'a SourceRef,
        dest: Dest<'a>,
        digest: &'a Digest,
        put_as: Option<ManifestRef>,
        step: GraphStep<'a>,
    ) -> BoxFuture<'a, Result<RawManifest, ExecError>> {
        async move {
            let what = format!("{}@{digest}", source.repo);
            step.enter(digest)
                .map_err(|e| ExecError::new(what.clone(), e.into()))?;
            let manifest = self.source_manifest(source, digest).await?;
            let mut refs = oci::references(&manifest, &what)
                .map_err(|e| ExecError::new(what.clone(), e.into()))?;
            // A child or blob listed many times is written once.
            let mut seen = BTreeSet::new();
            refs.manifests.retain(|d| seen.insert(d.digest.clone()));
            let mut seen = BTreeSet::new();
            refs.blobs.retain(|d| seen.insert(d.digest.clone()));
            let concurrency = self.options.blob_concurrency.max(1);
            let repo = dest.repo;
            stream::iter(refs.manifests.iter().map(Ok::<_, ExecError>))
                .try_for_each_concurrent(concurrency, |child| async move {
                    let child_ref = ManifestRef::Digest(child.digest.clone());
                    // In a repository the inventory saw as new, nothing is there yet.
                    let present = if dest.is_new {
                        None
                    } else {
                        dest.registry
                            .head_manifest(repo, &child_ref)
                            .await
                            .map_err(|e| ExecError::new(format!("{repo}@{}", child.digest), e))?
                    };
                    // A child that is there is complete, unless a repair
                    // says to look below it: then its parts are made
                    // present, and it is not written again.
                    let put_as = match present {
                        None => Some(child_ref),
                        Some(_) if self.options.recheck_present_children => None,
                        Some(_) => return Ok(()),
                    };
                    self.copy_manifest_at(source, dest, &child.digest, put_as, step.below())
                        .await?;
                    Ok(())
                })
                .await?;
            stream::iter(refs.blobs.iter().map(Ok::<_, ExecError>))
                .try_for_each_concurrent(concurrency, |blob| self.ensure_blob(source, dest, blob))
                .await?;
            if let Some(put_as) = put_as {
                self.put_manifest(dest.registry, repo, &put_as, &manifest)
                    .await
                    .map_err(|e| ExecError::new(format!("{repo}@{digest}"), e))?;
                self.counters
                    .manifests_written
                    .fetch_add(1, Ordering::Relaxed);
            }
            Ok(manifest)
        }
        .boxed()
    }
}
