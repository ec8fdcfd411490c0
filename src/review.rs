//! A change to the manifests, held against what they said at a base
//! revision: what a reviewer of a promotion PR must not miss (a removed
//! image or tag, a tag that would move), and which digests changed at all
//! (`run --since`). Pure: manifests in, findings out.
//!
//! Both revisions are reduced to interned edges (destination repository,
//! tag) -> digest and (destination repository, digest) -> entry, numbers
//! instead of strings, so that a registry.k8s.io-sized tree (some 700,000
//! edges per side) compares in tens of milliseconds and megabytes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use crate::diag::{Diagnostic, Location};
use crate::manifest::Manifest;

/// What the head does to an edge the base promoted. Names are as the
/// manifests write them (`registry/image`, the tag, the digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A tag now wants another digest than at the base: it would move.
    TagMoved {
        /// The destination repositories (one entry promotes to several).
        repos: Vec<String>,
        /// The tag.
        tag: String,
        /// Its digest at the base, and the line that promoted it there.
        base: (String, Location),
        /// Its digest now, and the line that promotes it.
        head: (String, Location),
    },
    /// A tag the base promoted is no longer promoted at all.
    TagRemoved {
        /// The destination repositories.
        repos: Vec<String>,
        /// The tag.
        tag: String,
        /// Its digest, and the base line that promoted it.
        base: (String, Location),
        /// Where the head still names its digest or repository, if it does.
        near: Option<Location>,
    },
    /// A digest the base promoted (without tags) into a repository no
    /// longer is.
    DigestRemoved {
        /// The destination repositories.
        repos: Vec<String>,
        /// The digest, and the base line that promoted it.
        base: (String, Location),
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
            Finding::TagMoved {
                repos,
                tag,
                base,
                head,
            } => Diagnostic::error(
                head.1.clone(),
                format!(
                    "tag {tag} of {} would move from {} (base: {}) to {}: a promoted tag never moves",
                    shown(repos), base.0, base.1, head.0
                ),
            )
            .with_help(format!(
                "keep {tag} on {}, and promote {} under a new tag",
                base.0, head.0
            )),
            Finding::TagRemoved {
                repos,
                tag,
                base,
                near,
            } => removal(
                near.clone().unwrap_or_else(|| file_of(&base.1)),
                format!(
                    "tag {tag} of {} (on {}, base: {}) is no longer promoted",
                    shown(repos),
                    base.0,
                    base.1
                ),
                allow_removals,
            ),
            Finding::DigestRemoved { repos, base, near } => removal(
                near.clone().unwrap_or_else(|| file_of(&base.1)),
                format!(
                    "{} is no longer promoted to {} (base: {})",
                    base.0,
                    shown(repos),
                    base.1
                ),
                allow_removals,
            ),
        }
    }
}

/// Destination repositories as one finding names them: all of a few, or
/// the first ones and how many more (a manifest with 22 regional mirrors
/// is one change, said once).
fn shown(repos: &[String]) -> String {
    const NAMED: usize = 3;
    match repos.len() {
        0..=NAMED => repos.join(", "),
        n => format!(
            "{} and {} more destinations",
            repos[..NAMED].join(", "),
            n - NAMED
        ),
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

/// Strings shared by both revisions, as numbers.
#[derive(Default)]
struct Names<'a> {
    ids: HashMap<&'a str, u32>,
    names: Vec<&'a str>,
}

impl<'a> Names<'a> {
    fn id(&mut self, name: &'a str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name);
        self.ids.insert(name, id);
        id
    }
    fn name(&self, id: u32) -> &'a str {
        self.names[id as usize]
    }
}

/// One digest entry in one destination repository.
struct Entry<'a> {
    location: &'a Location,
    /// Its tags (interned), sorted; shared by the entry's destinations.
    tags: Rc<[u32]>,
    /// Its source repository (interned).
    source: u32,
}

/// One revision's edges.
#[derive(Default)]
struct Edges<'a> {
    /// (repository, tag) -> (digest, where the tag is written).
    tags: HashMap<(u32, u32), (u32, &'a Location)>,
    /// (repository, digest) -> its entry.
    digests: HashMap<(u32, u32), Entry<'a>>,
    /// Repository -> a line of the revision that promotes into it.
    repos: HashMap<u32, &'a Location>,
    /// Repository -> the tag patterns its images let move (`follow:`).
    follow: HashMap<u32, Vec<&'a crate::manifest::model::TagPattern>>,
}

impl Edges<'_> {
    /// Whether the revision lets `tag` of `repo` move.
    fn follows(&self, repo: u32, tag: &str) -> bool {
        self.follow
            .get(&repo)
            .is_some_and(|patterns| patterns.iter().any(|p| p.matches(tag)))
    }
}

/// The edges of `manifests`; repository names are built once per
/// (destination, image), not once per edge.
fn edges<'a>(
    manifests: &'a [Manifest],
    names: &mut Names<'a>,
    built: &'a Built,
    read: impl Fn(usize, usize) -> bool,
) -> Edges<'a> {
    let mut out = Edges::default();
    for (m, manifest) in manifests.iter().enumerate() {
        for (i, image) in manifest.images.iter().enumerate() {
            if !read(m, i) {
                continue;
            }
            let source = names.id(&built.sources[m][i]);
            // Each entry's digest and sorted tags, once for all destinations.
            let interned: Vec<(u32, Vec<u32>, Rc<[u32]>)> = image
                .digests
                .iter()
                .map(|entry| {
                    let in_order: Vec<u32> = entry
                        .tags
                        .iter()
                        .map(|t| names.id(t.tag.as_str()))
                        .collect();
                    let mut sorted = in_order.clone();
                    sorted.sort_unstable();
                    sorted.dedup();
                    (names.id(entry.digest.as_str()), in_order, sorted.into())
                })
                .collect();
            for destination in &built.destinations[m][i] {
                let repo = names.id(destination);
                if !image.follow.is_empty() {
                    out.follow.entry(repo).or_default().extend(&image.follow);
                }
                for (entry, (digest, in_order, tags)) in image.digests.iter().zip(&interned) {
                    out.repos.entry(repo).or_insert(&entry.location);
                    for (t, &tag) in entry.tags.iter().zip(in_order) {
                        out.tags
                            .entry((repo, tag))
                            .or_insert((*digest, &t.location));
                    }
                    match out.digests.entry((repo, *digest)) {
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(Entry {
                                location: &entry.location,
                                tags: tags.clone(),
                                source,
                            });
                        }
                        // Another entry promotes it here too: the tags add up.
                        std::collections::hash_map::Entry::Occupied(mut o) => {
                            let mut all: Vec<u32> =
                                o.get().tags.iter().chain(tags.iter()).copied().collect();
                            all.sort_unstable();
                            all.dedup();
                            o.get_mut().tags = all.into();
                        }
                    }
                }
            }
        }
    }
    out
}

/// The repository names of each (manifest, image[, destination]), as the
/// messages write them: built once, borrowed by the edges.
struct Built {
    sources: Vec<Vec<String>>,
    destinations: Vec<Vec<Vec<String>>>,
}

fn built(manifests: &[Manifest]) -> Built {
    Built {
        sources: manifests
            .iter()
            .map(|m| {
                m.images
                    .iter()
                    .map(|i| m.source.name.repository(&i.name).to_string())
                    .collect()
            })
            .collect(),
        destinations: manifests
            .iter()
            .map(|m| {
                m.images
                    .iter()
                    .map(|i| {
                        m.destinations
                            .iter()
                            .map(|d| d.name.repository(i.destination_name()).to_string())
                            .collect()
                    })
                    .collect()
            })
            .collect(),
    }
}

/// Every edge of `base` that `head` moves or drops, in a stable order.
///
/// Only what changed is compared: a base image the head has unchanged
/// (same source, destinations, digests and tags, wherever its lines moved)
/// keeps every edge it had, since loading already refused two digests for
/// one destination tag; so the base's edges are those of its changed
/// images, and the head's those of its images writing into the
/// repositories they touch.
pub fn compare(base: &[Manifest], head: &[Manifest]) -> Vec<Finding> {
    let (base_built, head_built) = (built(base), built(head));
    let head_images: HashSet<String> = image_keys(head).into_iter().flatten().collect();
    let changed: Vec<Vec<bool>> = image_keys(base)
        .into_iter()
        .map(|keys| {
            keys.into_iter()
                .map(|k| !head_images.contains(&k))
                .collect()
        })
        .collect();
    let touched: HashSet<&str> = changed
        .iter()
        .enumerate()
        .flat_map(|(m, images)| {
            let built = &base_built;
            images
                .iter()
                .enumerate()
                .filter(|(_, &c)| c)
                .flat_map(move |(i, _)| built.destinations[m][i].iter().map(String::as_str))
        })
        .collect();
    let mut names = Names::default();
    let old = edges(base, &mut names, &base_built, |m, i| changed[m][i]);
    let new = edges(head, &mut names, &head_built, |m, i| {
        head_built.destinations[m][i]
            .iter()
            .any(|repo| touched.contains(repo.as_str()))
    });
    let mut findings = Vec::new();
    for (&(repo, tag), &(digest, at)) in &old.tags {
        // A tag the head lets move (`follow:`) may move or go.
        if new.follows(repo, names.name(tag)) {
            continue;
        }
        match new.tags.get(&(repo, tag)) {
            Some(&(now, _)) if now == digest => {}
            Some(&(now, head_at)) => findings.push(Finding::TagMoved {
                repos: vec![names.name(repo).to_string()],
                tag: names.name(tag).to_string(),
                base: (names.name(digest).to_string(), at.clone()),
                head: (names.name(now).to_string(), head_at.clone()),
            }),
            None => findings.push(Finding::TagRemoved {
                repos: vec![names.name(repo).to_string()],
                tag: names.name(tag).to_string(),
                base: (names.name(digest).to_string(), at.clone()),
                near: new
                    .digests
                    .get(&(repo, digest))
                    .map(|e| e.location.clone())
                    .or_else(|| new.repos.get(&repo).map(|l| (*l).clone())),
            }),
        }
    }
    for (&(repo, digest), entry) in &old.digests {
        if entry.tags.is_empty() && !new.digests.contains_key(&(repo, digest)) {
            findings.push(Finding::DigestRemoved {
                repos: vec![names.name(repo).to_string()],
                base: (names.name(digest).to_string(), entry.location.clone()),
                near: new.repos.get(&repo).map(|l| (*l).clone()),
            });
        }
    }
    findings.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    by_entry(findings)
}

/// Each image of each manifest as what it promotes, without where it is
/// written: its source, destinations, names, `follow:` patterns, and
/// digest entries with their tags.
fn image_keys(manifests: &[Manifest]) -> Vec<Vec<String>> {
    use std::fmt::Write as _;
    manifests
        .iter()
        .map(|m| {
            let mut registries = m.source.name.to_string();
            for d in &m.destinations {
                let _ = write!(registries, " {}", d.name);
            }
            m.images
                .iter()
                .map(|image| {
                    let mut key = format!("{registries}|{}|{:?}|", image.name, image.target);
                    for p in &image.follow {
                        let _ = write!(key, "{} ", p.as_str());
                    }
                    for entry in &image.digests {
                        let _ = write!(key, "|{}", entry.digest);
                        for t in &entry.tags {
                            let _ = write!(key, " {}", t.tag);
                        }
                    }
                    key
                })
                .collect()
        })
        .collect()
}

fn sort_key(f: &Finding) -> (&str, &str, &str) {
    match f {
        Finding::TagMoved { repos, tag, .. } | Finding::TagRemoved { repos, tag, .. } => {
            (repos[0].as_str(), tag.as_str(), "")
        }
        Finding::DigestRemoved { repos, base, .. } => (repos[0].as_str(), "", base.0.as_str()),
    }
}

/// One finding per changed manifest entry: the same change to every
/// destination of a manifest is one finding naming them all.
fn by_entry(findings: Vec<Finding>) -> Vec<Finding> {
    let mut merged: Vec<Finding> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for finding in findings {
        let key = match &finding {
            Finding::TagMoved {
                tag, base, head, ..
            } => format!("m {tag} {base:?} {head:?}"),
            Finding::TagRemoved {
                tag, base, near, ..
            } => format!("t {tag} {base:?} {near:?}"),
            Finding::DigestRemoved { base, near, .. } => format!("d {base:?} {near:?}"),
        };
        let repos = |f: Finding| match f {
            Finding::TagMoved { repos, .. }
            | Finding::TagRemoved { repos, .. }
            | Finding::DigestRemoved { repos, .. } => repos,
        };
        match at.get(&key) {
            Some(&index) => {
                let more = repos(finding);
                match &mut merged[index] {
                    Finding::TagMoved { repos, .. }
                    | Finding::TagRemoved { repos, .. }
                    | Finding::DigestRemoved { repos, .. } => repos.extend(more),
                }
            }
            None => {
                at.insert(key, merged.len());
                merged.push(finding);
            }
        }
    }
    merged
}

/// The (destination repository, digest) entries of `head` that differ
/// from `base`, as `registry/image` and digest text: new, or with other
/// tags or another source. What `run --since` plans.
pub fn changed(base: &[Manifest], head: &[Manifest]) -> BTreeSet<(String, String)> {
    let (base_built, head_built) = (built(base), built(head));
    let mut names = Names::default();
    let old = edges(base, &mut names, &base_built, |_, _| true);
    let new = edges(head, &mut names, &head_built, |_, _| true);
    let mut out = BTreeSet::new();
    for (key, entry) in &new.digests {
        let same = old
            .digests
            .get(key)
            .is_some_and(|o| o.tags == entry.tags && o.source == entry.source);
        if !same {
            out.insert((names.name(key.0).to_string(), names.name(key.1).to_string()));
        }
    }
    out
}

/// `head` limited to the `changed` entries (repositories with none left out).
pub fn only_changed(
    head: Vec<crate::plan::RepoWant>,
    changed: &BTreeSet<(String, String)>,
) -> Vec<crate::plan::RepoWant> {
    head.into_iter()
        .filter_map(|mut want| {
            let repo = want.repo.to_string();
            want.digests
                .retain(|digest, _| changed.contains(&(repo.clone(), digest.to_string())));
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

    fn manifests_of(images: &str) -> Vec<Manifest> {
        let text = format!(
            "registries:\n- name: src.example/stage\n  src: true\n- name: dst.example/prod\nimages:\n{images}"
        );
        let loaded = load_plain_text(Path::new("m.yaml"), &text);
        assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
        loaded.manifests
    }

    /// Two manifests of one tree: the images of each, one file apiece.
    fn two_files(first: &str, second: &str) -> Vec<Manifest> {
        let mut both = manifests_of(first);
        both.extend(manifests_of(second));
        both
    }

    #[test]
    fn only_changed_images_are_compared_yet_an_unchanged_one_still_holds_their_tags() {
        let entry = format!("- name: a\n  dmap:\n    \"{D1}\": [\"1.0\"]\n");
        let other = format!("- name: b\n  dmap:\n    \"{D2}\": [\"2.0\"]\n");
        // `a:1.0` was promoted by both files; the head drops one of them:
        // the other still promotes it, so nothing is removed.
        let base = two_files(&entry, &format!("{entry}{other}"));
        let head = two_files(&other, &format!("{entry}{other}"));
        assert!(
            compare(&base, &head).is_empty(),
            "{:?}",
            compare(&base, &head)
        );
        // Dropped from both: removed, though the second file changed only
        // by losing it.
        let gone = two_files(&other, &other);
        let findings = compare(&base, &gone);
        assert_eq!(findings.len(), 1, "{findings:?}");
        // Lines moving (an image added above) change nothing.
        let moved = manifests_of(&format!("{other}{entry}"));
        assert!(compare(&manifests_of(&format!("{entry}{other}")), &moved).is_empty());
    }

    #[test]
    fn a_followed_tag_may_move_and_others_still_may_not() {
        let base = manifests_of(&format!(
            "- name: a\n  dmap:\n    \"{D1}\": [\"latest\", \"1.0\"]\n"
        ));
        let head = manifests_of(&format!(
            "- name: a\n  follow: [\"latest\"]\n  dmap:\n    \"{D1}\": [\"1.0\"]\n    \"{D2}\": [\"latest\"]\n"
        ));
        assert!(
            compare(&base, &head).is_empty(),
            "{:?}",
            compare(&base, &head)
        );
        let moved_too = manifests_of(&format!(
            "- name: a\n  follow: [\"latest\"]\n  dmap:\n    \"{D2}\": [\"latest\", \"1.0\"]\n"
        ));
        let findings = compare(&base, &moved_too);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(findings[0].is_move(), "1.0 is not followed: {findings:?}");
    }

    #[test]
    fn additions_are_fine_and_change_only_what_they_add() {
        let base = manifests_of(&format!("- name: a\n  dmap:\n    \"{D1}\": [\"1.0\"]\n"));
        let head = manifests_of(&format!(
            "- name: a\n  dmap:\n    \"{D1}\": [\"1.0\"]\n    \"{D2}\": [\"2.0\"]\n- name: b\n  dmap:\n    \"{D1}\": []\n"
        ));
        assert!(compare(&base, &head).is_empty());
        let changed = changed(&base, &head);
        let digests: Vec<String> = changed
            .iter()
            .map(|(r, d)| format!("{r}@{}", &d[7..8]))
            .collect();
        assert_eq!(
            digests,
            vec!["dst.example/prod/a@2", "dst.example/prod/b@1"]
        );
        let limited = only_changed(wants(&head), &changed);
        assert_eq!(limited.len(), 2);
        assert_eq!(limited[0].digests.len(), 1);
    }

    #[test]
    fn one_change_to_an_entry_is_one_finding_naming_every_destination() {
        let with = |images: &str| {
            let text = format!(
                "registries:\n- name: src.example/stage\n  src: true\n- name: a.example/prod\n- name: b.example/prod\n- name: c.example/prod\n- name: d.example/prod\nimages:\n{images}"
            );
            let loaded = load_plain_text(Path::new("m.yaml"), &text);
            assert!(!loaded.has_errors(), "{:?}", loaded.diagnostics);
            loaded.manifests
        };
        let base = with(&format!("- name: a\n  dmap:\n    \"{D1}\": [\"1.0\"]\n"));
        let head = with(&format!("- name: a\n  dmap:\n    \"{D2}\": [\"1.0\"]\n"));
        let findings = compare(&base, &head);
        assert_eq!(findings.len(), 1, "{findings:?}");
        let shown = findings[0].diagnostic(false).to_string();
        assert!(
            shown.contains("tag 1.0 of a.example/prod/a, b.example/prod/a, c.example/prod/a and 1 more destinations would move"),
            "{shown}"
        );
    }

    #[test]
    fn a_moved_tag_points_at_the_head_line_and_names_the_base_line() {
        let base = manifests_of(&format!("- name: a\n  dmap:\n    \"{D1}\": [\"1.0\"]\n"));
        let head = manifests_of(&format!(
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
        let base = manifests_of(&format!(
            "- name: a\n  dmap:\n    \"{D1}\": [\"1.0\", \"latest\"]\n- name: b\n  dmap:\n    \"{D2}\": []\n"
        ));
        let head = manifests_of(&format!("- name: a\n  dmap:\n    \"{D1}\": [\"1.0\"]\n"));
        let findings = compare(&base, &head);
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert!(findings.iter().all(|f| !f.is_move()));
        assert!(findings.iter().all(|f| f.diagnostic(false).is_error()));
        assert!(findings.iter().all(|f| !f.diagnostic(true).is_error()));
        let tag = findings[0].diagnostic(false).to_string();
        assert!(tag.contains("tag latest of dst.example/prod/a"), "{tag}");
        assert!(tag.contains("--allow-removals"), "{tag}");
    }

    #[test]
    fn each_tag_keeps_its_own_line_whatever_the_order_of_the_list() {
        let base = manifests_of(&format!(
            "- name: a\n  dmap:\n    \"{D1}\": [\"latest\", \"1.0\"]\n"
        ));
        let head = manifests_of(&format!(
            "- name: a\n  dmap:\n    \"{D1}\": [\"latest\"]\n    \"{D2}\": [\"zz\", \"1.0\"]\n"
        ));
        let findings = compare(&base, &head);
        assert_eq!(findings.len(), 1, "{findings:?}");
        let shown = findings[0].diagnostic(false).to_string();
        // `1.0` is the second tag of each list: columns 91 (base) and 87.
        assert!(shown.starts_with("m.yaml:9:87:"), "{shown}");
        assert!(shown.contains("base: m.yaml:8:91"), "{shown}");
    }
}
