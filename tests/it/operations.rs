//! Running promoter as an operator does: from CI (no terminal) and a shell.
//! Log lines follow the habits of Rust CLIs (-v/-q, RUST_LOG, JSON, colour
//! choices), a run off a terminal says how far it is, and the binary
//! describes itself (completions, man page, version with its commit).

use std::path::Path;

use crate::support::cli::{Out, Promoter};

/// A scratch directory seeing the repository's bundled example (the
/// README's main command promotes it from an `oci:` tree to another).
fn example() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    for dir in ["testdata", "manifests"] {
        std::os::unix::fs::symlink(repo.join(dir), work.path().join(dir)).unwrap();
    }
    work
}

const PROMOTE: [&str; 4] = [
    "run",
    "--thin-manifest-dir",
    "manifests/quickstart",
    "--confirm",
];

fn promote(extra: &[&str], env: &[(&str, &str)]) -> Out {
    let work = example();
    let mut p = Promoter::new(work.path()).args(extra).args(PROMOTE);
    for (k, v) in env {
        p = p.env(k, v);
    }
    let out = p.run();
    assert_eq!(out.code, 0, "{}", out.all());
    out
}

#[test]
fn off_a_terminal_a_run_reports_its_progress_on_stderr() {
    let out = promote(&["--progress-interval", "1ms"], &[]);
    let end = out
        .stderr
        .lines()
        .find(|l| l.starts_with("progress (end): "))
        .unwrap_or_else(|| panic!("no final progress line:\n{}", out.stderr));
    assert!(
        end.contains("2/2 repositories planned, 6/6 edges done, 0 failed"),
        "{end}"
    );
    assert!(end.contains("KiB uploaded ("), "bytes and rate: {end}");
    // -q: errors only, no progress.
    let quiet = promote(&["-q"], &[]);
    assert_eq!(quiet.stderr, "", "{}", quiet.stderr);
}

#[test]
fn json_logs_are_one_object_per_line_progress_included() {
    let out = promote(&["--log-format", "json", "-v"], &[]);
    let events: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let done = events.iter().filter(|e| e["message"] == "done").count();
    assert_eq!(done, 6, "one line per edge at -v: {}", out.stderr);
    for e in &events {
        assert!(e["timestamp"].is_string() && e["level"].is_string(), "{e}");
    }
    let end = events
        .iter()
        .find(|e| e["message"] == "progress (end)")
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert_eq!(end["edges_done"], 6, "{end}");
}

#[test]
fn log_levels_come_from_flags_then_rust_log_and_bad_ones_are_refused() {
    // RUST_LOG is honoured when no flag says otherwise...
    let from_env = promote(&["-q"], &[("RUST_LOG", "promoter=info")]);
    assert_eq!(from_env.stderr, "", "-q wins over RUST_LOG");
    let env_only = promote(&[], &[("RUST_LOG", "promoter=info")]);
    assert!(env_only.stderr.contains(" done "), "{}", env_only.stderr);
    // ...and a flag wins over it.
    let flag = promote(&["--log-level", "warn"], &[("RUST_LOG", "promoter=info")]);
    assert!(!flag.stderr.contains(" done "), "{}", flag.stderr);
    let work = example();
    let bad = Promoter::new(work.path())
        .args(["--log-level", "loud"])
        .args(PROMOTE)
        .run();
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(bad.stderr.contains("possible values"), "{}", bad.stderr);
}

#[test]
fn colour_only_when_asked_or_on_a_terminal_and_never_with_no_color() {
    let plain = promote(&["-v"], &[]);
    assert!(
        !plain.stderr.contains('\x1b'),
        "off a terminal: {}",
        plain.stderr
    );
    let forced = promote(&["-v", "--color", "always"], &[]);
    assert!(forced.stderr.contains('\x1b'), "{}", forced.stderr);
    let never = promote(&["-v", "--color", "never"], &[("NO_COLOR", "1")]);
    assert!(!never.stderr.contains('\x1b'), "{}", never.stderr);
}

#[test]
fn the_binary_describes_itself() {
    let work = tempfile::tempdir().unwrap();
    let version = Promoter::new(work.path()).args(["--version"]).run();
    assert_eq!(version.code, 0);
    assert!(
        version.stdout.starts_with("promoter ") && version.stdout.contains("(commit "),
        "{}",
        version.stdout
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = Promoter::new(work.path())
            .args(["completions", shell])
            .run();
        assert_eq!(out.code, 0, "{}", out.all());
        assert!(out.stdout.contains("promoter"), "{shell}");
        if shell == "bash" {
            let script = work.path().join("promoter.bash");
            std::fs::write(&script, &out.stdout).unwrap();
            let check = std::process::Command::new("bash")
                .arg("-n")
                .arg(&script)
                .status()
                .unwrap();
            assert!(check.success(), "bash -n refuses the completion script");
        }
    }
    for page in [vec!["man"], vec!["man", "run"]] {
        let out = Promoter::new(work.path()).args(&page).run();
        assert_eq!(out.code, 0, "{}", out.all());
        assert!(
            out.stdout.starts_with(".ie") || out.stdout.contains(".TH "),
            "{}",
            &out.stdout[..200.min(out.stdout.len())]
        );
        // Rendered by man itself, where it is installed.
        let roff = work.path().join("promoter.1");
        std::fs::write(&roff, &out.stdout).unwrap();
        if let Ok(rendered) = std::process::Command::new("man")
            .arg("-l")
            .arg(&roff)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
        {
            let text = String::from_utf8_lossy(&rendered.stdout);
            assert!(
                rendered.status.success() && text.contains("SYNOPSIS"),
                "{text}"
            );
        }
    }
    let unknown = Promoter::new(work.path()).args(["man", "nope"]).run();
    assert_eq!(unknown.code, 2, "{}", unknown.all());
}

/// A registry that is not running fails fast, saying what to check: a
/// refused connection is retried briefly (a registry restarting is back
/// within a second), not for the whole retry deadline.
#[test]
fn a_registry_that_is_not_running_fails_fast_with_a_hint() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("m.yaml"),
        format!(
            "registries:\n- name: 127.0.0.1:{port}/stage\n  src: true\n- name: oci:out\nimages:\n\
             - name: app\n  dmap:\n    \"sha256:{}\": [\"1.0\"]\n",
            "a".repeat(64)
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = Promoter::new(work.path())
        .args(["run", "--manifest", "m.yaml", "--confirm"])
        .run();
    let took = started.elapsed();
    assert_eq!(out.code, 4, "{}", out.all());
    assert!(
        out.all().contains(
            "connection refused: is the registry running there, and are the host and port right?"
        ),
        "{}",
        out.all()
    );
    assert!(took < std::time::Duration::from_secs(3), "took {took:?}");
}

/// The conventions of Unix tools and of a reviewed-plan workflow, on the
/// bundled example: `-` is stdout, diff's trouble is exit 2, a flag a mode
/// would ignore is a usage error, a plan applied already is nothing to do,
/// and a lost image is said on stderr (or fails the run when asked).
#[test]
fn the_cli_follows_the_conventions_users_expect() {
    let work = example();
    let at = |args: &[&str]| Promoter::new(work.path()).args(args).run();
    let tree = ["--thin-manifest-dir", "manifests/quickstart"];

    // --plan-out -: the plan file on stdout, the report on stderr.
    let out = at(&[&["run"][..], &tree, &["--plan-out", "-"]].concat());
    assert_eq!(out.code, 0, "{}", out.all());
    let plan: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout is not the plan file:\n{}", out.stdout));
    assert_eq!(plan["version"], 1);
    assert!(out.stderr.contains("plan: 3 copy, 3 tag"), "{}", out.stderr);
    work_write(&work, "plan.json", &out.stdout);

    // A plan applied, then applied again: the second time, nothing to do.
    let first = at(&[&["apply", "plan.json"][..], &tree].concat());
    assert_eq!(first.code, 0, "{}", first.all());
    let again = at(&[&["apply", "plan.json"][..], &tree].concat());
    assert_eq!(again.code, 0, "{}", again.all());
    assert!(again.stderr.contains("already applied"), "{}", again.stderr);

    // diff: 0 the same, 1 different, 2 trouble (a mistyped file is not a
    // registry to look up).
    let same = at(&[
        "diff",
        "oci:target/quickstart/registry",
        "oci:target/quickstart/registry",
    ]);
    assert_eq!(same.code, 0, "{}", same.all());
    std::fs::create_dir_all(work.path().join("empty")).unwrap();
    let different = at(&["diff", "oci:empty", "oci:target/quickstart/registry"]);
    assert_eq!(different.code, 1, "{}", different.all());
    let typo = at(&["diff", "snapshot-a.yaml", "oci:target/quickstart/registry"]);
    assert_eq!(typo.code, 2, "{}", typo.all());
    assert!(
        typo.stderr.contains("snapshot-a.yaml: no such file"),
        "{}",
        typo.stderr
    );

    // An error and its cause, each said once.
    let missing = at(&[
        "apply",
        "no-such-plan.json",
        "--thin-manifest-dir",
        "manifests/quickstart",
    ]);
    assert_ne!(missing.code, 0);
    assert_eq!(
        missing.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        missing.stderr
    );

    // Flags a snapshot would ignore are refused.
    let snap = at(&[
        "run",
        "--snapshot",
        "oci:target/quickstart/registry",
        "--confirm",
        "--plan-out",
        "p.json",
    ]);
    assert_eq!(snap.code, 2, "{}", snap.all());
    assert!(
        snap.stderr
            .contains("--confirm, --plan-out do not apply to a snapshot"),
        "{}",
        snap.stderr
    );

    // A lost image: a warning with --confirm; a failure with --fail-on-lost.
    work_write(
        &work,
        "lost.yaml",
        &format!(
            "registries:\n- name: oci:testdata/quickstart/source\n  src: true\n- name: oci:target/lost\nimages:\n\
             - name: gone\n  dmap:\n    \"sha256:{}\": [\"1.0\"]\n",
            "c".repeat(64)
        ),
    );
    let warned = at(&["run", "--manifest", "lost.yaml", "--confirm"]);
    assert_eq!(
        warned.code,
        0,
        "lost is reported, as in CIP: {}",
        warned.all()
    );
    assert!(
        warned
            .stderr
            .contains("warning: 1 wanted digest(s) are in neither"),
        "{}",
        warned.stderr
    );
    let failed = at(&[
        "run",
        "--manifest",
        "lost.yaml",
        "--confirm",
        "--fail-on-lost",
    ]);
    assert_eq!(failed.code, 4, "{}", failed.all());
}

fn work_write(work: &tempfile::TempDir, name: &str, text: &str) {
    std::fs::write(work.path().join(name), text).unwrap();
}

/// Registry options in YAML, given with --config or found at
/// $XDG_CONFIG_HOME/promoter/registries.yaml; a broken file is reported at
/// its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_options_are_read_as_yaml_from_the_flag_or_the_config_directory() {
    let Some(w) = crate::support::world::World::builder().start().await else {
        return;
    };
    let image = crate::support::images::TestImage::single_layer(2101, 128);
    w.push("stage/app", &image, &["1.0"]).await;
    // The manifest names a registry that exists only through `endpoint`.
    w.write(
        "m.yaml",
        crate::support::world::manifest_yaml(
            "source.example/stage",
            &format!("{}/prod", w.dst_host()),
            &crate::support::world::images_yaml(&[("app", image.digest(), &["1.0"])]),
        ),
    );
    let options = format!(
        "# mirrors\ndefaults:\n  retry_deadline_secs: 5\nregistries:\n  source.example:\n    endpoint: \"{}\"\n",
        w.src_host()
    );
    w.write("options.yaml", &options);
    let out = w
        .run_async(&["run", "--manifest", "m.yaml", "--config", "options.yaml"])
        .await;
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.contains("plan: 1 copy, 1 tag"), "{}", out.stdout);

    // No flag: the config directory's file.
    let config = w.path().join("xdg");
    std::fs::create_dir_all(config.join("promoter")).unwrap();
    std::fs::write(config.join("promoter/registries.yaml"), &options).unwrap();
    let found = w
        .promoter()
        .args(["run", "--manifest", "m.yaml"])
        .env("XDG_CONFIG_HOME", &config)
        .run_async()
        .await;
    assert_eq!(found.code, 0, "{}", found.all());
    assert!(
        found.stdout.contains("plan: 1 copy, 1 tag"),
        "{}",
        found.stdout
    );

    w.write("broken.yaml", "registries:\n  a: [\n");
    let broken = w
        .run_async(&["run", "--manifest", "m.yaml", "--config", "broken.yaml"])
        .await;
    assert_ne!(broken.code, 0, "{}", broken.all());
    assert!(broken.stderr.contains("broken.yaml:"), "{}", broken.stderr);
}

/// Under `--log-format json`, every line on stderr is one JSON object that
/// validates against `docs/log.schema.json`: in a run with a manifest
/// warning (a tag listed twice), a lost image, a retry (one 503) and an
/// edge that fails (its uploads always answer 500), at -vv.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_all_json_and_follow_the_documented_schema() {
    use crate::support::images::TestImage;
    use crate::support::proxy::{Action, Rule};
    use crate::support::world::World;
    let Some(w) = World::builder().start().await else {
        return;
    };
    let ok = TestImage::single_layer(4101, 100);
    let broken = TestImage::single_layer(4102, 100);
    w.push("stage/ok", &ok, &["1.0"]).await;
    w.push("stage/broken", &broken, &["1.0"]).await;
    let gone = format!("sha256:{}", "e".repeat(64));
    let entries = format!(
        "- name: ok\n  dmap:\n    \"{}\": [\"1.0\", \"1.0\"]\n- name: broken\n  dmap:\n    \"{}\": [\"1.0\"]\n- name: gone\n  dmap:\n    \"{gone}\": [\"1.0\"]\n",
        ok.digest(),
        broken.digest()
    );
    let m = w.manifest("m.yaml", &entries);
    w.set_options(r#"{"retry_deadline_secs": 1}"#);
    w.dst_proxy.add(
        Rule::new("HEAD", "/prod/ok/")
            .times(1)
            .action(Action::status(503)),
    );
    w.dst_proxy.add(
        Rule::new("POST", "/prod/broken/blobs/uploads/")
            .always()
            .action(Action::status(500)),
    );
    let out = w
        .run_async(&[
            "--log-format",
            "json",
            "-vv",
            "--progress-interval",
            "50ms",
            "run",
            "--manifest",
            &m,
            "--confirm",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(out.code, 4, "{}", out.all());
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/log.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema itself is valid");
    let mut events = std::collections::BTreeSet::new();
    let mut retried = false;
    for line in out.stderr.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}: {line}");
        if let Some(event) = value["event"].as_str() {
            events.insert(event.to_string());
        }
        retried |= value["message"] == "retrying";
        if value["event"] == "diagnostic" {
            assert_eq!(value["severity"], "warning", "{line}");
            assert!(
                value["message"].as_str().unwrap().contains("listed twice"),
                "{line}"
            );
        }
    }
    assert!(retried, "a retry is logged at -vv:\n{}", out.stderr);
    for event in ["diagnostic", "message", "progress", "summary"] {
        assert!(events.contains(event), "no {event} line:\n{}", out.stderr);
    }
    assert!(
        out.stderr
            .contains("in neither the source nor the destination"),
        "the lost warning, as JSON:\n{}",
        out.stderr
    );
}

/// Off a terminal, while a request waits out a 429, the progress lines say
/// so, and no two consecutive lines are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_off_a_terminal_shows_a_wait_and_never_repeats_itself() {
    use crate::support::images::TestImage;
    use crate::support::proxy::{Action, Rule};
    use crate::support::world::{images_yaml, World};
    let Some(w) = World::builder().start().await else {
        return;
    };
    let app = TestImage::single_layer(4201, 100);
    w.push("stage/app", &app, &["1.0"]).await;
    let m = w.manifest("m.yaml", &images_yaml(&[("app", app.digest(), &["1.0"])]));
    w.set_options("{}");
    w.dst_proxy.add(
        Rule::new("PUT", "/prod/app/manifests/")
            .times(1)
            .action(Action::status(429).header("Retry-After", "2")),
    );
    let out = w
        .run_async(&[
            "--progress-interval",
            "100ms",
            "run",
            "--manifest",
            &m,
            "--confirm",
            "--registry-config",
            "options.json",
        ])
        .await;
    assert_eq!(out.code, 0, "{}", out.all());
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("progress"))
        .collect();
    assert!(lines.len() > 5, "{}", out.stderr);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("waiting 2s: ") && l.contains("rate limited (HTTP 429)")),
        "{}",
        out.stderr
    );
    for pair in lines.windows(2) {
        assert_ne!(pair[0], pair[1], "{}", out.stderr);
    }
}

/// At -vv a dry run says what it read of each registry, and why.
#[test]
fn a_verbose_dry_run_says_what_it_read() {
    let work = example();
    let out = Promoter::new(work.path())
        .args(["-vv", "run", "--thin-manifest-dir", "manifests/quickstart"])
        .run();
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr
            .contains("read the destination: 0 wanted tag(s) there"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("read the source for what the destinations lack"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("summary"),
        "the counts are on stdout: {}",
        out.stderr
    );
}

/// A hook runs as our user, but cannot read our environment (where CI
/// puts credentials) from `/proc`: promoter makes itself non-dumpable. As
/// root (which reads every process), the run drops to `nobody` first, as
/// a CI job runs.
#[test]
fn a_hook_cannot_read_the_promoters_environment() {
    use std::os::unix::fs::PermissionsExt;
    let work = example();
    let open = |path: &Path| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    };
    open(work.path());
    let home = work.path().join("home");
    std::fs::create_dir(&home).unwrap();
    open(&home);
    let gate = "cat /proc/$PPID/environ > leaked 2>/dev/null; tr '\\0' '\\n' < /proc/$PPID/cmdline > cmdline; exit 0";
    // SAFETY: getuid(2) reads this process's user id.
    let root = unsafe { libc::getuid() } == 0;
    let drop_to_nobody = if root {
        "setpriv --reuid=65534 --regid=65534 --clear-groups "
    } else {
        ""
    };
    let line = format!(
        "{drop_to_nobody}promoter run --thin-manifest-dir manifests/quickstart --gate \"$GATE\""
    );
    let mut run = Promoter::shell(work.path(), &line).env("GATE", gate).env(
        "PROMOTER_AUTH_REGISTRY_EXAMPLE",
        "ci:hunter2-in-the-environment",
    );
    for variable in [
        "HOME",
        "DOCKER_CONFIG",
        "XDG_CONFIG_HOME",
        "XDG_RUNTIME_DIR",
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
    ] {
        run = run.env(variable, &home);
    }
    let out = run.run();
    assert_eq!(out.code, 0, "{}", out.all());
    // The gate ran (it reads what anyone may), and found no secret.
    let cmdline = std::fs::read_to_string(work.path().join("cmdline")).unwrap();
    assert!(cmdline.contains("promoter"), "the gate ran: {cmdline}");
    let leaked = std::fs::read(work.path().join("leaked")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&leaked).contains("hunter2"),
        "the hook read promoter's environment"
    );
}
