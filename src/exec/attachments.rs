//! Attachments: signatures, attestations and SBOMs, copied before the
//! image they attach to (and their own attachments before them), under
//! their cosign tag or as referrers the destination then lists.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use futures::future::{BoxFuture, FutureExt};

use crate::oci::{self, Descriptor};
use crate::plan::{Action, PlanItem, SourceRef};
use crate::reference::{Digest, ManifestRef, Tag};

use super::{Copier, Dest, EdgeResult, ExecError, Failure, FailureKind, Outcome};

/// One attachment to copy, as its plan item says.
#[derive(Clone, Copy)]
struct Attach<'a> {
    /// The image it attaches to.
    subject: &'a Digest,
    source: &'a SourceRef,
    attachment: &'a Digest,
    artifact_type: &'a Option<String>,
    /// Its cosign tag; `None` for a referrer.
    tag: Option<&'a Tag>,
}

/// The attachments of a repository's work, by the digest they attach to.
pub(super) type Attaches = HashMap<Digest, Vec<PlanItem>>;

impl Copier {
    /// Carry out `items` (attachments of one subject) and, before each,
    /// its own attachments from `attaches`. Returns the results and whether
    /// every one succeeded.
    pub(super) fn run_attaches<'a>(
        &'a self,
        items: &'a [PlanItem],
        dest: Dest<'a>,
        attaches: &'a Attaches,
    ) -> BoxFuture<'a, (Vec<EdgeResult>, bool)> {
        async move {
            let mut results = Vec::new();
            let mut all_ok = true;
            for item in items {
                let Action::Attach {
                    source,
                    attachment,
                    artifact_type,
                    tag,
                } = &item.action
                else {
                    continue;
                };
                let (below, below_ok) = match attaches.get(attachment) {
                    Some(theirs) => self.run_attaches(theirs, dest, attaches).await,
                    None => (Vec::new(), true),
                };
                results.extend(below);
                let outcome = if !below_ok {
                    Outcome::Failed(Failure::new(
                        FailureKind::Dependency,
                        format!("not copied: an attachment of {attachment} failed"),
                    ))
                } else {
                    let attach = Attach {
                        subject: &item.digest,
                        source,
                        attachment,
                        artifact_type,
                        tag: tag.as_ref(),
                    };
                    match self.copy_attachment(attach, dest).await {
                        Ok(()) => Outcome::Done,
                        Err(err) => Outcome::Failed(Failure::from_exec(&err)),
                    }
                };
                all_ok &= outcome == Outcome::Done;
                results.push(EdgeResult {
                    item: item.clone(),
                    outcome,
                });
            }
            (results, all_ok)
        }
        .boxed()
    }

    /// Copy an attachment of its subject: under its cosign tag, or by
    /// digest for a referrer, which the destination must then list (a
    /// registry without the referrers API gets the tag index).
    async fn copy_attachment(&self, attach: Attach<'_>, dest: Dest<'_>) -> Result<(), ExecError> {
        let Attach {
            subject,
            source,
            attachment,
            artifact_type,
            tag,
        } = attach;
        let put_as = match tag {
            Some(tag) => ManifestRef::Tag(tag.clone()),
            None => ManifestRef::Digest(attachment.clone()),
        };
        let manifest = self.copy_manifest(source, dest, attachment, put_as).await?;
        self.counters
            .attachments_copied
            .fetch_add(1, Ordering::Relaxed);
        if tag.is_none() {
            // As the referrers API would list it (artifactType, else the
            // config's media type), whatever the plan showed.
            let what = format!("{}@{attachment}", source.repo);
            let artifact_type = oci::references(&manifest, &what)
                .ok()
                .and_then(|r| r.effective_artifact_type())
                .or_else(|| artifact_type.clone());
            let listed = Descriptor {
                artifact_type,
                ..Descriptor::new(
                    manifest.digest.clone(),
                    manifest.media_type.clone(),
                    manifest.bytes.len() as u64,
                )
            };
            self.list_referrers_in(dest, subject, vec![listed]).await?;
        }
        Ok(())
    }

    /// Results for attach `items` (and theirs) not tried because what they
    /// attach to, `subject`, could not be copied.
    pub(super) fn skip_attaches(
        &self,
        items: &[PlanItem],
        attaches: &Attaches,
        subject: &Digest,
    ) -> (Vec<EdgeResult>, bool) {
        let mut results = Vec::new();
        for item in items {
            if let Action::Attach { attachment, .. } = &item.action {
                if let Some(theirs) = attaches.get(attachment) {
                    results.extend(self.skip_attaches(theirs, attaches, attachment).0);
                }
            }
            results.push(EdgeResult {
                item: item.clone(),
                outcome: Outcome::Failed(Failure::new(
                    FailureKind::Dependency,
                    format!("not copied: the copy of {subject} failed"),
                )),
            });
        }
        (results, false)
    }

    /// Make sure the destination lists `referrers` for `subject`: a registry
    /// with the referrers API does by itself once they are stored; for one
    /// without it, add them to the referrers tag index.
    async fn list_referrers_in(
        &self,
        dest: Dest<'_>,
        subject: &Digest,
        referrers: Vec<Descriptor>,
    ) -> Result<(), ExecError> {
        let repo = dest.repo;
        let listed: BTreeSet<Digest> = dest
            .registry
            .referrers(repo, subject)
            .await
            .map_err(|e| ExecError::new(format!("referrers of {repo}@{subject}"), e))?
            .into_iter()
            .map(|d| d.digest)
            .collect();
        let missing: Vec<Descriptor> = referrers
            .into_iter()
            .filter(|r| !listed.contains(&r.digest))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let tag = oci::attachment_tag(subject, None);
        let tag_ref = ManifestRef::Tag(tag.clone());
        let what = format!("{repo}:{tag}");
        let existing = dest
            .registry
            .get_manifest(repo, &tag_ref)
            .await
            .map_err(|e| ExecError::new(what.clone(), e))?;
        let index = oci::extend_referrers_index(existing.as_ref(), &missing, &what)
            .map_err(|e| ExecError::new(what.clone(), e.into()))?;
        self.put_manifest(dest.registry, repo, &tag_ref, &index)
            .await
            .map_err(|e| ExecError::new(what, e))?;
        self.counters.tags_written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
