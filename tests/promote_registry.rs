//! End to end through the binary against real CNCF Distribution registries,
//! each behind a recording proxy so that request economy is asserted at the
//! wire level. End states are read back with skopeo, an independent client.

mod support;

use promoter::reference::Digest;
use promoter::registry::remote::CredentialStore;
use support::cli::{promoter_async as promoter, Out};
use support::images::{push, Flavor, Platform, TestImage};
use support::proxy::Proxy;
use support::registry::{skopeo_inspect_raw, TestRegistry};

fn is_write(method: &str) -> bool {
    matches!(method, "PUT" | "POST" | "PATCH" | "DELETE")
}

/// Two registries behind proxies, and the images of the standard scenario.
struct Two {
    _src: TestRegistry,
    _dst: TestRegistry,
    src_proxy: Proxy,
    dst_proxy: Proxy,
    dir: tempfile::TempDir,
    index: TestImage,
    image: TestImage,
    tagless: TestImage,
    other: TestImage,
}

impl Two {
    async fn start() -> Option<Two> {
        let src = TestRegistry::plain().await?;
        let dst = TestRegistry::plain().await?;
        let src_proxy = Proxy::start(&src.host()).await;
        let dst_proxy = Proxy::start(&dst.host()).await;
        let index = TestImage::multi_arch(
            11,
            Flavor::Docker,
            &[Platform::linux("amd64"), Platform::linux("arm64")],
            2048,
        );
        let image = TestImage::single_layer(12, 4096);
        let tagless = TestImage::single_layer(13, 1000);
        let other = TestImage::single_layer(14, 1000);
        let client = src.remote(CredentialStore::anonymous());
        push(&client, "stage/hello", &index, Some("1.0"))
            .await
            .unwrap();
        push(&client, "stage/tools/echo", &image, Some("v1"))
            .await
            .unwrap();
        push(&client, "stage/tools/echo", &tagless, None)
            .await
            .unwrap();
        push(&client, "stage/tools/echo", &other, Some("other"))
            .await
            .unwrap();
        Some(Two {
            _src: src,
            _dst: dst,
            src_proxy,
            dst_proxy,
            dir: tempfile::tempdir().unwrap(),
            index,
            image,
            tagless,
            other,
        })
    }

    fn manifest(&self, name: &str, images: &str) -> String {
        let text = format!(
            "registries:\n- name: {}/stage\n  src: true\n- name: {}/prod\nimages:\n{images}",
            self.src_proxy.host(),
            self.dst_proxy.host()
        );
        std::fs::write(self.dir.path().join(name), text).unwrap();
        name.to_string()
    }

    fn standard(&self) -> String {
        let images = support::images::scenario_images_yaml(
            self.index.digest(),
            self.image.digest(),
            self.tagless.digest(),
        );
        self.manifest("promote.yaml", &images)
    }

    async fn run(&self, args: &[&str]) -> Out {
        promoter(self.dir.path(), args).await
    }

    async fn skopeo_digest(&self, reference: &str) -> Option<Digest> {
        let raw =
            skopeo_inspect_raw(&format!("{}/prod/{reference}", self.dst_proxy.host())).await?;
        Some(Digest::sha256_of(&raw))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotes_between_two_registries_and_a_rerun_costs_one_head_per_tag() {
    let Some(t) = Two::start().await else { return };
    let m = t.standard();

    // Dry run: a plan, and not a single write anywhere.
    let dry = t.run(&["run", "--manifest", &m]).await;
    assert_eq!(dry.code, 0, "{}{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout
            .contains("plan: 3 copy, 3 tag, 1 lost, 0 refused"),
        "{}",
        dry.stdout
    );
    assert!(
        t.dst_proxy.log().iter().all(|r| !is_write(&r.method)),
        "{}",
        t.dst_proxy.dump()
    );

    let out = t.run(&["run", "--manifest", &m, "--confirm"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("0 failed"), "{}", out.stdout);

    // skopeo reads exactly the digests the manifest names; the index came with its children.
    if let Some(d) = t.skopeo_digest("hello:1.0").await {
        assert_eq!(&d, t.index.digest());
        assert_eq!(
            &t.skopeo_digest("tools/echo:v1").await.unwrap(),
            t.image.digest()
        );
        assert_eq!(
            &t.skopeo_digest("tools/echo:latest").await.unwrap(),
            t.image.digest()
        );
        for child in &t.index.children {
            let raw = skopeo_inspect_raw(&format!(
                "{}/prod/hello@{}",
                t.dst_proxy.host(),
                child.digest()
            ))
            .await
            .unwrap();
            assert_eq!(raw, child.manifest.bytes.to_vec());
        }
        let raw = skopeo_inspect_raw(&format!(
            "{}/prod/tools/echo@{}",
            t.dst_proxy.host(),
            t.tagless.digest()
        ))
        .await
        .unwrap();
        assert_eq!(raw, t.tagless.manifest.bytes.to_vec());
    }
    let other = format!("/v2/prod/tools/echo/manifests/{}", t.other.digest());
    assert_eq!(
        t.dst_proxy.count("PUT", &other),
        0,
        "an unwanted image was copied"
    );

    // No-op re-run: one HEAD per wanted tag (and per untagged digest), nothing from the source.
    t.src_proxy.clear_log();
    t.dst_proxy.clear_log();
    let again = t.run(&["run", "--manifest", &m]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("plan: 0 copy, 0 tag, 1 lost"),
        "{}",
        again.stdout
    );
    let wanted_tags = 4; // hello:1.0, echo:v1, echo:latest, gone:1.0
    let untagged = 1;
    let heads = t
        .dst_proxy
        .log()
        .iter()
        .filter(|r| r.method == "HEAD")
        .count();
    assert_eq!(heads, wanted_tags + untagged, "{}", t.dst_proxy.dump());
    // `gone` has no tag at all, so the repository list is read once to learn
    // that it does not exist (instead of a HEAD per digest).
    let others: Vec<_> = t
        .dst_proxy
        .log()
        .into_iter()
        .filter(|r| r.method != "HEAD" && r.path != "/v2/")
        .collect();
    assert!(
        others.len() <= 1 && others.iter().all(|r| r.path.starts_with("/v2/_catalog")),
        "{others:?}"
    );
    // The source is read only for the lost digest (to tell lost from copy).
    let src_reads: Vec<_> = t
        .src_proxy
        .log()
        .into_iter()
        .filter(|r| r.path != "/v2/")
        .collect();
    assert!(
        src_reads.iter().all(|r| r.path.contains("/gone/")),
        "{}",
        t.src_proxy.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_tag_move_writes_nothing_and_exits_3() {
    let Some(t) = Two::start().await else { return };
    let m = t.standard();
    assert_eq!(t.run(&["run", "--manifest", &m, "--confirm"]).await.code, 0);
    t.dst_proxy.clear_log();
    let moved = t.manifest(
        "move.yaml",
        &format!(
            "- name: tools/echo\n  dmap:\n    \"{}\": [\"v1\"]\n",
            t.other.digest()
        ),
    );
    let out = t.run(&["run", "--manifest", &moved, "--confirm"]).await;
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("refused"), "{}", out.stdout);
    assert!(
        t.dst_proxy.log().iter().all(|r| !is_write(&r.method)),
        "{}",
        t.dst_proxy.dump()
    );
    if let Some(d) = t.skopeo_digest("tools/echo:v1").await {
        assert_eq!(&d, t.image.digest(), "the tag moved");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_one_registry_blobs_are_mounted_not_copied() {
    let Some(registry) = TestRegistry::plain().await else {
        return;
    };
    let proxy = Proxy::start(&registry.host()).await;
    let image = TestImage::layered(21, 3, 64 * 1024, None);
    let client = registry.remote(CredentialStore::anonymous());
    push(&client, "staging/app", &image, Some("1.0"))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.yaml"),
        format!(
            "registries:\n- name: {h}/staging\n  src: true\n- name: {h}/prod\nimages:\n- name: app\n  dmap:\n    \"{}\": [\"1.0\"]\n",
            image.digest(),
            h = proxy.host()
        ),
    )
    .unwrap();
    let out = promoter(
        dir.path(),
        &[
            "run",
            "--manifest",
            "m.yaml",
            "--confirm",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let blobs = image.all_blobs().len() as u64;
    assert_eq!(
        report["execution"]["stats"]["blobs_mounted"], blobs,
        "{}",
        out.stdout
    );
    assert_eq!(report["execution"]["stats"]["blobs_uploaded"], 0);

    let log = proxy.log();
    let mounts: Vec<_> = log
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("mount="))
        .collect();
    assert_eq!(mounts.len() as u64, blobs, "{}", proxy.dump());
    assert!(mounts.iter().all(|r| r.status == 201), "{}", proxy.dump());
    let uploaded: u64 = log
        .iter()
        .filter(|r| r.method == "PUT" || r.method == "PATCH")
        .filter(|r| r.path.contains("/blobs/"))
        .map(|r| r.request_bytes)
        .sum();
    assert_eq!(uploaded, 0, "blob bytes moved: {}", proxy.dump());
    let raw = skopeo_inspect_raw(&format!("{}/prod/app:1.0", proxy.host())).await;
    if let Some(raw) = raw {
        assert_eq!(raw, image.manifest.bytes.to_vec());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_come_along_unless_attachments_are_off() {
    let Some(src) = TestRegistry::plain().await else {
        return;
    };
    let Some(dst) = TestRegistry::plain().await else {
        return;
    };
    let client = src.remote(CredentialStore::anonymous());
    let signed = TestImage::single_layer(41, 100);
    let unsigned_run = TestImage::single_layer(42, 100);
    let signature = TestImage::cosign_signature(43, signed.digest());
    let sig_tag = support::images::cosign_tag(signed.digest(), "sig");
    push(&client, "stage/app", &signed, Some("1.0"))
        .await
        .unwrap();
    push(&client, "stage/app", &signature, Some(&sig_tag))
        .await
        .unwrap();
    let sig2 = TestImage::cosign_signature(44, unsigned_run.digest());
    let sig2_tag = support::images::cosign_tag(unsigned_run.digest(), "sig");
    push(&client, "stage/app", &unsigned_run, Some("2.0"))
        .await
        .unwrap();
    push(&client, "stage/app", &sig2, Some(&sig2_tag))
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let manifest = |digest: &Digest, tag: &str| {
        format!(
            "registries:\n- name: {}/stage\n  src: true\n- name: {}/prod\nimages:\n- name: app\n  dmap:\n    \"{digest}\": [\"{tag}\"]\n",
            src.host(),
            dst.host()
        )
    };
    std::fs::write(
        dir.path().join("with.yaml"),
        manifest(signed.digest(), "1.0"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("without.yaml"),
        manifest(unsigned_run.digest(), "2.0"),
    )
    .unwrap();

    let out = promoter(
        dir.path(),
        &[
            "run",
            "--manifest",
            "with.yaml",
            "--confirm",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["execution"]["stats"]["attachments_copied"], 1);
    if let Some(raw) = skopeo_inspect_raw(&format!("{}/prod/app:{sig_tag}", dst.host())).await {
        assert_eq!(raw, signature.manifest.bytes.to_vec());
    }

    let out = promoter(
        dir.path(),
        &[
            "run",
            "--manifest",
            "without.yaml",
            "--confirm",
            "--no-attachments",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let dst_client = dst.remote(CredentialStore::anonymous());
    let tags = promoter::registry::Registry::list_tags(&dst_client, "prod/app")
        .await
        .unwrap();
    assert!(tags.contains(&sig_tag), "{tags:?}");
    assert!(
        !tags.contains(&sig2_tag),
        "--no-attachments copied a signature: {tags:?}"
    );
}
