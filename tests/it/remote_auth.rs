//! Authentication, credentials, TLS and secret hygiene of the HTTP registry
//! client, against the real CNCF registry configured for htpasswd Basic auth,
//! token auth (with the harness's JWT issuer), and TLS with a generated CA.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use promoter::reference::{ManifestRef, Tag};
use promoter::registry::remote::{CredentialStore, RegistryOptions, RemoteRegistry};
use promoter::registry::{BlobPut, Registry, RegistryError};

use crate::support::hermetic::rerun_in_clean_env;
use crate::support::images::At;
use crate::support::images::{push, TestBlob, TestImage};
use crate::support::proxy::{Action, Proxy, Rule, Target, SINK_SIGNATURE};
use crate::support::registry::{
    remote_at, Auth, TestRegistry, Tls, IDENTITY_TOKEN, PASSWORD, USER,
};

fn tag(t: &str) -> ManifestRef {
    ManifestRef::Tag(Tag::parse(t).unwrap())
}

fn creds(path: &Path) -> CredentialStore {
    CredentialStore::from_files([path]).unwrap()
}

/// Every secret the tests use; none may show up in any message.
fn assert_no_secret(text: &str) {
    for secret in [
        PASSWORD,
        IDENTITY_TOKEN,
        "wrong-password-zz9",
        SINK_SIGNATURE,
        "eyJ",
    ] {
        assert!(
            !text.contains(secret),
            "secret {secret:?} leaked into: {text}"
        );
    }
}

async fn roundtrip(client: &RemoteRegistry, repo: &str, seed: u64) {
    let image = TestImage::single_layer(seed, 2_000);
    push(client, repo, &image, Some("v1")).await.unwrap();
    let got = client
        .get_manifest(&client.at(repo), &tag("v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.bytes, image.manifest.bytes);
    assert_eq!(
        client.list_tags(&client.at(repo)).await.unwrap(),
        vec!["v1"]
    );
}

/// A docker config.json with `entry` for `host`, in a fresh directory.
fn config_file(dir: &Path, host: &str, entry: serde_json::Value) -> PathBuf {
    let sub = tempfile::tempdir_in(dir).unwrap().keep();
    let path = sub.join("config.json");
    std::fs::write(
        &path,
        serde_json::json!({"auths": {host: entry}}).to_string(),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn basic_auth_against_htpasswd() {
    let Some(registry) = TestRegistry::with_auth(Auth::Htpasswd).await else {
        return;
    };
    let config = registry.write_docker_config(None);
    roundtrip(&registry.remote(creds(&config)), "basic/repo", 1).await;

    // Anonymous: refused, with a typed error.
    let anonymous = registry.remote(CredentialStore::anonymous());
    let err = anonymous
        .list_tags(&anonymous.at("basic/repo"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Unauthorized {
                credentials: None,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("there are no credentials for"),
        "{err}"
    );

    // A wrong password: refused once (no retry loop), and never printed.
    let wrong = config_file(
        registry.dir.path(),
        &registry.host(),
        serde_json::json!({"username": USER, "password": "wrong-password-zz9"}),
    );
    let client = registry.remote(creds(&wrong));
    let err = client
        .list_tags(&client.at("basic/repo"))
        .await
        .unwrap_err();
    // Told apart from having none: it names where the refused ones came from.
    assert!(
        matches!(&err, RegistryError::Unauthorized { credentials: Some(source), .. } if source.contains(&wrong.display().to_string())),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("the registry refused the credentials from"),
        "{err}"
    );
    assert_no_secret(&format!("{err} {err:?} {client:?}"));
}

#[tokio::test]
async fn token_auth_with_the_jwt_issuer_caches_tokens_and_asks_one_token_for_a_mount() {
    let Some(registry) = TestRegistry::with_auth(Auth::Token).await else {
        return;
    };
    let issuer = registry.token_issuer.as_ref().unwrap();
    let config = registry.write_docker_config(None);
    let client = registry.remote(creds(&config));
    roundtrip(&client, "tok/src", 2).await;

    // Many requests on one scope set: the token is fetched once.
    let pulls_before = issuer
        .requests()
        .iter()
        .filter(|r| r.scopes == vec!["repository:tok/src:pull".to_string()])
        .count();
    for _ in 0..5 {
        client.list_tags(&client.at("tok/src")).await.unwrap();
    }
    let pulls_after = issuer
        .requests()
        .iter()
        .filter(|r| r.scopes == vec!["repository:tok/src:pull".to_string()])
        .count();
    assert!(
        pulls_after <= 1 && pulls_after == pulls_before,
        "{:?}",
        issuer.requests()
    );

    // A mount: one token covering both repositories, and a real 201.
    let blob = TestBlob::layer(3, 5_000);
    client
        .put_blob(&client.at("tok/src"), &blob.upload(None))
        .await
        .unwrap();
    let put = client
        .put_blob(
            &client.at("tok/dst"),
            &blob.upload(Some(&client.at("tok/src"))),
        )
        .await
        .unwrap();
    assert_eq!(put, BlobPut::Mounted);
    assert!(
        issuer.requests().iter().any(|r| r.scopes
            == vec![
                "repository:tok/dst:pull,push".to_string(),
                "repository:tok/src:pull".to_string()
            ]
            && r.granted),
        "{:?}",
        issuer.requests()
    );
    assert!(issuer
        .requests()
        .iter()
        .all(|r| r.account.as_deref() == Some(USER)));

    // Without credentials the issuer grants nothing: a typed refusal.
    let anonymous = registry.remote(CredentialStore::anonymous());
    let err = anonymous
        .list_tags(&anonymous.at("tok/src"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert_no_secret(&format!("{err} {err:?} {client:?}"));
}

#[tokio::test]
async fn identity_tokens_use_the_oauth2_refresh_grant() {
    let Some(registry) = TestRegistry::with_auth(Auth::Token).await else {
        return;
    };
    let config = config_file(
        registry.dir.path(),
        &registry.host(),
        serde_json::json!({"identitytoken": IDENTITY_TOKEN}),
    );
    let client = registry.remote(creds(&config));
    roundtrip(&client, "idt/repo", 4).await;
    let requests = registry.token_issuer.as_ref().unwrap().requests();
    assert!(!requests.is_empty());
    assert!(requests
        .iter()
        .all(|r| r.method == "POST" && r.account.as_deref() == Some("<identity-token>")));
    assert_no_secret(&format!("{client:?} {:?}", creds(&config)));
}

/// Write an executable `docker-credential-NAME` into `dir` that records its
/// stdin in `dir/NAME.asked` and prints `answer` (or fails with `fail`).
fn stub_helper(dir: &Path, name: &str, answer: Option<&str>, fail: Option<&str>) {
    let path = dir.join(format!("docker-credential-{name}"));
    let asked = dir.join(format!("{name}.asked"));
    let body = match (answer, fail) {
        (Some(a), _) => format!("echo '{a}'"),
        (None, Some(f)) => format!("echo '{f}'; exit 1"),
        (None, None) => "exit 1".to_string(),
    };
    let script = format!(
        "#!/bin/sh\n[ \"$1\" = get ] || exit 2\ncat > '{}'\n{body}\n",
        asked.display()
    );
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(script.as_bytes()).unwrap();
    drop(f);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Another test thread forking at the moment the file was open for
    // writing makes exec fail with "text file busy" for a moment: wait it out
    // here, so the client under test never meets it.
    for _ in 0..100 {
        match std::process::Command::new(&path).arg("probe").output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            _ => break,
        }
    }
}

#[tokio::test]
async fn credentials_resolve_through_a_stub_credential_helper() {
    let Some(registry) = TestRegistry::with_auth(Auth::Htpasswd).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let answer =
        serde_json::json!({"ServerURL": registry.host(), "Username": USER, "Secret": PASSWORD})
            .to_string();
    stub_helper(dir.path(), "stub", Some(&answer), None);
    stub_helper(
        dir.path(),
        "empty",
        None,
        Some("credentials not found in native keychain"),
    );
    stub_helper(dir.path(), "broken", None, Some(PASSWORD));

    // credHelpers for this host.
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        serde_json::json!({"credHelpers": {registry.host(): "stub"}}).to_string(),
    )
    .unwrap();
    let store = creds(&config).with_helper_dirs([dir.path().to_path_buf()]);
    let client = registry.remote(store);
    roundtrip(&client, "helped/repo", 5).await;
    let asked = std::fs::read_to_string(dir.path().join("stub.asked")).unwrap();
    assert_eq!(asked, registry.host(), "the helper is asked for the host");

    // credsStore, with a placeholder auths entry as docker writes it.
    std::fs::write(
        &config,
        serde_json::json!({"credsStore": "stub", "auths": {registry.host(): {}}}).to_string(),
    )
    .unwrap();
    let store = creds(&config).with_helper_dirs([dir.path().to_path_buf()]);
    assert!(store.lookup(&registry.host()).await.unwrap().is_some());

    // "Not found" from a helper means anonymous, not an error.
    std::fs::write(
        &config,
        serde_json::json!({"credsStore": "empty"}).to_string(),
    )
    .unwrap();
    let store = creds(&config).with_helper_dirs([dir.path().to_path_buf()]);
    assert_eq!(store.lookup(&registry.host()).await.unwrap(), None);

    // A failing helper is an error that does not repeat what it printed.
    std::fs::write(
        &config,
        serde_json::json!({"credsStore": "broken"}).to_string(),
    )
    .unwrap();
    let store = creds(&config).with_helper_dirs([dir.path().to_path_buf()]);
    let err = store.lookup(&registry.host()).await.unwrap_err();
    assert!(
        err.to_string().contains("docker-credential-broken"),
        "{err}"
    );
    assert_no_secret(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn credentials_are_found_through_docker_config_discovery() {
    // The explicit file comes first; the environment's defaults come after
    // it. `discover` reads them from this very process's HOME, DOCKER_CONFIG,
    // XDG_* and REGISTRY_AUTH_FILE (where a malformed file is an error), so
    // the test runs again in a clean environment, where there are none.
    if rerun_in_clean_env(
        module_path!(),
        "credentials_are_found_through_docker_config_discovery",
    ) {
        return;
    }
    let Some(registry) = TestRegistry::with_auth(Auth::Htpasswd).await else {
        return;
    };
    let explicit = registry.write_docker_config(None);
    let store = CredentialStore::discover(Some(&explicit)).unwrap();
    let client = registry.remote(store);
    roundtrip(&client, "found/repo", 6).await;
    let missing = registry.dir.path().join("no-such-auth.json");
    let err = CredentialStore::discover(Some(&missing)).unwrap_err();
    assert!(err.to_string().contains("no-such-auth.json"), "{err}");
}

#[tokio::test]
async fn tls_with_the_generated_ca_and_client_certificates() {
    let Some(registry) = TestRegistry::with_tls(Tls::On).await else {
        return;
    };
    roundtrip(
        &registry.remote(CredentialStore::anonymous()),
        "tls/repo",
        7,
    )
    .await;

    // Without the CA the certificate is refused, at once (not retried).
    let untrusting = RegistryOptions {
        plain_http: Some(false),
        retry_deadline_secs: Some(30.0),
        ..Default::default()
    };
    let client = remote_at(&registry.host(), untrusting, CredentialStore::anonymous());
    let started = std::time::Instant::now();
    let err = client.list_tags(&client.at("tls/repo")).await.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Transport {
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // `insecure: true`: no certificate check at all (for a registry whose
    // certificate nobody signed), and the same round trip works.
    let careless = RegistryOptions {
        plain_http: Some(false),
        insecure: Some(true),
        ..Default::default()
    };
    roundtrip(
        &remote_at(&registry.host(), careless, CredentialStore::anonymous()),
        "tls/insecure",
        8,
    )
    .await;

    let Some(mutual) = TestRegistry::with_tls(Tls::Mutual).await else {
        return;
    };
    roundtrip(&mutual.remote(CredentialStore::anonymous()), "mtls/repo", 8).await;
    let mut no_cert = mutual.options();
    no_cert.client_cert = None;
    no_cert.client_key = None;
    no_cert.retry_deadline_secs = Some(1.0);
    let client = remote_at(&mutual.host(), no_cert, CredentialStore::anonymous());
    assert!(client.list_tags(&client.at("mtls/repo")).await.is_err());
}

#[tokio::test]
async fn a_redirect_to_another_host_carries_no_authorization() {
    let Some(registry) = TestRegistry::with_auth(Auth::Htpasswd).await else {
        return;
    };
    let proxy = Proxy::start(&registry.host()).await;
    let config = registry.write_docker_config(Some(&proxy.host()));
    let client = registry.remote_via(&proxy.host(), creds(&config));
    let blob = TestBlob::layer(9, 100_000);
    client
        .put_blob(&client.at("redir/repo"), &blob.upload(None))
        .await
        .unwrap();
    proxy.clear_log();

    proxy.add(Rule::new("GET", "/blobs/").action(Action::RedirectToSink));
    let mut stream = client
        .get_blob(&client.at("redir/repo"), &blob.digest)
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(got, blob.bytes);
    let log = proxy.log();
    let at_registry = log
        .iter()
        .find(|r| r.is("GET", "/blobs/"))
        .expect("the blob GET");
    assert_eq!(at_registry.status, 307, "{}", proxy.dump());
    assert!(
        at_registry.authorization,
        "the registry itself gets credentials"
    );
    let at_sink: Vec<_> = log.iter().filter(|r| r.target == Target::Sink).collect();
    assert_eq!(at_sink.len(), 1, "{}", proxy.dump());
    assert!(
        !at_sink[0].authorization,
        "Authorization leaked to the redirect target"
    );
    assert_eq!(at_sink[0].status, 200);
}

/// Captures everything `tracing` emits on this thread, at every level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_errors_or_logs() {
    let Some(registry) = TestRegistry::with_auth(Auth::Token).await else {
        return;
    };
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let proxy = Proxy::start(&registry.host()).await;
    let mut messages = String::new();
    // The right password through the proxy, with faults that make the
    // client log and fail: retries, a redirect to a signed URL that fails.
    let good = registry.write_docker_config(Some(&proxy.host()));
    let client = registry.remote_via(&proxy.host(), creds(&good));
    let blob = TestBlob::layer(10, 1_000);
    client
        .put_blob(&client.at("secret/repo"), &blob.upload(None))
        .await
        .unwrap();
    proxy.add(
        Rule::new("HEAD", "/blobs/")
            .times(2)
            .action(Action::status(503)),
    );
    client
        .blob_exists(&client.at("secret/repo"), &blob.digest)
        .await
        .unwrap();
    proxy.add(Rule::new("GET", "/blobs/").action(Action::RedirectToNowhere));
    let err = client
        .get_blob(&client.at("secret/repo"), &blob.digest)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, RegistryError::Status { status: 404, url, .. } if url.contains("/sink/0")),
        "{err:?}"
    );
    messages.push_str(&format!("{err} {err:?}\n"));
    messages.push_str(&format!("{client:?}\n"));

    // A wrong password and an identity token nobody accepts.
    for entry in [
        serde_json::json!({"username": USER, "password": "wrong-password-zz9"}),
        serde_json::json!({"identitytoken": "wrong-password-zz9"}),
    ] {
        let file = config_file(registry.dir.path(), &registry.host(), entry);
        let client = registry.remote(creds(&file));
        let err = client
            .list_tags(&client.at("secret/repo"))
            .await
            .unwrap_err();
        messages.push_str(&format!("{err} {err:?} {client:?}\n"));
    }
    drop(_guard);
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "the capture works: {logs}");
    assert_no_secret(&messages);
    assert_no_secret(&logs);
}

/// Through the binary: credentials from `PROMOTER_AUTH_<HOST>` (CI's way,
/// without a docker config) are used, and when refused, the message names
/// the variable, never its value; an HTTPS registry reached over plain
/// HTTP (the loopback default) says which setting to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_the_environment_and_an_https_registry_on_loopback() {
    let Some(registry) = TestRegistry::with_auth(Auth::Htpasswd).await else {
        return;
    };
    let work = crate::support::cli::Workdir::new();
    let host = registry.host();
    let variable = promoter::registry::remote::credentials::env_variable(&host);
    let snapshot = ["run", "--snapshot", &format!("{host}/nothing")];
    let good = work
        .promoter()
        .args(snapshot)
        .env(&variable, format!("{USER}:{PASSWORD}"))
        .run_async()
        .await;
    assert_eq!(good.code, 0, "{}", good.all());
    let wrong = work
        .promoter()
        .args(snapshot)
        .env(&variable, format!("{USER}:not-the-password-zz9"))
        .run_async()
        .await;
    assert_ne!(wrong.code, 0, "{}", wrong.all());
    assert!(
        wrong.stderr.contains(&format!(
            "refused the credentials from the environment variable {variable}"
        )),
        "{}",
        wrong.stderr
    );
    assert!(
        !wrong.all().contains("not-the-password-zz9"),
        "{}",
        wrong.all()
    );

    let Some(tls) = TestRegistry::with_tls(Tls::On).await else {
        return;
    };
    let plain = work
        .promoter()
        .args(["run", "--snapshot", &format!("{}/nothing", tls.host())])
        .run_async()
        .await;
    assert_ne!(plain.code, 0, "{}", plain.all());
    assert!(
        plain.stderr.contains("this registry speaks HTTPS")
            && plain.stderr.contains("plain_http: false"),
        "{}",
        plain.stderr
    );
}

/// A registry whose self-signed certificate says it is a CA (`openssl req
/// -x509`'s default), named in `ca_file`: trusted as itself, as curl and
/// skopeo do, where rustls alone would refuse it (CaUsedAsEndEntity).
#[tokio::test]
async fn a_self_signed_certificate_named_in_ca_file_is_trusted() {
    let Some(registry) = TestRegistry::with_tls(Tls::SelfSigned).await else {
        return;
    };
    roundtrip(
        &registry.remote(CredentialStore::anonymous()),
        "tls/self-signed",
        9,
    )
    .await;
    // Another certificate is no key to it.
    let other = TestRegistry::with_tls(Tls::On).await.unwrap();
    let wrong = RegistryOptions {
        plain_http: Some(false),
        ca_file: Some(other.dir.path().join("ca.pem")),
        retry_deadline_secs: Some(2.0),
        ..Default::default()
    };
    let client = remote_at(&registry.host(), wrong, CredentialStore::anonymous());
    assert!(client
        .list_tags(&client.at("tls/self-signed"))
        .await
        .is_err());
}

/// The TLS mistakes a user makes with a loopback registry, in every
/// command that reads one: plain HTTP to an HTTPS port, and a certificate
/// nobody told us to trust. Each names the setting that fixes it, never a
/// bare `HTTP 400` or the Debug dump of a TLS library's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_mistakes_name_their_fix_in_run_verify_and_pin() {
    use crate::support::images::write_oci_layout;
    use crate::support::world::{images_yaml, manifest_yaml};
    for (tls, needs_trust) in [
        (Tls::On, "signed by a CA"),
        (Tls::SelfSigned, "self-signed"),
    ] {
        let Some(registry) = TestRegistry::with_tls(tls).await else {
            return;
        };
        let work = crate::support::cli::Workdir::new();
        let app = TestImage::single_layer(3301, 100);
        write_oci_layout(&work.path().join("src"), "app", &[(&app, Some("1.0"))]).unwrap();
        let entries = images_yaml(&[("app", app.digest(), &["1.0"])]);
        let dst = format!("{}/prod", registry.host());
        work.write("m.yaml", manifest_yaml("oci:src", &dst, &entries));
        work.write(
            "intent.yaml",
            format!("registries:\n- name: {dst}\n  src: true\n- name: oci:mirror\nimages:\n- name: app\n  tags: [\"1.0\"]\n"),
        );
        let https = format!(
            "{{\"registries\": {{\"{}\": {{\"plain_http\": false}}}}}}",
            registry.host()
        );
        work.write("https.json", https);
        let commands: [&[&str]; 3] = [
            &["run", "--manifest", "m.yaml"],
            &["verify", "--manifest", "m.yaml"],
            &["pin", "intent.yaml"],
        ];
        for command in commands {
            let plain = work.promoter().args(command).run_async().await;
            assert_ne!(plain.code, 0, "{command:?}: {}", plain.all());
            assert!(
                plain.all().contains("set `plain_http: false`"),
                "{command:?} over plain HTTP: {}",
                plain.all()
            );
            let untrusted = work
                .promoter()
                .args(command)
                .args(["--registry-config", "https.json"])
                .run_async()
                .await;
            let all = untrusted.all();
            assert_ne!(untrusted.code, 0, "{command:?}: {all}");
            assert!(
                all.contains(needs_trust) && all.contains("`ca_file`"),
                "{command:?} untrusted: {all}"
            );
            assert!(
                !all.contains("Other(") && !all.contains("CaUsedAsEndEntity"),
                "{all}"
            );
        }
    }
}
