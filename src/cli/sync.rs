//! What the drop-in subcommands (`image-syncer`, `sinker push` and `copy`,
//! `dregsy`) share: an intent synced by the library (pinned in memory,
//! planned, promoted with `confirm`), its diagnostics, notes and plan shown
//! as `pin` and `run` show them, and the exit code from the one table.

use promoter::diag::Diagnostic;
use promoter::exec::ExecOptions;
use promoter::manifest::intent::Intent;
use promoter::manifest::Manifest;
use promoter::mirror::sync::{self, Sync, SyncFailure, Synced};
use promoter::registry::OpenOptions;

use super::args::{self, Format};
use super::output::{self, say, Exit};
use super::run::Finish;
use super::Ctx;

/// How one sync is shown.
pub(crate) struct Shown<'a> {
    pub(crate) ctx: &'a Ctx,
    pub(crate) wide: args::WideArgs,
    pub(crate) format: Format,
}

/// Sync `intent` (keeping what `previous` pinned) and show it; the exit
/// code, and what it pinned (for the next sync).
pub(crate) async fn sync_shown(
    intent: &Intent,
    previous: &[Manifest],
    open: &OpenOptions,
    confirm: bool,
    shown: &Shown<'_>,
) -> (Exit, Option<Synced>) {
    let mut exec = ExecOptions::default();
    if confirm {
        exec.stop = shown.ctx.stop_on_signals();
    }
    let request = Sync {
        intent,
        previous,
        open,
        exec: &exec,
        confirm,
    };
    let progress = if confirm { shown.ctx.progress() } else { None };
    match sync::sync(&request, progress).await {
        Ok(synced) => {
            for note in &synced.notes {
                output::pin_note(note);
            }
            let finish = Finish {
                format: shown.format,
                style: shown.ctx.style(shown.wide),
                fail_on_lost: false,
                to_stderr: false,
                interrupted: exec.stop.requested(),
            };
            let exit = finish.report(&synced.planned.plan, synced.report.as_ref());
            (exit, Some(synced))
        }
        Err(failure) => (failed(failure), None),
    }
}

fn failed(failure: SyncFailure) -> Exit {
    match failure {
        SyncFailure::Open(e) => {
            output::error(format_args!("{}", output::shown(&e)));
            output::exit_of(&anyhow::Error::new(e))
        }
        SyncFailure::Sources(errors, notes) => {
            for note in &notes {
                say(format_args!("note: {note}"));
            }
            let registry = errors.iter().any(|e| e.is_registry());
            for e in &errors {
                output::error(format_args!("{e}"));
            }
            output::error("nothing was promoted");
            if registry {
                Exit::Failed
            } else {
                Exit::Invalid
            }
        }
        SyncFailure::Invalid(diagnostics) => {
            output::diagnostics(&diagnostics);
            output::error("the pinned images conflict; nothing was promoted");
            Exit::Invalid
        }
    }
}

/// Show a file's diagnostics; whether it may be used (no error).
pub(crate) fn usable(diagnostics: &[Diagnostic]) -> bool {
    output::diagnostics(diagnostics);
    !diagnostics.iter().any(Diagnostic::is_error)
}
