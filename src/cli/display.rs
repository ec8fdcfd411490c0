//! How a run shows itself, set once from the global flags: log lines
//! (level from -v/-q/--log-level or RUST_LOG, text or JSON, colour by
//! --color and NO_COLOR), every line on stderr a log event; and the
//! retries the progress display shows ([`super::progress::Waits`]).

use std::io::IsTerminal as _;
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

use super::progress::Waits;

/// The settings progress needs, from the global flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) quiet: bool,
    /// Log lines are JSON: progress lines are too.
    pub(crate) json: bool,
    pub(crate) interval: Duration,
    pub(crate) color: bool,
}

/// Whether to colour stderr: `always`, `never`, or on a terminal unless
/// NO_COLOR is set to something (<https://no-color.org>).
pub(crate) fn use_color(choice: super::Color) -> bool {
    match choice {
        super::Color::Always => true,
        super::Color::Never => false,
        super::Color::Auto => {
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// The level asked for: -q, -v…, --log-level; `None` leaves it to RUST_LOG.
pub(crate) fn level_from_flags(level: Option<&str>, verbose: u8, quiet: bool) -> Option<String> {
    if quiet {
        return Some("error".into());
    }
    match verbose {
        0 => {}
        1 => return Some("info".into()),
        2 => return Some("debug".into()),
        _ => return Some("trace".into()),
    }
    // logrus's names, for `promoter cip` (`--log-level=warning`).
    level.map(|l| match l.to_ascii_lowercase().as_str() {
        "warning" => "warn".to_string(),
        "fatal" | "panic" => "error".to_string(),
        other => other.to_string(),
    })
}

/// Where the lines meant for the person running the command go: plain
/// lines in text (`error: ...`, `warning: ...`, a diagnostic as
/// `file:line:col: error: ...`), objects under `--log-format json`.
pub(crate) const USER: &str = "promoter::user";
/// Diagnostics about the user's input files (fields: file, line, column,
/// severity, help).
pub(crate) const DIAGNOSTIC: &str = "promoter::diagnostic";

/// Start logging to stderr: every line on stderr is a log event, so that
/// under `--log-format json` every one of them parses. The retry driver's
/// waits go to `waits` as well, whatever the level.
pub(crate) fn init(level: Option<String>, settings: &Settings, waits: &Waits) {
    let filter = filter(level, settings);
    let lines = if settings.json {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .boxed()
    } else {
        let lines = tracing_subscriber::fmt::format()
            .with_target(false)
            .with_ansi(settings.color);
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(settings.color)
            .event_format(Plain {
                lines,
                color: settings.color,
            })
            .boxed()
    };
    let retries =
        tracing_subscriber::filter::Targets::new().with_target(RETRY, tracing::Level::DEBUG);
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(RetryWaits(waits.clone()).with_filter(retries))
        .init();
}

/// Where the retry driver announces a wait (its module).
const RETRY: &str = "promoter::registry::retry";

/// What the lines show: the level asked for (or RUST_LOG), and always what
/// the commands say to the user.
fn filter(level: Option<String>, settings: &Settings) -> tracing_subscriber::EnvFilter {
    let filter = match level {
        Some(level) => tracing_subscriber::EnvFilter::new(format!("promoter={level}")),
        // RUST_LOG in full (`promoter=debug,hyper=info`), when set and valid.
        None => match std::env::var("RUST_LOG") {
            Ok(text) if !text.trim().is_empty() => tracing_subscriber::EnvFilter::try_new(&text)
                .unwrap_or_else(|e| {
                    eprintln!("warning: RUST_LOG is not a log filter ({e}); logging warnings");
                    tracing_subscriber::EnvFilter::new("promoter=warn")
                }),
            _ => tracing_subscriber::EnvFilter::new("promoter=warn"),
        },
    };
    // What the commands say to the user is not a debug log: shown at any
    // level (-q: errors only); diagnostics always.
    let user = if settings.quiet { "error" } else { "info" };
    let mut directives = vec![format!("{USER}={user}"), format!("{DIAGNOSTIC}=warn")];
    // Progress lines and the summary of a JSON log are log events.
    if settings.json {
        directives.push("promoter::progress=info".to_string());
        directives.push(format!("{SUMMARY}=info"));
    } else {
        // In text the report on stdout has the counts.
        directives.push(format!("{SUMMARY}=off"));
    }
    directives.iter().fold(filter, |filter, d| {
        filter.add_directive(d.parse().expect("a valid directive"))
    })
}

/// The run's summary (counts), a log event under `--log-format json` only:
/// in text the report on stdout says it.
pub(crate) const SUMMARY: &str = "promoter::summary";

/// Catches the retry driver's `retrying` events for the progress display.
struct RetryWaits(Waits);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RetryWaits {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let (Some(wait), Some(error)) = (fields.wait_ms, fields.error) {
            let cause = promoter::report::recap::shared(&error);
            self.0.add(Duration::from_millis(wait), cause);
        }
    }
}

/// Text-mode lines: the user's lines and diagnostics as the tool always
/// printed them, every other event as a timestamped log line.
struct Plain {
    lines: tracing_subscriber::fmt::format::Format,
    color: bool,
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let target = event.metadata().target();
        if target != USER && target != DIAGNOSTIC {
            return self.lines.format_event(ctx, writer, event);
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        let text = if target == DIAGNOSTIC {
            fields.diagnostic(level)
        } else {
            let prefix = match level {
                tracing::Level::ERROR => "error: ",
                tracing::Level::WARN => "warning: ",
                _ => "",
            };
            format!("{prefix}{}", fields.message)
        };
        writeln!(writer, "{}", paint(&text, self.color))
    }
}

/// The fields of one of our own events.
#[derive(Default)]
struct Fields {
    message: String,
    file: String,
    line: u64,
    column: u64,
    help: Option<String>,
    /// A retry's wait and what it waits for.
    wait_ms: Option<u64>,
    error: Option<String>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_string(),
            "file" => self.file = value.to_string(),
            "help" => self.help = Some(value.to_string()),
            _ => {}
        }
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        match field.name() {
            "line" => self.line = value,
            "column" => self.column = value,
            "wait_ms" => self.wait_ms = Some(value),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            // Display values (`%error`) arrive here, written as they show.
            "error" => self.error = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl Fields {
    /// A diagnostic, as [`promoter::diag::Diagnostic`] shows itself.
    fn diagnostic(self, level: tracing::Level) -> String {
        let diagnostic = promoter::diag::Diagnostic {
            severity: match level {
                tracing::Level::ERROR => promoter::diag::Severity::Error,
                _ => promoter::diag::Severity::Warning,
            },
            location: promoter::diag::Location {
                file: std::sync::Arc::from(std::path::Path::new(&self.file)),
                line: self.line as u32,
                col: self.column as u32,
            },
            message: self.message,
            help: self.help,
        };
        diagnostic.to_string()
    }
}

/// `error` and `warning` in colour, when colour is on: at the start of a
/// line, or after a diagnostic's location.
fn paint(text: &str, color: bool) -> std::borrow::Cow<'_, str> {
    if !color {
        return text.into();
    }
    for (word, code) in [("error", "1;31"), ("warning", "1;33")] {
        let mark = format!("{word}: ");
        let at = if text.starts_with(&mark) {
            Some(0)
        } else {
            text.find(&format!(": {mark}")).map(|i| i + 2)
        };
        if let Some(at) = at {
            let (head, tail) = (&text[..at], &text[at + word.len()..]);
            return format!("{head}\x1b[{code}m{word}\x1b[0m{tail}").into();
        }
    }
    text.into()
}
