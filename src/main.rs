//! The `promoter` command line: parse flags, call the library, map outcomes to
//! exit codes. No promotion logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use promoter::manifest::{self, ManifestInput};

/// Exit codes, documented in README.md.
mod exit {
    pub const OK: u8 = 0;
    pub const INVALID_INPUT: u8 = 1;
    pub const USAGE: u8 = 2;
}

#[derive(Parser, Debug)]
#[command(
    name = "promoter",
    version,
    about = "Declarative, digest-preserving container image promotion",
    long_about = "Reads promoter manifests (CIP format), looks at the registries they name, \
and makes every destination match them: copies what is missing, never moves a tag, never deletes.",
    after_help = "Examples:
  promoter run --thin-manifest-dir manifests/quickstart --parse-only   validate a tree (presubmit)
  promoter run --manifest manifests/plain.yaml                          dry run: print the plan
  promoter run --manifest manifests/plain.yaml --confirm                carry the plan out"
)]
struct Cli {
    /// Log verbosity: error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
    log_level: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate manifests, plan, and (with --confirm) promote.
    Run(RunArgs),
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("input").required(true).multiple(false))]
struct RunArgs {
    /// A plain manifest file (registries and images in one file).
    #[arg(long, value_name = "FILE", group = "input")]
    manifest: Option<PathBuf>,

    /// A thin manifest tree: DIR/manifests/<x>/promoter-manifest.yaml + DIR/images/<x>/images.yaml.
    #[arg(long, value_name = "DIR", group = "input")]
    thin_manifest_dir: Option<PathBuf>,

    /// Load, validate and conflict-check the manifests, then stop. Never touches the network.
    #[arg(long)]
    parse_only: bool,

    /// Carry the plan out. Without it, nothing is written anywhere (dry run).
    #[arg(long)]
    confirm: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(match err.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::USAGE,
            });
        }
    };
    init_logging(&cli.log_level);
    match cli.command {
        Command::Run(args) => ExitCode::from(run(args)),
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("promoter={level}"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("promoter=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn run(args: RunArgs) -> u8 {
    let input = match (&args.manifest, &args.thin_manifest_dir) {
        (Some(file), None) => ManifestInput::Plain(file),
        (None, Some(dir)) => ManifestInput::ThinTree(dir),
        _ => unreachable!("clap enforces exactly one input"),
    };
    let loaded = manifest::load(input);
    for diagnostic in &loaded.diagnostics {
        eprintln!("{diagnostic}");
    }
    if loaded.has_errors() {
        let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!("error: {errors} problem(s) in the manifests; nothing was planned");
        return exit::INVALID_INPUT;
    }
    if args.parse_only {
        let digests: usize = loaded
            .manifests
            .iter()
            .map(|m| m.digest_entries().count())
            .sum();
        eprintln!(
            "ok: {} manifest(s), {} digest entr{} valid",
            loaded.manifests.len(),
            digests,
            if digests == 1 { "y" } else { "ies" }
        );
        return exit::OK;
    }
    if args.confirm {
        eprintln!("error: --confirm is not available yet: the executor has not landed; nothing was written");
        return exit::USAGE;
    }
    eprintln!("error: planning is not available yet; use --parse-only to validate manifests");
    exit::USAGE
}
