//! The planner: pure set algebra from (what the manifests want, what the
//! registries hold) to a plan. No I/O, no async, no registry types: every
//! input is plain data, so every rule here is property-tested.
//!
//! Per destination repository and (digest, tag), with M the manifests, S the
//! source and D the destination:
//! - M ∩ D: already there, nothing to do;
//! - digest in D, tag missing: add the tag (a manifest PUT only);
//! - (M ∩ S) \ D: copy, then tag;
//! - M \ (S ∪ D): lost, reported but not fatal;
//! - tag in D on another digest: a refused tag move (fails the plan);
//! - unknown existence (a read failed): blocks only its own edges.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::diag::Location;
use crate::manifest::Manifest;
pub use crate::reference::Repository;
use crate::reference::{Digest, ImageName, RegistryName, Tag};

// ---------------------------------------------------------------- input

/// Where a wanted digest can be copied from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceRef {
    /// The source registry as the manifest names it, for display.
    pub registry: RegistryName,
    /// The repository in it that holds the image.
    pub repo: Repository,
}

/// One wanted digest in one destination repository, with its tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestWant {
    /// Tags it must carry, each with the manifest line that asks for it.
    pub tags: BTreeMap<Tag, Location>,
    /// Every source that promotes it here (several manifests may).
    pub sources: BTreeSet<SourceRef>,
    /// The first manifest entry that asks for it.
    pub location: Location,
}

/// Everything the manifests want in one destination repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoWant {
    /// For display: the destination registry and image as the manifest names them.
    pub registry: RegistryName,
    /// For display: the image name, relative to `registry`.
    pub image: ImageName,
    /// The repository itself; wants are merged by this, not by the names.
    pub repo: Repository,
    /// Every wanted digest in it, from all manifests.
    pub digests: BTreeMap<Digest, DigestWant>,
    /// Wanted tags the manifests let move (`follow:`): one pointing at
    /// another digest is moved, not refused.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub movable: BTreeSet<Tag>,
}

/// A tag in `repo` that two manifest entries want on different digests: the
/// loader reports these as errors, so the planner only guards against them.
fn conflicting_tags(want: &RepoWant) -> BTreeMap<&Tag, Vec<&Digest>> {
    let mut by_tag: BTreeMap<&Tag, Vec<&Digest>> = BTreeMap::new();
    for (digest, d) in &want.digests {
        for tag in d.tags.keys() {
            by_tag.entry(tag).or_default().push(digest);
        }
    }
    by_tag.retain(|_, digests| digests.len() > 1);
    by_tag
}

/// Merge the manifests into one want per destination repository, sorted by
/// (registry, image). Two manifests that name the same repository differently
/// (`gcr.io/a` + `b/c` and `gcr.io/a/b` + `c`) merge into one.
pub fn wants(manifests: &[Manifest]) -> Vec<RepoWant> {
    let mut by_repo: BTreeMap<Repository, RepoWant> = BTreeMap::new();
    for manifest in manifests {
        for destination in &manifest.destinations {
            for image in &manifest.images {
                let repo = destination.name.repository(&image.name);
                let source = SourceRef {
                    registry: manifest.source.name.clone(),
                    repo: manifest.source.name.repository(&image.name),
                };
                let entry = by_repo.entry(repo.clone()).or_insert_with(|| RepoWant {
                    registry: destination.name.clone(),
                    image: image.name.clone(),
                    repo,
                    digests: BTreeMap::new(),
                    movable: BTreeSet::new(),
                });
                for d in &image.digests {
                    let want =
                        entry
                            .digests
                            .entry(d.digest.clone())
                            .or_insert_with(|| DigestWant {
                                tags: BTreeMap::new(),
                                sources: BTreeSet::new(),
                                location: d.location.clone(),
                            });
                    want.sources.insert(source.clone());
                    for t in &d.tags {
                        want.tags
                            .entry(t.tag.clone())
                            .or_insert_with(|| t.location.clone());
                        if crate::manifest::model::follows(&image.follow, t.tag.as_str()) {
                            entry.movable.insert(t.tag.clone());
                        }
                    }
                }
            }
        }
    }
    by_repo.into_values().collect()
}

/// JSON objects need string keys: maps keyed by a [`Repository`] are written as
/// lists of `[key, value]` pairs.
mod repo_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Repository;

    pub(super) fn serialize<V: Serialize, S: Serializer>(
        map: &BTreeMap<Repository, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub(super) fn deserialize<'de, V: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Repository, V>, D::Error> {
        Ok(Vec::<(Repository, V)>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

/// One of `count` disjoint parts of the work, for running a promotion on
/// several machines: `index` in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which part this is, 0-based and below `count`.
    pub index: u32,
    /// How many parts the work is split into; never 0.
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// `INDEX/COUNT`, 0-based: `0/3`, `1/3`, `2/3`.
    fn from_str(text: &str) -> Result<Shard, String> {
        let usage = || format!("{text:?} is not INDEX/COUNT with 0 <= INDEX < COUNT (e.g. 0/4)");
        let (index, count) = text.split_once('/').ok_or_else(usage)?;
        let index: u32 = index.trim().parse().map_err(|_| usage())?;
        let count: u32 = count.trim().parse().map_err(|_| usage())?;
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether this shard owns `repo`. The hash is FNV-1a over the
    /// repository's full name: stable across machines, builds and releases,
    /// unlike the standard library's hasher.
    pub fn owns(&self, repo: &Repository) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let endpoint = repo.endpoint().to_string();
        for byte in endpoint.bytes().chain([b'/']).chain(repo.path().bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash % u64::from(self.count) == u64::from(self.index)
    }
}

/// The wants this shard owns: by (destination registry, image), so that
/// every shard plans and copies whole repositories.
pub fn shard(wants: Vec<RepoWant>, shard: Shard) -> Vec<RepoWant> {
    wants.into_iter().filter(|w| shard.owns(&w.repo)).collect()
}

/// What a read said about one thing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "value")]
pub enum Observed<T> {
    /// The registry has it; for a tag, the value is the digest it points at.
    Present(T),
    /// The registry answered that it does not have it.
    Absent,
    /// The read failed; the text says why (already redacted).
    Unknown(String),
}

/// What a destination repository holds, for the tags and digests asked about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestState {
    /// Each tag read, and the digest it points at.
    pub tags: BTreeMap<Tag, Observed<Digest>>,
    /// Each digest read on its own; a digest a present tag points at may be
    /// left out (see [`DestState::tagged_digests`]).
    pub digests: BTreeMap<Digest, Observed<()>>,
    /// The registry's repository list did not have this repository: nothing
    /// in it needs an existence check before writing.
    #[serde(default)]
    pub repository_absent: bool,
    /// Attachment tags present here at another digest whose source version
    /// keeps everything this one has (cosign adds signatures to its `.sig`
    /// manifest): these may be replaced. Any other attachment tag never moves.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub replaceable: BTreeSet<Tag>,
}

impl DestState {
    /// The digests the read tags point at: present, whatever else was read.
    pub fn tagged_digests(&self) -> impl Iterator<Item = &Digest> {
        self.tags.values().filter_map(|o| match o {
            Observed::Present(d) => Some(d),
            _ => None,
        })
    }

    /// Whether `digest` is in the repository, using what the tags said too.
    fn digest(&self, digest: &Digest) -> Observed<()> {
        if self.tagged_digests().any(|d| d == digest) {
            return Observed::Present(());
        }
        self.digests.get(digest).cloned().unwrap_or_else(|| {
            Observed::Unknown("the destination was not read for this digest".to_string())
        })
    }
    fn tag(&self, tag: &Tag) -> Observed<Digest> {
        self.tags.get(tag).cloned().unwrap_or_else(|| {
            Observed::Unknown("the destination was not read for this tag".to_string())
        })
    }
}

/// What the registries hold, as far as the plan needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Per destination repository: what was read there. A repository that
    /// is missing here was not read, so everything in it is unknown.
    #[serde(with = "repo_map")]
    pub destinations: BTreeMap<Repository, DestState>,
    /// Per source repository: whether each asked-about digest is there.
    #[serde(with = "repo_map")]
    pub sources: BTreeMap<Repository, BTreeMap<Digest, Observed<()>>>,
    /// Per source repository: the attachments of each digest that is or
    /// will be promoted from it (only when attachments are copied).
    #[serde(default, with = "repo_map")]
    pub attachments: BTreeMap<Repository, BTreeMap<Digest, Observed<Vec<Attachment>>>>,
    /// Manifests found where attachments live (cosign tags, referrers) that
    /// are no attachment of their image: left behind, and counted here.
    #[serde(default)]
    pub attachments_skipped: usize,
}

impl Inventory {
    /// Add what `other` read (of other repositories, or more digests of
    /// the same ones) to this inventory.
    pub fn merge(&mut self, other: Inventory) {
        self.destinations.extend(other.destinations);
        for (repo, digests) in other.sources {
            self.sources.entry(repo).or_default().extend(digests);
        }
        for (repo, digests) in other.attachments {
            self.attachments.entry(repo).or_default().extend(digests);
        }
        self.attachments_skipped += other.attachments_skipped;
    }
}

/// An attachment of a digest in its source, admitted as one (a signature,
/// attestation or SBOM that names its subject, see
/// [`crate::oci::admit_attachment`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Its own digest.
    pub digest: Digest,
    /// Its artifact type (or config media type), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The cosign tag it lives under (`sha256-<hex>.sig`); `None` for a
    /// referrer known by its `subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<Tag>,
    /// Its own attachments (a signature on an SBOM).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// The source `digest` is promoted from into `state`'s repository, for
/// reading its attachments: the source it is copied from when the
/// destination lacks it, else the first source that names it. `None` when
/// the digest will not be in the destination after the run (lost, blocked).
pub fn attachment_source<'a>(
    d: &'a DigestWant,
    digest: &Digest,
    state: &DestState,
    inventory: &Inventory,
) -> Option<&'a SourceRef> {
    match state.digest(digest) {
        Observed::Present(()) => d.sources.iter().next(),
        Observed::Absent => d.sources.iter().find(|s| {
            inventory
                .sources
                .get(&s.repo)
                .and_then(|states| states.get(digest))
                == Some(&Observed::Present(()))
        }),
        Observed::Unknown(_) => None,
    }
}

/// The destination reads the inventory must make for `want`: every wanted
/// tag, and every wanted digest (a digest reachable through a wanted tag at
/// the right digest needs no read of its own, the caller may skip it).
pub fn destination_reads(want: &RepoWant) -> (BTreeSet<&Tag>, BTreeSet<&Digest>) {
    let tags = want.digests.values().flat_map(|d| d.tags.keys()).collect();
    let digests = want.digests.keys().collect();
    (tags, digests)
}

/// The source digests that must be read once the destination is known: only
/// what must be copied. When the destination already holds everything, the
/// source gets no request at all.
pub fn source_reads(wants: &[RepoWant], inventory: &Inventory) -> BTreeSet<(Repository, Digest)> {
    let mut reads = BTreeSet::new();
    for want in wants {
        let empty = DestState::default();
        let state = inventory.destinations.get(&want.repo).unwrap_or(&empty);
        let conflicts = conflicting_tags(want);
        for (digest, d) in &want.digests {
            // A tag to write, or a followed one to move here.
            let writes = |t: &Tag| match state.tag(t) {
                Observed::Absent => true,
                Observed::Present(current) => current != *digest && want.movable.contains(t),
                Observed::Unknown(_) => false,
            };
            let needs_content = d.tags.is_empty()
                || d.tags
                    .keys()
                    .any(|t| !conflicts.contains_key(t) && writes(t));
            if needs_content && state.digest(digest) == Observed::Absent {
                for source in &d.sources {
                    reads.insert((source.repo.clone(), digest.clone()));
                }
            }
        }
    }
    reads
}

// ---------------------------------------------------------------- output

/// What to do (or why not) for one (destination, image, digest[, tag]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", from = "ActionFields")]
pub enum Action {
    /// Copy the digest (manifest, children, blobs) from the source.
    Copy,
    /// Copy an attachment of the digest (a signature, attestation or SBOM:
    /// the item's `tag` is its cosign tag, if it has one) from the source.
    Attach {
        /// The attachment's own digest.
        attachment: Digest,
        /// What it is, as its artifact type (or config media type) says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        artifact_type: Option<String>,
    },
    /// Point the tag at the digest; the digest is there (or is copied first).
    Tag,
    /// Point a tag the manifest lets move (`follow:`) from the digest it
    /// points at now to this one.
    Move {
        /// The digest the tag points at in the destination now.
        from: Digest,
    },
    /// Neither source nor destination has the digest.
    Lost,
    /// The tag already points at another digest; tags never move.
    #[serde(rename = "refused")]
    RefusedTagMove {
        /// The digest the tag points at in the destination now.
        current: Digest,
    },
    /// A gate (`--gate`) refused the digest: nothing of it is written.
    #[serde(rename = "refused")]
    Gated {
        /// The gate's reason (the first line of its stderr).
        reason: String,
    },
    /// Two manifest entries want this tag on different digests.
    Conflict,
    /// A read failed, so the truth is unknown; nothing is done for this edge.
    Blocked {
        /// Why the read failed (already redacted).
        reason: String,
    },
}

/// [`Action`] as it is read back: a tag move and a gate's refusal are both
/// `refused`, told apart by their fields.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
enum ActionFields {
    Copy,
    Attach {
        attachment: Digest,
        #[serde(default)]
        artifact_type: Option<String>,
    },
    Tag,
    Move {
        from: Digest,
    },
    Lost,
    Refused {
        #[serde(default)]
        current: Option<Digest>,
        #[serde(default)]
        reason: Option<String>,
    },
    Conflict,
    Blocked {
        reason: String,
    },
}

impl From<ActionFields> for Action {
    fn from(fields: ActionFields) -> Action {
        match fields {
            ActionFields::Copy => Action::Copy,
            ActionFields::Attach {
                attachment,
                artifact_type,
            } => Action::Attach {
                attachment,
                artifact_type,
            },
            ActionFields::Tag => Action::Tag,
            ActionFields::Move { from } => Action::Move { from },
            ActionFields::Lost => Action::Lost,
            ActionFields::Refused {
                current: Some(current),
                ..
            } => Action::RefusedTagMove { current },
            ActionFields::Refused { reason, .. } => Action::Gated {
                reason: reason.unwrap_or_default(),
            },
            ActionFields::Conflict => Action::Conflict,
            ActionFields::Blocked { reason } => Action::Blocked { reason },
        }
    }
}

impl Action {
    /// The kind as one lowercase word, as in text output and JSON `kind`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Copy => "copy",
            Action::Attach { .. } => "attach",
            Action::Tag => "tag",
            Action::Move { .. } => "move",
            Action::Lost => "lost",
            Action::RefusedTagMove { .. } | Action::Gated { .. } => "refused",
            Action::Conflict => "conflict",
            Action::Blocked { .. } => "blocked",
        }
    }
    /// Whether this item is work the executor carries out.
    pub fn is_work(&self) -> bool {
        matches!(
            self,
            Action::Copy | Action::Tag | Action::Move { .. } | Action::Attach { .. }
        )
    }
    /// Whether this item fails the plan (exit code 3), in a dry run too.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Action::RefusedTagMove { .. } | Action::Gated { .. } | Action::Conflict
        )
    }
}

/// One line of the plan: an action on one digest, or one tag of it, in one
/// destination repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanItem {
    /// What to do, or why nothing is done.
    #[serde(flatten)]
    pub action: Action,
    /// For display: the destination registry as the manifest names it.
    pub registry: RegistryName,
    /// For display: the image name, relative to `registry`.
    pub image: ImageName,
    /// The destination repository the item is about.
    pub repo: Repository,
    /// The digest the item is about.
    pub digest: Digest,
    /// The tag the item is about; `None` for the digest itself (a copy, or a
    /// digest-only entry).
    pub tag: Option<Tag>,
    /// The source to copy from (for `copy`, and for `lost`: the first source asked).
    pub source: Option<SourceRef>,
    /// The manifest entry behind this item.
    pub location: Location,
}

impl PlanItem {
    /// Human reason for this item, one short phrase.
    pub fn reason(&self) -> String {
        match &self.action {
            Action::Copy => "digest absent in destination, present in source".to_string(),
            Action::Attach {
                attachment,
                artifact_type,
            } => {
                let what = artifact_type.as_deref().unwrap_or("attachment");
                match &self.tag {
                    Some(_) => format!("{what} {attachment}, under its tag"),
                    None => format!("{what} {attachment}, a referrer"),
                }
            }
            Action::Tag => "tag absent in destination".to_string(),
            Action::Move { from } => format!(
                "tag follows its source (`follow`, {}): it points at {from} now",
                self.location
            ),
            Action::Lost => "digest found in neither source nor destination".to_string(),
            Action::RefusedTagMove { current } => format!(
                "tag already points at {current}; a promoted tag never moves (wanted by {})",
                self.location
            ),
            Action::Gated { reason } => format!("refused by the gate: {reason}"),
            Action::Conflict => format!(
                "two manifest entries want this tag on different digests ({})",
                self.location
            ),
            Action::Blocked { reason } => format!("blocked: {reason}"),
        }
    }

    /// The destination reference: `registry/image:tag`, or `registry/image`
    /// for a digest-only item (the digest has a column of its own).
    pub fn dest_ref(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}/{}:{tag}", self.registry, self.image),
            None => format!("{}/{}", self.registry, self.image),
        }
    }

    /// Plan order: (destination, image, digest, copy before attachments
    /// before tags, tag, attachment).
    pub fn sort_key(
        &self,
    ) -> (
        &RegistryName,
        &ImageName,
        &Digest,
        u8,
        Option<&Tag>,
        Option<&Digest>,
    ) {
        // Copies sort before what depends on them; attachments before the
        // tags they must precede.
        let (rank, attachment) = match &self.action {
            Action::Copy => (0, None),
            Action::Attach { attachment, .. } => (1, Some(attachment)),
            _ => (2, None),
        };
        (
            &self.registry,
            &self.image,
            &self.digest,
            rank,
            self.tag.as_ref(),
            attachment,
        )
    }
}

/// The plan: items sorted by (destination, image, digest, tag), so that two
/// plans can be diffed line by line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Every item, work and problems alike, in plan order.
    pub items: Vec<PlanItem>,
    /// (digest, tag) edges already in place (M ∩ D).
    pub already_present: usize,
    /// Destination repositories with copies that the inventory saw absent:
    /// the executor writes into them without existence checks.
    #[serde(default)]
    pub new_repositories: BTreeSet<Repository>,
    /// Manifests found where attachments live that are none (see
    /// [`Inventory::attachments_skipped`]).
    #[serde(default)]
    pub attachments_skipped: usize,
}

/// Counts per kind, for the summary line and the JSON report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Digests to copy.
    pub copy: usize,
    /// Attachments to copy.
    #[serde(default)]
    pub attach: usize,
    /// Tags to write.
    pub tag: usize,
    /// Followed tags to move to a new digest.
    #[serde(default, rename = "move")]
    pub moved: usize,
    /// Items whose digest neither source nor destination has.
    pub lost: usize,
    /// Tags that would have to move: these fail the plan.
    pub refused: usize,
    /// Tags two manifest entries want on different digests: these fail the plan.
    pub conflict: usize,
    /// Items left undone because a read failed.
    pub blocked: usize,
    /// (digest, tag) edges already in place, as [`Plan::already_present`].
    pub already_present: usize,
    /// As [`Plan::attachments_skipped`].
    #[serde(default)]
    pub attachments_skipped: usize,
}

impl Plan {
    /// One plan of `parts` (the plans of disjoint sets of repositories, as
    /// a pipelined run makes them), in plan order: the same plan as
    /// planning all their wants at once gives.
    pub fn merge_all(parts: impl IntoIterator<Item = Plan>) -> Plan {
        let mut merged = Plan::default();
        for part in parts {
            merged.items.extend(part.items);
            merged.already_present += part.already_present;
            merged.attachments_skipped += part.attachments_skipped;
            merged.new_repositories.extend(part.new_repositories);
        }
        merged.items.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        merged
    }

    /// How many items of each kind the plan has.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            already_present: self.already_present,
            attachments_skipped: self.attachments_skipped,
            ..Counts::default()
        };
        for item in &self.items {
            match item.action {
                Action::Copy => counts.copy += 1,
                Action::Attach { .. } => counts.attach += 1,
                Action::Tag => counts.tag += 1,
                Action::Move { .. } => counts.moved += 1,
                Action::Lost => counts.lost += 1,
                Action::RefusedTagMove { .. } | Action::Gated { .. } => counts.refused += 1,
                Action::Conflict => counts.conflict += 1,
                Action::Blocked { .. } => counts.blocked += 1,
            }
        }
        counts
    }
    /// Whether any item fails the plan (a refused tag move or a conflict).
    pub fn has_refusals(&self) -> bool {
        self.items.iter().any(|i| i.action.is_refusal())
    }
    /// Whether any item was blocked by a failed read.
    pub fn has_blocked(&self) -> bool {
        self.items
            .iter()
            .any(|i| matches!(i.action, Action::Blocked { .. }))
    }
    /// The items the executor carries out (copies and tags), in plan order.
    pub fn work(&self) -> impl Iterator<Item = &PlanItem> {
        self.items.iter().filter(|i| i.action.is_work())
    }
}

// ---------------------------------------------------------------- planning

/// Compute the plan. Pure: the same input always gives the same plan.
pub fn plan(wants: &[RepoWant], inventory: &Inventory) -> Plan {
    let mut items = Vec::new();
    let mut already_present = 0;
    let empty_dest = DestState::default();
    let empty_source = BTreeMap::new();
    for want in wants {
        let state = inventory
            .destinations
            .get(&want.repo)
            .unwrap_or(&empty_dest);
        let conflicts = conflicting_tags(want);
        for (digest, d) in &want.digests {
            let item = |action: Action, tag: Option<&Tag>, source: Option<&SourceRef>| PlanItem {
                action,
                registry: want.registry.clone(),
                image: want.image.clone(),
                repo: want.repo.clone(),
                digest: digest.clone(),
                tag: tag.cloned(),
                source: source.cloned(),
                location: tag
                    .and_then(|t| d.tags.get(t))
                    .unwrap_or(&d.location)
                    .clone(),
            };

            // Which tags need writing, which are refused.
            let mut tags_to_add = Vec::new();
            let mut problems = Vec::new();
            for tag in d.tags.keys() {
                if conflicts.contains_key(tag) {
                    problems.push(item(Action::Conflict, Some(tag), None));
                    continue;
                }
                match state.tag(tag) {
                    Observed::Present(current) if &current == digest => already_present += 1,
                    Observed::Present(current) if want.movable.contains(tag) => {
                        tags_to_add.push((tag, Some(current)))
                    }
                    Observed::Present(current) => {
                        problems.push(item(Action::RefusedTagMove { current }, Some(tag), None))
                    }
                    Observed::Absent => tags_to_add.push((tag, None)),
                    Observed::Unknown(reason) => {
                        problems.push(item(Action::Blocked { reason }, Some(tag), None))
                    }
                }
            }
            items.extend(problems);

            let untagged = d.tags.is_empty();
            // The digest's own items (copy, tags, lost, blocked).
            let mut own = Vec::new();
            if untagged || !tags_to_add.is_empty() {
                match state.digest(digest) {
                    Observed::Present(()) => {
                        if untagged {
                            already_present += 1;
                        }
                        for (tag, from) in tags_to_add {
                            let action = match from {
                                Some(from) => Action::Move { from },
                                None => Action::Tag,
                            };
                            own.push(item(action, Some(tag), None));
                        }
                    }
                    Observed::Unknown(reason) => {
                        let blocked = Action::Blocked { reason };
                        if untagged {
                            own.push(item(blocked.clone(), None, None));
                        }
                        for (tag, _) in tags_to_add {
                            own.push(item(blocked.clone(), Some(tag), None));
                        }
                    }
                    Observed::Absent => {
                        let mut unknown = None;
                        let mut found = None;
                        for source in &d.sources {
                            let states =
                                inventory.sources.get(&source.repo).unwrap_or(&empty_source);
                            match states.get(digest) {
                                Some(Observed::Present(())) => {
                                    found = Some(source);
                                    break;
                                }
                                Some(Observed::Absent) => {}
                                Some(Observed::Unknown(reason)) => {
                                    unknown.get_or_insert_with(|| reason.clone());
                                }
                                None => {
                                    unknown.get_or_insert_with(|| {
                                        "the source was not read for this digest".to_string()
                                    });
                                }
                            }
                        }
                        let first_source = d.sources.iter().next();
                        let (digest_action, tag_action) = match (found, unknown) {
                            (Some(_), _) => (Action::Copy, Action::Tag),
                            (None, Some(reason)) => (
                                Action::Blocked {
                                    reason: reason.clone(),
                                },
                                Action::Blocked { reason },
                            ),
                            (None, None) => (Action::Lost, Action::Lost),
                        };
                        let source = found.or(first_source);
                        if digest_action == Action::Copy || untagged {
                            own.push(item(digest_action, None, source));
                        }
                        for (tag, from) in tags_to_add {
                            let source = if tag_action == Action::Lost {
                                source
                            } else {
                                None
                            };
                            let action = match (&tag_action, from) {
                                (Action::Tag, Some(from)) => Action::Move { from },
                                (action, _) => action.clone(),
                            };
                            own.push(item(action, Some(tag), source));
                        }
                    }
                }
            }

            // Its attachments, when it is (or will be) in the destination.
            let copied = own.iter().any(|i| i.action == Action::Copy);
            let stays = match state.digest(digest) {
                Observed::Present(()) => true,
                Observed::Absent => copied,
                Observed::Unknown(_) => false,
            };
            let source = stays
                .then(|| attachment_source(d, digest, state, inventory))
                .flatten();
            let read = source.and_then(|source| {
                inventory
                    .attachments
                    .get(&source.repo)
                    .and_then(|by_digest| by_digest.get(digest))
                    .map(|observed| (source, observed))
            });
            let mut attach_items = Vec::new();
            let mut unknown = None;
            match read {
                None | Some((_, Observed::Absent)) => {}
                Some((_, Observed::Unknown(reason))) => unknown = Some(reason.clone()),
                Some((source, Observed::Present(list))) => {
                    let mut context = AttachContext {
                        want,
                        state,
                        source,
                        location: &d.location,
                        items: &mut attach_items,
                        already_present: &mut already_present,
                        unknown: &mut unknown,
                    };
                    context.plan(digest, list);
                }
            }
            if let Some(reason) = unknown {
                // An image is never promoted without what is attached to it:
                // what cannot be known blocks the image's writes too.
                let reason = format!("its attachments are unknown: {reason}");
                for i in own.iter_mut().filter(|i| i.action.is_work()) {
                    i.action = Action::Blocked {
                        reason: reason.clone(),
                    };
                }
                if !copied && own.is_empty() {
                    own.push(item(Action::Blocked { reason }, None, None));
                }
                attach_items.retain(|i| !i.action.is_work());
            }
            items.extend(own);
            items.extend(attach_items);
        }
    }
    items.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let new_repositories = items
        .iter()
        .filter(|i| i.action == Action::Copy)
        .filter(|i| {
            inventory
                .destinations
                .get(&i.repo)
                .is_some_and(|s| s.repository_absent)
        })
        .map(|i| i.repo.clone())
        .collect();
    Plan {
        items,
        already_present,
        new_repositories,
        attachments_skipped: inventory.attachments_skipped,
    }
}

/// Planning the attachments of one digest in one destination repository.
struct AttachContext<'a> {
    want: &'a RepoWant,
    state: &'a DestState,
    source: &'a SourceRef,
    location: &'a Location,
    items: &'a mut Vec<PlanItem>,
    already_present: &'a mut usize,
    /// Set when something about the attachments is unknown.
    unknown: &'a mut Option<String>,
}

impl AttachContext<'_> {
    /// Items for `attachments` of `subject`, and, for each one that is or
    /// will be in the destination, for its own attachments.
    fn plan(&mut self, subject: &Digest, attachments: &[Attachment]) {
        for a in attachments {
            let item = |action: Action| PlanItem {
                action,
                registry: self.want.registry.clone(),
                image: self.want.image.clone(),
                repo: self.want.repo.clone(),
                digest: subject.clone(),
                tag: a.tag.clone(),
                source: Some(self.source.clone()),
                location: self.location.clone(),
            };
            let attach = Action::Attach {
                attachment: a.digest.clone(),
                artifact_type: a.artifact_type.clone(),
            };
            let observed = match &a.tag {
                Some(tag) => match self.state.tag(tag) {
                    Observed::Present(current) if current == a.digest => Observed::Present(()),
                    // cosign re-signed: the new version keeps the old signatures.
                    Observed::Present(_) if self.state.replaceable.contains(tag) => {
                        Observed::Absent
                    }
                    Observed::Present(current) => {
                        self.items.push(item(Action::RefusedTagMove { current }));
                        continue;
                    }
                    Observed::Absent => Observed::Absent,
                    Observed::Unknown(reason) => Observed::Unknown(reason),
                },
                None => self.state.digest(&a.digest),
            };
            match observed {
                Observed::Present(()) => *self.already_present += 1,
                Observed::Absent => self.items.push(item(attach)),
                Observed::Unknown(reason) => {
                    self.unknown.get_or_insert(reason.clone());
                    self.items.push(item(Action::Blocked { reason }));
                    continue;
                }
            }
            self.plan(&a.digest, &a.attachments);
        }
    }
}

/// What a gate said of a source digest that was not "yes".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateVerdict {
    /// Refused, with the gate's reason.
    Refused(String),
    /// No verdict (the gate timed out or could not run), with why.
    Undecided(String),
}

/// The source digests the plan copies, each once: what gates are asked
/// about.
pub fn gated_copies(plan: &Plan) -> BTreeSet<(Repository, Digest)> {
    plan.items
        .iter()
        .filter(|i| i.action == Action::Copy)
        .filter_map(|i| {
            i.source
                .as_ref()
                .map(|s| (s.repo.clone(), i.digest.clone()))
        })
        .collect()
}

/// Apply the gates' `verdicts` (by source repository and digest) to
/// `plan`: a refused digest is not written anywhere (its copy, its tags and
/// its attachments become `refused`), an undecided one is blocked.
pub fn apply_verdicts(plan: &mut Plan, verdicts: &BTreeMap<(Repository, Digest), GateVerdict>) {
    // (destination repository, digest) of every refused or undecided copy,
    // then of the attachments below them.
    let mut affected: BTreeMap<(Repository, Digest), GateVerdict> = BTreeMap::new();
    for item in plan.items.iter().filter(|i| i.action == Action::Copy) {
        let Some(source) = &item.source else { continue };
        if let Some(verdict) = verdicts.get(&(source.repo.clone(), item.digest.clone())) {
            affected.insert((item.repo.clone(), item.digest.clone()), verdict.clone());
        }
    }
    loop {
        let mut grew = false;
        for item in &plan.items {
            if let Action::Attach { attachment, .. } = &item.action {
                let key = (item.repo.clone(), item.digest.clone());
                if let Some(verdict) = affected.get(&key).cloned() {
                    grew |= affected
                        .insert((item.repo.clone(), attachment.clone()), verdict)
                        .is_none();
                }
            }
        }
        if !grew {
            break;
        }
    }
    for item in plan.items.iter_mut().filter(|i| i.action.is_work()) {
        if let Some(verdict) = affected.get(&(item.repo.clone(), item.digest.clone())) {
            item.action = match verdict {
                GateVerdict::Refused(reason) => Action::Gated {
                    reason: reason.clone(),
                },
                GateVerdict::Undecided(reason) => Action::Blocked {
                    reason: format!("the gate gave no verdict: {reason}"),
                },
            };
        }
    }
}

/// Group the plan's work by destination repository, in plan order: the unit the
/// executor works in.
pub fn work_by_repo(plan: &Plan) -> Vec<(&Repository, Vec<&PlanItem>)> {
    let mut order: Vec<&Repository> = Vec::new();
    let mut groups: HashMap<&Repository, Vec<&PlanItem>> = HashMap::new();
    for item in plan.work() {
        groups
            .entry(&item.repo)
            .or_insert_with(|| {
                order.push(&item.repo);
                Vec::new()
            })
            .push(item);
    }
    order
        .into_iter()
        .map(|repo| {
            let items = groups.remove(repo).unwrap_or_default();
            (repo, items)
        })
        .collect()
}

#[cfg(test)]
mod tests;
