//! `promoter list` and `promoter outdated`: what a lock, manifest, intent
//! or seed tool's file names, offline; and what its sources have that it
//! does not pin yet.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use promoter::mirror::input::Named;
use promoter::mirror::{self, Side};
use promoter::reference::RegistryName;

use super::args::{Format, RegistryArgs};
use super::output::{self, emit, Exit};

/// A lock, manifest, intent or seed tool's file, by position or by flag.
#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("named").required(true).multiple(false))]
#[command(next_help_heading = "Input")]
struct NamedArgs {
    /// A lock `pin` wrote, a CIP manifest (file or thin tree), a mirroring
    /// intent, or a Sinker, image-syncer or dregsy file: told apart by
    /// their content.
    #[arg(value_name = "FILE", group = "named")]
    file: Option<PathBuf>,
    /// A plain manifest file (the same as giving it as FILE).
    #[arg(long, value_name = "FILE", group = "named")]
    manifest: Option<PathBuf>,
    /// A thin manifest tree (the same as giving it as FILE).
    #[arg(long, value_name = "DIR", group = "named")]
    thin_manifest_dir: Option<PathBuf>,
}

impl NamedArgs {
    fn path(&self) -> &Path {
        self.file
            .as_deref()
            .or(self.manifest.as_deref())
            .or(self.thin_manifest_dir.as_deref())
            .expect("clap requires one")
    }

    /// The content, its diagnostics shown; the exit code when it has errors.
    fn load(&self) -> Result<Named, Exit> {
        let (named, diagnostics) = promoter::mirror::input::load(self.path());
        output::diagnostics(&diagnostics);
        named.ok_or(Exit::Invalid)
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum ListSide {
    /// What the file reads.
    Source,
    /// What it writes.
    Target,
}

/// `list`'s flags.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  promoter list target mirror.lock.yaml      every registry/image:tag@digest written
  promoter list source .images.yaml          what a Sinker file reads
  promoter list target --thin-manifest-dir manifests/

Exit: 0 listed, 1 invalid input, 2 usage.")]
pub(crate) struct ListArgs {
    /// Which side to list.
    side: ListSide,
    #[command(flatten)]
    named: NamedArgs,
}

/// `promoter list`.
pub(crate) fn list(args: ListArgs) -> Exit {
    let side = match args.side {
        ListSide::Source => Side::Source,
        ListSide::Target => Side::Target,
    };
    let named = match args.named.load() {
        Ok(named) => named,
        Err(exit) => return exit,
    };
    let references = match named {
        Named::Manifests(manifests) => mirror::references(&manifests, side),
        Named::Intent(intent) => {
            let (references, unresolved) = mirror::intent_references(&intent, side);
            for entry in &unresolved {
                output::warn(format_args!("{entry} chooses its tags with selectors: `promoter pin` it, then list the lock"));
            }
            references
        }
    };
    for reference in references {
        emit(&format!("{reference}\n"));
    }
    Exit::Ok
}

/// `outdated`'s flags.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  promoter outdated mirror.lock.yaml        release versions upstream the lock does not pin
  promoter outdated .images.yaml            a Sinker file, as `sinker check` reads it
  promoter outdated mirror.yaml --output json

Exit: 0 nothing newer, 1 newer versions (or invalid input), 2 usage, 4 a source could not be read.")]
pub(crate) struct OutdatedArgs {
    #[command(flatten)]
    named: NamedArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Output format.
    #[arg(long, value_enum, ignore_case = true, help_heading = "Output")]
    output: Option<Format>,
}

/// `promoter outdated`.
pub(crate) async fn outdated(args: OutdatedArgs) -> anyhow::Result<Exit> {
    let pinned = match args.named.load() {
        Ok(Named::Manifests(manifests)) => mirror::pinned_in_manifests(&manifests),
        Ok(Named::Intent(intent)) => mirror::pinned_in_intent(&intent),
        Err(exit) => return Ok(exit),
    };
    let open = args.registry.open_options()?;
    let names: Vec<RegistryName> = pinned
        .iter()
        .map(|(repo, _)| RegistryName {
            endpoint: repo.endpoint().clone(),
            prefix: String::new(),
        })
        .collect();
    let registries = promoter::registry::open_all(names.iter(), &open)?;
    let (found, errors) = mirror::outdated(pinned, &registries).await;
    for e in &errors {
        output::error(format_args!("{e}"));
    }
    match args.output.unwrap_or_default() {
        Format::Json => emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&found).expect("serialises")
        )),
        Format::Text => {
            for o in &found {
                emit(&format!(
                    "{}  {} (newest pinned {})\n",
                    o.source,
                    o.newer.join(", "),
                    o.pinned
                ));
            }
        }
    }
    Ok(if !errors.is_empty() {
        Exit::Failed
    } else if !found.is_empty() {
        Exit::Different
    } else {
        Exit::Ok
    })
}
