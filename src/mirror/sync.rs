//! What the mirror tools do in one command (`image-syncer`, `sinker
//! copy`, a dregsy task), as promoter does it: the intent pinned against
//! its sources into locks held in memory, read back as CIP manifests
//! (validated and conflict-checked as any manifest is), planned against
//! the destinations, and, when asked, carried out. The same pin, plan and
//! run as `promoter pin` + `promoter run`; only the lock file is left out.

use std::path::Path;
use std::sync::Arc;

use crate::diag::Diagnostic;
use crate::exec::{ExecOptions, Progress, Report};
use crate::manifest::intent::Intent;
use crate::manifest::{self, Manifest};
use crate::promote::{self, PlanFile, Run};
use crate::registry::{self, OpenOptions, RegistryError};

use super::pin::{self, lock_text, Note, PinError};

/// How one sync goes.
#[derive(Debug)]
pub struct Sync<'a> {
    /// What to mirror.
    pub intent: &'a Intent,
    /// What the previous sync of the same intent pinned (kept, as a lock
    /// file keeps it: a tag re-pointed upstream stays where it was).
    pub previous: &'a [Manifest],
    /// How the registries are opened.
    pub open: &'a OpenOptions,
    /// How the promotion runs (its stop included).
    pub exec: &'a ExecOptions,
    /// Carry the plan out; without it, only plan (every read is done).
    pub confirm: bool,
}

/// What a sync came to.
#[derive(Debug)]
pub struct Synced {
    /// What pinning found worth saying.
    pub notes: Vec<Note>,
    /// The locks, as manifests: what the next sync keeps.
    pub manifests: Vec<Manifest>,
    /// The plan.
    pub planned: PlanFile,
    /// What was carried out, with `confirm`.
    pub report: Option<Report>,
}

/// Why a sync did not get to a plan.
#[derive(Debug, thiserror::Error)]
pub enum SyncFailure {
    /// A registry could not be opened (its credentials, say).
    #[error(transparent)]
    Open(#[from] RegistryError),
    /// Sources could not be read, or lack what the intent names.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Sources(Vec<PinError>, Vec<Note>),
    /// The locks do not make valid manifests (two images renamed onto one
    /// destination with one tag on two digests, say).
    #[error("the pinned images conflict; nothing was planned")]
    Invalid(Vec<Diagnostic>),
}

/// Pin `sync.intent`, plan it, and with `confirm` promote it.
pub async fn sync(
    sync: &Sync<'_>,
    progress: Option<Arc<dyn Progress>>,
) -> Result<Synced, SyncFailure> {
    let sources: Vec<_> = std::iter::once(sync.intent.source.name.clone())
        .chain(sync.intent.images.iter().filter_map(|i| i.source.clone()))
        .chain(sync.intent.catalog.iter().map(|c| c.source.clone()))
        .collect();
    let source_registries = registry::open_all(sources.iter(), sync.open)?;
    let pinned = pin::pin(sync.intent, &source_registries, sync.previous).await;
    if !pinned.errors.is_empty() {
        return Err(SyncFailure::Sources(pinned.errors, pinned.notes));
    }
    let manifests = manifests_of(&pinned.locks, &sync.intent.file)?;
    let names = promote::registry_names(&manifests);
    let registries = registry::open_all(names.iter(), sync.open)?;
    let wants = crate::plan::wants(&manifests);
    let (planned, report) = if sync.confirm {
        let (planned, report) = Run::new(&registries, sync.exec, progress)
            .promote(wants)
            .await;
        (planned, Some(report))
    } else {
        (
            Run::new(&registries, sync.exec, None).plan(wants).await,
            None,
        )
    };
    Ok(Synced {
        notes: pinned.notes,
        manifests,
        planned,
        report,
    })
}

/// Whether `plan` writes `image`'s tags (Sinker's "would be pushed"):
/// some work in its destination repository for one of them.
pub fn writes(plan: &crate::plan::Plan, image: &crate::manifest::intent::IntentImage) -> bool {
    let Some(destination) = image.destinations.as_ref().and_then(|d| d.first()) else {
        return false;
    };
    let repo = destination.repository(image.target.as_ref().unwrap_or(&image.name));
    let s = &image.select;
    let tags: Vec<&crate::reference::Tag> = s
        .retag
        .as_ref()
        .map(|r| &r.value)
        .into_iter()
        .chain(s.tags.iter().map(|t| &t.value))
        .chain(s.digests.iter().filter_map(|d| d.value.tag.as_ref()))
        .collect();
    plan.work()
        .any(|w| w.repo == repo && w.tag().is_some_and(|t| tags.contains(&t)))
}

/// The hosts `intent` writes to (`host[:port]`, as credentials are looked
/// up), each once: where a command line's target credential goes.
pub fn destination_hosts(intent: &Intent) -> Vec<String> {
    let mut hosts: Vec<String> = intent
        .destinations
        .iter()
        .map(|d| &d.name)
        .chain(
            intent
                .images
                .iter()
                .flat_map(|i| i.destinations.iter().flatten()),
        )
        .chain(intent.catalog.iter().map(|c| &c.destination))
        .filter_map(|name| name.endpoint.api_host().map(|_| name.endpoint.to_string()))
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The locks read back as the manifests they are, with the checks every
/// manifest gets (names, conflicts).
fn manifests_of(locks: &[pin::Lock], intent: &Path) -> Result<Vec<Manifest>, SyncFailure> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (lock, name) in locks.iter().zip(pin::directory_names(locks)) {
        let shown = format!("{} (pinned: {name})", intent.display());
        let text = lock_text(lock, &intent.display().to_string(), false);
        let loaded = manifest::load_plain_text(Path::new(&shown), &text);
        problems.extend(loaded.diagnostics.into_iter().filter(Diagnostic::is_error));
        out.extend(loaded.manifests);
    }
    // Two locks can write one destination: the conflict check spans them.
    if problems.is_empty() {
        manifest::check_conflicts(&out, &mut problems);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(SyncFailure::Invalid(problems))
    }
}
