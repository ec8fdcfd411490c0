//! Verifying a blob while it streams.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

use crate::reference::{Digest, DigestHasher};
use crate::registry::RegistryError;

/// Hashes and counts the bytes passing through, and holds back the most
/// recent chunk until the next one arrives: the last chunk is released only
/// once the whole content matched its digest (and size). A mismatch ends the
/// stream with [`RegistryError::DigestMismatch`] (or `SizeMismatch`) in place
/// of that last chunk, so a consumer never sees a complete wrong blob.
/// Memory: one chunk.
pub struct VerifyingStream<S> {
    inner: S,
    expected: Digest,
    expected_size: Option<u64>,
    hasher: Option<DigestHasher>,
    seen: u64,
    pending: Option<Bytes>,
    what: String,
    done: bool,
}

impl<S> VerifyingStream<S> {
    pub fn new(inner: S, expected: Digest, expected_size: Option<u64>, what: String) -> Self {
        VerifyingStream {
            inner,
            hasher: Some(DigestHasher::new(expected.algorithm())),
            expected,
            expected_size,
            seen: 0,
            pending: None,
            what,
            done: false,
        }
    }

    fn finish(&mut self) -> Result<(), RegistryError> {
        if let Some(size) = self.expected_size {
            if size != self.seen {
                return Err(RegistryError::SizeMismatch {
                    what: self.what.clone(),
                    expected: size,
                    actual: self.seen,
                });
            }
        }
        let actual = self.hasher.take().expect("finish runs once").finish();
        if actual != self.expected {
            return Err(RegistryError::DigestMismatch {
                what: self.what.clone(),
                expected: self.expected.clone(),
                actual,
            });
        }
        Ok(())
    }
}

impl<S> Stream for VerifyingStream<S>
where
    S: Stream<Item = Result<Bytes, RegistryError>> + Unpin,
{
    type Item = Result<Bytes, RegistryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(this.pending.take().map(Ok));
            }
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    this.pending = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    if chunk.is_empty() {
                        continue;
                    }
                    this.seen += chunk.len() as u64;
                    if let Some(h) = this.hasher.as_mut() {
                        h.update(&chunk);
                    }
                    if let Some(size) = this.expected_size {
                        if this.seen > size {
                            this.done = true;
                            this.pending = None;
                            return Poll::Ready(Some(Err(RegistryError::SizeMismatch {
                                what: this.what.clone(),
                                expected: size,
                                actual: this.seen,
                            })));
                        }
                    }
                    if let Some(previous) = this.pending.replace(chunk) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if let Err(e) = this.finish() {
                        this.pending = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, RegistryError>> + Unpin {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn good_content_passes_whole() {
        let d = Digest::sha256_of(b"hello world");
        let s = VerifyingStream::new(chunks(&[b"hello", b" ", b"world"]), d, Some(11), "b".into());
        let got: Vec<_> = s.collect().await;
        let bytes: Vec<u8> = got.into_iter().flat_map(|r| r.unwrap().to_vec()).collect();
        assert_eq!(bytes, b"hello world");
    }

    #[tokio::test]
    async fn wrong_content_ends_with_mismatch_instead_of_last_chunk() {
        let d = Digest::sha256_of(b"hello world");
        let s = VerifyingStream::new(chunks(&[b"hello", b" ", b"WORLD"]), d, None, "b".into());
        let got: Vec<_> = s.collect().await;
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok() && got[1].is_ok());
        assert!(matches!(got[2], Err(RegistryError::DigestMismatch { .. })));
    }

    #[tokio::test]
    async fn short_content_is_a_size_mismatch() {
        let d = Digest::sha256_of(b"hello world");
        let s = VerifyingStream::new(chunks(&[b"hello"]), d, Some(11), "b".into());
        let got: Vec<_> = s.collect().await;
        assert!(matches!(
            got.last(),
            Some(Err(RegistryError::SizeMismatch {
                expected: 11,
                actual: 5,
                ..
            }))
        ));
    }
}
