//! The deployment files (`deploy/kubernetes/`, `examples/ci/`) are what a
//! user applies as they are: each validates against the Kubernetes API
//! schema (`kubernetes-validate`, installed by the test script), and every
//! promoter command line in them parses with this binary.

use std::path::{Path, PathBuf};

use promoter::manifest::yaml::{self, Node, Value};

use crate::support::cli::Promoter;

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// How to run `kubernetes-validate` (its script, or `python3 -m` when pip
/// put the script off PATH), or `None` outside CI when it is not installed
/// (under `CI=true` its absence fails the test).
fn validator() -> Option<Vec<String>> {
    let script = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("kubernetes-validate"))
            .find(|p| p.is_file())
    });
    if let Some(script) = script {
        return Some(vec![script.display().to_string()]);
    }
    let module = std::process::Command::new("python3")
        .args(["-m", "kubernetes_validate", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if module {
        return Some(vec![
            "python3".into(),
            "-m".into(),
            "kubernetes_validate".into(),
        ]);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "kubernetes-validate is missing: scripts/install-test-deps.sh installs it"
    );
    eprintln!("skipped: kubernetes-validate is not installed (scripts/install-test-deps.sh)");
    None
}

fn validate(validator: &[String], files: &[PathBuf]) -> std::process::Output {
    std::process::Command::new(&validator[0])
        .args(&validator[1..])
        .args(["--strict", "--quiet", "-k", "1.31.0"])
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn the_kubernetes_files_validate_against_the_api_schema() {
    let Some(validator) = validator() else {
        return;
    };
    let files = yaml_files("deploy/kubernetes");
    assert!(files.len() >= 5, "{files:?}");
    let out = validate(&validator, &files);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The check can fail: a field the API does not know is refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\nspec:\n  completionz: 4\n  template:\n    spec:\n      containers: []\n",
    )
    .unwrap();
    assert!(!validate(&validator, &[bad]).status.success());
}

/// Every container's command line that runs promoter, with Kubernetes'
/// `$(VAR)` references replaced by sample values.
fn promoter_command_lines(node: &Node<'_>, out: &mut Vec<Vec<String>>) {
    match &node.value {
        Value::Map(entries) => {
            let field = |name: &str| {
                entries
                    .iter()
                    .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == name))
                    .map(|(_, v)| v)
            };
            let list = |name: &str| -> Vec<String> {
                match field(name).map(|n| &n.value) {
                    Some(Value::Seq(items)) => items
                        .iter()
                        .filter_map(|i| i.as_scalar().map(|s| s.text.to_string()))
                        .collect(),
                    _ => Vec::new(),
                }
            };
            let image = field("image")
                .and_then(|n| n.as_scalar())
                .map(|s| s.text.to_string());
            if image.is_some_and(|i| i.contains("promoter")) {
                let mut line = list("command");
                if line.first().is_some_and(|c| c == "promoter") {
                    line.remove(0);
                }
                line.extend(list("args"));
                let line = line
                    .into_iter()
                    .map(|a| {
                        a.replace("$(SHARD_INDEX)", "0")
                            .replace("$(PULL_BASE_SHA)", "HEAD")
                    })
                    .collect();
                out.push(line);
            }
            for (_, v) in entries {
                promoter_command_lines(v, out);
            }
        }
        Value::Seq(items) => {
            for item in items {
                promoter_command_lines(item, out);
            }
        }
        Value::Scalar(_) => {}
    }
}

#[test]
fn every_promoter_command_line_in_them_parses() {
    let mut files = yaml_files("deploy/kubernetes");
    files.extend(yaml_files("examples/ci"));
    let mut lines = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let parsed = yaml::parse_stream(&text);
        assert!(
            parsed.errors.is_empty(),
            "{}: {:?}",
            file.display(),
            parsed.errors
        );
        for doc in &parsed.documents {
            promoter_command_lines(doc, &mut lines);
        }
    }
    assert!(lines.len() >= 5, "{lines:?}");
    let work = tempfile::tempdir().unwrap();
    for line in &lines {
        // `--help` after the arguments: clap checks every one before it.
        let out = Promoter::new(work.path()).args(line).args(["--help"]).run();
        assert_eq!(out.code, 0, "promoter {}: {}", line.join(" "), out.all());
    }
}
