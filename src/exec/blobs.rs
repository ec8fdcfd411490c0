//! Blobs: a config or layer made present in a destination repository. The
//! first repository of an endpoint to need a blob transfers it (mounted
//! within one endpoint, else streamed from the source, or from the spool
//! when it goes to several registries); the others wait for it and mount
//! from there.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::FutureExt;

use crate::oci::Descriptor;
use crate::plan::{Repository, SourceRef};
use crate::registry::{read_blob_back, BlobPut, BlobUpload, ReadBack, Registry, RegistryError};

use super::{Copier, Dest, ExecError};

/// How a blob came to be in the destination.
pub(super) enum Transfer {
    /// It was there.
    Present,
    /// It was mounted or uploaded.
    Put(BlobPut),
}

impl Copier {
    /// Make sure the destination repository holds `blob`.
    pub(super) async fn ensure_blob(
        &self,
        source: &SourceRef,
        dest: Dest<'_>,
        blob: &Descriptor,
    ) -> Result<(), ExecError> {
        let repo = dest.repo;
        let src = self.registry(source.repo.endpoint());
        if blob.foreign {
            // Non-distributable layers live elsewhere; registries need not hold them.
            let in_source = src.blob_exists(&source.repo, &blob.digest).await;
            if matches!(in_source, Ok(None)) {
                return Ok(());
            }
        }
        let key = (repo.endpoint().clone(), blob.digest.clone());
        let landed = self
            .blobs
            .get_or_compute(key, || self.first_transfer(&src, source, dest, blob))
            .await?;
        if &landed == repo {
            return Ok(());
        }
        let upload = upload_for(&src, source, blob, Some(landed));
        let done = self.transfer_into(dest, blob, &upload).await?;
        self.counters.count(&done, blob.size);
        Ok(())
    }

    /// The blob's first transfer into its endpoint, into `dest`'s
    /// repository: where the others mount it from.
    async fn first_transfer(
        &self,
        src: &Arc<dyn Registry>,
        source: &SourceRef,
        dest: Dest<'_>,
        blob: &Descriptor,
    ) -> Result<Repository, ExecError> {
        let repo = dest.repo;
        let mount_from = (source.repo.endpoint() == repo.endpoint()).then(|| source.repo.clone());
        // Going to several other registries: read once, held for all.
        let fanout = match &mount_from {
            Some(_) => 0,
            None => self
                .fanout
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&source.repo)
                .map_or(0, BTreeSet::len),
        };
        let mut upload = upload_for(src, source, blob, mount_from);
        let spooled = fanout > 1;
        if spooled {
            upload.open = self.spool.opener(
                src.clone(),
                source.repo.clone(),
                blob.digest.clone(),
                blob.size,
                fanout,
            );
        }
        let done = self.transfer_into(dest, blob, &upload).await;
        if spooled {
            self.spool.release(&source.repo, &blob.digest);
        }
        self.counters.count(&done?, blob.size);
        Ok(repo.clone())
    }

    /// [`transfer`] into `dest`, reading back with `--verify-writes`.
    async fn transfer_into(
        &self,
        dest: Dest<'_>,
        blob: &Descriptor,
        upload: &BlobUpload,
    ) -> Result<Transfer, ExecError> {
        let verify = self.options.verify_writes;
        transfer(dest.registry, dest.repo, dest.is_new, blob, upload, verify).await
    }
}

pub(super) fn upload_for(
    src: &Arc<dyn Registry>,
    source: &SourceRef,
    blob: &Descriptor,
    mount_from: Option<Repository>,
) -> BlobUpload {
    let src = src.clone();
    let src_repo = source.repo.clone();
    let digest = blob.digest.clone();
    BlobUpload {
        digest: blob.digest.clone(),
        size: blob.size,
        mount_from,
        open: Arc::new(move || {
            let src = src.clone();
            let src_repo = src_repo.clone();
            let digest = digest.clone();
            async move { src.get_blob(&src_repo, &digest).await }.boxed()
        }),
    }
}

/// HEAD the destination blob (unless the repository is new); unless it is
/// there with its size, mount or upload it (and, with `verify`, read it
/// back to see it landed).
async fn transfer(
    dest: &dyn Registry,
    repo: &Repository,
    repository_is_new: bool,
    blob: &Descriptor,
    upload: &BlobUpload,
    verify: Option<ReadBack>,
) -> Result<Transfer, ExecError> {
    let what = || format!("blob {} into {repo}", blob.digest);
    // A blob of another size is not this blob, whatever its name: written
    // again, never taken as there (a registry may then keep what it had;
    // `verify` still says so).
    if !repository_is_new
        && dest
            .blob_exists(repo, &blob.digest)
            .await
            .map_err(|e| ExecError::new(what(), e))?
            == Some(blob.size)
    {
        return Ok(Transfer::Present);
    }
    let put = dest
        .put_blob(repo, upload)
        .await
        .map_err(|e| ExecError::new(what(), e))?;
    if let Some(depth) = verify {
        read_back(dest, repo, blob, depth)
            .await
            .map_err(|e| ExecError::new(what(), e))?;
    }
    Ok(Transfer::Put(put))
}

/// `--verify-writes`: the blob just written, read back by HEAD (there, with
/// its size) or whole (its bytes); `NotStored` unless it is what was sent.
async fn read_back(
    dest: &dyn Registry,
    repo: &Repository,
    blob: &Descriptor,
    depth: ReadBack,
) -> Result<(), RegistryError> {
    let not_stored = |message: String| RegistryError::NotStored {
        what: format!("blob {} into {repo}", blob.digest),
        message,
    };
    match dest.blob_exists(repo, &blob.digest).await? {
        None => return Err(not_stored("accepted, but absent when read back".into())),
        Some(size) if size != blob.size => {
            return Err(not_stored(format!(
                "accepted, but {size} bytes when read back, not {}",
                blob.size
            )))
        }
        Some(_) => {}
    }
    match depth {
        ReadBack::Head => Ok(()),
        ReadBack::Deep => match read_blob_back(dest, repo, blob).await {
            Err(RegistryError::BadContent(e)) => Err(not_stored(format!("read back: {e}"))),
            other => other,
        },
    }
}
