//! Diagnostics: errors and warnings about the user's input, each pointing at
//! `file:line:col` with a `help:` line where the fix is known. Diagnostics
//! quote what the user wrote, so every message and help text is passed
//! through [`redact::credentials`] as it is made: whichever loader reports
//! it, a `user:password@` never reaches a CI log.

pub mod redact;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A position in an input file. `line` and `col` are 1-based; 0 means the
/// whole file (no better position is known).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Location {
    /// Display path: relative to the `--thin-manifest-dir` or as given for `--manifest`.
    pub file: Arc<Path>,
    /// 1-based line; 0 when only the file is known.
    pub line: u32,
    /// 1-based column; 0 when only the line (or only the file) is known.
    pub col: u32,
}

impl Location {
    /// A location that points at the whole file, for problems with no better
    /// position (unreadable file, wrong top-level shape).
    pub fn file_only(file: Arc<Path>) -> Location {
        Location {
            file,
            line: 0,
            col: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.col) {
            (0, _) => write!(f, "{}", self.file.display()),
            (line, 0) => write!(f, "{}:{line}", self.file.display()),
            (line, col) => write!(f, "{}:{line}:{col}", self.file.display()),
        }
    }
}

/// How bad a [`Diagnostic`] is: any error stops the run before planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The input is wrong; nothing is planned until it is fixed.
    Error,
    /// Worth fixing, but the run goes on.
    Warning,
}

/// One problem found in the user's input, printed as
/// `path:line:col: error: message` with an optional `help:` line.
/// Build it with [`Diagnostic::error`] or [`Diagnostic::warning`] so that
/// the text is redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Whether this stops the run ([`Severity::Error`]) or only informs.
    pub severity: Severity,
    /// Where in which input file the problem is.
    pub location: Location,
    /// What is wrong, already redacted.
    pub message: String,
    /// How to fix it, already redacted; `None` when no fix is known.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `location`; the message is redacted.
    pub fn error(location: Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Error, location, message.into())
    }
    /// A warning at `location`; the message is redacted.
    pub fn warning(location: Location, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(Severity::Warning, location, message.into())
    }
    fn new(severity: Severity, location: Location, mut message: String) -> Diagnostic {
        redact::credentials(&mut message);
        Diagnostic {
            severity,
            location,
            message,
            help: None,
        }
    }
    /// Adds a `help:` line, redacted like the message.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        let mut help = help.into();
        redact::credentials(&mut help);
        self.help = Some(help);
        self
    }
    /// [`Diagnostic::with_help`] when there is a help text.
    pub fn with_help_opt(self, help: Option<impl Into<String>>) -> Diagnostic {
        match help {
            Some(help) => self.with_help(help),
            None => self,
        }
    }
    /// True for [`Severity::Error`], which blocks planning.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// `path:line:col: error: message`, then `  help: ...` on its own line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {kind}: {}", self.location, self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Sort diagnostics by file, then line, then column, then message, so that
/// output is stable and reads top to bottom.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (
            &a.location.file,
            a.location.line,
            a.location.col,
            &a.message,
            a.severity,
        )
            .cmp(&(
                &b.location.file,
                b.location.line,
                b.location.col,
                &b.message,
                b.severity,
            ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_diagnostic_can_carry_a_password() {
        let at = Location::file_only(Arc::from(Path::new("images.yaml")));
        let d = Diagnostic::error(at.clone(), "bad registry \"https://ci:hunter2@r.example\"")
            .with_help("try \"ci:hunter2@r.example/x\"");
        assert!(!d.to_string().contains("hunter2"), "{d}");
        let w = Diagnostic::warning(at, "u:hunter2@host").with_help_opt(Some("ok"));
        assert!(!w.to_string().contains("hunter2"), "{w}");
        assert_eq!(w.help.as_deref(), Some("ok"));
    }
}
