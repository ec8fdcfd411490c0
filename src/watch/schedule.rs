//! Tasks on their own intervals, as dregsy runs them
//! (`internal/pkg/sync/sync.go`): the tasks run once (interval zero) go
//! first, one after the other in their order; then every periodic task
//! runs at once and again every interval. Runs never overlap; a run that
//! outlasts an interval skips the ticks it missed (a Go ticker drops
//! them), and a task is not run again sooner than half its interval after
//! its last run ended (dregsy's "fired too soon"). A [`Shutdown`] stops the
//! schedule between runs (the run under way stops between edges itself);
//! `restart` ends it so that the caller reads its configuration again
//! (SIGHUP, a changed file).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::Instant;

use crate::shutdown::Shutdown;

/// How a schedule ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Every task ran once and none is periodic.
    Done,
    /// A shutdown was requested.
    Stopped,
    /// A restart was requested: read the configuration again.
    Restart,
}

/// What runs the tasks: one run of task `i`, whether it succeeded.
pub trait Tasks {
    /// Run task `i` once.
    fn run(&mut self, i: usize) -> Pin<Box<dyn Future<Output = bool> + '_>>;
}

/// Run the tasks whose intervals are `intervals` (zero: once) until they
/// are done, `shutdown` or `restart`; how it ended, and whether each
/// task's last run succeeded (a task that never ran counts as fine).
pub async fn run(
    intervals: &[Duration],
    tasks: &mut dyn Tasks,
    shutdown: &Shutdown,
    restart: &Shutdown,
) -> (Ended, Vec<bool>) {
    let mut ok = vec![true; intervals.len()];
    for (i, interval) in intervals.iter().enumerate() {
        if interval.is_zero() {
            if let Some(ended) = interrupted(shutdown, restart) {
                return (ended, ok);
            }
            ok[i] = tasks.run(i).await;
        }
    }
    let start = Instant::now();
    let mut due: Vec<Option<Instant>> = intervals
        .iter()
        .map(|d| (!d.is_zero()).then_some(start))
        .collect();
    let mut earliest: Vec<Instant> = vec![start; intervals.len()];
    loop {
        if let Some(ended) = interrupted(shutdown, restart) {
            return (ended, ok);
        }
        // The task due first; among equals, the first one written.
        let Some((i, at)) = due
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.map(|d| (i, d.max(earliest[i]))))
            .min_by_key(|&(i, d)| (d, i))
        else {
            return (Ended::Done, ok);
        };
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            () = shutdown.wait() => return (Ended::Stopped, ok),
            () = restart.wait() => return (Ended::Restart, ok),
        }
        ok[i] = tasks.run(i).await;
        let interval = intervals[i];
        let now = Instant::now();
        let mut next = due[i].expect("a periodic task") + interval;
        while next <= now {
            next += interval;
        }
        due[i] = Some(next);
        earliest[i] = now + interval / 2;
    }
}

fn interrupted(shutdown: &Shutdown, restart: &Shutdown) -> Option<Ended> {
    if shutdown.requested() {
        Some(Ended::Stopped)
    } else if restart.requested() {
        Some(Ended::Restart)
    } else {
        None
    }
}

/// Resolves once the file at `path` holds other bytes than now (it is
/// written, replaced or removed) and has kept them for `settle`, looking
/// every `every`: dregsy's `watch: true`, which waits for a config written
/// in several steps to settle before it restarts.
pub async fn changed(path: &Path, every: Duration, settle: Duration) {
    let read = || {
        crate::local_file::read_capped(path, crate::limits::MANIFEST_FILE_BYTES)
            .ok()
            .map(|b| crate::reference::Digest::sha256_of(&b))
    };
    let first = read();
    let mut seen = first.clone();
    let mut since: Option<Instant> = None;
    loop {
        tokio::time::sleep(every).await;
        let now = read();
        if now != seen {
            seen = now;
            since = (seen != first).then(Instant::now);
            continue;
        }
        if since.is_some_and(|t| t.elapsed() >= settle) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// (task, seconds since the start) of each run.
    type Runs = Arc<Mutex<Vec<(usize, u64)>>>;

    /// Records when each task ran (seconds since the start, paused time).
    struct Recorded {
        start: Instant,
        runs: Runs,
        takes: Duration,
    }

    impl Tasks for Recorded {
        fn run(&mut self, i: usize) -> Pin<Box<dyn Future<Output = bool> + '_>> {
            Box::pin(async move {
                self.runs
                    .lock()
                    .unwrap()
                    .push((i, self.start.elapsed().as_secs()));
                tokio::time::sleep(self.takes).await;
                i != 1
            })
        }
    }

    fn recorded(takes: Duration) -> (Recorded, Runs) {
        let runs: Runs = Arc::default();
        let tasks = Recorded {
            start: Instant::now(),
            runs: runs.clone(),
            takes,
        };
        (tasks, runs)
    }

    #[tokio::test(start_paused = true)]
    async fn two_tasks_run_on_their_own_intervals_after_the_one_off_tasks() {
        let (mut tasks, runs) = recorded(Duration::ZERO);
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(31)).await;
            stop.request();
        });
        let intervals = [
            Duration::ZERO,
            Duration::from_secs(10),
            Duration::from_secs(15),
            Duration::ZERO,
        ];
        let (ended, ok) = run(&intervals, &mut tasks, &shutdown, &Shutdown::new()).await;
        assert_eq!(ended, Ended::Stopped);
        assert_eq!(ok, [true, false, true, true], "task 1 fails every time");
        assert_eq!(
            *runs.lock().unwrap(),
            [
                (0, 0),
                (3, 0),
                (1, 0),
                (2, 0),
                (1, 10),
                (2, 15),
                (1, 20),
                (1, 30),
                (2, 30)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_off_tasks_only_end_by_themselves_and_a_restart_ends_a_schedule() {
        let (mut tasks, runs) = recorded(Duration::ZERO);
        let (ended, _) = run(
            &[Duration::ZERO; 2],
            &mut tasks,
            &Shutdown::new(),
            &Shutdown::new(),
        )
        .await;
        assert_eq!(ended, Ended::Done);
        assert_eq!(runs.lock().unwrap().len(), 2);
        let restart = Shutdown::new();
        let asked = restart.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(45)).await;
            asked.request();
        });
        let (ended, _) = run(
            &[Duration::from_secs(30)],
            &mut tasks,
            &Shutdown::new(),
            &restart,
        )
        .await;
        assert_eq!(ended, Ended::Restart);
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_longer_than_its_interval_skips_the_ticks_it_missed() {
        let (mut tasks, runs) = recorded(Duration::from_secs(25));
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(61)).await;
            stop.request();
        });
        run(
            &[Duration::from_secs(10)],
            &mut tasks,
            &shutdown,
            &Shutdown::new(),
        )
        .await;
        // Runs at 0 (ends 25), 30 (ends 55), 60: ticks at 10, 20, 40, 50 missed.
        assert_eq!(*runs.lock().unwrap(), [(0, 0), (0, 30), (0, 60)]);
    }

    #[tokio::test]
    async fn a_changed_file_is_heard_once_it_settles() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(&file, "a").unwrap();
        let watching = tokio::spawn({
            let file = file.clone();
            async move { changed(&file, Duration::from_millis(10), Duration::from_millis(50)).await }
        });
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(!watching.is_finished());
        std::fs::write(&file, "b").unwrap();
        tokio::time::timeout(Duration::from_secs(5), watching)
            .await
            .expect("heard the change")
            .unwrap();
    }
}
