//! A change to the manifests, held against what they said at a base
//! revision: what a reviewer of a promotion PR must not miss (a removed
//! image or tag, a tag that would move), and which digests changed at all
//! (`run --since`). Pure: wants in, findings out.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{Diagnostic, Location};
use crate::plan::RepoWant;
use crate::reference::{Digest, Repository, Tag};

/// What the head does to an edge the base promoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A tag now wants another digest than at the base: it would move.
    TagMoved {
        /// The destination repository.
        repo: Repository,
        /// The tag.
        tag: Tag,
        /// Its digest at the base, and the line that promoted it there.
        base: (Digest, Location),
        /// Its digest now, and the line that promotes it.
        head: (Digest, Location),
    },
    /// A tag the base promoted is no longer promoted at all.
    TagRemoved {
        /// The destination repository.
        repo: Repository,
        /// The tag.
        tag: Tag,
        /// Its digest, and the base line that promoted it.
        base: (Digest, Location),
        /// Where the head still names its digest or repository, if it does.
        near: Option<Location>,
    },
    /// A digest the base promoted into a repository no longer is.
    DigestRemoved {
        /// The destination repository.
        repo: Repository,
        /// The digest, and the base line that promoted it.
        base: (Digest, Location),
        /// Where the head still names the repository, if it does.
        near: Option<Location>,
    },
}

impl Finding {
    /// Whether this would move a tag (exit 3, as in `run`).
    pub fn is_move(&self) -> bool {
        matches!(self, Finding::TagMoved { .. })
    }

    /// As a diagnostic: an error, or with `allow_removals` a warning for a
    /// removal. Messages point into the head and name the base line.
    pub fn diagnostic(&self, allow_removals: bool) -> Diagnostic {
        match self {
            Finding::TagMoved { repo, tag, base, head } => Diagnostic::error(
                head.1.clone(),
                format!(
                    "tag {tag} of {repo} would move from {} (base: {}) to {}: a promoted tag never moves",
                    base.0, base.1, head.0
                ),
            )
            .with_help(format!(
                "keep {tag} on {}, and promote {} under a new tag",
                base.0, head.0
            )),
            Finding::TagRemoved {
                repo,
                tag,
                base,
                near,
            } => removal(
                near.clone().unwrap_or_else(|| file_of(&base.1)),
                format!(
                    "tag {tag} of {repo} (on {}, base: {}) is no longer promoted",
                    base.0, base.1
                ),
                allow_removals,
            ),
            Finding::DigestRemoved { repo, base, near } => removal(
                near.clone().unwrap_or_else(|| file_of(&base.1)),
                format!(
                    "{} is no longer promoted to {repo} (base: {})",
                    base.0, base.1
                ),
                allow_removals,
            ),
        }
    }
}

fn removal(at: Location, message: String, allow: bool) -> Diagnostic {
    if allow {
        Diagnostic::warning(at, format!("{message} (allowed by --allow-removals)"))
    } else {
        Diagnostic::error(at, message).with_help(
            "what was promoted stays promoted; if removing it from the manifests is intended, \
             say so with --allow-removals",
        )
    }
}

fn file_of(location: &Location) -> Location {
    Location::file_only(location.file.clone())
}

/// Every edge of `base` that `head` moves or drops, in a stable order.
pub fn compare(base: &[RepoWant], head: &[RepoWant]) -> Vec<Finding> {
    let head_by_repo: BTreeMap<&Repository, &RepoWant> =
        head.iter().map(|w| (&w.repo, w)).collect();
    let mut findings = Vec::new();
    for old in base {
        let new = head_by_repo.get(&old.repo).copied();
        // Where the head now keeps each tag of this repository.
        let head_tags: BTreeMap<&Tag, (&Digest, &Location)> = new
            .into_iter()
            .flat_map(|w| w.digests.iter())
            .flat_map(|(digest, d)| d.tags.iter().map(move |(tag, at)| (tag, (digest, at))))
            .collect();
        let repo_near = new
            .and_then(|w| w.digests.values().next())
            .map(|d| d.location.clone());
        for (digest, d) in &old.digests {
            let still = new.and_then(|w| w.digests.get(digest));
            for (tag, at) in &d.tags {
                match head_tags.get(tag) {
                    Some((now, _)) if *now == digest => {}
                    Some((now, head_at)) => findings.push(Finding::TagMoved {
                        repo: old.repo.clone(),
                        tag: tag.clone(),
                        base: (digest.clone(), at.clone()),
                        head: ((*now).clone(), (*head_at).clone()),
                    }),
                    None => findings.push(Finding::TagRemoved {
                        repo: old.repo.clone(),
                        tag: tag.clone(),
                        base: (digest.clone(), at.clone()),
                        near: still
                            .map(|d| d.location.clone())
                            .or_else(|| repo_near.clone()),
                    }),
                }
            }
            if still.is_none() && d.tags.is_empty() {
                findings.push(Finding::DigestRemoved {
                    repo: old.repo.clone(),
                    base: (digest.clone(), d.location.clone()),
                    near: repo_near.clone(),
                });
            }
        }
    }
    findings
}

/// The (destination repository, digest) entries of `head` that differ from
/// `base`: new, or with other tags or sources. What `run --since` plans.
pub fn changed(base: &[RepoWant], head: &[RepoWant]) -> BTreeSet<(Repository, Digest)> {
    let base_by_repo: BTreeMap<&Repository, &RepoWant> =
        base.iter().map(|w| (&w.repo, w)).collect();
    let mut out = BTreeSet::new();
    for want in head {
        let old = base_by_repo.get(&want.repo);
        for (digest, d) in &want.digests {
            let same = old
                .and_then(|o| o.digests.get(digest))
                .is_some_and(|o| o.sources == d.sources && o.tags.keys().eq(d.tags.keys()));
            if !same {
                out.insert((want.repo.clone(), digest.clone()));
            }
        }
    }
    out
}

/// `head` limited to the `changed` entries (repositories with none left out).
pub fn only_changed(
    head: Vec<RepoWant>,
    changed: &BTreeSet<(Repository, Digest)>,
) -> Vec<RepoWant> {
    head.into_iter()
        .filter_map(|mut want| {
            want.digests
                .retain(|digest, _| changed.contains(&(want.repo.clone(), digest.clone())));
            (!want.digests.is_empty()).then_some(want)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::load_plain_text;
    use crate::plan::wants;
    use std::path::Path;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn wants_of(images: &str) -> Vec<RepoWant> {
        let text = format!(
            "registries:\n- name: src.example/stage\n  src: true\n- name: dst.example/prod\nimages:\n{images}"
        );
        let loaded = load_plain_text(Path::new("m.yaml"), &text);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        wants(&loaded.manifests)
    }

    #[test]
    fn additions_are_fine_and_change_only_what_they_add() {
        let base = wants_of(&format!("- name: a\n  dmap:\n    \"{D1}\": [\"1.0\"]\n"));
        let head = wants_of(&format!(
            "- name: a\n  dmap:\n    \"{D1}\": [\"1.0\"]\n    \"{D2}\": [\"2.0\"]\n- name: b\n  dmap:\n    \"{D1}\": []\n"
        ));
        assert!(compare(&base, &head).is_empty());
        let changed = changed(&base, &head);
        let digests: Vec<String> = changed
            .iter()
            .map(|(r, d)| format!("{}@{}", r.path(), &d.hex()[..1]))
            .collect();
        assert_eq!(digests, vec!["prod/a@2", "prod/b@1"]);
        let limited = only_changed(head, &changed);
        assert_eq!(limited.len(), 2);
        assert_eq!(limited[0].digests.len(), 1);
    }

    #[test]
    fn a_moved_tag_points_at_the_head_line_and_names_the_base_line() {
        let base = wants_of(&format!("- name: a\n  dmap:\n    \"{D1}\": [\"1.0\"]\n"));
        let head = wants_of(&format!(
            "- name: a\n  dmap:\n    \"{D1}\": []\n    \"{D2}\": [\"1.0\"]\n"
        ));
        let findings = compare(&base, &head);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].is_move());
        let shown = findings[0].diagnostic(false).to_string();
        assert!(shown.starts_with("m.yaml:9:"), "{shown}");
        assert!(shown.contains("base: m.yaml:8:"), "{shown}");
        assert!(shown.contains("would move"), "{shown}");
    }

    #[test]
    fn removals_are_errors_unless_allowed() {
        let base = wants_of(&format!(
            "- name: a\n  dmap:\n    \"{D1}\": [\"1.0\", \"latest\"]\n- name: b\n  dmap:\n    \"{D2}\": []\n"
        ));
        let head = wants_of(&format!("- name: a\n  dmap:\n    \"{D1}\": [\"1.0\"]\n"));
        let findings = compare(&base, &head);
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(findings.iter().all(|f| !f.is_move()));
        assert!(findings.iter().all(|f| f.diagnostic(false).is_error()));
        assert!(findings.iter().all(|f| !f.diagnostic(true).is_error()));
        let tag = findings[0].diagnostic(false).to_string();
        assert!(tag.contains("tag latest of dst.example/prod/a"), "{tag}");
        assert!(tag.contains("--allow-removals"), "{tag}");
    }
}
