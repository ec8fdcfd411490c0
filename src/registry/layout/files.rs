//! The file operations of an `oci:` tree, each safe against a tree someone
//! else prepared (a hostile source, or a destination with planted links):
//!
//! - every read opens a **regular file inside the tree**: the path is
//!   resolved and must stay under the resolved root (a symlink may point
//!   elsewhere in the tree, never out of it), and it is opened without
//!   following a link and without blocking, so a FIFO, device or socket is
//!   refused instead of hanging the run;
//! - every whole-file read is **capped** (index.json, manifests), checked
//!   against the size the file system reports and again while reading;
//! - every write goes into a directory that **resolves inside the tree**,
//!   through a temp file created exclusively and without following links,
//!   so a planted symlink can make a write fail but never land elsewhere.
//!
//! What is not covered: another process rewriting the tree while we read or
//! write it (the checks and the use are separate system calls). Concurrent
//! writers of one tree are unsupported anyway (see the module above).

use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{invalid, io_error, is_absent};
use crate::local_file;
use crate::registry::RegistryError;

/// The root of an `oci:` tree, and the checks every file operation in it
/// goes through.
#[derive(Debug)]
pub(super) struct Tree {
    root: PathBuf,
}

impl Tree {
    pub(super) fn new(root: PathBuf) -> Tree {
        Tree { root }
    }

    /// `path` with every link resolved, if it exists and lies inside the
    /// tree; `None` when it does not exist. A path that resolves outside the
    /// root is an error, never "absent": the tree is damaged or hostile.
    async fn resolve_inside(&self, path: &Path) -> Result<Option<PathBuf>, RegistryError> {
        let resolved = match tokio::fs::canonicalize(path).await {
            Ok(p) => p,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(io_error(path, e)),
        };
        let root = match tokio::fs::canonicalize(&self.root).await {
            Ok(p) => p,
            Err(e) => return Err(io_error(&self.root, e)),
        };
        if !resolved.starts_with(&root) {
            return Err(invalid(
                path.display().to_string(),
                format!(
                    "resolves to {}, outside the oci: tree {} (links in a tree may only \
                     point inside it)",
                    resolved.display(),
                    self.root.display()
                ),
            ));
        }
        Ok(Some(resolved))
    }

    /// Open `path` for reading: a regular file inside the tree, with its
    /// size. `None` when there is no such file.
    pub(super) async fn open(
        &self,
        path: &Path,
    ) -> Result<Option<(tokio::fs::File, u64)>, RegistryError> {
        let Some(resolved) = self.resolve_inside(path).await? else {
            return Ok(None);
        };
        let opened = tokio::task::spawn_blocking(move || local_file::open_regular(&resolved, true))
            .await
            .map_err(|e| io_error(path, std::io::Error::other(e.to_string())))?;
        match opened {
            Ok((file, size)) => Ok(Some((tokio::fs::File::from_std(file), size))),
            Err(e) if e.is_absent() => Ok(None),
            Err(e) => Err(read_error(path, e)),
        }
    }

    /// The size of the regular file at `path`, `None` when there is none.
    pub(super) async fn size(&self, path: &Path) -> Result<Option<u64>, RegistryError> {
        let Some(resolved) = self.resolve_inside(path).await? else {
            return Ok(None);
        };
        match tokio::fs::metadata(&resolved).await {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Err(not_regular(path)),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(io_error(path, e)),
        }
    }

    /// The whole of the regular file at `path`, refused past `limit` bytes
    /// (`kind` names the file in the error, e.g. "index.json"); `None` when
    /// there is no such file.
    pub(super) async fn read_capped(
        &self,
        path: &Path,
        limit: u64,
        kind: &str,
    ) -> Result<Option<Bytes>, RegistryError> {
        let Some((file, size)) = self.open(path).await? else {
            return Ok(None);
        };
        let file = file.into_std().await;
        let read = tokio::task::spawn_blocking(move || local_file::read_open(file, size, limit))
            .await
            .map_err(|e| io_error(path, std::io::Error::other(e.to_string())))?;
        match read {
            Ok(bytes) => Ok(Some(Bytes::from(bytes))),
            Err(local_file::ReadError::TooLarge { size, limit }) => Err(RegistryError::Limit {
                what: path.display().to_string(),
                message: format!(
                    "{kind} of {size} bytes is larger than the {limit}-byte limit for one"
                ),
            }),
            Err(e) => Err(read_error(path, e)),
        }
    }

    /// Create `dir` (and its parents) inside the tree: the part of it that
    /// exists already must resolve inside the root before anything is
    /// created (a linked directory would otherwise receive the new ones),
    /// and the whole must resolve inside once created.
    pub(super) fn create_dir_inside(&self, dir: &Path) -> Result<(), RegistryError> {
        std::fs::create_dir_all(&self.root).map_err(|e| io_error(&self.root, e))?;
        let root = std::fs::canonicalize(&self.root).map_err(|e| io_error(&self.root, e))?;
        let outside = |resolved: &Path| {
            invalid(
                dir.display().to_string(),
                format!(
                    "resolves to {}, outside the oci: tree {}: refusing to write there \
                     (remove the link)",
                    resolved.display(),
                    self.root.display()
                ),
            )
        };
        let existing = dir
            .ancestors()
            .find(|a| std::fs::symlink_metadata(a).is_ok())
            .unwrap_or(dir);
        let resolved = std::fs::canonicalize(existing).map_err(|e| io_error(existing, e))?;
        if !resolved.starts_with(&root) {
            return Err(outside(&resolved));
        }
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let resolved = std::fs::canonicalize(dir).map_err(|e| io_error(dir, e))?;
        if !resolved.starts_with(&root) {
            return Err(outside(&resolved));
        }
        Ok(())
    }
}

/// Create `temp` for writing, new: a leftover of an earlier crash is removed
/// first (removing a link removes the link, not what it points to), and the
/// file is created exclusively without following links, so a link planted
/// at the temp name fails the write instead of redirecting it.
pub(super) fn create_temp(temp: &Path) -> Result<std::fs::File, RegistryError> {
    match std::fs::remove_file(temp) {
        Ok(()) => {}
        Err(e) if is_absent(&e) => {}
        Err(e) => return Err(io_error(temp, e)),
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    options.open(temp).map_err(|e| io_error(temp, e))
}

fn read_error(path: &Path, e: local_file::ReadError) -> RegistryError {
    match e {
        local_file::ReadError::Io(e) => io_error(path, e),
        local_file::ReadError::NotRegular => not_regular(path),
        too_large => invalid(path.display().to_string(), too_large.to_string()),
    }
}

fn not_regular(path: &Path) -> RegistryError {
    invalid(
        path.display().to_string(),
        "is not a regular file (a FIFO, device, socket or directory where content \
         belongs; refused rather than read)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_stop_at_the_cap_and_refuse_what_is_no_regular_file() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = Tree::new(tmp.path().to_path_buf());
        let file = tmp.path().join("index.json");
        std::fs::write(&file, vec![b'x'; 100]).unwrap();
        assert_eq!(
            tree.read_capped(&file, 100, "index.json")
                .await
                .unwrap()
                .unwrap()
                .len(),
            100
        );
        let err = tree.read_capped(&file, 99, "index.json").await.unwrap_err();
        assert!(matches!(err, RegistryError::Limit { .. }), "{err}");
        assert!(err.to_string().contains("99-byte limit"), "{err}");
        assert!(tree
            .read_capped(&tmp.path().join("absent"), 9, "x")
            .await
            .unwrap()
            .is_none());
        let err = tree.read_capped(tmp.path(), 9, "x").await.unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_fifo_is_refused_at_once_instead_of_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let tree = Tree::new(tmp.path().to_path_buf());
        let fifo = tmp.path().join("index.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            tree.read_capped(&fifo, 1 << 20, "index.json"),
        )
        .await
        .expect("a FIFO must not block the read");
        let err = read.unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(tree.size(&fifo).await.is_err());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn links_may_point_inside_the_tree_but_never_out_of_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("tree");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/real"), b"inside").unwrap();
        std::fs::write(tmp.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(root.join("a/real"), root.join("a/alias")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), root.join("a/escape")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("a/zero")).unwrap();
        let tree = Tree::new(root.clone());
        let inside = tree.read_capped(&root.join("a/alias"), 99, "x").await;
        assert_eq!(&inside.unwrap().unwrap()[..], b"inside");
        for bad in ["a/escape", "a/zero"] {
            let err = tree
                .read_capped(&root.join(bad), 99, "x")
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("outside the oci: tree"),
                "{bad}: {err}"
            );
            assert!(tree.size(&root.join(bad)).await.is_err(), "{bad}");
        }
        // A directory linked out of the tree is never written into.
        std::os::unix::fs::symlink(tmp.path(), root.join("out")).unwrap();
        let err = tree.create_dir_inside(&root.join("out/blobs")).unwrap_err();
        assert!(err.to_string().contains("refusing to write there"), "{err}");
        assert!(
            !tmp.path().join("blobs").exists(),
            "nothing created through the link"
        );
        tree.create_dir_inside(&root.join("b/blobs")).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_a_temp_name_is_replaced_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        let temp = tmp.path().join(".tmp-index.json");
        std::os::unix::fs::symlink(&victim, &temp).unwrap();
        use std::io::Write;
        create_temp(&temp).unwrap().write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert_eq!(std::fs::read(&temp).unwrap(), b"new");
    }
}
