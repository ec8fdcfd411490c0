//! `promoter import kubernetes`: every image Kubernetes YAML pulls, as a
//! mirroring intent (new, or added to the one already written).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use promoter::diag::Diagnostic;
use promoter::manifest::intent::{self, Intent};
use promoter::reference::RegistryName;

use super::output::{self, emit, say, Exit};

/// `import`'s flags.
#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    #[command(subcommand)]
    from: ImportFrom,
}

#[derive(Subcommand, Debug)]
enum ImportFrom {
    /// Every image Kubernetes YAML pulls: containers, init and ephemeral
    /// containers of Pods and of the workloads that template them, and the
    /// Prometheus operator's images.
    #[command(after_help = "Examples:
  promoter import kubernetes deploy/ --target registry.example/mirror --out mirror.yaml
  helm template chart/ | promoter import kubernetes - --out mirror.yaml   add to an intent

Then pin it: promoter pin mirror.yaml --out mirror.lock.yaml")]
    Kubernetes(KubernetesArgs),
}

#[derive(Args, Debug)]
struct KubernetesArgs {
    /// YAML or JSON files (several documents each), directories holding
    /// them, `-` for standard input.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Where the images go, REGISTRY[/path]: the intent's destination.
    /// Needed unless --out names an intent that exists (its own stays).
    #[arg(long, value_name = "REGISTRY")]
    target: Option<String>,
    /// The intent to write. One that exists is updated: what it has stays,
    /// and images not in it are added. Default: standard output.
    #[arg(long, value_name = "FILE", help_heading = "Output")]
    out: Option<PathBuf>,
}

/// `promoter import`.
pub(crate) fn import(args: ImportArgs) -> anyhow::Result<Exit> {
    let ImportFrom::Kubernetes(args) = args.from;
    kubernetes(args)
}

fn kubernetes(args: KubernetesArgs) -> anyhow::Result<Exit> {
    let target = match args.target.as_deref().map(RegistryName::parse) {
        Some(Ok(target)) => Some(target),
        Some(Err(e)) => {
            output::error(format_args!("--target: {e}"));
            return Ok(Exit::Usage);
        }
        None => None,
    };
    if let Some(out) = args.out.as_deref().filter(|o| is_sinker_file(o)) {
        return sinker_update(&args.paths, out, target.is_some());
    }
    let existing = match existing_intent(args.out.as_deref()) {
        Ok(existing) => existing,
        Err(exit) => return Ok(exit),
    };
    let target = match choose_target(target, existing.as_ref(), args.out.as_deref()) {
        Ok(target) => target,
        Err(exit) => return Ok(exit),
    };
    let (found, mut diagnostics) = promoter::mirror::kubernetes::images_in_paths(&args.paths);
    for image in found.iter().filter(|i| i.implied_latest) {
        diagnostics.push(
            Diagnostic::warning(
                image.location.clone(),
                format!(
                    "{} has no tag: imported as `latest`, which changes under you",
                    image.reference
                ),
            )
            .with_help("name a version in the YAML, or pin one in the intent"),
        );
    }
    promoter::diag::sort(&mut diagnostics);
    output::diagnostics(&diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        output::error("nothing was written");
        return Ok(Exit::Invalid);
    }
    let intent = promoter::mirror::import::merge(&found, existing, &target);
    let text = promoter::mirror::import::intent_text(
        &intent,
        "A mirroring intent, from `promoter import kubernetes`: `promoter pin` resolves it.",
    );
    match &args.out {
        Some(out) => promoter::mirror::lock::replace(out, &text)?,
        None => emit(&text),
    }
    say(format_args!("{} images found", found.len()));
    Ok(Exit::Ok)
}

/// Whether `out` is a Sinker file that exists (updated as Sinker does).
fn is_sinker_file(out: &std::path::Path) -> bool {
    out.is_file() && intent::format_of(out) == Some(intent::Format::Sinker)
}

/// `--out` a Sinker file: Sinker's `update`, in Sinker's format.
fn sinker_update(paths: &[PathBuf], out: &std::path::Path, target: bool) -> anyhow::Result<Exit> {
    if target {
        output::error(format_args!(
            "{} is a Sinker file: its `target` says where the images go; leave out --target",
            out.display()
        ));
        return Ok(Exit::Usage);
    }
    let (file, diagnostics) = intent::sinker::load(out);
    output::diagnostics(&diagnostics);
    let Some(file) = file else {
        output::error("nothing was written");
        return Ok(Exit::Invalid);
    };
    let (found, diagnostics) = promoter::mirror::kubernetes::sinker_images_in_paths(paths);
    output::diagnostics(&diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        output::error("nothing was written");
        return Ok(Exit::Invalid);
    }
    let text = promoter::mirror::import::sinker_update(&file, &found);
    promoter::mirror::lock::replace(out, &text)?;
    say(format_args!(
        "{} images found; {} updated as `sinker update` does",
        found.len(),
        out.display()
    ));
    Ok(Exit::Ok)
}

/// The intent `--out` names, when it exists: updated, not replaced.
fn existing_intent(out: Option<&std::path::Path>) -> Result<Option<Intent>, Exit> {
    let Some(out) = out.filter(|o| o.exists()) else {
        return Ok(None);
    };
    let (loaded, diagnostics) = intent::load(out);
    output::diagnostics(&diagnostics);
    match loaded {
        Some(intent) if intent.format == intent::Format::Intent => Ok(Some(intent)),
        Some(intent) => {
            output::error(format_args!("{} is a {}; import writes a promoter intent: name another --out (`promoter pin` reads that file as it is)",
                out.display(),
                intent.format
            ));
            Err(Exit::Invalid)
        }
        None => {
            output::error(format_args!(
                "{}: the intent to update has problems; nothing was written",
                out.display()
            ));
            Err(Exit::Invalid)
        }
    }
}

/// `--target`, or the destination of the intent being updated (which
/// `--target` may name, but not change).
fn choose_target(
    target: Option<RegistryName>,
    existing: Option<&Intent>,
    out: Option<&std::path::Path>,
) -> Result<RegistryName, Exit> {
    if let (Some(intent), Some(target)) = (existing, &target) {
        if !intent.destinations.iter().any(|d| d.name == *target) {
            let names: Vec<String> = intent
                .destinations
                .iter()
                .map(|d| d.name.to_string())
                .collect();
            output::error(format_args!("{} sends images to {}, not {target}: edit its registries to change that, or leave out --target",
                out.unwrap_or(std::path::Path::new("-")).display(),
                names.join(", ")
            ));
            return Err(Exit::Usage);
        }
    }
    match target.or_else(|| existing.map(|i| i.destinations[0].name.clone())) {
        Some(target) => Ok(target),
        None => {
            output::error("--target REGISTRY[/path] is needed: where the images go");
            Err(Exit::Usage)
        }
    }
}
