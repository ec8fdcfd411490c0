//! `promoter pin`: resolve a mirroring intent (tags chosen by selectors,
//! or a Sinker, image-syncer or dregsy file) into a digest-pinned lock.

use std::path::PathBuf;

use clap::Args;

use promoter::mirror::job::PinFailure;
use promoter::mirror::lock::{LockError, Written};
use promoter::mirror::pin::PinError;

use super::args::RegistryArgs;
use super::output::{self, say, Exit};

/// `pin`'s flags.
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:
  promoter pin mirror.yaml --out mirror.lock.yaml     one source: a plain lock file
  promoter pin mirror.yaml --out locks/               several sources: a thin tree
  promoter pin .images.yaml --out sinker.lock.yaml    a Sinker file, as it is

Then review the lock and promote it: promoter run --manifest mirror.lock.yaml --confirm
(or --thin-manifest-dir locks).

Each digest new to the lock is read and hashed; a platform's manifest must be
in the source and be an image manifest.

Exit: 0 pinned, 1 invalid intent or lock, or a source whose manifest does not
hash to the digest it names (or whose platform manifest is no image), 2 usage
(a lock that needs --out DIR/), 4 a source could not be read or lacks a tag.")]
pub(crate) struct PinArgs {
    /// The intent: a CIP-shaped manifest whose images choose tags with
    /// selectors (README, "Mirroring"), or a Sinker, image-syncer or dregsy file.
    intent: PathBuf,
    /// Where the lock goes: a manifest file (one source and one set of
    /// destinations), or a thin tree directory (a path ending in `/`).
    /// Pinning again keeps what it pinned. Default: standard output.
    #[arg(long, value_name = "FILE|DIR/", help_heading = "Output")]
    out: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `promoter pin`.
pub(crate) async fn pin(args: PinArgs) -> anyhow::Result<Exit> {
    let open = args.registry.open_options()?;
    let report = promoter::mirror::job::pin_file(
        &args.intent,
        promoter::manifest::Named::PipesToo,
        args.out.as_deref(),
        &open,
        &mut output::Stdout,
    )
    .await;
    output::diagnostics(&report.diagnostics);
    for note in &report.notes {
        output::pin_note(note);
    }
    match report.outcome {
        Ok(written) => {
            say(wrote(&written, args.out.as_deref()));
            Ok(Exit::Ok)
        }
        Err(failure) => Ok(failed(failure)),
    }
}

/// What `pin` says it wrote.
fn wrote(written: &Written, out: Option<&std::path::Path>) -> String {
    let what = format!(
        "pinned {} image(s), {} digest(s)",
        written.images, written.digests
    );
    match out {
        None => format!("{what}, on standard output"),
        Some(out) if written.manifests > 1 || written.files.len() > 1 => format!(
            "{what} into the thin tree {} ({} manifests): promote it with `promoter run --thin-manifest-dir {}`",
            out.display(),
            written.manifests,
            out.display()
        ),
        Some(out) => format!(
            "{what} into {}: promote it with `promoter run --manifest {}`",
            out.display(),
            out.display()
        ),
    }
}

fn failed(failure: PinFailure) -> Exit {
    let exit = match &failure {
        PinFailure::Invalid => Exit::Invalid,
        PinFailure::Lock(LockError::NeedsTree { .. }) => Exit::Usage,
        PinFailure::Lock(LockError::Previous { diagnostics, .. }) => {
            output::diagnostics(diagnostics);
            Exit::Invalid
        }
        PinFailure::Lock(_) => Exit::Invalid,
        // A source whose content pin refuses is wrong input, which pinning
        // again does not mend; unless a registry also failed, whose retry may.
        PinFailure::Sources(errors)
            if errors.iter().any(PinError::is_refused_content)
                && !errors.iter().any(PinError::is_registry) =>
        {
            Exit::Invalid
        }
        PinFailure::Open(_) | PinFailure::Sources(_) => Exit::Failed,
    };
    match &failure {
        PinFailure::Sources(errors) => {
            for e in errors {
                output::error(format_args!("{e}"));
            }
            output::error("nothing was written");
        }
        other => output::error(format_args!("{}", output::shown(other))),
    }
    exit
}
