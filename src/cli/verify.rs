//! `promoter verify`: the auditor. Every promoted (destination, digest) is
//! there complete; reads only.

use clap::Args;

use promoter::wants::Request;

use super::args::{Format, ManifestArgs, RegistryArgs, SelectArgs};
use super::output::{emit, Exit};

/// `verify`'s flags.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  promoter verify --thin-manifest-dir manifests/           every destination, complete
  promoter verify --manifest m.yaml --since origin/main    only what changed
  promoter verify --manifest m.yaml --output json          findings for a pipeline

Exit: 0 complete, 1 something missing or wrong (or invalid manifests), 2 usage,
4 a destination could not be read.")]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    manifests: ManifestArgs,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Output format of the findings.
    #[arg(long, value_enum, ignore_case = true, help_heading = "Output")]
    output: Option<Format>,
}

/// `promoter verify`.
pub(crate) async fn verify(args: VerifyArgs) -> anyhow::Result<Exit> {
    let request = Request {
        input: args.manifests.input(),
        base: None,
        since: args.select.since.as_deref(),
        shard: args.select.shard,
        named: Default::default(),
    };
    let selected = match super::run::selected(promoter::wants::select(&request)) {
        Ok(selected) => selected,
        Err(exit) => return Ok(exit),
    };
    let open = args.registry.open_options()?;
    let names: Vec<_> = selected.wants.iter().map(|w| w.registry.clone()).collect();
    let registries = promoter::registry::open_all(names.iter(), &open)?;
    let found = promoter::verify::verify(
        &selected.wants,
        &registries,
        promoter::limits::INVENTORY_READS,
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
