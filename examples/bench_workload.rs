//! Writes the benchmark workloads (`bench/run.sh`) as OCI image layouts, with
//! everything the harness needs to seed a registry, promote, and check the
//! result. Deterministic: the same workload always has the same bytes and
//! digests, so figures taken on different days compare.
//!
//! ```text
//! cargo run --release --example bench_workload -- OUT_DIR WORKLOAD...
//! ```
//!
//! Workloads (issue 6 §1, issue 5 §7):
//!
//! | name | what |
//! |------|------|
//! | `a`    | 500 images, each one 4 KiB layer |
//! | `b`    | 100 images, each 3 × 1 MiB layers, the first a base layer all share |
//! | `c`    | 10 images, each 2 × 64 MiB layers |
//! | `d`    | 40 multi-arch OCI indexes, 2 platforms each (one 4 KiB layer per platform) |
//! | `e`    | 30 images, each 2 × 4 MiB layers, promoted to four destination registries at once |
//! | `f`    | 200 repositories × 10 tags (2,000 single-layer images of 512 bytes), for the no-op at scale |
//! | `q`    | 40 repositories × 3 tags (120 single-layer images of 2 KiB), promoted to four destination registries each behind its own quota |
//! | `big`  | 1 image with one 1 GiB layer, generated streaming (never in memory) |
//! | `snap` | 1,000 repositories × 5 tags, 5 distinct images per repository sharing one 1 KiB layer |
//!
//! For each workload `W` it writes, under `OUT_DIR/W/`:
//!
//! - `oci/<image>/`: one OCI image layout per image, tagged `v1` (`snap`: `t1`…`t5`; `f`: `v1`…`v10`);
//! - `refs.tsv`: `image<TAB>tag<TAB>digest`, one line per tag;
//! - `images.yaml`: the `images:` half of a promoter manifest promoting every tag;
//! - `expected.csv`: the snapshot (`promoter run --snapshot … --output csv`)
//!   a registry holding the workload under a path must give, sorted bytewise;
//! - `info`: `images=N bytes=B` (B: every blob and manifest once, i.e. what a
//!   cold copy must move);
//! - `stamp`: written last; a workload whose stamp matches is not written again.
//!
//! A second mode measures what one request of each kind costs a registry,
//! which is the floor under every promotion (`bench/run.sh floor`):
//!
//! ```text
//! bench_workload floor HOST:PORT STEP N
//! ```
//!
//! makes N requests of one kind against repositories `floor/r-<i>`, 4 at a
//! time over kept-alive connections, and prints `requests seconds`. The
//! harness reads the registry's CPU around each step. Steps, in the order
//! they must run: `upload` (POST + PUT of a 4 KiB blob), `manifest-put`
//! (by tag), `head-tag`, `head-tag-absent` (in a repository that does not
//! exist), `head-blob`, `get-manifest`, `get-blob`, `tags-list`, `mount`
//! (POST …?mount= into a new repository), `ping` (GET /v2/).
//!
//! A third runs the test suite's quota proxy (`tests/support/proxy.rs`,
//! the same code) in front of a registry, for `bench/run.sh quota`:
//!
//! ```text
//! bench_workload quota-proxy UPSTREAM REQUESTS_PER_MINUTE WRITES_PER_MINUTE RETRY_AFTER STATS_FILE
//! ```
//!
//! prints the proxy's `HOST:PORT`, then rewrites STATS_FILE every 200 ms
//! with `requests throttled accepted accepted_writes` until it is killed.
//! WRITES_PER_MINUTE 0 is no write quota; RETRY_AFTER 1 answers 429 with
//! `Retry-After`, 0 without. Buckets hold one second's refill.
//!
//! A fourth counts requests in front of a registry and, in `google` mode,
//! answers `tags/list` with Google's digest map, for `bench/run.sh k8s`:
//!
//! ```text
//! bench_workload listing-proxy UPSTREAM plain|google STATS_FILE
//! ```

#[allow(dead_code)]
#[path = "../tests/support/images.rs"]
mod images;
#[allow(dead_code)]
#[path = "../tests/support/proxy.rs"]
mod proxy;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use images::{derive_seed, write_oci_layout, Prng, TestBlob, TestImage, OCI_CONFIG, OCI_LAYER_TAR};
use promoter::reference::{Algorithm, Digest, DigestHasher};
use promoter::registry::media_type;
use serde_json::json;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Bump when a workload's content changes, so that stale outputs are rewritten.
const FORMAT: &str = "bench-workload v1";

/// What one workload wrote, for the side files.
#[derive(Default)]
struct Written {
    /// (image, tag, digest)
    refs: Vec<(String, String, Digest)>,
    /// Sorted snapshot CSV rows.
    expected: BTreeSet<String>,
    /// Every blob and manifest, once.
    objects: BTreeSet<(Digest, u64)>,
    images: usize,
}

impl Written {
    /// Record `image` tagged `tag` in repository `name`.
    fn add(&mut self, name: &str, tag: &str, image: &TestImage) {
        self.refs
            .push((name.to_string(), tag.to_string(), image.digest().clone()));
        self.expected
            .insert(format!("{name}@{},{name}:{tag}", image.digest()));
        // Registries cannot list untagged digests, but a snapshot lists the
        // children of every index it finds, untagged.
        for child in &image.children {
            self.expected.insert(format!("{name}@{},-", child.digest()));
        }
        for blob in image.all_blobs() {
            self.objects.insert((blob.digest.clone(), blob.size()));
        }
        for manifest in image.all_manifests() {
            self.objects
                .insert((manifest.digest.clone(), manifest.bytes.len() as u64));
        }
    }

    fn bytes(&self) -> u64 {
        self.objects.iter().map(|(_, size)| size).sum()
    }
}

fn image_name(i: usize) -> String {
    format!("img-{i:03}")
}

/// A seed per workload and image, so that no two workloads share a blob by accident.
fn seed(workload: u64, i: usize) -> u64 {
    derive_seed(0xBE7C_0000_0000_0000 | workload << 32, i as u64)
}

fn workload_a(root: &Path, out: &mut Written) -> std::io::Result<()> {
    for i in 0..500 {
        let image = TestImage::single_layer(seed(0xA, i), 4 * KIB);
        let name = image_name(i);
        write_oci_layout(root, &name, &[(&image, Some("v1"))])?;
        out.add(&name, "v1", &image);
        out.images += 1;
    }
    Ok(())
}

fn workload_b(root: &Path, out: &mut Written) -> std::io::Result<()> {
    let base = TestBlob::layer(seed(0xB, 100_000), MIB);
    for i in 0..100 {
        let image = TestImage::layered(seed(0xB, i), 2, MIB, Some(&base));
        let name = image_name(i);
        write_oci_layout(root, &name, &[(&image, Some("v1"))])?;
        out.add(&name, "v1", &image);
        out.images += 1;
    }
    Ok(())
}

fn workload_c(root: &Path, out: &mut Written) -> std::io::Result<()> {
    // One image (128 MiB) in memory at a time.
    for i in 0..10 {
        let image = TestImage::layered(seed(0xC, i), 2, 64 * MIB, None);
        let name = image_name(i);
        write_oci_layout(root, &name, &[(&image, Some("v1"))])?;
        out.add(&name, "v1", &image);
        out.images += 1;
    }
    Ok(())
}

fn workload_d(root: &Path, out: &mut Written) -> std::io::Result<()> {
    for i in 0..40 {
        let image = TestImage::oci_index(seed(0xD, i), 4 * KIB);
        let name = image_name(i);
        write_oci_layout(root, &name, &[(&image, Some("v1"))])?;
        out.add(&name, "v1", &image);
        out.images += 1;
    }
    Ok(())
}

/// The fan-out workload: 30 images of two 4 MiB layers, promoted to four
/// destination registries at once (registry.k8s.io's shape, smaller).
fn workload_e(root: &Path, out: &mut Written) -> std::io::Result<()> {
    for i in 0..30 {
        let image = TestImage::layered(seed(0xE, i), 2, 4 * MIB, None);
        let name = image_name(i);
        write_oci_layout(root, &name, &[(&image, Some("v1"))])?;
        out.add(&name, "v1", &image);
        out.images += 1;
    }
    Ok(())
}

/// No-op at scale: 200 repositories of 10 tags each (2,000 tags), every one
/// already in the destination when measured.
fn workload_f(root: &Path, out: &mut Written) -> std::io::Result<()> {
    tagged_repositories(root, out, 200, 10, 0xF, 16, 512)
}

/// Under quotas: 40 repositories of 3 tags (120 new images), a
/// registry.k8s.io-shaped tree scaled to a minute of quota.
fn workload_q(root: &Path, out: &mut Written) -> std::io::Result<()> {
    tagged_repositories(root, out, 40, 3, 0x9, 4, 2 * KIB)
}

/// `repos` repositories of `tags` single-layer images of `layer` bytes
/// each, tagged `v1`..; `stride` spaces the seeds of one repository's.
fn tagged_repositories(
    root: &Path,
    out: &mut Written,
    repos: usize,
    tags: usize,
    kind: u64,
    stride: usize,
    layer: usize,
) -> std::io::Result<()> {
    for r in 0..repos {
        let name = image_name(r);
        let images: Vec<TestImage> = (0..tags)
            .map(|t| TestImage::single_layer(seed(kind, r * stride + t), layer))
            .collect();
        let tags: Vec<String> = (1..=tags).map(|t| format!("v{t}")).collect();
        let entries: Vec<(&TestImage, Option<&str>)> = images
            .iter()
            .zip(&tags)
            .map(|(image, tag)| (image, Some(tag.as_str())))
            .collect();
        write_oci_layout(root, &name, &entries)?;
        for (image, tag) in images.iter().zip(&tags) {
            out.add(&name, tag, image);
            out.images += 1;
        }
    }
    Ok(())
}

fn workload_snap(root: &Path, out: &mut Written) -> std::io::Result<()> {
    let shared = TestBlob::layer(seed(0x5A, 1_000_000), KIB);
    for r in 0..1000 {
        let name = format!("r-{r:04}");
        let images: Vec<TestImage> = (0..5)
            .map(|t| {
                TestImage::image(
                    seed(0x5A, r * 8 + t),
                    images::Flavor::Oci,
                    images::Platform::linux("amd64"),
                    vec![shared.clone()],
                )
            })
            .collect();
        let tags: Vec<String> = (1..=5).map(|t| format!("t{t}")).collect();
        let entries: Vec<(&TestImage, Option<&str>)> = images
            .iter()
            .zip(&tags)
            .map(|(image, tag)| (image, Some(tag.as_str())))
            .collect();
        write_oci_layout(root, &name, &entries)?;
        for (image, tag) in images.iter().zip(&tags) {
            out.add(&name, tag, image);
            out.images += 1;
        }
    }
    Ok(())
}

/// One image with one 1 GiB layer, written while it is generated: the
/// generator holds 64 KiB of it at a time.
fn workload_big(root: &Path, out: &mut Written) -> std::io::Result<()> {
    const SIZE: u64 = 1024 * MIB as u64;
    const CHUNK: usize = 64 * KIB;
    let name = "img-000";
    let dir = root.join(name);
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;

    let tmp = blobs.join("layer.partial");
    let mut file = std::io::BufWriter::with_capacity(CHUNK, std::fs::File::create(&tmp)?);
    let mut prng = Prng::new(seed(0xB16, 0));
    let mut hasher = DigestHasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; CHUNK];
    let mut left = SIZE;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        prng.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        left -= n as u64;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let layer = hasher.finish();
    std::fs::rename(&tmp, blobs.join(layer.hex()))?;

    let config = serde_json::to_vec(&json!({
        "created": "2024-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [layer.as_str()] },
        "history": [{ "created": "2024-01-01T00:00:00Z", "created_by": "promoter bench" }],
    }))
    .expect("serialising a JSON value cannot fail");
    let config_digest = Digest::sha256_of(&config);
    std::fs::write(blobs.join(config_digest.hex()), &config)?;
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest.as_str(), "size": config.len() },
        "layers": [{ "mediaType": OCI_LAYER_TAR, "digest": layer.as_str(), "size": SIZE }],
    }))
    .expect("serialising a JSON value cannot fail");
    let digest = Digest::sha256_of(&manifest);
    std::fs::write(blobs.join(digest.hex()), &manifest)?;
    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": [{
            "mediaType": media_type::OCI_MANIFEST,
            "digest": digest.as_str(),
            "size": manifest.len(),
            "annotations": { images::REF_NAME: "v1" },
        }],
    }))
    .expect("serialising a JSON value cannot fail");
    std::fs::write(dir.join("index.json"), index)?;

    out.refs.push((name.into(), "v1".into(), digest.clone()));
    out.expected.insert(format!("{name}@{digest},{name}:v1"));
    out.objects.insert((layer, SIZE));
    out.objects.insert((config_digest, config.len() as u64));
    out.objects.insert((digest, manifest.len() as u64));
    out.images = 1;
    Ok(())
}

fn images_yaml(refs: &[(String, String, Digest)]) -> String {
    // Group tags by (image, digest), images in first-seen order.
    let mut out = String::from("images:\n");
    let mut names: Vec<&str> = Vec::new();
    for (name, _, _) in refs {
        if names.last() != Some(&name.as_str()) && !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    for name in names {
        let _ = writeln!(out, "- name: {name}\n  dmap:");
        let mut digests: Vec<&Digest> = Vec::new();
        for (_, _, digest) in refs.iter().filter(|(n, _, _)| n == name) {
            if !digests.contains(&digest) {
                digests.push(digest);
            }
        }
        for digest in digests {
            let tags: Vec<String> = refs
                .iter()
                .filter(|(n, _, d)| n == name && d == digest)
                .map(|(_, t, _)| format!("\"{t}\""))
                .collect();
            let _ = writeln!(out, "    \"{digest}\": [{}]", tags.join(", "));
        }
    }
    out
}

fn generate(out_dir: &Path, workload: &str) -> std::io::Result<()> {
    let dir = out_dir.join(workload);
    let stamp = dir.join("stamp");
    let want_stamp = format!("{FORMAT} {workload}\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want_stamp.as_str()) {
        eprintln!("workload {workload}: up to date in {}", dir.display());
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let root = dir.join("oci");
    std::fs::create_dir_all(&root)?;
    let started = std::time::Instant::now();
    let mut written = Written::default();
    match workload {
        "a" => workload_a(&root, &mut written)?,
        "b" => workload_b(&root, &mut written)?,
        "c" => workload_c(&root, &mut written)?,
        "d" => workload_d(&root, &mut written)?,
        "e" => workload_e(&root, &mut written)?,
        "f" => workload_f(&root, &mut written)?,
        "q" => workload_q(&root, &mut written)?,
        "big" => workload_big(&root, &mut written)?,
        "snap" => workload_snap(&root, &mut written)?,
        other => unreachable!("workload {other} was checked"),
    }
    let mut refs = String::new();
    for (name, tag, digest) in &written.refs {
        let _ = writeln!(refs, "{name}\t{tag}\t{digest}");
    }
    std::fs::write(dir.join("refs.tsv"), refs)?;
    std::fs::write(dir.join("images.yaml"), images_yaml(&written.refs))?;
    let mut expected: Vec<&String> = written.expected.iter().collect();
    expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let expected: String = expected.into_iter().map(|row| format!("{row}\n")).collect();
    std::fs::write(dir.join("expected.csv"), expected)?;
    std::fs::write(
        dir.join("info"),
        format!("images={} bytes={}\n", written.images, written.bytes()),
    )?;
    std::fs::write(&stamp, want_stamp)?;
    eprintln!(
        "workload {workload}: {} images, {} bytes, written in {:.1}s to {}",
        written.images,
        written.bytes(),
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(())
}

const WORKLOADS: [&str; 9] = ["a", "b", "c", "d", "e", "f", "q", "big", "snap"];

// ---------------------------------------------------------------- floor

/// The 4 KiB blob of floor repository `i`.
fn floor_blob(i: usize) -> TestBlob {
    TestBlob::layer(seed(0xF1, i), 4 * KIB)
}

/// An image manifest whose config and layer are both `floor_blob(i)`: the
/// registry only checks that referenced blobs exist.
fn floor_manifest(i: usize) -> Vec<u8> {
    let blob = floor_blob(i);
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": blob.digest.as_str(), "size": blob.size() },
        "layers": [{ "mediaType": OCI_LAYER_TAR, "digest": blob.digest.as_str(), "size": blob.size() }],
    }))
    .expect("serialising a JSON value cannot fail")
}

async fn floor_request(
    client: &reqwest::Client,
    base: &str,
    step: &str,
    i: usize,
) -> Result<(), String> {
    use reqwest::Method;
    let repo = format!("floor/r-{i:05}");
    let expect = |resp: reqwest::Response, want: u16| async move {
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let _ = resp.bytes().await;
        if status == want {
            Ok(location)
        } else {
            Err(format!("{step} {i}: status {status}, want {want}"))
        }
    };
    let send = |method: Method, url: String| client.request(method, url);
    match step {
        "upload" => {
            let blob = floor_blob(i);
            let resp = send(Method::POST, format!("{base}/v2/{repo}/blobs/uploads/"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let location = expect(resp, 202).await?.ok_or("no Location")?;
            let url = if location.starts_with("http") {
                location
            } else {
                format!("{base}{location}")
            };
            let sep = if url.contains('?') { '&' } else { '?' };
            let resp = send(Method::PUT, format!("{url}{sep}digest={}", blob.digest))
                .header("content-type", "application/octet-stream")
                .body(blob.bytes.clone())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            expect(resp, 201).await?;
        }
        "manifest-put" => {
            let resp = send(Method::PUT, format!("{base}/v2/{repo}/manifests/v1"))
                .header("content-type", media_type::OCI_MANIFEST)
                .body(floor_manifest(i))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            expect(resp, 201).await?;
        }
        "head-tag" | "head-tag-absent" | "head-blob" | "get-manifest" | "get-blob"
        | "tags-list" | "ping" => {
            let (method, url, want) = match step {
                "head-tag" => (Method::HEAD, format!("{base}/v2/{repo}/manifests/v1"), 200),
                "head-tag-absent" => (
                    Method::HEAD,
                    format!("{base}/v2/floor/absent-{i:05}/manifests/v1"),
                    404,
                ),
                "head-blob" => (
                    Method::HEAD,
                    format!("{base}/v2/{repo}/blobs/{}", floor_blob(i).digest),
                    200,
                ),
                "get-manifest" => (
                    Method::GET,
                    format!(
                        "{base}/v2/{repo}/manifests/{}",
                        Digest::sha256_of(&floor_manifest(i))
                    ),
                    200,
                ),
                "get-blob" => (
                    Method::GET,
                    format!("{base}/v2/{repo}/blobs/{}", floor_blob(i).digest),
                    200,
                ),
                "tags-list" => (Method::GET, format!("{base}/v2/{repo}/tags/list"), 200),
                _ => (Method::GET, format!("{base}/v2/"), 200),
            };
            let mut request = send(method, url);
            // Distribution answers 404 for an OCI manifest not in Accept.
            if step == "get-manifest" || step.starts_with("head-tag") {
                request = request.header("accept", media_type::OCI_MANIFEST);
            }
            let resp = request.send().await.map_err(|e| e.to_string())?;
            expect(resp, want).await?;
        }
        "mount" => {
            let url = format!(
                "{base}/v2/floor/m-{i:05}/blobs/uploads/?mount={}&from={repo}",
                floor_blob(i).digest
            );
            let resp = send(Method::POST, url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            expect(resp, 201).await?;
        }
        other => return Err(format!("unknown floor step {other:?}")),
    }
    Ok(())
}

fn floor(host: &str, step: &str, n: usize) -> Result<(), String> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let base = format!("http://{host}");
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(8)
            .build()
            .map_err(|e| e.to_string())?;
        let started = std::time::Instant::now();
        let requests_each = if step == "upload" { 2 } else { 1 };
        stream::iter(0..n)
            .map(|i| floor_request(&client, &base, step, i))
            .buffer_unordered(4)
            .try_collect::<()>()
            .await?;
        println!(
            "{} {:.3}",
            n * requests_each,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    })
}

/// `quota-proxy`: the suite's quota proxy in front of `upstream`, its
/// counts written to `stats` until the process is killed.
fn quota_proxy(args: &[String]) -> Result<(), String> {
    let [upstream, requests, writes, retry_after, stats] = args else {
        return Err("usage: bench_workload quota-proxy UPSTREAM REQUESTS_PER_MINUTE WRITES_PER_MINUTE RETRY_AFTER STATS_FILE".into());
    };
    let number = |s: &str| s.parse::<f64>().map_err(|e| format!("{s}: {e}"));
    let mut quota = proxy::Quota::per_minute(number(requests)?);
    let writes = number(writes)?;
    if writes > 0.0 {
        quota = quota.writes_per_minute(writes);
    }
    if retry_after == "1" {
        quota = quota.with_retry_after();
    }
    serve_counting(upstream, stats, move |proxy| proxy.set_quota(Some(quota)))
}

/// `listing-proxy`: a proxy in front of `upstream` that only counts
/// (`plain`), or also answers `tags/list` as Google's registries do
/// (`google`: with the digests of every tag), for `bench/run.sh k8s`.
fn listing_proxy(args: &[String]) -> Result<(), String> {
    let [upstream, mode, stats] = args else {
        return Err("usage: bench_workload listing-proxy UPSTREAM plain|google STATS_FILE".into());
    };
    let google = match mode.as_str() {
        "plain" => false,
        "google" => true,
        other => return Err(format!("mode {other:?}: plain or google")),
    };
    serve_counting(upstream, stats, move |proxy| {
        if google {
            proxy.add(
                proxy::Rule::new("GET", "/tags/list")
                    .always()
                    .action(proxy::Action::GoogleListing),
            );
        }
    })
}

/// Run the suite's proxy in front of `upstream`, set up by `setup`: print
/// its `HOST:PORT`, then rewrite `stats` every 200 ms with `requests
/// throttled accepted accepted_writes` until killed.
fn serve_counting(
    upstream: &str,
    stats: &str,
    setup: impl FnOnce(&proxy::Proxy),
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let proxy = proxy::Proxy::start(upstream).await;
        setup(&proxy);
        println!("{}", proxy.host());
        std::io::stdout().flush().map_err(|e| e.to_string())?;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let log = proxy.log();
            let throttled = log.iter().filter(|r| r.status == 429).count();
            let writes = log
                .iter()
                .filter(|r| r.status != 429 && !matches!(r.method.as_str(), "GET" | "HEAD"))
                .count();
            let line = format!(
                "{} {throttled} {} {writes}\n",
                log.len(),
                log.len() - throttled
            );
            std::fs::write(stats, line).map_err(|e| e.to_string())?;
        }
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("quota-proxy") {
        return match quota_proxy(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("quota-proxy: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if args.first().map(String::as_str) == Some("listing-proxy") {
        return match listing_proxy(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("listing-proxy: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if args.first().map(String::as_str) == Some("floor") {
        let (Some(host), Some(step), Some(n)) = (
            args.get(1),
            args.get(2),
            args.get(3).and_then(|n| n.parse::<usize>().ok()),
        ) else {
            eprintln!("usage: bench_workload floor HOST:PORT STEP N");
            return ExitCode::from(2);
        };
        return match floor(host, step, n) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("floor: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if args.len() < 2 || args.iter().any(|a| a == "-h" || a == "--help") {
        eprintln!(
            "usage: bench_workload OUT_DIR WORKLOAD...\n  workloads: {}\n(see the top of examples/bench_workload.rs)",
            WORKLOADS.join(" ")
        );
        return ExitCode::from(2);
    }
    let out_dir = PathBuf::from(&args[0]);
    for workload in &args[1..] {
        if !WORKLOADS.contains(&workload.as_str()) {
            eprintln!(
                "unknown workload {workload:?}; known: {}",
                WORKLOADS.join(" ")
            );
            return ExitCode::from(2);
        }
    }
    for workload in &args[1..] {
        if let Err(err) = generate(&out_dir, workload) {
            eprintln!("workload {workload}: {err}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
