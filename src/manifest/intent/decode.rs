//! promoter's own intent file (`registries`, `images` with selectors):
//! its decoder, and the decoding of values that the mirror tools' files
//! write the same way (tags or digests, platforms, booleans).

use std::path::Path;
use std::sync::Arc;

use super::model::{Format, Intent, IntentImage, Located, PinnedDigest, Selectors};
use crate::manifest::decode::{self, fields, text, Ctx, Fields};
use crate::manifest::yaml::{Node, Pos, Value};
use crate::reference::{Digest, ImageName, NameError, RegistryName, Tag};

const IMAGE_KEYS: [&str; 11] = [
    "name",
    "source",
    "tags",
    "semver",
    "prerelease",
    "regex",
    "exclude",
    "latest",
    "platforms",
    "follow",
    "target",
];

/// An intent in our own format.
pub(super) fn intent(root: &Node<'_>, ctx: &mut Ctx<'_>, file: &Arc<Path>) -> Option<Intent> {
    let top = fields(root, "an intent", &["registries", "images"], &[], ctx)?;
    let registries = decode::registries(top.value(0), top.truly_missing(0), root.pos, ctx);
    let mut images = Vec::new();
    match top.value(1) {
        Some(Node {
            value: Value::Seq(items),
            ..
        }) => {
            for item in items {
                if let Some(image) = image(item, ctx) {
                    images.push(image);
                }
            }
        }
        Some(node) if !node.is_null() => ctx.error(
            node.pos,
            format!("expected a list of images, found {}", node.describe()),
            Some("write each image as a list item: `- name: app` with its selectors below".into()),
        ),
        _ => ctx.error(
            root.pos,
            "the intent has no `images`",
            Some("list the images to mirror under `images:`".to_string()),
        ),
    }
    let registries = registries?;
    Some(Intent {
        file: file.clone(),
        source: registries.source,
        destinations: registries.destinations,
        images,
        catalog: Vec::new(),
        format: Format::Intent,
        schedule: None,
    })
}

fn image(item: &Node<'_>, ctx: &mut Ctx<'_>) -> Option<IntentImage> {
    let entry = fields(
        item,
        "an image entry",
        &IMAGE_KEYS,
        &[(
            "dmap",
            "an intent chooses tags with selectors; `promoter pin` writes the dmap (a CIP \
             manifest goes to `promoter run` as it is)",
        )],
        ctx,
    )?;
    let Some(name_node) = entry.value(0).filter(|n| !n.is_null()) else {
        if !entry.reported_as_typo(0) {
            ctx.error(
                item.pos,
                "the image entry has no `name`",
                Some("add `name: <image>`, its path below the source and destinations".into()),
            );
        }
        return None;
    };
    let name = parsed(name_node, "an image name", ImageName::parse, ctx);
    let source = entry
        .value(1)
        .and_then(|node| parsed(node, "a source registry", RegistryName::parse, ctx));
    let select = selectors(&entry, ctx);
    let follow = entry
        .value(9)
        .map(|n| decode::follow(n, ctx))
        .unwrap_or_default();
    let target = entry
        .value(10)
        .and_then(|n| parsed(n, "an image path", ImageName::parse, ctx));
    if name.is_some() {
        require_a_selector(&entry, &select, item.pos, ctx);
    }
    Some(IntentImage {
        name: name?,
        target,
        source,
        destinations: None,
        select,
        follow,
        location: ctx.at(item.pos),
    })
}

/// The selector keys of an image entry (`tags` to `platforms`).
fn selectors(entry: &Fields<'_, '_, 11>, ctx: &mut Ctx<'_>) -> Selectors {
    let mut select = Selectors::default();
    if let Some(node) = entry.value(2) {
        (select.tags, select.digests) = tag_list(node, ctx);
    }
    select.semver = entry
        .value(3)
        .and_then(|n| located_text(n, "a semver range", ctx));
    select.prerelease = entry
        .value(4)
        .and_then(|n| true_or_false(n, "prerelease", ctx))
        .unwrap_or(false);
    select.regex = entry
        .value(5)
        .and_then(|n| located_text(n, "a regular expression", ctx))
        .into_iter()
        .collect();
    select.exclude = entry
        .value(6)
        .and_then(|n| located_text(n, "a regular expression", ctx))
        .into_iter()
        .collect();
    select.latest = entry.value(7).and_then(|n| latest(n, ctx));
    select.platform = entry.value(8).and_then(|n| platform(n, ctx));
    select
}

/// An entry that selects nothing would pin nothing, silently.
fn require_a_selector(
    entry: &Fields<'_, '_, 11>,
    select: &Selectors,
    item: Pos,
    ctx: &mut Ctx<'_>,
) {
    let chooses = !select.tags.is_empty()
        || !select.digests.is_empty()
        || select.semver.is_some()
        || !select.regex.is_empty()
        || select.latest.is_some();
    // A selector that was written but is wrong is already reported.
    let attempted = [2, 3, 5, 7]
        .iter()
        .any(|&i| entry.found[i].is_some() || entry.reported_as_typo(i));
    if !chooses && !attempted {
        ctx.error(
            item,
            "the image entry selects no tags",
            Some("add `tags: [...]`, `semver:`, `regex:` or `latest: N`".to_string()),
        );
    }
}

/// `latest: N`, a positive count.
fn latest(node: &Node<'_>, ctx: &mut Ctx<'_>) -> Option<Located<usize>> {
    let t = text(node, "a number", ctx)?;
    match t.parse::<usize>() {
        Ok(n) if n > 0 => Some(Located {
            value: n,
            location: ctx.at(node.pos),
        }),
        _ => {
            ctx.error(
                node.pos,
                format!("`latest` is how many of the newest tags to keep, not {t:?}"),
                Some("write a positive whole number, e.g. `latest: 3`".to_string()),
            );
            None
        }
    }
}

/// A scalar read by one of the name parsers; what is wrong is reported.
pub(super) fn parsed<T>(
    node: &Node<'_>,
    what: &str,
    parse: impl FnOnce(&str) -> Result<T, NameError>,
    ctx: &mut Ctx<'_>,
) -> Option<T> {
    let t = text(node, what, ctx)?;
    parse(t).map_err(|e| ctx.name_error(node.pos, e)).ok()
}

/// `key: true` or `key: false`; anything else is reported.
pub(super) fn true_or_false(node: &Node<'_>, key: &str, ctx: &mut Ctx<'_>) -> Option<bool> {
    match text(node, "true or false", ctx)? {
        "true" => Some(true),
        "false" => Some(false),
        other => {
            ctx.error(
                node.pos,
                format!("`{key}` is true or false, not {other:?}"),
                None,
            );
            None
        }
    }
}

fn located_text(node: &Node<'_>, what: &str, ctx: &mut Ctx<'_>) -> Option<Located<String>> {
    let t = text(node, what, ctx)?.to_string();
    Some(Located {
        value: t,
        location: ctx.at(node.pos),
    })
}

/// Exact tags, and digests written as `tag@sha256:...` or `sha256:...`
/// (dregsy's form): pinned as written.
fn tag_list(node: &Node<'_>, ctx: &mut Ctx<'_>) -> (Vec<Located<Tag>>, Vec<Located<PinnedDigest>>) {
    let Value::Seq(items) = &node.value else {
        ctx.error(
            node.pos,
            format!("expected `tags` to be a list, found {}", node.describe()),
            Some("write `tags: [\"1.0\", \"latest\"]`".to_string()),
        );
        return (Vec::new(), Vec::new());
    };
    tags_or_digests(items, ctx)
}

/// Each item a tag, or a digest written `tag@sha256:...` or `sha256:...`.
pub(super) fn tags_or_digests(
    items: &[Node<'_>],
    ctx: &mut Ctx<'_>,
) -> (Vec<Located<Tag>>, Vec<Located<PinnedDigest>>) {
    let mut tags: Vec<Located<Tag>> = Vec::new();
    let mut digests: Vec<Located<PinnedDigest>> = Vec::new();
    for item in items {
        let Some(t) = text(item, "a tag", ctx) else {
            continue;
        };
        match pinned_digest(t) {
            Some(Ok(pinned)) if digests.iter().any(|d| d.value == pinned) => {
                ctx.error(item.pos, format!("{t} is listed twice"), None)
            }
            Some(Ok(pinned)) => digests.push(Located {
                value: pinned,
                location: ctx.at(item.pos),
            }),
            Some(Err(e)) => ctx.name_error(item.pos, e),
            None => match Tag::parse(t) {
                Ok(tag) if tags.iter().any(|o| o.value == tag) => {
                    ctx.error(item.pos, format!("tag {tag} is listed twice"), None)
                }
                Ok(tag) => tags.push(Located {
                    value: tag,
                    location: ctx.at(item.pos),
                }),
                Err(e) => ctx.name_error(item.pos, e),
            },
        }
    }
    (tags, digests)
}

/// `tag@alg:hex` or `alg:hex`, or `None` for a plain tag.
fn pinned_digest(text: &str) -> Option<Result<PinnedDigest, NameError>> {
    let (tag, digest) = match text.split_once('@') {
        Some((tag, digest)) => (Some(tag), digest),
        None if text.starts_with("sha256:") || text.starts_with("sha512:") => (None, text),
        None => return None,
    };
    Some((|| {
        Ok(PinnedDigest {
            tag: tag.map(Tag::parse).transpose()?,
            digest: Digest::parse(digest)?,
        })
    })())
}

/// One platform (`os/arch[/variant]`): a tag names one manifest, so one
/// platform can be pinned instead of the whole index.
fn platform(node: &Node<'_>, ctx: &mut Ctx<'_>) -> Option<Located<String>> {
    let Value::Seq(items) = &node.value else {
        ctx.error(
            node.pos,
            format!(
                "expected `platforms` to be a list, found {}",
                node.describe()
            ),
            Some("write `platforms: [\"linux/arm64\"]`".to_string()),
        );
        return None;
    };
    if items.len() != 1 {
        ctx.error(
            node.pos,
            format!(
                "`platforms` lists {} platforms; a tag names one manifest",
                items.len()
            ),
            Some(
                "list one platform to pin its manifest, or none to pin the whole index".to_string(),
            ),
        );
        return None;
    }
    let t = text(&items[0], "a platform", ctx)?;
    if !is_platform(t) {
        ctx.error(
            items[0].pos,
            format!("{t:?} is not a platform"),
            Some("write os/architecture[/variant], e.g. linux/arm64 or linux/arm/v7".to_string()),
        );
        return None;
    }
    Some(Located {
        value: t.to_string(),
        location: ctx.at(items[0].pos),
    })
}

/// `os/arch[/variant]`, each part a word.
pub(super) fn is_platform(text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::intent::load_text;

    const HEAD: &str = "registries:\n- name: docker.io/library\n  src: true\n- name: registry.example/mirror\nimages:\n";

    fn load(images: &str) -> (Option<Intent>, Vec<String>) {
        let (intent, diagnostics) = load_text(Path::new("intent.yaml"), &format!("{HEAD}{images}"));
        (intent, diagnostics.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn selectors_decode_with_their_places() {
        let (intent, errors) = load(
            "- name: nginx\n  semver: \">=1.25.0, <2.0.0\"\n  latest: 2\n- name: prometheus\n  source: quay.io/prometheus\n  tags: [\"v2.53.0\"]\n  platforms: [\"linux/arm64\"]\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let intent = intent.unwrap();
        assert_eq!(intent.images.len(), 2);
        let nginx = &intent.images[0].select;
        assert_eq!(nginx.semver.as_ref().unwrap().value, ">=1.25.0, <2.0.0");
        assert_eq!(nginx.semver.as_ref().unwrap().location.line, 7);
        assert_eq!(nginx.latest.as_ref().unwrap().value, 2);
        let prom = &intent.images[1];
        assert_eq!(
            prom.source.as_ref().unwrap().to_string(),
            "quay.io/prometheus"
        );
        assert_eq!(prom.select.platform.as_ref().unwrap().value, "linux/arm64");
    }

    #[test]
    fn every_problem_is_reported_at_its_line() {
        let (intent, errors) = load(
            "- name: a\n  sermver: \"1\"\n- name: b\n  latest: 0\n- name: c\n  dmap: {}\n- name: d\n  tags: [\"x\"]\n  platforms: [\"linux/arm64\", \"linux/amd64\"]\n",
        );
        assert!(intent.is_none());
        let all = errors.join("\n");
        assert!(
            all.contains("intent.yaml:7:3: error: unknown key \"sermver\""),
            "{all}"
        );
        assert!(all.contains("did you mean \"semver\"?"), "{all}");
        assert!(
            all.contains("intent.yaml:9:11: error: `latest` is how many"),
            "{all}"
        );
        assert_eq!(all.matches("selects no tags").count(), 1, "only c: {all}");
        assert!(all.contains("`promoter pin` writes the dmap"), "{all}");
        assert!(all.contains("a tag names one manifest"), "{all}");
    }
}
