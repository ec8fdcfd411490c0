//! How a run shows itself, set once from the global flags: log lines
//! (level from -v/-q/--log-level or RUST_LOG, text or JSON, colour by
//! --color and NO_COLOR) and progress (a live display on a terminal, a
//! line every --progress-interval elsewhere, nothing with -q). The library
//! never draws: it reports to [`promoter::exec::Progress`]. The total
//! grows as planning finds work, so a pipelined run shows `done/total` and
//! an ETA as soon as the first repositories are planned.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promoter::exec::{EdgeResult, Outcome, Progress};

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
/// under `--log-format json` every one of them parses.
pub(crate) fn init(level: Option<String>, settings: &Settings) {
    let json = settings.json;
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
    // Progress lines of a JSON log are log events; -q turns progress off.
    if json {
        directives.push("promoter::progress=info".to_string());
    }
    let filter = directives.iter().fold(filter, |filter, d| {
        filter.add_directive(d.parse().expect("a valid directive"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init();
    } else {
        let lines = tracing_subscriber::fmt::format()
            .with_target(false)
            .with_ansi(settings.color);
        builder
            .with_ansi(settings.color)
            .event_format(Plain {
                lines,
                color: settings.color,
            })
            .init();
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
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
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

/// The progress display of a run: live on a terminal, periodic lines
/// elsewhere, none with -q. Its total grows as planning finds work.
pub(crate) fn progress(settings: &Settings) -> Option<Arc<dyn Progress>> {
    if settings.quiet {
        return None;
    }
    let counts = Arc::new(Counts::default());
    if std::io::stderr().is_terminal() {
        Some(Arc::new(Live::start(counts)))
    } else {
        Some(Arc::new(Periodic::start(
            counts,
            settings.interval,
            settings.json,
        )))
    }
}

/// What both displays count.
#[derive(Default)]
struct Counts {
    /// Edges planning has found so far.
    total: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    planned: AtomicU64,
    repositories: AtomicU64,
}

impl Counts {
    fn finished(&self, result: &EdgeResult) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if let Outcome::Failed(_) = result.outcome {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `12.3 MiB uploaded (4.1 MiB/s)`.
    fn bytes_text(&self, elapsed: Duration) -> String {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let rate = bytes as f64 / elapsed.as_secs_f64().max(0.001);
        format!("{} uploaded ({}/s)", human(bytes as f64), human(rate))
    }

    fn planning_text(&self) -> Option<String> {
        let total = self.repositories.load(Ordering::Relaxed);
        let planned = self.planned.load(Ordering::Relaxed);
        (total > 0).then(|| format!("{planned}/{total} repositories planned"))
    }
}

fn human(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// On a terminal: one live line, repositories planned, then edges done
/// (of how many, with an ETA, when known), bytes and rate, failures.
struct Live {
    bar: indicatif::ProgressBar,
    counts: Arc<Counts>,
    started: Instant,
}

impl Live {
    fn start(counts: Arc<Counts>) -> Live {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} edges, eta {eta}  {msg}",
        ) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Live {
            bar,
            counts,
            started: Instant::now(),
        }
    }

    fn refresh(&self) {
        let mut parts = Vec::new();
        if let Some(planning) = self.counts.planning_text() {
            parts.push(planning);
        }
        parts.push(self.counts.bytes_text(self.started.elapsed()));
        let failed = self.counts.failed.load(Ordering::Relaxed);
        if failed > 0 {
            parts.push(format!("{failed} failed"));
        }
        self.bar.set_message(parts.join(", "));
    }
}

impl Progress for Live {
    fn finished(&self, result: &EdgeResult) {
        self.counts.finished(result);
        self.bar.inc(1);
        self.refresh();
    }
    fn uploaded(&self, bytes: u64) {
        self.counts.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.refresh();
    }
    fn planned(&self, done: u64, total: u64) {
        self.counts.planned.store(done, Ordering::Relaxed);
        self.counts.repositories.store(total, Ordering::Relaxed);
        self.refresh();
    }
    fn work_found(&self, edges: u64) {
        self.counts.total.fetch_add(edges, Ordering::Relaxed);
        self.bar.inc_length(edges);
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Off a terminal (CI logs): a line on stderr every interval, and one at
/// the end, so that a long run is never silent.
struct Periodic {
    counts: Arc<Counts>,
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Periodic {
    fn start(counts: Arc<Counts>, interval: Duration, json: bool) -> Periodic {
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let thread = {
            let stop = stop.clone();
            let counts = counts.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let line = |last: bool| {
                    let done = counts.done.load(Ordering::Relaxed);
                    let failed = counts.failed.load(Ordering::Relaxed);
                    let total = counts.total.load(Ordering::Relaxed);
                    if json {
                        // A log event like the others, so every line parses.
                        tracing::info!(
                            target: "promoter::progress",
                            edges_done = done,
                            edges_total = total,
                            edges_failed = failed,
                            bytes_uploaded = counts.bytes.load(Ordering::Relaxed),
                            repositories_planned = counts.planned.load(Ordering::Relaxed),
                            repositories = counts.repositories.load(Ordering::Relaxed),
                            elapsed_secs = started.elapsed().as_secs_f64(),
                            "{}",
                            if last { "progress (end)" } else { "progress" }
                        );
                        return;
                    }
                    let of = if total > 0 {
                        format!("/{total}")
                    } else {
                        String::new()
                    };
                    let planning = counts
                        .planning_text()
                        .map(|p| format!("{p}, "))
                        .unwrap_or_default();
                    eprintln!(
                        "progress{}: {planning}{done}{of} edges done, {failed} failed, {}, {:.0}s",
                        if last { " (end)" } else { "" },
                        counts.bytes_text(started.elapsed()),
                        started.elapsed().as_secs_f64()
                    );
                };
                let (lock, wake) = &*stop;
                let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    let (guard, timeout) = wake
                        .wait_timeout(stopped, interval)
                        .unwrap_or_else(|p| p.into_inner());
                    stopped = guard;
                    if *stopped {
                        line(true);
                        return;
                    }
                    if timeout.timed_out() {
                        line(false);
                    }
                }
            })
        };
        Periodic {
            counts,
            stop,
            thread: Some(thread),
        }
    }
}

impl Progress for Periodic {
    fn finished(&self, result: &EdgeResult) {
        self.counts.finished(result);
    }
    fn uploaded(&self, bytes: u64) {
        self.counts.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn planned(&self, done: u64, total: u64) {
        self.counts.planned.store(done, Ordering::Relaxed);
        self.counts.repositories.store(total, Ordering::Relaxed);
    }
    fn work_found(&self, edges: u64) {
        self.counts.total.fetch_add(edges, Ordering::Relaxed);
    }
}

impl Drop for Periodic {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
