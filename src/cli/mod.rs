//! The command line: one module per subcommand, each a thin edge over the
//! library's use cases (it parses, calls, prints and picks the exit code),
//! option groups flattened into exactly the subcommands that use them, and
//! one exit-code table ([`output::Exit`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use promoter::exec::Progress;
use promoter::shutdown::Shutdown;

mod apply;
pub(crate) mod args;
mod cip;
mod completions;
pub(crate) mod display;
pub(crate) mod dregsy;
mod image_syncer;
mod import;
mod list;
pub(crate) mod output;
mod pin;
mod progress;
mod run;
mod sinker;
mod snapshot;
mod sync;
mod verify;
mod watch;

pub(crate) use output::Exit;

/// The top-level examples of `promoter --help`.
const EXAMPLES: &str = "Examples:
  promoter run --thin-manifest-dir manifests/quickstart --parse-only   validate a tree (presubmit)
  promoter run --thin-manifest-dir manifests/quickstart                dry run: print the plan
  promoter run --thin-manifest-dir manifests/quickstart --confirm      carry the plan out
  promoter run --manifest m.yaml --plan-out plan.json                  save a plan for review
  promoter apply plan.json --manifest m.yaml                           apply it if nothing drifted
  promoter pin mirror.yaml --out mirror.lock.yaml                      mirror tags as a reviewed lock";

/// `promoter`.
#[derive(Parser, Debug)]
#[command(
    name = "promoter",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PROMOTER_COMMIT"), ")"),
    about = "Declarative, digest-preserving container image promotion",
    long_about = "Reads promoter manifests (CIP format), looks at the registries they name, \
and makes every destination match them: copies what is missing, never moves a tag, never deletes.",
    after_help = format!("{EXAMPLES}\n\n{}", output::EXIT_CODES)
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) log: LogArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How the run shows itself: log lines and progress, for every subcommand.
#[derive(Args, Debug)]
pub(crate) struct LogArgs {
    /// Log verbosity: error, warn, info, debug or trace (logrus's warning,
    /// fatal and panic are accepted). Default warn, or RUST_LOG when it is
    /// set; this flag and -v/-q win over RUST_LOG.
    #[arg(long, global = true, value_name = "LEVEL", help_heading = "Logging", value_parser = [
        "error", "warn", "info", "debug", "trace", "warning", "fatal", "panic",
    ], ignore_case = true)]
    log_level: Option<String>,
    /// More log lines: -v info (one per edge), -vv debug (planning, credential
    /// sources, retries, timings), -vvv trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet", help_heading = "Logging")]
    verbose: u8,
    /// Errors only, and no progress display.
    #[arg(short, long, global = true, help_heading = "Logging")]
    quiet: bool,
    /// Log lines as text, or as JSON (one object per line: timestamp,
    /// level, message and the event's fields).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, help_heading = "Logging")]
    log_format: LogFormat,
    /// Colour on stderr: auto (on a terminal, unless NO_COLOR is set),
    /// always or never.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto, help_heading = "Logging")]
    color: Color,
    /// Off a terminal, a progress line on stderr this often (10s, 1m, 500ms).
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = args::parse_interval, help_heading = "Logging")]
    progress_interval: Duration,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `--color`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Validate manifests, plan, and (with --confirm) promote; or print a
    /// snapshot.
    Run(run::RunArgs),
    /// Apply a plan written by `run --plan-out`, if the registries have not drifted.
    Apply(apply::ApplyArgs),
    /// Check that the destinations hold everything the manifests promote,
    /// complete (manifests, index children, blobs, tags); reads only, unless
    /// --repair --confirm copies again what is lost.
    Verify(verify::VerifyArgs),
    /// Compare two registries (or snapshot files): a unified diff of their
    /// snapshots.
    Diff(snapshot::DiffArgs),
    /// Resolve a mirroring intent (tags chosen by selectors) into a
    /// digest-pinned CIP manifest: a lock file to review, then `run`.
    Pin(pin::PinArgs),
    /// Every fully qualified reference a lock, manifest, intent or seed
    /// tool's file reads or writes, offline.
    List(list::ListArgs),
    /// Newer versions in the sources than a lock, manifest, intent or seed
    /// tool's file pins.
    Outdated(list::OutdatedArgs),
    /// Write the images named elsewhere (Kubernetes YAML) as a mirroring
    /// intent, or add them to the intent already written.
    Import(import::ImportArgs),
    /// Promote again and again: every --interval, read the manifests anew
    /// (and, with --intent, pin it into them first) and promote them.
    Watch(watch::WatchArgs),
    /// `kpromo cip`, flag for flag: CIP's flags with their CIP meaning,
    /// carried out by `promoter run` (README, "Switching from kpromo cip").
    Cip(cip::CipArgs),
    /// kyma image-syncer, flag for flag (and its SYNCER_* variables): its
    /// images file pinned, planned and promoted (README, "Switching from
    /// kyma image-syncer"); it writes unless --dry-run is given.
    ImageSyncer(image_syncer::ImageSyncerArgs),
    /// dregsy, as `promoter dregsy -config=FILE [-run REGEX]`: every task of
    /// its config on its own interval (README, "Switching from dregsy").
    Dregsy(dregsy::DregsyArgs),
    /// Sinker's commands with their flags (create, update, list, push,
    /// copy, check, pull, version) over its .images.yaml (README,
    /// "Switching from Sinker"); push and copy write unless --dryrun.
    Sinker(sinker::SinkerArgs),
    /// A shell completion script on stdout.
    Completions(completions::CompletionsArgs),
    /// The manual page (roff) on stdout, of the tool or of one subcommand.
    Man(completions::ManArgs),
}

/// What every subcommand may use of the process: how to show progress, and
/// the one shutdown that signals request.
pub(crate) struct Ctx {
    display: display::Settings,
    /// Requests waiting to be retried, for the progress display.
    waits: progress::Waits,
    /// -v, -vv...: from -v on, plan lines are shown in full.
    verbose: u8,
    /// Colour on standard output (plans, diffs): `--color`, and a terminal.
    color_stdout: bool,
    shutdown: Shutdown,
    signals: AtomicBool,
}

impl Ctx {
    /// Set up logging from the global flags; the context for the subcommand.
    pub(crate) fn start(cli: &Cli) -> Ctx {
        let log = &cli.log;
        // A drop-in subcommand's own verbosity flag (image-syncer's --debug).
        let verbose = match &cli.command {
            Command::ImageSyncer(args) if args.debug => log.verbose.max(2),
            _ => log.verbose,
        };
        let json = log.log_format == LogFormat::Json;
        let display = display::Settings {
            quiet: log.quiet,
            json,
            interval: log.progress_interval,
            color: display::use_color(log.color),
        };
        let waits = progress::Waits::default();
        display::init(
            display::level_from_flags(log.log_level.as_deref(), verbose, log.quiet),
            &display,
            &waits,
        );
        let color_stdout = match log.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                use std::io::IsTerminal as _;
                display.color && std::io::stdout().is_terminal()
            }
        };
        Ctx {
            display,
            waits,
            verbose: log.verbose,
            color_stdout,
            shutdown: Shutdown::new(),
            signals: AtomicBool::new(false),
        }
    }

    /// How plan text looks: in full with `--wide` or -v, coloured on a
    /// terminal.
    pub(crate) fn style(&self, wide: args::WideArgs) -> promoter::report::Style {
        promoter::report::Style {
            wide: wide.wide || self.verbose > 0,
            color: self.color_stdout,
        }
    }

    /// Whether standard output is coloured (diffs).
    pub(crate) fn color_stdout(&self) -> bool {
        self.color_stdout
    }

    /// The progress display of a run that writes.
    pub(crate) fn progress(&self) -> Option<std::sync::Arc<dyn Progress>> {
        progress::progress(&self.display, &self.waits)
    }

    /// The shutdown, requested by the first SIGTERM or SIGINT from now on
    /// (the edges under way finish, no new one starts); a second one ends
    /// the process at once. For the subcommands that write.
    pub(crate) fn stop_on_signals(&self) -> Shutdown {
        if !self.signals.swap(true, Ordering::SeqCst) {
            let shutdown = self.shutdown.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                for _ in 0..2 {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    if shutdown.requested() {
                        output::say("stopping now: edges under way are left unfinished (a re-run finishes them)");
                        std::process::exit(130);
                    }
                    output::say("stopping: the edges under way finish, no new one starts (signal again to stop at once)");
                    shutdown.request();
                }
            });
        }
        self.shutdown.clone()
    }
}

/// The command line, parsed (dregsy's Go-style `-config=F` taken as
/// `--config=F` after `promoter dregsy` only).
pub(crate) fn parse() -> Result<Cli, clap::Error> {
    Cli::try_parse_from(dregsy::normalise_argv(std::env::args_os().collect()))
}

/// Run the subcommand; its exit code.
pub(crate) async fn dispatch(command: Command, ctx: &Ctx) -> Exit {
    let result = match command {
        Command::Run(args) => run::run(args, ctx).await,
        Command::Apply(args) => apply::apply(args, ctx).await,
        Command::Verify(args) => verify::verify(args, ctx).await,
        Command::Diff(args) => snapshot::diff(args, ctx.color_stdout()).await,
        Command::Pin(args) => pin::pin(args).await,
        Command::List(args) => Ok(list::list(args)),
        Command::Outdated(args) => list::outdated(args).await,
        Command::Import(args) => import::import(args),
        Command::Watch(args) => watch::watch(args, ctx).await,
        Command::Cip(args) => cip::cip(&args, ctx).await,
        Command::ImageSyncer(args) => image_syncer::image_syncer(args, ctx).await,
        Command::Dregsy(args) => dregsy::dregsy(args, ctx).await,
        Command::Sinker(args) => sinker::sinker(args, ctx).await,
        Command::Completions(args) => Ok(completions::completions(args)),
        Command::Man(args) => completions::man(args),
    };
    result.unwrap_or_else(|err| {
        output::report_error(&err);
        output::exit_of(&err)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
