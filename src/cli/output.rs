//! How the binary ends and speaks: the one exit-code table every
//! subcommand uses, standard output that survives a closed pipe, and the
//! lines on stderr (errors, warnings, diagnostics).

use std::io::Write as _;

use promoter::diag::{Diagnostic, Severity};

use super::display::{DIAGNOSTIC, USER};
use promoter::registry::RegistryError;

/// How a subcommand ends. One table for all of them (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Done; for `diff`, `verify` and `outdated`: nothing differs.
    Ok,
    /// `diff`, `verify`, `outdated`: something differs, is missing or is
    /// newer (1, as GNU diff says "different").
    Different,
    /// The input is wrong: manifests, intents, plan or options files (1).
    Invalid,
    /// The command line is wrong (2).
    Usage,
    /// A promotion refused: a tag move, a gate's no, a plan that drifted (3).
    Refused,
    /// Edges failed, or a registry could not be read or written (4).
    Failed,
}

impl Exit {
    /// The process exit status.
    pub(crate) fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Different | Exit::Invalid => 1,
            Exit::Usage => 2,
            Exit::Refused => 3,
            Exit::Failed => 4,
        }
    }
}

/// The table as `--help` shows it.
pub(crate) const EXIT_CODES: &str = "Exit codes (every subcommand):
  0  done; diff, verify, outdated: nothing differs
  1  invalid input (manifests, conflicts, intents, plan or options files);
     diff, verify, outdated: something differs, is missing or is newer
  2  usage error (an unknown flag, or one the mode does not use)
  3  refused: a tag would move, a gate said no, a plan drifted
  4  failed: edges failed, or a registry could not be read or written";

/// The exit code for an error that reached the edge: a registry that could
/// not be read or written is a failure (4); anything else, the user's own
/// settings and credentials files included, is input (1).
pub(crate) fn exit_of(err: &anyhow::Error) -> Exit {
    let registry = err
        .chain()
        .find_map(|cause| cause.downcast_ref::<RegistryError>());
    match registry {
        Some(RegistryError::Config { .. } | RegistryError::Credentials(_)) | None => Exit::Invalid,
        Some(_) => Exit::Failed,
    }
}

/// Print an error that ends the command, with its causes, each said once.
pub(crate) fn report_error(err: &anyhow::Error) {
    error(shown(err.as_ref()));
}

/// An error with its causes, each said once: a cause whose words the
/// message already carries (`path: No such file`) is not repeated.
pub(crate) fn shown(err: &(dyn std::error::Error + 'static)) -> String {
    promoter::registry::error_chain(err)
}

/// Print diagnostics (manifest, intent and base findings), in their order:
/// `file:line:col: error: message` in text, an object with `file`, `line`,
/// `column`, `severity`, `message` and `help` in JSON.
pub(crate) fn diagnostics(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        let file = d.location.file.display().to_string();
        let (line, column) = (u64::from(d.location.line), u64::from(d.location.col));
        let help = d.help.as_deref();
        match d.severity {
            Severity::Error => tracing::error!(
                target: DIAGNOSTIC, event = "diagnostic", severity = "error",
                file, line, column, help, "{}", d.message
            ),
            Severity::Warning => tracing::warn!(
                target: DIAGNOSTIC, event = "diagnostic", severity = "warning",
                file, line, column, help, "{}", d.message
            ),
        }
    }
}

/// A line for the person running the command (stderr): what happened.
pub(crate) fn say(text: impl std::fmt::Display) {
    tracing::info!(target: USER, event = "message", "{text}");
}

/// An error line (`error: ...` in text).
pub(crate) fn error(text: impl std::fmt::Display) {
    tracing::error!(target: USER, event = "message", "{text}");
}

/// A warning line (`warning: ...` in text).
pub(crate) fn warn(text: impl std::fmt::Display) {
    tracing::warn!(target: USER, event = "message", "{text}");
}

/// What pinning noticed: a warning where the user should act on it.
pub(crate) fn pin_note(note: &promoter::mirror::pin::Note) {
    if note.is_warning() {
        warn(note);
    } else {
        say(format_args!("note: {note}"));
    }
}

/// Write to standard output. A reader that went away (`promoter run ... |
/// head`) ends the program quietly, as Unix tools do, instead of the panic
/// `print!` raises; any other write failure is an error.
pub(crate) fn emit(text: &str) {
    emit_bytes(text.as_bytes());
}

/// [`emit`] for bytes (a generated completion script or man page).
pub(crate) fn emit_bytes(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(bytes).and_then(|()| out.flush()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {err}");
        std::process::exit(Exit::Failed.code().into());
    }
}

/// Standard output as a writer for library code that writes a stream (a
/// lock on stdout): the same closed-pipe rule as [`emit`].
pub(crate) struct Stdout;

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        emit_bytes(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
