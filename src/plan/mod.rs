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
//!
//! Layout: `want` (what the manifests want), `inventory` (what the
//! registries hold), `reads` (what the inventory must read), `item` (one
//! line of a plan), `rules` and `attach` (the rules), `gate` (the gates'
//! verdicts applied).

use std::collections::BTreeSet;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub use crate::reference::Repository;

mod attach;
mod gate;
mod inventory;
mod item;
mod reads;
mod rules;
mod want;

pub use gate::{apply_verdicts, gated_copies, GateVerdict};
pub use inventory::{Attachment, Damage, Damaged, DestState, Inventory, Observed};
pub use item::{Action, Edge, PlanItem};
pub use reads::{attachment_source, destination_reads, source_reads};
use want::conflicting_tags;
pub use want::{shard, wants, DigestWant, RepoWant, Shard, ShardError, SourceRef};

/// Compute the plan. Pure: the same input always gives the same plan.
pub fn plan(wants: &[RepoWant], inventory: &Inventory) -> Plan {
    let mut planner = rules::Planner::new(inventory);
    for want in wants {
        planner.repo(want);
    }
    planner.finish()
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
                Action::Copy { .. } => counts.copy += 1,
                Action::Attach { .. } => counts.attach += 1,
                Action::Tag { .. } => counts.tag += 1,
                Action::Move { .. } => counts.moved += 1,
                Action::Lost(_) => counts.lost += 1,
                Action::RefusedTagMove { .. } | Action::Gated { .. } => counts.refused += 1,
                Action::Conflict { .. } => counts.conflict += 1,
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

/// Group the plan's work by destination repository, in plan order: the unit the
/// executor works in.
pub fn work_by_repo(plan: &Plan) -> Vec<(&Repository, Vec<&PlanItem>)> {
    let mut groups: IndexMap<&Repository, Vec<&PlanItem>> = IndexMap::new();
    for item in plan.work() {
        groups.entry(&item.repo).or_default().push(item);
    }
    groups.into_iter().collect()
}

#[cfg(test)]
mod tests;

/// Plan items for the tests of the planner's users (reports, plan files).
#[cfg(test)]
pub(crate) mod fixtures {
    use std::path::Path;
    use std::sync::Arc;

    use crate::diag::Location;
    use crate::reference::{Digest, ImageName, RegistryName, Tag};

    use super::{Action, PlanItem, SourceRef};

    /// `src.example/stage/foo`.
    pub(crate) fn source() -> SourceRef {
        let src = RegistryName::parse("src.example/stage").unwrap();
        SourceRef {
            repo: src.repository(&ImageName::parse("foo").unwrap()),
            registry: src,
        }
    }

    /// `tag 1.0`.
    pub(crate) fn tag_1_0() -> Action {
        Action::Tag {
            tag: Tag::parse("1.0").unwrap(),
        }
    }

    /// An item about `sha256_of("x")` in `dst.example/prod/foo`, wanted at
    /// `images/a/images.yaml:7:5`.
    pub(crate) fn item(action: Action) -> PlanItem {
        let dst = RegistryName::parse("dst.example/prod").unwrap();
        let image = ImageName::parse("foo").unwrap();
        PlanItem {
            action,
            repo: dst.repository(&image),
            registry: dst,
            image,
            digest: Digest::sha256_of(b"x"),
            location: Location {
                file: Arc::from(Path::new("images/a/images.yaml")),
                line: 7,
                col: 5,
            },
        }
    }
}
