//! `promoter verify`, through the binary: what a destination lost or holds
//! wrong after a promotion is reported, with its own exit codes; `--deep`
//! reads every blob back; `--repair` copies again what was lost, as `run`
//! copies, and a second repair has nothing to do.

use promoter::registry::remote::CredentialStore;

use crate::support::cli::{Out, Workdir};
use crate::support::images::{blob_path, write_oci_layout, TestImage};
use crate::support::proxy::{Action, Rule};
use crate::support::skopeo;
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

/// The JSON report of a run (or a repair) on stdout.
fn report(out: &Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()))
}

/// skopeo copies `image` out of the destination (every blob read and its
/// digest checked): what a user pulling it would get.
async fn skopeo_copies_out(w: &World, image: &str, all: bool) {
    let out = w.path().join("pulled");
    let from = format!("docker://{}/prod/{image}", w.dst_host());
    let to = format!("oci:{}:{}", out.display(), "pulled");
    let mut args = vec!["--src-tls-verify=false", from.as_str(), to.as_str()];
    if all {
        args.insert(0, "--all");
    }
    if let Some(copied) = skopeo::try_copy_async(&args).await {
        copied.unwrap_or_else(|e| panic!("{e}"));
    }
}

/// The whole repair of a destination that lost a layer: verify names it,
/// a dry run plans its copy and writes nothing, `--confirm` copies it
/// again from the source, verify is clean, skopeo can pull the image, and a
/// second repair has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_layer_is_copied_again_and_a_second_repair_has_nothing_to_do() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let app = TestImage::single_layer(1420, 3000);
    w.push("stage/app", &app, &["1.0"]).await;
    let m = w.manifest("m.yaml", &images_yaml(&[("app", app.digest(), &["1.0"])]));
    let out = w.run_async(&["run", "--manifest", &m, "--confirm"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let layer = &app.layers[0].digest;
    w.lose_from_destination(layer);

    let out = w.run_async(&["verify", "--manifest", &m]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.starts_with("missing_blob"), "{}", out.stdout);
    assert!(out.stdout.contains(layer.as_str()), "{}", out.stdout);

    let writes = w.destination_writes().len();
    let dry = w.run_async(&["verify", "--manifest", &m, "--repair"]).await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(dry.stdout.contains("plan: 1 copy"), "{}", dry.stdout);
    assert!(dry.stderr.contains("missing_blob"), "{}", dry.stderr);
    assert!(
        dry.stderr.contains("dry run: nothing was written"),
        "{}",
        dry.stderr
    );
    assert_eq!(
        w.destination_writes()[writes..],
        [] as [String; 0],
        "a dry run writes nothing"
    );

    let repair = w
        .run_async(&[
            "verify",
            "--manifest",
            &m,
            "--repair",
            "--confirm",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(repair.code, 0, "{}", repair.all());
    assert_eq!(report(&repair)["counts"]["copy"], 1, "{}", repair.stdout);
    let restored = w.destination_writes()[writes..].to_vec();
    assert!(
        restored
            .iter()
            .any(|r| r.starts_with("POST /v2/prod/app/blobs/uploads/")),
        "the layer was uploaded again: {restored:#?}"
    );
    assert!(
        !restored.iter().any(|r| r.contains("DELETE")),
        "nothing is deleted: {restored:#?}"
    );

    let clean = w.run_async(&["verify", "--manifest", &m]).await;
    assert_eq!(clean.code, 0, "{}", clean.all());
    skopeo_copies_out(&w, "app:1.0", false).await;

    let writes = w.destination_writes().len();
    let again = w
        .run_async(&[
            "verify",
            "--manifest",
            &m,
            "--repair",
            "--confirm",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(again.code, 0, "{}", again.all());
    let again = report(&again);
    assert_eq!(again["counts"]["copy"], 0, "{again}");
    assert_eq!(again["counts"]["already_present"], 1, "{again}");
    assert_eq!(
        w.destination_writes().len(),
        writes,
        "nothing to do, nothing written"
    );
}

/// An index whose child manifest was lost: verify names the child, and
/// the repair writes it again, then the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_index_child_is_copied_again() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let index = TestImage::oci_index(1421, 500);
    w.push("stage/multi", &index, &["2.0"]).await;
    let m = w.manifest(
        "m.yaml",
        &images_yaml(&[("multi", index.digest(), &["2.0"])]),
    );
    let out = w.run_async(&["run", "--manifest", &m, "--confirm"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let child = index.children[1].digest();
    w.lose_from_destination(child);

    let out = w.run_async(&["verify", "--manifest", &m]).await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stdout.starts_with("missing_child"), "{}", out.stdout);
    assert!(out.stdout.contains(child.as_str()), "{}", out.stdout);

    let writes = w.destination_writes().len();
    let repair = w
        .run_async(&["verify", "--manifest", &m, "--repair", "--confirm"])
        .await;
    assert_eq!(repair.code, 0, "{}", repair.all());
    let restored = w.destination_writes()[writes..].to_vec();
    assert_eq!(
        restored,
        vec![
            format!("PUT /v2/prod/multi/manifests/{child}"),
            format!("PUT /v2/prod/multi/manifests/{}", index.digest()),
        ],
        "the child, then the index: its blobs were there"
    );
    let clean = w.run_async(&["verify", "--manifest", &m]).await;
    assert_eq!(clean.code, 0, "{}", clean.all());
    skopeo_copies_out(&w, "multi:2.0", true).await;
}

/// A destination that answers HEAD with a blob's right size and serves
/// other bytes (inverted, same length) passes `verify`, which asks only
/// HEAD; `verify --deep` reads it back and names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_serving_other_bytes_fails_only_a_deep_verify() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let app = TestImage::single_layer(1422, 2000);
    w.push("stage/app", &app, &["1.0"]).await;
    let m = w.manifest("m.yaml", &images_yaml(&[("app", app.digest(), &["1.0"])]));
    let out = w.run_async(&["run", "--manifest", &m, "--confirm"]).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let layer = &app.layers[0].digest;
    w.dst_proxy.add(
        Rule::new("GET", &format!("/prod/app/blobs/{layer}"))
            .always()
            .action(Action::WrongBytes),
    );
    let shallow = w.run_async(&["verify", "--manifest", &m]).await;
    assert_eq!(shallow.code, 0, "{}", shallow.all());

    let deep = w
        .run_async(&["verify", "--manifest", &m, "--deep", "--output", "json"])
        .await;
    assert_eq!(deep.code, 1, "{}", deep.all());
    let problems = report(&deep)["problems"].as_array().unwrap().clone();
    assert_eq!(problems.len(), 1, "{}", deep.stdout);
    assert_eq!(problems[0]["kind"], "bad_content", "{}", deep.stdout);
    let detail = problems[0]["detail"].as_str().unwrap();
    assert!(detail.contains(layer.as_str()), "{detail}");
    let reads = w
        .dst_proxy
        .log()
        .iter()
        .filter(|r| r.is("GET", &format!("/blobs/{layer}")))
        .count();
    assert_eq!(reads, 1, "only the deep verify read the blob");
}

/// `--verify-writes` reads a write back by HEAD and `--verify-writes=deep`
/// whole: a destination that stores the layer but serves other bytes for
/// it is believed by the first and fails the edge under the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_verify_writes_reads_every_written_byte_back() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let (head, deep) = (
        TestImage::single_layer(1423, 2000),
        TestImage::single_layer(1424, 2000),
    );
    w.push("stage/head", &head, &["1.0"]).await;
    w.push("stage/deep", &deep, &["1.0"]).await;
    w.dst_proxy.add(
        Rule::new("GET", "/blobs/sha256:")
            .always()
            .action(Action::WrongBytes),
    );
    for (name, image, flag, code) in [
        ("head", &head, "--verify-writes", 0),
        ("deep", &deep, "--verify-writes=deep", 4),
    ] {
        let m = w.manifest(
            &format!("{name}.yaml"),
            &images_yaml(&[(name, image.digest(), &["1.0"])]),
        );
        let out = w
            .run_async(&[
                "run",
                "--manifest",
                &m,
                "--confirm",
                flag,
                "--output",
                "json",
            ])
            .await;
        assert_eq!(out.code, code, "{flag}: {}", out.all());
        if code == 4 {
            assert!(out.stdout.contains("not_stored"), "{}", out.stdout);
            assert!(out.stdout.contains("read back"), "{}", out.stdout);
        }
    }
}
