//! One exit-code table for every subcommand (README, "Exit codes"): a
//! registry that cannot be reached is 4 everywhere, a usage error is 2
//! everywhere, and a flag a subcommand does not use is a usage error there
//! (never silently ignored).

use crate::support::cli::Workdir;
use crate::support::images::{write_oci_layout, TestImage};
use crate::support::world::{images_yaml, manifest_yaml};

/// Nothing listens on the discard port: connections are refused at once.
const DOWN: &str = "127.0.0.1:9";

fn workdir() -> Workdir {
    let work = Workdir::new();
    let app = TestImage::single_layer(5101, 100);
    write_oci_layout(&work.path().join("src"), "app", &[(&app, Some("1.0"))]).unwrap();
    let entries = images_yaml(&[("app", app.digest(), &["1.0"])]);
    work.write(
        "m.yaml",
        manifest_yaml("oci:src", &format!("{DOWN}/prod"), &entries),
    );
    work.write(
        "lock.yaml",
        manifest_yaml(
            &format!("{DOWN}/up"),
            "oci:mirror",
            &images_yaml(&[("app", app.digest(), &["1.0"])]),
        ),
    );
    work.write(
        "intent.yaml",
        format!("registries:\n- name: {DOWN}/up\n  src: true\n- name: oci:mirror\nimages:\n- name: app\n  tags: [\"1.0\"]\n"),
    );
    work
}

#[test]
fn an_unreachable_registry_exits_4_in_every_subcommand_that_reads_one() {
    let work = workdir();
    let plan = work.run(&["run", "--manifest", "m.yaml", "--plan-out", "plan.json"]);
    assert_eq!(plan.code, 4, "{}", plan.all());
    let snapshot = format!("{DOWN}/prod");
    let commands: [&[&str]; 8] = [
        &["run", "--manifest", "m.yaml"],
        &["run", "--manifest", "m.yaml", "--confirm"],
        &["run", "--snapshot", &snapshot],
        &["apply", "plan.json", "--manifest", "m.yaml"],
        &["pin", "intent.yaml"],
        &["verify", "--manifest", "m.yaml"],
        &["diff", &snapshot, "oci:src"],
        &["outdated", "lock.yaml"],
    ];
    for command in commands {
        let out = work.run(command);
        assert_eq!(out.code, 4, "{command:?}: {}", out.all());
        assert!(
            out.all().contains("connection refused"),
            "{command:?}: {}",
            out.all()
        );
    }
    let cip = work.run(&["cip", "--manifest", "m.yaml", "--sign=false"]);
    assert_eq!(cip.code, 4, "{}", cip.all());
}

#[test]
fn a_usage_error_exits_2_in_every_subcommand() {
    let work = workdir();
    for sub in [
        "run",
        "apply",
        "verify",
        "diff",
        "pin",
        "list",
        "outdated",
        "import",
        "watch",
        "cip",
        "completions",
        "man",
    ] {
        let out = work.run(&[sub, "--no-such-flag"]);
        assert_eq!(out.code, 2, "{sub}: {}", out.all());
    }
}

/// A flag a subcommand does not use is refused there (it used to be taken
/// and ignored: `verify --gate` never called the gate).
#[test]
fn flags_a_subcommand_does_not_use_are_refused() {
    let work = workdir();
    let promotion_flags: [&[&str]; 4] = [
        &["--gate", "true"],
        &["--after-promote", "true"],
        &["--verify-writes"],
        &["--fail-on-lost"],
    ];
    let subcommands: [&[&str]; 5] = [
        &["pin", "intent.yaml"],
        &["diff", "oci:src", "oci:src"],
        &["verify", "--manifest", "m.yaml"],
        &["outdated", "lock.yaml"],
        &["list", "target", "m.yaml"],
    ];
    for sub in subcommands {
        for flag in promotion_flags {
            let out = work.promoter().args(sub).args(flag).run();
            assert_eq!(out.code, 2, "{sub:?} {flag:?}: {}", out.all());
        }
    }
    // verify takes the write flags only to repair.
    let confirm = work.run(&["verify", "--manifest", "m.yaml", "--confirm"]);
    assert_eq!(confirm.code, 2, "{}", confirm.all());
    let hook = work.run(&[
        "verify",
        "--manifest",
        "m.yaml",
        "--repair",
        "--gate",
        "true",
    ]);
    assert_eq!(hook.code, 2, "{}", hook.all());
    let writes = work.run(&["verify", "--manifest", "m.yaml", "--verify-writes=deep"]);
    assert!(
        writes.code == 2 && writes.stderr.contains("verify without --repair"),
        "{}",
        writes.all()
    );
    let minimal = work.run(&["run", "--manifest", "m.yaml", "--minimal-snapshot"]);
    assert_eq!(minimal.code, 2, "{}", minimal.all());
    let tag = work.run(&["run", "--manifest", "m.yaml", "--snapshot-tag", "1.0"]);
    assert_eq!(tag.code, 2, "{}", tag.all());
    let offline = work.run(&["run", "--manifest", "m.yaml", "--parse-only", "--confirm"]);
    assert_eq!(offline.code, 2, "{}", offline.all());
    assert!(
        offline
            .stderr
            .contains("--parse-only, which reads no registry"),
        "{}",
        offline.stderr
    );
}

#[test]
fn help_has_headings_examples_and_the_exit_codes() {
    let work = Workdir::new();
    let top = work.run(&["--help"]);
    assert_eq!(top.code, 0);
    assert!(
        top.stdout.contains("4  failed: edges failed"),
        "{}",
        top.stdout
    );
    let run = work.run(&["run", "--help"]);
    for heading in [
        "Input:",
        "Snapshots:",
        "Review:",
        "Selection:",
        "Promotion:",
        "Hooks:",
        "Registries:",
        "Output:",
        "Logging:",
        "Examples:",
    ] {
        assert!(
            run.stdout.contains(heading),
            "no {heading}:\n{}",
            run.stdout
        );
    }
    // A subcommand's help shows only its own flags: verify's repair
    // writes, and runs no hooks.
    let verify = work.run(&["verify", "--help"]);
    assert!(
        !verify.stdout.contains("--gate") && !verify.stdout.contains("--snapshot"),
        "{}",
        verify.stdout
    );
    assert!(
        verify.stdout.contains("--repair --confirm") && verify.stdout.contains("--deep"),
        "{}",
        verify.stdout
    );
    for sub in [
        "apply",
        "verify",
        "diff",
        "pin",
        "list",
        "outdated",
        "watch",
        "completions",
        "man",
    ] {
        let out = work.run(&[sub, "--help"]);
        assert!(out.stdout.contains("Examples:"), "{sub}:\n{}", out.stdout);
    }
}

/// Twenty images to a destination that is down: the cause is said once,
/// in the recap, with its count, not once per plan line.
#[test]
fn a_cause_shared_by_many_edges_is_said_once_with_its_count() {
    let work = Workdir::new();
    let images: String = (0..20)
        .map(|n| {
            format!(
                "- name: app{n}\n  dmap:\n    \"sha256:{}\": [\"1.0\"]\n",
                format!("{n:02x}").repeat(32)
            )
        })
        .collect();
    work.write(
        "m.yaml",
        format!(
            "registries:\n- name: oci:src\n  src: true\n- name: {DOWN}/prod\nimages:\n{images}"
        ),
    );
    for confirm in [false, true] {
        let mut args = vec!["run", "--manifest", "m.yaml"];
        if confirm {
            args.push("--confirm");
        }
        let out = work.run(&args);
        assert_eq!(out.code, 4, "{}", out.all());
        assert!(
            out.all().matches("connection refused").count() <= 2,
            "{}",
            out.all()
        );
        assert!(
            out.stdout
                .contains("  20 edges: blocked: http://127.0.0.1:9: connection refused:"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout
                .lines()
                .filter(|l| !l.starts_with("  "))
                .all(|l| l.chars().count() <= 100),
            "{}",
            out.stdout
        );
    }
}
