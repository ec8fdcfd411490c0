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
#[derive(Debug, Clone)]
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

/// Every temp file of a tree starts with this: reads only open exact names,
/// so they never see one, and [`Tree::sweep_stale_temps`] knows them by it.
pub(super) const TEMP_PREFIX: &str = ".tmp-";

/// How many names [`create_temp`] tries: another only when a sweep took the
/// file between its creation and its lock, or a name was taken.
const TEMP_ATTEMPTS: usize = 8;

/// A temp file being written, exclusively locked for as long as it is open:
/// the lock is what tells a sweep (this process's or another's) that it is
/// in use. Keep it open until it has been renamed into place.
pub(super) struct LockedTemp {
    pub(super) file: std::fs::File,
    pub(super) path: PathBuf,
}

/// Create a temp file for `target_name` in `dir`, new, under a name no other
/// writer uses (`.tmp-<target_name>.<random>`), locked. It is created
/// exclusively and without following links, so a link planted at its name
/// fails the write instead of redirecting it.
pub(super) fn create_temp(dir: &Path, target_name: &str) -> Result<LockedTemp, RegistryError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    let mut last = None;
    for _ in 0..TEMP_ATTEMPTS {
        let path = dir.join(format!(
            "{TEMP_PREFIX}{target_name}.{:016x}",
            rand::random::<u64>()
        ));
        let file = match options.open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                last = Some(io_error(&path, e));
                continue;
            }
            Err(e) => return Err(io_error(&path, e)),
        };
        // Not locked: a sweep opened it between its creation and this
        // lock, and is removing it: take another name.
        if !try_lock_exclusive(&file).map_err(|e| io_error(&path, e))? {
            continue;
        }
        // Locked, but a sweep may have removed it just before: a file with
        // no name left would be renamed from nowhere.
        if is_unlinked(&file).map_err(|e| io_error(&path, e))? {
            continue;
        }
        return Ok(LockedTemp { file, path });
    }
    Err(last.unwrap_or_else(|| {
        io_error(
            dir,
            std::io::Error::other("no temp file could be kept from concurrent sweeps"),
        )
    }))
}

/// Take `file`'s exclusive flock without waiting: `false` when someone
/// else (another open of the file, in this process or another) holds it.
/// The lock goes with the last descriptor of that open, a kill included.
#[cfg(unix)]
fn try_lock_exclusive(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock only reads the descriptor, which `file` owns and keeps
    // open for the call; no memory is passed.
    let answer = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if answer == 0 {
        return Ok(true);
    }
    let error = std::io::Error::last_os_error();
    if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(error)
    }
}

#[cfg(not(unix))]
fn try_lock_exclusive(_: &std::fs::File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(unix)]
fn is_unlinked(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.nlink() == 0)
}

#[cfg(not(unix))]
fn is_unlinked(_: &std::fs::File) -> std::io::Result<bool> {
    Ok(false)
}

impl Tree {
    /// Remove the temp files a killed writer left in the layout at `dir`
    /// (its own directory and `blobs/<alg>/`), which no drop guard removed:
    /// only those no writer holds, this process's or another's (a writer
    /// holds its temp file's lock until it is renamed into place). Links
    /// named as temp files are removed, never followed; linked directories
    /// and anything outside the tree are left alone. Best effort: what
    /// cannot be removed now is removed by a later run. Answers how many
    /// were removed.
    pub(super) fn sweep_stale_temps(&self, dir: &Path) -> usize {
        let Ok(root) = std::fs::canonicalize(&self.root) else {
            return 0;
        };
        if !std::fs::canonicalize(dir).is_ok_and(|d| d.starts_with(&root)) {
            return 0;
        }
        let mut dirs = vec![dir.to_path_buf()];
        let blobs = dir.join(super::BLOBS_DIR);
        if is_real_dir(&blobs) {
            if let Ok(entries) = std::fs::read_dir(&blobs) {
                dirs.extend(
                    entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| is_real_dir(p)),
                );
            }
        }
        dirs.iter().map(|d| sweep_dir(d)).sum()
    }
}

/// A directory, not a link to one.
fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

fn sweep_dir(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
        .filter(|e| remove_if_stale(&e.path()))
        .count()
}

/// Remove `path` if no writer holds it: a regular file whose lock can be
/// taken, and which is still the file at that name once locked; or a link.
fn remove_if_stale(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if meta.file_type().is_symlink() {
        return std::fs::remove_file(path).is_ok();
    }
    if !meta.is_file() {
        return false;
    }
    let Ok((file, _)) = local_file::open_regular(path, true) else {
        return false;
    };
    if !try_lock_exclusive(&file).unwrap_or(false) {
        return false;
    }
    if !same_file(&file, path) {
        return false;
    }
    let removed = std::fs::remove_file(path).is_ok();
    if removed {
        tracing::debug!(path = %path.display(), "removed a temp file a killed write left");
    }
    removed
}

/// Whether `file` is still what `path` names (not renamed away and
/// replaced since it was opened).
#[cfg(unix)]
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::File, _: &Path) -> bool {
    true
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
    fn a_link_planted_at_a_temp_name_is_removed_by_the_sweep_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        let root = tmp.path().join("tree");
        std::fs::create_dir_all(&root).unwrap();
        let planted = root.join(".tmp-index.json");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let tree = Tree::new(root.clone());
        assert_eq!(tree.sweep_stale_temps(&root), 1);
        assert!(std::fs::symlink_metadata(&planted).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    }

    #[test]
    fn the_sweep_removes_only_temp_files_no_writer_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let sha = root.join("app/blobs/sha256");
        std::fs::create_dir_all(&sha).unwrap();
        let tree = Tree::new(root.clone());
        // A writer's temp file, locked while it is written.
        let held = create_temp(&sha, "abc").unwrap();
        // What a killed writer left: its lock went with the process.
        let stale = sha.join(".tmp-def.0123456789abcdef");
        std::fs::write(&stale, b"partial").unwrap();
        let stale_index = root.join("app/.tmp-index.json.00");
        std::fs::write(&stale_index, b"{").unwrap();
        let blob = sha.join("def");
        std::fs::write(&blob, b"done").unwrap();

        assert_eq!(tree.sweep_stale_temps(&root.join("app")), 2);
        assert!(held.path.exists(), "a file being written is kept");
        assert!(!stale.exists() && !stale_index.exists());
        assert!(blob.exists(), "only temp files are swept");
        // Once its writer is done with it, a left-over temp goes too.
        let path = held.path.clone();
        drop(held);
        assert_eq!(tree.sweep_stale_temps(&root.join("app")), 1);
        assert!(!path.exists());
    }

    #[cfg(unix)]
    #[test]
    fn the_sweep_never_goes_through_a_linked_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(outside.join("sha256")).unwrap();
        let theirs = outside.join("sha256/.tmp-theirs");
        std::fs::write(&theirs, b"not ours").unwrap();
        let root = tmp.path().join("tree");
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("app/blobs")).unwrap();
        let tree = Tree::new(root.clone());
        assert_eq!(tree.sweep_stale_temps(&root.join("app")), 0);
        assert!(theirs.exists());
    }
}
