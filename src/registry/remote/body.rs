//! The one bounded read of a whole response body (listings, manifests,
//! referrers, tokens): past `limit` it is an error as soon as the bytes
//! arrive, so an endless or oversized body never grows memory.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::Response;

use super::redact;
use super::retry::reqwest_error;
use crate::registry::RegistryError;

/// Read all of `response`'s body, refusing more than `limit` bytes; `method`
/// names the request in errors.
pub(super) async fn read_capped(
    response: Response,
    limit: usize,
    method: &str,
) -> Result<Bytes, RegistryError> {
    let shown = redact::url(response.url());
    let too_large = |shown: String| RegistryError::Protocol {
        what: shown,
        message: format!("answer larger than {limit} bytes"),
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large(shown));
    }
    let mut body = BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| reqwest_error(method, &shown, e))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(shown));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
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

    #[tokio::test]
    async fn an_endless_body_stops_at_the_cap() {
        let endless = futures::stream::repeat_with(|| {
            Ok::<_, std::io::Error>(Bytes::from_static(&[b'x'; 4096]))
        });
        let err = read_capped(
            response(reqwest::Body::wrap_stream(endless)),
            64 << 10,
            "GET",
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RegistryError::Protocol { .. }), "{err}");
        assert!(err.to_string().contains("larger than 65536 bytes"), "{err}");
    }

    #[tokio::test]
    async fn a_body_within_the_cap_is_read_whole() {
        let body = read_capped(
            response(reqwest::Body::from("{\"token\":\"t\"}")),
            1024,
            "GET",
        )
        .await
        .unwrap();
        assert_eq!(&body[..], b"{\"token\":\"t\"}");
    }
}
