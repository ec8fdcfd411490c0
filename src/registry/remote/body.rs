//! The one way a response body is read: as a stream that must keep
//! arriving at a minimum pace ([`Pace`]), so that no body, however it is
//! trickled, holds a run for longer than its size allows; and, for whole
//! bodies (listings, manifests, referrers, tokens, error texts), with a size
//! cap checked as the bytes arrive ([`read_capped`]), so that an endless or
//! oversized body never grows memory.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use reqwest::Response;

use super::retry::reqwest_error;
use crate::registry::{RegistryError, SafeUrl};

/// How fast a body must keep coming: at least `min_bytes_per_second` on
/// average over every `window` (curl's low-speed limit). A body of `n`
/// bytes thus takes at most about `n / min_bytes_per_second + window`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Pace {
    /// The floor; 0 turns the check off.
    pub(crate) min_bytes_per_second: u64,
    /// How long the average is taken over (also how long total silence is
    /// tolerated).
    pub(crate) window: Duration,
}

impl Default for Pace {
    /// [`crate::limits::MIN_BYTES_PER_SECOND`] over
    /// [`crate::limits::PACE_WINDOW`].
    fn default() -> Pace {
        Pace {
            min_bytes_per_second: crate::limits::MIN_BYTES_PER_SECOND,
            window: crate::limits::PACE_WINDOW,
        }
    }
}

impl Pace {
    /// Bytes that must arrive per window.
    fn per_window(&self) -> u64 {
        (self.min_bytes_per_second as f64 * self.window.as_secs_f64()) as u64
    }

    /// The longest sending or receiving `bytes` may take at this pace, on
    /// top of `base`.
    pub(crate) fn allowance(&self, base: Duration, bytes: u64) -> Duration {
        if self.min_bytes_per_second == 0 {
            return base.saturating_add(Duration::from_secs(365 * 24 * 3600));
        }
        base.saturating_add(Duration::from_secs(bytes / self.min_bytes_per_second))
    }
}

/// `response`'s body as a stream held to `pace`: a body that falls below it
/// ends with a retryable [`RegistryError::Transport`] that says so.
pub(crate) fn paced(
    response: Response,
    pace: Pace,
    method: &str,
) -> impl Stream<Item = Result<Bytes, RegistryError>> + Send + 'static {
    let shown = SafeUrl::new(response.url());
    let method = method.to_string();
    let (m, u) = (method.clone(), shown.clone());
    let raw: RawBody = Box::pin(
        response
            .bytes_stream()
            .map(move |r| r.map_err(|e| reqwest_error(&m, &u, e))),
    );
    PaceGuard::new(raw, pace, method, shown)
}

type RawBody = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;

/// Read all of `response`'s body, refusing more than `limit` bytes; `method`
/// names the request in errors.
pub(crate) async fn read_capped(
    response: Response,
    limit: usize,
    method: &str,
    pace: Pace,
) -> Result<Bytes, RegistryError> {
    let shown = SafeUrl::new(response.url());
    let too_large = |shown: SafeUrl| RegistryError::Limit {
        what: shown.to_string(),
        message: format!("answer larger than {limit} bytes; refusing to read more"),
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large(shown));
    }
    let mut body = BytesMut::new();
    let mut stream = std::pin::pin!(paced(response, pace, method));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(shown));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Holds an inner body stream to a [`Pace`], waking itself at the end of
/// each window so that a body that sends nothing at all is caught too.
struct PaceGuard {
    inner: RawBody,
    pace: Pace,
    method: String,
    url: SafeUrl,
    received: u64,
    window_end: Pin<Box<tokio::time::Sleep>>,
    done: bool,
}

impl PaceGuard {
    fn new(inner: RawBody, pace: Pace, method: String, url: SafeUrl) -> PaceGuard {
        PaceGuard {
            inner,
            pace,
            method,
            url,
            received: 0,
            window_end: Box::pin(tokio::time::sleep(pace.window)),
            done: false,
        }
    }

    fn too_slow(&self) -> RegistryError {
        RegistryError::Transport {
            method: self.method.clone(),
            url: self.url.clone(),
            message: format!(
                "the answer slowed to {} bytes in {:.1} s, below the floor of {} bytes/s \
                 (min_bytes_per_second in the registry options)",
                self.received,
                self.pace.window.as_secs_f64(),
                self.pace.min_bytes_per_second
            ),
            retryable: true,
        }
    }
}

impl Stream for PaceGuard {
    type Item = Result<Bytes, RegistryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let item = this.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &item {
            this.received += chunk.len() as u64;
        }
        if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = &item {
            this.done = true;
            return item;
        }
        if this.pace.min_bytes_per_second > 0 && this.window_end.as_mut().poll(cx).is_ready() {
            if this.received < this.pace.per_window() {
                this.done = true;
                return Poll::Ready(Some(Err(this.too_slow())));
            }
            // The window passed at pace: start the next one, and register
            // its timer with the waker.
            this.received = 0;
            let next = tokio::time::Instant::now() + this.pace.window;
            this.window_end.as_mut().reset(next);
            let _ = this.window_end.as_mut().poll(cx);
        }
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(body: reqwest::Body) -> Response {
        let http = http::Response::builder()
            .status(200)
            .body(body)
            .expect("a response");
        Response::from(http)
    }

    const RELAXED: Pace = Pace {
        min_bytes_per_second: 1,
        window: Duration::from_secs(60),
    };

    #[tokio::test]
    async fn an_endless_body_stops_at_the_cap() {
        let endless = futures::stream::repeat_with(|| {
            Ok::<_, std::io::Error>(Bytes::from_static(&[b'x'; 4096]))
        });
        let err = read_capped(
            response(reqwest::Body::wrap_stream(endless)),
            64 << 10,
            "GET",
            RELAXED,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RegistryError::Limit { .. }), "{err}");
        assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");
    }

    #[tokio::test]
    async fn a_body_within_the_cap_is_read_whole() {
        let body = read_capped(
            response(reqwest::Body::from("{\"token\":\"t\"}")),
            1024,
            "GET",
            RELAXED,
        )
        .await
        .unwrap();
        assert_eq!(&body[..], b"{\"token\":\"t\"}");
    }

    /// A body that trickles (a byte a second) or stalls (nothing at all)
    /// ends within one window, as a retryable transport error.
    #[tokio::test(start_paused = true)]
    async fn a_trickled_or_stalled_body_fails_within_one_window() {
        let pace = Pace {
            min_bytes_per_second: 100,
            window: Duration::from_secs(10),
        };
        let trickle = futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), ()))
        });
        let stalled = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        for body in [
            reqwest::Body::wrap_stream(trickle),
            reqwest::Body::wrap_stream(stalled),
        ] {
            let started = tokio::time::Instant::now();
            let err = read_capped(response(body), 1 << 20, "GET", pace)
                .await
                .unwrap_err();
            assert!(err.is_retryable(), "{err}");
            assert!(err.to_string().contains("below the floor"), "{err}");
            assert!(started.elapsed() <= Duration::from_secs(11));
        }
    }

    /// A slow but steady body passes: the floor is an average per window.
    #[tokio::test(start_paused = true)]
    async fn a_steady_body_above_the_floor_passes() {
        let pace = Pace {
            min_bytes_per_second: 100,
            window: Duration::from_secs(10),
        };
        let steady = futures::stream::iter(0..30).then(|_| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(&[b'x'; 150]))
        });
        let body = read_capped(
            response(reqwest::Body::wrap_stream(steady)),
            1 << 20,
            "GET",
            pace,
        )
        .await
        .unwrap();
        assert_eq!(body.len(), 30 * 150);
    }
}
