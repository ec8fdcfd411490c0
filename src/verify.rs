//! `promoter verify`: the auditor's job. For every (destination, digest)
//! the manifests promote, check that the destination really holds it
//! complete: the manifest with exactly its bytes, every child manifest of
//! an index, every config and layer blob, and every wanted tag at its
//! digest. Reads only; never writes.

use std::collections::BTreeSet;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::oci;
use crate::plan::RepoWant;
use crate::reference::{Digest, ManifestRef, Repository};
use crate::registry::{Registries, Registry, RegistryError};

/// One thing a destination lacks or holds wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong, one word: `missing_manifest`, `missing_child`,
    /// `missing_blob`, `wrong_size`, `missing_tag`, `moved_tag`,
    /// `bad_content`.
    pub kind: &'static str,
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

/// What a verification found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// (destination, digest) pairs checked to the end.
    pub checked: usize,
    /// Everything wrong, sorted.
    pub problems: Vec<Problem>,
    /// What could not be checked (a registry that could not be read), why.
    pub unchecked: Vec<String>,
}

/// Check every (destination, digest) of `wants`, `concurrency` at a time.
pub async fn verify(
    wants: &[RepoWant],
    registries: &Registries,
    concurrency: usize,
) -> Verification {
    let work: Vec<(&RepoWant, &Digest)> = wants
        .iter()
        .flat_map(|w| w.digests.keys().map(move |d| (w, d)))
        .collect();
    let results: Vec<Result<Vec<Problem>, String>> = stream::iter(work)
        .map(|(want, digest)| async move {
            let registry = registries.get(want.repo.endpoint());
            check_digest(registry.as_ref(), want, digest).await
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
            Err(why) => out.unchecked.push(why),
        }
    }
    out.problems.sort_by(|a, b| {
        (&a.repository, &a.digest, &a.tag, a.kind).cmp(&(&b.repository, &b.digest, &b.tag, b.kind))
    });
    out.unchecked.sort();
    out
}

/// The problems of one (destination, digest); `Err` when the destination
/// could not be read.
async fn check_digest(
    registry: &dyn Registry,
    want: &RepoWant,
    digest: &Digest,
) -> Result<Vec<Problem>, String> {
    let repo = &want.repo;
    let d = &want.digests[digest];
    let mut problems = Vec::new();
    let problem = |kind, tag: Option<&str>, detail: String| Problem {
        kind,
        repository: repo.clone(),
        digest: digest.clone(),
        tag: tag.map(str::to_string),
        detail,
    };
    let unreadable = |e: RegistryError| format!("{repo}@{digest}: {e}");
    for tag in d.tags.keys() {
        let head = registry
            .head_manifest(repo, &ManifestRef::Tag(tag.clone()))
            .await
            .map_err(unreadable)?;
        match head {
            None => problems.push(problem(
                "missing_tag",
                Some(tag.as_str()),
                "the tag is absent".into(),
            )),
            Some(found) if &found.digest != digest => problems.push(problem(
                "moved_tag",
                Some(tag.as_str()),
                format!("the tag points at {}", found.digest),
            )),
            Some(_) => {}
        }
    }
    // The manifest graph, breadth first, each manifest once.
    let mut walk = oci::GraphWalk::new(repo, [(digest.clone(), ())]);
    let mut blobs_seen = BTreeSet::new();
    while let Some(node) = walk.next() {
        let node = node.map_err(|e| unreadable(e.into()))?;
        let current = node.digest.clone();
        let what = format!("{repo}@{current}");
        let manifest = match registry
            .get_manifest(repo, &ManifestRef::Digest(current.clone()))
            .await
        {
            Ok(Some(m)) => m,
            Ok(None) => {
                let kind = if current == *digest {
                    "missing_manifest"
                } else {
                    "missing_child"
                };
                problems.push(problem(kind, None, format!("{current} is absent")));
                continue;
            }
            Err(RegistryError::BadContent(e)) => {
                problems.push(problem("bad_content", None, e.to_string()));
                continue;
            }
            Err(e) => return Err(unreadable(e)),
        };
        let refs = match oci::references(&manifest, &what) {
            Ok(refs) => refs,
            Err(e) => {
                problems.push(problem("bad_content", None, e.to_string()));
                continue;
            }
        };
        walk.descend(&node, refs.manifests.into_iter().map(|c| (c.digest, ())));
        for blob in refs.blobs {
            if blob.foreign || !blobs_seen.insert(blob.digest.clone()) {
                continue;
            }
            match registry
                .blob_exists(repo, &blob.digest)
                .await
                .map_err(unreadable)?
            {
                None => problems.push(problem(
                    "missing_blob",
                    None,
                    format!("blob {} of {current} is absent", blob.digest),
                )),
                Some(size) if size != blob.size => problems.push(problem(
                    "wrong_size",
                    None,
                    format!(
                        "blob {} of {current} holds {size} bytes, not {}",
                        blob.digest, blob.size
                    ),
                )),
                Some(_) => {}
            }
        }
    }
    Ok(problems)
}

impl Verification {
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
                p.kind, p.digest, p.detail
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
