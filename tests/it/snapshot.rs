//! Snapshots through the binary: CIP's exact YAML and CSV from a real
//! registry, --minimal-snapshot, --snapshot-tag, round trips, manifest-based
//! snapshots on path boundaries, and `diff`.

use std::path::Path;

use promoter::registry::remote::CredentialStore;

use crate::support::cli::promoter_async;
use crate::support::images::{Flavor, Platform, TestImage};
use crate::support::registry::TestRegistry;
use crate::support::world::push_tagged;

async fn promoter(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = promoter_async(cwd, args).await;
    (out.code, out.stdout, out.stderr)
}

struct Seeded {
    registry: TestRegistry,
    index: TestImage,
    image: TestImage,
}

/// `snap/app`: an index tagged 1.0 and 1.10 whose amd64 child is also tagged
/// `amd64` and whose arm64 child is untagged; `snap/tools/echo`: an image
/// tagged latest plus a tagless image (which no registry API can list);
/// `snapper/x`: outside the `snap` path.
async fn seeded() -> Option<Seeded> {
    let registry = TestRegistry::plain().await?;
    let client = registry.remote(CredentialStore::anonymous());
    let index = TestImage::multi_arch(
        31,
        Flavor::Oci,
        &[Platform::linux("amd64"), Platform::linux("arm64")],
        100,
    );
    let image = TestImage::single_layer(32, 100);
    for (repo, image, tags) in [
        ("snap/app", &index, &["1.0", "1.10"][..]),
        ("snap/app", &index.children[0], &["amd64"]),
        ("snap/tools/echo", &image, &["latest"]),
        ("snap/tools/echo", &TestImage::single_layer(33, 10), &[]),
        ("snapper/x", &TestImage::single_layer(34, 10), &["1"]),
    ] {
        push_tagged(&client, repo, image, tags).await;
    }
    Some(Seeded {
        registry,
        index,
        image,
    })
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_snapshots_are_byte_for_byte_cips_formats() {
    let Some(s) = seeded().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = format!("{}/snap", s.registry.host());
    let amd64 = s.index.children[0].digest().to_string();
    let arm64 = s.index.children[1].digest().to_string();
    let index = s.index.digest().to_string();
    let image = s.image.digest().to_string();

    // app's digests in byte order, each with its sorted tags.
    let mut app: Vec<(String, &str)> = vec![
        (index.clone(), "[\"1.0\", \"1.10\"]"),
        (amd64.clone(), "[\"amd64\"]"),
        (arm64.clone(), "[]"),
    ];
    app.sort();
    let app_lines: String = app
        .iter()
        .map(|(d, t)| format!("    \"{d}\": {t}\n"))
        .collect();
    let expected_yaml = format!(
        "- name: app\n  dmap:\n{app_lines}- name: tools/echo\n  dmap:\n    \"{image}\": [\"latest\"]\n"
    );
    let (code, yaml, err) = promoter(dir.path(), &["run", "--snapshot", &root]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(yaml, expected_yaml);

    let mut rows = vec![
        format!("app@{index},app:1.0"),
        format!("app@{index},app:1.10"),
        format!("app@{amd64},app:amd64"),
        format!("app@{arm64},-"),
        format!("tools/echo@{image},tools/echo:latest"),
    ];
    rows = sorted(rows);
    let (code, csv, _) =
        promoter(dir.path(), &["run", "--snapshot", &root, "--output", "CSV"]).await;
    assert_eq!(code, 0);
    assert_eq!(sorted(csv.lines().map(str::to_string).collect()), rows);
    // Rows come in the YAML's order: by name, then digest, then tag.
    let by_name_digest: Vec<String> = csv
        .lines()
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    assert_eq!(by_name_digest, sorted(by_name_digest.clone()));

    // Minimal: the untagged child goes, the tagged child stays.
    let (_, minimal, _) = promoter(
        dir.path(),
        &["run", "--snapshot", &root, "--minimal-snapshot"],
    )
    .await;
    assert!(!minimal.contains(&arm64), "{minimal}");
    assert!(minimal.contains(&amd64), "{minimal}");

    // --snapshot-tag: only digests carrying the tag, with all their tags.
    let (_, tagged, _) = promoter(
        dir.path(),
        &["run", "--snapshot", &root, "--snapshot-tag", "1.10"],
    )
    .await;
    assert_eq!(
        tagged,
        format!("- name: app\n  dmap:\n    \"{index}\": [\"1.0\", \"1.10\"]\n")
    );

    // An unknown output is a usage error.
    let (code, _, err) =
        promoter(dir.path(), &["run", "--snapshot", &root, "--output", "xml"]).await;
    assert_eq!(code, 2, "{err}");

    // Round trip: the YAML is valid images.yaml input, and diffs equal to the registry.
    std::fs::write(dir.path().join("snap.yaml"), &yaml).unwrap();
    let (code, out, err) = promoter(dir.path(), &["diff", "snap.yaml", &root]).await;
    assert_eq!(code, 0, "{out}{err}");
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("manifests/a")).unwrap();
    std::fs::create_dir_all(tree.join("images/a")).unwrap();
    std::fs::write(
        tree.join("manifests/a/promoter-manifest.yaml"),
        format!(
            "registries:\n- name: {root}\n  src: true\n- name: {}/prod\n",
            s.registry.host()
        ),
    )
    .unwrap();
    std::fs::write(tree.join("images/a/images.yaml"), &yaml).unwrap();
    let (code, _, err) = promoter(
        dir.path(),
        &["run", "--thin-manifest-dir", "tree", "--parse-only"],
    )
    .await;
    assert_eq!(code, 0, "{err}");

    // A different registry path differs, and says how.
    let other = format!("{}/snapper", s.registry.host());
    let (code, out, _) = promoter(dir.path(), &["diff", &root, &other]).await;
    assert_eq!(code, 1);
    assert!(
        out.contains("-- name: app") && out.contains("+- name: x"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_destination_snapshots_as_the_manifests_say() {
    let Some(s) = seeded().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let host = s.registry.host();
    // Two manifests, each promoting to two paths under prod, and one to a
    // sibling path that must not match.
    for (x, dests, image, digest, tag) in [
        (
            "a",
            vec!["prod", "prod/eu"],
            "app",
            s.index.digest().to_string(),
            "1.0",
        ),
        (
            "b",
            vec!["prod/us", "prod-foo"],
            "tools/echo",
            s.image.digest().to_string(),
            "latest",
        ),
    ] {
        std::fs::create_dir_all(dir.path().join(format!("tree/manifests/{x}"))).unwrap();
        std::fs::create_dir_all(dir.path().join(format!("tree/images/{x}"))).unwrap();
        let mut registries = format!("registries:\n- name: {host}/snap\n  src: true\n");
        for d in dests {
            registries.push_str(&format!("- name: {host}/{d}\n"));
        }
        std::fs::write(
            dir.path()
                .join(format!("tree/manifests/{x}/promoter-manifest.yaml")),
            registries,
        )
        .unwrap();
        std::fs::write(
            dir.path().join(format!("tree/images/{x}/images.yaml")),
            format!("- name: {image}\n  dmap:\n    \"{digest}\": [\"{tag}\"]\n"),
        )
        .unwrap();
    }
    let prod = format!("{host}/prod");
    let (code, offline, err) = promoter(
        dir.path(),
        &[
            "run",
            "--thin-manifest-dir",
            "tree",
            "--manifest-based-snapshot-of",
            &prod,
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let names: Vec<&str> = offline
        .lines()
        .filter_map(|l| l.strip_prefix("- name: "))
        .collect();
    assert_eq!(names, vec!["app", "eu/app", "us/tools/echo"], "{offline}");

    let (code, out, err) = promoter(
        dir.path(),
        &["run", "--thin-manifest-dir", "tree", "--confirm"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    // The index's children came along untagged; minimal leaves them out on both sides.
    let (_, live, _) = promoter(
        dir.path(),
        &["run", "--snapshot", &prod, "--minimal-snapshot"],
    )
    .await;
    let (_, planned, _) = promoter(
        dir.path(),
        &[
            "run",
            "--thin-manifest-dir",
            "tree",
            "--manifest-based-snapshot-of",
            &prod,
            "--minimal-snapshot",
        ],
    )
    .await;
    assert_eq!(live, planned);
    assert_eq!(planned, offline);
    let (_, full, _) = promoter(dir.path(), &["run", "--snapshot", &prod]).await;
    assert!(
        full.contains(s.index.children[1].digest().as_str()),
        "children are in the full snapshot"
    );
}
