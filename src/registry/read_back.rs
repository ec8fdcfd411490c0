//! How content a registry already holds is checked: by HEAD (there, with
//! the right size) or read back whole. `verify --deep` and
//! `--verify-writes=deep` both read back through [`read_blob_back`], so a
//! registry that answers HEAD right and serves other bytes is caught the
//! same way by both.

use futures::StreamExt;

use super::{Registry, RegistryError};
use crate::oci::verify::{Expect, VerifyingStream};
use crate::oci::Descriptor;
use crate::reference::Repository;

/// How deep a check of stored content goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadBack {
    /// One HEAD: the content is there with the right size (the registry's
    /// word for its bytes).
    #[default]
    Head,
    /// The content read back (GET), its digest and size verified while it
    /// streams and the bytes discarded: the registry's bytes themselves.
    Deep,
}

/// Read `blob` back from `repo` to its end, discarding the bytes as they
/// come: `Ok` only when they are exactly `blob.size` bytes hashing to
/// `blob.digest`, else [`RegistryError::BadContent`]. The backend's stream
/// verifies the digest and is held to the registry's pace like every body;
/// the descriptor's size is held here too, so a body that runs past it is
/// cut there, whatever its headers said. Memory: a chunk or two, whatever
/// the blob's size.
pub async fn read_blob_back(
    registry: &dyn Registry,
    repo: &Repository,
    blob: &Descriptor,
) -> Result<(), RegistryError> {
    let stream = registry.get_blob(repo, &blob.digest).await?;
    let what = format!("blob {} in {repo}", blob.digest);
    let mut sized: VerifyingStream<_, RegistryError> =
        VerifyingStream::new(stream, Expect::Size(blob.size), what);
    while let Some(chunk) = sized.next().await {
        chunk?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures::FutureExt;

    use super::*;
    use crate::oci::ContentError;
    use crate::reference::Digest;
    use crate::registry::layout::LayoutRegistry;
    use crate::registry::{BlobStream, BlobUpload};

    async fn stored(bytes: &'static [u8]) -> (tempfile::TempDir, LayoutRegistry, Repository) {
        let dir = tempfile::tempdir().unwrap();
        let registry = LayoutRegistry::new(dir.path());
        let repo = registry.repository("app").unwrap();
        let upload = BlobUpload {
            digest: Digest::sha256_of(bytes),
            size: bytes.len() as u64,
            mount_from: None,
            open: Arc::new(move || {
                async move {
                    let body = futures::stream::once(async move { Ok(Bytes::from_static(bytes)) });
                    Ok(Box::pin(body) as BlobStream)
                }
                .boxed()
            }),
        };
        registry.put_blob(&repo, &upload).await.unwrap();
        (dir, registry, repo)
    }

    #[tokio::test]
    async fn a_blob_that_is_what_its_descriptor_says_reads_back() {
        let (_dir, registry, repo) = stored(b"layer bytes").await;
        let blob = Descriptor::new(Digest::sha256_of(b"layer bytes"), "x", 11);
        read_blob_back(&registry, &repo, &blob).await.unwrap();
    }

    #[tokio::test]
    async fn a_blob_longer_than_its_descriptor_is_bad_content() {
        let (_dir, registry, repo) = stored(b"layer bytes").await;
        let blob = Descriptor::new(Digest::sha256_of(b"layer bytes"), "x", 5);
        let err = read_blob_back(&registry, &repo, &blob).await.unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::BadContent(ContentError::SizeMismatch { expected: 5, .. })
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_blob_file_holding_other_bytes_is_bad_content() {
        let (dir, registry, repo) = stored(b"layer bytes").await;
        let digest = Digest::sha256_of(b"layer bytes");
        let file = dir.path().join("app/blobs/sha256").join(digest.hex());
        std::fs::write(&file, b"other bytes").unwrap();
        let blob = Descriptor::new(digest, "x", 11);
        let err = read_blob_back(&registry, &repo, &blob).await.unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::BadContent(ContentError::DigestMismatch { .. })
            ),
            "{err}"
        );
    }
}
