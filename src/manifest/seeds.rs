//! The mirror tools' own files, read as intents, so that their users switch
//! without rewriting them: Sinker's `.images.yaml`, kyma image-syncer's
//! images file and dregsy's config. Each becomes an [`Intent`] whose images
//! name their own source and destination. Keys are strict, as for our own
//! files; what promoter does differently is a warning that says what to do
//! instead, and what a digest-pinned CIP manifest cannot say is an error.
//! Credentials written in these files are never read nor shown.

use std::path::Path;
use std::sync::Arc;

use super::decode::{fields, text, Ctx};
use super::intent::{
    split_mapping, CatalogImages, Format, Intent, IntentImage, Located, PinnedDigest, Rename,
    Selectors,
};
use super::model::RegistryEntry;
use super::yaml::{Node, Pos, Value};
use crate::reference::{Digest, ImageName, ImageReference, RegistryName, Tag};

/// Which kind of file `root` is, by its top-level keys; `None` for our own.
pub(super) fn sniff(root: &Node<'_>) -> Option<Format> {
    let Value::Map(entries) = &root.value else {
        return None;
    };
    let has = |key: &str| {
        entries
            .iter()
            .any(|(k, _)| k.as_scalar().is_some_and(|s| s.text == key))
    };
    if has("registries") {
        Some(Format::Intent)
    } else if has("sources") && has("target") {
        Some(Format::Sinker)
    } else if has("targetRepoPrefix") {
        Some(Format::ImageSyncer)
    } else if has("tasks") {
        Some(Format::Dregsy)
    } else {
        None
    }
}

const CREDENTIALS_HELP: &str = "promoter takes credentials from a docker config.json \
     (--auth-file, $DOCKER_CONFIG, ~/.docker/config.json), never from a reviewed file; \
     move them there and remove them from this file";

/// One image of a seed file, mapped: where it is read, its name, where it goes.
fn image(
    source: RegistryName,
    name: ImageName,
    destination: RegistryName,
    select: Selectors,
    pos: Pos,
    ctx: &Ctx<'_>,
) -> IntentImage {
    IntentImage {
        name,
        source: Some(source),
        destinations: Some(vec![destination]),
        select,
        follow: Vec::new(),
        location: ctx.at(pos),
    }
}

/// An intent of images that each name their source and destination; its
/// default source and destination are the first image's.
fn intent_of(
    images: Vec<IntentImage>,
    catalog: Vec<CatalogImages>,
    format: Format,
    file: &Arc<Path>,
    root: Pos,
    ctx: &mut Ctx<'_>,
) -> Option<Intent> {
    let (source, destination, location) = match (images.first(), catalog.first()) {
        (Some(i), _) => (
            i.source.clone()?,
            i.destinations.as_ref()?.first()?.clone(),
            i.location.clone(),
        ),
        (None, Some(c)) => (c.source.clone(), c.destination.clone(), c.location.clone()),
        (None, None) => {
            if !ctx.diagnostics.iter().any(|d| d.is_error()) {
                ctx.error(root, format!("the {format} names no images"), None);
            }
            return None;
        }
    };
    let entry = |name: RegistryName| RegistryEntry {
        name,
        service_account: None,
        location: location.clone(),
    };
    Some(Intent {
        file: file.clone(),
        source: entry(source),
        destinations: vec![entry(destination)],
        images,
        catalog,
        format,
    })
}

fn registry(node: &Node<'_>, what: &str, ctx: &mut Ctx<'_>) -> Option<RegistryName> {
    let t = text(node, what, ctx)?;
    RegistryName::parse(t.trim_end_matches('/'))
        .map_err(|e| ctx.name_error(node.pos, e))
        .ok()
}

fn located<T>(value: T, pos: Pos, ctx: &Ctx<'_>) -> Located<T> {
    Located {
        value,
        location: ctx.at(pos),
    }
}

fn key_pos<const N: usize>(f: &super::decode::Fields<'_, '_, N>, i: usize) -> Option<Pos> {
    f.found[i].map(|(k, _)| k.pos)
}

/// The list under a key, or an error at it (or at `root`) with `help`.
fn list_of<'n, 'a>(
    node: Option<&'n Node<'a>>,
    root: Pos,
    message: &str,
    help: &str,
    ctx: &mut Ctx<'_>,
) -> Option<&'n [Node<'a>]> {
    match node {
        Some(Node {
            value: Value::Seq(items),
            ..
        }) => Some(items),
        other => {
            ctx.error(other.map_or(root, |n| n.pos), message, Some(help.into()));
            None
        }
    }
}

// ---------------------------------------------------------------- Sinker

/// Sinker's `.images.yaml`: `target` {host, repository} and `sources`
/// [{repository, host, tag | digest}]. An image goes to
/// `target.host/target.repository/<its repository>`; a source without
/// `host` is on Docker Hub.
pub(super) fn sinker(root: &Node<'_>, ctx: &mut Ctx<'_>, file: &Arc<Path>) -> Option<Intent> {
    let top = fields(
        root,
        "a Sinker image manifest",
        &["target", "sources"],
        &[],
        ctx,
    )?;
    let target = top.value(0).and_then(|node| {
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
    });
    let mut images = Vec::new();
    let items = list_of(
        top.value(1),
        root.pos,
        "`sources` is not a list of images",
        "write each image as `- repository: coreos/prometheus-operator` with its `host` and `tag`",
        ctx,
    )?;
    for item in items {
        let Some(f) = fields(
            item,
            "a Sinker source",
            &["repository", "host", "tag", "digest", "auth"],
            &[],
            ctx,
        ) else {
            continue;
        };
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
            continue;
        };
        let source = match f.value(1) {
            Some(n) => registry(n, "a registry host", ctx),
            None => RegistryName::parse("docker.io").ok(),
        };
        let mut select = Selectors::default();
        let tag = f.value(2).and_then(|n| {
            let t = text(n, "a tag", ctx)?;
            Tag::parse(t).map_err(|e| ctx.name_error(n.pos, e)).ok()
        });
        let digest = f.value(3).and_then(|n| {
            let t = text(n, "a digest", ctx)?;
            Digest::parse(t).map_err(|e| ctx.name_error(n.pos, e)).ok()
        });
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
                continue;
            }
        }
        let (Some(source), Some(target)) = (source, target.as_ref()) else {
            continue;
        };
        let repository = repository.trim_matches('/');
        match split_mapping(&source, repository, target, repository) {
            Some((source, name, destination)) => {
                images.push(image(source, name, destination, select, item.pos, ctx))
            }
            None => ctx.error(
                f.value(0).map_or(item.pos, |n| n.pos),
                format!("{repository:?} is not a repository path"),
                None,
            ),
        }
    }
    intent_of(images, Vec::new(), Format::Sinker, file, root.pos, ctx)
}

// ---------------------------------------------------------------- image-syncer

/// kyma image-syncer's images file: `targetRepoPrefix` and `images`
/// [{source, tag, amd64Only}]. An image goes to the prefix followed by its
/// source as written (`bitnami/redis:7` -> `<prefix>bitnami/redis:7`); a
/// source pinned by digest needs `tag`, the tag it gets in the target.
pub(super) fn image_syncer(root: &Node<'_>, ctx: &mut Ctx<'_>, file: &Arc<Path>) -> Option<Intent> {
    let top = fields(
        root,
        "an image-syncer images file",
        &["targetRepoPrefix", "images", "sign"],
        &[],
        ctx,
    )?;
    let sign_help = "image-syncer signs what it synced; in promoter signing is a step after \
                     promotion: `promoter run --after-promote 'cosign sign ...'` (README, \"Hooks\")";
    if let Some(pos) = key_pos(&top, 2) {
        ctx.warning(pos, "`sign` is not done by pinning", Some(sign_help.into()));
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
    let mut images = Vec::new();
    for item in items {
        let Some(f) = fields(
            item,
            "an image-syncer image",
            &["source", "tag", "amd64Only", "sign"],
            &[],
            ctx,
        ) else {
            continue;
        };
        if let Some(pos) = key_pos(&f, 3) {
            ctx.warning(pos, "`sign` is not done by pinning", Some(sign_help.into()));
        }
        let Some(source_node) = f.value(0) else {
            if f.truly_missing(0) {
                ctx.error(
                    item.pos,
                    "the image has no `source`",
                    Some("add `source: \"<image>:<tag>\"`".into()),
                );
            }
            continue;
        };
        let Some(written) = text(source_node, "an image reference", ctx) else {
            continue;
        };
        let reference = match ImageReference::parse(written) {
            Ok(r) => r,
            Err(e) => {
                ctx.name_error(source_node.pos, e);
                continue;
            }
        };
        let tag = f.value(1).and_then(|n| {
            let t = text(n, "a tag", ctx)?;
            Tag::parse(t).map_err(|e| ctx.name_error(n.pos, e)).ok()
        });
        let mut select = Selectors::default();
        if let Some(n) = f.value(2) {
            match text(n, "true or false", ctx) {
                Some("true") => {
                    select.platform = Some(located("linux/amd64".to_string(), n.pos, ctx))
                }
                Some("false") => {}
                Some(other) => ctx.error(
                    n.pos,
                    format!("`amd64Only` is true or false, not {other:?}"),
                    None,
                ),
                None => {}
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
                        Some(
                            "add `tag: \"<tag>\"` below `source`, as image-syncer requires".into(),
                        ),
                    );
                }
                continue;
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
        let Some(prefix) = &prefix else { continue };
        // The target is the prefix followed by the source as written, tag and digest left off.
        let without_digest = written.split('@').next().unwrap_or(written);
        let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
        let path = match without_digest[last_slash..].rfind(':') {
            Some(i) => &without_digest[..last_slash + i],
            None => without_digest,
        };
        let mapped = if path.split('/').all(|c| ImageName::parse(c).is_ok()) {
            split_mapping(&reference.registry, reference.name.as_str(), prefix, path)
        } else {
            None
        };
        match mapped {
            Some((source, name, destination)) => {
                images.push(image(source, name, destination, select, item.pos, ctx))
            }
            None => ctx.error(
                source_node.pos,
                format!("{prefix}/{path} is not a repository path"),
                Some("image-syncer writes the source as written below the prefix; a registry port cannot be part of a path".into()),
            ),
        }
    }
    intent_of(images, Vec::new(), Format::ImageSyncer, file, root.pos, ctx)
}

// ---------------------------------------------------------------- dregsy

/// dregsy's config: `tasks` [{source, target, mappings [{from, to, tags,
/// platform}]}]. `tags` entries are ORed (verbatim, `semver:`, `regex:`
/// with `!` for the negation), then pruned by every `keep:` (and `keep:
/// latest N`); each ORed filter becomes one intent image, so the union is
/// what they select. `from: regex:` chooses images from the source's
/// catalog; `to` is then a prefix, or `regex:<expression>,<replacement>`.
pub(super) fn dregsy(root: &Node<'_>, ctx: &mut Ctx<'_>, file: &Arc<Path>) -> Option<Intent> {
    let top = fields(
        root,
        "a dregsy config",
        &["relay", "watch", "skopeo", "docker", "lister", "tasks"],
        &[],
        ctx,
    )?;
    for (i, key) in ["relay", "watch", "skopeo", "docker", "lister"]
        .iter()
        .enumerate()
    {
        if let Some(pos) = key_pos(&top, i) {
            let help = match *key {
                "watch" => "pinning reads the file once; pin again when it changes (a CI job on the file does this)",
                "lister" => "promoter lists a catalog with the registry's `_catalog`",
                _ => "promoter copies from registry to registry itself, without a relay",
            };
            ctx.warning(pos, format!("`{key}` is not used"), Some(help.into()));
        }
    }
    let tasks = list_of(
        top.value(5),
        root.pos,
        "`tasks` is not a list of tasks",
        "write each task as `- name: ...` with `source`, `target` and `mappings`",
        ctx,
    )?;
    let mut images = Vec::new();
    let mut catalog = Vec::new();
    for task in tasks {
        let Some(f) = fields(
            task,
            "a dregsy task",
            &[
                "name", "interval", "verbose", "source", "target", "mappings",
            ],
            &[],
            ctx,
        ) else {
            continue;
        };
        if let Some(pos) = key_pos(&f, 1) {
            ctx.warning(
                pos,
                "`interval` is not used: a pin resolves the tags once",
                Some("run `promoter pin` and `promoter run --confirm` on a schedule (a CI cron job) to follow new tags".into()),
            );
        }
        let source = f.value(3).and_then(|n| dregsy_registry(n, "source", ctx));
        let target = f.value(4).and_then(|n| dregsy_registry(n, "target", ctx));
        for (i, key) in [(3, "source"), (4, "target")] {
            if f.truly_missing(i) {
                ctx.error(
                    task.pos,
                    format!("the task has no `{key}`"),
                    Some(format!("add `{key}:` with its `registry`")),
                );
            }
        }
        let Some(mappings) = list_of(
            f.value(5),
            task.pos,
            "the task has no list of `mappings`",
            "add `mappings:` with `- from: <path>` items",
            ctx,
        ) else {
            continue;
        };
        for mapping in mappings {
            dregsy_mapping(
                mapping,
                source.as_ref(),
                target.as_ref(),
                &mut images,
                &mut catalog,
                ctx,
            );
        }
    }
    intent_of(images, catalog, Format::Dregsy, file, root.pos, ctx)
}

fn dregsy_registry(node: &Node<'_>, side: &str, ctx: &mut Ctx<'_>) -> Option<RegistryName> {
    let f = fields(
        node,
        &format!("the task's `{side}`"),
        &[
            "registry",
            "auth",
            "auth-refresh",
            "skip-tls-verify",
            "lister",
        ],
        &[],
        ctx,
    )?;
    if let Some(pos) = key_pos(&f, 1) {
        ctx.warning(
            pos,
            format!("the {side}'s `auth` is not read"),
            Some(CREDENTIALS_HELP.into()),
        );
    }
    if let Some(pos) = key_pos(&f, 2) {
        ctx.warning(
            pos,
            "`auth-refresh` is not used",
            Some("give ECR credentials through the docker config (the `ecr-login` credential helper, or a login before the run)".into()),
        );
    }
    if let Some(n) = f.value(3) {
        if n.as_scalar().is_some_and(|s| s.text == "true") {
            ctx.warning(
                n.pos,
                "promoter never skips TLS verification",
                Some("trust the registry's certificate authority with `ca_file` in --registry-config".into()),
            );
        }
    }
    if let Some(pos) = key_pos(&f, 4) {
        ctx.warning(
            pos,
            "`lister` is not used",
            Some("promoter lists a catalog with the registry's `_catalog`".into()),
        );
    }
    let Some(n) = f.value(0) else {
        ctx.error(
            node.pos,
            format!("the {side} has no `registry`"),
            Some("add `registry: <host>`".into()),
        );
        return None;
    };
    let name = registry(n, "a registry host", ctx)?;
    let ecr = matches!(&name.endpoint, crate::reference::Endpoint::Http { host }
        if host.contains(".dkr.ecr.") && host.ends_with(".amazonaws.com"));
    if ecr && side == "target" {
        ctx.warning(
            n.pos,
            "dregsy creates missing ECR repositories; promoter does not",
            Some("create the destination repositories first (`aws ecr create-repository`); ECR refuses pushes to a missing one".into()),
        );
    }
    Some(name)
}

/// What a dregsy `tags` list selects: the ORed filters, each one intent
/// image's selectors, all pruned alike.
fn dregsy_tags(
    node: Option<&Node<'_>>,
    platform: Option<Located<String>>,
    ctx: &mut Ctx<'_>,
) -> Option<Vec<Selectors>> {
    let mut verbatim = Selectors::default();
    let mut branches: Vec<Selectors> = Vec::new();
    let mut keep = Selectors::default();
    let mut latest: Option<(usize, Pos)> = None;
    let items: &[Node<'_>] = match node {
        None => &[],
        Some(Node {
            value: Value::Seq(items),
            ..
        }) => items,
        Some(n) if n.is_null() => &[],
        Some(n) => {
            ctx.error(
                n.pos,
                format!("expected `tags` to be a list, found {}", n.describe()),
                None,
            );
            return None;
        }
    };
    let mut ok = true;
    for item in items {
        let Some(t) = text(item, "a tag filter", ctx) else {
            ok = false;
            continue;
        };
        let negated = |r: &str| r.trim().strip_prefix('!').map(|r| r.trim().to_string());
        if let Some(range) = t.strip_prefix("semver:") {
            branches.push(Selectors {
                semver: Some(located(range.trim().to_string(), item.pos, ctx)),
                // dregsy reads `2.1.4-buster` as 2.1.4.
                prerelease: true,
                ..Selectors::default()
            });
        } else if let Some(r) = t.strip_prefix("regex:") {
            let mut branch = Selectors::default();
            match negated(r) {
                Some(r) => branch.exclude.push(located(r, item.pos, ctx)),
                None => branch
                    .regex
                    .push(located(r.trim().to_string(), item.pos, ctx)),
            }
            branches.push(branch);
        } else if let Some(k) = t.strip_prefix("keep:") {
            let k = k.trim();
            if let Some(n) = k.strip_prefix("latest") {
                match n.trim().parse::<usize>() {
                    // The last one counts, as in dregsy.
                    Ok(n) if n > 0 => latest = Some((n, item.pos)),
                    _ => {
                        ctx.error(
                            item.pos,
                            format!("{t:?} is not `keep: latest N`"),
                            Some("write a positive count, e.g. `keep: latest 5`".into()),
                        );
                        ok = false;
                    }
                }
            } else {
                match negated(k) {
                    Some(r) => keep.exclude.push(located(r, item.pos, ctx)),
                    None => keep.regex.push(located(k.to_string(), item.pos, ctx)),
                }
            }
        } else {
            let before = ctx.diagnostics.len();
            let (tags, digests) = super::intent::tags_or_digests(std::slice::from_ref(item), ctx);
            ok &= ctx.diagnostics.len() == before;
            verbatim.tags.extend(tags);
            verbatim.digests.extend(digests);
        }
    }
    if !ok {
        return None;
    }
    // No filter but verbatim tags or prunes: every tag, pruned.
    if branches.is_empty()
        && (verbatim.tags.is_empty() && verbatim.digests.is_empty()
            || !keep.regex.is_empty()
            || !keep.exclude.is_empty()
            || latest.is_some())
    {
        branches.push(Selectors::default());
    }
    if let Some((n, pos)) = latest {
        if branches.len() > 1 {
            ctx.error(
                pos,
                "`keep: latest N` over several ORed filters cannot be said in one intent entry",
                Some("split the mapping: one mapping per `semver:` or `regex:` filter, each with its own `keep: latest N`".into()),
            );
            return None;
        }
        for b in &mut branches {
            b.latest = Some(located(n, pos, ctx));
        }
    }
    for b in &mut branches {
        b.regex.extend(keep.regex.iter().cloned());
        b.exclude.extend(keep.exclude.iter().cloned());
    }
    let mut out = Vec::new();
    if !verbatim.tags.is_empty() || !verbatim.digests.is_empty() {
        out.push(verbatim);
    }
    out.extend(branches);
    for s in &mut out {
        s.platform.clone_from(&platform);
    }
    Some(out)
}

fn dregsy_mapping(
    mapping: &Node<'_>,
    source: Option<&RegistryName>,
    target: Option<&RegistryName>,
    images: &mut Vec<IntentImage>,
    catalog: &mut Vec<CatalogImages>,
    ctx: &mut Ctx<'_>,
) {
    let Some(f) = fields(
        mapping,
        "a dregsy mapping",
        &["from", "to", "tags", "platform"],
        &[],
        ctx,
    ) else {
        return;
    };
    let Some(from_node) = f.value(0) else {
        if f.truly_missing(0) {
            ctx.error(
                mapping.pos,
                "the mapping has no `from`",
                Some("add `from: <path in the source>`".into()),
            );
        }
        return;
    };
    let Some(from) = text(from_node, "a path", ctx) else {
        return;
    };
    let platform = f.value(3).and_then(|n| {
        let t = text(n, "a platform", ctx)?;
        if t == "all" {
            return None;
        }
        let ok = (2..=3).contains(&t.split('/').count())
            && t.split('/').all(|p| {
                !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
        if !ok {
            ctx.error(
                n.pos,
                format!("{t:?} is not a platform"),
                Some("write os/architecture[/variant], e.g. linux/arm64/v8, or `all`".into()),
            );
            return None;
        }
        Some(located(t.to_string(), n.pos, ctx))
    });
    let to = match f.value(1) {
        None => None,
        Some(n) => match text(n, "a path", ctx) {
            Some(t) => Some((t.to_string(), n.pos)),
            None => return,
        },
    };
    let rename = match &to {
        None => Rename::Same,
        Some((t, pos)) => match t.strip_prefix("regex:") {
            Some(r) => match r.split_once(',') {
                Some((pattern, replacement)) if regex::Regex::new(pattern).is_ok() => {
                    Rename::Replace {
                        pattern: pattern.to_string(),
                        replacement: replacement.to_string(),
                    }
                }
                Some((pattern, _)) => {
                    let e = regex::Regex::new(pattern).expect_err("checked above");
                    ctx.error(*pos, format!("`to` is not a regular expression: {e}"), None);
                    return;
                }
                None => {
                    ctx.error(*pos, "`to: regex:` needs an expression and its replacement", Some("write `to: regex:<expression>,<replacement>`, e.g. `regex:my(.+)/,mirror/your$1/`".into()));
                    return;
                }
            },
            None => Rename::Prefix(t.trim_matches('/').to_string()),
        },
    };
    let Some(branches) = dregsy_tags(f.value(2), platform, ctx) else {
        return;
    };
    let (Some(source), Some(target)) = (source, target) else {
        return;
    };
    if let Some(pattern) = from.strip_prefix("regex:") {
        let anchored = format!("^(?:{})$", pattern.trim().trim_start_matches('/'));
        let pattern = match regex::Regex::new(&anchored) {
            Ok(re) => re,
            Err(e) => {
                ctx.error(
                    from_node.pos,
                    format!("`from` is not a regular expression: {e}"),
                    None,
                );
                return;
            }
        };
        for select in branches {
            catalog.push(CatalogImages {
                source: source.clone(),
                pattern: located(pattern.clone(), from_node.pos, ctx),
                rename: rename.clone(),
                destination: target.clone(),
                select,
                location: ctx.at(mapping.pos),
            });
        }
        return;
    }
    let from = from.trim_matches('/');
    // With a plain `from`, a plain `to` is the whole destination path.
    let to_path = match (&rename, &to) {
        (Rename::Prefix(_), Some((t, _))) => t.trim_matches('/').to_string(),
        _ => rename.apply(from),
    };
    match split_mapping(source, from, target, &to_path) {
        Some((source, name, destination)) => {
            for select in branches {
                images.push(image(
                    source.clone(),
                    name.clone(),
                    destination.clone(),
                    select,
                    mapping.pos,
                    ctx,
                ));
            }
        }
        None => ctx.error(
            to.as_ref().map_or(from_node.pos, |(_, p)| *p),
            format!("the mapping renames {from} to {to_path}"),
            Some(format!(
                "a CIP manifest keeps an image's name: map it to a path ending in /{}",
                from.rsplit('/').next().unwrap_or(from)
            )),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::intent::load_text;

    fn load(text: &str) -> (Option<Intent>, Vec<String>) {
        let (intent, diagnostics) = load_text(Path::new("seed.yaml"), text);
        (intent, diagnostics.iter().map(|d| d.to_string()).collect())
    }

    /// Each image as `source | name | destination | selectors`.
    fn mapped(intent: &Intent) -> Vec<String> {
        intent
            .images
            .iter()
            .map(|i| {
                let s = &i.select;
                let mut what: Vec<String> = s.tags.iter().map(|t| t.value.to_string()).collect();
                what.extend(s.digests.iter().map(|d| match &d.value.tag {
                    Some(t) => format!("{t}@{}", &d.value.digest.as_str()[..12]),
                    None => d.value.digest.as_str()[..12].to_string(),
                }));
                if let Some(r) = &s.semver {
                    what.push(format!("semver {}", r.value));
                }
                what.extend(s.regex.iter().map(|r| format!("regex {}", r.value)));
                what.extend(s.exclude.iter().map(|r| format!("exclude {}", r.value)));
                if let Some(n) = &s.latest {
                    what.push(format!("latest {}", n.value));
                }
                if let Some(p) = &s.platform {
                    what.push(p.value.clone());
                }
                format!(
                    "{} | {} | {} | {}",
                    i.source.as_ref().unwrap(),
                    i.name,
                    i.destinations.as_ref().unwrap()[0],
                    what.join(", ")
                )
            })
            .collect()
    }

    const D1: &str = "sha256:31a54a0cf86d7354788a8265f60ae6acb4b348a67efbcf7c1007dd3cf7af05ab";

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

    #[test]
    fn dregsy_filters_become_one_image_each_pruned_alike() {
        let (intent, errors) = load(
            r"relay: skopeo
tasks:
- name: task1
  interval: 60
  source:
    registry: source.acme.com
    auth: eyJzZWNyZXQiOiAieCJ9
  target:
    registry: dest.acme.com
    skip-tls-verify: true
  mappings:
  - from: test/image
    to: archive/test/image
    tags: ['0.1.0', '0.1.1']
  - from: test/another-image
    platform: linux/arm64/v8
  - from: library/busybox
    tags:
    - 'semver: >=1.31.0 <1.31.9'
    - 'regex: 1\.26\.[0-9]-(glibc|musl)'
    - '1.29.4'
    - 'keep: !rc'
  - from: app
    tags: ['latest', 'semver: >=2.0.0', 'keep: latest 2']
",
        );
        let all = errors.join("\n");
        assert!(!errors.iter().any(|e| e.contains("error")), "{all}");
        for warned in [
            "`relay` is not used",
            "`interval` is not used",
            "the source's `auth` is not read",
            "never skips TLS verification",
        ] {
            assert!(all.contains(warned), "{warned}: {all}");
        }
        assert!(!all.contains("eyJzZWNyZXQ"), "{all}");
        assert_eq!(
            mapped(&intent.unwrap()),
            [
                "source.acme.com | test/image | dest.acme.com/archive | 0.1.0, 0.1.1",
                "source.acme.com | test/another-image | dest.acme.com | linux/arm64/v8",
                "source.acme.com | library/busybox | dest.acme.com | 1.29.4",
                "source.acme.com | library/busybox | dest.acme.com | semver >=1.31.0 <1.31.9, exclude rc",
                "source.acme.com | library/busybox | dest.acme.com | regex 1\\.26\\.[0-9]-(glibc|musl), exclude rc",
                "source.acme.com | app | dest.acme.com | latest",
                "source.acme.com | app | dest.acme.com | semver >=2.0.0, latest 2",
            ]
        );
    }

    #[test]
    fn dregsy_what_a_cip_manifest_cannot_say_is_an_error() {
        let (intent, errors) = load(
            r"tasks:
- name: t
  source:
    registry: a.io
  target:
    registry: b.io
  mappings:
  - from: team/web
    to: mirror/frontend
  - from: team/api
    tags: ['semver: >=1', 'regex: ^v', 'keep: latest 3']
  - from: regex:team/.*
    to: 'regex:team/(.*),mirror/$1'
    platform: all
",
        );
        assert!(intent.is_none());
        let all = errors.join("\n");
        assert!(
            all.contains("seed.yaml:9:9: error: the mapping renames team/web to mirror/frontend"),
            "{all}"
        );
        assert!(all.contains("map it to a path ending in /web"), "{all}");
        assert!(
            all.contains("`keep: latest N` over several ORed filters"),
            "{all}"
        );
    }

    #[test]
    fn dregsy_regex_mappings_list_the_catalog_when_pinning() {
        let (intent, errors) = load(
            r"tasks:
- name: ecr
  source:
    registry: a.io
  target:
    registry: 123.dkr.ecr.eu-central-1.amazonaws.com
  mappings:
  - from: regex:myproject/.*
    to: ecr
    tags: ['latest']
",
        );
        let all = errors.join("\n");
        assert!(
            all.contains("dregsy creates missing ECR repositories"),
            "{all}"
        );
        let intent = intent.unwrap();
        assert!(intent.images.is_empty());
        let c = &intent.catalog[0];
        assert!(c.pattern.value.is_match("myproject/webui"));
        assert!(!c.pattern.value.is_match("other/myproject/webui"));
        assert_eq!(c.rename.apply("myproject/webui"), "ecr/myproject/webui");
    }

    #[test]
    fn files_that_are_none_of_them_get_our_intent_errors() {
        let (_, errors) = load("images: []\n");
        assert!(errors.join("\n").contains("registries"), "{errors:?}");
    }
}
