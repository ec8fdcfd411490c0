//! The executor's promises, on real `oci:` layouts with every registry call
//! recorded: write order, failure isolation, dedup, and the new-repository
//! fast path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};

use super::*;
use crate::diag::Location;
use crate::oci::{self, ContentError};
use crate::plan::{self, DestState, DigestWant, Inventory, Observed, RepoWant};
use crate::reference::{ImageName, ManifestRef, RegistryName, Tag};
use crate::registry::recording::Recording;
use crate::registry::{media_type, BlobStream, BlobUpload, ErrorCode, RawManifest, RegistryError};

/// An image: config + one layer + manifest, pushed into `repo` of `registry`.
async fn image(
    registry: &dyn Registry,
    repo: &str,
    seed: u8,
    shared: Option<&[u8]>,
) -> (RawManifest, Vec<Digest>) {
    let repo = &registry.repository(repo).unwrap();
    let config = Bytes::from(format!("{{\"seed\":{seed}}}"));
    let layer = Bytes::from(vec![seed; 1000 + seed as usize]);
    let mut blobs = vec![
        (
            config,
            "application/vnd.oci.image.config.v1+json".to_string(),
        ),
        (layer, "application/vnd.oci.image.layer.v1.tar".to_string()),
    ];
    if let Some(shared) = shared {
        blobs.push((
            Bytes::copy_from_slice(shared),
            "application/vnd.oci.image.layer.v1.tar".to_string(),
        ));
    }
    let mut digests = Vec::new();
    for (bytes, _) in &blobs {
        let digest = Digest::sha256_of(bytes);
        let bytes = bytes.clone();
        let upload = BlobUpload {
            digest: digest.clone(),
            size: bytes.len() as u64,
            mount_from: None,
            open: Arc::new(move || {
                let bytes = bytes.clone();
                async move { Ok(futures::stream::once(async move { Ok(bytes) }).boxed() as BlobStream) }.boxed()
            }),
        };
        registry.put_blob(repo, &upload).await.unwrap();
        digests.push(digest);
    }
    let desc = |i: usize| {
        format!(
            r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
            blobs[i].1,
            digests[i],
            blobs[i].0.len()
        )
    };
    let layers: Vec<String> = (1..blobs.len()).map(desc).collect();
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]}}"#,
        media_type::OCI_MANIFEST,
        desc(0),
        layers.join(",")
    );
    let manifest = RawManifest::new(body, media_type::OCI_MANIFEST);
    registry
        .put_manifest(
            repo,
            &ManifestRef::Digest(manifest.digest.clone()),
            &manifest,
        )
        .await
        .unwrap();
    (manifest, digests)
}

struct World {
    _dir: tempfile::TempDir,
    src: Arc<Recording>,
    dst: Arc<Recording>,
    registries: Registries,
    src_name: RegistryName,
    dst_name: RegistryName,
}

fn world_with(fail_blobs: BTreeSet<Digest>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let src_root = dir.path().join("src");
    let dst_root = dir.path().join("dst");
    let src = Arc::new(Recording::new(&src_root));
    let mut dst = Recording::new(&dst_root);
    dst.fail_blobs = fail_blobs;
    let dst = Arc::new(dst);
    let src_name = RegistryName::parse(&format!("oci:{}", src_root.display())).unwrap();
    let dst_name = RegistryName::parse(&format!("oci:{}", dst_root.display())).unwrap();
    let mut registries = Registries::default();
    registries.insert(&src_name.endpoint, src.clone());
    registries.insert(&dst_name.endpoint, dst.clone());
    World {
        _dir: dir,
        src,
        dst,
        registries,
        src_name,
        dst_name,
    }
}

impl World {
    /// A want for `repo` with `digests` (digest -> tags).
    fn want(&self, repo: &str, digests: &[(&Digest, &[&str])]) -> RepoWant {
        let image = ImageName::parse(repo).unwrap();
        let source = plan::SourceRef {
            registry: self.src_name.clone(),
            repo: self.src_name.repository(&image),
        };
        let location = Location::file_only(Arc::from(Path::new("m.yaml")));
        RepoWant {
            movable: Default::default(),
            registry: self.dst_name.clone(),
            repo: self.dst_name.repository(&image),
            image,
            digests: digests
                .iter()
                .map(|(d, tags)| {
                    let want = DigestWant {
                        tags: tags
                            .iter()
                            .map(|t| (Tag::parse(t).unwrap(), location.clone()))
                            .collect(),
                        sources: BTreeSet::from([source.clone()]),
                        location: location.clone(),
                    };
                    ((*d).clone(), want)
                })
                .collect(),
        }
    }

    /// Read the registries (attachments included, as `options` say), plan
    /// and carry the plan out: the whole promotion, as a run does it.
    async fn promote(&self, wants: &[RepoWant], options: &ExecOptions) -> (Plan, Report) {
        let run = crate::promote::Run::new(&self.registries, options, None);
        let (planned, report) = run.promote(wants.to_vec()).await;
        (planned.plan, report)
    }

    /// A cold plan: the destination has nothing, the source has everything.
    fn cold_plan(&self, wants: &[RepoWant], repository_absent: bool) -> Plan {
        let mut inventory = Inventory::default();
        for want in wants {
            let mut state = DestState {
                repository_absent,
                ..DestState::default()
            };
            for (digest, d) in &want.digests {
                state.digests.insert(digest.clone(), Observed::Absent);
                for tag in d.tags.keys() {
                    state.tags.insert(tag.clone(), Observed::Absent);
                }
                for source in &d.sources {
                    inventory
                        .sources
                        .entry(source.repo.clone())
                        .or_insert_with(BTreeMap::new)
                        .insert(digest.clone(), Observed::Present(()));
                }
            }
            inventory.destinations.insert(want.repo.clone(), state);
        }
        plan::plan(wants, &inventory)
    }
}

fn options() -> ExecOptions {
    ExecOptions {
        attachments: false,
        ..ExecOptions::default()
    }
}

fn position(calls: &[String], prefix: &str) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no call {prefix:?} in {calls:#?}"))
}

#[tokio::test]
async fn blobs_come_before_the_manifest_and_the_first_tag_rides_on_its_put() {
    let w = world_with(BTreeSet::new());
    let (manifest, blobs) = image(w.src.as_ref(), "app", 1, None).await;
    let wants = [w.want("app", &[(&manifest.digest, &["1.0", "latest"])])];
    let plan = w.cold_plan(&wants, false);
    let executor = Executor::new(&w.registries, &options(), Default::default());
    let report = execute(&plan, &executor, &options()).await;
    assert_eq!(report.failed().count(), 0, "{report:#?}");

    let calls = w.dst.calls();
    let first_manifest_put = position(&calls, "put-manifest app");
    for blob in &blobs {
        assert!(
            position(&calls, &format!("put-blob app {blob}")) < first_manifest_put,
            "{calls:#?}"
        );
    }
    let manifest_puts: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("put-manifest"))
        .collect();
    assert_eq!(
        manifest_puts,
        vec!["put-manifest app 1.0", "put-manifest app latest"],
        "{calls:#?}"
    );
    assert_eq!(report.stats.tags_written, 2);
    assert_eq!(report.stats.manifests_written, 1);
}

#[tokio::test]
async fn a_failed_copy_fails_its_own_tags_and_nothing_else() {
    let w0 = world_with(BTreeSet::new());
    // Learn the digest of the blob that will fail, then build the real world.
    let (_, doomed_blobs) = image(w0.src.as_ref(), "x", 2, None).await;
    let w = world_with(BTreeSet::from([doomed_blobs[1].clone()]));
    let (bad, _) = image(w.src.as_ref(), "bad", 2, None).await;
    let (good, _) = image(w.src.as_ref(), "good", 3, None).await;
    let wants = [
        w.want("bad", &[(&bad.digest, &["1.0"])]),
        w.want("good", &[(&good.digest, &["1.0"])]),
    ];
    let plan = w.cold_plan(&wants, false);
    let executor = Executor::new(&w.registries, &options(), Default::default());
    let report = execute(&plan, &executor, &options()).await;

    let outcome = |repo: &str, tag: Option<&str>| {
        report
            .results
            .iter()
            .find(|r| r.item.repo.path() == repo && r.item.tag().map(|t| t.as_str()) == tag)
            .map(|r| matches!(r.outcome, Outcome::Done))
            .unwrap()
    };
    assert!(!outcome("bad", None), "the copy failed");
    assert!(!outcome("bad", Some("1.0")), "its tag failed with it");
    assert!(
        outcome("good", None) && outcome("good", Some("1.0")),
        "{report:#?}"
    );
    // Nothing references the missing blob: no manifest, no tag for `bad`.
    assert!(!w
        .dst
        .calls()
        .iter()
        .any(|c| c.starts_with("put-manifest bad")));
}

#[tokio::test]
async fn a_blob_shared_by_many_repositories_moves_once_and_is_mounted_elsewhere() {
    let w = world_with(BTreeSet::new());
    let shared = vec![7u8; 5000];
    let mut wants = Vec::new();
    for (i, repo) in ["a", "b", "c", "d"].iter().enumerate() {
        let (manifest, _) = image(w.src.as_ref(), repo, 10 + i as u8, Some(&shared)).await;
        wants.push(w.want(repo, &[(&manifest.digest, &["1"])]));
    }
    let plan = w.cold_plan(&wants, true);
    let executor = Executor::new(&w.registries, &options(), Default::default());
    let report = execute(&plan, &executor, &options()).await;
    assert_eq!(report.failed().count(), 0, "{report:#?}");
    let shared_digest = Digest::sha256_of(&shared);
    let source_reads = w
        .src
        .calls()
        .iter()
        .filter(|c| c.starts_with("get-blob") && c.ends_with(shared_digest.as_str()))
        .count();
    assert_eq!(
        source_reads, 1,
        "the shared blob was read from the source more than once"
    );
    assert_eq!(report.stats.blobs_mounted, 3);
}

#[tokio::test]
async fn a_new_repository_gets_no_existence_checks() {
    let w = world_with(BTreeSet::new());
    let (manifest, _) = image(w.src.as_ref(), "fresh", 20, None).await;
    let wants = [w.want("fresh", &[(&manifest.digest, &["1.0"])])];
    let plan = w.cold_plan(&wants, true);
    assert!(plan.new_repositories.contains(&wants[0].repo));
    let executor = Executor::new(&w.registries, &options(), Default::default());
    let report = execute(&plan, &executor, &options()).await;
    assert_eq!(report.failed().count(), 0, "{report:#?}");
    let heads: Vec<String> = w
        .dst
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("head"))
        .collect();
    assert!(heads.is_empty(), "{heads:?}");

    // In a repository not known to be new, every blob is checked first.
    let w2 = world_with(BTreeSet::new());
    let (manifest, blobs) = image(w2.src.as_ref(), "old", 21, None).await;
    let wants = [w2.want("old", &[(&manifest.digest, &["1.0"])])];
    let plan = w2.cold_plan(&wants, false);
    let executor = Executor::new(&w2.registries, &options(), Default::default());
    execute(&plan, &executor, &options()).await;
    let blob_heads = w2
        .dst
        .calls()
        .iter()
        .filter(|c| c.starts_with("head-blob"))
        .count();
    assert_eq!(blob_heads, blobs.len());
}

/// Put `manifest` into `repo` of `registry` under `reference`.
async fn put(registry: &dyn Registry, repo: &str, reference: ManifestRef, manifest: &RawManifest) {
    let repo = &registry.repository(repo).unwrap();
    registry
        .put_manifest(repo, &reference, manifest)
        .await
        .unwrap();
}

/// A small artifact (a signature, an SBOM) about `subject`: an image
/// manifest whose config and layer are pushed into `repo`, with `subject`
/// set when given.
async fn artifact(
    registry: &dyn Registry,
    repo: &str,
    seed: u8,
    subject: Option<&RawManifest>,
) -> RawManifest {
    typed_artifact(registry, repo, seed, subject, SIGSTORE_BUNDLE).await
}

const SIGSTORE_BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// [`artifact`] of the artifact type `artifact_type`.
async fn typed_artifact(
    registry: &dyn Registry,
    repo: &str,
    seed: u8,
    subject: Option<&RawManifest>,
    artifact_type: &str,
) -> RawManifest {
    let (image, _) = image(registry, repo, seed, None).await;
    let mut body: serde_json::Value = serde_json::from_slice(&image.bytes).unwrap();
    body["artifactType"] = artifact_type.into();
    if let Some(subject) = subject {
        body["subject"] = serde_json::json!({
            "mediaType": subject.media_type,
            "digest": subject.digest.as_str(),
            "size": subject.bytes.len(),
        });
    }
    RawManifest::new(serde_json::to_vec(&body).unwrap(), media_type::OCI_MANIFEST)
}

fn with_attachments() -> ExecOptions {
    ExecOptions {
        attachments: true,
        ..ExecOptions::default()
    }
}

#[tokio::test]
async fn a_sha512_image_brings_its_signature() {
    let w = world_with(BTreeSet::new());
    let (image, _) = image(w.src.as_ref(), "app", 30, None).await;
    // The same image bytes, addressed by sha512.
    let image = RawManifest {
        digest: Digest::of(crate::reference::Algorithm::Sha512, &image.bytes),
        ..image
    };
    put(
        w.src.as_ref(),
        "app",
        ManifestRef::Digest(image.digest.clone()),
        &image,
    )
    .await;
    let signature = artifact(w.src.as_ref(), "app", 31, None).await;
    let sig_tag = oci::attachment_tag(&image.digest, Some("sig"));
    assert!(sig_tag.as_str().len() <= 128);
    put(
        w.src.as_ref(),
        "app",
        ManifestRef::Tag(sig_tag.clone()),
        &signature,
    )
    .await;

    let wants = [w.want("app", &[(&image.digest, &["1.0"])])];
    let (_, report) = w.promote(&wants, &with_attachments()).await;
    assert_eq!(report.failed().count(), 0, "{report:#?}");
    assert_eq!(report.stats.attachments_copied, 1);
    let copied = w
        .dst
        .get_manifest(
            &w.dst.repository("app").unwrap(),
            &ManifestRef::Tag(sig_tag),
        )
        .await
        .unwrap()
        .expect("the signature reached the destination");
    assert_eq!(copied.digest, signature.digest);
    // Written before the tag of its subject (crash safety).
    let calls = w.dst.calls();
    assert!(
        position(&calls, "put-manifest app sha512-") < position(&calls, "put-manifest app 1.0"),
        "{calls:#?}"
    );
}

#[tokio::test]
async fn referrers_known_only_by_their_subject_are_copied_and_listed() {
    let w = world_with(BTreeSet::new());
    let (image, _) = image(w.src.as_ref(), "app", 40, None).await;
    // Pushed by digest, as through the referrers API: no tag names it.
    let sbom = artifact(w.src.as_ref(), "app", 41, Some(&image)).await;
    put(
        w.src.as_ref(),
        "app",
        ManifestRef::Digest(sbom.digest.clone()),
        &sbom,
    )
    .await;

    let wants = [w.want("app", &[(&image.digest, &["1.0"])])];
    let (_, report) = w.promote(&wants, &with_attachments()).await;
    assert_eq!(report.failed().count(), 0, "{report:#?}");
    assert_eq!(report.stats.attachments_copied, 1);
    let listed = w
        .dst
        .referrers(&w.dst.repository("app").unwrap(), &image.digest)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|d| &d.digest).collect::<Vec<_>>(),
        vec![&sbom.digest]
    );
    assert_eq!(
        listed[0].artifact_type.as_deref(),
        Some("application/vnd.dev.sigstore.bundle.v0.3+json")
    );
    // This destination lists referrers by itself: no tag index is written.
    let fallback = oci::attachment_tag(&image.digest, None);
    assert!(w
        .dst
        .get_manifest(
            &w.dst.repository("app").unwrap(),
            &ManifestRef::Tag(fallback)
        )
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_destination_without_the_referrers_api_gets_the_tag_index() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = world_with(BTreeSet::new());
    let mut dst = Recording::new(&dir.path().join("dst"));
    dst.tag_schema_only = true;
    let dst = Arc::new(dst);
    w.dst_name = RegistryName::parse(&format!("oci:{}", dir.path().join("dst").display())).unwrap();
    w.registries.insert(&w.dst_name.endpoint, dst.clone());
    w.dst = dst;

    let (image, _) = image(w.src.as_ref(), "app", 50, None).await;
    let sbom = artifact(w.src.as_ref(), "app", 51, Some(&image)).await;
    put(
        w.src.as_ref(),
        "app",
        ManifestRef::Digest(sbom.digest.clone()),
        &sbom,
    )
    .await;
    let wants = [w.want("app", &[(&image.digest, &["1.0"])])];
    let (_, report) = w.promote(&wants, &with_attachments()).await;
    assert_eq!(report.failed().count(), 0, "{report:#?}");

    let listed = w
        .dst
        .referrers(&w.dst.repository("app").unwrap(), &image.digest)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|d| &d.digest).collect::<Vec<_>>(),
        vec![&sbom.digest],
        "the referrers tag index names the copied referrer"
    );
    let calls = w.dst.calls();
    let index_put = position(&calls, "put-manifest app sha256-");
    assert!(
        index_put < position(&calls, "put-manifest app 1.0"),
        "{calls:#?}"
    );
}

#[test]
fn failures_carry_a_kind_from_the_error_type_and_the_http_status() {
    let status = |status| RegistryError::Status {
        method: "GET".into(),
        url: "https://r/v2/".into(),
        status,
        code: None,
        detail: None,
    };
    let kind = |err: &RegistryError| {
        let f = Failure::of(err, err.to_string());
        (f.kind, f.http_status)
    };
    assert_eq!(kind(&status(404)), (FailureKind::NotFound, Some(404)));
    assert_eq!(kind(&status(503)), (FailureKind::Http, Some(503)));
    assert_eq!(kind(&status(401)), (FailureKind::Auth, Some(401)));
    // The registry's own error code wins over a generic status.
    let unknown = RegistryError::Status {
        method: "GET".into(),
        url: "https://r/v2/".into(),
        status: 400,
        code: Some(ErrorCode::parse("MANIFEST_UNKNOWN")),
        detail: None,
    };
    assert_eq!(kind(&unknown), (FailureKind::NotFound, Some(400)));
    let mismatch = RegistryError::BadContent(ContentError::DigestMismatch {
        what: "b".into(),
        expected: Digest::sha256_of(b"a"),
        actual: Digest::sha256_of(b"b"),
    });
    assert_eq!(kind(&mismatch), (FailureKind::BadContent, None));
    let limited = RegistryError::RateLimited {
        registry: "r".into(),
        retry_after_secs: None,
    };
    assert_eq!(kind(&limited), (FailureKind::RateLimited, Some(429)));

    // In JSON, beside the message the text output shows.
    let json =
        serde_json::to_value(Outcome::Failed(Failure::of(&status(404), "gone".into()))).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"status": "failed", "error": "gone", "kind": "not_found", "http_status": 404})
    );
    assert_eq!(
        serde_json::to_value(Outcome::Done).unwrap(),
        serde_json::json!({"status": "done"})
    );
}

/// An OCI index listing `children` (each `times` times), pushed by digest.
async fn index_of(
    registry: &dyn Registry,
    repo: &str,
    children: &[&RawManifest],
    times: usize,
) -> RawManifest {
    let entries: Vec<serde_json::Value> = children
        .iter()
        .flat_map(|c| {
            std::iter::repeat_n(
                serde_json::json!({
                    "mediaType": c.media_type,
                    "digest": c.digest.as_str(),
                    "size": c.bytes.len(),
                }),
                times,
            )
        })
        .collect();
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": entries,
    });
    let index = RawManifest::new(serde_json::to_vec(&body).unwrap(), media_type::OCI_INDEX);
    put(
        registry,
        repo,
        ManifestRef::Digest(index.digest.clone()),
        &index,
    )
    .await;
    index
}

#[tokio::test]
async fn indexes_nested_past_the_limit_fail_their_copy_instead_of_the_stack() {
    let w = world_with(BTreeSet::new());
    let (mut top, _) = image(w.src.as_ref(), "deep", 60, None).await;
    for _ in 0..crate::limits::INDEX_DEPTH + 2 {
        top = index_of(w.src.as_ref(), "deep", &[&top], 1).await;
    }
    let wants = [w.want("deep", &[(&top.digest, &["1.0"])])];
    let plan = w.cold_plan(&wants, false);
    let executor = Executor::new(&w.registries, &options(), Default::default());
    let report = execute(&plan, &executor, &options()).await;
    let failed: Vec<_> = report.failed().collect();
    assert_eq!(failed.len(), 2, "the copy and its tag: {report:#?}");
    let Outcome::Failed(failure) = &failed[0].outcome else {
        unreachable!()
    };
    assert!(
        failure.error.contains("nest more than"),
        "{}",
        failure.error
    );
    assert_eq!(failure.kind, FailureKind::Limit);
    assert!(
        !w.dst.calls().iter().any(|c| c.ends_with(" 1.0")),
        "no tag on incomplete content"
    );
}

#[tokio::test]
async fn a_child_listed_a_thousand_times_is_written_once() {
    let w = world_with(BTreeSet::new());
    let (child, _) = image(w.src.as_ref(), "many", 61, None).await;
    let index = index_of(w.src.as_ref(), "many", &[&child], 1000).await;
    let wants = [w.want("many", &[(&index.digest, &["1.0"])])];
    let plan = w.cold_plan(&wants, false);
    let executor = Executor::new(&w.registries, &options(), Default::default());
    let report = execute(&plan, &executor, &options()).await;
    assert_eq!(report.failed().count(), 0, "{report:#?}");
    let child_puts = w
        .dst
        .calls()
        .iter()
        .filter(|c| c.starts_with("put-manifest many") && c.ends_with(child.digest.as_str()))
        .count();
    assert_eq!(child_puts, 1);
    assert_eq!(report.stats.manifests_written, 2);
}

#[tokio::test]
async fn an_image_under_a_signature_tag_is_no_signature_and_stays_behind() {
    let w = world_with(BTreeSet::new());
    let (subject, _) = image(w.src.as_ref(), "app", 70, None).await;
    // Anyone who can push to staging can put an ordinary image (say, one
    // with a backdoor) under the tag cosign uses for signatures.
    let (impostor, _) = image(w.src.as_ref(), "app", 71, None).await;
    let sig_tag = oci::attachment_tag(&subject.digest, Some("sig"));
    put(
        w.src.as_ref(),
        "app",
        ManifestRef::Tag(sig_tag.clone()),
        &impostor,
    )
    .await;
    let wants = [w.want("app", &[(&subject.digest, &["1.0"])])];
    let (plan, report) = w.promote(&wants, &with_attachments()).await;
    assert_eq!(
        report.failed().count(),
        0,
        "the image itself is promoted: {report:#?}"
    );
    assert_eq!(report.stats.attachments_copied, 0);
    assert_eq!(plan.attachments_skipped, 1);
    let calls = w.dst.calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.contains(impostor.digest.as_str()) || c.contains(sig_tag.as_str())),
        "the impostor reached the destination: {calls:?}"
    );
}

#[tokio::test]
async fn referrers_of_unknown_types_are_skipped_unless_admitted() {
    let w = world_with(BTreeSet::new());
    let (subject, _) = image(w.src.as_ref(), "app", 72, None).await;
    let report_type = "application/vnd.example.scan-report";
    let report_artifact =
        typed_artifact(w.src.as_ref(), "app", 73, Some(&subject), report_type).await;
    put(
        w.src.as_ref(),
        "app",
        ManifestRef::Digest(report_artifact.digest.clone()),
        &report_artifact,
    )
    .await;
    let wants = [w.want("app", &[(&subject.digest, &["1.0"])])];
    let (plan, report) = w.promote(&wants, &with_attachments()).await;
    assert_eq!(report.failed().count(), 0, "{report:#?}");
    assert_eq!(
        (report.stats.attachments_copied, plan.attachments_skipped),
        (0, 1)
    );

    // Admitted by name, the same referrer follows its image.
    let w2 = world_with(BTreeSet::new());
    let (subject, _) = image(w2.src.as_ref(), "app", 72, None).await;
    let report_artifact =
        typed_artifact(w2.src.as_ref(), "app", 73, Some(&subject), report_type).await;
    put(
        w2.src.as_ref(),
        "app",
        ManifestRef::Digest(report_artifact.digest.clone()),
        &report_artifact,
    )
    .await;
    let admitting = ExecOptions {
        extra_attachment_types: vec![report_type.to_string()],
        ..with_attachments()
    };
    let wants = [w2.want("app", &[(&subject.digest, &["1.0"])])];
    let (plan, report) = w2.promote(&wants, &admitting).await;
    assert_eq!(report.failed().count(), 0, "{report:#?}");
    assert_eq!(
        (report.stats.attachments_copied, plan.attachments_skipped),
        (1, 0)
    );
}

/// The file of `digest` in `repo` of the `oci:` tree at `root`.
fn blob_file(root: &Path, repo: &str, digest: &Digest) -> std::path::PathBuf {
    root.join(repo)
        .join("blobs")
        .join("sha256")
        .join(digest.hex())
}

/// A blob that answers with another size is not taken as there: the copy
/// writes it again (an `oci:` tree, like Distribution, keeps the file it
/// has, so the copy fails saying so instead of passing as done).
#[tokio::test]
async fn a_blob_of_another_size_under_its_digest_is_not_taken_as_there() {
    let w = world_with(BTreeSet::new());
    let (manifest, blobs) = image(w.src.as_ref(), "app", 70, None).await;
    let wants = [w.want("app", &[(&manifest.digest, &["1.0"])])];
    let (_, report) = w.promote(&wants, &options()).await;
    assert_eq!(report.failed().count(), 0, "{report:#?}");
    let layer = blob_file(&w._dir.path().join("dst"), "app", &blobs[1]);
    std::fs::write(&layer, b"short").unwrap();
    let before = w.dst.calls().len();

    let plan = w.cold_plan(&wants, false);
    let executor = Executor::new(&w.registries, &options(), Default::default());
    let report = execute(&plan, &executor, &options()).await;
    let puts: Vec<String> = w.dst.calls()[before..]
        .iter()
        .filter(|c| c.starts_with("put-blob"))
        .cloned()
        .collect();
    assert_eq!(
        puts,
        vec![format!("put-blob app {}", blobs[1])],
        "only the layer of the wrong size is written again"
    );
    let failed: Vec<_> = report.failed().collect();
    let Outcome::Failed(failure) = &failed[0].outcome else {
        unreachable!()
    };
    assert_eq!(failure.kind, FailureKind::BadContent, "{report:#?}");
    assert!(failure.error.contains("got 5"), "{}", failure.error);
}

/// An index whose child is there but lost a layer: a repair of the index
/// looks below the child, writes the layer, and leaves the child be.
#[tokio::test]
async fn a_repair_restores_a_blob_lost_below_a_child_that_is_there() {
    let w = world_with(BTreeSet::new());
    let (child, blobs) = image(w.src.as_ref(), "multi", 71, None).await;
    let index = index_of(w.src.as_ref(), "multi", &[&child], 1).await;
    let wants = [w.want("multi", &[(&index.digest, &["1.0"])])];
    let (_, report) = w.promote(&wants, &options()).await;
    assert_eq!(report.failed().count(), 0, "{report:#?}");
    let layer = blob_file(&w._dir.path().join("dst"), "multi", &blobs[1]);
    std::fs::remove_file(&layer).unwrap();
    let before = w.dst.calls().len();

    let damaged = plan::Damaged::from([(
        wants[0].repo.clone(),
        BTreeMap::from([(
            index.digest.clone(),
            plan::Damage::Incomplete("missing_blob".into()),
        )]),
    )]);
    let options = options();
    let run = crate::promote::Run::new(&w.registries, &options, None).repairing(damaged);
    let (planned, report) = run.promote(wants.to_vec()).await;
    assert_eq!(report.failed().count(), 0, "{report:#?}");
    assert_eq!(planned.plan.counts().copy, 1, "{:#?}", planned.plan);
    assert!(layer.exists(), "the lost layer is back");
    let calls = &w.dst.calls()[before..];
    let writes: Vec<&String> = calls.iter().filter(|c| c.starts_with("put-")).collect();
    assert_eq!(
        writes,
        vec![
            &format!("put-blob multi {}", blobs[1]),
            &format!("put-manifest multi {}", index.digest),
        ],
        "only the lost layer, then the index again: {calls:#?}"
    );
}
