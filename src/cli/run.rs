//! `promoter run`: validate, plan, and with `--confirm` promote; or print a
//! snapshot. The flags are resolved once into a [`Mode`]; a flag the mode
//! does not use is a usage error, never silently ignored.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use promoter::exec::ExecOptions;
use promoter::manifest::ManifestInput;
use promoter::plan::{Damaged, RepoWant};
use promoter::promote::{self, PlanFile, Run, Verdict};
use promoter::registry::Registries;
use promoter::wants::{self, BaseCheck, Refusal, Request};

use super::args::{self, RegistryArgs, SelectArgs};
use super::output::{self, emit, say, Exit};
use super::snapshot::{self, Shape, SnapshotFormat};
use super::Ctx;

/// `run`'s flags.
#[derive(Args, Debug, Clone, Default)]
#[command(after_help = "Examples:
  promoter run --thin-manifest-dir manifests/ --parse-only --base origin/main   presubmit
  promoter run --manifest m.yaml                          dry run: the plan, nothing written
  promoter run --manifest m.yaml --confirm                promote
  promoter run --thin-manifest-dir manifests/ --since HEAD^ --confirm   only what changed
  promoter run --snapshot registry.example/prod --output csv            what a registry holds

Exit: 0 done, 1 invalid input, 2 usage, 3 refused (a tag would move, a gate said no),
4 edges failed or blocked (a registry could not be read or written).")]
#[command(group = clap::ArgGroup::new("input").required(true).multiple(false))]
#[command(group = clap::ArgGroup::new("manifests").multiple(false))]
#[command(group = clap::ArgGroup::new("snapshots").multiple(false))]
pub(crate) struct RunArgs {
    /// A plain manifest file (registries and images in one file).
    #[arg(long, value_name = "FILE", groups = ["input", "manifests"], help_heading = "Input")]
    pub(crate) manifest: Option<PathBuf>,
    /// A thin manifest tree: DIR/manifests/<x>/promoter-manifest.yaml and
    /// DIR/images/<x>/images.yaml.
    #[arg(long, value_name = "DIR", groups = ["input", "manifests"], help_heading = "Input")]
    pub(crate) thin_manifest_dir: Option<PathBuf>,

    /// Print what REGISTRY[/path] (or oci:PATH) holds as images.yaml (or --output csv).
    #[arg(long, value_name = "REGISTRY", groups = ["input", "snapshots"], help_heading = "Snapshots")]
    pub(crate) snapshot: Option<String>,
    /// Print what the manifests promote into REGISTRY[/path], offline.
    #[arg(
        long,
        value_name = "REGISTRY",
        requires = "manifests",
        group = "snapshots",
        help_heading = "Snapshots"
    )]
    pub(crate) manifest_based_snapshot_of: Option<String>,
    /// Snapshots: leave out untagged children of indexes.
    #[arg(long, requires = "snapshots", help_heading = "Snapshots")]
    pub(crate) minimal_snapshot: bool,
    /// Snapshots: keep only the digests that carry TAG (with all their tags).
    #[arg(
        long,
        value_name = "TAG",
        requires = "snapshots",
        help_heading = "Snapshots"
    )]
    pub(crate) snapshot_tag: Option<String>,

    /// Load, validate and conflict-check the manifests, then stop. Never
    /// touches the network.
    #[arg(long, help_heading = "Review")]
    pub(crate) parse_only: bool,
    /// Also hold the manifests against what they were at git revision REV
    /// (read from the local repository): a removed image or tag, or a tag
    /// that would move, is an error pointing at the head line and naming
    /// the base line.
    #[arg(
        long,
        value_name = "REV",
        requires = "manifests",
        help_heading = "Review"
    )]
    pub(crate) base: Option<String>,
    /// With --base: removing images or tags from the manifests is intended
    /// (reported as warnings).
    #[arg(long, requires = "base", help_heading = "Review")]
    pub(crate) allow_removals: bool,

    #[command(flatten)]
    pub(crate) select: SelectArgs,

    /// Carry the plan out. Without it, nothing is written anywhere (dry run).
    #[arg(long, help_heading = "Promotion")]
    pub(crate) confirm: bool,
    /// Write the plan, with the registry state it was computed from, to FILE
    /// (`-`: standard output, the report then on stderr), for review and
    /// `promoter apply FILE`.
    #[arg(long, value_name = "FILE", help_heading = "Promotion")]
    pub(crate) plan_out: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) promotion: args::PromotionArgs,
    #[command(flatten)]
    pub(crate) registry: RegistryArgs,

    /// Output format: text or json for plans, yaml or csv for snapshots.
    #[arg(long, value_enum, ignore_case = true, help_heading = "Output")]
    pub(crate) output: Option<Output>,
    #[command(flatten)]
    pub(crate) wide: args::WideArgs,
}

/// `run --output`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Plans: one line per plan item, then counts (the default for plans).
    Text,
    /// Plans: the documented JSON report (docs/report.schema.json).
    Json,
    /// Snapshots: CIP's images.yaml format (the default for snapshots).
    Yaml,
    /// Snapshots: `name@digest,name:tag` rows, no header.
    Csv,
}

/// What `run` was asked to do, every flag decided.
enum Mode<'a> {
    /// `--snapshot`: what a registry holds.
    Snapshot(snapshot::OfRegistry),
    /// `--manifest-based-snapshot-of`: what the manifests promote there.
    ManifestSnapshot(snapshot::OfManifests<'a>),
    /// `--parse-only`: validate (and hold against the base), offline.
    Check(Request<'a>),
    /// Plan, and with `--confirm` promote.
    Plan(Plan<'a>),
}

/// A planning run, every flag decided.
pub(crate) struct Plan<'a> {
    pub(crate) request: Request<'a>,
    pub(crate) promotion: Promotion,
    pub(crate) registry: RegistryArgs,
}

/// How wants are planned, carried out and reported (`run`, `verify
/// --repair`), every flag decided.
pub(crate) struct Promotion {
    pub(crate) confirm: bool,
    pub(crate) plan_out: Option<PathBuf>,
    pub(crate) fail_on_lost: bool,
    pub(crate) format: args::Format,
    pub(crate) wide: args::WideArgs,
    pub(crate) exec: ExecOptions,
}

/// A usage error: the message says which flags and why.
pub(crate) struct Usage(pub(crate) String);

impl RunArgs {
    fn mode(&self) -> Result<Mode<'_>, Usage> {
        if let Some(registry) = &self.snapshot {
            self.only_reads("a snapshot, which only reads")?;
            return Ok(Mode::Snapshot(snapshot::OfRegistry {
                registry: registry.clone(),
                shape: self.shape(),
                format: self.snapshot_format()?,
                registry_args: self.registry.clone(),
            }));
        }
        let input = args::input_of(self.manifest.as_deref(), self.thin_manifest_dir.as_deref());
        if let Some(root) = &self.manifest_based_snapshot_of {
            self.only_reads("a snapshot, which only reads")?;
            return Ok(Mode::ManifestSnapshot(snapshot::OfManifests {
                input,
                root: root.clone(),
                shape: self.shape(),
                format: self.snapshot_format()?,
                registry_args: self.registry.clone(),
            }));
        }
        let base = self.base.as_deref().map(|rev| BaseCheck {
            rev,
            allow_removals: self.allow_removals,
        });
        if self.parse_only {
            self.offline()?;
            return Ok(Mode::Check(Request {
                input,
                base,
                since: None,
                shard: None,
                named: Default::default(),
            }));
        }
        Ok(Mode::Plan(Plan {
            request: request(input, base, &self.select),
            promotion: Promotion {
                confirm: self.confirm,
                plan_out: self.plan_out.clone(),
                fail_on_lost: self.promotion.writes.fail_on_lost,
                format: self.plan_format()?,
                wide: self.wide,
                exec: self.promotion.exec_options(),
            },
            registry: self.registry.clone(),
        }))
    }

    /// Snapshot modes read and print: flags about promoting would be ignored.
    fn only_reads(&self, what: &str) -> Result<(), Usage> {
        let given = self.given(&[
            (self.confirm, "--confirm"),
            (self.plan_out.is_some(), "--plan-out"),
            (self.select.since.is_some(), "--since"),
            (self.base.is_some(), "--base"),
            (self.select.shard.is_some(), "--shard"),
            (self.parse_only, "--parse-only"),
            (
                self.promotion.writes.verify_writes.is_some(),
                "--verify-writes",
            ),
            (self.promotion.writes.fail_on_lost, "--fail-on-lost"),
            (
                self.promotion.attachments.no_attachments,
                "--no-attachments",
            ),
            (
                !self.promotion.attachments.attachment_type.is_empty(),
                "--attachment-type",
            ),
            (
                self.promotion.hooks.given(),
                "--gate/--after-promote/--hook-env",
            ),
            (self.wide.wide, "--wide"),
        ]);
        refuse(given, what)
    }

    /// `--parse-only` reads no registry: flags about registries would be ignored.
    fn offline(&self) -> Result<(), Usage> {
        let given = self.given(&[
            (self.confirm, "--confirm"),
            (self.plan_out.is_some(), "--plan-out"),
            (self.select.shard.is_some(), "--shard"),
            (
                self.promotion.writes.verify_writes.is_some(),
                "--verify-writes",
            ),
            (self.promotion.writes.fail_on_lost, "--fail-on-lost"),
            (self.output.is_some(), "--output"),
            (
                self.promotion.hooks.given(),
                "--gate/--after-promote/--hook-env",
            ),
            (self.registry.auth_file.is_some(), "--auth-file"),
            (self.registry.registry_config.is_some(), "--registry-config"),
            (self.wide.wide, "--wide"),
        ]);
        refuse(given, "--parse-only, which reads no registry")
    }

    fn given(&self, flags: &[(bool, &'static str)]) -> Vec<&'static str> {
        flags
            .iter()
            .filter_map(|(set, flag)| set.then_some(*flag))
            .collect()
    }

    fn shape(&self) -> Shape {
        Shape {
            minimal: self.minimal_snapshot,
            tag: self.snapshot_tag.clone(),
        }
    }

    fn snapshot_format(&self) -> Result<SnapshotFormat, Usage> {
        match self.output {
            None | Some(Output::Yaml) => Ok(SnapshotFormat::Yaml),
            Some(Output::Csv) => Ok(SnapshotFormat::Csv),
            Some(other) => Err(wrong_output(other, "snapshots", "yaml, csv")),
        }
    }

    fn plan_format(&self) -> Result<args::Format, Usage> {
        match self.output {
            None | Some(Output::Text) => Ok(args::Format::Text),
            Some(Output::Json) => Ok(args::Format::Json),
            Some(other) => Err(wrong_output(other, "plans", "text, json")),
        }
    }
}

fn request<'a>(
    input: ManifestInput<'a>,
    base: Option<BaseCheck<'a>>,
    select: &'a SelectArgs,
) -> Request<'a> {
    Request {
        input,
        base,
        since: select.since.as_deref(),
        shard: select.shard,
        named: Default::default(),
    }
}

fn wrong_output(output: Output, what: &str, fits: &str) -> Usage {
    let name = format!("{output:?}").to_lowercase();
    Usage(format!(
        "--output {name} does not apply to {what}; use one of: {fits}"
    ))
}

pub(crate) fn refuse(given: Vec<&'static str>, what: &str) -> Result<(), Usage> {
    if given.is_empty() {
        return Ok(());
    }
    let (verb, them) = if given.len() == 1 {
        ("does", "it")
    } else {
        ("do", "them")
    };
    Err(Usage(format!(
        "{} {verb} not apply to {what}; leave {them} out",
        given.join(", ")
    )))
}

/// `promoter run`.
pub(crate) async fn run(args: RunArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let mode = match args.mode() {
        Ok(mode) => mode,
        Err(Usage(message)) => {
            output::error(format_args!("{message}"));
            return Ok(Exit::Usage);
        }
    };
    match mode {
        Mode::Snapshot(of) => snapshot::of_registry(of).await,
        Mode::ManifestSnapshot(of) => snapshot::of_manifests(of).await,
        Mode::Check(request) => Ok(check(&request)),
        Mode::Plan(plan) => run_plan(plan, ctx).await,
    }
}

/// `--parse-only`: every problem, and a count when there is none.
fn check(request: &Request<'_>) -> Exit {
    let manifests = match selected(wants::validate(request)) {
        Ok(manifests) => manifests,
        Err(exit) => return exit,
    };
    let digests: usize = manifests.iter().map(|m| m.digest_entries().count()).sum();
    say(format_args!(
        "ok: {} manifest(s), {} digest entr{} valid",
        manifests.len(),
        digests,
        if digests == 1 { "y" } else { "ies" }
    ));
    Exit::Ok
}

/// Show what selecting found; the wants, or the exit code when there are none.
pub(crate) fn selected<T>(selection: wants::Selection<T>) -> Result<T, Exit> {
    output::diagnostics(&selection.diagnostics);
    for warning in &selection.warnings {
        output::warn(format_args!("{warning}"));
    }
    match selection.outcome {
        Ok(selected) => Ok(selected),
        Err(refusal) => {
            output::error(format_args!("{refusal}"));
            Err(match refusal {
                Refusal::Undoes { moves: true, .. } => Exit::Refused,
                _ => Exit::Invalid,
            })
        }
    }
}

/// Plan, and with `--confirm` promote.
pub(crate) async fn run_plan(plan: Plan<'_>, ctx: &Ctx) -> anyhow::Result<Exit> {
    let selected = match selected(wants::select(&plan.request)) {
        Ok(selected) => selected,
        Err(exit) => return Ok(exit),
    };
    if let Some(since) = &selected.since {
        if since.changed == 0 {
            say(format_args!(
                "nothing changed since {}: nothing to do",
                since.rev
            ));
            return Ok(Exit::Ok);
        }
        say(format_args!(
            "{} digest entr{} changed since {}; planning only those",
            since.changed,
            if since.changed == 1 { "y" } else { "ies" },
            since.rev
        ));
    }
    let open = plan.registry.open_options()?;
    let names = promote::registry_names(&selected.manifests);
    let registries = promoter::registry::open_all(names.iter(), &open)?;
    promote_wants(
        &plan.promotion,
        selected.wants,
        &registries,
        Damaged::new(),
        ctx,
    )
    .await
}

/// Plan `wants` (a repair of `damaged`, when it names any), and with
/// `--confirm` carry the plan out; print the report, pick the exit code.
pub(crate) async fn promote_wants(
    how: &Promotion,
    wants: Vec<RepoWant>,
    registries: &Registries,
    damaged: Damaged,
    ctx: &Ctx,
) -> anyhow::Result<Exit> {
    let mut exec = how.exec.clone();
    let (planned, execution) = if how.confirm {
        exec.stop = ctx.stop_on_signals();
        let run = Run::new(registries, &exec, ctx.progress()).repairing(damaged);
        let (planned, report) = run.promote(wants).await;
        (planned, Some(report))
    } else {
        let run = Run::new(registries, &exec, None).repairing(damaged);
        (run.plan(wants).await, None)
    };
    let to_stdout = how.plan_out.as_deref() == Some(std::path::Path::new("-"));
    write_plan(how.plan_out.as_deref(), &planned)?;
    let finish = Finish {
        format: how.format,
        style: ctx.style(how.wide),
        fail_on_lost: how.fail_on_lost,
        to_stderr: to_stdout,
        interrupted: exec.stop.requested(),
    };
    Ok(finish.report(&planned.plan, execution.as_ref()))
}

/// `--plan-out`: the file, or standard output for `-`.
fn write_plan(out: Option<&std::path::Path>, planned: &PlanFile) -> anyhow::Result<()> {
    match out {
        None => {}
        Some(path) if path == std::path::Path::new("-") => {
            output::emit_bytes(&promote::plan_file_bytes(planned));
            emit("\n");
        }
        Some(path) => {
            promote::write_plan_file(path, planned)?;
            say(format_args!("plan written to {}", path.display()));
        }
    }
    Ok(())
}

/// The counts of a run as one log event (shown under `--log-format json`).
fn summary(plan: &promoter::plan::Plan, execution: Option<&promoter::exec::Report>) {
    let c = plan.counts();
    let failed = execution.map(|e| e.failed().count() as u64);
    let done = execution.map(|e| (e.results.len() as u64) - failed.unwrap_or(0));
    tracing::info!(
        target: super::display::SUMMARY,
        event = "summary",
        dry_run = execution.is_none(),
        copy = c.copy as u64, attach = c.attach as u64, tag = c.tag as u64,
        moved = c.moved as u64, lost = c.lost as u64, refused = c.refused as u64,
        conflict = c.conflict as u64, blocked = c.blocked as u64,
        already_present = c.already_present as u64,
        done, failed,
        "summary"
    );
}

/// How a run ends: its report printed, its exit code chosen.
pub(crate) struct Finish {
    pub(crate) format: args::Format,
    pub(crate) style: promoter::report::Style,
    /// `--fail-on-lost`: a lost digest fails the run (exit 4).
    pub(crate) fail_on_lost: bool,
    /// The report goes to stderr (stdout carries a plan file).
    pub(crate) to_stderr: bool,
    /// A shutdown stopped the run before all of it was done.
    pub(crate) interrupted: bool,
}

impl Finish {
    /// Print the plan (and the results when it was carried out); the exit code.
    pub(crate) fn report(
        &self,
        plan: &promoter::plan::Plan,
        execution: Option<&promoter::exec::Report>,
    ) -> Exit {
        let text = match self.format {
            args::Format::Json => format!("{}\n", promoter::report::json(plan, execution)),
            args::Format::Text => promoter::report::text(plan, execution, self.style),
        };
        if self.to_stderr {
            say(text.trim_end());
        } else {
            emit(&text);
        }
        if execution.is_none() && plan.work().next().is_some() {
            say("dry run: nothing was written; add --confirm to carry the plan out");
        }
        let lost = plan.counts().lost;
        if lost > 0 && (execution.is_some() || self.fail_on_lost) {
            output::warn(format_args!("{lost} wanted digest(s) are in neither the source nor the destination (the `lost` lines){}",
                if self.fail_on_lost { "" } else { "; --fail-on-lost makes that fail the run (exit 4)" }
            ));
        }
        summary(plan, execution);
        if self.interrupted {
            say("interrupted: what is listed above was done; run the same command again to finish the job");
            return Exit::Failed;
        }
        match promote::verdict(plan, execution, self.fail_on_lost) {
            Verdict::Done => Exit::Ok,
            Verdict::Refused => Exit::Refused,
            Verdict::Failed => Exit::Failed,
        }
    }
}
