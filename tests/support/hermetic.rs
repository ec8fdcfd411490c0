//! The environment every process a test starts runs in: none of the
//! developer's (or the CI machine's) own credentials, registry settings or
//! caches may reach it, whatever `~/.docker/config.json`, `auth.json` or
//! `$REGISTRY_AUTH_FILE` hold. A test that wants credentials passes them
//! explicitly (`--auth-file`), or sets a variable on purpose, which wins.
//!
//! [`CleanEnv`] points every variable the promoter (and skopeo, and the
//! credential helpers they run) reads its defaults from at empty directories
//! of its own, and removes the rest. For the few tests that read the
//! environment in-process, [`rerun_in_clean_env`] runs the test again in a
//! child test process with that environment.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use tempfile::TempDir;

/// Set to an empty directory of the run's own (created, mode 0700).
pub const ISOLATED: [&str; 6] = [
    "HOME",
    "DOCKER_CONFIG",
    "XDG_CONFIG_HOME",
    "XDG_RUNTIME_DIR",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
];

/// Removed: another auth file, a shard setting (`clap` reads it for
/// `--shard`), a developer's log filter and colour choice (they change
/// what is printed), and proxies that would route loopback traffic
/// elsewhere.
pub const REMOVED: [&str; 12] = [
    "REGISTRY_AUTH_FILE",
    "PROMOTER_SHARD",
    "RUST_LOG",
    "NO_COLOR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
];

/// Marks a test process started by [`rerun_in_clean_env`].
const RERUN_MARK: &str = "PROMOTER_TEST_CLEAN_ENV";

/// Empty directories standing in for `HOME` and the other [`ISOLATED`]
/// variables, removed on drop (keep it until the process it was applied
/// to has exited).
pub struct CleanEnv {
    dir: TempDir,
}

impl CleanEnv {
    pub fn new() -> CleanEnv {
        let dir = tempfile::Builder::new()
            .prefix("promoter-env-")
            .tempdir()
            .expect("a temporary directory for a clean environment");
        CleanEnv { dir }
    }

    fn dir_for(&self, variable: &str) -> PathBuf {
        let dir = self.dir.path().join(variable.to_ascii_lowercase());
        std::fs::create_dir_all(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    /// Apply this environment to `command`. Variables the caller sets on
    /// `command` afterwards win.
    pub fn apply(&self, command: &mut Command) {
        for variable in ISOLATED {
            command.env(variable, self.dir_for(variable));
        }
        for variable in REMOVED {
            command.env_remove(variable);
        }
        // Credentials from the environment (PROMOTER_AUTH_<HOST>) are the
        // machine's too.
        for (variable, _) in std::env::vars_os() {
            if variable.to_string_lossy().starts_with("PROMOTER_AUTH_") {
                command.env_remove(variable);
            }
        }
    }

    /// `program` with this environment applied, stdin closed.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        self.apply(&mut command);
        command.stdin(std::process::Stdio::null());
        command
    }
}

impl Default for CleanEnv {
    fn default() -> Self {
        CleanEnv::new()
    }
}

/// For a test whose body reads the environment in-process (as
/// `CredentialStore::discover` does): answers `false` when this process
/// already has a clean environment, so the body should run; otherwise runs
/// the test `module::test` (`module` as `module_path!()` gives it) again in a
/// child test process with a [`CleanEnv`], asserts that it passed, and
/// answers `true`: the caller returns at once.
pub fn rerun_in_clean_env(module: &str, test: &str) -> bool {
    if std::env::var_os(RERUN_MARK).is_some() {
        return false;
    }
    // Test names leave out the crate: `it::remote_auth` runs as `remote_auth::…`.
    let module = module.split_once("::").map_or("", |(_, rest)| rest);
    let name = if module.is_empty() {
        test.to_string()
    } else {
        format!("{module}::{test}")
    };
    let env = CleanEnv::new();
    let out = env
        .command(std::env::current_exe().expect("the test binary"))
        .args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(RERUN_MARK, "1")
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in a clean environment: {}\n{stdout}{stderr}",
        out.status
    );
    true
}
