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

/// The oldest Kubernetes the files are for (deploy/kubernetes/README.md):
/// the Indexed Job's `backoffLimitPerIndex` is on by default from 1.29.
const MINIMUM_KUBERNETES: &str = "1.29.0";

fn validate_at(validator: &[String], version: &str, files: &[PathBuf]) -> std::process::Output {
    std::process::Command::new(&validator[0])
        .args(&validator[1..])
        .args(["--strict", "--quiet", "-k", version])
        .args(files)
        .output()
        .unwrap()
}

fn validate(validator: &[String], files: &[PathBuf]) -> std::process::Output {
    validate_at(validator, "1.31.0", files)
}

#[test]
fn the_kubernetes_files_validate_against_the_api_schema() {
    let Some(validator) = validator() else {
        return;
    };
    let files = yaml_files("deploy/kubernetes");
    assert!(files.len() >= 5, "{files:?}");
    for version in [MINIMUM_KUBERNETES, "1.31.0"] {
        let out = validate_at(&validator, version, &files);
        assert!(
            out.status.success(),
            "Kubernetes {version}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Below the stated minimum the Indexed Job does not validate: the
    // minimum the README states is the real one.
    let job = files
        .iter()
        .filter(|f| f.ends_with("indexed-job.yaml"))
        .cloned()
        .collect::<Vec<_>>();
    assert!(!validate_at(&validator, "1.27.0", &job).status.success());
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

/// The named field of a mapping node.
fn field<'n, 'a>(node: &'n Node<'a>, name: &str) -> Option<&'n Node<'a>> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_scalar().is_some_and(|s| s.text == name))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn text_at(node: &Node<'_>, path: &[&str]) -> Option<String> {
    let mut at = node;
    for name in path {
        at = field(at, name)?;
    }
    at.as_scalar().map(|s| s.text.to_string())
}

/// Every pod spec (a map with `containers`) below `node`.
fn pod_specs<'n, 'a>(node: &'n Node<'a>, out: &mut Vec<&'n Node<'a>>) {
    match &node.value {
        Value::Map(entries) => {
            if field(node, "containers").is_some() {
                out.push(node);
            }
            for (_, v) in entries {
                pod_specs(v, out);
            }
        }
        Value::Seq(items) => items.iter().for_each(|i| pod_specs(i, out)),
        Value::Scalar(_) => {}
    }
}

/// Usable as they are: every object carries the recommended
/// `app.kubernetes.io/*` labels, every pod runs as the `promoter`
/// ServiceAccount without its API token, as a non-root user on a
/// read-only root, with the registry options mounted; the watch has a
/// readiness and a liveness probe.
#[test]
fn the_kubernetes_objects_are_labelled_identified_and_probed() {
    let mut kinds = Vec::new();
    let mut probes = Vec::new();
    for file in yaml_files("deploy/kubernetes") {
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed = yaml::parse_stream(&text);
        for doc in &parsed.documents {
            let kind = text_at(doc, &["kind"]).unwrap();
            for label in ["name", "instance", "version", "component"] {
                let key = format!("app.kubernetes.io/{label}");
                assert!(
                    text_at(doc, &["metadata", "labels", &key]).is_some(),
                    "{}: {kind} has no {key} label",
                    file.display()
                );
            }
            let mut pods = Vec::new();
            pod_specs(doc, &mut pods);
            for pod in pods {
                assert_eq!(
                    text_at(pod, &["serviceAccountName"]).as_deref(),
                    Some("promoter"),
                    "{}",
                    file.display()
                );
                assert_eq!(
                    text_at(pod, &["automountServiceAccountToken"]).as_deref(),
                    Some("false")
                );
                assert_eq!(
                    text_at(pod, &["securityContext", "runAsNonRoot"]).as_deref(),
                    Some("true")
                );
                let Some(Value::Seq(containers)) = field(pod, "containers").map(|c| &c.value)
                else {
                    panic!("{}: no containers", file.display());
                };
                for c in containers {
                    assert_eq!(
                        text_at(c, &["securityContext", "readOnlyRootFilesystem"]).as_deref(),
                        Some("true")
                    );
                    let args: Vec<String> = match field(c, "args").map(|a| &a.value) {
                        Some(Value::Seq(items)) => items
                            .iter()
                            .filter_map(|i| i.as_scalar().map(|s| s.text.to_string()))
                            .collect(),
                        _ => Vec::new(),
                    };
                    assert!(
                        args.iter().any(|a| a == "--registry-config"),
                        "{}: {args:?}",
                        file.display()
                    );
                    for probe in ["readinessProbe", "livenessProbe"] {
                        if field(c, probe).is_some() {
                            probes.push((kind.clone(), probe));
                        }
                    }
                }
            }
            kinds.push(kind);
        }
    }
    for kind in [
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "CronJob",
        "Job",
        "Deployment",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind}: {kinds:?}");
    }
    for probe in ["readinessProbe", "livenessProbe"] {
        assert!(
            probes.contains(&("Deployment".to_string(), probe)),
            "{probes:?}"
        );
    }
}

/// A container build never sends `target/` (gigabytes) as its context.
#[test]
fn the_container_build_context_leaves_target_out() {
    let ignore =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore"))
            .expect(".dockerignore");
    assert!(
        ignore
            .lines()
            .any(|l| l.trim() == "target" || l.trim() == "target/"),
        "{ignore}"
    );
}
