//! Read once, write to N: a source blob that goes to several destination
//! registries is read from the source once, and every destination's upload
//! streams it **while it is still arriving**: a destination that gets
//! ahead waits for the bytes, one that falls behind reads them later, and
//! none holds up or fails the others. Small blobs are held in memory (the
//! source's own chunks, shared, never copied); larger ones, or any once the
//! memory budget is spent, go to a file that uploads read while it is being
//! written. Memory and disk are both bounded
//! ([`crate::limits::SPOOL_MEMORY_BYTES`], [`crate::limits::SPOOL_BYTES`]);
//! past the bounds, blobs stream from the source for each destination, as
//! without fan-out. Inside one registry a blob is mounted from where it
//! first landed instead, as before.
//!
//! The digest is checked once, by the source's stream, which holds back a
//! blob's last chunk until the digest matched ([`crate::oci::verify`]):
//! so no upload ever sends a complete wrong blob (a wrong one ends in an
//! error instead, and the upload fails before its manifest is written),
//! and no byte is hashed twice (uploads only count the bytes they send).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::FutureExt;
use futures::stream::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::reference::{Digest, Repository};
use crate::registry::{BlobOpener, BlobStream, Registry, RegistryError, SafeUrl};

/// How far the source read has come.
#[derive(Debug, Clone)]
enum Fill {
    /// This many bytes are there (verified, but for the last chunk, which
    /// only arrives once the whole blob matched its digest).
    Partial(u64),
    /// The whole blob, verified: this many bytes.
    Complete(u64),
    /// The source read failed: the message, and whether trying again may help.
    Failed(String, bool),
}

/// Where a blob's bytes are held.
enum Store {
    /// The source's chunks, shared with every upload.
    Memory(Mutex<Vec<Bytes>>),
    /// A file being written; uploads read what is written so far.
    File(tempfile::TempPath),
}

/// One blob for several destinations, read from the source once.
struct Shared {
    what: String,
    size: u64,
    store: Store,
    fill: watch::Sender<Fill>,
    /// Destination registries still to upload it.
    users: AtomicUsize,
}

/// The blobs of one run held for fan-out.
pub(super) struct Spool {
    dir: Mutex<Option<Arc<tempfile::TempDir>>>,
    held: Mutex<HashMap<(Repository, Digest), Arc<Shared>>>,
    /// Bytes on disk or being written.
    disk: AtomicU64,
    disk_limit: u64,
    /// Bytes held in memory.
    memory: AtomicU64,
    memory_limit: u64,
    /// Source reads avoided: uploads that read a held copy.
    pub(super) reused: AtomicU64,
}

impl Spool {
    /// A spool of at most `disk_limit` bytes on disk and `memory_limit` in
    /// memory (blobs up to [`crate::limits::SPOOL_IN_MEMORY_BLOB`] each).
    pub(super) fn new(disk_limit: u64, memory_limit: u64) -> Spool {
        Spool {
            dir: Mutex::new(None),
            held: Mutex::new(HashMap::new()),
            disk: AtomicU64::new(0),
            disk_limit,
            memory: AtomicU64::new(0),
            memory_limit,
            reused: AtomicU64::new(0),
        }
    }

    /// Bytes held now, in memory and on disk.
    #[cfg(test)]
    pub(super) fn used(&self) -> u64 {
        self.disk.load(Ordering::Relaxed) + self.memory.load(Ordering::Relaxed)
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
                match spool.held(&src, &repo, &digest, size, destinations)? {
                    Some(shared) => shared.reader().await,
                    None => src.get_blob(&repo, &digest).await,
                }
            }
            .boxed()
        })
    }

    /// The held copy of the blob, its source read started now if nobody
    /// has (or the last one failed); `None` when the spool is full.
    fn held(
        self: &Arc<Self>,
        src: &Arc<dyn Registry>,
        repo: &Repository,
        digest: &Digest,
        size: u64,
        destinations: usize,
    ) -> Result<Option<Arc<Shared>>, RegistryError> {
        let key = (repo.clone(), digest.clone());
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = held.get(&key) {
            if !matches!(*shared.fill.borrow(), Fill::Failed(..)) {
                self.reused.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(shared.clone()));
            }
            let failed = held.remove(&key).expect("just found");
            self.give_back(&failed);
        }
        let Some(store) = self.store_for(size)? else {
            return Ok(None);
        };
        let (fill, _) = watch::channel(Fill::Partial(0));
        let shared = Arc::new(Shared {
            what: format!("{repo}@{digest}"),
            size,
            store,
            fill,
            users: AtomicUsize::new(destinations.max(1)),
        });
        held.insert(key, shared.clone());
        // Its own task: every upload reads at its own pace, and none of
        // them has to be polled for the source read to go on.
        let (src, repo, digest) = (src.clone(), repo.clone(), digest.clone());
        tokio::spawn(shared.clone().fill_from(src, repo, digest));
        Ok(Some(shared))
    }

    /// Room for a blob of `size`: memory for a small one while the budget
    /// lasts, else a file while the disk budget lasts; `None`: no room.
    fn store_for(&self, size: u64) -> Result<Option<Store>, RegistryError> {
        let reserve = |used: &AtomicU64, limit: u64| {
            used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + size <= limit).then_some(u + size)
            })
            .is_ok()
        };
        if size <= crate::limits::SPOOL_IN_MEMORY_BLOB && reserve(&self.memory, self.memory_limit)
        {
            return Ok(Some(Store::Memory(Mutex::new(Vec::new()))));
        }
        if !reserve(&self.disk, self.disk_limit) {
            return Ok(None);
        }
        let io = |path: &std::path::Path, source: std::io::Error| RegistryError::Io {
            path: path.display().to_string(),
            source,
        };
        let made = self
            .dir()
            .map_err(|e| io(&std::env::temp_dir(), e))
            .and_then(|dir| {
                tempfile::NamedTempFile::new_in(dir.path()).map_err(|e| io(dir.path(), e))
            });
        match made {
            Ok(temp) => Ok(Some(Store::File(temp.into_temp_path()))),
            Err(e) => {
                self.disk.fetch_sub(size, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// The room `shared` took, given back (its bytes go with its last
    /// reference: memory freed, the file unlinked).
    fn give_back(&self, shared: &Shared) {
        let used = match shared.store {
            Store::Memory(_) => &self.memory,
            Store::File(_) => &self.disk,
        };
        used.fetch_sub(shared.size, Ordering::Relaxed);
    }

    /// One destination registry is done with the blob (uploaded, found
    /// there, or failed): after the last one, the spool lets it go (and it
    /// is gone once no upload reads it any more).
    pub(super) fn release(&self, repo: &Repository, digest: &Digest) {
        let key = (repo.clone(), digest.clone());
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let Some(shared) = held.get(&key) else { return };
        if shared.users.fetch_sub(1, Ordering::AcqRel) == 1 {
            let done = held.remove(&key).expect("just found");
            self.give_back(&done);
        }
    }
}

impl Shared {
    /// Read the blob from the source into the store, telling the readers
    /// how far it has come.
    async fn fill_from(self: Arc<Self>, src: Arc<dyn Registry>, repo: Repository, digest: Digest) {
        let result = self.copy_in(&*src, &repo, &digest).await;
        let fill = match result {
            Ok(filled) => Fill::Complete(filled),
            Err(e) => {
                let retryable = e.is_retryable() || matches!(e, RegistryError::BadContent(_));
                Fill::Failed(e.to_string(), retryable)
            }
        };
        self.fill.send_replace(fill);
    }

    async fn copy_in(
        &self,
        src: &dyn Registry,
        repo: &Repository,
        digest: &Digest,
    ) -> Result<u64, RegistryError> {
        // The source's stream checks size and digest as it ends, and holds
        // the last chunk back until they match.
        let mut stream = src.get_blob(repo, digest).await?;
        let mut file = match &self.store {
            Store::File(path) => Some(
                tokio::fs::OpenOptions::new()
                    .write(true)
                    .open(&**path)
                    .await
                    .map_err(|e| self.io(e))?,
            ),
            Store::Memory(_) => None,
        };
        let mut filled = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            filled += chunk.len() as u64;
            match (&self.store, file.as_mut()) {
                (Store::Memory(chunks), _) => {
                    chunks.lock().unwrap_or_else(|p| p.into_inner()).push(chunk);
                }
                (Store::File(_), Some(file)) => {
                    file.write_all(&chunk).await.map_err(|e| self.io(e))?;
                    // Readers open the file themselves: what they are told
                    // is there must be past our own buffer.
                    file.flush().await.map_err(|e| self.io(e))?;
                }
                (Store::File(_), None) => unreachable!("a file store has its file"),
            }
            self.fill.send_replace(Fill::Partial(filled));
        }
        Ok(filled)
    }

    fn io(&self, source: std::io::Error) -> RegistryError {
        let path = match &self.store {
            Store::File(path) => path.display().to_string(),
            Store::Memory(_) => self.what.clone(),
        };
        RegistryError::Io { path, source }
    }

    /// A stream of the blob for one upload: what is there, then what
    /// comes, until the source read ends (or fails: then so does this).
    async fn reader(self: Arc<Self>) -> Result<BlobStream, RegistryError> {
        let file = match &self.store {
            Store::File(path) => Some(tokio::fs::File::open(&**path).await.map_err(|e| self.io(e))?),
            Store::Memory(_) => None,
        };
        let state = Reader {
            fill: self.fill.subscribe(),
            shared: self,
            file,
            read: 0,
            chunk: 0,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(state, |mut r| async move {
            let item = r.next().await?;
            Some((item, r))
        })))
    }
}

/// One upload's place in a shared blob.
struct Reader {
    shared: Arc<Shared>,
    fill: watch::Receiver<Fill>,
    file: Option<tokio::fs::File>,
    /// Bytes read so far.
    read: u64,
    /// Chunks read so far (a memory store).
    chunk: usize,
    done: bool,
}

impl Reader {
    async fn next(&mut self) -> Option<Result<Bytes, RegistryError>> {
        if self.done {
            return None;
        }
        loop {
            let fill = self.fill.borrow_and_update().clone();
            let there = match fill {
                Fill::Failed(message, retryable) => {
                    self.done = true;
                    return Some(Err(RegistryError::Transport {
                        method: "GET".to_string(),
                        url: SafeUrl::from_text(&self.shared.what),
                        message: format!("reading the source for every destination: {message}"),
                        retryable,
                    }));
                }
                Fill::Partial(n) | Fill::Complete(n) => n,
            };
            if self.read < there {
                let piece = self.piece(there).await;
                if let Ok(bytes) = &piece {
                    self.read += bytes.len() as u64;
                }
                return Some(piece);
            }
            if matches!(fill, Fill::Complete(_)) {
                self.done = true;
                return None;
            }
            // The sender lives in `shared`, which we hold: this only waits.
            let _ = self.fill.changed().await;
        }
    }

    /// The next bytes, of the `there` written so far.
    async fn piece(&mut self, there: u64) -> Result<Bytes, RegistryError> {
        match (&self.shared.store, self.file.as_mut()) {
            (Store::Memory(chunks), _) => {
                let chunk = chunks.lock().unwrap_or_else(|p| p.into_inner())[self.chunk].clone();
                self.chunk += 1;
                Ok(chunk)
            }
            (Store::File(_), Some(file)) => {
                let want = (there - self.read).min(READ_CHUNK as u64) as usize;
                let mut buf = vec![0u8; want];
                file.read_exact(&mut buf).await.map_err(|e| self.shared.io(e))?;
                Ok(Bytes::from(buf))
            }
            (Store::File(_), None) => unreachable!("a file store's reader has its file"),
        }
    }
}

/// How much of a spool file one read takes.
const READ_CHUNK: usize = 256 << 10;

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

    async fn try_read_all(opener: &BlobOpener) -> Result<Vec<u8>, RegistryError> {
        let mut stream = opener().await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    async fn read_all(opener: &BlobOpener) -> Vec<u8> {
        try_read_all(opener).await.unwrap()
    }

    #[tokio::test]
    async fn a_blob_for_three_destinations_is_read_once_and_deleted_after_the_third() {
        let bytes = vec![7u8; 200_000];
        let (_dir, src, repo, digest) = source_with_blob(&bytes).await;
        let spool = Arc::new(Spool::new(1 << 20, 1 << 20));
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
        let spool = Arc::new(Spool::new(1000, 1000));
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
        let spool = Arc::new(Spool::new(1 << 20, 1 << 20));
        let opener = spool.opener(src, repo.clone(), missing.clone(), 10, 2);
        for _ in 0..3 {
            assert!(try_read_all(&opener).await.is_err());
        }
        assert_eq!(spool.reused.load(Ordering::Relaxed), 0, "read anew each time");
        assert!(spool.used() <= 10, "a failed read's room is given back");
        spool.release(&repo, &missing);
        spool.release(&repo, &missing);
        assert_eq!(spool.used(), 0);
    }

    #[tokio::test]
    async fn uploads_read_a_spool_file_while_it_is_written_and_it_is_removed_after() {
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (_dir, src, repo, digest) = source_with_blob(&bytes).await;
        // No memory budget: the file store.
        let spool = Arc::new(Spool::new(1 << 30, 0));
        let opener = spool.opener(src, repo.clone(), digest.clone(), bytes.len() as u64, 3);
        let (a, b, c) = tokio::join!(read_all(&opener), read_all(&opener), read_all(&opener));
        assert!(a == bytes && b == bytes && c == bytes);
        assert_eq!(spool.reused.load(Ordering::Relaxed), 2, "read from the source once");
        let dir = spool.dir().unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        for _ in 0..3 {
            spool.release(&repo, &digest);
        }
        assert_eq!(spool.used(), 0);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing left behind"
        );
    }
}
