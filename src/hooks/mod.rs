//! Commands a promotion runs around its copies: a **gate** before a source
//! digest is copied (a vulnerability scanner, a signature check), and an
//! **after-promote** step once a digest is in a destination and before its
//! tags are written (signing).
//!
//! The contract, for both (README, "Hooks"): the command runs through
//! `sh -c`, with a JSON document on stdin and `PROMOTER_*` environment
//! variables for the common fields. Exit 0 is yes; any other status is no,
//! and the first line of its stderr says why. A command that does not
//! finish within the timeout is killed, and its digest is undecided (a
//! gate) or failed (a step), never the whole run.
//!
//! A hook's environment is not ours: it gets `PATH`, `HOME`, `USER`,
//! `TMPDIR`, `LANG`, `LC_ALL`, `TERM` and the variables the user names
//! (`--hook-env`), nothing else, so that tokens in the promoter's
//! environment reach a hook only on purpose. What a hook prints is redacted
//! (credentials in URLs, `Bearer`/`Basic` values, control characters)
//! before it reaches our output.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::once_map::OnceMap;

mod process;

use crate::reference::{Digest, Repository};

/// Variables a hook inherits from our environment without being named.
const INHERITED: [&str; 7] = ["PATH", "HOME", "USER", "TMPDIR", "LANG", "LC_ALL", "TERM"];

/// Hook commands and how they run.
#[derive(Debug, Clone)]
pub struct HookOptions {
    /// Gates, each asked in turn (`--gate`); the first "no" decides.
    pub gate: Vec<String>,
    /// Steps after a digest is promoted (`--after-promote`), in turn.
    pub after_promote: Vec<String>,
    /// How long one call may take.
    pub timeout: Duration,
    /// Calls running at once.
    pub concurrency: usize,
    /// Variables of our environment passed on besides `PATH`, `HOME`,
    /// `USER`, `TMPDIR`, `LANG`, `LC_ALL` and `TERM`.
    pub env: Vec<String>,
}

impl Default for HookOptions {
    fn default() -> HookOptions {
        HookOptions {
            gate: Vec::new(),
            after_promote: Vec::new(),
            timeout: Duration::from_secs(600),
            concurrency: 4,
            env: Vec::new(),
        }
    }
}

/// What a gate said about a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every gate admitted it.
    Admit,
    /// A gate refused it; its reason.
    Refuse(String),
    /// A gate could not decide (it timed out or could not start); why.
    Undecided(String),
}

/// Why an after-promote step failed: its image's tags are not written,
/// and the next run tries again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// It exited with another status than 0; the first line of its stderr.
    #[error("the after-promote step exited with status {code}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Exited {
        /// The status.
        code: i32,
        /// The first line of its stderr.
        reason: Option<String>,
    },
    /// It could not start, or did not finish in time (it was killed).
    #[error("{0}")]
    Failed(String),
}

/// What a gate is told about a digest about to be copied.
#[derive(Debug, Clone, Serialize)]
pub struct GateInput {
    /// `"gate"`.
    pub hook: &'static str,
    /// `REGISTRY/IMAGE@DIGEST` in the source.
    pub source: String,
    /// The digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// For an index: the platforms it lists (`os/arch[/variant]`).
    pub platforms: Vec<String>,
    /// Every destination repository it is promoted to.
    pub destinations: Vec<String>,
    /// Every tag it gets there.
    pub tags: Vec<String>,
}

/// What an after-promote step is told about a digest now in a destination.
#[derive(Debug, Clone, Serialize)]
pub struct AfterPromoteInput {
    /// `"after_promote"`.
    pub hook: &'static str,
    /// `REGISTRY/IMAGE@DIGEST` it was copied from.
    pub source: String,
    /// The digest.
    pub digest: Digest,
    /// The destination repository (`REGISTRY/IMAGE`).
    pub destination: String,
    /// `DESTINATION@DIGEST`: sign this.
    pub reference: String,
    /// The tags it is about to get there (written once the step succeeds).
    pub tags: Vec<String>,
}

/// A digest in a source repository: what a gate verdict is about.
type SourceDigest = (Repository, Digest);

/// Runs the hooks of one promotion; each gate verdict is asked once per
/// source digest, however many destinations want it.
pub struct Hooks {
    options: HookOptions,
    permits: Semaphore,
    verdicts: OnceMap<SourceDigest, Verdict>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Hooks {
    /// Hooks as `options` say. From now on our own process's environment
    /// and memory are not readable by the hooks (they run as our user).
    pub fn new(options: HookOptions) -> Hooks {
        process::keep_our_environment_from_hooks();
        Hooks {
            permits: Semaphore::new(options.concurrency.max(1)),
            options,
            verdicts: OnceMap::new(),
        }
    }

    /// Whether there is a gate to ask.
    pub fn has_gate(&self) -> bool {
        !self.options.gate.is_empty()
    }

    /// Whether there is a step to run after promoting.
    pub fn has_after_promote(&self) -> bool {
        !self.options.after_promote.is_empty()
    }

    /// The gates' verdict on the digest of `input`, read from `source`
    /// (asked once per run).
    pub async fn gate(&self, source: &Repository, input: &GateInput) -> Verdict {
        let key = (source.clone(), input.digest.clone());
        self.verdicts
            .get_or_compute(key, || async {
                for command in &self.options.gate {
                    let env = [
                        ("PROMOTER_HOOK", "gate".to_string()),
                        ("PROMOTER_SOURCE", input.source.clone()),
                        ("PROMOTER_DIGEST", input.digest.to_string()),
                        ("PROMOTER_DESTINATIONS", input.destinations.join(" ")),
                    ];
                    match self.run(command, input, &env).await {
                        Ran::Exit(0, _) => {}
                        Ran::Exit(code, reason) => {
                            return Verdict::Refuse(
                                reason.unwrap_or_else(|| {
                                    format!("the gate exited with status {code}")
                                }),
                            )
                        }
                        Ran::Failed(why) => return Verdict::Undecided(why),
                    }
                }
                Verdict::Admit
            })
            .await
    }

    /// Run the after-promote steps for `input`; `Err` says why one failed.
    pub async fn after_promote(&self, input: &AfterPromoteInput) -> Result<(), StepError> {
        for command in &self.options.after_promote {
            let env = [
                ("PROMOTER_HOOK", "after_promote".to_string()),
                ("PROMOTER_SOURCE", input.source.clone()),
                ("PROMOTER_DIGEST", input.digest.to_string()),
                ("PROMOTER_REFERENCE", input.reference.clone()),
                ("PROMOTER_TAGS", input.tags.join(" ")),
            ];
            match self.run(command, input, &env).await {
                Ran::Exit(0, _) => {}
                Ran::Exit(code, reason) => return Err(StepError::Exited { code, reason }),
                Ran::Failed(why) => return Err(StepError::Failed(why)),
            }
        }
        Ok(())
    }

    /// Run `command` with `input` as JSON on stdin and `vars` set.
    async fn run(&self, command: &str, input: &impl Serialize, vars: &[(&str, String)]) -> Ran {
        let Ok(_permit) = self.permits.acquire().await else {
            return Ran::Failed("hooks are shutting down".to_string());
        };
        let mut env: Vec<(String, std::ffi::OsString)> = INHERITED
            .iter()
            .copied()
            .chain(self.options.env.iter().map(String::as_str))
            .filter_map(|name| std::env::var_os(name).map(|v| (name.to_string(), v)))
            .collect();
        env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.into())));
        let call = process::Call {
            command,
            input: serde_json::to_vec(input).expect("hook input always serialises"),
            env,
            timeout: self.options.timeout,
        };
        let shown = shown_command(command);
        match process::run(call).await {
            process::Ended::Exited {
                code,
                stdout,
                stderr,
            } => {
                for line in redacted(&stdout).lines().chain(redacted(&stderr).lines()) {
                    tracing::info!(hook = %shown, "{line}");
                }
                let reason = redacted(&stderr)
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .map(str::to_string);
                Ran::Exit(code, reason)
            }
            process::Ended::Failed(why) => Ran::Failed(format!("{shown}: {why}")),
            process::Ended::TimedOut => Ran::Failed(format!(
                "{shown}: no answer within {} s; killed with everything it started",
                self.options.timeout.as_secs()
            )),
        }
    }
}

/// How a hook call ended.
enum Ran {
    /// It exited with this status; the first line of its stderr.
    Exit(i32, Option<String>),
    /// It could not run or did not finish; why.
    Failed(String),
}

/// The command as logs show it: its first word (the rest may carry keys).
fn shown_command(command: &str) -> String {
    command
        .split_whitespace()
        .next()
        .unwrap_or("hook")
        .to_string()
}

/// A hook's output made safe to print: credentials in URLs, the values of
/// `Bearer` and `Basic` authorizations and of `password=`-like settings
/// hidden, control characters escaped.
fn redacted(bytes: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    crate::diag::redact::credentials(&mut text);
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.lines().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let mut hide_next = false;
        for (i, word) in line.split(' ').enumerate() {
            if i > 0 {
                out.push(' ');
            }
            if hide_next && !word.is_empty() {
                out.push_str("***");
                hide_next = false;
                continue;
            }
            let secret_setting = word.split_once('=').is_some_and(|(key, _)| {
                let key = key.to_ascii_lowercase();
                ["password", "passwd", "token", "secret"]
                    .iter()
                    .any(|k| key.ends_with(k))
            });
            if secret_setting {
                let key_len = word.find('=').unwrap_or(0);
                out.push_str(&word[..=key_len]);
                out.push_str("***");
                continue;
            }
            let lower = word.to_ascii_lowercase();
            hide_next = lower == "bearer" || lower == "basic";
            out.push_str(word);
        }
    }
    crate::text::printable(&out, crate::text::Lines::Kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate_input() -> GateInput {
        GateInput {
            hook: "gate",
            source: "r.example/app@sha256:x".into(),
            digest: Digest::sha256_of(b"x"),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            platforms: Vec::new(),
            destinations: vec!["prod.example/app".into()],
            tags: vec!["1.0".into()],
        }
    }

    fn repo() -> Repository {
        Repository::parse(
            &crate::reference::Endpoint::Http {
                host: "r.example".into(),
            },
            "app",
        )
        .unwrap()
    }

    fn hooks(gate: &str) -> Hooks {
        Hooks::new(HookOptions {
            gate: vec![gate.to_string()],
            timeout: Duration::from_secs(5),
            ..HookOptions::default()
        })
    }

    #[tokio::test]
    async fn a_gate_admits_with_status_0_and_refuses_with_its_first_stderr_line() {
        let admit = hooks("cat >/dev/null; exit 0");
        assert_eq!(admit.gate(&repo(), &gate_input()).await, Verdict::Admit);
        let refuse = hooks("echo; echo 'CVE-2024-1 is critical' >&2; echo more >&2; exit 3");
        assert_eq!(
            refuse.gate(&repo(), &gate_input()).await,
            Verdict::Refuse("CVE-2024-1 is critical".into())
        );
    }

    #[tokio::test]
    async fn a_gate_reads_its_input_and_sees_only_what_it_is_given() {
        std::env::set_var("PROMOTER_TEST_SECRET_TOKEN", "s3cr3t");
        let gate = hooks(
            r#"input=$(cat); case "$input" in *'"digest":"sha256:'*) ;; *) exit 9;; esac
               [ -z "$PROMOTER_TEST_SECRET_TOKEN" ] && [ "$PROMOTER_DESTINATIONS" = prod.example/app ]"#,
        );
        assert_eq!(gate.gate(&repo(), &gate_input()).await, Verdict::Admit);
    }

    #[tokio::test]
    async fn a_hanging_gate_is_killed_and_its_digest_undecided() {
        let mut gate = hooks("sleep 600");
        gate.options.timeout = Duration::from_millis(300);
        let Verdict::Undecided(why) = gate.gate(&repo(), &gate_input()).await else {
            panic!("a hanging gate decided");
        };
        assert!(why.contains("no answer within"), "{why}");
    }

    #[test]
    fn hook_output_is_redacted_before_it_is_shown() {
        let shown = redacted(
            b"push to https://ci:hunter2@r.example failed\nAuthorization: Bearer eyJabc\nPASSWORD=hunter2 \x1b[2K",
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("eyJabc"), "{shown}");
        assert!(!shown.contains('\u{1b}'), "{shown}");
    }
}
