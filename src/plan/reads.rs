//! What the inventory must read for the planner: the destination's wanted
//! tags and digests, then only the source digests a copy needs (by the same
//! tag rule the planner applies), and where each digest's attachments are
//! read from.

use std::collections::BTreeSet;

use crate::reference::{Digest, Repository, Tag};

use super::rules::TagNeed;
use super::{conflicting_tags, DestState, DigestWant, Inventory, Observed, RepoWant, SourceRef};

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
/// what must be copied (a damaged digest is copied again). When the destination already holds everything, the
/// source gets no request at all.
pub fn source_reads(wants: &[RepoWant], inventory: &Inventory) -> BTreeSet<(Repository, Digest)> {
    let mut reads = BTreeSet::new();
    for want in wants {
        let empty = DestState::default();
        let state = inventory.destinations.get(&want.repo).unwrap_or(&empty);
        let conflicts = conflicting_tags(want);
        for (digest, d) in &want.digests {
            let needs_content = d.tags.is_empty()
                || state.damaged.contains_key(digest)
                || d.tags
                    .keys()
                    .any(|t| TagNeed::of(want, &conflicts, state, digest, t).writes());
            if needs_content && state.digest(digest) == Observed::Absent {
                for source in &d.sources {
                    reads.insert((source.repo.clone(), digest.clone()));
                }
            }
        }
    }
    reads
}
