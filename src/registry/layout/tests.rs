//! The layout backend's own tests: crash safety, index.json upkeep,
//! and trees that try to escape their root.

use super::files::TEMP_PREFIX;
use super::index::IndexFile;
use super::write::OCI_LAYOUT_CONTENT;
use super::*;
use futures::FutureExt;

/// Repository `path` in a test tree (backends use only the path).
fn paths(repos: Vec<Repository>) -> Vec<String> {
    repos.iter().map(|r| r.path().to_string()).collect()
}

fn r(path: &str) -> Repository {
    Repository::parse(
        &crate::reference::Endpoint::Layout {
            root: "test".into(),
        },
        path,
    )
    .unwrap()
}

fn manifest_for(config: &[u8], layer: &[u8]) -> RawManifest {
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Digest::sha256_of(config).as_str(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": Digest::sha256_of(layer).as_str(),
            "size": layer.len(),
        }],
    });
    RawManifest::new(serde_json::to_vec(&body).unwrap(), media_type::OCI_MANIFEST)
}

fn upload(bytes: &'static [u8]) -> BlobUpload {
    upload_claiming(bytes, Digest::sha256_of(bytes))
}

fn upload_claiming(bytes: &'static [u8], digest: Digest) -> BlobUpload {
    BlobUpload {
        digest,
        size: bytes.len() as u64,
        mount_from: None,
        open: Arc::new(move || {
            async move {
                let s: BlobStream = Box::pin(futures::stream::once(futures::future::ready(Ok(
                    Bytes::from_static(bytes),
                ))));
                Ok(s)
            }
            .boxed()
        }),
    }
}

fn tag(t: &str) -> ManifestRef {
    ManifestRef::Tag(Tag::parse(t).unwrap())
}

fn entries(dir: &Path) -> Vec<(String, Option<String>)> {
    let index: IndexFile =
        serde_json::from_slice(&std::fs::read(dir.join(INDEX_JSON)).unwrap()).unwrap();
    index
        .manifests
        .iter()
        .map(|e| (e.digest.to_string(), e.ref_name().map(str::to_string)))
        .collect()
}

#[tokio::test]
async fn index_json_never_names_a_manifest_whose_blobs_are_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(tmp.path());
    let m = manifest_for(b"{}", b"layer");
    reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
    // The layer is missing: the manifest is refused, nothing is recorded.
    let err = reg
        .put_manifest(&r("app"), &tag("v1"), &m)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Protocol { .. }), "{err}");
    assert!(!tmp.path().join("app").join(INDEX_JSON).exists());
    assert!(!blob_path(&tmp.path().join("app"), &m.digest).exists());
    assert_eq!(
        reg.head_manifest(&r("app"), &tag("v1")).await.unwrap(),
        None
    );

    reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
    reg.put_manifest(&r("app"), &tag("v1"), &m).await.unwrap();
    let dir = tmp.path().join("app");
    for (digest, _) in entries(&dir) {
        let d = Digest::parse(&digest).unwrap();
        assert!(blob_path(&dir, &d).is_file());
    }
    assert_eq!(reg.list_tags(&r("app")).await.unwrap(), vec!["v1"]);
}

#[tokio::test]
async fn a_wrong_upload_leaves_no_blob_and_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(tmp.path());
    let claimed = Digest::sha256_of(b"the real thing");
    let err = reg
        .put_blob(
            &r("app"),
            &upload_claiming(b"something else", claimed.clone()),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        RegistryError::BadContent(ContentError::SizeMismatch { .. })
            | RegistryError::BadContent(ContentError::DigestMismatch { .. })
    ));
    let err = reg
        .put_blob(
            &r("app"),
            &upload_claiming(b"same length ok", Digest::sha256_of(b"same-length-ok")),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::BadContent(ContentError::DigestMismatch { .. })
        ),
        "{err}"
    );
    let sha = tmp.path().join("app/blobs/sha256");
    let left: Vec<_> = std::fs::read_dir(&sha).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(reg.blob_exists(&r("app"), &claimed).await.unwrap(), None);
}

#[tokio::test]
async fn a_copy_stopped_mid_blob_leaves_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(tmp.path());
    // One chunk, then a body that never ends: the write is under way when
    // its future is dropped, as when another transfer of the copy fails.
    let stalled = BlobUpload {
        digest: Digest::sha256_of(b"never all there"),
        size: 15,
        mount_from: None,
        open: Arc::new(|| {
            async {
                let first = futures::stream::once(async { Ok(Bytes::from_static(b"never")) });
                let s: BlobStream = Box::pin(first.chain(futures::stream::pending()));
                Ok(s)
            }
            .boxed()
        }),
    };
    let stopped = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        reg.put_blob(&r("app"), &stalled),
    )
    .await;
    assert!(stopped.is_err(), "the write was still under way");
    let sha = tmp.path().join("app/blobs/sha256");
    let left: Vec<_> = std::fs::read_dir(&sha).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn leftover_temp_files_are_ignored_then_swept_by_the_next_write() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(tmp.path());
    let dir = tmp.path().join("app");
    let config = Digest::sha256_of(b"{}");
    // What a crash mid-write leaves: partial temp files and no index.json.
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join(OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT).unwrap();
    let blob_temp = dir.join(format!("blobs/sha256/{TEMP_PREFIX}{}", config.hex()));
    std::fs::write(&blob_temp, b"{partial").unwrap();
    let index_temp = dir.join(format!("{TEMP_PREFIX}{INDEX_JSON}"));
    std::fs::write(&index_temp, b"{\"schemaVersion\":2,\"manifests\":[{\"trunc").unwrap();

    assert_eq!(reg.blob_exists(&r("app"), &config).await.unwrap(), None);
    assert!(reg.list_tags(&r("app")).await.unwrap().is_empty());
    assert!(paths(reg.list_repositories("").await.unwrap()).is_empty());

    reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
    reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
    let m = manifest_for(b"{}", b"layer");
    reg.put_manifest(&r("app"), &tag("v1"), &m).await.unwrap();
    assert!(!blob_temp.exists() && !index_temp.exists());
    assert_eq!(reg.blob_exists(&r("app"), &config).await.unwrap(), Some(2));
    assert_eq!(paths(reg.list_repositories("").await.unwrap()), vec!["app"]);
}

#[tokio::test]
async fn concurrent_tag_writes_to_one_repository_are_all_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Arc::new(LayoutRegistry::new(tmp.path()));
    reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
    reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
    let m = manifest_for(b"{}", b"layer");
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let reg = reg.clone();
            let m = m.clone();
            tokio::spawn(async move {
                reg.put_manifest(&r("app"), &tag(&format!("t{i:02}")), &m)
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let expected: Vec<String> = (0..32).map(|i| format!("t{i:02}")).collect();
    assert_eq!(reg.list_tags(&r("app")).await.unwrap(), expected);
}

#[tokio::test]
async fn a_moved_tag_keeps_the_old_digest_reachable_and_untagged_entries_stay_minimal() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(tmp.path());
    let dir = tmp.path().join("app");
    for b in [&b"{}"[..], b"one", b"two"] {
        let bytes: &'static [u8] = Box::leak(b.to_vec().into_boxed_slice());
        reg.put_blob(&r("app"), &upload(bytes)).await.unwrap();
    }
    let one = manifest_for(b"{}", b"one");
    let two = manifest_for(b"{}", b"two");
    reg.put_manifest(&r("app"), &ManifestRef::Digest(one.digest.clone()), &one)
        .await
        .unwrap();
    assert_eq!(entries(&dir), vec![(one.digest.to_string(), None)]);
    reg.put_manifest(&r("app"), &tag("v1"), &one).await.unwrap();
    assert_eq!(
        entries(&dir),
        vec![(one.digest.to_string(), Some("v1".into()))]
    );
    reg.put_manifest(&r("app"), &tag("v1"), &two).await.unwrap();
    assert_eq!(
        entries(&dir),
        vec![
            (one.digest.to_string(), None),
            (two.digest.to_string(), Some("v1".into()))
        ]
    );
    // Putting the same again changes nothing.
    let before = std::fs::read(dir.join(INDEX_JSON)).unwrap();
    reg.put_manifest(&r("app"), &tag("v1"), &two).await.unwrap();
    reg.put_manifest(&r("app"), &ManifestRef::Digest(one.digest.clone()), &one)
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.join(INDEX_JSON)).unwrap(), before);
}

#[tokio::test]
async fn a_manifest_too_big_to_read_back_is_never_written() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(tmp.path());
    let padding = "x".repeat(MAX_MANIFEST_BYTES as usize);
    let big = RawManifest::new(
        format!(r#"{{"schemaVersion":2,"manifests":[],"annotations":{{"p":"{padding}"}}}}"#),
        media_type::OCI_INDEX,
    );
    let err = reg
        .put_manifest(&r("app"), &tag("v1"), &big)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");
    assert!(!tmp.path().join("app").exists(), "nothing was written");
}

#[tokio::test]
async fn a_corrupt_index_is_an_error_and_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(tmp.path());
    let dir = tmp.path().join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT).unwrap();
    std::fs::write(dir.join(INDEX_JSON), b"{not json").unwrap();
    reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
    reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
    let m = manifest_for(b"{}", b"layer");
    let err = reg
        .put_manifest(&r("app"), &tag("v1"), &m)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Protocol { .. }), "{err}");
    assert!(
        reg.list_tags(&r("app")).await.is_err(),
        "unknown is not empty"
    );
    assert_eq!(std::fs::read(dir.join(INDEX_JSON)).unwrap(), b"{not json");
}

#[tokio::test]
async fn a_manifest_blob_without_its_index_entry_is_absent_until_put_again() {
    // The state a crash between a by-digest put's blob and its
    // index.json entry leaves behind.
    let tmp = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(tmp.path());
    reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
    reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
    let m = manifest_for(b"{}", b"layer");
    let bytes: &'static [u8] = Box::leak(m.bytes.to_vec().into_boxed_slice());
    reg.put_blob(&r("app"), &upload(bytes)).await.unwrap();
    let by_digest = ManifestRef::Digest(m.digest.clone());
    assert_eq!(
        reg.head_manifest(&r("app"), &by_digest).await.unwrap(),
        None
    );
    assert_eq!(reg.get_manifest(&r("app"), &by_digest).await.unwrap(), None);

    // Putting it again records it: reachable, and found.
    reg.put_manifest(&r("app"), &by_digest, &m).await.unwrap();
    let dir = tmp.path().join("app");
    assert!(entries(&dir).contains(&(m.digest.to_string(), None)));
    assert!(reg
        .head_manifest(&r("app"), &by_digest)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn children_of_a_named_index_are_found_without_entries_of_their_own() {
    // As other tools write layouts: children are blobs only.
    let tmp = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(tmp.path());
    reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
    reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
    let child = manifest_for(b"{}", b"layer");
    let child_bytes: &'static [u8] = Box::leak(child.bytes.to_vec().into_boxed_slice());
    reg.put_blob(&r("app"), &upload(child_bytes)).await.unwrap();
    let inner = RawManifest::new(
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": [{
                "mediaType": media_type::OCI_MANIFEST,
                "digest": child.digest.as_str(),
                "size": child.bytes.len(),
            }],
        }))
        .unwrap(),
        media_type::OCI_INDEX,
    );
    let inner_bytes: &'static [u8] = Box::leak(inner.bytes.to_vec().into_boxed_slice());
    reg.put_blob(&r("app"), &upload(inner_bytes)).await.unwrap();
    let outer = RawManifest::new(
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": [{
                "mediaType": media_type::OCI_INDEX,
                "digest": inner.digest.as_str(),
                "size": inner.bytes.len(),
            }],
        }))
        .unwrap(),
        media_type::OCI_INDEX,
    );
    reg.put_manifest(&r("app"), &tag("1.0"), &outer)
        .await
        .unwrap();
    let dir = tmp.path().join("app");
    assert_eq!(entries(&dir).len(), 1, "{:?}", entries(&dir));
    for (m, media_type) in [
        (&inner, media_type::OCI_INDEX),
        (&child, media_type::OCI_MANIFEST),
    ] {
        let found = reg
            .head_manifest(&r("app"), &ManifestRef::Digest(m.digest.clone()))
            .await
            .unwrap()
            .expect("a child of the tagged index");
        assert_eq!(found.media_type, media_type);
    }
}

#[tokio::test]
async fn a_tag_naming_a_missing_blob_is_an_error_not_absent() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(tmp.path());
    reg.put_blob(&r("app"), &upload(b"{}")).await.unwrap();
    reg.put_blob(&r("app"), &upload(b"layer")).await.unwrap();
    let m = manifest_for(b"{}", b"layer");
    reg.put_manifest(&r("app"), &tag("v1"), &m).await.unwrap();
    std::fs::remove_file(blob_path(&tmp.path().join("app"), &m.digest)).unwrap();
    assert!(reg.head_manifest(&r("app"), &tag("v1")).await.is_err());
    // By digest, the manifest simply is not there.
    let by_digest = ManifestRef::Digest(m.digest.clone());
    assert_eq!(
        reg.head_manifest(&r("app"), &by_digest).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_corrupted_blob_stream_ends_in_a_digest_mismatch_without_its_last_chunk() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(tmp.path());
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let digest = Digest::sha256_of(bytes);
    reg.put_blob(&r("app"), &upload(bytes)).await.unwrap();
    let path = blob_path(&tmp.path().join("app"), &digest);
    let mut damaged = bytes.to_vec();
    damaged[100] ^= 1;
    std::fs::write(&path, &damaged).unwrap();
    let mut stream = reg.get_blob(&r("app"), &digest).await.unwrap();
    let mut received = 0usize;
    let mut error = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => received += chunk.len(),
            Err(e) => error = Some(e),
        }
    }
    assert!(matches!(
        error,
        Some(RegistryError::BadContent(
            ContentError::DigestMismatch { .. }
        ))
    ));
    assert!(received < bytes.len());
}

#[tokio::test]
async fn repository_names_cannot_escape_the_root_or_enter_a_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = LayoutRegistry::new(tmp.path().join("root"));
    for bad in ["../x", "/abs", "a/../../b", ""] {
        assert!(reg.repository(bad).is_err(), "{bad:?}");
    }
    // Valid names, but a layout's own files: an image there would live
    // inside another image's blob store or replace its index.
    for reserved in [
        "app/blobs/sha256",
        "blobs",
        "app/index.json",
        "x/oci-layout/y",
    ] {
        let err = reg.list_tags(&r(reserved)).await.unwrap_err();
        assert!(
            err.to_string().contains("names a layout's own files"),
            "{err}"
        );
        let err = reg.put_blob(&r(reserved), &upload(b"x")).await.unwrap_err();
        assert!(matches!(err, RegistryError::Config { .. }), "{err}");
    }
    assert!(!tmp.path().join("root").exists(), "nothing was written");
}

#[cfg(unix)]
#[tokio::test]
async fn the_walk_skips_symlinks_out_of_the_root_and_loops() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside/evil");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join(OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT).unwrap();
    std::fs::write(
        outside.join(INDEX_JSON),
        br#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    let repo = root.join("a/b");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join(OCI_LAYOUT_FILE), OCI_LAYOUT_CONTENT).unwrap();
    std::fs::write(
        repo.join(INDEX_JSON),
        br#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(tmp.path().join("outside"), root.join("out")).unwrap();
    std::os::unix::fs::symlink(&root, root.join("a/loop")).unwrap();
    std::os::unix::fs::symlink(root.join("a/b"), root.join("alias")).unwrap();
    let reg = LayoutRegistry::new(&root);
    assert_eq!(
        paths(reg.list_repositories("").await.unwrap()),
        vec!["a/b", "alias"]
    );
    assert_eq!(
        paths(reg.list_repositories("a").await.unwrap()),
        vec!["a/b"]
    );
    assert!(paths(reg.list_repositories("nope").await.unwrap()).is_empty());
}
