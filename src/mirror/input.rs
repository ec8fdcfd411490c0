//! What `list` and `outdated` read: a lock `pin` wrote, any CIP manifest
//! (a file or a thin tree), a mirroring intent, or a seed tool's file.
//! They are told apart by their content, so the file a user has is the
//! argument they pass, whatever it is.

use std::path::Path;

use crate::diag::Diagnostic;
use crate::manifest::intent::{self, Intent};
use crate::manifest::yaml;
use crate::manifest::{self, Manifest, ManifestInput};

/// A file (or tree) read as what it is.
#[derive(Debug)]
pub enum Named {
    /// CIP manifests: their digests are pinned.
    Manifests(Vec<Manifest>),
    /// An intent or a seed tool's file: tags chosen by name or selector.
    Intent(Box<Intent>),
}

/// Read `path` as whichever of the formats it holds; the diagnostics of
/// that format, and the content unless it has errors.
pub fn load(path: &Path) -> (Option<Named>, Vec<Diagnostic>) {
    if path.is_dir() {
        return manifests(ManifestInput::ThinTree(path));
    }
    if is_cip_manifest(path) {
        return manifests(ManifestInput::Plain(path));
    }
    let (loaded, diagnostics) = intent::load(path);
    (loaded.map(|i| Named::Intent(Box::new(i))), diagnostics)
}

fn manifests(input: ManifestInput<'_>) -> (Option<Named>, Vec<Diagnostic>) {
    let loaded = manifest::load(input);
    let named = (!loaded.has_errors()).then(|| Named::Manifests(loaded.manifests));
    (named, loaded.diagnostics)
}

/// Whether the file reads as a CIP manifest: an `images` list whose entries
/// pin digests (`dmap`), where an intent's choose tags. Anything unreadable
/// is left to the intent reader, which says what is wrong with it.
fn is_cip_manifest(path: &Path) -> bool {
    let Ok(bytes) = crate::local_file::read_capped(path, manifest::MAX_FILE_BYTES) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return false;
    };
    let parsed = yaml::parse(text);
    parsed
        .root
        .is_some_and(|root| intent::lists_images_with(&root, "dmap"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = "registries:\n- name: src.example/up\n  src: true\n- name: dst.example/m\nimages:\n- name: app\n  dmap:\n    \"sha256:1111111111111111111111111111111111111111111111111111111111111111\": [\"1.0\"]\n";
    const INTENT: &str = "registries:\n- name: src.example/up\n  src: true\n- name: dst.example/m\nimages:\n- name: app\n  tags: [\"1.0\"]\n";

    #[test]
    fn a_lock_reads_as_manifests_and_an_intent_as_an_intent() {
        let dir = tempfile::tempdir().unwrap();
        let (lock, intent) = (dir.path().join("lock.yaml"), dir.path().join("intent.yaml"));
        std::fs::write(&lock, LOCK).unwrap();
        std::fs::write(&intent, INTENT).unwrap();
        assert!(matches!(load(&lock).0, Some(Named::Manifests(m)) if m.len() == 1));
        assert!(matches!(load(&intent).0, Some(Named::Intent(_))));
        let (none, diagnostics) = load(&dir.path().join("absent.yaml"));
        assert!(none.is_none() && !diagnostics.is_empty());
    }
}
