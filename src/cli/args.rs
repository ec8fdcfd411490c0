//! Option groups: flattened into exactly the subcommands that use them, so
//! a flag a subcommand does not use is an unknown argument there (exit 2)
//! and never shows in its help. Each group also turns itself into what the
//! library takes (paths into a [`ManifestInput`], hook flags into
//! [`HookOptions`]...), once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use promoter::exec::ExecOptions;
use promoter::hooks::{HookOptions, Hooks};
use promoter::manifest::ManifestInput;
use promoter::plan::Shard;
use promoter::registry::{OpenOptions, ReadBack};

/// Exactly one of `--manifest` and `--thin-manifest-dir`.
#[derive(Args, Debug, Clone)]
#[group(id = "manifests", required = true, multiple = false)]
#[command(next_help_heading = "Input")]
pub(crate) struct ManifestArgs {
    /// A plain manifest file (registries and images in one file).
    #[arg(long, value_name = "FILE")]
    pub(crate) manifest: Option<PathBuf>,
    /// A thin manifest tree: DIR/manifests/<x>/promoter-manifest.yaml and
    /// DIR/images/<x>/images.yaml.
    #[arg(long, value_name = "DIR")]
    pub(crate) thin_manifest_dir: Option<PathBuf>,
}

impl ManifestArgs {
    /// What to load.
    pub(crate) fn input(&self) -> ManifestInput<'_> {
        input_of(self.manifest.as_deref(), self.thin_manifest_dir.as_deref())
    }
}

/// The manifest input of a pair of flags clap holds to exactly one.
pub(crate) fn input_of<'a>(manifest: Option<&'a Path>, dir: Option<&'a Path>) -> ManifestInput<'a> {
    match (manifest, dir) {
        (Some(file), _) => ManifestInput::Plain(file),
        (None, Some(dir)) => ManifestInput::ThinTree(dir),
        (None, None) => unreachable!("clap requires one of --manifest and --thin-manifest-dir"),
    }
}

/// Which part of the manifests: `--since`, `--shard`.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Selection")]
pub(crate) struct SelectArgs {
    /// Only the digest entries added or changed since git revision REV;
    /// nothing else is read from any registry.
    #[arg(long, value_name = "REV")]
    pub(crate) since: Option<String>,
    /// Only part INDEX of COUNT (0-based) of the work, split by
    /// (destination registry, image): COUNT runs together do it all once.
    #[arg(long, value_name = "INDEX/COUNT", env = "PROMOTER_SHARD")]
    pub(crate) shard: Option<Shard>,
}

/// How registries are reached: credentials and per-registry options.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Registries")]
pub(crate) struct RegistryArgs {
    /// A docker config.json / containers auth.json to take credentials from,
    /// before $REGISTRY_AUTH_FILE, the containers and docker config files.
    #[arg(long, value_name = "FILE")]
    pub(crate) auth_file: Option<PathBuf>,
    /// Per-registry options (TLS, plain HTTP, request budgets, mirrors), YAML
    /// or JSON. Default: $XDG_CONFIG_HOME/promoter/registries.yaml (or
    /// ~/.config/promoter/registries.yaml) when it exists. See README,
    /// "Registry options".
    #[arg(long, visible_alias = "config", value_name = "FILE")]
    pub(crate) registry_config: Option<PathBuf>,
}

impl RegistryArgs {
    /// The options file read and checked, and the credentials file named.
    pub(crate) fn open_options(&self) -> anyhow::Result<OpenOptions> {
        Ok(promoter::config::open_options(
            self.registry_config.as_deref(),
            self.auth_file.as_deref(),
        )?)
    }
}

/// Signatures, attestations and SBOMs.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Promotion")]
pub(crate) struct AttachmentArgs {
    /// Do not copy signatures, attestations and SBOMs along with promoted digests.
    #[arg(long)]
    pub(crate) no_attachments: bool,
    /// Also copy referrers of this artifact type as attachments (repeatable);
    /// signatures, attestations and SBOMs are always recognised.
    #[arg(long, value_name = "TYPE")]
    pub(crate) attachment_type: Vec<String>,
}

/// How writes are checked and lost digests counted.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Promotion")]
pub(crate) struct WriteArgs {
    /// Read back every manifest, tag and blob written and fail the edge
    /// unless the registry holds exactly what was sent: by one HEAD each
    /// (`--verify-writes`, or `=head`), or whole (`=deep`: every byte read
    /// back, its digest and size checked as it streams).
    #[arg(
        long,
        value_name = "DEPTH",
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "head"
    )]
    pub(crate) verify_writes: Option<Depth>,
    /// A lost digest (in neither the source nor the destination) fails the
    /// run, exit 4, instead of a warning.
    #[arg(long)]
    pub(crate) fail_on_lost: bool,
}

/// How deep stored content is checked (`--verify-writes=DEPTH`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Depth {
    /// One HEAD: there, with the right digest and size.
    Head,
    /// Read back whole: the bytes themselves, hashed as they stream.
    Deep,
}

impl From<Depth> for ReadBack {
    fn from(depth: Depth) -> ReadBack {
        match depth {
            Depth::Head => ReadBack::Head,
            Depth::Deep => ReadBack::Deep,
        }
    }
}

/// Commands run around the copies.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Hooks")]
pub(crate) struct HookArgs {
    /// A policy gate (repeatable): asked about each source digest before it
    /// is copied, in dry runs too; exit 0 admits, any other status refuses
    /// it (see README, "Hooks").
    #[arg(long, value_name = "CMD")]
    pub(crate) gate: Vec<String>,
    /// A step run once a digest is in a destination, before its tags are
    /// written (repeatable): signing, for instance (see README, "Hooks").
    #[arg(long, value_name = "CMD")]
    pub(crate) after_promote: Vec<String>,
    /// How long one hook call may take before it is killed, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub(crate) hook_timeout: u64,
    /// An environment variable hooks get besides PATH, HOME, USER, TMPDIR,
    /// LANG, LC_ALL and TERM (repeatable); nothing else of ours reaches them.
    #[arg(long, value_name = "NAME")]
    pub(crate) hook_env: Vec<String>,
}

impl Default for HookArgs {
    fn default() -> HookArgs {
        HookArgs {
            gate: Vec::new(),
            after_promote: Vec::new(),
            hook_timeout: 600,
            hook_env: Vec::new(),
        }
    }
}

impl HookArgs {
    /// The hooks, when any is given.
    fn hooks(&self) -> Option<std::sync::Arc<Hooks>> {
        if self.gate.is_empty() && self.after_promote.is_empty() {
            return None;
        }
        Some(std::sync::Arc::new(Hooks::new(HookOptions {
            gate: self.gate.clone(),
            after_promote: self.after_promote.clone(),
            timeout: Duration::from_secs(self.hook_timeout),
            env: self.hook_env.clone(),
            ..HookOptions::default()
        })))
    }

    /// Whether a hook flag was given (for modes that run none).
    pub(crate) fn given(&self) -> bool {
        !self.gate.is_empty() || !self.after_promote.is_empty() || !self.hook_env.is_empty()
    }
}

/// How a promotion runs (run, apply, watch): write checks, attachments,
/// hooks.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct PromotionArgs {
    #[command(flatten)]
    pub(crate) writes: WriteArgs,
    #[command(flatten)]
    pub(crate) attachments: AttachmentArgs,
    #[command(flatten)]
    pub(crate) hooks: HookArgs,
}

impl PromotionArgs {
    /// What the executor and planner take.
    pub(crate) fn exec_options(&self) -> ExecOptions {
        ExecOptions {
            hooks: self.hooks.hooks(),
            ..exec_options(&self.writes, &self.attachments)
        }
    }
}

/// What the executor and planner take from the write and attachment flags
/// (no hooks: `verify --repair` runs none).
pub(crate) fn exec_options(writes: &WriteArgs, attachments: &AttachmentArgs) -> ExecOptions {
    ExecOptions {
        attachments: !attachments.no_attachments,
        verify_writes: writes.verify_writes.map(ReadBack::from),
        extra_attachment_types: attachments.attachment_type.clone(),
        ..ExecOptions::default()
    }
}

/// How much of each plan line the text report shows.
#[derive(Args, Debug, Clone, Copy, Default)]
#[command(next_help_heading = "Output")]
pub(crate) struct WideArgs {
    /// Each plan line in full: source, whole digest and reason (also with
    /// -v). By default lines fit 100 columns and what needs attention is
    /// said once, at the end.
    #[arg(long)]
    pub(crate) wide: bool,
}

/// `--output` of the subcommands that print plans or findings.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum Format {
    /// Lines for people (the default).
    #[default]
    Text,
    /// JSON, as documented (docs/report.schema.json for plans).
    Json,
}

/// A duration as Go writes it (`10s`, `5m`, `1h30m`, `500ms`), not zero.
pub(crate) fn parse_interval(text: &str) -> Result<Duration, String> {
    super::cip::go_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a duration: write 10s, 1m or 500ms"))
}
