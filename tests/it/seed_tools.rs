//! The drop-in subcommands (`promoter image-syncer`, `promoter sinker`,
//! `promoter dregsy`) through the binary on real registries, with the
//! tools' own files (`testdata/seeds/<tool>/`, each with its SOURCE.txt)
//! and their documented expectations, read back with skopeo. The tools'
//! hosts are pointed at the loopback registries with the `endpoint`
//! registry option; real-world digests are replaced by the test images'.

use std::time::Duration;

use promoter::registry::remote::CredentialStore;
use promoter::registry::Registry;

use crate::seeds::{endpoints, holds, lacks, lock_text, pin_and_promote};
use crate::support::images::{At, Flavor, Platform, TestImage};
use crate::support::registry::{Auth, Config, TokenIssuer, JSON_KEY_USER, PASSWORD, USER};
use crate::support::skopeo;
use crate::support::world::World;

fn fixture(path: &str) -> String {
    let path = format!("{}/testdata/seeds/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The tags of `repo` in the destination, sorted.
async fn tags_of(w: &World, repo: &str) -> Vec<String> {
    let client = w.dst.remote(CredentialStore::anonymous());
    let mut tags = client.list_tags(&client.at(repo)).await.unwrap_or_default();
    tags.sort();
    tags
}

fn sorted(tags: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
    out.sort();
    out
}

const PYTHON: &str = "sha256:02da11a8d221ca167aa07de20b3cd7104c1f01227f4b02b1fa13cf6517280a81";
const REGISTRY: &str = "sha256:85347ed2ecde64161c7a4788a4d7d3dcc9d6f86f7be95834022e3c6a423a945a";

/// kyma's real external-images.yaml (no targetRepoPrefix), the prefix from
/// --target-repo-prefix or SYNCER_TARGET_REPO_PREFIX; every image at the
/// path image-syncer's getTarget computes (`library/` included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_syncer_plans_and_promotes_kymas_file_where_get_target_puts_it() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let alpine = TestImage::single_layer(2001, 100);
    let platforms = [Platform::linux("amd64"), Platform::linux("arm64")];
    let distroless = TestImage::multi_arch(2002, Flavor::Oci, &platforms, 100);
    let golang = TestImage::single_layer(2003, 100);
    let python = TestImage::single_layer(2004, 100);
    w.push("library/alpine", &alpine, &["3.24.1"]).await;
    w.push("distroless/static", &distroless, &["latest"]).await;
    w.push("library/golang", &golang, &["1.27.0-alpine3.23"])
        .await;
    w.push("library/python", &python, &[]).await;
    endpoints(&w, &["docker.io", "gcr.io"], &["eu.example"]);
    let file =
        fixture("image-syncer/external-images.yaml").replace(PYTHON, python.digest().as_str());
    w.write("external-images.yaml", file);
    let prefix = "eu.example/kyma/external/";
    let args = [
        "image-syncer",
        "--images-file",
        "external-images.yaml",
        "--target-repo-prefix",
        prefix,
        "--registry-config",
        "options.json",
    ];

    // --dry-run: every read, the plan at getTarget's paths, no write.
    let dry = w
        .promoter()
        .args(args)
        .args(["--dry-run"])
        .run_async()
        .await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    for path in [
        "kyma/external/library/alpine",
        "kyma/external/gcr.io/distroless/static",
        "kyma/external/library/golang",
        "kyma/external/library/python",
    ] {
        assert!(dry.stdout.contains(path), "{path}:\n{}", dry.stdout);
    }
    lacks(&w, "kyma/external/library/alpine:3.24.1").await;

    // Without --dry-run it promotes, as image-syncer pushes.
    let run = w.promoter().args(args).run_async().await;
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr.contains("all images synced successfully"),
        "{}",
        run.stderr
    );
    holds(&w, "kyma/external/library/alpine:3.24.1", &alpine).await;
    holds(
        &w,
        "kyma/external/gcr.io/distroless/static:latest",
        &distroless,
    )
    .await;
    holds(
        &w,
        "kyma/external/library/golang:1.27.0-alpine3.23",
        &golang,
    )
    .await;
    holds(
        &w,
        "kyma/external/library/python:3.14.6-alpine3.23",
        &python,
    )
    .await;
    lacks(&w, "kyma/external/alpine:3.24.1").await;

    // The same through SYNCER_* variables; SYNCER_DRY_RUN=true writes nothing.
    let env = |prefix: &str, dry: &str| {
        w.promoter()
            .args(["image-syncer", "--registry-config", "options.json"])
            .env("SYNCER_IMAGES_FILE", "external-images.yaml")
            .env("SYNCER_TARGET_REPO_PREFIX", prefix)
            .env("SYNCER_DRY_RUN", dry)
    };
    let out = env("eu.example/env-dry/", "true").run_async().await;
    assert_eq!(out.code, 0, "{}", out.all());
    lacks(&w, "env-dry/library/alpine:3.24.1").await;
    let out = env("eu.example/env/", "false").run_async().await;
    assert_eq!(out.code, 0, "{}", out.all());
    holds(&w, "env/library/alpine:3.24.1", &alpine).await;
    let bad = env("eu.example/env/", "yes").run_async().await;
    assert_eq!(
        bad.code,
        2,
        "a misspelt SYNCER_DRY_RUN is refused, not a push: {}",
        bad.all()
    );

    // No prefix anywhere: the error names the flag and the variable.
    let none = w
        .run_async(&["image-syncer", "-i", "external-images.yaml", "--dry-run"])
        .await;
    assert_eq!(none.code, 1, "{}", none.all());
    assert!(
        none.stderr
            .contains("--target-repo-prefix nor SYNCER_TARGET_REPO_PREFIX"),
        "{}",
        none.stderr
    );
}

/// image-syncer's retag of tag sources, an explicit `library/` digest
/// source, a source without a tag, `amd64Only` ignored, and a target tag
/// that holds another digest: never overwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_syncer_retags_tag_sources_and_never_overwrites_a_tag() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let registry = TestImage::single_layer(2011, 100);
    let avalanche = TestImage::single_layer(2012, 100);
    let platforms = [Platform::linux("amd64"), Platform::linux("arm64")];
    let redis = TestImage::multi_arch(2013, Flavor::Docker, &platforms, 100);
    w.push("library/registry", &registry, &[]).await;
    w.push("prometheuscommunity/avalanche", &avalanche, &["latest"])
        .await;
    w.push("bitnami/redis", &redis, &["7"]).await;
    endpoints(&w, &["docker.io", "quay.io"], &["eu.example"]);
    let file = fixture("image-syncer/retag-and-library.yaml")
        .replace(REGISTRY, registry.digest().as_str());
    w.write("images.yaml", file);
    let out = w
        .run_async(&[
            "image-syncer",
            "-i",
            "images.yaml",
            "-r",
            "eu.example/x/",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("`amd64Only` is not read"),
        "{}",
        out.stderr
    );
    holds(&w, "x/library/registry:3", &registry).await;
    holds(
        &w,
        "x/quay.io/prometheuscommunity/avalanche:v0.7.0",
        &avalanche,
    )
    .await;
    // The retag is pinned to the source tag's digest: the whole index.
    holds(&w, "x/bitnami/redis:7-x", &redis).await;
    lacks(&w, "x/bitnami/redis:7").await;

    // Upstream `7` moves; the target's `7-x` is never overwritten.
    w.push("bitnami/redis", &TestImage::single_layer(2014, 100), &["7"])
        .await;
    let moved = w
        .run_async(&[
            "image-syncer",
            "-i",
            "images.yaml",
            "-r",
            "eu.example/x/",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(moved.code, 3, "{}", moved.all());
    holds(&w, "x/bitnami/redis:7-x", &redis).await;
}

/// A registry token from the destination's token service, for `repos`.
async fn registry_token(w: &World, repos: &[&str]) -> String {
    let issuer: &TokenIssuer = w.dst.token_issuer.as_ref().expect("a token registry");
    let mut url = reqwest::Url::parse(&issuer.realm()).unwrap();
    url.query_pairs_mut()
        .append_pair("service", TokenIssuer::SERVICE);
    for repo in repos {
        url.query_pairs_mut()
            .append_pair("scope", &format!("repository:{repo}:pull,push"));
    }
    let answer: serde_json::Value = reqwest::Client::new()
        .get(url)
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["token"].as_str().unwrap().to_string()
}

/// --target-repo-auth-key (Basic `_json_key`, the key file's bytes) and
/// --access-token (the bearer token itself) reach the target; --debug
/// shows each plan line in full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_syncer_credentials_reach_the_target_as_image_syncer_sends_them() {
    let Some(w) = World::builder()
        .destination(Config::with_auth(Auth::Token))
        .start()
        .await
    else {
        return;
    };
    let alpine = TestImage::single_layer(2021, 100);
    let busybox = TestImage::single_layer(2022, 100);
    w.push("library/alpine", &alpine, &["3.20.0"]).await;
    w.push("library/busybox", &busybox, &["1.36"]).await;
    // The destination by its own name: its token service is on its host.
    endpoints(&w, &["docker.io"], &[]);
    let prefix = format!("{}/k/", w.dst_host());
    w.write("key.json", PASSWORD);
    w.write("a.yaml", "images:\n  - source: alpine:3.20.0\n");
    w.write("b.yaml", "images:\n  - source: busybox:1.36\n");
    let by_key = w
        .run_async(&[
            "image-syncer",
            "-i",
            "a.yaml",
            "-r",
            &prefix,
            "-t",
            "key.json",
            "--debug",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(by_key.code, 0, "{}", by_key.all());
    assert!(
        by_key.stdout.contains(alpine.digest().as_str()),
        "--debug: lines in full\n{}",
        by_key.stdout
    );
    assert!(
        !by_key.all().contains(PASSWORD),
        "the key file is never shown"
    );
    let issuer = w.dst.token_issuer.as_ref().unwrap();
    assert!(
        issuer
            .requests()
            .iter()
            .any(|r| r.account.as_deref() == Some(JSON_KEY_USER) && r.granted),
        "{:?}",
        issuer.requests()
    );
    let target = format!("docker://{}/k/library/alpine:3.20.0", w.dst_host());
    let read = skopeo::try_inspect_raw_as_async(&target, &format!("{USER}:{PASSWORD}")).await;
    if let Some(read) = read {
        assert_eq!(
            &promoter::reference::Digest::sha256_of(&read.unwrap()),
            alpine.digest()
        );
    }

    let token = registry_token(&w, &["k/library/busybox"]).await;
    let before = issuer.requests().len();
    let by_token = w
        .promoter()
        .args([
            "image-syncer",
            "-i",
            "b.yaml",
            "-r",
            &prefix,
            "--registry-config",
            "options.json",
        ])
        .env("SYNCER_ACCESS_TOKEN", &token)
        .env("SYNCER_DEBUG", "true")
        .run_async()
        .await;
    assert_eq!(by_token.code, 0, "{}", by_token.all());
    assert!(
        by_token.stdout.contains(busybox.digest().as_str()),
        "SYNCER_DEBUG: lines in full\n{}",
        by_token.stdout
    );
    // The flags say the same (the image is there now: a no-op that still
    // reads the target, with the token).
    for flag in ["-a", "--access-token"] {
        let again = w
            .run_async(&[
                "image-syncer",
                "-i",
                "b.yaml",
                "-r",
                &prefix,
                flag,
                &token,
                "--registry-config",
                "options.json",
            ])
            .await;
        assert_eq!(again.code, 0, "{flag}: {}", again.all());
    }
    assert_eq!(
        issuer.requests().len(),
        before,
        "a registry token is used as it is, never exchanged"
    );
    let target = format!("docker://{}/k/library/busybox:1.36", w.dst_host());
    if let Some(read) =
        skopeo::try_inspect_raw_as_async(&target, &format!("{USER}:{PASSWORD}")).await
    {
        assert_eq!(
            &promoter::reference::Digest::sha256_of(&read.unwrap()),
            busybox.digest()
        );
    }
}

/// Sinker's acceptance tests CREATE, UPDATE and LIST (acceptance.bats),
/// byte for byte through the binary; `import kubernetes` finds the
/// bundle's three images and updates a Sinker file as `sinker update`.
#[test]
fn sinker_create_update_and_list_write_what_sinker_writes() {
    let w = crate::support::cli::Workdir::new();
    let dir = format!("{}/testdata/seeds/sinker", env!("CARGO_MANIFEST_DIR"));
    let at = |p: &str| format!("{dir}/{p}");
    let out = w.run(&[
        "sinker",
        "create",
        &at("example/bundle.yaml"),
        "--target",
        "mycompany.com/myrepo",
        "--manifest",
        "output.yaml",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        w.read("output.yaml"),
        fixture("sinker/example/.images.yaml")
    );
    let again = w.run(&[
        "sinker",
        "create",
        &at("example/bundle.yaml"),
        "--target",
        "x.com",
        "--manifest",
        "output.yaml",
    ]);
    assert_eq!(again.code, 1);
    assert!(
        again
            .stderr
            .contains("create: manifest file already exists"),
        "{}",
        again.stderr
    );
    let out = w.run(&[
        "sinker",
        "create",
        &at("create/bundle.yaml"),
        "--target",
        "myhost.com",
        "--output",
        "created.yaml",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        w.read("created.yaml"),
        fixture("sinker/create/expected-images.yaml")
    );
    let out = w.run(&[
        "sinker",
        "update",
        &at("update/bundle.yaml"),
        "--manifest",
        &at("update/original.yaml"),
        "--output",
        "updated.yaml",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        w.read("updated.yaml"),
        fixture("sinker/update/expected.yaml")
    );
    for (manifest, side, expected) in [
        ("example", "source", "example/source.txt"),
        ("example", "target", "example/target.txt"),
        ("list", "source", "list/expected-source.txt"),
        ("list", "target", "list/expected-target.txt"),
    ] {
        let out = w.run(&["sinker", "list", side, "--manifest", &at(manifest)]);
        assert_eq!(out.code, 0, "{}", out.all());
        assert_eq!(
            out.stdout,
            fixture(&format!("sinker/{expected}")),
            "{manifest} {side}"
        );
    }
    let out = w.run(&[
        "sinker",
        "list",
        "target",
        "--manifest",
        &at("list"),
        "-o",
        "listed.txt",
    ]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        w.read("listed.txt"),
        fixture("sinker/list/expected-target.txt")
    );
    // Commands Sinker has that promoter will not do, and one it lacks.
    let pull = w.run(&["sinker", "pull", "target"]);
    assert_eq!(pull.code, 2);
    assert!(
        pull.stderr
            .contains("does not pull images into a local Docker daemon"),
        "{}",
        pull.stderr
    );
    let sync = w.run(&["sinker", "sync"]);
    assert_eq!(sync.code, 2);
    assert!(
        sync.stderr.contains("Sinker has no `sync` command"),
        "{}",
        sync.stderr
    );
    let version = w.run(&["sinker", "version"]);
    assert!(
        version.stdout.starts_with("sinker version "),
        "{}",
        version.stdout
    );

    // import kubernetes: the three images of Sinker's own bundle, args included.
    let imported = w.run(&[
        "import",
        "kubernetes",
        &at("example/bundle.yaml"),
        "--target",
        "mycompany.com/myrepo",
    ]);
    assert_eq!(imported.code, 0, "{}", imported.all());
    for name in [
        "coreos/prometheus-operator",
        "jimmidyson/configmap-reload",
        "coreos/prometheus-config-reloader",
    ] {
        assert!(
            imported.stdout.contains(&format!("- name: {name}\n")),
            "{name}:\n{}",
            imported.stdout
        );
    }
    w.write("sinker.yaml", fixture("sinker/update/original.yaml"));
    let updated = w.run(&[
        "import",
        "kubernetes",
        &at("update/bundle.yaml"),
        "--out",
        "sinker.yaml",
    ]);
    assert_eq!(updated.code, 0, "{}", updated.all());
    assert_eq!(
        w.read("sinker.yaml"),
        fixture("sinker/update/expected.yaml")
    );
}

/// Sinker's test/update/original.yaml, its placeholder host and digest
/// made real: pinned and promoted with its per-source target, by `pin` +
/// `run` and by `sinker copy` (its push --dryrun lines first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinkers_original_yaml_pins_and_promotes_with_its_per_source_target() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let image = TestImage::single_layer(2031, 100);
    let repo = TestImage::single_layer(2032, 100);
    w.push("some/image", &image, &["v1.0.0"]).await;
    w.push("some/repo", &repo, &[]).await;
    endpoints(&w, &["docker.io"], &["myhost.com", "my-host.example"]);
    let file = fixture("sinker/update/original.yaml")
        .replace("MY_HOST", "my-host.example")
        .replace("MY_REPO", "my-repo")
        .replace("sha256:abc123", repo.digest().as_str());
    w.write("original.yaml", &file);
    let hex = repo.digest().hex().to_string();

    let dry = w
        .run_async(&[
            "sinker",
            "push",
            "--dryrun",
            "--manifest",
            "original.yaml",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(dry.code, 0, "{}", dry.all());
    assert!(
        dry.stderr
            .contains("Image some/image:v1.0.0 would be pushed as myhost.com/some/image:v1.0.0"),
        "{}",
        dry.stderr
    );
    assert!(
        dry.stderr.contains(&format!(
            "Image some/repo@{} would be pushed as my-host.example/my-repo/some/repo:{hex}",
            repo.digest()
        )),
        "{}",
        dry.stderr
    );
    lacks(&w, "some/image:v1.0.0").await;

    pin_and_promote(&w, "original.yaml").await;
    let lock = lock_text(&w);
    assert!(lock.contains("- name: my-host.example/my-repo\n"), "{lock}");
    holds(&w, "some/image:v1.0.0", &image).await;
    holds(&w, &format!("my-repo/some/repo:{hex}"), &repo).await;

    let copy = w
        .run_async(&[
            "sinker",
            "copy",
            "--manifest",
            "original.yaml",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(copy.code, 0, "{}", copy.all());
    assert!(
        copy.stderr.contains("All images are up to date!"),
        "{}",
        copy.stderr
    );
}

/// Sinker's test/list (a Docker Hub target flattens nested paths) and
/// test/push fixtures, copied registry to registry, and `check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinkers_flattened_targets_are_written_flattened_and_checked() {
    // Docker Hub is both the source and the target of test/push: one registry.
    let Some(w) = World::builder().same_registry().start().await else {
        return;
    };
    let v1 = TestImage::single_layer(2041, 100);
    let v2 = TestImage::single_layer(2042, 100);
    let busybox = TestImage::single_layer(2043, 100);
    w.push("nested/sinker-test", &v1, &["v1.0.0"]).await;
    w.push("sinker-test", &v2, &["v2.0.0"]).await;
    w.push("library/busybox", &busybox, &["1.36.0"]).await;
    endpoints(&w, &["host.com", "docker.io"], &[]);
    std::fs::create_dir_all(w.path().join("list")).unwrap();
    w.write("list/.images.yaml", fixture("sinker/list/.images.yaml"));
    let copy = w
        .run_async(&[
            "sinker",
            "copy",
            "--manifest",
            "list",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(copy.code, 0, "{}", copy.all());
    assert!(
        copy.stderr.contains("All images have been copied!"),
        "{}",
        copy.stderr
    );
    holds(&w, "plexsystems/sinker-test:v1.0.0", &v1).await;
    holds(&w, "plexsystems/sinker-test:v2.0.0", &v2).await;

    // test/push, its busybox at a version (test images carry no `latest`).
    std::fs::create_dir_all(w.path().join("push")).unwrap();
    w.write(
        "push/.images.yaml",
        fixture("sinker/push/.images.yaml").replace("latest", "1.36.0"),
    );
    let dry = w
        .run_async(&[
            "sinker",
            "push",
            "--dryrun",
            "--manifest",
            "push",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert!(
        dry.stderr
            .contains("Image busybox:1.36.0 would be pushed as plexsystems/busybox:1.36.0"),
        "{}",
        dry.all()
    );
    let pushed = w
        .run_async(&[
            "sinker",
            "push",
            "--images",
            "busybox:1.36.0",
            "--target",
            "plexsystems",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(pushed.code, 0, "{}", pushed.all());
    assert!(
        pushed.stderr.contains("All images have been pushed!"),
        "{}",
        pushed.stderr
    );

    // check: newer versions upstream, as Sinker says them.
    w.push(
        "library/busybox",
        &TestImage::single_layer(2044, 100),
        &["1.37.0"],
    )
    .await;
    let check = w
        .run_async(&[
            "sinker",
            "check",
            "--images",
            "busybox:1.36.0",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(
        check
            .stderr
            .contains("New versions for busybox:1.36.0 found: [1.37.0]"),
        "{}",
        check.stderr
    );
}

const BUSYBOX_TAGS: &[&str] = &[
    "latest",
    "glibc",
    "1.26.1-glibc",
    "1.26.1-musl",
    "1.26.1-uclibc",
    "1.26.2",
    "1.31",
    "1.31.0",
    "1.31.0-glibc",
    "1.31.0-musl",
    "1.31.1",
    "1.31.1-glibc",
    "1.31.1-musl",
    "1.31.1-uclibc",
    "1.32.0",
    "1.33.0",
    "1.34.1",
    "1.35.0",
    "1.35.0-uclibc",
    "1.36",
    "1.36.0",
    "1.36.0-glibc",
    "1.36.0-musl",
    "1.36.0-uclibc",
    "1.36.1",
];

/// dregsy's tag-set e2e fixtures, one-off tasks: `promoter dregsy` runs
/// them once each, in order, and ends by itself; the targets hold exactly
/// the tag sets dregsy's main_test.go expects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dregsys_tag_sets_land_as_its_e2e_tests_expect() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let mut images = Vec::new();
    for (i, tag) in BUSYBOX_TAGS.iter().enumerate() {
        let image = TestImage::single_layer(2100 + i as u64, 64);
        w.push("library/busybox", &image, &[tag]).await;
        images.push((*tag, image));
    }
    let digest_of = |tag: &str| {
        images
            .iter()
            .find(|(t, _)| *t == tag)
            .unwrap()
            .1
            .digest()
            .to_string()
    };
    endpoints(&w, &["docker.io"], &["127.0.0.1:5000"]);
    let config = fixture("dregsy/tagsets.yaml")
        .replace(
            "sha256:1d8a02c7a89283870e8dd6bb93dc66bc258e294491a6bbeb193a044ed88773ea",
            &digest_of("1.36.0-musl"),
        )
        .replace(
            "sha256:ff4a7f382ff23a8f716741b6e60ef70a4986af3aff22d26e1f0e0cb4fde29289",
            &digest_of("1.35.0-uclibc"),
        );
    w.write("config.yaml", config);
    let out = w
        .run_async(&[
            "dregsy",
            "-config=config.yaml",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.all());
    let expected: [(&str, &[&str]); 5] = [
        (
            "tagsets-skopeo/range/busybox",
            &[
                "latest",
                "1.31",
                "1.31.0",
                "1.31.1-musl",
                "1.31.1",
                "1.31.1-uclibc",
                "1.31.1-glibc",
            ],
        ),
        (
            "tagsets-skopeo/prune/busybox",
            &["1.31.1-musl", "1.31.1-glibc"],
        ),
        (
            "tagsets-skopeo/regex/busybox",
            &["1.26.1-musl", "1.26.1-glibc", "1.26.1-uclibc"],
        ),
        ("tagsets-skopeo/regexinv/busybox", &["1.26.1-uclibc"]),
        (
            "tagsets-skopeo/limit/busybox",
            &[
                "1.36",
                "1.36.0",
                "1.36.0-glibc",
                "1.36.0-musl",
                "1.36.0-uclibc",
                "glibc",
            ],
        ),
    ];
    for (repo, tags) in expected {
        assert_eq!(
            tags_of(&w, repo).await,
            sorted(tags),
            "{repo}\n{}",
            out.stderr
        );
    }
    assert_eq!(
        tags_of(&w, "tagsets-skopeo/digest/busybox").await,
        ["1.35.0-uclibc"]
    );
    let musl = &images.iter().find(|(t, _)| *t == "1.36.0-musl").unwrap().1;
    holds(
        &w,
        &format!("tagsets-skopeo/digest/busybox@{}", musl.digest()),
        musl,
    )
    .await;

    // -run: a line match on task names.
    let only = w
        .run_async(&[
            "dregsy",
            "-config",
            "config.yaml",
            "-run",
            "range",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(only.code, 0, "{}", only.all());
    assert!(
        only.stderr.contains("task range: syncing") && !only.stderr.contains("task prune:"),
        "{}",
        only.stderr
    );
}

/// dregsy's platform fixtures: busybox's arm64 and amd64 images renamed
/// to paths of their own, single-platform, and the whole index renamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dregsys_platform_renames_pin_and_promote_to_the_renamed_paths() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let platforms = [
        Platform::linux("amd64"),
        Platform::linux_variant("arm64", "v8"),
    ];
    let busybox = TestImage::multi_arch(2201, Flavor::Oci, &platforms, 100);
    w.push("library/busybox", &busybox, &["latest"]).await;
    endpoints(&w, &["docker.io"], &["127.0.0.1:5000"]);
    w.write("platform.yaml", fixture("dregsy/skopeo-platform.yaml"));
    w.write(
        "platform-all.yaml",
        fixture("dregsy/skopeo-platform-all.yaml"),
    );
    pin_and_promote(&w, "platform.yaml").await;
    let lock = lock_text(&w);
    assert!(
        lock.contains("- name: library/busybox\n  target: base-skopeo/library/busybox-arm64\n"),
        "{lock}"
    );
    holds(
        &w,
        "base-skopeo/library/busybox-arm64:latest",
        &busybox.children[1],
    )
    .await;
    holds(
        &w,
        "base-skopeo/library/busybox-amd64:latest",
        &busybox.children[0],
    )
    .await;
    let check = w
        .run_async(&["run", "--thin-manifest-dir", "lock", "--parse-only"])
        .await;
    assert_eq!(check.code, 0, "{}", check.all());
    std::fs::remove_dir_all(w.path().join("lock")).unwrap();
    pin_and_promote(&w, "platform-all.yaml").await;
    holds(&w, "base-skopeo/library/busybox-all:latest", &busybox).await;
    lacks(&w, "library/busybox:latest").await;
}

/// `promoter dregsy -config=F` with two periodic tasks: each runs at once
/// and then on its own interval (new tags followed), SIGHUP reads the
/// config again, and SIGTERM stops it cleanly (exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dregsy_runs_two_tasks_on_two_intervals_and_stops_on_sigterm() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let fast = TestImage::single_layer(2301, 100);
    let slow = TestImage::single_layer(2302, 100);
    w.push("team/fast", &fast, &["1.0.0"]).await;
    w.push("team/slow", &slow, &["latest"]).await;
    endpoints(&w, &["source.acme.example"], &["mirror.acme.example"]);
    w.write("config.yaml", fixture("dregsy/two-tasks.yaml"));
    let log = w.path().join("dregsy.log");
    let mut child = w
        .promoter()
        .args([
            "dregsy",
            "-config=config.yaml",
            "--registry-config",
            "options.json",
        ])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn();
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    let runs = |task: &str| said().matches(&format!("task {task}: done")).count();
    let waited = wait_for(|| runs("fast") >= 2 && runs("slow") >= 1).await;
    assert!(waited, "{}", said());
    holds(&w, "mirror/fast:1.0.0", &fast).await;
    holds(&w, "team/slow:latest", &slow).await;
    // A new tag is followed on the fast task's next run.
    let newer = TestImage::single_layer(2303, 100);
    w.push("team/fast", &newer, &["1.1.0"]).await;
    assert!(tag_arrives(&w, "mirror/fast:1.1.0").await, "{}", said());
    let pid = child.id().expect("running") as i32;
    // SIGHUP: the config is read again.
    unsafe {
        libc::kill(pid, libc::SIGHUP);
    }
    assert!(
        wait_for(|| said().contains("restarting: reading the config again")).await,
        "{}",
        said()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (fast_runs, slow_runs) = (runs("fast"), runs("slow"));
    assert!(
        fast_runs > slow_runs,
        "fast every second, slow every three: {fast_runs} vs {slow_runs}\n{}",
        said()
    );
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("dregsy ends after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{}", said());
    assert!(
        said().contains("dregsy refuses intervals under 30 seconds"),
        "{}",
        said()
    );
}

/// Whether `reference` appears in the destination within 30 seconds
/// (read with skopeo; without skopeo, outside CI, taken as yes).
async fn tag_arrives(w: &World, reference: &str) -> bool {
    let target = format!("docker://{}/{reference}", w.dst_host());
    for _ in 0..150 {
        match skopeo::try_inspect_raw_async(&target).await {
            None | Some(Ok(_)) => return true,
            Some(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    false
}

/// Poll `done` for up to 30 seconds.
async fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..300 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `sinker copy`'s platform flags: `--override-os`/`--override-arch` copy
/// that platform's manifest of an index, `--all-variants` the whole index,
/// and `--force` never overwrites a tag (one pointing elsewhere is refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinker_copy_takes_its_platform_and_force_flags() {
    let Some(w) = World::builder().same_registry().start().await else {
        return;
    };
    let platforms = [Platform::linux("amd64"), Platform::linux("arm64")];
    let app = TestImage::multi_arch(2051, Flavor::Oci, &platforms, 100);
    w.push("team/app", &app, &["1.0"]).await;
    endpoints(&w, &["host.com", "docker.io"], &[]);
    let copy = |extra: &'static [&'static str], target: &'static str| {
        let mut args = vec![
            "sinker",
            "copy",
            "--images",
            "host.com/team/app:1.0",
            "--target",
            target,
            "--registry-config",
            "options.json",
        ];
        args.extend_from_slice(extra);
        let w = &w;
        async move { w.run_async(&args).await }
    };
    let arm = copy(
        &["--override-os", "linux", "--override-arch", "arm64"],
        "arm",
    )
    .await;
    assert_eq!(arm.code, 0, "{}", arm.all());
    holds(&w, "arm/app:1.0", &app.children[1]).await;
    let all = copy(&["--all-variants", "--force"], "all").await;
    assert_eq!(all.code, 0, "{}", all.all());
    holds(&w, "all/app:1.0", &app).await;
    assert!(all.stderr.contains("--force:"), "{}", all.stderr);
    // A Docker Hub target flattens the path, as Sinker does. `arm`'s 1.0
    // is the arm64 image: copying the index there with --force
    // is refused, and the tag is left as it was.
    let forced = copy(&["--force"], "arm").await;
    assert_eq!(forced.code, 3, "{}", forced.all());
    holds(&w, "arm/app:1.0", &app.children[1]).await;
}

/// Every spelling of the drop-in commands' flags means the same: the
/// short flag, the long one and the tool's environment variable.
#[test]
fn the_drop_in_flags_have_every_spelling_their_tools_have() {
    let w = crate::support::cli::Workdir::new();
    w.write("images.yaml", "images:\n  - source: alpine:3.20.0\n");
    for (flag, env) in [
        (Some("--target-repo-auth-key"), None),
        (Some("-t"), None),
        (None, Some("SYNCER_TARGET_REPO_AUTH_KEY")),
    ] {
        let mut run = w.promoter().args([
            "image-syncer",
            "-i",
            "images.yaml",
            "-r",
            "x.example/k/",
            "--dry-run",
        ]);
        if let Some(flag) = flag {
            run = run.args([flag, "nope.json"]);
        }
        if let Some(env) = env {
            run = run.env(env, "nope.json");
        }
        let out = run.run();
        assert_ne!(out.code, 0, "{}", out.all());
        assert!(
            out.stderr
                .contains("--target-repo-auth-key nope.json: cannot read the key file"),
            "{flag:?} {env:?}: {}",
            out.stderr
        );
    }
    let dir = format!("{}/testdata/seeds/sinker/list", env!("CARGO_MANIFEST_DIR"));
    let expected = fixture("sinker/list/expected-target.txt");
    let by_short = w.run(&["sinker", "list", "target", "-m", &dir]);
    assert_eq!(by_short.stdout, expected, "{}", by_short.all());
    let by_env = w
        .promoter()
        .args(["sinker", "list", "target"])
        .env("SINKER_MANIFEST", &dir)
        .run();
    assert_eq!(by_env.stdout, expected, "{}", by_env.all());
}
