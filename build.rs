//! Records the git commit the binary is built from, for `promoter --version`
//! (a bug report then names the exact source). Outside a git checkout (a
//! source tarball, `cargo install` from a registry) it says `unknown`.

fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=PROMOTER_COMMIT={commit}");
    // Built again when HEAD moves (a commit, a checkout), not on every build.
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Ok(head) = std::fs::read_to_string(".git/HEAD") {
        if let Some(reference) = head.strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed=.git/{}", reference.trim());
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
