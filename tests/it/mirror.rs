//! Mirroring by tag, the declarative way, through the binary on real
//! registries: an intent pinned into a lock, reviewed as any CIP manifest,
//! promoted; pinned again, byte for byte the same; what upstream does next.

use crate::support::images::{Flavor, Platform, TestImage};
use crate::support::skopeo;
use crate::support::world::World;

/// The source's `stage/tool`: one image per tag.
const TAGS: [&str; 6] = ["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1", "2.0.0", "latest"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_pins_promotes_and_keeps_what_was_reviewed() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let tool: Vec<TestImage> = (0..TAGS.len())
        .map(|i| TestImage::single_layer(1700 + i as u64, 300))
        .collect();
    for (image, tag) in tool.iter().zip(TAGS) {
        w.push("stage/tool", image, &[tag]).await;
    }
    let platforms = [Platform::linux("amd64"), Platform::linux("arm64")];
    let multi = TestImage::multi_arch(1710, Flavor::Oci, &platforms, 300);
    w.push("stage/multi", &multi, &["1.0"]).await;
    let intent = format!(
        "registries:\n- name: {src}/stage\n  src: true\n- name: {dst}/mirror\nimages:\n\
         - name: tool\n  semver: \">=1.1.0, <2.0.0\"\n  latest: 2\n\
         - name: tool\n  regex: \"^2\\\\.\"\n  exclude: \"rc\"\n\
         - name: tool\n  tags: [\"latest\"]\n\
         - name: multi\n  tags: [\"1.0\"]\n  platforms: [\"linux/arm64\"]\n",
        src = w.src_host(),
        dst = w.dst_host()
    );
    w.write("intent.yaml", &intent);

    let out = w
        .run_async(&["pin", "intent.yaml", "--out", "lock.yaml"])
        .await;
    assert_eq!(out.code, 0, "{}", out.all());
    let lock = w.read("lock.yaml");
    let pinned = |tag: &str| {
        let i = TAGS.iter().position(|t| *t == tag).unwrap();
        tool[i].digest().to_string()
    };
    for tag in ["1.1.0", "1.2.0", "2.0.0", "latest"] {
        let line = format!("\"{}\": [\"{tag}\"]", pinned(tag));
        assert!(lock.contains(&line), "{tag} missing:\n{lock}");
    }
    for tag in ["1.0.0", "2.0.0-rc.1"] {
        assert!(
            !lock.contains(&pinned(tag)),
            "{tag} was not asked for:\n{lock}"
        );
    }
    // The arm64 manifest, not the index, with a note saying where it came from.
    let arm64 = multi.children[1].digest().to_string();
    assert!(
        lock.contains(&format!(
            "\"{arm64}\": [\"1.0\"]  # linux/arm64 of {}",
            multi.digest()
        )),
        "{lock}"
    );
    assert!(
        out.stderr.contains("pinned the linux/arm64 manifest"),
        "{}",
        out.stderr
    );

    // The lock is an ordinary CIP manifest: review it, promote it.
    let run = w
        .run_async(&["run", "--manifest", "lock.yaml", "--confirm"])
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    let promoted = format!("docker://{}/mirror/multi:1.0", w.dst_host());
    if let Some(raw) = skopeo::inspect_raw_async(&promoted).await {
        assert_eq!(raw, multi.children[1].manifest.bytes.to_vec());
    }
    let listed = w
        .run_async(&["list", "target", "--manifest", "lock.yaml"])
        .await;
    assert_eq!(listed.code, 0, "{}", listed.all());
    assert!(
        listed.stdout.contains(&format!(
            "{}/mirror/tool:1.2.0@{}",
            w.dst_host(),
            pinned("1.2.0")
        )),
        "{}",
        listed.stdout
    );

    // Pinning again with nothing new upstream writes the same bytes.
    let again = w
        .run_async(&["pin", "intent.yaml", "--out", "lock.yaml"])
        .await;
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(w.read("lock.yaml"), lock, "pinning is deterministic");

    // Upstream releases 1.3.0 and 2.1.0, and re-points 1.2.0.
    let new_release = TestImage::single_layer(1720, 300);
    let repointed = TestImage::single_layer(1721, 300);
    let next_major = TestImage::single_layer(1722, 300);
    w.push("stage/tool", &new_release, &["1.3.0"]).await;
    w.push("stage/tool", &next_major, &["2.1.0"]).await;
    w.push("stage/tool", &repointed, &["1.2.0"]).await;
    let outdated = w.run_async(&["outdated", "--manifest", "lock.yaml"]).await;
    assert_eq!(outdated.code, 1, "{}", outdated.all());
    assert!(
        outdated
            .stdout
            .contains("/stage/tool  1.3.0, 2.1.0 (newest pinned 2.0.0)"),
        "{}",
        outdated.stdout
    );
    // The lock as it is, without saying what it is: the same answer.
    let positional = w.run_async(&["outdated", "lock.yaml"]).await;
    assert_eq!(positional.code, 1, "{}", positional.all());
    assert_eq!(positional.stdout, outdated.stdout);

    let repin = w
        .run_async(&["pin", "intent.yaml", "--out", "lock.yaml"])
        .await;
    assert_eq!(repin.code, 0, "{}", repin.all());
    let lock = w.read("lock.yaml");
    assert!(
        lock.contains(&format!("\"{}\": [\"1.3.0\"]", new_release.digest())),
        "the new release is added:\n{lock}"
    );
    assert!(
        lock.contains(&format!("\"{}\": [\"2.1.0\"]", next_major.digest())),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("\"{}\": [\"1.2.0\"]", pinned("1.2.0"))),
        "the reviewed 1.2.0 stays:\n{lock}"
    );
    assert!(!lock.contains(repointed.digest().as_str()), "{lock}");
    assert!(
        lock.contains(&format!("\"{}\": [\"1.1.0\"]", pinned("1.1.0"))),
        "what the lock had stays, even out of `latest: 2`:\n{lock}"
    );
    assert!(repin.stderr.contains("now points at"), "{}", repin.stderr);
}

/// A bad selector is reported at its line before anything is read; a tag
/// the source lacks fails the pin, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_intents_write_nothing() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    w.push("stage/app", &TestImage::single_layer(1730, 100), &["1.0"])
        .await;
    let head = format!(
        "registries:\n- name: {}/stage\n  src: true\n- name: {}/mirror\nimages:\n",
        w.src_host(),
        w.dst_host()
    );
    w.write(
        "bad.yaml",
        format!("{head}- name: app\n  semver: \">=1.0 <<2\"\n"),
    );
    let out = w
        .run_async(&["pin", "bad.yaml", "--out", "lock.yaml"])
        .await;
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("bad.yaml:7:11: error:"),
        "{}",
        out.stderr
    );
    assert!(!w.path().join("lock.yaml").exists());
    assert_eq!(
        w.src_proxy.count("GET", "/tags/list"),
        0,
        "nothing was read"
    );

    w.write(
        "missing.yaml",
        format!("{head}- name: app\n  tags: [\"1.0\", \"9.9\"]\n"),
    );
    let out = w
        .run_async(&["pin", "missing.yaml", "--out", "lock.yaml"])
        .await;
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(
        out.stderr.contains("app:9.9 does not exist in the source"),
        "{}",
        out.stderr
    );
    assert!(!w.path().join("lock.yaml").exists());
}

/// `promoter import kubernetes`: the bundled tree of every kind imports to
/// the golden intent; importing again into it changes nothing, and an
/// image added to the YAML is added to the intent, keeping its edits.
/// `UPDATE_GOLDEN=1` rewrites `testdata/kubernetes/expected-intent.yaml`.
#[test]
fn kubernetes_yaml_imports_to_the_golden_intent_and_updates_it() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let golden = repo.join("testdata/kubernetes/expected-intent.yaml");
    let work = crate::support::cli::Workdir::new();
    std::os::unix::fs::symlink(repo.join("testdata/kubernetes"), work.path().join("k8s")).unwrap();
    let import = [
        "import",
        "kubernetes",
        "k8s",
        "--target",
        "registry.example/mirror",
    ];
    let out = work.run(&import);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr
            .contains("warning: docker.io/busybox:latest has no tag"),
        "{}",
        out.stderr
    );
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &out.stdout).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(out.stdout, expected, "UPDATE_GOLDEN=1 to accept");

    // Into a file, then again: the same bytes.
    work.write("intent.yaml", &expected);
    let again = work.run(&[&import[..], &["--out", "intent.yaml"]].concat());
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(work.read("intent.yaml"), expected);

    // An edit to the intent stays; a new image in the YAML is added.
    let edited =
        expected.clone() + "- name: grafana/grafana\n  semver: \">=10.0.0\"\n  latest: 1\n";
    work.write("intent.yaml", &edited);
    work.write(
        "extra.yaml",
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: grafana/grafana:10.2.3\n",
    );
    let update = work.run(&[
        "import",
        "kubernetes",
        "k8s",
        "extra.yaml",
        "--out",
        "intent.yaml",
    ]);
    assert_eq!(update.code, 0, "{}", update.all());
    let updated = work.read("intent.yaml");
    assert!(
        updated.starts_with(&edited),
        "what was there stays:\n{updated}"
    );
    assert!(
        updated.ends_with("- name: grafana/grafana\n  tags: [\"10.2.3\"]\n"),
        "{updated}"
    );

    // Bad YAML: every problem at its line, and nothing is written.
    work.write(
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: Nginx:1\n",
    );
    let bad = work.run(&["import", "kubernetes", "bad.yaml", "--out", "intent.yaml"]);
    assert_eq!(bad.code, 1, "{}", bad.all());
    assert!(
        bad.stderr.contains("bad.yaml:5:12: error: invalid image"),
        "{}",
        bad.stderr
    );
    assert_eq!(work.read("intent.yaml"), updated);
}

/// `follow: ["latest"]`: pinning again moves `latest` to what upstream has
/// now (and only it), and `run` shows one `move`, carries it out, and has
/// nothing left to do after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_tag_moves_with_its_source_and_run_shows_the_move() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let first = TestImage::single_layer(1740, 200);
    w.push("stage/app", &first, &["1.0", "latest"]).await;
    let intent = format!(
        "registries:\n- name: {}/stage\n  src: true\n- name: {}/mirror\nimages:\n\
         - name: app\n  tags: [\"1.0\", \"latest\"]\n  follow: [\"latest\"]\n",
        w.src_host(),
        w.dst_host()
    );
    w.write("intent.yaml", &intent);
    let pin = w
        .run_async(&["pin", "intent.yaml", "--out", "lock.yaml"])
        .await;
    assert_eq!(pin.code, 0, "{}", pin.all());
    let lock = w.read("lock.yaml");
    assert!(
        lock.contains(&format!(
            "- name: app\n  follow: [\"latest\"]\n  dmap:\n    \"{}\": [\"1.0\", \"latest\"]\n",
            first.digest()
        )),
        "{lock}"
    );
    let run = w
        .run_async(&["run", "--manifest", "lock.yaml", "--confirm"])
        .await;
    assert_eq!(run.code, 0, "{}", run.all());

    // Upstream re-points both tags; only the followed one moves.
    let second = TestImage::single_layer(1741, 200);
    w.push("stage/app", &second, &["1.0", "latest"]).await;
    let repin = w
        .run_async(&["pin", "intent.yaml", "--out", "lock.yaml"])
        .await;
    assert_eq!(repin.code, 0, "{}", repin.all());
    assert!(
        repin.stderr.contains(&format!(
            "app:latest follows its source: moved from {} to {}",
            first.digest(),
            second.digest()
        )),
        "{}",
        repin.stderr
    );
    assert!(
        repin.stderr.contains("app:1.0 now points at"),
        "{}",
        repin.stderr
    );
    let lock = w.read("lock.yaml");
    assert!(
        lock.contains(&format!("\"{}\": [\"1.0\"]\n", first.digest()))
            && lock.contains(&format!("\"{}\": [\"latest\"]\n", second.digest())),
        "{lock}"
    );

    let dry = w
        .run_async(&["run", "--manifest", "lock.yaml", "--wide"])
        .await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(
        dry.stdout.contains("plan: 1 copy, 0 tag, 1 move,"),
        "{}",
        dry.stdout
    );
    let moves: Vec<&str> = dry
        .stdout
        .lines()
        .filter(|l| l.starts_with("move "))
        .collect();
    assert_eq!(moves.len(), 1, "{}", dry.stdout);
    assert!(moves[0].contains("/mirror/app:latest"), "{}", moves[0]);
    assert!(
        moves[0].contains(first.digest().as_str()),
        "the move names where the tag was: {}",
        moves[0]
    );

    let run = w
        .run_async(&["run", "--manifest", "lock.yaml", "--confirm"])
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
    let latest = format!("docker://{}/mirror/app:latest", w.dst_host());
    if let Some(raw) = skopeo::inspect_raw_async(&latest).await {
        assert_eq!(raw, second.manifest.bytes.to_vec(), "latest moved");
    }
    let pinned = format!("docker://{}/mirror/app:1.0", w.dst_host());
    if let Some(raw) = skopeo::inspect_raw_async(&pinned).await {
        assert_eq!(raw, first.manifest.bytes.to_vec(), "1.0 never moves");
    }
    let after = w.run_async(&["run", "--manifest", "lock.yaml"]).await;
    assert_eq!(after.code, 0, "{}", after.all());
    assert!(
        after.stdout.contains("plan: 0 copy, 0 tag, 0 lost"),
        "{}",
        after.stdout
    );
}

/// A selection that matches no tag leaves its image out of the lock with a
/// warning naming the entry's line, so `run` still takes the lock (an
/// empty `dmap` would make it refuse the whole file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_matching_nothing_is_left_out_with_a_warning_naming_it() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let app = TestImage::single_layer(1750, 200);
    w.push("stage/app", &app, &["1.0"]).await;
    w.push("stage/tool", &TestImage::single_layer(1751, 200), &["1.0"])
        .await;
    let intent = format!(
        "registries:\n- name: {}/stage\n  src: true\n- name: {}/mirror\nimages:\n\
         - name: app\n  tags: [\"1.0\"]\n- name: tool\n  semver: \">=9.0.0\"\n",
        w.src_host(),
        w.dst_host()
    );
    w.write("intent.yaml", &intent);
    let pin = w
        .run_async(&["pin", "intent.yaml", "--out", "lock.yaml"])
        .await;
    assert_eq!(pin.code, 0, "{}", pin.all());
    assert!(
        pin.stderr.contains("intent.yaml:8:")
            && pin.stderr.contains("no tag of")
            && pin.stderr.contains("/stage/tool matches its selection"),
        "{}",
        pin.stderr
    );
    let lock = w.read("lock.yaml");
    assert!(!lock.contains("name: tool"), "{lock}");
    let run = w
        .run_async(&["run", "--manifest", "lock.yaml", "--confirm"])
        .await;
    assert_eq!(run.code, 0, "{}", run.all());
}
