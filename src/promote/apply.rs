//! `promoter apply`: carry out a reviewed plan file, only if it is still
//! exactly what the manifests produce against the registries now. A plan
//! file is data from outside: everything apply writes comes from the
//! manifests, never from a field of the file.

use std::collections::BTreeSet;

use crate::exec::Report;
use crate::plan::{self, Plan, PlanItem, RepoWant};
use crate::reference::{Digest, RegistryName, Repository, Tag};
use crate::report;

use super::{PlanFile, Run};

/// What applying a reviewed plan came to.
#[derive(Debug)]
pub enum Applied {
    /// The destinations hold all of it already (applied by this plan, or
    /// by a run since): nothing to do.
    Already,
    /// The registries changed since the plan was made, or the file was
    /// edited: the reviewed plan against the plan now, as a unified diff.
    Drifted(String),
    /// Carried out: the plan (as reviewed) and what happened.
    Done {
        /// The plan, as fresh as reviewed.
        plan: Plan,
        /// Per-edge results and counters.
        report: Report,
    },
}

/// Apply `reviewed`, whose wants must be those `from_manifests` produce.
pub async fn apply(
    run: &Run<'_>,
    reviewed: &PlanFile,
    from_manifests: &[RepoWant],
) -> Result<Applied, Mismatch> {
    let wants = wants_to_apply(&reviewed.wants, from_manifests)?;
    let fresh = run.plan(wants).await;
    if already_applied(&reviewed.plan, &fresh.plan) {
        return Ok(Applied::Already);
    }
    if let Some(diff) = drift(&reviewed.plan, &fresh.plan) {
        return Ok(Applied::Drifted(diff));
    }
    let report = run.execute(&fresh.plan).await;
    Ok(Applied::Done {
        plan: fresh.plan,
        report,
    })
}

/// The reviewed plan had work, the fresh one has none, and what is not
/// work (lost, refused, blocked) is the same: someone applied it already.
fn already_applied(reviewed: &Plan, fresh: &Plan) -> bool {
    let problems = |p: &Plan| -> Vec<PlanItem> {
        p.items
            .iter()
            .filter(|i| !i.action.is_work())
            .cloned()
            .collect()
    };
    fresh.work().next().is_none()
        && reviewed.work().next().is_some()
        && problems(fresh) == problems(reviewed)
}

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
    use crate::plan::fixtures::{item, tag_1_0};
    use crate::plan::Action;
    use crate::reference::ImageName;
    use std::path::Path;
    use std::sync::Arc;

    #[test]
    fn an_unchanged_plan_has_no_drift_and_a_changed_one_shows_a_diff() {
        let reviewed = Plan {
            items: vec![item(tag_1_0())],
            already_present: 0,
            ..Plan::default()
        };
        assert_eq!(drift(&reviewed, &reviewed.clone()), None);
        let fresh = Plan {
            items: vec![item(Action::RefusedTagMove {
                tag: Tag::parse("1.0").unwrap(),
                current: Digest::sha256_of(b"y"),
                source: None,
            })],
            already_present: 0,
            ..Plan::default()
        };
        let diff = drift(&reviewed, &fresh).unwrap();
        assert!(diff.contains("-tag "), "{diff}");
        assert!(diff.contains("+refused "), "{diff}");
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
