//! Durable writes into a tree: one writer per target file within the
//! process, blobs streamed into a temp file, verified and renamed into
//! place, index.json and `oci-layout` replaced atomically, every rename
//! fsynced with its directory. The checks on each file operation are
//! `files`'s; this is the order they are done in (see the module docs).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{blob_dir, blob_path, files, io_error, join_error, LayoutRegistry, OCI_LAYOUT_FILE};
use crate::oci::verify::{Expect, VerifyingStream};
use crate::reference::Digest;
use crate::registry::{BlobStream, RegistryError};

pub(super) const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// Async locks keyed by path: one writer per target file within a process.
/// Entries are dropped when nobody holds or waits for them.
#[derive(Default)]
pub(super) struct PathLocks(std::sync::Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>);

pub(super) struct PathGuard<'a> {
    locks: &'a PathLocks,
    key: PathBuf,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl PathLocks {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>> {
        // A panic while holding this short critical section cannot leave the
        // map inconsistent, so a poisoned lock is still usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) async fn lock(&self, key: &Path) -> PathGuard<'_> {
        let mutex = self.map().entry(key.to_path_buf()).or_default().clone();
        let guard = mutex.lock_owned().await;
        PathGuard {
            locks: self,
            key: key.to_path_buf(),
            guard: Some(guard),
        }
    }
}

impl Drop for PathGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.map();
        if map
            .get(&self.key)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            map.remove(&self.key);
        }
    }
}

impl LayoutRegistry {
    /// Create the layout's skeleton (directory, `oci-layout`) if missing,
    /// and, the first time this run writes to it, sweep away the temp files
    /// a killed writer left there (see [`files::Tree::sweep_stale_temps`]).
    pub(super) async fn ensure_layout(&self, dir: &Path) -> Result<(), RegistryError> {
        let marker = dir.join(OCI_LAYOUT_FILE);
        if tokio::fs::metadata(&marker).await.is_err() {
            let _guard = self.locks.lock(&marker).await;
            self.tree.create_dir_inside(dir)?;
            replace_file(dir, OCI_LAYOUT_FILE, OCI_LAYOUT_CONTENT.to_vec()).await?;
        }
        let first_write = self
            .swept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dir.to_path_buf());
        if first_write {
            let tree = self.tree.clone();
            let owned = dir.to_path_buf();
            tokio::task::spawn_blocking(move || tree.sweep_stale_temps(&owned))
                .await
                .map_err(|e| join_error(dir, e))?;
        }
        Ok(())
    }

    /// Stream `body` into the blob `digest` of the layout at `dir`, verifying
    /// size and digest before it becomes visible. An existing blob is kept.
    pub(super) async fn write_blob(
        &self,
        dir: &Path,
        digest: &Digest,
        size: u64,
        body: BlobStream,
        what: &str,
    ) -> Result<(), RegistryError> {
        let target = blob_path(dir, digest);
        let _guard = self.locks.lock(&target).await;
        if self.tree.size(&target).await?.is_some() {
            return Ok(());
        }
        let parent = blob_dir(dir, digest);
        self.tree.create_dir_inside(&parent)?;
        let locked = files::create_temp(&parent, digest.hex())?;
        let temp = TempFile(locked.path);
        // Held open (and so locked) until renamed: a sweep leaves it alone.
        let mut file = tokio::fs::File::from_std(locked.file);
        stream_to_file(&mut file, &temp.0, digest, size, body, what).await?;
        rename_durably(&temp.0, &target).await
    }

    /// Hard-link `source` to `target`. `Ok(false)` when links are not
    /// possible here, so that the caller copies instead.
    pub(super) async fn link_blob(
        &self,
        dir: &Path,
        source: &Path,
        target: &Path,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let _guard = self.locks.lock(target).await;
        let parent = blob_dir(dir, digest);
        self.tree.create_dir_inside(&parent)?;
        // A link appears atomically, complete: no temp file needed.
        match tokio::fs::hard_link(source, target).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(true),
            Err(_) => return Ok(false),
        }
        sync_dir_async(&parent).await?;
        Ok(true)
    }
}

/// A blob's temp file, removed however its write ends: an error, or the
/// write's future dropped (another transfer of the copy failed, Ctrl-C).
/// After the rename the name is gone and removing it does nothing; only a
/// kill leaves one (ignored by reads, swept by the next run that writes
/// to the layout).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Write `body` to `file` (the temp file at `temp`, see
/// [`files::create_temp`]), checking that it is exactly `size` bytes
/// hashing to `digest`, and fsync it.
async fn stream_to_file(
    file: &mut tokio::fs::File,
    temp: &Path,
    digest: &Digest,
    size: u64,
    body: BlobStream,
    what: &str,
) -> Result<(), RegistryError> {
    // The verifier stops a body longer than announced at once, and holds
    // back the last chunk of a wrong one: the file is never complete and
    // wrong, and the caller removes it on any error.
    let mut body: VerifyingStream<_, RegistryError> = VerifyingStream::new(
        body,
        Expect::Digest(digest.clone(), Some(size)),
        what.to_string(),
    );
    while let Some(chunk) = body.next().await {
        file.write_all(&chunk?)
            .await
            .map_err(|e| io_error(temp, e))?;
    }
    file.sync_all().await.map_err(|e| io_error(temp, e))?;
    Ok(())
}

async fn rename_durably(temp: &Path, target: &Path) -> Result<(), RegistryError> {
    tokio::fs::rename(temp, target)
        .await
        .map_err(|e| io_error(target, e))?;
    match target.parent() {
        Some(parent) => sync_dir_async(parent).await,
        None => Ok(()),
    }
}

async fn sync_dir_async(dir: &Path) -> Result<(), RegistryError> {
    let owned = dir.to_path_buf();
    tokio::task::spawn_blocking(move || sync_dir(&owned))
        .await
        .map_err(|e| join_error(dir, e))?
}

/// Make a rename in `dir` durable. Directories can only be fsynced on Unix;
/// elsewhere the rename itself is what we have.
fn sync_dir(dir: &Path) -> Result<(), RegistryError> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// [`write_atomically`], on a thread where blocking is allowed.
pub(super) async fn replace_file(
    dir: &Path,
    name: &'static str,
    bytes: Vec<u8>,
) -> Result<(), RegistryError> {
    let owned = dir.to_path_buf();
    tokio::task::spawn_blocking(move || write_atomically(&owned, name, &bytes))
        .await
        .map_err(|e| join_error(&dir.join(name), e))?
}

/// Replace `dir/name` with `bytes`: temp file, fsync, rename, fsync dir.
/// The temp file stays open, and so locked, until it is renamed.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), RegistryError> {
    use std::io::Write;
    let target = dir.join(name);
    let files::LockedTemp {
        mut file,
        path: temp,
    } = files::create_temp(dir, name)?;
    let result = (|| {
        file.write_all(bytes).map_err(|e| io_error(&temp, e))?;
        file.sync_all().map_err(|e| io_error(&temp, e))?;
        std::fs::rename(&temp, &target).map_err(|e| io_error(&target, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
