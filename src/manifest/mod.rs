//! Loading and validating promoter manifests (plain files and thin trees).
//!
//! Everything here is offline. `load` never stops at the first problem: it
//! returns every diagnostic it found, sorted by file and line.
use std::path::Path;

use crate::diag::Diagnostic;

pub mod model;

pub use model::{DigestEntry, Image, Location, Manifest, RegistryEntry, TagEntry};

/// What to load.
#[derive(Debug, Clone, Copy)]
pub enum ManifestInput<'a> {
    /// `--manifest FILE`: one plain manifest.
    Plain(&'a Path),
    /// `--thin-manifest-dir DIR`: `manifests/<x>/promoter-manifest.yaml` +
    /// `images/<x>/images.yaml` pairs.
    ThinTree(&'a Path),
}

/// The result of loading: the manifests that loaded, and every diagnostic
/// (errors and warnings), sorted. Callers must not use `manifests` for
/// anything but reporting when `has_errors()`.
#[derive(Debug, Default)]
pub struct Loaded {
    pub manifests: Vec<Manifest>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Load, validate and conflict-check the input.
pub fn load(input: ManifestInput<'_>) -> Loaded {
    let _ = input;
    Loaded::default()
}
