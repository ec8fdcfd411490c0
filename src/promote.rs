//! One promotion, end to end: wants -> inventory -> plan (-> execute), and
//! plan files that can be reviewed and applied later.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use futures::stream::{self, StreamExt};

use crate::exec::{self, EdgeResult, ExecOptions, Executor, Report};
use crate::hooks::{GateInput, Verdict};
use crate::inventory;
use crate::manifest::Manifest;
use crate::plan::GateVerdict;
use crate::plan::{self, Inventory, Plan, RepoWant};
use crate::reference::ManifestRef;
use crate::reference::Repository;
use crate::reference::{Digest, RegistryName, Tag};
use crate::registry::ManifestCache;
use crate::registry::Registries;
use crate::report;

/// Every registry the manifests name, sources and destinations.
pub fn registry_names(manifests: &[Manifest]) -> BTreeSet<RegistryName> {
    manifests
        .iter()
        .flat_map(|m| std::iter::once(&m.source).chain(&m.destinations))
        .map(|r| r.name.clone())
        .collect()
}

/// A computed plan together with what it was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanFile {
    /// Format version of this file.
    pub version: u32,
    /// What the manifests wanted when the plan was made; apply checks these
    /// against the manifests again.
    pub wants: Vec<RepoWant>,
    /// The destination (and source) state the plan was computed from.
    pub inventory: Inventory,
    /// The plan itself, for review.
    pub plan: Plan,
}

/// The plan file format this promoter writes and reads; a file of any other
/// version is refused.
pub const PLAN_FILE_VERSION: u32 = 1;

/// The inventory reader a run with `options` uses: attachments included
/// unless turned off, their manifests kept in `manifests` for the executor.
fn reader<'a>(
    registries: &'a Registries,
    options: &ExecOptions,
    manifests: std::sync::Arc<crate::registry::ManifestCache>,
) -> inventory::Reader<'a> {
    let reader = inventory::Reader::new(registries, inventory::DEFAULT_READ_CONCURRENCY)
        .with_manifest_cache(manifests.clone());
    if !options.attachments {
        return reader;
    }
    reader.with_attachments(inventory::AttachmentOptions {
        extra_types: options.extra_attachment_types.clone(),
        manifests,
    })
}

/// Read the registries for `wants` and plan.
pub async fn plan(
    wants: Vec<RepoWant>,
    registries: &Registries,
    options: &ExecOptions,
) -> PlanFile {
    let manifests: Arc<ManifestCache> = Arc::default();
    let inventory = reader(registries, options, manifests.clone())
        .take(&wants)
        .await;
    let mut plan = plan::plan(&wants, &inventory);
    gate(&mut plan, &wants, registries, options, &manifests).await;
    PlanFile {
        version: PLAN_FILE_VERSION,
        wants,
        inventory,
        plan,
    }
}

/// Plan and promote, pipelined: each destination repository is copied as
/// soon as it is planned, while the others are still being read. Refusals
/// and failures stay within their repository; the merged plan and report
/// are the same as planning everything first would give.
pub async fn promote(
    wants: Vec<RepoWant>,
    registries: &Registries,
    executor: &Executor,
    options: &ExecOptions,
) -> (PlanFile, Report) {
    executor.expect(wants.iter().flat_map(|want| {
        want.digests
            .values()
            .flat_map(|d| d.sources.iter())
            .map(move |source| (&source.repo, &want.repo))
    }));
    let manifests = executor.manifest_cache();
    let reader = reader(registries, options, manifests.clone());
    let reader = &reader;
    let manifests = &manifests;
    let all_wants = &wants;
    let planned = &std::sync::atomic::AtomicU64::new(0);
    let total = wants.len() as u64;
    let per_repo: Vec<(Inventory, Plan, Vec<EdgeResult>)> = stream::iter(&wants)
        .map(|want| async move {
            if options.stopping() {
                return (Inventory::default(), Plan::default(), Vec::new());
            }
            let one = std::slice::from_ref(want);
            let started = std::time::Instant::now();
            let inventory = reader.take(one).await;
            let mut plan = plan::plan(one, &inventory);
            let done = planned.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            executor.planned(done, total);
            tracing::debug!(
                repository = %want.repo,
                items = plan.items.len(),
                work = plan.work().count(),
                read_ms = started.elapsed().as_millis() as u64,
                "planned"
            );
            gate(&mut plan, all_wants, registries, options, manifests).await;
            let work: Vec<_> = plan.work().cloned().collect();
            let results = if work.is_empty() {
                Vec::new()
            } else {
                let is_new = plan.new_repositories.contains(&want.repo);
                executor.run_repo(&want.repo, work, is_new).await
            };
            (inventory, plan, results)
        })
        .buffer_unordered(options.repo_concurrency.max(1))
        .collect()
        .await;

    let mut merged_inventory = Inventory::default();
    let mut merged_plan = Plan::default();
    let mut results = Vec::new();
    for (inventory, plan, repo_results) in per_repo {
        merged_inventory.destinations.extend(inventory.destinations);
        for (repo, digests) in inventory.sources {
            merged_inventory
                .sources
                .entry(repo)
                .or_default()
                .extend(digests);
        }
        merged_plan.items.extend(plan.items);
        merged_plan.already_present += plan.already_present;
        merged_plan.attachments_skipped += plan.attachments_skipped;
        merged_inventory.attachments_skipped += inventory.attachments_skipped;
        for (repo, digests) in inventory.attachments {
            merged_inventory
                .attachments
                .entry(repo)
                .or_default()
                .extend(digests);
        }
        merged_plan.new_repositories.extend(plan.new_repositories);
        results.extend(repo_results);
    }
    merged_plan
        .items
        .sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    exec::sort_results(&mut results);
    let report = Report {
        results,
        stats: executor.stats(),
    };
    let planned = PlanFile {
        version: PLAN_FILE_VERSION,
        wants,
        inventory: merged_inventory,
        plan: merged_plan,
    };
    (planned, report)
}

/// Ask the gates (`--gate`) about every digest `plan` copies, and apply
/// their verdicts: refused digests are written nowhere.
async fn gate(
    plan: &mut Plan,
    wants: &[RepoWant],
    registries: &Registries,
    options: &ExecOptions,
    manifests: &ManifestCache,
) {
    let Some(hooks) = options.hooks.as_ref().filter(|h| h.has_gate()) else {
        return;
    };
    let copies = plan::gated_copies(plan);
    let verdicts: Vec<_> = stream::iter(copies)
        .map(|(source, digest)| async move {
            let verdict = match gate_input(&source, &digest, wants, registries, manifests).await {
                Ok(input) => hooks.gate(&source, &input).await,
                Err(why) => Verdict::Undecided(why),
            };
            (source, digest, verdict)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let verdicts: BTreeMap<(Repository, Digest), GateVerdict> = verdicts
        .into_iter()
        .filter_map(|(source, digest, verdict)| {
            let verdict = match verdict {
                Verdict::Admit => return None,
                Verdict::Refuse(reason) => GateVerdict::Refused(reason),
                Verdict::Undecided(reason) => GateVerdict::Undecided(reason),
            };
            Some(((source, digest), verdict))
        })
        .collect();
    plan::apply_verdicts(plan, &verdicts);
}

/// What the gates are told about `digest` of the source repository
/// `source`: read from the source (once; the executor reuses it), with
/// every destination and tag `wants` give it.
async fn gate_input(
    source: &Repository,
    digest: &Digest,
    wants: &[RepoWant],
    registries: &Registries,
    manifests: &ManifestCache,
) -> Result<GateInput, String> {
    let manifest = match manifests.get(source, digest) {
        Some(manifest) => manifest,
        None => {
            let registry = registries.get(source.endpoint());
            let manifest = registry
                .get_manifest(source, &ManifestRef::Digest(digest.clone()))
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{source}@{digest} vanished from the source"))?;
            manifests.insert(source, &manifest);
            manifest
        }
    };
    let what = format!("{source}@{digest}");
    let refs = crate::oci::references(&manifest, &what).map_err(|e| e.to_string())?;
    let mut destinations = Vec::new();
    let mut tags = BTreeSet::new();
    for want in wants {
        let Some(d) = want.digests.get(digest) else {
            continue;
        };
        if d.sources.iter().any(|s| &s.repo == source) {
            destinations.push(format!("{}/{}", want.registry, want.image));
            tags.extend(d.tags.keys().map(Tag::to_string));
        }
    }
    Ok(GateInput {
        hook: "gate",
        source: what,
        digest: digest.clone(),
        media_type: manifest.media_type.clone(),
        platforms: refs.platforms,
        destinations,
        tags: tags.into_iter().collect(),
    })
}

/// Why a plan file could not be read or written. Every variant names the
/// file as the user gave it.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    /// Opening or reading the file failed.
    #[error("{path}: cannot read the plan file: {source}")]
    Read {
        /// The file, as given.
        path: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not JSON of the plan file's shape.
    #[error("{path}: not a promoter plan file: {source}")]
    Parse {
        /// The file, as given.
        path: String,
        /// Where and why decoding failed.
        source: serde_json::Error,
    },
    /// The file was written by a promoter with another plan file format.
    #[error("{path}: plan file version {found} is not supported (this promoter reads version {PLAN_FILE_VERSION})")]
    Version {
        /// The file, as given.
        path: String,
        /// The version the file says it has.
        found: u32,
    },
    /// Encoding, writing or renaming the file into place failed.
    #[error("{path}: cannot write the plan file: {source}")]
    Write {
        /// The file, as given.
        path: String,
        /// The underlying error (encoding, temporary file, sync or rename).
        source: std::io::Error,
    },
    /// The path is not a regular file, or is larger than [`PLAN_FILE_LIMIT`].
    #[error("{path}: not a regular file of at most {limit} bytes; a plan file is what `promoter run --plan-out` writes")]
    NotAPlanFile {
        /// The file, as given.
        path: String,
        /// The size limit, in bytes.
        limit: u64,
    },
}

/// Largest plan file read: a plan of the whole registry.k8s.io tree (some
/// 700,000 edges) is well under this; a bigger file is not one of ours.
pub const PLAN_FILE_LIMIT: u64 = 1 << 30;

/// Why a plan file cannot be applied with these manifests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    /// The plan wants something in a repository the manifests do not name.
    #[error("the plan writes to {repo}, which these manifests do not promote to")]
    UnknownRepository {
        /// The repository, as the plan names it.
        repo: String,
    },
    /// The plan's wants for a repository are not what the manifests say.
    #[error("the plan's {repo} is not what these manifests promote there (images, digests, tags or sources differ)")]
    DifferentWants {
        /// The repository, as the plan names it.
        repo: String,
    },
}

/// The wants to apply: for each want in the plan file, the one the
/// manifests produce for the same destination repository, which must
/// promote exactly the same edges (file positions aside). A plan file is
/// data from outside: everything apply writes comes from the manifests,
/// never from a field of the file. A plan made with `--shard` holds a
/// subset of the manifests' repositories, which is fine.
pub fn wants_to_apply(
    reviewed: &[RepoWant],
    from_manifests: &[RepoWant],
) -> Result<Vec<RepoWant>, Mismatch> {
    let by_repo: std::collections::BTreeMap<_, _> =
        from_manifests.iter().map(|w| (&w.repo, w)).collect();
    reviewed
        .iter()
        .map(|want| {
            let derived = by_repo
                .get(&want.repo)
                .ok_or_else(|| Mismatch::UnknownRepository {
                    repo: want.repo.to_string(),
                })?;
            if edges(want) != edges(derived) {
                return Err(Mismatch::DifferentWants {
                    repo: want.repo.to_string(),
                });
            }
            Ok((*derived).clone())
        })
        .collect()
}

/// What a want promotes, without the file positions it was read from.
type Edges<'a> = (
    &'a RegistryName,
    &'a Repository,
    String,
    Vec<(&'a Digest, Vec<&'a Tag>, &'a BTreeSet<plan::SourceRef>)>,
);

fn edges(want: &RepoWant) -> Edges<'_> {
    (
        &want.registry,
        &want.repo,
        want.image.to_string(),
        want.digests
            .iter()
            .map(|(digest, d)| (digest, d.tags.keys().collect(), &d.sources))
            .collect(),
    )
}

/// Write the plan file atomically: a reader never sees half a plan.
pub fn write_plan_file(path: &Path, plan: &PlanFile) -> Result<(), PlanFileError> {
    let shown = path.display().to_string();
    let write_err = |source| PlanFileError::Write {
        path: shown.clone(),
        source,
    };
    let json = serde_json::to_vec_pretty(plan).map_err(|e| write_err(std::io::Error::other(e)))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    std::io::Write::write_all(&mut tmp, &json).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    Ok(())
}

/// Read and check a plan file written by [`write_plan_file`]: a regular
/// file within [`PLAN_FILE_LIMIT`], of this promoter's version. Its wants
/// still have to be checked against the manifests ([`wants_to_apply`]).
pub fn read_plan_file(path: &Path) -> Result<PlanFile, PlanFileError> {
    let shown = path.display().to_string();
    let read_err = |source| PlanFileError::Read {
        path: shown.clone(),
        source,
    };
    // Hostile until checked: a FIFO or /dev/zero would block or never end.
    let bytes = match crate::local_file::read_capped(path, PLAN_FILE_LIMIT) {
        Ok(bytes) => bytes,
        Err(crate::local_file::ReadError::Io(source)) => return Err(read_err(source)),
        Err(_) => {
            return Err(PlanFileError::NotAPlanFile {
                path: shown,
                limit: PLAN_FILE_LIMIT,
            })
        }
    };
    parse_plan_file(&bytes, shown)
}

/// A plan file's bytes (read by [`read_plan_file`], or from standard input
/// within [`PLAN_FILE_LIMIT`]), checked; `shown` names it in errors.
pub fn parse_plan_file(bytes: &[u8], shown: String) -> Result<PlanFile, PlanFileError> {
    if bytes.len() as u64 > PLAN_FILE_LIMIT {
        return Err(PlanFileError::NotAPlanFile {
            path: shown,
            limit: PLAN_FILE_LIMIT,
        });
    }
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let version: VersionOnly =
        serde_json::from_slice(bytes).map_err(|source| PlanFileError::Parse {
            path: shown.clone(),
            source,
        })?;
    if version.version != PLAN_FILE_VERSION {
        return Err(PlanFileError::Version {
            path: shown,
            found: version.version,
        });
    }
    serde_json::from_slice(bytes).map_err(|source| PlanFileError::Parse {
        path: shown,
        source,
    })
}

/// A plan file as its bytes: what [`write_plan_file`] writes.
pub fn plan_file_bytes(plan: &PlanFile) -> Vec<u8> {
    serde_json::to_vec_pretty(plan).expect("a plan serialises")
}

/// If `fresh` differs from the reviewed plan, a unified diff of the two plans
/// (reviewed first); `None` when applying the reviewed plan is still exactly right.
pub fn drift(reviewed: &Plan, fresh: &Plan) -> Option<String> {
    if reviewed.items == fresh.items {
        return None;
    }
    let old = report::plan_text(reviewed);
    let new = report::plan_text(fresh);
    if old == new {
        // Same text, different data: the file was edited where the text
        // does not show (a repository path, a source).
        return Some(
            "the plan file's items differ from the plan in fields the text does not show (repository paths, sources)\n"
                .to_string(),
        );
    }
    let diff = similar::TextDiff::from_lines(&old, &new);
    Some(
        diff.unified_diff()
            .context_radius(2)
            .header("reviewed plan", "plan against the registries now")
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Location;
    use crate::plan::{Action, PlanItem, Repository};
    use crate::reference::{Digest, ImageName, Tag};
    use std::sync::Arc;

    fn item(action: Action) -> PlanItem {
        let dst = RegistryName::parse("dst.example/prod").unwrap();
        let image = ImageName::parse("foo").unwrap();
        PlanItem {
            action,
            repo: dst.repository(&image),
            registry: dst,
            image,
            digest: Digest::sha256_of(b"x"),
            tag: Some(Tag::parse("1.0").unwrap()),
            source: None,
            location: Location::file_only(Arc::from(Path::new("m.yaml"))),
        }
    }

    #[test]
    fn an_unchanged_plan_has_no_drift_and_a_changed_one_shows_a_diff() {
        let reviewed = Plan {
            items: vec![item(Action::Tag)],
            already_present: 0,
            ..Plan::default()
        };
        assert_eq!(drift(&reviewed, &reviewed.clone()), None);
        let fresh = Plan {
            items: vec![item(Action::RefusedTagMove {
                current: Digest::sha256_of(b"y"),
            })],
            already_present: 0,
            ..Plan::default()
        };
        let diff = drift(&reviewed, &fresh).unwrap();
        assert!(diff.contains("-tag "), "{diff}");
        assert!(diff.contains("+refused "), "{diff}");
    }

    #[test]
    fn plan_files_round_trip_and_refuse_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let file = PlanFile {
            version: PLAN_FILE_VERSION,
            wants: vec![],
            inventory: Inventory::default(),
            plan: Plan {
                items: vec![item(Action::Tag)],
                already_present: 3,
                ..Plan::default()
            },
        };
        write_plan_file(&path, &file).unwrap();
        assert_eq!(read_plan_file(&path).unwrap(), file);
        std::fs::write(&path, br#"{"version": 99}"#).unwrap();
        assert!(matches!(
            read_plan_file(&path),
            Err(PlanFileError::Version { found: 99, .. })
        ));
        std::fs::write(&path, b"garbage").unwrap();
        assert!(matches!(
            read_plan_file(&path),
            Err(PlanFileError::Parse { .. })
        ));
    }

    fn want(repo: &str, tags: &[&str], line: u32) -> RepoWant {
        let dst = RegistryName::parse("dst.example/prod").unwrap();
        let src = RegistryName::parse("src.example/stage").unwrap();
        let image = ImageName::parse(repo).unwrap();
        let at = Location {
            file: Arc::from(Path::new("m.yaml")),
            line,
            col: 1,
        };
        let digest = plan::DigestWant {
            tags: tags
                .iter()
                .map(|t| (Tag::parse(t).unwrap(), at.clone()))
                .collect(),
            sources: BTreeSet::from([plan::SourceRef {
                registry: src.clone(),
                repo: src.repository(&image),
            }]),
            location: at,
        };
        RepoWant {
            movable: Default::default(),
            repo: dst.repository(&image),
            registry: dst,
            image,
            digests: [(Digest::sha256_of(b"x"), digest)].into(),
        }
    }

    #[test]
    fn apply_takes_its_wants_from_the_manifests_never_from_the_plan_file() {
        let manifests = vec![want("a", &["1.0"], 3), want("b", &["2.0"], 9)];
        // The same edges, read from other lines, and a shard's subset: fine.
        let reviewed = vec![want("b", &["2.0"], 40)];
        let applied = wants_to_apply(&reviewed, &manifests).unwrap();
        assert_eq!(applied, vec![manifests[1].clone()]);

        // A repository the manifests do not promote to.
        let mut moved = want("b", &["2.0"], 9);
        moved.repo = Repository::parse(moved.repo.endpoint(), "prod/evil").unwrap();
        assert!(matches!(
            wants_to_apply(&[moved], &manifests),
            Err(Mismatch::UnknownRepository { .. })
        ));
        // Same repository, other tags.
        assert!(matches!(
            wants_to_apply(&[want("a", &["1.0", "latest"], 3)], &manifests),
            Err(Mismatch::DifferentWants { .. })
        ));
    }
}
