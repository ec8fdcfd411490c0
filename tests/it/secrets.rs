//! Secret hygiene through the binary (issue 7 §5): a Basic password, bearer
//! tokens, an identity token, upload-session state and a signed redirect
//! URL's query never appear in anything the promoter prints: stdout and
//! stderr at every `--log-level` (trace included), text and `--output json`
//! reports, error chains, plan files; in runs that succeed and in runs that
//! fail (wrong password, wrong identity token, 401s, a signed redirect that
//! leads nowhere).
//!
//! The registries are real: an htpasswd (Basic) one and a token-auth one
//! (bearer JWTs from the harness's issuer), each behind the fault proxy,
//! which adds retries (503s) and blob redirects to a second host with a
//! signed query, so that every code path that might log a URL or a header
//! runs. The library-level counterparts live in tests/it/remote_auth.rs.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use futures::future::join_all;

use crate::support::cli::{Out, Workdir};
use crate::support::images::TestImage;
use crate::support::proxy::{Action, Rule, Target, SINK_SIGNATURE};
use crate::support::registry::{Auth, Config, IDENTITY_TOKEN, PASSWORD, USER};
use crate::support::world::{images_yaml, World};

const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];
const OUTPUTS: [&str; 2] = ["text", "json"];
/// A wrong password is a password too.
const WRONG_PASSWORD: &str = "wrong-pw-Hq3vZr-secret";
const WRONG_IDENTITY_TOKEN: &str = "wrong-idt-7Yt2Wq-secret";

/// Everything that must never be printed, with what it is.
fn secrets() -> Vec<(String, &'static str)> {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        (PASSWORD.to_string(), "the Basic password"),
        (b64(format!("{USER}:{PASSWORD}")), "the Basic credentials"),
        (WRONG_PASSWORD.to_string(), "a wrong password"),
        (
            b64(format!("{USER}:{WRONG_PASSWORD}")),
            "wrong Basic credentials",
        ),
        (IDENTITY_TOKEN.to_string(), "the identity token"),
        (WRONG_IDENTITY_TOKEN.to_string(), "a wrong identity token"),
        // Every JWT starts with the base64 of `{"`: a bearer token.
        ("eyJ".to_string(), "a bearer token (JWT)"),
        // The signed redirect's query (the proxy's stand-in for X-Amz-Signature).
        (
            SINK_SIGNATURE.split('=').nth(1).unwrap().to_string(),
            "a redirect's signature",
        ),
        ("X-Signature".to_string(), "a redirect's signed query"),
        // Upload sessions carry their state (an HMAC'd token) in the query.
        ("_state=".to_string(), "an upload session's state"),
    ]
}

/// Panic if `text` (what `what` printed) holds any secret.
fn assert_clean(what: &str, text: &str) {
    for (secret, name) in secrets() {
        if let Some(at) = text.find(&secret) {
            let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let to = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!("{what} printed {name}:\n{}", &text[from..to]);
        }
    }
}

/// An auth file: `entries` are (host, JSON entry).
fn auth_file(work: &Workdir, name: &str, entries: &[(&str, serde_json::Value)]) -> PathBuf {
    let auths: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(host, entry)| (host.to_string(), entry.clone()))
        .collect();
    work.write(name, serde_json::json!({ "auths": auths }).to_string())
}

fn basic(password: &str) -> serde_json::Value {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
    serde_json::json!({ "auth": auth })
}

fn identity(token: &str) -> serde_json::Value {
    serde_json::json!({ "identitytoken": token })
}

/// What [`Secrets`] promotes: a multi-arch index and an image.
struct Promoted {
    index: TestImage,
    image: TestImage,
}

/// An htpasswd source and a token-auth destination, each behind a proxy,
/// the source holding [`Promoted`]. Credentials come only from
/// `--auth-file`: every run's environment has none (`support::hermetic`).
type Secrets = World<Promoted>;

impl Secrets {
    async fn start() -> Option<Secrets> {
        let w = World::builder()
            .source(Config::with_auth(Auth::Htpasswd))
            .destination(Config::with_auth(Auth::Token))
            .start()
            .await?;
        let index = TestImage::oci_index(801, 20_000);
        let image = TestImage::single_layer(802, 30_000);
        w.push("stage/hello", &index, &["1.0"]).await;
        w.push("stage/app", &image, &["2.0"]).await;
        Some(w.holding(Promoted { index, image }))
    }

    /// A manifest promoting both images into `HOST/dest` (one per run, so
    /// that every run has work to do).
    fn manifest_to(&self, dest: &str) -> String {
        let images = images_yaml(&[
            ("hello", self.images.index.digest(), &["1.0"]),
            ("app", self.images.image.digest(), &["2.0"]),
        ]);
        self.manifest_between(&format!("{dest}.yaml"), "stage", dest, &images)
    }

    /// The good credentials for both proxies; the destination's by
    /// password or by identity token.
    fn good_auth(&self, dst_by_identity_token: bool) -> PathBuf {
        let dst_entry = if dst_by_identity_token {
            identity(IDENTITY_TOKEN)
        } else {
            basic(PASSWORD)
        };
        auth_file(
            self,
            if dst_by_identity_token {
                "good-idt.json"
            } else {
                "good.json"
            },
            &[
                (&self.src_proxy.host(), basic(PASSWORD)),
                (&self.dst_proxy.host(), dst_entry),
            ],
        )
    }

    /// Promote (or, without `confirm`, plan) with `auth` at every log level
    /// and output format, concurrently, each into its own destination
    /// path. Checks every output and answers them, labelled.
    async fn every_level(&self, label: &str, auth: &Path, confirm: bool) -> Vec<(String, Out)> {
        let auth = auth.display().to_string();
        let runs = LEVELS
            .iter()
            .flat_map(|level| OUTPUTS.iter().map(move |output| (*level, *output)));
        let runs = runs.map(|(level, output)| {
            let name = format!("{label}-{level}-{output}");
            let manifest = self.manifest_to(&name);
            let plan_file = format!("{name}.plan.json");
            let auth = auth.clone();
            async move {
                let mut args = vec![
                    "run",
                    "--manifest",
                    &manifest,
                    "--auth-file",
                    &auth,
                    "--registry-config",
                    "options.json",
                    "--log-level",
                    level,
                    "--output",
                    output,
                    "--plan-out",
                    &plan_file,
                ];
                if confirm {
                    args.push("--confirm");
                }
                let out = self.run_async(&args).await;
                let what = format!("{name} (exit {})", out.code);
                assert_clean(&format!("{what}, stdout"), &out.stdout);
                assert_clean(&format!("{what}, stderr"), &out.stderr);
                let plan = self.read(&plan_file);
                assert_clean(&format!("{what}, plan file"), &plan);
                (name, out)
            }
        });
        join_all(runs).await
    }

    /// Faults that make the promoter retry and follow signed redirects: one
    /// 503 for a tag read and one for the start of a blob upload of every
    /// run of [`Secrets::every_level`] labelled `label` (each run writes to
    /// its own path, so every run retries, whatever order they run in). Not
    /// a blob's PUT: a 5xx there is not retried but sent again in chunks.
    fn arm(&self, label: &str, blob_redirect: Action) {
        self.src_proxy
            .add(Rule::new("GET", "/blobs/").always().action(blob_redirect));
        for level in LEVELS {
            for output in OUTPUTS {
                let path = format!("/v2/{label}-{level}-{output}/");
                for method in ["HEAD", "POST"] {
                    self.dst_proxy
                        .add(Rule::new(method, &path).action(Action::status(503)));
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_promotions_print_no_secret_at_any_level() {
    let Some(w) = Secrets::start().await else {
        return;
    };
    for by_identity_token in [false, true] {
        w.src_proxy.clear_rules();
        w.dst_proxy.clear_rules();
        let label = if by_identity_token { "idt" } else { "pw" };
        w.arm(label, Action::RedirectToSink);
        let outs = w
            .every_level(label, &w.good_auth(by_identity_token), true)
            .await;
        for (name, out) in &outs {
            assert_eq!(out.code, 0, "{name}: {}{}", out.stdout, out.stderr);
        }
        // The logs were really there to look at: retries and redirects.
        for (name, out) in &outs {
            if name.contains("-debug-") || name.contains("-trace-") {
                assert!(out.stderr.contains("retrying"), "{name}: {}", out.stderr);
            }
            if name.contains("-trace-") {
                assert!(out.stderr.contains("redirect"), "{name}: {}", out.stderr);
            }
        }
    }
    // Blobs really came from the signed URLs, and without credentials.
    let sink: Vec<_> = w
        .src_proxy
        .log()
        .into_iter()
        .filter(|r| r.target == Target::Sink)
        .collect();
    assert!(!sink.is_empty(), "{}", w.src_proxy.dump());
    assert!(
        sink.iter().all(|r| r.status == 200 && !r.authorization),
        "Authorization went to the redirect host: {}",
        w.src_proxy.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_promotions_print_no_secret_at_any_level() {
    let Some(w) = Secrets::start().await else {
        return;
    };
    let src = w.src_proxy.host();
    let dst = w.dst_proxy.host();
    let cases = [
        (
            "wrong-src-password",
            vec![
                (src.as_str(), basic(WRONG_PASSWORD)),
                (dst.as_str(), basic(PASSWORD)),
            ],
        ),
        (
            "wrong-dst-password",
            vec![
                (src.as_str(), basic(PASSWORD)),
                (dst.as_str(), basic(WRONG_PASSWORD)),
            ],
        ),
        (
            "wrong-identity-token",
            vec![
                (src.as_str(), basic(PASSWORD)),
                (dst.as_str(), identity(WRONG_IDENTITY_TOKEN)),
            ],
        ),
    ];
    for (label, entries) in cases {
        let auth = auth_file(&w, &format!("{label}.json"), &entries);
        for confirm in [false, true] {
            let label = format!("{label}-{}", if confirm { "confirm" } else { "dry" });
            let outs = w.every_level(&label, &auth, confirm).await;
            for (name, out) in &outs {
                assert_eq!(out.code, 4, "{name}: {}{}", out.stdout, out.stderr);
            }
            // The failure is explained (registry and scope), just not with secrets.
            let all: String = outs
                .iter()
                .map(|(_, o)| format!("{}{}", o.stdout, o.stderr))
                .collect();
            assert!(
                all.contains("authentication required")
                    || all.contains("refused the credentials")
                    || all.contains("access denied"),
                "{label}: {all}"
            );
        }
    }

    // Good credentials, but the signed URLs the source redirects blobs to
    // lead nowhere (404): the copies fail, naming the URL without its query.
    w.arm("dead-redirect", Action::RedirectToNowhere);
    let outs = w
        .every_level("dead-redirect", &w.good_auth(false), true)
        .await;
    for (name, out) in &outs {
        assert_eq!(out.code, 4, "{name}: {}{}", out.stdout, out.stderr);
        if name.ends_with("-json") {
            assert!(out.stdout.contains("/sink/0"), "{name}: {}", out.stdout);
        }
    }

    // Good credentials, but every blob upload's final PUT (to the session
    // URL, whose query holds the session state) fails: the errors name
    // that URL, without its query.
    w.src_proxy.clear_rules();
    w.dst_proxy.clear_rules();
    w.dst_proxy.add(
        Rule::new("PUT", "/blobs/uploads/")
            .always()
            .action(Action::status(500)),
    );
    let outs = w
        .every_level("dead-upload", &w.good_auth(false), true)
        .await;
    for (name, out) in &outs {
        assert_eq!(out.code, 4, "{name}: {}{}", out.stdout, out.stderr);
        if name.ends_with("-json") {
            assert!(
                out.stdout.contains("/blobs/uploads/"),
                "{name}: {}",
                out.stdout
            );
        }
    }
    w.dst_proxy.clear_rules();

    // Snapshots and diffs with a wrong password fail as any registry that
    // cannot be read does (exit 4).
    let wrong = auth_file(
        &w,
        "wrong-all.json",
        &[(&src, basic(WRONG_PASSWORD)), (&dst, basic(WRONG_PASSWORD))],
    );
    let wrong = wrong.display().to_string();
    let (src_stage, dst_stage) = (format!("{src}/stage"), format!("{dst}/stage"));
    for level in LEVELS {
        for command in [
            vec!["run", "--snapshot", &dst_stage],
            vec!["diff", &src_stage, &dst_stage],
        ] {
            let mut args = command.clone();
            args.extend(["--auth-file", &wrong, "--log-level", level]);
            args.extend(["--registry-config", "options.json"]);
            let out = w.run_async(&args).await;
            assert_eq!(out.code, 4, "{args:?}: {}{}", out.stdout, out.stderr);
            assert_clean(&format!("{args:?}, stdout"), &out.stdout);
            assert_clean(&format!("{args:?}, stderr"), &out.stderr);
            assert!(out.stderr.contains("error:"), "{}", out.stderr);
        }
    }
}

/// Credentials written into a registry name in a manifest are refused
/// (exit 1) without being repeated in the error.
#[tokio::test]
async fn credentials_in_a_manifest_registry_name_are_not_echoed() {
    let work = Workdir::new();
    let digest = format!("sha256:{}", "a".repeat(64));
    for name in [
        format!("https://{USER}:{PASSWORD}@127.0.0.1:5000/stage"),
        format!("{USER}:{PASSWORD}@127.0.0.1:5000/stage"),
    ] {
        work.write(
            "m.yaml",
            format!(
                "registries:\n- name: {name}\n  src: true\n- name: 127.0.0.1:5001/prod\n\
                 images:\n- name: app\n  dmap:\n    \"{digest}\": [\"1.0\"]\n"
            ),
        );
        for level in LEVELS {
            let out = work
                .run_async(&["run", "--manifest", "m.yaml", "--log-level", level])
                .await;
            assert_eq!(out.code, 1, "{}", out.stderr);
            assert!(out.stderr.contains("m.yaml:2:"), "{}", out.stderr);
            assert_clean(&format!("{name} at {level}"), &out.stdout);
            assert_clean(&format!("{name} at {level}"), &out.stderr);
        }
    }
}

/// An auth file that is not valid JSON is reported by name and position,
/// never with its content.
#[tokio::test]
async fn malformed_auth_files_are_reported_without_their_content() {
    let work = Workdir::new();
    let digest = format!("sha256:{}", "a".repeat(64));
    work.write(
        "m.yaml",
        format!(
            "registries:\n- name: 127.0.0.1:5000/stage\n  src: true\n- name: 127.0.0.1:5001/prod\n\
             images:\n- name: app\n  dmap:\n    \"{digest}\": [\"1.0\"]\n"
        ),
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for (name, text) in [
        (
            "cut.json",
            format!(r#"{{"auths": {{"h": {{"auth": "{b64}""#),
        ),
        (
            "bare.json",
            format!(r#"{{"auths": {{"h": {{"password": {PASSWORD}}}}}}}"#),
        ),
        (
            "types.json",
            format!(r#"{{"auths": {{"h": {{"identitytoken": ["{IDENTITY_TOKEN}"]}}}}}}"#),
        ),
    ] {
        work.write(name, &text);
        for level in LEVELS {
            let out = work
                .run_async(&[
                    "run",
                    "--manifest",
                    "m.yaml",
                    "--auth-file",
                    name,
                    "--log-level",
                    level,
                ])
                .await;
            assert_eq!(out.code, 1, "{name}: {}", out.stderr);
            assert!(out.stderr.contains(name), "{}", out.stderr);
            assert_clean(&format!("{name} at {level}"), &out.stdout);
            assert_clean(&format!("{name} at {level}"), &out.stderr);
        }
    }
}

/// The same mistake on the command line is refused too, but the error
/// quotes the whole argument, password included, into the CI log.
#[tokio::test]
async fn credentials_in_a_registry_argument_are_not_echoed() {
    let work = Workdir::new();
    work.write("m.yaml", "registries: []\nimages: []\n");
    let with_credentials = format!("https://{USER}:{PASSWORD}@127.0.0.1:5000/stage");
    let bare = format!("{USER}:{PASSWORD}@127.0.0.1:5000/stage");
    for args in [
        vec!["run", "--snapshot", with_credentials.as_str()],
        vec!["run", "--snapshot", bare.as_str()],
        vec!["diff", bare.as_str(), "oci:nowhere"],
        vec![
            "run",
            "--manifest",
            "m.yaml",
            "--manifest-based-snapshot-of",
            bare.as_str(),
        ],
    ] {
        let out = work.run_async(&args).await;
        assert_ne!(out.code, 0, "{args:?}");
        assert_clean(&format!("{args:?}"), &out.stdout);
        assert_clean(&format!("{args:?}"), &out.stderr);
    }
}
