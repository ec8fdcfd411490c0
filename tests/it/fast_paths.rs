//! Each speed technique, proven at the wire level on a real registry: the
//! proxy's request log shows that the fast path was taken.

use std::collections::BTreeSet;

use crate::support::images::{TestBlob, TestImage};
use crate::support::proxy::{Action, Recorded, Rule};
use crate::support::world::{images_yaml, manifest_yaml, World};

/// A source registry holding `images` (repo, image, tag), a destination
/// behind a recording proxy, and a manifest promoting them all.
async fn setup(images: &[(String, TestImage, &str)]) -> Option<World> {
    let w = World::builder().start().await?;
    let mut entries = Vec::new();
    for (repo, image, tag) in images {
        let tags = std::slice::from_ref(tag);
        w.push(&format!("stage/{repo}"), image, tags).await;
        entries.push((repo.as_str(), image.digest(), tags));
    }
    // The source is read directly, not through its proxy.
    w.write(
        "m.yaml",
        manifest_yaml(
            &format!("{}/stage", w.src().host()),
            &format!("{}/prod", w.dst_host()),
            &images_yaml(&entries),
        ),
    );
    Some(w)
}

async fn promote(w: &World) -> Vec<Recorded> {
    let out = w
        .run_async(&["run", "--manifest", "m.yaml", "--confirm"])
        .await;
    assert_eq!(out.code, 0, "{}", out.all());
    w.dst_proxy.log()
}

fn blob_uploads(log: &[Recorded]) -> Vec<&Recorded> {
    log.iter()
        .filter(|r| {
            (r.method == "PUT" || r.method == "PATCH") && r.path.contains("/blobs/uploads/")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_repositories_get_no_head_before_upload_and_six_requests_per_image() {
    let images: Vec<_> = (0..8)
        .map(|i| {
            (
                format!("app{i}"),
                TestImage::single_layer(100 + i, 512),
                "1.0",
            )
        })
        .collect();
    let Some(s) = setup(&images).await else {
        return;
    };
    let log = promote(&s).await;

    let blob_heads = log
        .iter()
        .filter(|r| r.method == "HEAD" && r.path.contains("/blobs/"))
        .count();
    assert_eq!(blob_heads, 0, "{}", s.dst_proxy.dump());
    // Per image: HEAD tag, POST+PUT config, POST+PUT layer, PUT manifest by tag.
    // Per run: the /v2/ ping and one repository list.
    let per_run = log
        .iter()
        .filter(|r| r.path == "/v2/" || r.path.starts_with("/v2/_catalog"))
        .count();
    assert!(per_run <= 2, "{}", s.dst_proxy.dump());
    let per_image = (log.len() - per_run) as f64 / images.len() as f64;
    assert!(
        per_image <= 6.0,
        "{per_image} requests per image:\n{}",
        s.dst_proxy.dump()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_one_post_and_one_put_with_the_whole_blob() {
    let images = vec![(
        "big".to_string(),
        TestImage::layered(200, 2, 3 * 1024 * 1024, None),
        "1.0",
    )];
    let Some(s) = setup(&images).await else {
        return;
    };
    let log = promote(&s).await;
    let posts = log
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/blobs/uploads/"))
        .count();
    let uploads = blob_uploads(&log);
    let blobs = images[0].1.all_blobs();
    assert_eq!(posts, blobs.len(), "{}", s.dst_proxy.dump());
    assert_eq!(uploads.len(), blobs.len(), "{}", s.dst_proxy.dump());
    assert!(
        uploads.iter().all(|r| r.method == "PUT"),
        "no PATCH: {}",
        s.dst_proxy.dump()
    );
    let sizes: BTreeSet<u64> = uploads.iter().map(|r| r.request_bytes).collect();
    let expected: BTreeSet<u64> = blobs.iter().map(|b| b.size()).collect();
    assert_eq!(sizes, expected, "each PUT carries one whole blob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_blob_is_uploaded_once_and_mounted_elsewhere() {
    let base = TestBlob::layer(300, 256 * 1024);
    let images: Vec<_> = (0..5)
        .map(|i| {
            (
                format!("svc{i}"),
                TestImage::layered(310 + i, 1, 1024, Some(&base)),
                "1.0",
            )
        })
        .collect();
    let Some(s) = setup(&images).await else {
        return;
    };
    let log = promote(&s).await;
    let base_uploads = blob_uploads(&log)
        .into_iter()
        .filter(|r| r.path.contains(base.digest.hex()))
        .count();
    assert_eq!(
        base_uploads,
        1,
        "the shared base went up more than once:\n{}",
        s.dst_proxy.dump()
    );
    let mounts = log
        .iter()
        .filter(|r| {
            r.method == "POST" && r.path.contains("mount=") && r.path.contains(base.digest.hex())
        })
        .filter(|r| r.status == 201)
        .count();
    assert_eq!(mounts, images.len() - 1, "{}", s.dst_proxy.dump());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copying_starts_before_planning_ends_and_connections_are_reused() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let tags: &[&str] = &["1.0"];
    let images: Vec<(String, TestImage)> = (0..60)
        .map(|i| (format!("p{i:02}"), TestImage::single_layer(400 + i, 256)))
        .collect();
    let mut entries = Vec::new();
    for (name, image) in &images {
        w.push(&format!("stage/{name}"), image, tags).await;
        entries.push((name.as_str(), image.digest(), tags));
    }
    // The source through its proxy: its log shows planning and copying.
    w.write(
        "m.yaml",
        manifest_yaml(
            &format!("{}/stage", w.src_host()),
            &format!("{}/prod", w.dst_host()),
            &images_yaml(&entries),
        ),
    );
    w.src_proxy.clear_log();
    let log = promote(&w).await;
    // Planning reads each source manifest (the executor reuses it); copying
    // reads blobs. A blob read before the last manifest read is a copy
    // running while later repositories are still being planned.
    let source = w.src_proxy.log();
    let first_copy = source
        .iter()
        .position(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .expect("copies happened");
    let last_plan = source
        .iter()
        .rposition(|r| r.method == "GET" && r.path.contains("/manifests/"))
        .expect("planning read the source");
    assert!(
        first_copy < last_plan,
        "planning of later images should overlap copying of earlier ones:\n{}",
        w.src_proxy.dump()
    );
    let connections: BTreeSet<u64> = log.iter().map(|r| r.conn).collect();
    assert!(
        connections.len() * 4 <= log.len(),
        "{} requests over {} connections",
        log.len(),
        connections.len()
    );
}

/// A registry with Google's `tags/list` extension (every digest with its
/// tags, in the listing): a no-op inventory reads each destination
/// repository with that one request, no HEAD per tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn googles_digest_listing_reads_a_repository_in_one_request() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let images: Vec<TestImage> = (0..3)
        .map(|i| TestImage::single_layer(1600 + i, 500))
        .collect();
    let mut entries = Vec::new();
    for (i, image) in images.iter().enumerate() {
        w.push(&format!("stage/app{i}"), image, &["1.0", "2.0", "latest"])
            .await;
        entries.push((format!("app{i}"), image.digest().clone()));
    }
    let entries: Vec<(&str, &promoter::reference::Digest, &[&str])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d, &["1.0", "2.0", "latest"][..]))
        .collect();
    let m = w.manifest("m.yaml", &images_yaml(&entries));
    let first = w
        .run_async(&["run", "--manifest", &m, "--confirm", "--no-attachments"])
        .await;
    assert_eq!(first.code, 0, "{}", first.all());

    w.dst_proxy.add(
        Rule::new("GET", "/tags/list")
            .always()
            .action(Action::GoogleListing),
    );
    let options = serde_json::json!({
        "registries": { w.dst_host(): { "google_listing": true } }
    });
    w.write("google.json", options.to_string());
    w.dst_proxy.clear_log();
    let again = w
        .run_async(&[
            "run",
            "--manifest",
            &m,
            "--no-attachments",
            "--registry-config",
            "google.json",
        ])
        .await;
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(
        again.stdout.contains("9 already present"),
        "{}",
        again.stdout
    );
    let requests: Vec<String> = w
        .dst_proxy
        .log()
        .into_iter()
        .filter(|r| r.path != "/v2/")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        requests.len(),
        3,
        "one listing per repository: {requests:#?}"
    );
    assert!(requests
        .iter()
        .all(|r| r.starts_with("GET ") && r.contains("/tags/list")));
}

/// The API minimum for a single-layer image into a new repository: from
/// the source, its manifest once (the inventory's read is the executor's)
/// and its two blobs; into the destination, two uploads (POST + PUT) and
/// the manifest by tag, with no tag asked about in a repository the
/// catalog shows is new. Per run: pings, the catalog, the referrers probe;
/// per source repository: the tag listing that finds attachments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_image_costs_three_source_and_five_destination_requests() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let images: Vec<TestImage> = (0..8)
        .map(|i| TestImage::single_layer(900 + i, 512))
        .collect();
    let names: Vec<String> = (0..8).map(|i| format!("app{i}")).collect();
    let tags: &[&str] = &["1.0"];
    let mut entries = Vec::new();
    for (name, image) in names.iter().zip(&images) {
        w.push(&format!("stage/{name}"), image, tags).await;
        entries.push((name.as_str(), image.digest(), tags));
    }
    w.write(
        "m.yaml",
        manifest_yaml(
            &format!("{}/stage", w.src_host()),
            &format!("{}/prod", w.dst_host()),
            &images_yaml(&entries),
        ),
    );
    let before = w.src_proxy.log().len();
    let out = w
        .run_async(&["run", "--manifest", "m.yaml", "--confirm"])
        .await;
    assert_eq!(out.code, 0, "{}", out.all());
    let per_run_or_repo = |r: &&Recorded| {
        r.path == "/v2/"
            || r.path.starts_with("/v2/_catalog")
            || r.path.contains("/referrers/")
            || r.path.contains("/tags/list")
    };
    let source: Vec<Recorded> = w.src_proxy.log().into_iter().skip(before).collect();
    let source_per_image: Vec<&Recorded> = source.iter().filter(|r| !per_run_or_repo(r)).collect();
    assert_eq!(
        source_per_image.len(),
        3 * images.len(),
        "{}",
        w.src_proxy.dump()
    );
    assert!(
        source_per_image.iter().all(|r| r.method == "GET"),
        "nothing is asked about twice: {}",
        w.src_proxy.dump()
    );
    assert!(
        source.len() - source_per_image.len() <= images.len() + 2,
        "one tag listing per repository, a ping and a probe: {}",
        w.src_proxy.dump()
    );
    let destination = w.dst_proxy.log();
    let destination_per_image = destination.iter().filter(|r| !per_run_or_repo(r)).count();
    assert_eq!(
        destination_per_image,
        5 * images.len(),
        "{}",
        w.dst_proxy.dump()
    );
}

/// Read once, write to N: each image goes to four destination registries
/// (four names the `endpoint` option points at the one test registry, so
/// nothing can be mounted across them); every source blob is read once,
/// and each destination gets its own upload. One destination refuses every
/// upload: it fails alone, its retries read the held copy, not the source,
/// and the other three get everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_for_four_registries_is_read_from_the_source_once() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let images: Vec<TestImage> = (0..5)
        .map(|i| TestImage::single_layer(950 + i, 64 << 10))
        .collect();
    let tags: &[&str] = &["1.0"];
    let names: Vec<String> = (0..images.len()).map(|i| format!("app{i}")).collect();
    let mut entries = Vec::new();
    for (name, image) in names.iter().zip(&images) {
        w.push(&format!("stage/{name}"), image, tags).await;
        entries.push((name.as_str(), image.digest(), tags));
    }
    let destinations = [
        "one.example",
        "two.example",
        "three.example",
        "four.example",
    ];
    let mut registries = serde_json::Map::new();
    for host in destinations {
        registries.insert(host.into(), serde_json::json!({ "endpoint": w.dst_host() }));
    }
    w.write(
        "options.json",
        serde_json::json!({ "defaults": { "retry_deadline_secs": 1 }, "registries": registries })
            .to_string(),
    );
    let mut manifest = format!("registries:\n- name: {}/stage\n  src: true\n", w.src_host());
    for (i, host) in destinations.iter().enumerate() {
        manifest.push_str(&format!("- name: {host}/mirror{i}\n"));
    }
    manifest.push_str("images:\n");
    manifest.push_str(&images_yaml(&entries));
    w.write("m.yaml", manifest);
    w.dst_proxy.add(
        Rule::new("PUT", "/v2/mirror1/")
            .always()
            .action(Action::status(500)),
    );
    w.src_proxy.clear_log();
    let out = w
        .run_async(&[
            "run",
            "--manifest",
            "m.yaml",
            "--registry-config",
            "options.json",
            "--confirm",
        ])
        .await;
    assert_eq!(out.code, 4, "mirror1 fails: {}", out.all());
    let blob_reads = w
        .src_proxy
        .log()
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .count();
    let distinct_blobs = images.len() * 2; // a config and a layer each
    assert_eq!(blob_reads, distinct_blobs, "{}", w.src_proxy.dump());
    for i in [0, 2, 3] {
        let uploads = w
            .dst_proxy
            .log()
            .iter()
            .filter(|r| {
                r.method == "PUT"
                    && r.path.starts_with(&format!("/v2/mirror{i}/"))
                    && r.path.contains("/blobs/uploads/")
            })
            .count();
        assert_eq!(uploads, distinct_blobs, "mirror{i}: {}", w.dst_proxy.dump());
        for (name, image) in names.iter().zip(&images) {
            let reference = format!("docker://{}/mirror{i}/{name}:1.0", w.dst_host());
            if let Some(raw) = crate::support::skopeo::inspect_raw_async(&reference).await {
                assert_eq!(raw, image.manifest.bytes.to_vec(), "{reference}");
            }
        }
    }
}
