//! The lock file `pin` writes: where it goes (standard output, one plain
//! manifest, or a thin tree when the intent pins several manifests), what
//! an earlier pin left there (kept: a reviewed digest stays), and writing
//! it so that a reader never sees half of it.

use std::io;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::manifest::{self, Manifest, ManifestInput};

use super::pin::{directory_names, lock_text, registries_text, Lock};

/// Where a lock goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOut {
    /// Standard output: one manifest only.
    Stdout,
    /// One plain manifest file.
    File(PathBuf),
    /// A thin manifest tree: `DIR/manifests/<x>/promoter-manifest.yaml` and
    /// `DIR/images/<x>/images.yaml` per pinned manifest.
    Tree(PathBuf),
}

/// Why a lock cannot be written where it was asked for.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Several manifests (sources or destinations differ) cannot share one
    /// plain file: a CIP manifest has one source.
    #[error(
        "the intent pins {count} manifests (their sources or destinations differ), and one {place} holds one: \
         write a thin tree with `--out {dir}/`, then promote it with `promoter run --thin-manifest-dir {dir}`"
    )]
    NeedsTree {
        /// How many manifests.
        count: usize,
        /// "file" or "standard output".
        place: &'static str,
        /// The directory to suggest.
        dir: String,
    },
    /// The lock that is there already has problems.
    #[error("{path}: the lock to update has problems; fix or remove it")]
    Previous {
        /// The lock file or tree.
        path: String,
        /// Its diagnostics.
        diagnostics: Vec<Diagnostic>,
    },
    /// Writing failed.
    #[error("{path}: cannot write the lock: {source}")]
    Write {
        /// The file or directory.
        path: String,
        /// What the system said.
        source: io::Error,
    },
}

impl LockOut {
    /// Where `--out` (absent: standard output) puts `count` manifests: a
    /// directory when it is one or ends in `/`, else a file, which holds
    /// one manifest only.
    pub fn choose(out: Option<&Path>, count: usize) -> Result<LockOut, LockError> {
        let out = match out {
            None if count > 1 => {
                return Err(LockError::NeedsTree {
                    count,
                    place: "standard output",
                    dir: "DIR".to_string(),
                })
            }
            None => return Ok(LockOut::Stdout),
            Some(out) => out,
        };
        if out.is_dir() || out.to_string_lossy().ends_with('/') {
            return Ok(LockOut::Tree(out.to_path_buf()));
        }
        if count > 1 {
            let stem = out.with_extension("");
            return Err(LockError::NeedsTree {
                count,
                place: "file",
                dir: stem.display().to_string(),
            });
        }
        Ok(LockOut::File(out.to_path_buf()))
    }

    /// What an earlier pin wrote here (nothing for standard output or a
    /// path that is not there yet).
    pub fn previous(&self) -> Result<Vec<Manifest>, LockError> {
        let (input, path) = match self {
            LockOut::File(file) if file.is_file() => (ManifestInput::Plain(file), file),
            LockOut::Tree(dir) if dir.is_dir() => (ManifestInput::ThinTree(dir), dir),
            _ => return Ok(Vec::new()),
        };
        let loaded = manifest::load(input);
        if loaded.has_errors() {
            return Err(LockError::Previous {
                path: path.display().to_string(),
                diagnostics: loaded.diagnostics,
            });
        }
        Ok(loaded.manifests)
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// The files written (none for standard output).
    pub files: Vec<PathBuf>,
    /// Manifests in the lock.
    pub manifests: usize,
    /// Images in them.
    pub images: usize,
    /// Digest entries in them.
    pub digests: usize,
}

/// Write `locks` (pinned from the intent file `intent`) to `out`; standard
/// output goes to `stdout`.
pub fn write(
    out: &LockOut,
    locks: &[Lock],
    intent: &str,
    stdout: &mut dyn io::Write,
) -> Result<Written, LockError> {
    let mut written = Written {
        manifests: locks.len(),
        images: locks.iter().map(|l| l.images.len()).sum(),
        digests: locks
            .iter()
            .flat_map(|l| l.images.values())
            .map(|d| d.len())
            .sum(),
        ..Written::default()
    };
    match out {
        LockOut::Stdout => {
            for lock in locks {
                stdout
                    .write_all(lock_text(lock, intent, false).as_bytes())
                    .map_err(|source| write_error(Path::new("-"), source))?;
            }
        }
        LockOut::File(file) => {
            let text = locks
                .first()
                .map(|l| lock_text(l, intent, false))
                .unwrap_or_default();
            replace(file, &text)?;
            written.files.push(file.clone());
        }
        LockOut::Tree(dir) => written.files = write_tree(dir, locks, intent)?,
    }
    Ok(written)
}

fn write_tree(dir: &Path, locks: &[Lock], intent: &str) -> Result<Vec<PathBuf>, LockError> {
    let mut files = Vec::new();
    for (lock, slug) in locks.iter().zip(directory_names(locks)) {
        let manifests = dir.join("manifests").join(&slug);
        let images = dir.join("images").join(&slug);
        for d in [&manifests, &images] {
            std::fs::create_dir_all(d).map_err(|source| write_error(d, source))?;
        }
        let registries = manifests.join("promoter-manifest.yaml");
        replace(&registries, &registries_text(lock))?;
        let list = images.join("images.yaml");
        replace(&list, &lock_text(lock, intent, true))?;
        files.extend([registries, list]);
    }
    Ok(files)
}

fn write_error(path: &Path, source: io::Error) -> LockError {
    LockError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// Replace `path` with `text`: a temporary file beside it, then a rename,
/// so a reader never sees half of it (and a failure leaves the old one).
pub fn replace(path: &Path, text: &str) -> Result<(), LockError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp =
        tempfile::NamedTempFile::new_in(&dir).map_err(|source| write_error(path, source))?;
    io::Write::write_all(&mut temp, text.as_bytes()).map_err(|source| write_error(path, source))?;
    temp.persist(path).map_err(|e| write_error(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::RegistryName;

    fn lock(source: &str) -> Lock {
        Lock {
            source: RegistryName::parse(source).unwrap(),
            destinations: vec![RegistryName::parse("mirror.example/m").unwrap()],
            images: Default::default(),
            follow: Default::default(),
        }
    }

    #[test]
    fn one_manifest_goes_to_a_file_and_several_need_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mirror.lock.yaml");
        assert_eq!(
            LockOut::choose(Some(&file), 1).unwrap(),
            LockOut::File(file.clone())
        );
        let refused = LockOut::choose(Some(&file), 2).unwrap_err().to_string();
        let stem = dir.path().join("mirror.lock").display().to_string();
        assert!(refused.contains(&format!("`--out {stem}/`")), "{refused}");
        assert!(
            refused.contains(&format!("--thin-manifest-dir {stem}`")),
            "{refused}"
        );
        let tree = dir.path().join("locks/");
        assert_eq!(
            LockOut::choose(Some(&tree), 2).unwrap(),
            LockOut::Tree(tree)
        );
        assert!(LockOut::choose(None, 2).is_err());
        assert_eq!(LockOut::choose(None, 1).unwrap(), LockOut::Stdout);
    }

    #[test]
    fn a_tree_gets_a_pair_of_files_per_manifest_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let out = LockOut::Tree(dir.path().join("locks"));
        let locks = [lock("a.example/x"), lock("b.example/y")];
        let written = write(&out, &locks, "intent.yaml", &mut io::sink()).unwrap();
        assert_eq!(written.files.len(), 4);
        assert_eq!(written.manifests, 2);
        assert!(dir
            .path()
            .join("locks/manifests/a-example-x/promoter-manifest.yaml")
            .is_file());
        // An empty image list is still a valid tree: pinning again keeps it.
        assert_eq!(out.previous().unwrap().len(), 2);
    }
}
