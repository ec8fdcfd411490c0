//! The one stream verifier: every blob read (registry or `oci:` tree) and
//! every blob written passes through it.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

use super::ContentError;
use crate::reference::{Digest, DigestHasher};

/// What a stream must turn out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Bytes hashing to this digest (and, when given, exactly this many).
    Digest(Digest, Option<u64>),
    /// Exactly this many bytes, content already verified upstream (an upload
    /// body whose source stream verifies its digest: hashing twice would
    /// only cost CPU).
    Size(u64),
}

/// Hashes and counts the bytes passing through, and holds back the most
/// recent chunk until the next one arrives: the last chunk is released only
/// once the whole content matched its digest (and size). A mismatch ends the
/// stream with [`ContentError::DigestMismatch`] (or `SizeMismatch`, as soon
/// as the stream runs past the size) in place of that last chunk, so a
/// consumer never sees a complete wrong blob. Memory: one chunk.
pub struct VerifyingStream<S, E> {
    inner: S,
    expected_digest: Option<Digest>,
    expected_size: Option<u64>,
    hasher: Option<DigestHasher>,
    seen: u64,
    pending: Option<Bytes>,
    what: String,
    done: bool,
    error: PhantomData<fn() -> E>,
}

impl<S, E> VerifyingStream<S, E> {
    /// Verify `inner` against `expect`; `what` names the content in the
    /// error (a blob and its repository, a URL).
    pub fn new(inner: S, expect: Expect, what: String) -> Self {
        let (expected_digest, expected_size) = match expect {
            Expect::Digest(digest, size) => (Some(digest), size),
            Expect::Size(size) => (None, Some(size)),
        };
        VerifyingStream {
            inner,
            hasher: expected_digest
                .as_ref()
                .map(|d| DigestHasher::new(d.algorithm())),
            expected_digest,
            expected_size,
            seen: 0,
            pending: None,
            what,
            done: false,
            error: PhantomData,
        }
    }

    /// How many bytes have passed so far.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    fn finish(&mut self) -> Result<(), ContentError> {
        if let Some(size) = self.expected_size {
            if size != self.seen {
                return Err(ContentError::SizeMismatch {
                    what: self.what.clone(),
                    expected: size,
                    actual: self.seen,
                });
            }
        }
        if let (Some(expected), Some(hasher)) = (&self.expected_digest, self.hasher.take()) {
            let actual = hasher.finish();
            if actual != *expected {
                return Err(ContentError::DigestMismatch {
                    what: self.what.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok(())
    }
}

impl<S, E> Stream for VerifyingStream<S, E>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: From<ContentError>,
{
    type Item = Result<Bytes, E>;

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
                            return Poll::Ready(Some(Err(ContentError::SizeMismatch {
                                what: this.what.clone(),
                                expected: size,
                                actual: this.seen,
                            }
                            .into())));
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
                        return Poll::Ready(Some(Err(e.into())));
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

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, ContentError>> + Unpin {
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
        let s = VerifyingStream::new(
            chunks(&[b"hello", b" ", b"world"]),
            Expect::Digest(d, Some(11)),
            "b".into(),
        );
        let got: Vec<_> = s.collect().await;
        let bytes: Vec<u8> = got.into_iter().flat_map(|r| r.unwrap().to_vec()).collect();
        assert_eq!(bytes, b"hello world");
    }

    #[tokio::test]
    async fn wrong_content_ends_with_mismatch_instead_of_last_chunk() {
        let d = Digest::sha256_of(b"hello world");
        let s = VerifyingStream::new(
            chunks(&[b"hello", b" ", b"WORLD"]),
            Expect::Digest(d, None),
            "b".into(),
        );
        let got: Vec<_> = s.collect().await;
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok() && got[1].is_ok());
        assert!(matches!(got[2], Err(ContentError::DigestMismatch { .. })));
    }

    #[tokio::test]
    async fn short_content_is_a_size_mismatch() {
        let d = Digest::sha256_of(b"hello world");
        let s = VerifyingStream::new(chunks(&[b"hello"]), Expect::Digest(d, Some(11)), "b".into());
        let got: Vec<_> = s.collect().await;
        assert!(matches!(
            got.last(),
            Some(Err(ContentError::SizeMismatch {
                expected: 11,
                actual: 5,
                ..
            }))
        ));
    }

    #[tokio::test]
    async fn a_long_stream_fails_as_soon_as_it_passes_the_size() {
        let s: VerifyingStream<_, ContentError> =
            VerifyingStream::new(chunks(&[b"hello", b" world"]), Expect::Size(5), "b".into());
        let got: Vec<_> = s.collect().await;
        assert_eq!(got.len(), 1, "not even the first chunk is released");
        assert!(matches!(
            got[0],
            Err(ContentError::SizeMismatch {
                expected: 5,
                actual: 11,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn size_only_checks_count_without_hashing() {
        let s: VerifyingStream<_, ContentError> =
            VerifyingStream::new(chunks(&[b"any", b"thing"]), Expect::Size(8), "b".into());
        let got: Vec<_> = s.collect().await;
        assert!(got.iter().all(|r| r.is_ok()));
    }
}
