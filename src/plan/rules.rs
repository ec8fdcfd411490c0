//! The planning rules, one function each: what a wanted tag needs (the tag
//! rule, which [`super::source_reads`] shares), what the digest itself
//! needs, its attachments, and the rule that an image is never promoted
//! without what is attached to it.

use std::collections::BTreeMap;

use crate::reference::{Digest, Tag};

use super::attach::AttachContext;
use super::{
    attachment_source, conflicting_tags, Action, DestState, DigestWant, Edge, Inventory, Observed,
    Plan, PlanItem, RepoWant, SourceRef,
};

/// What one wanted tag needs in the destination: the tag rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TagNeed {
    /// It points at the digest already.
    InPlace,
    /// It is absent: write it.
    Write,
    /// It points elsewhere and the manifest lets it move (`follow:`).
    Move {
        /// Where it points now.
        from: Digest,
    },
    /// It points elsewhere: refused, a promoted tag never moves.
    Refused {
        /// Where it points now.
        current: Digest,
    },
    /// Its read failed.
    Unknown(String),
    /// Two manifest entries want it on different digests.
    Conflict,
}

impl TagNeed {
    /// `tag` of `digest` in `want`, against `state`.
    pub(super) fn of(
        want: &RepoWant,
        conflicts: &BTreeMap<&Tag, Vec<&Digest>>,
        state: &DestState,
        digest: &Digest,
        tag: &Tag,
    ) -> TagNeed {
        if conflicts.contains_key(tag) {
            return TagNeed::Conflict;
        }
        match state.tag(tag) {
            Observed::Present(current) if &current == digest => TagNeed::InPlace,
            Observed::Present(current) if want.movable.contains(tag) => {
                TagNeed::Move { from: current }
            }
            Observed::Present(current) => TagNeed::Refused { current },
            Observed::Absent => TagNeed::Write,
            Observed::Unknown(reason) => TagNeed::Unknown(reason),
        }
    }

    /// Whether the tag gets written (new, or moved here).
    pub(super) fn writes(&self) -> bool {
        matches!(self, TagNeed::Write | TagNeed::Move { .. })
    }
}

/// A tag to write: the tag, and the digest it moves from if it moves.
type TagWrite<'a> = (&'a Tag, Option<Digest>);

/// The planner over one inventory, collecting items as the rules find them.
pub(super) struct Planner<'a> {
    inventory: &'a Inventory,
    items: Vec<PlanItem>,
    already_present: usize,
}

/// One wanted digest in one destination repository, with what is known
/// about it there.
struct Wanted<'a> {
    want: &'a RepoWant,
    state: &'a DestState,
    digest: &'a Digest,
    d: &'a DigestWant,
}

impl Wanted<'_> {
    /// An item about this digest, at the manifest line of `tag` (or of the
    /// digest entry).
    fn item(&self, action: Action) -> PlanItem {
        let location = action
            .tag()
            .and_then(|t| self.d.tags.get(t))
            .unwrap_or(&self.d.location)
            .clone();
        PlanItem {
            action,
            registry: self.want.registry.clone(),
            image: self.want.image.clone(),
            repo: self.want.repo.clone(),
            digest: self.digest.clone(),
            location,
        }
    }

    fn untagged(&self) -> bool {
        self.d.tags.is_empty()
    }

    /// Whether the digest itself is an edge of the plan, apart from its
    /// tags: an untagged entry, or a digest whose graph a check found
    /// damaged (its content is then the work, whatever its tags say).
    fn digest_is_an_edge(&self) -> bool {
        self.untagged() || self.state.damaged.contains_key(self.digest)
    }
}

/// Where the source has the digest: the first source that has it, or why
/// none can be said to.
enum Found<'a> {
    In(&'a SourceRef),
    Unknown(String),
    Nowhere,
}

impl<'a> Planner<'a> {
    pub(super) fn new(inventory: &'a Inventory) -> Planner<'a> {
        Planner {
            inventory,
            items: Vec::new(),
            already_present: 0,
        }
    }

    /// Every rule, for every digest `want` wants.
    pub(super) fn repo(&mut self, want: &RepoWant) {
        let empty = DestState::default();
        let state = self
            .inventory
            .destinations
            .get(&want.repo)
            .unwrap_or(&empty);
        let conflicts = conflicting_tags(want);
        for (digest, d) in &want.digests {
            let wanted = Wanted {
                want,
                state,
                digest,
                d,
            };
            let writes = self.tags(&wanted, &conflicts);
            let mut own = self.digest(&wanted, writes);
            let copied = own.iter().any(|i| matches!(i.action, Action::Copy { .. }));
            let (mut attached, unknown) = self.attachments(&wanted, copied);
            if let Some(reason) = unknown {
                not_without_attachments(&wanted, &mut own, &mut attached, copied, &reason);
            }
            self.items.extend(own);
            self.items.extend(attached);
        }
    }

    /// The tag rule for each wanted tag: problems are items at once, tags
    /// in place are counted, and the tags to write are returned.
    fn tags<'w>(
        &mut self,
        wanted: &Wanted<'w>,
        conflicts: &BTreeMap<&Tag, Vec<&Digest>>,
    ) -> Vec<TagWrite<'w>> {
        let mut writes = Vec::new();
        for tag in wanted.d.tags.keys() {
            let need = TagNeed::of(wanted.want, conflicts, wanted.state, wanted.digest, tag);
            let problem = match need {
                TagNeed::InPlace => {
                    self.already_present += 1;
                    continue;
                }
                TagNeed::Write => {
                    writes.push((tag, None));
                    continue;
                }
                TagNeed::Move { from } => {
                    writes.push((tag, Some(from)));
                    continue;
                }
                TagNeed::Conflict => Action::Conflict { tag: tag.clone() },
                TagNeed::Refused { current } => Action::RefusedTagMove {
                    tag: tag.clone(),
                    current,
                    source: None,
                },
                TagNeed::Unknown(reason) => Action::Blocked {
                    reason,
                    edge: Edge {
                        tag: Some(tag.clone()),
                        source: None,
                    },
                },
            };
            self.items.push(wanted.item(problem));
        }
        writes
    }

    /// The digest's own items: a copy when the destination lacks it (or
    /// holds it damaged) and a source has it, its tag writes, or why
    /// neither can happen.
    fn digest(&mut self, wanted: &Wanted<'_>, writes: Vec<TagWrite<'_>>) -> Vec<PlanItem> {
        if !wanted.digest_is_an_edge() && writes.is_empty() {
            return Vec::new();
        }
        match wanted.state.digest(wanted.digest) {
            Observed::Present(()) => {
                if wanted.untagged() {
                    self.already_present += 1;
                }
                tag_writes(wanted, writes)
            }
            Observed::Unknown(reason) => blocked(wanted, writes, &reason, None),
            Observed::Absent => match self.found(wanted) {
                Found::In(source) => {
                    let copy = wanted.item(Action::Copy {
                        source: source.clone(),
                    });
                    std::iter::once(copy)
                        .chain(tag_writes(wanted, writes))
                        .collect()
                }
                Found::Unknown(reason) => {
                    blocked(wanted, writes, &reason, wanted.d.sources.iter().next())
                }
                Found::Nowhere => lost(wanted, writes),
            },
        }
    }

    /// The first source that has the digest; a source whose read failed
    /// makes it unknown unless another has it.
    fn found<'w>(&self, wanted: &Wanted<'w>) -> Found<'w> {
        let empty = BTreeMap::new();
        let mut unknown = None;
        for source in &wanted.d.sources {
            let states = self.inventory.sources.get(&source.repo).unwrap_or(&empty);
            match states.get(wanted.digest) {
                Some(Observed::Present(())) => return Found::In(source),
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
        match unknown {
            Some(reason) => Found::Unknown(reason),
            None => Found::Nowhere,
        }
    }

    /// Items for the digest's attachments, when it is (or will be) in the
    /// destination, and why they are unknown if they are.
    fn attachments(
        &mut self,
        wanted: &Wanted<'_>,
        copied: bool,
    ) -> (Vec<PlanItem>, Option<String>) {
        let stays = match wanted.state.digest(wanted.digest) {
            Observed::Present(()) => true,
            Observed::Absent => copied,
            Observed::Unknown(_) => false,
        };
        let source = stays
            .then(|| attachment_source(wanted.d, wanted.digest, wanted.state, self.inventory))
            .flatten();
        let read = source.and_then(|source| {
            self.inventory
                .attachments
                .get(&source.repo)
                .and_then(|by_digest| by_digest.get(wanted.digest))
                .map(|observed| (source, observed))
        });
        let mut items = Vec::new();
        let mut unknown = None;
        match read {
            None | Some((_, Observed::Absent)) => {}
            Some((_, Observed::Unknown(reason))) => unknown = Some(reason.clone()),
            Some((source, Observed::Present(list))) => {
                let mut context = AttachContext {
                    want: wanted.want,
                    state: wanted.state,
                    source,
                    location: &wanted.d.location,
                    items: &mut items,
                    already_present: &mut self.already_present,
                    unknown: &mut unknown,
                };
                context.plan(wanted.digest, list);
            }
        }
        (items, unknown)
    }

    /// The plan of everything given to [`Planner::repo`], sorted.
    pub(super) fn finish(self) -> Plan {
        let mut items = self.items;
        items.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        let new_repositories = items
            .iter()
            .filter(|i| matches!(i.action, Action::Copy { .. }))
            .filter(|i| {
                self.inventory
                    .destinations
                    .get(&i.repo)
                    .is_some_and(|s| s.repository_absent)
            })
            .map(|i| i.repo.clone())
            .collect();
        Plan {
            items,
            already_present: self.already_present,
            new_repositories,
            attachments_skipped: self.inventory.attachments_skipped,
        }
    }
}

/// The tag writes, the digest being there (or copied first).
fn tag_writes(wanted: &Wanted<'_>, writes: Vec<TagWrite<'_>>) -> Vec<PlanItem> {
    writes
        .into_iter()
        .map(|(tag, from)| {
            let tag = tag.clone();
            wanted.item(match from {
                Some(from) => Action::Move { tag, from },
                None => Action::Tag { tag },
            })
        })
        .collect()
}

/// A digest whose existence is unknown: it and its tag writes are blocked
/// (a digest-only entry names the source it would come from; so does a
/// damaged one, whose edge is the digest itself).
fn blocked(
    wanted: &Wanted<'_>,
    writes: Vec<TagWrite<'_>>,
    reason: &str,
    source: Option<&SourceRef>,
) -> Vec<PlanItem> {
    let block = |edge| {
        wanted.item(Action::Blocked {
            reason: reason.to_string(),
            edge,
        })
    };
    let own = wanted.digest_is_an_edge().then(|| {
        block(Edge {
            tag: None,
            source: source.cloned(),
        })
    });
    let tags = writes.into_iter().map(|(tag, _)| {
        block(Edge {
            tag: Some(tag.clone()),
            source: None,
        })
    });
    own.into_iter().chain(tags).collect()
}

/// A digest in neither the source nor the destination: lost, the digest
/// itself (a digest-only entry) or each tag, naming the first source asked.
fn lost(wanted: &Wanted<'_>, writes: Vec<TagWrite<'_>>) -> Vec<PlanItem> {
    let source = wanted.d.sources.iter().next().cloned();
    let own = wanted.digest_is_an_edge().then(|| {
        wanted.item(Action::Lost(Edge {
            tag: None,
            source: source.clone(),
        }))
    });
    let tags = writes.into_iter().map(|(tag, _)| {
        wanted.item(Action::Lost(Edge {
            tag: Some(tag.clone()),
            source: source.clone(),
        }))
    });
    own.into_iter().chain(tags).collect()
}

/// An image is never promoted without what is attached to it: when its
/// attachments cannot be known, its writes are blocked too.
fn not_without_attachments(
    wanted: &Wanted<'_>,
    own: &mut Vec<PlanItem>,
    attached: &mut Vec<PlanItem>,
    copied: bool,
    reason: &str,
) {
    let reason = format!("its attachments are unknown: {reason}");
    for item in own.iter_mut().filter(|i| i.action.is_work()) {
        item.action = Action::Blocked {
            reason: reason.clone(),
            edge: item.action.edge(),
        };
    }
    if !copied && own.is_empty() {
        own.push(wanted.item(Action::Blocked {
            reason,
            edge: Edge::default(),
        }));
    }
    attached.retain(|i| !i.action.is_work());
}
