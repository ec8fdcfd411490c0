//! `promoter watch`: the library's watch loop, with the terminal's view of
//! each cycle and the signals that stop it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;

use promoter::exec::{Progress, Report};
use promoter::mirror::job::PinReport;
use promoter::promote::PlanFile;
use promoter::wants::Selection;
use promoter::watch::{self, Metrics, Observer, Watch};

use super::args::{self, Format, ManifestArgs, RegistryArgs, SelectArgs};
use super::output::{self, say, Exit};
use super::run::Finish;
use super::Ctx;

/// `watch`'s flags.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  promoter watch --thin-manifest-dir manifests/ --interval 5m --listen 0.0.0.0:9090
  promoter watch --intent mirror.yaml --manifest mirror.lock.yaml --interval 1h   re-pin, then promote

SIGTERM or SIGINT: the edges under way finish, no new one starts, exit 0.
Exit: 0 stopped, 2 usage (a --listen address that cannot be bound).")]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    manifests: ManifestArgs,
    /// A mirroring intent (or a Sinker, image-syncer or dregsy file) to pin
    /// into --manifest or --thin-manifest-dir at the start of each cycle,
    /// so that new tags are followed (dregsy's `interval`).
    #[arg(long, value_name = "FILE", help_heading = "Input")]
    intent: Option<PathBuf>,
    /// Time between the end of one cycle and the start of the next (5m, 1h).
    #[arg(long, value_name = "DURATION", value_parser = args::parse_interval, help_heading = "Schedule")]
    interval: Duration,
    /// Stop after this many cycles (for tests and one-off catch-ups).
    #[arg(long, value_name = "N", hide = true)]
    cycles: Option<u64>,
    /// Serve /metrics and /healthz at this address (127.0.0.1:9090; in a
    /// Kubernetes pod, 0.0.0.0:9090 for the scraper).
    #[arg(long, value_name = "ADDR", help_heading = "Schedule")]
    listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    promotion: args::PromotionArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Output format of each cycle's report.
    #[arg(long, value_enum, ignore_case = true, help_heading = "Output")]
    output: Option<Format>,
    #[command(flatten)]
    wide: args::WideArgs,
}

/// `promoter watch`.
pub(crate) async fn watch(args: WatchArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let open = args.registry.open_options()?;
    let listener = match args.listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                output::error(format_args!("--listen {addr}: {e}"));
                return Ok(Exit::Usage);
            }
        },
        None => None,
    };
    let shutdown = ctx.stop_on_signals();
    let exec = args.promotion.exec_options();
    let watch = Watch {
        input: args.manifests.input(),
        intent: args.intent.as_deref(),
        interval: args.interval,
        cycles: args.cycles,
        since: args.select.since.as_deref(),
        shard: args.select.shard,
        open: &open,
        exec: &exec,
        fail_on_lost: args.promotion.writes.fail_on_lost,
    };
    let shown = Shown {
        ctx,
        format: args.output.unwrap_or_default(),
        wide: args.wide,
        fail_on_lost: args.promotion.writes.fail_on_lost,
        last_diagnostics: Mutex::default(),
    };
    watch::run(
        &watch,
        &shutdown,
        &Arc::new(Metrics::default()),
        listener,
        &shown,
    )
    .await;
    Ok(Exit::Ok)
}

/// What the terminal shows of each cycle.
struct Shown<'a> {
    ctx: &'a Ctx,
    format: Format,
    wide: args::WideArgs,
    fail_on_lost: bool,
    /// The diagnostics last shown: a warning the intent or manifests keep
    /// having is said once, not every cycle.
    last_diagnostics: Mutex<Vec<String>>,
}

impl Shown<'_> {
    fn diagnostics_once(&self, diagnostics: &[promoter::diag::Diagnostic]) {
        let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        let mut last = self
            .last_diagnostics
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *last != text {
            output::diagnostics(diagnostics);
            *last = text;
        }
    }
}

impl Observer for Shown<'_> {
    fn pinned(&self, report: &PinReport) {
        self.diagnostics_once(&report.diagnostics);
        for note in &report.notes {
            output::pin_note(note);
        }
        if let Err(failure) = &report.outcome {
            output::error(format_args!("{}", output::shown(failure)));
        }
    }
    fn selected(&self, selection: &Selection) {
        if selection.outcome.is_err() {
            output::diagnostics(&selection.diagnostics);
        } else {
            self.diagnostics_once(&selection.diagnostics);
        }
        if let Err(refusal) = &selection.outcome {
            output::error(format_args!("{refusal}"));
        }
    }
    fn promoted(&self, planned: &PlanFile, report: &Report) {
        let finish = Finish {
            format: self.format,
            style: self.ctx.style(self.wide),
            fail_on_lost: self.fail_on_lost,
            to_stderr: false,
            interrupted: false,
        };
        finish.report(&planned.plan, Some(report));
    }
    fn failed(&self, error: &(dyn std::error::Error + 'static)) {
        output::error(format_args!("{}", output::shown(error)));
    }
    fn cycle_done(&self, cycle: u64, ok: bool, took: Duration) {
        let how = if ok {
            "done"
        } else {
            "failed (the next one tries again)"
        };
        say(format_args!(
            "watch: cycle {cycle} {how} in {:.1}s",
            took.as_secs_f64()
        ));
    }
    fn progress(&self) -> Option<Arc<dyn Progress>> {
        self.ctx.progress()
    }
}
