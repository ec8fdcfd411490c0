//! CIP's schema over the spanned YAML tree: registries, images, dmaps.
//!
//! Everything per file happens here (shape, names, digests, tags) so that it
//! runs on the parsing thread. Every problem becomes a diagnostic and decoding
//! goes on, so one run reports all of them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::diag::Diagnostic;
use crate::diag::Location;
use crate::manifest::model::{DigestEntry, Image, RegistryEntry, TagEntry, TagPattern};
use crate::manifest::yaml::{quote, Node, Pos, Scalar, Value};
use crate::reference::{Digest, ImageName, NameError, RegistryName, Tag};

/// Which file is being decoded, and where its diagnostics go.
pub(super) struct Ctx<'d> {
    pub file: Arc<Path>,
    /// Thin trees are lenient where real trees are (an empty dmap warns).
    pub thin: bool,
    pub diagnostics: &'d mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    pub(super) fn at(&self, pos: Pos) -> Location {
        Location {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
        }
    }
    pub(super) fn error(&mut self, pos: Pos, message: impl Into<String>, help: Option<String>) {
        self.diagnostics
            .push(Diagnostic::error(self.at(pos), message).with_help_opt(help));
    }
    pub(super) fn warning(&mut self, pos: Pos, message: impl Into<String>, help: Option<String>) {
        self.diagnostics
            .push(Diagnostic::warning(self.at(pos), message).with_help_opt(help));
    }
    pub(super) fn name_error(&mut self, pos: Pos, err: NameError) {
        self.error(pos, err.message, err.help);
    }
}

/// The registries of one manifest, validated: one source, destinations.
#[derive(Debug, Clone)]
pub(super) struct Registries {
    pub source: RegistryEntry,
    pub destinations: Vec<RegistryEntry>,
}

/// A plain manifest: `registries` and `images` in one file.
pub(super) fn plain(
    root: Option<&Node<'_>>,
    ctx: &mut Ctx<'_>,
) -> (Option<Registries>, Vec<Image>) {
    let Some(root) = root.filter(|r| !r.is_null()) else {
        ctx.error(
            Pos::default(),
            "the manifest is empty",
            Some(REGISTRIES_HELP.to_string()),
        );
        return (None, Vec::new());
    };
    let Some(fields) = fields(root, "a manifest", &["registries", "images"], &[], ctx) else {
        return (None, Vec::new());
    };
    let registries = registries(fields.value(0), fields.truly_missing(0), root.pos, ctx);
    let images = match fields.value(1) {
        Some(node) => images(node, ctx),
        None => Vec::new(),
    };
    (registries, images)
}

/// `manifests/<x>/promoter-manifest.yaml`: registries only.
pub(super) fn thin_registries(root: Option<&Node<'_>>, ctx: &mut Ctx<'_>) -> Option<Registries> {
    let Some(root) = root.filter(|r| !r.is_null()) else {
        ctx.error(
            Pos::default(),
            "the manifest is empty",
            Some(REGISTRIES_HELP.to_string()),
        );
        return None;
    };
    let fields = fields(
        root,
        "a thin manifest",
        &["registries", "imagesPath"],
        &[(
            "images",
            "in a thin tree, images live in images/<x>/images.yaml next to manifests/<x>/",
        )],
        ctx,
    )?;
    // `imagesPath` is deprecated in CIP and does nothing; accept and ignore it.
    registries(fields.value(0), fields.truly_missing(0), root.pos, ctx)
}

/// `images/<x>/images.yaml`: a bare list of images; empty means none.
pub(super) fn thin_images(root: Option<&Node<'_>>, ctx: &mut Ctx<'_>) -> Vec<Image> {
    match root {
        None => Vec::new(),
        Some(node) => {
            if let Value::Map(entries) = &node.value {
                if entries.iter().any(|(k, _)| key_is(k, "images")) {
                    ctx.error(
                        node.pos,
                        "images.yaml holds a bare list of images, not an `images:` mapping",
                        Some(
                            "remove the `images:` line and un-indent the list below it".to_string(),
                        ),
                    );
                    return Vec::new();
                }
            }
            images(node, ctx)
        }
    }
}

const REGISTRIES_HELP: &str =
    "list the source registry (with `src: true`) and its destinations under `registries:`";

fn value<'n, 'a>(entry: Option<(&'n Node<'a>, &'n Node<'a>)>) -> Option<&'n Node<'a>> {
    entry.map(|(_, v)| v)
}

fn key_is(key: &Node<'_>, name: &str) -> bool {
    key.as_scalar().is_some_and(|s| s.text == name)
}

/// The allowed keys of a mapping: (key, value) where present, and whether
/// an unknown key was reported as a likely misspelling of it (then "missing"
/// would only repeat that error).
pub(super) struct Fields<'n, 'a, const N: usize> {
    pub(super) found: [Option<(&'n Node<'a>, &'n Node<'a>)>; N],
    misspelled: [bool; N],
}

impl<'n, 'a, const N: usize> Fields<'n, 'a, N> {
    pub(super) fn value(&self, i: usize) -> Option<&'n Node<'a>> {
        value(self.found[i])
    }
    /// Absent, and not already reported as misspelled.
    pub(super) fn truly_missing(&self, i: usize) -> bool {
        self.found[i].is_none() && !self.misspelled[i]
    }
    /// Absent because an unknown key, already reported, looks like it.
    pub(super) fn reported_as_typo(&self, i: usize) -> bool {
        self.found[i].is_none() && self.misspelled[i]
    }
}

/// Look up `allowed` keys of a mapping node; report unknown keys (with a
/// did-you-mean) and non-text keys. `None` when `node` is not a mapping.
pub(super) fn fields<'n, 'a, const N: usize>(
    node: &'n Node<'a>,
    what: &str,
    allowed: &[&str; N],
    refused: &[(&str, &str)],
    ctx: &mut Ctx<'_>,
) -> Option<Fields<'n, 'a, N>> {
    fields_with(node, what, allowed, refused, None, ctx)
}

/// [`fields`] for a file whose own tool ignores keys it does not know (the
/// mirror tools' YAML decoders): an unknown key is a warning that says
/// `ignored`, with the did-you-mean, not an error.
pub(super) fn lenient_fields<'n, 'a, const N: usize>(
    node: &'n Node<'a>,
    what: &str,
    allowed: &[&str; N],
    ignored: &str,
    ctx: &mut Ctx<'_>,
) -> Option<Fields<'n, 'a, N>> {
    fields_with(node, what, allowed, &[], Some(ignored), ctx)
}

fn fields_with<'n, 'a, const N: usize>(
    node: &'n Node<'a>,
    what: &str,
    allowed: &[&str; N],
    refused: &[(&str, &str)],
    ignored: Option<&str>,
    ctx: &mut Ctx<'_>,
) -> Option<Fields<'n, 'a, N>> {
    let Value::Map(entries) = &node.value else {
        ctx.error(
            node.pos,
            format!(
                "expected {what} (a mapping with the keys {}), found {}",
                allowed.join(", "),
                node.describe()
            ),
            None,
        );
        return None;
    };
    let mut found = [None; N];
    let mut misspelled = [false; N];
    for (key, value) in entries {
        let Some(Scalar { text, .. }) = key.as_scalar() else {
            ctx.error(
                key.pos,
                format!(
                    "expected a key ({}), found {}",
                    allowed.join(", "),
                    key.describe()
                ),
                None,
            );
            continue;
        };
        if let Some(i) = allowed.iter().position(|a| *a == text) {
            found[i] = Some((key, value));
        } else if let Some((_, help)) = refused.iter().find(|(k, _)| *k == text) {
            ctx.error(
                key.pos,
                format!("unknown key {} in {what}", quote(text)),
                Some((*help).to_string()),
            );
        } else {
            let help = match did_you_mean(text, allowed) {
                Some(best) => {
                    if let Some(i) = allowed.iter().position(|a| *a == best) {
                        misspelled[i] = true;
                    }
                    format!("did you mean {best:?}?")
                }
                None => format!("{what} has the keys: {}", allowed.join(", ")),
            };
            match ignored {
                Some(ignored) => ctx.warning(
                    key.pos,
                    format!("unknown key {} in {what}: {ignored}", quote(text)),
                    Some(help),
                ),
                None => ctx.error(
                    key.pos,
                    format!("unknown key {} in {what}", quote(text)),
                    Some(help),
                ),
            }
        }
    }
    Some(Fields { found, misspelled })
}

/// The closest allowed key, if it is close enough to be a typo.
pub(super) fn did_you_mean<'k>(text: &str, allowed: &[&'k str]) -> Option<&'k str> {
    let lower = text.to_ascii_lowercase().replace('_', "-");
    allowed
        .iter()
        .map(|a| (edit_distance(&lower, &a.to_ascii_lowercase()), *a))
        .filter(|(d, a)| *d <= typo_budget(a.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Optimal-string-alignment distance: edits plus adjacent swaps, since
/// `nmae` is one slip of the fingers, not two.
fn typo_budget(len: usize) -> usize {
    match len {
        0..=3 => 1,
        4..=8 => 2,
        _ => 3,
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Keys are short; a long user key is far from all of them anyway.
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        d[i * width] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j - 1] + cost)
                .min(d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// A scalar's text, or an error naming what was expected.
pub(super) fn text<'n>(node: &'n Node<'_>, what: &str, ctx: &mut Ctx<'_>) -> Option<&'n str> {
    match node.as_scalar() {
        Some(s) if !s.is_null() => Some(&s.text),
        _ => {
            ctx.error(
                node.pos,
                format!("expected {what}, found {}", node.describe()),
                None,
            );
            None
        }
    }
}

pub(super) fn registries(
    node: Option<&Node<'_>>,
    report_missing: bool,
    root: Pos,
    ctx: &mut Ctx<'_>,
) -> Option<Registries> {
    let Some(node) = node else {
        if !report_missing {
            return None;
        }
        ctx.error(
            root,
            "the manifest has no `registries`",
            Some(REGISTRIES_HELP.to_string()),
        );
        return None;
    };
    let items: &[Node<'_>] = match &node.value {
        Value::Seq(items) => items,
        _ if node.is_null() => &[],
        _ => {
            ctx.error(
                node.pos,
                format!(
                    "expected `registries` to be a list, found {}",
                    node.describe()
                ),
                Some("write each registry as a list item: `- name: gcr.io/my-project`".to_string()),
            );
            return None;
        }
    };
    if items.is_empty() {
        ctx.error(
            node.pos,
            "`registries` is empty",
            Some(REGISTRIES_HELP.to_string()),
        );
        return None;
    }
    let mut ok = true;
    let mut sources: Vec<RegistryEntry> = Vec::new();
    let mut destinations: Vec<RegistryEntry> = Vec::new();
    let mut seen: HashMap<RegistryName, u32> = HashMap::new();
    for item in items {
        let Some((entry, src)) = registry_entry(item, &mut seen, &mut ok, ctx) else {
            ok = false;
            continue;
        };
        let Some(src) = src else {
            destinations.push(entry);
            continue;
        };
        if let Some(first) = sources.first() {
            ctx.error(
                src,
                format!(
                    "a second source registry (the first, {}, is on line {})",
                    first.name, first.location.line
                ),
                Some(
                    "a manifest has exactly one source: keep `src: true` on one registry"
                        .to_string(),
                ),
            );
            ok = false;
        }
        sources.push(entry);
    }
    if !ok {
        return None;
    }
    let Some(source) = sources.into_iter().next() else {
        ctx.error(
            node.pos,
            "no source registry",
            Some("mark the registry to promote from with `src: true`".to_string()),
        );
        return None;
    };
    if destinations.is_empty() {
        ctx.error(
            node.pos,
            "no destination registry",
            Some("add the registries to promote to (entries without `src: true`)".to_string()),
        );
        return None;
    }
    Some(Registries {
        source,
        destinations,
    })
}

/// One item of `registries`, with where its `src: true` is when it is the
/// source. `None` when it names no valid registry; `ok` is cleared for any
/// problem, reported, even when the entry is still returned (so that a
/// second source is still found).
fn registry_entry(
    item: &Node<'_>,
    seen: &mut HashMap<RegistryName, u32>,
    ok: &mut bool,
    ctx: &mut Ctx<'_>,
) -> Option<(RegistryEntry, Option<Pos>)> {
    let entry = fields(
        item,
        "a registry entry",
        &["name", "src", "service-account"],
        &[],
        ctx,
    )?;
    let [name, src, account] = [entry.value(0), entry.value(1), entry.value(2)];
    let is_src = match src {
        None => false,
        Some(node) => boolean(node, ctx).unwrap_or_else(|| {
            *ok = false;
            false
        }),
    };
    let service_account = match account {
        Some(node) if node.is_null() => None,
        Some(node) => {
            let account = text(node, "a service account name", ctx).map(str::to_string);
            *ok &= account.is_some();
            account
        }
        None => None,
    };
    let Some(name_node) = name.filter(|n| !n.is_null()) else {
        if !entry.reported_as_typo(0) {
            ctx.error(
                item.pos,
                "the registry entry has no `name`",
                Some("add `name: host[/path]`, e.g. `name: gcr.io/my-project`".to_string()),
            );
        }
        return None;
    };
    let name_text = text(name_node, "a registry name", ctx)?;
    let name = RegistryName::parse(name_text)
        .map_err(|err| ctx.name_error(name_node.pos, err))
        .ok()?;
    if let Some(first) = seen.get(&name) {
        ctx.warning(
            name_node.pos,
            format!("registry {name} is listed twice (first on line {first})"),
            Some("remove one of the two entries".to_string()),
        );
    } else {
        seen.insert(name.clone(), item.pos.line);
    }
    let entry = RegistryEntry {
        name,
        service_account,
        location: ctx.at(item.pos),
    };
    Some((entry, is_src.then(|| src.map_or(item.pos, |n| n.pos))))
}

/// YAML 1.2 booleans only: `yes`/`on` meant true in YAML 1.1 and are exactly
/// the kind of ambiguity a promotion manifest must not have.
fn boolean(node: &Node<'_>, ctx: &mut Ctx<'_>) -> Option<bool> {
    if let Some(s) = node.as_scalar() {
        if s.style == saphyr_parser::ScalarStyle::Plain {
            match &*s.text {
                "true" | "True" | "TRUE" => return Some(true),
                "false" | "False" | "FALSE" => return Some(false),
                _ => {}
            }
        }
    }
    ctx.error(
        node.pos,
        format!("expected true or false, found {}", node.describe()),
        Some(
            "write `src: true` (unquoted) on the source registry; leave it out on the others"
                .to_string(),
        ),
    );
    None
}

/// A list of image entries. Entries naming the same image are merged.
fn images(node: &Node<'_>, ctx: &mut Ctx<'_>) -> Vec<Image> {
    let items: &[Node<'_>] = match &node.value {
        Value::Seq(items) => items,
        _ if node.is_null() => &[],
        _ => {
            ctx.error(
                node.pos,
                format!("expected a list of images, found {}", node.describe()),
                Some(
                    "write each image as a list item: `- name: my-image` with a `dmap:` below it"
                        .to_string(),
                ),
            );
            return Vec::new();
        }
    };
    let mut out: Vec<Image> = Vec::new();
    // An image renamed (`target:`) is another image than the same name
    // kept, or renamed elsewhere.
    let mut by_name: HashMap<(ImageName, Option<ImageName>), usize> = HashMap::new();
    // Built only for images that appear more than once: merging stays linear
    // even for a file that repeats one image thousands of times.
    let mut digest_index: HashMap<usize, HashMap<Digest, usize>> = HashMap::new();
    for item in items {
        let Some(image) = image(item, ctx) else {
            continue;
        };
        let key = (image.name.clone(), image.target.clone());
        let Some(&i) = by_name.get(&key) else {
            by_name.insert(key, out.len());
            out.push(image);
            continue;
        };
        let into = &mut out[i];
        for p in image.follow {
            if !into.follow.iter().any(|f| f.as_str() == p.as_str()) {
                into.follow.push(p);
            }
        }
        let index = digest_index.entry(i).or_insert_with(|| {
            into.digests
                .iter()
                .enumerate()
                .map(|(j, d)| (d.digest.clone(), j))
                .collect()
        });
        for entry in image.digests {
            match index.get(&entry.digest) {
                None => {
                    index.insert(entry.digest.clone(), into.digests.len());
                    into.digests.push(entry);
                }
                Some(&j) => {
                    let existing = &mut into.digests[j];
                    for tag in entry.tags {
                        if !existing.tags.iter().any(|t| t.tag == tag.tag) {
                            existing.tags.push(tag);
                        }
                    }
                }
            }
        }
    }
    out
}

fn image(item: &Node<'_>, ctx: &mut Ctx<'_>) -> Option<Image> {
    let entry = fields(
        item,
        "an image entry",
        &["name", "dmap", "follow", "target"],
        &[],
        ctx,
    )?;
    let dmap_entry = entry.found[1];
    let Some(name_node) = entry.value(0).filter(|n| !n.is_null()) else {
        if entry.reported_as_typo(0) {
            return None;
        }
        ctx.error(
            item.pos,
            "the image entry has no `name`",
            Some("add `name: <image>`, the repository path below the registries".to_string()),
        );
        return None;
    };
    let name_text = text(name_node, "an image name", ctx)?;
    let name = match ImageName::parse(name_text) {
        Ok(name) => Some(name),
        Err(err) => {
            ctx.name_error(name_node.pos, err);
            None
        }
    };
    let (digests, written) = match dmap_entry {
        Some((_, node)) => dmap_entries(node, ctx),
        None => (Vec::new(), 0),
    };
    let follow = entry.value(2).map(|n| follow(n, ctx)).unwrap_or_default();
    let target = match entry.value(3) {
        Some(node) => Some(target(node, ctx)?),
        None => None,
    };
    let name = name?;
    if written == 0 && !entry.reported_as_typo(1) {
        let pos = dmap_entry.map_or(item.pos, |(key, _)| key.pos);
        let message = format!("image {name} has an empty `dmap`: nothing to promote");
        let help =
            Some("list its digests as `\"sha256:…\": [\"tag\"]`, or remove the image".to_string());
        if ctx.thin {
            ctx.warning(pos, message, help);
        } else {
            ctx.error(pos, message, help);
        }
    }
    Some(Image {
        name,
        target,
        digests,
        follow,
        location: ctx.at(item.pos),
    })
}

/// `target: <path>`: the image's path at every destination of its manifest,
/// instead of its `name` (a promoter extension: the mirror tools' renames).
fn target(node: &Node<'_>, ctx: &mut Ctx<'_>) -> Option<ImageName> {
    let text = text(node, "an image path (the name at the destinations)", ctx)?;
    ImageName::parse(text)
        .map_err(|err| ctx.name_error(node.pos, err))
        .ok()
}

/// `follow: ["latest"]`: the tags of an image that may move, as patterns.
pub(super) fn follow(node: &Node<'_>, ctx: &mut Ctx<'_>) -> Vec<TagPattern> {
    let Value::Seq(items) = &node.value else {
        ctx.error(
            node.pos,
            format!(
                "expected `follow` to be a list of tag patterns, found {}",
                node.describe()
            ),
            Some(
                "write `follow: [\"latest\"]`: the tags that may move to a new digest".to_string(),
            ),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let Some(t) = text(item, "a tag pattern", ctx) else {
            continue;
        };
        match TagPattern::new(t, ctx.at(item.pos)) {
            Ok(p) => out.push(p),
            Err(e) => ctx.error(
                item.pos,
                format!("{} is not a tag pattern: {e}", quote(t)),
                Some(
                    "write a tag (`latest`) or a regular expression matched in full (`v1\\..*`)"
                        .into(),
                ),
            ),
        }
    }
    out
}

/// The valid digest entries (invalid ones are reported and left out, so the
/// conflict check still sees the rest), and how many entries were written.
fn dmap_entries(node: &Node<'_>, ctx: &mut Ctx<'_>) -> (Vec<DigestEntry>, usize) {
    let entries: &[(Node<'_>, Node<'_>)] = match &node.value {
        Value::Map(entries) => entries,
        _ if node.is_null() => &[],
        _ => {
            ctx.error(
                node.pos,
                format!(
                    "expected `dmap` to be a mapping of digests to tag lists, found {}",
                    node.describe()
                ),
                Some(
                    "write one `\"sha256:…\": [\"tag\", …]` line per digest under `dmap:`"
                        .to_string(),
                ),
            );
            // Reported; not "empty" as well.
            return (Vec::new(), 1);
        }
    };
    let mut out = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let digest = text(key, "a digest", ctx).and_then(|t| match Digest::parse(t) {
            Ok(d) => Some(d),
            Err(err) => {
                ctx.name_error(key.pos, err);
                None
            }
        });
        let tags = tags(value, ctx);
        if let Some(digest) = digest {
            out.push(DigestEntry {
                digest,
                tags,
                location: ctx.at(key.pos),
            });
        }
    }
    (out, entries.len())
}

/// The valid tags of a digest entry; invalid ones are reported and left out.
fn tags(node: &Node<'_>, ctx: &mut Ctx<'_>) -> Vec<TagEntry> {
    let items: &[Node<'_>] = match &node.value {
        Value::Seq(items) => items,
        // `"sha256:…":` with nothing after it: promote by digest only.
        _ if node.is_null() => &[],
        Value::Scalar(s) => {
            ctx.error(
                node.pos,
                format!("expected a list of tags, found {}", node.describe()),
                Some(format!("write the tags as a list: [{}]", quote(&s.text))),
            );
            return Vec::new();
        }
        Value::Map(_) => {
            ctx.error(
                node.pos,
                format!("expected a list of tags, found {}", node.describe()),
                Some("write the tags as a list: [\"1.0\", \"latest\"]".to_string()),
            );
            return Vec::new();
        }
    };
    let mut out: Vec<TagEntry> = Vec::with_capacity(items.len());
    // Small lists are the norm; only a huge one needs a set.
    let mut seen: Option<HashMap<&str, u32>> = (items.len() > 16).then(HashMap::new);
    for item in items {
        let text = match item.as_scalar() {
            Some(s) => &*s.text,
            None => {
                ctx.error(
                    item.pos,
                    format!("expected a tag, found {}", item.describe()),
                    None,
                );
                continue;
            }
        };
        let tag = match Tag::parse(text) {
            Ok(tag) => tag,
            Err(err) => {
                ctx.name_error(item.pos, err);
                continue;
            }
        };
        let first = match &mut seen {
            Some(set) => match set.get(text) {
                Some(&line) => Some(line),
                None => {
                    set.insert(text, item.pos.line);
                    None
                }
            },
            None => out.iter().find(|t| t.tag == tag).map(|t| t.location.line),
        };
        if let Some(line) = first {
            ctx.warning(
                item.pos,
                format!(
                    "tag {:?} is listed twice for this digest (first on line {line})",
                    tag.as_str()
                ),
                Some("remove the repeated tag".to_string()),
            );
            continue;
        }
        out.push(TagEntry {
            tag,
            location: ctx.at(item.pos),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::yaml;

    fn run_plain(text: &str) -> (Option<Registries>, Vec<Image>, Vec<String>) {
        let parsed = yaml::parse(text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let mut diagnostics = Vec::new();
        let mut ctx = Ctx {
            file: Arc::from(Path::new("m.yaml")),
            thin: false,
            diagnostics: &mut diagnostics,
        };
        let (r, i) = plain(parsed.root.as_ref(), &mut ctx);
        (r, i, diagnostics.iter().map(ToString::to_string).collect())
    }

    const DIGEST_A: &str =
        "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn did_you_mean_finds_typos_only() {
        assert_eq!(did_you_mean("dmaps", &["name", "dmap"]), Some("dmap"));
        assert_eq!(did_you_mean("nmae", &["name", "dmap"]), Some("name"));
        assert_eq!(
            did_you_mean("service_account", &["name", "src", "service-account"]),
            Some("service-account")
        );
        assert_eq!(
            did_you_mean("registry", &["registries", "images"]),
            Some("registries")
        );
        assert_eq!(did_you_mean("colour", &["name", "dmap"]), None);
    }

    #[test]
    fn a_plain_manifest_decodes_with_raw_tags_and_merged_images() {
        let text = format!(
            "registries:\n- name: gcr.io/staging\n  src: true\n- name: gcr.io/prod\n  service-account: sa@x.iam\nimages:\n- name: foo\n  dmap:\n    {DIGEST_A}: [1.0, 1.10]\n- name: foo\n  dmap:\n    \"{DIGEST_A}\": [\"latest\"]\n"
        );
        let (registries, images, diags) = run_plain(&text);
        assert!(diags.is_empty(), "{diags:?}");
        let registries = registries.unwrap();
        assert_eq!(registries.source.name.to_string(), "gcr.io/staging");
        assert_eq!(registries.destinations.len(), 1);
        assert_eq!(images.len(), 1);
        let tags: Vec<&str> = images[0].digests[0]
            .tags
            .iter()
            .map(|t| t.tag.as_str())
            .collect();
        assert_eq!(tags, ["1.0", "1.10", "latest"]);
    }

    #[test]
    fn unknown_keys_suggest_the_right_one() {
        let text = format!(
            "registries:\n- name: gcr.io/s\n  src: true\n- name: gcr.io/p\nimages:\n- name: foo\n  dmaps:\n    {DIGEST_A}: []\n"
        );
        let (_, _, diags) = run_plain(&text);
        assert!(
            diags.iter().any(
                |d| d.starts_with("m.yaml:7:3: error: unknown key \"dmaps\"")
                    && d.contains("did you mean \"dmap\"?")
            ),
            "{diags:?}"
        );
    }

    #[test]
    fn yaml_11_booleans_are_refused() {
        let (_, _, diags) =
            run_plain("registries:\n- name: gcr.io/s\n  src: yes\n- name: gcr.io/p\n");
        assert!(diags[0].contains("expected true or false"), "{diags:?}");
    }
}
