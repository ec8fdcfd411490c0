//! Golden tests of manifest loading through the real binary.
//!
//! Every folder under `testdata/manifests/` is one case: the input (a
//! `manifest.yaml`, or a thin tree), `expected.stderr` and `expected.exit`.
//! The binary runs as `promoter run --parse-only <args>` with the case folder
//! as working directory, so paths in the output are stable. `<args>` is the
//! content of the case's `args` file, else `--manifest manifest.yaml` when
//! that file exists, else `--thin-manifest-dir .`.
//!
//! Inputs git cannot hold well (symlinks, a 100 MB file, 10,000 tags) are
//! made at test time: such a case is copied to a temporary directory and
//! completed by its generator below before the run.
//!
//! `UPDATE_GOLDEN=1 cargo test --test it manifest_golden` rewrites the
//! expected files; review the diff before committing it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::cli::Promoter;

/// A case that takes longer than this has a bug (a hang, or no fast fail).
const TIMEOUT: Duration = Duration::from_secs(20);

/// The password used by the credential fixtures; it must never be printed.
const SECRET: &str = "hunter2";

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/manifests")
}

type Generator = fn(&Path);

/// Cases completed at test time, by folder name.
fn generator(case: &str) -> Option<Generator> {
    Some(match case {
        "hostile-100mb-file" => gen_100mb_file,
        "hostile-10000-tags" => gen_10000_tags,
        "symlink-escapes-tree" => gen_symlink_escape,
        "symlink-loop" => gen_symlink_loop,
        "symlink-dangling" => gen_symlink_dangling,
        "symlink-dir-makes-nested-manifest" => gen_symlink_dir_nested,
        "valid-symlinks-inside-tree" => gen_symlinks_inside,
        "tree-empty-manifests-dir" => gen_empty_manifests_dir,
        "hostile-fifo-as-images-file" => gen_fifo,
        _ => return None,
    })
}

#[test]
fn golden_cases() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut names: Vec<String> = fs::read_dir(cases_dir())
        .expect("testdata/manifests exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() >= 50,
        "expected the whole corpus, found {} cases",
        names.len()
    );

    let mut failures = Vec::new();
    let mut invalid = 0;
    for name in &names {
        let case = cases_dir().join(name);
        let scratch;
        let workdir = match generator(name) {
            Some(generate) => {
                scratch = tempfile::tempdir().expect("temp dir");
                copy_inputs(&case, scratch.path());
                generate(scratch.path());
                scratch.path().to_path_buf()
            }
            None => case.clone(),
        };
        let (stderr, stdout, code) = run(&workdir);
        if code == 1 {
            invalid += 1;
        }
        if let Err(problem) = check_invariants(&stderr, &stdout, code) {
            failures.push(format!("{name}: {problem}\n--- stderr ---\n{stderr}"));
            continue;
        }
        let expected_stderr = case.join("expected.stderr");
        let expected_exit = case.join("expected.exit");
        if update {
            fs::write(&expected_stderr, &stderr).expect("write expected.stderr");
            fs::write(&expected_exit, format!("{code}\n")).expect("write expected.exit");
            continue;
        }
        let want_stderr = fs::read_to_string(&expected_stderr).unwrap_or_default();
        let want_exit = fs::read_to_string(&expected_exit).unwrap_or_default();
        if want_stderr != stderr || want_exit.trim() != code.to_string() {
            failures.push(format!(
                "{name}: output differs (UPDATE_GOLDEN=1 to accept)\n--- expected (exit {}) ---\n{want_stderr}--- actual (exit {code}) ---\n{stderr}",
                want_exit.trim()
            ));
        }
    }
    assert!(
        invalid >= 40,
        "issue 7 wants at least 40 invalid cases, found {invalid}"
    );
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// What must hold for every input, whatever its golden file says.
fn check_invariants(stderr: &str, stdout: &str, code: i32) -> Result<(), String> {
    if stderr.contains("panicked") || code == 101 {
        return Err("the binary panicked".into());
    }
    if stderr.contains(SECRET) || stdout.contains(SECRET) {
        return Err("a credential reached the output".into());
    }
    if !stdout.is_empty() {
        return Err(format!("--parse-only wrote to stdout: {stdout:?}"));
    }
    match code {
        0 => Ok(()),
        1 => {
            // Every error line names a file (and a line, where one exists).
            let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(": error: ")).collect();
            if errors.is_empty() {
                return Err("exit 1 without a located error".into());
            }
            Ok(())
        }
        other => Err(format!("unexpected exit code {other}")),
    }
}

fn run(dir: &Path) -> (String, String, i32) {
    let args = match fs::read_to_string(dir.join("args")) {
        Ok(text) => text.split_whitespace().map(str::to_string).collect(),
        Err(_) if dir.join("manifest.yaml").exists() => {
            vec!["--manifest".into(), "manifest.yaml".into()]
        }
        Err(_) => vec!["--thin-manifest-dir".into(), ".".into()],
    };
    let out = Promoter::new(dir)
        .args(["run", "--parse-only"])
        .args(&args)
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .timeout(TIMEOUT)
        .run();
    (out.stderr, out.stdout, out.code)
}

/// Copy a case's input (not its expected output) into `to`.
fn copy_inputs(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).expect("read case") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name == "expected.stderr" || name == "expected.exit" {
            continue;
        }
        let target = to.join(&name);
        let meta = fs::symlink_metadata(entry.path()).expect("metadata");
        if meta.is_dir() {
            fs::create_dir_all(&target).expect("mkdir");
            copy_inputs(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

const REGISTRIES: &str = "registries:
- name: gcr.io/foo-staging
  src: true
- name: us.gcr.io/some-prod
  service-account: sa@robot.com
";

const DIGEST: &str = "sha256:c3d310f4741b3642497da8826e0986db5e02afc9777a2b8e668c8e41034128c1";

fn gen_100mb_file(dir: &Path) {
    write(&dir.join("manifests/a/promoter-manifest.yaml"), REGISTRIES);
    let images = dir.join("images/a/images.yaml");
    write(&images, "");
    // Sparse: no disk used, and the size is refused before anything is read.
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&images)
        .expect("open");
    file.set_len(100 * 1024 * 1024).expect("set_len");
}

fn gen_10000_tags(dir: &Path) {
    write(&dir.join("manifests/a/promoter-manifest.yaml"), REGISTRIES);
    let mut text = format!("- name: foo\n  dmap:\n    \"{DIGEST}\":\n");
    for i in 0..10_000 {
        // Line 4 + i. One repeated tag (a warning) and one invalid tag (the
        // error) deep in the list prove positions and speed at this size.
        let tag = match i {
            7_000 => "v0.0.1".to_string(),
            9_998 => "-bad".to_string(),
            _ => format!("v0.{}.{}", i / 100, i % 100),
        };
        text.push_str(&format!("    - \"{tag}\"\n"));
    }
    write(&dir.join("images/a/images.yaml"), &text);
}

#[cfg(unix)]
fn symlink(target: impl AsRef<Path>, link: &Path) {
    fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
    std::os::unix::fs::symlink(target, link).expect("symlink");
}

fn gen_symlink_escape(dir: &Path) {
    // The tree is `tree/` (see the case's `args`), so `outside.yaml` is
    // outside it, as /etc/passwd would be for a tree checked out from a PR.
    let tree = dir.join("tree");
    write(&tree.join("manifests/a/promoter-manifest.yaml"), REGISTRIES);
    write(&tree.join("manifests/b/promoter-manifest.yaml"), REGISTRIES);
    write(&tree.join("images/b/images.yaml"), "");
    write(
        &dir.join("outside.yaml"),
        &format!("- name: leaked\n  dmap:\n    \"{DIGEST}\": [\"{SECRET}\"]\n"),
    );
    symlink("../../../outside.yaml", &tree.join("images/a/images.yaml"));
    symlink("/etc", &tree.join("images/b/etc"));
}

fn gen_symlink_loop(dir: &Path) {
    write(&dir.join("manifests/a/promoter-manifest.yaml"), REGISTRIES);
    write(&dir.join("images/a/images.yaml"), "");
    // A directory link back to an ancestor, and a link to itself.
    symlink("..", &dir.join("images/a/up"));
    symlink("self", &dir.join("manifests/self"));
}

fn gen_symlink_dangling(dir: &Path) {
    write(&dir.join("manifests/a/promoter-manifest.yaml"), REGISTRIES);
    symlink("does-not-exist.yaml", &dir.join("images/a/images.yaml"));
}

fn gen_symlink_dir_nested(dir: &Path) {
    for x in ["a", "b"] {
        write(
            &dir.join(format!("manifests/{x}/promoter-manifest.yaml")),
            REGISTRIES,
        );
        write(&dir.join(format!("images/{x}/images.yaml")), "");
    }
    // Inside the tree, but it makes manifests/a/b/promoter-manifest.yaml.
    symlink("../b", &dir.join("manifests/a/b"));
}

fn gen_symlinks_inside(dir: &Path) {
    write(&dir.join("shared/promoter-manifest.yaml"), REGISTRIES);
    write(
        &dir.join("images/a/images.yaml"),
        &format!("- name: foo\n  dmap:\n    \"{DIGEST}\": [\"1.0\"]\n"),
    );
    // Links that stay inside the tree are followed.
    symlink(
        "../../shared/promoter-manifest.yaml",
        &dir.join("manifests/a/promoter-manifest.yaml"),
    );
    symlink("a", &dir.join("images/b"));
    symlink(
        "../../shared/promoter-manifest.yaml",
        &dir.join("manifests/b/promoter-manifest.yaml"),
    );
}

fn gen_empty_manifests_dir(dir: &Path) {
    fs::create_dir_all(dir.join("manifests")).expect("mkdir");
    fs::create_dir_all(dir.join("images")).expect("mkdir");
}

fn gen_fifo(dir: &Path) {
    write(&dir.join("manifests/a/promoter-manifest.yaml"), REGISTRIES);
    fs::create_dir_all(dir.join("images/a")).expect("mkdir");
    // Opening a FIFO for reading blocks until a writer comes: a tree from a
    // PR must not be able to hang the presubmit.
    let status = Command::new("mkfifo")
        .arg(dir.join("images/a/images.yaml"))
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo failed");
}
