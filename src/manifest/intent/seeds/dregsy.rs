//! dregsy's config: `tasks` [{source, target, mappings [{from, to, tags,
//! platform}]}]. `tags` entries are ORed (verbatim, `semver:`, `regex:`
//! with `!` for the negation), then pruned by every `keep:` (and `keep:
//! latest N`); each ORed filter becomes one intent image, so the union is
//! what they select. `from: regex:` chooses images from the source's
//! catalog; `to` is then a prefix, or `regex:<expression>,<replacement>`.

use std::path::Path;
use std::sync::Arc;

use super::{image, intent_of, key_pos, located, optional_list, registry, CREDENTIALS_HELP};
use crate::manifest::decode::{fields, text, Ctx};
use crate::manifest::intent::decode::{is_platform, tags_or_digests};
use crate::manifest::intent::map_repository;
use crate::manifest::intent::model::{
    CatalogImages, Format, Intent, IntentImage, Located, RangeSyntax, ReadOptions, Rename,
    Schedule, Selectors, Task,
};
use crate::manifest::yaml::{Node, Pos, Value};
use crate::reference::RegistryName;

/// The top-level keys of a dregsy config.
const TOP_KEYS: [&str; 8] = [
    "relay",
    "watch",
    "skopeo",
    "docker",
    "lister",
    "dockerhost",
    "api-version",
    "tasks",
];

/// A dregsy config as an intent, its tasks as its schedule.
pub(crate) fn decode(
    root: &Node<'_>,
    ctx: &mut Ctx<'_>,
    file: &Arc<Path>,
    options: &ReadOptions,
) -> Option<Intent> {
    let top = fields(root, "a dregsy config", &TOP_KEYS, &[], ctx)?;
    for (i, key) in TOP_KEYS[..7].iter().enumerate() {
        let Some(pos) = key_pos(&top, i) else {
            continue;
        };
        let help = match *key {
            "watch" if options.scheduled => continue,
            "watch" => "pinning reads the file once; pin again when it changes (`promoter dregsy -config=FILE` watches it)",
            "lister" => "promoter lists a catalog with the registry's `_catalog`",
            _ => "promoter copies from registry to registry itself, without a relay (skopeo or a Docker daemon)",
        };
        ctx.warning(pos, format!("`{key}` is not used"), Some(help.into()));
    }
    let watch = top
        .value(1)
        .is_some_and(|n| n.as_scalar().is_some_and(|s| yaml_11_true(&s.text)));
    let mut images = Vec::new();
    let mut catalog = Vec::new();
    let mut tasks = Vec::new();
    let nodes = optional_list(
        top.value(7),
        root.pos,
        "`tasks` is not a list of tasks",
        "write each task as `- name: ...` with `source`, `target` and `mappings`",
        ctx,
    )?;
    for node in nodes {
        let (first_image, first_entry) = (images.len(), catalog.len());
        let Some((name, interval)) = task(node, &mut images, &mut catalog, options, ctx) else {
            continue;
        };
        tasks.push(Task {
            name,
            interval,
            images: first_image..images.len(),
            catalog: first_entry..catalog.len(),
            location: ctx.at(node.pos),
        });
    }
    let mut intent = intent_of(images, catalog, Format::Dregsy, file, root.pos, ctx)?;
    intent.schedule = Some(Schedule { tasks, watch });
    Some(intent)
}

/// A YAML 1.1 true, as dregsy's yaml.v2 reads a bool.
fn yaml_11_true(text: &str) -> bool {
    matches!(
        text,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y"
    )
}

/// One task: its registries and each of its mappings; its name and
/// interval (seconds, 0 for once), `None` when it has none or a wrong one.
fn task(
    task: &Node<'_>,
    images: &mut Vec<IntentImage>,
    catalog: &mut Vec<CatalogImages>,
    options: &ReadOptions,
    ctx: &mut Ctx<'_>,
) -> Option<(String, u64)> {
    let f = fields(
        task,
        "a dregsy task",
        &[
            "name", "interval", "verbose", "source", "target", "mappings",
        ],
        &[],
        ctx,
    )?;
    let name = match f
        .value(0)
        .and_then(|n| n.as_scalar())
        .filter(|s| !s.is_null())
    {
        Some(s) if !s.text.is_empty() => Some(s.text.to_string()),
        _ => {
            ctx.error(
                task.pos,
                "a task requires a name",
                Some("add `name: <task name>`, as dregsy requires".into()),
            );
            None
        }
    };
    let interval = interval(f.value(1), options, ctx);
    let source = f.value(3).and_then(|n| task_registry(n, "source", ctx));
    let target = f.value(4).and_then(|n| task_registry(n, "target", ctx));
    for (i, key) in [(3, "source"), (4, "target")] {
        if f.truly_missing(i) || f.value(i).is_some_and(Node::is_null) {
            ctx.error(
                task.pos,
                format!("the task has no `{key}`"),
                Some(format!("add `{key}:` with its `registry`")),
            );
        }
    }
    let mappings = optional_list(
        f.value(5),
        task.pos,
        "`mappings` is not a list",
        "add `mappings:` with `- from: <path>` items",
        ctx,
    )?;
    for node in mappings {
        mapping(node, source.as_ref(), target.as_ref(), images, catalog, ctx);
    }
    Some((name?, interval?))
}

/// `interval`: whole seconds, 0 or absent for a task run once. dregsy
/// refuses 1 to 29; promoter runs them (warned), since nothing breaks.
fn interval(node: Option<&Node<'_>>, options: &ReadOptions, ctx: &mut Ctx<'_>) -> Option<u64> {
    let Some(node) = node.filter(|n| !n.is_null()) else {
        return Some(0);
    };
    let Some(seconds) = node
        .as_scalar()
        .filter(|s| s.style == saphyr_parser::ScalarStyle::Plain)
        .and_then(|s| s.text.parse::<i64>().ok())
    else {
        ctx.error(
            node.pos,
            format!("expected `interval` to be whole seconds, found {}", node.describe()),
            Some("write the seconds between runs, e.g. `interval: 3600` (dregsy's interval is no duration: not `1h`)".into()),
        );
        return None;
    };
    if seconds < 0 {
        ctx.error(
            node.pos,
            "task interval needs to be 0 or a positive integer",
            None,
        );
        return None;
    }
    if !options.scheduled && seconds > 0 {
        ctx.warning(
            node.pos,
            "`interval` is not used: a pin resolves the tags once",
            Some("run the file with `promoter dregsy -config=FILE`, which runs each task on its interval, or pin it on a schedule".into()),
        );
    } else if (1..30).contains(&seconds) {
        ctx.warning(
            node.pos,
            format!("dregsy refuses intervals under 30 seconds; promoter runs this task every {seconds}s"),
            None,
        );
    }
    Some(seconds.unsigned_abs())
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
                "`skip-tls-verify` is not used: promoter never skips TLS verification",
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
        let anchored = line_match(pattern.trim_start_matches('/'));
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
        let Some(mapped) = map_repository(self.source, from, self.target, &to_path) else {
            ctx.error(
                to.map_or(from_pos, |(_, p)| *p),
                format!("the mapping writes {from} to {to_path:?}, which is not a repository path"),
                Some(
                    "write `to` as a path of lowercase components, e.g. mirror/library/busybox"
                        .into(),
                ),
            );
            return Vec::new();
        };
        self.branches
            .into_iter()
            .map(|select| image(mapped.clone(), select, self.at, ctx))
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

/// dregsy's "line match" (`util.CompileRegex(v, true)`): `^` and `$`
/// glued on as text where the expression lacks them, without a group, so
/// `a|b` is `^a|b$` (a start with `a` or an end with `b`), as dregsy reads it.
fn line_match(expression: &str) -> String {
    let mut out = String::new();
    if !expression.starts_with('^') {
        out.push('^');
    }
    out.push_str(expression);
    if !expression.ends_with('$') {
        out.push('$');
    }
    out
}

/// dregsy's `-run` task filter: the expression line-matched against each
/// task's name, `!` in front for the names it does not match.
#[derive(Debug, Clone)]
pub struct TaskFilter {
    regex: regex::Regex,
    inverted: bool,
}

impl TaskFilter {
    /// `expression` as dregsy's `util.NewRegex` reads it.
    pub fn new(expression: &str) -> Result<TaskFilter, regex::Error> {
        let (pattern, inverted) = filter(expression);
        Ok(TaskFilter {
            regex: regex::Regex::new(&pattern)?,
            inverted,
        })
    }

    /// Whether the task called `name` runs.
    pub fn matches(&self, name: &str) -> bool {
        self.regex.is_match(name) != self.inverted
    }
}

/// A tag filter's expression as dregsy's `util.NewRegex` reads it:
/// trimmed, `!` for the negation, line-matched; whether it is negated.
fn filter(r: &str) -> (String, bool) {
    let r = r.trim();
    match r.strip_prefix('!') {
        Some(negated) => (line_match(negated), true),
        None => (line_match(r), false),
    }
}

impl Filters {
    /// Read one entry of the list; false when it is wrong (reported).
    fn add(&mut self, item: &Node<'_>, ctx: &mut Ctx<'_>) -> bool {
        let Some(t) = text(item, "a tag filter", ctx) else {
            return false;
        };
        let t = t.trim();
        if let Some(range) = t.strip_prefix("semver:") {
            self.branches.push(Selectors {
                // blang's: `1.31.1-musl` is a pre-release above 1.31.0.
                semver: Some(located(range.trim().to_string(), item.pos, ctx)),
                ranges: RangeSyntax::Blang,
                ..Selectors::default()
            });
        } else if let Some(r) = t.strip_prefix("regex:") {
            let mut branch = Selectors::default();
            match filter(r) {
                (r, true) => branch.exclude.push(located(r, item.pos, ctx)),
                (r, false) => branch.regex.push(located(r, item.pos, ctx)),
            }
            self.branches.push(branch);
        } else if let Some(k) = t.strip_prefix("keep:") {
            return self.keep(k, t, item.pos, ctx);
        } else {
            let before = ctx.diagnostics.len();
            let (tags, digests) = tags_or_digests(std::slice::from_ref(item), ctx);
            self.verbatim.tags.extend(tags);
            self.verbatim.digests.extend(digests);
            return ctx.diagnostics.len() == before;
        }
        true
    }

    /// `keep: latest N` (`written` in full, as dregsy tells it: `keep:`,
    /// white space, `latest`, white space, digits), else `keep:
    /// <expression>` or `keep: !<expression>`. N = 0 is no limit.
    fn keep(&mut self, k: &str, written: &str, pos: Pos, ctx: &mut Ctx<'_>) -> bool {
        let count = regex::Regex::new(r"^keep:[[:space:]]+latest[[:space:]]+[[:digit:]]+$")
            .expect("a valid expression");
        if !count.is_match(written) {
            match filter(k) {
                (r, true) => self.keep.exclude.push(located(r, pos, ctx)),
                (r, false) => self.keep.regex.push(located(r, pos, ctx)),
            }
            return true;
        }
        // dregsy splits at single spaces and reads the last field.
        match written
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(0) => true,
            Some(n) => {
                self.latest = Some((n, pos));
                true
            }
            None => {
                ctx.error(
                    pos,
                    format!(
                        "{written:?} is not `keep: latest N`: dregsy reads the count after a space"
                    ),
                    Some("separate the words with spaces, e.g. `keep: latest 5`".into()),
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
        let has_verbatim = !verbatim.tags.is_empty() || !verbatim.digests.is_empty();
        // No `semver:`, `regex:` nor verbatim entry: every tag, pruned by
        // `keep:`. With verbatim entries only, dregsy lists nothing and
        // prunes nothing: they are copied as written.
        if branches.is_empty() && !has_verbatim {
            branches.push(Selectors::default());
        }
        let mut verbatim = verbatim;
        if branches.is_empty() {
            verbatim.latest = latest.map(|(n, pos)| located(n, pos, ctx));
        } else if let Some((n, pos)) = latest {
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
        if has_verbatim {
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
skopeo:
  binary: skopeo
docker:
  dockerhost: unix:///var/run/docker.sock
lister:
  maxItems: 100
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
            "`skopeo` is not used",
            "`docker` is not used",
            "`lister` is not used",
            "`interval` is not used",
            "the source's `auth` is not read",
            "`skip-tls-verify` is not used",
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
                "source.acme.com | library/busybox | dest.acme.com | semver >=1.31.0 <1.31.9, exclude ^rc$",
                "source.acme.com | library/busybox | dest.acme.com | regex ^1\\.26\\.[0-9]-(glibc|musl)$, exclude ^rc$",
                "source.acme.com | app | dest.acme.com | latest",
                "source.acme.com | app | dest.acme.com | semver >=2.0.0, latest 2",
            ]
        );
    }

    #[test]
    fn dregsy_renames_are_targets_and_one_count_over_several_filters_is_an_error() {
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
    tags: ['semver: >=1.0.0', 'regex: ^v', 'keep: latest 3']
",
        );
        assert!(intent.is_none());
        let all = errors.join("\n");
        assert!(!all.contains("renames"), "{all}");
        assert!(
            all.contains("`keep: latest N` over several ORed filters"),
            "{all}"
        );
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
    tags: [latest]
  - from: team/web
    to: 'regex:^/team/(.*)$,mirror/$1-v2'
    tags: [latest]
",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            mapped(&intent.unwrap()),
            [
                "a.io | team/web -> mirror/frontend | b.io | latest",
                "a.io | team/web -> mirror/web-v2 | b.io | latest",
            ]
        );
    }

    /// TEST_CASES.md §B and §H: `-run` is a line match, `!` inverts it,
    /// and `a|b` is `^a|b$`.
    #[test]
    fn the_task_filter_is_dregsys_line_match() {
        let f = super::TaskFilter::new("task-a").unwrap();
        assert!(f.matches("task-a") && !f.matches("task-abc"));
        let f = super::TaskFilter::new(" !task-a ").unwrap();
        assert!(!f.matches("task-a") && f.matches("task-b"));
        let f = super::TaskFilter::new("a|b").unwrap();
        assert!(f.matches("ax") && f.matches("xb") && !f.matches("xax"));
        assert!(super::TaskFilter::new(".*").unwrap().matches("anything"));
        assert!(super::TaskFilter::new("(").is_err());
    }

    /// dregsy's platform fixtures (test/fixtures/e2e/base/skopeo-platform.yaml
    /// and skopeo-platform-all.yaml at e92e79a5), as
    /// testdata/seeds/dregsy/ writes them: `library/busybox` renamed per platform.
    #[test]
    fn dregsys_platform_fixtures_rename_per_platform() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/seeds/dregsy");
        let text = std::fs::read_to_string(dir.join("skopeo-platform.yaml")).unwrap();
        let (intent, errors) = load(&text);
        assert!(!errors.iter().any(|e| e.contains("error")), "{errors:?}");
        let intent = intent.unwrap();
        assert_eq!(
            mapped(&intent),
            [
                "docker.io | library/busybox -> base-skopeo/library/busybox-arm64 | 127.0.0.1:5000 | latest, linux/arm64/v8",
                "docker.io | library/busybox -> base-skopeo/library/busybox-amd64 | 127.0.0.1:5000 | latest, linux/amd64",
            ]
        );
        let schedule = intent.schedule.unwrap();
        assert_eq!(schedule.tasks[0].name, "test-platform");
        assert_eq!(schedule.tasks[0].interval, 30);
        let text = std::fs::read_to_string(dir.join("skopeo-platform-all.yaml")).unwrap();
        let (intent, _) = load(&text);
        assert_eq!(
            mapped(&intent.unwrap()),
            ["docker.io | library/busybox -> base-skopeo/library/busybox-all | 127.0.0.1:5000 | latest"]
        );
    }

    /// dregsy's tag sets (TEST_CASES.md §E, from tagset.go): what is listed
    /// and how the filters combine.
    #[test]
    fn dregsys_tag_sets_combine_as_dregsy_combines_them() {
        let case = |tags: &str| {
            let (intent, errors) = load(&format!(
                "tasks:\n- name: t\n  source:\n    registry: a.io\n  target:\n    registry: b.io\n  mappings:\n  - from: x\n    tags: {tags}\n"
            ));
            assert!(errors.is_empty(), "{tags}: {errors:?}");
            mapped(&intent.unwrap())
                .into_iter()
                .map(|m| m.rsplit(" | ").next().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        // E17: verbatim entries are never pruned, and nothing is listed.
        assert_eq!(case("['latest', 'keep: nothing-matches']"), ["latest"]);
        // E18: verbatim entries are count limited.
        assert_eq!(
            case("['latest', 'stable', 'x', 'keep: latest 2']"),
            ["latest, stable, x, latest 2"]
        );
        // E14: keep filters only: every tag, pruned.
        assert_eq!(case("['keep: .*-uclibc']"), ["regex ^.*-uclibc$"]);
        // E21: `keep:latest 5` is a filter, not a count.
        assert_eq!(case("['keep:latest 5']"), ["regex ^latest 5$"]);
        // `keep: latest 0` is no limit.
        assert_eq!(case("['keep: latest 0']"), [""]);
        // E12: the anchoring quirk: `a|b` is `^a|b$`.
        assert_eq!(
            case("['regex: 1\\.26.*|latest']"),
            ["regex ^1\\.26.*|latest$"]
        );
        // E13: a pattern that starts with `^` gets only `$`.
        assert_eq!(case("['regex: ^1\\.36']"), ["regex ^1\\.36$"]);
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
