//! One digest's work in one destination repository, step by step:
//! everything its manifest references, then its attachments, then the
//! manifest itself (its first tag riding on that PUT), the after-promote
//! step, then its other tags. An image never stands in the destination,
//! tagged or by digest, without what is attached to it; a failed step
//! fails what depends on it and nothing else.

use std::sync::atomic::Ordering;

use crate::hooks::{AfterPromoteInput, Hooks};
use crate::plan::{Action, PlanItem, Repository, SourceRef};
use crate::reference::{Digest, ManifestRef, Tag};
use crate::registry::RawManifest;

use super::attachments::Attaches;
use super::{Copier, Dest, EdgeResult, ExecError, Failure, FailureKind, Outcome};

/// The digest's own work items: its copy with its source, its tag writes
/// (a move writes the tag as a new one does; the planner decided it may).
struct Work {
    copy: Option<(PlanItem, SourceRef)>,
    tags: Vec<(PlanItem, Tag)>,
}

impl Work {
    fn of(group: Vec<PlanItem>) -> Work {
        let mut work = Work {
            copy: None,
            tags: Vec::new(),
        };
        for item in group {
            match &item.action {
                Action::Copy { source } => {
                    let source = source.clone();
                    work.copy = Some((item, source));
                }
                Action::Tag { tag } | Action::Move { tag, .. } => {
                    let tag = tag.clone();
                    work.tags.push((item, tag));
                }
                // Attachments run from `attaches`, before their subject.
                _ => {}
            }
        }
        work
    }
}

/// One digest being carried out, and the results so far.
struct Run<'a> {
    copier: &'a Copier,
    repo: &'a Repository,
    digest: &'a Digest,
    dest: Dest<'a>,
    results: Vec<EdgeResult>,
}

impl Copier {
    /// Carry out one digest's `group` of items in `repo`, its attachments
    /// taken from `attaches`.
    pub(super) async fn run_digest(
        &self,
        repo: &Repository,
        digest: &Digest,
        group: Vec<PlanItem>,
        attaches: &Attaches,
        is_new: bool,
    ) -> Vec<EdgeResult> {
        let registry = self.registry(repo.endpoint());
        let run = Run {
            copier: self,
            repo,
            digest,
            dest: Dest {
                registry: registry.as_ref(),
                repo,
                is_new,
            },
            results: Vec::new(),
        };
        run.all(Work::of(group), attaches).await
    }
}

impl Run<'_> {
    async fn all(mut self, work: Work, attaches: &Attaches) -> Vec<EdgeResult> {
        let Work { copy, tags } = work;
        let mine = attaches
            .get(self.digest)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let prepared = match &copy {
            Some((item, source)) => match self.prepare(source).await {
                Ok(manifest) => Some(manifest),
                Err(err) => {
                    let (skipped, _) = self.copier.skip_attaches(mine, attaches, self.digest);
                    self.results.extend(skipped);
                    let failure = Failure::from_exec(&err);
                    let why = format!("not tagged: the copy of {} failed", self.digest);
                    self.fail(
                        Some((item.clone(), failure)),
                        &tags,
                        FailureKind::Dependency,
                        why,
                    );
                    return self.results;
                }
            },
            None => None,
        };
        let (attached, attached_ok) = self.copier.run_attaches(mine, self.dest, attaches).await;
        self.results.extend(attached);
        if !attached_ok {
            let why = format!("not written: an attachment of {} failed", self.digest);
            let copy =
                copy.map(|(item, _)| (item, Failure::new(FailureKind::Dependency, why.clone())));
            self.fail(copy, &tags, FailureKind::Dependency, why);
            return self.results;
        }
        let step = self
            .copier
            .options
            .hooks
            .clone()
            .filter(|h| h.has_after_promote());
        let (manifest, pending, remaining) = match (copy, prepared) {
            (Some(copy), Some(manifest)) => match self
                .write_manifest(copy, &tags, step.is_some(), manifest)
                .await
            {
                Some(written) => written,
                None => return self.results,
            },
            (None, _) if tags.is_empty() => return self.results,
            _ => (self.manifest_to_tag().await, None, tags.as_slice()),
        };
        if let (Some(step), Ok(_)) = (&step, &manifest) {
            if !self
                .after_promote(step, pending.as_ref(), &tags, remaining)
                .await
            {
                return self.results;
            }
        }
        if let Some((item, _)) = pending {
            self.done(item);
        }
        self.write_tags(&manifest, remaining).await;
        self.results
    }

    /// Everything the copied manifest references, not the manifest itself.
    async fn prepare(&self, source: &SourceRef) -> Result<RawManifest, ExecError> {
        self.copier
            .prepare_manifest(source, self.dest, self.digest)
            .await
    }

    /// Put the copied manifest: by its first tag, unless an after-promote
    /// step must come before any tag. `None` when it failed (its results
    /// are in); else the manifest, the copy still waiting for the step, and
    /// the tags left to write.
    async fn write_manifest<'t>(
        &mut self,
        copy: (PlanItem, SourceRef),
        tags: &'t [(PlanItem, Tag)],
        step: bool,
        manifest: RawManifest,
    ) -> Option<(
        Result<RawManifest, Failure>,
        Option<(PlanItem, SourceRef)>,
        &'t [(PlanItem, Tag)],
    )> {
        let (put_as, remaining) = match tags.first() {
            Some((_, tag)) if !step => (ManifestRef::Tag(tag.clone()), &tags[1..]),
            _ => (ManifestRef::Digest(self.digest.clone()), tags),
        };
        let put = self
            .copier
            .put_manifest(self.dest.registry, self.repo, &put_as, &manifest)
            .await
            .map_err(|e| ExecError::new(format!("{}@{}", self.repo, self.digest), e));
        if let Err(err) = put {
            let why = format!("not tagged: the copy of {} failed", self.digest);
            self.fail(
                Some((copy.0, Failure::from_exec(&err))),
                tags,
                FailureKind::Dependency,
                why,
            );
            return None;
        }
        let counters = &self.copier.counters;
        counters.manifests_written.fetch_add(1, Ordering::Relaxed);
        if matches!(put_as, ManifestRef::Tag(_)) {
            counters.tags_written.fetch_add(1, Ordering::Relaxed);
            self.done(tags[0].0.clone());
        }
        if step {
            return Some((Ok(manifest), Some(copy), remaining));
        }
        self.done(copy.0);
        Some((Ok(manifest), None, remaining))
    }

    /// The manifest a tag-only write points at, read from the destination.
    async fn manifest_to_tag(&self) -> Result<RawManifest, Failure> {
        let (repo, digest) = (self.repo, self.digest);
        match self
            .dest
            .registry
            .get_manifest(repo, &ManifestRef::Digest(digest.clone()))
            .await
        {
            Ok(Some(manifest)) => Ok(manifest),
            Ok(None) => Err(Failure::new(
                FailureKind::NotFound,
                format!("{repo}@{digest} vanished from the destination before tagging"),
            )),
            Err(err) => Err(Failure::of(
                &err,
                format!("reading {repo}@{digest} to tag it: {err}"),
            )),
        }
    }

    /// The after-promote step, before any tag is written: a tag is only
    /// written once its image's step succeeded, so the next run knows (by
    /// the missing tag) to try again. Whether to go on.
    async fn after_promote(
        &mut self,
        step: &Hooks,
        pending: Option<&(PlanItem, SourceRef)>,
        tags: &[(PlanItem, Tag)],
        remaining: &[(PlanItem, Tag)],
    ) -> bool {
        if pending.is_none() && remaining.is_empty() {
            return true;
        }
        let digest = self.digest;
        let source = pending
            .map(|(_, s)| format!("{}/{}@{digest}", s.registry, image_of(s)))
            .unwrap_or_default();
        let destination = tags
            .first()
            .map(|(i, _)| i)
            .or(pending.map(|(i, _)| i))
            .map(|i| format!("{}/{}", i.registry, i.image))
            .unwrap_or_else(|| self.repo.to_string());
        let input = AfterPromoteInput {
            hook: "after_promote",
            source,
            digest: digest.clone(),
            reference: format!("{destination}@{digest}"),
            destination,
            tags: remaining.iter().map(|(_, t)| t.to_string()).collect(),
        };
        let Err(reason) = step.after_promote(&input).await else {
            return true;
        };
        let reason = reason.to_string();
        let failure = Failure::new(FailureKind::Hook, reason.clone());
        let copy = pending.map(|(item, _)| (item.clone(), failure));
        self.fail(
            copy,
            remaining,
            FailureKind::Hook,
            format!("not tagged: {reason}"),
        );
        false
    }

    /// Each remaining tag, pointed at `manifest`.
    async fn write_tags(
        &mut self,
        manifest: &Result<RawManifest, Failure>,
        tags: &[(PlanItem, Tag)],
    ) {
        for (item, tag) in tags {
            let outcome = match manifest {
                Err(err) => Outcome::Failed(err.clone()),
                Ok(manifest) => match self
                    .copier
                    .put_manifest(
                        self.dest.registry,
                        self.repo,
                        &ManifestRef::Tag(tag.clone()),
                        manifest,
                    )
                    .await
                {
                    Ok(()) => {
                        self.copier
                            .counters
                            .tags_written
                            .fetch_add(1, Ordering::Relaxed);
                        Outcome::Done
                    }
                    Err(err) => {
                        Outcome::Failed(Failure::from_exec(&ExecError::new(item.dest_ref(), err)))
                    }
                },
            };
            self.results.push(EdgeResult {
                item: item.clone(),
                outcome,
            });
        }
    }

    fn done(&mut self, item: PlanItem) {
        self.results.push(EdgeResult {
            item,
            outcome: Outcome::Done,
        });
    }

    /// The copy failed as `copy` says, and its tags with it.
    fn fail(
        &mut self,
        copy: Option<(PlanItem, Failure)>,
        tags: &[(PlanItem, Tag)],
        kind: FailureKind,
        why: String,
    ) {
        if let Some((item, failure)) = copy {
            self.results.push(EdgeResult {
                item,
                outcome: Outcome::Failed(failure),
            });
        }
        for (item, _) in tags {
            self.results.push(EdgeResult {
                item: item.clone(),
                outcome: Outcome::Failed(Failure::new(kind, why.clone())),
            });
        }
    }
}

/// The image path of a source reference, for display.
fn image_of(source: &SourceRef) -> String {
    let prefix = source.registry.prefix.as_str();
    let path = source.repo.path();
    match path.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() => rest.trim_start_matches('/').to_string(),
        _ => path.to_string(),
    }
}
