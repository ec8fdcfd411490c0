//! `promoter verify`: the auditor's job. For every (destination, digest)
//! the manifests promote, check that the destination really holds it
//! complete: the manifest with exactly its bytes, every child manifest of
//! an index, every config and layer blob (by HEAD, or with
//! [`ReadBack::Deep`] read back whole), and every wanted tag at its digest.
//! Reads only; never writes. What it finds is what `verify --repair` plans
//! to copy again ([`Verification::damage`]).

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};
use serde::{Serialize, Serializer};

use crate::oci::{self, Descriptor};
use crate::plan::{Damage, Damaged, RepoWant};
use crate::reference::{Digest, ManifestRef, Repository};
use crate::registry::{read_blob_back, ReadBack, Registries, Registry, RegistryError};

/// What is wrong, one word in output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The promoted manifest itself is absent.
    MissingManifest,
    /// A child manifest of an index is absent.
    MissingChild,
    /// A config or layer blob is absent.
    MissingBlob,
    /// A blob answers HEAD with another size than its descriptor's.
    WrongSize,
    /// A manifest or blob serves bytes that are not its digest's.
    BadContent,
    /// A wanted tag is absent.
    MissingTag,
    /// A wanted tag points at another digest.
    MovedTag,
}

impl ProblemKind {
    /// The word output shows (`missing_blob`).
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::MissingManifest => "missing_manifest",
            ProblemKind::MissingChild => "missing_child",
            ProblemKind::MissingBlob => "missing_blob",
            ProblemKind::WrongSize => "wrong_size",
            ProblemKind::BadContent => "bad_content",
            ProblemKind::MissingTag => "missing_tag",
            ProblemKind::MovedTag => "moved_tag",
        }
    }

    /// Whether the problem is the content's (its graph lacks or holds
    /// wrong a manifest or blob), rather than a tag's: a promotion plans
    /// tags from what it reads itself, content only from this.
    pub fn is_content(self) -> bool {
        !matches!(self, ProblemKind::MissingTag | ProblemKind::MovedTag)
    }
}

/// One thing a destination lacks or holds wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// The destination repository.
    pub repository: Repository,
    /// The promoted digest it is about.
    pub digest: Digest,
    /// The tag, for tag problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// What was found, for people.
    pub detail: String,
}

/// A (destination, digest) that could not be checked: a read of the
/// destination failed.
#[derive(Debug, thiserror::Error)]
#[error("{repository}@{digest}: {source}")]
pub struct Unchecked {
    /// The destination repository.
    pub repository: Repository,
    /// The promoted digest.
    pub digest: Digest,
    /// The read that failed.
    #[source]
    pub source: RegistryError,
}

/// In output, what could not be checked is its message.
impl Serialize for Unchecked {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a verification found.
#[derive(Debug, Default, Serialize)]
pub struct Verification {
    /// (destination, digest) pairs checked to the end.
    pub checked: usize,
    /// Everything wrong, sorted.
    pub problems: Vec<Problem>,
    /// What could not be checked (a registry that could not be read), why.
    pub unchecked: Vec<Unchecked>,
}

/// Check every (destination, digest) of `wants`, `concurrency` at a time,
/// blobs as deep as `depth` says.
pub async fn verify(
    wants: &[RepoWant],
    registries: &Registries,
    concurrency: usize,
    depth: ReadBack,
) -> Verification {
    let work: Vec<(&RepoWant, &Digest)> = wants
        .iter()
        .flat_map(|w| w.digests.keys().map(move |d| (w, d)))
        .collect();
    let results: Vec<Result<Vec<Problem>, Unchecked>> = stream::iter(work)
        .map(|(want, digest)| async move {
            let registry = registries.get(want.repo.endpoint());
            let check = Check {
                registry: registry.as_ref(),
                want,
                digest,
                depth,
                problems: Vec::new(),
            };
            check.all().await.map_err(|source| Unchecked {
                repository: want.repo.clone(),
                digest: digest.clone(),
                source,
            })
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut out = Verification::default();
    for result in results {
        match result {
            Ok(problems) => {
                out.checked += 1;
                out.problems.extend(problems);
            }
            Err(unchecked) => out.unchecked.push(unchecked),
        }
    }
    out.problems.sort_by(|a, b| {
        (&a.repository, &a.digest, &a.tag, a.kind.name()).cmp(&(
            &b.repository,
            &b.digest,
            &b.tag,
            b.kind.name(),
        ))
    });
    out.unchecked
        .sort_by(|a, b| (&a.repository, &a.digest).cmp(&(&b.repository, &b.digest)));
    out
}

/// One (destination, digest) being checked, and what was found so far.
struct Check<'a> {
    registry: &'a dyn Registry,
    want: &'a RepoWant,
    digest: &'a Digest,
    depth: ReadBack,
    problems: Vec<Problem>,
}

impl Check<'_> {
    /// Its tags, then its manifest graph; `Err` when the destination could
    /// not be read.
    async fn all(mut self) -> Result<Vec<Problem>, RegistryError> {
        self.tags().await?;
        self.graph().await?;
        Ok(self.problems)
    }

    fn found(&mut self, kind: ProblemKind, tag: Option<&str>, detail: String) {
        self.problems.push(Problem {
            kind,
            repository: self.want.repo.clone(),
            digest: self.digest.clone(),
            tag: tag.map(str::to_string),
            detail,
        });
    }

    /// Every wanted tag, at the digest.
    async fn tags(&mut self) -> Result<(), RegistryError> {
        let (repo, digest) = (&self.want.repo, self.digest);
        for tag in self.want.digests[digest].tags.keys() {
            let head = self
                .registry
                .head_manifest(repo, &ManifestRef::Tag(tag.clone()))
                .await?;
            match head {
                None => self.found(
                    ProblemKind::MissingTag,
                    Some(tag.as_str()),
                    "the tag is absent".into(),
                ),
                Some(found) if &found.digest != digest => self.found(
                    ProblemKind::MovedTag,
                    Some(tag.as_str()),
                    format!("the tag points at {}", found.digest),
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The manifest graph, breadth first, each manifest and blob once.
    async fn graph(&mut self) -> Result<(), RegistryError> {
        let repo = &self.want.repo;
        let mut walk = oci::GraphWalk::new(repo, [(self.digest.clone(), ())]);
        let mut blobs_seen = BTreeSet::new();
        while let Some(node) = walk.next() {
            let node = node?;
            let current = node.digest.clone();
            let manifest = match self
                .registry
                .get_manifest(repo, &ManifestRef::Digest(current.clone()))
                .await
            {
                Ok(Some(m)) => m,
                Ok(None) => {
                    let kind = if current == *self.digest {
                        ProblemKind::MissingManifest
                    } else {
                        ProblemKind::MissingChild
                    };
                    self.found(kind, None, format!("{current} is absent"));
                    continue;
                }
                Err(RegistryError::BadContent(e)) => {
                    self.found(ProblemKind::BadContent, None, e.to_string());
                    continue;
                }
                Err(e) => return Err(e),
            };
            let refs = match oci::references(&manifest, &format!("{repo}@{current}")) {
                Ok(refs) => refs,
                Err(e) => {
                    self.found(ProblemKind::BadContent, None, e.to_string());
                    continue;
                }
            };
            walk.descend(&node, refs.manifests.into_iter().map(|c| (c.digest, ())));
            for blob in refs.blobs {
                if !blob.foreign && blobs_seen.insert(blob.digest.clone()) {
                    self.blob(&blob, &current).await?;
                }
            }
        }
        Ok(())
    }

    /// One blob of `manifest`: there with its size, and with
    /// [`ReadBack::Deep`] its bytes what its digest says.
    async fn blob(&mut self, blob: &Descriptor, manifest: &Digest) -> Result<(), RegistryError> {
        let repo = &self.want.repo;
        let digest = &blob.digest;
        match self.registry.blob_exists(repo, digest).await? {
            None => self.found(
                ProblemKind::MissingBlob,
                None,
                format!("blob {digest} of {manifest} is absent"),
            ),
            Some(size) if size != blob.size => self.found(
                ProblemKind::WrongSize,
                None,
                format!(
                    "blob {digest} of {manifest} holds {size} bytes, not {}",
                    blob.size
                ),
            ),
            Some(_) if self.depth == ReadBack::Deep => {
                match read_blob_back(self.registry, repo, blob).await {
                    Ok(()) => {}
                    Err(RegistryError::BadContent(e)) => self.found(
                        ProblemKind::BadContent,
                        None,
                        format!("blob {digest} of {manifest}, read back: {e}"),
                    ),
                    Err(e) => return Err(e),
                }
            }
            Some(_) => {}
        }
        Ok(())
    }
}

impl Verification {
    /// What a repair must copy again, per destination repository: each
    /// digest with a content problem is incomplete (its kinds, for
    /// people); each that could not be checked is unknown. Tag problems are
    /// left out: a promotion reads tags itself, and finds those.
    pub fn damage(&self) -> Damaged {
        let mut kinds: BTreeMap<(&Repository, &Digest), BTreeSet<&'static str>> = BTreeMap::new();
        for p in self.problems.iter().filter(|p| p.kind.is_content()) {
            kinds
                .entry((&p.repository, &p.digest))
                .or_default()
                .insert(p.kind.name());
        }
        let mut out = Damaged::new();
        for ((repo, digest), kinds) in kinds {
            let found = kinds.into_iter().collect::<Vec<_>>().join(", ");
            out.entry(repo.clone())
                .or_default()
                .insert(digest.clone(), Damage::Incomplete(found));
        }
        for u in &self.unchecked {
            let reason = format!("verify could not check it: {}", u.source);
            out.entry(u.repository.clone())
                .or_default()
                .insert(u.digest.clone(), Damage::Unchecked(reason));
        }
        out
    }

    /// One line per problem (`KIND  REPOSITORY[:TAG]  DIGEST  # DETAIL`),
    /// one per unreadable destination, then a summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.problems {
            let at = match &p.tag {
                Some(tag) => format!("{}:{tag}", p.repository),
                None => p.repository.to_string(),
            };
            out.push_str(&format!(
                "{:<16} {at}  {}  # {}\n",
                p.kind.name(),
                p.digest,
                p.detail
            ));
        }
        for u in &self.unchecked {
            out.push_str(&format!("{:<16} {u}\n", "unchecked"));
        }
        out.push_str(&format!(
            "verify: {} checked, {} problem(s), {} not checked\n",
            self.checked,
            self.problems.len(),
            self.unchecked.len()
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{ImageName, RegistryName};

    fn repo() -> Repository {
        RegistryName::parse("dst.example/prod")
            .unwrap()
            .repository(&ImageName::parse("app").unwrap())
    }

    fn problem(kind: ProblemKind, digest: &Digest, tag: Option<&str>) -> Problem {
        Problem {
            kind,
            repository: repo(),
            digest: digest.clone(),
            tag: tag.map(str::to_string),
            detail: String::new(),
        }
    }

    #[test]
    fn content_problems_are_damage_and_tag_problems_are_left_to_the_planner() {
        let (lost, retagged, unread) = (
            Digest::sha256_of(b"lost"),
            Digest::sha256_of(b"retagged"),
            Digest::sha256_of(b"unread"),
        );
        let found = Verification {
            checked: 2,
            problems: vec![
                problem(ProblemKind::MissingBlob, &lost, None),
                problem(ProblemKind::BadContent, &lost, None),
                problem(ProblemKind::MissingTag, &lost, Some("1.0")),
                problem(ProblemKind::MovedTag, &retagged, Some("2.0")),
            ],
            unchecked: vec![Unchecked {
                repository: repo(),
                digest: unread.clone(),
                source: RegistryError::Internal {
                    what: "dst.example".into(),
                    message: "boom".into(),
                },
            }],
        };
        let damage = found.damage();
        assert_eq!(
            damage[&repo()],
            BTreeMap::from([
                (lost, Damage::Incomplete("bad_content, missing_blob".into())),
                (
                    unread,
                    Damage::Unchecked(
                        "verify could not check it: dst.example: internal error: boom".into()
                    )
                ),
            ])
        );
        assert!(Verification::default().damage().is_empty());
    }
}
