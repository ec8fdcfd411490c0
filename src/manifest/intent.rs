//! The mirroring intent: a manifest shaped like CIP's, whose images choose
//! their tags with selectors instead of naming digests. `promoter pin`
//! resolves it against the source into an ordinary, digest-pinned CIP
//! manifest. Decoded with the same strictness as CIP manifests: unknown
//! keys (with a did-you-mean), every problem at once, with its line.
//!
//! ```yaml
//! registries:
//! - name: docker.io/library      # the default source
//!   src: true
//! - name: registry.example/mirror
//! images:
//! - name: nginx
//!   semver: ">=1.25.0, <2.0.0"
//!   latest: 2
//! - name: prometheus
//!   source: quay.io/prometheus   # another source for this image
//!   tags: ["v2.53.0"]
//!   platforms: ["linux/arm64"]
//! ```
//!
//! Selector syntax (semver ranges, regular expressions) is checked by
//! [`crate::mirror`], which compiles them; here they stay text with their
//! place.

use std::path::Path;
use std::sync::Arc;

use super::decode::{self, fields, text, Ctx};
use super::model::RegistryEntry;
use super::yaml::{self, Node, Value};
use crate::diag::{Diagnostic, Location};
use crate::reference::{Digest, ImageName, RegistryName, Tag};

/// A text value and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it is written.
    pub location: Location,
}

/// What an image entry selects from its source's tags. The filters apply
/// in this order: `tags` (exact) or the source's whole tag list, then
/// `semver`, `regex`, `exclude`, then the newest `latest`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selectors {
    /// Exact tags.
    pub tags: Vec<Located<Tag>>,
    /// A semver range over the source's tags (`>=1.2.0, <2.0.0`).
    pub semver: Option<Located<String>>,
    /// Whether pre-releases (`2.0.0-rc.1`) may match `semver`.
    pub prerelease: bool,
    /// Digests named directly (`tag@sha256:...` or `sha256:...` in `tags`):
    /// pinned as written, whatever the tag points at now.
    pub digests: Vec<Located<PinnedDigest>>,
    /// Regular expressions tags must all match.
    pub regex: Vec<Located<String>>,
    /// Regular expressions tags must match none of.
    pub exclude: Vec<Located<String>>,
    /// Keep only the newest N of what matched (by semver, where tags parse).
    pub latest: Option<Located<usize>>,
    /// Pin this platform's manifest (`linux/arm64`) instead of the index.
    pub platform: Option<Located<String>>,
}

/// A digest an intent names itself, with the tag it gets, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedDigest {
    /// The tag the destination gets.
    pub tag: Option<Tag>,
    /// The digest.
    pub digest: Digest,
}

/// One image of an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentImage {
    /// The image, relative to its source and to each destination.
    pub name: ImageName,
    /// Its source, when not the intent's default one.
    pub source: Option<RegistryName>,
    /// Its destinations, when not the intent's (a seed tool's file maps
    /// some images elsewhere).
    pub destinations: Option<Vec<RegistryName>>,
    /// What it selects.
    pub select: Selectors,
    /// Tags that follow the source (`follow: ["latest"]`): pinning again
    /// moves them to what the source has now, and the lock lets them move.
    pub follow: Vec<crate::manifest::model::TagPattern>,
    /// Where the entry starts.
    pub location: Location,
}

/// A decoded intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    /// The file it came from, as named.
    pub file: Arc<Path>,
    /// The default source (`src: true`).
    pub source: RegistryEntry,
    /// Where images go.
    pub destinations: Vec<RegistryEntry>,
    /// The images, in file order.
    pub images: Vec<IntentImage>,
    /// Images chosen by a pattern over a source's catalog (dregsy's
    /// `from: regex:...`), listed when pinning.
    pub catalog: Vec<CatalogImages>,
    /// The kind of file it was written as.
    pub format: Format,
}

/// The kinds of file `promoter pin` reads, told apart by their top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// promoter's own intent (`registries`, `images`).
    Intent,
    /// Sinker's `.images.yaml` (`target`, `sources`).
    Sinker,
    /// kyma image-syncer's images file (`targetRepoPrefix`, `images`).
    ImageSyncer,
    /// dregsy's config (`tasks`).
    Dregsy,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Intent => "intent",
            Format::Sinker => "Sinker image manifest",
            Format::ImageSyncer => "image-syncer images file",
            Format::Dregsy => "dregsy config",
        })
    }
}

/// Images of a source chosen by a regular expression over its repository
/// paths, each mapped to a destination path.
#[derive(Debug, Clone)]
pub struct CatalogImages {
    /// The registry whose catalog is listed.
    pub source: RegistryName,
    /// Repository paths (below `source`) that match it in full are mirrored.
    pub pattern: Located<regex::Regex>,
    /// How a matched path becomes its destination path.
    pub rename: Rename,
    /// The registry the destination paths are below.
    pub destination: RegistryName,
    /// What each matched image selects.
    pub select: Selectors,
    /// Where the entry starts.
    pub location: Location,
}

impl PartialEq for CatalogImages {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
            && self.pattern.value.as_str() == other.pattern.value.as_str()
            && self.rename == other.rename
            && self.destination == other.destination
            && self.select == other.select
            && self.location == other.location
    }
}
impl Eq for CatalogImages {}

/// How a source path becomes a destination path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rename {
    /// The same path.
    Same,
    /// The path below this prefix (`ecr` + `team/app` = `ecr/team/app`).
    Prefix(String),
    /// A regular expression's replacement (`$1` for groups).
    Replace {
        /// The expression, as written.
        pattern: String,
        /// The replacement.
        replacement: String,
    },
}

impl Rename {
    /// The destination path of `path`.
    pub fn apply(&self, path: &str) -> String {
        match self {
            Rename::Same => path.to_string(),
            Rename::Prefix(prefix) if prefix.is_empty() => path.to_string(),
            Rename::Prefix(prefix) => format!("{}/{path}", prefix.trim_end_matches('/')),
            Rename::Replace {
                pattern,
                replacement,
            } => match regex::Regex::new(pattern) {
                Ok(re) => re.replace_all(path, replacement.as_str()).into_owned(),
                Err(_) => path.to_string(),
            },
        }
    }
}

/// Where one source repository goes, as a CIP manifest can say it: the
/// path both sides end with is the image name, and what precedes it on
/// each side is the source and destination registry. `None` when the last
/// components differ: a CIP manifest keeps an image's name.
pub fn split_mapping(
    source: &RegistryName,
    source_path: &str,
    destination: &RegistryName,
    destination_path: &str,
) -> Option<(RegistryName, ImageName, RegistryName)> {
    let joined = |prefix: &str, path: &str| -> Vec<String> {
        prefix
            .split('/')
            .chain(path.split('/'))
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut from = joined(&source.prefix, source_path);
    let docker_hub = matches!(&source.endpoint, crate::reference::Endpoint::Http { host } if host == "docker.io");
    if docker_hub && from.len() == 1 {
        from.insert(0, "library".to_string());
    }
    let to = joined(&destination.prefix, destination_path);
    let common = from
        .iter()
        .rev()
        .zip(to.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    if common == 0 {
        return None;
    }
    let name = ImageName::parse(&from[from.len() - common..].join("/")).ok()?;
    let source = RegistryName {
        endpoint: source.endpoint.clone(),
        prefix: from[..from.len() - common].join("/"),
    };
    let destination = RegistryName {
        endpoint: destination.endpoint.clone(),
        prefix: to[..to.len() - common].join("/"),
    };
    Some((source, name, destination))
}

/// Read and decode the intent at `path`; every problem is a diagnostic.
pub fn load(path: &Path) -> (Option<Intent>, Vec<Diagnostic>) {
    let display: Arc<Path> = Arc::from(path);
    match super::read::read_text(path, &display, false) {
        Ok(text) => decode_text(display, &text),
        Err(d) => (None, vec![d]),
    }
}

/// Decode an intent held in memory; `name` names it in messages.
pub fn load_text(name: &Path, text: &str) -> (Option<Intent>, Vec<Diagnostic>) {
    decode_text(Arc::from(name), text)
}

fn decode_text(file: Arc<Path>, source_text: &str) -> (Option<Intent>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let parsed = yaml::parse(source_text);
    for e in parsed.errors {
        diagnostics.push(
            Diagnostic::error(
                Location {
                    file: file.clone(),
                    line: e.pos.line,
                    col: e.pos.col,
                },
                e.message,
            )
            .with_help_opt(e.help),
        );
    }
    let mut ctx = Ctx {
        file: file.clone(),
        thin: false,
        diagnostics: &mut diagnostics,
    };
    let Some(root) = parsed.root.as_ref().filter(|r| !r.is_null()) else {
        ctx.error(
            Default::default(),
            "the intent is empty",
            Some("list `registries:` (one with `src: true`) and `images:`".to_string()),
        );
        return (None, diagnostics);
    };
    let intent = match super::seeds::sniff(root) {
        Some(Format::Sinker) => super::seeds::sinker(root, &mut ctx, &file),
        Some(Format::ImageSyncer) => super::seeds::image_syncer(root, &mut ctx, &file),
        Some(Format::Dregsy) => super::seeds::dregsy(root, &mut ctx, &file),
        _ => decode(root, &mut ctx, &file),
    };
    crate::diag::sort(&mut diagnostics);
    let intent = intent.filter(|_| !diagnostics.iter().any(Diagnostic::is_error));
    (intent, diagnostics)
}

const IMAGE_KEYS: [&str; 10] = [
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
];

fn decode(root: &Node<'_>, ctx: &mut Ctx<'_>, file: &Arc<Path>) -> Option<Intent> {
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
    let name = text(name_node, "an image name", ctx).and_then(|t| {
        ImageName::parse(t)
            .map_err(|e| ctx.name_error(name_node.pos, e))
            .ok()
    });
    let source = entry.value(1).and_then(|node| {
        let t = text(node, "a source registry", ctx)?;
        RegistryName::parse(t)
            .map_err(|e| ctx.name_error(node.pos, e))
            .ok()
    });
    let mut select = Selectors::default();
    if let Some(node) = entry.value(2) {
        (select.tags, select.digests) = tag_list(node, ctx);
    }
    select.semver = entry
        .value(3)
        .and_then(|n| located_text(n, "a semver range", ctx));
    if let Some(node) = entry.value(4) {
        select.prerelease = match text(node, "true or false", ctx) {
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                ctx.error(
                    node.pos,
                    format!("`prerelease` is true or false, not {other:?}"),
                    None,
                );
                false
            }
            None => false,
        };
    }
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
    if let Some(node) = entry.value(7) {
        select.latest = text(node, "a number", ctx).and_then(|t| match t.parse::<usize>() {
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
        });
    }
    if let Some(node) = entry.value(8) {
        select.platform = platform(node, ctx);
    }
    let follow = entry
        .value(9)
        .map(|n| decode::follow(n, ctx))
        .unwrap_or_default();
    let chooses = !select.tags.is_empty()
        || !select.digests.is_empty()
        || select.semver.is_some()
        || !select.regex.is_empty()
        || select.latest.is_some();
    // A selector that was written but is wrong is already reported.
    let attempted = [2, 3, 5, 7]
        .iter()
        .any(|&i| entry.found[i].is_some() || entry.reported_as_typo(i));
    if !chooses && !attempted && name.is_some() {
        ctx.error(
            item.pos,
            "the image entry selects no tags",
            Some("add `tags: [...]`, `semver:`, `regex:` or `latest: N`".to_string()),
        );
    }
    Some(IntentImage {
        name: name?,
        source,
        destinations: None,
        select,
        follow,
        location: ctx.at(item.pos),
    })
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
fn pinned_digest(text: &str) -> Option<Result<PinnedDigest, crate::reference::NameError>> {
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
    let parts: Vec<&str> = t.split('/').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    if !ok {
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

#[cfg(test)]
mod tests {
    use super::*;

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
