//! `promoter sinker ...`: Sinker's commands (`create`, `update`, `list`,
//! `push`, `copy`, `check`, `pull`, `version`) with their own flags and
//! `SINKER_*` variables, its `.images.yaml` read and written as Sinker does;
//! `push` and `copy` carried out by promoter's pin, plan and run (registry
//! to registry, no Docker daemon), writing unless `--dryrun` is given, as
//! Sinker does (README, "Switching from Sinker").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{ArgAction, Args, Subcommand};

use promoter::manifest::intent::sinker::{self, registry_path as rp, SinkerFile, Source, Target};
use promoter::manifest::intent::{self, Intent, Located};
use promoter::mirror::kubernetes;

use super::args::{Format, RegistryArgs, WideArgs};
use super::output::{self, emit, say, Exit};
use super::sync::{sync_shown, usable, Shown};
use super::Ctx;

/// Sinker's commands, and its one global flag.
#[derive(Args, Debug)]
pub(crate) struct SinkerArgs {
    /// Path where the manifest file is (defaults to .images.yaml in the
    /// current directory; a path without .yaml/.yml is a directory).
    #[arg(
        short = 'm',
        long,
        global = true,
        value_name = "PATH",
        env = "SINKER_MANIFEST"
    )]
    manifest: Option<String>,
    #[command(subcommand)]
    command: SinkerCommand,
}

#[derive(Subcommand, Debug)]
enum SinkerCommand {
    /// Create a new manifest from Kubernetes YAML (a file, a directory, or - for standard input).
    Create(CreateArgs),
    /// Update an existing manifest from Kubernetes YAML.
    Update(UpdateArgs),
    /// List the images found in the manifest (source or target).
    List(ListArgs),
    /// Refused: promoter does not pull into a local Docker daemon.
    Pull(PullArgs),
    /// Push the images in the manifest to the target (registry to registry).
    Push(CopyArgs),
    /// Copy the images in the manifest directly from source to target.
    Copy(CopyArgs),
    /// Check for newer images.
    Check(CheckArgs),
    /// The version.
    Version,
    /// Not a Sinker command: `copy` copies registry to registry.
    #[command(hide = true)]
    Sync(PullArgs),
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// Kubernetes YAML, or - for standard input.
    source: Option<PathBuf>,
    /// The target repository to sync images to (e.g. host.com/repo).
    #[arg(short = 't', long, required = true)]
    target: String,
    /// Path where the manifest file will be written to.
    #[arg(short = 'o', long, env = "SINKER_OUTPUT")]
    output: Option<String>,
}

#[derive(Args, Debug)]
struct UpdateArgs {
    /// Kubernetes YAML, or - for standard input.
    source: PathBuf,
    /// Path where the updated manifest file will be written to.
    #[arg(short = 'o', long, env = "SINKER_OUTPUT")]
    output: Option<String>,
}

#[derive(Args, Debug)]
struct ListArgs {
    /// Which side: source or target.
    #[arg(value_parser = ["source", "target"])]
    origin: String,
    /// Output the images in the manifest to a file.
    #[arg(short = 'o', long, env = "SINKER_OUTPUT")]
    output: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct PullArgs {
    /// Accepted, to refuse with a message.
    #[arg(hide = true, allow_hyphen_values = true, num_args = 0..)]
    rest: Vec<String>,
}

#[derive(Args, Debug)]
struct CopyArgs {
    /// Print the images that would be written to the target; write nothing.
    #[arg(long, env = "SINKER_DRYRUN", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    dryrun: bool,
    /// Images to copy, instead of the manifest's (comma separated, repeatable).
    #[arg(short = 'i', long, value_delimiter = ',')]
    images: Vec<String>,
    /// Registry the images go to (with --images).
    #[arg(short = 't', long, env = "SINKER_TARGET")]
    target: Option<String>,
    /// copy: accepted; a tag already at the target is left as it is, and one
    /// that points elsewhere is refused (promoter never overwrites a tag).
    #[arg(long, env = "SINKER_FORCE", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    force: bool,
    /// copy: pin this architecture's manifest of an index instead of the index.
    #[arg(short = 'a', long)]
    override_arch: Option<String>,
    /// copy: pin this operating system's manifest of an index instead of the index.
    #[arg(short = 'o', long)]
    override_os: Option<String>,
    /// copy: the whole index, every platform (promoter's default anyway).
    #[arg(long)]
    all_variants: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Output format of the plan.
    #[arg(long, value_enum, ignore_case = true, help_heading = "Output")]
    output: Option<Format>,
    #[command(flatten)]
    wide: WideArgs,
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// `-` reads the images from standard input.
    input: Option<String>,
    /// Images to check (comma separated, repeatable).
    #[arg(short = 'i', long, value_delimiter = ',')]
    images: Vec<String>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// `promoter sinker`.
pub(crate) async fn sinker(args: SinkerArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let manifest = args.manifest.unwrap_or_default();
    match args.command {
        SinkerCommand::Create(a) => create(&manifest, a),
        SinkerCommand::Update(a) => update(&manifest, a),
        SinkerCommand::List(a) => Ok(list(&manifest, &a)),
        SinkerCommand::Pull(_) => {
            output::error(
                "pull: promoter does not pull images into a local Docker daemon; \
                 `promoter sinker copy` (or push) copies them registry to registry",
            );
            Ok(Exit::Usage)
        }
        SinkerCommand::Sync(_) => {
            output::error(
                "Sinker has no `sync` command: `promoter sinker copy` copies the manifest's \
                 images from their sources to the target",
            );
            Ok(Exit::Usage)
        }
        SinkerCommand::Push(a) => copy(&manifest, a, "pushed", ctx).await,
        SinkerCommand::Copy(a) => copy(&manifest, a, "copied", ctx).await,
        SinkerCommand::Check(a) => check(&manifest, a).await,
        SinkerCommand::Version => {
            emit(&format!(
                "sinker version {} (promoter)\n",
                env!("CARGO_PKG_VERSION")
            ));
            Ok(Exit::Ok)
        }
    }
}

/// The images Sinker's discovery finds in `source` (`-`: standard input).
fn discovered(source: &Path) -> Result<Vec<String>, Exit> {
    let (images, diagnostics) = if source.as_os_str() == "-" {
        kubernetes::sinker_images_in_standard_input()
    } else {
        kubernetes::sinker_images_in_paths(&[source.to_path_buf()])
    };
    if usable(&diagnostics) {
        Ok(images)
    } else {
        output::error("get images: the YAML has problems; nothing was written");
        Err(Exit::Invalid)
    }
}

fn create(manifest: &str, args: CreateArgs) -> anyhow::Result<Exit> {
    let path = if manifest.is_empty() {
        args.output.unwrap_or_default()
    } else {
        manifest.to_string()
    };
    let location = sinker::manifest_location(&path);
    if location.is_file() && sinker::load(&location).0.is_some() {
        output::error("create: manifest file already exists");
        return Ok(Exit::Invalid);
    }
    let images = match &args.source {
        Some(source) => match discovered(source) {
            Ok(images) => images,
            Err(exit) => return Ok(exit),
        },
        None => Vec::new(),
    };
    let file = SinkerFile {
        target: Target {
            host: rp::host(&args.target),
            repository: rp::repository(&args.target),
            auth: sinker::Auth::default(),
        },
        sources: Vec::new(),
    };
    promoter::mirror::lock::replace(
        &location,
        &promoter::mirror::import::sinker_update(&file, &images),
    )?;
    say(format_args!(
        "{} images written to {}",
        images.len(),
        location.display()
    ));
    Ok(Exit::Ok)
}

fn update(manifest: &str, args: UpdateArgs) -> anyhow::Result<Exit> {
    let Some(file) = read(manifest) else {
        return Ok(Exit::Invalid);
    };
    let images = match discovered(&args.source) {
        Ok(images) => images,
        Err(exit) => return Ok(exit),
    };
    let out = sinker::manifest_location(args.output.as_deref().unwrap_or(manifest));
    promoter::mirror::lock::replace(
        &out,
        &promoter::mirror::import::sinker_update(&file, &images),
    )?;
    say(format_args!(
        "{} images written to {}",
        images.len(),
        out.display()
    ));
    Ok(Exit::Ok)
}

/// The Sinker file at `manifest` (Sinker's location rule), read as `Get`.
fn read(manifest: &str) -> Option<SinkerFile> {
    let location = sinker::manifest_location(manifest);
    let (file, diagnostics) = sinker::load(&location);
    usable(&diagnostics);
    if file.is_none() {
        output::error(format_args!(
            "get manifest: {} cannot be used",
            location.display()
        ));
    }
    file
}

fn list(manifest: &str, args: &ListArgs) -> Exit {
    let Some(file) = read(manifest) else {
        return Exit::Invalid;
    };
    let text: String = file
        .sources
        .iter()
        .map(|s| {
            let image = if args.origin == "target" {
                s.target_image()
            } else {
                s.image()
            };
            format!("{image}\n")
        })
        .collect();
    match &args.output {
        None => emit(&text),
        Some(path) => {
            if let Err(e) = std::fs::write(path, text) {
                output::error(format_args!("list: creating file {}: {e}", path.display()));
                return Exit::Invalid;
            }
        }
    }
    Exit::Ok
}

/// The intent `push` and `copy` carry out, and its Sinker sources (in
/// the intent's order): the manifest's, or `--images` below `--target`.
fn sources(manifest: &str, args: &CopyArgs) -> Result<(Intent, Vec<Source>), Exit> {
    let (text, name) = if args.images.is_empty() {
        let location = sinker::manifest_location(manifest);
        if read(manifest).is_none() {
            return Err(Exit::Invalid);
        }
        let text = std::fs::read_to_string(&location).map_err(|_| Exit::Invalid)?;
        (text, location)
    } else {
        let Some(target) = &args.target else {
            output::error("target must be specified when using the images flag");
            return Err(Exit::Usage);
        };
        let mut sources = sinker::sources_of_images(&args.images, target);
        let target = sources
            .first()
            .map(|s| s.target.clone())
            .unwrap_or_default();
        for s in &mut sources {
            s.target = Target::default();
        }
        let file = SinkerFile { target, sources };
        (sinker::sinker_text(&file), PathBuf::from("--images"))
    };
    let (loaded, diagnostics) = intent::load_text(&name, &text);
    let (Some(intent), true) = (loaded, usable(&diagnostics)) else {
        output::error("the images cannot be mirrored as they are written; nothing was copied");
        return Err(Exit::Invalid);
    };
    let (file, _) = sinker::load_text(Arc::from(name.as_path()), &text);
    Ok((intent, file.map(|f| f.sources).unwrap_or_default()))
}

async fn copy(manifest: &str, args: CopyArgs, verb: &str, ctx: &Ctx) -> anyhow::Result<Exit> {
    let (mut intent, sources) = match sources(manifest, &args) {
        Ok(found) => found,
        Err(exit) => return Ok(exit),
    };
    if args.force {
        output::warn("--force: a tag already at the target is left as it is, and one that points elsewhere is refused: promoter never overwrites a tag");
    }
    if let Some(platform) = platform(&args) {
        for image in &mut intent.images {
            image.select.platform = Some(Located {
                value: platform.clone(),
                location: image.location.clone(),
            });
        }
    }
    let open = args.registry.open_options()?;
    say(format_args!("Finding images that need to be {verb} ..."));
    let shown = Shown {
        ctx,
        wide: args.wide,
        format: args.output.unwrap_or_default(),
    };
    let (exit, synced) = sync_shown(&intent, &[], &open, !args.dryrun, &shown).await;
    let Some(synced) = synced else {
        return Ok(exit);
    };
    let pending: Vec<(&Source, bool)> = sources
        .iter()
        .zip(&intent.images)
        .map(|(s, i)| (s, promoter::mirror::sync::writes(&synced.planned.plan, i)))
        .collect();
    if pending.iter().all(|(_, p)| !p) {
        say("All images are up to date!");
    } else if args.dryrun {
        let to = if verb == "pushed" {
            "pushed as"
        } else {
            "copied to"
        };
        for (s, _) in pending.iter().filter(|(_, p)| *p) {
            say(format_args!(
                "Image {} would be {to} {}",
                s.image(),
                s.target_image()
            ));
        }
    } else if exit == Exit::Ok {
        say(format_args!("All images have been {verb}!"));
    }
    Ok(exit)
}

/// `--override-os`/`--override-arch` as one platform (the other part
/// this machine's, as containers/image picks it).
fn platform(args: &CopyArgs) -> Option<String> {
    if args.all_variants || (args.override_os.is_none() && args.override_arch.is_none()) {
        return None;
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Some(format!(
        "{}/{}",
        args.override_os.as_deref().unwrap_or("linux"),
        args.override_arch.as_deref().unwrap_or(arch)
    ))
}

async fn check(manifest: &str, args: CheckArgs) -> anyhow::Result<Exit> {
    let images: Vec<String> = if args.input.as_deref() == Some("-") {
        let (images, diagnostics) = kubernetes::sinker_images_in_standard_input();
        if !usable(&diagnostics) {
            return Ok(Exit::Invalid);
        }
        images
    } else if !args.images.is_empty() {
        args.images.clone()
    } else {
        let Some(file) = read(manifest) else {
            return Ok(Exit::Invalid);
        };
        file.sources.iter().map(Source::image).collect()
    };
    let mut pinned = Vec::new();
    let mut shown = Vec::new();
    for image in &images {
        match promoter::reference::ImageReference::parse(image) {
            Ok(r) if r.tag.is_some() => {
                let tag = r.tag.clone().expect("checked").to_string();
                pinned.push((r.registry.repository(&r.name), vec![tag]));
                shown.push(image.clone());
            }
            // Sinker skips images without a tag silently.
            _ => {}
        }
    }
    let open = args.registry.open_options()?;
    let names: Vec<_> = pinned
        .iter()
        .map(|(repo, _)| promoter::reference::RegistryName {
            endpoint: repo.endpoint().clone(),
            prefix: String::new(),
        })
        .collect();
    let registries = promoter::registry::open_all(names.iter(), &open)?;
    let repos: Vec<String> = pinned.iter().map(|(r, _)| r.to_string()).collect();
    let (found, errors) = promoter::mirror::outdated(pinned, &registries).await;
    if let Some(e) = errors.first() {
        output::error(format_args!("check: get tags: {e}"));
        return Ok(Exit::Failed);
    }
    for (image, repo) in shown.iter().zip(&repos) {
        match found.iter().find(|o| &o.source == repo) {
            Some(o) => say(format_args!(
                "New versions for {image} found: [{}]",
                newest_five(&o.newer)
            )),
            None => say(format_args!("Image {image} is up to date!")),
        }
    }
    Ok(Exit::Ok)
}

/// Sinker's list of newer versions: the last five, after `...` when
/// there are more.
fn newest_five(newer: &[String]) -> String {
    if newer.len() > 5 {
        let last: Vec<&str> = newer[newer.len() - 5..]
            .iter()
            .map(String::as_str)
            .collect();
        format!("... {}", last.join(" "))
    } else {
        newer.join(" ")
    }
}
