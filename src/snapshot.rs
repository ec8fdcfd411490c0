//! Snapshots: a registry's (or the manifests') images as `images.yaml` or
//! CSV, byte for byte in CIP's formats. A snapshot is a registry's
//! fingerprint: two registries compare by diffing their snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use futures::stream::{self, StreamExt};

use crate::manifest::{Image, Manifest};
use crate::oci;
use crate::reference::{Digest, ManifestRef, RegistryName, Repository, Tag};
use crate::registry::{media_type, Registries, Registry, RegistryError};

/// One image of a snapshot: digest -> tags (byte-sorted). An untagged digest
/// has an empty set.
pub type DigestTags = BTreeMap<Digest, BTreeSet<String>>;

/// The images of a registry (or of the manifests), ready to print as
/// `images.yaml` or CSV.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Image name, relative to the snapshot root -> its digests.
    pub images: BTreeMap<String, DigestTags>,
    /// (image, digest) pairs that are children of an index in that image.
    pub index_children: BTreeSet<(String, Digest)>,
}

impl Snapshot {
    fn add(&mut self, name: &str, digest: &Digest, tag: Option<&str>) {
        let tags = self
            .images
            .entry(name.to_string())
            .or_default()
            .entry(digest.clone())
            .or_default();
        if let Some(tag) = tag {
            tags.insert(tag.to_string());
        }
    }

    /// Every digest of a manifest image entry, with its tags, under `name`.
    fn add_image(&mut self, name: &str, image: &Image) {
        for entry in &image.digests {
            if entry.tags.is_empty() {
                self.add(name, &entry.digest, None);
            }
            for tag in &entry.tags {
                self.add(name, &entry.digest, Some(tag.tag.as_str()));
            }
        }
    }

    /// `--minimal-snapshot`: drop untagged children of indexes. Tagged
    /// children, and untagged digests that are nobody's child, stay.
    pub fn minimal(mut self) -> Snapshot {
        for (name, digest) in &self.index_children {
            if let Some(digests) = self.images.get_mut(name) {
                if digests.get(digest).is_some_and(BTreeSet::is_empty) {
                    digests.remove(digest);
                }
            }
        }
        self.images.retain(|_, digests| !digests.is_empty());
        self
    }

    /// `--snapshot-tag TAG`: keep only the digests that carry TAG, each with
    /// its full tag list (so that the output still says what else points there).
    pub fn with_tag(mut self, tag: &str) -> Snapshot {
        for digests in self.images.values_mut() {
            digests.retain(|_, tags| tags.contains(tag));
        }
        self.images.retain(|_, digests| !digests.is_empty());
        self
    }

    /// CIP's `images.yaml` format; valid input for this tool's loader.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for (name, digests) in &self.images {
            let _ = writeln!(out, "- name: {name}");
            let _ = writeln!(out, "  dmap:");
            for (digest, tags) in digests {
                let list: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
                let _ = writeln!(out, "    \"{digest}\": [{}]", list.join(", "));
            }
        }
        out
    }

    /// CIP's CSV: no header, `<name>@<digest>,<name>:<tag>` per tag, or
    /// `<name>@<digest>,-` for an untagged digest.
    pub fn to_csv(&self) -> String {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        for (name, digests) in &self.images {
            for (digest, tags) in digests {
                let at = format!("{name}@{digest}");
                if tags.is_empty() {
                    let _ = writer.write_record([at.as_str(), "-"]);
                }
                for tag in tags {
                    let _ = writer.write_record([at.clone(), format!("{name}:{tag}")]);
                }
            }
        }
        let bytes = writer.into_inner().unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }
}

use crate::limits::{SNAPSHOT_HEADS_PER_REPOSITORY, SNAPSHOT_REPOSITORIES as SNAPSHOT_CONCURRENCY};

/// What one repository holds: tags and their digests, plus the untagged
/// children of its indexes.
async fn read_repository(
    registry: &dyn Registry,
    repo: &Repository,
) -> Result<(DigestTags, BTreeSet<Digest>), RegistryError> {
    let tags = registry.list_tags(repo).await?;
    let heads: Vec<_> = stream::iter(tags)
        .map(|tag| async move {
            let parsed = Tag::parse(&tag).map_err(|e| RegistryError::Protocol {
                what: format!("{repo}:{tag}"),
                message: e.to_string(),
            })?;
            let head = registry
                .head_manifest(repo, &ManifestRef::Tag(parsed))
                .await?;
            Ok::<_, RegistryError>((tag, head))
        })
        .buffer_unordered(SNAPSHOT_HEADS_PER_REPOSITORY)
        .collect()
        .await;
    let mut digests = DigestTags::new();
    let mut indexes = BTreeSet::new();
    for head in heads {
        let (tag, head) = head?;
        // A tag deleted between listing and reading is simply gone.
        let Some(descriptor) = head else { continue };
        if media_type::is_index(&descriptor.media_type) {
            indexes.insert(descriptor.digest.clone());
        }
        digests.entry(descriptor.digest).or_default().insert(tag);
    }
    // Generic registries cannot list untagged digests: the children of
    // indexes are the untagged digests we can know about.
    let mut children = BTreeSet::new();
    let mut walk = oci::GraphWalk::new(repo, indexes.into_iter().map(|d| (d, ())));
    while let Some(node) = walk.next() {
        let node = node?;
        let Some(manifest) = registry
            .get_manifest(repo, &ManifestRef::Digest(node.digest.clone()))
            .await?
        else {
            continue;
        };
        let refs = oci::references(&manifest, &format!("{repo}@{}", node.digest))?;
        let indexes = refs
            .manifests
            .iter()
            .filter(|c| media_type::is_index(&c.media_type))
            .map(|c| (c.digest.clone(), ()));
        walk.descend(&node, indexes);
        for child in refs.manifests {
            digests.entry(child.digest.clone()).or_default();
            children.insert(child.digest);
        }
    }
    Ok((digests, children))
}

/// Snapshot every repository under `root` (a registry with an optional path).
pub async fn of_registry(
    registry: &dyn Registry,
    root: &RegistryName,
) -> Result<Snapshot, RegistryError> {
    let prefix = root.prefix.as_str();
    let mut named_repository = false;
    let repos = match registry.list_repositories(prefix).await {
        Ok(repos) => repos,
        // No catalog (Docker Hub, some clouds): a path that names one
        // repository can still be read, as that repository alone.
        Err(RegistryError::Unsupported { .. }) if !prefix.is_empty() => {
            named_repository = true;
            let repo =
                Repository::parse(&root.endpoint, prefix).map_err(|e| RegistryError::Config {
                    what: root.to_string(),
                    message: e.message,
                })?;
            vec![repo]
        }
        Err(e) => return Err(e),
    };
    let results: Vec<_> = stream::iter(repos)
        .map(|repo| async move {
            let read = read_repository(registry, &repo).await;
            (repo, read)
        })
        .buffer_unordered(SNAPSHOT_CONCURRENCY)
        .collect()
        .await;
    let mut snapshot = Snapshot::default();
    for (repo, read) in results {
        let (digests, children) = read?;
        let name = if named_repository {
            // Named by its last path component, as an image under the
            // path it lives in would be.
            repo.path().rsplit('/').next().unwrap_or(repo.path())
        } else if prefix.is_empty() {
            repo.path()
        } else {
            match repo
                .path()
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('/'))
            {
                Some(name) => name,
                None => {
                    tracing::warn!(
                        "{repo} is the snapshot root itself, not an image under it; left out"
                    );
                    continue;
                }
            }
        };
        if digests.is_empty() {
            continue;
        }
        for child in children {
            snapshot.index_children.insert((name.to_string(), child));
        }
        snapshot.images.insert(name.to_string(), digests);
    }
    Ok(snapshot)
}

/// Every image the manifests promote into `root`, with its name relative to
/// `root`. Destinations match on path boundaries: `gcr.io/prod` matches
/// `gcr.io/prod` and `gcr.io/prod/eu`, never `gcr.io/prod-eu`; a
/// destination's sub-path becomes part of the name.
fn promoted_into<'m>(
    manifests: &'m [Manifest],
    root: &'m RegistryName,
) -> impl Iterator<Item = (String, &'m Manifest, &'m Image)> + 'm {
    manifests.iter().flat_map(move |manifest| {
        manifest.destinations.iter().flat_map(move |destination| {
            let sub = root.sub_path_of(&destination.name);
            manifest.images.iter().filter_map(move |image| {
                let name = match sub? {
                    "" => image.destination_name().to_string(),
                    sub => format!("{sub}/{}", image.destination_name()),
                };
                Some((name, manifest, image))
            })
        })
    })
}

/// What the manifests promote into `root`, offline.
pub fn of_manifests(manifests: &[Manifest], root: &RegistryName) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for (name, _, image) in promoted_into(manifests, root) {
        snapshot.add_image(&name, image);
    }
    snapshot
}

/// For `--manifest-based-snapshot-of --minimal-snapshot`: learn from the
/// sources which of the snapshot's digests are children of a promoted index.
pub async fn mark_index_children(
    mut snapshot: Snapshot,
    manifests: &[Manifest],
    root: &RegistryName,
    registries: &Registries,
) -> Result<Snapshot, RegistryError> {
    let mut wanted: BTreeSet<(String, Repository, Digest)> = BTreeSet::new();
    for (name, manifest, image) in promoted_into(manifests, root) {
        let repo = manifest.source.name.repository(&image.name);
        for entry in &image.digests {
            wanted.insert((name.clone(), repo.clone(), entry.digest.clone()));
        }
    }
    let found: Vec<Result<Vec<(String, Digest)>, RegistryError>> = stream::iter(wanted)
        .map(|(name, repo, digest)| async move {
            let registry = registries.get(repo.endpoint());
            let reference = ManifestRef::Digest(digest.clone());
            let Some(head) = registry.head_manifest(&repo, &reference).await? else {
                return Ok(Vec::new());
            };
            if !media_type::is_index(&head.media_type) {
                return Ok(Vec::new());
            }
            let Some(manifest) = registry.get_manifest(&repo, &reference).await? else {
                return Ok(Vec::new());
            };
            let refs = oci::references(&manifest, &format!("{repo}@{digest}"))?;
            Ok(refs
                .manifests
                .into_iter()
                .map(|c| (name.clone(), c.digest))
                .collect())
        })
        .buffer_unordered(SNAPSHOT_CONCURRENCY)
        .collect()
        .await;
    for children in found {
        snapshot.index_children.extend(children?);
    }
    Ok(snapshot)
}

/// Snapshot `root`, opening its registry with `open`.
pub async fn of_named(
    root: &RegistryName,
    open: &crate::registry::OpenOptions,
) -> Result<Snapshot, RegistryError> {
    let registries = crate::registry::open_all([root], open)?;
    of_registry(registries.get(&root.endpoint).as_ref(), root).await
}

/// Why one side of a `diff` has no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SideError {
    /// A file name that is not there: a typo, not a registry to look up.
    #[error("{0}: no such file (a snapshot file, or a registry as host[:port]/path)")]
    NoSuchFile(String),
    /// A file that is not images.yaml.
    #[error("{side} is not a valid snapshot:\n{}", shown(.diagnostics))]
    NotASnapshot {
        /// The side as given.
        side: String,
        /// What is wrong with it.
        diagnostics: Vec<crate::diag::Diagnostic>,
    },
    /// Not a registry name either (never echoed: it may hold credentials).
    #[error("{0}")]
    NotARegistry(String),
    /// The registry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

fn shown(diagnostics: &[crate::diag::Diagnostic]) -> String {
    let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    text.join("\n")
}

/// One side of a `diff`: a snapshot file when the path is a file, else a
/// registry (or `oci:` tree) to snapshot.
pub async fn of_side(
    side: &str,
    open: &crate::registry::OpenOptions,
) -> Result<Snapshot, SideError> {
    let path = std::path::Path::new(side);
    let looks_like_a_file = side.starts_with(['.', '/'])
        || [".yaml", ".yml", ".csv", ".json"]
            .iter()
            .any(|ext| side.ends_with(ext));
    if !path.exists() && looks_like_a_file && !side.starts_with("oci:") {
        return Err(SideError::NoSuchFile(side.to_string()));
    }
    if path.is_file() {
        return of_file(path).map_err(|diagnostics| SideError::NotASnapshot {
            side: side.to_string(),
            diagnostics,
        });
    }
    let root = RegistryName::parse(side).map_err(|e| {
        let help = e.help.map(|h| format!(" ({h})")).unwrap_or_default();
        SideError::NotARegistry(format!("{}{help}", e.message))
    })?;
    Ok(of_named(&root, open).await?)
}

/// Read a snapshot back from an images.yaml-format file.
pub fn of_file(path: &std::path::Path) -> Result<Snapshot, Vec<crate::diag::Diagnostic>> {
    let images = crate::manifest::images_file::load(path)?;
    let mut snapshot = Snapshot::default();
    for image in &images {
        snapshot.add_image(image.name.as_str(), image);
    }
    Ok(snapshot)
}

/// Unified diff of two snapshots' YAML, `None` when they are equal.
pub fn diff(a_name: &str, a: &Snapshot, b_name: &str, b: &Snapshot) -> Option<String> {
    let (a, b) = (a.to_yaml(), b.to_yaml());
    if a == b {
        return None;
    }
    Some(
        similar::TextDiff::from_lines(&a, &b)
            .unified_diff()
            .context_radius(3)
            .header(a_name, b_name)
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::parse(&format!("sha256:{}", format!("{n:02x}").repeat(32))).unwrap()
    }

    fn sample() -> Snapshot {
        let mut s = Snapshot::default();
        s.add("foo/bar", &d(2), Some("1.10"));
        s.add("foo/bar", &d(2), Some("1.0"));
        s.add("foo/bar", &d(1), None); // an untagged child of the index d(2)
        s.add("foo/bar", &d(3), Some("latest")); // a tagged child
        s.add("alpha", &d(4), None); // untagged, nobody's child
        s.index_children.insert(("foo/bar".into(), d(1)));
        s.index_children.insert(("foo/bar".into(), d(3)));
        s
    }

    #[test]
    fn yaml_is_cips_format_sorted_by_name_digest_and_tag() {
        let expected = format!(
            "- name: alpha\n  dmap:\n    \"{}\": []\n- name: foo/bar\n  dmap:\n    \"{}\": []\n    \"{}\": [\"1.0\", \"1.10\"]\n    \"{}\": [\"latest\"]\n",
            d(4),
            d(1),
            d(2),
            d(3)
        );
        assert_eq!(sample().to_yaml(), expected);
    }

    #[test]
    fn csv_has_a_row_per_tag_and_a_dash_for_untagged() {
        let expected = format!(
            "alpha@{a},-\nfoo/bar@{b},-\nfoo/bar@{c},foo/bar:1.0\nfoo/bar@{c},foo/bar:1.10\nfoo/bar@{e},foo/bar:latest\n",
            a = d(4),
            b = d(1),
            c = d(2),
            e = d(3)
        );
        assert_eq!(sample().to_csv(), expected);
    }

    #[test]
    fn minimal_drops_only_untagged_index_children() {
        let minimal = sample().minimal();
        let foo = &minimal.images["foo/bar"];
        assert!(!foo.contains_key(&d(1)), "untagged child dropped");
        assert!(foo.contains_key(&d(3)), "tagged child kept");
        assert!(
            minimal.images["alpha"].contains_key(&d(4)),
            "untagged non-child kept"
        );
    }

    #[test]
    fn snapshot_tag_keeps_digests_carrying_the_tag_with_all_their_tags() {
        let only = sample().with_tag("1.0");
        assert_eq!(only.images.len(), 1);
        let tags: Vec<_> = only.images["foo/bar"][&d(2)].iter().cloned().collect();
        assert_eq!(tags, vec!["1.0", "1.10"]);
    }

    #[test]
    fn diff_is_none_for_equal_snapshots() {
        assert_eq!(diff("a", &sample(), "b", &sample()), None);
        let other = sample().minimal();
        let text = diff("a", &sample(), "b", &other).unwrap();
        assert!(text.contains(&format!("-    \"{}\": []", d(1))), "{text}");
    }
}
