//! `promoter cip`: a kpromo cip job switches by changing the binary, flags
//! unchanged (cobra's `--flag=value` booleans included).

use std::path::Path;
use std::process::Command;

use crate::support::images::TestImage;
use crate::support::world::{images_yaml, World};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.invalid",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kpromo_cip_flag_is_accepted_with_its_meaning() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let a = TestImage::single_layer(1500, 1000);
    let b = TestImage::single_layer(1501, 1000);
    w.push("stage/a", &a, &["1.0"]).await;
    w.push("stage/b", &b, &["1.0"]).await;
    git(w.path(), &["init", "-q", "."]);
    w.manifest("m.yaml", &images_yaml(&[("a", a.digest(), &["1.0"])]));
    git(w.path(), &["add", "m.yaml"]);
    git(w.path(), &["commit", "-qm", "a"]);
    let base = git(w.path(), &["rev-parse", "HEAD"]);
    w.manifest(
        "m.yaml",
        &images_yaml(&[("a", a.digest(), &["1.0"]), ("b", b.digest(), &["1.0"])]),
    );
    git(w.path(), &["commit", "-qam", "b"]);

    // cobra's `--confirm=false` is a dry run; the flags CIP keeps for its
    // own plumbing are accepted and have no effect.
    let dry = w
        .run_async(&[
            "cip",
            "--manifest=m.yaml",
            "--confirm=false",
            "--max-image-size=2048",
            "--threads=10",
            "--key-files=keys.json",
            "--use-service-account",
            "--json-log-summary=true",
            "--snapshot-service-account=sa@example.iam",
            "--max-signature-copies=5",
            "--max-signature-ops=5",
            "--log-level=warning",
        ])
        .await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(dry.stdout.contains("plan: 2 copy"), "{}", dry.stdout);
    assert_eq!(w.dst_proxy.count("PUT", "/"), 0);

    // A Prow postsubmit with --use-prow-manifest-diff promotes the last
    // commit's change only.
    let post = w
        .promoter()
        .args([
            "cip",
            "--manifest=m.yaml",
            "--use-prow-manifest-diff",
            "--confirm=true",
        ])
        .env("JOB_TYPE", "postsubmit")
        .run_async()
        .await;
    assert_eq!(post.code, 0, "{}", post.all());
    assert_eq!(w.dst_proxy.count("PUT", "/prod/b/manifests/1.0"), 1);
    assert_eq!(w.dst_proxy.count("PUT", "/prod/a/"), 0, "{}", w.dumps());

    // A presubmit of a change that drops `a`: the check against the base.
    w.manifest("m.yaml", &images_yaml(&[("b", b.digest(), &["1.0"])]));
    let pre = w
        .promoter()
        .args([
            "cip",
            "--manifest=m.yaml",
            "--parse-only",
            "--use-prow-manifest-diff",
        ])
        .env("JOB_TYPE", "presubmit")
        .env("PULL_BASE_SHA", &base)
        .run_async()
        .await;
    assert_eq!(pre.code, 1, "{}", pre.all());
    assert!(
        pre.stderr.contains("is no longer promoted"),
        "{}",
        pre.stderr
    );

    let outside_prow = w
        .run_async(&["cip", "--manifest=m.yaml", "--use-prow-manifest-diff"])
        .await;
    assert_eq!(outside_prow.code, 1, "{}", outside_prow.all());
    assert!(
        outside_prow.stderr.contains("needs JOB_TYPE"),
        "{}",
        outside_prow.stderr
    );

    // Snapshots, CIP's output names in any case.
    let snap = w
        .run_async(&[
            "cip",
            &format!("--snapshot={}/prod", w.dst_host()),
            "--output=CSV",
        ])
        .await;
    assert_eq!(snap.code, 0, "{}", snap.all());
    assert!(snap.stdout.contains("b:1.0"), "{}", snap.stdout);

    // Signing and the vulnerability check need their tools, and say so.
    for (flag, tool) in [
        ("--sign", "cosign"),
        ("--vuln-severity-threshold=4", "trivy"),
    ] {
        let out = w.run_async(&["cip", "--manifest=m.yaml", flag]).await;
        assert_eq!(out.code, 1, "{flag}: {}", out.all());
        assert!(
            out.stderr.contains(&format!("{tool} is not on PATH")),
            "{}",
            out.stderr
        );
    }
}
