//! Mirroring by tag, the declarative way, through the binary on real
//! registries: an intent pinned into a lock, reviewed as any CIP manifest,
//! promoted; pinned again, byte for byte the same; what upstream does next.

use promoter::oci::media_type;

use crate::support::images::{Flavor, Platform, TestImage};
use crate::support::proxy::{Action, Rule};
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

/// An intent from the world's source `stage` to its destination `mirror`,
/// with `images` (the `images:` entries) after the registries: the first
/// image's `- name:` is line 6.
fn intent_of(w: &World, images: &str) -> String {
    format!(
        "registries:\n- name: {}/stage\n  src: true\n- name: {}/mirror\nimages:\n{images}",
        w.src_host(),
        w.dst_host()
    )
}

/// A digest new to the lock is read with a GET and hashed before it is
/// written: a source whose HEAD for `app:2.0` names other bytes than it
/// serves is refused at `pin` (and at each cycle of `watch --intent`),
/// naming the entry's line, the reference and both digests, exit 1, and
/// the lock stays as it was. What the lock already pins is only HEADed:
/// pinning again with nothing new sends no GET (Docker Hub meters them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_hashes_what_enters_the_lock_and_only_heads_what_it_has() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let one = TestImage::single_layer(1760, 200);
    let two = TestImage::single_layer(1761, 200);
    let named = TestImage::single_layer(1762, 200);
    w.push("stage/app", &one, &["1.0"]).await;
    w.push("stage/app", &two, &["2.0"]).await;
    w.write(
        "intent.yaml",
        intent_of(&w, "- name: app\n  tags: [\"1.0\"]\n"),
    );
    let pin = ["pin", "intent.yaml", "--out", "lock.yaml"];
    let first = w.run_async(&pin).await;
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(
        w.src_proxy.count("GET", "/stage/app/manifests/1.0"),
        1,
        "a digest new to the lock is read:\n{}",
        w.dumps()
    );
    let lock = w.read("lock.yaml");

    w.src_proxy.clear_log();
    let again = w.run_async(&pin).await;
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(w.read("lock.yaml"), lock);
    assert_eq!(
        w.src_proxy.count("GET", "/manifests/"),
        0,
        "what the lock has is not read again:\n{}",
        w.dumps()
    );
    assert_eq!(w.src_proxy.count("HEAD", "/stage/app/manifests/1.0"), 1);

    // The source's HEAD for 2.0 names a digest whose bytes it does not serve.
    w.src_proxy.add(
        Rule::new("HEAD", "/stage/app/manifests/2.0")
            .always()
            .action(
                Action::status(200)
                    .header("Docker-Content-Digest", named.digest().as_str())
                    .header("Content-Type", media_type::OCI_MANIFEST)
                    .header("Content-Length", &named.size().to_string()),
            ),
    );
    w.write(
        "intent.yaml",
        intent_of(&w, "- name: app\n  tags: [\"1.0\", \"2.0\"]\n"),
    );
    let lied = w.run_async(&pin).await;
    assert_eq!(lied.code, 1, "{}", lied.all());
    let said = format!(
        "intent.yaml:6:3: {}/stage/app:2.0: the source names {}, but the manifest it serves \
         hashes to {}",
        w.src_host(),
        named.digest(),
        two.digest()
    );
    assert!(lied.stderr.contains(&said), "{}", lied.stderr);
    assert!(
        lied.stderr.contains("nothing was written"),
        "{}",
        lied.stderr
    );
    assert_eq!(w.read("lock.yaml"), lock, "the lock is left as it was");

    // `watch --intent` pins through the same checks.
    let watch = w
        .run_async(&[
            "watch",
            "--intent",
            "intent.yaml",
            "--manifest",
            "lock.yaml",
            "--interval",
            "1s",
            "--cycles",
            "1",
        ])
        .await;
    assert!(watch.stderr.contains(&said), "{}", watch.all());
    assert_eq!(w.read("lock.yaml"), lock);

    // An honest source: 2.0 is added.
    w.src_proxy.clear_rules();
    let honest = w.run_async(&pin).await;
    assert_eq!(honest.code, 0, "{}", honest.all());
    let lock = w.read("lock.yaml");
    assert!(
        lock.contains(&format!("\"{}\": [\"2.0\"]", two.digest())),
        "{lock}"
    );
    assert!(!lock.contains(named.digest().as_str()), "{lock}");
}

/// With `platforms:`, the index's manifest for the platform is checked in
/// the source: one it does not have fails the pin, naming the platform, the
/// index and the entry's line (HEADed only, once the lock has it), and one
/// that is itself an index is refused as not an image manifest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_manifest_is_checked_in_the_source() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let platforms = [Platform::linux("amd64"), Platform::linux("arm64")];
    let multi = TestImage::multi_arch(1770, Flavor::Oci, &platforms, 200);
    w.push("stage/multi", &multi, &["1.0"]).await;
    let mut inner = TestImage::multi_arch(1771, Flavor::Oci, &platforms[1..], 200);
    inner.platform = Some(Platform::linux("arm64"));
    let nested = TestImage::index_of(
        Flavor::Oci,
        vec![TestImage::single_layer(1772, 200), inner.clone()],
    );
    w.push("stage/nested", &nested, &["1.0"]).await;
    let arm64 = multi.children[1].digest().to_string();
    let entry =
        |name: &str| format!("- name: {name}\n  tags: [\"1.0\"]\n  platforms: [\"linux/arm64\"]\n");
    w.write("intent.yaml", intent_of(&w, &entry("multi")));
    let pin = ["pin", "intent.yaml", "--out", "lock.yaml"];
    let first = w.run_async(&pin).await;
    assert_eq!(first.code, 0, "{}", first.all());
    assert_eq!(
        w.src_proxy.count("GET", &format!("/manifests/{arm64}")),
        1,
        "the new child is read and hashed:\n{}",
        w.dumps()
    );
    let lock = w.read("lock.yaml");

    // The source loses the arm64 manifest its index lists.
    w.src_proxy.clear_log();
    for method in ["HEAD", "GET"] {
        w.src_proxy.add(
            Rule::new(method, &format!("/stage/multi/manifests/{arm64}"))
                .always()
                .action(Action::status(404)),
        );
    }
    let lost = w.run_async(&pin).await;
    assert_eq!(lost.code, 4, "{}", lost.all());
    assert!(
        lost.stderr.contains(&format!(
            "intent.yaml:6:3: {}/stage/multi:1.0: the index {} lists {arm64} for linux/arm64, \
             and the source does not have it",
            w.src_host(),
            multi.digest()
        )),
        "{}",
        lost.stderr
    );
    assert_eq!(w.src_proxy.count("HEAD", &format!("/manifests/{arm64}")), 1);
    assert_eq!(
        w.src_proxy.count("GET", &format!("/manifests/{arm64}")),
        0,
        "a child the lock has is only HEADed:\n{}",
        w.dumps()
    );
    assert_eq!(w.read("lock.yaml"), lock);

    // An index whose arm64 entry is an index again.
    w.src_proxy.clear_rules();
    w.write("nested.yaml", intent_of(&w, &entry("nested")));
    let refused = w
        .run_async(&["pin", "nested.yaml", "--out", "nested.lock.yaml"])
        .await;
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains(&format!(
            "nested.yaml:6:3: {}/stage/nested:1.0: the linux/arm64 manifest {} of the index {} \
             is not an image manifest ({})",
            w.src_host(),
            inner.digest(),
            nested.digest(),
            media_type::OCI_INDEX
        )),
        "{}",
        refused.stderr
    );
    assert!(!w.path().join("nested.lock.yaml").exists());
}

/// Tags a source lists that pin leaves out are quoted escaped and cut: a
/// tag with a right-to-left override (U+202E, which would show `exe.png`
/// as `gnp.exe`) shows as `\u{202e}`, a 100,000-character one as its start
/// and a count of the rest; `-v` lists the tags the selection leaves out.
/// The real registry refuses such tags, so a hostile listing stands in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tag_names_are_shown_escaped_and_cut() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let app = TestImage::single_layer(1780, 200);
    w.push("stage/app", &app, &["1.0"]).await;
    let long = "a".repeat(100_000);
    let listing = serde_json::json!({
        "name": "stage/app",
        "tags": ["1.0", "2.0", "evil\u{202e}gnp.exe", long],
    });
    w.src_proxy.add(
        Rule::new("GET", "/stage/app/tags/list").always().action(
            Action::status(200)
                .header("Content-Type", "application/json")
                .with_body(listing.to_string()),
        ),
    );
    w.write(
        "intent.yaml",
        intent_of(&w, "- name: app\n  regex: \"^1\\\\.\"\n"),
    );
    let out = w
        .run_async(&["pin", "-v", "intent.yaml", "--out", "lock.yaml"])
        .await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(w.read("lock.yaml").contains(app.digest().as_str()));
    assert!(
        out.stderr.contains("evil\\u{202e}gnp.exe") && !out.stderr.contains('\u{202e}'),
        "{}",
        out.stderr
    );
    let kept = promoter::limits::QUOTED_TEXT_CHARS;
    let rest = 100_000 - kept;
    let cut = format!(
        "{}…({},{:03} more characters)",
        "a".repeat(kept),
        rest / 1000,
        rest % 1000
    );
    assert!(out.stderr.contains(&cut), "{}", out.stderr);
    assert!(!out.stderr.contains(&"a".repeat(kept + 1)));
    assert!(
        out.stderr
            .contains("the selection leaves out 1 listed tag(s): 2.0"),
        "{}",
        out.stderr
    );
}
