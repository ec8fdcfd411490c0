//! `promoter pin` as a use case: an intent file in, its lock written (what
//! `watch --intent` does at the start of every cycle too). Diagnostics and
//! notes are returned for the caller to show; nothing is printed here.

use std::path::Path;

use crate::diag::Diagnostic;
use crate::manifest;
use crate::registry::{self, OpenOptions, RegistryError};

use super::lock::{self, LockError, LockOut, Written};
use super::pin::{self, Note, PinError};

/// What pinning an intent file came to.
#[derive(Debug)]
pub struct PinReport {
    /// The intent's diagnostics (errors and warnings), sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// What pinning found worth saying.
    pub notes: Vec<Note>,
    /// What was written, or why nothing was.
    pub outcome: Result<Written, PinFailure>,
}

/// Why nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum PinFailure {
    /// The intent has errors (its diagnostics say which).
    #[error("the intent has problems; nothing was pinned")]
    Invalid,
    /// The lock cannot go where `--out` says, or the one there is broken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A registry could not be opened (its credentials file, say).
    #[error(transparent)]
    Open(#[from] RegistryError),
    /// Sources could not be read, or lack what the intent names.
    #[error("{}\nnothing was written", shown(.0))]
    Sources(Vec<PinError>),
}

fn shown(errors: &[PinError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Pin the intent file `intent` into `out` (absent: `stdout`).
pub async fn pin_file(
    intent: &Path,
    out: Option<&Path>,
    open: &OpenOptions,
    stdout: &mut (dyn std::io::Write + Send),
) -> PinReport {
    let (loaded, mut diagnostics) = manifest::intent::load(intent);
    if let Some(intent) = &loaded {
        diagnostics.extend(pin::check(intent));
    }
    crate::diag::sort(&mut diagnostics);
    let mut report = PinReport {
        outcome: Err(PinFailure::Invalid),
        notes: Vec::new(),
        diagnostics,
    };
    let Some(intent_model) = loaded.filter(|_| !report.diagnostics.iter().any(|d| d.is_error()))
    else {
        return report;
    };
    report.outcome = pin_valid(&intent_model, intent, out, open, stdout, &mut report.notes).await;
    report
}

async fn pin_valid(
    intent: &manifest::intent::Intent,
    intent_file: &Path,
    out: Option<&Path>,
    open: &OpenOptions,
    stdout: &mut (dyn std::io::Write + Send),
    notes: &mut Vec<Note>,
) -> Result<Written, PinFailure> {
    // What an earlier pin wrote is kept, whatever the sources say now.
    let previous = LockOut::choose(out, 1)?.previous()?;
    let names: Vec<_> = std::iter::once(intent.source.name.clone())
        .chain(intent.images.iter().filter_map(|i| i.source.clone()))
        .chain(intent.catalog.iter().map(|c| c.source.clone()))
        .collect();
    let registries = registry::open_all(names.iter(), open)?;
    let pinned = pin::pin(intent, &registries, &previous).await;
    notes.extend(pinned.notes);
    if !pinned.errors.is_empty() {
        return Err(PinFailure::Sources(pinned.errors));
    }
    let target = LockOut::choose(out, pinned.locks.len())?;
    let shown = intent_file.display().to_string();
    Ok(lock::write(&target, &pinned.locks, &shown, stdout)?)
}
