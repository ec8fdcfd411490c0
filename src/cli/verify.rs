//! `promoter verify`: the auditor. Every promoted (destination, digest) is
//! there complete; reads only. With `--repair`, what it finds missing or
//! wrong is planned (and with `--confirm` copied again) as `run` plans and
//! copies: the same report, the same exit codes.

use clap::Args;

use promoter::registry::{ReadBack, Registries};
use promoter::wants::{Request, Selected};

use super::args::{
    self, AttachmentArgs, Format, ManifestArgs, RegistryArgs, SelectArgs, WriteArgs,
};
use super::output::{self, emit, say, Exit};
use super::run::{self, Promotion, Usage};
use super::Ctx;

/// `verify`'s flags.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  promoter verify --thin-manifest-dir manifests/           every destination, complete
  promoter verify --manifest m.yaml --since origin/main    only what changed
  promoter verify --manifest m.yaml --deep                 every blob read back, byte for byte
  promoter verify --manifest m.yaml --output json          findings for a pipeline
  promoter verify --manifest m.yaml --repair               plan copying again what is lost
  promoter verify --manifest m.yaml --repair --confirm     copy it again

Exit: 0 complete, 1 something missing or wrong (or invalid manifests), 2 usage,
4 a destination could not be read. With --repair, as `run`: 0 done (or, in a dry
run, can be done), 3 refused (a tag would move), 4 edges failed or blocked.")]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    manifests: ManifestArgs,
    #[command(flatten)]
    select: SelectArgs,
    /// Read every blob back whole (GET), its digest and size checked as it
    /// streams and the bytes discarded, instead of one HEAD each: finds a
    /// registry that answers HEAD right and serves other bytes
    /// (`bad_content`).
    #[arg(long, help_heading = "Verification")]
    deep: bool,
    /// Plan copying again from the sources what verify finds missing or
    /// wrong (blobs, index children, manifests, missing tags), as `run`
    /// plans: the plan on stdout, the findings on stderr; nothing is
    /// written without --confirm, nothing is ever deleted. The Promotion
    /// flags and --wide apply only to a repair.
    #[arg(long, help_heading = "Repair")]
    repair: bool,
    /// With --repair: carry the plan out.
    #[arg(long, requires = "repair", help_heading = "Repair")]
    confirm: bool,
    #[command(flatten)]
    writes: WriteArgs,
    #[command(flatten)]
    attachments: AttachmentArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Output format of the findings (with --repair: of the plan).
    #[arg(long, value_enum, ignore_case = true, help_heading = "Output")]
    output: Option<Format>,
    #[command(flatten)]
    wide: args::WideArgs,
}

impl VerifyArgs {
    /// The promotion flags only a repair uses: refused without --repair.
    fn check(&self) -> Result<(), Usage> {
        if self.repair {
            return Ok(());
        }
        let given: Vec<&'static str> = [
            (self.writes.verify_writes.is_some(), "--verify-writes"),
            (self.writes.fail_on_lost, "--fail-on-lost"),
            (self.attachments.no_attachments, "--no-attachments"),
            (
                !self.attachments.attachment_type.is_empty(),
                "--attachment-type",
            ),
            (self.wide.wide, "--wide"),
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .collect();
        run::refuse(given, "verify without --repair, which writes nothing")
    }

    fn depth(&self) -> ReadBack {
        if self.deep {
            ReadBack::Deep
        } else {
            ReadBack::Head
        }
    }
}

/// `promoter verify`.
pub(crate) async fn verify(args: VerifyArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    if let Err(Usage(message)) = args.check() {
        output::error(message);
        return Ok(Exit::Usage);
    }
    let request = Request {
        input: args.manifests.input(),
        base: None,
        since: args.select.since.as_deref(),
        shard: args.select.shard,
        named: Default::default(),
    };
    let selected = match run::selected(promoter::wants::select(&request)) {
        Ok(selected) => selected,
        Err(exit) => return Ok(exit),
    };
    let open = args.registry.open_options()?;
    if args.repair {
        // Sources too: a repair copies from them.
        let names = promoter::promote::registry_names(&selected.manifests);
        let registries = promoter::registry::open_all(names.iter(), &open)?;
        return repair(&args, selected, &registries, ctx).await;
    }
    let names: Vec<_> = selected.wants.iter().map(|w| w.registry.clone()).collect();
    let registries = promoter::registry::open_all(names.iter(), &open)?;
    let found = promoter::verify::verify(
        &selected.wants,
        &registries,
        promoter::limits::INVENTORY_READS,
        args.depth(),
    )
    .await;
    match args.output.unwrap_or_default() {
        Format::Json => emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&found).expect("a verification serialises")
        )),
        Format::Text => emit(&found.text()),
    }
    Ok(if !found.unchecked.is_empty() {
        Exit::Failed
    } else if !found.problems.is_empty() {
        Exit::Different
    } else {
        Exit::Ok
    })
}

/// `--repair`: verify, then plan (and with --confirm promote) what it found
/// damaged, through `run`'s planning and report.
async fn repair(
    args: &VerifyArgs,
    selected: Selected,
    registries: &Registries,
    ctx: &Ctx,
) -> anyhow::Result<Exit> {
    let found = promoter::verify::verify(
        &selected.wants,
        registries,
        promoter::limits::INVENTORY_READS,
        args.depth(),
    )
    .await;
    say(found.text().trim_end());
    let how = Promotion {
        confirm: args.confirm,
        plan_out: None,
        fail_on_lost: args.writes.fail_on_lost,
        format: args.output.unwrap_or_default(),
        wide: args.wide,
        exec: args::exec_options(&args.writes, &args.attachments),
    };
    run::promote_wants(&how, selected.wants, registries, found.damage(), ctx).await
}
