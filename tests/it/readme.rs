//! README's examples run as written. A fenced block after
//! `<!-- runnable: SETUP -->` is a list of command lines (`$ ` lines of a
//! console block, or every line of a sh block but comments), each run with
//! `sh -c` in a fresh working directory, this binary as `promoter` on PATH,
//! and must succeed; a block after `<!-- file: NAME -->` is written there
//! first; a block after `<!-- output-of: COMMAND -->` must be exactly what
//! COMMAND prints. The setups: `quickstart` (the repository's `testdata/`
//! and `manifests/`), `mirror` (loopback registries standing in for
//! docker.io, quay.io and registry.example, through the `endpoint` option
//! of the default registry options file).
//!
//! Blocks not marked are templates (`DIR`, `REV`, a production registry):
//! the commands they show are covered by the rest of the suite.

use std::path::Path;

use crate::support::cli::{Out, Promoter, Workdir};
use crate::support::images::{push, Platform, TestImage};
use crate::support::registry::{Config, TestRegistry};

/// One marked block: its marker's kind and argument, and its text.
struct Block {
    kind: String,
    argument: String,
    text: String,
}

fn blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = readme.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(marker) = line
            .trim()
            .strip_prefix("<!-- ")
            .and_then(|m| m.strip_suffix(" -->"))
        else {
            continue;
        };
        let Some((kind, argument)) = marker.split_once(": ") else {
            continue;
        };
        if !["runnable", "file", "output-of"].contains(&kind) {
            continue;
        }
        assert!(
            lines.next().is_some_and(|l| l.starts_with("```")),
            "README: the block after <!-- {marker} --> does not follow it"
        );
        let mut text = String::new();
        for line in lines.by_ref() {
            if line.starts_with("```") {
                break;
            }
            text.push_str(line);
            text.push('\n');
        }
        out.push(Block {
            kind: kind.to_string(),
            argument: argument.to_string(),
            text,
        });
    }
    out
}

/// The command lines of a runnable block.
fn command_lines(text: &str) -> Vec<String> {
    let console = text.lines().any(|l| l.starts_with("$ "));
    text.lines()
        .filter_map(|l| match console {
            true => l.strip_prefix("$ "),
            false => Some(l),
        })
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// A working directory that sees the repository's examples.
fn quickstart() -> Workdir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = Workdir::new();
    for dir in ["testdata", "manifests"] {
        std::os::unix::fs::symlink(repo.join(dir), work.path().join(dir)).unwrap();
    }
    work
}

fn run_in(work: &Workdir, line: &str, xdg: Option<&Path>) -> Out {
    let mut shell = Promoter::shell(work.path(), line);
    if let Some(xdg) = xdg {
        shell = shell.env("XDG_CONFIG_HOME", xdg);
    }
    shell.run()
}

#[test]
fn the_quickstart_examples_run_as_written_and_print_what_readme_shows() {
    let all = blocks(&readme());
    let runnable: Vec<&Block> = all
        .iter()
        .filter(|b| b.kind == "runnable" && b.argument == "quickstart")
        .collect();
    assert!(runnable.len() >= 2, "README marks its quickstart examples");
    for block in runnable {
        let work = quickstart();
        for line in command_lines(&block.text) {
            let out = run_in(&work, &line, None);
            assert_eq!(out.code, 0, "README: `{line}`: {}", out.all());
        }
    }
    let outputs: Vec<&Block> = all.iter().filter(|b| b.kind == "output-of").collect();
    assert!(!outputs.is_empty());
    for block in outputs {
        let work = quickstart();
        let out = run_in(&work, &block.argument, None);
        assert_eq!(out.code, 0, "{}", out.all());
        assert_eq!(
            out.stdout, block.text,
            "README shows what `{}` prints",
            block.argument
        );
    }
}

/// The upstream images the mirroring walkthrough names, in the loopback
/// registry that stands in for docker.io and quay.io.
async fn upstream(registry: &TestRegistry) {
    let client = registry.remote(promoter::registry::remote::CredentialStore::anonymous());
    let tags: [(&str, &[&str]); 2] = [
        (
            "library/nginx",
            &["1.24.0", "1.25.0", "1.25.3", "1.26.0", "2.0.0-rc.1"],
        ),
        ("library/redis", &["7.2.4", "7.2.5", "7.4.0"]),
    ];
    let mut seed = 6100;
    for (repo, tags) in tags {
        for tag in tags {
            seed += 1;
            push(&client, repo, &TestImage::single_layer(seed, 64), Some(tag))
                .await
                .unwrap();
        }
    }
    let platforms = [Platform::linux("amd64"), Platform::linux("arm64")];
    for tag in ["v2.49.0", "v2.50.1", "v2.51.0"] {
        seed += 1;
        let index =
            TestImage::multi_arch(seed, crate::support::images::Flavor::Oci, &platforms, 64);
        push(&client, "prometheus/prometheus", &index, Some(tag))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirroring_walkthrough_runs_as_written() {
    let (Some(up), Some(mirror)) = (
        TestRegistry::start(Config::default()).await,
        TestRegistry::start(Config::default()).await,
    ) else {
        return;
    };
    upstream(&up).await;
    let work = Workdir::new();
    let all = blocks(&readme());
    for file in all.iter().filter(|b| b.kind == "file") {
        work.write(&file.argument, &file.text);
    }
    let xdg = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(xdg.path().join("promoter")).unwrap();
    std::fs::write(
        xdg.path().join("promoter/registries.yaml"),
        format!(
            "registries:\n  docker.io: {{endpoint: \"{up}\"}}\n  quay.io: {{endpoint: \"{up}\"}}\n  registry.example: {{endpoint: \"{mirror}\"}}\n",
            up = up.host(),
            mirror = mirror.host()
        ),
    )
    .unwrap();
    let git = std::process::Command::new("git")
        .args(["init", "-q", "."])
        .current_dir(work.path())
        .status()
        .unwrap();
    assert!(git.success());
    let walkthrough = all
        .iter()
        .find(|b| b.kind == "runnable" && b.argument == "mirror")
        .expect("README marks its mirroring walkthrough");
    let mut said = String::new();
    for line in command_lines(&walkthrough.text) {
        let out = tokio::task::block_in_place(|| run_in(&work, &line, Some(xdg.path())));
        assert_eq!(out.code, 0, "README: `{line}`: {}", out.all());
        said.push_str(&out.stderr);
    }
    assert!(
        said.contains(
            "pinned 3 image(s), 6 digest(s) into the thin tree mirror.lock/ (2 manifests)"
        ),
        "what README quotes pin as saying: {said}"
    );
    // The same intent to one file is refused, naming the tree to write.
    let file = tokio::task::block_in_place(|| {
        run_in(
            &work,
            "promoter pin mirror.yaml --out mirror.lock.yaml",
            Some(xdg.path()),
        )
    });
    assert_eq!(file.code, 2, "{}", file.all());
    assert!(
        file.stderr.contains("--out mirror.lock/"),
        "{}",
        file.stderr
    );
    assert!(!work.path().join("mirror.lock.yaml").exists());
}

/// The flags, variables and commands a switching-table row names in its
/// first column: `--dry-run[=bool]` is `--dry-run`, `-run REGEX` is `-run`,
/// and a sinker command is its word.
fn switching_rows(readme: &str, tool: &str) -> Vec<(String, Vec<String>)> {
    let marker = format!("<!-- switching: {tool} -->");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README has no {marker}"));
    let rows = readme[start..]
        .lines()
        .skip(3)
        .take_while(|l| l.starts_with('|'));
    rows.map(|row| {
        let first = row.split('|').nth(1).unwrap_or_default();
        let tokens = first
            .split('`')
            .skip(1)
            .step_by(2)
            .map(|t| {
                let t = t.split(['[', ' ']).next().unwrap_or_default();
                t.split_once("=FILE").map_or(t, |(f, _)| f).to_string()
            })
            .filter(|t| {
                t.starts_with('-')
                    || t.starts_with("SYNCER_")
                    || t.starts_with("SINKER_")
                    || t.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            })
            .collect();
        (row.to_string(), tokens)
    })
    .collect()
}

/// Every flag, variable and command a switching table names is given by a
/// test of that tool's drop-in command (tests/it/seed_tools.rs), and every
/// key of its file is named by its decoder's tests, so no row is a promise
/// nothing checks.
#[test]
fn every_switching_table_row_is_exercised_by_a_test() {
    let readme = readme();
    let tests = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/seed_tools.rs"
    ))
    .unwrap();
    let mut untested = Vec::new();
    for (tool, decoder) in [
        ("image-syncer", "image_syncer.rs"),
        ("sinker", "sinker/mod.rs"),
        ("dregsy", "dregsy.rs"),
    ] {
        // A key of the tool's file: named by its decoder's unit tests.
        let decoder = std::fs::read_to_string(format!(
            "{}/src/manifest/intent/seeds/{decoder}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let decoder_tests = &decoder[decoder.find("#[cfg(test)]").unwrap_or(decoder.len())..];
        let rows = switching_rows(&readme, tool);
        assert!(rows.len() >= 5, "{tool}: {} rows", rows.len());
        for (row, tokens) in rows {
            for token in tokens {
                let key = token.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    && decoder_tests.contains(&format!("`{token}`"));
                if !key && !tests.contains(&format!("\"{token}")) {
                    untested.push(format!("{tool}: {token} (row {row})"));
                }
            }
        }
    }
    assert!(
        untested.is_empty(),
        "no test gives:\n{}",
        untested.join("\n")
    );
}
