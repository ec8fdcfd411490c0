//! kyma image-syncer's images file: `targetRepoPrefix` and `images`
//! [{source, tag, amd64Only}]. An image goes to the prefix followed by its
//! source as written (`bitnami/redis:7` -> `<prefix>bitnami/redis:7`); a
//! source pinned by digest needs `tag`, the tag it gets in the target.

use std::path::Path;
use std::sync::Arc;

use super::{image, intent_of, key_pos, list_of, located, registry};
use crate::manifest::decode::{fields, text, Ctx, Fields};
use crate::manifest::intent::decode::{parsed, true_or_false};
use crate::manifest::intent::model::{Format, Intent, IntentImage, PinnedDigest, Selectors};
use crate::manifest::intent::split_mapping;
use crate::manifest::yaml::Node;
use crate::reference::{ImageName, ImageReference, RegistryName, Tag};

/// The keys of one of `images`.
const IMAGE_KEYS: [&str; 4] = ["source", "tag", "amd64Only", "sign"];

const SIGN_HELP: &str = "image-syncer signs what it synced; in promoter signing is a step after \
                         promotion: `promoter run --after-promote 'cosign sign ...'` (README, \"Hooks\")";

/// An image-syncer images file as an intent.
pub(crate) fn decode(root: &Node<'_>, ctx: &mut Ctx<'_>, file: &Arc<Path>) -> Option<Intent> {
    let top = fields(
        root,
        "an image-syncer images file",
        &["targetRepoPrefix", "images", "sign"],
        &[],
        ctx,
    )?;
    if let Some(pos) = key_pos(&top, 2) {
        ctx.warning(pos, "`sign` is not done by pinning", Some(SIGN_HELP.into()));
    }
    let prefix = top
        .value(0)
        .and_then(|n| registry(n, "a registry and path prefix", ctx));
    if top.truly_missing(0) {
        ctx.error(
            root.pos,
            "the file has no `targetRepoPrefix`",
            Some("add `targetRepoPrefix: \"registry.example/external/\"`".into()),
        );
    }
    let items = list_of(
        top.value(1),
        root.pos,
        "`images` is not a list of images",
        "write each image as `- source: \"bitnami/redis:7.2\"`",
        ctx,
    )?;
    let images = items
        .iter()
        .filter_map(|item| entry(item, prefix.as_ref(), ctx))
        .collect();
    intent_of(images, Vec::new(), Format::ImageSyncer, file, root.pos, ctx)
}

/// One of `images`, mapped below the prefix.
fn entry(item: &Node<'_>, prefix: Option<&RegistryName>, ctx: &mut Ctx<'_>) -> Option<IntentImage> {
    let f = fields(item, "an image-syncer image", &IMAGE_KEYS, &[], ctx)?;
    if let Some(pos) = key_pos(&f, 3) {
        ctx.warning(pos, "`sign` is not done by pinning", Some(SIGN_HELP.into()));
    }
    let Some(source_node) = f.value(0) else {
        if f.truly_missing(0) {
            ctx.error(
                item.pos,
                "the image has no `source`",
                Some("add `source: \"<image>:<tag>\"`".into()),
            );
        }
        return None;
    };
    let written = text(source_node, "an image reference", ctx)?;
    let reference = ImageReference::parse(written)
        .map_err(|e| ctx.name_error(source_node.pos, e))
        .ok()?;
    let select = selectors(&f, source_node, &reference, ctx)?;
    let prefix = prefix?;
    let path = target_path(written);
    let mapped = if path.split('/').all(|c| ImageName::parse(c).is_ok()) {
        split_mapping(&reference.registry, reference.name.as_str(), prefix, path)
    } else {
        None
    };
    match mapped {
        Some((source, name, destination)) => {
            Some(image(source, name, destination, select, item.pos, ctx))
        }
        None => {
            ctx.error(
                source_node.pos,
                format!("{prefix}/{path} is not a repository path"),
                Some("image-syncer writes the source as written below the prefix; a registry port cannot be part of a path".into()),
            );
            None
        }
    }
}

/// What an image selects: the source's own tag, or the digest it is pinned
/// by under `tag`; one platform with `amd64Only`.
fn selectors(
    f: &Fields<'_, '_, 4>,
    source_node: &Node<'_>,
    reference: &ImageReference,
    ctx: &mut Ctx<'_>,
) -> Option<Selectors> {
    let tag = f.value(1).and_then(|n| parsed(n, "a tag", Tag::parse, ctx));
    let mut select = Selectors::default();
    if let Some(n) = f.value(2) {
        if true_or_false(n, "amd64Only", ctx) == Some(true) {
            select.platform = Some(located("linux/amd64".to_string(), n.pos, ctx));
        }
    }
    match (&reference.digest, tag) {
        (Some(digest), Some(tag)) => select.digests.push(located(
            PinnedDigest {
                tag: Some(tag),
                digest: digest.clone(),
            },
            source_node.pos,
            ctx,
        )),
        (Some(_), None) => {
            if f.truly_missing(1) {
                ctx.error(
                    source_node.pos,
                    "a source pinned by digest needs `tag`, the tag it gets in the target",
                    Some("add `tag: \"<tag>\"` below `source`, as image-syncer requires".into()),
                );
            }
            return None;
        }
        (None, tag) => {
            if let (Some(n), Some(_)) = (f.value(1), tag) {
                ctx.warning(
                    n.pos,
                    "`tag` is used only with a source pinned by digest; the source's own tag is mirrored",
                    Some("remove `tag`, or pin the source by digest to tag it so".into()),
                );
            }
            let own = reference
                .tag
                .clone()
                .expect("a reference has a tag or digest");
            select.tags.push(located(own, source_node.pos, ctx));
        }
    }
    Some(select)
}

/// The target path below the prefix: the source as written, tag and
/// digest left off.
fn target_path(written: &str) -> &str {
    let without_digest = written.split('@').next().unwrap_or(written);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(i) => &without_digest[..last_slash + i],
        None => without_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, mapped};

    const D1: &str = "sha256:31a54a0cf86d7354788a8265f60ae6acb4b348a67efbcf7c1007dd3cf7af05ab";

    #[test]
    fn image_syncer_targets_are_the_prefix_and_the_source_as_written() {
        let (intent, errors) = load(&format!(
            "targetRepoPrefix: \"eu.gcr.io/kyma-project/external/\"\nimages:\n\
             - source: \"bitnami/keycloak-gatekeeper:9.0.3\"\n\
             - source: \"busybox@{D1}\"\n  tag: \"1.32.0-v1\"\n\
             - source: \"bitnami/postgres-exporter:0.11.1-debian-11-r69\"\n  amd64Only: true\n\
             - source: \"quay.io/jetstack/cert-manager-controller:v1.13.0\"\n"
        ));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            mapped(&intent.unwrap()),
            [
                "docker.io | bitnami/keycloak-gatekeeper | eu.gcr.io/kyma-project/external | 9.0.3",
                "docker.io/library | busybox | eu.gcr.io/kyma-project/external | 1.32.0-v1@sha256:31a54",
                "docker.io | bitnami/postgres-exporter | eu.gcr.io/kyma-project/external | 0.11.1-debian-11-r69, linux/amd64",
                "quay.io | jetstack/cert-manager-controller | eu.gcr.io/kyma-project/external/quay.io | v1.13.0",
            ]
        );
    }

    #[test]
    fn image_syncer_digest_sources_need_a_tag() {
        let (intent, errors) = load(&format!(
            "targetRepoPrefix: \"eu.gcr.io/x/\"\nimages:\n- source: \"postgres@{D1}\"\n  amd64Only: yes\n"
        ));
        assert!(intent.is_none());
        let all = errors.join("\n");
        assert!(
            all.contains("seed.yaml:3:11: error: a source pinned by digest needs `tag`"),
            "{all}"
        );
        assert!(all.contains("`amd64Only` is true or false"), "{all}");
    }
}
