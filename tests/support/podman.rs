//! podman, a second independent client of what the promoter writes: the one
//! way tests run it, in a [`CleanEnv`] and with storage of its own (a
//! temporary root and run root, the `vfs` driver, no cgroups or event log),
//! so that it needs no daemon, no mounts and nothing of the machine's.
//!
//! Missing podman: `None` (after a skip line), except under `CI=true`, where
//! it fails the test ([`require_binary`]).

use std::path::PathBuf;

use tempfile::TempDir;

use super::hermetic::CleanEnv;
use super::registry::require_binary;
use super::skopeo::last_word;

/// A podman with empty image storage, removed on drop.
pub struct Podman {
    program: PathBuf,
    storage: TempDir,
    env: CleanEnv,
}

impl Podman {
    pub fn new() -> Option<Podman> {
        Some(Podman {
            program: require_binary("podman")?,
            storage: tempfile::tempdir().expect("a directory for podman's storage"),
            env: CleanEnv::new(),
        })
    }

    fn command(&self) -> std::process::Command {
        let mut command = self.env.command(&self.program);
        let root = self.storage.path();
        command
            .arg("--root")
            .arg(root.join("root"))
            .arg("--runroot")
            .arg(root.join("run"))
            .args([
                "--storage-driver=vfs",
                "--cgroup-manager=cgroupfs",
                "--events-backend=none",
            ]);
        command
    }

    /// The version `podman --version` reports (`4.3.1`).
    pub fn version(&self) -> String {
        let out = self
            .command()
            .arg("--version")
            .output()
            .expect("run podman");
        last_word(&out.stdout)
    }

    /// `podman pull TARGET` (e.g. `oci:DIR:TAG`): the image unpacked into
    /// podman's storage, or why it could not be.
    pub fn try_pull(&self, target: &str) -> Result<(), String> {
        // podman 4 fails a pull when DOCKER_CONFIG (the clean environment's
        // empty directory) has no config.json: an empty auth file of its
        // own says "no credentials" instead.
        let auth_file = self.storage.path().join("auth.json");
        std::fs::write(&auth_file, br#"{"auths":{}}"#).expect("write podman's auth file");
        let out = self
            .command()
            .args(["pull", "--quiet", "--authfile"])
            .arg(&auth_file)
            .arg(target)
            .output()
            .expect("run podman");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "podman pull {target}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}
