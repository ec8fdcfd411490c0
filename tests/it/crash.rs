//! Crash safety (issue 7 §2): the real binary, killed with SIGKILL at seeded
//! pseudo-random moments of a mixed promotion (multi-arch indexes, images
//! sharing layers, cosign signatures, a by-digest image), over and over.
//!
//! After every kill, the destination is walked (`support::verify`): no tag
//! may point at missing or wrong content, at any moment. Then the promotion
//! runs again (and may be killed again); each round ends with a run that is
//! left alone, which must exit 0, leave exactly the expected snapshot, and
//! leave nothing for the run after it.
//!
//! The same for an `oci:` destination, checked by reading index.json and
//! the blob files after each kill.
//!
//! The schedule is seeded: set `CRASH_SEED` to replay a failure (the seed is
//! printed in every failure message; the moments a kill lands on still
//! depend on the machine's speed). `CRASH_TRACE=1` prints every run.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use promoter::reference::Digest;
use promoter::registry::remote::CredentialStore;

use crate::support::cli::{promoter, Promoter};
use crate::support::images::{
    blob_path, cosign_tag, repo_dir, write_oci_layout, Flavor, Platform, Prng, TestBlob, TestImage,
};
use crate::support::proxy::{Action, Proxy, Rule};
use crate::support::registry::TestRegistry;
use crate::support::skopeo;
use crate::support::verify::{self, Skopeo, Tags};
use crate::support::world::{images_yaml, manifest_yaml, push_tagged, registry_options, World};

/// At least this many kills per destination kind in one test run.
const MIN_KILLS: usize = 20;
/// At most this many kills in a row before a round's run is left alone.
const KILLS_PER_ROUND: usize = 4;

fn seed() -> u64 {
    std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_C4A5)
}

/// One repository's wanted content: digests, each with its tags.
type Repo = BTreeMap<Digest, BTreeSet<String>>;

/// The mixed set of images promoted, and what the destination must end with.
struct Mix {
    /// repository (under `stage` and the destination root) -> image, tags.
    images: Vec<(String, TestImage, Vec<String>)>,
    /// repository -> signature image and the subject it signs.
    signatures: Vec<(String, TestImage, Digest)>,
}

impl Mix {
    fn new() -> Mix {
        let base = TestBlob::layer(900, 128 * 1024);
        let mut images = Vec::new();
        let mut add = |repo: &str, image: TestImage, tags: &[&str]| {
            images.push((
                repo.to_string(),
                image,
                tags.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            ));
        };
        add(
            "idx/oci",
            TestImage::oci_index(901, 64 * 1024),
            &["1.0", "stable"],
        );
        add(
            "idx/docker",
            TestImage::docker_list(902, 64 * 1024),
            &["2.0"],
        );
        add(
            "idx/three",
            TestImage::multi_arch(
                903,
                Flavor::Oci,
                &[
                    Platform::linux("amd64"),
                    Platform::linux_variant("arm64", "v8"),
                    Platform::linux("s390x"),
                ],
                48 * 1024,
            ),
            &["3.0"],
        );
        for i in 0..4u64 {
            add(
                &format!("svc/s{i}"),
                TestImage::layered(910 + i, 2, 64 * 1024, Some(&base)),
                &["1.0", "latest"],
            );
        }
        // A second version in one repository, on the same base.
        add(
            "svc/s0",
            TestImage::layered(920, 1, 32 * 1024, Some(&base)),
            &["2.0"],
        );
        // Promoted by digest only.
        add("svc/s1", TestImage::single_layer(921, 16 * 1024), &[]);
        let signatures = ["svc/s0", "idx/oci"]
            .iter()
            .map(|repo| {
                let subject = images
                    .iter()
                    .find(|(r, _, tags)| r == repo && !tags.is_empty())
                    .map(|(_, image, _)| image.digest().clone())
                    .unwrap();
                (
                    repo.to_string(),
                    TestImage::cosign_signature(930, &subject),
                    subject,
                )
            })
            .collect();
        Mix { images, signatures }
    }

    async fn load(&self, registry: &TestRegistry) {
        let client = registry.remote(CredentialStore::anonymous());
        for (repo, image, tags) in &self.images {
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            push_tagged(&client, &format!("stage/{repo}"), image, &tags).await;
        }
        for (repo, signature, subject) in &self.signatures {
            let tag = cosign_tag(subject, "sig");
            push_tagged(&client, &format!("stage/{repo}"), signature, &[&tag]).await;
        }
    }

    /// A manifest promoting everything from `source/stage` to `dest`.
    fn manifest(&self, source: &str, dest: &str) -> String {
        let mut by_repo: BTreeMap<&str, Vec<(&TestImage, Vec<&str>)>> = BTreeMap::new();
        for (repo, image, tags) in &self.images {
            let tags = tags.iter().map(String::as_str).collect();
            by_repo.entry(repo).or_default().push((image, tags));
        }
        let entries: Vec<(&str, &Digest, &[&str])> = by_repo
            .iter()
            .flat_map(|(repo, images)| {
                images
                    .iter()
                    .map(|(image, tags)| (*repo, image.digest(), tags.as_slice()))
            })
            .collect();
        manifest_yaml(&format!("{source}/stage"), dest, &images_yaml(&entries))
    }

    /// The tagged content the destination must end with, signatures included.
    fn repos(&self) -> BTreeMap<String, Repo> {
        let mut repos: BTreeMap<String, Repo> = BTreeMap::new();
        for (repo, image, tags) in &self.images {
            if tags.is_empty() {
                continue;
            }
            repos
                .entry(repo.clone())
                .or_default()
                .entry(image.digest().clone())
                .or_default()
                .extend(tags.iter().cloned());
        }
        for (repo, signature, subject) in &self.signatures {
            repos
                .entry(repo.clone())
                .or_default()
                .entry(signature.digest().clone())
                .or_default()
                .insert(cosign_tag(subject, "sig"));
        }
        repos
    }

    fn expected_tags(&self) -> Tags {
        let mut tags = Tags::new();
        for (repo, digests) in self.repos() {
            for (digest, names) in digests {
                for name in names {
                    tags.insert(format!("{repo}:{name}"), digest.clone());
                }
            }
        }
        tags
    }

    /// `promoter run --snapshot ROOT --minimal-snapshot`, computed: every
    /// tagged digest with its tags (untagged digests are invisible to a
    /// registry, and minimal snapshots leave out index children).
    fn expected_minimal_snapshot(&self) -> String {
        let repos = self.repos();
        let tagged: Vec<(&str, &Digest, Vec<&str>)> = repos
            .iter()
            .flat_map(|(repo, digests)| {
                digests.iter().map(|(digest, tags)| {
                    (
                        repo.as_str(),
                        digest,
                        tags.iter().map(String::as_str).collect(),
                    )
                })
            })
            .collect();
        let entries: Vec<(&str, &Digest, &[&str])> = tagged
            .iter()
            .map(|(repo, digest, tags)| (*repo, *digest, tags.as_slice()))
            .collect();
        images_yaml(&entries)
    }

    /// A promoted digest never shows without its signature: once any tag
    /// points at a signed digest, the signature's tag is there too (else a
    /// re-run, seeing the digest promoted, would never bring it).
    fn assert_signed_before_tagged(&self, found: &Tags, context: &str) {
        for (repo, _, subject) in &self.signatures {
            let subject_tagged = found
                .iter()
                .any(|(tag, digest)| digest == subject && tag.starts_with(&format!("{repo}:")));
            let sig = format!("{repo}:{}", cosign_tag(subject, "sig"));
            assert!(
                !subject_tagged || found.contains_key(&sig),
                "{context}: {repo}@{subject} is tagged but its signature {sig} is missing"
            );
        }
    }

    /// Digests promoted without a tag (each must exist by digest).
    fn tagless(&self) -> Vec<(String, Digest)> {
        self.images
            .iter()
            .filter(|(_, _, tags)| tags.is_empty())
            .map(|(repo, image, _)| (repo.clone(), image.digest().clone()))
            .collect()
    }
}

/// How a run ended.
#[derive(Debug)]
enum Ended {
    Exited(i32),
    Killed,
}

/// Run `promoter ARGS` in `dir`; SIGKILL it after `kill_after` if it is
/// still running. Output goes to files in `dir` (no pipe can fill up).
async fn run_and_maybe_kill(dir: &Path, args: &[&str], kill_after: Option<Duration>) -> Ended {
    let stdout = std::fs::File::create(dir.join("stdout.txt")).unwrap();
    let stderr = std::fs::File::create(dir.join("stderr.txt")).unwrap();
    let mut child = Promoter::new(dir)
        .args(args)
        .stdout(stdout)
        .stderr(stderr)
        .spawn();
    let limit = Duration::from_secs(180);
    let waited = match kill_after {
        Some(after) => tokio::time::timeout(after, child.wait()).await,
        None => Ok(tokio::time::timeout(limit, child.wait())
            .await
            .unwrap_or_else(|_| panic!("promoter {args:?} did not finish in {limit:?}"))),
    };
    match waited {
        Ok(status) => Ended::Exited(status.unwrap().code().unwrap_or(-1)),
        Err(_) => {
            // tokio's kill is SIGKILL on Unix: no destructor, no flush, no cleanup.
            child.start_kill().unwrap();
            let status = child.wait().await.unwrap();
            match status.code() {
                // It may have finished between the timeout and the kill.
                Some(code) => Ended::Exited(code),
                None => {
                    assert_eq!(status.signal(), Some(9), "{status:?}");
                    Ended::Killed
                }
            }
        }
    }
}

fn output(dir: &Path) -> String {
    format!(
        "{}{}",
        std::fs::read_to_string(dir.join("stdout.txt")).unwrap_or_default(),
        std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default()
    )
}

/// Where a round promotes to, and how its state is checked.
trait Destination {
    /// The registry name for the manifest (`HOST/rN`, `oci:PATH`).
    fn name(&self, round: usize) -> String;
    /// Walk it: no tag may point at missing or wrong content. Answers the tags.
    async fn check(&self, round: usize, thorough: bool, context: &str) -> Tags;
    /// How many files the destination's storage holds for round `round`
    /// (a measure of writes, to tell a kill in the middle of them).
    fn files(&self, round: usize) -> usize;
    /// Each tagless digest is there, by digest.
    async fn has_digest(&self, round: usize, repo: &str, digest: &Digest) -> bool;
}

struct RegistryDest {
    /// The destination registry's own address (checks bypass the proxy).
    direct: String,
    /// Its storage root (to recognise a tag it was killed writing).
    storage: PathBuf,
    /// What the promoter talks to (the delaying proxy).
    via: String,
}

impl Destination for RegistryDest {
    fn name(&self, round: usize) -> String {
        format!("{}/r{round}", self.via)
    }

    async fn check(&self, round: usize, thorough: bool, context: &str) -> Tags {
        let skopeo = if thorough { Skopeo::Yes } else { Skopeo::No };
        verify::assert_registry_after_kill(
            &self.direct,
            &format!("r{round}"),
            skopeo,
            &self.storage,
            context,
        )
        .await
    }

    fn files(&self, round: usize) -> usize {
        count_files(
            &self
                .storage
                .join(format!("docker/registry/v2/repositories/r{round}")),
        )
    }

    async fn has_digest(&self, round: usize, repo: &str, digest: &Digest) -> bool {
        let url = format!(
            "http://{}/v2/r{round}/{repo}/manifests/{digest}",
            self.direct
        );
        let response = reqwest::Client::new()
            .head(url)
            .header(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
            )
            .send()
            .await
            .unwrap();
        response.status().is_success()
    }
}

struct LayoutDest {
    root: PathBuf,
}

impl Destination for LayoutDest {
    fn name(&self, round: usize) -> String {
        format!("oci:{}", self.root.join(format!("r{round}")).display())
    }

    async fn check(&self, round: usize, _thorough: bool, context: &str) -> Tags {
        verify::assert_layout(&self.root.join(format!("r{round}")), context)
    }

    fn files(&self, round: usize) -> usize {
        count_files(&self.root.join(format!("r{round}")))
    }

    async fn has_digest(&self, round: usize, repo: &str, digest: &Digest) -> bool {
        let root = self.root.join(format!("r{round}"));
        let index =
            std::fs::read_to_string(repo_dir(&root, repo).join("index.json")).unwrap_or_default();
        index.contains(digest.as_str()) && blob_path(&root, repo, digest).is_file()
    }
}

/// Files (not directories) under `dir`, recursively; 0 when it is missing.
fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

/// What a crash campaign did.
#[derive(Debug, Default)]
struct Tally {
    kills: usize,
    /// Kills of a run that had written something and had not finished:
    /// caught in the middle of its writes, not before or after them.
    mid_write: usize,
    rounds: usize,
    runs: usize,
}

/// Kill promotions into `dest` at seeded moments until at least
/// [`MIN_KILLS`] kills, checking after each; every round ends with a run
/// left alone, which must complete and leave exactly the expected content.
async fn campaign(
    world: &Mix,
    source: &str,
    dest: &impl Destination,
    dir: &Path,
    seed: u64,
) -> Tally {
    let mut rng = Prng::new(seed);
    let expected = world.expected_tags();
    let args = |manifest: &str| -> Vec<String> {
        [
            "run",
            "--manifest",
            manifest,
            "--confirm",
            "--registry-config",
            "options.json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    std::fs::write(dir.join("options.json"), registry_options("{}")).unwrap();

    // Round 0 is left alone: it proves the end state, and its duration
    // sets the range the kill moments are drawn from.
    let mut tally = Tally::default();
    let mut full_run = Duration::ZERO;
    loop {
        let round = tally.rounds;
        tally.rounds += 1;
        let manifest = format!("m{round}.yaml");
        std::fs::write(
            dir.join(&manifest),
            world.manifest(source, &dest.name(round)),
        )
        .unwrap();
        let args = args(&manifest);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut kills_this_round = 0;
        loop {
            // Anywhere in a whole run; each later run of a round has less
            // left to do, so its window shrinks.
            let kill_after = if round == 0 || kills_this_round == KILLS_PER_ROUND {
                None
            } else {
                let span = full_run.mul_f64(0.75f64.powi(kills_this_round as i32));
                let span = span.as_micros().max(1) as u64;
                Some(Duration::from_micros(rng.next_u64() % span))
            };
            let written_before = dest.files(round);
            let started = Instant::now();
            let ended = run_and_maybe_kill(dir, &args, kill_after).await;
            if std::env::var_os("CRASH_TRACE").is_some() {
                eprintln!(
                    "round {round}: {kill_after:?} -> {ended:?} after {:?}",
                    started.elapsed()
                );
            }
            tally.runs += 1;
            if round == 0 {
                full_run = started.elapsed();
            } else if kills_this_round == 0 && matches!(ended, Ended::Exited(_)) {
                // A whole run from scratch again: keep the shortest seen,
                // so that kills are not wasted after the end.
                full_run = full_run.min(started.elapsed());
            }
            let context = format!(
                "seed {seed}, round {round}, run {} ({ended:?} after {kill_after:?}):\n{}",
                tally.runs,
                output(dir)
            );
            let found = dest.check(round, false, &context).await;
            verify::assert_no_wrong_tags(&found, &expected, &context);
            world.assert_signed_before_tagged(&found, &context);
            match ended {
                Ended::Killed => {
                    tally.kills += 1;
                    kills_this_round += 1;
                    if dest.files(round) > written_before && found != expected {
                        tally.mid_write += 1;
                    }
                }
                Ended::Exited(code) => {
                    assert_eq!(code, 0, "{context}");
                    break;
                }
            }
        }
        // The run left alone completed: exactly the expected content.
        let end_started = Instant::now();
        let context = format!("seed {seed}, end of round {round}");
        // skopeo (slow) in the first round and then every fourth.
        let found = dest.check(round, round % 4 == 0, &context).await;
        assert_eq!(found, expected, "{context}");
        for (repo, digest) in world.tagless() {
            assert!(
                dest.has_digest(round, &repo, &digest).await,
                "{context}: {repo}@{digest} (promoted by digest) is missing"
            );
        }
        let snapshot = run_and_maybe_kill(
            dir,
            &["run", "--snapshot", &dest.name(round), "--minimal-snapshot"],
            None,
        )
        .await;
        assert!(matches!(snapshot, Ended::Exited(0)), "{}", output(dir));
        let snapshot = std::fs::read_to_string(dir.join("stdout.txt")).unwrap();
        assert_eq!(snapshot, world.expected_minimal_snapshot(), "{context}");
        // And nothing is left to do.
        let dry = run_and_maybe_kill(
            dir,
            &[
                "run",
                "--manifest",
                &manifest,
                "--registry-config",
                "options.json",
            ],
            None,
        )
        .await;
        assert!(matches!(dry, Ended::Exited(0)), "{}", output(dir));
        let plan = std::fs::read_to_string(dir.join("stdout.txt")).unwrap();
        assert!(
            plan.contains("plan: 0 copy, 0 tag, 0 lost"),
            "{context}: {plan}"
        );
        if std::env::var_os("CRASH_TRACE").is_some() {
            eprintln!("round {round}: end checks took {:?}", end_started.elapsed());
        }
        if tally.kills >= MIN_KILLS {
            return tally;
        }
    }
}

/// Slow every write to the destination a little, so that a kill lands
/// inside transfers rather than between runs.
fn widen_windows(proxy: &Proxy, methods: &[&str], delay: Duration) {
    for method in methods {
        proxy.add(
            Rule::new(method, "/v2/")
                .always()
                .action(Action::Delay(delay)),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_leaves_a_registry_tag_on_missing_content() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let mix = Mix::new();
    mix.load(w.src()).await;
    widen_windows(
        &w.dst_proxy,
        &["PUT", "POST", "PATCH"],
        Duration::from_millis(15),
    );
    let dest = RegistryDest {
        direct: w.dst.host(),
        storage: w.dst.dir.path().join("storage"),
        via: w.dst_host(),
    };
    let started = Instant::now();
    // The source is read directly, not through its proxy.
    let tally = campaign(&mix, &w.src().host(), &dest, w.path(), seed()).await;
    eprintln!("registry: {tally:?} in {:?}", started.elapsed());
    assert!(
        !w.dst_proxy.log().iter().any(|r| r.method == "DELETE"),
        "nothing is ever deleted"
    );
    assert!(tally.kills >= MIN_KILLS, "{tally:?}");
    assert!(
        tally.mid_write >= MIN_KILLS / 4,
        "too few kills hit the middle: {tally:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_never_leaves_an_oci_index_on_missing_content() {
    let Some(src) = TestRegistry::plain().await else {
        return;
    };
    let mix = Mix::new();
    mix.load(&src).await;
    // The layout writes locally; slow the source's blob reads instead (the
    // copy's, not the planning's: kills land inside transfers).
    let src_proxy = Proxy::start(&src.host()).await;
    src_proxy.add(
        Rule::new("GET", "/blobs/")
            .always()
            .action(Action::Delay(Duration::from_millis(30))),
    );
    let dir = tempfile::tempdir().unwrap();
    let dest = LayoutDest {
        root: dir.path().join("layouts"),
    };
    let started = Instant::now();
    let tally = campaign(&mix, &src_proxy.host(), &dest, dir.path(), seed() ^ 0x0C1).await;
    eprintln!("oci: {tally:?} in {:?}", started.elapsed());
    assert!(tally.kills >= MIN_KILLS, "{tally:?}");
    assert!(
        tally.mid_write >= MIN_KILLS / 4,
        "too few kills hit the middle: {tally:?}"
    );
}

/// The moment a signature is being written, deterministically: its manifest
/// PUT is held by the proxy, and the promoter is killed once the signature's
/// blobs are in. The signed image must not be tagged yet (else a re-run,
/// seeing it promoted, would never bring the signature), and the re-run
/// brings both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_while_a_signature_is_written_leaves_its_image_untagged() {
    let Some(w) = World::builder().start().await else {
        return;
    };
    let image = TestImage::layered(940, 2, 32 * 1024, None);
    let signature = TestImage::cosign_signature(941, image.digest());
    let sig_tag = cosign_tag(image.digest(), "sig");
    w.push("stage/app", &image, &["1.0"]).await;
    w.push("stage/app", &signature, &[&sig_tag]).await;
    let (dst, dst_proxy) = (&w.dst, &w.dst_proxy);
    dst_proxy.add(
        Rule::new("PUT", &format!("/prod/app/manifests/{sig_tag}"))
            .action(Action::Delay(Duration::from_secs(120))),
    );
    // The source is read directly, not through its proxy.
    let images = images_yaml(&[("app", image.digest(), &["1.0", "latest"])]);
    let src = format!("{}/stage", w.src().host());
    w.write(
        "m.yaml",
        manifest_yaml(&src, &format!("{}/prod", w.dst_host()), &images),
    );
    let args = ["run", "--manifest", "m.yaml", "--confirm"];

    let mut child = w.promoter().args(args).spawn();
    // Every blob of the signature is in: the next write is its (held) PUT.
    let sig_blobs: Vec<String> = signature
        .own_blobs()
        .iter()
        .map(|b| b.digest.to_string())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = dst_proxy
            .log()
            .iter()
            .filter(|r| r.method == "PUT" && r.status == 201)
            .filter(|r| {
                sig_blobs
                    .iter()
                    .any(|d| r.path.contains(&d.replace(':', "%3A")))
            })
            .count();
        if stored == sig_blobs.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the signature's blobs never arrived:\n{}",
            dst_proxy.dump()
        );
        assert!(child.try_wait().unwrap().is_none(), "{}", dst_proxy.dump());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give a wrong order every chance to show: anything else it would
    // write before the held PUT is written by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    let expected: Tags = [
        ("app:1.0".to_string(), image.digest().clone()),
        ("app:latest".to_string(), image.digest().clone()),
        (format!("app:{sig_tag}"), signature.digest().clone()),
    ]
    .into_iter()
    .collect();
    let storage = dst.dir.path().join("storage");
    let found = verify::assert_registry_after_kill(
        &dst.host(),
        "prod",
        Skopeo::No,
        &storage,
        "after the kill",
    )
    .await;
    verify::assert_no_wrong_tags(&found, &expected, "after the kill");
    assert!(
        !found.contains_key("app:1.0") && !found.contains_key("app:latest"),
        "the image was tagged before its signature was written: {found:?}"
    );

    dst_proxy.clear_rules();
    let ended = run_and_maybe_kill(w.path(), &args, None).await;
    assert!(matches!(ended, Ended::Exited(0)), "{}", output(w.path()));
    let found = verify::assert_registry(&dst.host(), "prod", Skopeo::Yes, "after the re-run").await;
    assert_eq!(
        found, expected,
        "the re-run brings the image and its signature"
    );
}

/// The state a kill leaves when it lands between a by-digest manifest's
/// blob and its index.json entry in an `oci:` destination: the blob is
/// there, nothing names it (a layout GC may collect it). The re-run must
/// not take it for promoted: it puts it again, which records it.
#[test]
fn a_kill_between_a_manifest_blob_and_its_index_entry_is_repaired_by_the_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let image = TestImage::single_layer(950, 4096);
    let tagged = TestImage::single_layer(951, 4096);
    let src = dir.path().join("src");
    write_oci_layout(&src, "app", &[(&image, None), (&tagged, Some("1.0"))]).unwrap();
    let dst = dir.path().join("dst");
    // The interrupted promotion: the tagged image is done, the tagless one
    // has its blobs and its manifest blob, but no index.json entry.
    write_oci_layout(&dst, "app", &[(&tagged, Some("1.0"))]).unwrap();
    for (digest, bytes) in image
        .all_blobs()
        .iter()
        .map(|b| (&b.digest, &b.bytes))
        .chain([(image.digest(), &image.manifest.bytes)])
    {
        std::fs::write(blob_path(&dst, "app", digest), bytes).unwrap();
    }
    let images = images_yaml(&[
        ("app", image.digest(), &[]),
        ("app", tagged.digest(), &["1.0"]),
    ]);
    let (from, to) = (
        format!("oci:{}", src.display()),
        format!("oci:{}", dst.display()),
    );
    std::fs::write(
        dir.path().join("m.yaml"),
        manifest_yaml(&from, &to, &images),
    )
    .unwrap();
    let out = promoter(dir.path(), &["run", "--manifest", "m.yaml", "--confirm"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let index = std::fs::read_to_string(dst.join("app/index.json")).unwrap();
    assert!(
        index.contains(image.digest().as_str()),
        "the promoted-by-digest image is still unreachable:\n{index}\n{}",
        out.all()
    );
    verify::assert_layout(&dst, "after the re-run");
}

/// The images of the fan-out kill test: one whose layer is large enough to
/// go to the spool file (in TMPDIR), an index, and a small image; all OCI,
/// so that skopeo reads them from the `oci:` tree too.
fn fan_out_images() -> Vec<(&'static str, TestImage)> {
    let big_layer = TestBlob::layer(960, 9 << 20);
    vec![
        (
            "big",
            TestImage::image(960, Flavor::Oci, Platform::linux("amd64"), vec![big_layer]),
        ),
        ("idx", TestImage::oci_index(961, 256 * 1024)),
        ("small", TestImage::layered(962, 2, 128 * 1024, None)),
    ]
}

/// Every `.tmp-*` file under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                found.push(path);
            }
        }
    }
    found
}

fn entries_of(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Start the fan-out promotion in `work` with `TMPDIR` at `tmpdir`, and
/// SIGKILL it once `kill_when` says so (polled every millisecond), or
/// let it finish when it never does. Answers whether it was killed.
async fn fan_out_run(work: &Path, tmpdir: &Path, kill_when: impl Fn(Duration) -> bool) -> bool {
    let mut child = Promoter::new(work)
        .args(["run", "--manifest", "m.yaml", "--confirm"])
        .env("TMPDIR", tmpdir)
        .stderr(std::fs::File::create(work.join("stderr.txt")).unwrap())
        .spawn();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(
                status.code(),
                Some(0),
                "{}",
                std::fs::read_to_string(work.join("stderr.txt")).unwrap_or_default()
            );
            return false;
        }
        if kill_when(started.elapsed()) {
            child.start_kill().unwrap();
            let status = child.wait().await.unwrap();
            return status.signal() == Some(9);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run hangs"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A fan-out promotion (two registries and an `oci:` tree) killed with
/// SIGKILL at several points leaves nothing behind: never a file in
/// TMPDIR (the spool's have no name), and in the tree only `.tmp-*` files
/// of the writes it killed, which the next run sweeps away before it
/// completes; then skopeo reads every image everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_fan_out_leaves_nothing_behind_once_the_next_run_completes() {
    let (Some(src), Some(dst1), Some(dst2)) = (
        TestRegistry::plain().await,
        TestRegistry::plain().await,
        TestRegistry::plain().await,
    ) else {
        return;
    };
    let images = fan_out_images();
    let client = src.remote(CredentialStore::anonymous());
    for (repo, image) in &images {
        push_tagged(&client, &format!("stage/{repo}"), image, &["1.0"]).await;
    }
    // Every source blob read waits a little before its bytes come: the
    // tree's temp files are open (created, awaiting bytes) meanwhile.
    let src_proxy = Proxy::start(&src.host()).await;
    src_proxy.add(
        Rule::new("GET", "/blobs/")
            .always()
            .action(Action::Delay(Duration::from_millis(150))),
    );
    let work = tempfile::tempdir().unwrap();
    let tmpdir = tempfile::tempdir().unwrap();
    let tree = work.path().join("layouts");
    let entries: Vec<(&str, &Digest, &[&str])> = images
        .iter()
        .map(|(repo, image)| (*repo, image.digest(), &["1.0"][..]))
        .collect();
    std::fs::write(
        work.path().join("m.yaml"),
        format!(
            "registries:\n- name: {}/stage\n  src: true\n- name: {}/prod\n- name: {}/prod\n\
             - name: oci:layouts\nimages:\n{}",
            src_proxy.host(),
            dst1.host(),
            dst2.host(),
            images_yaml(&entries)
        ),
    )
    .unwrap();

    // In the middle of a write into the tree.
    let killed = fan_out_run(work.path(), tmpdir.path(), |_| {
        !temp_files(&tree).is_empty()
    })
    .await;
    assert!(killed, "the run ended before any write into the tree");
    assert!(
        !temp_files(&tree).is_empty(),
        "a SIGKILL leaves the temp file it was writing"
    );
    assert_eq!(
        entries_of(tmpdir.path()),
        Vec::<PathBuf>::new(),
        "TMPDIR after the kill"
    );
    // Then at moments further and further into the run.
    for after_ms in [100, 250, 400, 550] {
        let after = Duration::from_millis(after_ms);
        // Killed, or done by then: TMPDIR must be empty either way.
        fan_out_run(work.path(), tmpdir.path(), |elapsed| elapsed >= after).await;
        assert_eq!(
            entries_of(tmpdir.path()),
            Vec::<PathBuf>::new(),
            "TMPDIR after a kill at {after:?}"
        );
    }
    assert!(!fan_out_run(work.path(), tmpdir.path(), |_| false).await);
    assert_eq!(
        entries_of(tmpdir.path()),
        Vec::<PathBuf>::new(),
        "TMPDIR after the last run"
    );
    assert_eq!(
        temp_files(&tree),
        Vec::<PathBuf>::new(),
        "the tree after the last run"
    );
    for (repo, image) in &images {
        let targets = [
            format!("oci:{}:1.0", repo_dir(&tree, repo).display()),
            format!("docker://{}/prod/{repo}:1.0", dst1.host()),
            format!("docker://{}/prod/{repo}:1.0", dst2.host()),
        ];
        for target in targets {
            let Some(raw) = skopeo::inspect_raw_async(&target).await else {
                return;
            };
            assert_eq!(&Digest::sha256_of(&raw), image.digest(), "{target}");
        }
    }
}
