//! End to end through the binary against real CNCF Distribution registries,
//! each behind a recording proxy so that request economy is asserted at the
//! wire level. End states are read back with skopeo, an independent client.

use promoter::reference::Digest;
use promoter::registry::remote::CredentialStore;

use promoter::oci::media_type;

use crate::support::images::At;
use crate::support::images::{cosign_tag, referrers_tag, Flavor, TestImage};
use crate::support::proxy::{Action, Rule};
use crate::support::skopeo;
use crate::support::world::{images_yaml, manifest_yaml, Scenario, World};

fn is_write(method: &str) -> bool {
    matches!(method, "PUT" | "POST" | "PATCH" | "DELETE")
}

/// Two registries behind proxies, and the images of the standard scenario.
type Two = World<Scenario>;

impl Two {
    async fn start() -> Option<Two> {
        let w = World::builder().start().await?;
        let s = Scenario::new(11, Flavor::Docker, [2048, 4096, 1000, 1000]);
        w.push("stage/hello", &s.index, &["1.0"]).await;
        w.push("stage/tools/echo", &s.image, &["v1"]).await;
        w.push("stage/tools/echo", &s.tagless, &[]).await;
        w.push("stage/tools/echo", &s.other, &["other"]).await;
        Some(w.holding(s))
    }

    fn standard(&self) -> String {
        self.manifest("promote.yaml", &self.images.images_yaml())
    }

    async fn skopeo_digest(&self, reference: &str) -> Option<Digest> {
        let raw = prod_manifest(self, reference).await?;
        Some(Digest::sha256_of(&raw))
    }
}

/// `DESTINATION/prod/REFERENCE` (through its proxy), as skopeo reads it.
async fn prod_manifest<T>(w: &World<T>, reference: &str) -> Option<Vec<u8>> {
    skopeo::inspect_raw_async(&format!("docker://{}/prod/{reference}", w.dst_host())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotes_between_two_registries_and_a_rerun_costs_one_head_per_tag() {
    let Some(t) = Two::start().await else { return };
    let m = t.standard();

    // Dry run: a plan, and not a single write anywhere.
    let dry = t.run_async(&["run", "--manifest", &m]).await;
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

    let out = t.run_async(&["run", "--manifest", &m, "--confirm"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("0 failed"), "{}", out.stdout);

    // skopeo reads exactly the digests the manifest names; the index came with its children.
    if let Some(d) = t.skopeo_digest("hello:1.0").await {
        assert_eq!(&d, t.images.index.digest());
        assert_eq!(
            &t.skopeo_digest("tools/echo:v1").await.unwrap(),
            t.images.image.digest()
        );
        assert_eq!(
            &t.skopeo_digest("tools/echo:latest").await.unwrap(),
            t.images.image.digest()
        );
        for child in &t.images.index.children {
            let raw = prod_manifest(&t, &format!("hello@{}", child.digest()))
                .await
                .unwrap();
            assert_eq!(raw, child.manifest.bytes.to_vec());
        }
        let raw = prod_manifest(&t, &format!("tools/echo@{}", t.images.tagless.digest()))
            .await
            .unwrap();
        assert_eq!(raw, t.images.tagless.manifest.bytes.to_vec());
    }
    let other = format!("/v2/prod/tools/echo/manifests/{}", t.images.other.digest());
    assert_eq!(
        t.dst_proxy.count("PUT", &other),
        0,
        "an unwanted image was copied"
    );

    // No-op re-run: one HEAD per wanted tag (and per untagged digest), nothing from the source.
    t.src_proxy.clear_log();
    t.dst_proxy.clear_log();
    let again = t.run_async(&["run", "--manifest", &m]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("plan: 0 copy, 0 tag, 1 lost"),
        "{}",
        again.stdout
    );
    // hello:1.0, echo:v1, echo:latest; not gone:1.0: the catalog (read once
    // per run) shows that `gone` does not exist.
    let wanted_tags = 3;
    let untagged = 1;
    let heads = t
        .dst_proxy
        .log()
        .iter()
        .filter(|r| r.method == "HEAD")
        .count();
    assert_eq!(heads, wanted_tags + untagged, "{}", t.dst_proxy.dump());
    // The repository list is read once, and tells that `gone` does not
    // exist (instead of a HEAD per tag and digest).
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
    // The source is read for the lost digest (to tell lost from copy) and,
    // for attachments added since, one tag listing per repository and one
    // probe for the referrers API (this registry has none): nothing per
    // image beyond that.
    let src_reads: Vec<_> = t
        .src_proxy
        .log()
        .into_iter()
        .filter(|r| r.path != "/v2/" && !r.path.contains("/gone/"))
        .collect();
    let listings = src_reads
        .iter()
        .filter(|r| r.path.ends_with("/tags/list?n=1000"))
        .count();
    let probes = src_reads
        .iter()
        .filter(|r| r.path.contains("/referrers/"))
        .count();
    assert_eq!(
        (listings, probes, src_reads.len()),
        (2, 1, 3),
        "{}",
        t.src_proxy.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_tag_move_writes_nothing_and_exits_3() {
    let Some(t) = Two::start().await else { return };
    let m = t.standard();
    assert_eq!(
        t.run_async(&["run", "--manifest", &m, "--confirm"])
            .await
            .code,
        0
    );
    t.dst_proxy.clear_log();
    let moved = t.manifest(
        "move.yaml",
        &format!(
            "- name: tools/echo\n  dmap:\n    \"{}\": [\"v1\"]\n",
            t.images.other.digest()
        ),
    );
    let out = t
        .run_async(&["run", "--manifest", &moved, "--confirm"])
        .await;
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("refused"), "{}", out.stdout);
    assert!(
        t.dst_proxy.log().iter().all(|r| !is_write(&r.method)),
        "{}",
        t.dst_proxy.dump()
    );
    if let Some(d) = t.skopeo_digest("tools/echo:v1").await {
        assert_eq!(&d, t.images.image.digest(), "the tag moved");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_one_registry_blobs_are_mounted_not_copied() {
    let Some(w) = World::builder().same_registry().start().await else {
        return;
    };
    let image = TestImage::layered(21, 3, 64 * 1024, None);
    w.push("staging/app", &image, &["1.0"]).await;
    let images = images_yaml(&[("app", image.digest(), &["1.0"])]);
    let m = w.manifest_between("m.yaml", "staging", "prod", &images);
    let out = w
        .run_async(&["run", "--manifest", &m, "--confirm", "--output", "json"])
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

    let proxy = &w.dst_proxy;
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
    if let Some(raw) = prod_manifest(&w, "app:1.0").await {
        assert_eq!(raw, image.manifest.bytes.to_vec());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_come_along_unless_attachments_are_off() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let signed = TestImage::single_layer(41, 100);
    let unsigned_run = TestImage::single_layer(42, 100);
    let signature = TestImage::cosign_signature(43, signed.digest());
    let sig_tag = cosign_tag(signed.digest(), "sig");
    w.push("stage/app", &signed, &["1.0"]).await;
    w.push("stage/app", &signature, &[&sig_tag]).await;
    let sig2 = TestImage::cosign_signature(44, unsigned_run.digest());
    let sig2_tag = cosign_tag(unsigned_run.digest(), "sig");
    w.push("stage/app", &unsigned_run, &["2.0"]).await;
    w.push("stage/app", &sig2, &[&sig2_tag]).await;

    // Straight to both registries, no proxy in between.
    let manifest = |name: &str, digest: &Digest, tag: &str| {
        let text = manifest_yaml(
            &format!("{}/stage", w.src().host()),
            &format!("{}/prod", w.dst.host()),
            &images_yaml(&[("app", digest, &[tag])]),
        );
        w.write(name, text);
    };
    manifest("with.yaml", signed.digest(), "1.0");
    manifest("without.yaml", unsigned_run.digest(), "2.0");

    let out = w
        .run_async(&[
            "run",
            "--manifest",
            "with.yaml",
            "--confirm",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["execution"]["stats"]["attachments_copied"], 1);
    let sig_ref = format!("docker://{}/prod/app:{sig_tag}", w.dst.host());
    if let Some(raw) = skopeo::inspect_raw_async(&sig_ref).await {
        assert_eq!(raw, signature.manifest.bytes.to_vec());
    }

    let out = w
        .run_async(&[
            "run",
            "--manifest",
            "without.yaml",
            "--confirm",
            "--no-attachments",
        ])
        .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let dst_client = w.dst.remote(CredentialStore::anonymous());
    let tags = promoter::registry::Registry::list_tags(&dst_client, &dst_client.at("prod/app"))
        .await
        .unwrap();
    assert!(tags.contains(&sig_tag), "{tags:?}");
    assert!(
        !tags.contains(&sig2_tag),
        "--no-attachments copied a signature: {tags:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referrer_known_only_to_the_referrers_api_is_promoted_and_listed() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let subject = TestImage::single_layer(61, 100);
    let sbom = TestImage::artifact(62, "application/spdx+json", &subject.manifest);
    w.push("stage/app", &subject, &["1.0"]).await;
    // By digest only: no tag names it, so only the referrers API finds it.
    w.push("stage/app", &sbom, &[]).await;
    // docker-registry 2.8 has no referrers API; the source's proxy serves it
    // for this subject, as a registry with the API would.
    let answer = TestImage::referrers_index(vec![sbom.clone()]);
    w.src_proxy.add(
        Rule::new(
            "GET",
            &format!("/v2/stage/app/referrers/{}", subject.digest()),
        )
        .always()
        .action(
            Action::status(200)
                .header("Content-Type", media_type::OCI_INDEX)
                .with_body(String::from_utf8(answer.manifest.bytes.to_vec()).unwrap()),
        ),
    );
    let m = w.manifest(
        "m.yaml",
        &images_yaml(&[("app", subject.digest(), &["1.0"])]),
    );
    let out = w
        .run_async(&["run", "--manifest", &m, "--confirm", "--output", "json"])
        .await;
    assert_eq!(out.code, 0, "{}{}\n{}", out.stdout, out.stderr, w.dumps());
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["execution"]["stats"]["attachments_copied"], 1);
    // One for the image, one for what is attached to the SBOM (nothing).
    assert_eq!(w.src_proxy.count("GET", "/referrers/"), 2, "{}", w.dumps());

    // The referrer itself, byte for byte, read by skopeo.
    let by_digest = format!("docker://{}/prod/app@{}", w.dst_host(), sbom.digest());
    if let Some(raw) = skopeo::inspect_raw_async(&by_digest).await {
        assert_eq!(raw, sbom.manifest.bytes.to_vec());
    }
    // The destination has no referrers API either: the referrers tag index
    // lists it there, so clients that follow the spec find it.
    let tag = referrers_tag(subject.digest());
    let index_ref = format!("docker://{}/prod/app:{tag}", w.dst_host());
    if let Some(raw) = skopeo::inspect_raw_async(&index_ref).await {
        let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(index["manifests"][0]["digest"], sbom.digest().as_str());
        assert_eq!(
            index["manifests"][0]["artifactType"],
            "application/spdx+json"
        );
    }
    let dst_client = w.dst.remote(CredentialStore::anonymous());
    let listed = promoter::registry::Registry::referrers(
        &dst_client,
        &dst_client.at("prod/app"),
        subject.digest(),
    )
    .await
    .unwrap();
    assert_eq!(
        listed.iter().map(|d| &d.digest).collect::<Vec<_>>(),
        vec![sbom.digest()]
    );

    // A second run has nothing to do: the tag and the referrer are there.
    let again = w.run_async(&["run", "--manifest", &m]).await;
    assert!(
        again.stdout.contains("2 already present"),
        "{}",
        again.stdout
    );
}
