//! Progress: a live line on a terminal, a line every `--progress-interval`
//! elsewhere, nothing with -q. The library never draws: it reports to
//! [`promoter::exec::Progress`]. The total grows as planning finds work,
//! so a pipelined run shows `done/total` and an ETA as soon as the first
//! repositories are planned; a request waiting to be retried (a 429, a
//! registry restarting) is shown for as long as it waits.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use promoter::exec::{EdgeResult, Outcome, Progress};

use super::display::Settings;

/// Requests waiting to be retried, as the retry driver announces them
/// (its `retrying` events, caught by [`super::display`]'s layer).
#[derive(Debug, Clone, Default)]
pub(crate) struct Waits(Arc<Mutex<Vec<(Instant, String)>>>);

impl Waits {
    /// A request waits `wait` because of `cause`.
    pub(crate) fn add(&self, wait: Duration, cause: String) {
        let mut waits = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        waits.retain(|(until, _)| *until > now);
        waits.push((now + wait, cause));
    }

    /// `waiting 2s: <cause>` (and how many others wait), when any does.
    fn text(&self) -> Option<String> {
        let mut waits = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        waits.retain(|(until, _)| *until > now);
        let (until, cause) = waits.iter().max_by_key(|(until, _)| *until)?;
        let left = until.saturating_duration_since(now).as_secs_f64().ceil();
        // The count before the cause: a narrow terminal cuts the end.
        let others = match waits.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more)"),
        };
        Some(format!("waiting {left:.0}s{others}: {cause}"))
    }
}

/// The progress display of a run: live on a terminal, periodic lines
/// elsewhere, none with -q.
pub(crate) fn progress(settings: &Settings, waits: &Waits) -> Option<Arc<dyn Progress>> {
    if settings.quiet {
        return None;
    }
    let counts = Arc::new(Counts {
        waits: waits.clone(),
        ..Counts::default()
    });
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
    waits: Waits,
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

    /// `done/total edges done, failed` as the periodic line says it.
    fn edges_text(&self) -> String {
        let (done, total) = (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        );
        let failed = self.failed.load(Ordering::Relaxed);
        let of = if total > 0 {
            format!("/{total}")
        } else {
            String::new()
        };
        format!("{done}{of} edges done, {failed} failed")
    }

    fn planned(&self, done: u64, total: u64) {
        self.planned.store(done, Ordering::Relaxed);
        self.repositories.store(total, Ordering::Relaxed);
    }
}

fn human(bytes: f64) -> String {
    promoter::report::human_bytes(bytes as u64)
}

/// A thread that runs `tick` every `every` until stopped (on drop), and
/// `last` once then.
struct Ticker {
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(every: Duration, tick: impl Fn(bool) + Send + 'static) -> Ticker {
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (lock, wake) = &*stop;
                let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    let (guard, timeout) = wake
                        .wait_timeout(stopped, every)
                        .unwrap_or_else(|p| p.into_inner());
                    stopped = guard;
                    if *stopped {
                        tick(true);
                        return;
                    }
                    if timeout.timed_out() {
                        tick(false);
                    }
                }
            })
        };
        Ticker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// On a terminal: one live line, repositories planned, then edges done of
/// the total found so far, with an ETA, bytes and rate, failures, and what
/// is waiting to be retried.
struct Live {
    bar: indicatif::ProgressBar,
    counts: Arc<Counts>,
    _ticker: Ticker,
}

impl Live {
    fn start(counts: Arc<Counts>) -> Live {
        let bar = indicatif::ProgressBar::new(0);
        // `wide_msg` takes what the terminal has left and cuts the rest,
        // so the line never wraps into a second row that the next redraw
        // leaves behind.
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {elapsed_precise} {bar:20} {pos}/{len} edges, eta {eta_known}  {wide_msg}",
        ) {
            bar.set_style(style.with_key("eta_known", eta_known));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        let started = Instant::now();
        // The message is refreshed on its own too: a wait changes it while
        // no edge finishes.
        let ticker = {
            let (bar, counts) = (bar.clone(), counts.clone());
            Ticker::start(Duration::from_millis(250), move |_| {
                bar.set_message(live_text(&counts, started));
            })
        };
        Live {
            bar,
            counts,
            _ticker: ticker,
        }
    }
}

/// The ETA once an edge is done (before, any estimate is a guess: `-`).
fn eta_known(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    let _ = if state.pos() == 0 {
        w.write_str("-")
    } else {
        write!(w, "{:#}", indicatif::HumanDuration(state.eta()))
    };
}

/// What the live line says after the bar: a wait first (it explains a
/// line that stopped moving, and the terminal's width may cut the end),
/// then planning, bytes and failures.
fn live_text(counts: &Counts, started: Instant) -> String {
    let mut parts: Vec<String> = counts.waits.text().into_iter().collect();
    let (planned, repositories) = (
        counts.planned.load(Ordering::Relaxed),
        counts.repositories.load(Ordering::Relaxed),
    );
    if planned < repositories {
        parts.push(format!("{planned}/{repositories} repos planned"));
    }
    let bytes = counts.bytes.load(Ordering::Relaxed);
    let rate = bytes as f64 / started.elapsed().as_secs_f64().max(0.001);
    parts.push(format!("{} at {}/s", human(bytes as f64), human(rate)));
    let failed = counts.failed.load(Ordering::Relaxed);
    if failed > 0 {
        parts.push(format!("{failed} failed"));
    }
    parts.join(", ")
}

impl Progress for Live {
    fn finished(&self, result: &EdgeResult) {
        self.counts.finished(result);
        self.bar.inc(1);
    }
    fn uploaded(&self, bytes: u64) {
        self.counts.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn planned(&self, done: u64, total: u64) {
        self.counts.planned(done, total);
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
/// the end, so that a long run is never silent; a line that would repeat
/// the last says what is being waited on instead.
struct Periodic {
    counts: Arc<Counts>,
    _ticker: Ticker,
}

impl Periodic {
    fn start(counts: Arc<Counts>, interval: Duration, json: bool) -> Periodic {
        let started = Instant::now();
        let last = Mutex::new(String::new());
        let ticker = {
            let counts = counts.clone();
            Ticker::start(interval, move |end| {
                // What changes when work is done (not the rate, which
                // falls while nothing happens).
                let key = format!(
                    "{:?} {} {}",
                    counts.planning_text(),
                    counts.edges_text(),
                    counts.bytes.load(Ordering::Relaxed)
                );
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                let same = *last == key;
                *last = key;
                let state = format!(
                    "{}{}, {}",
                    counts
                        .planning_text()
                        .map(|p| format!("{p}, "))
                        .unwrap_or_default(),
                    counts.edges_text(),
                    counts.bytes_text(started.elapsed())
                );
                periodic_line(&counts, started, end, same, json, &state);
            })
        };
        Periodic {
            counts,
            _ticker: ticker,
        }
    }
}

/// One periodic line: the counts, or, when they have not changed since the
/// last line, what the run is waiting on.
fn periodic_line(
    counts: &Counts,
    started: Instant,
    end: bool,
    unchanged: bool,
    json: bool,
    state: &str,
) {
    let waiting = counts.waits.text();
    let elapsed = started.elapsed().as_secs_f64();
    if json {
        tracing::info!(
            target: "promoter::progress",
            event = "progress",
            edges_done = counts.done.load(Ordering::Relaxed),
            edges_total = counts.total.load(Ordering::Relaxed),
            edges_failed = counts.failed.load(Ordering::Relaxed),
            bytes_uploaded = counts.bytes.load(Ordering::Relaxed),
            repositories_planned = counts.planned.load(Ordering::Relaxed),
            repositories = counts.repositories.load(Ordering::Relaxed),
            elapsed_secs = elapsed,
            waiting = waiting.as_deref(),
            "{}",
            if end { "progress (end)" } else { "progress" }
        );
        return;
    }
    let text = match (end, unchanged) {
        (false, true) => format!(
            "progress: no change since the last line; {}, {elapsed:.1}s",
            waiting.unwrap_or_else(|| "requests under way".to_string())
        ),
        _ => {
            let waiting = waiting.map(|w| format!(", {w}")).unwrap_or_default();
            let end = if end { " (end)" } else { "" };
            format!("progress{end}: {state}{waiting}, {elapsed:.0}s")
        }
    };
    eprintln!("{text}");
}

impl Progress for Periodic {
    fn finished(&self, result: &EdgeResult) {
        self.counts.finished(result);
    }
    fn uploaded(&self, bytes: u64) {
        self.counts.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    fn planned(&self, done: u64, total: u64) {
        self.counts.planned(done, total);
    }
    fn work_found(&self, edges: u64) {
        self.counts.total.fetch_add(edges, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_shown_while_it_lasts() {
        let waits = Waits::default();
        assert_eq!(waits.text(), None);
        waits.add(
            Duration::from_secs(2),
            "127.0.0.1:5000: rate limited (HTTP 429)".into(),
        );
        waits.add(Duration::from_millis(1), "gone soon".into());
        let text = waits.text().unwrap();
        assert!(
            text.starts_with("waiting 2s (and 1 more): 127.0.0.1:5000: rate limited"),
            "{text}"
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(!waits.text().unwrap().contains("and 1 more"));
    }
}
