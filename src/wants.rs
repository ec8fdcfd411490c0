//! Which wants a run works on, decided once for every command that reads
//! manifests (`run`, `verify`, `watch`): the manifests as loaded, held
//! against their git base when asked (`--base`), limited to the digest
//! entries changed since a revision (`--since`) and to one shard
//! (`--shard`). Nothing here touches a registry.

use crate::diag::Diagnostic;
use crate::git::GitError;
use crate::manifest::{self, Loaded, Manifest, ManifestInput};
use crate::plan::{self, RepoWant, Shard};

/// What to select.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The manifests.
    pub input: ManifestInput<'a>,
    /// `--base REV`: hold the manifests against what they were at REV.
    pub base: Option<BaseCheck<'a>>,
    /// `--since REV`: only the digest entries added or changed since REV.
    pub since: Option<&'a str>,
    /// `--shard INDEX/COUNT`: only this part of the work.
    pub shard: Option<Shard>,
    /// What a named manifest file may be (a `watch` takes regular files only).
    pub named: manifest::Named,
}

/// `--base REV [--allow-removals]`.
#[derive(Debug, Clone, Copy)]
pub struct BaseCheck<'a> {
    /// The git revision.
    pub rev: &'a str,
    /// Removed images and tags are warnings, not errors.
    pub allow_removals: bool,
}

/// What selecting found: what to tell the user, and the wants (or, for a
/// check that plans nothing, the valid manifests) or why there are none.
#[derive(Debug)]
pub struct Selection<T = Selected> {
    /// The manifests' diagnostics, then the base's findings, in print order.
    pub diagnostics: Vec<Diagnostic>,
    /// Remarks without a line of their own (the base has problems of its own).
    pub warnings: Vec<String>,
    /// The wants, or why nothing may be planned.
    pub outcome: Result<T, Refusal>,
}

/// The wants a run works on.
#[derive(Debug)]
pub struct Selected {
    /// Every manifest loaded (not only the selected part).
    pub manifests: Vec<Manifest>,
    /// The wants left after `--since` and `--shard`.
    pub wants: Vec<RepoWant>,
    /// With `--since`: how many digest entries changed.
    pub since: Option<Since>,
}

/// How much `--since` kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The revision compared with.
    pub rev: String,
    /// Digest entries added or changed since it; 0 means nothing to do.
    pub changed: usize,
}

/// Why nothing may be planned.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The manifests have errors (their diagnostics say which).
    #[error("{errors} problem(s) in the manifests; nothing was planned")]
    Invalid {
        /// How many errors.
        errors: usize,
    },
    /// The base revision could not be read.
    #[error("{flag} {rev}: {source}")]
    Unreadable {
        /// `--base` or `--since`.
        flag: &'static str,
        /// The revision as given.
        rev: String,
        /// Why.
        source: GitError,
    },
    /// The change against the base removes or moves what was promoted.
    #[error("{errors} change(s) against {rev} would undo a promotion; nothing was planned")]
    Undoes {
        /// The base revision.
        rev: String,
        /// How many findings are errors.
        errors: usize,
        /// Whether one of them is a tag move (refused, not merely invalid).
        moves: bool,
    },
}

/// Load the manifests and select the wants `request` asks for.
pub fn select(request: &Request<'_>) -> Selection {
    let validated = validate(request);
    let mut warnings = validated.warnings;
    let outcome = validated
        .outcome
        .and_then(|manifests| choose(request, manifests, &mut warnings));
    Selection {
        diagnostics: validated.diagnostics,
        warnings,
        outcome,
    }
}

/// Load the manifests and hold them against `--base`, planning nothing:
/// a `--parse-only` check, which needs no per-destination wants (on the
/// registry.k8s.io tree those are 724,636 (destination, digest) pairs).
pub fn validate(request: &Request<'_>) -> Selection<Vec<Manifest>> {
    // The base revision is read and parsed while the working copy is: the
    // two are independent, and on a 2-core machine that halves the wait.
    std::thread::scope(|scope| {
        let at_base = request
            .base
            .map(|base| scope.spawn(move || load_at(request.input, base.rev)));
        let loaded = manifest::load_named(request.input, request.named);
        let mut selection = Selection {
            diagnostics: loaded.diagnostics,
            warnings: Vec::new(),
            outcome: Err(Refusal::Invalid { errors: 0 }),
        };
        let errors = selection
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .count();
        if errors > 0 {
            selection.outcome = Err(Refusal::Invalid { errors });
            return selection;
        }
        selection.outcome = match (request.base, at_base) {
            (Some(base), Some(at_base)) => {
                let at_base = at_base.join().expect("reading the base revision panicked");
                hold_against_base(
                    at_base,
                    &loaded.manifests,
                    base,
                    &mut selection.diagnostics,
                    &mut selection.warnings,
                )
                .map(|()| loaded.manifests)
            }
            _ => Ok(loaded.manifests),
        };
        selection
    })
}

fn choose(
    request: &Request<'_>,
    manifests: Vec<Manifest>,
    warnings: &mut Vec<String>,
) -> Result<Selected, Refusal> {
    let mut wants = plan::wants(&manifests);
    let mut since = None;
    if let Some(rev) = request.since {
        let (base, warning) =
            load_at(request.input, rev).map_err(|source| Refusal::Unreadable {
                flag: "--since",
                rev: rev.to_string(),
                source,
            })?;
        warnings.extend(warning);
        let changed = crate::review::changed(&base.manifests, &manifests);
        wants = crate::review::only_changed(wants, &changed);
        since = Some(Since {
            rev: rev.to_string(),
            changed: changed.len(),
        });
    }
    if let Some(shard) = request.shard {
        wants = plan::shard(wants, shard);
    }
    Ok(Selected {
        manifests,
        wants,
        since,
    })
}

fn hold_against_base(
    at_base: Result<(Loaded, Option<String>), GitError>,
    manifests: &[Manifest],
    base: BaseCheck<'_>,
    diagnostics_out: &mut Vec<Diagnostic>,
    warnings: &mut Vec<String>,
) -> Result<(), Refusal> {
    let (at_base, warning) = at_base.map_err(|source| Refusal::Unreadable {
        flag: "--base",
        rev: base.rev.to_string(),
        source,
    })?;
    warnings.extend(warning);
    let findings = crate::review::compare(&at_base.manifests, manifests);
    let mut diagnostics: Vec<_> = findings
        .iter()
        .map(|f| f.diagnostic(base.allow_removals))
        .collect();
    crate::diag::sort(&mut diagnostics);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    diagnostics_out.extend(diagnostics);
    if errors == 0 {
        return Ok(());
    }
    Err(Refusal::Undoes {
        rev: base.rev.to_string(),
        errors,
        moves: findings.iter().any(|f| f.is_move()),
    })
}

/// The manifests of `input` as they were at git revision `rev`, and a
/// warning when they had problems there: what loaded is compared, so a
/// base that was broken does not stop the change that fixes it.
pub fn load_at(input: ManifestInput<'_>, rev: &str) -> Result<(Loaded, Option<String>), GitError> {
    let loaded = match input {
        ManifestInput::Plain(file) => {
            let text = crate::git::file_at(file, rev)?;
            manifest::load_plain_text(file, &text)
        }
        ManifestInput::ThinTree(dir) => {
            let copy = crate::git::tree_at(dir, rev)?;
            manifest::load(ManifestInput::ThinTree(copy.path()))
        }
    };
    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
    let warning = (errors > 0).then(|| {
        format!("the manifests at {rev} have {errors} problem(s); compared with what loaded there")
    });
    Ok((loaded, warning))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn write(dir: &Path, images: &str) -> std::path::PathBuf {
        let path = dir.join("m.yaml");
        std::fs::write(
            &path,
            format!("registries:\n- name: src.example/stage\n  src: true\n- name: a.example/prod\n- name: b.example/prod\nimages:\n{images}"),
        )
        .unwrap();
        path
    }

    fn request(input: ManifestInput<'_>) -> Request<'_> {
        Request {
            input,
            base: None,
            since: None,
            shard: None,
            named: Default::default(),
        }
    }

    #[test]
    fn invalid_manifests_select_nothing_and_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "- name: a\n  dmaps: {}\n");
        let selection = select(&request(ManifestInput::Plain(&path)));
        assert!(matches!(
            selection.outcome,
            Err(Refusal::Invalid { errors: 1 })
        ));
        assert!(selection.diagnostics[0].to_string().contains("dmaps"));
    }

    #[test]
    fn every_destination_is_wanted_and_a_shard_keeps_its_part() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &format!("- name: a\n  dmap:\n    \"{D1}\": [\"1.0\"]\n"),
        );
        let all = select(&request(ManifestInput::Plain(&path)))
            .outcome
            .unwrap();
        assert_eq!(all.wants.len(), 2);
        let parts: usize = (0..2)
            .map(|index| {
                let shard = Some(Shard { index, count: 2 });
                let one = Request {
                    shard,
                    ..request(ManifestInput::Plain(&path))
                };
                select(&one).outcome.unwrap().wants.len()
            })
            .sum();
        assert_eq!(parts, 2, "two shards together want everything once");
    }

    #[test]
    fn a_revision_outside_git_is_refused_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            &format!("- name: a\n  dmap:\n    \"{D1}\": []\n"),
        );
        let since = Request {
            since: Some("HEAD"),
            ..request(ManifestInput::Plain(&path))
        };
        let refusal = select(&since).outcome.unwrap_err();
        assert!(
            refusal.to_string().starts_with("--since HEAD: "),
            "{refusal}"
        );
        assert!(matches!(
            refusal,
            Refusal::Unreadable {
                flag: "--since",
                ..
            }
        ));
    }
}
