//! The server `watch --listen` runs: `/metrics` and `/healthz`, nothing
//! else, each connection bounded in time.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use super::Metrics;

/// Serve `/metrics` and `/healthz` on `listener` until `stop` resolves.
/// Anything else is 404; only GET and HEAD are answered.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()>,
) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Method, Response, StatusCode};

    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let metrics = metrics.clone();
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let (status, content_type, body) =
                        match (request.method(), request.uri().path()) {
                            (&Method::GET | &Method::HEAD, "/metrics") => (
                                StatusCode::OK,
                                "text/plain; version=0.0.4; charset=utf-8",
                                metrics.render(),
                            ),
                            (&Method::GET | &Method::HEAD, "/healthz") if metrics.healthy() => {
                                (StatusCode::OK, "text/plain", "ok\n".to_string())
                            }
                            (&Method::GET | &Method::HEAD, "/healthz") => (
                                StatusCode::SERVICE_UNAVAILABLE,
                                "text/plain",
                                "the last cycle failed\n".to_string(),
                            ),
                            _ => (
                                StatusCode::NOT_FOUND,
                                "text/plain",
                                "not found\n".to_string(),
                            ),
                        };
                    let response = Response::builder()
                        .status(status)
                        .header("content-type", content_type)
                        .body(Full::new(Bytes::from(body)))
                        .expect("a valid response");
                    Ok::<_, Infallible>(response)
                }
            });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            // A slow or broken client only ends its own connection.
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                hyper::server::conn::http1::Builder::new().serve_connection(io, service),
            )
            .await;
        });
    }
}
