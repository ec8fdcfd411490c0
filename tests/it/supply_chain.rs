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
    let dry = w.run_async(&["run", "--manifest", &m, "--wide"]).await;
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
    let out = work.run(&["run", "--manifest", "m.yaml", "--confirm", "--wide"]);
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

/// A gate that refuses one digest (as a scanner would a vulnerable image):
/// the dry run reports it refused with the gate's reason and exits 3,
/// writing nothing; `--confirm` promotes everything else. The gate reads the
/// documented JSON, gets the variables it is given (`--hook-env`) and none
/// of the promoter's others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_refuses_what_it_must_and_admits_the_rest() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let good = TestImage::single_layer(1220, 1000);
    let bad = TestImage::single_layer(1221, 1000);
    w.push("stage/good", &good, &["1.0"]).await;
    w.push("stage/bad", &bad, &["1.0"]).await;
    let m = w.manifest(
        "m.yaml",
        &images_yaml(&[
            ("good", good.digest(), &["1.0"]),
            ("bad", bad.digest(), &["1.0"]),
        ]),
    );
    w.write(
        "gate.sh",
        r#"input=$(cat)
env > "$PWD/gate-env.$$"
printf '%s\n' "$input" >> "$PWD/gate-input"
case "$input" in *"$REFUSED"*) echo "CVE-2026-0001 is critical in $PROMOTER_DIGEST" >&2; exit 1;; esac
"#,
    );
    let run = |confirm: bool| {
        let mut args = vec![
            "run",
            "--manifest",
            &m,
            "--gate",
            "sh gate.sh",
            "--hook-env",
            "REFUSED",
            "--wide",
        ];
        if confirm {
            args.push("--confirm");
        }
        let args: Vec<String> = args.into_iter().map(str::to_string).collect();
        w.promoter()
            .args(args)
            .env("REFUSED", bad.digest().as_str())
            .env("REGISTRY_PASSWORD", "hunter2-not-for-hooks")
            .run_async()
    };
    let dry = run(false).await;
    assert_eq!(dry.code, 3, "{}", dry.all());
    let refused: Vec<&str> = dry
        .stdout
        .lines()
        .filter(|l| l.starts_with("refused"))
        .collect();
    assert_eq!(refused.len(), 2, "its copy and its tag: {}", dry.stdout);
    assert!(
        refused.iter().all(|l| l.contains(&format!(
            "refused by the gate: CVE-2026-0001 is critical in {}",
            bad.digest()
        ))),
        "{}",
        dry.stdout
    );
    assert_eq!(w.dst_proxy.count("PUT", "/"), 0, "a dry run writes nothing");

    let out = run(true).await;
    assert_eq!(out.code, 3, "{}", out.all());
    assert_eq!(w.dst_proxy.count("PUT", "/prod/good/manifests/1.0"), 1);
    assert_eq!(w.dst_proxy.count("PUT", "/prod/bad/"), 0, "{}", w.dumps());

    let inputs = w.read("gate-input");
    let first: serde_json::Value = serde_json::from_str(inputs.lines().next().unwrap()).unwrap();
    for field in [
        "hook",
        "source",
        "digest",
        "media_type",
        "platforms",
        "destinations",
        "tags",
    ] {
        assert!(first.get(field).is_some(), "{field} missing in {first}");
    }
    for entry in std::fs::read_dir(w.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("gate-env.")
        {
            let env = std::fs::read_to_string(&path).unwrap();
            assert!(
                !env.contains("hunter2"),
                "a hook saw our environment: {env}"
            );
            assert!(env.contains("REFUSED="), "{env}");
        }
    }
}

/// A post-promotion step that records its calls and fails for one digest:
/// called once per promoted digest with the documented JSON, before the
/// tags; the failing digest's tag is not written (exit 4), and the next
/// run calls the step again for that digest only, then tags it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_after_promote_step_runs_once_per_digest_and_again_where_it_failed() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let one = TestImage::single_layer(1230, 1000);
    let two = TestImage::single_layer(1231, 1000);
    w.push("stage/one", &one, &["1.0"]).await;
    w.push("stage/two", &two, &["1.0", "latest"]).await;
    let m = w.manifest(
        "m.yaml",
        &images_yaml(&[
            ("one", one.digest(), &["1.0"]),
            ("two", two.digest(), &["1.0", "latest"]),
        ]),
    );
    w.write(
        "sign.sh",
        r#"input=$(cat)
printf '%s\n' "$input" >> "$PWD/calls"
case "$input" in *"$FAIL_FOR"*) echo "signing failed for $PROMOTER_REFERENCE" >&2; exit 1;; esac
"#,
    );
    let run = |fail_for: &str| {
        w.promoter()
            .args([
                "run",
                "--manifest",
                &m,
                "--confirm",
                "--after-promote",
                "sh sign.sh",
                "--hook-env",
                "FAIL_FOR",
            ])
            .env("FAIL_FOR", fail_for)
            .run_async()
    };
    let first = run(two.digest().as_str()).await;
    assert_eq!(first.code, 4, "{}", first.all());
    assert!(
        first.all().contains("signing failed for"),
        "{}",
        first.all()
    );
    let calls: Vec<serde_json::Value> = w
        .read("calls")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(calls.len(), 2, "once per promoted digest: {calls:?}");
    let for_two = calls
        .iter()
        .find(|c| c["digest"] == two.digest().as_str())
        .unwrap();
    assert_eq!(for_two["hook"], "after_promote");
    assert_eq!(for_two["tags"], serde_json::json!(["1.0", "latest"]));
    assert!(for_two["reference"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/prod/two@{}", two.digest())));
    assert_eq!(w.dst_proxy.count("PUT", "/prod/two/manifests/1.0"), 0);
    assert_eq!(w.dst_proxy.count("PUT", "/prod/one/manifests/1.0"), 1);

    std::fs::remove_file(w.path().join("calls")).unwrap();
    let second = run("nothing").await;
    assert_eq!(second.code, 0, "{}", second.all());
    let calls = w.read("calls");
    assert_eq!(calls.lines().count(), 1, "{calls}");
    assert!(calls.contains(two.digest().as_str()), "{calls}");
    assert_eq!(w.dst_proxy.count("PUT", "/prod/two/manifests/latest"), 1);
}
