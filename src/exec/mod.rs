//! The executor: carries out a [`Plan`] through the [`Registry`] trait,
//! preserving digests, in a crash-safe order.
//!
//! Write order, per copied digest: blobs (skipped when present with their
//! size, mounted within one endpoint, else streamed from the source), then
//! child manifests of an index (recursively, by digest), then its attachments (cosign
//! signatures, attestations, SBOMs: each copied the same way, tag last),
//! then the manifest itself, then its tags. The first tag is written by the
//! same PUT that stores the manifest (by tag instead of by digest): it is
//! still written only after everything the manifest references exists, and
//! it saves one request per image. So a crash at any moment leaves blobs,
//! untagged manifests or attachments of a not-yet-promoted digest behind,
//! never a tag that points at missing content, and never a promoted digest
//! without its attachments; a re-run finishes the job.
//!
//! Attachments go before their subject because a re-run only looks at what
//! the manifests name: once the subject is in the destination, nothing would
//! bring a missing signature. For the same reason a failed attachment fails
//! its subject's copy (and so its tags), and the re-run tries again.
//!
//! Failures are per edge: one failed copy fails its own tags and nothing else.
//!
//! Split by what is copied: `digest` (one digest's steps), `manifests`
//! (manifest graphs), `blobs`, `attachments`, `spool` (a blob read once for
//! several registries); `outcome` is what it all came to.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::stream::{self, StreamExt};

use crate::once_map::OnceMap;
use crate::plan::{Action, Plan, PlanItem, Repository};
use crate::reference::{Digest, Endpoint};
use crate::registry::{ManifestCache, RawManifest, ReadBack, Registries, Registry};

mod attachments;
mod blobs;
mod digest;
mod manifests;
mod outcome;
mod spool;
#[cfg(test)]
mod tests;

use attachments::Attaches;
use outcome::Counters;
pub use outcome::{EdgeResult, ExecError, Failure, FailureKind, Outcome, Report, Stats};

/// Hears about each edge as it finishes, for progress display. The library
/// never draws anything itself: the binary decides how to show progress.
pub trait Progress: Send + Sync {
    /// Called once for each edge that was worked on, right after it
    /// finished (done or failed); may be called from several tasks at once.
    fn finished(&self, result: &EdgeResult);
    /// Called as each blob upload completes, with its size: bytes and rate
    /// for the display (mounted and present blobs move no bytes).
    fn uploaded(&self, _bytes: u64) {}
    /// Called as each destination repository is planned, while planning is
    /// pipelined into copying: `done` of `total` so far.
    fn planned(&self, _done: u64, _total: u64) {}
    /// Called as planning finds work: `edges` more edges to carry out, so
    /// that the total grows as planning streams into copying.
    fn work_found(&self, _edges: u64) {}
}

/// Several displays hearing of the same run (a terminal's and a watch's
/// counters).
pub struct Tee(Vec<Arc<dyn Progress>>);

impl Tee {
    /// One progress for all of `parts` that are there; `None` for none.
    pub fn of(
        parts: impl IntoIterator<Item = Option<Arc<dyn Progress>>>,
    ) -> Option<Arc<dyn Progress>> {
        let mut parts: Vec<_> = parts.into_iter().flatten().collect();
        match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Arc::new(Tee(parts))),
        }
    }
}

impl Progress for Tee {
    fn finished(&self, result: &EdgeResult) {
        self.0.iter().for_each(|p| p.finished(result));
    }
    fn uploaded(&self, bytes: u64) {
        self.0.iter().for_each(|p| p.uploaded(bytes));
    }
    fn planned(&self, done: u64, total: u64) {
        self.0.iter().for_each(|p| p.planned(done, total));
    }
    fn work_found(&self, edges: u64) {
        self.0.iter().for_each(|p| p.work_found(edges));
    }
}

#[derive(Debug, Clone)]
/// How the executor (and the run around it) behaves.
pub struct ExecOptions {
    /// Destination repositories worked on at once, per destination registry.
    pub repo_concurrency: usize,
    /// Blobs or child manifests transferred at once within one manifest.
    pub blob_concurrency: usize,
    /// Promote attachments (OCI 1.1 referrers and cosign's `.sig`, `.att`,
    /// `.sbom` tags) with their images: the inventory reads them and the
    /// plan has `attach` items for what is missing.
    pub attachments: bool,
    /// Read back every manifest, tag and blob written (`--verify-writes`),
    /// by HEAD or whole: a registry that answers success without storing
    /// it (or, read whole, stores other bytes) fails its edges.
    pub verify_writes: Option<ReadBack>,
    /// A copy checks every child manifest's blobs and children, even of a
    /// child the destination holds, instead of taking a child that is there
    /// as complete (`verify --repair`: what was lost may be below one).
    pub recheck_present_children: bool,
    /// Commands around the copies (`--gate`, `--after-promote`).
    pub hooks: Option<Arc<crate::hooks::Hooks>>,
    /// Artifact types admitted as attachments besides the signature,
    /// attestation and SBOM types [`oci::AttachmentKind`] knows.
    pub extra_attachment_types: Vec<String>,
    /// Once requested, no new edge starts (nor repository is planned);
    /// those under way finish, so nothing is left half-written (SIGTERM,
    /// Ctrl-C, the end of a `watch`).
    pub stop: crate::shutdown::Shutdown,
}

impl ExecOptions {
    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.requested()
    }
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            repo_concurrency: crate::limits::REPOSITORIES_AT_ONCE,
            blob_concurrency: crate::limits::TRANSFERS_PER_MANIFEST,
            attachments: true,
            verify_writes: None,
            recheck_present_children: false,
            hooks: None,
            extra_attachment_types: Vec::new(),
            stop: crate::shutdown::Shutdown::default(),
        }
    }
}

impl std::fmt::Debug for dyn Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

struct Copier {
    registries: Registries,
    options: ExecOptions,
    /// (destination endpoint, blob digest) -> the repository it first landed in.
    blobs: OnceMap<(Endpoint, Digest), Result<Repository, ExecError>>,
    /// (source repository, digest) -> the manifest's bytes.
    source_manifests: OnceMap<(Repository, Digest), Result<RawManifest, ExecError>>,
    /// Source manifests the run already read (the inventory's, the gates').
    known: Arc<ManifestCache>,
    counters: Arc<Counters>,
    progress: Option<Arc<dyn Progress>>,
    /// Source blobs held for several destination registries.
    spool: Arc<spool::Spool>,
    /// Source repository -> the other registries its digests go to: with
    /// more than one, its blobs are read once and held ([`spool`]).
    fanout: Mutex<HashMap<Repository, BTreeSet<Endpoint>>>,
}

/// Where a copy writes: one destination repository.
#[derive(Clone, Copy)]
struct Dest<'a> {
    registry: &'a dyn Registry,
    repo: &'a Repository,
    /// The inventory saw no such repository: skip existence checks.
    is_new: bool,
}

/// Carries out plans, one destination repository at a time, sharing blob
/// transfers and source reads across everything it runs: a run may feed it
/// repository by repository as they are planned (pipelining).
pub struct Executor {
    copier: Arc<Copier>,
}

impl Executor {
    /// An executor over `registries`, without progress reports. `known`
    /// holds the source manifests the run already read (the inventory's
    /// attachments, the gates'): they are copied without reading them again.
    pub fn new(
        registries: &Registries,
        options: &ExecOptions,
        known: Arc<ManifestCache>,
    ) -> Executor {
        Executor {
            copier: Arc::new(Copier {
                registries: registries.clone(),
                options: options.clone(),
                blobs: OnceMap::new(),
                source_manifests: OnceMap::new(),
                known,
                counters: Arc::default(),
                progress: None,
                spool: Arc::new(spool::Spool::new(
                    crate::limits::SPOOL_BYTES,
                    crate::limits::SPOOL_MEMORY_BYTES,
                )),
                fanout: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Tell the executor which source repository feeds which destination
    /// repositories (before running them): a source whose digests go to
    /// several other registries has its blobs read once for all of them.
    pub fn expect<'r>(&self, edges: impl IntoIterator<Item = (&'r Repository, &'r Repository)>) {
        let mut fanout = self.copier.fanout.lock().unwrap_or_else(|p| p.into_inner());
        for (source, destination) in edges {
            if source.endpoint() != destination.endpoint() {
                fanout
                    .entry(source.clone())
                    .or_default()
                    .insert(destination.endpoint().clone());
            }
        }
    }

    /// This executor, telling `progress` about every finished edge.
    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Executor {
        let _ = self.copier.counters.progress.set(progress.clone());
        if let Some(copier) = Arc::get_mut(&mut self.copier) {
            copier.progress = Some(progress);
        }
        self
    }

    /// The work items of one destination repository, in plan order.
    /// `repository_is_new`: the inventory saw no such repository, so nothing
    /// in it needs an existence check before writing.
    pub async fn run_repo(
        &self,
        repo: &Repository,
        items: Vec<PlanItem>,
        repository_is_new: bool,
    ) -> Vec<EdgeResult> {
        self.copier
            .clone()
            .run_repo(repo, items, repository_is_new)
            .await
    }

    /// Tell the display that `done` of `total` repositories are planned.
    pub fn planned(&self, done: u64, total: u64) {
        if let Some(progress) = &self.copier.progress {
            progress.planned(done, total);
        }
    }

    /// Tell the display that planning found `edges` more edges of work.
    pub fn work_found(&self, edges: u64) {
        if let Some(progress) = &self.copier.progress {
            progress.work_found(edges);
        }
    }

    /// What each HTTP registry's pacer did so far.
    pub fn pacing(&self) -> Vec<crate::registry::PacingReport> {
        self.copier.registries.pacing()
    }

    /// The transfer counters so far, over everything this executor ran.
    pub fn stats(&self) -> Stats {
        self.copier.counters.snapshot()
    }
}

/// `work` on each of `items`, `width` at a time **per destination
/// registry** (`endpoint` says whose an item is), every registry at once:
/// each registry's repositories have their own budget, as its requests
/// have their own pacer, so a slow or throttled registry (one region of
/// many) never holds the others' work back, and four destinations keep
/// four times the work in flight that one would. Results in no order.
pub async fn per_registry<T, F, Fut>(
    items: impl IntoIterator<Item = T>,
    endpoint: impl Fn(&T) -> Endpoint,
    width: usize,
    work: F,
) -> Vec<Fut::Output>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future,
{
    let mut groups: std::collections::BTreeMap<Endpoint, Vec<T>> = Default::default();
    for item in items {
        groups.entry(endpoint(&item)).or_default().push(item);
    }
    let work = &work;
    let runs = groups.into_values().map(|group| {
        stream::iter(group)
            .map(work)
            .buffer_unordered(width.max(1))
            .collect::<Vec<_>>()
    });
    futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Put results in plan order, whatever order the work finished in.
pub fn sort_results(results: &mut [EdgeResult]) {
    results.sort_by(|a, b| a.item.sort_key().cmp(&b.item.sort_key()));
}

/// Carry out the plan's copies and tag writes. Refused, lost and blocked
/// items are not work: they are left out of the report (the plan has them).
pub async fn execute(plan: &Plan, executor: &Executor, options: &ExecOptions) -> Report {
    executor.expect(
        plan.work()
            .filter_map(|item| item.source().map(|source| (&source.repo, &item.repo))),
    );
    let groups = crate::plan::work_by_repo(plan);
    let results: Vec<Vec<EdgeResult>> = per_registry(
        groups,
        |(repo, _)| repo.endpoint().clone(),
        options.repo_concurrency,
        |(repo, items)| {
            let items: Vec<PlanItem> = items.into_iter().cloned().collect();
            let is_new = plan.new_repositories.contains(repo);
            async move { executor.run_repo(repo, items, is_new).await }
        },
    )
    .await;
    let mut results: Vec<EdgeResult> = results.into_iter().flatten().collect();
    sort_results(&mut results);
    let report = Report {
        results,
        stats: executor.stats(),
        pacing: executor.pacing(),
    };
    report.log_pacing();
    report
}

impl Copier {
    fn registry(&self, endpoint: &Endpoint) -> Arc<dyn Registry> {
        self.registries.get(endpoint)
    }

    /// One destination repository's work: per digest, its attachments,
    /// the copy, then its tags.
    async fn run_repo(
        self: Arc<Self>,
        repo: &Repository,
        items: Vec<PlanItem>,
        is_new: bool,
    ) -> Vec<EdgeResult> {
        let (by_digest, attaches) = by_digest(items);
        let mut results = Vec::new();
        for (digest, group) in by_digest {
            if self.options.stopping() {
                break;
            }
            let done = crate::registry::retry::one_edge(
                self.run_digest(repo, &digest, group, &attaches, is_new),
            )
            .await;
            for result in &done {
                self.finished(result);
            }
            results.extend(done);
        }
        results
    }

    /// Log a finished edge and tell the display.
    fn finished(&self, result: &EdgeResult) {
        let item = &result.item;
        match &result.outcome {
            Outcome::Done => tracing::info!(
                kind = item.action.name(),
                destination = %item.dest_ref(),
                digest = %item.digest,
                "done"
            ),
            // At -v, as every edge: the report's recap names each cause once.
            Outcome::Failed(Failure { error, .. }) => tracing::info!(
                kind = item.action.name(),
                destination = %item.dest_ref(),
                digest = %item.digest,
                error = %error,
                "failed"
            ),
        }
        if let Some(progress) = &self.progress {
            progress.finished(result);
        }
    }
}

/// A repository's work items by digest, in plan order, and its attachments
/// by their subject. The attachments of an attachment run with it (before
/// it), not as a group of their own.
fn by_digest(items: Vec<PlanItem>) -> (Vec<(Digest, Vec<PlanItem>)>, Attaches) {
    let mut attaches = Attaches::new();
    let mut nested: BTreeSet<Digest> = BTreeSet::new();
    let mut groups: Vec<(Digest, Vec<PlanItem>)> = Vec::new();
    for item in items {
        if let Action::Attach { attachment, .. } = &item.action {
            nested.insert(attachment.clone());
            attaches
                .entry(item.digest.clone())
                .or_default()
                .push(item.clone());
        }
        match groups.last_mut() {
            Some((digest, group)) if *digest == item.digest => group.push(item),
            _ => groups.push((item.digest.clone(), vec![item])),
        }
    }
    groups.retain(|(digest, _)| !nested.contains(digest));
    (groups, attaches)
}
