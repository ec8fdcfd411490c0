//! kyma image-syncer's images file, as its last public version reads it
//! (kyma-project/test-infra `cmd/image-syncer` at d2fc3a6f, 2026-02-20):
//! `images` [{source, tag}], the target prefix from the command line
//! (`--target-repo-prefix`, `SYNCER_TARGET_REPO_PREFIX`; older files carry
//! it as `targetRepoPrefix`). An image goes where image-syncer's
//! `getTarget` puts it: the prefix followed by the source as written, a
//! one-component source under `library/` (`alpine:3` ->
//! `<prefix>library/alpine:3`); `tag` is the tag the target gets, for a
//! source pinned by digest (where it is needed) and for one named by tag
//! (a retag, pinned to that tag's digest). Keys image-syncer does not
//! read are warned about, not refused: image-syncer ignores them.

use std::path::Path;
use std::sync::Arc;

use super::{image, intent_of, key_pos, located, optional_list};
use crate::manifest::decode::{lenient_fields, text, Ctx, Fields};
use crate::manifest::intent::decode::parsed;
use crate::manifest::intent::map_repository;
use crate::manifest::intent::model::{
    Format, Intent, IntentImage, PinnedDigest, ReadOptions, Selectors,
};
use crate::manifest::yaml::{Node, Pos};
use crate::reference::{ImageReference, Tag};

/// The keys of one of `images`: what image-syncer reads, then what its
/// older versions read (warned about).
const IMAGE_KEYS: [&str; 4] = ["source", "tag", "amd64Only", "sign"];

/// What an unknown key is told.
const IGNORED: &str = "image-syncer ignores it, and so does promoter";

const SIGN_HELP: &str = "image-syncer no longer signs (since 2022); in promoter signing is a step \
                         after promotion: `--after-promote 'cosign sign ...'` (README, \"Hooks\")";

/// The help of a file without a prefix.
pub(crate) const PREFIX_HELP: &str = "image-syncer takes the target prefix from \
     --target-repo-prefix (-r) or SYNCER_TARGET_REPO_PREFIX: run `promoter image-syncer \
     --images-file FILE --target-repo-prefix REGISTRY/PATH/`, or add \
     `targetRepoPrefix: \"REGISTRY/PATH/\"` to the file for `promoter pin`";

/// An image-syncer images file as an intent.
pub(crate) fn decode(
    root: &Node<'_>,
    ctx: &mut Ctx<'_>,
    file: &Arc<Path>,
    options: &ReadOptions,
) -> Option<Intent> {
    let top = lenient_fields(
        root,
        "an image-syncer images file",
        &["images", "targetRepoPrefix", "sign"],
        IGNORED,
        ctx,
    )?;
    if let Some(pos) = key_pos(&top, 2) {
        ctx.warning(pos, "`sign` is not read", Some(SIGN_HELP.into()));
    }
    let prefix = prefix(&top, root.pos, options, ctx);
    // No images (or `images:` empty) is no error for image-syncer.
    let items = optional_list(
        top.value(0),
        root.pos,
        "`images` is not a list of images",
        "write each image as `- source: \"bitnami/redis:7.2\"`",
        ctx,
    )?;
    let images = items
        .iter()
        .filter_map(|item| entry(item, prefix.as_deref(), ctx))
        .collect();
    intent_of(images, Vec::new(), Format::ImageSyncer, file, root.pos, ctx)
}

/// The target prefix: the command line's, else the file's (image-syncer
/// read it from the file until 2024-09); an error naming both when there
/// is none.
fn prefix(
    top: &Fields<'_, '_, 3>,
    root: Pos,
    options: &ReadOptions,
    ctx: &mut Ctx<'_>,
) -> Option<String> {
    let in_file = top
        .value(1)
        .and_then(|n| text(n, "a registry and path prefix", ctx).map(|t| (t.to_string(), n.pos)));
    match (&options.target_repo_prefix, in_file) {
        (Some(given), Some((_, pos))) => {
            ctx.warning(
                pos,
                "`targetRepoPrefix` is not read: the target prefix comes from the command line",
                Some(format!(
                    "image-syncer ignores it too; the images go below {given}"
                )),
            );
            Some(given.clone())
        }
        (Some(given), None) => Some(given.clone()),
        (None, Some((prefix, _))) => Some(prefix),
        (None, None) => {
            ctx.error(
                root,
                "no target prefix: the file has no `targetRepoPrefix`, and neither \
                 --target-repo-prefix nor SYNCER_TARGET_REPO_PREFIX is given",
                Some(PREFIX_HELP.into()),
            );
            None
        }
    }
}

/// One of `images`, where `getTarget` puts it.
fn entry(item: &Node<'_>, prefix: Option<&str>, ctx: &mut Ctx<'_>) -> Option<IntentImage> {
    let f = lenient_fields(item, "an image-syncer image", &IMAGE_KEYS, IGNORED, ctx)?;
    if let Some(n) = f.value(2) {
        ctx.warning(
            n.pos,
            "`amd64Only` is not read: the whole index is copied when the source is one",
            Some("image-syncer ignores it too since 2024-12 (it never chose a platform); to pin one platform, use a promoter intent's `platforms`".into()),
        );
    }
    if let Some(pos) = key_pos(&f, 3) {
        ctx.warning(pos, "`sign` is not read", Some(SIGN_HELP.into()));
    }
    let Some(source_node) = f.value(0).filter(|n| !n.is_null()) else {
        ctx.error(
            item.pos,
            "the image has no `source`",
            Some("add `source: \"<image>:<tag>\"`".into()),
        );
        return None;
    };
    let written = text(source_node, "an image reference", ctx)?;
    let tag_node = f.value(1).filter(|n| !n.is_null());
    let tag = tag_node.and_then(|n| parsed(n, "a tag", Tag::parse, ctx));
    let (reference, implied) = ImageReference::parse_or_latest(written)
        .map_err(|e| ctx.name_error(source_node.pos, e))
        .ok()?;
    if tag_node.is_some() && tag.is_none() {
        return None;
    }
    let select = selectors(&reference, implied, tag.clone(), source_node.pos, ctx)?;
    let prefix = prefix?;
    let target = match target_of(written, prefix, tag.as_ref().map_or("", |t| t.as_str())) {
        Ok(target) => target,
        Err(why) => {
            ctx.error(
                source_node.pos,
                why,
                Some(
                    "add `tag: \"<tag>\"` below `source`: the tag the image gets in the target"
                        .into(),
                ),
            );
            return None;
        }
    };
    let mapped = ImageReference::parse_or_latest(&target)
        .ok()
        .and_then(|(to, _)| {
            map_repository(
                &reference.registry,
                reference.name.as_str(),
                &to.registry,
                to.name.as_str(),
            )
        });
    match mapped {
        Some(mapped) => Some(image(mapped, select, item.pos, ctx)),
        None => {
            ctx.error(
                source_node.pos,
                format!("image-syncer writes this image to {target}, which is not an image reference"),
                Some("a registry port in the source, or a prefix without its trailing `/`, makes a target no registry takes".into()),
            );
            None
        }
    }
}

/// What an image selects: the digest it is pinned by, under `tag`; or its
/// own tag (`latest` when it names none), under `tag` when there is one.
fn selectors(
    reference: &ImageReference,
    implied_latest: bool,
    tag: Option<Tag>,
    pos: Pos,
    ctx: &mut Ctx<'_>,
) -> Option<Selectors> {
    let mut select = Selectors::default();
    match (&reference.digest, tag) {
        (Some(digest), Some(tag)) => select.digests.push(located(
            PinnedDigest {
                tag: Some(tag),
                digest: digest.clone(),
            },
            pos,
            ctx,
        )),
        // `getTarget` refuses it; reported there, with the target.
        (Some(_), None) => return Some(select),
        (None, tag) => {
            if implied_latest && tag.is_none() {
                ctx.warning(
                    pos,
                    "the source has no tag: `latest` is read and written, as image-syncer does",
                    Some("name the version to mirror, e.g. `source: \"alpine:3.20.0\"`".into()),
                );
            }
            let own = reference
                .tag
                .clone()
                .expect("a reference has a tag or digest");
            select.tags.push(located(own, pos, ctx));
            select.retag = tag.map(|t| located(t, pos, ctx));
        }
    }
    Some(select)
}

/// image-syncer's `getTarget(source, targetRepo, targetTag)`, line for
/// line: the target reference of `source` below `prefix` (joined as
/// text, no `/` added), a one-component source under `library/`, and
/// `tag` replacing the source's own tag or digest.
pub(crate) fn target_of(source: &str, prefix: &str, tag: &str) -> Result<String, String> {
    let parts: Vec<&str> = source.split('/').collect();
    let last = parts[parts.len() - 1];
    let repo_name = if parts.len() == 1 {
        format!("library/{last}")
    } else {
        format!("{}/{last}", parts[..parts.len() - 1].join("/"))
    };
    if repo_name.contains("@sha256:") {
        if tag.is_empty() {
            return Err("sha256 digest detected, but the \"tag\" was not specified".into());
        }
        let name = repo_name.split("@sha256:").next().unwrap_or_default();
        return Ok(format!("{prefix}{name}:{tag}"));
    }
    if !tag.is_empty() {
        let name = repo_name.split(':').next().unwrap_or_default();
        return Ok(format!("{prefix}{name}:{tag}"));
    }
    Ok(format!("{prefix}{repo_name}"))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, mapped};
    use super::*;
    use crate::manifest::intent::load_text_with;

    const D1: &str = "sha256:31a54a0cf86d7354788a8265f60ae6acb4b348a67efbcf7c1007dd3cf7af05ab";

    /// image-syncer's `Describe("getTarget")` table
    /// (cmd/image-syncer/util_test.go at d2fc3a6f), case for case.
    #[test]
    fn get_target_as_image_syncers_util_test_says() {
        let cases = [
            (
                "cypress/included:9.5.0",
                "latest",
                Ok("external/prod/cypress/included:latest"),
            ),
            (
                "included:9.5.0",
                "latest",
                Ok("external/prod/library/included:latest"),
            ),
            (
                "cypress/included@sha256:abcdef",
                "latest",
                Ok("external/prod/cypress/included:latest"),
            ),
            (
                "included@sha256:abcdef",
                "latest",
                Ok("external/prod/library/included:latest"),
            ),
            ("included@sha256:abcdef", "", Err(())),
            (
                "cypress/included:9.5.0",
                "",
                Ok("external/prod/cypress/included:9.5.0"),
            ),
        ];
        for (source, tag, expected) in cases {
            let got = target_of(source, "external/prod/", tag).map_err(|_| ());
            assert_eq!(got, expected.map(str::to_string), "{source} {tag:?}");
        }
    }

    /// The worked table of the reference (REFERENCE.md §4.3), for the
    /// rules the test does not cover.
    #[test]
    fn get_target_keeps_the_source_as_written_and_joins_as_text() {
        let p = "P/";
        assert_eq!(
            target_of("docker.io/library/alpine:3", p, ""),
            Ok("P/docker.io/library/alpine:3".into())
        );
        assert_eq!(
            target_of("library/registry@sha256:x", p, "3"),
            Ok("P/library/registry:3".into())
        );
        assert_eq!(
            target_of("quay.io/x/avalanche", p, "v0.7.0"),
            Ok("P/quay.io/x/avalanche:v0.7.0".into())
        );
        assert_eq!(target_of("alpine", p, ""), Ok("P/library/alpine".into()));
        assert_eq!(
            target_of("alpine:1", "reg.example/x", ""),
            Ok("reg.example/xlibrary/alpine:1".into())
        );
    }

    #[test]
    fn kymas_file_goes_below_the_prefix_of_the_command_line() {
        let text = format!(
            "images:\n  - source: \"alpine:3.24.1\"\n  - source: \"gcr.io/distroless/static:latest\"\n\
             \x20 - source: \"python@{D1}\"\n    tag: \"3.14.6-alpine3.23\"\n\
             \x20 - source: \"bitnami/redis:7\"\n    tag: 7-x\n    amd64Only: true\n    target: x\n"
        );
        let options = ReadOptions {
            target_repo_prefix: Some("eu.example/kyma/external/".into()),
            ..ReadOptions::default()
        };
        let (intent, diagnostics) = load_text_with(Path::new("seed.yaml"), &text, &options);
        let all: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert!(!diagnostics.iter().any(|d| d.is_error()), "{all:?}");
        let all = all.join("\n");
        assert!(all.contains("`amd64Only` is not read"), "{all}");
        assert!(
            all.contains(
                "unknown key \"target\" in an image-syncer image: image-syncer ignores it"
            ),
            "{all}"
        );
        let intent = intent.unwrap();
        assert_eq!(intent.format, Format::ImageSyncer);
        assert_eq!(
            mapped(&intent),
            [
                "docker.io | library/alpine | eu.example/kyma/external | 3.24.1",
                "gcr.io | distroless/static | eu.example/kyma/external/gcr.io | latest",
                "docker.io | library/python | eu.example/kyma/external | 3.14.6-alpine3.23@sha256:31a54",
                "docker.io | bitnami/redis | eu.example/kyma/external | 7 as 7-x",
            ]
        );
    }

    #[test]
    fn without_a_prefix_the_error_names_the_flag_and_the_variable() {
        let (intent, errors) = load("images:\n- source: alpine:3.20.0\n");
        assert!(intent.is_none());
        let all = errors.join("\n");
        assert!(
            all.contains("--target-repo-prefix nor SYNCER_TARGET_REPO_PREFIX"),
            "{all}"
        );
    }

    #[test]
    fn a_file_prefix_still_serves_pin_and_a_digest_source_needs_a_tag() {
        let (intent, errors) = load(&format!(
            "targetRepoPrefix: \"eu.gcr.io/x/\"\nimages:\n- source: \"postgres@{D1}\"\n- source: busybox:1.36\n"
        ));
        assert!(intent.is_none());
        let all = errors.join("\n");
        assert!(
            all.contains(
                "seed.yaml:3:11: error: sha256 digest detected, but the \"tag\" was not specified"
            ),
            "{all}"
        );
    }
}
