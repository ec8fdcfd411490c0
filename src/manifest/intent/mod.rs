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
//! The mirror tools' own files (Sinker's, image-syncer's, dregsy's) are
//! read as intents too, each by its decoder in `seeds`; which one a file
//! is, is told here by its top-level keys. Selector syntax (semver ranges,
//! regular expressions) is checked by [`crate::mirror`], which compiles
//! them; here they stay text with their place.

use std::path::Path;
use std::sync::Arc;

use super::decode::Ctx;
use super::yaml::{self, Node, Value};
use crate::diag::Diagnostic;

mod decode;
mod model;
mod seeds;

pub use model::{
    map_repository, split_mapping, CatalogImages, Format, Intent, IntentImage, Located, Mapped,
    PinnedDigest, RangeSyntax, ReadOptions, Rename, Schedule, Selectors, Task,
};

pub use seeds::dregsy::TaskFilter;

/// Sinker's image manifest as Sinker holds, updates and writes it, for
/// `promoter sinker` (`create`, `update`, `list`) and `import --out`.
pub mod sinker {
    use std::path::Path;
    use std::sync::Arc;

    pub use super::seeds::sinker::model::*;
    pub use super::seeds::sinker::write::sinker_text;
    use crate::diag::Diagnostic;

    /// Read the Sinker file at `path` as Sinker's `Get` does.
    pub fn load(path: &Path) -> (Option<SinkerFile>, Vec<Diagnostic>) {
        let display: Arc<Path> = Arc::from(path);
        match crate::manifest::read::read_text(path, &display, false) {
            Ok(text) => load_text(display, &text),
            Err(d) => (None, vec![d]),
        }
    }

    /// [`load`] of a file held in memory, named `name` in messages.
    pub fn load_text(name: Arc<Path>, text: &str) -> (Option<SinkerFile>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let parsed = crate::manifest::yaml::parse(text);
        crate::manifest::push_yaml_errors(&name, parsed.errors, &mut diagnostics);
        let mut ctx = crate::manifest::decode::Ctx {
            file: name,
            thin: false,
            diagnostics: &mut diagnostics,
        };
        // An empty file is an empty manifest to Sinker.
        let file = match parsed.root.as_ref().filter(|r| !r.is_null()) {
            None => Some(SinkerFile::default()),
            Some(root) => super::seeds::sinker::read(root, &mut ctx).map(|(f, _)| f),
        };
        crate::diag::sort(&mut diagnostics);
        let file = file.filter(|_| !diagnostics.iter().any(Diagnostic::is_error));
        (file, diagnostics)
    }
}

/// Read and decode the intent at `path`; every problem is a diagnostic.
pub fn load(path: &Path) -> (Option<Intent>, Vec<Diagnostic>) {
    load_named(path, super::Named::PipesToo)
}

/// [`load`], with what the named file may be.
pub fn load_named(path: &Path, named: super::Named) -> (Option<Intent>, Vec<Diagnostic>) {
    load_with(path, named, &ReadOptions::default())
}

/// [`load_named`], with what the file's own tool would know from its
/// command line.
pub fn load_with(
    path: &Path,
    named: super::Named,
    options: &ReadOptions,
) -> (Option<Intent>, Vec<Diagnostic>) {
    let display: Arc<Path> = Arc::from(path);
    match super::read::read_text(path, &display, named == super::Named::RegularOnly) {
        Ok(text) => decode_text(display, &text, options),
        Err(d) => (None, vec![d]),
    }
}

/// Decode an intent held in memory; `name` names it in messages.
pub fn load_text(name: &Path, text: &str) -> (Option<Intent>, Vec<Diagnostic>) {
    decode_text(Arc::from(name), text, &ReadOptions::default())
}

/// [`load_text`] with [`ReadOptions`].
pub fn load_text_with(
    name: &Path,
    text: &str,
    options: &ReadOptions,
) -> (Option<Intent>, Vec<Diagnostic>) {
    decode_text(Arc::from(name), text, options)
}

fn decode_text(
    file: Arc<Path>,
    source_text: &str,
    options: &ReadOptions,
) -> (Option<Intent>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let parsed = yaml::parse(source_text);
    super::push_yaml_errors(&file, parsed.errors, &mut diagnostics);
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
    let intent = match sniff(root) {
        Some(Format::Sinker) => seeds::sinker::decode(root, &mut ctx, &file),
        Some(Format::ImageSyncer) => seeds::image_syncer::decode(root, &mut ctx, &file, options),
        Some(Format::Dregsy) => seeds::dregsy::decode(root, &mut ctx, &file, options),
        Some(Format::Intent) | None => decode::intent(root, &mut ctx, &file),
    };
    crate::diag::sort(&mut diagnostics);
    let intent = intent.filter(|_| !diagnostics.iter().any(Diagnostic::is_error));
    (intent, diagnostics)
}

/// Which kind of file `path` is, by its top-level keys alone (it may
/// still have errors); `None` when it cannot be read or is none of them.
pub fn format_of(path: &Path) -> Option<Format> {
    let display: Arc<Path> = Arc::from(path);
    let text = super::read::read_text(path, &display, false).ok()?;
    let parsed = yaml::parse(&text);
    sniff(parsed.root.as_ref()?)
}

/// Whether `root` is a mapping whose `images` list has an entry with
/// `key` (`source`: image-syncer's file since its prefix moved to the
/// command line; `dmap`: a CIP manifest).
pub fn lists_images_with(root: &Node<'_>, key: &str) -> bool {
    let Value::Map(entries) = &root.value else {
        return false;
    };
    let images = entries
        .iter()
        .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == "images"));
    let Some((_, images)) = images else {
        return false;
    };
    let Value::Seq(items) = &images.value else {
        return false;
    };
    items.iter().any(|item| match &item.value {
        Value::Map(fields) => fields
            .iter()
            .any(|(k, _)| k.as_scalar().is_some_and(|s| s.text == key)),
        _ => false,
    })
}

/// Which kind of file `root` is, by its top-level keys; `None` for a file
/// that is none of them (decoded as our own, whose errors then say what an
/// intent needs).
fn sniff(root: &Node<'_>) -> Option<Format> {
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
    } else if has("targetRepoPrefix") || lists_images_with(root, "source") {
        Some(Format::ImageSyncer)
    } else if has("tasks") {
        Some(Format::Dregsy)
    } else {
        None
    }
}
