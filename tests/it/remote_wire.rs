//! Wire-level behaviour of the HTTP registry client against the real CNCF
//! registry, observed (and disturbed) through the recording proxy: how many
//! requests each operation costs, that mounts move no bytes, that corrupted
//! answers are caught, and that transient failures are retried as promised.

use std::time::{Duration, Instant};

use futures::StreamExt;
use promoter::oci::ContentError;
use promoter::reference::{Digest, ManifestRef, Tag};
use promoter::registry::remote::{CredentialStore, RegistryOptions, RemoteRegistry};
use promoter::registry::{media_type, BlobPut, Registry, RegistryError};

use crate::support::images::{paths, push, At, TestBlob, TestImage};
use crate::support::proxy::{Action, Proxy, Rule, Target};
use crate::support::registry::{remote_at, TestRegistry};
use crate::support::skopeo;

/// A plain registry, a proxy in front of it, and a client of the proxy.
struct Rig {
    proxy: Proxy,
    client: RemoteRegistry,
    /// A client straight to the registry, for seeding content.
    direct: RemoteRegistry,
    registry: TestRegistry,
}

async fn rig_with(tune: impl FnOnce(&mut RegistryOptions)) -> Option<Rig> {
    let registry = TestRegistry::plain().await?;
    let proxy = Proxy::start(&registry.host()).await;
    let mut opts = registry.options();
    tune(&mut opts);
    let client = remote_at(&proxy.host(), opts, CredentialStore::anonymous());
    let direct = registry.remote(CredentialStore::anonymous());
    Some(Rig {
        proxy,
        client,
        direct,
        registry,
    })
}

async fn rig() -> Option<Rig> {
    rig_with(|_| {}).await
}

impl Rig {
    /// Make the client ping now, then forget the log: the assertions that
    /// follow count only what the operation under test sends.
    async fn warm(&self) {
        let _ = self.client.list_tags(&self.client.at("warm/up")).await;
        self.proxy.clear_log();
    }
}

fn tag(t: &str) -> ManifestRef {
    ManifestRef::Tag(Tag::parse(t).unwrap())
}

fn by_digest(d: &Digest) -> ManifestRef {
    ManifestRef::Digest(d.clone())
}

async fn read_blob(
    client: &RemoteRegistry,
    repo: &str,
    digest: &Digest,
) -> Result<Vec<u8>, RegistryError> {
    let mut stream = client.get_blob(&client.at(repo), digest).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

#[tokio::test]
async fn catalog_pagination_with_n_2_walks_the_link_header() {
    let Some(rig) = rig_with(|o| o.page_size = Some(2)).await else {
        return;
    };
    let blob = TestBlob::layer(1, 100);
    for repo in [
        "team/one",
        "team/two",
        "team-x/three",
        "team/sub/four",
        "other/five",
    ] {
        rig.direct
            .put_blob(&rig.direct.at(repo), &blob.upload(None))
            .await
            .unwrap();
    }
    rig.warm().await;
    let catalog_pages = |rig: &Rig| -> Vec<_> {
        rig.proxy
            .log()
            .into_iter()
            .filter(|r| r.is("GET", "/v2/_catalog"))
            .collect()
    };
    // The whole catalog: five names, two per page, three pages via Link.
    let all = rig.client.list_repositories("").await.unwrap();
    assert_eq!(all.len(), 5);
    let pages = catalog_pages(&rig);
    assert_eq!(pages.len(), 3, "{}", rig.proxy.dump());
    assert!(pages[0].path.contains("n=2"), "{}", rig.proxy.dump());
    assert!(
        pages[1].path.contains("last="),
        "second page follows Link: {}",
        rig.proxy.dump()
    );

    // Under a prefix: the walk starts just before it (skipping `other/`),
    // still follows Link, and keeps only names on the path boundary.
    rig.proxy.clear_log();
    let repos = rig.client.list_repositories("team").await.unwrap();
    assert_eq!(paths(repos), vec!["team/one", "team/sub/four", "team/two"]);
    let pages = catalog_pages(&rig);
    assert!(
        pages[0].path.contains("last=teal%7E"),
        "{}",
        rig.proxy.dump()
    );
    assert_eq!(pages.len(), 2, "{}", rig.proxy.dump());
}

#[tokio::test]
async fn tags_are_listed_sorted_and_a_missing_repo_has_none() {
    let Some(rig) = rig().await else { return };
    let image = TestImage::single_layer(2, 64);
    push(&rig.direct, "app", &image, Some("v2")).await.unwrap();
    push(&rig.direct, "app", &image, Some("v10")).await.unwrap();
    push(&rig.direct, "app", &image, Some("latest"))
        .await
        .unwrap();
    assert_eq!(
        rig.client.list_tags(&rig.client.at("app")).await.unwrap(),
        vec!["latest", "v10", "v2"]
    );
    assert!(rig
        .client
        .list_tags(&rig.client.at("nothing/here"))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn a_fresh_upload_is_one_post_and_one_streaming_put() {
    let Some(rig) = rig().await else { return };
    rig.warm().await;
    let blob = TestBlob::layer(3, 300_000);
    let put = rig
        .client
        .put_blob(&rig.client.at("up/load"), &blob.upload(None))
        .await
        .unwrap();
    assert_eq!(put, BlobPut::Uploaded);
    let log = rig.proxy.log();
    assert_eq!(log.len(), 2, "{}", rig.proxy.dump());
    assert!(log[0].is("POST", "/v2/up/load/blobs/uploads/"));
    assert_eq!(log[0].status, 202);
    assert!(log[1].is("PUT", "/v2/up/load/blobs/uploads/"));
    assert!(log[1].path.contains(&format!(
        "digest={}",
        blob.digest.as_str().replace(':', "%3A")
    )));
    assert_eq!(log[1].status, 201);
    assert_eq!(log[1].request_bytes, blob.size());
    assert_eq!(
        log[1].content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        read_blob(&rig.direct, "up/load", &blob.digest)
            .await
            .unwrap(),
        blob.bytes
    );
}

#[tokio::test]
async fn a_mount_answers_201_and_moves_no_bytes() {
    let Some(rig) = rig().await else { return };
    let blob = TestBlob::layer(4, 200_000);
    rig.direct
        .put_blob(&rig.direct.at("src/repo"), &blob.upload(None))
        .await
        .unwrap();
    rig.warm().await;
    let put = rig
        .client
        .put_blob(
            &rig.client.at("dst/repo"),
            &blob.upload(Some(&rig.client.at("src/repo"))),
        )
        .await
        .unwrap();
    assert_eq!(put, BlobPut::Mounted);
    let log = rig.proxy.log();
    assert_eq!(log.len(), 1, "{}", rig.proxy.dump());
    assert!(log[0].is("POST", "/v2/dst/repo/blobs/uploads/"));
    assert!(log[0].path.contains("mount=") && log[0].path.contains("from=src%2Frepo"));
    assert_eq!(log[0].status, 201);
    assert_eq!(log.iter().map(|r| r.request_bytes).sum::<u64>(), 0);
    assert_eq!(
        rig.client
            .blob_exists(&rig.client.at("dst/repo"), &blob.digest)
            .await
            .unwrap(),
        Some(blob.size())
    );
}

#[tokio::test]
async fn a_mount_from_a_repo_without_the_blob_uploads_into_the_offered_session() {
    let Some(rig) = rig().await else { return };
    rig.warm().await;
    let blob = TestBlob::layer(5, 10_000);
    let put = rig
        .client
        .put_blob(
            &rig.client.at("dst/repo"),
            &blob.upload(Some(&rig.client.at("empty/src"))),
        )
        .await
        .unwrap();
    assert_eq!(put, BlobPut::Uploaded);
    let log = rig.proxy.log();
    // The 202 to the mount is the upload session: no second POST.
    assert_eq!(log.len(), 2, "{}", rig.proxy.dump());
    assert!(log[0].is("POST", "mount="));
    assert_eq!(log[0].status, 202);
    assert!(log[1].is("PUT", "/v2/dst/repo/blobs/uploads/"));
    assert_eq!(log[1].status, 201);
}

#[tokio::test]
async fn a_refused_mount_falls_back_to_an_upload() {
    let Some(rig) = rig().await else { return };
    let blob = TestBlob::layer(6, 50_000);
    rig.direct
        .put_blob(&rig.direct.at("src/repo"), &blob.upload(None))
        .await
        .unwrap();
    rig.warm().await;
    rig.proxy.add(
        Rule::new("POST", "/blobs/uploads/")
            .query("mount=")
            .always()
            .action(Action::status(401)),
    );
    let put = rig
        .client
        .put_blob(
            &rig.client.at("dst/repo"),
            &blob.upload(Some(&rig.client.at("src/repo"))),
        )
        .await
        .unwrap();
    assert_eq!(put, BlobPut::Uploaded);
    let log = rig.proxy.log();
    let mounts = log.iter().filter(|r| r.path.contains("mount=")).count();
    assert_eq!(
        mounts,
        1,
        "a refused mount is not retried: {}",
        rig.proxy.dump()
    );
    assert_eq!(rig.proxy.count("POST", "/blobs/uploads/"), 2);
    assert_eq!(rig.proxy.count("PUT", "/blobs/uploads/"), 1);
    assert_eq!(
        read_blob(&rig.direct, "dst/repo", &blob.digest)
            .await
            .unwrap(),
        blob.bytes
    );
}

#[tokio::test]
async fn an_existing_blob_costs_one_head_and_nothing_more() {
    let Some(rig) = rig().await else { return };
    let blob = TestBlob::layer(7, 1000);
    rig.direct
        .put_blob(&rig.direct.at("has/blob"), &blob.upload(None))
        .await
        .unwrap();
    rig.warm().await;
    assert_eq!(
        rig.client
            .blob_exists(&rig.client.at("has/blob"), &blob.digest)
            .await
            .unwrap(),
        Some(1000)
    );
    let log = rig.proxy.log();
    assert_eq!(log.len(), 1, "{}", rig.proxy.dump());
    assert!(log[0].is("HEAD", &format!("/v2/has/blob/blobs/{}", blob.digest)));

    rig.proxy.clear_log();
    let other = TestBlob::layer(8, 10);
    assert_eq!(
        rig.client
            .blob_exists(&rig.client.at("has/blob"), &other.digest)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        rig.proxy.log().len(),
        1,
        "a 404 is an answer, never retried"
    );
}

#[tokio::test]
async fn a_manifest_read_then_written_elsewhere_keeps_its_bytes_and_digest() {
    let Some(rig) = rig().await else { return };
    // Pretty-printed JSON: any re-serialisation would change the digest.
    let oci = TestImage::single_layer(9, 500);
    let docker = TestImage::docker_list(10, 300);
    push(&rig.direct, "from/oci", &oci, Some("v1"))
        .await
        .unwrap();
    push(&rig.direct, "from/docker", &docker, Some("v1"))
        .await
        .unwrap();

    for (src, image) in [("from/oci", &oci), ("from/docker", &docker)] {
        let dst = src.replace("from/", "to/");
        let head = rig
            .client
            .head_manifest(&rig.client.at(src), &tag("v1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head.digest, *image.digest());
        assert_eq!(head.media_type, image.media_type());
        assert_eq!(head.size, image.manifest.bytes.len() as u64);
        // Children and blobs first, by mount, as the executor would.
        for node in image.nodes_bottom_up() {
            for blob in node.own_blobs() {
                let put = rig
                    .client
                    .put_blob(
                        &rig.client.at(&dst),
                        &blob.upload(Some(&rig.client.at(src))),
                    )
                    .await
                    .unwrap();
                assert_eq!(put, BlobPut::Mounted);
            }
            if node.digest() != image.digest() {
                let m = rig
                    .client
                    .get_manifest(&rig.client.at(src), &by_digest(node.digest()))
                    .await
                    .unwrap()
                    .unwrap();
                rig.client
                    .put_manifest(&rig.client.at(&dst), &by_digest(&m.digest), &m)
                    .await
                    .unwrap();
            }
        }
        let read = rig
            .client
            .get_manifest(&rig.client.at(src), &tag("v1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.bytes, image.manifest.bytes);
        assert_eq!(read.digest, *image.digest());
        assert_eq!(read.media_type, image.media_type());
        rig.client
            .put_manifest(&rig.client.at(&dst), &tag("v1"), &read)
            .await
            .unwrap();

        let got = rig
            .client
            .head_manifest(&rig.client.at(&dst), &tag("v1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.digest, *image.digest());
        assert_eq!(got.media_type, image.media_type());
        // An independent client sees the very same bytes.
        let target = format!("docker://{}/{dst}:v1", rig.registry.host());
        if let Some(raw) = skopeo::inspect_raw_async(&target).await {
            assert_eq!(raw, image.manifest.bytes.to_vec(), "{dst}");
        }
    }
    assert_eq!(
        rig.client
            .get_manifest(&rig.client.at("from/oci"), &tag("missing"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn wrong_bytes_are_caught_as_a_digest_mismatch() {
    let Some(rig) = rig().await else { return };
    let image = TestImage::single_layer(11, 100_000);
    push(&rig.direct, "bad/bytes", &image, Some("v1"))
        .await
        .unwrap();
    let layer = &image.layers[0];

    rig.proxy
        .add(Rule::new("GET", "/blobs/").action(Action::WrongBytes));
    let err = read_blob(&rig.client, "bad/bytes", &layer.digest)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RegistryError::BadContent(ContentError::DigestMismatch { expected, .. }) if *expected == layer.digest),
        "{err}"
    );
    assert!(err.is_retryable());

    // A manifest corrupted once is read again and arrives intact...
    rig.proxy
        .add(Rule::new("GET", "/manifests/").action(Action::WrongBytes));
    let healed = rig
        .client
        .get_manifest(&rig.client.at("bad/bytes"), &by_digest(image.digest()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(healed.bytes, image.manifest.bytes);

    // ...one that stays corrupt is a digest mismatch.
    rig.proxy.clear_rules();
    rig.proxy.add(
        Rule::new("GET", "/manifests/")
            .always()
            .action(Action::WrongBytes),
    );
    let err = rig
        .client
        .get_manifest(&rig.client.at("bad/bytes"), &by_digest(image.digest()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::BadContent(ContentError::DigestMismatch { .. })
        ),
        "{err}"
    );

    // By tag, the registry's Docker-Content-Digest is the yardstick.
    let err = rig
        .client
        .get_manifest(&rig.client.at("bad/bytes"), &tag("v1"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::BadContent(ContentError::DigestMismatch { .. })
        ),
        "{err}"
    );

    // A body cut short but ended cleanly (chunked, no length) fails too.
    rig.proxy
        .add(Rule::new("GET", "/blobs/").action(Action::Truncate));
    let err = read_blob(&rig.client, "bad/bytes", &layer.digest)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::BadContent(ContentError::DigestMismatch { .. })
        ),
        "{err}"
    );

    // Untouched, the same reads succeed.
    assert_eq!(
        read_blob(&rig.client, "bad/bytes", &layer.digest)
            .await
            .unwrap(),
        layer.bytes
    );
}

#[tokio::test]
async fn a_reset_mid_body_is_a_retryable_transport_error() {
    let Some(rig) = rig().await else { return };
    let blob = TestBlob::layer(12, 400_000);
    rig.direct
        .put_blob(&rig.direct.at("reset/me"), &blob.upload(None))
        .await
        .unwrap();
    rig.proxy
        .add(Rule::new("GET", "/blobs/").action(Action::ResetMidBody));
    let err = read_blob(&rig.client, "reset/me", &blob.digest)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Transport {
                retryable: true,
                ..
            }
        ) || matches!(
            err,
            RegistryError::BadContent(ContentError::SizeMismatch { .. })
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        read_blob(&rig.client, "reset/me", &blob.digest)
            .await
            .unwrap(),
        blob.bytes
    );
}

#[tokio::test]
async fn a_429_with_retry_after_1_is_retried_after_about_a_second() {
    let Some(rig) = rig().await else { return };
    let image = TestImage::single_layer(13, 100);
    push(&rig.direct, "rate/limited", &image, Some("v1"))
        .await
        .unwrap();
    rig.warm().await;
    rig.proxy.add(
        Rule::new("HEAD", "/manifests/").action(Action::status(429).header("Retry-After", "1")),
    );
    let got = rig
        .client
        .head_manifest(&rig.client.at("rate/limited"), &tag("v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.digest, *image.digest());
    let log = rig.proxy.log();
    assert_eq!(log.len(), 2, "{}", rig.proxy.dump());
    assert_eq!(log[0].status, 429);
    assert_eq!(log[1].status, 200);
    let waited = log[1].at - log[0].at;
    assert!(
        waited >= Duration::from_millis(900),
        "waited only {waited:?}"
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    let Some(rig) = rig().await else { return };
    let blob = TestBlob::layer(14, 100);
    rig.direct
        .put_blob(&rig.direct.at("rate/date"), &blob.upload(None))
        .await
        .unwrap();
    rig.warm().await;
    let when = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(2));
    rig.proxy
        .add(Rule::new("HEAD", "/blobs/").action(Action::status(503).header("Retry-After", &when)));
    assert_eq!(
        rig.client
            .blob_exists(&rig.client.at("rate/date"), &blob.digest)
            .await
            .unwrap(),
        Some(100)
    );
    let log = rig.proxy.log();
    assert_eq!(log.len(), 2, "{}", rig.proxy.dump());
    // The date has one-second resolution: it names a moment 1-2 s away.
    assert!(log[1].at - log[0].at >= Duration::from_millis(900));
}

#[tokio::test]
async fn bursts_of_503_are_retried_with_backoff() {
    let Some(rig) = rig().await else { return };
    let blob = TestBlob::layer(15, 100);
    rig.direct
        .put_blob(&rig.direct.at("flaky/one"), &blob.upload(None))
        .await
        .unwrap();
    rig.warm().await;
    rig.proxy.add(
        Rule::new("HEAD", "/blobs/")
            .times(3)
            .action(Action::status(503)),
    );
    assert_eq!(
        rig.client
            .blob_exists(&rig.client.at("flaky/one"), &blob.digest)
            .await
            .unwrap(),
        Some(100)
    );
    let log = rig.proxy.log();
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 503, 503, 200], "{}", rig.proxy.dump());
    // Backoff grows: 100-200 ms, then 200-400 ms, then 400-800 ms.
    assert!(log[3].at - log[0].at >= Duration::from_millis(700));
}

#[tokio::test]
async fn retries_stop_at_the_deadline() {
    let Some(rig) = rig_with(|o| o.retry_deadline_secs = Some(1.0)).await else {
        return;
    };
    rig.warm().await;
    rig.proxy.add(
        Rule::new("GET", "/manifests/")
            .always()
            .action(Action::status(503)),
    );
    let started = Instant::now();
    let err = rig
        .client
        .get_manifest(&rig.client.at("down/repo"), &tag("v1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 503, .. }),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(rig.proxy.count("GET", "/manifests/") >= 2);
}

#[tokio::test]
async fn a_monolithic_put_failing_with_5xx_is_sent_again_in_chunks_in_a_new_session() {
    let Some(rig) = rig().await else { return };
    rig.warm().await;
    let blob = TestBlob::layer(16, 100_000);
    rig.proxy
        .add(Rule::new("PUT", "/blobs/uploads/").action(Action::status(503)));
    let put = rig
        .client
        .put_blob(&rig.client.at("retry/put"), &blob.upload(None))
        .await
        .unwrap();
    assert_eq!(put, BlobPut::Uploaded);
    let calls: Vec<(String, u16)> = rig
        .proxy
        .log()
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("POST".to_string(), 202),
            ("PUT".to_string(), 503),
            ("POST".to_string(), 202),
            ("PATCH".to_string(), 202),
            ("PUT".to_string(), 201)
        ],
        "{}",
        rig.proxy.dump()
    );
    assert_eq!(
        read_blob(&rig.direct, "retry/put", &blob.digest)
            .await
            .unwrap(),
        blob.bytes
    );
}

#[tokio::test]
async fn chunked_uploads_patch_in_chunks_and_are_the_fallback() {
    let Some(rig) = rig_with(|o| {
        o.chunked_upload = Some(true);
        o.chunk_size = Some(64 * 1024);
    })
    .await
    else {
        return;
    };
    rig.warm().await;
    let blob = TestBlob::layer(17, 200_000);
    rig.client
        .put_blob(&rig.client.at("chunked/up"), &blob.upload(None))
        .await
        .unwrap();
    assert_eq!(rig.proxy.count("POST", "/blobs/uploads/"), 1);
    assert_eq!(
        rig.proxy.count("PATCH", "/blobs/uploads/"),
        4,
        "{}",
        rig.proxy.dump()
    );
    assert_eq!(rig.proxy.count("PUT", "/blobs/uploads/"), 1);
    assert_eq!(
        read_blob(&rig.direct, "chunked/up", &blob.digest)
            .await
            .unwrap(),
        blob.bytes
    );

    // A registry refusing the monolithic PUT gets chunks instead.
    let Some(rig) = rig_with(|o| o.chunk_size = Some(64 * 1024)).await else {
        return;
    };
    rig.warm().await;
    rig.proxy
        .add(Rule::new("PUT", "/blobs/uploads/").action(Action::status(413)));
    let put = rig
        .client
        .put_blob(&rig.client.at("fallback/up"), &blob.upload(None))
        .await
        .unwrap();
    assert_eq!(put, BlobPut::Uploaded);
    assert_eq!(
        rig.proxy.count("PATCH", "/blobs/uploads/"),
        4,
        "{}",
        rig.proxy.dump()
    );
    assert_eq!(
        read_blob(&rig.direct, "fallback/up", &blob.digest)
            .await
            .unwrap(),
        blob.bytes
    );
}

#[tokio::test]
async fn not_found_is_an_answer_and_never_retried() {
    let Some(rig) = rig().await else { return };
    rig.warm().await;
    let missing = Digest::sha256_of(b"missing");
    assert_eq!(
        rig.client
            .head_manifest(&rig.client.at("no/repo"), &by_digest(&missing))
            .await
            .unwrap(),
        None
    );
    let err = rig
        .client
        .get_blob(&rig.client.at("no/repo"), &missing)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, RegistryError::Status { status: 404, .. }),
        "{err}"
    );
    assert!(!err.is_retryable());
    assert_eq!(rig.proxy.log().len(), 2, "{}", rig.proxy.dump());
}

#[tokio::test]
async fn referrers_fall_back_to_the_tag_schema_and_check_the_subject() {
    let Some(rig) = rig().await else { return };
    let subject = TestImage::single_layer(18, 100);
    let other = TestImage::single_layer(19, 100);
    push(&rig.direct, "with/refs", &subject, Some("v1"))
        .await
        .unwrap();
    let real = TestImage::artifact(20, "application/vnd.example.sbom", &subject.manifest);
    // Listed under the subject's tag, but its subject is another image.
    let stray = TestImage::artifact(21, "application/vnd.example.sbom", &other.manifest);
    let index = TestImage::referrers_index(vec![real.clone(), stray]);
    let tag_name = format!("sha256-{}", subject.digest().hex());
    push(&rig.direct, "with/refs", &index, Some(&tag_name))
        .await
        .unwrap();
    rig.warm().await;

    let found = rig
        .client
        .referrers(&rig.client.at("with/refs"), subject.digest())
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].digest, *real.digest());
    assert_eq!(found[0].media_type, media_type::OCI_MANIFEST);
    assert_eq!(
        found[0].artifact_type.as_deref(),
        Some("application/vnd.example.sbom")
    );
    assert_eq!(rig.proxy.count("GET", "/referrers/"), 1);

    // The registry has no referrers API: that is learned once.
    rig.proxy.clear_log();
    assert!(rig
        .client
        .referrers(&rig.client.at("with/refs"), other.digest())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        rig.proxy.count("GET", "/referrers/"),
        0,
        "{}",
        rig.proxy.dump()
    );
}

#[tokio::test]
async fn the_in_flight_cap_and_rate_budget_hold() {
    let Some(rig) = rig_with(|o| o.max_in_flight = Some(1)).await else {
        return;
    };
    let blob = TestBlob::layer(22, 100);
    rig.direct
        .put_blob(&rig.direct.at("capped/one"), &blob.upload(None))
        .await
        .unwrap();
    rig.warm().await;
    rig.proxy.add(
        Rule::new("HEAD", "/blobs/")
            .times(4)
            .action(Action::Delay(Duration::from_millis(200))),
    );
    let started = Instant::now();
    let capped = rig.client.at("capped/one");
    let checks = (0..4).map(|_| rig.client.blob_exists(&capped, &blob.digest));
    for r in futures::future::join_all(checks).await {
        assert_eq!(r.unwrap(), Some(100));
    }
    // One at a time: four delayed answers back to back.
    assert!(
        started.elapsed() >= Duration::from_millis(780),
        "{:?}",
        started.elapsed()
    );

    let Some(paced) = rig_with(|o| o.requests_per_second = Some(10.0)).await else {
        return;
    };
    paced
        .direct
        .put_blob(&rig.direct.at("paced/one"), &blob.upload(None))
        .await
        .unwrap();
    paced.warm().await;
    let started = Instant::now();
    for _ in 0..6 {
        paced
            .client
            .blob_exists(&rig.client.at("paced/one"), &blob.digest)
            .await
            .unwrap();
    }
    // Ten a second: six requests span at least half a second.
    assert!(
        started.elapsed() >= Duration::from_millis(480),
        "{:?}",
        started.elapsed()
    );
    assert!(paced
        .proxy
        .log()
        .iter()
        .all(|r| r.target == Target::Upstream));
}

#[tokio::test]
async fn a_very_slow_answer_times_out_and_is_retried() {
    let Some(rig) = rig_with(|o| o.read_timeout_secs = Some(0.3)).await else {
        return;
    };
    let blob = TestBlob::layer(23, 100);
    rig.direct
        .put_blob(&rig.direct.at("slow/one"), &blob.upload(None))
        .await
        .unwrap();
    rig.warm().await;
    rig.proxy
        .add(Rule::new("HEAD", "/blobs/").action(Action::Delay(Duration::from_secs(6))));
    let started = Instant::now();
    assert_eq!(
        rig.client
            .blob_exists(&rig.client.at("slow/one"), &blob.digest)
            .await
            .unwrap(),
        Some(100)
    );
    // Gave up on the slow one after the read timeout, not after its 6 s.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let Some(rig) = rig().await else { return };
    let image = TestImage::single_layer(24, 1000);
    push(&rig.direct, "reuse/one", &image, Some("v1"))
        .await
        .unwrap();
    rig.warm().await;
    for _ in 0..5 {
        rig.client
            .head_manifest(&rig.client.at("reuse/one"), &tag("v1"))
            .await
            .unwrap()
            .unwrap();
        rig.client
            .get_manifest(&rig.client.at("reuse/one"), &tag("v1"))
            .await
            .unwrap()
            .unwrap();
        rig.client
            .blob_exists(&rig.client.at("reuse/one"), &image.layers[0].digest)
            .await
            .unwrap();
        let _ = read_blob(&rig.client, "reuse/one", &image.layers[0].digest)
            .await
            .unwrap();
        let missing = Digest::sha256_of(b"nope");
        assert_eq!(
            rig.client
                .blob_exists(&rig.client.at("reuse/one"), &missing)
                .await
                .unwrap(),
            None
        );
    }
    let log = rig.proxy.log();
    assert_eq!(log.len(), 25);
    let conns: std::collections::BTreeSet<u64> = log.iter().map(|r| r.conn).collect();
    assert_eq!(conns.len(), 1, "{}", rig.proxy.dump());
}

#[tokio::test]
async fn the_referrers_api_is_used_where_offered() {
    let Some(rig) = rig().await else { return };
    let subject = Digest::sha256_of(b"subject");
    let referrer = Digest::sha256_of(b"referrer");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": [{
            "mediaType": media_type::OCI_MANIFEST,
            "digest": referrer.as_str(),
            "size": 123,
            "artifactType": "application/vnd.example.sig",
        }],
    });
    // docker-registry 2.8 has no referrers API: the proxy plays one.
    rig.proxy.add(
        Rule::new("GET", "/referrers/")
            .always()
            .action(Action::Respond {
                status: 200,
                headers: vec![("Content-Type".into(), media_type::OCI_INDEX.into())],
                body: index.to_string(),
            }),
    );
    rig.warm().await;
    let found = rig
        .client
        .referrers(&rig.client.at("api/repo"), &subject)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, referrer);
    assert_eq!(found[0].size, 123);
    assert_eq!(
        found[0].artifact_type.as_deref(),
        Some("application/vnd.example.sig")
    );
    // One request, and no look at the fallback tag.
    let log = rig.proxy.log();
    assert_eq!(log.len(), 1, "{}", rig.proxy.dump());
    assert!(log[0]
        .path
        .ends_with(&format!("/v2/api/repo/referrers/{subject}")));
}
