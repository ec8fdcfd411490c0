//! A destination behind a quota (a token bucket answering 429 beyond it, as
//! Artifact Registry's per-region, per-minute quotas): the promotion
//! completes, every digest is there for skopeo, and the report shows what
//! the pacer learnt. No assertion on time: how close to the quota's pace a
//! run gets is the benchmark's (`bench/run.sh quota`).

use std::path::Path;

use serde_json::Value;

use crate::support::images::TestImage;
use crate::support::proxy::Quota;
use crate::support::verify::{self, Skopeo, Tags};
use crate::support::world::{images_yaml, World};

/// Images promoted per phase: enough requests to run a 30-request bucket
/// dry several times over.
const IMAGES: usize = 12;

fn schema_errors(report: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    validator
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// Promote `images` from `stage` to `path` of the destination, behind
/// `quota`; answers the report, after checking the run completed.
async fn promote_behind(w: &World, quota: Quota, path: &str, images: &[TestImage]) -> Value {
    let entries: Vec<(String, &promoter::reference::Digest)> = images
        .iter()
        .enumerate()
        .map(|(i, image)| (format!("app-{i:02}"), image.digest()))
        .collect();
    let tags: &[&str] = &["1.0"];
    let yaml = images_yaml(
        &entries
            .iter()
            .map(|(name, digest)| (name.as_str(), *digest, tags))
            .collect::<Vec<_>>(),
    );
    let manifest = w.manifest_between(&format!("{path}.yaml"), "stage", path, &yaml);
    w.dst_proxy.clear_log();
    w.dst_proxy.set_quota(Some(quota));
    let out = w
        .run_async(&[
            "run",
            "--manifest",
            &manifest,
            "--confirm",
            "--output",
            "json",
            "--registry-config",
            "options.json",
            "-v",
        ])
        .await;
    w.dst_proxy.set_quota(None);
    let (requests, throttled) = w.dst_proxy.quota_counts();
    assert_eq!(
        out.code, 0,
        "{requests} requests, {throttled} answered 429\n{}\n{}",
        out.stderr, out.stdout
    );
    assert!(
        throttled > 0,
        "the quota never ran out: the test proves nothing\n{}",
        w.dst_proxy.dump()
    );
    // The pacer's line at -v.
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("pacing") && l.contains(&w.dst_host()) && l.contains("throttled=")),
        "{}",
        out.stderr
    );
    let report: Value = serde_json::from_str(&out.stdout).expect(&out.stdout);
    let errors = schema_errors(&report);
    assert!(errors.is_empty(), "{errors:?}\n{report:#}");
    let found = verify::assert_registry(&w.dst.host(), path, Skopeo::Yes, path).await;
    let expected: Tags = entries
        .iter()
        .map(|(name, digest)| (format!("{name}:1.0"), (*digest).clone()))
        .collect();
    assert_eq!(found, expected, "every image promoted, complete");
    report
}

/// The destination's entry of the report's `execution.pacing`.
fn pacing_of<'r>(report: &'r Value, host: &str) -> &'r Value {
    report["execution"]["pacing"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["registry"] == host))
        .unwrap_or_else(|| panic!("no pacing entry for {host}: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_behind_a_quota_is_promoted_completely_at_its_pace() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let images: Vec<TestImage> = (0..2 * IMAGES)
        .map(|i| TestImage::single_layer(2600 + i as u64, 512))
        .collect();
    for (i, image) in images.iter().enumerate() {
        w.push(&format!("stage/app-{:02}", i % IMAGES), image, &[])
            .await;
    }
    // 30 requests a second, 10 of them writes: a new image is 5 writes.
    let quota = Quota::per_minute(1800.0).writes_per_minute(600.0);
    for (phase, quota, images) in [
        ("prod", quota, &images[..IMAGES]),
        ("prod-ra", quota.with_retry_after(), &images[IMAGES..]),
    ] {
        let report = promote_behind(&w, quota, phase, images).await;
        let pacing = pacing_of(&report, &w.dst_host());

        assert!(pacing["adaptive"].as_bool().unwrap(), "{pacing:#}");
        assert!(pacing["throttled"].as_u64().unwrap() > 0, "{pacing:#}");
        assert!(
            pacing["rate_cuts"].as_u64().unwrap() >= 1,
            "the pacer backed off: {pacing:#}"
        );
        let write_rate = &pacing["write_rate"];
        assert!(
            write_rate["lowest"].as_f64().is_some_and(|r| r > 0.0),
            "writes are paced apart once their quota ran out: {pacing:#}"
        );
        assert!(
            pacing["in_flight"]["lowest"].as_u64().unwrap()
                < pacing["in_flight"]["most"].as_u64().unwrap(),
            "{pacing:#}"
        );
        if phase == "prod-ra" {
            assert!(
                pacing["throttled_with_retry_after"].as_u64().unwrap() > 0,
                "{pacing:#}"
            );
        }
        // The source had no quota: nothing was cut there.
        let source = pacing_of(&report, &w.src_host());
        assert_eq!(source["throttled"], 0, "{source:#}");
        assert_eq!(source["rate_cuts"], 0, "{source:#}");
    }
}
