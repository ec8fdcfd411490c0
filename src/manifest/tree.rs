//! The shape of a thin manifest tree: which `manifests/<x>` + `images/<x>`
//! pairs exist, and what is misplaced.
//!
//! Symlinks are followed only while they stay inside the tree: the tree
//! comes from a pull request, and a link to `/etc` or to `..` must neither
//! leak files into the run nor make the walk loop.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diag::Diagnostic;
use crate::diag::Location;
use crate::manifest::read::io_message;

pub(super) const MANIFEST_FILE: &str = "promoter-manifest.yaml";
pub(super) const IMAGES_FILE: &str = "images.yaml";

/// Entries visited in one walk of `manifests/` or `images/`; real trees have
/// a few hundred. The bound keeps a pathological tree from stalling CI.
const MAX_WALK_ENTRIES: usize = 100_000;
const MAX_WALK_DEPTH: usize = 32;

/// One thin manifest: its two files, as paths to open and paths to show.
#[derive(Debug, Clone)]
pub(super) struct Pair {
    pub registries_path: PathBuf,
    pub registries_display: Arc<Path>,
    pub images_path: PathBuf,
    pub images_display: Arc<Path>,
}

/// What a path turned out to be after following symlinks (inside the tree).
enum Kind {
    /// A directory, with its canonical path when known (always for symlinks).
    Dir(Option<PathBuf>),
    /// A file (or device, FIFO...), with the path to open.
    File(PathBuf),
    Missing,
    /// Already reported.
    Refused,
}

struct Walker<'a> {
    root: PathBuf,
    diagnostics: &'a mut Vec<Diagnostic>,
    /// A path can be looked at twice (by the pairing and by the walk that
    /// looks for misplaced manifests); say each thing once.
    reported: HashSet<(PathBuf, String)>,
}

/// Find the manifest pairs of the tree at `dir`, reporting shape problems.
pub(super) fn discover(dir: &Path, diagnostics: &mut Vec<Diagnostic>) -> Vec<Pair> {
    let shown_dir: Arc<Path> = Arc::from(dir);
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            diagnostics.push(
                Diagnostic::error(Location::file_only(shown_dir), "is not a directory").with_help(
                    "--thin-manifest-dir takes the directory holding manifests/ and images/",
                ),
            );
            return Vec::new();
        }
        Err(err) => {
            diagnostics.push(Diagnostic::error(
                Location::file_only(shown_dir),
                format!(
                    "cannot read the thin manifest directory: {}",
                    io_message(&err)
                ),
            ));
            return Vec::new();
        }
    }
    let root = match fs::canonicalize(dir) {
        Ok(root) => root,
        Err(err) => {
            diagnostics.push(Diagnostic::error(
                Location::file_only(shown_dir),
                format!(
                    "cannot resolve the thin manifest directory: {}",
                    io_message(&err)
                ),
            ));
            return Vec::new();
        }
    };
    let mut walker = Walker {
        root,
        diagnostics,
        reported: HashSet::new(),
    };
    walker.pairs(dir)
}

fn at(display: &Path) -> Location {
    Location::file_only(Arc::from(display))
}

impl Walker<'_> {
    fn error(&mut self, display: &Path, message: impl Into<String>, help: Option<&str>) {
        let message = message.into();
        if !self
            .reported
            .insert((display.to_path_buf(), message.clone()))
        {
            return;
        }
        self.diagnostics
            .push(Diagnostic::error(at(display), message).with_help_opt(help));
    }

    fn warning(&mut self, display: &Path, message: impl Into<String>, help: Option<&str>) {
        self.diagnostics
            .push(Diagnostic::warning(at(display), message).with_help_opt(help));
    }

    fn pairs(&mut self, dir: &Path) -> Vec<Pair> {
        let manifests_display = PathBuf::from("manifests/");
        let images_display = PathBuf::from("images/");
        let manifests = self.classify(&dir.join("manifests"), &manifests_display);
        let images = self.classify(&dir.join("images"), &images_display);
        let images_ok = match images {
            Kind::Dir(_) => true,
            Kind::Missing => {
                self.error(
                    &images_display,
                    "the thin manifest tree has no images/ directory",
                    Some(
                        "add images/<x>/images.yaml for every manifests/<x>/promoter-manifest.yaml",
                    ),
                );
                false
            }
            Kind::File(_) => {
                self.error(&images_display, "images is not a directory", None);
                false
            }
            Kind::Refused => false,
        };
        let manifests_canonical = match manifests {
            Kind::Dir(canonical) => canonical,
            Kind::Missing => {
                self.error(
                    &manifests_display,
                    "the thin manifest tree has no manifests/ directory",
                    Some("add manifests/<x>/promoter-manifest.yaml naming the registries of each image set"),
                );
                return Vec::new();
            }
            Kind::File(_) => {
                self.error(&manifests_display, "manifests is not a directory", None);
                return Vec::new();
            }
            Kind::Refused => return Vec::new(),
        };

        let mut candidates = Vec::new();
        let mut found_any = false;
        for name in self.list(&dir.join("manifests"), &manifests_display) {
            let path = dir.join("manifests").join(&name);
            let display = manifests_display.join(&name);
            match self.classify(&path, &display) {
                Kind::Dir(canonical) => {
                    let file_display = display.join(MANIFEST_FILE);
                    match self.classify(&path.join(MANIFEST_FILE), &file_display) {
                        Kind::File(open) => {
                            found_any = true;
                            candidates.push((name.clone(), open, file_display));
                        }
                        Kind::Missing => self.warning(
                            &display,
                            format!(
                                "manifests/{}/ has no {MANIFEST_FILE}; skipped",
                                name.to_string_lossy()
                            ),
                            Some("add the manifest, or remove the directory"),
                        ),
                        Kind::Dir(_) => {
                            self.error(&file_display, "is a directory, not a file", None)
                        }
                        Kind::Refused => found_any = true,
                    }
                    let canonical = canonical.unwrap_or_else(|| {
                        canonical_below(
                            manifests_canonical.as_deref(),
                            &self.root,
                            "manifests",
                            &name,
                        )
                    });
                    self.find_nested(&path, &display, canonical);
                }
                Kind::File(_) if name == MANIFEST_FILE => {
                    found_any = true;
                    self.error(
                        &display,
                        format!("{MANIFEST_FILE} must be in a subdirectory of manifests/"),
                        Some("move it to manifests/<x>/promoter-manifest.yaml, next to images/<x>/images.yaml"),
                    );
                }
                // Other files (READMEs, OWNERS) are CIP-compatible clutter.
                Kind::File(_) | Kind::Missing | Kind::Refused => {}
            }
        }
        if images_ok {
            self.check_images_dir(dir, &images_display, &candidates);
        }
        if !found_any {
            self.error(
                &manifests_display,
                "no manifests found",
                Some("add manifests/<x>/promoter-manifest.yaml and images/<x>/images.yaml"),
            );
        }

        let mut pairs = Vec::new();
        for (name, registries_path, registries_display) in candidates {
            let images_dir_display = images_display.join(&name);
            let file_display = images_dir_display.join(IMAGES_FILE);
            if !images_ok {
                continue;
            }
            let images_path =
                match self.classify(&dir.join("images").join(&name), &images_dir_display) {
                    Kind::Dir(_) => match self.classify(
                        &dir.join("images").join(&name).join(IMAGES_FILE),
                        &file_display,
                    ) {
                        Kind::File(open) => Some(open),
                        Kind::Missing => None,
                        Kind::Dir(_) => {
                            self.error(&file_display, "is a directory, not a file", None);
                            continue;
                        }
                        Kind::Refused => continue,
                    },
                    Kind::Missing | Kind::File(_) => None,
                    Kind::Refused => continue,
                };
            let Some(images_path) = images_path else {
                self.error(
                    &registries_display,
                    format!("this manifest has no {}", file_display.display()),
                    Some("create it (an empty file means no images yet), or remove this manifest"),
                );
                continue;
            };
            pairs.push(Pair {
                registries_path,
                registries_display: Arc::from(registries_display.as_path()),
                images_path,
                images_display: Arc::from(file_display.as_path()),
            });
        }
        pairs
    }

    /// Names in `dir`, sorted so that output is stable.
    fn list(&mut self, dir: &Path, display: &Path) -> Vec<OsString> {
        match fs::read_dir(dir) {
            Ok(entries) => {
                let mut names = Vec::new();
                for entry in entries {
                    match entry {
                        Ok(entry) => names.push(entry.file_name()),
                        Err(err) => {
                            self.error(
                                display,
                                format!("cannot list the directory: {}", io_message(&err)),
                                None,
                            );
                            break;
                        }
                    }
                }
                names.sort();
                names
            }
            Err(err) => {
                self.error(
                    display,
                    format!("cannot list the directory: {}", io_message(&err)),
                    None,
                );
                Vec::new()
            }
        }
    }

    /// What `path` is, following a symlink only if it resolves inside the tree.
    fn classify(&mut self, path: &Path, display: &Path) -> Kind {
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Kind::Missing,
            Err(err) => {
                self.error(display, format!("cannot read: {}", io_message(&err)), None);
                return Kind::Refused;
            }
        };
        if !meta.file_type().is_symlink() {
            return if meta.is_dir() {
                Kind::Dir(None)
            } else {
                Kind::File(path.to_path_buf())
            };
        }
        let target = match fs::canonicalize(path) {
            Ok(target) => target,
            Err(err) if is_loop(&err) => {
                self.error(display, "symlink loop", Some("remove the symlink"));
                return Kind::Refused;
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                self.error(
                    display,
                    "symlink to a file that does not exist",
                    Some("fix or remove the symlink"),
                );
                return Kind::Refused;
            }
            Err(err) => {
                self.error(
                    display,
                    format!("cannot resolve the symlink: {}", io_message(&err)),
                    None,
                );
                return Kind::Refused;
            }
        };
        if !target.starts_with(&self.root) {
            // Never name the target: it is a path on this machine, outside
            // what the user asked us to read.
            self.error(
                display,
                "symlink points outside the thin manifest tree",
                Some(
                    "only files inside the tree are read: replace the symlink with the file itself",
                ),
            );
            return Kind::Refused;
        }
        match fs::metadata(&target) {
            Ok(meta) if meta.is_dir() => Kind::Dir(Some(target)),
            Ok(_) => Kind::File(target),
            Err(err) => {
                self.error(display, format!("cannot read: {}", io_message(&err)), None);
                Kind::Refused
            }
        }
    }

    /// Report any `promoter-manifest.yaml` deeper than `manifests/<x>/`:
    /// CIP refuses those, and they would otherwise be silently ignored.
    fn find_nested(&mut self, dir: &Path, display: &Path, canonical: PathBuf) {
        self.walk(dir, display, canonical, &mut |walker, file_display, depth| {
            if depth > 0 {
                walker.error(
                    file_display,
                    format!("{MANIFEST_FILE} nested below manifests/<x>/ is not read"),
                    Some("a thin manifest lives exactly at manifests/<x>/promoter-manifest.yaml: move it up, or delete it"),
                );
            }
        });
    }

    fn check_images_dir(
        &mut self,
        dir: &Path,
        display: &Path,
        candidates: &[(OsString, PathBuf, PathBuf)],
    ) {
        let images = dir.join("images");
        let canonical = match fs::canonicalize(&images) {
            Ok(c) => c,
            Err(_) => return,
        };
        self.walk(
            &images,
            display,
            canonical,
            &mut |walker, file_display, _| {
                walker.error(
                    file_display,
                    format!("{MANIFEST_FILE} under images/ is never read"),
                    Some("move it to manifests/<x>/promoter-manifest.yaml"),
                );
            },
        );
        let names: HashSet<&OsString> = candidates.iter().map(|(name, _, _)| name).collect();
        for name in self.list(&images, display) {
            let sub = images.join(&name);
            if names.contains(&name) || !sub.join(IMAGES_FILE).exists() {
                continue;
            }
            let sub_display = display.join(&name).join(IMAGES_FILE);
            self.warning(
                &sub_display,
                format!(
                    "no manifests/{}/{MANIFEST_FILE} for this file: its images are not promoted",
                    name.to_string_lossy()
                ),
                Some("add the manifest naming its registries, or remove the directory"),
            );
        }
    }

    /// Depth-first walk under `dir` calling `on_manifest` for every
    /// `promoter-manifest.yaml` found (depth 0 = directly in `dir`). Symlinked
    /// directories are followed inside the tree, each real directory once.
    fn walk(
        &mut self,
        dir: &Path,
        display: &Path,
        canonical: PathBuf,
        on_manifest: &mut dyn FnMut(&mut Self, &Path, usize),
    ) {
        let mut visited: HashSet<PathBuf> = HashSet::new();
        visited.insert(canonical.clone());
        // (path, display, canonical, depth)
        let mut stack = vec![(dir.to_path_buf(), display.to_path_buf(), canonical, 0usize)];
        let mut budget = MAX_WALK_ENTRIES;
        while let Some((path, shown, real, depth)) = stack.pop() {
            let names = self.list(&path, &shown);
            for name in names.into_iter().rev() {
                if budget == 0 {
                    self.error(
                        display,
                        format!("more than {MAX_WALK_ENTRIES} entries under this directory"),
                        Some("a thin tree holds one directory per manifest; remove what does not belong"),
                    );
                    return;
                }
                budget -= 1;
                let child = path.join(&name);
                let child_shown = shown.join(&name);
                let is_symlink = fs::symlink_metadata(&child)
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(false);
                let child_real = real.join(&name);
                if is_symlink {
                    // Detect a loop before `classify` follows it: a link to
                    // an ancestor is inside the tree but would never end.
                    if let Ok(target) = fs::canonicalize(&child) {
                        if real.starts_with(&target)
                            && fs::metadata(&target).is_ok_and(|m| m.is_dir())
                        {
                            self.error(
                                &child_shown,
                                "symlink loop: it points to a directory that contains it",
                                Some("remove the symlink"),
                            );
                            continue;
                        }
                    }
                }
                match self.classify(&child, &child_shown) {
                    Kind::Dir(target) => {
                        let target = target.unwrap_or(child_real);
                        if depth + 1 >= MAX_WALK_DEPTH {
                            self.error(
                                &child_shown,
                                "directories nest too deeply",
                                Some("flatten the tree"),
                            );
                            continue;
                        }
                        if visited.insert(target.clone()) {
                            stack.push((child, child_shown, target, depth + 1));
                        }
                    }
                    Kind::File(_) if name == MANIFEST_FILE => {
                        on_manifest(self, &child_shown, depth)
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The canonical path of `<root>/<top>/<name>` when it is a real directory.
fn canonical_below(top: Option<&Path>, root: &Path, top_name: &str, name: &OsString) -> PathBuf {
    match top {
        Some(top) => top.join(name),
        None => root.join(top_name).join(name),
    }
}

fn is_loop(err: &io::Error) -> bool {
    // ELOOP; `io::ErrorKind::FilesystemLoop` is not stable yet.
    #[cfg(target_os = "linux")]
    const ELOOP: i32 = 40;
    #[cfg(not(target_os = "linux"))]
    const ELOOP: i32 = 62;
    err.raw_os_error() == Some(ELOOP)
}
