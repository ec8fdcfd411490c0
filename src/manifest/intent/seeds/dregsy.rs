//! dregsy's config: `tasks` [{source, target, mappings [{from, to, tags,
//! platform}]}]. `tags` entries are ORed (verbatim, `semver:`, `regex:`
//! with `!` for the negation), then pruned by every `keep:` (and `keep:
//! latest N`); each ORed filter becomes one intent image, so the union is
//! what they select. `from: regex:` chooses images from the source's
//! catalog; `to` is then a prefix, or `regex:<expression>,<replacement>`.

use std::path::Path;
use std::sync::Arc;

use super::{image, intent_of, key_pos, list_of, located, registry, CREDENTIALS_HELP};
use crate::manifest::decode::{fields, text, Ctx};
use crate::manifest::intent::decode::{is_platform, tags_or_digests};
use crate::manifest::intent::model::{
    CatalogImages, Format, Intent, IntentImage, Located, Rename, Selectors,
};
use crate::manifest::intent::split_mapping;
use crate::manifest::yaml::{Node, Pos, Value};
use crate::reference::RegistryName;

/// The top-level keys that configure dregsy itself, not what it mirrors.
const UNUSED_KEYS: [&str; 5] = ["relay", "watch", "skopeo", "docker", "lister"];

/// A dregsy config as an intent.
pub(crate) fn decode(root: &Node<'_>, ctx: &mut Ctx<'_>, file: &Arc<Path>) -> Option<Intent> {
    let top = fields(
        root,
        "a dregsy config",
        &["relay", "watch", "skopeo", "docker", "lister", "tasks"],
        &[],
        ctx,
    )?;
    for (i, key) in UNUSED_KEYS.iter().enumerate() {
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
    for node in tasks {
        task(node, &mut images, &mut catalog, ctx);
    }
    intent_of(images, catalog, Format::Dregsy, file, root.pos, ctx)
}

/// One task: its registries, and each of its mappings.
fn task(
    task: &Node<'_>,
    images: &mut Vec<IntentImage>,
    catalog: &mut Vec<CatalogImages>,
    ctx: &mut Ctx<'_>,
) {
    let Some(f) = fields(
        task,
        "a dregsy task",
        &[
            "name", "interval", "verbose", "source", "target", "mappings",
        ],
        &[],
        ctx,
    ) else {
        return;
    };
    if let Some(pos) = key_pos(&f, 1) {
        ctx.warning(
            pos,
            "`interval` is not used: a pin resolves the tags once",
            Some("run `promoter pin` and `promoter run --confirm` on a schedule (a CI cron job) to follow new tags".into()),
        );
    }
    let source = f.value(3).and_then(|n| task_registry(n, "source", ctx));
    let target = f.value(4).and_then(|n| task_registry(n, "target", ctx));
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
        return;
    };
    for node in mappings {
        mapping(node, source.as_ref(), target.as_ref(), images, catalog, ctx);
    }
}

/// A task's `source` or `target` (its `side`).
fn task_registry(node: &Node<'_>, side: &str, ctx: &mut Ctx<'_>) -> Option<RegistryName> {
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

/// One mapping: a path (or a pattern over the catalog) in the source, where
/// it goes, and what it selects.
fn mapping(
    node: &Node<'_>,
    source: Option<&RegistryName>,
    target: Option<&RegistryName>,
    images: &mut Vec<IntentImage>,
    catalog: &mut Vec<CatalogImages>,
    ctx: &mut Ctx<'_>,
) {
    let Some(f) = fields(
        node,
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
                node.pos,
                "the mapping has no `from`",
                Some("add `from: <path in the source>`".into()),
            );
        }
        return;
    };
    let Some(from) = text(from_node, "a path", ctx) else {
        return;
    };
    let platform = f.value(3).and_then(|n| platform(n, ctx));
    let to = match f.value(1) {
        None => None,
        Some(n) => match text(n, "a path", ctx) {
            Some(t) => Some((t.to_string(), n.pos)),
            None => return,
        },
    };
    let Some(rename) = rename(to.as_ref(), ctx) else {
        return;
    };
    let Some(branches) = tag_filters(f.value(2), platform, ctx) else {
        return;
    };
    let (Some(source), Some(target)) = (source, target) else {
        return;
    };
    let mapped = Mapped {
        source,
        target,
        rename,
        branches,
        at: node.pos,
    };
    match from.strip_prefix("regex:") {
        Some(pattern) => catalog.extend(mapped.catalog(pattern, from_node.pos, ctx)),
        None => images.extend(mapped.images(from, from_node.pos, to.as_ref(), ctx)),
    }
}

/// `platform`: one `os/arch[/variant]`, or `all` (the whole index).
fn platform(node: &Node<'_>, ctx: &mut Ctx<'_>) -> Option<Located<String>> {
    let t = text(node, "a platform", ctx)?;
    if t == "all" {
        return None;
    }
    if !is_platform(t) {
        ctx.error(
            node.pos,
            format!("{t:?} is not a platform"),
            Some("write os/architecture[/variant], e.g. linux/arm64/v8, or `all`".into()),
        );
        return None;
    }
    Some(located(t.to_string(), node.pos, ctx))
}

/// `to`: a prefix, or `regex:<expression>,<replacement>`; the same path
/// without it. `None` when it is wrong (reported).
fn rename(to: Option<&(String, Pos)>, ctx: &mut Ctx<'_>) -> Option<Rename> {
    let Some((t, pos)) = to else {
        return Some(Rename::Same);
    };
    let Some(r) = t.strip_prefix("regex:") else {
        return Some(Rename::Prefix(t.trim_matches('/').to_string()));
    };
    match r.split_once(',') {
        Some((pattern, replacement)) if regex::Regex::new(pattern).is_ok() => {
            Some(Rename::Replace {
                pattern: pattern.to_string(),
                replacement: replacement.to_string(),
            })
        }
        Some((pattern, _)) => {
            let e = regex::Regex::new(pattern).expect_err("checked above");
            ctx.error(*pos, format!("`to` is not a regular expression: {e}"), None);
            None
        }
        None => {
            ctx.error(*pos, "`to: regex:` needs an expression and its replacement", Some("write `to: regex:<expression>,<replacement>`, e.g. `regex:my(.+)/,mirror/your$1/`".into()));
            None
        }
    }
}

/// A mapping read, its registries known: what either kind of `from` becomes.
struct Mapped<'r> {
    source: &'r RegistryName,
    target: &'r RegistryName,
    rename: Rename,
    /// The ORed filters: one image (or catalog entry) each.
    branches: Vec<Selectors>,
    /// Where the mapping starts.
    at: Pos,
}

impl Mapped<'_> {
    /// `from: regex:...`: the source's repositories the pattern matches in
    /// full, listed when pinning.
    fn catalog(self, pattern: &str, from: Pos, ctx: &mut Ctx<'_>) -> Vec<CatalogImages> {
        let anchored = format!("^(?:{})$", pattern.trim().trim_start_matches('/'));
        let pattern = match regex::Regex::new(&anchored) {
            Ok(re) => re,
            Err(e) => {
                ctx.error(
                    from,
                    format!("`from` is not a regular expression: {e}"),
                    None,
                );
                return Vec::new();
            }
        };
        self.branches
            .into_iter()
            .map(|select| CatalogImages {
                source: self.source.clone(),
                pattern: located(pattern.clone(), from, ctx),
                rename: self.rename.clone(),
                destination: self.target.clone(),
                select,
                location: ctx.at(self.at),
            })
            .collect()
    }

    /// A plain `from`: one image, once per filter.
    fn images(
        self,
        from: &str,
        from_pos: Pos,
        to: Option<&(String, Pos)>,
        ctx: &mut Ctx<'_>,
    ) -> Vec<IntentImage> {
        let from = from.trim_matches('/');
        // With a plain `from`, a plain `to` is the whole destination path.
        let to_path = match (&self.rename, to) {
            (Rename::Prefix(_), Some((t, _))) => t.trim_matches('/').to_string(),
            _ => self.rename.apply(from),
        };
        let Some((source, name, destination)) =
            split_mapping(self.source, from, self.target, &to_path)
        else {
            ctx.error(
                to.map_or(from_pos, |(_, p)| *p),
                format!("the mapping renames {from} to {to_path}"),
                Some(format!(
                    "a CIP manifest keeps an image's name: map it to a path ending in /{}",
                    from.rsplit('/').next().unwrap_or(from)
                )),
            );
            return Vec::new();
        };
        self.branches
            .into_iter()
            .map(|select| {
                image(
                    source.clone(),
                    name.clone(),
                    destination.clone(),
                    select,
                    self.at,
                    ctx,
                )
            })
            .collect()
    }
}

/// What a dregsy `tags` list selects: the ORed filters, each one intent
/// image's selectors, all pruned alike. `None` when an entry is wrong.
fn tag_filters(
    node: Option<&Node<'_>>,
    platform: Option<Located<String>>,
    ctx: &mut Ctx<'_>,
) -> Option<Vec<Selectors>> {
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
    let mut filters = Filters::default();
    let mut ok = true;
    for item in items {
        ok &= filters.add(item, ctx);
    }
    if !ok {
        return None;
    }
    filters.into_selectors(platform, ctx)
}

/// A `tags` list as read, before it becomes selectors.
#[derive(Default)]
struct Filters {
    /// The verbatim tags and digests: one filter together.
    verbatim: Selectors,
    /// Each `semver:` and `regex:` entry: one filter each.
    branches: Vec<Selectors>,
    /// The `keep:` expressions every filter is pruned by.
    keep: Selectors,
    /// `keep: latest N`, the last one written (as in dregsy).
    latest: Option<(usize, Pos)>,
}

/// `!expression`: the expression, negated.
fn negated(r: &str) -> Option<String> {
    r.trim().strip_prefix('!').map(|r| r.trim().to_string())
}

impl Filters {
    /// Read one entry of the list; false when it is wrong (reported).
    fn add(&mut self, item: &Node<'_>, ctx: &mut Ctx<'_>) -> bool {
        let Some(t) = text(item, "a tag filter", ctx) else {
            return false;
        };
        if let Some(range) = t.strip_prefix("semver:") {
            self.branches.push(Selectors {
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
            self.branches.push(branch);
        } else if let Some(k) = t.strip_prefix("keep:") {
            return self.keep(k.trim(), t, item.pos, ctx);
        } else {
            let before = ctx.diagnostics.len();
            let (tags, digests) = tags_or_digests(std::slice::from_ref(item), ctx);
            self.verbatim.tags.extend(tags);
            self.verbatim.digests.extend(digests);
            return ctx.diagnostics.len() == before;
        }
        true
    }

    /// `keep: <expression>`, `keep: !<expression>` or `keep: latest N`
    /// (`written` in full).
    fn keep(&mut self, k: &str, written: &str, pos: Pos, ctx: &mut Ctx<'_>) -> bool {
        let Some(n) = k.strip_prefix("latest") else {
            match negated(k) {
                Some(r) => self.keep.exclude.push(located(r, pos, ctx)),
                None => self.keep.regex.push(located(k.to_string(), pos, ctx)),
            }
            return true;
        };
        match n.trim().parse::<usize>() {
            Ok(n) if n > 0 => {
                self.latest = Some((n, pos));
                true
            }
            _ => {
                ctx.error(
                    pos,
                    format!("{written:?} is not `keep: latest N`"),
                    Some("write a positive count, e.g. `keep: latest 5`".into()),
                );
                false
            }
        }
    }

    /// The ORed filters as selectors, each pruned by every `keep:`.
    fn into_selectors(
        self,
        platform: Option<Located<String>>,
        ctx: &mut Ctx<'_>,
    ) -> Option<Vec<Selectors>> {
        let Filters {
            verbatim,
            mut branches,
            keep,
            latest,
        } = self;
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
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, mapped};

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
}
