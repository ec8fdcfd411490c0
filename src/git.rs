//! The manifests as they were at a git revision, read from the local
//! repository with the `git` command (never the network): what
//! `--parse-only --base REV` compares with and `run --since REV` diffs
//! against. Works on a shallow CI checkout as long as REV is in it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why the base revision could not be read. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// `git` is not installed, or could not start.
    #[error("cannot run git: {0} (install git, or drop --base/--since)")]
    NoGit(std::io::Error),
    /// The manifests are not in a git work tree.
    #[error("{path}: not inside a git repository; --base and --since compare with a git revision")]
    NotARepository {
        /// The manifest file or tree.
        path: String,
    },
    /// The revision is not in this clone.
    #[error("revision {rev:?} is not in this repository (a shallow clone may lack it: fetch it, e.g. `git fetch --depth=1 origin {rev}`)")]
    UnknownRevision {
        /// The revision as given.
        rev: String,
    },
    /// The manifests did not exist at the revision.
    #[error("{path} does not exist at revision {rev}")]
    Absent {
        /// The manifest file or tree.
        path: String,
        /// The revision.
        rev: String,
    },
    /// git said something unexpected.
    #[error("git {what}: {message}")]
    Failed {
        /// Which git operation.
        what: String,
        /// What it printed on stderr (first line).
        message: String,
    },
    /// Writing the base copy failed.
    #[error("cannot write the base copy: {0}")]
    Io(#[from] std::io::Error),
}

/// The commit `rev` names, checked to exist, in the repository of `dir`.
pub fn resolve(dir: &Path, rev: &str) -> Result<String, GitError> {
    let out = git(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )?;
    if !out.status.success() {
        if !inside_work_tree(dir)? {
            return Err(GitError::NotARepository {
                path: dir.display().to_string(),
            });
        }
        return Err(GitError::UnknownRevision {
            rev: rev.to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The text of `file` at revision `rev`.
pub fn file_at(file: &Path, rev: &str) -> Result<String, GitError> {
    let dir = parent_dir(file);
    let commit = resolve(&dir, rev)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = git(&dir, &["show", &format!("{commit}:./{name}")])?;
    if !out.status.success() {
        return Err(GitError::Absent {
            path: file.display().to_string(),
            rev: rev.to_string(),
        });
    }
    String::from_utf8(out.stdout).map_err(|_| GitError::Failed {
        what: "show".into(),
        message: format!("{} at {rev} is not UTF-8", file.display()),
    })
}

/// A copy of the tree `dir` as it was at revision `rev`, in a temporary
/// directory (removed when the value is dropped): files with their content,
/// symlinks as symlinks.
pub fn tree_at(dir: &Path, rev: &str) -> Result<tempfile::TempDir, GitError> {
    let commit = resolve(dir, rev)?;
    let listing = git(dir, &["ls-tree", "-r", "-z", &commit, "--", "."])?;
    if !listing.status.success() {
        return Err(failed("ls-tree", &listing));
    }
    // `<mode> <type> <object>\t<path relative to dir>`, NUL-terminated.
    let mut entries = Vec::new();
    for record in listing.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let text = String::from_utf8_lossy(record);
        let Some((meta, path)) = text.split_once('\t') else {
            continue;
        };
        let fields: Vec<&str> = meta.split(' ').collect();
        if fields.len() != 3 || fields[1] != "blob" {
            continue; // submodules and the like hold no manifests
        }
        entries.push((
            fields[0].to_string(),
            fields[2].to_string(),
            PathBuf::from(path),
        ));
    }
    if entries.is_empty() {
        return Err(GitError::Absent {
            path: dir.display().to_string(),
            rev: rev.to_string(),
        });
    }
    let copy = tempfile::Builder::new()
        .prefix("promoter-base-")
        .tempdir()?;
    let mut batch = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(GitError::NoGit)?;
    let mut stdin = batch.stdin.take().expect("piped");
    let objects: Vec<String> = entries
        .iter()
        .map(|(_, object, _)| object.clone())
        .collect();
    let feeder = std::thread::spawn(move || -> std::io::Result<()> {
        for object in objects {
            writeln!(stdin, "{object}")?;
        }
        Ok(())
    });
    let mut out = BufReader::new(batch.stdout.take().expect("piped"));
    for (mode, _, path) in &entries {
        let mut header = String::new();
        out.read_line(&mut header)?;
        let size: usize = header
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| GitError::Failed {
                what: "cat-file".into(),
                message: header.trim().to_string(),
            })?;
        let mut content = vec![0u8; size + 1]; // and the newline after it
        out.read_exact(&mut content)?;
        content.pop();
        if path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            continue; // git never lists these; refuse to follow one anyway
        }
        let target = copy.path().join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if mode == "120000" {
            #[cfg(unix)]
            std::os::unix::fs::symlink(String::from_utf8_lossy(&content).as_ref(), &target)?;
        } else {
            std::fs::write(&target, &content)?;
        }
    }
    let _ = feeder.join();
    let _ = batch.wait();
    Ok(copy)
}

/// What to compare with for "what changed in the last `window`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowBase {
    /// No commit falls in the window: nothing changed.
    Nothing,
    /// The window reaches the repository's first commit: everything is new.
    Everything,
    /// The parent of the oldest commit in the window.
    Commit(String),
}

/// The base for "what changed in the last `window`" in the repository of
/// `dir`: see [`WindowBase`]. `window` is a git approxidate span
/// (`14 days`, `2 weeks`, `3600 seconds`).
pub fn base_of_window(dir: &Path, window: &str) -> Result<WindowBase, GitError> {
    resolve(dir, "HEAD")?;
    let out = git(
        dir,
        &[
            "rev-list",
            "--reverse",
            &format!("--since={window} ago"),
            "HEAD",
        ],
    )?;
    if !out.status.success() {
        return Err(failed("rev-list", &out));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(oldest) = text.lines().next() else {
        return Ok(WindowBase::Nothing);
    };
    match resolve(dir, &format!("{oldest}^")) {
        Ok(commit) => Ok(WindowBase::Commit(commit)),
        Err(GitError::UnknownRevision { .. }) => Ok(WindowBase::Everything),
        Err(e) => Err(e),
    }
}

fn parent_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn inside_work_tree(dir: &Path) -> Result<bool, GitError> {
    let out = git(dir, &["rev-parse", "--is-inside-work-tree"])?;
    Ok(out.status.success())
}

fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output, GitError> {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::NoGit)
}

fn failed(what: &str, out: &std::process::Output) -> GitError {
    GitError::Failed {
        what: what.to_string(),
        message: String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("failed")
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .status()
            .unwrap()
            .success();
        assert!(ok, "{script}");
    }

    #[test]
    fn a_tree_and_a_file_are_read_back_as_they_were() {
        let repo = tempfile::tempdir().unwrap();
        sh(
            repo.path(),
            "git init -q . && git config user.email t@t && git config user.name t \
             && mkdir -p tree/images/a && echo one > tree/images/a/images.yaml \
             && echo plain > m.yaml && git add -A && git commit -qm base \
             && echo two > tree/images/a/images.yaml && echo changed > m.yaml",
        );
        let base = tree_at(&repo.path().join("tree"), "HEAD").unwrap();
        assert_eq!(
            std::fs::read_to_string(base.path().join("images/a/images.yaml")).unwrap(),
            "one\n"
        );
        assert_eq!(
            file_at(&repo.path().join("m.yaml"), "HEAD").unwrap(),
            "plain\n"
        );
        let err = file_at(&repo.path().join("m.yaml"), "no-such-rev").unwrap_err();
        assert!(matches!(err, GitError::UnknownRevision { .. }), "{err}");
        let outside = tempfile::tempdir().unwrap();
        let err = tree_at(outside.path(), "HEAD").unwrap_err();
        assert!(matches!(err, GitError::NotARepository { .. }), "{err}");
    }
}
