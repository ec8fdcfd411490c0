//! Presubmit against the git base, and runs limited to what changed, through
//! the binary, on git repositories the tests make.

use std::path::Path;
use std::process::Command;

use crate::support::cli::Workdir;
use crate::support::images::TestImage;
use crate::support::world::{images_yaml, World};

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

/// Run `git ARGS` in `dir` with a fixed identity and no user configuration;
/// returns stdout.
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
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A thin tree with one manifest pair, `images` as its images.yaml.
fn write_tree(work: &Workdir, images: &str) {
    for dir in ["tree/manifests/team", "tree/images/team"] {
        std::fs::create_dir_all(work.path().join(dir)).unwrap();
    }
    work.write(
        "tree/manifests/team/promoter-manifest.yaml",
        "registries:\n- name: gcr.io/staging\n  src: true\n- name: registry.example/prod\n",
    );
    work.write("tree/images/team/images.yaml", images);
}

/// A repository whose first commit holds `base`; returns that commit.
fn repo_with_base(work: &Workdir, base: &str) -> String {
    git(work.path(), &["init", "-q", "."]);
    write_tree(work, base);
    git(work.path(), &["add", "-A"]);
    git(work.path(), &["commit", "-qm", "base"]);
    git(work.path(), &["rev-parse", "HEAD"])
}

fn presubmit(work: &Workdir, base: &str, extra: &[&str]) -> crate::support::cli::Out {
    let mut args = vec![
        "run",
        "--thin-manifest-dir",
        "tree",
        "--parse-only",
        "--base",
        base,
    ];
    args.extend_from_slice(extra);
    work.run(&args)
}

#[test]
fn a_moved_tag_and_a_removed_image_are_caught_at_the_head_line_naming_the_base_line() {
    let work = Workdir::new();
    let base = repo_with_base(
        &work,
        &format!(
            "- name: app\n  dmap:\n    \"{D1}\": [\"1.0\"]\n- name: tool\n  dmap:\n    \"{D2}\": [\"2.0\"]\n"
        ),
    );
    // The head moves app:1.0 to D3 and drops tool.
    write_tree(
        &work,
        &format!("- name: app\n  dmap:\n    \"{D1}\": []\n    \"{D3}\": [\"1.0\"]\n"),
    );
    let out = presubmit(&work, &base, &[]);
    assert_eq!(out.code, 3, "a tag move exits 3: {}", out.all());
    assert!(
        out.stderr.contains(&format!(
            "images/team/images.yaml:4:81: error: tag 1.0 of registry.example/prod/app would move from {D1} (base: images/team/images.yaml:3:81) to {D3}"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "images/team/images.yaml: error: tag 2.0 of registry.example/prod/tool (on {D2}, base: images/team/images.yaml:6:81) is no longer promoted"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn removals_fail_unless_allowed_and_additions_pass() {
    let work = Workdir::new();
    let base = repo_with_base(
        &work,
        &format!("- name: app\n  dmap:\n    \"{D1}\": [\"1.0\", \"latest\"]\n"),
    );
    write_tree(
        &work,
        &format!("- name: app\n  dmap:\n    \"{D1}\": [\"1.0\"]\n"),
    );
    let removed = presubmit(&work, &base, &[]);
    assert_eq!(removed.code, 1, "{}", removed.all());
    assert!(
        removed
            .stderr
            .contains("tag latest of registry.example/prod/app"),
        "{}",
        removed.stderr
    );
    let allowed = presubmit(&work, &base, &["--allow-removals"]);
    assert_eq!(allowed.code, 0, "{}", allowed.all());
    assert!(allowed.stderr.contains("warning:"), "{}", allowed.stderr);

    write_tree(
        &work,
        &format!(
            "- name: app\n  dmap:\n    \"{D1}\": [\"1.0\", \"latest\"]\n    \"{D2}\": [\"2.0\"]\n- name: new\n  dmap:\n    \"{D3}\": []\n"
        ),
    );
    let added = presubmit(&work, &base, &[]);
    assert_eq!(added.code, 0, "additions are fine: {}", added.all());
    let unknown = presubmit(&work, "no-such-revision", &[]);
    assert_eq!(unknown.code, 1, "{}", unknown.all());
    assert!(
        unknown.stderr.contains("is not in this repository"),
        "{}",
        unknown.stderr
    );
}

/// `run --since REV` plans only the digest entries that changed since REV:
/// the registries are asked nothing about the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_plans_only_what_changed() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let old = TestImage::single_layer(1300, 1000);
    let new = TestImage::single_layer(1301, 1000);
    w.push("stage/old", &old, &["1.0"]).await;
    w.push("stage/new", &new, &["1.0"]).await;
    git(w.path(), &["init", "-q", "."]);
    w.manifest("m.yaml", &images_yaml(&[("old", old.digest(), &["1.0"])]));
    git(w.path(), &["add", "m.yaml"]);
    git(w.path(), &["commit", "-qm", "base"]);
    let base = git(w.path(), &["rev-parse", "HEAD"]);
    w.manifest(
        "m.yaml",
        &images_yaml(&[
            ("old", old.digest(), &["1.0"]),
            ("new", new.digest(), &["1.0"]),
        ]),
    );
    w.src_proxy.clear_log();
    let out = w
        .run_async(&["run", "--manifest", "m.yaml", "--since", &base, "--confirm"])
        .await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("1 digest entry changed since"),
        "{}",
        out.stderr
    );
    assert_eq!(w.dst_proxy.count("PUT", "/prod/new/manifests/1.0"), 1);
    let about_old = w
        .src_proxy
        .log()
        .into_iter()
        .chain(w.dst_proxy.log())
        .filter(|r| r.path.contains("/old/"))
        .count();
    assert_eq!(about_old, 0, "{}", w.dumps());

    git(w.path(), &["commit", "-qam", "add new"]);
    let head = git(w.path(), &["rev-parse", "HEAD"]);
    let nothing = w
        .run_async(&["run", "--manifest", "m.yaml", "--since", &head])
        .await;
    assert_eq!(nothing.code, 0, "{}", nothing.all());
    assert!(
        nothing.stderr.contains("nothing to do"),
        "{}",
        nothing.stderr
    );
}

/// A hostile base: a 300 MB `m.yaml` committed at the base revision (the
/// working copy small) is refused by its size, named, without being read:
/// the run stays far below the file's size in memory.
#[test]
fn a_huge_file_at_the_base_is_refused_unread() {
    let work = Workdir::new();
    git(work.path(), &["init", "-q", "."]);
    let huge = std::fs::File::create(work.path().join("m.yaml")).unwrap();
    huge.set_len(300 << 20).unwrap(); // zeros: cheap to store, 300 MB to read
    git(work.path(), &["add", "-A"]);
    git(work.path(), &["commit", "-qm", "huge base"]);
    work.write(
        "m.yaml",
        format!("registries:\n- name: gcr.io/staging\n  src: true\n- name: registry.example/prod\nimages:\n- name: app\n  dmap:\n    \"{D1}\": [\"1.0\"]\n"),
    );
    let out = crate::support::cli::Promoter::shell(
        work.path(),
        "/usr/bin/time -f 'max-rss-kb %M' promoter run --manifest m.yaml --parse-only --base HEAD",
    )
    .run();
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains(
            "m.yaml at revision HEAD is 314572800 bytes, more than the 16777216-byte limit"
        ),
        "{}",
        out.stderr
    );
    let rss: u64 = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("max-rss-kb "))
        .and_then(|k| k.trim().parse().ok())
        .unwrap_or_else(|| panic!("no max RSS: {}", out.stderr));
    assert!(
        rss < 64 << 10,
        "{rss} KiB to refuse a file it should not read"
    );
}
