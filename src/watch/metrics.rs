//! What a long-running promoter says about itself: the counters of its
//! cycles and edges, in the Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::exec::{EdgeResult, Outcome, Progress};

/// Counters of a watch, since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    cycles_ok: AtomicU64,
    cycles_failed: AtomicU64,
    edges_done: AtomicU64,
    edges_failed: AtomicU64,
    bytes_uploaded: AtomicU64,
    /// Unix seconds of the last cycle that succeeded; 0 before one has.
    last_success: AtomicU64,
    /// The last cycle's duration, in milliseconds.
    last_cycle_ms: AtomicU64,
    /// 1 when the last cycle finished failed.
    last_failed: AtomicU64,
}

impl Metrics {
    /// Record a cycle that took `took` and ended `ok` or not.
    pub fn cycle(&self, ok: bool, took: Duration) {
        self.last_cycle_ms
            .store(took.as_millis() as u64, Ordering::Relaxed);
        if ok {
            self.cycles_ok.fetch_add(1, Ordering::Relaxed);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            self.last_success.store(now, Ordering::Relaxed);
            self.last_failed.store(0, Ordering::Relaxed);
        } else {
            self.cycles_failed.fetch_add(1, Ordering::Relaxed);
            self.last_failed.store(1, Ordering::Relaxed);
        }
    }

    /// Whether the watch is healthy: no cycle has finished yet, or the last
    /// one succeeded.
    pub fn healthy(&self) -> bool {
        self.last_failed.load(Ordering::Relaxed) == 0
    }

    /// The counters in the Prometheus text exposition format (0.0.4).
    pub fn render(&self) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, String)]| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in samples {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        metric(
            "promoter_cycles_total",
            "counter",
            "Promotion cycles finished, by result.",
            &[
                ("{result=\"ok\"}", get(&self.cycles_ok).to_string()),
                ("{result=\"failed\"}", get(&self.cycles_failed).to_string()),
            ],
        );
        metric(
            "promoter_edges_total",
            "counter",
            "Edges (a copy, a tag, an attachment in one destination) carried out, by outcome.",
            &[
                ("{outcome=\"done\"}", get(&self.edges_done).to_string()),
                ("{outcome=\"failed\"}", get(&self.edges_failed).to_string()),
            ],
        );
        metric(
            "promoter_bytes_uploaded_total",
            "counter",
            "Blob bytes uploaded to destinations.",
            &[("", get(&self.bytes_uploaded).to_string())],
        );
        metric(
            "promoter_last_success_timestamp_seconds",
            "gauge",
            "When the last successful cycle ended (Unix time; 0 before one has).",
            &[("", get(&self.last_success).to_string())],
        );
        metric(
            "promoter_cycle_duration_seconds",
            "gauge",
            "How long the last cycle took.",
            &[(
                "",
                format!("{:.3}", get(&self.last_cycle_ms) as f64 / 1000.0),
            )],
        );
        out
    }
}

impl Progress for Metrics {
    fn finished(&self, result: &EdgeResult) {
        match result.outcome {
            Outcome::Failed(_) => self.edges_failed.fetch_add(1, Ordering::Relaxed),
            _ => self.edges_done.fetch_add(1, Ordering::Relaxed),
        };
    }
    fn uploaded(&self, bytes: u64) {
        self.bytes_uploaded.fetch_add(bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_render_as_prometheus_text() {
        let m = Metrics::default();
        m.uploaded(2048);
        m.cycle(true, Duration::from_millis(1500));
        m.cycle(false, Duration::from_millis(250));
        let text = m.render();
        assert!(
            text.contains("promoter_cycles_total{result=\"ok\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("promoter_cycles_total{result=\"failed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("promoter_bytes_uploaded_total 2048\n"),
            "{text}"
        );
        assert!(
            text.contains("promoter_cycle_duration_seconds 0.250\n"),
            "{text}"
        );
        assert!(!m.healthy(), "the last cycle failed");
        m.cycle(true, Duration::ZERO);
        assert!(m.healthy());
        // Every sample line is `name[{labels}] value`, after its HELP and TYPE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(name.starts_with("promoter_"), "{line}");
            assert!(
                text.contains(&format!("# TYPE {} ", name.split('{').next().unwrap())),
                "{line}"
            );
        }
    }
}
