//! One hook call as a process: started in a clean environment and its own
//! process group, fed its input, waited for (the process, not its pipes:
//! a background child that keeps stdout open does not hold the run), and
//! never outliving its call. Everything it started is found and killed
//! when it ends: its process group, and any process carrying the call's
//! marker in its environment (a child that called `setsid` leaves the
//! group but keeps the environment it inherited).

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much of a hook's stdout or stderr is kept.
const OUTPUT_LIMIT: usize = 64 << 10;

/// How long output is still read once the hook has exited: what a
/// background child writes later is dropped.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// The variable that marks every process of one hook call.
const MARKER: &str = "PROMOTER_HOOK_CALL";

/// What to run.
pub(super) struct Call<'a> {
    /// The command, for `sh -c`.
    pub(super) command: &'a str,
    /// Its stdin.
    pub(super) input: Vec<u8>,
    /// Its whole environment (nothing else of ours reaches it).
    pub(super) env: Vec<(String, std::ffi::OsString)>,
    /// How long it may take.
    pub(super) timeout: Duration,
}

/// How a call ended.
pub(super) enum Ended {
    /// It exited with this status, having written this stdout and stderr.
    Exited {
        code: i32,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    /// It could not start, or failed to be waited for: why.
    Failed(String),
    /// It did not exit in time, and was killed with everything it started.
    TimedOut,
}

/// Run `call`.
pub(super) async fn run(call: Call<'_>) -> Ended {
    let marker = format!("{}-{}", std::process::id(), rand::random::<u64>());
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(call.command)
        .env_clear()
        .envs(call.env.iter().map(|(k, v)| (k, v)))
        .env(MARKER, &marker)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group, so that what it starts can be killed too.
        .process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return Ended::Failed(format!("cannot start: {e}")),
    };
    let pid = child.id();
    let (stdout, stderr) = (Output::default(), Output::default());
    let readers = [
        tokio::spawn(stdout.clone().fill(child.stdout.take())),
        tokio::spawn(stderr.clone().fill(child.stderr.take())),
    ];
    let mut stdin = child.stdin.take();
    let waited = tokio::time::timeout(call.timeout, async {
        // A hook that does not read its input must not block us.
        let feed = async {
            if let Some(stdin) = stdin.as_mut() {
                let _ = stdin.write_all(&call.input).await;
            }
            drop(stdin.take());
        };
        let (_, status) = tokio::join!(feed, child.wait());
        status
    })
    .await;
    // Whatever the hook left running is killed: it may not outlive its call.
    kill_everything(pid, &marker);
    let _ = child.kill().await;
    let _ = tokio::time::timeout(OUTPUT_GRACE, futures::future::join_all(readers)).await;
    match waited {
        Err(_) => Ended::TimedOut,
        Ok(Err(e)) => Ended::Failed(e.to_string()),
        Ok(Ok(status)) => Ended::Exited {
            code: status.code().unwrap_or(-1),
            stdout: stdout.take(),
            stderr: stderr.take(),
        },
    }
}

/// A pipe's bytes, up to [`OUTPUT_LIMIT`], shared with the task reading it
/// (what arrived is kept when the reading is given up).
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<u8>>>);

impl Output {
    async fn fill<R: tokio::io::AsyncRead + Unpin>(self, reader: Option<R>) {
        let Some(mut reader) = reader else { return };
        let mut chunk = [0u8; 8192];
        // Read to the end (draining past the cap), so the hook never blocks
        // on a full pipe.
        while let Ok(n) = reader.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let room = OUTPUT_LIMIT.saturating_sub(kept.len());
            kept.extend_from_slice(&chunk[..n.min(room)]);
        }
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// SIGKILL the hook's process group and every process that carries its
/// marker (those that left the group with `setsid`).
fn kill_everything(pid: Option<u32>, marker: &str) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: kill(2) with a negative pid signals the process group
        // this hook leads; it touches no memory of ours.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let wanted = format!("{MARKER}={marker}");
    for pid in marked(&wanted) {
        // SAFETY: as above, for one process.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// The processes whose environment holds `entry` (`NAME=VALUE`), read from
/// `/proc` (ours are readable: same user).
fn marked(entry: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id() as i32;
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == entry.as_bytes()))
        })
        .collect()
}

/// Make this process's memory and environment unreadable by other
/// processes of the same user (`/proc/PID/environ`, ptrace): a hook runs
/// as us, and our environment may hold credentials (`PROMOTER_AUTH_*`).
pub(super) fn keep_our_environment_from_hooks() {
    // SAFETY: prctl(2) with PR_SET_DUMPABLE takes plain integers and only
    // changes this process's dumpable flag.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(command: &str, timeout: Duration) -> Call<'_> {
        Call {
            command,
            input: b"{}".to_vec(),
            env: vec![("PATH".into(), std::env::var_os("PATH").unwrap_or_default())],
            timeout,
        }
    }

    /// Whether `pid` still runs (a zombie waiting for its reaper does not).
    fn running(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.rsplit(") ").next().unwrap_or("").starts_with('Z'))
    }

    #[tokio::test]
    async fn a_hook_that_exits_is_done_though_a_child_keeps_its_stdout() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let command = format!(
            "sleep 600 & echo $! > {}; echo 'refused: CVE' >&2; exit 1",
            pid_file.display()
        );
        // Waited for the pipes, this would take the whole timeout.
        let ended = tokio::time::timeout(
            Duration::from_secs(30),
            run(call(&command, Duration::from_secs(600))),
        )
        .await
        .expect("the hook's exit ends the call");
        let Ended::Exited { code, stderr, .. } = ended else {
            panic!("it exited");
        };
        assert_eq!(
            (code, String::from_utf8_lossy(&stderr).trim()),
            (1, "refused: CVE")
        );
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            !running(pid),
            "the background child was killed with its hook"
        );
    }

    #[tokio::test]
    async fn a_timeout_kills_what_the_hook_started_even_in_its_own_session() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let command = format!(
            "setsid sleep 600 & echo $! > {}; sleep 600",
            pid_file.display()
        );
        let ended = run(call(&command, Duration::from_millis(500))).await;
        assert!(matches!(ended, Ended::TimedOut));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The kill is sent before the call returns; give the kernel a moment.
        for _ in 0..50 {
            if !running(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the setsid child {pid} outlived its hook");
    }
}
