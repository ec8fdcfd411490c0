//! What an intent says, whichever file it was written as: the images to
//! mirror, what each selects, and where it goes. The decoders (ours in
//! `decode`, the mirror tools' in `seeds`) produce it; `crate::mirror`
//! reads it.

use std::path::Path;
use std::sync::Arc;

use crate::diag::Location;
use crate::manifest::model::{RegistryEntry, TagPattern};
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
    /// How `semver` is written and read: Cargo's ranges (ours), or
    /// dregsy's (blang's: spaces AND, pre-releases ordered below their
    /// release and never left out).
    pub ranges: RangeSyntax,
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
    /// The tag the destination gets instead of the exact tag chosen
    /// (image-syncer's `tag:` on a source named by tag: a retag, pinned to
    /// the source tag's digest).
    pub retag: Option<Located<Tag>>,
}

/// The syntax and meaning of a `semver` range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RangeSyntax {
    /// Cargo's (`>=1.2.0, <2.0.0`): promoter's own intents.
    #[default]
    Cargo,
    /// github.com/blang/semver's, as dregsy reads its `semver:` filters.
    Blang,
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
    /// The image, relative to its source (and to each destination, unless
    /// `target` renames it).
    pub name: ImageName,
    /// Its path at the destinations when it is written under another one
    /// (a dregsy rename, a Sinker flattening): the lock's `target:`.
    pub target: Option<ImageName>,
    /// Its source, when not the intent's default one.
    pub source: Option<RegistryName>,
    /// Its destinations, when not the intent's (a seed tool's file maps
    /// some images elsewhere).
    pub destinations: Option<Vec<RegistryName>>,
    /// What it selects.
    pub select: Selectors,
    /// Tags that follow the source (`follow: ["latest"]`): pinning again
    /// moves them to what the source has now, and the lock lets them move.
    pub follow: Vec<TagPattern>,
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
    /// dregsy's tasks, each its own part of the intent on its own
    /// interval (`promoter dregsy` runs them so); `None` for other files.
    pub schedule: Option<Schedule>,
}

/// When the parts of an intent run: dregsy's tasks, and whether its
/// config is read again when it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The tasks, in file order.
    pub tasks: Vec<Task>,
    /// `watch: true`: read the file again when it changes.
    pub watch: bool,
}

/// One dregsy task: a name, an interval, and the images and catalog
/// entries of the intent that are its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Its `name`.
    pub name: String,
    /// Seconds between its runs; 0 runs it once.
    pub interval: u64,
    /// Its images: this range of [`Intent::images`].
    pub images: std::ops::Range<usize>,
    /// Its catalog entries: this range of [`Intent::catalog`].
    pub catalog: std::ops::Range<usize>,
    /// Where it is written.
    pub location: Location,
}

impl Intent {
    /// The part of this intent that `task` (of its schedule) mirrors, as
    /// an intent of its own.
    pub fn of_task(&self, task: &Task) -> Intent {
        let mut part = self.clone();
        part.images = self.images[task.images.clone()].to_vec();
        part.catalog = self.catalog[task.catalog.clone()].to_vec();
        part.schedule = None;
        if let Some(first) = part.images.first() {
            if let (Some(source), Some(destinations)) = (&first.source, &first.destinations) {
                part.source.name = source.clone();
                part.destinations.truncate(1);
                part.destinations[0].name = destinations[0].clone();
            }
        } else if let Some(first) = part.catalog.first() {
            part.source.name = first.source.clone();
            part.destinations.truncate(1);
            part.destinations[0].name = first.destination.clone();
        }
        part
    }
}

/// How the mirror tools' files are read when their tool's command line
/// says more than the file (`promoter image-syncer`, `promoter dregsy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// image-syncer's `--target-repo-prefix` (`SYNCER_TARGET_REPO_PREFIX`):
    /// where its images go, over a `targetRepoPrefix` in the file.
    pub target_repo_prefix: Option<String>,
    /// dregsy's `interval` and `watch` are carried out by the caller, so
    /// reading them is no cause for a warning.
    pub scheduled: bool,
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
    /// A regular expression's replacement (`$1` for groups), applied as
    /// dregsy applies it: to every match in `/<path>` (the leading slash
    /// included, so `^/team/` matches), the result's leading `/` dropped.
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
                Ok(re) => {
                    let normalised = format!("/{}", path.trim_start_matches('/'));
                    let replaced = re.replace_all(&normalised, replacement.as_str());
                    replaced.trim_start_matches('/').to_string()
                }
                Err(_) => path.to_string(),
            },
        }
    }
}

/// Where one source repository goes, as a lock says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// The registry (and path) it is read below.
    pub source: RegistryName,
    /// Its name below `source`.
    pub name: ImageName,
    /// The registry (and path) it is written below.
    pub destination: RegistryName,
    /// Its path below `destination` when that is not `name`: a rename.
    pub target: Option<ImageName>,
}

/// Where `source_path` of `source` goes when it is written to
/// `destination_path` of `destination`: as a CIP manifest says it (one
/// name, see [`split_mapping`]) when both paths end alike, else renamed
/// (`target:`). `None` when a path is not a repository path.
pub fn map_repository(
    source: &RegistryName,
    source_path: &str,
    destination: &RegistryName,
    destination_path: &str,
) -> Option<Mapped> {
    if let Some((source, name, destination)) =
        split_mapping(source, source_path, destination, destination_path)
    {
        return Some(Mapped {
            source,
            name,
            destination,
            target: None,
        });
    }
    let name = ImageName::parse(source_path.trim_matches('/')).ok()?;
    let target = ImageName::parse(destination_path.trim_matches('/')).ok()?;
    Some(Mapped {
        source: source.clone(),
        name,
        destination: destination.clone(),
        target: Some(target),
    })
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
