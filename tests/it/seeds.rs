//! The mirror tools' own example files, as their documents show them
//! (`testdata/seeds/`), pinned and promoted through the binary on real
//! registries. Their hosts (quay.io, docker.io, ...) are pointed at the
//! loopback registries with the `endpoint` registry option, so the files
//! are used as written; only digests of real-world images are replaced by
//! the test images' own.

use crate::support::images::{Flavor, Platform, TestImage};
use crate::support::skopeo;
use crate::support::world::World;

pub(crate) fn seed(name: &str) -> String {
    let path = format!("{}/testdata/seeds/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Registry options sending each of `to_source` to the source registry
/// and each of `to_destination` to the destination.
pub(crate) fn endpoints(w: &World, to_source: &[&str], to_destination: &[&str]) {
    let mut registries = serde_json::Map::new();
    for (hosts, endpoint) in [(to_source, w.src_host()), (to_destination, w.dst_host())] {
        for host in hosts {
            registries.insert(
                host.to_string(),
                serde_json::json!({ "endpoint": endpoint.clone() }),
            );
        }
    }
    let options = serde_json::json!({
        "defaults": { "retry_deadline_secs": 5 },
        "registries": registries,
    });
    w.write("options.json", options.to_string());
}

/// Pin `file` into `lock/`, promote it, and pin again: the same bytes.
pub(crate) async fn pin_and_promote(w: &World, file: &str) -> String {
    let pin = w
        .run_async(&[
            "pin",
            file,
            "--out",
            "lock/",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(pin.code, 0, "{}", pin.all());
    let lock = lock_text(w);
    let run = w
        .run_async(&[
            "run",
            "--thin-manifest-dir",
            "lock",
            "--registry-config",
            "options.json",
            "--confirm",
        ])
        .await;
    assert_eq!(run.code, 0, "{}\n{lock}", run.all());
    let again = w
        .run_async(&[
            "pin",
            file,
            "--out",
            "lock/",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(again.code, 0, "{}", again.all());
    assert_eq!(lock_text(w), lock, "pinning again writes the same bytes");
    pin.stderr
}

/// Every file of the lock tree, with its path, in order.
pub(crate) fn lock_text(w: &World) -> String {
    let mut files = Vec::new();
    let mut stack = vec![w.path().join("lock")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
        .iter()
        .map(|p| {
            format!(
                "== {}\n{}",
                p.strip_prefix(w.path()).unwrap().display(),
                std::fs::read_to_string(p).unwrap()
            )
        })
        .collect()
}

/// What the destination holds at `reference` is `image`, byte for byte.
pub(crate) async fn holds(w: &World, reference: &str, image: &TestImage) {
    let target = format!("docker://{}/{reference}", w.dst_host());
    if let Some(raw) = skopeo::inspect_raw_async(&target).await {
        let held = promoter::reference::Digest::sha256_of(&raw);
        assert_eq!(&held, image.digest(), "{reference}");
    }
}

/// Nothing is at `reference` in the destination.
pub(crate) async fn lacks(w: &World, reference: &str) {
    let target = format!("docker://{}/{reference}", w.dst_host());
    if let Some(found) = skopeo::try_inspect_raw_async(&target).await {
        assert!(found.is_err(), "{reference} should not be there");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinkers_image_manifest_pins_and_promotes() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let operator = TestImage::single_layer(1801, 200);
    let reloader = TestImage::single_layer(1802, 200);
    let configmap = TestImage::single_layer(1803, 200);
    w.push("coreos/prometheus-operator", &operator, &["v0.40.0"])
        .await;
    w.push("coreos/prometheus-config-reloader", &reloader, &["v0.40.0"])
        .await;
    w.push("jimmidyson/configmap-reload", &configmap, &["v0.4.0"])
        .await;
    endpoints(&w, &["quay.io", "docker.io"], &["organization.com"]);
    w.write(".images.yaml", seed("sinker.images.yaml"));

    pin_and_promote(&w, ".images.yaml").await;
    let lock = lock_text(&w);
    assert!(
        lock.contains("- name: quay.io\n  src: true\n- name: organization.com/team\n"),
        "{lock}"
    );
    holds(&w, "team/coreos/prometheus-operator:v0.40.0", &operator).await;
    holds(
        &w,
        "team/coreos/prometheus-config-reloader:v0.40.0",
        &reloader,
    )
    .await;
    holds(&w, "team/jimmidyson/configmap-reload:v0.4.0", &configmap).await;

    // Sinker's `check`: read from its own file, what upstream has beyond.
    let current = w
        .run_async(&[
            "outdated",
            ".images.yaml",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(current.code, 0, "nothing newer yet: {}", current.all());
    w.push(
        "coreos/prometheus-operator",
        &TestImage::single_layer(1804, 100),
        &["v0.41.0", "v0.42.0-rc.1"],
    )
    .await;
    let outdated = w
        .run_async(&[
            "outdated",
            ".images.yaml",
            "--registry-config",
            "options.json",
            "--output",
            "json",
        ])
        .await;
    assert_eq!(outdated.code, 1, "{}", outdated.all());
    let report: serde_json::Value = serde_json::from_str(&outdated.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!([{
            "source": "quay.io/coreos/prometheus-operator",
            "pinned": "v0.40.0",
            "newer": ["v0.41.0"],
        }])
    );

    // Sinker's `list`, on its own file: the references it names.
    let sources = w.run_async(&["list", "source", ".images.yaml"]).await;
    assert_eq!(sources.code, 0, "{}", sources.all());
    assert_eq!(
        sources.stdout,
        "docker.io/jimmidyson/configmap-reload:v0.4.0\n\
         quay.io/coreos/prometheus-config-reloader:v0.40.0\n\
         quay.io/coreos/prometheus-operator:v0.40.0\n"
    );

    // Sinker's `list`: the references the lock reads and writes.
    let listed = w
        .run_async(&["list", "target", "--thin-manifest-dir", "lock"])
        .await;
    assert_eq!(listed.code, 0, "{}", listed.all());
    assert!(
        listed.stdout.contains(&format!(
            "organization.com/team/coreos/prometheus-operator:v0.40.0@{}",
            operator.digest()
        )),
        "{}",
        listed.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_syncers_images_file_pins_and_promotes() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let gatekeeper = TestImage::single_layer(1811, 200);
    let exporter_old = TestImage::single_layer(1812, 200);
    let busybox = TestImage::single_layer(1813, 200);
    let platforms = [Platform::linux("amd64"), Platform::linux("arm64")];
    let exporter = TestImage::multi_arch(1814, Flavor::Oci, &platforms, 200);
    let postgres = TestImage::single_layer(1815, 200);
    w.push("bitnami/keycloak-gatekeeper", &gatekeeper, &["9.0.3"])
        .await;
    w.push(
        "bitnami/postgres-exporter",
        &exporter_old,
        &["0.8.0-debian-10-r28"],
    )
    .await;
    w.push(
        "bitnami/postgres-exporter",
        &exporter,
        &["0.11.1-debian-11-r69"],
    )
    .await;
    w.push("library/busybox", &busybox, &[]).await;
    w.push("library/postgres", &postgres, &[]).await;
    endpoints(&w, &["docker.io"], &["eu.gcr.io"]);
    // The example pins real-world digests; these images have their own.
    let file = seed("image-syncer.yaml")
        .replace(
            "sha256:31a54a0cf86d7354788a8265f60ae6acb4b348a67efbcf7c1007dd3cf7af05ab",
            busybox.digest().as_str(),
        )
        .replace(
            "sha256:9d7ec48fe46e8bbce55deafff58080e49d161a3ed92e67f645014bb50dc599fd",
            postgres.digest().as_str(),
        );
    w.write("external-images.yaml", file);

    let notes = pin_and_promote(&w, "external-images.yaml").await;
    assert!(notes.contains("`amd64Only` is not read"), "{notes}");
    let external = "kyma-project/external";
    holds(
        &w,
        &format!("{external}/bitnami/keycloak-gatekeeper:9.0.3"),
        &gatekeeper,
    )
    .await;
    holds(
        &w,
        &format!("{external}/bitnami/postgres-exporter:0.8.0-debian-10-r28"),
        &exporter_old,
    )
    .await;
    // amd64Only is read by no image-syncer since 2024-12 (and never chose
    // a platform): the whole index is copied, digest-preserving.
    holds(
        &w,
        &format!("{external}/bitnami/postgres-exporter:0.11.1-debian-11-r69"),
        &exporter,
    )
    .await;
    // A one-component source goes below `library/`, as `getTarget` puts
    // it; a source pinned by digest gets its `tag` in the target.
    holds(
        &w,
        &format!("{external}/library/busybox:1.32.0-v1"),
        &busybox,
    )
    .await;
    holds(
        &w,
        &format!("{external}/library/postgres:v20230508-11.19-alpine3.17"),
        &postgres,
    )
    .await;
    lacks(&w, &format!("{external}/busybox:1.32.0-v1")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dregsys_config_pins_and_promotes_and_says_what_it_does_not_use() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let images: Vec<TestImage> = (0..3)
        .map(|i| TestImage::single_layer(1821 + i, 200))
        .collect();
    for (image, tag) in images.iter().zip(["0.1.0", "0.1.1", "0.2.0"]) {
        w.push("test/image", image, &[tag]).await;
    }
    let platforms = [
        Platform::linux("amd64"),
        Platform::linux_variant("arm64", "v8"),
    ];
    let another = TestImage::multi_arch(1825, Flavor::Oci, &platforms, 200);
    w.push("test/another-image", &another, &["1.0", "latest"])
        .await;
    endpoints(
        &w,
        &["source-registry.acme.com"],
        &["dest-registry.acme.com"],
    );
    w.write("config.yaml", seed("dregsy.yaml"));

    let said = pin_and_promote(&w, "config.yaml").await;
    for warning in [
        "`relay` is not used",
        "`watch` is not used",
        "`interval` is not used",
        "the source's `auth` is not read",
        "promoter never skips TLS verification",
    ] {
        assert!(said.contains(warning), "{warning}:\n{said}");
    }
    assert!(
        !said.contains("eyJ1c2VybmFtZSI6"),
        "credentials are never shown:\n{said}"
    );
    holds(&w, "archive/test/image:0.1.0", &images[0]).await;
    holds(&w, "archive/test/image:0.1.1", &images[1]).await;
    lacks(&w, "archive/test/image:0.2.0").await;
    // No `tags`: every tag, the arm64/v8 manifest of each.
    holds(&w, "test/another-image:1.0", &another.children[1]).await;
    holds(&w, "test/another-image:latest", &another.children[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dregsys_tag_filters_and_image_matching_pin_what_dregsy_would_sync() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let wanted = [
        "1.31.0",
        "1.31.5",
        "1.26.2-glibc",
        "1.26.2-musl",
        "1.29.4",
        "latest",
    ];
    let unwanted = ["1.31.9", "1.26.2-foo", "1.30.0"];
    let mut busybox = Vec::new();
    for (i, tag) in wanted.iter().chain(&unwanted).enumerate() {
        let image = TestImage::single_layer(1830 + i as u64, 100);
        w.push("library/busybox", &image, &[tag]).await;
        busybox.push((tag.to_string(), image));
    }
    let webui = TestImage::single_layer(1845, 100);
    let api = TestImage::single_layer(1846, 100);
    let other = TestImage::single_layer(1847, 100);
    w.push("kubika/webui", &webui, &["1.0"]).await;
    w.push("kubika/api", &api, &["2.0", "2.1"]).await;
    w.push("other/thing", &other, &["1.0"]).await;
    endpoints(&w, &["docker.io", "eu.gcr.io"], &["mirror.acme.com"]);
    w.write("config.yaml", seed("dregsy-filters.yaml"));

    pin_and_promote(&w, "config.yaml").await;
    for (tag, image) in &busybox {
        let reference = format!("base/library/busybox:{tag}");
        if wanted.contains(&tag.as_str()) {
            holds(&w, &reference, image).await;
        } else {
            lacks(&w, &reference).await;
        }
    }
    // `from: regex:kubika/.*` over the source's catalog, below `gcr`.
    holds(&w, "gcr/kubika/webui:1.0", &webui).await;
    holds(&w, "gcr/kubika/api:2.1", &api).await;
    lacks(&w, "gcr/other/thing:1.0").await;
}
