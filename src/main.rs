//! The `promoter` command line: parse flags, call the library, map outcomes to
//! exit codes. No promotion logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use promoter::exec::{ExecOptions, Executor};

mod cip;
mod display;
use promoter::manifest::{self, ManifestInput};
use promoter::plan;
use promoter::promote;
use promoter::reference::RegistryName;
use promoter::registry::{self, OpenOptions};
use promoter::report;
use promoter::snapshot::{self, Snapshot};

/// Exit codes, documented in README.md.
mod exit {
    pub const OK: u8 = 0;
    pub const INVALID_INPUT: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const REFUSED: u8 = 3;
    pub const FAILED: u8 = 4;
}

#[derive(Parser, Debug)]
#[command(
    name = "promoter",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PROMOTER_COMMIT"), ")"),
    about = "Declarative, digest-preserving container image promotion",
    long_about = "Reads promoter manifests (CIP format), looks at the registries they name, \
and makes every destination match them: copies what is missing, never moves a tag, never deletes.",
    after_help = "Examples:
  promoter run --thin-manifest-dir manifests/quickstart --parse-only   validate a tree (presubmit)
  promoter run --thin-manifest-dir manifests/quickstart                dry run: print the plan
  promoter run --thin-manifest-dir manifests/quickstart --confirm      carry the plan out
  promoter run --manifest m.yaml --plan-out plan.json                  save a plan for review
  promoter apply plan.json --manifest promote.yaml                     apply it if nothing drifted

Exit codes: 0 ok, 1 invalid input, 2 usage error, 3 refused (tag move, conflict, drift), 4 failed edges."
)]
struct Cli {
    /// Log verbosity: error, warn, info, debug or trace (logrus's warning,
    /// fatal and panic are accepted). Default warn, or RUST_LOG when it is
    /// set; this flag and -v/-q win over RUST_LOG.
    #[arg(long, global = true, value_name = "LEVEL", value_parser = [
        "error", "warn", "info", "debug", "trace", "warning", "fatal", "panic",
    ], ignore_case = true)]
    log_level: Option<String>,

    /// More log lines: -v info (one per edge), -vv debug (planning, credential
    /// sources, retries, timings), -vvv trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Errors only, and no progress display.
    #[arg(short, long, global = true)]
    quiet: bool,

    /// Log lines as text, or as JSON (one object per line: timestamp,
    /// level, message and the event's fields).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Colour in log lines and progress: auto (on a terminal, unless
    /// NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,

    /// Off a terminal, a progress line on stderr this often (10s, 1m, 500ms).
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = parse_interval)]
    progress_interval: std::time::Duration,

    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    cip::go_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a duration: write 10s, 1m or 500ms"))
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate manifests, plan, and (with --confirm) promote.
    Run(RunArgs),
    /// Apply a plan written by `run --plan-out`, if the registries have not drifted.
    Apply(ApplyArgs),
    /// Compare two registries (or snapshot files): a unified diff of their
    /// snapshots; exit 0 when equal, 1 when different.
    Diff(DiffArgs),
    /// Check that the destinations hold everything the manifests promote,
    /// complete (manifests, index children, blobs, tags); reads only.
    /// Exit 0 when all is there, 1 when something is missing or wrong, 2
    /// when a destination could not be read.
    Verify(VerifyArgs),
    /// `kpromo cip`, flag for flag: CIP's flags with their CIP meaning,
    /// carried out by `promoter run` (README, "Switching from kpromo cip").
    Cip(cip::CipArgs),
    /// Resolve a mirroring intent (tags chosen by selectors) into a
    /// digest-pinned CIP manifest: a lock file to review, then `run`.
    Pin(PinArgs),
    /// Every fully qualified reference the manifests read or write, offline.
    List(ListArgs),
    /// Newer versions in the sources than the manifests pin; exit 1 when
    /// there are some.
    Outdated(OutdatedArgs),
    /// Write the images named elsewhere (Kubernetes YAML) as a mirroring
    /// intent, or add them to the intent already written.
    Import(ImportArgs),
    /// Promote again and again: every --interval, read the manifests anew
    /// (and, with --intent, pin it into them first) and `run --confirm`.
    /// A failed cycle does not stop the next; SIGTERM or SIGINT lets the
    /// edges under way finish, then exits 0. --listen serves /metrics
    /// (Prometheus) and /healthz.
    Watch(WatchArgs),
    /// A shell completion script on stdout: `promoter completions bash >
    /// /etc/bash_completion.d/promoter`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The manual page (roff) on stdout: `promoter man | man -l -`, or a
    /// subcommand's: `promoter man run`.
    Man {
        /// The subcommand whose page to write.
        subcommand: Option<String>,
    },
}

#[derive(Args, Debug)]
struct WatchArgs {
    /// Time between the end of one cycle and the start of the next (5m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    interval: std::time::Duration,

    /// Serve /metrics and /healthz at this address (127.0.0.1:9090; in a
    /// Kubernetes pod, 0.0.0.0:9090 for the scraper).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,

    /// A mirroring intent (or a Sinker, image-syncer or dregsy file) to pin
    /// into --manifest or --thin-manifest-dir at the start of each cycle,
    /// so that new tags are followed (dregsy's `interval`).
    #[arg(long, value_name = "FILE")]
    intent: Option<PathBuf>,

    /// Stop after this many cycles (for tests and one-off catch-ups).
    #[arg(long, value_name = "N", hide = true)]
    cycles: Option<u64>,

    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args, Debug)]
struct ImportArgs {
    #[command(subcommand)]
    from: ImportFrom,
}

#[derive(Subcommand, Debug)]
enum ImportFrom {
    /// Every image Kubernetes YAML pulls: containers, init and ephemeral
    /// containers of Pods and of the workloads that template them, and the
    /// Prometheus operator's images.
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
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct PinArgs {
    /// The intent: a CIP-shaped manifest whose images choose tags with
    /// selectors (README, "Mirroring").
    intent: PathBuf,

    /// Where the lock goes: a manifest file (one source), or a thin tree
    /// directory (several sources, or a path ending in `/`). Pinning again
    /// keeps what it pins. Default: standard output.
    #[arg(long, value_name = "FILE|DIR")]
    out: Option<PathBuf>,

    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum ListSide {
    /// What the manifests read.
    Source,
    /// What they write.
    Target,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("manifests").required(true).multiple(false))]
struct ListArgs {
    /// Which side to list.
    side: ListSide,
    /// An intent, or a Sinker, image-syncer or dregsy file: the references
    /// it names exactly (tags chosen by selectors are known once pinned).
    #[arg(value_name = "INTENT", group = "manifests")]
    intent: Option<PathBuf>,
    /// A plain manifest file.
    #[arg(long, value_name = "FILE", group = "manifests")]
    manifest: Option<PathBuf>,
    /// A thin manifest tree.
    #[arg(long, value_name = "DIR", group = "manifests")]
    thin_manifest_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("manifests").required(true).multiple(false))]
struct OutdatedArgs {
    /// An intent, or a Sinker, image-syncer or dregsy file: its exact tags
    /// are what it pins.
    #[arg(value_name = "INTENT", group = "manifests")]
    intent: Option<PathBuf>,
    /// A plain manifest file (a lock `pin` wrote, or any CIP manifest).
    #[arg(long, value_name = "FILE", group = "manifests")]
    manifest: Option<PathBuf>,
    /// A thin manifest tree.
    #[arg(long, value_name = "DIR", group = "manifests")]
    thin_manifest_dir: Option<PathBuf>,

    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("manifests").required(true).multiple(false))]
struct VerifyArgs {
    /// A plain manifest file.
    #[arg(long, value_name = "FILE", group = "manifests")]
    manifest: Option<PathBuf>,

    /// A thin manifest tree.
    #[arg(long, value_name = "DIR", group = "manifests")]
    thin_manifest_dir: Option<PathBuf>,

    /// Check only the digest entries that changed since git revision REV.
    #[arg(long, value_name = "REV")]
    since: Option<String>,

    /// Check only part INDEX of COUNT (0-based), as `run --shard`.
    #[arg(long, value_name = "INDEX/COUNT", env = "PROMOTER_SHARD")]
    shard: Option<plan::Shard>,

    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    /// Plans: one line per plan item, then counts (the default for plans).
    Text,
    /// Plans: the documented JSON report (docs/report.schema.json).
    Json,
    /// Snapshots: CIP's images.yaml format (the default for snapshots).
    Yaml,
    /// Snapshots: `name@digest,name:tag` rows, no header.
    Csv,
}

#[derive(Args, Debug, Clone)]
struct RegistryArgs {
    /// A docker config.json / containers auth.json to take credentials from,
    /// before $DOCKER_CONFIG, ~/.docker/config.json and $REGISTRY_AUTH_FILE.
    #[arg(long, value_name = "FILE", global = true)]
    auth_file: Option<PathBuf>,

    /// Per-registry options (TLS, plain HTTP, request budgets, mirrors), YAML
    /// or JSON. Default: $XDG_CONFIG_HOME/promoter/registries.yaml (or
    /// ~/.config/promoter/registries.yaml) when it exists. See README,
    /// "Registry options".
    #[arg(long, visible_alias = "config", value_name = "FILE", global = true)]
    registry_config: Option<PathBuf>,

    /// Do not copy signatures, attestations and SBOMs along with promoted digests.
    #[arg(long, global = true)]
    no_attachments: bool,

    /// Also copy referrers of this artifact type as attachments (repeatable);
    /// signatures, attestations and SBOMs are always recognised.
    #[arg(long, value_name = "TYPE", global = true)]
    attachment_type: Vec<String>,

    /// Read back every manifest, tag and blob written (one HEAD each) and
    /// fail the edge unless the registry holds exactly what was sent.
    #[arg(long, global = true)]
    verify_writes: bool,

    /// A lost digest (in neither the source nor the destination) fails the
    /// run, exit 4, instead of a warning.
    #[arg(long, global = true)]
    fail_on_lost: bool,

    /// A policy gate (repeatable): asked about each source digest before it
    /// is copied, in dry runs too; exit 0 admits, any other status refuses
    /// it (see README, "Hooks").
    #[arg(long, value_name = "CMD", global = true)]
    gate: Vec<String>,

    /// A step run once a digest is in a destination, before its tags are
    /// written (repeatable): signing, for instance (see README, "Hooks").
    #[arg(long, value_name = "CMD", global = true)]
    after_promote: Vec<String>,

    /// How long one hook call may take before it is killed.
    #[arg(long, value_name = "SECS", default_value_t = 600, global = true)]
    hook_timeout: u64,

    /// An environment variable hooks get besides PATH, HOME, USER, TMPDIR,
    /// LANG, LC_ALL and TERM (repeatable); nothing else of ours reaches them.
    #[arg(long, value_name = "NAME", global = true)]
    hook_env: Vec<String>,

    /// Output format: text or json for plans, yaml or csv for snapshots.
    #[arg(long, value_enum, ignore_case = true, global = true)]
    output: Option<Output>,
}

#[derive(Args, Debug, Clone)]
#[command(group = clap::ArgGroup::new("input").required(true).multiple(false))]
#[command(group = clap::ArgGroup::new("manifests").multiple(false))]
struct RunArgs {
    /// A plain manifest file (registries and images in one file).
    #[arg(long, value_name = "FILE", groups = ["input", "manifests"])]
    manifest: Option<PathBuf>,

    /// A thin manifest tree: DIR/manifests/<x>/promoter-manifest.yaml + DIR/images/<x>/images.yaml.
    #[arg(long, value_name = "DIR", groups = ["input", "manifests"])]
    thin_manifest_dir: Option<PathBuf>,

    /// Print what REGISTRY[/path] (or oci:PATH) holds as images.yaml (or --output csv).
    #[arg(long, value_name = "REGISTRY", group = "input")]
    snapshot: Option<String>,

    /// Print what the manifests promote into REGISTRY[/path], offline.
    #[arg(long, value_name = "REGISTRY", requires = "manifests")]
    manifest_based_snapshot_of: Option<String>,

    /// Snapshots: leave out untagged children of indexes.
    #[arg(long)]
    minimal_snapshot: bool,

    /// Snapshots: keep only the digests that carry TAG (with all their tags).
    #[arg(long, value_name = "TAG")]
    snapshot_tag: Option<String>,

    /// Load, validate and conflict-check the manifests, then stop. Never touches the network.
    #[arg(long)]
    parse_only: bool,

    /// Also hold the manifests against what they were at git revision REV
    /// (read from the local repository): a removed image or tag, or a tag
    /// that would move, is an error pointing at the head line and naming
    /// the base line.
    #[arg(long, value_name = "REV", requires = "manifests")]
    base: Option<String>,

    /// With --base: removing images or tags from the manifests is intended
    /// (reported as warnings).
    #[arg(long, requires = "base")]
    allow_removals: bool,

    /// Plan only the digest entries that changed since git revision REV
    /// (added, or with other tags); nothing else is read from any registry.
    #[arg(
        long,
        value_name = "REV",
        requires = "manifests",
        conflicts_with = "parse_only"
    )]
    since: Option<String>,

    /// Carry the plan out. Without it, nothing is written anywhere (dry run).
    #[arg(long)]
    confirm: bool,

    /// Do only part INDEX of COUNT (0-based) of the work, split by
    /// (destination registry, image): COUNT runs together do it all once.
    #[arg(long, value_name = "INDEX/COUNT", env = "PROMOTER_SHARD")]
    shard: Option<plan::Shard>,

    /// Write the plan, with the registry state it was computed from, to FILE
    /// (for review, then `promoter apply FILE`).
    #[arg(long, value_name = "FILE")]
    plan_out: Option<PathBuf>,

    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("manifests").required(true).multiple(false))]
struct ApplyArgs {
    /// A plan file written by `promoter run --plan-out`.
    plan: PathBuf,

    /// The plain manifest the plan was made from: apply writes only what
    /// the manifests promote, never what a field of the plan file says.
    #[arg(long, value_name = "FILE", group = "manifests")]
    manifest: Option<PathBuf>,

    /// The thin manifest tree the plan was made from.
    #[arg(long, value_name = "DIR", group = "manifests")]
    thin_manifest_dir: Option<PathBuf>,

    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Args, Debug)]
struct DiffArgs {
    /// A registry path, an oci: tree, or a snapshot file (images.yaml format).
    a: String,
    /// The same, to compare with.
    b: String,

    /// Leave out untagged children of indexes on both sides.
    #[arg(long)]
    minimal_snapshot: bool,

    #[command(flatten)]
    registry: RegistryArgs,
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
    display::init(
        display::level_from_flags(cli.log_level.as_deref(), cli.verbose, cli.quiet),
        cli.log_format == LogFormat::Json,
        display::Settings {
            quiet: cli.quiet,
            json: cli.log_format == LogFormat::Json,
            interval: cli.progress_interval,
            color: display::use_color(cli.color),
        },
    );
    let code = match cli.command {
        Command::Run(args) => run(args),
        Command::Apply(args) => apply(args),
        Command::Diff(args) => diff(args),
        Command::Verify(args) => verify(args),
        Command::Cip(args) => run_cip(&args),
        Command::Pin(args) => pin(args),
        Command::List(args) => list(args),
        Command::Outdated(args) => outdated(args),
        Command::Import(ImportArgs {
            from: ImportFrom::Kubernetes(args),
        }) => import_kubernetes(args),
        Command::Watch(args) => watch(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "promoter", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Man { subcommand } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            if let Some(name) = subcommand {
                command.build();
                match command.find_subcommand(&name) {
                    Some(sub) => {
                        let sub = sub.clone();
                        command = sub.name(format!("promoter-{name}"));
                    }
                    None => {
                        eprintln!("error: no subcommand {name:?}; `promoter --help` lists them");
                        return ExitCode::from(exit::USAGE);
                    }
                }
            }
            let mut out = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .context("cannot render the manual page")
                .map(|()| {
                    emit(&String::from_utf8_lossy(&out));
                    exit::OK
                })
        }
    };
    ExitCode::from(code.unwrap_or_else(|err| {
        eprintln!("error: {}", shown(&err));
        exit::INVALID_INPUT
    }))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Where registry options are looked up when no flag names a file.
fn default_registry_config() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    let path = base.join("promoter").join("registries.yaml");
    path.is_file().then_some(path)
}

fn open_options(args: &RegistryArgs) -> anyhow::Result<OpenOptions> {
    let path = args
        .registry_config
        .clone()
        .or_else(default_registry_config);
    let remote = match &path {
        None => Default::default(),
        Some(path) => {
            let bytes = promoter::local_file::read_capped(path, 1 << 20)
                .with_context(|| format!("{}: cannot read the registry options", path.display()))?;
            let text = String::from_utf8(bytes).map_err(|_| {
                anyhow::anyhow!("{}: the registry options are not UTF-8", path.display())
            })?;
            // YAML, of which JSON is a part: one reader for both.
            let parsed = manifest::yaml::parse(&text);
            if let Some(e) = parsed.errors.first() {
                anyhow::bail!(
                    "{}:{}:{}: {}",
                    path.display(),
                    e.pos.line,
                    e.pos.col,
                    e.message
                );
            }
            let json = parsed
                .root
                .as_ref()
                .map(manifest::yaml::to_json)
                .unwrap_or(serde_json::Value::Object(Default::default()));
            serde_json::from_value(json).with_context(|| {
                format!(
                    "{}: not valid registry options (README, \"Registry options\")",
                    path.display()
                )
            })?
        }
    };
    Ok(OpenOptions {
        remote,
        auth_file: args.auth_file.clone(),
    })
}

fn executor(
    registries: &registry::Registries,
    options: &ExecOptions,
    total: Option<u64>,
) -> Executor {
    let shown = display::progress(total);
    let counted: Option<std::sync::Arc<dyn promoter::exec::Progress>> = WATCH_METRICS
        .get()
        .map(|m| m.clone() as std::sync::Arc<dyn promoter::exec::Progress>);
    match display::both(shown, counted) {
        Some(progress) => Executor::with_progress(registries, options, progress),
        None => Executor::new(registries, options),
    }
}

/// Set by `watch`: what stops a cycle, and what counts it.
static STOP: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
    std::sync::OnceLock::new();
static WATCH_METRICS: std::sync::OnceLock<std::sync::Arc<promoter::watch::Metrics>> =
    std::sync::OnceLock::new();

fn watch(args: WatchArgs) -> anyhow::Result<u8> {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    if args.run.snapshot.is_some()
        || args.run.manifest_based_snapshot_of.is_some()
        || args.run.parse_only
        || args.run.plan_out.is_some()
    {
        eprintln!("error: watch promotes: --snapshot, --manifest-based-snapshot-of, --parse-only and --plan-out do not apply");
        return Ok(exit::USAGE);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let wake = Arc::new((std::sync::Mutex::new(()), std::sync::Condvar::new()));
    let metrics = Arc::new(promoter::watch::Metrics::default());
    let _ = STOP.set(stop.clone());
    let _ = WATCH_METRICS.set(metrics.clone());
    // Signals and the metrics server live on a thread of their own: the
    // cycles start runtimes of their own, which cannot nest.
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    let side = {
        let (stop, wake, metrics, listen) =
            (stop.clone(), wake.clone(), metrics.clone(), args.listen);
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (mut term, mut int) = match (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) {
                    (Ok(t), Ok(i)) => (t, i),
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                let listener = match listen {
                    Some(addr) => match tokio::net::TcpListener::bind(addr).await {
                        Ok(l) => Some(l),
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow::anyhow!("--listen {addr}: {e}")));
                            return;
                        }
                    },
                    None => None,
                };
                let _ = ready_tx.send(Ok(()));
                let stopped = async {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                    eprintln!("watch: stopping: the edges under way finish, no new one starts");
                    stop.store(true, Ordering::SeqCst);
                    let _guard = wake.0.lock();
                    wake.1.notify_all();
                };
                match listener {
                    Some(listener) => {
                        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
                        let server = promoter::watch::serve(listener, metrics, async {
                            let _ = rx.await;
                        });
                        tokio::join!(server, async {
                            stopped.await;
                            let _ = tx.send(());
                        });
                    }
                    None => stopped.await,
                }
            });
        })
    };
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            eprintln!("error: {}", shown(&e));
            return Ok(exit::USAGE);
        }
        Err(_) => anyhow::bail!("the signal thread ended before it was ready"),
    }
    let lock_out = match (&args.run.manifest, &args.run.thin_manifest_dir) {
        (Some(file), _) => file.clone(),
        (None, Some(dir)) => {
            let mut d = dir.clone().into_os_string();
            d.push("/");
            PathBuf::from(d)
        }
        _ => unreachable!("clap enforces one input"),
    };
    let mut cycle = 0u64;
    while !stop.load(Ordering::SeqCst) {
        cycle += 1;
        let started = std::time::Instant::now();
        let mut ok = true;
        if let Some(intent) = &args.intent {
            let pinned = pin(PinArgs {
                intent: intent.clone(),
                out: Some(lock_out.clone()),
                registry: args.run.registry.clone(),
            });
            ok = matches!(pinned, Ok(exit::OK));
            if let Err(e) = &pinned {
                eprintln!("error: {}", shown(e));
            }
        }
        if ok && !stop.load(Ordering::SeqCst) {
            let mut run_args = args.run.clone();
            run_args.confirm = true;
            let ran = run(run_args);
            if let Err(e) = &ran {
                eprintln!("error: {}", shown(e));
            }
            ok = matches!(ran, Ok(exit::OK));
        }
        let took = started.elapsed();
        metrics.cycle(ok, took);
        eprintln!(
            "watch: cycle {cycle} {} in {:.1}s",
            if ok {
                "done"
            } else {
                "failed (the next one tries again)"
            },
            took.as_secs_f64()
        );
        if args.cycles.is_some_and(|n| cycle >= n) {
            break;
        }
        let guard = wake.0.lock().unwrap_or_else(|p| p.into_inner());
        if !stop.load(Ordering::SeqCst) {
            let _ = wake.1.wait_timeout(guard, args.interval);
        }
    }
    // The side thread ends with a signal; with --cycles it is left to the
    // process's exit.
    if stop.load(Ordering::SeqCst) {
        let _ = side.join();
    }
    Ok(exit::OK)
}

fn exec_options(args: &RegistryArgs) -> ExecOptions {
    let hooks = (!args.gate.is_empty() || !args.after_promote.is_empty()).then(|| {
        std::sync::Arc::new(promoter::hooks::Hooks::new(promoter::hooks::HookOptions {
            gate: args.gate.clone(),
            after_promote: args.after_promote.clone(),
            timeout: std::time::Duration::from_secs(args.hook_timeout.max(1)),
            env: args.hook_env.clone(),
            ..promoter::hooks::HookOptions::default()
        }))
    });
    ExecOptions {
        attachments: !args.no_attachments,
        verify_writes: args.verify_writes,
        hooks,
        extra_attachment_types: args.attachment_type.clone(),
        stop: STOP.get().cloned(),
        ..ExecOptions::default()
    }
}

/// The output format for a mode, or a usage error naming the ones that fit.
fn output_for(requested: Option<Output>, allowed: &[Output], what: &str) -> Result<Output, u8> {
    match requested {
        None => Ok(allowed[0]),
        Some(o) if allowed.contains(&o) => Ok(o),
        Some(o) => {
            let names: Vec<String> = allowed
                .iter()
                .map(|a| format!("{a:?}").to_lowercase())
                .collect();
            eprintln!(
                "error: --output {} does not apply to {what}; use one of: {}",
                format!("{o:?}").to_lowercase(),
                names.join(", ")
            );
            Err(exit::USAGE)
        }
    }
}

fn parse_registry(text: &str, flag: &str) -> anyhow::Result<RegistryName> {
    // The argument itself is never echoed: it may hold credentials
    // (`https://user:password@host`). The parser's message names only what
    // is safe to show.
    RegistryName::parse(text).map_err(|e| {
        let help = e.help.map(|h| format!(" ({h})")).unwrap_or_default();
        anyhow::anyhow!("{flag}: {}{help}", e.message)
    })
}

fn print_snapshot(snapshot: Snapshot, args: &RunArgs, output: Output) {
    let snapshot = if args.minimal_snapshot {
        snapshot.minimal()
    } else {
        snapshot
    };
    let snapshot = match &args.snapshot_tag {
        Some(tag) => snapshot.with_tag(tag),
        None => snapshot,
    };
    match output {
        Output::Csv => emit(&snapshot.to_csv()),
        _ => emit(&snapshot.to_yaml()),
    }
}

fn run(args: RunArgs) -> anyhow::Result<u8> {
    // A snapshot reads and prints: flags about promoting would be ignored.
    if args.snapshot.is_some() || args.manifest_based_snapshot_of.is_some() {
        let promoting: Vec<&str> = [
            (args.confirm, "--confirm"),
            (args.plan_out.is_some(), "--plan-out"),
            (args.since.is_some(), "--since"),
            (args.base.is_some(), "--base"),
            (args.shard.is_some(), "--shard"),
            (args.parse_only, "--parse-only"),
        ]
        .into_iter()
        .filter_map(|(set, flag)| set.then_some(flag))
        .collect();
        if !promoting.is_empty() {
            eprintln!(
                "error: {} do{} not apply to a snapshot, which only reads; leave {} out",
                promoting.join(", "),
                if promoting.len() == 1 { "es" } else { "" },
                if promoting.len() == 1 { "it" } else { "them" }
            );
            return Ok(exit::USAGE);
        }
    }
    if let Some(registry) = &args.snapshot {
        let output = match output_for(
            args.registry.output,
            &[Output::Yaml, Output::Csv],
            "snapshots",
        ) {
            Ok(o) => o,
            Err(code) => return Ok(code),
        };
        let root = parse_registry(registry, "--snapshot")?;
        let options = open_options(&args.registry)?;
        let snapshot = runtime()?.block_on(async {
            let registries = registry::open_all([&root], &options)?;
            let endpoint = registries.get(&root.endpoint);
            snapshot::of_registry(endpoint.as_ref(), &root).await
        })?;
        print_snapshot(snapshot, &args, output);
        return Ok(exit::OK);
    }
    let input = input_of(&args.manifest, &args.thin_manifest_dir);
    let snapshot_root = match &args.manifest_based_snapshot_of {
        Some(text) => Some(parse_registry(text, "--manifest-based-snapshot-of")?),
        None => None,
    };
    let allowed: &[Output] = if snapshot_root.is_some() {
        &[Output::Yaml, Output::Csv]
    } else {
        &[Output::Text, Output::Json]
    };
    let output = match output_for(
        args.registry.output,
        allowed,
        if snapshot_root.is_some() {
            "snapshots"
        } else {
            "plans"
        },
    ) {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    let loaded = manifest::load(input);
    for diagnostic in &loaded.diagnostics {
        eprintln!("{diagnostic}");
    }
    if loaded.has_errors() {
        let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!("error: {errors} problem(s) in the manifests; nothing was planned");
        return Ok(exit::INVALID_INPUT);
    }
    if let Some(rev) = &args.base {
        let base = match load_at(&input, rev) {
            Ok(base) => base,
            Err(err) => {
                eprintln!("error: --base {rev}: {err}");
                return Ok(exit::INVALID_INPUT);
            }
        };
        let findings = promoter::review::compare(&base.manifests, &loaded.manifests);
        let mut diagnostics: Vec<_> = findings
            .iter()
            .map(|f| f.diagnostic(args.allow_removals))
            .collect();
        promoter::diag::sort(&mut diagnostics);
        for diagnostic in &diagnostics {
            eprintln!("{diagnostic}");
        }
        let errors = diagnostics.iter().filter(|d| d.is_error()).count();
        if errors > 0 {
            eprintln!("error: {errors} change(s) against {rev} would undo a promotion; nothing was planned");
            let moves = findings.iter().any(|f| f.is_move());
            return Ok(if moves {
                exit::REFUSED
            } else {
                exit::INVALID_INPUT
            });
        }
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
        return Ok(exit::OK);
    }
    if let Some(root) = &snapshot_root {
        let snapshot = snapshot::of_manifests(&loaded.manifests, root);
        let snapshot = if args.minimal_snapshot {
            // Which untagged digests are index children is only known by
            // reading the source.
            let options = open_options(&args.registry)?;
            runtime()?.block_on(mark_index_children(
                snapshot,
                &loaded.manifests,
                root,
                &options,
            ))?
        } else {
            snapshot
        };
        print_snapshot(snapshot, &args, output);
        return Ok(exit::OK);
    }
    let options = open_options(&args.registry)?;
    let names = promote::registry_names(&loaded.manifests);
    let mut wants = plan::wants(&loaded.manifests);
    if let Some(rev) = &args.since {
        let base = match load_at(&input, rev) {
            Ok(base) => base,
            Err(err) => {
                eprintln!("error: --since {rev}: {err}");
                return Ok(exit::INVALID_INPUT);
            }
        };
        let changed = promoter::review::changed(&base.manifests, &loaded.manifests);
        if changed.is_empty() {
            eprintln!("nothing changed since {rev}: nothing to do");
            return Ok(exit::OK);
        }
        eprintln!(
            "{} digest entr{} changed since {rev}; planning only those",
            changed.len(),
            if changed.len() == 1 { "y" } else { "ies" }
        );
        wants = promoter::review::only_changed(wants, &changed);
    }
    if let Some(shard) = args.shard {
        wants = plan::shard(wants, shard);
    }
    runtime()?.block_on(async {
        let registries = registry::open_all(names.iter(), &options)?;
        let (planned, execution) = if args.confirm {
            let (planned, report) = {
                let options = exec_options(&args.registry);
                let executor = executor(&registries, &options, None);
                promote::promote(wants, &registries, &executor, &options).await
            };
            (planned, Some(report))
        } else {
            let options = exec_options(&args.registry);
            (promote::plan(wants, &registries, &options).await, None)
        };
        let to_stdout = args.plan_out.as_deref() == Some(std::path::Path::new("-"));
        match &args.plan_out {
            // The plan file is the output; the report goes to stderr.
            Some(_) if to_stdout => {
                emit(&String::from_utf8_lossy(&promote::plan_file_bytes(
                    &planned,
                )));
                emit("\n");
            }
            Some(path) => {
                promote::write_plan_file(path, &planned)?;
                eprintln!("plan written to {}", path.display());
            }
            None => {}
        }
        Ok(finish(
            &planned.plan,
            execution.as_ref(),
            output,
            Finish {
                fail_on_lost: args.registry.fail_on_lost,
                to_stderr: to_stdout,
            },
        ))
    })
}

/// For `--manifest-based-snapshot-of --minimal-snapshot`: read the sources'
/// indexes to learn which untagged digests are index children.
async fn mark_index_children(
    snapshot: Snapshot,
    manifests: &[manifest::Manifest],
    root: &RegistryName,
    options: &OpenOptions,
) -> anyhow::Result<Snapshot> {
    let names = promote::registry_names(manifests);
    let registries = registry::open_all(names.iter(), options)?;
    Ok(snapshot::mark_index_children(snapshot, manifests, root, &registries).await?)
}

/// A diff side: a snapshot file when the path is a file, else a registry.
async fn snapshot_of(side: &str, options: &OpenOptions) -> anyhow::Result<Snapshot> {
    let path = std::path::Path::new(side);
    // A file name that is not there is a typo, not a registry to look up.
    let looks_like_a_file = side.starts_with(['.', '/'])
        || [".yaml", ".yml", ".csv", ".json"]
            .iter()
            .any(|ext| side.ends_with(ext));
    if !path.exists() && looks_like_a_file && !side.starts_with("oci:") {
        anyhow::bail!("{side}: no such file (a snapshot file, or a registry as host[:port]/path)");
    }
    if path.is_file() {
        return snapshot::of_file(path).map_err(|diagnostics| {
            let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            anyhow::anyhow!("{} is not a valid snapshot:\n{}", side, text.join("\n"))
        });
    }
    let root = parse_registry(side, "diff")?;
    let registries = registry::open_all([&root], options)?;
    let endpoint = registries.get(&root.endpoint);
    Ok(snapshot::of_registry(endpoint.as_ref(), &root).await?)
}

fn diff(args: DiffArgs) -> anyhow::Result<u8> {
    // As GNU diff: 0 the same, 1 different, 2 trouble.
    let read = || -> anyhow::Result<(Snapshot, Snapshot)> {
        let options = open_options(&args.registry)?;
        runtime()?.block_on(async {
            let a = snapshot_of(&args.a, &options).await?;
            let b = snapshot_of(&args.b, &options).await?;
            anyhow::Ok((a, b))
        })
    };
    let (a, b) = match read() {
        Ok(both) => both,
        Err(err) => {
            eprintln!("error: {}", shown(&err));
            return Ok(exit::USAGE);
        }
    };
    let (a, b) = if args.minimal_snapshot {
        (a.minimal(), b.minimal())
    } else {
        (a, b)
    };
    match snapshot::diff(&args.a, &a, &args.b, &b) {
        None => Ok(exit::OK),
        Some(text) => {
            emit(&text);
            Ok(1)
        }
    }
}

fn apply(args: ApplyArgs) -> anyhow::Result<u8> {
    let output = match output_for(args.registry.output, &[Output::Text, Output::Json], "plans") {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    let reviewed = if args.plan.as_os_str() == "-" {
        // Standard input, held to the same cap as a file.
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin().lock(), promote::PLAN_FILE_LIMIT + 1),
            &mut bytes,
        )
        .context("cannot read the plan from standard input")?;
        promote::parse_plan_file(&bytes, "<stdin>".to_string())?
    } else {
        promote::read_plan_file(&args.plan)?
    };
    let input = input_of(&args.manifest, &args.thin_manifest_dir);
    let loaded = manifest::load(input);
    for diagnostic in &loaded.diagnostics {
        eprintln!("{diagnostic}");
    }
    if loaded.has_errors() {
        eprintln!("error: the manifests have problems; nothing was applied");
        return Ok(exit::INVALID_INPUT);
    }
    let wants = match promote::wants_to_apply(&reviewed.wants, &plan::wants(&loaded.manifests)) {
        Ok(wants) => wants,
        Err(mismatch) => {
            eprintln!(
                "error: {} was not made from these manifests: {mismatch}",
                args.plan.display()
            );
            eprintln!("help: pass the manifests the plan was made from, or make a new plan (`promoter run ... --plan-out FILE`); nothing was written");
            return Ok(exit::REFUSED);
        }
    };
    let options = open_options(&args.registry)?;
    let names = promote::registry_names(&loaded.manifests);
    runtime()?.block_on(async {
        let registries = registry::open_all(names.iter(), &options)?;
        let options = exec_options(&args.registry);
        let fresh = promote::plan(wants, &registries, &options).await;
        // Applied already (by this plan, or by a run since): nothing to do.
        let problems = |p: &plan::Plan| -> Vec<plan::PlanItem> {
            p.items.iter().filter(|i| !i.action.is_work()).cloned().collect()
        };
        if fresh.plan.work().next().is_none()
            && reviewed.plan.work().next().is_some()
            && problems(&fresh.plan) == problems(&reviewed.plan)
        {
            eprintln!(
                "{}: already applied, the destinations hold all of it: nothing to do",
                args.plan.display()
            );
            return Ok(exit::OK);
        }
        if let Some(diff) = promote::drift(&reviewed.plan, &fresh.plan) {
            eprintln!(
                "error: the plan is no longer what was reviewed: the registries changed since {} was written, or the file was edited:",
                args.plan.display()
            );
            eprint!("{diff}");
            eprintln!("help: review the new plan (`promoter run ... --plan-out FILE`) and apply that instead; nothing was written");
            return Ok(exit::REFUSED);
        }
        let total = fresh.plan.work().count() as u64;
        let executor = executor(&registries, &options, Some(total));
        let execution = promoter::exec::execute(&fresh.plan, &executor, &options).await;
        Ok(finish(
            &fresh.plan,
            Some(&execution),
            output,
            Finish {
                fail_on_lost: args.registry.fail_on_lost,
                to_stderr: false,
            },
        ))
    })
}

fn input_of<'a>(manifest: &'a Option<PathBuf>, dir: &'a Option<PathBuf>) -> ManifestInput<'a> {
    match (manifest, dir) {
        (Some(file), None) => ManifestInput::Plain(file),
        (None, Some(dir)) => ManifestInput::ThinTree(dir),
        _ => unreachable!("clap enforces exactly one input"),
    }
}

/// Load manifests, printing their diagnostics; `None` when they have errors.
fn load_valid(input: ManifestInput<'_>) -> Option<manifest::Loaded> {
    let loaded = manifest::load(input);
    for diagnostic in &loaded.diagnostics {
        eprintln!("{diagnostic}");
    }
    if loaded.has_errors() {
        eprintln!("error: the manifests have problems");
        return None;
    }
    Some(loaded)
}

fn pin(args: PinArgs) -> anyhow::Result<u8> {
    let (intent, diagnostics) = manifest::intent::load(&args.intent);
    let mut diagnostics = diagnostics;
    if let Some(intent) = &intent {
        diagnostics.extend(promoter::mirror::pin::check(intent));
    }
    promoter::diag::sort(&mut diagnostics);
    for diagnostic in &diagnostics {
        eprintln!("{diagnostic}");
    }
    let Some(intent) = intent.filter(|_| !diagnostics.iter().any(|d| d.is_error())) else {
        eprintln!("error: the intent has problems; nothing was pinned");
        return Ok(exit::INVALID_INPUT);
    };
    // What an earlier pin wrote: kept, whatever the sources say now.
    let previous = match &args.out {
        Some(out) if out.is_file() => load_valid(ManifestInput::Plain(out)),
        Some(out) if out.is_dir() => load_valid(ManifestInput::ThinTree(out)),
        _ => Some(manifest::Loaded {
            manifests: Vec::new(),
            diagnostics: Vec::new(),
        }),
    };
    let Some(previous) = previous else {
        eprintln!("error: the lock to update has problems; fix or remove it");
        return Ok(exit::INVALID_INPUT);
    };
    let options = open_options(&args.registry)?;
    let names: Vec<_> = std::iter::once(intent.source.name.clone())
        .chain(intent.images.iter().filter_map(|i| i.source.clone()))
        .chain(intent.catalog.iter().map(|c| c.source.clone()))
        .collect();
    let pinned = runtime()?.block_on(async {
        let registries = registry::open_all(names.iter(), &options)?;
        anyhow::Ok(promoter::mirror::pin::pin(&intent, &registries, &previous.manifests).await)
    })?;
    for note in &pinned.notes {
        eprintln!("note: {note}");
    }
    if !pinned.errors.is_empty() {
        for e in &pinned.errors {
            eprintln!("error: {e}");
        }
        eprintln!("error: nothing was written");
        return Ok(exit::FAILED);
    }
    let intent_name = args.intent.display().to_string();
    let as_tree = match &args.out {
        Some(out) => out.is_dir() || out.to_string_lossy().ends_with('/') || pinned.locks.len() > 1,
        None => false,
    };
    if pinned.locks.len() > 1 && args.out.is_none() {
        eprintln!(
            "error: the intent pins {} manifests (sources or destinations differ): write a thin tree with --out DIR",
            pinned.locks.len()
        );
        return Ok(exit::USAGE);
    }
    match (&args.out, as_tree) {
        (None, _) => {
            for lock in &pinned.locks {
                emit(&promoter::mirror::pin::lock_text(lock, &intent_name, false));
            }
        }
        (Some(file), false) => {
            let text = pinned
                .locks
                .first()
                .map(|l| promoter::mirror::pin::lock_text(l, &intent_name, false))
                .unwrap_or_default();
            write_file(file, &text)?;
        }
        (Some(dir), true) => {
            let slugs = promoter::mirror::pin::directory_names(&pinned.locks);
            for (lock, slug) in pinned.locks.iter().zip(slugs) {
                let manifests = dir.join("manifests").join(&slug);
                let images = dir.join("images").join(&slug);
                std::fs::create_dir_all(&manifests)?;
                std::fs::create_dir_all(&images)?;
                write_file(
                    &manifests.join("promoter-manifest.yaml"),
                    &promoter::mirror::pin::registries_text(lock),
                )?;
                write_file(
                    &images.join("images.yaml"),
                    &promoter::mirror::pin::lock_text(lock, &intent_name, true),
                )?;
            }
        }
    }
    Ok(exit::OK)
}

/// Replace `path` with `text`: a temporary file beside it, then a rename,
/// so a reader never sees half of it.
fn write_file(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(&dir)
        .with_context(|| format!("{}: cannot write beside it", path.display()))?;
    std::io::Write::write_all(&mut temp, text.as_bytes())?;
    temp.persist(path)
        .with_context(|| format!("{}: cannot write it", path.display()))?;
    Ok(())
}

fn import_kubernetes(args: KubernetesArgs) -> anyhow::Result<u8> {
    let target = match args.target.as_deref().map(RegistryName::parse) {
        Some(Ok(target)) => Some(target),
        Some(Err(e)) => {
            eprintln!("error: --target: {e}");
            return Ok(exit::USAGE);
        }
        None => None,
    };
    let existing = match &args.out {
        Some(out) if out.exists() => {
            let (intent, diagnostics) = manifest::intent::load(out);
            for d in &diagnostics {
                eprintln!("{d}");
            }
            match intent {
                Some(intent) if intent.format == manifest::intent::Format::Intent => Some(intent),
                Some(intent) => {
                    eprintln!(
                        "error: {} is a {}; import writes a promoter intent: name another --out (`promoter pin` reads that file as it is)",
                        out.display(),
                        intent.format
                    );
                    return Ok(exit::INVALID_INPUT);
                }
                None => {
                    eprintln!(
                        "error: {}: the intent to update has problems; nothing was written",
                        out.display()
                    );
                    return Ok(exit::INVALID_INPUT);
                }
            }
        }
        _ => None,
    };
    if let (Some(intent), Some(target)) = (&existing, &target) {
        if !intent.destinations.iter().any(|d| d.name == *target) {
            eprintln!(
                "error: {} sends images to {}, not {target}: edit its registries to change that, or leave out --target",
                args.out.as_deref().unwrap_or(std::path::Path::new("-")).display(),
                intent.destinations.iter().map(|d| d.name.to_string()).collect::<Vec<_>>().join(", ")
            );
            return Ok(exit::USAGE);
        }
    }
    let Some(target) = target.or_else(|| existing.as_ref().map(|i| i.destinations[0].name.clone()))
    else {
        eprintln!("error: --target REGISTRY[/path] is needed: where the images go");
        return Ok(exit::USAGE);
    };
    let (found, mut diagnostics) = promoter::mirror::kubernetes::images_in_paths(&args.paths);
    for image in found.iter().filter(|i| i.implied_latest) {
        diagnostics.push(
            promoter::diag::Diagnostic::warning(
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
    for d in &diagnostics {
        eprintln!("{d}");
    }
    if diagnostics.iter().any(|d| d.is_error()) {
        eprintln!("error: nothing was written");
        return Ok(exit::INVALID_INPUT);
    }
    let intent = promoter::mirror::import::merge(&found, existing, &target);
    let text = promoter::mirror::import::intent_text(
        &intent,
        "A mirroring intent, from `promoter import kubernetes`: `promoter pin` resolves it.",
    );
    match &args.out {
        Some(out) => write_file(out, &text)?,
        None => emit(&text),
    }
    eprintln!("{} images found", found.len());
    Ok(exit::OK)
}

fn list(args: ListArgs) -> anyhow::Result<u8> {
    let side = match args.side {
        ListSide::Source => promoter::mirror::Side::Source,
        ListSide::Target => promoter::mirror::Side::Target,
    };
    if let Some(path) = &args.intent {
        let (intent, diagnostics) = manifest::intent::load(path);
        for d in &diagnostics {
            eprintln!("{d}");
        }
        let Some(intent) = intent else {
            return Ok(exit::INVALID_INPUT);
        };
        let (references, unresolved) = promoter::mirror::intent_references(&intent, side);
        for entry in &unresolved {
            eprintln!("warning: {entry} chooses its tags with selectors: `promoter pin` it, then list the lock");
        }
        for reference in references {
            emit(&format!("{reference}\n"));
        }
        return Ok(exit::OK);
    }
    let Some(loaded) = load_valid(input_of(&args.manifest, &args.thin_manifest_dir)) else {
        return Ok(exit::INVALID_INPUT);
    };
    for reference in promoter::mirror::references(&loaded.manifests, side) {
        emit(&format!("{reference}\n"));
    }
    Ok(exit::OK)
}

fn outdated(args: OutdatedArgs) -> anyhow::Result<u8> {
    let output = match output_for(
        args.registry.output,
        &[Output::Text, Output::Json],
        "outdated",
    ) {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    let pinned = match &args.intent {
        Some(path) => {
            let (intent, diagnostics) = manifest::intent::load(path);
            for d in &diagnostics {
                eprintln!("{d}");
            }
            let Some(intent) = intent else {
                return Ok(exit::INVALID_INPUT);
            };
            promoter::mirror::pinned_in_intent(&intent)
        }
        None => {
            let Some(loaded) = load_valid(input_of(&args.manifest, &args.thin_manifest_dir)) else {
                return Ok(exit::INVALID_INPUT);
            };
            promoter::mirror::pinned_in_manifests(&loaded.manifests)
        }
    };
    let options = open_options(&args.registry)?;
    let names: Vec<RegistryName> = pinned
        .iter()
        .map(|(repo, _)| RegistryName {
            endpoint: repo.endpoint().clone(),
            prefix: String::new(),
        })
        .collect();
    let (found, errors) = runtime()?.block_on(async {
        let registries = registry::open_all(names.iter(), &options)?;
        anyhow::Ok(promoter::mirror::outdated(pinned, &registries).await)
    })?;
    for e in &errors {
        eprintln!("error: {e}");
    }
    match output {
        Output::Json => emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&found).expect("serialises")
        )),
        _ => {
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
        exit::USAGE
    } else if !found.is_empty() {
        exit::INVALID_INPUT
    } else {
        exit::OK
    })
}

fn run_cip(args: &cip::CipArgs) -> anyhow::Result<u8> {
    match cip::translate(args)? {
        cip::Translated::Nothing(why) => {
            eprintln!("{why}");
            Ok(exit::OK)
        }
        cip::Translated::Run(argv) => {
            tracing::debug!("promoter cip runs: {}", argv.join(" "));
            match Cli::try_parse_from(&argv) {
                Ok(Cli {
                    command: Command::Run(run_args),
                    ..
                }) => run(run_args),
                Ok(_) => unreachable!("cip translates into `run`"),
                Err(err) => {
                    let _ = err.print();
                    Ok(exit::USAGE)
                }
            }
        }
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<u8> {
    let output = match output_for(
        args.registry.output,
        &[Output::Text, Output::Json],
        "verify",
    ) {
        Ok(o) => o,
        Err(code) => return Ok(code),
    };
    let input = input_of(&args.manifest, &args.thin_manifest_dir);
    let loaded = manifest::load(input);
    for diagnostic in &loaded.diagnostics {
        eprintln!("{diagnostic}");
    }
    if loaded.has_errors() {
        eprintln!("error: the manifests have problems; nothing was checked");
        return Ok(exit::INVALID_INPUT);
    }
    let mut wants = plan::wants(&loaded.manifests);
    if let Some(rev) = &args.since {
        let base = load_at(&input, rev)?;
        let changed = promoter::review::changed(&base.manifests, &loaded.manifests);
        wants = promoter::review::only_changed(wants, &changed);
    }
    if let Some(shard) = args.shard {
        wants = plan::shard(wants, shard);
    }
    let options = open_options(&args.registry)?;
    let names: Vec<_> = wants.iter().map(|w| w.registry.clone()).collect();
    let found = runtime()?.block_on(async {
        let registries = registry::open_all(names.iter(), &options)?;
        anyhow::Ok(
            promoter::verify::verify(&wants, &registries, promoter::limits::INVENTORY_READS).await,
        )
    })?;
    match output {
        Output::Json => emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&found).expect("a verification serialises")
        )),
        _ => emit(&found.text()),
    }
    Ok(if !found.unchecked.is_empty() {
        exit::USAGE
    } else if !found.problems.is_empty() {
        exit::INVALID_INPUT
    } else {
        exit::OK
    })
}

/// The manifests of `input` as they were at git revision `rev`. Problems
/// in the base are warned about, not fatal: what loaded is compared.
fn load_at(input: &ManifestInput<'_>, rev: &str) -> anyhow::Result<manifest::Loaded> {
    let loaded = match input {
        ManifestInput::Plain(file) => {
            let text = promoter::git::file_at(file, rev)?;
            manifest::load_plain_text(file, &text)
        }
        ManifestInput::ThinTree(dir) => {
            let copy = promoter::git::tree_at(dir, rev)?;
            manifest::load(ManifestInput::ThinTree(copy.path()))
        }
    };
    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        eprintln!(
            "warning: the manifests at {rev} have {errors} problem(s); compared with what loaded there"
        );
    }
    Ok(loaded)
}

/// Print the plan (and the results when it was carried out); choose the exit code.
/// How a run ends, beyond its report.
struct Finish {
    /// `--fail-on-lost`: a lost digest fails the run (exit 4).
    fail_on_lost: bool,
    /// The report goes to stderr (stdout carries a plan file).
    to_stderr: bool,
}

fn finish(
    plan: &plan::Plan,
    execution: Option<&promoter::exec::Report>,
    output: Output,
    how: Finish,
) -> u8 {
    let mut text = String::new();
    match output {
        Output::Json | Output::Yaml | Output::Csv => {
            text.push_str(&format!("{}\n", report::json(plan, execution)))
        }
        Output::Text => match execution {
            // The results list every work item with its outcome; the plan
            // adds what was not work (lost, refused, blocked) and the counts.
            Some(execution) => {
                for item in plan.items.iter().filter(|i| !i.action.is_work()) {
                    text.push_str(&format!("{}\n", report::item_line(item)));
                }
                text.push_str(&report::results_text(execution));
                text.push_str(&format!("{}\n", report::counts_line(&plan.counts())));
            }
            None => {
                text.push_str(&report::plan_text(plan));
                if plan.work().next().is_some() {
                    eprintln!("dry run: nothing was written; add --confirm to carry the plan out");
                }
            }
        },
    }
    if how.to_stderr {
        eprint!("{text}");
    } else {
        emit(&text);
    }
    let lost = plan.counts().lost;
    if lost > 0 && (execution.is_some() || how.fail_on_lost) {
        eprintln!(
            "warning: {lost} wanted digest(s) are in neither the source nor the destination (the `lost` lines){}",
            if how.fail_on_lost { "" } else { "; --fail-on-lost makes that fail the run (exit 4)" }
        );
    }
    let failed = execution.is_some_and(|e| e.failed().next().is_some());
    if plan.has_refusals() {
        exit::REFUSED
    } else if failed || plan.has_blocked() || (how.fail_on_lost && lost > 0) {
        exit::FAILED
    } else {
        exit::OK
    }
}

/// An error with its causes, each said once: a cause whose words the
/// message already carries (`path: No such file`) is not repeated.
fn shown(err: &anyhow::Error) -> String {
    promoter::registry::error_chain(err.as_ref())
}

/// Write to standard output. A reader that went away (`promoter run ... |
/// head`) ends the program quietly, as Unix tools do, instead of the panic
/// `print!` raises; any other write failure is an error.
fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {err}");
        std::process::exit(1);
    }
}
