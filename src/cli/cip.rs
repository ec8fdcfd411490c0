//! `promoter cip`: `kpromo cip`'s flags with their CIP meaning, cobra's
//! `--flag=value` booleans included, translated into `promoter run`'s
//! arguments, so that a CIP job switches by changing the binary (README,
//! "Switching from kpromo cip").

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{ArgAction, Args};

use super::run::{Output, RunArgs};

/// `kpromo cip`'s flags.
#[derive(Args, Debug)]
pub(crate) struct CipArgs {
    /// Initiate a production image promotion (`--confirm`, `--confirm=true`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    confirm: bool,
    /// The manifest file to load.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// A thin manifest tree.
    #[arg(long, value_name = "DIR")]
    thin_manifest_dir: Option<PathBuf>,
    /// Only the manifests' latest change (Prow: `JOB_TYPE`, `PULL_BASE_SHA`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    use_prow_manifest_diff: bool,
    /// Only the digests the manifests gained in this window (`14 days`, `336h`).
    #[arg(long, value_name = "DURATION")]
    manifest_diff_since: Option<String>,
    /// Accepted for compatibility; the JSON report is `--output json` of `run`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    json_log_summary: bool,
    /// Only check that the manifests are valid.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    parse_only: bool,
    /// Accepted for compatibility (credentials come from auth files).
    #[arg(long, value_name = "CSV")]
    key_files: Option<String>,
    /// Print what a registry holds.
    #[arg(long, value_name = "REGISTRY")]
    snapshot: Option<String>,
    /// Snapshots: only images with this tag.
    #[arg(long, value_name = "TAG")]
    snapshot_tag: Option<String>,
    /// Snapshots: without tagless children of indexes.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    minimal_snapshot: bool,
    /// Snapshot output format (yaml or csv, any case).
    #[arg(long, value_name = "FORMAT")]
    output: Option<String>,
    /// Not supported (`promoter verify` checks that indexes are complete).
    #[arg(long, value_name = "FILE")]
    check_manifest_lists_from_snapshot: Option<String>,
    /// Not supported (goes with --check-manifest-lists-from-snapshot).
    #[arg(long, value_name = "REPOSITORY")]
    repository: Option<String>,
    /// Accepted for compatibility (credentials come from auth files).
    #[arg(long, value_name = "ACCOUNT")]
    snapshot_service_account: Option<String>,
    /// Print what the manifests promote into a registry, offline.
    #[arg(long, value_name = "REGISTRY")]
    manifest_based_snapshot_of: Option<String>,
    /// Accepted for compatibility (credentials come from auth files).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    use_service_account: bool,
    /// Accepted and ignored, as CIP does.
    #[arg(long, value_name = "MIB", hide = true)]
    max_image_size: Option<i64>,
    /// Accepted for compatibility (concurrency is in the registry options).
    #[arg(long, value_name = "N")]
    threads: Option<i64>,
    /// The identity to sign with (a Google service account: keyless signing
    /// with its identity token).
    #[arg(long, value_name = "ACCOUNT")]
    signer_account: Option<String>,
    /// Sign promoted images (with cosign, as an after-promote step).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    sign: bool,
    /// Accepted for compatibility (hooks run at most four at once).
    #[arg(long, value_name = "N")]
    max_signature_copies: Option<i64>,
    /// Accepted for compatibility (hooks run at most four at once).
    #[arg(long, value_name = "N")]
    max_signature_ops: Option<i64>,
    /// Only check vulnerabilities at or above this severity (0-5), with
    /// trivy as a gate; nothing is promoted.
    #[arg(long, value_name = "0-5")]
    vuln_severity_threshold: Option<u8>,
}

/// What `promoter cip` does.
pub(crate) enum Translated {
    /// Run `promoter run` with these arguments.
    Run(Box<RunArgs>),
    /// Nothing to do, and why.
    Nothing(String),
}

/// The `promoter run` arguments `args` stand for.
pub(crate) fn translate(args: &CipArgs) -> anyhow::Result<Translated> {
    if args.check_manifest_lists_from_snapshot.is_some() || args.repository.is_some() {
        bail!(
            "--check-manifest-lists-from-snapshot and --repository are not supported; \
             `promoter verify --manifest F` checks that every promoted index is complete"
        );
    }
    let output = match &args.output {
        None => None,
        Some(format) => Some(
            <Output as clap::ValueEnum>::from_str(format, true)
                .map_err(|_| anyhow::anyhow!("--output {format:?}: use yaml or csv (any case)"))?,
        ),
    };
    let mut run = RunArgs {
        manifest: args.manifest.clone(),
        thin_manifest_dir: args.thin_manifest_dir.clone(),
        snapshot: args.snapshot.clone(),
        manifest_based_snapshot_of: args.manifest_based_snapshot_of.clone(),
        minimal_snapshot: args.minimal_snapshot,
        snapshot_tag: args.snapshot_tag.clone(),
        parse_only: args.parse_only,
        output,
        ..RunArgs::default()
    };
    let input = match (&args.manifest, &args.thin_manifest_dir) {
        (Some(file), _) => Some(file.clone()),
        (None, Some(dir)) => Some(dir.clone()),
        (None, None) => None,
    };
    // Which part of the manifests: the latest change, or a window.
    let base = if args.use_prow_manifest_diff {
        Some(prow_base()?)
    } else if let Some(window) = &args.manifest_diff_since {
        let path = input
            .as_ref()
            .context("--manifest-diff-since needs --manifest or --thin-manifest-dir")?;
        match promoter::git::base_of_window(&repo_dir(path), &git_span(window)?)? {
            promoter::git::WindowBase::Nothing => {
                return Ok(Translated::Nothing(format!(
                    "no manifest change in the last {window}: nothing to do"
                )))
            }
            promoter::git::WindowBase::Everything => None,
            promoter::git::WindowBase::Commit(commit) => Some(commit),
        }
    } else {
        None
    };
    // A presubmit of the change: validate, and hold it against its base.
    match (base, args.parse_only) {
        (Some(base), true) => run.base = Some(base),
        (Some(base), false) => run.select.since = Some(base),
        (None, _) => {}
    }
    let promoting =
        !args.parse_only && args.snapshot.is_none() && args.manifest_based_snapshot_of.is_none();
    let vuln_check = args.vuln_severity_threshold.is_some();
    if let (Some(threshold), true) = (args.vuln_severity_threshold, promoting) {
        run.promotion.hooks.gate.push(trivy_gate(threshold)?);
    }
    if args.sign && promoting {
        run.promotion
            .hooks
            .after_promote
            .push(cosign_step(args.signer_account.as_deref())?);
    }
    // CIP's vulnerability check only checks: it never promotes.
    run.confirm = args.confirm && !vuln_check;
    note_ignored(args);
    Ok(Translated::Run(Box::new(run)))
}

/// Flags CIP has that change nothing here, said once at -v.
fn note_ignored(args: &CipArgs) {
    let ignored: Vec<&str> = [
        (args.json_log_summary, "--json-log-summary"),
        (args.key_files.is_some(), "--key-files"),
        (args.use_service_account, "--use-service-account"),
        (
            args.snapshot_service_account.is_some(),
            "--snapshot-service-account",
        ),
        (args.max_image_size.is_some(), "--max-image-size"),
        (args.threads.is_some(), "--threads"),
        (
            args.max_signature_copies.is_some(),
            "--max-signature-copies",
        ),
        (args.max_signature_ops.is_some(), "--max-signature-ops"),
    ]
    .into_iter()
    .filter_map(|(set, flag)| set.then_some(flag))
    .collect();
    if !ignored.is_empty() {
        tracing::info!(
            "accepted for compatibility with kpromo cip, without effect here: {}",
            ignored.join(" ")
        );
    }
}

/// `promoter cip`.
pub(crate) async fn cip(args: &CipArgs, ctx: &super::Ctx) -> anyhow::Result<super::output::Exit> {
    match translate(args)? {
        Translated::Nothing(why) => {
            super::output::say(why);
            Ok(super::output::Exit::Ok)
        }
        Translated::Run(run) => {
            tracing::debug!("promoter cip runs: {run:?}");
            super::run::run(*run, ctx).await
        }
    }
}

/// The base of a Prow job's change: `PULL_BASE_SHA` for a presubmit (or a
/// batch), the previous commit for a postsubmit, as CIP reads them.
fn prow_base() -> anyhow::Result<String> {
    let job = std::env::var("JOB_TYPE").unwrap_or_default();
    match job.as_str() {
        "presubmit" | "batch" => std::env::var("PULL_BASE_SHA")
            .ok()
            .filter(|s| !s.is_empty())
            .context("--use-prow-manifest-diff in a presubmit needs PULL_BASE_SHA (Prow sets it)"),
        "postsubmit" => Ok("HEAD^".to_string()),
        _ => bail!(
            "--use-prow-manifest-diff needs JOB_TYPE (presubmit, batch or postsubmit), as Prow \
             sets it; outside Prow, use `promoter run --since REV`"
        ),
    }
}

/// The directory of the git repository a manifest input lives in.
fn repo_dir(input: &Path) -> PathBuf {
    if input.is_dir() {
        return input.to_path_buf();
    }
    match input.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `window` as git's approxidate span: `14 days` stays, a Go duration
/// (`336h`, `90m`, `1h30m`) becomes seconds.
fn git_span(window: &str) -> anyhow::Result<String> {
    let text = window.trim();
    let is_go = text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, 'h' | 'm' | 's' | '.'))
        && text.chars().next().is_some_and(|c| c.is_ascii_digit());
    if !is_go {
        return Ok(text.to_string());
    }
    match go_duration(text) {
        Some(d) => Ok(format!("{} seconds", d.as_secs_f64().round() as u64)),
        None => bail!("{window:?} is not a duration (e.g. 336h or \"14 days\")"),
    }
}

/// A Go duration (`336h`, `1h30m`, `10s`, `500ms`), as CIP and dregsy
/// write them.
pub(crate) fn go_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let mut seconds = 0f64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'h' | 'm' | 's' => {
                let n: f64 = number.parse().ok()?;
                let unit = match c {
                    'h' => 3600.0,
                    'm' if chars.peek() == Some(&'s') => {
                        chars.next();
                        0.001
                    }
                    'm' => 60.0,
                    _ => 1.0,
                };
                seconds += n * unit;
                number.clear();
                any = true;
            }
            _ => return None,
        }
    }
    (any && number.is_empty() && seconds.is_finite())
        .then(|| std::time::Duration::from_secs_f64(seconds))
}

/// `cmd` is on PATH.
fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(cmd).is_file()))
}

/// The gate CIP's `--vuln-severity-threshold` stands for: trivy, failing
/// on vulnerabilities at or above the threshold (0 unspecified and 1
/// minimal: everything; 2 low; 3 medium; 4 high; 5 critical).
fn trivy_gate(threshold: u8) -> anyhow::Result<String> {
    if !on_path("trivy") {
        bail!(
            "--vuln-severity-threshold runs trivy as a gate, and trivy is not on PATH: install \
             it, or pass your own scanner with `promoter run --gate CMD`"
        );
    }
    let levels = match threshold {
        0 | 1 => "UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL",
        2 => "LOW,MEDIUM,HIGH,CRITICAL",
        3 => "MEDIUM,HIGH,CRITICAL",
        4 => "HIGH,CRITICAL",
        5 => "CRITICAL",
        other => bail!("--vuln-severity-threshold is 0 to 5, not {other}"),
    };
    Ok(format!(
        "trivy image --quiet --exit-code 1 --severity {levels} \"$PROMOTER_SOURCE\" >&2 \
         || {{ echo \"vulnerabilities at or above {levels} in $PROMOTER_SOURCE\" >&2; exit 1; }}"
    ))
}

/// The after-promote step CIP's `--sign` stands for: cosign, keyless; with
/// a signer account, with that Google service account's identity token.
fn cosign_step(signer: Option<&str>) -> anyhow::Result<String> {
    if !on_path("cosign") {
        bail!(
            "--sign signs with cosign as an after-promote step, and cosign is not on PATH: \
             install it, or pass your own step with `promoter run --after-promote CMD`"
        );
    }
    Ok(match signer {
        Some(account) => format!(
            "cosign sign --yes --identity-token \"$(gcloud auth print-identity-token \
             --impersonate-service-account={account} --audiences=sigstore --include-email)\" \
             \"$PROMOTER_REFERENCE\""
        ),
        None => "cosign sign --yes \"$PROMOTER_REFERENCE\"".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_become_seconds_and_words_stay() {
        assert_eq!(git_span("336h").unwrap(), "1209600 seconds");
        assert_eq!(git_span("1h30m").unwrap(), "5400 seconds");
        assert_eq!(git_span("14 days").unwrap(), "14 days");
        assert!(git_span("14x").is_ok(), "words are git's to read");
        assert!(git_span("1h30").is_err());
    }
}
