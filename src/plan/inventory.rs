//! What the registries hold, as far as the plan needs to know: the
//! inventory the planner reads. Existence is three-valued: present, absent,
//! or unknown (a read failed), and unknown is never read as absent.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::reference::{Digest, Repository, Tag};

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
    /// Digests a check of their whole graph (`verify --repair`) did not
    /// find complete here. Their tags only say the top manifest answers,
    /// so these are planned from this instead (see [`Damage`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub damaged: BTreeMap<Digest, Damage>,
}

/// Per destination repository, the digests a check of their graphs found
/// damaged: what `verify` hands a repair.
pub type Damaged = BTreeMap<Repository, BTreeMap<Digest, Damage>>;

/// What a check of a digest's whole graph (manifests, children, blobs)
/// found wrong in a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "value")]
pub enum Damage {
    /// Part of it is missing or wrong (what was found, for people): the
    /// digest is planned as absent, so it is copied again whatever its
    /// tags say, and a copy re-checks every part of its graph.
    Incomplete(String),
    /// The check could not read it (why): the digest is unknown, so its
    /// edges are blocked rather than read as complete.
    Unchecked(String),
}

impl DestState {
    /// The digests the read tags point at: present, whatever else was read.
    pub fn tagged_digests(&self) -> impl Iterator<Item = &Digest> {
        self.tags.values().filter_map(|o| match o {
            Observed::Present(d) => Some(d),
            _ => None,
        })
    }

    /// Whether `digest` is in the repository, using what the tags said
    /// too, unless a check of its graph found it damaged.
    pub(super) fn digest(&self, digest: &Digest) -> Observed<()> {
        match self.damaged.get(digest) {
            Some(Damage::Incomplete(_)) => return Observed::Absent,
            Some(Damage::Unchecked(reason)) => return Observed::Unknown(reason.clone()),
            None => {}
        }
        if self.tagged_digests().any(|d| d == digest) {
            return Observed::Present(());
        }
        self.digests.get(digest).cloned().unwrap_or_else(|| {
            Observed::Unknown("the destination was not read for this digest".to_string())
        })
    }
    pub(super) fn tag(&self, tag: &Tag) -> Observed<Digest> {
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
