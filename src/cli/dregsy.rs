//! `promoter dregsy -config=FILE [-run REGEX]`: dregsy's command line (Go's
//! `flag` spellings: `-config=F`, `-config F`, `--config=F`), its config
//! read as dregsy reads it, and each task run by promoter's pin, plan and
//! run on its own `interval` (tasks without one once, first), until
//! SIGTERM or SIGINT; SIGHUP, or a change of the file with `watch: true`,
//! reads the config again (README, "Switching from dregsy").

use std::collections::HashMap;
use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;

use promoter::manifest::intent::{self, Intent, ReadOptions, Task, TaskFilter};
use promoter::manifest::Manifest;
use promoter::registry::OpenOptions;
use promoter::shutdown::Shutdown;
use promoter::watch::schedule::{self, Ended, Tasks};

use super::args::{Format, RegistryArgs, WideArgs};
use super::output::{self, say, Exit};
use super::sync::{sync_shown, usable, Shown};
use super::Ctx;

/// dregsy's flags.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  promoter dregsy -config=config.yaml                 every task on its interval, until SIGTERM
  promoter dregsy -config config.yaml -run 'task-a'   only the tasks the expression matches

Exit: 0 done (all tasks once, or stopped by SIGTERM/SIGINT) with every task's last run fine,
1 invalid config, 2 usage, 4 a task's last run failed.")]
pub(crate) struct DregsyArgs {
    /// The dregsy config file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Only the tasks whose name this expression matches in full (`!`
    /// before it: those it does not match).
    #[arg(long = "run", value_name = "REGEX")]
    run_filter: Option<String>,
    /// Accepted and ignored: Go's flag package stops at the first
    /// argument that is no flag.
    #[arg(hide = true, value_name = "IGNORED")]
    ignored: Vec<String>,
    /// A docker config.json / containers auth.json to take credentials
    /// from (before the usual files); a config's `auth` is never read.
    #[arg(long, value_name = "FILE", help_heading = "Registries")]
    auth_file: Option<PathBuf>,
    /// Per-registry options (README, "Registry options"); `--config` is
    /// dregsy's config here.
    #[arg(long, value_name = "FILE", help_heading = "Registries")]
    registry_config: Option<PathBuf>,
    /// Output format of each run's plan.
    #[arg(long, value_enum, ignore_case = true, help_heading = "Output")]
    output: Option<Format>,
    #[command(flatten)]
    wide: WideArgs,
}

/// The command line with dregsy's single-dash long flags (`-config=F`,
/// `-run R`, `-help`) written as clap reads them, after the `dregsy`
/// subcommand only; every other argument as it is.
pub(crate) fn normalise_argv(argv: Vec<OsString>) -> Vec<OsString> {
    const GLOBAL_VALUES: [&str; 4] = [
        "--log-level",
        "--log-format",
        "--color",
        "--progress-interval",
    ];
    let mut at = None;
    let mut skip_value = false;
    for (i, arg) in argv.iter().enumerate().skip(1) {
        let text = arg.to_string_lossy();
        if skip_value {
            skip_value = false;
        } else if GLOBAL_VALUES.contains(&text.as_ref()) {
            skip_value = true;
        } else if !text.starts_with('-') {
            at = (text == "dregsy").then_some(i);
            break;
        }
    }
    let Some(at) = at else {
        return argv;
    };
    argv.into_iter()
        .enumerate()
        .map(|(i, arg)| {
            let text = arg.to_string_lossy();
            let single = ["-config", "-run", "-help"]
                .iter()
                .any(|f| text == *f || text.starts_with(&format!("{f}=")));
            if i > at && single {
                OsString::from(format!("-{text}"))
            } else {
                arg
            }
        })
        .collect()
}

/// `promoter dregsy`.
pub(crate) async fn dregsy(args: DregsyArgs, ctx: &Ctx) -> anyhow::Result<Exit> {
    let Some(config) = args.config.clone() else {
        output::error("synopsis: promoter dregsy -config={config file} [-run {task name regex}]");
        return Ok(Exit::Usage);
    };
    let filter = match TaskFilter::new(args.run_filter.as_deref().unwrap_or(".*")) {
        Ok(filter) => filter,
        Err(e) => {
            output::error(format_args!("invalid task filter: {e}"));
            return Ok(Exit::Usage);
        }
    };
    let registry = RegistryArgs {
        auth_file: args.auth_file.clone(),
        registry_config: args.registry_config.clone(),
    };
    let open = registry.open_options()?;
    let shutdown = ctx.stop_on_signals();
    let restart = Arc::new(Mutex::new(Shutdown::new()));
    restart_on_hangup(restart.clone());
    let shown = Shown {
        ctx,
        wide: args.wide,
        format: args.output.unwrap_or_default(),
    };
    let mut previous: HashMap<String, Vec<Manifest>> = HashMap::new();
    loop {
        let (loaded, diagnostics) = intent::load_with(
            &config,
            // Read again on every restart, as watch reads its files.
            promoter::manifest::Named::RegularOnly,
            &ReadOptions {
                scheduled: true,
                ..ReadOptions::default()
            },
        );
        let (Some(intent), true) = (loaded, usable(&diagnostics)) else {
            output::error("the config has problems; nothing was synced");
            return Ok(Exit::Invalid);
        };
        let round = restart.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let schedule =
            intent
                .schedule
                .clone()
                .unwrap_or_else(|| promoter::manifest::intent::Schedule {
                    tasks: Vec::new(),
                    watch: false,
                });
        if schedule.watch {
            let (path, round) = (config.clone(), round.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = schedule::changed(&path, Duration::from_secs(1), Duration::from_secs(5)) => {
                        say("config file changed, restarting ...");
                        round.request();
                    }
                    () = round.wait() => {}
                }
            });
        }
        let tasks: Vec<Task> = schedule
            .tasks
            .into_iter()
            .filter(|t| filter.matches(&t.name))
            .collect();
        let intervals: Vec<Duration> = tasks
            .iter()
            .map(|t| Duration::from_secs(t.interval))
            .collect();
        let mut runner = Runner {
            intent: &intent,
            tasks: &tasks,
            previous: &mut previous,
            open: &open,
            shown: &shown,
            shutdown: &shutdown,
        };
        let (ended, ok) = schedule::run(&intervals, &mut runner, &shutdown, &round).await;
        round.request();
        match ended {
            Ended::Restart if !shutdown.requested() => {
                *restart.lock().unwrap_or_else(|p| p.into_inner()) = Shutdown::new();
                say("restarting: reading the config again");
            }
            _ => {
                if ok.iter().all(|ok| *ok) {
                    say("all done");
                    return Ok(Exit::Ok);
                }
                output::error("one or more tasks had errors in their last run; see above");
                return Ok(Exit::Failed);
            }
        }
    }
}

/// SIGHUP requests the restart of the current round.
fn restart_on_hangup(restart: Arc<Mutex<Shutdown>>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            say("received SIGHUP, restarting ...");
            restart.lock().unwrap_or_else(|p| p.into_inner()).request();
        }
    });
}

/// Runs a task: its part of the intent synced with `--confirm`'s meaning,
/// keeping what its previous run pinned.
struct Runner<'a> {
    intent: &'a Intent,
    tasks: &'a [Task],
    previous: &'a mut HashMap<String, Vec<Manifest>>,
    open: &'a OpenOptions,
    shown: &'a Shown<'a>,
    shutdown: &'a Shutdown,
}

impl Tasks for Runner<'_> {
    fn run(&mut self, i: usize) -> Pin<Box<dyn Future<Output = bool> + '_>> {
        Box::pin(async move {
            let task = &self.tasks[i];
            say(format_args!("task {}: syncing", task.name));
            let part = self.intent.of_task(task);
            if part.images.is_empty() && part.catalog.is_empty() {
                say(format_args!(
                    "task {}: no mappings, nothing to do",
                    task.name
                ));
                return true;
            }
            let kept = self.previous.get(&task.name).cloned().unwrap_or_default();
            let (exit, synced) = sync_shown(&part, &kept, self.open, true, self.shown).await;
            if let Some(synced) = synced {
                self.previous.insert(task.name.clone(), synced.manifests);
            }
            if exit != Exit::Ok && self.shutdown.requested() {
                // Stopped by SIGTERM between copies, as dregsy stops: not a
                // failure; what it did not reach, its next start does.
                say(format_args!("task {}: stopped", task.name));
                return true;
            }
            let ok = exit == Exit::Ok;
            say(format_args!(
                "task {}: {}",
                task.name,
                if ok {
                    "done"
                } else {
                    "failed (its next run tries again)"
                }
            ));
            ok
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        let os = normalise_argv(args.iter().map(OsString::from).collect());
        os.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn go_flag_spellings_become_clap_ones_after_dregsy_only() {
        assert_eq!(
            argv(&["promoter", "dregsy", "-config=c.yaml", "-run", "a"]),
            ["promoter", "dregsy", "--config=c.yaml", "--run", "a"]
        );
        assert_eq!(
            argv(&[
                "promoter",
                "-v",
                "--log-level",
                "info",
                "dregsy",
                "-config",
                "c.yaml"
            ]),
            [
                "promoter",
                "-v",
                "--log-level",
                "info",
                "dregsy",
                "--config",
                "c.yaml"
            ]
        );
        assert_eq!(
            argv(&["promoter", "dregsy", "--config=c.yaml"]),
            ["promoter", "dregsy", "--config=c.yaml"]
        );
        assert_eq!(
            argv(&["promoter", "run", "-config=x"]),
            ["promoter", "run", "-config=x"]
        );
        assert_eq!(
            argv(&["promoter", "pin", "dregsy", "-run"]),
            ["promoter", "pin", "dregsy", "-run"]
        );
    }
}
