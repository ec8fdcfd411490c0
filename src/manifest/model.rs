//! What loading produces: validated manifests with the source location of
//! every entry, so that later stages (conflict check, planner refusals) can
//! point at `file:line`.

use std::path::Path;
use std::sync::Arc;

use crate::diag::Location;

use crate::reference::{Digest, ImageName, RegistryName, Tag};

/// One registry entry of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEntry {
    /// The registry and path images are read from or written to.
    pub name: RegistryName,
    /// CIP's `service-account`, as written; `None` when absent or null.
    /// Kept for compatibility: nothing here authenticates with it.
    pub service_account: Option<String>,
    /// Where the entry (its list item) starts.
    pub location: Location,
}

/// One digest of an image with the tags it should carry (possibly none:
/// promote by digest only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestEntry {
    /// The manifest digest to promote.
    pub digest: Digest,
    /// The valid tags it should carry, in file order, without repeats; empty
    /// to promote by digest only.
    pub tags: Vec<TagEntry>,
    /// Where the digest key is written in the `dmap`.
    pub location: Location,
}

/// One tag of a digest entry, with where it is written, so that a refused
/// tag move or a conflict can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagEntry {
    /// The tag the destination should point at the digest.
    pub tag: Tag,
    /// Where this tag is written in the tag list.
    pub location: Location,
}

/// An image and its digests. Entries with the same name (and the same
/// `target`) in one manifest are merged into one `Image` (the first entry's
/// location is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The image name, relative to each registry's path.
    pub name: ImageName,
    /// Where it is written instead of `name` at every destination of its
    /// manifest (`target:`, a promoter extension for the mirror tools'
    /// renames); `None` in a CIP manifest, where an image keeps its name.
    pub target: Option<ImageName>,
    /// The valid digest entries of all merged entries; invalid ones were
    /// reported and left out.
    pub digests: Vec<DigestEntry>,
    /// Tags that may move to another digest (`follow:`, a promoter
    /// extension): `promoter pin` updates them and `run` moves them, shown
    /// as `move`. Every other tag never moves.
    pub follow: Vec<TagPattern>,
    /// Where the first entry with this name starts.
    pub location: Location,
}

impl Image {
    /// The image's name at its manifest's destinations: its `target`, or
    /// its `name` when it is not renamed.
    pub fn destination_name(&self) -> &ImageName {
        self.target.as_ref().unwrap_or(&self.name)
    }
}

/// A pattern tags are matched against in full (`latest`, `v1\..*`).
#[derive(Debug, Clone)]
pub struct TagPattern {
    regex: regex::Regex,
    /// Where it is written.
    pub location: Location,
}

impl TagPattern {
    /// `pattern`, matched in full; the error says why it is not one.
    pub fn new(pattern: &str, location: Location) -> Result<TagPattern, String> {
        regex::Regex::new(&format!("^(?:{pattern})$"))
            .map(|regex| TagPattern { regex, location })
            .map_err(|e| e.to_string())
    }
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        let full = self.regex.as_str();
        &full[4..full.len() - 2]
    }
    /// Whether `tag` matches in full.
    pub fn matches(&self, tag: &str) -> bool {
        self.regex.is_match(tag)
    }
}

impl PartialEq for TagPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() && self.location == other.location
    }
}
impl Eq for TagPattern {}

/// Whether `tag` matches one of `patterns`.
pub fn follows(patterns: &[TagPattern], tag: &str) -> bool {
    patterns.iter().any(|p| p.matches(tag))
}

/// One manifest: a plain file, or one `manifests/<x>` + `images/<x>` pair of a
/// thin tree. It has exactly one source and at least one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The file that names the registries.
    pub registries_file: Arc<Path>,
    /// The file that lists the images (the same file for a plain manifest).
    pub images_file: Arc<Path>,
    /// The registry entry marked `src: true`, where images are read from.
    pub source: RegistryEntry,
    /// Every other registry entry: where images are promoted to (never empty).
    pub destinations: Vec<RegistryEntry>,
    /// The images to promote, one per name.
    pub images: Vec<Image>,
}

impl Manifest {
    /// Every (image, digest entry) of this manifest.
    pub fn digest_entries(&self) -> impl Iterator<Item = (&Image, &DigestEntry)> {
        self.images
            .iter()
            .flat_map(|image| image.digests.iter().map(move |d| (image, d)))
    }
}
