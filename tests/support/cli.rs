//! Running the real `promoter` binary, as a user would: the one way every
//! test starts it.
//!
//! ```ignore
//! let out = Promoter::new(dir).args(["run", "--manifest", "m.yaml"]).run();
//! let out = Promoter::new(dir).args(args).run_async().await;
//! let mut child = Promoter::new(dir).args(args).stdout(file).spawn();
//! ```
//!
//! Every run gets a [`CleanEnv`] (an empty `HOME`, `DOCKER_CONFIG` and
//! `XDG_*`, no `REGISTRY_AUTH_FILE`), so that nothing of the machine's own
//! configuration reaches it; [`Promoter::env`] sets a variable on purpose,
//! over it. Every run is bounded ([`Promoter::timeout`], 180 s by
//! default): a hang fails the test instead of holding up the suite.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::hermetic::CleanEnv;

/// What one run printed, and how it exited.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout then stderr, for assertion messages and searches across both.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    fn from(output: std::process::Output) -> Out {
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// One run of the binary, being described.
#[must_use]
pub struct Promoter {
    cwd: PathBuf,
    args: Vec<OsString>,
    /// Set (`Some`) or removed (`None`) over the clean environment.
    env: Vec<(OsString, Option<OsString>)>,
    timeout: Duration,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
    /// A shell line to run instead of the binary, with the binary on PATH
    /// as `promoter` (README's command lines, as written).
    shell: Option<String>,
}

impl Promoter {
    /// The shell command line `line` in `cwd`, as a user types it: `sh -c`,
    /// with this binary first on PATH as `promoter`.
    pub fn shell(cwd: impl AsRef<Path>, line: &str) -> Promoter {
        let bin = Path::new(env!("CARGO_BIN_EXE_promoter"))
            .parent()
            .expect("the binary's directory")
            .to_path_buf();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bin];
        dirs.extend(std::env::split_paths(&path));
        let joined = std::env::join_paths(dirs).expect("a PATH");
        Promoter {
            shell: Some(line.to_string()),
            ..Promoter::new(cwd)
        }
        .env("PATH", joined)
    }

    /// `promoter` in `cwd`, with no arguments yet.
    pub fn new(cwd: impl AsRef<Path>) -> Promoter {
        Promoter {
            cwd: cwd.as_ref().to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            timeout: Duration::from_secs(180),
            stdout: None,
            stderr: None,
            shell: None,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Promoter
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Set `key` for this run, over the clean environment.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Promoter {
        self.env.push((
            key.as_ref().to_os_string(),
            Some(value.as_ref().to_os_string()),
        ));
        self
    }

    /// Remove `key` from this run's environment.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Promoter {
        self.env.push((key.as_ref().to_os_string(), None));
        self
    }

    /// How long [`Promoter::run`] and [`Promoter::run_async`] wait before
    /// they kill the run and fail the test.
    pub fn timeout(mut self, timeout: Duration) -> Promoter {
        self.timeout = timeout;
        self
    }

    /// Where a [`Promoter::spawn`]ed run's stdout goes (default: nowhere).
    pub fn stdout(mut self, to: impl Into<Stdio>) -> Promoter {
        self.stdout = Some(to.into());
        self
    }

    /// Where a [`Promoter::spawn`]ed run's stderr goes (default: nowhere).
    pub fn stderr(mut self, to: impl Into<Stdio>) -> Promoter {
        self.stderr = Some(to.into());
        self
    }

    fn describe(&self) -> String {
        match &self.shell {
            Some(line) => format!("`{line}` in {}", self.cwd.display()),
            None => format!("promoter {:?} in {}", self.args, self.cwd.display()),
        }
    }

    /// The command, and the environment it must not outlive.
    fn command(&mut self) -> (Command, CleanEnv) {
        let env = CleanEnv::new();
        let mut command = match &self.shell {
            Some(line) => {
                let mut sh = env.command("sh");
                sh.args(["-c", line]);
                sh
            }
            None => env.command(env!("CARGO_BIN_EXE_promoter")),
        };
        command.args(&self.args).current_dir(&self.cwd);
        for (key, value) in &self.env {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command
            .stdout(self.stdout.take().unwrap_or_else(Stdio::null))
            .stderr(self.stderr.take().unwrap_or_else(Stdio::null));
        (command, env)
    }

    /// Run and wait, from a plain `#[test]`.
    pub fn run(mut self) -> Out {
        let what = self.describe();
        let (mut command, _env) = self.command();
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        // Both pipes are read on threads, so a chatty child cannot block on
        // a full pipe while this one waits.
        let read = |mut pipe: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                bytes
            })
        };
        let stdout = read(Box::new(child.stdout.take().expect("stdout")));
        let stderr = read(Box::new(child.stderr.take().expect("stderr")));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for promoter") {
                break status;
            }
            if started.elapsed() > self.timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not finish within {:?}", self.timeout);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Out::from(std::process::Output {
            status,
            stdout: stdout.join().expect("stdout reader"),
            stderr: stderr.join().expect("stderr reader"),
        })
    }

    /// Run and wait, from an async test (whose runtime also serves the
    /// test's proxies and token issuers, so it must not block).
    pub async fn run_async(mut self) -> Out {
        let what = self.describe();
        let (mut command, _env) = self.command();
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let output = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(self.timeout, output)
            .await
            .unwrap_or_else(|_| panic!("{what} did not finish within {:?}", self.timeout))
            .unwrap_or_else(|e| panic!("run {what}: {e}"));
        Out::from(output)
    }

    /// Start it and answer at once: for tests that kill it. It is killed
    /// when the answer is dropped, at the latest.
    pub fn spawn(mut self) -> Running {
        let what = self.describe();
        let (command, env) = self.command();
        let child = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        Running { child, _env: env }
    }
}

/// A [`Promoter::spawn`]ed run: a [`tokio::process::Child`], and the clean
/// environment it runs in (removed once both are dropped).
pub struct Running {
    child: tokio::process::Child,
    _env: CleanEnv,
}

impl std::ops::Deref for Running {
    type Target = tokio::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.child
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.child
    }
}

/// Run `promoter ARGS` in `cwd` and wait for it.
pub fn promoter(cwd: &Path, args: &[&str]) -> Out {
    Promoter::new(cwd).args(args).run()
}

/// The same, from async tests.
pub async fn promoter_async(cwd: &Path, args: &[&str]) -> Out {
    Promoter::new(cwd).args(args).run_async().await
}

/// A scratch working directory for runs of the binary, removed on drop.
pub struct Workdir {
    dir: TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `text` to `name` (relative to the directory); answers the path.
    pub fn write(&self, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Read `name` (relative to the directory), or "" when it is missing.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).unwrap_or_default()
    }

    /// A run of the binary in this directory.
    pub fn promoter(&self) -> Promoter {
        Promoter::new(self.path())
    }

    /// `promoter ARGS` here, from a plain `#[test]`.
    pub fn run(&self, args: &[&str]) -> Out {
        promoter(self.path(), args)
    }

    /// `promoter ARGS` here, from an async test.
    pub async fn run_async(&self, args: &[&str]) -> Out {
        promoter_async(self.path(), args).await
    }
}

impl Default for Workdir {
    fn default() -> Self {
        Workdir::new()
    }
}
