//! Planning the attachments of one digest in one destination repository:
//! each signature, attestation or SBOM the source has is attached where the
//! destination lacks it, its own attachments after it.

use crate::diag::Location;
use crate::reference::Digest;

use super::{Action, Attachment, DestState, Edge, Observed, PlanItem, RepoWant, SourceRef};

/// The attachments of one digest, planned into `items`.
pub(super) struct AttachContext<'a> {
    pub(super) want: &'a RepoWant,
    pub(super) state: &'a DestState,
    pub(super) source: &'a SourceRef,
    pub(super) location: &'a Location,
    pub(super) items: &'a mut Vec<PlanItem>,
    pub(super) already_present: &'a mut usize,
    /// Set when something about the attachments is unknown.
    pub(super) unknown: &'a mut Option<String>,
}

impl AttachContext<'_> {
    /// Items for `attachments` of `subject`, and, for each one that is or
    /// will be in the destination, for its own attachments.
    pub(super) fn plan(&mut self, subject: &Digest, attachments: &[Attachment]) {
        for a in attachments {
            let item = |action: Action| PlanItem {
                action,
                registry: self.want.registry.clone(),
                image: self.want.image.clone(),
                repo: self.want.repo.clone(),
                digest: subject.clone(),
                location: self.location.clone(),
            };
            let observed = match &a.tag {
                Some(tag) => match self.state.tag(tag) {
                    Observed::Present(current) if current == a.digest => Observed::Present(()),
                    // cosign re-signed: the new version keeps the old signatures.
                    Observed::Present(_) if self.state.replaceable.contains(tag) => {
                        Observed::Absent
                    }
                    Observed::Present(current) => {
                        self.items.push(item(Action::RefusedTagMove {
                            tag: tag.clone(),
                            current,
                            source: Some(self.source.clone()),
                        }));
                        continue;
                    }
                    Observed::Absent => Observed::Absent,
                    Observed::Unknown(reason) => Observed::Unknown(reason),
                },
                None => self.state.digest(&a.digest),
            };
            match observed {
                Observed::Present(()) => *self.already_present += 1,
                Observed::Absent => self.items.push(item(Action::Attach {
                    source: self.source.clone(),
                    attachment: a.digest.clone(),
                    artifact_type: a.artifact_type.clone(),
                    tag: a.tag.clone(),
                })),
                Observed::Unknown(reason) => {
                    self.unknown.get_or_insert(reason.clone());
                    self.items.push(item(Action::Blocked {
                        reason,
                        edge: Edge {
                            tag: a.tag.clone(),
                            source: Some(self.source.clone()),
                        },
                    }));
                    continue;
                }
            }
            self.plan(&a.digest, &a.attachments);
        }
    }
}
