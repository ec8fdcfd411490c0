//! One line of a plan: an [`Action`] on one digest (or one tag of it, or
//! one of its attachments) in one destination repository. Each work action
//! carries exactly what carrying it out needs (a copy its source, a tag its
//! tag), so the executor never meets an item without them; the plan file
//! and JSON shape stay the one documented in `docs/report.schema.json`.

use serde::{Deserialize, Serialize};

use crate::diag::Location;
use crate::reference::{Digest, ImageName, RegistryName, Repository, Tag};

use super::SourceRef;

/// What to do, or why nothing is done.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Copy the digest (manifest, children, blobs) from `source`.
    Copy {
        /// Where it is copied from.
        source: SourceRef,
    },
    /// Copy an attachment of the digest (a signature, attestation or SBOM)
    /// from `source`.
    Attach {
        /// Where it is copied from.
        source: SourceRef,
        /// The attachment's own digest.
        attachment: Digest,
        /// What it is, as its artifact type (or config media type) says.
        artifact_type: Option<String>,
        /// Its cosign tag (`sha256-<hex>.sig`); `None` for a referrer.
        tag: Option<Tag>,
    },
    /// Point `tag` at the digest; the digest is there (or is copied first).
    Tag {
        /// The tag to write.
        tag: Tag,
    },
    /// Point a tag the manifest lets move (`follow:`) from the digest it
    /// points at now to this one.
    Move {
        /// The tag to move.
        tag: Tag,
        /// The digest it points at in the destination now.
        from: Digest,
    },
    /// Neither source nor destination has the digest.
    Lost(Edge),
    /// The tag already points at another digest; tags never move.
    RefusedTagMove {
        /// The tag (of the image, or of one of its attachments).
        tag: Tag,
        /// The digest it points at in the destination now.
        current: Digest,
        /// For an attachment's tag, the source it would come from.
        source: Option<SourceRef>,
    },
    /// A gate (`--gate`) refused the digest: nothing of it is written.
    Gated {
        /// The gate's reason (the first line of its stderr).
        reason: String,
        /// The edge that is not written.
        edge: Edge,
    },
    /// Two manifest entries want this tag on different digests.
    Conflict {
        /// The tag.
        tag: Tag,
    },
    /// A read failed, so the truth is unknown; nothing is done for this edge.
    Blocked {
        /// Why the read failed (already redacted).
        reason: String,
        /// The edge left undone.
        edge: Edge,
    },
}

/// The edge an item that is not work is about: the digest itself (no
/// tag) or one of its tags, and the source it would come from, when known.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// The tag; `None` for the digest itself.
    pub tag: Option<Tag>,
    /// The source (for `lost`: the first one asked).
    pub source: Option<SourceRef>,
}

impl Action {
    /// The kind as one lowercase word, as in text output and JSON `kind`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Copy { .. } => "copy",
            Action::Attach { .. } => "attach",
            Action::Tag { .. } => "tag",
            Action::Move { .. } => "move",
            Action::Lost(_) => "lost",
            Action::RefusedTagMove { .. } | Action::Gated { .. } => "refused",
            Action::Conflict { .. } => "conflict",
            Action::Blocked { .. } => "blocked",
        }
    }

    /// Whether this item is work the executor carries out.
    pub fn is_work(&self) -> bool {
        matches!(
            self,
            Action::Copy { .. } | Action::Tag { .. } | Action::Move { .. } | Action::Attach { .. }
        )
    }

    /// Whether this item fails the plan (exit code 3), in a dry run too.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Action::RefusedTagMove { .. } | Action::Gated { .. } | Action::Conflict { .. }
        )
    }

    /// The tag the item is about; `None` for the digest itself (a copy, a
    /// digest-only entry, a referrer).
    pub fn tag(&self) -> Option<&Tag> {
        match self {
            Action::Tag { tag }
            | Action::Move { tag, .. }
            | Action::RefusedTagMove { tag, .. }
            | Action::Conflict { tag } => Some(tag),
            Action::Attach { tag, .. } => tag.as_ref(),
            Action::Lost(edge) | Action::Gated { edge, .. } | Action::Blocked { edge, .. } => {
                edge.tag.as_ref()
            }
            Action::Copy { .. } => None,
        }
    }

    /// The source the item copies from (or would: `lost` names the first
    /// one asked), when it has one.
    pub fn source(&self) -> Option<&SourceRef> {
        match self {
            Action::Copy { source } | Action::Attach { source, .. } => Some(source),
            Action::RefusedTagMove { source, .. } => source.as_ref(),
            Action::Lost(edge) | Action::Gated { edge, .. } | Action::Blocked { edge, .. } => {
                edge.source.as_ref()
            }
            Action::Tag { .. } | Action::Move { .. } | Action::Conflict { .. } => None,
        }
    }

    /// The edge this item is about, as a problem item would name it (when a
    /// gate refuses it, or a read blocks it).
    pub fn edge(&self) -> Edge {
        Edge {
            tag: self.tag().cloned(),
            source: self.source().cloned(),
        }
    }
}

/// One line of the plan: an action on one digest in one destination
/// repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "wire::Item", try_from = "wire::Item")]
pub struct PlanItem {
    /// What to do, or why nothing is done.
    pub action: Action,
    /// For display: the destination registry as the manifest names it.
    pub registry: RegistryName,
    /// For display: the image name, relative to `registry`.
    pub image: ImageName,
    /// The destination repository the item is about.
    pub repo: Repository,
    /// The digest the item is about (for an attachment: its subject).
    pub digest: Digest,
    /// The manifest entry behind this item.
    pub location: Location,
}

impl PlanItem {
    /// The tag the item is about, as [`Action::tag`].
    pub fn tag(&self) -> Option<&Tag> {
        self.action.tag()
    }

    /// The source, as [`Action::source`].
    pub fn source(&self) -> Option<&SourceRef> {
        self.action.source()
    }

    /// Human reason for this item, one short phrase.
    pub fn reason(&self) -> String {
        match &self.action {
            Action::Copy { .. } => "digest absent in destination, present in source".to_string(),
            Action::Attach {
                attachment,
                artifact_type,
                tag,
                ..
            } => {
                let what = artifact_type.as_deref().unwrap_or("attachment");
                match tag {
                    Some(_) => format!("{what} {attachment}, under its tag"),
                    None => format!("{what} {attachment}, a referrer"),
                }
            }
            Action::Tag { .. } => "tag absent in destination".to_string(),
            Action::Move { from, .. } => format!(
                "tag follows its source (`follow`, {}): it points at {from} now",
                self.location
            ),
            Action::Lost(_) => "digest found in neither source nor destination".to_string(),
            Action::RefusedTagMove { current, .. } => format!(
                "tag already points at {current}; a promoted tag never moves (wanted by {})",
                self.location
            ),
            Action::Gated { reason, .. } => format!("refused by the gate: {reason}"),
            Action::Conflict { .. } => format!(
                "two manifest entries want this tag on different digests ({})",
                self.location
            ),
            Action::Blocked { reason, .. } => format!("blocked: {reason}"),
        }
    }

    /// The destination reference: `registry/image:tag`, or `registry/image`
    /// for a digest-only item (the digest has a column of its own).
    pub fn dest_ref(&self) -> String {
        match self.tag() {
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
            Action::Copy { .. } => (0, None),
            Action::Attach { attachment, .. } => (1, Some(attachment)),
            _ => (2, None),
        };
        (
            &self.registry,
            &self.image,
            &self.digest,
            rank,
            self.tag(),
            attachment,
        )
    }
}

/// The documented JSON shape of an item: `kind` with its own fields, and
/// `tag` and `source` on every item (null where they do not apply). Read
/// back, an item must carry what its kind needs.
mod wire {
    use serde::{Deserialize, Serialize};

    use crate::diag::Location;
    use crate::reference::{Digest, ImageName, RegistryName, Repository, Tag};

    use super::{Action, Edge, PlanItem, SourceRef};

    #[derive(Serialize, Deserialize)]
    pub(super) struct Item {
        #[serde(flatten)]
        kind: Kind,
        registry: RegistryName,
        image: ImageName,
        repo: Repository,
        digest: Digest,
        tag: Option<Tag>,
        source: Option<SourceRef>,
        location: Location,
    }

    /// A tag move and a gate's refusal are both `refused`, told apart by
    /// their fields.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case", tag = "kind")]
    enum Kind {
        Copy,
        Attach {
            attachment: Digest,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            artifact_type: Option<String>,
        },
        Tag,
        Move {
            from: Digest,
        },
        Lost,
        Refused {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            current: Option<Digest>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            reason: Option<String>,
        },
        Conflict,
        Blocked {
            reason: String,
        },
    }

    /// An item read back that lacks what its kind needs.
    #[derive(Debug, thiserror::Error)]
    #[error("a `{kind}` item without its {missing}")]
    pub(super) struct Incomplete {
        kind: &'static str,
        missing: &'static str,
    }

    impl From<PlanItem> for Item {
        fn from(item: PlanItem) -> Item {
            let (tag, source) = (item.tag().cloned(), item.source().cloned());
            let kind = match item.action {
                Action::Copy { .. } => Kind::Copy,
                Action::Attach {
                    attachment,
                    artifact_type,
                    ..
                } => Kind::Attach {
                    attachment,
                    artifact_type,
                },
                Action::Tag { .. } => Kind::Tag,
                Action::Move { from, .. } => Kind::Move { from },
                Action::Lost(_) => Kind::Lost,
                Action::RefusedTagMove { current, .. } => Kind::Refused {
                    current: Some(current),
                    reason: None,
                },
                Action::Gated { reason, .. } => Kind::Refused {
                    current: None,
                    reason: Some(reason),
                },
                Action::Conflict { .. } => Kind::Conflict,
                Action::Blocked { reason, .. } => Kind::Blocked { reason },
            };
            Item {
                kind,
                registry: item.registry,
                image: item.image,
                repo: item.repo,
                digest: item.digest,
                tag,
                source,
                location: item.location,
            }
        }
    }

    impl TryFrom<Item> for PlanItem {
        type Error = Incomplete;
        fn try_from(item: Item) -> Result<PlanItem, Incomplete> {
            let Item { tag, source, .. } = &item;
            let missing = |kind, missing| Incomplete { kind, missing };
            let need_tag = |kind| tag.clone().ok_or(missing(kind, "tag"));
            let need_source = |kind| source.clone().ok_or(missing(kind, "source"));
            let edge = || Edge {
                tag: tag.clone(),
                source: source.clone(),
            };
            let action = match &item.kind {
                Kind::Copy => Action::Copy {
                    source: need_source("copy")?,
                },
                Kind::Attach {
                    attachment,
                    artifact_type,
                } => Action::Attach {
                    source: need_source("attach")?,
                    attachment: attachment.clone(),
                    artifact_type: artifact_type.clone(),
                    tag: tag.clone(),
                },
                Kind::Tag => Action::Tag {
                    tag: need_tag("tag")?,
                },
                Kind::Move { from } => Action::Move {
                    tag: need_tag("move")?,
                    from: from.clone(),
                },
                Kind::Lost => Action::Lost(edge()),
                Kind::Refused {
                    current: Some(current),
                    ..
                } => Action::RefusedTagMove {
                    tag: need_tag("refused")?,
                    current: current.clone(),
                    source: source.clone(),
                },
                Kind::Refused { reason, .. } => Action::Gated {
                    reason: reason.clone().unwrap_or_default(),
                    edge: edge(),
                },
                Kind::Conflict => Action::Conflict {
                    tag: need_tag("conflict")?,
                },
                Kind::Blocked { reason } => Action::Blocked {
                    reason: reason.clone(),
                    edge: edge(),
                },
            };
            Ok(PlanItem {
                action,
                registry: item.registry,
                image: item.image,
                repo: item.repo,
                digest: item.digest,
                location: item.location,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fixtures::{item, source};

    #[test]
    fn every_kind_keeps_its_documented_json_shape_and_reads_back() {
        let tag = Tag::parse("1.0").unwrap();
        let other = Digest::sha256_of(b"y");
        let actions = [
            Action::Copy { source: source() },
            Action::Attach {
                source: source(),
                attachment: other.clone(),
                artifact_type: Some("application/spdx+json".into()),
                tag: None,
            },
            Action::Tag { tag: tag.clone() },
            Action::Move {
                tag: tag.clone(),
                from: other.clone(),
            },
            Action::Lost(Edge {
                tag: Some(tag.clone()),
                source: Some(source()),
            }),
            Action::RefusedTagMove {
                tag: tag.clone(),
                current: other.clone(),
                source: None,
            },
            Action::Gated {
                reason: "no".into(),
                edge: Edge::default(),
            },
            Action::Conflict { tag: tag.clone() },
            Action::Blocked {
                reason: "HTTP 500".into(),
                edge: Edge::default(),
            },
        ];
        for action in actions {
            let original = item(action);
            let json = serde_json::to_value(&original).unwrap();
            assert_eq!(json["kind"], original.action.name());
            assert!(
                json.get("tag").is_some() && json.get("source").is_some(),
                "{json}"
            );
            let back: PlanItem = serde_json::from_value(json).unwrap();
            assert_eq!(back, original);
        }
    }

    #[test]
    fn an_item_read_back_without_what_its_kind_needs_is_refused() {
        let mut copy = serde_json::to_value(item(Action::Copy { source: source() })).unwrap();
        copy["source"] = serde_json::Value::Null;
        let err = serde_json::from_value::<PlanItem>(copy).unwrap_err();
        assert!(
            err.to_string().contains("a `copy` item without its source"),
            "{err}"
        );
        let mut tag = serde_json::to_value(item(Action::Tag {
            tag: Tag::parse("1.0").unwrap(),
        }))
        .unwrap();
        tag["tag"] = serde_json::Value::Null;
        assert!(serde_json::from_value::<PlanItem>(tag).is_err());
    }
}
