//! The conflict check: no two entries may promote different digests to the
//! same destination `registry/name:tag`, across every manifest of the input.
//!
//! The registry.k8s.io tree expands to about 720,000 (destination, tag,
//! digest) edges, but they are 33,000 (image entry, tag, digest) triples
//! fanned out to 22 destinations each. So the check works on "groups": one
//! group is one image of one manifest, and every destination repository
//! receives the edges of a set of groups. Repositories that receive the same
//! set of groups (all 22 destinations of an image, typically) receive
//! exactly the same edges, so each distinct set is checked once and counts
//! for all its repositories. Every edge is covered; the work is proportional
//! to the distinct edge sets, not to the fan-out. `naive_check` in the tests
//! walks every edge one by one and must agree.
//!
//! Names are interned to `u32`; no per-edge string is built.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::diag::Diagnostic;
use crate::manifest::model::{Image, Manifest, TagEntry};
use crate::reference::Digest;

/// A small multiplicative hasher: the keys are our own small integers and interned names, not
/// attacker-chosen in a way that matters (a slow check is the worst case), and
/// SipHash would cost more than the rest of the check.
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

impl Fx {
    /// A folded multiply: unlike a plain multiply, high input bits reach the
    /// low output bits that pick the bucket (edge keys keep the repository in
    /// the high half).
    #[inline]
    fn add(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word) * 0x5851_f42d_4c95_7f2d;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// Strings to dense ids; the id indexes `names`.
struct Interner<'s> {
    ids: FxMap<&'s str, u32>,
    names: Vec<&'s str>,
}

impl<'s> Interner<'s> {
    fn new() -> Self {
        Interner {
            ids: FxMap::default(),
            names: Vec::new(),
        }
    }
    fn intern(&mut self, name: &'s str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(name);
        self.ids.insert(name, id);
        id
    }
}

/// What the check found: tag entries numbered in input order, repository
/// names, and the clashes as (first entry, clashing entry) -> (first
/// repository, number of repositories).
struct Found<'m> {
    entries: Vec<(&'m TagEntry, &'m Digest, &'m Image)>,
    repo_names: Vec<String>,
    clashes: Vec<Clash>,
}

type Clash = ((u32, u32), (u32, u32));

/// Check every edge of `manifests`; push one error per pair of clashing tag
/// entries (however many destinations they clash on).
pub(super) fn check(manifests: &[Manifest], diagnostics: &mut Vec<Diagnostic>) {
    let Found {
        entries,
        repo_names,
        clashes,
    } = find(manifests);
    for ((first, second), (repo, count)) in clashes {
        let (first_tag, first_digest, first_image) = entries[first as usize];
        let (second_tag, second_digest, second_image) = entries[second as usize];
        let destination = &repo_names[repo as usize];
        let renamed = first_image.target.is_some() || second_image.target.is_some();
        let mut help = if renamed && first_image.name != second_image.name {
            format!(
                "{} and {} are both written to {destination} (`target:`): rename one of them \
                 to another path, or drop the tag from one of the two entries",
                first_image.name, second_image.name
            )
        } else {
            "a tag names one digest: drop the tag from one of the two entries".to_string()
        };
        if count > 1 {
            help.push_str(&format!(
                " (the same clash hits {} more destination{})",
                count - 1,
                if count == 2 { "" } else { "s" }
            ));
        }
        diagnostics.push(
            Diagnostic::error(
                second_tag.location.clone(),
                format!(
                    "{destination}:{} would get two digests: {second_digest} here, {first_digest} at {}",
                    second_tag.tag, first_tag.location
                ),
            )
            .with_help(help),
        );
    }
}

fn find(manifests: &[Manifest]) -> Found<'_> {
    // Destination repositories, as `endpoint/repository`: the same
    // repository reached through `gcr.io/a` + `b/c` and `gcr.io/a/b` + `c` is
    // one destination, and this string is what makes them equal.
    let mut repo_names: Vec<String> = Vec::new();
    let mut repo_ids: HashMap<String, u32> = HashMap::new();
    // Groups (one per image of each manifest), in input order, and the
    // groups each repository receives (ascending, since groups are numbered
    // in the order they are visited).
    let mut groups: Vec<&Image> = Vec::new();
    let mut repo_groups: Vec<Vec<u32>> = Vec::new();
    for manifest in manifests {
        for image in &manifest.images {
            let group = id(groups.len());
            groups.push(image);
            for dest in &manifest.destinations {
                let key = dest.name.repository(image.destination_name()).to_string();
                let next = id(repo_names.len());
                let repo = *repo_ids.entry(key).or_insert_with_key(|key| {
                    repo_names.push(key.clone());
                    next
                });
                if repo == next {
                    repo_groups.push(Vec::new());
                }
                let receivers = &mut repo_groups[repo as usize];
                // One destination listed twice only repeats edges.
                if receivers.last() != Some(&group) {
                    receivers.push(group);
                }
            }
        }
    }
    // Distinct group sets -> (first repository, number of repositories).
    let mut sets: HashMap<&[u32], (u32, u32)> = HashMap::new();
    for (repo, receivers) in repo_groups.iter().enumerate() {
        sets.entry(receivers.as_slice()).or_insert((id(repo), 0)).1 += 1;
    }
    let mut sets: Vec<(&[u32], (u32, u32))> = sets.into_iter().collect();
    sets.sort_unstable_by_key(|(_, (repo, _))| *repo);

    let mut tags = Interner::new();
    let mut digests = Interner::new();
    // Every tag entry, numbered in input order, for the messages.
    let mut entries: Vec<(&TagEntry, &Digest, &Image)> = Vec::new();
    // Per group: (tag, digest, entry) for each of its tag entries.
    let mut group_edges: Vec<Vec<(u32, u32, u32)>> = Vec::with_capacity(groups.len());
    for image in &groups {
        let mut edges = Vec::new();
        for digest_entry in &image.digests {
            let digest = digests.intern(digest_entry.digest.as_str());
            for tag_entry in &digest_entry.tags {
                let entry = id(entries.len());
                entries.push((tag_entry, &digest_entry.digest, image));
                edges.push((tags.intern(tag_entry.tag.as_str()), digest, entry));
            }
        }
        group_edges.push(edges);
    }

    // (first entry, clashing entry) -> (first repository, repositories)
    let mut clashes: FxMap<(u32, u32), (u32, u32)> = FxMap::default();
    let mut seen: FxMap<u32, (u32, u32)> = FxMap::default();
    for (set, (repo, count)) in &sets {
        seen.clear();
        for &group in *set {
            for &(tag, digest, entry) in &group_edges[group as usize] {
                let (first_digest, first) = *seen.entry(tag).or_insert((digest, entry));
                if first_digest != digest {
                    let clash = clashes.entry((first, entry)).or_insert((*repo, 0));
                    clash.0 = clash.0.min(*repo);
                    clash.1 += count;
                }
            }
        }
    }

    let mut clashes: Vec<Clash> = clashes.into_iter().collect();
    clashes.sort_unstable();
    Found {
        entries,
        repo_names,
        clashes,
    }
}

fn id(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::diag::Location;
    use crate::manifest::model::{DigestEntry, RegistryEntry};
    use crate::reference::{ImageName, RegistryName, Tag};

    /// The obvious check, one edge at a time, keyed by strings: the oracle
    /// the grouped check must agree with.
    fn naive(manifests: &[Manifest]) -> Vec<((u32, u32), (String, u32))> {
        // "The first destination" is the one that appears first in the input.
        let mut order: HashMap<String, usize> = HashMap::new();
        for manifest in manifests {
            for image in &manifest.images {
                for dest in &manifest.destinations {
                    let repo = dest.name.repository(image.destination_name()).to_string();
                    let next = order.len();
                    order.entry(repo).or_insert(next);
                }
            }
        }
        let mut entry = 0u32;
        let mut first_seen: HashMap<(String, String), (String, u32)> = HashMap::new();
        let mut clashes: HashMap<(u32, u32), (String, u32)> = HashMap::new();
        for manifest in manifests {
            for image in &manifest.images {
                for d in &image.digests {
                    for t in &d.tags {
                        let mut done = std::collections::HashSet::new();
                        for dest in &manifest.destinations {
                            let repo = dest.name.repository(image.destination_name()).to_string();
                            if !done.insert(repo.clone()) {
                                continue;
                            }
                            let (digest, first) = first_seen
                                .entry((repo.clone(), t.tag.to_string()))
                                .or_insert((d.digest.to_string(), entry))
                                .clone();
                            if digest != d.digest.as_str() {
                                let c = clashes.entry((first, entry)).or_insert((repo.clone(), 0));
                                if order[&repo] < order[&c.0] {
                                    c.0 = repo;
                                }
                                c.1 += 1;
                            }
                        }
                        entry += 1;
                    }
                }
            }
        }
        let mut out: Vec<_> = clashes.into_iter().collect();
        out.sort();
        out
    }

    fn grouped(manifests: &[Manifest]) -> Vec<((u32, u32), (String, u32))> {
        let found = find(manifests);
        let mut out: Vec<_> = found
            .clashes
            .iter()
            .map(|&(pair, (repo, count))| (pair, (found.repo_names[repo as usize].clone(), count)))
            .collect();
        out.sort();
        out
    }

    fn location() -> Location {
        Location::file_only(Arc::from(Path::new("t.yaml")))
    }

    fn registry(name: &str) -> RegistryEntry {
        RegistryEntry {
            name: RegistryName::parse(name).unwrap(),
            service_account: None,
            location: location(),
        }
    }

    fn digest(i: usize) -> Digest {
        Digest::parse(&format!("sha256:{}", &format!("{i:x}").repeat(64)[..64])).unwrap()
    }

    // Destinations that overlap through sub-paths, and image names that can
    // complete each other into the same repository.
    const REGISTRIES: [&str; 5] = [
        "gcr.io/a",
        "gcr.io/a/b",
        "gcr.io/c",
        "docker.io",
        "docker.io/library",
    ];
    const IMAGES: [&str; 4] = ["b/c", "c", "x", "b/x"];
    const TAGS: [&str; 3] = ["1.0", "1.10", "latest"];

    type Spec = Vec<(Vec<usize>, Vec<(usize, Vec<(usize, Vec<usize>)>)>)>;

    fn build(spec: &Spec) -> Vec<Manifest> {
        spec.iter()
            .map(|(dests, images)| Manifest {
                registries_file: Arc::from(Path::new("m")),
                images_file: Arc::from(Path::new("i")),
                source: registry("gcr.io/staging"),
                destinations: dests.iter().map(|&d| registry(REGISTRIES[d])).collect(),
                images: images
                    .iter()
                    .map(|(name, digests)| Image {
                        follow: Vec::new(),
                        target: None,
                        name: ImageName::parse(IMAGES[*name]).unwrap(),
                        location: location(),
                        digests: digests
                            .iter()
                            .map(|(d, tags)| DigestEntry {
                                digest: digest(*d),
                                location: location(),
                                tags: tags
                                    .iter()
                                    .map(|&t| TagEntry {
                                        tag: Tag::parse(TAGS[t]).unwrap(),
                                        location: location(),
                                    })
                                    .collect(),
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn grouped_check_agrees_with_the_edge_by_edge_check(
            spec in prop::collection::vec(
                (
                    prop::collection::vec(0..REGISTRIES.len(), 1..4),
                    prop::collection::vec(
                        (0..IMAGES.len(), prop::collection::vec((0..3usize, prop::collection::vec(0..TAGS.len(), 0..3)), 0..3)),
                        0..4,
                    ),
                ),
                1..4,
            )
        ) {
            let manifests = build(&spec);
            prop_assert_eq!(grouped(&manifests), naive(&manifests));
        }
    }

    #[test]
    fn sub_path_splits_of_one_repository_clash() {
        // gcr.io/a + b/c and gcr.io/a/b + c are the same repository.
        let spec: Spec = vec![
            (vec![0], vec![(0, vec![(1, vec![0])])]),
            (vec![1], vec![(1, vec![(2, vec![0])])]),
        ];
        let clashes = grouped(&build(&spec));
        assert_eq!(clashes, vec![((0, 1), ("gcr.io/a/b/c".to_string(), 1))]);
    }

    #[test]
    fn the_same_digest_twice_is_fine() {
        let spec: Spec = vec![
            (vec![0, 2], vec![(0, vec![(1, vec![0, 2])])]),
            (vec![0, 2], vec![(0, vec![(1, vec![0, 2])])]),
        ];
        assert!(grouped(&build(&spec)).is_empty());
    }
}
