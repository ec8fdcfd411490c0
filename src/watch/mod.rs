//! `promoter watch`: promote again and again. Every interval after the
//! previous cycle ends, the manifests are read anew (with an intent, it is
//! pinned into them first, so new tags are followed) and promoted as `run
//! --confirm` does. A failed cycle is counted and the next one runs as
//! planned; a [`Shutdown`] stops it between edges, and the counters are
//! served at `/metrics` and `/healthz`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::exec::{ExecOptions, Progress, Report, Tee};
use crate::manifest::{ManifestInput, Named};
use crate::mirror::job::PinReport;
use crate::plan::Shard;
use crate::promote::{self, PlanFile, Run, Verdict};
use crate::registry::OpenOptions;
use crate::shutdown::Shutdown;
use crate::wants::{self, Selection};

mod metrics;
pub mod schedule;
mod serve;

pub use metrics::Metrics;
pub use serve::serve;

/// What a watch promotes, and how often.
#[derive(Debug)]
pub struct Watch<'a> {
    /// The manifests promoted every cycle (with `intent`, the lock it is
    /// pinned into: a file, or a thin tree).
    pub input: ManifestInput<'a>,
    /// A mirroring intent (or a seed tool's file) pinned into `input`
    /// first, each cycle.
    pub intent: Option<&'a Path>,
    /// Time from the end of one cycle to the start of the next.
    pub interval: Duration,
    /// Stop after this many cycles (none: until shut down).
    pub cycles: Option<u64>,
    /// Each cycle promotes only the digest entries changed since REV.
    pub since: Option<&'a str>,
    /// Each cycle does only this part of the work.
    pub shard: Option<Shard>,
    /// How the registries are opened.
    pub open: &'a OpenOptions,
    /// How each cycle promotes (its stop is the watch's shutdown).
    pub exec: &'a ExecOptions,
    /// A lost digest fails the cycle.
    pub fail_on_lost: bool,
}

/// Hears what each cycle does, to show it: the loop itself prints nothing.
pub trait Observer: Send + Sync {
    /// A cycle starts.
    fn cycle_started(&self, _cycle: u64) {}
    /// The intent was pinned (or not: the report says why).
    fn pinned(&self, _report: &PinReport) {}
    /// The manifests were read and the wants selected (or not).
    fn selected(&self, _selection: &Selection) {}
    /// The promotion ran: its plan and its results.
    fn promoted(&self, _planned: &PlanFile, _report: &Report) {}
    /// Something failed before anything could be promoted.
    fn failed(&self, _error: &(dyn std::error::Error + 'static)) {}
    /// A cycle ended.
    fn cycle_done(&self, _cycle: u64, _ok: bool, _took: Duration) {}
    /// The progress display of a cycle's promotion, if any.
    fn progress(&self) -> Option<Arc<dyn Progress>> {
        None
    }
}

/// Run `watch` until `shutdown` (or its cycle count), serving `metrics` on
/// `listener` when there is one.
pub async fn run(
    watch: &Watch<'_>,
    shutdown: &Shutdown,
    metrics: &Arc<Metrics>,
    listener: Option<tokio::net::TcpListener>,
    observer: &dyn Observer,
) {
    let server = async {
        if let Some(listener) = listener {
            serve(listener, metrics.clone(), shutdown.wait()).await;
        }
    };
    let cycles = async {
        cycles(watch, shutdown, metrics, observer).await;
        // The cycles are over (a count, or a shutdown): so is the server.
        shutdown.request();
    };
    tokio::join!(server, cycles);
}

async fn cycles(
    watch: &Watch<'_>,
    shutdown: &Shutdown,
    metrics: &Arc<Metrics>,
    observer: &dyn Observer,
) {
    let mut cycle = 0u64;
    while !shutdown.requested() {
        cycle += 1;
        observer.cycle_started(cycle);
        let started = Instant::now();
        let ok = one_cycle(watch, shutdown, metrics, observer).await;
        let took = started.elapsed();
        metrics.cycle(ok, took);
        observer.cycle_done(cycle, ok, took);
        if watch.cycles.is_some_and(|n| cycle >= n) {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(watch.interval) => {}
            () = shutdown.wait() => {}
        }
    }
}

/// Pin (with an intent), select, promote; whether all of it succeeded.
async fn one_cycle(
    watch: &Watch<'_>,
    shutdown: &Shutdown,
    metrics: &Arc<Metrics>,
    observer: &dyn Observer,
) -> bool {
    if let Some(intent) = watch.intent {
        let out = lock_path(watch.input);
        let report = crate::mirror::job::pin_file(
            intent,
            Named::RegularOnly,
            Some(&out),
            watch.open,
            &mut std::io::sink(),
        )
        .await;
        observer.pinned(&report);
        if report.outcome.is_err() {
            return false;
        }
    }
    if shutdown.requested() {
        return true;
    }
    let selection = wants::select(&wants::Request {
        input: watch.input,
        base: None,
        since: watch.since,
        shard: watch.shard,
        named: Named::RegularOnly,
    });
    observer.selected(&selection);
    let selected = match selection.outcome {
        Ok(selected) => selected,
        Err(_) => return false,
    };
    if selected.since.as_ref().is_some_and(|s| s.changed == 0) {
        return true;
    }
    let names = promote::registry_names(&selected.manifests);
    let registries = match crate::registry::open_all(names.iter(), watch.open) {
        Ok(registries) => registries,
        Err(e) => {
            observer.failed(&e);
            return false;
        }
    };
    let mut exec = watch.exec.clone();
    exec.stop = shutdown.clone();
    let shown: Arc<dyn Progress> = metrics.clone();
    let progress = Tee::of([observer.progress(), Some(shown)]);
    let run = Run::new(&registries, &exec, progress);
    let (planned, report) = run.promote(selected.wants).await;
    observer.promoted(&planned, &report);
    promote::verdict(&planned.plan, Some(&report), watch.fail_on_lost) == Verdict::Done
}

/// Where the intent is pinned: the lock file, or the tree (as a directory).
fn lock_path(input: ManifestInput<'_>) -> PathBuf {
    match input {
        ManifestInput::Plain(file) => file.to_path_buf(),
        ManifestInput::ThinTree(dir) => {
            let mut d = dir.as_os_str().to_os_string();
            d.push("/");
            PathBuf::from(d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct Count {
        started: AtomicU64,
        failed: AtomicU64,
    }

    impl Observer for Count {
        fn cycle_started(&self, _: u64) {
            self.started.fetch_add(1, Ordering::SeqCst);
        }
        fn cycle_done(&self, _: u64, ok: bool, _: Duration) {
            if !ok {
                self.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn watch_of<'a>(
        input: ManifestInput<'a>,
        open: &'a OpenOptions,
        exec: &'a ExecOptions,
    ) -> Watch<'a> {
        Watch {
            input,
            intent: None,
            interval: Duration::from_millis(1),
            cycles: Some(3),
            since: None,
            shard: None,
            open,
            exec,
            fail_on_lost: false,
        }
    }

    #[tokio::test]
    async fn a_failed_cycle_does_not_stop_the_next_and_metrics_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.yaml");
        let (open, exec) = (OpenOptions::default(), ExecOptions::default());
        let watch = watch_of(ManifestInput::Plain(&missing), &open, &exec);
        let (metrics, observer) = (Arc::new(Metrics::default()), Count::default());
        run(&watch, &Shutdown::new(), &metrics, None, &observer).await;
        assert_eq!(observer.started.load(Ordering::SeqCst), 3);
        assert_eq!(observer.failed.load(Ordering::SeqCst), 3);
        assert!(!metrics.healthy());
        assert!(metrics
            .render()
            .contains("promoter_cycles_total{result=\"failed\"} 3\n"));
    }

    #[tokio::test]
    async fn a_shutdown_before_the_first_cycle_runs_none() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.yaml");
        let (open, exec) = (OpenOptions::default(), ExecOptions::default());
        let watch = Watch {
            cycles: None,
            ..watch_of(ManifestInput::Plain(&missing), &open, &exec)
        };
        let shutdown = Shutdown::new();
        shutdown.request();
        let observer = Count::default();
        run(&watch, &shutdown, &Arc::default(), None, &observer).await;
        assert_eq!(observer.started.load(Ordering::SeqCst), 0);
    }
}
