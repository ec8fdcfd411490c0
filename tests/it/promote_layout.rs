//! End to end, through the binary, on `oci:` layout trees (no server): plan,
//! promote, re-run, tag add, refused tag move, lost image, tagless promotion,
//! plan files and drift. End states are checked with skopeo where it can read
//! them (tags), and on disk.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use promoter::reference::Digest;

use crate::support::cli::{Out, Workdir};
use crate::support::images::{blob_path, write_oci_layout, Flavor};
use crate::support::skopeo;
use crate::support::world::{manifest_yaml, Scenario};

/// `oci:src` holding the scenario's images (which a `Layouts` derefs to),
/// in a working directory.
struct Layouts {
    work: Workdir,
    scenario: Scenario,
}

impl Deref for Layouts {
    type Target = Scenario;
    fn deref(&self) -> &Scenario {
        &self.scenario
    }
}

impl Layouts {
    fn new() -> Layouts {
        let work = Workdir::new();
        let scenario = Scenario::new(1, Flavor::Oci, [512, 700, 300, 200]);
        let s = &scenario;
        let src = work.path().join("src");
        write_oci_layout(&src, "hello", &[(&s.index, Some("1.0"))]).unwrap();
        write_oci_layout(
            &src,
            "tools/echo",
            &[
                (&s.image, Some("v1")),
                (&s.tagless, None),
                (&s.other, Some("other")),
            ],
        )
        .unwrap();
        Layouts { work, scenario }
    }

    fn path(&self) -> &Path {
        self.work.path()
    }

    fn dst(&self) -> PathBuf {
        self.path().join("dst")
    }

    /// A plain manifest promoting `images` (YAML text) from src to dst.
    fn manifest(&self, name: &str, images: &str) -> String {
        self.work
            .write(name, manifest_yaml("oci:src", "oci:dst", images));
        name.to_string()
    }

    fn standard(&self) -> String {
        self.manifest("promote.yaml", &self.images_yaml())
    }

    fn run(&self, args: &[&str]) -> Out {
        self.work.run(args)
    }
}

fn tree_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// skopeo (an independent client) reads the tag; its raw manifest has the digest we promised.
fn skopeo_digest(layout_root: &Path, repo: &str, tag: &str) -> Option<Digest> {
    let target = format!("oci:{}:{tag}", layout_root.join(repo).display());
    skopeo::inspect_raw(&target).map(|raw| Digest::sha256_of(&raw))
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let w = Layouts::new();
    let m = w.standard();
    let out = w.run(&["run", "--manifest", &m, "--wide"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Every tag line comes after the copy of its digest, when there is one.
    let lines: Vec<&str> = out.stdout.lines().collect();
    for (i, line) in lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("tag "))
    {
        let digest = line.split_whitespace().nth(4).unwrap();
        if let Some(copy) = lines
            .iter()
            .position(|l| l.starts_with("copy ") && l.contains(digest))
        {
            assert!(copy < i, "tag before its copy:\n{}", out.stdout);
        }
    }
    assert!(
        lines[0].starts_with("lost     oci:src/gone -> oci:dst/gone:1.0"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("plan: 3 copy, 3 tag, 1 lost, 0 refused"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("dry run"), "{}", out.stderr);
    assert!(!w.dst().exists(), "a dry run wrote to the destination");
}

#[test]
fn confirm_promotes_digests_exactly_and_a_second_run_plans_nothing() {
    let w = Layouts::new();
    let m = w.standard();
    let out = w.run(&["run", "--manifest", &m, "--confirm"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("0 failed"), "{}", out.stdout);

    // Tags point at exactly the promoted digests, read by skopeo.
    if let Some(d) = skopeo_digest(&w.dst(), "hello", "1.0") {
        assert_eq!(&d, w.index.digest());
        assert_eq!(
            &skopeo_digest(&w.dst(), "tools/echo", "v1").unwrap(),
            w.image.digest()
        );
        assert_eq!(
            &skopeo_digest(&w.dst(), "tools/echo", "latest").unwrap(),
            w.image.digest()
        );
    }
    // Every manifest and blob, index children and the tagless image included, is there byte for byte.
    for (repo, image) in [
        ("hello", &w.index),
        ("tools/echo", &w.image),
        ("tools/echo", &w.tagless),
    ] {
        for manifest in image.all_manifests() {
            let path = blob_path(&w.dst(), repo, &manifest.digest);
            assert_eq!(
                std::fs::read(&path).unwrap(),
                manifest.bytes.to_vec(),
                "{}",
                path.display()
            );
        }
        for blob in image.all_blobs() {
            let path = blob_path(&w.dst(), repo, &blob.digest);
            assert_eq!(
                std::fs::read(&path).unwrap(),
                blob.bytes.to_vec(),
                "{}",
                path.display()
            );
        }
    }
    // The unwanted image was not copied.
    assert!(!blob_path(&w.dst(), "tools/echo", w.other.digest()).exists());

    let again = w.run(&["run", "--manifest", &m]);
    assert_eq!(again.code, 0);
    assert!(
        again.stdout.contains("plan: 0 copy, 0 tag, 1 lost"),
        "{}",
        again.stdout
    );
}

#[test]
fn a_tag_move_is_refused_with_exit_3_and_nothing_is_written() {
    let w = Layouts::new();
    let m = w.standard();
    assert_eq!(w.run(&["run", "--manifest", &m, "--confirm"]).code, 0);
    let before = tree_bytes(&w.dst());

    let moved = w.manifest(
        "move.yaml",
        &format!(
            "- name: tools/echo\n  dmap:\n    \"{}\": [\"v1\"]\n",
            w.other.digest()
        ),
    );
    for extra in [&[][..], &["--confirm"][..]] {
        let mut args = vec!["run", "--manifest", &moved, "--wide"];
        args.extend_from_slice(extra);
        let out = w.run(&args);
        assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with("refused"))
            .expect("a refused line");
        assert!(
            line.contains(w.image.digest().as_str()),
            "names the current digest: {line}"
        );
        assert!(
            line.contains(w.other.digest().as_str()),
            "names the wanted digest: {line}"
        );
        assert!(
            line.contains("move.yaml:"),
            "names the manifest line: {line}"
        );
    }
    assert_eq!(
        tree_bytes(&w.dst()),
        before,
        "a refused move changed the destination"
    );
}

#[test]
fn a_tag_add_writes_only_the_tag() {
    let w = Layouts::new();
    let m = w.standard();
    assert_eq!(w.run(&["run", "--manifest", &m, "--confirm"]).code, 0);
    let add = w.manifest(
        "add.yaml",
        &format!(
            "- name: tools/echo\n  dmap:\n    \"{}\": [\"v1\", \"stable\"]\n",
            w.image.digest()
        ),
    );
    let out = w.run(&["run", "--manifest", &add, "--confirm", "--output", "json"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["counts"]["tag"], 1);
    assert_eq!(report["counts"]["copy"], 0);
    assert_eq!(report["execution"]["stats"]["blobs_uploaded"], 0);
    assert_eq!(report["execution"]["stats"]["tags_written"], 1);
    if let Some(d) = skopeo_digest(&w.dst(), "tools/echo", "stable") {
        assert_eq!(&d, w.image.digest());
    }
}

#[test]
fn apply_runs_a_reviewed_plan_and_refuses_when_the_destination_drifted() {
    let w = Layouts::new();
    let m = w.standard();
    let out = w.run(&["run", "--manifest", &m, "--plan-out", "plan.json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!w.dst().exists());

    // Someone else tags v1 elsewhere in the meantime.
    let sneaky = w.manifest(
        "sneaky.yaml",
        &format!(
            "- name: tools/echo\n  dmap:\n    \"{}\": [\"v1\"]\n",
            w.other.digest()
        ),
    );
    assert_eq!(w.run(&["run", "--manifest", &sneaky, "--confirm"]).code, 0);
    let before = tree_bytes(&w.dst());
    let out = w.run(&["apply", "plan.json", "--manifest", &m]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("+refused"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
    assert_eq!(tree_bytes(&w.dst()), before);

    // A fresh plan on a fresh destination applies cleanly.
    let w2 = Layouts::new();
    let m2 = w2.standard();
    assert_eq!(
        w2.run(&["run", "--manifest", &m2, "--plan-out", "plan.json"])
            .code,
        0
    );
    let out = w2.run(&["apply", "plan.json", "--manifest", &m2]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(w2
        .run(&["run", "--manifest", &m2])
        .stdout
        .contains("plan: 0 copy, 0 tag"));
}

/// Point every `repository` field equal to `from` at `to`, as someone who
/// can edit the plan file between review and apply would.
fn retarget(value: &mut serde_json::Value, from: &str, to: &str) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "repository" && v.as_str() == Some(from) {
                    *v = serde_json::Value::String(to.to_string());
                } else {
                    retarget(v, from, to);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| retarget(v, from, to)),
        _ => {}
    }
}

#[test]
fn apply_writes_only_what_the_manifests_promote_whatever_the_plan_file_says() {
    let w = Layouts::new();
    let m = w.standard();
    assert_eq!(
        w.run(&["run", "--manifest", &m, "--plan-out", "plan.json"])
            .code,
        0
    );
    let mut plan: serde_json::Value = serde_json::from_str(&w.work.read("plan.json")).unwrap();
    retarget(&mut plan, "tools/echo", "tools/evil");
    w.work
        .write("edited.json", serde_json::to_string_pretty(&plan).unwrap());

    let out = w.run(&["apply", "edited.json", "--manifest", &m]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("was not made from these manifests")
            && out.stderr.contains("nothing was written"),
        "{}",
        out.stderr
    );
    assert!(!w.dst().exists(), "apply wrote something: {}", out.stdout);

    // Another manifest than the plan's: refused the same way.
    let other = w.manifest(
        "other.yaml",
        &format!(
            "- name: tools/echo\n  dmap:\n    \"{}\": [\"v9\"]\n",
            w.other.digest()
        ),
    );
    let out = w.run(&["apply", "plan.json", "--manifest", &other]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(!w.dst().exists());

    // Without the manifests there is nothing to check the plan against.
    let out = w.run(&["apply", "plan.json"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn a_plan_file_that_is_not_a_regular_file_is_refused_without_blocking() {
    let w = Layouts::new();
    let m = w.standard();
    let fifo = w.path().join("plan.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let out = w.run(&["apply", "plan.fifo", "--manifest", &m]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
}

/// Every JSON report (dry run with every kind of item, and a confirmed run)
/// validates against the documented schema.
#[test]
fn json_reports_validate_against_the_documented_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/report.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema itself is valid");
    let check = |out: &Out| {
        let report: serde_json::Value = serde_json::from_str(&out.stdout).expect(&out.stdout);
        let errors: Vec<String> = validator
            .iter_errors(&report)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{}", out.stdout);
        report
    };

    let w = Layouts::new();
    let m = w.standard();
    let dry = check(&w.run(&["run", "--manifest", &m, "--output", "json"]));
    assert_eq!(dry["dry_run"], true);
    let done = check(&w.run(&["run", "--manifest", &m, "--output", "json", "--confirm"]));
    assert_eq!(done["execution"]["results"].as_array().unwrap().len(), 6);

    // Refused and blocked items too: a tag move, and a destination that cannot be read.
    let broken = w.path().join("unreadable/tools/echo");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(broken.join("index.json"), b"{ this is not json").unwrap();
    let text = format!(
        "registries:\n- name: oci:src\n  src: true\n- name: oci:dst\n- name: oci:unreadable\nimages:\n\
         - name: tools/echo\n  dmap:\n    \"{}\": [\"v1\"]\n",
        w.other.digest()
    );
    std::fs::write(w.path().join("mixed.yaml"), text).unwrap();
    let out = w.run(&["run", "--manifest", "mixed.yaml", "--output", "json"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let mixed = check(&out);
    let kinds: Vec<&str> = mixed["plan"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"refused") && kinds.contains(&"blocked"),
        "{kinds:?}"
    );
}
