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
    pub name: RegistryName,
    pub service_account: Option<String>,
    pub location: Location,
}

/// One digest of an image with the tags it should carry (possibly none:
/// promote by digest only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestEntry {
    pub digest: Digest,
    pub tags: Vec<TagEntry>,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagEntry {
    pub tag: Tag,
    pub location: Location,
}

/// An image and its digests. Entries with the same name in one manifest are
/// merged into one `Image` (the first entry's location is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub name: ImageName,
    pub digests: Vec<DigestEntry>,
    pub location: Location,
}

/// One manifest: a plain file, or one `manifests/<x>` + `images/<x>` pair of a
/// thin tree. It has exactly one source and at least one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The file that names the registries.
    pub registries_file: Arc<Path>,
    /// The file that lists the images (the same file for a plain manifest).
    pub images_file: Arc<Path>,
    pub source: RegistryEntry,
    pub destinations: Vec<RegistryEntry>,
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
