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
