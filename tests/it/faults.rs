//! Injected registry faults (issue 7 §1), through the real binary with
//! `--confirm`, with the recording proxy in front of the source and the
//! destination registries (real CNCF Distribution instances).
//!
//! Every scenario proves the same three things:
//! 1. the promotion either completes (exit 0, thanks to retries) or reports
//!    the failed edges, only those of the image that met the fault, and
//!    exits 4;
//! 2. whatever happened, no destination tag points at missing or wrong
//!    content (`support::verify`: skopeo, manifest GETs, blob HEADs);
//! 3. a re-run without faults exits 0 and leaves exactly the wanted tags,
//!    and the run after that has nothing left to do.
//!
//! Retry deadlines are cut to 5 s (`--registry-config`) to keep this fast.

use std::time::Duration;

use promoter::registry::remote::CredentialStore;
use promoter::registry::Registry;
use serde_json::Value;

use crate::support::cli::Out;
use crate::support::images::At;
use crate::support::images::{blob_path, cosign_tag, tag_ref, TestBlob, TestImage};
use crate::support::proxy::{Action, Rule, Target};
use crate::support::registry::{Auth, Config, TokenIssuer};
use crate::support::verify::{self, Skopeo, Tags};
use crate::support::world::{images_yaml, World, WorldBuilder};

/// The images every scenario promotes, with the tags they get.
struct Images {
    /// Two layers of its own on a base it shares with `tools`; signed.
    app: TestImage,
    signature: TestImage,
    tools: TestImage,
    /// Multi-arch OCI index.
    hello: TestImage,
    /// Multi-arch Docker manifest list.
    lib: TestImage,
    /// Promoted by digest only.
    tagless: TestImage,
}

impl Images {
    fn new() -> Images {
        let base = TestBlob::layer(700, 96 * 1024);
        let app = TestImage::layered(701, 2, 96 * 1024, Some(&base));
        let signature = TestImage::cosign_signature(702, app.digest());
        Images {
            tools: TestImage::layered(703, 1, 64 * 1024, Some(&base)),
            hello: TestImage::oci_index(704, 64 * 1024),
            lib: TestImage::docker_list(705, 48 * 1024),
            tagless: TestImage::single_layer(706, 40 * 1024),
            app,
            signature,
        }
    }

    /// Every tag the destination must end with (relative to `prod`).
    fn expected(&self) -> Tags {
        let mut tags = Tags::new();
        let mut add = |tag: String, image: &TestImage| {
            tags.insert(tag, image.digest().clone());
        };
        add("app:1.0".into(), &self.app);
        add("app:latest".into(), &self.app);
        add(
            format!("app:{}", cosign_tag(self.app.digest(), "sig")),
            &self.signature,
        );
        add("tools/app:2.0".into(), &self.tools);
        add("hello:1.0".into(), &self.hello);
        add("lib:3.0".into(), &self.lib);
        tags
    }
}

/// A [`World`] (a source and a destination registry, each behind a fault
/// proxy) with the source loaded, and a manifest `m.yaml` promoting
/// everything from `stage` to `prod`.
type Fixture = World<Images>;

impl Fixture {
    async fn start() -> Option<Fixture> {
        Fixture::with(World::builder()).await
    }

    async fn with(world: WorldBuilder) -> Option<Fixture> {
        let w = world.start().await?;
        let i = Images::new();
        let sig_tag = cosign_tag(i.app.digest(), "sig");
        w.push("stage/app", &i.app, &["1.0"]).await;
        w.push("stage/app", &i.signature, &[&sig_tag]).await;
        w.push("stage/app", &i.tagless, &[]).await;
        w.push("stage/tools/app", &i.tools, &["2.0"]).await;
        w.push("stage/hello", &i.hello, &["1.0"]).await;
        w.push("stage/lib", &i.lib, &["3.0"]).await;
        let yaml = images_yaml(&[
            ("app", i.app.digest(), &["1.0", "latest"]),
            ("app", i.tagless.digest(), &[]),
            ("tools/app", i.tools.digest(), &["2.0"]),
            ("hello", i.hello.digest(), &["1.0"]),
            ("lib", i.lib.digest(), &["3.0"]),
        ]);
        w.manifest("m.yaml", &yaml);
        Some(w.holding(i))
    }

    async fn promote(&self) -> (Out, Value) {
        let out = self
            .run_async(&[
                "run",
                "--manifest",
                "m.yaml",
                "--confirm",
                "--output",
                "json",
                "--registry-config",
                "options.json",
                "--log-level",
                "debug",
            ])
            .await;
        let report: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "exit {}: not a JSON report ({e}):\n{}\n{}",
                out.code, out.stdout, out.stderr
            )
        });
        (out, report)
    }

    /// Walk the destination (directly, not through the armed proxy).
    async fn check(&self, context: &str) -> Tags {
        let found = verify::assert_registry(&self.dst.host(), "prod", Skopeo::Yes, context).await;
        verify::assert_no_wrong_tags(&found, &self.images.expected(), context);
        found
    }
}

/// What a scenario's faulty run must end in.
enum Expect {
    /// Exit 0: retries absorbed every fault.
    Completes,
    /// Exit 4, with failed edges only for these images (and at least one).
    FailsOnly(&'static [&'static str]),
}

fn results(report: &Value) -> Vec<Value> {
    report["execution"]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn failed(report: &Value) -> Vec<Value> {
    results(report)
        .into_iter()
        .filter(|r| r["outcome"]["status"] != "done")
        .collect()
}

/// Run with the faults armed, check, disarm, re-run, check again. Answers
/// the first run's output and report.
async fn scenario(f: &Fixture, expect: Expect) -> (Out, Value) {
    let (out, report) = f.promote().await;
    let context = format!("exit {}\n{}\n{}", out.code, out.stderr, f.dumps());
    let fired = f
        .src_proxy
        .log()
        .iter()
        .chain(f.dst_proxy.log().iter())
        .any(|r| r.fault.is_some())
        // A request the client gave up on (a timeout) leaves no record in
        // the proxy, only a retry on our side.
        || out.stderr.contains("retrying");
    assert!(fired, "the fault never fired: {context}");
    let found = f.check(&format!("after the faulty run; {context}")).await;
    match expect {
        Expect::Completes => {
            assert_eq!(out.code, 0, "{context}");
            assert!(failed(&report).is_empty(), "{report:#}");
            assert_eq!(found, f.images.expected(), "{context}");
        }
        Expect::FailsOnly(images) => {
            assert_eq!(out.code, 4, "{context}");
            let failed = failed(&report);
            assert!(
                !failed.is_empty(),
                "exit 4 without failed edges: {report:#}"
            );
            for edge in &failed {
                let image = edge["image"].as_str().unwrap();
                assert!(
                    images.contains(&image),
                    "{image} failed, only {images:?} should: {edge:#}\n{context}"
                );
                let error = edge["outcome"]["error"].as_str().unwrap_or_default();
                assert!(!error.is_empty(), "a failed edge says why: {edge:#}");
                // A failed edge's tag was not written.
                if let Some(tag) = edge["tag"].as_str() {
                    let at = format!("{image}:{tag}");
                    assert!(
                        !found.contains_key(&at),
                        "{at} was written although its edge failed"
                    );
                }
            }
            // Everything else went ahead.
            for result in results(&report) {
                let image = result["image"].as_str().unwrap();
                if !images.contains(&image) {
                    assert_eq!(result["outcome"]["status"], "done", "{result:#}");
                }
            }
            assert!(out.stdout.contains("failed"), "{}", out.stdout);
        }
    }

    f.src_proxy.clear_rules();
    f.dst_proxy.clear_rules();
    let (again, again_report) = f.promote().await;
    assert_eq!(
        again.code, 0,
        "the re-run without faults: {}\n{again_report:#}",
        again.stderr
    );
    let found = f.check("after the re-run").await;
    assert_eq!(found, f.images.expected(), "after the re-run");
    let (idle, idle_report) = f.promote().await;
    assert_eq!(idle.code, 0, "{}", idle.stderr);
    assert_eq!(
        idle_report["counts"]["copy"], 0,
        "nothing left to copy: {idle_report:#}"
    );
    assert_eq!(idle_report["counts"]["tag"], 0, "{idle_report:#}");
    // Whatever happened, nothing was ever deleted.
    assert!(
        !f.dst_proxy.log().iter().any(|r| r.method == "DELETE"),
        "{}",
        f.dumps()
    );
    (out, report)
}

fn status(code: u16) -> Action {
    Action::status(code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_with_retry_after_are_waited_out() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let limited = || status(429).header("Retry-After", "1");
    f.dst_proxy
        .add(Rule::new("PUT", "/prod/app/manifests/").action(limited()));
    f.dst_proxy.add(
        Rule::new("POST", "/blobs/uploads/")
            .times(2)
            .action(limited()),
    );
    f.src_proxy
        .add(Rule::new("GET", "/blobs/").times(2).action(limited()));
    f.dst_proxy
        .add(Rule::new("HEAD", "/manifests/").action(limited()));
    scenario(&f, Expect::Completes).await;

    // Retry-After was obeyed: the manifest PUT came back no sooner than 1 s
    // after its 429 (a lower bound only; a loaded machine may be slower).
    let log = f.dst_proxy.log();
    let limited_at = log
        .iter()
        .find(|r| r.is("PUT", "/prod/app/manifests/") && r.target == Target::Injected)
        .expect("the 429")
        .at;
    let retried_at = log
        .iter()
        .filter(|r| r.is("PUT", "/prod/app/manifests/") && r.target == Target::Upstream)
        .map(|r| r.at)
        .min()
        .expect("the retried PUT");
    assert!(
        retried_at.duration_since(limited_at) >= Duration::from_millis(950),
        "retried after {:?}",
        retried_at.duration_since(limited_at)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_503_are_retried() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    for (method, path) in [
        ("PUT", "/manifests/"),
        ("POST", "/blobs/uploads/"),
        ("HEAD", "/manifests/"),
    ] {
        f.dst_proxy
            .add(Rule::new(method, path).times(3).action(status(503)));
    }
    f.src_proxy
        .add(Rule::new("GET", "/blobs/").times(3).action(status(503)));
    f.src_proxy
        .add(Rule::new("GET", "/manifests/").times(3).action(status(503)));
    scenario(&f, Expect::Completes).await;
}

/// A registry (or the proxy in front of it) that fails every monolithic
/// blob PUT with a 5xx but takes the same bytes in chunks: the first failure
/// switches the registry to chunked uploads for the rest of the run, said
/// once in the log, and no blob whose upload starts after the switch tries
/// a monolithic PUT again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monolithic_uploads_failing_with_5xx_fall_back_to_chunks_once_for_the_run() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    f.dst_proxy.add(
        Rule::new("PUT", "/blobs/uploads/")
            .carrying_a_body()
            .always()
            .action(status(500)),
    );
    let (out, _) = scenario(&f, Expect::Completes).await;
    let switched = out
        .stderr
        .lines()
        .filter(|l| l.contains("this registry is now uploaded to in chunks"))
        .count();
    assert_eq!(switched, 1, "said once: {}", out.stderr);

    // The re-runs after it found everything there and uploaded nothing:
    // every upload in the log is the faulty run's.
    let log = f.dst_proxy.log();
    let monolithic: Vec<_> = log
        .iter()
        .filter(|r| r.is("PUT", "/blobs/uploads/") && r.request_bytes > 0)
        .collect();
    assert!(
        monolithic.iter().all(|r| r.status == 500),
        "a monolithic PUT got through: {}",
        f.dumps()
    );
    let chunked_puts = log
        .iter()
        .filter(|r| r.is("PUT", "/blobs/uploads/") && r.request_bytes == 0 && r.status == 201)
        .count();
    let first_patch = log
        .iter()
        .filter(|r| r.is("PATCH", "/blobs/uploads/"))
        .map(|r| r.at)
        .min()
        .expect("chunks were sent");
    // A session opened once the first chunk was on its way was opened after
    // the switch: it must have gone to chunks directly.
    let sessions_before_switch = log
        .iter()
        .filter(|r| r.is("POST", "/blobs/uploads/") && r.at < first_patch)
        .count();
    let sessions_after_switch = log
        .iter()
        .filter(|r| r.is("POST", "/blobs/uploads/") && r.at > first_patch)
        .count();
    assert!(
        !monolithic.is_empty() && monolithic.len() <= sessions_before_switch,
        "{} monolithic PUTs, {sessions_before_switch} sessions opened before the switch: {}",
        monolithic.len(),
        f.dumps()
    );
    assert!(
        sessions_after_switch > 0 && chunked_puts > monolithic.len(),
        "later blobs went chunked: {chunked_puts} chunked uploads, {} monolithic tries: {}",
        monolithic.len(),
        f.dumps()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_503_fails_only_that_image_and_exits_4() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    f.dst_proxy.add(
        Rule::new("PUT", "/prod/lib/manifests/")
            .always()
            .action(status(503)),
    );
    scenario(&f, Expect::FailsOnly(&["lib"])).await;
}

/// A signature travels with its image: when it cannot be written, the
/// image's copy fails (and so its tags), so that the re-run, which only
/// looks at what the manifests name, tries again and brings both. Were the
/// image written anyway, the re-run would find it promoted and never copy
/// the signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_that_cannot_be_written_fails_its_image_and_the_rerun_brings_both() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let sig_tag = cosign_tag(f.images.app.digest(), "sig");
    f.dst_proxy.add(
        Rule::new("PUT", &format!("/prod/app/manifests/{sig_tag}"))
            .always()
            .action(status(503)),
    );
    scenario(&f, Expect::FailsOnly(&["app"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_in_the_middle_of_a_blob_is_retried() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    f.src_proxy.add(
        Rule::new("GET", "/blobs/")
            .times(3)
            .action(Action::ResetMidBody),
    );
    scenario(&f, Expect::Completes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_on_every_read_of_one_blob_fail_only_its_image() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let own_layer = f.images.app.layers.last().unwrap().digest.clone();
    f.src_proxy.add(
        Rule::new("GET", &format!("/blobs/{own_layer}"))
            .always()
            .action(Action::ResetMidBody),
    );
    scenario(&f, Expect::FailsOnly(&["app"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_bodies_are_detected_and_retried() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    f.src_proxy.add(
        Rule::new("GET", "/blobs/")
            .times(3)
            .action(Action::Truncate),
    );
    scenario(&f, Expect::Completes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_always_arrives_truncated_fails_only_its_image() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    f.src_proxy.add(
        Rule::new("GET", &format!("/manifests/{}", f.images.hello.digest()))
            .always()
            .action(Action::Truncate),
    );
    scenario(&f, Expect::FailsOnly(&["hello"])).await;
}

/// Manifest bodies that break off or arrive short are read again, like blobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_body_truncated_or_reset_once_is_retried() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    f.src_proxy.add(
        Rule::new("GET", &format!("/manifests/{}", f.images.hello.digest()))
            .action(Action::Truncate),
    );
    f.src_proxy.add(
        Rule::new("GET", &format!("/manifests/{}", f.images.app.digest()))
            .action(Action::ResetMidBody),
    );
    scenario(&f, Expect::Completes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_for_a_digest_are_never_written_and_fail_only_that_image() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let own_layer = f.images.app.layers.last().unwrap().digest.clone();
    f.src_proxy.add(
        Rule::new("GET", &format!("/blobs/{own_layer}"))
            .always()
            .action(Action::WrongBytes),
    );
    // Also a manifest: its bytes are checked against the digest asked for.
    f.src_proxy.add(
        Rule::new("GET", &format!("/manifests/{}", f.images.lib.digest()))
            .always()
            .action(Action::WrongBytes),
    );
    let (out, _) = f.promote().await;
    assert_eq!(out.code, 4, "{}\n{}", out.stderr, f.dumps());
    // Neither the corrupt blob nor a manifest or tag over it was stored.
    let targets = [
        "/prod/app/manifests/1.0".to_string(),
        "/prod/app/manifests/latest".to_string(),
        format!("/prod/app/manifests/{}", f.images.app.digest()),
        "/prod/lib/manifests/3.0".to_string(),
        format!("/prod/lib/manifests/{}", f.images.lib.digest()),
    ];
    let written: Vec<_> = f
        .dst_proxy
        .log()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.status < 300)
        .filter(|r| targets.iter().any(|t| r.path.ends_with(t.as_str())))
        .collect();
    assert!(
        written.is_empty(),
        "written over corrupt content: {written:?}"
    );
    let head = reqwest::Client::new()
        .head(format!(
            "http://{}/v2/prod/app/blobs/{own_layer}",
            f.dst.host()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.status(),
        404,
        "the corrupt blob is not in the destination"
    );
    f.check("after the corrupt reads").await;

    // The whole scenario from this state: the faulty run again, then clean.
    let (_, report) = scenario(&f, Expect::FailsOnly(&["app", "lib"])).await;
    let errors: Vec<String> = failed(&report)
        .iter()
        .filter_map(|r| r["outcome"]["error"].as_str().map(str::to_string))
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("digest")),
        "the report says a digest did not match: {errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_once_are_retried() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    f.src_proxy.add(
        Rule::new("GET", "/blobs/")
            .times(2)
            .action(Action::WrongBytes),
    );
    scenario(&f, Expect::Completes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_within_the_timeouts_just_take_longer() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let slow = Action::Delay(Duration::from_secs(2));
    f.dst_proxy.add(
        Rule::new("PUT", "/manifests/")
            .times(2)
            .action(slow.clone()),
    );
    f.src_proxy
        .add(Rule::new("GET", "/blobs/").times(2).action(slow.clone()));
    f.dst_proxy
        .add(Rule::new("HEAD", "/manifests/").action(slow));
    scenario(&f, Expect::Completes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_slower_than_the_read_timeout_are_retried() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    f.set_options(r#"{"read_timeout_secs": 1}"#);
    let slow = Action::Delay(Duration::from_secs(2));
    f.src_proxy
        .add(Rule::new("GET", "/blobs/").times(2).action(slow.clone()));
    f.src_proxy
        .add(Rule::new("GET", "/manifests/").action(slow.clone()));
    f.dst_proxy.add(
        Rule::new("HEAD", "/manifests/")
            .times(2)
            .action(slow.clone()),
    );
    f.dst_proxy
        .add(Rule::new("PUT", "/manifests/").action(slow));
    let (out, _) = scenario(&f, Expect::Completes).await;
    let timeouts = out
        .stderr
        .lines()
        .filter(|l| l.contains("retrying") && l.contains("timed out"))
        .count();
    assert!(timeouts > 0, "no request timed out: {}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_on_a_mount_falls_back_to_an_upload() {
    let Some(f) = Fixture::with(World::builder().same_registry()).await else {
        return;
    };
    f.dst_proxy.add(
        Rule::new("POST", "/blobs/uploads/")
            .query("mount=")
            .always()
            .action(status(401).header("WWW-Authenticate", r#"Basic realm="mounts""#)),
    );
    let (_, report) = scenario(&f, Expect::Completes).await;
    let stats = &report["execution"]["stats"];
    assert_eq!(stats["blobs_mounted"], 0, "{stats}");
    assert!(
        stats["blobs_uploaded"].as_u64().unwrap() > 0,
        "the blobs were uploaded instead: {stats}"
    );
    // On the wire: every refused mount was followed by a real upload.
    let log = f.dst_proxy.log();
    let refused = log
        .iter()
        .filter(|r| r.path.contains("mount=") && r.status == 401)
        .count();
    let uploads = log
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/blobs/uploads/") && r.request_bytes > 0)
        .count();
    assert!(refused > 0, "{}", f.dumps());
    assert!(uploads > 0, "{}", f.dumps());
}

/// The realistic 401 on a mount: a token registry whose token for the
/// mount does not cover the source repository. The promoter re-authenticates
/// once, then uploads; with credentials, through the real token flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_on_a_mount_with_token_auth_falls_back_to_an_upload() {
    let Some(w) = World::builder()
        .same_registry()
        .destination(Config::with_auth(Auth::Token))
        .start()
        .await
    else {
        return;
    };
    let (registry, proxy) = (&w.dst, &w.dst_proxy);
    let images = Images::new();
    w.push("stage/app", &images.tools, &["2.0"]).await;
    let auth = registry.write_docker_config(Some(&proxy.host()));
    let client = registry.remote_via(&proxy.host(), CredentialStore::from_files([&auth]).unwrap());
    let realm = registry.token_issuer.as_ref().unwrap().realm();
    let challenge = format!(
        r#"Bearer realm="{realm}",service="{}",scope="repository:prod/app:pull,push""#,
        TokenIssuer::SERVICE
    );
    proxy.add(
        Rule::new("POST", "/blobs/uploads/")
            .query("mount=")
            .always()
            .action(status(401).header("WWW-Authenticate", &challenge)),
    );
    proxy.clear_log();
    w.manifest(
        "m.yaml",
        &images_yaml(&[("app", images.tools.digest(), &["2.0"])]),
    );
    let auth = auth.display().to_string();
    let args = [
        "run",
        "--manifest",
        "m.yaml",
        "--confirm",
        "--output",
        "json",
        "--auth-file",
        &auth,
        "--registry-config",
        "options.json",
    ];
    let out = w.run_async(&args).await;
    assert_eq!(
        out.code,
        0,
        "{}{}\n{}",
        out.stdout,
        out.stderr,
        proxy.dump()
    );
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let stats = &report["execution"]["stats"];
    assert_eq!(stats["blobs_mounted"], 0, "{stats}");
    assert_eq!(
        stats["blobs_uploaded"].as_u64().unwrap(),
        images.tools.all_blobs().len() as u64,
        "{stats}"
    );
    assert!(
        proxy
            .log()
            .iter()
            .any(|r| r.path.contains("mount=") && r.status == 401),
        "{}",
        proxy.dump()
    );
    // The walk needs no credentials for plain registries only; here our
    // own client (with them) reads the tag back, by digest-verified GET.
    let promoted = client
        .get_manifest(&client.at("prod/app"), &tag_ref("2.0"))
        .await
        .unwrap()
        .expect("prod/app:2.0");
    assert_eq!(&promoted.digest, images.tools.digest());
    for blob in images.tools.all_blobs() {
        assert!(
            client
                .blob_exists(&client.at("prod/app"), &blob.digest)
                .await
                .unwrap()
                .is_some(),
            "{} is missing",
            blob.digest
        );
    }
}

/// An `oci:` destination fed corrupt bytes: the blob is verified before it
/// is renamed into place, so no blob path ever holds wrong content, and
/// index.json never names the image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oci_destination_never_stores_corrupt_bytes() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let own_layer = f.images.app.layers.last().unwrap().digest.clone();
    f.src_proxy.add(
        Rule::new("GET", &format!("/blobs/{own_layer}"))
            .always()
            .action(Action::WrongBytes),
    );
    let root = f.path().join("layouts");
    let yaml = f.read("m.yaml").replace(
        &format!("{}/prod", f.dst_proxy.host()),
        &format!("oci:{}", root.display()),
    );
    f.write("m.yaml", yaml);

    let (out, report) = f.promote().await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    for edge in failed(&report) {
        assert_eq!(edge["image"], "app", "{edge:#}");
    }
    let found = verify::assert_layout(&root, "after the corrupt reads");
    verify::assert_no_wrong_tags(&found, &f.images.expected(), "after the corrupt reads");
    assert!(!found.contains_key("app:1.0"), "{found:?}");
    assert!(
        !blob_path(&root, "app", &own_layer).exists(),
        "the corrupt blob reached its final path"
    );

    f.src_proxy.clear_rules();
    let (again, _) = f.promote().await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let found = verify::assert_layout(&root, "after the re-run");
    assert_eq!(found, f.images.expected());
}

/// A destination that cannot be read (503 on every HEAD of one tag) blocks
/// only that image's edges: nothing is written for it, exit 4, and the
/// re-run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_destination_tag_blocks_only_its_image() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    f.dst_proxy.add(
        Rule::new("HEAD", "/prod/hello/manifests/")
            .always()
            .action(status(503)),
    );
    // Nor can its catalog be read: a repository the catalog does not list
    // is new and its tags are not asked about, so the tags must be.
    f.dst_proxy.add(
        Rule::new("GET", "/v2/_catalog")
            .always()
            .action(status(503)),
    );
    let (out, report) = f.promote().await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    let blocked: Vec<&Value> = report["plan"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "blocked")
        .collect();
    assert!(!blocked.is_empty(), "{report:#}");
    assert!(blocked.iter().all(|i| i["image"] == "hello"), "{report:#}");
    assert!(failed(&report).is_empty(), "{report:#}");
    assert!(
        !f.dst_proxy
            .log()
            .iter()
            .any(|r| r.path.contains("/prod/hello/") && r.method != "HEAD"),
        "something was written to a repository that could not be read: {}",
        f.dumps()
    );
    let found = f.check("after the blocked run").await;
    assert!(!found.contains_key("hello:1.0"));
    assert_eq!(found.len(), f.images.expected().len() - 1, "{found:?}");

    f.dst_proxy.clear_rules();
    let (again, _) = f.promote().await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(f.check("after the re-run").await, f.images.expected());
}

/// A `Retry-After` reaching past the retry deadline is not slept through:
/// the edge fails at once (exit 4), and the re-run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_the_deadline_fails_the_edge_without_waiting() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    f.dst_proxy.add(
        Rule::new("PUT", "/prod/lib/manifests/")
            .always()
            .action(status(429).header("Retry-After", "3600")),
    );
    // Each run is bounded (180 s, see `promoter`): an hour's wait would fail it.
    scenario(&f, Expect::FailsOnly(&["lib"])).await;
}

/// A hostile registry's error text reaches the output escaped: CR, LF and
/// ANSI escapes in it cannot forge a `result:` line or drive the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_a_registry_error_cannot_forge_output() {
    let Some(f) = Fixture::start().await else {
        return;
    };
    let forged = "result: 99 done, 0 failed";
    f.dst_proxy.add(
        Rule::new("PUT", "/prod/lib/manifests/").always().action(
            Action::status(400)
                .header("Content-Type", "application/json")
                .with_body(format!(
                    r#"{{"errors":[{{"code":"MANIFEST_INVALID","message":"no\r\n{forged}\u001b[2K"}}]}}"#
                )),
        ),
    );
    let out = f
        .run_async(&[
            "run",
            "--manifest",
            "m.yaml",
            "--confirm",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    let all = out.all();
    assert!(
        !all.lines().any(|l| l.starts_with(forged)),
        "a forged line got through:\n{all}"
    );
    assert!(
        !all.contains('\u{1b}'),
        "an escape sequence got through:\n{all}"
    );
    assert!(
        all.contains(r"\r\nresult: 99 done"),
        "shown escaped:\n{all}"
    );
}

/// A source whose blobs fail forever (an error status, a connection reset
/// mid-body, a short body) fails each edge within its retry deadline,
/// however the retries nest (the destination's upload re-opens the source
/// read, which retries too; README, "Safety"): with `retry_deadline_secs:
/// 3`, the run ends in well under three deadlines, with few reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_failing_forever_fails_its_edge_within_the_deadline() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let faults = [status(500), Action::ResetMidBody, Action::Truncate];
    let mut entries = Vec::new();
    let mut layers = Vec::new();
    let images: Vec<TestImage> = (0..faults.len())
        .map(|i| TestImage::single_layer(1901 + i as u64, 1 << 20))
        .collect();
    let names = ["a", "b", "c"];
    for ((image, name), fault) in images.iter().zip(names).zip(faults) {
        w.push(&format!("stage/{name}"), image, &["1.0"]).await;
        let layer = image.layers[0].digest.clone();
        w.src_proxy.add(
            Rule::new("GET", &format!("/blobs/{layer}"))
                .always()
                .action(fault),
        );
        layers.push(layer);
        entries.push((name, image.digest(), &["1.0"][..]));
    }
    w.manifest("m.yaml", &images_yaml(&entries));
    w.write(
        "options.json",
        r#"{"defaults": {"retry_deadline_secs": 3}}"#,
    );
    let started = std::time::Instant::now();
    let out = w
        .run_async(&[
            "run",
            "--manifest",
            "m.yaml",
            "--registry-config",
            "options.json",
            "--confirm",
            "--output",
            "json",
        ])
        .await;
    let took = started.elapsed();
    assert_eq!(out.code, 4, "{}", out.all());
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        failed(&report).len(),
        3 * 2,
        "a copy and a tag each: {report:#}"
    );
    let reads: Vec<usize> = layers
        .iter()
        .map(|l| w.src_proxy.count("GET", &format!("/blobs/{l}")))
        .collect();
    assert!(
        took < Duration::from_secs(9),
        "the run took {took:?} with a 3 s deadline; reads per blob {reads:?}"
    );
    assert!(reads.iter().all(|&n| n <= 12), "reads per blob {reads:?}");
}
