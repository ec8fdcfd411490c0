//! Hostile sources and destinations, through the binary: a registry (the
//! real one, behind the proxy's hostile actions), a token service of our
//! own, `oci:` trees with planted files and links. One test per class of
//! attack; each shows a clear error (or the right behaviour), that nothing
//! is tagged on incomplete content and nothing is written outside the
//! destination. Time is bounded by construction (every run here would hang
//! or grow without its bound; the harness kills a run after 180 s and fails
//! the test); memory bounds are stated in README's "Safety".

use std::path::Path;
use std::time::Duration;

use promoter::oci::RawManifest;
use serde_json::Value;

use crate::support::cli::{Out, Workdir};
use crate::support::hostile::{TokenAnswer, TokenService};
use crate::support::images::{
    blob_path, cosign_tag, repo_dir, write_oci_layout, Flavor, TestImage,
};
use crate::support::proxy::{Action, Proxy, Rule};
use crate::support::registry::{Config, TestRegistry};
use crate::support::world::{images_yaml, manifest_yaml, World};

/// `--output json` of a run, parsed.
fn report(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()))
}

/// The failure kinds of a JSON report's failed edges.
fn failure_kinds(report: &Value) -> Vec<String> {
    report["execution"]["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["outcome"]["kind"].as_str().map(str::to_string))
        .collect()
}

/// Every PUT of a manifest under `tag` the destination proxy forwarded.
fn tag_puts(w: &World<impl Sized>, tag: &str) -> usize {
    w.dst_proxy.count("PUT", &format!("/manifests/{tag}"))
}

const CONFIRM_JSON: [&str; 7] = [
    "run",
    "--manifest",
    "m.yaml",
    "--confirm",
    "--registry-config",
    "options.json",
    "--output=json",
];

// ---------------------------------------------------------------- 1. depth

/// An index of an index of ... (ten levels): the copy stops at the depth
/// limit with an error that says so, instead of recursing until the stack
/// overflows; nothing is tagged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_nested_past_the_limit_fail_their_copy_not_the_process() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let mut deep = TestImage::single_layer(900, 1000);
    for _ in 0..10 {
        deep = TestImage::index_of(Flavor::Oci, vec![deep]);
    }
    w.push("stage/deep", &deep, &["1.0"]).await;
    w.manifest("m.yaml", &images_yaml(&[("deep", deep.digest(), &["1.0"])]));
    let out = w.run_async(&CONFIRM_JSON).await;
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(
        out.all().contains("nest more than 8 levels"),
        "{}",
        out.all()
    );
    assert!(failure_kinds(&report(&out)).contains(&"limit".to_string()));
    assert_eq!(tag_puts(&w, "1.0"), 0, "{}", w.dumps());
}

// ---------------------------------------------------------------- 2. bodies

/// A registry whose token service answers without end: the token read
/// stops at its cap (1 MiB) with an error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_token_answer_stops_at_its_cap() {
    let Some(registry) = TestRegistry::start(Config::default()).await else {
        return;
    };
    let tokens = TokenService::start(TokenAnswer::Endless).await;
    let proxy = bearer_proxy(&registry, &tokens.realm("127.0.0.1")).await;
    let work = Workdir::new();
    let out = work.run_async(&["run", "--snapshot", &proxy.host()]).await;
    assert_eq!(out.code, 4, "a registry that cannot be read: {}", out.all());
    assert!(
        out.stderr.contains("answer larger than 1048576 bytes"),
        "{}",
        out.all()
    );
}

/// A tag listing whose `Link: rel="next"` never ends: the listing stops at
/// its bound (500,000 names) with an error, instead of growing memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_listing_stops_at_its_bound() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    w.push("endless/app", &TestImage::single_layer(901, 100), &["1.0"])
        .await;
    w.src_proxy.add(
        Rule::new("GET", "/tags/list")
            .always()
            .action(Action::EndlessPages {
                field: "tags".into(),
                per_page: 1000,
            }),
    );
    let root = format!("{}/endless", w.src_host());
    let out = w.run_async(&["run", "--snapshot", &root]).await;
    assert_eq!(out.code, 4, "a registry that cannot be read: {}", out.all());
    assert!(
        out.stderr
            .contains("listing returns more than 500000 names"),
        "{}",
        out.all()
    );
    assert!(w.src_proxy.count("GET", "/tags/list") <= 502);
}

// -------------------------------------------------- 2 and 4. hostile oci: trees

/// An `oci:` source whose files are not what they claim: an index.json
/// that links to /dev/zero, one of 500 MB (sparse), one that is a FIFO, a
/// blob that is a FIFO, a blob that links out of the tree. Each image fails
/// with its own clear error, at once (a FIFO is never opened for a blocking
/// read, nothing is read whole); the good image is promoted, and nothing
/// else reaches the destination.
#[cfg(unix)]
#[test]
fn an_oci_source_with_planted_files_fails_those_images_only() {
    let work = Workdir::new();
    let src = work.path().join("src");
    let good = TestImage::single_layer(910, 100);
    let fifo_blob = TestImage::single_layer(911, 100);
    let escaping = TestImage::single_layer(912, 100);
    write_oci_layout(&src, "good", &[(&good, Some("1.0"))]).unwrap();
    for repo in ["zero", "huge", "fifo"] {
        write_oci_layout(&src, repo, &[(&good, Some("1.0"))]).unwrap();
    }
    let index = |repo: &str| repo_dir(&src, repo).join("index.json");
    std::fs::remove_file(index("zero")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", index("zero")).unwrap();
    std::fs::File::create(index("huge"))
        .unwrap()
        .set_len(500 << 20)
        .unwrap();
    std::fs::remove_file(index("fifo")).unwrap();
    mkfifo(&index("fifo"));
    write_oci_layout(&src, "fifoblob", &[(&fifo_blob, Some("1.0"))]).unwrap();
    let layer = blob_path(&src, "fifoblob", &fifo_blob.layers[0].digest);
    std::fs::remove_file(&layer).unwrap();
    mkfifo(&layer);
    write_oci_layout(&src, "escape", &[(&escaping, Some("1.0"))]).unwrap();
    let secret = work.write("secret-outside-the-tree", b"not yours");
    let layer = blob_path(&src, "escape", &escaping.layers[0].digest);
    std::fs::remove_file(&layer).unwrap();
    std::os::unix::fs::symlink(&secret, &layer).unwrap();

    let entries = images_yaml(&[
        ("good", good.digest(), &["1.0"]),
        ("zero", good.digest(), &["1.0"]),
        ("huge", good.digest(), &["1.0"]),
        ("fifo", good.digest(), &["1.0"]),
        ("fifoblob", fifo_blob.digest(), &["1.0"]),
        ("escape", escaping.digest(), &["1.0"]),
    ]);
    work.write("m.yaml", manifest_yaml("oci:src", "oci:dst", &entries));
    let out = work
        .promoter()
        .args(["run", "--manifest", "m.yaml", "--confirm"])
        .timeout(Duration::from_secs(60))
        .run();
    assert_eq!(out.code, 4, "{}", out.all());
    let all = out.all();
    for expected in [
        "zero/index.json: resolves to /dev/zero, outside the oci: tree",
        "huge/index.json: index.json of 524288000 bytes is larger than",
        "fifo/index.json: is not a regular file",
        "is not a regular file",
        "outside the oci: tree",
    ] {
        assert!(all.contains(expected), "{expected:?} missing:\n{all}");
    }
    let dst = work.path().join("dst");
    assert!(repo_dir(&dst, "good").join("index.json").is_file());
    for repo in ["zero", "huge", "fifo", "fifoblob", "escape"] {
        assert!(
            !repo_dir(&dst, repo).join("index.json").exists(),
            "{repo} was tagged"
        );
    }
    // The secret's bytes went nowhere.
    assert!(!blob_path(&dst, "escape", &escaping.layers[0].digest).exists());
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

// ---------------------------------------------------------------- 3. time

/// A body trickled a byte a second, and an answer that never comes: both
/// fail within the pace window and the request timeout (1 s each here;
/// `min_bytes_per_second`, `pace_window_secs`, `request_timeout_secs`), are
/// retried within the retry deadline, and fail their own edges only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_and_withheld_answers_fail_within_their_deadlines() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let slow = TestImage::single_layer(920, 2000);
    let silent = TestImage::single_layer(921, 2000);
    let fine = TestImage::single_layer(922, 2000);
    w.push("stage/slow", &slow, &["1.0"]).await;
    w.push("stage/silent", &silent, &["1.0"]).await;
    w.push("stage/fine", &fine, &["1.0"]).await;
    w.set_options(
        r#"{"min_bytes_per_second": 1000, "pace_window_secs": 1, "request_timeout_secs": 1,
            "retry_deadline_secs": 3}"#,
    );
    let slow_layer = format!("/stage/slow/blobs/{}", slow.layers[0].digest);
    w.src_proxy.add(
        Rule::new("GET", &slow_layer)
            .always()
            .action(Action::Trickle(Duration::from_secs(1))),
    );
    w.src_proxy.add(
        Rule::new("GET", "/stage/silent/manifests/")
            .always()
            .action(Action::Delay(Duration::from_secs(3600))),
    );
    w.manifest(
        "m.yaml",
        &images_yaml(&[
            ("slow", slow.digest(), &["1.0"]),
            ("silent", silent.digest(), &["1.0"]),
            ("fine", fine.digest(), &["1.0"]),
        ]),
    );
    let out = w
        .promoter()
        .args(CONFIRM_JSON)
        .timeout(Duration::from_secs(120))
        .run_async()
        .await;
    assert_eq!(out.code, 4, "{}", out.all());
    let all = out.all();
    assert!(all.contains("below the floor of 1000 bytes/s"), "{all}");
    assert!(all.contains("no answer within 1 s"), "{all}");
    assert_eq!(tag_puts(&w, "1.0"), 1, "only fine is tagged: {}", w.dumps());
}

// ---------------------------------------------------------------- 6. readers

/// A manifest whose `layers` key is spelled `Layers`: registries and skopeo
/// (Go) read its layer, serde would not. It is refused, not copied without
/// its layer, to a registry and to an `oci:` tree alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_other_readers_see_differently_is_refused() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let mut sly = TestImage::single_layer(930, 1000);
    let text = String::from_utf8(sly.manifest.bytes.to_vec()).unwrap();
    sly.manifest = RawManifest::new(
        text.replacen("\"layers\"", "\"Layers\"", 1),
        sly.manifest.media_type.clone(),
    );
    w.push("stage/sly", &sly, &["1.0"]).await;
    let entries = images_yaml(&[("sly", sly.digest(), &["1.0"])]);
    w.manifest("m.yaml", &entries);
    let out = w.run_async(&CONFIRM_JSON).await;
    assert_eq!(out.code, 4, "{}", out.all());
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let failure = &report["execution"]["results"][0]["outcome"]["error"];
    assert!(
        failure
            .as_str()
            .is_some_and(|e| e.contains("\"Layers\" differs from \"layers\" only in case")),
        "{}",
        out.all()
    );
    assert_eq!(tag_puts(&w, "1.0"), 0, "{}", w.dumps());
    w.write(
        "to-oci.yaml",
        manifest_yaml(&format!("{}/stage", w.src_host()), "oci:out", &entries),
    );
    let out = w
        .run_async(&["run", "--manifest", "to-oci.yaml", "--confirm"])
        .await;
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(!w.path().join("out/sly/index.json").exists());

    // Two "layers" keys: Go reads the last (an empty list), a first-key
    // reader the layer. Refused, naming the key.
    let mut twice = TestImage::single_layer(931, 1000);
    let text = String::from_utf8(twice.manifest.bytes.to_vec()).unwrap();
    let end = text.rfind('}').unwrap();
    twice.manifest = RawManifest::new(
        format!("{},\"layers\":[]}}", &text[..end]),
        twice.manifest.media_type.clone(),
    );
    w.push("stage/twice", &twice, &["1.0"]).await;
    w.manifest(
        "twice.yaml",
        &images_yaml(&[("twice", twice.digest(), &["1.0"])]),
    );
    let out = w
        .run_async(&["run", "--manifest", "twice.yaml", "--confirm", "--wide"])
        .await;
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(
        out.all()
            .contains("key \"layers\" appears twice in one object"),
        "{}",
        out.all()
    );
}

// ---------------------------------------------------------------- 7. attachments

/// An ordinary image pushed under the tag cosign uses for the image's
/// signature is no signature: the image is promoted, the impostor stays
/// behind and is counted as skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_under_a_signature_tag_does_not_follow_as_a_signature() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let app = TestImage::single_layer(940, 1000);
    let impostor = TestImage::single_layer(941, 1000);
    let sig_tag = cosign_tag(app.digest(), "sig");
    w.push("stage/app", &app, &["1.0"]).await;
    w.push("stage/app", &impostor, &[&sig_tag]).await;
    w.manifest("m.yaml", &images_yaml(&[("app", app.digest(), &["1.0"])]));
    let out = w.run_async(&CONFIRM_JSON).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let report = report(&out);
    assert_eq!(report["counts"]["attachments_skipped"], 1);
    assert_eq!(report["execution"]["stats"]["attachments_copied"], 0);
    assert!(
        out.stderr.contains("not copied as an attachment"),
        "{}",
        out.all()
    );
    assert_eq!(tag_puts(&w, &sig_tag), 0, "{}", w.dumps());
    assert_eq!(tag_puts(&w, "1.0"), 1);
}

// ---------------------------------------------------------------- 8. amplification

/// An index that lists one child a thousand times: the child is written
/// once, not a thousand times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_listed_a_thousand_times_is_written_once() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let child = TestImage::single_layer(950, 1000);
    let mut index = TestImage::index_of(Flavor::Oci, vec![child.clone()]);
    let mut body: Value = serde_json::from_slice(&index.manifest.bytes).unwrap();
    let entry = body["manifests"][0].clone();
    body["manifests"] = Value::Array(vec![entry; 1000]);
    index.manifest = RawManifest::new(
        serde_json::to_vec(&body).unwrap(),
        index.manifest.media_type.clone(),
    );
    w.push("stage/many", &index, &["1.0"]).await;
    w.manifest(
        "m.yaml",
        &images_yaml(&[("many", index.digest(), &["1.0"])]),
    );
    let out = w.run_async(&CONFIRM_JSON).await;
    assert_eq!(out.code, 0, "{}", out.all());
    let child_puts = w
        .dst_proxy
        .count("PUT", &format!("/manifests/{}", child.digest()));
    assert_eq!(child_puts, 1, "{}", w.dumps());
}

// ---------------------------------------------------------------- 9. sizes

/// A manifest body past the 4 MiB limit (the one limit for reads and
/// writes, registry or `oci:` alike) is refused as it arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_past_the_limit_is_refused_as_it_arrives() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let big = TestImage::single_layer(960, 100);
    w.push("stage/big", &big, &["1.0"]).await;
    w.src_proxy.add(
        Rule::new("GET", "/stage/big/manifests/").always().action(
            Action::status(200)
                .header("Content-Type", promoter::oci::media_type::OCI_MANIFEST)
                .with_body(" ".repeat(5 << 20)),
        ),
    );
    w.manifest("m.yaml", &images_yaml(&[("big", big.digest(), &["1.0"])]));
    let out = w.run_async(&CONFIRM_JSON).await;
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(
        out.all().contains("answer larger than 4194304 bytes"),
        "{}",
        out.all()
    );
    assert!(failure_kinds(&report(&out)).contains(&"limit".to_string()));
    assert_eq!(tag_puts(&w, "1.0"), 0);
}

// ---------------------------------------------------------------- 10. paths

/// Links planted in an `oci:` destination: a repository's blob store that
/// links out of the tree is never written into, and a link planted at a
/// temp file's name is replaced, not followed. Nothing outside changes.
#[cfg(unix)]
#[test]
fn links_planted_in_a_destination_never_redirect_a_write() {
    let work = Workdir::new();
    let src = work.path().join("src");
    let app = TestImage::single_layer(970, 100);
    let tools = TestImage::single_layer(971, 100);
    write_oci_layout(&src, "app", &[(&app, Some("1.0"))]).unwrap();
    write_oci_layout(&src, "tools", &[(&tools, Some("1.0"))]).unwrap();
    let dst = work.path().join("dst");
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(repo_dir(&dst, "app")).unwrap();
    std::os::unix::fs::symlink(&outside, repo_dir(&dst, "app").join("blobs")).unwrap();
    let victim = work.write("victim", b"keep me");
    std::fs::create_dir_all(repo_dir(&dst, "tools")).unwrap();
    std::os::unix::fs::symlink(&victim, repo_dir(&dst, "tools").join(".tmp-index.json")).unwrap();
    let entries = images_yaml(&[
        ("app", app.digest(), &["1.0"]),
        ("tools", tools.digest(), &["1.0"]),
    ]);
    work.write("m.yaml", manifest_yaml("oci:src", "oci:dst", &entries));
    let out = work.run(&["run", "--manifest", "m.yaml", "--confirm"]);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(
        out.all().contains("refusing to write there"),
        "{}",
        out.all()
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert!(repo_dir(&dst, "tools").join("index.json").is_file());
    assert!(!repo_dir(&dst, "app").join("index.json").exists());
}

// ---------------------------------------------------------------- 12. lies

/// A destination that answers every write with success and stores
/// nothing: without `--verify-writes` the run believes it (as every client
/// does); with it, every edge fails as `not_stored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_a_registry_swallows_are_caught_by_verify_writes() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let app = TestImage::single_layer(980, 1000);
    w.push("stage/app", &app, &["1.0"]).await;
    for method in ["POST", "PATCH", "PUT"] {
        w.dst_proxy
            .add(Rule::new(method, "/prod/").always().action(Action::Swallow));
    }
    w.manifest("m.yaml", &images_yaml(&[("app", app.digest(), &["1.0"])]));
    let believed = w.run_async(&CONFIRM_JSON).await;
    assert_eq!(believed.code, 0, "{}", believed.all());
    let mut args = CONFIRM_JSON.to_vec();
    args.push("--verify-writes");
    let out = w.run_async(&args).await;
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(
        out.all().contains("accepted, but absent when read back"),
        "{}",
        out.all()
    );
    assert!(failure_kinds(&report(&out)).contains(&"not_stored".to_string()));
}

// ---------------------------------------------------------------- 13. credentials

/// A registry whose Bearer challenge names a token service on another host:
/// our credentials are withheld from it (the token is asked for
/// anonymously, and the log says why). The same service on the registry's
/// own host gets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_go_to_a_token_service_outside_the_registrys_domain() {
    let Some(registry) = TestRegistry::start(Config::default()).await else {
        return;
    };
    for (host, sent) in [("localhost", false), ("127.0.0.1", true)] {
        let tokens = TokenService::start(TokenAnswer::Token).await;
        let proxy = bearer_proxy(&registry, &tokens.realm(host)).await;
        let work = Workdir::new();
        let auth = registry.write_docker_config(Some(&proxy.host()));
        let out = work
            .run_async(&[
                "run",
                "--snapshot",
                &proxy.host(),
                "--auth-file",
                auth.to_str().unwrap(),
            ])
            .await;
        assert_eq!(out.code, 0, "{}", out.all());
        let calls = tokens.calls();
        assert!(
            calls.iter().any(|c| c.path.starts_with("/token?")),
            "the token service was asked: {calls:?}"
        );
        assert!(
            calls.iter().all(|c| c.authorization == sent),
            "realm on {host}: {calls:?}"
        );
        assert_eq!(
            out.stderr
                .contains("credentials withheld from the token service"),
            !sent,
            "{}",
            out.all()
        );
    }
}

/// A proxy in front of `registry` whose `/v2/` ping answers with a Bearer
/// challenge naming `realm` (the registry itself asks for nothing).
async fn bearer_proxy(registry: &TestRegistry, realm: &str) -> Proxy {
    let proxy = Proxy::start(&registry.host()).await;
    proxy.add(
        Rule::new("GET", "/v2/")
            .times(1)
            .action(Action::status(401).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="registry.test""#),
            )),
    );
    proxy
}

/// Files the user names are read the same bounded way: an auth file or a
/// registry options file that is a FIFO is refused at once, not waited on.
#[cfg(unix)]
#[test]
fn a_fifo_named_as_a_configuration_file_is_refused_without_blocking() {
    let work = Workdir::new();
    let fifo = work.path().join("fifo");
    mkfifo(&fifo);
    let fifo = fifo.to_str().unwrap();
    for flag in ["--auth-file", "--registry-config"] {
        let out = work
            .promoter()
            .args(["run", "--snapshot", "127.0.0.1:9/x", flag, fifo])
            .timeout(Duration::from_secs(60))
            .run();
        assert_eq!(out.code, 1, "{flag}: {}", out.all());
        assert!(
            out.stderr.contains("is not a regular file"),
            "{flag}: {}",
            out.all()
        );
    }
}

/// The same deep chain in an `oci:` source: the walk that finds index
/// children stops at the depth limit instead of recursing or re-walking.
#[test]
fn an_index_chain_in_an_oci_source_is_refused_at_the_depth_limit() {
    let work = Workdir::new();
    let mut deep = TestImage::single_layer(990, 100);
    for _ in 0..10 {
        deep = TestImage::index_of(Flavor::Oci, vec![deep]);
    }
    write_oci_layout(&work.path().join("src"), "deep", &[(&deep, Some("1.0"))]).unwrap();
    let entries = images_yaml(&[("deep", deep.digest(), &["1.0"])]);
    work.write("m.yaml", manifest_yaml("oci:src", "oci:dst", &entries));
    let out = work.run(&["run", "--manifest", "m.yaml", "--confirm"]);
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(
        out.all().contains("nest more than 8 levels"),
        "{}",
        out.all()
    );
    assert!(!work.path().join("dst/deep/index.json").exists());
}
