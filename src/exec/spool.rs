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
//! The spool file has no name (`O_TMPFILE`, or unlinked as it is made),
//! so nothing is left behind whatever ends the run, `SIGKILL` included;
//! uploads read it by offset. Should the disk fail while a blob is being
//! held (`ENOSPC`, a full `TMPDIR`), every upload reading it goes on from
//! the source itself, where it had got to, and the spool holds nothing more
//! on disk for the rest of the run.
//!
//! The digest is checked once, by the source's stream, which holds back a
//! blob's last chunk until the digest matched ([`crate::oci::verify`]):
//! so no upload ever sends a complete wrong blob (a wrong one ends in an
//! error instead, and the upload fails before its manifest is written),
//! and no byte is hashed twice (uploads only count the bytes they send).

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::FutureExt;
use futures::stream::StreamExt;
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
    /// The spool's own disk failed: each upload reads the source itself.
    DiskFailed,
}

/// Where a blob's bytes are held.
enum Store {
    /// The source's chunks, shared with every upload.
    Memory(Mutex<Vec<Bytes>>),
    /// A file with no name being written; uploads read what is written
    /// so far, by offset.
    File(Arc<std::fs::File>),
}

/// One blob for several destinations, read from the source once.
struct Shared {
    what: String,
    src: Arc<dyn Registry>,
    repo: Repository,
    digest: Digest,
    size: u64,
    store: Store,
    fill: watch::Sender<Fill>,
    /// Destination registries still to upload it.
    users: AtomicUsize,
}

/// The blobs of one run held for fan-out.
pub(super) struct Spool {
    /// Makes an empty spool file (a test makes one whose writes fail).
    make_file: Box<dyn Fn() -> std::io::Result<std::fs::File> + Send + Sync>,
    /// The disk failed once: nothing more is held on it this run.
    disk_failed: AtomicBool,
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
            make_file: Box::new(tempfile::tempfile),
            disk_failed: AtomicBool::new(false),
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
            // A failed read is replaced: by a new one, or (the disk having
            // failed) by the source itself, so `reused` counts only reads
            // a held copy really saved.
            if !matches!(*shared.fill.borrow(), Fill::Failed(..) | Fill::DiskFailed) {
                self.reused.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(shared.clone()));
            }
            let failed = held.remove(&key).expect("just found");
            self.give_back(&failed);
        }
        let Some(store) = self.store_for(size) else {
            return Ok(None);
        };
        let (fill, _) = watch::channel(Fill::Partial(0));
        let shared = Arc::new(Shared {
            what: format!("{repo}@{digest}"),
            src: src.clone(),
            repo: repo.clone(),
            digest: digest.clone(),
            size,
            store,
            fill,
            users: AtomicUsize::new(destinations.max(1)),
        });
        held.insert(key, shared.clone());
        // Its own task: every upload reads at its own pace, and none of
        // them has to be polled for the source read to go on.
        tokio::spawn(shared.clone().fill(self.clone()));
        Ok(Some(shared))
    }

    /// Room for a blob of `size`: memory for a small one while the budget
    /// lasts, else a file while the disk budget lasts and the disk works;
    /// `None`: no room (the blob streams from the source).
    fn store_for(&self, size: u64) -> Option<Store> {
        let reserve = |used: &AtomicU64, limit: u64| {
            used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + size <= limit).then_some(u + size)
            })
            .is_ok()
        };
        if size <= crate::limits::SPOOL_IN_MEMORY_BLOB && reserve(&self.memory, self.memory_limit) {
            return Some(Store::Memory(Mutex::new(Vec::new())));
        }
        if self.disk_failed.load(Ordering::Relaxed) || !reserve(&self.disk, self.disk_limit) {
            return None;
        }
        match (self.make_file)() {
            Ok(file) => Some(Store::File(Arc::new(file))),
            Err(e) => {
                self.disk.fetch_sub(size, Ordering::Relaxed);
                self.disk_fails(&e);
                None
            }
        }
    }

    /// The disk failed: say so once, and hold nothing more on it.
    fn disk_fails(&self, error: &std::io::Error) {
        if !self.disk_failed.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "the fan-out spool in {} failed ({error}); blobs for several \
                 destinations are read from the source for each of them",
                std::env::temp_dir().display()
            );
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
    async fn fill(self: Arc<Self>, spool: Arc<Spool>) {
        let fill = match self.copy_in().await {
            Ok(filled) => Fill::Complete(filled),
            Err(Failure::Disk(e)) => {
                spool.disk_fails(&e);
                Fill::DiskFailed
            }
            Err(Failure::Source(e)) => {
                let retryable = e.is_retryable() || matches!(e, RegistryError::BadContent(_));
                Fill::Failed(e.to_string(), retryable)
            }
        };
        self.fill.send_replace(fill);
    }

    async fn copy_in(&self) -> Result<u64, Failure> {
        // The source's stream checks size and digest as it ends, and holds
        // the last chunk back until they match.
        let stream = self.src.get_blob(&self.repo, &self.digest).await?;
        let mut filled = 0u64;
        match &self.store {
            Store::Memory(_) => {
                // One allocation of the blob's size, handed out in slices:
                // the source's own buffers (often larger than the bytes
                // they carry) are freed at once, so what is held is what
                // the memory budget counts.
                let mut slices = Batches::new(stream, self.size as usize, MEMORY_BATCH);
                while let Some(slice) = slices.next().await? {
                    filled += slice.len() as u64;
                    self.push_chunk(slice);
                    self.fill.send_replace(Fill::Partial(filled));
                }
            }
            Store::File(file) => {
                // The source's chunks are small: they are gathered into
                // writes of WRITE_BATCH, each one trip to a blocking
                // thread, and readers hear of bytes once they are written.
                let mut writes = Batches::new(stream, WRITE_BATCH, WRITE_BATCH);
                while let Some(data) = writes.next().await? {
                    filled = write_at(file.clone(), data, filled).await?;
                    self.fill.send_replace(Fill::Partial(filled));
                }
            }
        }
        Ok(filled)
    }

    fn push_chunk(&self, chunk: Bytes) {
        if let Store::Memory(chunks) = &self.store {
            chunks.lock().unwrap_or_else(|p| p.into_inner()).push(chunk);
        }
    }

    /// A stream of the blob for one upload: what is there, then what
    /// comes, until the source read ends (or fails: then so does this).
    async fn reader(self: Arc<Self>) -> Result<BlobStream, RegistryError> {
        let state = Reader {
            fill: self.fill.subscribe(),
            shared: self,
            read: 0,
            chunk: 0,
            from_source: None,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(
            state,
            |mut r| async move {
                let item = r.next().await?;
                Some((item, r))
            },
        )))
    }
}

/// Why holding a blob failed: its source, or the spool's own disk.
enum Failure {
    Source(RegistryError),
    Disk(std::io::Error),
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Failure {
        Failure::Source(e)
    }
}

/// One upload's place in a shared blob.
struct Reader {
    shared: Arc<Shared>,
    fill: watch::Receiver<Fill>,
    /// Bytes read so far.
    read: u64,
    /// Chunks read so far (a memory store).
    chunk: usize,
    /// The source's own stream, once the spool's disk failed.
    from_source: Option<BlobStream>,
    done: bool,
}

impl Reader {
    async fn next(&mut self) -> Option<Result<Bytes, RegistryError>> {
        if self.done {
            return None;
        }
        if self.from_source.is_some() {
            return self.next_from_source().await;
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
                Fill::DiskFailed => return self.go_to_source().await,
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
        match &self.shared.store {
            Store::Memory(chunks) => {
                let chunk = chunks.lock().unwrap_or_else(|p| p.into_inner())[self.chunk].clone();
                self.chunk += 1;
                Ok(chunk)
            }
            Store::File(file) => {
                let (file, offset) = (file.clone(), self.read);
                let want = (there - offset).min(READ_CHUNK as u64) as usize;
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; want];
                    file.read_exact_at(&mut buf, offset).map(|()| buf)
                })
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
                read.map(Bytes::from).map_err(|source| RegistryError::Io {
                    path: format!("the fan-out spool file for {}", self.shared.what),
                    source,
                })
            }
        }
    }

    /// The spool's disk failed: open the source and skip what this upload
    /// has already sent.
    async fn go_to_source(&mut self) -> Option<Result<Bytes, RegistryError>> {
        let shared = &self.shared;
        match shared.src.get_blob(&shared.repo, &shared.digest).await {
            Ok(stream) => {
                self.from_source = Some(stream);
                self.next_from_source().await
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// The source's next bytes past those already sent.
    async fn next_from_source(&mut self) -> Option<Result<Bytes, RegistryError>> {
        let stream = self.from_source.as_mut()?;
        loop {
            let mut chunk = match stream.next().await? {
                Ok(chunk) => chunk,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            // `read` now counts the source's bytes skipped down to zero.
            let skip = self.read.min(chunk.len() as u64) as usize;
            self.read -= skip as u64;
            let rest = chunk.split_off(skip);
            if !rest.is_empty() {
                return Some(Ok(rest));
            }
        }
    }
}

/// The source's chunks gathered into pieces of at least `batch` bytes (the
/// last one shorter), copied into a buffer of `capacity` to begin with.
struct Batches {
    stream: BlobStream,
    buffer: bytes::BytesMut,
    batch: usize,
    ended: bool,
}

impl Batches {
    fn new(stream: BlobStream, capacity: usize, batch: usize) -> Batches {
        Batches {
            stream,
            buffer: bytes::BytesMut::with_capacity(capacity),
            batch,
            ended: false,
        }
    }

    /// The next piece; `None` once the source's stream ended and all it
    /// sent was handed out.
    async fn next(&mut self) -> Result<Option<Bytes>, RegistryError> {
        while !self.ended && self.buffer.len() < self.batch {
            match self.stream.next().await.transpose()? {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => self.ended = true,
            }
        }
        Ok((!self.buffer.is_empty()).then(|| self.buffer.split().freeze()))
    }
}

/// `data` written into `file` at `offset`, on a blocking thread; the
/// offset past it.
async fn write_at(file: Arc<std::fs::File>, data: Bytes, offset: u64) -> Result<u64, Failure> {
    let end = offset + data.len() as u64;
    tokio::task::spawn_blocking(move || file.write_all_at(&data, offset))
        .await
        .map_err(std::io::Error::other)
        .and_then(|written| written)
        .map_err(Failure::Disk)?;
    Ok(end)
}

/// How much of the source's stream one spool file write gathers.
const WRITE_BATCH: usize = 256 << 10;

/// How much of the source's stream a held slice in memory gathers before
/// uploads are told of it (small enough that they follow the source
/// closely).
const MEMORY_BATCH: usize = 64 << 10;

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
        assert_eq!(
            spool.reused.load(Ordering::Relaxed),
            0,
            "read anew each time"
        );
        assert!(spool.used() <= 10, "a failed read's room is given back");
        spool.release(&repo, &missing);
        spool.release(&repo, &missing);
        assert_eq!(spool.used(), 0);
    }

    #[tokio::test]
    async fn uploads_read_a_spool_file_while_it_is_written_and_it_has_no_name() {
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (_dir, src, repo, digest) = source_with_blob(&bytes).await;
        let tmp = tempfile::tempdir().unwrap();
        // No memory budget: the file store, in a TMPDIR of its own.
        let in_tmp = tmp.path().to_path_buf();
        let spool = Arc::new(Spool {
            make_file: Box::new(move || tempfile::tempfile_in(&in_tmp)),
            ..Spool::new(1 << 30, 0)
        });
        let opener = spool.opener(src, repo.clone(), digest.clone(), bytes.len() as u64, 3);
        let (a, b, c) = tokio::join!(read_all(&opener), read_all(&opener), read_all(&opener));
        assert!(a == bytes && b == bytes && c == bytes);
        assert_eq!(
            spool.reused.load(Ordering::Relaxed),
            2,
            "read from the source once"
        );
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "the file being held has no name a kill could leave behind"
        );
        for _ in 0..3 {
            spool.release(&repo, &digest);
        }
        assert_eq!(spool.used(), 0);
    }

    #[tokio::test]
    async fn a_full_disk_sends_every_upload_to_the_source_where_it_had_got_to() {
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        let (_dir, src, repo, digest) = source_with_blob(&bytes).await;
        // Every write to /dev/full fails with ENOSPC.
        let spool = Arc::new(Spool {
            make_file: Box::new(|| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/full")
            }),
            ..Spool::new(1 << 30, 0)
        });
        let opener = spool.opener(src, repo.clone(), digest.clone(), bytes.len() as u64, 3);
        let (a, b) = tokio::join!(read_all(&opener), read_all(&opener));
        assert!(a == bytes && b == bytes, "both uploads get the whole blob");
        assert!(spool.disk_failed.load(Ordering::Relaxed));
        // The rest of the run holds nothing on that disk: a third upload
        // streams from the source at once.
        assert_eq!(read_all(&opener).await, bytes);
        for _ in 0..3 {
            spool.release(&repo, &digest);
        }
        assert_eq!(spool.used(), 0);
    }
}
