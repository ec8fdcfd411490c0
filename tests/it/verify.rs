//! `promoter verify`, through the binary: what a destination lost or holds
//! wrong after a promotion is reported, with its own exit codes.

use promoter::registry::remote::CredentialStore;

use crate::support::cli::Workdir;
use crate::support::images::{blob_path, write_oci_layout, TestImage};
use crate::support::proxy::{Action, Rule};
use crate::support::world::{images_yaml, manifest_yaml, push_tagged, World};

/// After a promotion, a layer blob goes missing and a tag is pointed
/// elsewhere behind our back: a dry run would still say "already present"
/// for the blob's image, `verify` does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_blob_and_a_moved_tag_are_reported() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let app = TestImage::single_layer(1400, 1000);
    let index = TestImage::oci_index(1401, 500);
    let other = TestImage::single_layer(1402, 1000);
    w.push("stage/app", &app, &["1.0"]).await;
    w.push("stage/multi", &index, &["2.0"]).await;
    let m = w.manifest(
        "m.yaml",
        &images_yaml(&[
            ("app", app.digest(), &["1.0"]),
            ("multi", index.digest(), &["2.0"]),
        ]),
    );
    let out = w.run_async(&["run", "--manifest", &m, "--confirm"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let clean = w.run_async(&["verify", "--manifest", &m]).await;
    assert_eq!(clean.code, 0, "{}", clean.all());
    assert!(
        clean.stdout.contains("verify: 2 checked, 0 problem(s)"),
        "{}",
        clean.stdout
    );

    // A child's layer is gone (as if deleted), and 2.0 now names another image.
    let child_layer = &index.children[1].layers[0].digest;
    w.dst_proxy.add(
        Rule::new("HEAD", &format!("/prod/multi/blobs/{child_layer}"))
            .always()
            .action(Action::status(404)),
    );
    let dst = w.dst.remote(CredentialStore::anonymous());
    push_tagged(&dst, "prod/multi", &other, &["2.0"]).await;
    let out = w
        .run_async(&["verify", "--manifest", &m, "--output", "json"])
        .await;
    assert_eq!(out.code, 1, "{}", out.all());
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let kinds: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["missing_blob", "moved_tag"], "{}", out.stdout);
    assert!(out.stdout.contains(child_layer.as_str()), "{}", out.stdout);

    // A destination that cannot be read is trouble, not a finding.
    w.dst_proxy.add(
        Rule::new("HEAD", "/prod/app/")
            .always()
            .action(Action::status(500)),
    );
    w.set_options(r#"{"retry_deadline_secs": 1}"#);
    let out = w
        .run_async(&[
            "verify",
            "--manifest",
            &m,
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(out.stdout.contains("unchecked"), "{}", out.stdout);
}

/// In an `oci:` destination, a blob file deleted after promotion.
#[test]
fn a_deleted_blob_file_in_an_oci_tree_is_reported() {
    let work = Workdir::new();
    let app = TestImage::single_layer(1410, 100);
    write_oci_layout(&work.path().join("src"), "app", &[(&app, Some("1.0"))]).unwrap();
    let entries = images_yaml(&[("app", app.digest(), &["1.0"])]);
    work.write("m.yaml", manifest_yaml("oci:src", "oci:dst", &entries));
    assert_eq!(
        work.run(&["run", "--manifest", "m.yaml", "--confirm"]).code,
        0
    );
    std::fs::remove_file(blob_path(
        &work.path().join("dst"),
        "app",
        &app.layers[0].digest,
    ))
    .unwrap();
    let out = work.run(&["verify", "--manifest", "m.yaml"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.starts_with("missing_blob"), "{}", out.stdout);
    // A dry run cannot see it: it reads tags, not blobs.
    let dry = work.run(&["run", "--manifest", "m.yaml"]);
    assert!(dry.stdout.contains("1 already present"), "{}", dry.stdout);
}
