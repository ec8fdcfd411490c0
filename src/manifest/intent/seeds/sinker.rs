//! Sinker's `.images.yaml`: `target` {host, repository} and `sources`
//! [{repository, host, tag | digest}]. An image goes to
//! `target.host/target.repository/<its repository>`; a source without
//! `host` is on Docker Hub.

use std::path::Path;
use std::sync::Arc;

use super::{image, intent_of, key_pos, list_of, located, registry, CREDENTIALS_HELP};
use crate::manifest::decode::{fields, text, Ctx, Fields};
use crate::manifest::intent::decode::parsed;
use crate::manifest::intent::map_repository;
use crate::manifest::intent::model::{Format, Intent, IntentImage, PinnedDigest, Selectors};
use crate::manifest::yaml::Node;
use crate::reference::{Digest, RegistryName, Tag};

/// The keys of one of `sources`.
const SOURCE_KEYS: [&str; 5] = ["repository", "host", "tag", "digest", "auth"];

/// A Sinker image manifest as an intent.
pub(crate) fn decode(root: &Node<'_>, ctx: &mut Ctx<'_>, file: &Arc<Path>) -> Option<Intent> {
    let top = fields(
        root,
        "a Sinker image manifest",
        &["target", "sources"],
        &[],
        ctx,
    )?;
    let target = top.value(0).and_then(|node| target(node, ctx));
    let items = list_of(
        top.value(1),
        root.pos,
        "`sources` is not a list of images",
        "write each image as `- repository: coreos/prometheus-operator` with its `host` and `tag`",
        ctx,
    )?;
    let images = items
        .iter()
        .filter_map(|item| source(item, target.as_ref(), ctx))
        .collect();
    intent_of(images, Vec::new(), Format::Sinker, file, root.pos, ctx)
}

/// `target`: the registry and path every image goes below.
fn target(node: &Node<'_>, ctx: &mut Ctx<'_>) -> Option<RegistryName> {
    let f = fields(
        node,
        "the `target`",
        &["host", "repository", "auth"],
        &[],
        ctx,
    )?;
    if let Some(pos) = key_pos(&f, 2) {
        ctx.warning(
            pos,
            "the target's `auth` is not read",
            Some(CREDENTIALS_HELP.to_string()),
        );
    }
    let host = match f.value(0) {
        Some(n) => text(n, "a registry host", ctx)?.to_string(),
        None => "docker.io".to_string(),
    };
    let path = match f.value(1) {
        Some(n) => format!("{host}/{}", text(n, "a repository path", ctx)?),
        None => host,
    };
    RegistryName::parse(path.trim_end_matches('/'))
        .map_err(|e| ctx.name_error(node.pos, e))
        .ok()
}

/// One of `sources`, mapped below `target`.
fn source(
    item: &Node<'_>,
    target: Option<&RegistryName>,
    ctx: &mut Ctx<'_>,
) -> Option<IntentImage> {
    let f = fields(item, "a Sinker source", &SOURCE_KEYS, &[], ctx)?;
    if let Some(pos) = key_pos(&f, 4) {
        ctx.warning(
            pos,
            "the source's `auth` is not read",
            Some(CREDENTIALS_HELP.to_string()),
        );
    }
    let Some(repository) = f.value(0).and_then(|n| text(n, "a repository path", ctx)) else {
        if f.truly_missing(0) {
            ctx.error(
                item.pos,
                "the source has no `repository`",
                Some("add `repository: <path>`, e.g. coreos/prometheus-operator".into()),
            );
        }
        return None;
    };
    let source = match f.value(1) {
        Some(n) => registry(n, "a registry host", ctx),
        None => RegistryName::parse("docker.io").ok(),
    };
    let select = tag_or_digest(&f, item, repository, ctx)?;
    let (source, target) = (source?, target?);
    let repository = repository.trim_matches('/');
    match map_repository(&source, repository, target, repository) {
        Some(mapped) => Some(image(mapped, select, item.pos, ctx)),
        None => {
            ctx.error(
                f.value(0).map_or(item.pos, |n| n.pos),
                format!("{repository:?} is not a repository path"),
                None,
            );
            None
        }
    }
}

/// What a source selects: its `digest` (with its `tag`, if any), else its `tag`.
fn tag_or_digest(
    f: &Fields<'_, '_, 5>,
    item: &Node<'_>,
    repository: &str,
    ctx: &mut Ctx<'_>,
) -> Option<Selectors> {
    let mut select = Selectors::default();
    let tag = f.value(2).and_then(|n| parsed(n, "a tag", Tag::parse, ctx));
    let digest = f
        .value(3)
        .and_then(|n| parsed(n, "a digest", Digest::parse, ctx));
    match (tag, digest) {
        (tag, Some(digest)) => select.digests.push(located(
            PinnedDigest { tag, digest },
            f.value(3).expect("read above").pos,
            ctx,
        )),
        (Some(tag), None) => {
            select
                .tags
                .push(located(tag, f.value(2).expect("read above").pos, ctx))
        }
        (None, None) => {
            if f.truly_missing(2) && f.truly_missing(3) {
                ctx.error(
                    item.pos,
                    format!("the source {repository} has neither `tag` nor `digest`"),
                    Some("add the `tag` to mirror (or the `digest`)".into()),
                );
            }
            return None;
        }
    }
    Some(select)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, mapped};
    use super::*;

    #[test]
    fn sinker_images_go_below_the_target_with_their_whole_path() {
        let (intent, errors) = load(
            "target:\n  host: organization.com\n  repository: team\nsources:\n\
             - repository: coreos/prometheus-operator\n  host: quay.io\n  tag: v0.40.0\n\
             - repository: jimmidyson/configmap-reload\n  tag: v0.4.0\n\
             - repository: busybox\n  digest: sha256:31a54a0cf86d7354788a8265f60ae6acb4b348a67efbcf7c1007dd3cf7af05ab\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let intent = intent.unwrap();
        assert_eq!(intent.format, Format::Sinker);
        assert_eq!(
            mapped(&intent),
            [
                "quay.io | coreos/prometheus-operator | organization.com/team | v0.40.0",
                "docker.io | jimmidyson/configmap-reload | organization.com/team | v0.4.0",
                "docker.io/library | busybox | organization.com/team | sha256:31a54",
            ]
        );
    }

    #[test]
    fn sinker_credentials_warn_and_missing_tags_are_errors() {
        let (intent, errors) = load(
            "target:\n  host: organization.com\n  auth:\n    password: SECRET_VAR\nsources:\n- repository: a/b\n",
        );
        assert!(intent.is_none());
        let all = errors.join("\n");
        assert!(
            all.contains("seed.yaml:3:3: warning: the target's `auth` is not read"),
            "{all}"
        );
        assert!(
            all.contains("seed.yaml:6:3: error: the source a/b has neither `tag` nor `digest`"),
            "{all}"
        );
        assert!(!all.contains("SECRET_VAR"), "{all}");
    }
}
