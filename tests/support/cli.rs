//! Running the real `promoter` binary, as a user would.

use std::path::Path;

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

/// Run `promoter ARGS` in `cwd` and wait for it.
pub fn promoter(cwd: &Path, args: &[&str]) -> Out {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_promoter"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run promoter");
    Out::from(output)
}

/// The same, from async tests (whose runtime also serves the test's proxies
/// and token issuers, so it must not block).
pub async fn promoter_async(cwd: &Path, args: &[&str]) -> Out {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_promoter"))
        .args(args)
        .current_dir(cwd)
        .output()
        .await
        .expect("run promoter");
    Out::from(output)
}
