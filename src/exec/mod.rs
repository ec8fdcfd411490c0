//! The executor: carries out a [`Plan`] through the [`Registry`] trait,
//! preserving digests, in a crash-safe order.
//!
//! Write order, per copied digest: blobs (skipped when present, mounted
//! within one endpoint, else streamed from the source), then child manifests
//! of an index (recursively, by digest), then its attachments (cosign
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

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::oci::{self, Descriptor};
use crate::plan::{Action, Plan, PlanItem, Repository, SourceRef};
use crate::reference::{Digest, Endpoint, ManifestRef, Tag};
use crate::registry::{
    BlobPut, BlobUpload, ErrorCode, ManifestCache, RawManifest, Registries, Registry, RegistryError,
};

#[cfg(test)]
mod tests;

mod spool;

/// A failure, with what was being done; cheap to clone so that every edge
/// waiting on a shared transfer gets the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {source}")]
pub struct ExecError {
    /// What was being done (`<repo>@<digest>`, `blob <digest> into <repo>`...).
    pub what: String,
    /// The registry error behind it, shared between the edges that waited on it.
    #[source]
    pub source: Arc<RegistryError>,
}

impl ExecError {
    fn new(what: impl Into<String>, source: RegistryError) -> ExecError {
        ExecError {
            what: what.into(),
            source: Arc::new(source),
        }
    }
}

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
}

#[derive(Debug, Clone)]
/// How the executor (and the run around it) behaves.
pub struct ExecOptions {
    /// Destination repositories worked on at once.
    pub repo_concurrency: usize,
    /// Blobs or child manifests transferred at once within one manifest.
    pub blob_concurrency: usize,
    /// Promote attachments (OCI 1.1 referrers and cosign's `.sig`, `.att`,
    /// `.sbom` tags) with their images: the inventory reads them and the
    /// plan has `attach` items for what is missing.
    pub attachments: bool,
    /// Read back every manifest, tag and blob written (`--verify-writes`): a
    /// registry that answers success without storing fails its edges.
    pub verify_writes: bool,
    /// Commands around the copies (`--gate`, `--after-promote`).
    pub hooks: Option<Arc<crate::hooks::Hooks>>,
    /// Artifact types admitted as attachments besides the signature,
    /// attestation and SBOM types [`oci::AttachmentKind`] knows.
    pub extra_attachment_types: Vec<String>,
    /// Set to stop: no new edge starts (nor repository is planned); those
    /// under way finish, so nothing is left half-written (`watch`, on
    /// SIGTERM).
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl ExecOptions {
    /// Whether a stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            repo_concurrency: crate::limits::REPOSITORIES_AT_ONCE,
            blob_concurrency: crate::limits::TRANSFERS_PER_MANIFEST,
            attachments: true,
            verify_writes: false,
            hooks: None,
            extra_attachment_types: Vec::new(),
            stop: None,
        }
    }
}

/// What happened to one plan item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// Carried out.
    Done,
    /// Not carried out, or not tried; the failure says why.
    Failed(Failure),
}

/// Why an edge failed: the message the text output shows, and what a
/// program reading `--output json` branches on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The error message, for people.
    pub error: String,
    /// What kind of failure it was, for programs.
    pub kind: FailureKind,
    /// The registry's HTTP status, where one was the cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

/// The kinds of failure, from the error's type (never its text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// No usable credentials, or the registry refused them.
    Auth,
    /// Authenticated, but not allowed.
    Denied,
    /// Content that should be there is not (404, or gone since planning).
    NotFound,
    /// Bytes that do not match their digest or size.
    BadContent,
    /// HTTP 429 after every retry.
    RateLimited,
    /// Another HTTP status after every retry.
    Http,
    /// Connection, TLS or timeout trouble.
    Transport,
    /// A file system error (`oci:` trees).
    Io,
    /// Something the registry or tree holds that is not valid.
    Invalid,
    /// A bound against hostile input (size, depth, count) was reached.
    Limit,
    /// The registry accepted a write that it does not hold when read back.
    NotStored,
    /// An `--after-promote` step failed: its image's tags are not written,
    /// and the next run tries again.
    Hook,
    /// The registry lacks a feature this needed.
    Unsupported,
    /// Not tried: what it depends on (its digest's copy) failed.
    Dependency,
    /// A bug of ours (please report it).
    Internal,
}

impl Failure {
    /// The failure `err` caused, shown as `message`.
    pub fn of(err: &RegistryError, message: String) -> Failure {
        let (kind, http_status) = match err {
            RegistryError::Unauthorized { .. } | RegistryError::Credentials(_) => {
                (FailureKind::Auth, None)
            }
            RegistryError::Denied { .. } => (FailureKind::Denied, None),
            RegistryError::RateLimited { .. } => (FailureKind::RateLimited, Some(429)),
            RegistryError::BadContent(_) => (FailureKind::BadContent, None),
            RegistryError::Status { status, code, .. } => (
                match (status, code) {
                    (_, Some(code)) if code.is_unknown() => FailureKind::NotFound,
                    (_, Some(ErrorCode::Denied)) | (403, _) => FailureKind::Denied,
                    (_, Some(ErrorCode::Unauthorized)) | (401, _) => FailureKind::Auth,
                    (_, Some(ErrorCode::TooManyRequests)) | (429, _) => FailureKind::RateLimited,
                    (404, _) => FailureKind::NotFound,
                    _ => FailureKind::Http,
                },
                Some(*status),
            ),
            RegistryError::Transport { .. } | RegistryError::Refused { .. } => {
                (FailureKind::Transport, None)
            }
            RegistryError::Io { .. } => (FailureKind::Io, None),
            RegistryError::Protocol { .. } | RegistryError::Config { .. } => {
                (FailureKind::Invalid, None)
            }
            RegistryError::Vanished { .. } => (FailureKind::NotFound, None),
            RegistryError::Limit { .. } => (FailureKind::Limit, None),
            RegistryError::NotStored { .. } => (FailureKind::NotStored, None),
            RegistryError::Internal { .. } => (FailureKind::Internal, None),
            RegistryError::Unsupported { .. } => (FailureKind::Unsupported, None),
        };
        Failure {
            error: message,
            kind,
            http_status,
        }
    }

    fn from_exec(err: &ExecError) -> Failure {
        Failure::of(&err.source, err.to_string())
    }

    fn new(kind: FailureKind, error: String) -> Failure {
        Failure {
            error,
            kind,
            http_status: None,
        }
    }
}

/// One plan item the executor worked on, and how it went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EdgeResult {
    /// The plan item.
    #[serde(flatten)]
    pub item: PlanItem,
    /// Whether it was carried out.
    pub outcome: Outcome,
}

/// Transfer counters, for the summary and for tests that prove a fast path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Blobs the destination already held: nothing sent.
    pub blobs_present: u64,
    /// Blobs mounted from another repository of the same endpoint.
    pub blobs_mounted: u64,
    /// Blobs whose bytes were streamed.
    pub blobs_uploaded: u64,
    /// Bytes of the uploaded blobs.
    pub bytes_uploaded: u64,
    /// Manifests stored, child manifests and attachments included.
    pub manifests_written: u64,
    /// Tags written, an image's first tag included (stored by the
    /// manifest's own PUT).
    pub tags_written: u64,
    /// Attachments (signatures, attestations, SBOMs...) copied.
    pub attachments_copied: u64,
}

/// What a run of the executor did: one result per plan item worked on,
/// and the transfer counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Every item worked on, in plan order.
    pub results: Vec<EdgeResult>,
    /// What was transferred.
    pub stats: Stats,
}

impl Report {
    /// The results that failed.
    pub fn failed(&self) -> impl Iterator<Item = &EdgeResult> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
    }
}

#[derive(Default)]
struct Counters {
    blobs_present: AtomicU64,
    blobs_mounted: AtomicU64,
    blobs_uploaded: AtomicU64,
    bytes_uploaded: AtomicU64,
    manifests_written: AtomicU64,
    tags_written: AtomicU64,
    attachments_copied: AtomicU64,
    /// Told about every upload, for the display.
    progress: std::sync::OnceLock<Arc<dyn Progress>>,
}

impl std::fmt::Debug for dyn Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

impl Counters {
    fn count(&self, transfer: &Transfer, size: u64) {
        let counter = match transfer {
            Transfer::Present => &self.blobs_present,
            Transfer::Put(BlobPut::Mounted) => &self.blobs_mounted,
            Transfer::Put(BlobPut::Uploaded) => {
                self.bytes_uploaded.fetch_add(size, Ordering::Relaxed);
                if let Some(progress) = self.progress.get() {
                    progress.uploaded(size);
                }
                &self.blobs_uploaded
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Stats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            blobs_present: get(&self.blobs_present),
            blobs_mounted: get(&self.blobs_mounted),
            blobs_uploaded: get(&self.blobs_uploaded),
            bytes_uploaded: get(&self.bytes_uploaded),
            manifests_written: get(&self.manifests_written),
            tags_written: get(&self.tags_written),
            attachments_copied: get(&self.attachments_copied),
        }
    }
}

type SharedResult<T> = Shared<BoxFuture<'static, Result<T, ExecError>>>;

/// Runs `make()` once per key; concurrent and later callers with the same key
/// share its result. This is the in-flight dedup of blobs and source reads.
struct Once<K, T: Clone> {
    running: Mutex<HashMap<K, SharedResult<T>>>,
}

impl<K: std::hash::Hash + Eq, T: Clone + Send + Sync + 'static> Once<K, T> {
    fn new() -> Self {
        Once {
            running: Mutex::new(HashMap::new()),
        }
    }
    /// Returns the shared future and whether this caller started it.
    fn get_or_start(
        &self,
        key: K,
        make: impl FnOnce() -> BoxFuture<'static, Result<T, ExecError>>,
    ) -> (SharedResult<T>, bool) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = running.get(&key) {
            return (existing.clone(), false);
        }
        let shared = make().shared();
        running.insert(key, shared.clone());
        (shared, true)
    }
}

struct Copier {
    registries: Registries,
    options: ExecOptions,
    /// (destination endpoint, blob digest) -> the repository it first landed in.
    blobs: Once<(Endpoint, Digest), Repository>,
    /// (source repository, digest) -> the manifest's bytes.
    source_manifests: Once<(Repository, Digest), RawManifest>,
    /// Source manifests the inventory already read (attachments).
    known: Arc<ManifestCache>,
    counters: Arc<Counters>,
    progress: Option<Arc<dyn Progress>>,
    /// Source blobs held for several destination registries.
    spool: Arc<spool::Spool>,
    /// Source repository -> the other registries its digests go to: with
    /// more than one, its blobs are read once and held ([`spool`]).
    fanout: Mutex<HashMap<Repository, BTreeSet<Endpoint>>>,
}

/// Carries out plans, one destination repository at a time, sharing blob
/// transfers and source reads across everything it runs: a run may feed it
/// repository by repository as they are planned (pipelining).
pub struct Executor {
    copier: Arc<Copier>,
}

impl Executor {
    /// An executor over `registries`, without progress reports.
    pub fn new(registries: &Registries, options: &ExecOptions) -> Executor {
        Executor {
            copier: Arc::new(Copier {
                registries: registries.clone(),
                options: options.clone(),
                blobs: Once::new(),
                source_manifests: Once::new(),
                known: Arc::default(),
                counters: Arc::default(),
                progress: None,
                spool: Arc::new(spool::Spool::new(crate::limits::SPOOL_BYTES)),
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

    /// An executor that tells `progress` about every finished edge.
    pub fn with_progress(
        registries: &Registries,
        options: &ExecOptions,
        progress: Arc<dyn Progress>,
    ) -> Executor {
        let mut executor = Executor::new(registries, options);
        let _ = executor.copier.counters.progress.set(progress.clone());
        if let Some(copier) = Arc::get_mut(&mut executor.copier) {
            copier.progress = Some(progress);
        }
        executor
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

    /// The transfer counters so far, over everything this executor ran.
    pub fn stats(&self) -> Stats {
        self.copier.counters.snapshot()
    }

    /// Where source manifests already read this run are kept: hand it to
    /// the inventory, so that the executor does not read them again.
    pub fn manifest_cache(&self) -> Arc<ManifestCache> {
        self.copier.known.clone()
    }
}

/// Put results in plan order, whatever order the work finished in.
pub fn sort_results(results: &mut [EdgeResult]) {
    results.sort_by(|a, b| a.item.sort_key().cmp(&b.item.sort_key()));
}

/// Carry out the plan's copies and tag writes. Refused, lost and blocked
/// items are not work: they are left out of the report (the plan has them).
pub async fn execute(plan: &Plan, executor: &Executor, options: &ExecOptions) -> Report {
    executor.expect(plan.work().filter_map(|item| {
        item.source
            .as_ref()
            .map(|source| (&source.repo, &item.repo))
    }));
    let groups = crate::plan::work_by_repo(plan);
    let results: Vec<Vec<EdgeResult>> = stream::iter(groups)
        .map(|(repo, items)| {
            let items: Vec<PlanItem> = items.into_iter().cloned().collect();
            let is_new = plan.new_repositories.contains(repo);
            async move { executor.run_repo(repo, items, is_new).await }
        })
        .buffer_unordered(options.repo_concurrency.max(1))
        .collect()
        .await;
    let mut results: Vec<EdgeResult> = results.into_iter().flatten().collect();
    sort_results(&mut results);
    Report {
        results,
        stats: executor.stats(),
    }
}

impl Copier {
    fn registry(&self, endpoint: &Endpoint) -> Arc<dyn Registry> {
        self.registries.get(endpoint)
    }

    /// One destination repository's work: per digest, the copy, its
    /// attachments, then its tags.
    async fn run_repo(
        self: Arc<Self>,
        repo: &Repository,
        items: Vec<PlanItem>,
        is_new: bool,
    ) -> Vec<EdgeResult> {
        // Attachments by their subject; the attachments of an attachment
        // run with it (before it), not as a group of their own.
        let mut attaches: HashMap<Digest, Vec<PlanItem>> = HashMap::new();
        let mut nested: BTreeSet<Digest> = BTreeSet::new();
        let mut by_digest: Vec<(Digest, Vec<PlanItem>)> = Vec::new();
        for item in items {
            if let Action::Attach { attachment, .. } = &item.action {
                nested.insert(attachment.clone());
                attaches
                    .entry(item.digest.clone())
                    .or_default()
                    .push(item.clone());
            }
            match by_digest.last_mut() {
                Some((digest, group)) if *digest == item.digest => group.push(item),
                _ => by_digest.push((item.digest.clone(), vec![item])),
            }
        }
        let mut results = Vec::new();
        for (digest, group) in by_digest {
            if nested.contains(&digest) {
                continue;
            }
            if self.options.stopping() {
                break;
            }
            let done = crate::registry::retry::one_edge(
                self.run_digest(repo, &digest, group, &attaches, is_new),
            )
            .await;
            for result in &done {
                match &result.outcome {
                    Outcome::Done => tracing::info!(
                        kind = result.item.action.name(),
                        destination = %result.item.dest_ref(),
                        digest = %result.item.digest,
                        "done"
                    ),
                    Outcome::Failed(Failure { error, .. }) => tracing::warn!(
                        kind = result.item.action.name(),
                        destination = %result.item.dest_ref(),
                        digest = %result.item.digest,
                        error = %error,
                        "failed"
                    ),
                }
                if let Some(progress) = &self.progress {
                    progress.finished(result);
                }
            }
            results.extend(done);
        }
        results
    }

    /// Carry out `items` (attachments of one subject) and, before each,
    /// its own attachments from `attaches`. Returns the results and whether
    /// every one succeeded.
    fn run_attaches<'a>(
        &'a self,
        items: &'a [PlanItem],
        dest: Dest<'a>,
        attaches: &'a HashMap<Digest, Vec<PlanItem>>,
    ) -> BoxFuture<'a, (Vec<EdgeResult>, bool)> {
        async move {
            let mut results = Vec::new();
            let mut all_ok = true;
            for item in items {
                let Action::Attach {
                    attachment,
                    artifact_type,
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
                    match self
                        .copy_attachment(item, attachment, artifact_type, dest)
                        .await
                    {
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

    /// Copy the attachment `attachment` of `item.digest`: under its cosign
    /// tag, or by digest for a referrer, which the destination must then
    /// list (a registry without the referrers API gets the tag index).
    async fn copy_attachment(
        &self,
        item: &PlanItem,
        attachment: &Digest,
        artifact_type: &Option<String>,
        dest: Dest<'_>,
    ) -> Result<(), ExecError> {
        let Some(source) = &item.source else {
            return Err(ExecError::new(
                item.dest_ref(),
                RegistryError::Internal {
                    what: item.dest_ref(),
                    message: "an attach item without its source".to_string(),
                },
            ));
        };
        let put_as = match &item.tag {
            Some(tag) => ManifestRef::Tag(tag.clone()),
            None => ManifestRef::Digest(attachment.clone()),
        };
        let manifest = self.copy_manifest(source, dest, attachment, put_as).await?;
        self.counters
            .attachments_copied
            .fetch_add(1, Ordering::Relaxed);
        if item.tag.is_none() {
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
            self.list_referrers_in(dest, &item.digest, vec![listed])
                .await?;
        }
        Ok(())
    }

    async fn run_digest(
        &self,
        repo: &Repository,
        digest: &Digest,
        group: Vec<PlanItem>,
        attaches: &HashMap<Digest, Vec<PlanItem>>,
        is_new: bool,
    ) -> Vec<EdgeResult> {
        // Each item as the work it is: a copy with its source, a tag with its
        // tag. The planner always sets them; an item without is reported,
        // never panicked on.
        let mut results = Vec::new();
        let mut copy: Option<(PlanItem, SourceRef)> = None;
        let mut tags: Vec<(PlanItem, Tag)> = Vec::new();
        for item in group {
            match (&item.action, &item.source, &item.tag) {
                (Action::Copy, Some(source), _) if copy.is_none() => {
                    let source = source.clone();
                    copy = Some((item, source));
                }
                // A move writes the tag as a new one does; the planner
                // decided that it may.
                (Action::Tag | Action::Move { .. }, _, Some(tag)) => {
                    let tag = tag.clone();
                    tags.push((item, tag));
                }
                (Action::Attach { .. }, _, _) => {} // run below, from `attaches`
                (Action::Copy | Action::Tag | Action::Move { .. }, _, _) => {
                    results.push(EdgeResult {
                        outcome: Outcome::Failed(Failure::new(
                            FailureKind::Internal,
                            format!(
                                "{}: a {} item without its {}",
                                item.dest_ref(),
                                item.action.name(),
                                if item.action == Action::Copy {
                                    "source"
                                } else {
                                    "tag"
                                }
                            ),
                        )),
                        item,
                    })
                }
                _ => {}
            }
        }
        let dest = self.registry(repo.endpoint());
        let target = Dest {
            registry: dest.as_ref(),
            repo,
            is_new,
        };
        let mine = attaches.get(digest).map(Vec::as_slice).unwrap_or_default();
        // Everything but the manifest itself, then its attachments, then
        // the manifest (with its first tag): an image never stands in the
        // destination, tagged or by digest, without what is attached to it.
        let fail_all = |results: &mut Vec<EdgeResult>,
                        copy: Option<(PlanItem, Failure)>,
                        tags: &[(PlanItem, Tag)],
                        kind: FailureKind,
                        why: String| {
            if let Some((item, failure)) = copy {
                results.push(EdgeResult {
                    item,
                    outcome: Outcome::Failed(failure),
                });
            }
            for (item, _) in tags {
                results.push(EdgeResult {
                    item: item.clone(),
                    outcome: Outcome::Failed(Failure::new(kind, why.clone())),
                });
            }
        };
        let prepared = match &copy {
            Some((copy_item, source)) => {
                match self.prepare_manifest(source, target, digest).await {
                    Ok(manifest) => Some(manifest),
                    Err(err) => {
                        let (skipped, _) = self.skip_attaches(mine, attaches, digest);
                        results.extend(skipped);
                        fail_all(
                            &mut results,
                            Some((copy_item.clone(), Failure::from_exec(&err))),
                            &tags,
                            FailureKind::Dependency,
                            format!("not tagged: the copy of {digest} failed"),
                        );
                        return results;
                    }
                }
            }
            None => None,
        };
        let (attached, attached_ok) = self.run_attaches(mine, target, attaches).await;
        results.extend(attached);
        if !attached_ok {
            let why = format!("not written: an attachment of {digest} failed");
            let copy =
                copy.map(|(item, _)| (item, Failure::new(FailureKind::Dependency, why.clone())));
            fail_all(&mut results, copy, &tags, FailureKind::Dependency, why);
            return results;
        }
        let mut remaining_tags = tags.as_slice();
        let step = self
            .options
            .hooks
            .as_ref()
            .filter(|h| h.has_after_promote());
        // With an after-promote step the tags wait for it: a tag is only
        // written once its image's step succeeded, so the next run knows
        // (by the missing tag) to try again.
        let mut pending_copy = None;
        let manifest = match (copy, prepared) {
            (Some((copy, source)), Some(manifest)) => {
                // The first tag rides on the manifest PUT itself.
                let put_as = match tags.first() {
                    Some((_, tag)) if step.is_none() => {
                        remaining_tags = &tags[1..];
                        ManifestRef::Tag(tag.clone())
                    }
                    _ => ManifestRef::Digest(digest.clone()),
                };
                let put = self
                    .put_manifest(dest.as_ref(), repo, &put_as, &manifest)
                    .await
                    .map_err(|e| ExecError::new(format!("{repo}@{digest}"), e));
                match put {
                    Ok(()) => {
                        self.counters
                            .manifests_written
                            .fetch_add(1, Ordering::Relaxed);
                        if matches!(put_as, ManifestRef::Tag(_)) {
                            self.counters.tags_written.fetch_add(1, Ordering::Relaxed);
                            results.push(EdgeResult {
                                item: tags[0].0.clone(),
                                outcome: Outcome::Done,
                            });
                        }
                        if step.is_some() {
                            pending_copy = Some((copy, source));
                        } else {
                            results.push(EdgeResult {
                                item: copy,
                                outcome: Outcome::Done,
                            });
                        }
                        Ok(manifest)
                    }
                    Err(err) => {
                        fail_all(
                            &mut results,
                            Some((copy, Failure::from_exec(&err))),
                            &tags,
                            FailureKind::Dependency,
                            format!("not tagged: the copy of {digest} failed"),
                        );
                        return results;
                    }
                }
            }
            (Some(_), None) => unreachable!("a copy is prepared or has returned"),
            (None, _) if tags.is_empty() => return results,
            (None, _) => match dest
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
            },
        };
        if let (Some(step), Ok(_)) = (step, &manifest) {
            if pending_copy.is_some() || !remaining_tags.is_empty() {
                let source = pending_copy
                    .as_ref()
                    .map(|(_, s)| format!("{}/{}@{digest}", s.registry, repo_image(s)))
                    .unwrap_or_default();
                let destination = tags
                    .first()
                    .map(|(i, _)| i)
                    .or(pending_copy.as_ref().map(|(i, _)| i))
                    .map(|i| format!("{}/{}", i.registry, i.image))
                    .unwrap_or_else(|| repo.to_string());
                let input = crate::hooks::AfterPromoteInput {
                    hook: "after_promote",
                    source,
                    digest: digest.clone(),
                    reference: format!("{destination}@{digest}"),
                    destination,
                    tags: remaining_tags.iter().map(|(_, t)| t.to_string()).collect(),
                };
                if let Err(reason) = step.after_promote(&input).await {
                    let failure = Failure::new(FailureKind::Hook, reason.clone());
                    let why = format!("not tagged: {reason}");
                    let copy = pending_copy.map(|(item, _)| (item, failure));
                    fail_all(&mut results, copy, remaining_tags, FailureKind::Hook, why);
                    return results;
                }
            }
        }
        if let Some((item, _)) = pending_copy {
            results.push(EdgeResult {
                item,
                outcome: Outcome::Done,
            });
        }
        for (item, tag) in remaining_tags {
            let outcome = match &manifest {
                Err(err) => Outcome::Failed(err.clone()),
                Ok(manifest) => {
                    let tag = tag.clone();
                    match self
                        .put_manifest(dest.as_ref(), repo, &ManifestRef::Tag(tag), manifest)
                        .await
                    {
                        Ok(()) => {
                            self.counters.tags_written.fetch_add(1, Ordering::Relaxed);
                            Outcome::Done
                        }
                        Err(err) => Outcome::Failed(Failure::from_exec(&ExecError::new(
                            item.dest_ref(),
                            err,
                        ))),
                    }
                }
            };
            results.push(EdgeResult {
                item: item.clone(),
                outcome,
            });
        }
        results
    }

    /// Write `manifest` to `repo` as `reference`; with `verify_writes`, read
    /// it back (one HEAD) and fail unless the registry holds exactly it there.
    async fn put_manifest(
        &self,
        registry: &dyn Registry,
        repo: &Repository,
        reference: &ManifestRef,
        manifest: &RawManifest,
    ) -> Result<(), RegistryError> {
        registry.put_manifest(repo, reference, manifest).await?;
        if !self.options.verify_writes {
            return Ok(());
        }
        let stored = registry.head_manifest(repo, reference).await?;
        match stored {
            Some(d) if d.digest == manifest.digest => Ok(()),
            other => Err(RegistryError::NotStored {
                what: match reference {
                    ManifestRef::Tag(tag) => format!("{repo}:{tag}"),
                    ManifestRef::Digest(digest) => format!("{repo}@{digest}"),
                },
                message: match other {
                    Some(d) => format!(
                        "accepted {}, but holds {} there when read back",
                        manifest.digest, d.digest
                    ),
                    None => format!("accepted {}, but absent when read back", manifest.digest),
                },
            }),
        }
    }

    /// The source manifest's bytes, read once per run however many
    /// destinations want it.
    async fn source_manifest(
        &self,
        source: &SourceRef,
        digest: &Digest,
    ) -> Result<RawManifest, ExecError> {
        if let Some(known) = self.known.get(&source.repo, digest) {
            return Ok(known);
        }
        let registry = self.registry(source.repo.endpoint());
        let key = (source.repo.clone(), digest.clone());
        let repo = source.repo.clone();
        let digest = digest.clone();
        let (shared, _) = self.source_manifests.get_or_start(key, move || {
            async move {
                let what = format!("{repo}@{digest}");
                match registry
                    .get_manifest(&repo, &ManifestRef::Digest(digest.clone()))
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
            }
            .boxed()
        });
        shared.await
    }

    /// Copy `digest` and everything it references from `source` into the
    /// destination, writing the manifest itself last, as `put_as`.
    fn copy_manifest<'a>(
        &'a self,
        source: &'a SourceRef,
        dest: Dest<'a>,
        digest: &'a Digest,
        put_as: ManifestRef,
    ) -> BoxFuture<'a, Result<RawManifest, ExecError>> {
        async move {
            let walked = AtomicUsize::new(0);
            let graph = Graph {
                depth: 0,
                walked: &walked,
            };
            self.copy_manifest_at(source, dest, digest, Some(put_as), graph)
                .await
        }
        .boxed()
    }

    /// Everything `digest` references (children and blobs) into the
    /// destination, but not the manifest itself: the caller writes it once
    /// what must precede it (its attachments) is there.
    async fn prepare_manifest(
        &self,
        source: &SourceRef,
        dest: Dest<'_>,
        digest: &Digest,
    ) -> Result<RawManifest, ExecError> {
        let walked = AtomicUsize::new(0);
        let graph = Graph {
            depth: 0,
            walked: &walked,
        };
        self.copy_manifest_at(source, dest, digest, None, graph)
            .await
    }

    /// [`Copier::copy_manifest`] for a manifest `graph.depth` indexes below
    /// the one the plan names (not written when `put_as` is `None`): a
    /// source that nests indexes without end, or lists without end, gets an
    /// error from [`crate::registry::check_graph`] instead of a stack
    /// overflow or an endless copy.
    fn copy_manifest_at<'a>(
        &'a self,
        source: &'a SourceRef,
        dest: Dest<'a>,
        digest: &'a Digest,
        put_as: Option<ManifestRef>,
        graph: Graph<'a>,
    ) -> BoxFuture<'a, Result<RawManifest, ExecError>> {
        async move {
            let what = format!("{}@{digest}", source.repo);
            let count = graph.walked.fetch_add(1, Ordering::Relaxed) + 1;
            crate::registry::check_graph(&what, graph.depth, count)
                .map_err(|e| ExecError::new(what.clone(), e))?;
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
                    if present.is_none() {
                        let below = Graph {
                            depth: graph.depth + 1,
                            ..graph
                        };
                        self.copy_manifest_at(source, dest, &child.digest, Some(child_ref), below)
                            .await?;
                    }
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

    /// Results for attach `items` (and theirs) not tried because what they
    /// attach to, `subject`, could not be copied.
    fn skip_attaches(
        &self,
        items: &[PlanItem],
        attaches: &HashMap<Digest, Vec<PlanItem>>,
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

    /// Make sure the destination repository holds `blob`. The first
    /// repository of an endpoint to need a blob transfers it; the others wait
    /// for it and mount from there.
    async fn ensure_blob(
        &self,
        source: &SourceRef,
        dest: Dest<'_>,
        blob: &Descriptor,
    ) -> Result<(), ExecError> {
        let repo = dest.repo;
        let src = self.registry(source.repo.endpoint());
        if blob.foreign {
            // Non-distributable layers live elsewhere; registries need not hold them.
            let in_source = src.blob_exists(&source.repo, &blob.digest).await;
            if matches!(in_source, Ok(None)) {
                return Ok(());
            }
        }
        let dest_registry = self.registry(repo.endpoint());
        let key = (repo.endpoint().clone(), blob.digest.clone());
        let shared = {
            let dest_registry = dest_registry.clone();
            let src = src.clone();
            let source = source.clone();
            let blob = blob.clone();
            let counters = self.counters.clone();
            let first_repo = repo.clone();
            let is_new = dest.is_new;
            let verify = self.options.verify_writes;
            let mount_from =
                (source.repo.endpoint() == repo.endpoint()).then(|| source.repo.clone());
            // Going to several other registries: read once, held for all.
            let fanout = match &mount_from {
                Some(_) => 0,
                None => self
                    .fanout
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&source.repo)
                    .map_or(0, BTreeSet::len),
            };
            let spool = (fanout > 1).then(|| self.spool.clone());
            let (shared, _) = self.blobs.get_or_start(key, move || {
                async move {
                    let mut upload = upload_for(&src, &source, &blob, mount_from);
                    if let Some(spool) = &spool {
                        upload.open = spool.opener(
                            src.clone(),
                            source.repo.clone(),
                            blob.digest.clone(),
                            blob.size,
                            fanout,
                        );
                    }
                    let done = transfer(
                        dest_registry.as_ref(),
                        &first_repo,
                        is_new,
                        &blob,
                        &upload,
                        verify,
                    )
                    .await;
                    if let Some(spool) = &spool {
                        spool.release(&source.repo, &blob.digest);
                    }
                    counters.count(&done?, blob.size);
                    Ok(first_repo)
                }
                .boxed()
            });
            shared
        };
        let landed = shared.await?;
        if &landed == repo {
            return Ok(());
        }
        let upload = upload_for(&src, source, blob, Some(landed));
        let done = transfer(
            dest_registry.as_ref(),
            repo,
            dest.is_new,
            blob,
            &upload,
            self.options.verify_writes,
        )
        .await?;
        self.counters.count(&done, blob.size);
        Ok(())
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

/// The image path of a source reference, for display.
fn repo_image(source: &SourceRef) -> String {
    let prefix = source.registry.prefix.as_str();
    let path = source.repo.path();
    match path.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() => rest.trim_start_matches('/').to_string(),
        _ => path.to_string(),
    }
}

/// Where one copy stands in its manifest graph.
#[derive(Clone, Copy)]
struct Graph<'a> {
    /// Indexes between this manifest and the one the plan names.
    depth: usize,
    /// Manifests this copy has read so far.
    walked: &'a AtomicUsize,
}

/// Where a copy writes: one destination repository.
#[derive(Clone, Copy)]
struct Dest<'a> {
    registry: &'a dyn Registry,
    repo: &'a Repository,
    /// The inventory saw no such repository: skip existence checks.
    is_new: bool,
}

enum Transfer {
    Present,
    Put(BlobPut),
}

fn upload_for(
    src: &Arc<dyn Registry>,
    source: &SourceRef,
    blob: &Descriptor,
    mount_from: Option<Repository>,
) -> BlobUpload {
    let src = src.clone();
    let src_repo = source.repo.clone();
    let digest = blob.digest.clone();
    BlobUpload {
        digest: blob.digest.clone(),
        size: blob.size,
        mount_from,
        open: Arc::new(move || {
            let src = src.clone();
            let src_repo = src_repo.clone();
            let digest = digest.clone();
            async move { src.get_blob(&src_repo, &digest).await }.boxed()
        }),
    }
}

/// HEAD the destination blob (unless the repository is new); if absent,
/// mount or upload it (and, with `verify`, HEAD it again to see it landed).
async fn transfer(
    dest: &dyn Registry,
    repo: &Repository,
    repository_is_new: bool,
    blob: &Descriptor,
    upload: &BlobUpload,
    verify: bool,
) -> Result<Transfer, ExecError> {
    let what = || format!("blob {} into {repo}", blob.digest);
    if !repository_is_new
        && dest
            .blob_exists(repo, &blob.digest)
            .await
            .map_err(|e| ExecError::new(what(), e))?
            .is_some()
    {
        return Ok(Transfer::Present);
    }
    let put = dest
        .put_blob(repo, upload)
        .await
        .map_err(|e| ExecError::new(what(), e))?;
    if verify {
        let stored = dest
            .blob_exists(repo, &blob.digest)
            .await
            .map_err(|e| ExecError::new(what(), e))?;
        if stored != Some(blob.size) {
            let message = match stored {
                None => "accepted, but absent when read back".to_string(),
                Some(size) => format!(
                    "accepted, but {size} bytes when read back, not {}",
                    blob.size
                ),
            };
            return Err(ExecError::new(
                what(),
                RegistryError::NotStored {
                    what: what(),
                    message,
                },
            ));
        }
    }
    Ok(Transfer::Put(put))
}
