//! A token service of our own, for what the registry's real token issuer
//! never does: answer without end, or sit on another host than the
//! registry's. It records whether each request carried `Authorization`
//! (never its value). Binds 127.0.0.1; aborted on drop.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::Response;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::proxy::{full, serve_http, Handler, ProxyBody};

/// How the token service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAnswer {
    /// A token document (`{"token": "..."}`).
    Token,
    /// 200 with a body that never ends.
    Endless,
}

/// One request the token service saw.
#[derive(Debug, Clone)]
pub struct TokenCall {
    pub path: String,
    pub authorization: bool,
}

/// A token service on loopback.
pub struct TokenService {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<TokenCall>>>,
    task: JoinHandle<()>,
}

impl Drop for TokenService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenService {
    pub async fn start(answer: TokenAnswer) -> TokenService {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let calls: Arc<Mutex<Vec<TokenCall>>> = Arc::default();
        let seen = calls.clone();
        let handler: Handler = Arc::new(move |req| {
            seen.lock().unwrap().push(TokenCall {
                path: req.uri().to_string(),
                authorization: req.headers().contains_key(hyper::header::AUTHORIZATION),
            });
            Box::pin(async move {
                let body: ProxyBody = match answer {
                    TokenAnswer::Token => full(r#"{"token":"t0k3n","expires_in":300}"#),
                    TokenAnswer::Endless => {
                        let chunk = Bytes::from(vec![b' '; 64 << 10]);
                        let endless = futures::stream::repeat_with(move || {
                            Ok::<_, std::io::Error>(Frame::data(chunk.clone()))
                        });
                        BodyExt::boxed(StreamBody::new(endless))
                    }
                };
                Response::builder()
                    .status(200)
                    .header("Content-Type", "application/json")
                    .body(body)
                    .unwrap()
            })
        });
        TokenService {
            addr,
            calls,
            task: serve_http(listener, handler),
        }
    }

    /// The realm URL, on host name `host` (`127.0.0.1`, or `localhost` for
    /// another origin than a registry on 127.0.0.1).
    pub fn realm(&self, host: &str) -> String {
        format!("http://{host}:{}/token", self.addr.port())
    }

    pub fn calls(&self) -> Vec<TokenCall> {
        self.calls.lock().unwrap().clone()
    }
}
