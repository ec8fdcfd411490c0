//! The real CNCF Distribution registry (`docker-registry serve CONFIG`, the
//! Debian package) on a free 127.0.0.1 port with a temporary storage
//! directory, stopped (killed and reaped) on drop.
//!
//! Configurations: plain; htpasswd Basic auth; token auth (with a token
//! issuer in this file that signs JWTs the registry trusts); TLS with a
//! generated CA, optionally requiring a client certificate.
//!
//! ```ignore
//! let Some(registry) = TestRegistry::start(Config::default()).await else { return };
//! let client = registry.remote(CredentialStore::anonymous());
//! ```
//!
//! `start` answers `None` (after printing a skip line) when the binary is
//! missing, except under `CI=true`, where a missing registry fails the test.
//!
//! The registry reads nothing but its configuration file: its environment
//! is a [`CleanEnv`] without any `REGISTRY_*` variable (Distribution takes
//! those as overrides of the configuration).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Request, Response};
use promoter::registry::remote::{CredentialStore, RegistryOptions, RemoteRegistry};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::hermetic::CleanEnv;
use super::proxy::{full, serve_http, Handler, ProxyBody};

/// The user every authenticating configuration accepts.
pub const USER: &str = "promoter-test";
/// Its password. Distinctive, so tests can grep output for it.
pub const PASSWORD: &str = "pw-Zq8sUeVx-secret";
/// The user the token issuer also accepts with `PASSWORD`: image-syncer's
/// `--target-repo-auth-key` sends `_json_key` and the key file's bytes.
pub const JSON_KEY_USER: &str = "_json_key";
/// An identity (refresh) token the token issuer accepts for `USER`.
pub const IDENTITY_TOKEN: &str = "idt-4Kp2Lm9Rt-secret";

/// Whether a program is on `PATH`. If it is missing: under `CI=true` this
/// panics (CI must fail, never skip); otherwise it prints a skip line and
/// answers `None`.
pub fn require_binary(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{name} is not installed, and CI=true: install it (scripts/install-test-deps.sh)"
            );
        }
        eprintln!(
            "SKIP: {name} is not installed; run scripts/install-test-deps.sh to run this test"
        );
    }
    found
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Auth {
    #[default]
    None,
    /// htpasswd Basic auth for [`USER`]/[`PASSWORD`].
    Htpasswd,
    /// Bearer tokens from a [`TokenIssuer`] this harness runs.
    Token,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tls {
    #[default]
    Off,
    /// HTTPS with a certificate from a generated CA.
    On,
    /// HTTPS, and the registry requires a client certificate from that CA.
    Mutual,
    /// HTTPS with a self-signed server certificate that says it is a CA, as
    /// `openssl req -x509` makes them; `ca.pem` is that certificate.
    SelfSigned,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Config {
    pub auth: Auth,
    pub tls: Tls,
}

impl Config {
    /// `auth`, without TLS.
    pub fn with_auth(auth: Auth) -> Config {
        Config {
            auth,
            ..Default::default()
        }
    }
}

/// Files of the generated PKI.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A running registry. Dropping it kills the process.
pub struct TestRegistry {
    child: Child,
    port: u16,
    pub config: Config,
    pub tls: Option<TlsFiles>,
    pub token_issuer: Option<TokenIssuer>,
    // Last: the directories outlive the process that uses them.
    _env: CleanEnv,
    pub dir: TempDir,
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestRegistry {
    /// A plain registry (no auth, no TLS).
    pub async fn plain() -> Option<TestRegistry> {
        TestRegistry::start(Config::default()).await
    }

    /// A registry with `auth`, without TLS.
    pub async fn with_auth(auth: Auth) -> Option<TestRegistry> {
        TestRegistry::start(Config::with_auth(auth)).await
    }

    /// A registry with `tls`, without auth.
    pub async fn with_tls(tls: Tls) -> Option<TestRegistry> {
        TestRegistry::start(Config {
            tls,
            ..Default::default()
        })
        .await
    }

    pub async fn start(config: Config) -> Option<TestRegistry> {
        let binary = require_binary("docker-registry")?;
        let dir = tempfile::Builder::new()
            .prefix("promoter-registry-")
            .tempdir()
            .unwrap();
        let tls = (config.tls != Tls::Off).then(|| make_pki(dir.path(), config.tls));
        let token_issuer = match config.auth {
            Auth::Token => Some(TokenIssuer::start(dir.path()).await),
            _ => None,
        };
        if config.auth == Auth::Htpasswd {
            // Cost 4 (the minimum): the registry checks bcrypt on every request.
            let hash = bcrypt::hash(PASSWORD, 4).unwrap();
            std::fs::write(dir.path().join("htpasswd"), format!("{USER}:{hash}\n")).unwrap();
        }
        let log_file = dir.path().join("registry.log");
        let env = CleanEnv::new();
        // The port is picked by binding :0 and releasing it; another process
        // may grab it in between, so a failed start is retried on a new port.
        for attempt in 0..5 {
            let port = free_port();
            let config_path = dir.path().join("config.yml");
            std::fs::write(
                &config_path,
                registry_config(
                    dir.path(),
                    port,
                    config,
                    tls.as_ref(),
                    token_issuer.as_ref(),
                ),
            )
            .unwrap();
            let log = std::fs::File::create(&log_file).unwrap();
            let mut command = env.command(&binary);
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("REGISTRY_") {
                    command.env_remove(name);
                }
            }
            let mut child = command
                .arg("serve")
                .arg(&config_path)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            if wait_ready(&mut child, port).await {
                return Some(TestRegistry {
                    child,
                    port,
                    config,
                    tls,
                    token_issuer,
                    _env: env,
                    dir,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "docker-registry did not start on port {port} (attempt {}): {}",
                attempt + 1,
                std::fs::read_to_string(&log_file).unwrap_or_default()
            );
        }
        panic!("docker-registry would not start");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Registry options that work for this registry: HTTPS with the
    /// generated CA (and client certificate for [`Tls::Mutual`]), short
    /// retry deadlines so failing tests fail fast.
    pub fn options(&self) -> RegistryOptions {
        let mut opts = RegistryOptions {
            retry_deadline_secs: Some(20.0),
            ..Default::default()
        };
        if let Some(tls) = &self.tls {
            opts.plain_http = Some(false);
            opts.ca_file = Some(tls.ca_cert.clone());
            if self.config.tls == Tls::Mutual {
                opts.client_cert = Some(tls.client_cert.clone());
                opts.client_key = Some(tls.client_key.clone());
            }
        }
        opts
    }

    /// A client for this registry with `credentials`.
    pub fn remote(&self, credentials: CredentialStore) -> RemoteRegistry {
        self.remote_via(&self.host(), credentials)
    }

    /// A client of `host` (a proxy in front of this registry) with this
    /// registry's [`options`](TestRegistry::options) and `credentials`.
    pub fn remote_via(&self, host: &str, credentials: CredentialStore) -> RemoteRegistry {
        remote_at(host, self.options(), credentials)
    }

    /// Write a docker `config.json` holding [`USER`]/[`PASSWORD`] for
    /// `host` (this registry's by default) into a new directory under this
    /// registry's temp dir; returns the file.
    pub fn write_docker_config(&self, host: Option<&str>) -> PathBuf {
        let host = host.map(str::to_string).unwrap_or_else(|| self.host());
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        let dir = tempfile::Builder::new()
            .prefix("docker-config-")
            .tempdir_in(self.dir.path())
            .unwrap()
            .keep();
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            serde_json::json!({"auths": {host: {"auth": auth}}}).to_string(),
        )
        .unwrap();
        path
    }
}

/// A client of `host` with `options` (resolved for that host) and `credentials`.
pub fn remote_at(
    host: &str,
    options: RegistryOptions,
    credentials: CredentialStore,
) -> RemoteRegistry {
    RemoteRegistry::new(host, options.resolve(host), Arc::new(credentials)).unwrap()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Poll until the registry accepts connections (its listener opens only once
/// it is ready to serve) or exits.
async fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn registry_config(
    dir: &Path,
    port: u16,
    config: Config,
    tls: Option<&TlsFiles>,
    issuer: Option<&TokenIssuer>,
) -> String {
    let storage = dir.join("storage");
    let mut yaml = format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: test-secret-{port}
",
        storage = storage.display(),
    );
    if let Some(tls) = tls {
        yaml.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            dir.join("server.pem").display(),
            dir.join("server-key.pem").display()
        ));
        if config.tls == Tls::Mutual {
            yaml.push_str(&format!(
                "    clientcas:\n      - {}\n",
                tls.ca_cert.display()
            ));
        }
    }
    match config.auth {
        Auth::None => {}
        Auth::Htpasswd => yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: promoter-test\n    path: {}\n",
            dir.join("htpasswd").display()
        )),
        Auth::Token => {
            let issuer = issuer.expect("token auth has an issuer");
            yaml.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                issuer.realm(),
                TokenIssuer::SERVICE,
                TokenIssuer::ISSUER,
                issuer.cert_file.display()
            ));
        }
    }
    yaml
}

/// A CA, a server certificate for 127.0.0.1/localhost, and a client
/// certificate, all written under `dir`.
fn make_pki(dir: &Path, tls: Tls) -> TlsFiles {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "promoter test CA");
    ca_params.distinguished_name = dn;
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    server_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "promoter test client");
    client_params.distinguished_name = dn;
    client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer).unwrap();

    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let ca_path = write("ca.pem", ca_cert.pem());
    write("server.pem", server_cert.pem());
    write("server-key.pem", server_key.serialize_pem());
    if tls == Tls::SelfSigned {
        // One certificate, its own issuer, marked a CA: the server's and ca.pem.
        let mut own =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        own.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = own.self_signed(&server_key).unwrap();
        write("ca.pem", cert.pem());
        write("server.pem", cert.pem());
    }
    TlsFiles {
        ca_cert: ca_path,
        client_cert: write("client.pem", client_cert.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
    }
}

// ---------------------------------------------------------------- token issuer

/// One token request the issuer answered.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub method: String,
    /// The scopes asked for (`repository:a:pull,push`).
    pub scopes: Vec<String>,
    /// Who authenticated: a user name, `"<identity-token>"`, or `None`.
    pub account: Option<String>,
    /// Whether any access was granted.
    pub granted: bool,
}

/// A tiny token server (the registry's `auth.token` realm): grants whatever
/// is asked to [`USER`] (by Basic password, or by [`IDENTITY_TOKEN`] through
/// the OAuth2 refresh grant), nothing to anonymous callers. Tokens are ES256
/// JWTs carrying the signing certificate in `x5c`; the registry trusts that
/// certificate through its `rootcertbundle`.
pub struct TokenIssuer {
    addr: SocketAddr,
    pub cert_file: PathBuf,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    task: JoinHandle<()>,
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct IssuerKeys {
    encoding: jsonwebtoken::EncodingKey,
    cert_der_b64: String,
}

impl TokenIssuer {
    pub const SERVICE: &'static str = "promoter-test-registry";
    pub const ISSUER: &'static str = "promoter-test-issuer";

    pub async fn start(dir: &Path) -> TokenIssuer {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "promoter test token signer");
        let cert = params.self_signed(&key).unwrap();
        let cert_file = dir.join("token-signer.pem");
        std::fs::write(&cert_file, cert.pem()).unwrap();
        let keys = Arc::new(IssuerKeys {
            encoding: jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes())
                .unwrap(),
            cert_der_b64: base64::engine::general_purpose::STANDARD.encode(cert.der()),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<TokenRequest>>> = Arc::default();
        let r = requests.clone();
        let handler: Handler = Arc::new(move |req| {
            let keys = keys.clone();
            let r = r.clone();
            Box::pin(async move { issue(req, &keys, &r).await })
        });
        TokenIssuer {
            addr,
            cert_file,
            requests,
            task: serve_http(listener, handler),
        }
    }

    /// The realm URL the registry advertises.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

async fn issue(
    req: Request<hyper::body::Incoming>,
    keys: &IssuerKeys,
    log: &Mutex<Vec<TokenRequest>>,
) -> Response<ProxyBody> {
    let method = req.method().as_str().to_string();
    let basic = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let mut params: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    if method == "POST" {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        params.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut scopes: Vec<String> = params
        .iter()
        .filter(|(n, _)| n == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    scopes.sort();
    let account = if method == "POST" {
        (get("grant_type").as_deref() == Some("refresh_token")
            && get("refresh_token").as_deref() == Some(IDENTITY_TOKEN))
        .then(|| "<identity-token>".to_string())
    } else {
        // USER, or image-syncer's `_json_key` with the password as its key file.
        basic.and_then(|b| match b.split_once(':') {
            Some((user @ (USER | JSON_KEY_USER), password)) if password == PASSWORD => {
                Some(user.to_string())
            }
            _ => None,
        })
    };
    // Only an authenticated caller gets access; anonymous gets a token
    // without any (the registry then answers 401, as real ones do).
    let access: Vec<serde_json::Value> = if account.is_some() {
        scopes
            .iter()
            .filter_map(|s| {
                let (resource, actions) = s.rsplit_once(':')?;
                let (kind, name) = resource.split_once(':')?;
                Some(serde_json::json!({
                    "type": kind,
                    "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect()
    } else {
        Vec::new()
    };
    log.lock().unwrap().push(TokenRequest {
        method: method.clone(),
        scopes: scopes.clone(),
        account: account.clone(),
        granted: !access.is_empty(),
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": TokenIssuer::ISSUER,
        "sub": account.clone().unwrap_or_default(),
        "aud": TokenIssuer::SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", rand_suffix()),
        "access": access,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.x5c = Some(vec![keys.cert_der_b64.clone()]);
    let token = jsonwebtoken::encode(&header, &claims, &keys.encoding).unwrap();
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        // No `issued_at`: optional, and an RFC 3339 time where given (Go
        // clients such as skopeo refuse any other format).
        "expires_in": 300,
    });
    Response::builder()
        .status(200)
        .header("Content-Type", "application/json")
        .body(full(Bytes::from(body.to_string())))
        .unwrap()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
