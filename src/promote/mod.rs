//! One promotion, end to end: wants -> inventory -> plan (-> execute), and
//! plan files that can be reviewed and applied later. A [`Run`] holds what
//! one command's promotion shares: the registries, the options, the
//! progress display, and the manifests already read (the inventory reads
//! attachments; the executor copies them without reading them again).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::exec::{self, EdgeResult, ExecOptions, Executor, Progress, Report};
use crate::inventory;
use crate::manifest::Manifest;
use crate::plan::{self, Inventory, Plan, RepoWant};
use crate::reference::RegistryName;
use crate::registry::{ManifestCache, Registries};

mod apply;
mod gate;
mod plan_file;

pub use apply::{apply, drift, wants_to_apply, Applied, Mismatch};
pub use plan_file::{
    parse_plan_file, plan_file_bytes, read_plan, read_plan_file, write_plan_file, PlanFile,
    PlanFileError, PLAN_FILE_LIMIT, PLAN_FILE_VERSION,
};

/// Every registry the manifests name, sources and destinations.
pub fn registry_names(manifests: &[Manifest]) -> BTreeSet<RegistryName> {
    manifests
        .iter()
        .flat_map(|m| std::iter::once(&m.source).chain(&m.destinations))
        .map(|r| r.name.clone())
        .collect()
}

/// One command's promotion: what it reads and writes with, and who hears
/// of its progress.
pub struct Run<'a> {
    /// The registries the manifests name, open.
    pub registries: &'a Registries,
    /// How to plan and carry out (attachments, hooks, write checks, stop).
    pub options: &'a ExecOptions,
    /// Hears of every repository planned, edge found and edge finished.
    pub progress: Option<Arc<dyn Progress>>,
    /// Source manifests read this run: the inventory's, the gates' and
    /// the executor's, read once.
    manifests: Arc<ManifestCache>,
    /// What a check of the destinations found damaged: a repair.
    damaged: Arc<plan::Damaged>,
}

impl<'a> Run<'a> {
    /// A run over `registries` with `options`, showing its progress to
    /// `progress`.
    pub fn new(
        registries: &'a Registries,
        options: &'a ExecOptions,
        progress: Option<Arc<dyn Progress>>,
    ) -> Run<'a> {
        Run {
            registries,
            options,
            progress,
            manifests: Arc::default(),
            damaged: Arc::default(),
        }
    }

    /// This run as a repair (`verify --repair`): the digests in `damaged`
    /// are planned as absent (or unknown), so the one planner and executor
    /// copy them again from their sources, every child of their graphs
    /// re-checked; nothing is deleted. Once nothing is damaged, it plans
    /// what a plain run would.
    pub fn repairing(mut self, damaged: plan::Damaged) -> Run<'a> {
        self.damaged = Arc::new(damaged);
        self
    }

    /// The inventory reader: attachments included unless turned off, their
    /// manifests kept for the executor.
    fn reader(&self) -> inventory::Reader<'a> {
        let reader = inventory::Reader::new(self.registries, inventory::DEFAULT_READ_CONCURRENCY)
            .with_manifest_cache(self.manifests.clone())
            .with_damaged(self.damaged.clone());
        if !self.options.attachments {
            return reader;
        }
        reader.with_attachments(inventory::AttachmentOptions {
            extra_types: self.options.extra_attachment_types.clone(),
            manifests: self.manifests.clone(),
        })
    }

    fn executor(&self) -> Executor {
        // Below a damaged digest, a child that is there may lack a blob.
        let options = ExecOptions {
            recheck_present_children: self.options.recheck_present_children
                || !self.damaged.is_empty(),
            ..self.options.clone()
        };
        let executor = Executor::new(self.registries, &options, self.manifests.clone());
        match &self.progress {
            Some(progress) => executor.with_progress(progress.clone()),
            None => executor,
        }
    }

    /// Read the registries for `wants` and plan; nothing is written.
    pub async fn plan(&self, wants: Vec<RepoWant>) -> PlanFile {
        let inventory = self.reader().take(&wants).await;
        log_reads(&wants, &inventory);
        let mut plan = plan::plan(&wants, &inventory);
        gate::gate(
            &mut plan,
            &wants,
            self.registries,
            self.options,
            &self.manifests,
        )
        .await;
        PlanFile {
            version: PLAN_FILE_VERSION,
            wants,
            inventory,
            plan,
        }
    }

    /// Carry out `plan`'s work (copies, attachments, tags). Refused, lost
    /// and blocked items are not work: the report leaves them out.
    pub async fn execute(&self, plan: &Plan) -> Report {
        let executor = self.executor();
        if let Some(progress) = &self.progress {
            progress.work_found(plan.work().count() as u64);
        }
        exec::execute(plan, &executor, self.options).await
    }

    /// Plan and promote, pipelined: each destination repository is copied
    /// as soon as it is planned, while the others are still being read.
    /// Refusals and failures stay within their repository; the merged plan
    /// and report are the same as planning everything first would give.
    pub async fn promote(&self, wants: Vec<RepoWant>) -> (PlanFile, Report) {
        let executor = self.executor();
        executor.expect(wants.iter().flat_map(|want| {
            want.digests
                .values()
                .flat_map(|d| d.sources.iter())
                .map(move |source| (&source.repo, &want.repo))
        }));
        let reader = self.reader();
        let planned = AtomicU64::new(0);
        let total = wants.len() as u64;
        let (reader, executor, planned, all) = (&reader, &executor, &planned, &wants);
        let per_repo: Vec<(Inventory, Plan, Vec<EdgeResult>)> = exec::per_registry(
            &wants,
            |want| want.repo.endpoint().clone(),
            self.options.repo_concurrency,
            |want| async move {
                if self.options.stopping() {
                    return Default::default();
                }
                let (inventory, plan) = self.plan_one(reader, want, all).await;
                let done = planned.fetch_add(1, Ordering::Relaxed) + 1;
                executor.planned(done, total);
                let work: Vec<_> = plan.work().cloned().collect();
                executor.work_found(work.len() as u64);
                let results = if work.is_empty() {
                    Vec::new()
                } else {
                    let is_new = plan.new_repositories.contains(&want.repo);
                    executor.run_repo(&want.repo, work, is_new).await
                };
                (inventory, plan, results)
            },
        )
        .await;
        let mut inventory = Inventory::default();
        let mut plans = Vec::with_capacity(per_repo.len());
        let mut results = Vec::new();
        for (repo_inventory, plan, repo_results) in per_repo {
            inventory.merge(repo_inventory);
            plans.push(plan);
            results.extend(repo_results);
        }
        exec::sort_results(&mut results);
        let report = Report {
            results,
            stats: executor.stats(),
            pacing: executor.pacing(),
        };
        report.log_pacing();
        let planned = PlanFile {
            version: PLAN_FILE_VERSION,
            wants,
            inventory,
            plan: Plan::merge_all(plans),
        };
        (planned, report)
    }

    /// Read and plan one destination repository, gates asked.
    async fn plan_one(
        &self,
        reader: &inventory::Reader<'_>,
        want: &RepoWant,
        all: &[RepoWant],
    ) -> (Inventory, Plan) {
        let one = std::slice::from_ref(want);
        let started = std::time::Instant::now();
        let inventory = reader.take(one).await;
        log_reads(one, &inventory);
        let mut plan = plan::plan(one, &inventory);
        tracing::debug!(
            repository = %want.repo,
            items = plan.items.len(),
            work = plan.work().count(),
            read_ms = started.elapsed().as_millis() as u64,
            "planned"
        );
        gate::gate(
            &mut plan,
            all,
            self.registries,
            self.options,
            &self.manifests,
        )
        .await;
        (inventory, plan)
    }
}

/// At -vv: what the inventory read for `wants`, and why (a dry run says
/// nothing else about the registries).
fn log_reads(wants: &[RepoWant], inventory: &Inventory) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let tally = |states: &mut dyn Iterator<Item = bool>| {
        let (mut present, mut other) = (0, 0);
        for found in states {
            if found {
                present += 1
            } else {
                other += 1
            }
        }
        (present, other)
    };
    for want in wants {
        let Some(state) = inventory.destinations.get(&want.repo) else {
            tracing::debug!(repository = %want.repo, "destination not read (planning stopped)");
            continue;
        };
        let (tags, tags_missing) = tally(
            &mut state
                .tags
                .values()
                .map(|o| matches!(o, plan::Observed::Present(_))),
        );
        let (digests, digests_missing) = tally(
            &mut state
                .digests
                .values()
                .map(|o| matches!(o, plan::Observed::Present(()))),
        );
        tracing::debug!(
            repository = %want.repo,
            wanted_digests = want.digests.len(),
            "read the destination: {tags} wanted tag(s) there, {tags_missing} not (or unreadable); {digests} digest(s) there, {digests_missing} not{}",
            if state.repository_absent { "; the repository is new" } else { "" }
        );
    }
    for (repo, digests) in &inventory.sources {
        let (present, other) = tally(
            &mut digests
                .values()
                .map(|o| matches!(o, plan::Observed::Present(()))),
        );
        tracing::debug!(
            repository = %repo,
            "read the source for what the destinations lack: {present} digest(s) there, {other} not (or unreadable)"
        );
    }
}

/// How a plan (carried out or not) ends, for the exit code: refusals
/// first (a tag move, a gate, a conflict), then failures (a failed or
/// blocked edge, a lost digest with `fail_on_lost`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Everything planned is done (or, in a dry run, can be).
    Done,
    /// Something was refused.
    Refused,
    /// Something failed, was blocked, or (with `fail_on_lost`) is lost.
    Failed,
}

/// The verdict on `plan`, carried out as `execution` says (or not at all).
pub fn verdict(plan: &Plan, execution: Option<&Report>, fail_on_lost: bool) -> Verdict {
    let failed = execution.is_some_and(|e| e.failed().next().is_some());
    if plan.has_refusals() {
        Verdict::Refused
    } else if failed || plan.has_blocked() || (fail_on_lost && plan.counts().lost > 0) {
        Verdict::Failed
    } else {
        Verdict::Done
    }
}
