//! Signatures, attestations and SBOMs follow their image on every run, as
//! `attach` items of the plan, through the binary on real registries.

use promoter::reference::{Algorithm, Digest};
use promoter::registry::RawManifest;

use crate::support::cli::Workdir;
use crate::support::images::{cosign_tag, referrers_tag, write_oci_layout, TestImage};
use crate::support::skopeo;
use crate::support::world::{images_yaml, manifest_yaml, World};

/// An image promoted alone; then a signature (cosign tag) and an SBOM (a
/// referrer, listed by the referrers tag index: this registry has no
/// referrers API) are added in the source. The next dry run shows both as
/// `attach`, `--confirm` copies them (skopeo reads them back), and the run
/// after that has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_added_after_promotion_follow_on_the_next_run() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let app = TestImage::single_layer(1200, 1000);
    w.push("stage/app", &app, &["1.0"]).await;
    let m = w.manifest("m.yaml", &images_yaml(&[("app", app.digest(), &["1.0"])]));
    let first = w.run_async(&["run", "--manifest", &m, "--confirm"]).await;
    assert_eq!(first.code, 0, "{}", first.all());

    let signature = TestImage::cosign_signature(1201, app.digest());
    let sig_tag = cosign_tag(app.digest(), "sig");
    let sbom = TestImage::artifact(1202, "application/spdx+json", &app.manifest);
    w.push("stage/app", &signature, &[&sig_tag]).await;
    w.push("stage/app", &sbom, &[]).await;
    let index = TestImage::referrers_index(vec![sbom.clone()]);
    w.push("stage/app", &index, &[&referrers_tag(app.digest())])
        .await;

    let puts_before = w.dst_proxy.count("PUT", "/");
    let dry = w.run_async(&["run", "--manifest", &m]).await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    let attach_lines: Vec<&str> = dry
        .stdout
        .lines()
        .filter(|l| l.starts_with("attach"))
        .collect();
    assert_eq!(attach_lines.len(), 2, "{}", dry.stdout);
    assert!(
        attach_lines.iter().any(|l| l.contains(&sig_tag)
            && l.contains(app.digest().as_str())
            && l.contains("application/vnd.dev.cosign.simplesigning.v1+json")),
        "{}",
        dry.stdout
    );
    assert!(
        attach_lines
            .iter()
            .any(|l| l.contains("application/spdx+json") && l.contains(sbom.digest().as_str())),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("plan: 0 copy, 2 attach, 0 tag"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        w.dst_proxy.count("PUT", "/"),
        puts_before,
        "a dry run writes nothing"
    );

    let out = w.run_async(&["run", "--manifest", &m, "--confirm"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let host = w.dst_host();
    let sig_ref = format!("docker://{host}/prod/app:{sig_tag}");
    if let Some(raw) = skopeo::inspect_raw_async(&sig_ref).await {
        assert_eq!(raw, signature.manifest.bytes.to_vec());
    }
    let sbom_ref = format!("docker://{host}/prod/app@{}", sbom.digest());
    if let Some(raw) = skopeo::inspect_raw_async(&sbom_ref).await {
        assert_eq!(raw, sbom.manifest.bytes.to_vec());
    }
    let again = w.run_async(&["run", "--manifest", &m]).await;
    assert!(
        again.stdout.contains(
            "plan: 0 copy, 0 tag, 0 lost, 0 refused, 0 conflict, 0 blocked, 3 already present"
        ),
        "{}",
        again.stdout
    );
}

/// A sha512 image: its signature lives under `sha512-<first 64 hex>.sig`
/// (the tag grammar's limit), and follows it. (docker-registry 2.8 takes
/// sha256 manifests only, so this one goes between `oci:` trees.)
#[test]
fn a_sha512_image_brings_its_signature() {
    let work = Workdir::new();
    let mut app = TestImage::single_layer(1210, 1000);
    app.manifest = RawManifest {
        digest: Digest::of(Algorithm::Sha512, &app.manifest.bytes),
        ..app.manifest
    };
    let signature = TestImage::cosign_signature(1211, app.digest());
    let sig_tag = promoter::oci::attachment_tag(app.digest(), Some("sig")).to_string();
    assert!(sig_tag.starts_with("sha512-") && sig_tag.len() == "sha512-".len() + 64 + 4);
    let src = work.path().join("src");
    write_oci_layout(
        &src,
        "app",
        &[(&app, Some("1.0")), (&signature, Some(&sig_tag))],
    )
    .unwrap();
    let entries = images_yaml(&[("app", app.digest(), &["1.0"])]);
    work.write("m.yaml", manifest_yaml("oci:src", "oci:dst", &entries));
    let out = work.run(&["run", "--manifest", "m.yaml", "--confirm"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.contains(&format!("app:{sig_tag}")),
        "{}",
        out.stdout
    );
    let index: serde_json::Value = serde_json::from_str(&work.read("dst/app/index.json")).unwrap();
    let tagged = |tag: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .map(|e| e["digest"].as_str().unwrap().to_string())
    };
    assert_eq!(
        tagged(&sig_tag).as_deref(),
        Some(signature.digest().as_str())
    );
    assert_eq!(tagged("1.0").as_deref(), Some(app.digest().as_str()));
}
