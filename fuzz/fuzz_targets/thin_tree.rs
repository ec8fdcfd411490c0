//! Any bytes as a thin manifest tree of two pairs: the input, cut at NUL
//! bytes, is `manifests/a/promoter-manifest.yaml`, `images/a/images.yaml`,
//! `manifests/b/...`, `images/b/...` (missing parts are missing files). The
//! loader must return diagnostics, never panic, never print a credential it
//! was given, and only name files inside the tree. Slower than
//! `manifest_loader` (it writes the files), but it reaches the thin-tree
//! decoding and the conflict check across files.
#![no_main]

use std::fs;
use std::path::{Component, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use promoter::manifest::{load, ManifestInput};

mod password;

const FILES: [&str; 4] = [
    "manifests/a/promoter-manifest.yaml",
    "images/a/images.yaml",
    "manifests/b/promoter-manifest.yaml",
    "images/b/images.yaml",
];

/// One tree per fuzzing process, rewritten for every input: in memory when
/// /dev/shm exists (five times the executions of a disk-backed /tmp), left
/// behind when the run ends (a few KB).
fn tree() -> &'static PathBuf {
    static TREE: OnceLock<PathBuf> = OnceLock::new();
    TREE.get_or_init(|| {
        let shm = PathBuf::from("/dev/shm");
        let base = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("promoter-fuzz-thin-{}", std::process::id()));
        for sub in ["manifests/a", "manifests/b", "images/a", "images/b"] {
            fs::create_dir_all(dir.join(sub)).expect("create the fuzz tree");
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = tree();
    let mut parts = data.split(|&b| b == 0);
    for file in FILES {
        let path = dir.join(file);
        match parts.next() {
            Some(part) => fs::write(&path, part).expect("write a tree file"),
            None => {
                let _ = fs::remove_file(&path);
            }
        }
    }
    let loaded = load(ManifestInput::ThinTree(dir));
    let input = String::from_utf8_lossy(data);
    for diagnostic in &loaded.diagnostics {
        let shown = diagnostic.to_string();
        assert!(
            !shown.contains("YAML parser failed"),
            "the parser panicked (caught): {shown}"
        );
        assert!(
            !password::leaked(&input, &shown),
            "a credential leaked: {shown}"
        );
        // Files are shown relative to the tree (or as the tree itself).
        let file = &diagnostic.location.file;
        let inside = file.starts_with(dir)
            || (file.is_relative() && !file.components().any(|c| c == Component::ParentDir));
        assert!(inside, "{shown} names a file outside the tree");
    }
});
