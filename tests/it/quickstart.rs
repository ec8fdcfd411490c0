//! The README's main command works as written: the bundled thin tree
//! promotes from the shipped OCI layout to a local one, no server needed.

use std::path::Path;

use crate::support::cli;

fn promoter(cwd: &Path, args: &[&str]) -> (i32, String) {
    let out = cli::promoter(cwd, args);
    (out.code, out.all())
}

#[test]
fn the_bundled_example_plans_promotes_and_then_has_nothing_left_to_do() {
    // A scratch working directory that sees the repository's testdata and
    // manifests, so the destination lands in the scratch directory.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    for dir in ["testdata", "manifests"] {
        std::os::unix::fs::symlink(repo.join(dir), work.path().join(dir)).unwrap();
    }
    let tree = ["run", "--thin-manifest-dir", "manifests/quickstart"];

    let (code, out) = promoter(work.path(), &[&tree[..], &["--parse-only"]].concat());
    assert_eq!(code, 0, "{out}");

    let (code, out) = promoter(work.path(), &tree);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("plan: 3 copy, 3 tag, 0 lost, 0 refused"),
        "{out}"
    );
    assert!(
        !work.path().join("target").exists(),
        "the dry run wrote something"
    );

    let (code, out) = promoter(work.path(), &[&tree[..], &["--confirm"]].concat());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("6 done, 0 failed"), "{out}");

    let (code, out) = promoter(work.path(), &tree);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "plan: 0 copy, 0 tag, 0 lost, 0 refused, 0 conflict, 0 blocked, 4 already present"
        ),
        "{out}"
    );

    // The plain manifest says the same thing.
    let (code, out) = promoter(
        work.path(),
        &["run", "--manifest", "manifests/quickstart.yaml"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("plan: 0 copy, 0 tag"), "{out}");
}
