//! skopeo, the independent client that reads back what the promoter wrote:
//! the one way tests run it, in a [`CleanEnv`] (so that no auth file,
//! `registries.conf` or policy of the machine's own changes what it reads).
//!
//! Missing skopeo: `None` (after a skip line), except under `CI=true`, where
//! it fails the test ([`require_binary`]).

use std::process::Output;

use super::hermetic::CleanEnv;
use super::registry::require_binary;

/// The arguments of `skopeo inspect --raw TARGET` (`docker://HOST/REPO:TAG`
/// or `@DIGEST`, over plain HTTP or unverified TLS; or `oci:DIR:TAG`).
fn inspect_args(target: &str) -> Vec<&str> {
    let mut args = vec!["inspect", "--raw"];
    if target.starts_with("docker://") {
        args.push("--tls-verify=false");
    }
    args.push(target);
    args
}

fn answer(target: &str, out: Output) -> Result<Vec<u8>, String> {
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(format!(
            "skopeo inspect {target}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The manifest bytes of `target` as skopeo reads them, or why it could not.
pub fn try_inspect_raw(target: &str) -> Option<Result<Vec<u8>, String>> {
    let skopeo = require_binary("skopeo")?;
    let env = CleanEnv::new();
    let out = env
        .command(skopeo)
        .args(inspect_args(target))
        .output()
        .expect("run skopeo");
    Some(answer(target, out))
}

/// [`try_inspect_raw`], from async tests (without blocking their runtime).
pub async fn try_inspect_raw_async(target: &str) -> Option<Result<Vec<u8>, String>> {
    let skopeo = require_binary("skopeo")?;
    let env = CleanEnv::new();
    let out = tokio::process::Command::from(env.command(skopeo))
        .args(inspect_args(target))
        .output()
        .await
        .expect("run skopeo");
    Some(answer(target, out))
}

/// [`try_inspect_raw_async`] with `--creds user:password`.
pub async fn try_inspect_raw_as_async(
    target: &str,
    creds: &str,
) -> Option<Result<Vec<u8>, String>> {
    let skopeo = require_binary("skopeo")?;
    let env = CleanEnv::new();
    let mut args = inspect_args(target);
    let creds = format!("--creds={creds}");
    args.insert(2, &creds);
    let out = tokio::process::Command::from(env.command(skopeo))
        .args(args)
        .output()
        .await
        .expect("run skopeo");
    Some(answer(target, out))
}

/// [`try_inspect_raw`], failing the test when skopeo cannot read `target`.
pub fn inspect_raw(target: &str) -> Option<Vec<u8>> {
    try_inspect_raw(target).map(|r| r.unwrap_or_else(|e| panic!("{e}")))
}

/// [`try_inspect_raw_async`], failing the test when skopeo cannot read `target`.
pub async fn inspect_raw_async(target: &str) -> Option<Vec<u8>> {
    try_inspect_raw_async(target)
        .await
        .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
}

/// `skopeo copy ARGS` (`--src-tls-verify=false docker://HOST/REPO:TAG
/// oci:DIR:TAG`...): `Ok` once skopeo copied it, every blob's digest
/// checked as it read them; else why not.
pub async fn try_copy_async(args: &[&str]) -> Option<Result<(), String>> {
    let skopeo = require_binary("skopeo")?;
    let env = CleanEnv::new();
    let out = tokio::process::Command::from(env.command(skopeo))
        .arg("copy")
        .args(args)
        .output()
        .await
        .expect("run skopeo");
    Some(copied(&out, &args.join(" ")))
}

/// What a `skopeo copy WHAT` that ended as `out` says: `Ok`, or why not.
fn copied(out: &std::process::Output, what: &str) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "skopeo copy {what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `skopeo copy TARGET dir:…` into a fresh directory: the whole image
/// (manifest, config, layers) as skopeo reads it, or why it could not.
pub fn try_copy_to_dir(target: &str) -> Option<Result<(), String>> {
    let skopeo = require_binary("skopeo")?;
    let env = CleanEnv::new();
    let into = tempfile::tempdir().expect("a directory to copy into");
    let out = env
        .command(skopeo)
        .args(["copy", "--quiet", target])
        .arg(format!("dir:{}", into.path().display()))
        .output()
        .expect("run skopeo");
    Some(copied(&out, target))
}

/// The version `skopeo --version` reports (`1.9.3`).
pub fn version() -> Option<String> {
    let skopeo = require_binary("skopeo")?;
    let out = CleanEnv::new()
        .command(skopeo)
        .arg("--version")
        .output()
        .expect("run skopeo");
    Some(last_word(&out.stdout))
}

/// The last word of a `NAME version X.Y.Z` line.
pub fn last_word(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string()
}
