//! The `Registry` trait's contract, as ONE suite run against every backend.
//!
//! Each check is an async function over `&dyn Registry` and a namespace (a
//! repository path prefix that no other run uses, so that runs can share a
//! registry). [`run_contract`] runs them all; a backend joins the suite with
//! one `#[tokio::test]` that builds the registry and calls it.
//!
//! Backend-specific fault injection (a corrupted file, a lying proxy) lives
//! next to each backend's run, not in the shared checks.

use bytes::Bytes;
use futures::StreamExt;
use promoter::oci::ContentError;
use promoter::reference::Digest;
use promoter::registry::layout::LayoutRegistry;
use promoter::registry::remote::CredentialStore;
use promoter::registry::{media_type, BlobPut, BlobUpload, Registry, RegistryError};

use crate::support::images::*;
use crate::support::registry::TestRegistry;
use crate::support::skopeo;

/// Run every check of the contract against `reg`, under `ns`. Each check
/// announces itself, so a failure names the backend and the check.
pub async fn run_contract(reg: &dyn Registry, ns: &str) {
    macro_rules! check {
        ($f:ident) => {
            eprintln!("contract [{}]: {}", reg.display_name(), stringify!($f));
            $f(reg, ns).await;
        };
    }
    check!(unknown_repository_is_empty);
    check!(oci_index_round_trips_byte_exact);
    check!(docker_list_round_trips_byte_exact);
    check!(head_reports_digest_media_type_and_size);
    check!(put_by_tag_then_list_tags);
    check!(tagless_manifest_is_reachable_by_digest);
    check!(bad_manifests_are_refused);
    check!(mount_from_sibling_repository);
    check!(wrong_upload_is_refused);
    check!(blobs_stream_back_verified);
    check!(list_repositories_respects_path_boundaries);
    check!(referrers_through_the_tag_schema);
}

// ---------------------------------------------------------------- helpers

async fn read_blob(
    reg: &dyn Registry,
    repo: &str,
    digest: &Digest,
) -> Result<Bytes, RegistryError> {
    let mut stream = reg.get_blob(&reg.at(repo), digest).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(Bytes::from(out))
}

/// Every manifest and blob of `image` reads back from `repo` exactly.
async fn assert_stored_exactly(reg: &dyn Registry, repo: &str, image: &TestImage) {
    for node in image.nodes_bottom_up() {
        let got = reg
            .get_manifest(&reg.at(repo), &digest_ref(node.digest()))
            .await
            .expect("get manifest by digest")
            .unwrap_or_else(|| panic!("{repo}@{} is missing", node.digest()));
        assert_eq!(
            got.bytes,
            node.manifest.bytes,
            "{repo}@{}: bytes differ",
            node.digest()
        );
        assert_eq!(got.media_type, node.manifest.media_type);
        assert_eq!(&got.digest, node.digest());
        for blob in node.own_blobs() {
            assert_eq!(
                reg.blob_exists(&reg.at(repo), &blob.digest)
                    .await
                    .expect("blob exists"),
                Some(blob.size())
            );
        }
    }
}

fn wrong_bytes_upload(claimed: &TestBlob, actual: Bytes) -> BlobUpload {
    BlobUpload {
        digest: claimed.digest.clone(),
        size: actual.len() as u64,
        mount_from: None,
        open: bytes_opener(actual),
    }
}

// ---------------------------------------------------------------- checks

pub async fn unknown_repository_is_empty(reg: &dyn Registry, ns: &str) {
    let repo = format!("{ns}/never/created");
    let image = TestImage::single_layer(1, 16);
    assert_eq!(
        reg.list_tags(&reg.at(&repo)).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        reg.head_manifest(&reg.at(&repo), &tag_ref("latest"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        reg.head_manifest(&reg.at(&repo), &digest_ref(image.digest()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        reg.get_manifest(&reg.at(&repo), &tag_ref("latest"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        reg.get_manifest(&reg.at(&repo), &digest_ref(image.digest()))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        reg.blob_exists(&reg.at(&repo), &image.layers[0].digest)
            .await
            .unwrap(),
        None
    );
    assert!(reg
        .referrers(&reg.at(&repo), image.digest())
        .await
        .unwrap()
        .is_empty());
    assert!(paths(reg.list_repositories(&repo).await.unwrap()).is_empty());
}

pub async fn oci_index_round_trips_byte_exact(reg: &dyn Registry, ns: &str) {
    let repo = format!("{ns}/multi");
    let index = TestImage::oci_index(10, 2048);
    push(reg, &repo, &index, Some("1.0")).await.unwrap();
    let by_tag = reg
        .get_manifest(&reg.at(&repo), &tag_ref("1.0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_tag, index.manifest, "by tag");
    assert_stored_exactly(reg, &repo, &index).await;
    // Children stay untagged.
    assert_eq!(reg.list_tags(&reg.at(&repo)).await.unwrap(), vec!["1.0"]);
}

pub async fn docker_list_round_trips_byte_exact(reg: &dyn Registry, ns: &str) {
    let repo = format!("{ns}/dockerlist");
    let list = TestImage::docker_list(11, 1024);
    assert_eq!(list.media_type(), media_type::DOCKER_MANIFEST_LIST);
    push(reg, &repo, &list, Some("v2")).await.unwrap();
    let by_tag = reg
        .get_manifest(&reg.at(&repo), &tag_ref("v2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_tag, list.manifest);
    assert_stored_exactly(reg, &repo, &list).await;
    let child = &list.children[0];
    let head = reg
        .head_manifest(&reg.at(&repo), &digest_ref(child.digest()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.media_type, media_type::DOCKER_MANIFEST);
}

pub async fn head_reports_digest_media_type_and_size(reg: &dyn Registry, ns: &str) {
    let repo = format!("{ns}/head");
    let image = TestImage::layered(12, 2, 512, None);
    push(reg, &repo, &image, Some("stable")).await.unwrap();
    for reference in [tag_ref("stable"), digest_ref(image.digest())] {
        let head = reg
            .head_manifest(&reg.at(&repo), &reference)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&head.digest, image.digest(), "{reference}");
        assert_eq!(head.media_type, media_type::OCI_MANIFEST, "{reference}");
        assert_eq!(head.size, image.size(), "{reference}");
    }
    assert_eq!(
        reg.head_manifest(&reg.at(&repo), &tag_ref("absent"))
            .await
            .unwrap(),
        None
    );
    let other = TestImage::single_layer(13, 8);
    assert_eq!(
        reg.head_manifest(&reg.at(&repo), &digest_ref(other.digest()))
            .await
            .unwrap(),
        None
    );
}

pub async fn put_by_tag_then_list_tags(reg: &dyn Registry, ns: &str) {
    let repo = format!("{ns}/tags");
    let image = TestImage::single_layer(20, 256);
    push(reg, &repo, &image, None).await.unwrap();
    assert!(reg.list_tags(&reg.at(&repo)).await.unwrap().is_empty());
    for tag in ["v1.0", "latest", "a_1", "v0.9"] {
        reg.put_manifest(&reg.at(&repo), &tag_ref(tag), &image.manifest)
            .await
            .unwrap();
    }
    let mut expected = vec!["a_1", "latest", "v0.9", "v1.0"];
    expected.sort();
    assert_eq!(reg.list_tags(&reg.at(&repo)).await.unwrap(), expected);
    for tag in expected {
        let head = reg
            .head_manifest(&reg.at(&repo), &tag_ref(tag))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&head.digest, image.digest(), "{tag}");
    }
    // Putting the same tag again is idempotent.
    reg.put_manifest(&reg.at(&repo), &tag_ref("latest"), &image.manifest)
        .await
        .unwrap();
    assert_eq!(reg.list_tags(&reg.at(&repo)).await.unwrap().len(), 4);
}

pub async fn tagless_manifest_is_reachable_by_digest(reg: &dyn Registry, ns: &str) {
    let repo = format!("{ns}/tagless");
    let image = TestImage::single_layer(21, 300);
    let tagged = TestImage::single_layer(22, 300);
    push(reg, &repo, &tagged, Some("keep")).await.unwrap();
    push(reg, &repo, &image, None).await.unwrap();
    assert_eq!(reg.list_tags(&reg.at(&repo)).await.unwrap(), vec!["keep"]);
    let got = reg
        .get_manifest(&reg.at(&repo), &digest_ref(image.digest()))
        .await
        .unwrap();
    assert_eq!(got.as_ref(), Some(&image.manifest));
    // The repository is listed although one of its manifests has no tag.
    assert_eq!(
        paths(reg.list_repositories(&repo).await.unwrap()),
        vec![repo.clone()]
    );
}

pub async fn bad_manifests_are_refused(reg: &dyn Registry, ns: &str) {
    let repo = format!("{ns}/refuse");
    let image = TestImage::single_layer(30, 128);
    let other = TestImage::single_layer(31, 128);
    // Blobs not pushed: a manifest must not name missing content.
    assert!(reg
        .put_manifest(&reg.at(&repo), &digest_ref(image.digest()), &image.manifest)
        .await
        .is_err());
    assert_eq!(
        reg.head_manifest(&reg.at(&repo), &digest_ref(image.digest()))
            .await
            .unwrap(),
        None
    );
    for blob in image.own_blobs() {
        reg.put_blob(&reg.at(&repo), &blob.upload(None))
            .await
            .unwrap();
    }
    // Addressed by a digest it doesn't have.
    assert!(reg
        .put_manifest(&reg.at(&repo), &digest_ref(other.digest()), &image.manifest)
        .await
        .is_err());
    assert_eq!(
        reg.head_manifest(&reg.at(&repo), &digest_ref(other.digest()))
            .await
            .unwrap(),
        None
    );
    // An index whose children are missing.
    let index = TestImage::oci_index(32, 64);
    assert!(reg
        .put_manifest(&reg.at(&repo), &tag_ref("idx"), &index.manifest)
        .await
        .is_err());
    assert!(reg.list_tags(&reg.at(&repo)).await.unwrap().is_empty());
}

pub async fn mount_from_sibling_repository(reg: &dyn Registry, ns: &str) {
    let from = format!("{ns}/mount/source");
    let to = format!("{ns}/mount/target");
    let base = TestBlob::layer(40, 4096);
    let image = TestImage::layered(41, 1, 1024, Some(&base));
    push(reg, &from, &image, Some("v1")).await.unwrap();
    for blob in image.own_blobs() {
        let how = reg
            .put_blob(&reg.at(&to), &blob.upload(Some(&reg.at(&from))))
            .await
            .unwrap();
        assert_eq!(how, BlobPut::Mounted, "{}", blob.digest);
        assert_eq!(read_blob(reg, &to, &blob.digest).await.unwrap(), blob.bytes);
    }
    reg.put_manifest(&reg.at(&to), &digest_ref(image.digest()), &image.manifest)
        .await
        .unwrap();
    assert_stored_exactly(reg, &to, &image).await;
    // A source that lacks the blob falls back to an upload.
    let lone = TestBlob::layer(42, 333);
    let how = reg
        .put_blob(&reg.at(&to), &lone.upload(Some(&reg.at(&from))))
        .await
        .unwrap();
    assert_eq!(how, BlobPut::Uploaded);
    assert_eq!(read_blob(reg, &to, &lone.digest).await.unwrap(), lone.bytes);
}

pub async fn wrong_upload_is_refused(reg: &dyn Registry, ns: &str) {
    let repo = format!("{ns}/wrong");
    let claimed = TestBlob::layer(50, 1000);
    // Same length, different bytes: only the digest can tell.
    let liar = Bytes::from(random_bytes(51, 1000));
    assert!(reg
        .put_blob(&reg.at(&repo), &wrong_bytes_upload(&claimed, liar))
        .await
        .is_err());
    assert_eq!(
        reg.blob_exists(&reg.at(&repo), &claimed.digest)
            .await
            .unwrap(),
        None
    );
    // Truncated bytes under the announced size.
    let short = BlobUpload {
        size: claimed.size(),
        ..wrong_bytes_upload(&claimed, claimed.bytes.slice(..500))
    };
    // (Over HTTP the client sees this itself and, as for any short body,
    // retries until its deadline before giving up.)
    assert!(reg.put_blob(&reg.at(&repo), &short).await.is_err());
    assert_eq!(
        reg.blob_exists(&reg.at(&repo), &claimed.digest)
            .await
            .unwrap(),
        None
    );
    // The right bytes still go in afterwards.
    assert_eq!(
        reg.put_blob(&reg.at(&repo), &claimed.upload(None))
            .await
            .unwrap(),
        BlobPut::Uploaded
    );
    assert_eq!(
        reg.blob_exists(&reg.at(&repo), &claimed.digest)
            .await
            .unwrap(),
        Some(1000)
    );
}

pub async fn blobs_stream_back_verified(reg: &dyn Registry, ns: &str) {
    let repo = format!("{ns}/streamed");
    let small = TestBlob::layer(60, 10);
    reg.put_blob(&reg.at(&repo), &small.upload(None))
        .await
        .unwrap();
    assert_eq!(
        read_blob(reg, &repo, &small.digest).await.unwrap(),
        small.bytes
    );
    // A multi-chunk blob that never sits whole in memory on the way in.
    let big = StreamedLayer::new(61, 3 * 1024 * 1024 + 7);
    reg.put_blob(&reg.at(&repo), &big.upload(None))
        .await
        .unwrap();
    assert_eq!(
        reg.blob_exists(&reg.at(&repo), &big.digest).await.unwrap(),
        Some(big.size)
    );
    let mut stream = reg.get_blob(&reg.at(&repo), &big.digest).await.unwrap();
    let mut hasher = promoter::reference::DigestHasher::new(big.digest.algorithm());
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        total += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(total, big.size);
    assert_eq!(hasher.finish(), big.digest);
    // Writing a blob that is already there leaves it as it is.
    reg.put_blob(&reg.at(&repo), &small.upload(None))
        .await
        .unwrap();
    assert_eq!(
        read_blob(reg, &repo, &small.digest).await.unwrap(),
        small.bytes
    );
}

pub async fn list_repositories_respects_path_boundaries(reg: &dyn Registry, ns: &str) {
    let image = TestImage::single_layer(70, 32);
    let names = [
        "a/prod",
        "a/prod/x",
        "a/prod/x/y",
        "a/prod-x",
        "a/prod-x/z",
        "a/production",
        "b/prod",
    ];
    for name in names {
        push(reg, &format!("{ns}/{name}"), &image, Some("t"))
            .await
            .unwrap();
    }
    let full = |n: &[&str]| n.iter().map(|x| format!("{ns}/{x}")).collect::<Vec<_>>();
    assert_eq!(
        paths(
            reg.list_repositories(&format!("{ns}/a/prod"))
                .await
                .unwrap()
        ),
        full(&["a/prod", "a/prod/x", "a/prod/x/y"])
    );
    assert_eq!(
        paths(
            reg.list_repositories(&format!("{ns}/a/prod-x"))
                .await
                .unwrap()
        ),
        full(&["a/prod-x", "a/prod-x/z"])
    );
    let mut all = full(&names);
    all.sort();
    assert_eq!(
        paths(reg.list_repositories(&format!("{ns}/a")).await.unwrap()),
        all[..6].to_vec()
    );
    let everything = paths(reg.list_repositories("").await.unwrap());
    for name in &all {
        assert!(
            everything.contains(name),
            "{name} missing from the full listing"
        );
    }
    let mut sorted = everything.clone();
    sorted.sort();
    assert_eq!(everything, sorted, "the full listing is sorted");
    assert!(reg
        .list_repositories(&format!("{ns}/a/pro"))
        .await
        .unwrap()
        .is_empty());
}

pub async fn referrers_through_the_tag_schema(reg: &dyn Registry, ns: &str) {
    let repo = format!("{ns}/referred");
    let subject = TestImage::single_layer(80, 64);
    push(reg, &repo, &subject, Some("v1")).await.unwrap();
    let sbom = TestImage::artifact(81, "application/spdx+json", &subject.manifest);
    let sig = TestImage::artifact(
        82,
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        &subject.manifest,
    );
    // Listed in the fallback index but about another subject: must be dropped.
    let unrelated_subject = TestImage::single_layer(83, 64);
    let impostor = TestImage::artifact(84, "application/spdx+json", &unrelated_subject.manifest);
    push(reg, &repo, &unrelated_subject, None).await.unwrap();
    let fallback = TestImage::referrers_index(vec![sbom.clone(), sig.clone(), impostor]);
    push(
        reg,
        &repo,
        &fallback,
        Some(&referrers_tag(subject.digest())),
    )
    .await
    .unwrap();

    let mut found = reg
        .referrers(&reg.at(&repo), subject.digest())
        .await
        .unwrap();
    found.sort_by(|a, b| a.digest.cmp(&b.digest));
    let mut expected = vec![
        (sbom.digest().clone(), "application/spdx+json"),
        (
            sig.digest().clone(),
            "application/vnd.dev.cosign.artifact.sig.v1+json",
        ),
    ];
    expected.sort();
    let got: Vec<_> = found
        .iter()
        .map(|d| (d.digest.clone(), d.artifact_type.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(got, expected);
    for d in &found {
        assert_eq!(d.media_type, media_type::OCI_MANIFEST);
    }
    let sizes: Vec<u64> = found.iter().map(|d| d.size).collect();
    assert!(sizes.iter().all(|s| *s > 0));
    // A subject nobody refers to has no referrers.
    assert!(reg
        .referrers(&reg.at(&repo), sbom.digest())
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------- runs

#[tokio::test]
async fn layout_registry_passes_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(dir.path().join("tree"));
    run_contract(&reg, "contract").await;
}

/// The same suite over HTTP against the real CNCF registry. Under `CI=true`
/// a missing `docker-registry` fails this test instead of skipping it.
#[tokio::test]
async fn remote_registry_passes_the_contract() {
    let Some(server) = TestRegistry::plain().await else {
        return;
    };
    let reg = server.remote(CredentialStore::anonymous());
    run_contract(&reg, "contract").await;
}

// ---------------------------------------------------------------- layout only

/// Corrupting a stored blob or manifest is noticed on read.
#[tokio::test]
async fn layout_reads_verify_digests() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    let reg = LayoutRegistry::new(&root);
    let image = TestImage::single_layer(90, 200_000);
    push(&reg, "app", &image, Some("v1")).await.unwrap();

    let layer = &image.layers[0];
    let mut damaged = layer.bytes.to_vec();
    damaged[150_000] ^= 0xff;
    std::fs::write(blob_path(&root, "app", &layer.digest), &damaged).unwrap();
    let err = read_blob(&reg, "app", &layer.digest).await.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::BadContent(ContentError::DigestMismatch { .. })
        ),
        "{err}"
    );

    let mut manifest = image.manifest.bytes.to_vec();
    manifest[0] = b' ';
    std::fs::write(blob_path(&root, "app", image.digest()), &manifest).unwrap();
    for reference in [tag_ref("v1"), digest_ref(image.digest())] {
        let err = reg
            .get_manifest(&reg.at("app"), &reference)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RegistryError::BadContent(ContentError::DigestMismatch { .. })
            ),
            "{reference}: {err}"
        );
    }
}

/// A layout written as plain files (how tests and fixtures seed sources) is
/// read back through the trait, children of an index included.
#[tokio::test]
async fn plain_file_layouts_read_through_the_trait() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestImage::docker_list(100, 256);
    let plain = TestImage::single_layer(101, 256);
    let tagless = TestImage::single_layer(102, 256);
    write_oci_layout(
        dir.path(),
        "x/y",
        &[
            (&index, Some("1.0")),
            (&plain, Some("v1")),
            (&tagless, None),
        ],
    )
    .unwrap();
    let reg = LayoutRegistry::new(dir.path());
    assert_eq!(paths(reg.list_repositories("").await.unwrap()), vec!["x/y"]);
    assert_eq!(
        reg.list_tags(&reg.at("x/y")).await.unwrap(),
        vec!["1.0", "v1"]
    );
    for image in [&index, &plain, &tagless] {
        assert_stored_exactly(&reg, "x/y", image).await;
    }
    // The children are blobs only: their media type comes from their bytes.
    let head = reg
        .head_manifest(&reg.at("x/y"), &digest_ref(index.children[1].digest()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.media_type, media_type::DOCKER_MANIFEST);
}

/// skopeo, an independent client, reads what `write_oci_layout` and
/// `LayoutRegistry` write (skipped when skopeo is absent, except in CI).
#[tokio::test]
async fn skopeo_reads_our_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let index = TestImage::oci_index(110, 128);
    write_oci_layout(dir.path(), "plain", &[(&index, Some("1.0"))]).unwrap();
    let reg = LayoutRegistry::new(dir.path());
    push(&reg, "ours/app", &index, Some("2.0")).await.unwrap();
    let child = &index.children[0];
    push(&reg, "ours/app", child, None).await.unwrap();
    for (repo, reference) in [
        ("plain", "1.0".to_string()),
        ("ours/app", "2.0".to_string()),
    ] {
        let target = format!("oci:{}:{reference}", dir.path().join(repo).display());
        let Some(raw) = skopeo::inspect_raw_async(&target).await else {
            return;
        };
        assert_eq!(Digest::sha256_of(&raw), *index.digest(), "{target}");
    }
}

#[test]
fn builder_is_deterministic_and_streaming_matches_memory() {
    assert_eq!(TestImage::oci_index(1, 100), TestImage::oci_index(1, 100));
    assert_ne!(
        TestImage::single_layer(1, 10).digest(),
        TestImage::single_layer(2, 10).digest()
    );
    let streamed = StreamedLayer::new(9, 200_003);
    assert_eq!(streamed.digest, TestBlob::layer(9, 200_003).digest);
    let index = TestImage::oci_index(3, 10);
    assert_eq!(
        index.nodes_bottom_up().last().unwrap().digest(),
        index.digest()
    );
    assert_eq!(index.all_blobs().len(), 4);
}

/// The committed quick-start source (testdata/quickstart, generated by
/// `cargo run --example make_quickstart_source`) is intact and holds what its
/// README lists: every manifest and blob reads back verified.
#[tokio::test]
async fn quickstart_source_is_intact() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/quickstart/source");
    let reg = LayoutRegistry::new(&root);
    assert_eq!(
        paths(reg.list_repositories("").await.unwrap()),
        vec!["hello", "tools/echo"]
    );
    assert_eq!(reg.list_tags(&reg.at("hello")).await.unwrap(), vec!["1.0"]);
    assert_eq!(
        reg.list_tags(&reg.at("tools/echo")).await.unwrap(),
        vec!["latest", "v1"]
    );
    let hello = "sha256:4e9d403dc43eee36d6ea1d2b8b448c2909a2d98ddc79e0b900341cf8b76d6b46";
    let echo = "sha256:233819d5b3f4627b3c2c0136fda71bc1961016d795aaa171ac29a9bd728205d1";
    let tagless = "sha256:2b755c66ac9125602ae6eedd1dfbb1f8cdbf7d73c500cad7345feede04c38c97";
    for (repo, tag, digest) in [
        ("hello", "1.0", hello),
        ("tools/echo", "v1", echo),
        ("tools/echo", "latest", echo),
    ] {
        let head = reg
            .head_manifest(&reg.at(repo), &tag_ref(tag))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head.digest.as_str(), digest, "{repo}:{tag}");
    }
    for (repo, digest) in [
        ("hello", hello),
        ("tools/echo", echo),
        ("tools/echo", tagless),
    ] {
        let digest = Digest::parse(digest).unwrap();
        let manifest = reg
            .get_manifest(&reg.at(repo), &digest_ref(&digest))
            .await
            .unwrap()
            .unwrap();
        let refs = promoter::oci::references(&manifest, repo).unwrap();
        for child in &refs.manifests {
            let child = reg
                .get_manifest(&reg.at(repo), &digest_ref(&child.digest))
                .await
                .unwrap()
                .unwrap();
            for blob in promoter::oci::references(&child, repo).unwrap().blobs {
                read_blob(&reg, repo, &blob.digest).await.unwrap();
            }
        }
        for blob in refs.blobs {
            read_blob(&reg, repo, &blob.digest).await.unwrap();
        }
    }
}
