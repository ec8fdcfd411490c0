//! What is attached to the promoted digests, in their sources and in each
//! destination, for the planner's `attach` items.
//!
//! Request economy, per run: one tag listing per source repository (it
//! shows cosign's `sha256-<hex>.sig|.att|.sbom` tags and the referrers tag
//! index); per promoted digest, one referrers API call where the source has
//! the API (none otherwise, unless the listing shows the tag index); one
//! manifest GET per attachment found (to check it is one: see
//! [`crate::oci::admit_attachment`]; the executor reuses these bytes). In a
//! destination: one tag listing per repository with cosign attachments,
//! a HEAD for each attachment tag present there, one HEAD per referrer; in
//! a repository the inventory saw absent, nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::oci::{self, AttachmentKind};
use crate::once_map::OnceMap;
use crate::plan::{Attachment, DestState, Observed};
use crate::reference::{Digest, ManifestRef, Repository, Tag};
use crate::registry::{ManifestCache, RawManifest, Registries, Registry, RegistryError};

/// Attachments of attachments are followed this deep (an SBOM's signature
/// is two levels below the image).
const ATTACHMENT_DEPTH: usize = 3;

/// What a run reads about attachments, shared by every repository it plans.
pub(super) struct AttachmentReads {
    /// Artifact types admitted besides signatures, attestations and SBOMs.
    extra_types: Vec<String>,
    /// Source manifests read, for the executor.
    pub(super) manifests: Arc<ManifestCache>,
    /// Each source repository's tags, listed once.
    source_tags: OnceMap<Repository, Result<Arc<BTreeSet<String>>, Arc<RegistryError>>>,
    /// Each (source repository, digest)'s attachments, read once.
    by_subject: OnceMap<(Repository, Digest), Observed<Vec<Attachment>>>,
    /// Manifests found where attachments live that are none, so far.
    skipped: std::sync::atomic::AtomicUsize,
}

impl AttachmentReads {
    pub(super) fn new(extra_types: Vec<String>, manifests: Arc<ManifestCache>) -> AttachmentReads {
        AttachmentReads {
            extra_types,
            manifests,
            source_tags: OnceMap::new(),
            by_subject: OnceMap::new(),
            skipped: Default::default(),
        }
    }

    /// How many candidates were skipped so far (and resets the count, so
    /// each inventory reports what it saw first).
    pub(super) fn take_skipped(&self) -> usize {
        self.skipped.swap(0, std::sync::atomic::Ordering::Relaxed)
    }

    /// The attachments of `digest` in the source repository `repo`.
    pub(super) async fn of(
        &self,
        registries: &Registries,
        repo: &Repository,
        digest: &Digest,
    ) -> Observed<Vec<Attachment>> {
        let key = (repo.clone(), digest.clone());
        self.by_subject
            .get_or_compute(key, || async {
                let registry = registries.get(repo.endpoint());
                match self.read(registry.as_ref(), repo, digest, 0).await {
                    Ok(list) => Observed::Present(list),
                    Err(err) => Observed::Unknown(format!("attachments of {repo}@{digest}: {err}")),
                }
            })
            .await
    }

    async fn tags(
        &self,
        registry: &dyn Registry,
        repo: &Repository,
    ) -> Result<Arc<BTreeSet<String>>, RegistryError> {
        self.source_tags
            .get_or_compute(repo.clone(), || async {
                registry
                    .list_tags(repo)
                    .await
                    .map(|tags| Arc::new(tags.into_iter().collect()))
                    .map_err(Arc::new)
            })
            .await
            // Every asker gets the error the listing met, as its own.
            .map_err(|e| RegistryError::Vanished {
                what: format!("tags of {repo}"),
                message: e.to_string(),
            })
    }

    /// Read, check and recurse: the attachments of `subject` in `repo`.
    fn read<'a>(
        &'a self,
        registry: &'a dyn Registry,
        repo: &'a Repository,
        subject: &'a Digest,
        depth: usize,
    ) -> futures::future::BoxFuture<'a, Result<Vec<Attachment>, RegistryError>> {
        Box::pin(async move {
            let tags = self.tags(registry, repo).await?;
            let mut found: Vec<Attachment> = Vec::new();
            let mut seen = BTreeSet::new();
            for suffix in oci::COSIGN_SUFFIXES {
                let tag = oci::attachment_tag(subject, Some(suffix));
                if !tags.contains(tag.as_str()) {
                    continue;
                }
                let Some(manifest) = registry
                    .get_manifest(repo, &ManifestRef::Tag(tag.clone()))
                    .await?
                else {
                    continue; // listed, then deleted: not there
                };
                let place = format!("{repo}:{tag}");
                let kind = AttachmentKind::of_cosign_suffix(suffix);
                if let Some(artifact_type) = self.admit(&manifest, subject, kind, &place) {
                    seen.insert(manifest.digest.clone());
                    self.manifests.insert(repo, &manifest);
                    found.push(Attachment {
                        digest: manifest.digest.clone(),
                        artifact_type,
                        tag: Some(tag),
                        attachments: Vec::new(),
                    });
                }
            }
            let referrers = registry.referrers_given_tags(repo, subject, &tags).await?;
            for referrer in referrers {
                if !seen.insert(referrer.digest.clone()) {
                    continue;
                }
                let by_digest = ManifestRef::Digest(referrer.digest.clone());
                let Some(manifest) = registry.get_manifest(repo, &by_digest).await? else {
                    continue;
                };
                let place = format!("{repo}@{} (a referrer of {subject})", referrer.digest);
                if let Some(artifact_type) = self.admit(&manifest, subject, None, &place) {
                    self.manifests.insert(repo, &manifest);
                    found.push(Attachment {
                        digest: manifest.digest.clone(),
                        artifact_type,
                        tag: None,
                        attachments: Vec::new(),
                    });
                }
            }
            if depth + 1 < ATTACHMENT_DEPTH {
                for attachment in &mut found {
                    attachment.attachments = self
                        .read(registry, repo, &attachment.digest, depth + 1)
                        .await?;
                }
            }
            found.sort_by(|a, b| (&a.tag, &a.digest).cmp(&(&b.tag, &b.digest)));
            Ok(found)
        })
    }

    /// The artifact type of `manifest`, found at `place`, if it is an
    /// attachment of `subject`; else `None`, logged and counted.
    fn admit(
        &self,
        manifest: &RawManifest,
        subject: &Digest,
        kind: Option<AttachmentKind>,
        place: &str,
    ) -> Option<Option<String>> {
        let verdict = oci::references(manifest, place)
            .map_err(|e| format!("not a readable manifest ({e})"))
            .and_then(|refs| {
                oci::admit_attachment(&refs, subject, kind, &self.extra_types)
                    .map(|()| refs.attachment_type())
            });
        match verdict {
            Ok(artifact_type) => Some(artifact_type),
            Err(reason) => {
                tracing::warn!("{place}: not copied as an attachment: {reason}");
                self.skipped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                None
            }
        }
    }
}

/// Read, into `state`, what the destination repository `repo` holds of
/// `attachments` (and of theirs): each cosign tag's digest (and, where it
/// differs, whether the source's version keeps everything the
/// destination's has, so that it may replace it), each referrer's presence.
pub(super) async fn read_destination(
    registry: &dyn Registry,
    repo: &Repository,
    source_repo: &Repository,
    manifests: &ManifestCache,
    attachments: &[Attachment],
    state: &mut DestState,
) {
    let mut all = Vec::new();
    flatten(attachments, &mut all);
    if state.repository_absent {
        for a in all {
            match &a.tag {
                Some(tag) => {
                    state.tags.insert(tag.clone(), Observed::Absent);
                }
                None => {
                    state.digests.insert(a.digest.clone(), Observed::Absent);
                }
            }
        }
        return;
    }
    let mut listed: Option<Result<BTreeSet<String>, String>> = None;
    for a in all {
        match &a.tag {
            None => {
                if state.digests.contains_key(&a.digest) {
                    continue;
                }
                let by_digest = ManifestRef::Digest(a.digest.clone());
                let observed = match registry.head_manifest(repo, &by_digest).await {
                    Ok(Some(_)) => Observed::Present(()),
                    Ok(None) => Observed::Absent,
                    Err(e) => Observed::Unknown(e.to_string()),
                };
                state.digests.insert(a.digest.clone(), observed);
            }
            Some(tag) => {
                if state.tags.contains_key(tag) {
                    continue;
                }
                if listed.is_none() {
                    listed = Some(
                        registry
                            .list_tags(repo)
                            .await
                            .map(|t| t.into_iter().collect())
                            .map_err(|e| e.to_string()),
                    );
                }
                let observed = match listed.as_ref().expect("listed just above") {
                    Err(reason) => Observed::Unknown(reason.clone()),
                    Ok(tags) if !tags.contains(tag.as_str()) => Observed::Absent,
                    Ok(_) => tag_state(registry, repo, source_repo, manifests, a, tag, state).await,
                };
                state.tags.insert(tag.clone(), observed);
            }
        }
    }
}

/// What the destination's attachment tag `tag` points at, and (when not at
/// `a`) whether `a` may replace it.
async fn tag_state(
    registry: &dyn Registry,
    repo: &Repository,
    source_repo: &Repository,
    manifests: &ManifestCache,
    a: &Attachment,
    tag: &Tag,
    state: &mut DestState,
) -> Observed<Digest> {
    let current = match registry
        .get_manifest(repo, &ManifestRef::Tag(tag.clone()))
        .await
    {
        Ok(Some(m)) => m,
        Ok(None) => return Observed::Absent,
        Err(e) => return Observed::Unknown(e.to_string()),
    };
    if current.digest != a.digest {
        if let Some(newer) = manifests.get(source_repo, &a.digest) {
            if keeps_all_of(&newer, &current) {
                state.replaceable.insert(tag.clone());
            }
        }
    }
    Observed::Present(current.digest)
}

/// Whether `newer` references every blob `older` does: cosign adds a
/// signature to its `.sig` manifest as one more layer, so a re-signed
/// image's signature manifest keeps the old ones. One that drops any is not
/// a newer version of it.
fn keeps_all_of(newer: &RawManifest, older: &RawManifest) -> bool {
    let blobs = |m: &RawManifest| -> Option<BTreeSet<Digest>> {
        oci::references(m, "attachment")
            .ok()
            .map(|r| r.blobs.into_iter().map(|b| b.digest).collect())
    };
    match (blobs(newer), blobs(older)) {
        (Some(new), Some(old)) => old.is_subset(&new),
        _ => false,
    }
}

fn flatten<'a>(attachments: &'a [Attachment], out: &mut Vec<&'a Attachment>) {
    for a in attachments {
        out.push(a);
        flatten(&a.attachments, out);
    }
}
