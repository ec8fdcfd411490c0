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
use crate::limits::WALK_ENTRIES;
use crate::local_file::walk::{self, Found, Refusal, Walk};
use crate::manifest::read::io_message;

pub(super) const MANIFEST_FILE: &str = "promoter-manifest.yaml";
pub(super) const IMAGES_FILE: &str = "images.yaml";

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
    Dir,
    /// A file (or device, FIFO...), with the path to open.
    File(PathBuf),
    Missing,
    /// Already reported.
    Refused,
}

/// A `manifests/<x>/promoter-manifest.yaml` found: `<x>`, the path to open,
/// the path to show.
struct Candidate {
    name: OsString,
    open: PathBuf,
    display: PathBuf,
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
        let images_ok = self.images_dir(dir, &images_display);
        if !self.manifests_dir(dir, &manifests_display) {
            return Vec::new();
        }
        let (candidates, found_any) = self.candidates(dir, &manifests_display);
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
        if !images_ok {
            return Vec::new();
        }
        candidates
            .into_iter()
            .filter_map(|candidate| self.pair(dir, &images_display, candidate))
            .collect()
    }

    /// Whether `images/` is a directory; what it is otherwise is reported.
    fn images_dir(&mut self, dir: &Path, display: &Path) -> bool {
        match self.classify(&dir.join("images"), display) {
            Kind::Dir => true,
            Kind::Missing => {
                self.error(
                    display,
                    "the thin manifest tree has no images/ directory",
                    Some(
                        "add images/<x>/images.yaml for every manifests/<x>/promoter-manifest.yaml",
                    ),
                );
                false
            }
            Kind::File(_) => {
                self.error(display, "images is not a directory", None);
                false
            }
            Kind::Refused => false,
        }
    }

    /// Whether `manifests/` is a directory; what it is otherwise is reported.
    fn manifests_dir(&mut self, dir: &Path, display: &Path) -> bool {
        match self.classify(&dir.join("manifests"), display) {
            Kind::Dir => true,
            Kind::Missing => {
                self.error(
                    display,
                    "the thin manifest tree has no manifests/ directory",
                    Some("add manifests/<x>/promoter-manifest.yaml naming the registries of each image set"),
                );
                false
            }
            Kind::File(_) => {
                self.error(display, "manifests is not a directory", None);
                false
            }
            Kind::Refused => false,
        }
    }

    /// The `manifests/<x>/promoter-manifest.yaml` files, and whether any
    /// manifest was found at all (one refused or misplaced counts: it is
    /// reported already).
    fn candidates(&mut self, dir: &Path, manifests_display: &Path) -> (Vec<Candidate>, bool) {
        let mut candidates = Vec::new();
        let mut found_any = false;
        for name in self.list(&dir.join("manifests"), manifests_display) {
            let path = dir.join("manifests").join(&name);
            let display = manifests_display.join(&name);
            match self.classify(&path, &display) {
                Kind::Dir => {
                    let file_display = display.join(MANIFEST_FILE);
                    match self.classify(&path.join(MANIFEST_FILE), &file_display) {
                        Kind::File(open) => {
                            found_any = true;
                            candidates.push(Candidate {
                                name: name.clone(),
                                open,
                                display: file_display,
                            });
                        }
                        Kind::Missing => self.warning(
                            &display,
                            format!(
                                "manifests/{}/ has no {MANIFEST_FILE}; skipped",
                                name.to_string_lossy()
                            ),
                            Some("add the manifest, or remove the directory"),
                        ),
                        Kind::Dir => self.error(&file_display, "is a directory, not a file", None),
                        Kind::Refused => found_any = true,
                    }
                    self.find_nested(&path, &display);
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
        (candidates, found_any)
    }

    /// The pair of a manifest and its `images/<x>/images.yaml`, or `None`
    /// (reported) when that file is missing or unusable.
    fn pair(&mut self, dir: &Path, images_display: &Path, candidate: Candidate) -> Option<Pair> {
        let images_dir = dir.join("images").join(&candidate.name);
        let images_dir_display = images_display.join(&candidate.name);
        let file_display = images_dir_display.join(IMAGES_FILE);
        let images_path = match self.classify(&images_dir, &images_dir_display) {
            Kind::Dir => match self.classify(&images_dir.join(IMAGES_FILE), &file_display) {
                Kind::File(open) => Some(open),
                Kind::Missing => None,
                Kind::Dir => {
                    self.error(&file_display, "is a directory, not a file", None);
                    return None;
                }
                Kind::Refused => return None,
            },
            Kind::Missing | Kind::File(_) => None,
            Kind::Refused => return None,
        };
        let Some(images_path) = images_path else {
            self.error(
                &candidate.display,
                format!("this manifest has no {}", file_display.display()),
                Some("create it (an empty file means no images yet), or remove this manifest"),
            );
            return None;
        };
        Some(Pair {
            registries_path: candidate.open,
            registries_display: Arc::from(candidate.display.as_path()),
            images_path,
            images_display: Arc::from(file_display.as_path()),
        })
    }

    /// Names in `dir`, sorted so that output is stable.
    fn list(&mut self, dir: &Path, display: &Path) -> Vec<OsString> {
        match walk::list(dir, WALK_ENTRIES) {
            Ok(names) if names.len() > WALK_ENTRIES => {
                self.too_many_entries(display);
                Vec::new()
            }
            Ok(names) => names,
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

    fn too_many_entries(&mut self, display: &Path) {
        self.error(
            display,
            format!("more than {WALK_ENTRIES} entries under this directory"),
            Some("a thin tree holds one directory per manifest; remove what does not belong"),
        );
    }

    /// What `path` is, following a symlink only if it resolves inside the tree.
    fn classify(&mut self, path: &Path, display: &Path) -> Kind {
        match walk::resolve(path, true, Some(&self.root)) {
            Ok(resolved) if resolved.kind == walk::Kind::Dir => Kind::Dir,
            Ok(resolved) => Kind::File(resolved.path),
            Err(Refusal::Unreadable(err)) if err.kind() == io::ErrorKind::NotFound => Kind::Missing,
            Err(refusal) => {
                self.refuse(display, &refusal);
                Kind::Refused
            }
        }
    }

    /// Say why the path shown as `display` is not read.
    fn refuse(&mut self, display: &Path, refusal: &Refusal) {
        match refusal {
            Refusal::Unreadable(err) if err.kind() == io::ErrorKind::NotFound => {}
            Refusal::Unreadable(err) => {
                self.error(display, format!("cannot read: {}", io_message(err)), None)
            }
            Refusal::LinkCycle => self.error(display, "symlink loop", Some("remove the symlink")),
            Refusal::Ancestor => self.error(
                display,
                "symlink loop: it points to a directory that contains it",
                Some("remove the symlink"),
            ),
            Refusal::Dangling => self.error(
                display,
                "symlink to a file that does not exist",
                Some("fix or remove the symlink"),
            ),
            Refusal::Unresolved(err) => self.error(
                display,
                format!("cannot resolve the symlink: {}", io_message(err)),
                None,
            ),
            // Never name the target: it is a path on this machine, outside
            // what the user asked us to read.
            Refusal::Escapes => self.error(
                display,
                "symlink points outside the thin manifest tree",
                Some(
                    "only files inside the tree are read: replace the symlink with the file itself",
                ),
            ),
            Refusal::TooDeep => self.error(
                display,
                "directories nest too deeply",
                Some("flatten the tree"),
            ),
            Refusal::Unlisted(err) => self.error(
                display,
                format!("cannot list the directory: {}", io_message(err)),
                None,
            ),
            Refusal::TooMany => self.too_many_entries(display),
            // Each real directory is walked once; links are followed here.
            Refusal::Again | Refusal::Link => {}
        }
    }

    /// Report any `promoter-manifest.yaml` deeper than `manifests/<x>/`:
    /// CIP refuses those, and they would otherwise be silently ignored.
    fn find_nested(&mut self, dir: &Path, display: &Path) {
        self.walk(dir, display, &mut |walker, file_display, depth| {
            if depth > 0 {
                walker.error(
                    file_display,
                    format!("{MANIFEST_FILE} nested below manifests/<x>/ is not read"),
                    Some("a thin manifest lives exactly at manifests/<x>/promoter-manifest.yaml: move it up, or delete it"),
                );
            }
        });
    }

    fn check_images_dir(&mut self, dir: &Path, display: &Path, candidates: &[Candidate]) {
        let images = dir.join("images");
        let walked = self.walk(&images, display, &mut |walker, file_display, _| {
            walker.error(
                file_display,
                format!("{MANIFEST_FILE} under images/ is never read"),
                Some("move it to manifests/<x>/promoter-manifest.yaml"),
            );
        });
        if !walked {
            return;
        }
        let names: HashSet<&OsString> = candidates.iter().map(|c| &c.name).collect();
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

    /// Walk `dir` (shown as `display`) calling `on_manifest` for every
    /// `promoter-manifest.yaml` found (depth 0 = directly in `dir`).
    /// Symlinks are followed inside the tree, each real directory once.
    /// False when `dir` cannot be resolved (nothing is walked).
    fn walk(
        &mut self,
        dir: &Path,
        display: &Path,
        on_manifest: &mut dyn FnMut(&mut Self, &Path, usize),
    ) -> bool {
        let walk = Walk::new(dir)
            .shown_as(display)
            .inside(&self.root)
            .files(|name| name == MANIFEST_FILE);
        let Ok(entries) = walk.run() else {
            return false;
        };
        for entry in entries {
            match entry.found {
                Found::Dir => {}
                Found::File | Found::Special => on_manifest(self, &entry.shown, entry.depth - 1),
                // Said once, for the whole walk.
                Found::Refused(Refusal::TooMany) => self.too_many_entries(display),
                Found::Refused(refusal) => self.refuse(&entry.shown, &refusal),
            }
        }
        true
    }
}
