//! Read once, write to N: a source blob that goes to several destination
//! registries is read from the source once, into a file, and each
//! destination's upload streams that file. A slow or failing destination
//! neither holds up nor fails the others (each reads the file at its own
//! pace), memory stays one chunk per upload, and the disk used is bounded
//! ([`crate::limits::SPOOL_BYTES`]); past the bound, blobs stream from the
//! source as without fan-out. Inside one registry a blob is mounted from
//! where it first landed instead, as before.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::FutureExt;
use futures::stream::{StreamExt, TryStreamExt};
use tokio::io::AsyncWriteExt;

use crate::reference::{Digest, Repository};
use crate::registry::{BlobOpener, BlobStream, Registry, RegistryError};

/// One blob on disk: complete and verified (the source's stream checks the
/// digest as it ends), deleted when the last destination is done with it.
struct Spooled {
    path: tempfile::TempPath,
    size: u64,
    /// Destination registries still to upload it.
    users: AtomicUsize,
}

/// A slot per (source repository, blob): filled once, by whoever comes
/// first; the others wait for it, and try themselves if it failed.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Spooled>>>>;

/// The blobs of one run held for fan-out.
pub(super) struct Spool {
    dir: Mutex<Option<Arc<tempfile::TempDir>>>,
    slots: Mutex<HashMap<(Repository, Digest), Slot>>,
    /// Bytes on disk or being written.
    used: AtomicU64,
    limit: u64,
    /// Source reads avoided: uploads that read a held copy.
    pub(super) reused: AtomicU64,
}

impl Spool {
    pub(super) fn new(limit: u64) -> Spool {
        Spool {
            dir: Mutex::new(None),
            slots: Mutex::new(HashMap::new()),
            used: AtomicU64::new(0),
            limit,
            reused: AtomicU64::new(0),
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub(super) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    fn dir(&self) -> std::io::Result<Arc<tempfile::TempDir>> {
        let mut dir = self.dir.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = dir.as_ref() {
            return Ok(d.clone());
        }
        let made = Arc::new(
            tempfile::Builder::new()
                .prefix("promoter-spool-")
                .tempdir()?,
        );
        *dir = Some(made.clone());
        Ok(made)
    }

    /// Opens `digest` of `repo` (from `src`) for an upload to one of
    /// `destinations` registries: through the spool when it has room,
    /// straight from the source otherwise.
    pub(super) fn opener(
        self: &Arc<Self>,
        src: Arc<dyn Registry>,
        repo: Repository,
        digest: Digest,
        size: u64,
        destinations: usize,
    ) -> BlobOpener {
        let spool = self.clone();
        Arc::new(move || {
            let spool = spool.clone();
            let src = src.clone();
            let repo = repo.clone();
            let digest = digest.clone();
            async move {
                match spool
                    .held(&*src, &repo, &digest, size, destinations)
                    .await?
                {
                    Some(held) => held.stream().await,
                    None => src.get_blob(&repo, &digest).await,
                }
            }
            .boxed()
        })
    }

    /// The held copy of the blob, read from the source now if nobody has;
    /// `None` when the spool is full.
    async fn held(
        &self,
        src: &dyn Registry,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        destinations: usize,
    ) -> Result<Option<Arc<Spooled>>, RegistryError> {
        let key = (repo.clone(), digest.clone());
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(key.clone()).or_default().clone()
        };
        let mut held = slot.lock().await;
        if let Some(spooled) = held.as_ref() {
            self.reused.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(spooled.clone()));
        }
        if self.used.fetch_add(size, Ordering::Relaxed) + size > self.limit {
            self.used.fetch_sub(size, Ordering::Relaxed);
            return Ok(None);
        }
        match self.fill(src, repo, digest, size, destinations).await {
            Ok(spooled) => {
                *held = Some(spooled.clone());
                Ok(Some(spooled))
            }
            Err(err) => {
                self.used.fetch_sub(size, Ordering::Relaxed);
                Err(err)
            }
        }
    }

    async fn fill(
        &self,
        src: &dyn Registry,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        destinations: usize,
    ) -> Result<Arc<Spooled>, RegistryError> {
        let io = |path: &std::path::Path, source: std::io::Error| RegistryError::Io {
            path: path.display().to_string(),
            source,
        };
        let dir = self.dir().map_err(|e| io(&std::env::temp_dir(), e))?;
        let temp = tempfile::NamedTempFile::new_in(dir.path()).map_err(|e| io(dir.path(), e))?;
        let path: PathBuf = temp.path().to_path_buf();
        let (file, temp_path) = temp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        // The source's stream checks size and digest as it ends: a file
        // written to the end holds exactly the blob.
        let mut stream = src.get_blob(repo, digest).await?;
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?).await.map_err(|e| io(&path, e))?;
        }
        file.flush().await.map_err(|e| io(&path, e))?;
        Ok(Arc::new(Spooled {
            path: temp_path,
            size,
            users: AtomicUsize::new(destinations.max(1)),
        }))
    }

    /// One destination registry is done with the blob (uploaded, found
    /// there, or failed): the last one deletes it.
    pub(super) fn release(&self, repo: &Repository, digest: &Digest) {
        let key = (repo.clone(), digest.clone());
        let slot = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.get(&key).cloned()
        };
        let Some(slot) = slot else { return };
        let Ok(held) = slot.try_lock() else {
            // Being filled or read right now: it stays for the run.
            return;
        };
        let Some(spooled) = held.as_ref() else { return };
        if spooled.users.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.used.fetch_sub(spooled.size, Ordering::Relaxed);
            drop(held);
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.remove(&key);
        }
    }
}

impl Spooled {
    async fn stream(self: Arc<Self>) -> Result<BlobStream, RegistryError> {
        let file =
            tokio::fs::File::open(&*self.path)
                .await
                .map_err(|source| RegistryError::Io {
                    path: self.path.display().to_string(),
                    source,
                })?;
        let shown = self.path.display().to_string();
        // Hold the copy open (and on disk) while this upload reads it.
        let keep = self.clone();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 << 10)
            .map_err(move |source| RegistryError::Io {
                path: shown.clone(),
                source,
            })
            .inspect(move |_| {
                let _ = &keep;
            });
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::layout::LayoutRegistry;

    /// A layout registry holding one blob, and the blob's digest.
    async fn source_with_blob(
        bytes: &[u8],
    ) -> (tempfile::TempDir, Arc<dyn Registry>, Repository, Digest) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap().to_string();
        let registry: Arc<dyn Registry> = Arc::new(LayoutRegistry::new(&root));
        let repo = registry.repository("app").unwrap();
        let digest = Digest::sha256_of(bytes);
        let data = bytes::Bytes::copy_from_slice(bytes);
        let upload = crate::registry::BlobUpload {
            digest: digest.clone(),
            size: bytes.len() as u64,
            mount_from: None,
            open: Arc::new(move || {
                let data = data.clone();
                async move {
                    let stream: BlobStream =
                        Box::pin(futures::stream::once(async move { Ok(data) }));
                    Ok(stream)
                }
                .boxed()
            }),
        };
        registry.put_blob(&repo, &upload).await.unwrap();
        (dir, registry, repo, digest)
    }

    async fn read_all(opener: &BlobOpener) -> Vec<u8> {
        let mut stream = opener().await.unwrap();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_blob_for_three_destinations_is_read_once_and_deleted_after_the_third() {
        let bytes = vec![7u8; 200_000];
        let (_dir, src, repo, digest) = source_with_blob(&bytes).await;
        let spool = Arc::new(Spool::new(1 << 20));
        let opener = spool.opener(src, repo.clone(), digest.clone(), bytes.len() as u64, 3);
        for _ in 0..3 {
            assert_eq!(read_all(&opener).await, bytes);
        }
        assert_eq!(
            spool.reused.load(Ordering::Relaxed),
            2,
            "read from the source once"
        );
        assert_eq!(spool.used(), bytes.len() as u64);
        spool.release(&repo, &digest);
        spool.release(&repo, &digest);
        assert_eq!(
            spool.used(),
            bytes.len() as u64,
            "one destination still to come"
        );
        spool.release(&repo, &digest);
        assert_eq!(spool.used(), 0, "deleted after the last");
    }

    #[tokio::test]
    async fn past_its_limit_the_spool_streams_from_the_source() {
        let bytes = vec![9u8; 5000];
        let (_dir, src, repo, digest) = source_with_blob(&bytes).await;
        let spool = Arc::new(Spool::new(1000));
        let opener = spool.opener(src, repo, digest, bytes.len() as u64, 2);
        assert_eq!(read_all(&opener).await, bytes);
        assert_eq!(read_all(&opener).await, bytes);
        assert_eq!(spool.reused.load(Ordering::Relaxed), 0);
        assert_eq!(spool.used(), 0);
    }

    #[tokio::test]
    async fn a_source_that_fails_is_not_held_and_is_tried_again() {
        let (_dir, src, repo, _) = source_with_blob(b"x").await;
        let missing = Digest::sha256_of(b"not there");
        let spool = Arc::new(Spool::new(1 << 20));
        let opener = spool.opener(src, repo, missing, 10, 2);
        assert!(opener().await.is_err());
        assert!(opener().await.is_err());
        assert_eq!(spool.used(), 0, "nothing reserved for a failed read");
    }
}
